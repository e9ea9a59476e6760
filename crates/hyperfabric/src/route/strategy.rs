//! The routing strategies and the link weight each one minimises.

use super::predictor::Predictor;
use super::topology::LinkInfo;
use super::UTILISATION_MAX;
pub use crate::types::Strategy;

/// Weight of one extra hop for `shortest_path`, far above any latency sum (ties by latency).
pub(crate) const HOP_WEIGHT: f64 = 1e12;

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
