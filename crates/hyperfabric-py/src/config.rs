//! Fabric files from Python: validation (the effective configuration back as TOML), routes
//! over a file's topology, and a profile's tuning.

use crate::errors::py_result;
use crate::options::parse;
use hyperfabric::config::{FabricConfig, ProfileName, Tuning};
use hyperfabric::{Router, Strategy, Topology};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::time::Instant;

/// Parses and validates a fabric file's text; returns the effective configuration as TOML
/// (profile defaults applied, overrides kept). Raises `ConfigError` naming file and field.
#[pyfunction]
pub fn validate_config(text: &str, origin: &str) -> PyResult<String> {
    Ok(py_result(FabricConfig::from_toml_str(text, origin))?.to_toml_string())
}

/// Every knob of `profile`'s tuning as JSON (`low_latency`, `high_throughput`).
#[pyfunction]
pub fn profile_tuning(profile: &str) -> PyResult<String> {
    let p: ProfileName = parse("profile", profile)?;
    to_json(&Tuning::for_profile(p))
}

/// The route from `src` to `dst` over the file's topology by `strategy` as JSON.
#[pyfunction]
#[pyo3(signature = (text, src, dst, strategy="lowest_latency"))]
pub fn find_route(text: &str, src: &str, dst: &str, strategy: &str) -> PyResult<String> {
    let cfg = py_result(FabricConfig::from_toml_str(text, "<api>"))?;
    let strategy: Strategy = parse("strategy", strategy)?;
    let mut router = Router::new(Topology::from_config(&cfg));
    let route = router
        .route(src, dst, strategy, Instant::now())
        .map_err(|e| PyValueError::new_err(format!("no route from `{src}` to `{dst}`: {e}")))?;
    to_json(&route)
}

pub fn to_json<T: serde::Serialize>(v: &T) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| PyValueError::new_err(e.to_string()))
}
