//! The guide's `AdaptiveCompressor`: per transfer, pick the algorithm that maximises effective
//! throughput over the link the data will cross, or none.
//!
//! Model, for `n` bytes over a link of `L` bytes/s, with an algorithm of ratio `r`, compress
//! speed `c` and decompress speed `d` (bytes of uncompressed data per second):
//! ```text
//!   raw  = n / L
//!   with = n / c  +  (n / r) / L  +  n / d
//! ```
//! The algorithm with the smallest `with` is chosen when it beats `raw`. Ratios come from
//! compressing a sample of the data (at most [`SAMPLE_MAX`] bytes taken from a few places);
//! speeds are exponentially weighted moving averages of the probes, timed with the clock the
//! caller passes in. Every algorithm is probed on the first call and then every
//! `probe_interval` calls; in between only the last choice (lz4 after a `None`) is measured,
//! and a ratio that moved by more than [`RATIO_DRIFT`] forces a full probe.

use super::{compress_into, decompress_into, Algorithm};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The largest sample compressed per probe.
pub const SAMPLE_MAX: usize = 64 * 1024;
/// Number of places the sample is taken from when the data is larger than [`SAMPLE_MAX`].
pub const SAMPLE_WINDOWS: usize = 4;
/// Weight of a new measurement in the speed averages.
pub const EWMA_ALPHA: f64 = 0.3;
/// Default number of calls between full probes of every algorithm.
pub const DEFAULT_PROBE_INTERVAL: u32 = 16;
/// Relative change of the measured ratio that forces a full probe.
pub const RATIO_DRIFT: f64 = 0.25;

/// When compression is worth trying at all (the guide's compression settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompressionPolicy {
    /// Messages shorter than this are never compressed.
    pub threshold_bytes: usize,
    /// An algorithm slower than this on the sample is not used.
    pub max_compression_time_us: u64,
    /// An algorithm whose estimated ratio is below this is not used.
    pub min_compression_ratio: f64,
    /// Compress only on links slower than this (megabits per second).
    pub threshold_bandwidth_mbps: f64,
    /// The algorithms the compressor may pick (probes only these); empty: never compress.
    pub algorithms: Vec<Algorithm>,
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        CompressionPolicy {
            threshold_bytes: 1024,
            max_compression_time_us: 1000,
            min_compression_ratio: 1.1,
            threshold_bandwidth_mbps: 10_000.0,
            algorithms: vec![Algorithm::Lz4, Algorithm::Zstd, Algorithm::Snappy],
        }
    }
}

/// The outcome of [`AdaptiveCompressor::auto_select`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Selection {
    pub algorithm: Algorithm,
    /// Uncompressed / compressed bytes on the sample (1.0 for `None`).
    pub estimated_ratio: f64,
    /// Estimated transfer time without compression / with it (1.0 for `None`).
    pub estimated_gain: f64,
}

impl Selection {
    fn none() -> Selection {
        Selection {
            algorithm: Algorithm::None,
            estimated_ratio: 1.0,
            estimated_gain: 1.0,
        }
    }
}

/// What one probe of one algorithm measured.
#[derive(Clone, Copy, Debug)]
struct Probe {
    ratio: f64,
    compress_ns: f64,
}

/// Running estimates for one algorithm.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    /// Uncompressed bytes per nanosecond; 0 until measured.
    compress_bpns: f64,
    decompress_bpns: f64,
    /// Ratio at the last measurement.
    ratio: f64,
    /// Sample compression time at the last measurement.
    compress_ns: f64,
}

impl Stats {
    fn update(&mut self, bytes: usize, probe: Probe, decompress_ns: f64) {
        let c = bytes as f64 / probe.compress_ns;
        let d = bytes as f64 / decompress_ns;
        self.compress_bpns = ewma(self.compress_bpns, c);
        self.decompress_bpns = ewma(self.decompress_bpns, d);
        self.ratio = probe.ratio;
        self.compress_ns = probe.compress_ns;
    }
}

fn ewma(old: f64, new: f64) -> f64 {
    if old > 0.0 {
        old + EWMA_ALPHA * (new - old)
    } else {
        new
    }
}

/// Chooses, per transfer, the compression that maximises effective throughput.
#[derive(Debug)]
pub struct AdaptiveCompressor {
    policy: CompressionPolicy,
    probe_interval: u32,
    calls_since_probe: u32,
    last_choice: Option<Algorithm>,
    stats: [Stats; 4],
    probes: u64,
    sample: Vec<u8>,
    packed: Vec<u8>,
    unpacked: Vec<u8>,
}

impl AdaptiveCompressor {
    pub fn new(policy: CompressionPolicy) -> Self {
        AdaptiveCompressor {
            policy,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            calls_since_probe: 0,
            last_choice: None,
            stats: [Stats::default(); 4],
            probes: 0,
            sample: Vec::with_capacity(SAMPLE_MAX),
            packed: Vec::new(),
            unpacked: Vec::new(),
        }
    }

    /// Calls between full probes of every algorithm (at least 1; 1 probes every call).
    pub fn with_probe_interval(mut self, calls: u32) -> Self {
        self.probe_interval = calls.max(1);
        self
    }

    pub fn policy(&self) -> &CompressionPolicy {
        &self.policy
    }

    /// Full probes (every algorithm measured) run so far.
    pub fn full_probes(&self) -> u64 {
        self.probes
    }

    /// Picks the algorithm for `data` crossing a link of `link_gbps` (see the module docs).
    pub fn auto_select(
        &mut self,
        data: &[u8],
        link_gbps: f64,
        clock: &mut dyn FnMut() -> Instant,
    ) -> Selection {
        let link_mbps = link_gbps * 1000.0;
        if data.len() < self.policy.threshold_bytes
            || !Algorithm::ALL.into_iter().any(|a| self.allowed(a))
            || !(link_mbps > 0.0 && link_mbps.is_finite())
            || link_mbps >= self.policy.threshold_bandwidth_mbps
        {
            return Selection::none();
        }
        take_sample(data, &mut self.sample);
        let full = self.last_choice.is_none() || self.calls_since_probe + 1 >= self.probe_interval;
        if full || !self.measure_last(clock) {
            self.probe_all(clock);
        } else {
            self.calls_since_probe += 1;
        }
        let choice = self.choose(data.len(), link_gbps);
        self.last_choice = Some(choice.algorithm);
        choice
    }

    /// Measures only the last choice (lz4 after `None`). False when the ratio drifted.
    fn measure_last(&mut self, clock: &mut dyn FnMut() -> Instant) -> bool {
        let alg = match self.last_choice {
            Some(alg) if self.allowed(alg) => alg,
            _ => match self.policy.algorithms.iter().find(|a| self.allowed(**a)) {
                Some(&alg) => alg,
                None => return true,
            },
        };
        let before = self.stats[alg.wire_code() as usize].ratio;
        if !self.measure(alg, clock) {
            return false;
        }
        let after = self.stats[alg.wire_code() as usize].ratio;
        before > 0.0 && ((after - before) / before).abs() <= RATIO_DRIFT
    }

    fn allowed(&self, alg: Algorithm) -> bool {
        alg != Algorithm::None && self.policy.algorithms.contains(&alg)
    }

    fn probe_all(&mut self, clock: &mut dyn FnMut() -> Instant) {
        for alg in Algorithm::ALL {
            if self.allowed(alg) && !self.measure(alg, clock) {
                self.stats[alg.wire_code() as usize].ratio = 0.0;
            }
        }
        self.probes += 1;
        self.calls_since_probe = 0;
    }

    /// Compresses and decompresses the sample with `alg`, updating its stats.
    fn measure(&mut self, alg: Algorithm, clock: &mut dyn FnMut() -> Instant) -> bool {
        let t0 = clock();
        if compress_into(alg, &self.sample, &mut self.packed).is_err() {
            return false;
        }
        let t1 = clock();
        let max = self.sample.len();
        if decompress_into(alg, &self.packed, &mut self.unpacked, max).is_err() {
            return false;
        }
        let t2 = clock();
        let probe = Probe {
            ratio: self.sample.len() as f64 / self.packed.len().max(1) as f64,
            compress_ns: elapsed_ns(t0, t1),
        };
        let bytes = self.sample.len().max(1);
        self.stats[alg.wire_code() as usize].update(bytes, probe, elapsed_ns(t1, t2));
        true
    }

    /// The best algorithm by the model, among those the policy allows.
    fn choose(&self, len: usize, link_gbps: f64) -> Selection {
        let n = len as f64;
        let link_bpns = link_gbps / 8.0;
        let raw_ns = n / link_bpns;
        let max_ns = self.policy.max_compression_time_us as f64 * 1000.0;
        let mut best = Selection::none();
        let mut best_ns = raw_ns;
        for alg in Algorithm::ALL.into_iter().skip(1) {
            let s = &self.stats[alg.wire_code() as usize];
            let usable = self.allowed(alg)
                && s.ratio >= self.policy.min_compression_ratio
                && s.compress_ns <= max_ns
                && s.compress_bpns > 0.0
                && s.decompress_bpns > 0.0;
            if !usable {
                continue;
            }
            let ns = n / s.compress_bpns + n / s.ratio / link_bpns + n / s.decompress_bpns;
            if ns < best_ns {
                best_ns = ns;
                best = Selection {
                    algorithm: alg,
                    estimated_ratio: s.ratio,
                    estimated_gain: raw_ns / ns,
                };
            }
        }
        best
    }
}

/// Nanoseconds from `a` to `b`, at least 1 (coarse or fake clocks may not move).
fn elapsed_ns(a: Instant, b: Instant) -> f64 {
    (b.saturating_duration_since(a).as_nanos() as f64).max(1.0)
}

/// Fills `out` with `data` if it fits in [`SAMPLE_MAX`], else with evenly spaced windows.
fn take_sample(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if data.len() <= SAMPLE_MAX {
        out.extend_from_slice(data);
        return;
    }
    let window = SAMPLE_MAX / SAMPLE_WINDOWS;
    let last_start = data.len() - window;
    for i in 0..SAMPLE_WINDOWS {
        let start = last_start * i / (SAMPLE_WINDOWS - 1);
        out.extend_from_slice(&data[start..start + window]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples;
    use super::*;
    use std::time::Duration;

    /// A clock that moves `step` per reading.
    fn fake_clock(step: Duration) -> impl FnMut() -> Instant {
        let mut now = Instant::now();
        move || {
            now += step;
            now
        }
    }

    fn real_clock() -> impl FnMut() -> Instant {
        Instant::now
    }

    #[test]
    fn the_threshold_and_the_algorithm_set_change_the_decision() {
        let data = samples::text(64 * 1024);
        let pick = |policy: CompressionPolicy| {
            let mut ac = AdaptiveCompressor::new(policy);
            ac.auto_select(&data, 1.0, &mut fake_clock(Duration::from_micros(20)))
                .algorithm
        };
        assert_ne!(pick(CompressionPolicy::default()), Algorithm::None);
        let high = CompressionPolicy {
            threshold_bytes: 128 * 1024,
            ..CompressionPolicy::default()
        };
        assert_eq!(pick(high), Algorithm::None);
        let only_snappy = CompressionPolicy {
            algorithms: vec![Algorithm::Snappy],
            ..CompressionPolicy::default()
        };
        assert_eq!(pick(only_snappy), Algorithm::Snappy);
        let none = CompressionPolicy {
            algorithms: vec![],
            ..CompressionPolicy::default()
        };
        assert_eq!(pick(none), Algorithm::None);
        let fast_link_only = CompressionPolicy {
            threshold_bandwidth_mbps: 500.0,
            ..CompressionPolicy::default()
        };
        assert_eq!(pick(fast_link_only), Algorithm::None);
    }

    #[test]
    fn random_data_is_not_compressed() {
        let mut ac = AdaptiveCompressor::new(CompressionPolicy::default());
        let data = samples::random(1 << 20, 3);
        let sel = ac.auto_select(&data, 1.0, &mut real_clock());
        assert_eq!(sel.algorithm, Algorithm::None);
        let sel = ac.auto_select(&data, 1.0, &mut fake_clock(Duration::from_micros(1)));
        assert_eq!(sel, Selection::none());
    }

    #[test]
    fn compressible_data_on_a_slow_link_is_compressed() {
        for data in [samples::float_tensor(1 << 20), samples::text(1 << 20)] {
            let mut ac = AdaptiveCompressor::new(CompressionPolicy::default());
            let sel = ac.auto_select(&data, 1.0, &mut fake_clock(Duration::from_micros(20)));
            assert_ne!(sel.algorithm, Algorithm::None);
            assert!(sel.estimated_ratio > 2.0, "{sel:?}");
            assert!(sel.estimated_gain > 1.0, "{sel:?}");
        }
    }

    #[test]
    fn fast_link_small_data_and_slow_compression_give_none() {
        let data = samples::text(1 << 20);
        let mut ac = AdaptiveCompressor::new(CompressionPolicy::default());
        let mut clock = fake_clock(Duration::from_micros(20));
        assert_eq!(ac.auto_select(&data, 100.0, &mut clock), Selection::none());
        assert_eq!(
            ac.auto_select(&data[..1000], 1.0, &mut clock),
            Selection::none()
        );
        assert_eq!(
            ac.auto_select(&data, f64::NAN, &mut clock),
            Selection::none()
        );
        let mut slow = fake_clock(Duration::from_millis(5));
        assert_eq!(ac.auto_select(&data, 1.0, &mut slow), Selection::none());
    }

    #[test]
    fn min_ratio_is_respected() {
        let policy = CompressionPolicy {
            min_compression_ratio: 1000.0,
            ..CompressionPolicy::default()
        };
        let mut ac = AdaptiveCompressor::new(policy);
        let data = samples::text(1 << 20);
        let sel = ac.auto_select(&data, 0.1, &mut fake_clock(Duration::from_micros(1)));
        assert_eq!(sel.algorithm, Algorithm::None);
    }

    #[test]
    fn probes_every_interval_and_on_drift() {
        let mut ac = AdaptiveCompressor::new(CompressionPolicy::default()).with_probe_interval(4);
        let text = samples::text(1 << 20);
        let mut clock = fake_clock(Duration::from_micros(20));
        for _ in 0..8 {
            assert_ne!(
                ac.auto_select(&text, 1.0, &mut clock).algorithm,
                Algorithm::None
            );
        }
        assert_eq!(ac.full_probes(), 2);
        let random = samples::random(1 << 20, 9);
        assert_eq!(
            ac.auto_select(&random, 1.0, &mut clock).algorithm,
            Algorithm::None
        );
        assert_eq!(ac.full_probes(), 3, "the ratio drift forces a probe");
    }

    #[test]
    fn sample_takes_windows_from_large_data() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i / 1000) as u8).collect();
        let mut s = Vec::new();
        take_sample(&data, &mut s);
        assert_eq!(s.len(), SAMPLE_MAX);
        assert_eq!(s[0], data[0]);
        assert_eq!(s[SAMPLE_MAX - 1], data[data.len() - 1]);
        take_sample(&data[..100], &mut s);
        assert_eq!(s, &data[..100]);
    }
}
