//! Starting a node from the launcher: rank 0 serves the rendezvous store, every rank starts
//! its node, publishes its record, admits the others' and waits until every record lists it.
//! A thread then keeps the fabric current (joins, leaves, lease keep-alives) until drop.

use super::client::StoreClient;
use super::etcd_settings;
use super::store::Store;
use super::sync::{Directory, Members};
use super::{record_key, NodeRecord, RECORD_PREFIX};
use crate::auth::Secret;
use crate::bootstrap::{HostId, Launch};
use crate::config::{FabricConfig, NodeConfig};
use crate::error::{Error, Result};
use crate::{Fabric, FabricBuilder};
use parking_lot::Mutex;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the membership thread reads a directory it cannot watch (or whose watch is
/// down); a watched one is read when it says it changed.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// A watched directory is read anyway this often (a change the watch missed is seen then).
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest and longest lease a node may ask for.
pub const LEASE_MIN: Duration = Duration::from_secs(1);
pub const LEASE_MAX: Duration = Duration::from_secs(600);

/// How a node joins.
pub struct JoinOptions {
    pub launch: Launch,
    /// The optional fabric file: profile, security, links, zones, policies.
    pub file: Option<FabricConfig>,
    /// This node's id (default: `rank-N`).
    pub node_id: Option<String>,
    /// Where this node listens (default: the file's address, else the address that routes
    /// to the rendezvous store, any free port).
    pub listen: Option<SocketAddr>,
    /// How long start-up waits for the whole world.
    pub timeout: Duration,
    /// A record not kept alive for this long disappears (its node is dismissed).
    pub lease: Duration,
    /// Keep records in etcd instead of rank 0's rendezvous store (over the file's
    /// `membership.url`).
    pub etcd: Option<super::etcd::EtcdUrl>,
    /// How to get into that etcd: TLS files, a user (all optional; each over the file's
    /// `[membership]` field; a user's password from here, else the file's
    /// `password_file`, else `HF_ETCD_PASSWORD`).
    pub etcd_access: super::etcd_access::EtcdAccess,
}

/// A joined node; dropping it withdraws its record, stops membership and the node.
pub struct Joined {
    pub fabric: Arc<Fabric>,
    pub launch: Launch,
    /// Which directory holds the records (`rendezvous HOST:PORT`).
    pub directory: String,
    /// The store this process serves (rank 0 only).
    pub store: Option<SocketAddr>,
    /// The etcd settings in force (never the password); `None` without etcd.
    pub etcd: Option<super::etcd_access::EtcdSummary>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    reads: Arc<Mutex<Reads>>,
    _store: Option<Store>,
}

/// How the membership thread has read the directory since start-up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Reads {
    /// The directory's watch streams now (etcd): joins and leaves need no polling.
    pub watching: bool,
    /// Reads the watch asked for (a record put or deleted, or the watch (re)created).
    pub on_change: u64,
    /// Reads by polling: the directory has no watch, or its watch was down.
    pub polls: u64,
    /// Reads of a watched directory every [`RESYNC_INTERVAL`].
    pub resyncs: u64,
}

impl Joined {
    /// How membership has read the directory so far.
    pub fn reads(&self) -> Reads {
        *self.reads.lock()
    }

    /// Stops membership: the record is withdrawn, the others dismiss this node.
    pub fn leave(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The rendezvous store as a [`Directory`]: a record is re-put to keep it alive.
struct StoreDirectory {
    client: StoreClient,
    ttl_ms: u32,
    last: Option<(String, Vec<u8>)>,
}

impl Directory for StoreDirectory {
    fn publish(&mut self, id: &str, record: &[u8]) -> Result<()> {
        self.client.put(&record_key(id), record, self.ttl_ms)?;
        self.last = Some((id.to_owned(), record.to_vec()));
        Ok(())
    }
    fn withdraw(&mut self, id: &str) -> Result<()> {
        self.last = None;
        self.client.delete(&record_key(id))
    }
    fn records(&mut self) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .client
            .list(RECORD_PREFIX)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }
    fn keepalive(&mut self) -> Result<()> {
        match &self.last {
            Some((id, v)) => self.client.put(&record_key(id), v, self.ttl_ms),
            None => Ok(()),
        }
    }
    fn describe(&self) -> String {
        format!("rendezvous {}", self.client.target())
    }
}

/// The fabric file (or a one-node fabric) with this node in it.
fn config_for(file: Option<&FabricConfig>, me: &str) -> Result<FabricConfig> {
    let mut cfg = match file {
        Some(f) => f.clone(),
        None => FabricConfig::from_toml_str(
            &format!("[fabric]\nname = \"job\"\n\n[[nodes]]\nid = \"{me}\"\nhardware = \"cpu-cluster\"\n"),
            "(bootstrap)",
        )?,
    };
    if cfg.node(me).is_none() {
        let hw = crate::node::HardwareType::CpuCluster;
        cfg.nodes.push(NodeConfig {
            signature: crate::node::NodeSignature::new(me, hw),
            listen: None,
            zone: None,
            host: None,
        });
    }
    Ok(cfg)
}

/// The local address the kernel would use to reach `target` (no packet is sent).
fn address_towards(target: SocketAddr) -> Result<IpAddr> {
    let any: SocketAddr = match target {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = UdpSocket::bind(any).map_err(|e| Error::io("choosing a listen address", e))?;
    s.connect(target).map_err(|e| {
        Error::io(
            format!("no route towards the membership directory {target}"),
            e,
        )
    })?;
    Ok(s.local_addr()
        .map_err(|e| Error::io("choosing a listen address", e))?
        .ip())
}

/// Starts this node and joins the fabric. `customize` sets what the builder should also do
/// (sink, transport, CPU set). Rank 0 serves the rendezvous store at the master's port.
pub fn join(
    opts: JoinOptions,
    customize: impl FnOnce(FabricBuilder) -> FabricBuilder,
) -> Result<Joined> {
    let lease = opts.lease;
    if !(LEASE_MIN..=LEASE_MAX).contains(&lease) {
        return Err(Error::InvalidArgument(format!(
            "membership lease {lease:?}: must be {LEASE_MIN:?}..={LEASE_MAX:?}"
        )));
    }
    let launch = opts.launch.clone();
    let me = opts.node_id.clone().unwrap_or_else(|| launch.node_id());
    let cfg = config_for(opts.file.as_ref(), &me)?;
    let secret = Secret::from_config(&cfg, &me)?;
    let deadline = Instant::now() + opts.timeout;
    let env = |k: &str| std::env::var(k).ok();
    let etcd = etcd_settings::resolve(
        opts.etcd.as_ref(),
        &opts.etcd_access,
        opts.file.as_ref(),
        &env,
    )?;
    let (dir, store, target) = open_directory(&opts, etcd.as_ref(), secret, deadline)?;
    let listen = match opts.listen.or(cfg.node(&me).and_then(|n| n.listen)) {
        Some(a) => a,
        None => SocketAddr::new(address_towards(target)?, 0),
    };
    let signature = cfg.node(&me).map(|n| n.signature.clone());
    let knobs = etcd.as_ref().map(|e| e.knobs.clone()).unwrap_or_default();
    let builder = Fabric::from_config(cfg)
        .node(&me)
        .listen(listen)
        .joined(knobs);
    let builder = customize(builder);
    let fabric = Arc::new(builder.start()?);
    let host = HostId::of_this_process();
    let record = NodeRecord {
        id: me.clone(),
        addr: fabric.local_addr(),
        host: host.0.clone(),
        signature: signature.unwrap_or_else(|| {
            crate::node::NodeSignature::new(&me, crate::node::HardwareType::CpuCluster)
        }),
        knows: Vec::new(),
    };
    let directory = dir.describe();
    let mut members = Members {
        dir,
        me: record,
        file: opts.file,
        known: Default::default(),
    };
    wait_publish(&mut members, deadline)?;
    wait_ready(&mut members, &fabric, &launch, deadline)?;
    tracing::info!(
        node = %me, source = ?launch.source, rank = launch.rank, world = launch.world_size,
        %directory, host = %host, "joined the fabric"
    );
    check_local_world(&members, &launch);
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(Mutex::new(Reads::default()));
    let keeper = Keeper {
        m: members,
        fabric: Arc::clone(&fabric),
        stop: Arc::clone(&stop),
        reads: Arc::clone(&reads),
        renew_every: lease / 3,
    };
    let thread = keeper.spawn()?;
    Ok(Joined {
        fabric,
        launch,
        directory,
        store: store.as_ref().map(Store::addr),
        etcd: etcd.as_ref().map(etcd_settings::Resolved::summary),
        stop,
        thread: Some(thread),
        reads,
        _store: store,
    })
}

/// The directory records live in (etcd, else the rendezvous store rank 0 serves), the
/// store this process serves, and the address to choose our listen address towards.
fn open_directory(
    opts: &JoinOptions,
    etcd: Option<&etcd_settings::Resolved>,
    secret: Option<Secret>,
    deadline: Instant,
) -> Result<(Box<dyn Directory>, Option<Store>, SocketAddr)> {
    let launch = &opts.launch;
    if let Some(etcd_settings::Resolved { url, access, .. }) = etcd {
        // Settings that cannot work (TLS files on etcd://, a user without password) are
        // refused before any wait.
        let client = super::etcd::EtcdClient::new(url.clone(), access)?;
        if secret.is_some() {
            tracing::info!(
                "etcd holds the records; the fabric's secret still authenticates every \
                 connection between nodes, etcd's own access control guards the records"
            );
        }
        let what = format!("resolving {url}");
        let target = retry(&what, deadline, || {
            let mut addrs = url
                .authority
                .to_socket_addrs()
                .map_err(|e| Error::io(format!("resolving {url}"), e))?;
            Ok(addrs.next())
        })?;
        let dir = super::etcd::EtcdDirectory::new(client, opts.lease.as_secs().max(1));
        return Ok((Box::new(dir), None, target));
    }
    let client = StoreClient::new(&launch.master_host, launch.master_port, secret.clone());
    let store = match launch.rank {
        0 => Some(serve_store(&client, launch.master_port, secret)?),
        _ => None,
    };
    let target = wait_resolve(&client, deadline)?;
    let ttl_ms = u32::try_from(opts.lease.as_millis()).unwrap_or(u32::MAX);
    let dir = StoreDirectory {
        client,
        ttl_ms,
        last: None,
    };
    Ok((Box::new(dir), store, target))
}

fn serve_store(client: &StoreClient, port: u16, secret: Option<Secret>) -> Result<Store> {
    if secret.is_none() {
        tracing::warn!(
            "the rendezvous store has no secret (no secret_file in a fabric file): any process \
             that reaches it can publish a node"
        );
    }
    // All interfaces of the master's address family, like torch's TCPStore.
    let any: SocketAddr = match client.resolve() {
        Ok(SocketAddr::V6(_)) => (std::net::Ipv6Addr::UNSPECIFIED, port).into(),
        _ => ([0, 0, 0, 0], port).into(),
    };
    Store::start(any, secret)
}

/// Retries until `deadline`, sleeping `pause` between tries; the last error on timeout.
fn retry<T>(what: &str, deadline: Instant, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let started = Instant::now();
    let mut last = String::from("nothing tried");
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e @ (Error::Rejected { .. } | Error::Credentials { .. })) => return Err(e),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() + POLL_INTERVAL > deadline {
            return Err(Error::Timeout {
                what: format!("{what} (last: {last})"),
                after: started.elapsed(),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn wait_resolve(client: &StoreClient, deadline: Instant) -> Result<SocketAddr> {
    retry("resolving the rendezvous store", deadline, || {
        client.resolve().map(Some)
    })
}

fn wait_publish(m: &mut Members, deadline: Instant) -> Result<()> {
    let what = format!("publishing our record at {}", m.dir.describe());
    retry(&what, deadline, || m.publish().map(Some))
}

fn wait_ready(m: &mut Members, fabric: &Fabric, launch: &Launch, deadline: Instant) -> Result<()> {
    let world = launch.world_size as usize;
    let what = format!("waiting for {world} nodes at {}", m.dir.describe());
    retry(&what, deadline, || {
        m.sync(fabric)?;
        Ok(m.ready(world).then_some(()))
    })
}

/// The launcher's local world size against the host ids: a mismatch means shared memory
/// will not be used where the launcher expected it (or the other way round).
fn check_local_world(m: &Members, launch: &Launch) {
    if let Some(n) = launch.local_world_size {
        let here = m.on_my_host();
        if here != n as usize {
            tracing::warn!(
                "the launcher says {n} processes share this host, the host ids say {here}: \
                 nodes with another host id are reached over TCP (set HF_HOST_ID to group them)"
            );
        }
    }
}

/// Longest pause between reads of a directory that keeps failing (while unwatched).
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Retries of one request to a directory that fails (etcd down or restarting): the pause
/// doubles from [`POLL_INTERVAL`] up to `max`; the first failure is a warning, the next
/// ones debug lines, and the first success after them says the directory is back.
struct Retry<'a> {
    what: &'a str,
    max: Duration,
    failures: u32,
    next: Option<Instant>,
}

impl<'a> Retry<'a> {
    fn new(what: &'a str, max: Duration) -> Retry<'a> {
        Retry {
            what,
            max,
            failures: 0,
            next: None,
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.next.is_none_or(|t| now >= t)
    }

    fn failed(&mut self, now: Instant, op: &str, e: &Error) {
        self.failures = self.failures.saturating_add(1);
        let pause = POLL_INTERVAL
            .saturating_mul(1 << self.failures.min(8))
            .min(self.max);
        self.next = Some(now + pause);
        match self.failures {
            1 => tracing::warn!(
                "membership: {}: {op} failed ({e}); retrying with back-off up to {:?}",
                self.what,
                self.max
            ),
            n => tracing::debug!("membership: {}: {op} failed {n} times: {e}", self.what),
        }
    }

    fn ok(&mut self, op: &str) {
        if self.failures > 0 {
            tracing::info!(
                "membership: {}: {op} works again after {} failed attempt(s)",
                self.what,
                self.failures
            );
        }
        (self.failures, self.next) = (0, None);
    }
}

/// The membership thread: keeps the lease alive and the fabric equal to the directory.
struct Keeper {
    m: Members,
    fabric: Arc<Fabric>,
    stop: Arc<AtomicBool>,
    reads: Arc<Mutex<Reads>>,
    renew_every: Duration,
}

impl Keeper {
    fn spawn(self) -> Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("hf-membership".into())
            .spawn(move || self.run())
            .map_err(|e| Error::io("spawning the membership thread", e))
    }

    fn run(mut self) {
        let watch = self.m.dir.watch(Arc::clone(&self.stop));
        let (mut renewed, mut synced) = (Instant::now(), Instant::now());
        let what = self.m.dir.describe();
        let mut renewing = Retry::new(&what, self.renew_every.max(POLL_INTERVAL));
        let mut reading = Retry::new(&what, RETRY_MAX);
        while !self.stop.load(Ordering::Acquire) {
            // Woken early by a change; otherwise the tick for keep-alives and polling.
            let feed = watch.as_ref().map(|(feed, _)| feed);
            let changed = match feed {
                Some(f) => f.wait(POLL_INTERVAL),
                None => {
                    std::thread::sleep(POLL_INTERVAL);
                    false
                }
            };
            let live = feed.is_some_and(|f| f.is_live());
            let now = Instant::now();
            if renewed.elapsed() >= self.renew_every && renewing.due(now) {
                match self.m.dir.keepalive() {
                    Ok(()) => {
                        renewed = Instant::now();
                        renewing.ok("keep-alive");
                    }
                    Err(e) => renewing.failed(now, "keep-alive", &e),
                }
            }
            let resync = synced.elapsed() >= RESYNC_INTERVAL;
            {
                let mut r = self.reads.lock();
                r.watching = live;
                match (changed, live, resync) {
                    (true, _, _) => r.on_change += 1,
                    (false, false, _) if !reading.due(now) => continue,
                    (false, false, _) => r.polls += 1,
                    (false, true, true) => r.resyncs += 1,
                    (false, true, false) => continue,
                }
            }
            synced = Instant::now();
            match self.m.sync(&self.fabric) {
                Ok(_) => reading.ok("reading the records"),
                Err(e) => reading.failed(now, "reading the records", &e),
            }
        }
        let id = self.m.me.id.clone();
        if let Err(e) = self.m.dir.withdraw(&id) {
            tracing::debug!("membership: withdrawing our record: {e}");
        }
        if let Some((_, handle)) = watch {
            let _ = handle.join();
        }
    }
}
