//! Latency: ping-pong round trips; one-way latency = half the round trip. The timed region
//! holds nothing but the round trip; samples go into an HDR histogram.

use super::report::{LatencyFigures, LatencyTest};
use super::{progress, Args, Target};
use crate::common::CliResult;
use hdrhistogram::Histogram;
use hyperfabric::config::ProfileName;
use hyperfabric::PingOptions;
use std::time::Duration;

/// Pings per progress-bar step.
const BATCH: u64 = 1000;

pub fn run(t: &Target, a: &Args) -> CliResult<LatencyTest> {
    let profile = a.profile.unwrap_or(ProfileName::LowLatency);
    let fabric = t.client(profile)?;
    let bar = progress(a, a.iterations, "latency");
    let base = PingOptions::new()
        .size(a.size)
        .interval(Duration::from_micros(a.interval_us))
        .timeout(Duration::from_secs(2));
    // Warm-up: connection set-up, caches, CPU frequency.
    fabric.ping(&t.to, base.count(a.warmup.max(1)))?;
    let mut samples = Vec::with_capacity(a.iterations as usize);
    let mut sent = 0;
    while sent < a.iterations {
        let n = BATCH.min(a.iterations - sent);
        let (_, mut batch) = fabric.ping_samples(&t.to, base.count(n))?;
        samples.append(&mut batch);
        sent += n;
        bar.inc(n);
    }
    bar.finish_and_clear();
    let figures = figures(&samples, sent)?;
    samples.sort_unstable();
    Ok(LatencyTest {
        profile,
        transport: super::transport_of(&fabric, &t.to)?,
        size_bytes: a.size,
        iterations: a.iterations,
        warmup: a.warmup,
        interval_us: a.interval_us,
        figures,
        samples_ns: samples,
    })
}

/// Figures from an HDR histogram of the samples (3 significant digits).
pub fn figures(samples: &[u64], sent: u64) -> CliResult<LatencyFigures> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|e| crate::common::CliError::failed(e.to_string()))?;
    for &s in samples {
        h.saturating_record(s.max(1));
    }
    let received = h.len();
    Ok(LatencyFigures {
        sent,
        received,
        loss_pct: if sent == 0 {
            0.0
        } else {
            (sent - received.min(sent)) as f64 * 100.0 / sent as f64
        },
        min_ns: h.min(),
        max_ns: h.max(),
        mean_ns: h.mean(),
        median_ns: h.value_at_quantile(0.5),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        stddev_ns: h.stdev(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_figures_are_ordered() {
        let samples: Vec<u64> = (1..=10_000).map(|i| 1000 + (i * 7919) % 50_000).collect();
        let f = figures(&samples, 10_100).unwrap();
        assert!(
            f.min_ns <= f.median_ns
                && f.median_ns <= f.p99_ns
                && f.p99_ns <= f.p999_ns
                && f.p999_ns <= f.max_ns
        );
        assert_eq!(f.received, 10_000);
        assert!((f.loss_pct - 0.990099).abs() < 1e-3);
    }
}
