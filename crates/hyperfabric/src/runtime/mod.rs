//! The runtime: one process hosts one node. It owns the listener, the connections (one
//! reader thread each), the table of transfers in flight, and feeds the sans-IO protocol
//! with bytes and time.

mod accept;
mod conn;
mod dispatch;
mod drive;
mod gate;
mod handshake;
mod incoming;
mod journal;
mod observer;
mod open;
pub mod options;
mod origin;
mod outgoing;
mod peers;
mod ping;
pub(crate) mod placement;
mod prober;
mod receive;
mod refused;
pub(crate) mod routing;
mod shmlink;
mod signed_ack;
mod stats;
mod store;
mod stripe;
mod tcp_poll;

pub use crate::core::zones::Zones;
pub use conn::{Conn, Lane};
pub use incoming::{Message, Sink};
pub use outgoing::{
    Completion, FileRead, FileSource, PathReport, PathScheduler, PendingSend, SendSource,
};
pub(crate) use outgoing::{Path, PathSet};
pub use ping::{PingPlan, PingStats};
pub use routing::{HistoryTraining, PredictorModel};
pub use shmlink::POOL_SLOT_BYTES as POOL_SLOT_BYTES_DEFAULT;
pub use stats::{NodeStats, StatsSnapshot};

use crate::config::{FabricConfig, Tuning};
use crate::error::{Error, Result};
use crate::idle;
use crate::route::Router;
use crate::transport::{tcp, TransportChoice};
use crate::wire;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A peer the node may talk to.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: String,
    pub key: u64,
    pub addr: Option<SocketAddr>,
}

/// The fabric secret, this node's keys and TLS, as the fabric file asks (and the log says
/// which authentication is in force).
type Security = (
    Option<crate::auth::Secret>,
    Option<Arc<crate::auth::identity::NodeKeys>>,
    Option<crate::auth::tls::TlsConfig>,
);

fn security(cfg: &FabricConfig, me: &str, observer: bool) -> Result<Security> {
    let secret = crate::auth::Secret::from_config(cfg, me)?;
    let keys = crate::auth::identity::NodeKeys::from_config(cfg, me, observer)?.map(Arc::new);
    crate::auth::announce_mode(
        me,
        secret.is_some(),
        keys.is_some(),
        cfg.security.encryption_enabled,
    );
    let tls = crate::auth::tls::TlsConfig::from_config(cfg, me)?;
    Ok((secret, keys, tls))
}

/// The node's listener (on loopback, port chosen by the system, when no address is given)
/// and the address it is bound to.
fn bind(me: &str, addr: Option<SocketAddr>) -> Result<(TcpListener, SocketAddr)> {
    let addr = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener =
        tcp::listen(addr).map_err(|e| Error::io(format!("binding {me} to {addr}"), e))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    Ok((listener, local_addr))
}

/// The fabric's tuning with this node's own overrides (`metadata.tcp_window_size`).
fn node_tuning(cfg: &FabricConfig, node_cfg: &crate::config::NodeConfig) -> Tuning {
    let mut tuning = cfg.tuning.clone();
    if let Some(window) = node_cfg.signature.metadata.tcp_window_size {
        // Checked against SOCKET_BUFFER_MIN..=MAX when the file was read.
        tuning.socket_buffer_bytes = usize::try_from(window).unwrap_or(usize::MAX);
    }
    tuning
}

/// Accept 1 MiB frames whatever this node's own profile, so nodes whose profiles differ
/// still understand each other; memory grows only with the frames actually seen.
fn limits(tuning: &Tuning) -> wire::Limits {
    let max_payload =
        u32::try_from(tuning.max_packet_size.max(1 << 20) + 64).unwrap_or(wire::MAX_PAYLOAD_HARD);
    wire::Limits {
        max_payload: max_payload.min(wire::MAX_PAYLOAD_HARD),
    }
}

/// Removes the segments of earlier runs whose creator died (killed nodes leave them behind).
fn remove_stale_segments(fabric: &str) {
    match crate::transport::shm::remove_stale(&format!("hf-{fabric}-")) {
        Ok(gone) if !gone.is_empty() => {
            tracing::info!("removed {} stale shared-memory segments", gone.len())
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot scan /dev/shm for stale segments: {e}"),
    }
}

/// Held while dialing one peer on one lane.
type DialGate = Arc<Mutex<()>>;

/// Everything the threads of one node share.
pub struct NodeInner {
    pub fabric_name: String,
    pub me: String,
    pub my_key: u64,
    pub tuning: Tuning,
    pub limits: wire::Limits,
    pub local_addr: SocketAddr,
    /// TCP segment size from `metadata.mtu_size` (None: the kernel's).
    pub segment: placement::SegmentPlan,
    /// The fabric secret (`secret_file`): peers must prove it in the handshake.
    pub secret: Option<crate::auth::Secret>,
    /// Per-node keys (`node_keys`): peers prove their own id; relayed final acks are signed.
    pub keys: Option<Arc<crate::auth::identity::NodeKeys>>,
    /// TLS for TCP links (`encryption_enabled`).
    pub tls: Option<crate::auth::tls::TlsConfig>,
    peers: RwLock<HashMap<u64, Peer>>,
    pub zones: Zones,
    /// Which transports this node may use, and the peers the fabric file puts on our host.
    pub transport: TransportChoice,
    same_host: std::collections::HashSet<u64>,
    /// Peers whose host id membership compared with ours: shares our memory or not.
    host_ids: RwLock<HashMap<u64, bool>>,
    /// Routes over the fabric file's topology (strategies, cache, learned predictor).
    router: Mutex<Router>,
    /// How far the predictor has learned from `routing.history` (routing.rs).
    history_mark: Mutex<Option<routing::HistoryMark>>,
    started: Instant,
    /// Milliseconds since `started` of the last sample given to the predictor (0: none yet).
    last_learn_ms: AtomicU64,
    /// Shortest time between two live samples (`routing.model_update_interval_s`).
    learn_interval_ms: u64,
    conns: Mutex<HashMap<(u64, Lane), Arc<Conn>>>,
    /// Serialises connection set-up per peer and lane so concurrent senders share one dial.
    dialing: Mutex<HashMap<(u64, Lane), DialGate>>,
    /// Peers that refused this node's proof just now (refused.rs): not re-dialed meanwhile.
    refused: refused::Refusals,
    all_conns: Mutex<Vec<Arc<Conn>>>,
    /// Bulk links striped over several TCP connections (`connections_per_link`).
    stripes: stripe::Stripes,
    /// Monitors joined as observers (observer.rs): bounded, outside the peer table.
    observers: observer::Observers,
    /// This node joins others as an observer (a monitor without a node entry).
    pub observer: bool,
    /// Accepted connections with a thread of their own (handshaking or established): bounded
    /// by `max_connections`, so a flood of silent sockets cannot spawn threads without limit.
    inbound: AtomicUsize,
    /// Accepted connections still in their handshake: bounded by `max_pending_handshakes`.
    pending: accept::PendingTable,
    outgoing: outgoing::OutgoingTable,
    incoming: incoming::IncomingTable,
    pub stats: NodeStats,
    /// Relayed transfers whose sender's signature this node verified (origin.rs).
    origins: origin::SeenOrigins,
    /// Fault injection on the frames this node writes (tests; None: off, zero cost).
    pub faults: Option<Arc<crate::transport::fault::FaultInjector>>,
    /// Per-link counters, histograms and remote metrics requests.
    pub metrics: crate::metrics::Registry,
    next_transfer: AtomicU64,
    next_ping: AtomicU64,
    shutting_down: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Background health probes of multipath first hops (a thread once a send asks).
    prober: prober::Prober,
}

impl NodeInner {
    /// Binds the node's listener and starts accepting connections.
    pub fn start(
        cfg: &FabricConfig,
        me: &str,
        sink: Sink,
        listen: Option<SocketAddr>,
        (transport, observer): (TransportChoice, bool),
    ) -> Result<Arc<NodeInner>> {
        let node_cfg = cfg.node(me).ok_or_else(|| Error::NodeNotFound {
            node: me.to_owned(),
        })?;
        // Key files first: a node that cannot prove membership must not listen at all.
        let (secret, keys, tls) = security(cfg, me, observer)?;
        crate::transport::fdlimit::raise();
        let (listener, local_addr) = bind(me, listen.or(node_cfg.listen))?;
        let faults = crate::config::faults::injector_for(cfg, me, |k| std::env::var(k).ok())?;
        let tuning = node_tuning(cfg, node_cfg);
        let segment = placement::segment_plan(node_cfg, local_addr);
        let (router, history_mark) = routing::configured_router(cfg, me)?;
        let inner = Arc::new(NodeInner {
            fabric_name: cfg.name.clone(),
            me: me.to_owned(),
            my_key: wire::node_key(me),
            limits: limits(&tuning),
            incoming: incoming::IncomingTable::new(sink, &tuning),
            tuning,
            local_addr,
            segment,
            secret,
            keys,
            tls,
            peers: RwLock::new(peers::table(cfg)),
            zones: Zones::from_config(cfg),
            transport,
            same_host: peers::same_host(cfg, me),
            host_ids: RwLock::new(HashMap::new()),
            router: Mutex::new(router),
            history_mark: Mutex::new(history_mark),
            started: Instant::now(),
            last_learn_ms: AtomicU64::new(0),
            learn_interval_ms: routing::learn_interval_ms(cfg),
            conns: Mutex::new(HashMap::new()),
            dialing: Mutex::new(HashMap::new()),
            refused: refused::Refusals::default(),
            all_conns: Mutex::new(Vec::new()),
            stripes: stripe::Stripes::default(),
            observers: observer::Observers::default(),
            observer,
            inbound: AtomicUsize::new(0),
            pending: accept::PendingTable::default(),
            outgoing: outgoing::OutgoingTable::new(cfg.compression.clone()),
            stats: NodeStats::default(),
            origins: origin::SeenOrigins::default(),
            faults,
            metrics: crate::metrics::Registry::new(cfg, me),
            // Random high bits: a restarted node never reuses ids the peer still remembers.
            next_transfer: AtomicU64::new(rand::random::<u64>() & !0xffff_ffff),
            next_ping: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            prober: prober::Prober::default(),
        });
        inner.start_threads(listener)?;
        if transport != TransportChoice::Tcp {
            remove_stale_segments(&inner.fabric_name);
        }
        tracing::info!(node = me, %local_addr, fabric = %inner.fabric_name, "node listening");
        Ok(inner)
    }

    /// The accept and sweeper threads.
    fn start_threads(self: &Arc<Self>, listener: TcpListener) -> Result<()> {
        let acceptor = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name(format!("hf-accept-{}", self.me))
            .spawn(move || acceptor.accept_loop(listener))
            .map_err(|e| Error::io("spawning the accept thread", e))?;
        self.threads.lock().push(handle);
        let sweeper = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name(format!("hf-sweep-{}", self.me))
            .spawn(move || sweeper.sweep_loop())
            .map_err(|e| Error::io("spawning the sweeper thread", e))?;
        self.threads.lock().push(handle);
        Ok(())
    }

    /// Drops stale incoming transfers (and their `.part` files) a few times per deadline.
    fn sweep_loop(self: Arc<Self>) {
        let every = (incoming::stale_after(&self.tuning) / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut last = Instant::now();
        while !self.is_shutting_down() {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= every {
                self.incoming.sweep_stale();
                last = Instant::now();
            }
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// An established connection to `peer`, dialing it if needed, retrying until `deadline`.
    pub fn connection_to(
        self: &Arc<Self>,
        peer: &Peer,
        lane: Lane,
        deadline: Instant,
    ) -> Result<Arc<Conn>> {
        if let Some(c) = self.live_conn(peer.key, lane) {
            return Ok(c);
        }
        let gate = Arc::clone(self.dialing.lock().entry((peer.key, lane)).or_default());
        let _dialing = gate.lock();
        let mut backoff = Duration::from_millis(20);
        loop {
            if let Some(c) = self.live_conn(peer.key, lane) {
                return Ok(c);
            }
            if self.is_shutting_down() {
                return Err(Error::Shutdown);
            }
            if let Some(reason) = self.refused.recent(peer.key) {
                return Err(Error::Rejected { reason });
            }
            let err = match handshake::dial(self, peer, lane, deadline) {
                Ok(c) => return Ok(c),
                Err(e @ (Error::Rejected { .. } | Error::NodeNotFound { .. })) => return Err(e),
                Err(e) => e,
            };
            let now = Instant::now();
            if now + backoff >= deadline {
                // Routes avoid a node nobody can reach until it connects or is dialed again.
                self.router
                    .lock()
                    .topology_mut()
                    .set_node_up(&peer.id, false);
                return Err(Error::Unreachable {
                    node: peer.id.clone(),
                    reason: err.reason_about(&peer.id),
                });
            }
            tracing::debug!(peer = %peer.id, "dial failed, retrying in {backoff:?}: {err}");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    pub(super) fn live_conn(&self, key: u64, lane: Lane) -> Option<Arc<Conn>> {
        self.conns
            .lock()
            .get(&(key, lane))
            .filter(|c| c.is_alive())
            .cloned()
    }

    /// Called once a handshake succeeded, on either side.
    fn adopt(&self, conn: Arc<Conn>) {
        // A node we hold a connection with is up, whatever an earlier failure said.
        self.router
            .lock()
            .topology_mut()
            .set_node_up(&conn.peer, true);
        self.all_conns.lock().push(Arc::clone(&conn));
        self.conns.lock().insert((conn.peer_key, conn.lane), conn);
    }

    /// Called by a reader thread when its connection ends.
    fn forget(&self, conn: &Arc<Conn>, reason: &str) {
        conn.mark_dead();
        if conn.is_observer() {
            // Its metrics slot goes with it: the slots stay bounded by the members and
            // MAX_OBSERVERS, whatever ids observers come and go under.
            if self.observers.forget(conn) {
                self.metrics.forget_link(conn.peer_key);
            }
            return tracing::debug!(observer = %conn.peer, "connection closed: {reason}");
        }
        {
            let mut conns = self.conns.lock();
            if conns
                .get(&(conn.peer_key, conn.lane))
                .is_some_and(|c| Arc::ptr_eq(c, conn))
            {
                conns.remove(&(conn.peer_key, conn.lane));
            }
        }
        self.all_conns.lock().retain(|c| !Arc::ptr_eq(c, conn));
        self.outgoing.connection_lost(conn.peer_key);
        tracing::debug!(peer = %conn.peer, "connection closed: {reason}");
    }

    pub fn next_transfer_id(&self) -> u64 {
        self.next_transfer.fetch_add(1, Ordering::Relaxed)
    }

    pub fn next_ping_seq(&self) -> u64 {
        self.next_ping.fetch_add(1, Ordering::Relaxed)
    }

    pub fn recv_timeout(self: &Arc<Self>, timeout: Option<Duration>) -> Result<Message> {
        self.incoming.check_receivable()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        if let Some(msg) = drive::recv_driven(self, deadline) {
            return Ok(msg);
        }
        self.incoming
            .recv(deadline.map(|d| d.saturating_duration_since(Instant::now())))
    }

    /// Fills `out` with the live connections that carry frames over shared memory.
    pub(super) fn shm_links(&self, out: &mut Vec<Arc<Conn>>) {
        out.clear();
        out.extend(
            self.all_conns
                .lock()
                .iter()
                .filter(|c| c.is_shm() && c.is_alive())
                .cloned(),
        );
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let s = self.stats.snapshot(self.all_conns.lock().len());
        match &self.faults {
            Some(f) => s.with_faults(&f.counters),
            None => s,
        }
    }

    /// Says goodbye to every peer, stops the listener and the reader threads.
    pub fn shutdown(&self) {
        if self.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let conns: Vec<_> = self.all_conns.lock().drain(..).collect();
        for c in &conns {
            c.close("node shutting down");
        }
        self.observers.close_all();
        self.conns.lock().clear();
        self.outgoing.fail_all();
        self.incoming.drop_all();
        // Wake the blocking accept() with a throwaway connection.
        let _ = TcpStream::connect_timeout(&self.local_addr, Duration::from_millis(200));
        let handles: Vec<_> = self.threads.lock().drain(..).collect();
        for h in handles {
            let _ = h.join();
        }
        tracing::info!(node = %self.me, "node stopped");
    }
}
