//! `diagnose` (the guide's `diagnose_high_latency` and `optimize_bandwidth_utilization`):
//! [`measure`] takes the figures from a running fabric; [`analyse`] turns them into a
//! [`DiagnoseReport`] — per-hop latency and health, bottlenecks, the bandwidth-delay product
//! and recommendations — as a pure function of what was measured and the fabric file.

mod analyse;
mod measure;

pub use analyse::{analyse, Limits};
pub use measure::{measure, Plan};

use crate::route::{Route, Strategy};
use serde::Serialize;

/// The ping sizes of the size sweep.
pub const SWEEP_SIZES: [usize; 5] = [64, 256, 1024, 4096, 8192];

/// Figures of one probe series: round trips in nanoseconds (sorted), and how many failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    pub samples_ns: Vec<u64>,
    pub failed: u64,
    /// The first failure, in words.
    pub error: Option<String>,
}

impl Series {
    pub fn push(&mut self, r: crate::error::Result<u64>) {
        match r {
            Ok(ns) => {
                let at = self.samples_ns.partition_point(|&s| s <= ns);
                self.samples_ns.insert(at, ns);
            }
            Err(e) => {
                self.failed += 1;
                self.error.get_or_insert_with(|| e.to_string());
            }
        }
    }

    /// Nearest-rank percentile (0..=100) of the samples.
    pub fn percentile(&self, p: u32) -> Option<u64> {
        let n = self.samples_ns.len();
        if n == 0 {
            return None;
        }
        let rank = (p as usize * n).div_ceil(100).clamp(1, n);
        Some(self.samples_ns[rank - 1])
    }

    pub fn median(&self) -> Option<u64> {
        self.percentile(50)
    }

    pub fn loss_ratio(&self) -> f64 {
        let total = self.samples_ns.len() as u64 + self.failed;
        if total == 0 {
            0.0
        } else {
            self.failed as f64 / total as f64
        }
    }
}

/// What [`measure`] took: the raw material of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub from: String,
    pub to: String,
    pub route: Route,
    /// Per sweep size: pings over the direct connection, and routed transfers of that size.
    pub sweep: Vec<(usize, Series, Series)>,
    /// Per route node after the source: small routed transfers to it (round trip to the ack),
    /// and the path the transfers took.
    pub hops: Vec<(Series, Vec<String>)>,
    /// `--full`: per route node after the source, the throughput of a routed bulk transfer.
    pub throughput_gbps: Vec<Option<f64>>,
    pub socket_buffer_bytes: usize,
}

/// One size of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizePoint {
    pub size_bytes: usize,
    /// One-way (half round trip) pings over the direct connection from→to.
    pub ping_median_ns: Option<u64>,
    pub ping_p99_ns: Option<u64>,
    pub ping_loss_pct: f64,
    /// Round trip of a routed transfer of this size (data along the route, ack back).
    pub routed_median_ns: Option<u64>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    /// Reachable, but slow, lossy or jittery beyond the limits.
    Degraded,
    /// No probe came back.
    Down,
    /// Not probed: an earlier hop is down.
    Unmeasured,
}

/// One hop of the route with what was measured across it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HopReport {
    pub from: String,
    pub to: String,
    pub configured_latency_ns: u64,
    pub configured_bandwidth_gbps: f64,
    /// Median round trip of small routed transfers from the source to `to`.
    pub rtt_to_ns: Option<u64>,
    /// What this hop adds to the round trip (rtt_to of `to` minus that of `from`).
    pub latency_ns: Option<i64>,
    /// p90 − p10 of the round trips to `to`.
    pub jitter_ns: Option<u64>,
    pub loss_pct: f64,
    /// `--full`: throughput of a bulk transfer through this hop over its configured bandwidth.
    pub utilisation: Option<f64>,
    pub throughput_gbps: Option<f64>,
    pub health: Health,
    /// The path the probes took, when it was not the route's prefix.
    pub path_taken: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bottleneck {
    /// "latency" or "bandwidth".
    pub kind: String,
    pub hop: usize,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// The bandwidth-delay product of the route and the socket buffer it implies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bdp {
    pub bandwidth_gbps: f64,
    /// "configured" (the route's bottleneck link) or "measured" (--full, routes without one).
    pub bandwidth_source: String,
    pub rtt_ns: u64,
    pub bytes: u64,
    /// Next power of two at or above the BDP (at least 64 KiB).
    pub buffer_bytes: u64,
    pub socket_buffer_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    High,
    Medium,
    Low,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub category: String,
    pub issue: String,
    pub recommendation: String,
    pub priority: Urgency,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagnoseReport {
    pub from: String,
    pub to: String,
    pub strategy: Strategy,
    pub route: Vec<String>,
    pub size_sweep: Vec<SizePoint>,
    pub hops: Vec<HopReport>,
    pub bottlenecks: Vec<Bottleneck>,
    pub bdp: Option<Bdp>,
    /// `--full`: end-to-end throughput of a routed bulk transfer.
    pub throughput_gbps: Option<f64>,
    pub recommendations: Vec<Recommendation>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn series_keeps_order_and_counts_failures() {
        let mut s = Series::default();
        for v in [30, 10, 20, 40] {
            s.push(Ok(v));
        }
        s.push(Err(Error::Shutdown));
        assert_eq!(s.samples_ns, [10, 20, 30, 40]);
        assert_eq!(
            (s.median(), s.percentile(90), s.percentile(10)),
            (Some(20), Some(40), Some(10))
        );
        assert_eq!(s.loss_ratio(), 0.2);
        assert!(s.error.is_some());
        assert_eq!(Series::default().median(), None);
    }
}
