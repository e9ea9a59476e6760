//! Parsing the options Python passes: names of enums (refused with the accepted names), and
//! the send options built once and reused for a stream of sends.

use hyperfabric::{Compression, DataType, Priority, SendOptions};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBool;
use std::str::FromStr;
use std::time::Duration;

/// Parses `value` with `FromStr`, as a `ValueError` naming the option.
pub fn parse<T: FromStr>(what: &str, value: &str) -> PyResult<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse::<T>()
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// A duration in seconds: finite and not negative.
pub fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a finite number of seconds >= 0 (got {s})"
        ))
    })
}

/// `compression=`: a bool (True = LZ4) or a name (`off`, `auto`, `lz4`, `zstd`, `snappy`).
fn compression(obj: &Bound<'_, PyAny>) -> PyResult<Compression> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Compression::from(b.is_true()));
    }
    let name: String = obj.extract().map_err(|_| {
        PyTypeError::new_err("compression must be a bool or a name (off, auto, lz4, zstd, snappy)")
    })?;
    parse("compression", &name)
}

/// The options of sends, fixed once (`hyperfabric._native.SendOpts(...)`) and reused.
#[pyclass(frozen, module = "hyperfabric._native")]
pub struct SendOpts {
    pub opts: SendOptions,
}

#[pymethods]
impl SendOpts {
    #[new]
    #[pyo3(signature = (data_type="custom", priority=None, compression=None,
        latency_constraint_ns=None, bandwidth_requirement_gbps=None, timeout_s=None,
        name=None, strategy=None, verify_payload=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        data_type: &str,
        priority: Option<&str>,
        compression: Option<&Bound<'_, PyAny>>,
        latency_constraint_ns: Option<u64>,
        bandwidth_requirement_gbps: Option<f64>,
        timeout_s: Option<f64>,
        name: Option<String>,
        strategy: Option<&str>,
        verify_payload: bool,
    ) -> PyResult<SendOpts> {
        let mut o = SendOptions::new()
            .data_type(parse::<DataType>("data_type", data_type)?)
            .verify_payload(verify_payload);
        if let Some(p) = priority {
            o = o.priority(parse::<Priority>("priority", p)?);
        }
        if let Some(c) = compression {
            o = o.compression(self::compression(c)?);
        }
        if let Some(ns) = latency_constraint_ns {
            o = o.latency_constraint_ns(ns);
        }
        if let Some(g) = bandwidth_requirement_gbps {
            if !(g.is_finite() && g > 0.0) {
                return Err(PyValueError::new_err(format!(
                    "bandwidth_requirement_gbps must be > 0 (got {g})"
                )));
            }
            o = o.bandwidth_requirement_gbps(g);
        }
        if let Some(t) = timeout_s {
            o = o.timeout(seconds("timeout_s", t)?);
        }
        if let Some(n) = name {
            o = o.name(n);
        }
        if let Some(s) = strategy {
            o = o.strategy(parse("strategy", s)?);
        }
        Ok(SendOpts { opts: o })
    }

    fn __repr__(&self) -> String {
        format!("SendOpts({:?})", self.opts)
    }
}
