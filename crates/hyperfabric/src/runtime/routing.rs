//! A node's router as the fabric file's `[routing]` asks: strategy, predictor knobs, the
//! fidelity threshold, and the predictor trained on `routing.history` before the node starts.

use crate::config::{routing::HISTORY_BYTES_MAX, FabricConfig, SecurityConfig};
use crate::error::{Error, Result};
use crate::route::{Router, Topology};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Default shortest time between two live latency samples taught to the predictor.
pub(crate) const LEARN_INTERVAL_MS_DEFAULT: u64 = 100;

/// The router of node `me`; a history that cannot be read or has a bad line is an error
/// naming `routing.history`.
pub(crate) fn configured_router(cfg: &FabricConfig, me: &str) -> Result<Router> {
    let mut router = Router::new(Topology::from_config(cfg));
    router.configure(&cfg.routing);
    if let Some((path, text)) = read_history(cfg, me)? {
        train_on(&mut router, cfg, me, &path, &text)?;
    }
    Ok(router)
}

/// What a node's predictor holds (`Fabric::predictor_model`, `hfabric serve --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictorModel {
    /// Samples learned (history and live ones).
    pub samples: u64,
    /// Enough samples for its predictions to be used (`routing.training_samples`).
    pub trained: bool,
    pub min_samples: u64,
    pub learning_rate: f64,
    /// One weight per feature of the latency model (docs/routing.md).
    pub weights: Vec<f64>,
}

impl PredictorModel {
    pub(crate) fn of(router: &Router) -> PredictorModel {
        let p = router.predictor();
        PredictorModel {
            samples: p.samples(),
            trained: p.is_trained(),
            min_samples: p.min_samples(),
            learning_rate: p.learning_rate(),
            weights: p.weights().to_vec(),
        }
    }
}

/// One training of a running node from its history file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryTraining {
    pub history: PathBuf,
    /// Samples read from the file this time (added to what the predictor had learned).
    pub lines: usize,
    pub predictor: PredictorModel,
}

/// The text of `routing.history` (None without one); errors name the field.
pub(crate) fn read_history(cfg: &FabricConfig, me: &str) -> Result<Option<(PathBuf, String)>> {
    let Some(written) = &cfg.routing.history else {
        return Ok(None);
    };
    let path = SecurityConfig::resolve(&cfg.source, written, me);
    let why = |reason: String| Error::config(cfg.source.clone(), "routing.history", reason);
    let file =
        std::fs::File::open(&path).map_err(|e| why(format!("reading {}: {e}", path.display())))?;
    let mut text = String::new();
    // One byte over the limit tells a file that is too long from one that fits.
    file.take(HISTORY_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| why(format!("reading {}: {e}", path.display())))?;
    if text.len() as u64 > HISTORY_BYTES_MAX {
        let limit = HISTORY_BYTES_MAX;
        return Err(why(format!("{} is over {limit} bytes", path.display())));
    }
    Ok(Some((path, text)))
}

/// Trains `router` on a history's text. Every line is checked before any is learned, so
/// a bad line leaves the predictor as it was.
pub(crate) fn train_on(
    router: &mut Router,
    cfg: &FabricConfig,
    me: &str,
    path: &Path,
    text: &str,
) -> Result<usize> {
    let why = |e: String| Error::config(cfg.source.clone(), "routing.history", e);
    let mut trial = router.predictor().clone();
    trial
        .train_from_jsonl(text)
        .map_err(|e| why(format!("{}: {e}", path.display())))?;
    let n = router
        .train_from_jsonl(text)
        .map_err(|e| why(format!("{}: {e}", path.display())))?;
    tracing::info!(
        node = me,
        samples = n,
        trained = router.predictor().is_trained(),
        "predictor trained from {}",
        path.display()
    );
    Ok(n)
}

/// `routing.model_update_interval_s` in ms (the default without it).
pub(crate) fn learn_interval_ms(cfg: &FabricConfig) -> u64 {
    cfg.routing
        .model_update_interval_s
        .map_or(LEARN_INTERVAL_MS_DEFAULT, |s| (s * 1000.0) as u64)
}
