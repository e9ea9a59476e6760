//! `[routing]`: the guide's routing settings, read by every node's router at start.
//!
//! ```toml
//! [routing]
//! enable_ml_routing = true          # shorthand for default_strategy = "predictive"
//! default_strategy = "predictive"   # the strategy of sends (and relays) that name none
//! learning_rate = 0.001             # the predictor forgets old samples at this rate
//! training_samples = 18             # samples the predictor needs before it predicts
//! model_update_interval_s = 0.1     # at most one live sample per link per interval
//! history = "history.jsonl"         # JSON lines of past transfers, trained on at start
//! fidelity_threshold = 0.9          # quantum_optimized routes below this are refused
//! ```
//!
//! `coherence_weight` and `error_rate_tolerance` (the guide's `configure_quantum_routing`)
//! are refused at load with the reason: the router has no term they could set.

use crate::types::Strategy;
use serde::{Deserialize, Serialize};

/// Bounds a file may ask for (a limit on everything, also on what the predictor waits for).
pub const TRAINING_SAMPLES_MAX: u64 = 1_000_000;
pub const LEARNING_RATE_MAX: f64 = 0.5;
pub const MODEL_UPDATE_INTERVAL_S_MAX: f64 = 86_400.0;
/// Largest history file a node reads at start.
pub const HISTORY_BYTES_MAX: u64 = 64 << 20;

/// Fields of the guide that this version refuses, with the reason the error gives.
pub const REFUSED: [(&str, &str); 2] = [
    (
        "coherence_weight",
        "not supported: quantum_optimized scores a path by Π link fidelity × exp(-latency / coherence) with no separate weight; set the nodes' coherence figures or routing.fidelity_threshold",
    ),
    (
        "error_rate_tolerance",
        "not supported: the tolerated error is 1 - routing.fidelity_threshold; set that instead",
    ),
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouting {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ml_routing: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_strategy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_samples: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_update_interval_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fidelity_threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coherence_weight: Option<toml::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate_tolerance: Option<toml::Value>,
}

/// The checked `[routing]` table; `None`: the router's own default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingConfig {
    /// Strategy of sends that name none and of the relays' next hop.
    pub default_strategy: Option<Strategy>,
    /// The predictor's forgetting factor is `1 - learning_rate`.
    pub learning_rate: Option<f64>,
    /// Samples the predictor needs before its predictions are used.
    pub training_samples: Option<u64>,
    /// At most one live link sample per this many seconds.
    pub model_update_interval_s: Option<f64>,
    /// A JSON-lines history (as written in the file; relative to the file's directory).
    pub history: Option<String>,
    /// Quantum routes below this end-to-end fidelity are refused.
    pub fidelity_threshold: Option<f64>,
}

type Problem = (String, String);

fn at(f: &str) -> String {
    format!("routing.{f}")
}

/// The checked form of the file's `[routing]` (absent: every default).
pub(crate) fn build(raw: Option<&RawRouting>) -> Result<RoutingConfig, Problem> {
    let Some(r) = raw else {
        return Ok(RoutingConfig::default());
    };
    let refused = [&r.coherence_weight, &r.error_rate_tolerance];
    for ((field, why), v) in REFUSED.iter().zip(refused) {
        if v.is_some() {
            return Err((at(field), (*why).to_string()));
        }
    }
    let in_range = |f: &str, v: Option<f64>, lo: f64, hi: f64, open_lo: bool| match v {
        Some(x) if !(x.is_finite() && x <= hi && (x > lo || (!open_lo && x == lo))) => {
            let lo_op = if open_lo { ">" } else { ">=" };
            Err((
                at(f),
                format!("must be a number {lo_op} {lo} and <= {hi} (got {x})"),
            ))
        }
        _ => Ok(v),
    };
    let training_samples = match r.training_samples {
        Some(n) if !(1..=TRAINING_SAMPLES_MAX).contains(&n) => {
            let why = format!("must be in 1..={TRAINING_SAMPLES_MAX} (got {n})");
            return Err((at("training_samples"), why));
        }
        n => n,
    };
    if r.history.as_deref().is_some_and(|h| h.trim().is_empty()) {
        return Err((at("history"), "the path must not be empty".into()));
    }
    Ok(RoutingConfig {
        default_strategy: strategy(r)?,
        learning_rate: in_range(
            "learning_rate",
            r.learning_rate,
            0.0,
            LEARNING_RATE_MAX,
            true,
        )?,
        training_samples,
        model_update_interval_s: in_range(
            "model_update_interval_s",
            r.model_update_interval_s,
            0.0,
            MODEL_UPDATE_INTERVAL_S_MAX,
            false,
        )?,
        history: r.history.clone(),
        fidelity_threshold: in_range("fidelity_threshold", r.fidelity_threshold, 0.0, 1.0, false)?,
    })
}

/// `enable_ml_routing = true` means `predictive`; a contradiction with `default_strategy`
/// is refused rather than one of them silently winning.
fn strategy(r: &RawRouting) -> Result<Option<Strategy>, Problem> {
    let named = match &r.default_strategy {
        Some(s) => Some(
            s.parse::<Strategy>()
                .map_err(|e| (at("default_strategy"), e))?,
        ),
        None => None,
    };
    match (r.enable_ml_routing, named) {
        (Some(true), Some(s)) if s != Strategy::Predictive => Err((
            at("enable_ml_routing"),
            format!(
                "true means default_strategy = \"predictive\", but default_strategy is \"{s}\""
            ),
        )),
        (Some(false), Some(Strategy::Predictive)) => Err((
            at("enable_ml_routing"),
            "false contradicts default_strategy = \"predictive\"".into(),
        )),
        (Some(true), None) => Ok(Some(Strategy::Predictive)),
        (_, named) => Ok(named),
    }
}

impl RoutingConfig {
    /// The file form (only what is set); `None` when nothing is.
    pub(crate) fn to_raw(&self) -> Option<RawRouting> {
        let raw = RawRouting {
            enable_ml_routing: None,
            default_strategy: self.default_strategy.map(|s| s.as_str().to_string()),
            learning_rate: self.learning_rate,
            training_samples: self.training_samples,
            model_update_interval_s: self.model_update_interval_s,
            history: self.history.clone(),
            fidelity_threshold: self.fidelity_threshold,
            coherence_weight: None,
            error_rate_tolerance: None,
        };
        (raw != RawRouting::default()).then_some(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RoutingConfig, Problem> {
        let raw: RawRouting = toml::from_str(text).map_err(|e| ("toml".into(), e.to_string()))?;
        build(Some(&raw))
    }

    #[test]
    fn every_field_is_read_and_checked() {
        let c = parse(
            "default_strategy = \"highest-bandwidth\"\nlearning_rate = 0.1\ntraining_samples = 5\nmodel_update_interval_s = 0\nhistory = \"h.jsonl\"\nfidelity_threshold = 0.5\n",
        )
        .unwrap();
        assert_eq!(c.default_strategy, Some(Strategy::HighestBandwidth));
        assert_eq!(c.learning_rate, Some(0.1));
        assert_eq!(c.training_samples, Some(5));
        assert_eq!(c.model_update_interval_s, Some(0.0));
        assert_eq!(c.history.as_deref(), Some("h.jsonl"));
        assert_eq!(c.fidelity_threshold, Some(0.5));
        assert_eq!(
            parse("enable_ml_routing = true").unwrap().default_strategy,
            Some(Strategy::Predictive)
        );
        assert_eq!(
            parse("enable_ml_routing = false").unwrap().default_strategy,
            None
        );
    }

    #[test]
    fn bad_values_name_the_field_and_the_reason() {
        let cases = [
            ("learning_rate = 0", "routing.learning_rate"),
            ("learning_rate = 0.9", "routing.learning_rate"),
            ("training_samples = 0", "routing.training_samples"),
            (
                "model_update_interval_s = -1",
                "routing.model_update_interval_s",
            ),
            ("fidelity_threshold = 1.5", "routing.fidelity_threshold"),
            ("default_strategy = \"fastest\"", "routing.default_strategy"),
            ("history = \" \"", "routing.history"),
            (
                "enable_ml_routing = true\ndefault_strategy = \"lowest_latency\"",
                "routing.enable_ml_routing",
            ),
            (
                "enable_ml_routing = false\ndefault_strategy = \"predictive\"",
                "routing.enable_ml_routing",
            ),
            ("coherence_weight = 2.0", "routing.coherence_weight"),
            ("error_rate_tolerance = 0.1", "routing.error_rate_tolerance"),
        ];
        for (text, field) in cases {
            let (f, why) = parse(text).unwrap_err();
            assert_eq!(f, field, "{text}: {why}");
            assert!(!why.is_empty());
        }
        let (_, why) = parse("coherence_weight = 1").unwrap_err();
        assert!(why.contains("not supported"), "{why}");
    }
}
