//! `Node`: one running [`Fabric`] node inside this Python process.
//!
//! Every method that can block releases the GIL (`py.detach`) and takes the node's lock only
//! inside, so a thread waiting for the lock never holds the GIL.

use crate::buffers::ReadBuf;
use crate::config::to_json;
use crate::errors::{py_result, to_py};
use crate::handle::{self, Handle, PingArgs};
use crate::loan::Loan;
use crate::message::Message;
use crate::options::{parse, seconds, SendOpts};
use crate::report::send_report;
use hyperfabric::config::FabricConfig;
use hyperfabric::transport::TransportChoice;
use hyperfabric::{
    Compression, DataType, DataTypePolicy, Error, Fabric, PendingSend, Priority, SendReport,
    Transform,
};
use parking_lot::RwLock;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most transfers one `send_many` keeps in flight.
const INFLIGHT_MAX: usize = 256;
/// Most messages one `recv_many` returns.
const RECV_BATCH_MAX: usize = 65_536;

#[pyclass(frozen, module = "hyperfabric._native")]
pub struct Node {
    /// `None` after `shutdown`. Written only by `register_node`/`unregister_node`/`shutdown`.
    fabric: RwLock<Option<Fabric>>,
    id: String,
    addr: SocketAddr,
}

impl Handle for Node {
    fn id(&self) -> &str {
        &self.id
    }

    fn try_with<R>(
        &self,
        f: impl FnOnce(&Fabric) -> hyperfabric::Result<R>,
    ) -> hyperfabric::Result<R> {
        let guard = self.fabric.read();
        f(guard.as_ref().ok_or(Error::Shutdown)?)
    }
}

impl Node {
    fn with_mut<R>(&self, f: impl FnOnce(&mut Fabric) -> hyperfabric::Result<R>) -> PyResult<R> {
        let mut guard = self.fabric.write();
        let fabric = guard.as_mut().ok_or_else(|| to_py(Error::Shutdown))?;
        py_result(f(fabric))
    }
}

fn transport(name: &str) -> PyResult<TransportChoice> {
    match name {
        "auto" => Ok(TransportChoice::Auto),
        "tcp" => Ok(TransportChoice::Tcp),
        "shm" => Ok(TransportChoice::Shm),
        other => Err(PyValueError::new_err(format!(
            "transport `{other}`: expected auto, tcp or shm"
        ))),
    }
}

#[pymethods]
impl Node {
    /// Starts node `node` of the fabric file text `text` (`origin` names it in errors).
    #[staticmethod]
    #[pyo3(signature = (text, origin, node, listen=None, transport="auto", store_dir=None))]
    fn start(
        py: Python<'_>,
        text: &str,
        origin: &str,
        node: &str,
        listen: Option<&str>,
        transport: &str,
        store_dir: Option<String>,
    ) -> PyResult<Node> {
        let cfg = py_result(FabricConfig::from_toml_str(text, origin))?;
        let mut b = Fabric::from_config(cfg)
            .node(node)
            .transport(self::transport(transport)?);
        if let Some(l) = listen {
            let addr: SocketAddr = parse("listen", l)?;
            b = b.listen(addr);
        }
        if let Some(d) = store_dir {
            b = b.store_to(d);
        }
        let fabric = py.detach(|| b.start()).map_err(to_py)?;
        Ok(Node {
            id: fabric.node_id().to_owned(),
            addr: fabric.local_addr(),
            fabric: RwLock::new(Some(fabric)),
        })
    }

    #[getter]
    fn node_id(&self) -> &str {
        &self.id
    }

    /// The address this node listens on (`host:port`).
    #[getter]
    fn local_addr(&self) -> String {
        self.addr.to_string()
    }

    /// Sends `data` (any C-contiguous buffer, read in place) and returns the report once
    /// `dst` acknowledged every byte.
    fn send<'py>(
        &self,
        py: Python<'py>,
        dst: &str,
        data: &Bound<'py, PyAny>,
        opts: &SendOpts,
    ) -> PyResult<Bound<'py, PyDict>> {
        handle::send(self, py, dst, data, opts)
    }

    /// Sends a float32 buffer through the data type's transform (top-k, fp16, bf16, int8,
    /// cache): the destination receives the transformed form (`Message.transform`).
    fn send_f32<'py>(
        &self,
        py: Python<'py>,
        dst: &str,
        data: &Bound<'py, PyAny>,
        opts: &SendOpts,
    ) -> PyResult<Bound<'py, PyDict>> {
        let buf = ReadBuf::get(data)?;
        let bytes = buf.bytes();
        if bytes.len() % 4 != 0 {
            return Err(PyValueError::new_err(format!(
                "a float32 send needs a multiple of 4 bytes (got {})",
                bytes.len()
            )));
        }
        let o = opts.opts.clone();
        let report = py.detach(|| {
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            self.with(|f| f.send_f32(dst, &values, o))
        })?;
        send_report(py, &report)
    }

    /// Sends every buffer of `items` to `dst`, keeping up to `inflight` transfers in flight;
    /// returns `{count, bytes, seconds, latency_ns_max}` once all were acknowledged.
    #[pyo3(signature = (dst, items, opts, inflight=8))]
    fn send_many<'py>(
        &self,
        py: Python<'py>,
        dst: &str,
        items: &Bound<'py, PyAny>,
        opts: &SendOpts,
        inflight: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        if inflight == 0 || inflight > INFLIGHT_MAX {
            return Err(PyValueError::new_err(format!(
                "inflight must be in 1..={INFLIGHT_MAX} (got {inflight})"
            )));
        }
        let mut bufs = Vec::new();
        for item in items.try_iter()? {
            bufs.push(ReadBuf::get(&item?)?);
        }
        let slices: Vec<&[u8]> = bufs.iter().map(ReadBuf::bytes).collect();
        let start = Instant::now();
        let (count, bytes, worst) =
            py.detach(|| self.with(|f| stream(f, dst, &slices, &opts.opts, inflight)))?;
        let d = PyDict::new(py);
        d.set_item("count", count)?;
        d.set_item("bytes", bytes)?;
        d.set_item("seconds", start.elapsed().as_secs_f64())?;
        d.set_item("latency_ns_max", worst.as_nanos() as u64)?;
        Ok(d)
    }

    /// The next received message; raises `Timeout` after `timeout_s` (None: wait forever).
    #[pyo3(signature = (timeout_s=None))]
    fn recv(&self, py: Python<'_>, timeout_s: Option<f64>) -> PyResult<Message> {
        let t = timeout_s.map(|s| seconds("timeout_s", s)).transpose()?;
        Ok(Message::new(handle::next_message(self, py, t)?))
    }

    /// Up to `max` messages: waits up to `timeout_s` for the first, then takes those already
    /// here. Raises `Timeout` when none came.
    #[pyo3(signature = (max, timeout_s=1.0))]
    fn recv_many<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout_s: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        if max == 0 || max > RECV_BATCH_MAX {
            return Err(PyValueError::new_err(format!(
                "max must be in 1..={RECV_BATCH_MAX} (got {max})"
            )));
        }
        let t = seconds("timeout_s", timeout_s)?;
        let first = handle::next_message(self, py, Some(t))?;
        let msgs = py.detach(|| {
            self.with(|f| {
                let mut out = vec![first];
                while out.len() < max {
                    match f.recv_timeout(Duration::ZERO) {
                        Ok(m) => out.push(m),
                        Err(Error::Timeout { .. }) => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(out)
            })
        })?;
        let list = PyList::empty(py);
        for m in msgs {
            list.append(Message::new(m))?;
        }
        Ok(list)
    }

    /// Pings `dst`; with `samples=True` the dict also holds every one-way sample (ns).
    #[pyo3(signature = (dst, size=64, count=10, warmup=0, timeout_s=1.0, priority=None, samples=false))]
    #[allow(clippy::too_many_arguments)]
    fn ping<'py>(
        &self,
        py: Python<'py>,
        dst: &str,
        size: usize,
        count: u64,
        warmup: u64,
        timeout_s: f64,
        priority: Option<&str>,
        samples: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let a = PingArgs {
            size,
            count,
            warmup,
            timeout_s,
            priority,
        };
        handle::ping(self, py, dst, a, samples)
    }

    /// One ping of `size` bytes; returns its round trip in nanoseconds (the lean call a
    /// per-message latency loop makes: no statistics, no dict).
    #[pyo3(signature = (dst, size=64, timeout_s=1.0))]
    fn ping1(&self, py: Python<'_>, dst: &str, size: usize, timeout_s: f64) -> PyResult<u64> {
        handle::ping1(self, py, dst, size, timeout_s)
    }

    /// A writable buffer for `dst` (a shared-memory pool slot where the link has one).
    fn loan(&self, py: Python<'_>, dst: &str, len: usize) -> PyResult<Loan> {
        handle::loan(self, py, dst, len)
    }

    /// Sends a loan (by descriptor over its own shared-memory link).
    fn send_loaned<'py>(
        &self,
        py: Python<'py>,
        loan: &Loan,
        opts: &SendOpts,
    ) -> PyResult<Bound<'py, PyDict>> {
        handle::send_loaned(self, py, loan, opts)
    }

    /// The guide's `configure_data_types`, one type: later sends of it default to these.
    #[pyo3(signature = (data_type, priority=None, compression=None, transform=None, topk_fraction=None))]
    fn configure_data_type(
        &self,
        data_type: &str,
        priority: Option<&str>,
        compression: Option<&str>,
        transform: Option<&str>,
        topk_fraction: Option<f64>,
    ) -> PyResult<()> {
        let dt: DataType = parse("data_type", data_type)?;
        let mut p = self.with(|f| Ok(f.policy(dt)))?;
        if let Some(v) = priority {
            p.priority = parse::<Priority>("priority", v)?;
        }
        if let Some(v) = compression {
            p.compression = parse::<Compression>("compression", v)?;
        }
        if let Some(v) = transform {
            p.transform = parse::<Transform>("transform", v)?;
        }
        if let Some(v) = topk_fraction {
            p.topk_fraction = v;
        }
        self.with(|f| f.configure_data_type(dt, p))
    }

    /// The policy sends of `data_type` follow, as a dict.
    fn policy<'py>(&self, py: Python<'py>, data_type: &str) -> PyResult<Bound<'py, PyDict>> {
        let dt: DataType = parse("data_type", data_type)?;
        let p: DataTypePolicy = self.with(|f| Ok(f.policy(dt)))?;
        let d = PyDict::new(py);
        d.set_item("priority", p.priority.as_str())?;
        d.set_item("compression", p.compression.to_string())?;
        d.set_item("transform", p.transform.to_string())?;
        d.set_item("topk_fraction", p.topk_fraction)?;
        Ok(d)
    }

    /// Stripes later sends to `dst` over `paths` (first hop, weight).
    #[pyo3(signature = (dst, paths, scheduler="weighted_round_robin", health_check_interval_s=1.0))]
    fn configure_multipath(
        &self,
        dst: &str,
        paths: Vec<(String, f64)>,
        scheduler: &str,
        health_check_interval_s: f64,
    ) -> PyResult<()> {
        handle::configure_multipath(self, dst, paths, scheduler, health_check_interval_s)
    }

    /// Adds every node and link of the fabric file text `text` to this running node.
    fn register_nodes(&self, py: Python<'_>, text: &str) -> PyResult<()> {
        let cfg = py_result(FabricConfig::from_toml_str(text, "<register_node>"))?;
        py.detach(|| {
            self.with_mut(|f| {
                for n in cfg.nodes {
                    if n.id() != f.node_id() {
                        f.register_node(n)?;
                    }
                }
                for l in cfg.links {
                    f.register_link(l)?;
                }
                Ok(())
            })
        })
    }

    /// This node's counters (JSON).
    fn stats_json(&self) -> PyResult<String> {
        to_json(&self.with(|f| Ok(f.stats()))?)
    }

    /// This node's metrics, or node `id`'s asked over the fabric (JSON).
    #[pyo3(signature = (id=None, timeout_s=1.0))]
    fn metrics_json(&self, py: Python<'_>, id: Option<&str>, timeout_s: f64) -> PyResult<String> {
        let t = seconds("timeout_s", timeout_s)?;
        let m = py.detach(|| {
            self.with(|f| match id {
                None => Ok(f.metrics()),
                Some(id) => f.node_metrics(id, t),
            })
        })?;
        to_json(&m)
    }

    /// The configuration this node runs with, as a fabric file (TOML).
    fn config_toml(&self) -> PyResult<String> {
        self.with(|f| Ok(f.config().to_toml_string()))
    }

    /// The tuning this node runs with (JSON).
    fn tuning_json(&self) -> PyResult<String> {
        to_json(&self.with(|f| Ok(f.config().tuning.clone()))?)
    }

    /// Says goodbye to peers and stops the node's threads. Later calls raise `Shutdown`.
    fn shutdown(&self, py: Python<'_>) {
        let fabric = py.detach(|| self.fabric.write().take());
        if let Some(f) = fabric {
            py.detach(|| f.shutdown());
        }
    }
}

/// Streams `items` to `dst` with up to `inflight` transfers in flight; returns the count,
/// the bytes and the longest transfer.
fn stream(
    f: &Fabric,
    dst: &str,
    items: &[&[u8]],
    opts: &hyperfabric::SendOptions,
    inflight: usize,
) -> hyperfabric::Result<(u64, u64, Duration)> {
    let mut ep = f.endpoint(dst, opts.clone())?;
    let mut window: VecDeque<PendingSend<'_>> = VecDeque::with_capacity(inflight);
    let (mut count, mut bytes, mut worst) = (0u64, 0u64, Duration::ZERO);
    let mut done = |r: SendReport| {
        count += 1;
        bytes += r.bytes;
        worst = worst.max(r.latency);
    };
    for item in items {
        if window.len() == inflight {
            if let Some(p) = window.pop_front() {
                done(p.wait()?);
            }
        }
        window.push_back(ep.start_send(item)?);
    }
    while let Some(p) = window.pop_front() {
        done(p.wait()?);
    }
    Ok((count, bytes, worst))
}
