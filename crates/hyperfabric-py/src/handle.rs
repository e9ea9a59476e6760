//! What `Node` and `Member` do the same way on the [`Fabric`] they hold: the receive loop
//! (in slices, so Ctrl-C and `shutdown` are never kept waiting), sends, pings, loans and
//! multipath. Each class says how to reach its fabric ([`Handle::with`]); the bodies live
//! here once, so the two classes keep the same semantics.

use crate::buffers::ReadBuf;
use crate::errors::{py_result, to_py};
use crate::loan::Loan;
use crate::options::{parse, seconds, SendOpts};
use crate::report::{ping_stats, send_report};
use hyperfabric::{Error, Fabric, MultipathConfig, PathScheduler, PingOptions, Priority};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::time::{Duration, Instant};

/// Longest a receive waits with the fabric held and without checking for signals.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

/// A Python class over one running [`Fabric`].
pub trait Handle: Sync {
    /// The node's id (for errors).
    fn id(&self) -> &str;
    /// Runs `f` on the fabric (called with the GIL released); `Shutdown` once it stopped.
    fn try_with<R>(
        &self,
        f: impl FnOnce(&Fabric) -> hyperfabric::Result<R>,
    ) -> hyperfabric::Result<R>;

    /// [`Handle::try_with`], its error as Python's.
    fn with<R>(&self, f: impl FnOnce(&Fabric) -> hyperfabric::Result<R>) -> PyResult<R> {
        py_result(self.try_with(f))
    }
}

/// The next message, waited for in slices of [`WAIT_SLICE`]: between slices the fabric is
/// let go (a `shutdown` never waits behind a receiver) and Python signals are checked.
pub fn next_message(
    h: &impl Handle,
    py: Python<'_>,
    timeout: Option<Duration>,
) -> PyResult<hyperfabric::Message> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let slice = deadline.map_or(WAIT_SLICE, |d| {
            d.saturating_duration_since(Instant::now()).min(WAIT_SLICE)
        });
        match py.detach(|| h.try_with(|f| f.recv_timeout(slice))) {
            Ok(m) => return Ok(m),
            Err(Error::Timeout { .. }) => match (deadline, timeout) {
                (Some(d), Some(t)) if Instant::now() >= d => {
                    return Err(to_py(Error::Timeout {
                        what: format!("a message for `{}`", h.id()),
                        after: t,
                    }))
                }
                _ => py.check_signals()?,
            },
            Err(e) => return Err(to_py(e)),
        }
    }
}

/// Sends `data` (read in place) and returns the report once `dst` acknowledged every byte.
pub fn send<'py>(
    h: &impl Handle,
    py: Python<'py>,
    dst: &str,
    data: &Bound<'py, PyAny>,
    opts: &SendOpts,
) -> PyResult<Bound<'py, PyDict>> {
    let buf = ReadBuf::get(data)?;
    let (bytes, o) = (buf.bytes(), opts.opts.clone());
    let report = py.detach(|| h.with(|f| f.send(dst, bytes, o)))?;
    send_report(py, &report)
}

/// The ping options of the Python keywords.
pub struct PingArgs<'a> {
    pub size: usize,
    pub count: u64,
    pub warmup: u64,
    pub timeout_s: f64,
    pub priority: Option<&'a str>,
}

/// Pings `dst`; with `samples` the dict also holds every one-way sample (ns).
pub fn ping<'py>(
    h: &impl Handle,
    py: Python<'py>,
    dst: &str,
    a: PingArgs<'_>,
    samples: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut o = PingOptions::new()
        .size(a.size)
        .count(a.count)
        .warmup(a.warmup)
        .timeout(seconds("timeout_s", a.timeout_s)?);
    if let Some(p) = a.priority {
        o = o.priority(parse::<Priority>("priority", p)?);
    }
    let (stats, all) = py.detach(|| h.with(|f| f.ping_samples(dst, o)))?;
    let d = ping_stats(py, &stats)?;
    if samples {
        d.set_item("samples_ns", all)?;
    }
    Ok(d)
}

/// One ping of `size` bytes: its round trip in nanoseconds.
pub fn ping1(
    h: &impl Handle,
    py: Python<'_>,
    dst: &str,
    size: usize,
    timeout_s: f64,
) -> PyResult<u64> {
    let o = PingOptions::new()
        .size(size)
        .count(1)
        .timeout(seconds("timeout_s", timeout_s)?);
    let stats = py.detach(|| h.with(|f| f.ping(dst, o)))?;
    if stats.received == 0 {
        return Err(to_py(Error::Timeout {
            what: format!("a ping to `{dst}`"),
            after: o.timeout,
        }));
    }
    Ok(stats.rtt_median_ns)
}

/// A writable buffer for `dst` (a shared-memory pool slot where the link has one).
pub fn loan(h: &impl Handle, py: Python<'_>, dst: &str, len: usize) -> PyResult<Loan> {
    let buf = py.detach(|| h.with(|f| f.loan(dst, len)))?;
    Ok(Loan::new(buf))
}

/// Sends a loan (by descriptor over its own shared-memory link).
pub fn send_loaned<'py>(
    h: &impl Handle,
    py: Python<'py>,
    loan: &Loan,
    opts: &SendOpts,
) -> PyResult<Bound<'py, PyDict>> {
    let buf = loan.take()?;
    let o = opts.opts.clone();
    let report = py.detach(|| h.with(|f| f.send_loaned(buf, o)))?;
    send_report(py, &report)
}

fn scheduler(name: &str) -> PyResult<PathScheduler> {
    match name {
        "weighted_round_robin" | "weighted" | "round_robin" => {
            Ok(PathScheduler::WeightedRoundRobin)
        }
        "adaptive" => Ok(PathScheduler::Adaptive),
        other => Err(PyValueError::new_err(format!(
            "load_balancing_algorithm `{other}`: expected weighted_round_robin or adaptive"
        ))),
    }
}

/// Stripes later sends to `dst` over `paths` (first hop, weight).
pub fn configure_multipath(
    h: &impl Handle,
    dst: &str,
    paths: Vec<(String, f64)>,
    scheduler_name: &str,
    health_check_interval_s: f64,
) -> PyResult<()> {
    let m = MultipathConfig::new(paths)
        .scheduler(scheduler(scheduler_name)?)
        .health_check_interval(seconds("health_check_interval", health_check_interval_s)?);
    h.with(|f| f.configure_multipath(dst, m))
}
