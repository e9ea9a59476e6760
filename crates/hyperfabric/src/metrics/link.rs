//! Per-link counters: one slot per peer, allocated once when the peer is first seen, then
//! updated with relaxed atomics only (no lock, no allocation per frame).

use super::LatencySummary;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Number of priority classes (codes 0..=4 of `Priority::code`).
pub const PRIORITIES: usize = 5;

/// Upper bounds (seconds) of the Prometheus histogram buckets, from 1 µs to 10 s.
pub const BUCKETS_SECONDS: [f64; 15] = [
    1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 10e-3, 100e-3, 1.0, 5.0,
    10.0,
];

/// Latency samples of one kind on one link: an HDR histogram (2 significant digits, 1 ns to
/// 60 s, about 32 KiB) plus the exact sum, recorded outside any timed region.
pub struct LatencyHistogram {
    hist: Histogram<u64>,
    sum_ns: u128,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            // Constant, valid bounds: this cannot fail.
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 2)
                .expect("constant histogram bounds are valid"),
            sum_ns: 0,
        }
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
        self.sum_ns += u128::from(ns);
    }

    pub fn summary(&self) -> LatencySummary {
        let h = &self.hist;
        let n = h.len();
        let q = |q: f64| if n == 0 { 0 } else { h.value_at_quantile(q) };
        LatencySummary {
            count: n,
            sum_seconds: self.sum_ns as f64 / 1e9,
            min_ns: if n == 0 { 0 } else { h.min() },
            p50_ns: q(0.5),
            p90_ns: q(0.9),
            p99_ns: q(0.99),
            max_ns: if n == 0 { 0 } else { h.max() },
            mean_ns: if n == 0 { 0.0 } else { h.mean() },
            buckets: BUCKETS_SECONDS
                .iter()
                .map(|&le| (le, h.count_between(0, (le * 1e9) as u64)))
                .collect(),
        }
    }
}

/// What one node counts about its link to one peer. Frame counters include every frame
/// (data, acks, pings, control) with its 64-byte header: bytes on the wire.
pub struct LinkCounters {
    pub peer: String,
    /// Nominal capacity from the fabric file (the link, else the slower node), for utilisation.
    pub capacity_gbps: Option<f64>,
    bytes_sent: [AtomicU64; PRIORITIES],
    frames_sent: AtomicU64,
    bytes_received: AtomicU64,
    frames_received: AtomicU64,
    transfers_sent: AtomicU64,
    transfers_failed: AtomicU64,
    retransmitted_bytes: AtomicU64,
    pings_sent: AtomicU64,
    pings_lost: AtomicU64,
    ping_latency: Mutex<LatencyHistogram>,
    transfer_latency: Mutex<LatencyHistogram>,
    /// Milliseconds (node clock) of the last metrics reply sent to this peer: the rate limit.
    pub(crate) last_reply_ms: AtomicU64,
}

impl LinkCounters {
    pub fn new(peer: &str, capacity_gbps: Option<f64>) -> LinkCounters {
        LinkCounters {
            peer: peer.to_owned(),
            capacity_gbps,
            bytes_sent: Default::default(),
            frames_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            transfers_sent: AtomicU64::new(0),
            transfers_failed: AtomicU64::new(0),
            retransmitted_bytes: AtomicU64::new(0),
            pings_sent: AtomicU64::new(0),
            pings_lost: AtomicU64::new(0),
            ping_latency: Mutex::new(LatencyHistogram::default()),
            transfer_latency: Mutex::new(LatencyHistogram::default()),
            last_reply_ms: AtomicU64::new(0),
        }
    }

    /// A frame of `wire_bytes` (header included) of priority `class` went out.
    #[inline]
    pub fn on_sent(&self, class: u8, wire_bytes: usize) {
        let class = usize::from(class).min(PRIORITIES - 1);
        self.bytes_sent[class].fetch_add(wire_bytes as u64, Ordering::Relaxed);
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A frame of `wire_bytes` (header included) came in.
    #[inline]
    pub fn on_received(&self, wire_bytes: usize) {
        self.bytes_received
            .fetch_add(wire_bytes as u64, Ordering::Relaxed);
        self.frames_received.fetch_add(1, Ordering::Relaxed);
    }

    /// A transfer to this peer was acknowledged end to end.
    pub fn on_transfer_done(&self, latency: Duration, retransmitted_bytes: u64) {
        self.transfers_sent.fetch_add(1, Ordering::Relaxed);
        self.retransmitted_bytes
            .fetch_add(retransmitted_bytes, Ordering::Relaxed);
        self.transfer_latency
            .lock()
            .record(latency.as_nanos().min(u128::from(u64::MAX)) as u64);
    }

    pub fn on_transfer_failed(&self) {
        self.transfers_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A ping run ended: `sent` probes, one-way `samples` (ns) of those that came back.
    pub fn on_pings(&self, sent: u64, samples: &[u64]) {
        self.pings_sent.fetch_add(sent, Ordering::Relaxed);
        self.pings_lost
            .fetch_add(sent.saturating_sub(samples.len() as u64), Ordering::Relaxed);
        let mut h = self.ping_latency.lock();
        for &s in samples {
            h.record(s);
        }
    }

    /// The counters as plain numbers (rates and transport are filled in by the caller).
    pub fn snapshot(&self) -> super::LinkMetrics {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let by_prio: [u64; PRIORITIES] = std::array::from_fn(|i| r(&self.bytes_sent[i]));
        let pings_sent = r(&self.pings_sent);
        let pings_lost = r(&self.pings_lost);
        super::LinkMetrics {
            peer: self.peer.clone(),
            transport: String::new(),
            connected: false,
            bytes_sent: by_prio.iter().sum(),
            bytes_sent_by_priority: by_prio,
            frames_sent: r(&self.frames_sent),
            bytes_received: r(&self.bytes_received),
            frames_received: r(&self.frames_received),
            transfers_sent: r(&self.transfers_sent),
            transfers_failed: r(&self.transfers_failed),
            retransmitted_bytes: r(&self.retransmitted_bytes),
            pings_sent,
            pings_lost,
            drops: pings_lost + r(&self.transfers_failed),
            ping_latency: self.ping_latency.lock().summary(),
            transfer_latency: self.transfer_latency.lock().summary(),
            send_bytes_per_second: 0.0,
            receive_bytes_per_second: 0.0,
            capacity_gbps: self.capacity_gbps,
            utilisation: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_per_priority_and_pings_count_losses() {
        let l = LinkCounters::new("b", Some(100.0));
        l.on_sent(0, 100);
        l.on_sent(2, 1064);
        l.on_sent(9, 10); // out of range: counted as background
        l.on_received(64);
        l.on_pings(4, &[1_000, 2_000, 3_000]);
        l.on_transfer_done(Duration::from_micros(50), 7);
        l.on_transfer_failed();
        let s = l.snapshot();
        assert_eq!(s.bytes_sent, 1174);
        assert_eq!(s.bytes_sent_by_priority, [100, 0, 1064, 0, 10]);
        assert_eq!(
            (s.frames_sent, s.frames_received, s.bytes_received),
            (3, 1, 64)
        );
        assert_eq!((s.pings_sent, s.pings_lost, s.drops), (4, 1, 2));
        assert_eq!(s.retransmitted_bytes, 7);
        assert_eq!(s.ping_latency.count, 3);
        // HDR buckets at 2 significant digits: within 1%.
        assert!(
            (1_980..=2_020).contains(&s.ping_latency.p50_ns),
            "{}",
            s.ping_latency.p50_ns
        );
        assert!((s.ping_latency.sum_seconds - 6e-6).abs() < 1e-12);
        // Cumulative buckets: 1 µs holds one sample, 2.5 µs two, 5 µs all three.
        assert_eq!(
            &s.ping_latency.buckets[..3],
            &[(1e-6, 1), (2.5e-6, 2), (5e-6, 3)]
        );
        assert_eq!(s.transfer_latency.count, 1);
    }
}
