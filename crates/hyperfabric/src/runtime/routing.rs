//! A node's router as the fabric file's `[routing]` asks: strategy, predictor knobs, the
//! fidelity threshold, and the predictor trained on `routing.history` before the node starts.

use crate::config::{routing::HISTORY_BYTES_MAX, FabricConfig, SecurityConfig};
use crate::error::{Error, Result};
use crate::route::{Router, Topology};
use std::io::Read;

/// Default shortest time between two live latency samples taught to the predictor.
pub(crate) const LEARN_INTERVAL_MS_DEFAULT: u64 = 100;

/// The router of node `me`; a history that cannot be read or has a bad line is an error
/// naming `routing.history`.
pub(crate) fn configured_router(cfg: &FabricConfig, me: &str) -> Result<Router> {
    let mut router = Router::new(Topology::from_config(cfg));
    router.configure(&cfg.routing);
    if let Some(written) = &cfg.routing.history {
        let path = SecurityConfig::resolve(&cfg.source, written, me);
        let why = |reason: String| Error::config(cfg.source.clone(), "routing.history", reason);
        let file = std::fs::File::open(&path)
            .map_err(|e| why(format!("reading {}: {e}", path.display())))?;
        let mut text = String::new();
        // One byte over the limit tells a file that is too long from one that fits.
        file.take(HISTORY_BYTES_MAX + 1)
            .read_to_string(&mut text)
            .map_err(|e| why(format!("reading {}: {e}", path.display())))?;
        if text.len() as u64 > HISTORY_BYTES_MAX {
            let limit = HISTORY_BYTES_MAX;
            return Err(why(format!("{} is over {limit} bytes", path.display())));
        }
        let n = router
            .train_from_jsonl(&text)
            .map_err(|e| why(format!("{}: {e}", path.display())))?;
        tracing::info!(
            node = me,
            samples = n,
            trained = router.predictor().is_trained(),
            "predictor trained from {}",
            path.display()
        );
    }
    Ok(router)
}

/// `routing.model_update_interval_s` in ms (the default without it).
pub(crate) fn learn_interval_ms(cfg: &FabricConfig) -> u64 {
    cfg.routing
        .model_update_interval_s
        .map_or(LEARN_INTERVAL_MS_DEFAULT, |s| (s * 1000.0) as u64)
}
