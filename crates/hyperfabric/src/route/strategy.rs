//! The routing strategies and the link weight each one minimises.

use super::predictor::Predictor;
use super::topology::LinkInfo;
use super::UTILISATION_MAX;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a route is chosen (see the [module docs](super) for each one's definition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    ShortestPath,
    #[default]
    LowestLatency,
    HighestBandwidth,
    LoadBalanced,
    Predictive,
    QuantumOptimized,
}

/// Weight of one extra hop for `shortest_path`, far above any latency sum (ties by latency).
pub(crate) const HOP_WEIGHT: f64 = 1e12;

impl Strategy {
    pub const ALL: [Strategy; 6] = [
        Strategy::ShortestPath,
        Strategy::LowestLatency,
        Strategy::HighestBandwidth,
        Strategy::LoadBalanced,
        Strategy::Predictive,
        Strategy::QuantumOptimized,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::ShortestPath => "shortest_path",
            Strategy::LowestLatency => "lowest_latency",
            Strategy::HighestBandwidth => "highest_bandwidth",
            Strategy::LoadBalanced => "load_balanced",
            Strategy::Predictive => "predictive",
            Strategy::QuantumOptimized => "quantum_optimized",
        }
    }

    pub(crate) const fn index(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.replace('-', "_");
        Strategy::ALL
            .into_iter()
            .find(|x| x.as_str() == norm)
            .ok_or_else(|| {
                let names: Vec<&str> = Strategy::ALL.iter().map(|x| x.as_str()).collect();
                format!(
                    "unknown strategy \"{s}\" (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// What the additive strategies need besides the link itself.
pub(crate) struct WeightCtx<'a> {
    pub predictor: &'a Predictor,
    pub hour: f64,
    /// Σ 1/coherence_ns over the QPU endpoints (quantum_optimized).
    pub decoherence_per_ns: f64,
}

/// `1 / (1 - x)` with `x` clamped to [0, UTILISATION_MAX].
pub(crate) fn inflation(x: f64) -> f64 {
    1.0 / (1.0 - x.clamp(0.0, UTILISATION_MAX))
}

/// The non-negative weight an additive strategy gives a link (not used by
/// `highest_bandwidth`, which is a widest-path search).
#[inline]
pub(crate) fn link_weight(s: Strategy, l: &LinkInfo, ctx: &WeightCtx<'_>) -> f64 {
    match s {
        Strategy::ShortestPath => HOP_WEIGHT + l.effective_latency_ns(),
        Strategy::LowestLatency | Strategy::HighestBandwidth => l.effective_latency_ns(),
        Strategy::LoadBalanced => {
            let loss = l.sample.map_or(0.0, |x| x.loss);
            l.effective_latency_ns() * inflation(l.utilisation()) * inflation(loss)
        }
        Strategy::Predictive => ctx
            .predictor
            .predict_link_ns(l, ctx.hour)
            .unwrap_or_else(|| l.effective_latency_ns()),
        Strategy::QuantumOptimized => {
            -l.fidelity.ln() + l.latency_ns as f64 * ctx.decoherence_per_ns + 1e-12
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
            let json = serde_json::to_string(&s).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!("lowest-latency".parse(), Ok(Strategy::LowestLatency));
        assert!("fastest".parse::<Strategy>().is_err());
    }

    #[test]
    fn inflation_is_bounded() {
        assert_eq!(inflation(0.0), 1.0);
        assert!((inflation(0.5) - 2.0).abs() < 1e-12);
        assert!(inflation(1.0) <= 100.0 + 1e-9);
        assert_eq!(inflation(-3.0), 1.0);
    }
}
