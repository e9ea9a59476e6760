//! The public API: a [`Fabric`] is one node of a configured fabric, running in this process.
//!
//! ```no_run
//! use hyperfabric::{Fabric, SendOptions, DataType, Priority};
//! # fn main() -> hyperfabric::Result<()> {
//! let fabric = Fabric::from_config_file("examples/local.toml")?.node("node-a").start()?;
//! let report = fabric.send("node-b", b"tensor bytes", SendOptions::new().data_type(DataType::Tensor).priority(Priority::High))?;
//! println!("{} bytes in {:?}", report.bytes, report.latency);
//! # Ok(()) }
//! ```

pub use crate::config::{Compression, DataTypePolicy, Transform};

use crate::config::effective::EffectiveConfig;
use crate::config::{FabricConfig, NodeConfig, PARAM_CACHE_BYTES};
use crate::error::{Error, Result};
use crate::runtime::placement;
use crate::runtime::{Message, NodeInner, PendingSend, PingStats, SendSource, Sink, StatsSnapshot};
use crate::transform::{cache::encode_plan, quantize, Quantization, SentIndex, TopK};
use crate::types::DataType;
use crate::wire::RefusalCode;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::runtime::PingStats as PingReport;

mod endpoint;
mod loan;
mod members;
mod plan;

pub(crate) use plan::SendPlan;

pub use crate::buffer::{LoanedBuf, Payload};
pub use endpoint::Endpoint;
pub use loan::LOAN_SLOT_BYTES;
// The send options and reports live below the runtime that reads them (no import circle).
pub use crate::runtime::options::*;

/// Chooses which node of a fabric file this process runs, and what it does with what it receives.
pub struct FabricBuilder {
    config: FabricConfig,
    node: Option<String>,
    sink: Sink,
    listen: Option<SocketAddr>,
    transport: crate::transport::TransportChoice,
    observer: bool,
    cpus: Option<Vec<usize>>,
    /// Started by `membership::join`: its `membership.*` lines of the report.
    joined: Option<Vec<crate::config::effective::Knob>>,
}

impl FabricBuilder {
    /// This node joins through a directory (`membership::join`): `knobs` say which etcd
    /// settings are in force and where each came from.
    pub(crate) fn joined(mut self, knobs: Vec<crate::config::effective::Knob>) -> Self {
        self.joined = Some(knobs);
        self
    }
    /// Run every thread of this node on these CPUs (over the file's `metadata.cpu_affinity`).
    /// What the machine granted is in [`Fabric::effective_config`].
    pub fn cpu_affinity(mut self, cpus: impl Into<Vec<usize>>) -> Self {
        self.cpus = Some(cpus.into());
        self
    }
    /// The node id this process hosts (required).
    pub fn node(mut self, id: impl Into<String>) -> Self {
        self.node = Some(id.into());
        self
    }
    /// Store received transfers as files in `dir` (temporary file, fsync, rename).
    pub fn store_to(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sink = Sink::Store(dir.into());
        self
    }
    /// Verify and acknowledge received transfers, then drop their bytes (benchmarks, relays).
    pub fn discard_received(mut self) -> Self {
        self.sink = Sink::Discard;
        self
    }
    /// Which transports links may use (default: shared memory inside the host, else TCP).
    pub fn transport(mut self, t: crate::transport::TransportChoice) -> Self {
        self.transport = t;
        self
    }
    /// Join the other nodes as an observer (`hfabric monitor` without a node entry): the
    /// hellos carry `flags::OBSERVER`, the nodes answer only pings and metrics requests,
    /// links stay on TCP. The id still needs an entry in this process's copy of the file.
    pub fn observer(mut self) -> Self {
        self.observer = true;
        self
    }
    /// Listen here instead of the fabric file's address (port 0 picks a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }
    pub fn start(self) -> Result<Fabric> {
        let node = self
            .node
            .ok_or_else(|| Error::InvalidArgument("no node id given: call .node(\"id\")".into()))?;
        if let Sink::Store(dir) = &self.sink {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating store directory {}", dir.display()), e))?;
        }
        let (index, node_cfg) = self
            .config
            .nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.id() == node)
            .ok_or_else(|| Error::NodeNotFound { node: node.clone() })?;
        let mut effective = EffectiveConfig::new(&self.config, &node);
        // Before any thread of the node starts: they inherit the CPU set and memory policy.
        placement::apply_placement(node_cfg, index, self.cpus.as_deref(), &mut effective);
        record_membership(&self.config, self.joined, &mut effective);
        let inner = NodeInner::start(
            &self.config,
            &node,
            self.sink,
            self.listen,
            (self.transport, self.observer),
        )?;
        let buffers = inner.tuning.socket_buffer_bytes;
        placement::record_sockets(index, node_cfg, buffers, &inner.segment, &mut effective);
        effective.log();
        Ok(Fabric {
            effective,
            inner,
            policies: Mutex::new(self.config.data_types.iter().copied().collect()),
            sent_index: Mutex::new(HashMap::new()),
            topk: Mutex::new(HashMap::new()),
            config: self.config,
            multipath: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        })
    }
}

/// The `membership.*` lines: what `membership::join` put in force, or, for a node started
/// without it, a refusal of the file's `[membership]` (nothing would publish its record).
fn record_membership(
    cfg: &FabricConfig,
    joined: Option<Vec<crate::config::effective::Knob>>,
    effective: &mut EffectiveConfig,
) {
    use crate::config::effective::Effect;
    match joined {
        Some(knobs) => {
            for k in knobs {
                effective.asked_by_api(&k.field, k.value.clone(), k.source);
                effective.record(&k.field, k.value, k.effect, k.detail);
            }
        }
        None if cfg.membership.url.is_some() => {
            let url = cfg.membership.url.as_ref().map(ToString::to_string);
            effective.record(
                "membership.url",
                serde_json::Value::from(url),
                Effect::Refused,
                "this node was started without membership::join (Fabric::start): no record                  is published and no other node is learned from etcd; join through                  `hfabric serve`, membership::join or Python's hyperfabric.join",
            );
        }
        None => {}
    }
}

/// One running node of a fabric.
pub struct Fabric {
    inner: Arc<NodeInner>,
    /// Every configuration field, its source and what it did on this node.
    effective: EffectiveConfig,
    config: FabricConfig,
    multipath: Mutex<HashMap<String, MultipathConfig>>,
    policies: Mutex<HashMap<DataType, DataTypePolicy>>,
    /// Per destination: which parameter chunks it holds (`Transform::Cache`).
    sent_index: Mutex<HashMap<String, SentIndex>>,
    /// Per destination and data type: top-k error feedback.
    topk: Mutex<HashMap<(String, DataType), TopK>>,
    /// Bumped by every change of policies or multipath sets: an [`Endpoint`] re-plans when
    /// it moves.
    generation: AtomicU64,
}

impl Fabric {
    pub fn from_config_file(path: impl AsRef<Path>) -> Result<FabricBuilder> {
        Ok(Self::from_config(FabricConfig::from_file(path.as_ref())?))
    }

    pub fn from_config(config: FabricConfig) -> FabricBuilder {
        FabricBuilder {
            config,
            node: None,
            sink: Sink::Memory,
            listen: None,
            transport: crate::transport::TransportChoice::Auto,
            observer: false,
            cpus: None,
            joined: None,
        }
    }

    pub fn node_id(&self) -> &str {
        &self.inner.me
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn config(&self) -> &FabricConfig {
        &self.config
    }

    /// The effective-configuration report: every field of the fabric file (and every tuning
    /// default) with its source and what it did on this node, as logged at start.
    pub fn effective_config(&self) -> &EffectiveConfig {
        &self.effective
    }

    /// Sends `data` and returns once the destination acknowledged every byte.
    ///
    /// Priority and compression left at their defaults come from the data type's policy.
    /// A policy with `transform = cache` sends through the parameter cache (the destination
    /// still receives the full bytes); the f32 transforms (top-k, quantisation) apply only
    /// through [`Fabric::send_f32`].
    pub fn send(&self, dst: &str, data: &[u8], opts: SendOptions) -> Result<SendReport> {
        if self.policy(opts.data_type).transform == Transform::Cache {
            return self.send_cached(dst, data, opts);
        }
        self.start_send(dst, data, opts)?.wait()
    }

    /// Sends an f32 tensor (tensors, gradients, parameters), applying its data type's
    /// transform: top-k (with error feedback kept here, per destination and data type),
    /// fp16/bf16/int8 quantisation, or the parameter cache. **The destination receives the
    /// transformed form** (`Message::transform` says which) and decodes it with
    /// [`crate::transform::TopK::decode`] or [`crate::transform::dequantize`]; without a
    /// transform, or with `cache`, it receives the little-endian f32 bytes.
    pub fn send_f32(&self, dst: &str, values: &[f32], opts: SendOptions) -> Result<SendReport> {
        let policy = self.policy(opts.data_type);
        let encoded = match policy.transform {
            Transform::None | Transform::Cache => {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                return self.send(dst, &bytes, opts);
            }
            Transform::TopK => {
                let mut topk = self.topk.lock();
                let key = (dst.to_owned(), opts.data_type);
                let state = match topk.get_mut(&key) {
                    Some(t) if t.k_fraction() == policy.topk_fraction => t,
                    _ => {
                        let t = TopK::new(policy.topk_fraction)
                            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                        topk.insert(key.clone(), t);
                        topk.get_mut(&key).ok_or(Error::Shutdown)?
                    }
                };
                state
                    .encode(values)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?
            }
            Transform::Fp16 => quantize(Quantization::Fp16, values),
            Transform::Bf16 => quantize(Quantization::Bf16, values),
            Transform::Int8 => quantize(Quantization::Int8, values),
        };
        let mut opts = opts;
        opts.transform = policy.transform;
        let report = self.begin(dst, SendSource::Bytes(&encoded), opts)?.wait();
        report
    }

    /// Sends through the parameter cache: chunks the destination holds go by reference. If
    /// the destination turns out not to hold them (it restarted), the send is retried once,
    /// literally.
    fn send_cached(&self, dst: &str, data: &[u8], opts: SendOptions) -> Result<SendReport> {
        self.inner.peer_by_id(dst)?;
        for attempt in 0..2 {
            let (payload, saved) = {
                let mut indexes = self.sent_index.lock();
                let index = match indexes.entry(dst.to_owned()) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => v.insert(
                        SentIndex::new(
                            crate::transform::cache::DEFAULT_CHUNK_SIZE,
                            PARAM_CACHE_BYTES,
                        )
                        .map_err(|e| Error::InvalidArgument(e.to_string()))?,
                    ),
                };
                let plan = index.plan(data);
                let encoded = encode_plan(&plan);
                let mut payload = Vec::with_capacity(4 + encoded.len() + plan.literal_bytes());
                payload.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
                payload.extend_from_slice(&encoded);
                let mut literals = Vec::new();
                plan.gather_literals(data, &mut literals)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                payload.extend_from_slice(&literals);
                (payload, plan.referenced_bytes() as u64)
            };
            let mut o = opts.clone();
            o.transform = Transform::Cache;
            o.bytes_saved = saved;
            let result = match self.begin(dst, SendSource::Bytes(&payload), o) {
                Ok(pending) => pending.wait_coded(),
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(report) => return Ok(report),
                Err(failed) => {
                    // The destination's cache is unknown now: start over, literally.
                    self.sent_index.lock().remove(dst);
                    let miss = failed.refusal == Some(RefusalCode::CacheMiss);
                    if !(miss && attempt == 0) {
                        return Err(failed.error);
                    }
                    tracing::info!("`{dst}` lacks cached parameter chunks: resending literally");
                }
            }
        }
        Err(Error::Rejected {
            reason: format!("{dst}: {}", RefusalCode::CacheMiss),
        })
    }

    /// The guide's `configure_data_types`, one type at a time: later sends of `data_type`
    /// take their default priority, compression and transform from `policy`.
    pub fn configure_data_type(&self, data_type: DataType, policy: DataTypePolicy) -> Result<()> {
        policy.validate().map_err(|(field, reason)| {
            Error::config("(api)", format!("data_types.{data_type}.{field}"), reason)
        })?;
        self.policies.lock().insert(data_type, policy);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The policy sends of `data_type` follow (the default one if none was configured).
    pub fn policy(&self, data_type: DataType) -> DataTypePolicy {
        self.policies
            .lock()
            .get(&data_type)
            .copied()
            .unwrap_or_default()
    }

    /// Streams a file (never held whole in memory): copied from a mapping of it, or read
    /// chunk by chunk with `zero_copy(false)`; the destination stores it under its base
    /// name when it runs with a store directory.
    pub fn send_file(&self, dst: &str, path: &Path, mut opts: SendOptions) -> Result<SendReport> {
        let file =
            File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            .len();
        if opts.name.is_none() {
            opts.name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        let zero_copy = !opts.file_by_pread;
        let source = crate::runtime::FileSource::new(file, len, zero_copy, &path.to_string_lossy());
        self.begin(dst, SendSource::File(source), opts)?.wait()
    }

    /// Starts a send and returns at once with a handle; several may be in flight. The bytes
    /// must outlive the handle; [`PendingSend::wait`] drives it to the end-to-end ack.
    pub fn start_send<'a>(
        &self,
        dst: &str,
        data: &'a [u8],
        opts: SendOptions,
    ) -> Result<PendingSend<'a>> {
        self.begin(dst, SendSource::Bytes(data), opts)
    }

    fn begin<'a>(
        &self,
        dst: &str,
        source: SendSource<'a>,
        opts: SendOptions,
    ) -> Result<PendingSend<'a>> {
        let plan = self.plan(dst, opts)?;
        PendingSend::start(&self.inner, plan.peer, source, plan.opts, plan.paths)
    }

    /// Waits for the next received transfer (in-memory mode only).
    pub fn recv(&self) -> Result<Message> {
        self.inner.recv_timeout(None)
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message> {
        self.inner.recv_timeout(Some(timeout))
    }

    pub fn ping(&self, dst: &str, opts: PingOptions) -> Result<PingStats> {
        self.ping_samples(dst, opts).map(|(stats, _)| stats)
    }

    /// Like [`Fabric::ping`], also returning every one-way sample (sorted, nanoseconds),
    /// for histograms and plots.
    pub fn ping_samples(&self, dst: &str, opts: PingOptions) -> Result<(PingStats, Vec<u64>)> {
        if opts.count == 0 {
            return Err(Error::InvalidArgument(
                "ping count must be at least 1".into(),
            ));
        }
        let peer = self.inner.peer_by_id(dst)?;
        let plan = crate::runtime::PingPlan {
            size: opts.size,
            count: opts.count,
            warmup: opts.warmup,
            interval: opts.interval,
            timeout: opts.timeout,
            priority: opts.priority,
        };
        self.inner.ping(&peer, plan)
    }

    /// Adds a node at run time (it may then be sent to and may connect here).
    pub fn register_node(&mut self, node: NodeConfig) -> Result<()> {
        node.signature
            .validate()
            .map_err(|reason| Error::config("(runtime)", "node", reason))?;
        self.inner
            .register_peer(&node.signature.node_id, node.listen)?;
        self.inner.add_to_topology(&node, &[]);
        self.config
            .nodes
            .retain(|n| n.signature.node_id != node.signature.node_id);
        self.config.nodes.push(node);
        Ok(())
    }

    /// Adds a link at run time (routes may use it at once).
    pub fn register_link(&mut self, link: crate::config::LinkConfig) -> Result<()> {
        for end in &link.between {
            self.inner.peer_by_id(end)?;
        }
        if let Some(node) = self.config.node(&link.between[0]).cloned() {
            self.inner
                .add_to_topology(&node, std::slice::from_ref(&link));
        }
        self.config.links.push(link);
        Ok(())
    }

    /// Removes a node at run time; its connections are closed.
    pub fn unregister_node(&mut self, id: &str) -> Result<()> {
        self.inner.unregister_peer(id)?;
        self.config.nodes.retain(|n| n.signature.node_id != id);
        Ok(())
    }

    /// Samples this node's predictor has learned: from `routing.history` at start, then at
    /// most one live sample per `routing.model_update_interval_s` (pings, small transfers).
    pub fn predictor_samples(&self) -> u64 {
        self.inner.predictor_samples()
    }

    /// What this node's predictor holds now: samples, whether its predictions are used,
    /// its weights.
    pub fn predictor_model(&self) -> crate::runtime::PredictorModel {
        self.inner
            .with_router(|r| crate::runtime::PredictorModel::of(r))
    }

    /// Trains the running node's predictor on the lines appended to `routing.history` since
    /// it last learned from it (what `hfabric serve` does on SIGHUP): the samples are added
    /// to what it learned. A file shorter than what was learned, or another file (rotated),
    /// is learned from its start again (`started_over`, and logged). Without
    /// `routing.history`, or with an unreadable file or a bad line, an `Error::Config` naming
    /// `routing.history`; the predictor is then left as it was.
    pub fn train_predictor_from_history(&self) -> Result<crate::runtime::HistoryTraining> {
        self.inner.train_from_history(&self.config)?.ok_or_else(|| {
            Error::config(
                self.config.source.clone(),
                "routing.history",
                "not set: name a history file (JSON lines of predictor samples) to train on",
            )
        })
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.inner.snapshot()
    }

    /// This node's metrics now: per-link bytes, frames, transfers, retransmissions, drops,
    /// latency histograms, throughput and utilisation, queue depths, process CPU and memory.
    pub fn metrics(&self) -> crate::metrics::NodeMetrics {
        self.inner.node_metrics()
    }

    /// The metrics of node `id`, asked over the fabric (a direct connection); this node's
    /// own when `id` is this node. Fails with `Timeout` when no reply came in `timeout`
    /// (a node answers one peer at most every 50 ms).
    pub fn node_metrics(&self, id: &str, timeout: Duration) -> Result<crate::metrics::NodeMetrics> {
        if id == self.node_id() {
            return Ok(self.metrics());
        }
        let peer = self.inner.peer_by_id(id)?;
        self.inner.remote_metrics(&peer, timeout)
    }

    /// Says goodbye to peers, stops accepting, and waits for the node's threads.
    pub fn shutdown(self) {
        self.inner.shutdown();
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}
