//! `Group` and `Work`: collectives for `hyperfabric.distributed`.
//!
//! A [`hyperfabric::collective::Group`] borrows its fabric, so both live on one worker thread
//! that the Python `Group` starts: it starts the node, builds the group, then runs the
//! collectives it is handed, in the order they were started, on the callers' buffers in
//! place. The worker never takes the GIL; Python waits on a [`Work`] with the GIL released.
//! A Python thread hop per collective is the price of non-blocking handles that make
//! progress while Python runs; waiters spin briefly before they park, to keep it short.

use crate::buffers::{lend, Lent, Region, Slice};
use crate::errors::{collective_to_py, to_py};
use crate::options::seconds;
use hyperfabric::collective::{
    CollectiveError, DType, Element, Group as CGroup, GroupOptions, ReduceOp,
};
use hyperfabric::config::FabricConfig;
use hyperfabric::transport::TransportChoice;
use hyperfabric::{Error, Fabric};
use parking_lot::{Condvar, Mutex};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most collectives started and not yet run, per group (a further start waits, GIL released).
const QUEUE_MAX: usize = 64;
/// Longest a wait goes without checking for Python signals (Ctrl-C).
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Polls of a finished flag before a waiter parks (yielding between polls: ranks that
/// oversubscribe the cores must not starve the worker they wait for).
const SPIN_POLLS: u32 = 200;

#[derive(Clone, Copy, Debug)]
enum Kind {
    AllReduce,
    ReduceScatter,
    AllGather,
    Broadcast,
    Reduce,
    AllToAll,
    Barrier,
}

impl Kind {
    fn parse(s: &str) -> PyResult<Kind> {
        Ok(match s {
            "all_reduce" => Kind::AllReduce,
            "reduce_scatter" => Kind::ReduceScatter,
            "all_gather" => Kind::AllGather,
            "broadcast" => Kind::Broadcast,
            "reduce" => Kind::Reduce,
            "all_to_all" => Kind::AllToAll,
            "barrier" => Kind::Barrier,
            other => {
                return Err(PyValueError::new_err(format!(
                    "collective `{other}`: expected all_reduce, reduce_scatter, all_gather, \
                     broadcast, reduce, all_to_all or barrier"
                )))
            }
        })
    }
}

/// A collective's outcome, set once by the worker.
#[derive(Default)]
struct Done {
    finished: AtomicBool,
    result: Mutex<Option<Result<(), CollectiveError>>>,
    cv: Condvar,
}

impl Done {
    fn set(&self, r: Result<(), CollectiveError>) {
        let mut slot = self.result.lock();
        if slot.is_none() {
            *slot = Some(r);
        }
        self.finished.store(true, Ordering::Release);
        self.cv.notify_all();
    }

    /// Waits until finished or `until`; true if finished.
    fn wait(&self, until: Instant) -> bool {
        for _ in 0..SPIN_POLLS {
            if self.finished.load(Ordering::Acquire) {
                return true;
            }
            std::thread::yield_now();
        }
        let mut slot = self.result.lock();
        while slot.is_none() {
            if self.cv.wait_until(&mut slot, until).timed_out() {
                return slot.is_some();
            }
        }
        true
    }
}

/// One collective for the worker.
struct Job {
    kind: Kind,
    dtype: DType,
    op: ReduceOp,
    root: usize,
    /// `None` for a barrier.
    region: Option<Region>,
    done: Arc<Done>,
}

impl Drop for Job {
    /// A job dropped unrun (the worker stopped) fails instead of leaving its waiter waiting.
    fn drop(&mut self) {
        drop(self.region.take());
        self.done.set(Err(Error::Shutdown.into()));
    }
}

fn typed<T: Element>(g: &mut CGroup<'_>, j: &Job, buf: &mut [T]) -> Result<(), CollectiveError> {
    match j.kind {
        Kind::AllReduce => g.all_reduce(buf, j.op),
        Kind::ReduceScatter => g.reduce_scatter(buf, j.op),
        Kind::AllGather => g.all_gather(buf),
        Kind::Broadcast => g.broadcast(buf, j.root),
        Kind::Reduce => g.reduce(buf, j.op, j.root),
        Kind::AllToAll => g.all_to_all(buf),
        Kind::Barrier => g.barrier(),
    }
}

fn run(g: &mut CGroup<'_>, j: &mut Job) -> Result<(), CollectiveError> {
    let Some(mut region) = j.region.take() else {
        return g.barrier();
    };
    let slice = region
        .slice(j.dtype)
        .map_err(CollectiveError::InvalidArgument)?;
    let j = &*j;
    match slice {
        Slice::F32(b) => typed(g, j, b),
        Slice::F64(b) => typed(g, j, b),
        Slice::F16(b) => typed(g, j, b),
        Slice::Bf16(b) => typed(g, j, b),
        Slice::I32(b) => typed(g, j, b),
        Slice::I64(b) => typed(g, j, b),
        Slice::U8(b) => typed(g, j, b),
    }
}

/// What the worker starts with.
struct Spec {
    config: FabricConfig,
    node: String,
    ranks: Vec<String>,
    opts: GroupOptions,
    transport: TransportChoice,
}

fn worker(spec: Spec, ready: SyncSender<Result<(), CollectiveError>>, jobs: Receiver<Job>) {
    let started = Fabric::from_config(spec.config)
        .node(spec.node)
        .transport(spec.transport)
        .start();
    let fabric = match started {
        Ok(f) => f,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let mut group = match CGroup::with_options(&fabric, &spec.ranks, spec.opts) {
        Ok(g) => g,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    while let Ok(mut job) = jobs.recv() {
        let r = run(&mut group, &mut job);
        job.done.set(r);
    }
    // The group (waiting for its last acknowledgements) goes before the fabric.
    drop(group);
}

/// A collective started with `Group.start`: wait for it, or ask whether it finished.
#[pyclass(module = "hyperfabric._native")]
pub struct Work {
    done: Arc<Done>,
    /// The caller's buffer, kept (and in place) until the worker gave it back.
    lent: Option<Lent>,
}

#[pymethods]
impl Work {
    /// Waits (GIL released) up to `timeout_s` (None: until it ends); True once finished,
    /// False if still running at the timeout. A failed collective raises its error.
    #[pyo3(signature = (timeout_s=None))]
    fn wait(&mut self, py: Python<'_>, timeout_s: Option<f64>) -> PyResult<bool> {
        let deadline = timeout_s
            .map(|s| seconds("timeout_s", s))
            .transpose()?
            .map(|t| Instant::now() + t);
        loop {
            let slice_end = Instant::now() + WAIT_SLICE;
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            let done = Arc::clone(&self.done);
            if py.detach(move || done.wait(until)) {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            py.check_signals()?;
        }
        self.lent.take();
        match self.done.result.lock().take() {
            Some(Err(e)) => Err(collective_to_py(e)),
            // Taken by an earlier wait: it raised or returned then.
            Some(Ok(())) | None => Ok(true),
        }
    }

    /// True once the collective finished (well or not; `wait` says which).
    fn is_completed(&self) -> bool {
        self.done.finished.load(Ordering::Acquire)
    }
}

/// A communicator over an ordered list of nodes of a fabric file; this process runs `node`.
#[pyclass(frozen, module = "hyperfabric._native")]
pub struct Group {
    jobs: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    #[pyo3(get)]
    rank: usize,
    #[pyo3(get)]
    size: usize,
    #[pyo3(get)]
    ranks: Vec<String>,
    #[pyo3(get)]
    node_id: String,
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

/// The group options from the keywords (`None`: the library's default).
struct Knobs {
    timeout_s: f64,
    chunk_bytes: Option<usize>,
    small_bytes: Option<usize>,
    window: Option<usize>,
    context: u32,
    arena: bool,
    arena_bytes: Option<usize>,
}

fn options(k: Knobs) -> PyResult<GroupOptions> {
    let d = GroupOptions::default();
    let t = seconds("timeout_s", k.timeout_s)?;
    Ok(GroupOptions::default()
        .timeout(t)
        .chunk_bytes(k.chunk_bytes.unwrap_or(d.chunk_bytes))
        .small_bytes(k.small_bytes.unwrap_or(d.small_bytes))
        .window(k.window.unwrap_or(d.window))
        .context(k.context)
        .arena(k.arena)
        .arena_bytes(k.arena_bytes.unwrap_or(d.arena_bytes)))
}

#[pymethods]
impl Group {
    /// Starts node `node` of the fabric file `config` and the group of `ranks` (node ids;
    /// this node is one of them). Returns once the node runs and the group is built.
    #[new]
    #[pyo3(signature = (config, node, ranks, *, timeout_s=5.0, chunk_bytes=None,
        small_bytes=None, window=None, context=0, transport="auto", arena=false,
        arena_bytes=None))]
    #[allow(clippy::too_many_arguments)] // one keyword per group option
    fn new(
        py: Python<'_>,
        config: &str,
        node: &str,
        ranks: Vec<String>,
        timeout_s: f64,
        chunk_bytes: Option<usize>,
        small_bytes: Option<usize>,
        window: Option<usize>,
        context: u32,
        transport: &str,
        arena: bool,
        arena_bytes: Option<usize>,
    ) -> PyResult<Group> {
        let spec = Spec {
            config: FabricConfig::from_file(Path::new(config)).map_err(to_py)?,
            node: node.to_owned(),
            ranks: ranks.clone(),
            opts: options(Knobs {
                timeout_s,
                chunk_bytes,
                small_bytes,
                window,
                context,
                arena,
                arena_bytes,
            })?,
            transport: self::transport(transport)?,
        };
        let rank = ranks.iter().position(|r| r == node).ok_or_else(|| {
            PyValueError::new_err(format!("node `{node}` is not in the rank list {ranks:?}"))
        })?;
        let (tx, rx) = sync_channel(QUEUE_MAX);
        let (ready_tx, ready_rx) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("hf-group-{node}"))
            .spawn(move || worker(spec, ready_tx, rx))
            .map_err(|e| to_py(Error::io("starting the group's worker thread", e)))?;
        let started = py.detach(move || ready_rx.recv());
        match started {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(collective_to_py(e));
            }
            Err(_) => return Err(to_py(Error::Shutdown)),
        }
        Ok(Group {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            rank,
            size: ranks.len(),
            ranks,
            node_id: node.to_owned(),
        })
    }

    /// The node ids of the fabric file `config`, in the file's order.
    #[staticmethod]
    fn file_nodes(config: &str) -> PyResult<Vec<String>> {
        let cfg = FabricConfig::from_file(Path::new(config)).map_err(to_py)?;
        Ok(cfg.nodes.iter().map(|n| n.id().to_owned()).collect())
    }

    /// Starts `collective` on `buf` (writable, C-contiguous; None for a barrier) holding
    /// `dtype` elements; the buffer is worked on in place until the returned `Work` ends.
    #[pyo3(signature = (collective, buf, dtype, op="sum", root=0))]
    fn start(
        &self,
        py: Python<'_>,
        collective: &str,
        buf: Option<&Bound<'_, PyAny>>,
        dtype: &str,
        op: &str,
        root: usize,
    ) -> PyResult<Work> {
        let kind = Kind::parse(collective)?;
        let dtype = DType::parse(dtype).ok_or_else(|| {
            PyValueError::new_err(format!(
                "dtype `{dtype}`: expected f32, f64, f16, bf16, i32, i64 or u8"
            ))
        })?;
        let op = ReduceOp::parse(op).ok_or_else(|| {
            PyValueError::new_err(format!("op `{op}`: expected sum, avg, min, max or prod"))
        })?;
        let (lent, region) = match (kind, buf) {
            (Kind::Barrier, _) => (None, None),
            (_, Some(b)) => {
                let (l, r) = lend(b)?;
                (Some(l), Some(r))
            }
            (_, None) => {
                return Err(PyValueError::new_err(format!(
                    "{collective} needs a buffer"
                )))
            }
        };
        let done = Arc::new(Done::default());
        let job = Job {
            kind,
            dtype,
            op,
            root,
            region,
            done: Arc::clone(&done),
        };
        self.submit(py, job)?;
        Ok(Work { done, lent })
    }

    /// Stops the worker after the collectives already started, then the node. Idempotent.
    fn close(&self, py: Python<'_>) {
        drop(self.jobs.lock().take());
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            py.detach(move || {
                let _ = t.join();
            });
        }
    }
}

impl Group {
    fn submit(&self, py: Python<'_>, job: Job) -> PyResult<()> {
        let tx = self
            .jobs
            .lock()
            .clone()
            .ok_or_else(|| to_py(Error::Shutdown))?;
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            // The queue is full: wait for room with the GIL released.
            Err(TrySendError::Full(job)) => py
                .detach(move || tx.send(job))
                .map_err(|_| to_py(Error::Shutdown)),
            Err(TrySendError::Disconnected(_)) => Err(to_py(Error::Shutdown)),
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        drop(self.jobs.get_mut().take());
        if let Some(t) = self.thread.get_mut().take() {
            let _ = t.join();
        }
    }
}
