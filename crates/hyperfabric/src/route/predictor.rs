//! A learned link-latency predictor for the `predictive` strategy.
//!
//! Online linear regression by recursive least squares (RLS) with a forgetting factor:
//! deterministic (no seed needed), O(F²) per sample, no allocation. Features per link:
//! `[1, latency_us, 100/bandwidth_gbps, utilisation, u/(1-u), latency_us·u/(1-u), loss,
//! sin(hour), cos(hour)]`; the target is the observed latency in µs. The queueing term
//! `latency·u/(1-u)` lets a linear model learn that a busy link is slower than its nominal
//! figure. Until [`PREDICTOR_MIN_SAMPLES`] samples have been seen, no prediction is made.

use super::strategy::inflation;
use super::topology::LinkInfo;
use serde::{Deserialize, Serialize};

pub const FEATURE_COUNT: usize = 9;
/// Samples needed before predictions are used.
pub const PREDICTOR_MIN_SAMPLES: u64 = 2 * FEATURE_COUNT as u64;
/// RLS forgetting factor: older samples weigh `λ^age`.
pub const PREDICTOR_FORGETTING: f64 = 0.999;
/// Initial diagonal of the inverse covariance (a weak prior around zero weights).
const P_INIT: f64 = 1e4;
/// Predictions are clamped to at least this (Dijkstra needs positive weights).
const PREDICTION_MIN_NS: f64 = 1.0;

/// One completed transfer over one link: what was known beforehand and what was observed.
/// The JSON-lines history format has exactly these fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictorSample {
    pub from: String,
    pub to: String,
    /// Nominal link latency.
    pub latency_ns: f64,
    pub bandwidth_gbps: f64,
    pub utilisation: f64,
    pub loss: f64,
    /// Local hour of day, 0..24 (fractions allowed).
    pub hour: f64,
    pub observed_latency_ns: f64,
}

impl PredictorSample {
    fn check(&self) -> Result<(), String> {
        let fields = [
            ("latency_ns", self.latency_ns),
            ("bandwidth_gbps", self.bandwidth_gbps),
            ("utilisation", self.utilisation),
            ("loss", self.loss),
            ("hour", self.hour),
            ("observed_latency_ns", self.observed_latency_ns),
        ];
        for (name, v) in fields {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "field `{name}` must be a finite number >= 0 (got {v})"
                ));
            }
        }
        if self.bandwidth_gbps <= 0.0 {
            return Err("field `bandwidth_gbps` must be > 0".into());
        }
        Ok(())
    }
}

fn features(
    latency_ns: f64,
    bandwidth_gbps: f64,
    util: f64,
    loss: f64,
    hour: f64,
) -> [f64; FEATURE_COUNT] {
    let lat_us = latency_ns / 1_000.0;
    let congestion = inflation(util) - 1.0;
    let angle = hour / 24.0 * std::f64::consts::TAU;
    [
        1.0,
        lat_us,
        100.0 / bandwidth_gbps.max(1e-3),
        util.clamp(0.0, 1.0),
        congestion,
        lat_us * congestion,
        loss.clamp(0.0, 1.0),
        angle.sin(),
        angle.cos(),
    ]
}

/// Recursive-least-squares latency model.
#[derive(Debug, Clone)]
pub struct Predictor {
    weights: [f64; FEATURE_COUNT],
    p: [[f64; FEATURE_COUNT]; FEATURE_COUNT],
    samples: u64,
    /// RLS forgetting factor (`1 - routing.learning_rate`).
    forgetting: f64,
    /// Samples needed before predictions are used (`routing.training_samples`).
    min_samples: u64,
}

impl Default for Predictor {
    fn default() -> Self {
        let mut p = [[0.0; FEATURE_COUNT]; FEATURE_COUNT];
        for (i, row) in p.iter_mut().enumerate() {
            row[i] = P_INIT;
        }
        Predictor {
            weights: [0.0; FEATURE_COUNT],
            p,
            samples: 0,
            forgetting: PREDICTOR_FORGETTING,
            min_samples: PREDICTOR_MIN_SAMPLES,
        }
    }
}

impl Predictor {
    pub fn new() -> Predictor {
        Predictor::default()
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The model's weights, one per feature.
    pub fn weights(&self) -> [f64; FEATURE_COUNT] {
        self.weights
    }

    pub fn is_trained(&self) -> bool {
        self.samples >= self.min_samples
    }

    /// Old samples weigh `(1 - rate)^age`; `rate` outside (0, 0.5] keeps the default.
    pub fn set_learning_rate(&mut self, rate: f64) {
        if rate.is_finite() && rate > 0.0 && rate <= 0.5 {
            self.forgetting = 1.0 - rate;
        }
    }

    pub fn learning_rate(&self) -> f64 {
        1.0 - self.forgetting
    }

    /// Predictions are used once `n` (at least 1) samples have been seen.
    pub fn set_min_samples(&mut self, n: u64) {
        self.min_samples = n.max(1);
    }

    pub fn min_samples(&self) -> u64 {
        self.min_samples
    }

    /// One RLS step; a sample with non-finite or negative values is ignored (returns false).
    pub fn train(&mut self, s: &PredictorSample) -> bool {
        if s.check().is_err() {
            return false;
        }
        let x = features(
            s.latency_ns,
            s.bandwidth_gbps,
            s.utilisation,
            s.loss,
            s.hour,
        );
        let y = s.observed_latency_ns / 1_000.0;
        let mut px = [0.0; FEATURE_COUNT];
        for (i, out) in px.iter_mut().enumerate() {
            *out = (0..FEATURE_COUNT).map(|j| self.p[i][j] * x[j]).sum();
        }
        let forgetting = self.forgetting;
        let denom = forgetting + (0..FEATURE_COUNT).map(|i| x[i] * px[i]).sum::<f64>();
        if !denom.is_finite() || denom <= 0.0 {
            return false;
        }
        let err = y - self.raw_predict(&x);
        for ((w, row), pxi) in self.weights.iter_mut().zip(&mut self.p).zip(px) {
            let gain = pxi / denom;
            *w += gain * err;
            for (p, pxj) in row.iter_mut().zip(px) {
                *p = (*p - gain * pxj) / forgetting;
            }
        }
        self.bound_covariance();
        self.samples += 1;
        true
    }

    /// Forgetting divides the covariance every step; in a direction the samples never excite
    /// (utilisation always 0) it would grow without bound. `D·P·D` with `D_ii =
    /// min(1, sqrt(P_INIT / P_ii))` caps each diagonal at `P_INIT` and keeps `P` positive
    /// semi-definite; excited directions (small `P_ii`) are untouched.
    fn bound_covariance(&mut self) {
        let mut d = [1.0; FEATURE_COUNT];
        for (i, di) in d.iter_mut().enumerate() {
            if self.p[i][i] > P_INIT {
                *di = (P_INIT / self.p[i][i]).sqrt();
            }
        }
        // Symmetrised too: rounding makes the update drift from symmetry, and fast
        // forgetting amplifies the drift until P is no longer positive definite.
        for i in 0..FEATURE_COUNT {
            for j in i..FEATURE_COUNT {
                let v = 0.5 * (self.p[i][j] + self.p[j][i]) * d[i] * d[j];
                self.p[i][j] = v;
                self.p[j][i] = v;
            }
        }
    }

    fn raw_predict(&self, x: &[f64; FEATURE_COUNT]) -> f64 {
        self.weights.iter().zip(x).map(|(w, x)| w * x).sum()
    }

    /// Expected latency (ns) of a transfer with these features, once trained.
    pub fn predict_ns(
        &self,
        latency_ns: f64,
        bandwidth_gbps: f64,
        util: f64,
        loss: f64,
        hour: f64,
    ) -> Option<f64> {
        if !self.is_trained() {
            return None;
        }
        let x = features(latency_ns, bandwidth_gbps, util, loss, hour);
        let ns = self.raw_predict(&x) * 1_000.0;
        ns.is_finite().then_some(ns.max(PREDICTION_MIN_NS))
    }

    /// Expected latency of a link from its nominal figures and latest measurement.
    pub(crate) fn predict_link_ns(&self, l: &LinkInfo, hour: f64) -> Option<f64> {
        let loss = l.sample.map_or(0.0, |s| s.loss);
        self.predict_ns(
            l.latency_ns as f64,
            l.bandwidth_gbps,
            l.utilisation(),
            loss,
            hour,
        )
    }

    /// Trains from a JSON-lines history (one [`PredictorSample`] per line; blank lines and
    /// lines starting with `#` are skipped). Stops at the first bad line, naming it.
    pub fn train_from_jsonl(&mut self, text: &str) -> Result<usize, String> {
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let s: PredictorSample =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            s.check().map_err(|e| format!("line {}: {e}", i + 1))?;
            self.train(&s);
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic samples from a queueing-like ground truth: `lat·(1 + 2·u/(1-u))`.
    pub(crate) fn synthetic(n: usize, seed: u64) -> Vec<PredictorSample> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let lat = 50.0 + 2_000.0 * next();
                let util = 0.97 * next();
                PredictorSample {
                    from: "a".into(),
                    to: "b".into(),
                    latency_ns: lat,
                    bandwidth_gbps: 10.0 + 390.0 * next(),
                    utilisation: util,
                    loss: 0.0,
                    hour: 24.0 * next(),
                    observed_latency_ns: lat * (1.0 + 2.0 * util / (1.0 - util)),
                }
            })
            .collect()
    }

    #[test]
    fn untrained_predicts_nothing() {
        assert_eq!(
            Predictor::new().predict_ns(100.0, 10.0, 0.0, 0.0, 0.0),
            None
        );
    }

    #[test]
    fn learns_the_queueing_term() {
        let mut p = Predictor::new();
        for s in synthetic(500, 7) {
            assert!(p.train(&s));
        }
        let busy = p.predict_ns(100.0, 400.0, 0.95, 0.0, 3.0).unwrap_or(0.0);
        let idle = p
            .predict_ns(100.0, 400.0, 0.0, 0.0, 3.0)
            .unwrap_or(f64::MAX);
        assert!((busy - 3_900.0).abs() < 200.0, "busy {busy}");
        assert!(idle < 300.0, "idle {idle}");
    }

    /// Ground truth `lat·k`: the model is fitted to one regime, then the regime changes.
    fn regime(n: usize, k: f64) -> Vec<PredictorSample> {
        synthetic(n, 5)
            .into_iter()
            .map(|mut s| {
                s.utilisation = 0.0;
                s.observed_latency_ns = s.latency_ns * k;
                s
            })
            .collect()
    }

    #[test]
    fn every_allowed_learning_rate_keeps_learning() {
        // Unexcited features (utilisation 0) and fast forgetting once broke P's definiteness.
        for rate in [0.0001, 0.001, 0.01, 0.05, 0.1, 0.3, 0.5] {
            let mut p = Predictor::new();
            p.set_learning_rate(rate);
            let failed = regime(2_000, 1.0).iter().filter(|s| !p.train(s)).count();
            assert_eq!(failed, 0, "rate {rate}");
            let cap = (0..FEATURE_COUNT).all(|i| p.p[i][i] > 0.0 && p.p[i][i] <= P_INIT);
            assert!(cap, "rate {rate}: {:?}", p.p);
        }
    }

    #[test]
    fn the_learning_rate_sets_how_fast_a_new_regime_wins() {
        let after = |rate: f64| {
            let mut p = Predictor::new();
            p.set_learning_rate(rate);
            regime(2_000, 1.0).iter().for_each(|s| assert!(p.train(s)));
            regime(20, 3.0).iter().for_each(|s| assert!(p.train(s)));
            p.predict_ns(1_000.0, 100.0, 0.0, 0.0, 12.0).unwrap_or(0.0)
        };
        let (slow, fast) = (after(0.0001), after(0.3));
        assert!(
            fast > 2_500.0,
            "a fast learner follows the new regime: {fast}"
        );
        assert!(
            slow < 1_500.0,
            "a slow learner still predicts the old one: {slow}"
        );
    }

    #[test]
    fn training_samples_sets_when_predictions_start() {
        let mut p = Predictor::new();
        p.set_min_samples(3);
        let s = synthetic(3, 9);
        p.train(&s[0]);
        p.train(&s[1]);
        assert_eq!(p.predict_ns(100.0, 10.0, 0.0, 0.0, 0.0), None);
        p.train(&s[2]);
        assert!(p.predict_ns(100.0, 10.0, 0.0, 0.0, 0.0).is_some());
    }

    #[test]
    fn jsonl_history() {
        let lines: Vec<String> = synthetic(40, 3)
            .iter()
            .map(|s| serde_json::to_string(s).unwrap_or_default())
            .collect();
        let text = format!("# history\n\n{}\n", lines.join("\n"));
        let mut p = Predictor::new();
        assert_eq!(p.train_from_jsonl(&text), Ok(40));
        assert!(p.is_trained());
        let bad = "{\"from\":\"a\",\"to\":\"b\"}\n";
        let err = p.train_from_jsonl(bad).err().unwrap_or_default();
        assert!(err.starts_with("line 1:"), "{err}");
        let neg = lines[0].replace("\"loss\":0.0", "\"loss\":-1.0");
        assert!(p.train_from_jsonl(&neg).is_err());
    }
}
