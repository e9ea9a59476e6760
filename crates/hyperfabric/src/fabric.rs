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

use crate::config::{FabricConfig, NodeConfig};
use crate::error::{Error, Result};
use crate::runtime::{
    Message, NodeInner, Path as RoutePath, PathReport, PathScheduler, PathSet, PendingSend,
    PingStats, SendSource, Sink, StatsSnapshot,
};
use crate::transport::TransportKind;
use crate::types::{DataType, Priority};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::runtime::PingStats as PingReport;

/// Options of one send.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    pub data_type: DataType,
    pub priority: Priority,
    /// Compress chunks with LZ4 when it makes them smaller.
    pub compression: bool,
    /// Refuse the send before any byte moves if the route's nominal latency exceeds this.
    pub latency_constraint_ns: Option<u64>,
    /// Longest time without progress before the send fails (default: the profile's).
    pub timeout: Option<Duration>,
    /// Name the destination may store the transfer under (files keep their base name).
    pub name: Option<String>,
    /// Routing strategy for this send (default: the router's default, lowest latency).
    pub strategy: Option<crate::route::Strategy>,
    /// Stripe this send over several paths (overrides `configure_multipath` for this send).
    pub multipath: Option<MultipathConfig>,
}

/// The guide's `configure_multipath`: the paths to a destination, named by their first hop
/// (a relay, or the destination itself for the direct path), with weights.
#[derive(Debug, Clone, PartialEq)]
pub struct MultipathConfig {
    /// (first hop, weight): chunks are shared in proportion to the weights.
    pub paths: Vec<(String, f64)>,
    pub scheduler: PathScheduler,
    /// How often a path that broke is tried again.
    pub health_check_interval: Duration,
}

impl MultipathConfig {
    pub fn new(paths: Vec<(String, f64)>) -> Self {
        MultipathConfig {
            paths,
            scheduler: PathScheduler::WeightedRoundRobin,
            health_check_interval: Duration::from_secs(1),
        }
    }
    pub fn scheduler(mut self, s: PathScheduler) -> Self {
        self.scheduler = s;
        self
    }
    pub fn health_check_interval(mut self, i: Duration) -> Self {
        self.health_check_interval = i;
        self
    }
}

impl SendOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn data_type(mut self, d: DataType) -> Self {
        self.data_type = d;
        self
    }
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }
    pub fn compression(mut self, on: bool) -> Self {
        self.compression = on;
        self
    }
    pub fn latency_constraint_ns(mut self, ns: u64) -> Self {
        self.latency_constraint_ns = Some(ns);
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }
    pub fn strategy(mut self, s: crate::route::Strategy) -> Self {
        self.strategy = Some(s);
        self
    }
    pub fn multipath(mut self, m: MultipathConfig) -> Self {
        self.multipath = Some(m);
        self
    }
}

/// One hop of the path a transfer took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    pub from: String,
    pub to: String,
    pub transport: TransportKind,
}

/// What a completed send reports. `latency` runs from the call to the end-to-end ack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendReport {
    pub transfer_id: u64,
    pub bytes: u64,
    #[serde(serialize_with = "ser_duration_ns", rename = "latency_ns")]
    pub latency: Duration,
    pub throughput_gbps: f64,
    pub path: Vec<String>,
    pub hops: Vec<Hop>,
    /// Payload bytes over bytes on the wire (1.0 without compression).
    pub compression_ratio: f64,
    pub retransmitted_bytes: u64,
    /// Every path the transfer was striped over, with what it carried.
    pub paths: Vec<PathReport>,
    /// Paths that broke during the transfer (their chunks went on the others).
    pub failovers: u32,
    pub data_type: DataType,
    pub priority: Priority,
}

fn ser_duration_ns<S: serde::Serializer>(
    d: &Duration,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_nanos() as u64)
}

/// How to ping.
#[derive(Debug, Clone, Copy)]
pub struct PingOptions {
    /// Ultra_high and high pings take the urgent lane when QoS is on.
    pub priority: Priority,
    pub size: usize,
    pub count: u64,
    pub warmup: u64,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for PingOptions {
    fn default() -> Self {
        PingOptions {
            priority: Priority::Normal,
            size: 64,
            count: 10,
            warmup: 0,
            interval: Duration::ZERO,
            timeout: Duration::from_secs(1),
        }
    }
}

impl PingOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn size(mut self, s: usize) -> Self {
        self.size = s;
        self
    }
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }
    pub fn count(mut self, c: u64) -> Self {
        self.count = c;
        self
    }
    pub fn warmup(mut self, w: u64) -> Self {
        self.warmup = w;
        self
    }
    pub fn interval(mut self, i: Duration) -> Self {
        self.interval = i;
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
}

/// Chooses which node of a fabric file this process runs, and what it does with what it receives.
pub struct FabricBuilder {
    config: FabricConfig,
    node: Option<String>,
    sink: Sink,
    listen: Option<SocketAddr>,
    transport: crate::transport::TransportChoice,
}

impl FabricBuilder {
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
        let inner = NodeInner::start(&self.config, &node, self.sink, self.listen, self.transport)?;
        Ok(Fabric {
            inner,
            config: self.config,
            multipath: Mutex::new(HashMap::new()),
        })
    }
}

/// One running node of a fabric.
pub struct Fabric {
    inner: Arc<NodeInner>,
    config: FabricConfig,
    multipath: Mutex<HashMap<String, MultipathConfig>>,
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

    /// Sends `data` and returns once the destination acknowledged every byte.
    pub fn send(&self, dst: &str, data: &[u8], opts: SendOptions) -> Result<SendReport> {
        self.start_send(dst, data, opts)?.wait()
    }

    /// Streams a file (never held whole in memory); the destination stores it under its
    /// base name when it runs with a store directory.
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
        self.begin(dst, SendSource::File { file, len }, opts)?
            .wait()
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
        let peer = self.inner.peer_by_id(dst)?;
        if let Err(reason) = self.inner.zones.check(self.inner.my_key, peer.key, &[]) {
            return Err(Error::Rejected { reason });
        }
        if let Some(limit) = opts.latency_constraint_ns {
            let route = self.nominal_latency_ns(dst);
            if route > limit {
                return Err(Error::LatencyViolation {
                    route_latency_ns: route,
                    limit_ns: limit,
                });
            }
        }
        let paths = self.paths_to(
            &peer,
            opts.multipath
                .clone()
                .or_else(|| self.multipath.lock().get(dst).cloned()),
            opts.strategy,
        )?;
        PendingSend::start(&self.inner, peer, source, opts, paths)
    }

    /// The paths a send to `dst` uses: the configured multipath set, or the route's first hop.
    fn paths_to(
        &self,
        dst: &crate::runtime::Peer,
        multipath: Option<MultipathConfig>,
        strategy: Option<crate::route::Strategy>,
    ) -> Result<PathSet> {
        let now = std::time::Instant::now();
        let me = self.node_id().to_owned();
        let Some(m) = multipath else {
            let (hop, via) = self.inner.first_hop(dst, strategy, now)?;
            return Ok(PathSet::new(
                vec![RoutePath::new(hop, via, 1.0)],
                PathScheduler::WeightedRoundRobin,
                Duration::from_secs(1),
                now,
            ));
        };
        let mut paths = Vec::with_capacity(m.paths.len());
        for (hop, weight) in &m.paths {
            if !(weight.is_finite() && *weight > 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "multipath weight of `{hop}` must be > 0 (got {weight})"
                )));
            }
            let peer = self.inner.peer_by_id(hop)?;
            let via = if peer.key == dst.key {
                vec![me.clone(), dst.id.clone()]
            } else {
                vec![me.clone(), hop.clone(), dst.id.clone()]
            };
            paths.push(RoutePath::new(peer, via, *weight));
        }
        if paths.is_empty() {
            return Err(Error::InvalidArgument(
                "multipath needs at least one path".into(),
            ));
        }
        Ok(PathSet::new(
            paths,
            m.scheduler,
            m.health_check_interval,
            now,
        ))
    }

    /// The guide's `configure_multipath`: later sends to `dst` are striped over these paths.
    pub fn configure_multipath(&self, dst: &str, config: MultipathConfig) -> Result<()> {
        self.inner.peer_by_id(dst)?;
        for (hop, _) in &config.paths {
            self.inner.peer_by_id(hop)?;
        }
        self.multipath.lock().insert(dst.to_owned(), config);
        Ok(())
    }

    /// The configured latency of the direct link, or the two nodes' own latencies.
    fn nominal_latency_ns(&self, dst: &str) -> u64 {
        let me = self.node_id();
        if let Some(link) = self.config.link_between(me, dst) {
            return link.latency_ns;
        }
        let lat = |id: &str| self.config.node(id).map_or(0, |n| n.signature.latency_ns);
        lat(me) + lat(dst)
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

    pub fn stats(&self) -> StatsSnapshot {
        self.inner.snapshot()
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
