//! Detectors: a fixed threshold, and a robust statistical one (median and MAD of a bounded
//! recent window) that catches a spike on a fast link long before any fixed limit would.

use crate::config::alerts::MIN_WINDOW;
use std::collections::VecDeque;

/// MAD × this estimates the standard deviation of normal data.
const MAD_TO_SIGMA: f64 = 1.4826;
/// A sample must also differ from the median by this share of it: microsecond jitter on an
/// idle loopback link is not an anomaly even when the window is very quiet.
const MIN_RELATIVE_DEVIATION: f64 = 0.5;

/// A fixed limit; `low_is_bad` for floors (bandwidth), else ceilings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub limit: f64,
    pub low_is_bad: bool,
}

impl Threshold {
    /// `Some(reason)` when `value` is on the wrong side of the limit.
    pub fn check(&self, value: f64, human: impl Fn(f64) -> String) -> Option<String> {
        let bad = if self.low_is_bad {
            value < self.limit
        } else {
            value > self.limit
        };
        let side = if self.low_is_bad { "floor" } else { "limit" };
        bad.then(|| format!("threshold: {side} {}", human(self.limit)))
    }
}

/// Median of a slice (sorted copy).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The robust z-score of `x` against `window`: (x − median) / (1.4826 × MAD), with the
/// median and MAD. A window whose MAD is 0 (all equal) uses 1% of the median instead, so
/// that a constant series still has a finite scale.
pub fn robust_z(window: &[f64], x: f64) -> (f64, f64, f64) {
    let mut v = window.to_vec();
    let med = median(&mut v);
    let mut dev: Vec<f64> = window.iter().map(|w| (w - med).abs()).collect();
    let mad = median(&mut dev);
    let scale = (MAD_TO_SIGMA * mad)
        .max(0.01 * med.abs())
        .max(f64::MIN_POSITIVE);
    ((x - med) / scale, med, mad)
}

/// A sample far outside the recent window (directional: only the bad side counts).
#[derive(Debug, Clone)]
pub struct StatDetector {
    window: VecDeque<f64>,
    capacity: usize,
    zscore: f64,
    low_is_bad: bool,
}

impl StatDetector {
    pub fn new(capacity: usize, zscore: f64, low_is_bad: bool) -> StatDetector {
        StatDetector {
            window: VecDeque::with_capacity(capacity),
            capacity: capacity.max(MIN_WINDOW),
            zscore,
            low_is_bad,
        }
    }

    /// Judges `value` against the window (once it holds [`MIN_WINDOW`] samples), then adds
    /// it, dropping the oldest: a lasting change becomes the new normal within the window.
    pub fn observe(&mut self, value: f64, human: impl Fn(f64) -> String) -> Option<String> {
        let verdict = self.judge(value, &human);
        if self.window.len() == self.capacity {
            self.window.pop_front();
        }
        self.window.push_back(value);
        verdict
    }

    fn judge(&self, value: f64, human: &impl Fn(f64) -> String) -> Option<String> {
        if self.window.len() < MIN_WINDOW {
            return None;
        }
        let all: Vec<f64> = self.window.iter().copied().collect();
        let (z, med, mad) = robust_z(&all, value);
        let z = if self.low_is_bad { -z } else { z };
        let far = (value - med).abs() >= MIN_RELATIVE_DEVIATION * med.abs();
        (z > self.zscore && far).then(|| {
            format!(
                "statistical: robust z {z:.1} > {} (window median {}, MAD {}, {} samples)",
                self.zscore,
                human(med),
                human(mad),
                all.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: f64) -> String {
        format!("{v}")
    }

    #[test]
    fn threshold_sides() {
        let ceiling = Threshold {
            limit: 1.0,
            low_is_bad: false,
        };
        assert!(ceiling.check(1.5, h).is_some());
        assert!(ceiling.check(1.0, h).is_none());
        let floor = Threshold {
            limit: 10.0,
            low_is_bad: true,
        };
        assert!(floor.check(5.0, h).unwrap().contains("floor 10"));
        assert!(floor.check(12.0, h).is_none());
    }

    #[test]
    fn robust_z_ignores_one_outlier_in_the_window() {
        let mut w = vec![10.0, 11.0, 9.0, 10.0, 10.5, 9.5, 10.0, 1000.0];
        let (z, med, _) = robust_z(&w, 10.0);
        assert_eq!(med, 10.0);
        assert!(z.abs() < 1.0, "{z}");
        w.push(10.0);
        let (z, _, _) = robust_z(&w, 50.0);
        assert!(z > 20.0, "{z}");
    }

    #[test]
    fn spike_on_a_fast_link_is_caught_after_the_minimum_count() {
        // A 5 µs link with ±0.5 µs jitter; a 40 µs spike is far below any 1 ms threshold.
        let mut d = StatDetector::new(60, 6.0, false);
        let base = [5000.0, 5400.0, 4700.0, 5100.0, 4900.0, 5300.0, 4800.0];
        for v in base {
            assert!(d.observe(v, h).is_none());
        }
        // Seven samples: still learning, even a spike is not judged.
        let mut learning = d.clone();
        assert!(learning.observe(40_000.0, h).is_none());
        assert!(d.observe(5000.0, h).is_none());
        let why = d.observe(40_000.0, h).expect("spike");
        assert!(why.contains("robust z"), "{why}");
        // Jitter within the window is not an anomaly; neither is the good side.
        assert!(d.observe(5600.0, h).is_none());
        assert!(d.observe(1000.0, h).is_none());
    }

    #[test]
    fn small_relative_changes_on_a_quiet_window_are_not_anomalies() {
        let mut d = StatDetector::new(16, 6.0, false);
        for _ in 0..10 {
            d.observe(100.0, h);
        }
        assert!(
            d.observe(130.0, h).is_none(),
            "30% is under the relative floor"
        );
        assert!(d.observe(300.0, h).is_some());
    }

    #[test]
    fn bandwidth_drop_is_bad_and_rise_is_not() {
        let mut d = StatDetector::new(16, 6.0, true);
        for v in [40.0, 41.0, 39.0, 40.5, 39.5, 40.0, 40.2, 39.8] {
            d.observe(v, h);
        }
        assert!(d.observe(100.0, h).is_none());
        assert!(d.observe(5.0, h).is_some());
    }

    #[test]
    fn window_is_bounded() {
        let mut d = StatDetector::new(8, 6.0, false);
        for i in 0..100 {
            d.observe(i as f64, h);
        }
        assert_eq!(d.window.len(), 8);
        assert_eq!(d.window.front(), Some(&92.0));
    }
}
