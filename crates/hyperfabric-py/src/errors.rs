//! The Rust [`Error`] as the Python exceptions of `hyperfabric.errors` (a hierarchy defined in
//! Python so that, e.g., `Timeout` is also a `TimeoutError` and `InvalidArgument` a
//! `ValueError`). Each carries the variant's fields as attributes.

use hyperfabric::collective::CollectiveError;
use hyperfabric::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Converts a library error into the matching `hyperfabric.errors` exception.
pub fn to_py(err: Error) -> PyErr {
    Python::attach(|py| match build(py, &err) {
        Ok(e) => e,
        // The Python layer is missing (the extension imported alone): keep the message.
        Err(_) => PyRuntimeError::new_err(err.to_string()),
    })
}

fn build(py: Python<'_>, err: &Error) -> PyResult<PyErr> {
    let kw = PyDict::new(py);
    let name = match err {
        Error::Config {
            file,
            field,
            reason,
        } => {
            kw.set_item("file", file)?;
            kw.set_item("field", field)?;
            kw.set_item("reason", reason)?;
            "ConfigError"
        }
        Error::NodeNotFound { node } => {
            kw.set_item("node", node)?;
            "NodeNotFound"
        }
        Error::Unreachable { node, reason } => {
            kw.set_item("node", node)?;
            kw.set_item("reason", reason)?;
            "Unreachable"
        }
        Error::Timeout { what, after } => {
            kw.set_item("what", what)?;
            kw.set_item("after_s", after.as_secs_f64())?;
            "Timeout"
        }
        Error::Rejected { reason } => {
            kw.set_item("reason", reason)?;
            "Rejected"
        }
        Error::LatencyViolation {
            route_latency_ns,
            limit_ns,
        } => {
            kw.set_item("route_latency_ns", route_latency_ns)?;
            kw.set_item("limit_ns", limit_ns)?;
            "LatencyViolation"
        }
        Error::BandwidthExceeded {
            route_bandwidth_gbps,
            required_gbps,
        } => {
            kw.set_item("route_bandwidth_gbps", route_bandwidth_gbps)?;
            kw.set_item("required_gbps", required_gbps)?;
            "BandwidthExceeded"
        }
        Error::Protocol { peer, .. } => {
            kw.set_item("peer", peer)?;
            "ProtocolError"
        }
        Error::Credentials { service, reason } => {
            kw.set_item("service", service)?;
            kw.set_item("reason", reason)?;
            "CredentialsError"
        }
        Error::InvalidArgument(_) => "InvalidArgument",
        Error::Shutdown => "Shutdown",
        Error::Io { context, .. } => {
            kw.set_item("context", context)?;
            "IoError"
        }
        _ => "HyperFabricError",
    };
    raise(py, name, &err.to_string(), &kw)
}

/// The exception `name` of `hyperfabric.errors` with message `msg` and fields `kw`.
fn raise(py: Python<'_>, name: &str, msg: &str, kw: &Bound<'_, PyDict>) -> PyResult<PyErr> {
    let module = ERRORS.get_or_try_init(py, || {
        PyModule::import(py, "hyperfabric.errors").map(Bound::unbind)
    })?;
    let class = module.bind(py).getattr(name)?;
    let value = class.call((msg,), Some(kw))?;
    Ok(PyErr::from_value(value))
}

/// Converts a collective's error into the matching `hyperfabric.errors` exception (the
/// fabric's own errors as [`to_py`] does).
pub fn collective_to_py(err: CollectiveError) -> PyErr {
    match err {
        CollectiveError::Fabric(e) => to_py(e),
        other => Python::attach(|py| match build_collective(py, &other) {
            Ok(e) => e,
            Err(_) => PyRuntimeError::new_err(other.to_string()),
        }),
    }
}

fn build_collective(py: Python<'_>, err: &CollectiveError) -> PyResult<PyErr> {
    let kw = PyDict::new(py);
    let name = match err {
        CollectiveError::Timeout {
            kind,
            seq,
            rank,
            node,
            step,
            after,
        } => {
            kw.set_item("collective", kind.to_string())?;
            kw.set_item("seq", seq)?;
            kw.set_item("rank", rank)?;
            kw.set_item("node", node)?;
            kw.set_item("step", step)?;
            kw.set_item("after_s", after.as_secs_f64())?;
            "CollectiveTimeout"
        }
        CollectiveError::Mismatch {
            kind,
            seq,
            rank,
            field,
            ours,
            theirs,
        } => {
            kw.set_item("collective", kind.to_string())?;
            kw.set_item("seq", seq)?;
            kw.set_item("rank", rank)?;
            kw.set_item("field", field)?;
            kw.set_item("ours", ours)?;
            kw.set_item("theirs", theirs)?;
            "CollectiveMismatch"
        }
        CollectiveError::Aborted { seq, rank, reason } => {
            kw.set_item("seq", seq)?;
            kw.set_item("rank", rank)?;
            kw.set_item("reason", reason)?;
            "CollectiveAborted"
        }
        CollectiveError::Malformed { node, reason } => {
            kw.set_item("node", node)?;
            kw.set_item("reason", reason)?;
            "CollectiveMalformed"
        }
        CollectiveError::Limit { what, limit } => {
            kw.set_item("what", what)?;
            kw.set_item("limit", limit)?;
            "CollectiveLimit"
        }
        CollectiveError::InvalidArgument(_) => "InvalidArgument",
        CollectiveError::Poisoned(why) => {
            kw.set_item("reason", why)?;
            "GroupFailed"
        }
        _ => "CollectiveError",
    };
    raise(py, name, &err.to_string(), &kw)
}

/// `map_err` helper.
pub fn py_result<T>(r: hyperfabric::Result<T>) -> PyResult<T> {
    r.map_err(to_py)
}
