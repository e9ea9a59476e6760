//! Background health probes of multipath first hops: a few threads per node (at most
//! [`MAX_WORKERS`], started by the first multipath sends) dial every watched hop once per
//! health-check interval, so a send learns which of its paths are up without dialing a dead
//! hop on its own thread, and a silent hop delays only its own verdict.
//!
//! A probe is one handshake attempt, bounded by the interval (and the connect timeout): a
//! hop that refuses is known down within milliseconds, a silent one within one interval.
//! The table is bounded ([`MAX_WATCHED`]); a hop no send asked about for [`WATCH_FOR`]
//! intervals is forgotten.

use super::handshake::{self, DialBound};
use super::{Conn, Lane, NodeInner, Peer};
use crate::error::Error;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Hops (per lane) the prober of one node watches at most.
pub(crate) const MAX_WATCHED: usize = 256;
/// Probe threads of one node at most (one per watched hop up to this).
const MAX_WORKERS: usize = 4;
/// A hop is dropped from the table after this many intervals without a send asking.
const WATCH_FOR: u32 = 64;
/// The shortest probe interval (a smaller health-check interval is probed at this pace).
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest sleep between two looks at the shutdown flag.
const TICK: Duration = Duration::from_millis(100);

/// What the last probe of a hop found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// Not probed since it was first watched.
    Unknown,
    Up,
    Down,
}

struct Entry {
    peer: Arc<Peer>,
    lane: Lane,
    interval: Duration,
    health: Health,
    last_error: Option<String>,
    next_at: Instant,
    watched_until: Instant,
    /// A worker is probing it now (the others take the next hop).
    probing: bool,
}

#[derive(Default)]
pub(crate) struct Prober {
    table: Mutex<HashMap<(u64, Lane), Entry>>,
    /// Bumped at every verdict that changes a hop's health (senders re-read only then).
    changes: AtomicU64,
    /// Signalled at every verdict (senders waiting for a first up path) and every new watch.
    wake: (Mutex<()>, Condvar),
    workers: AtomicUsize,
}

impl Prober {
    /// Watches `hops` on `lane` at `interval` (the shortest interval asked wins). Hops not
    /// probed yet are probed at once. False if the table is full (the caller then dials
    /// its paths itself, as a single-path send does).
    pub fn watch(
        &self,
        node: &Arc<NodeInner>,
        hops: &[Arc<Peer>],
        lane: Lane,
        interval: Duration,
    ) -> bool {
        let now = Instant::now();
        let interval = interval.max(MIN_INTERVAL);
        let until = now + interval.saturating_mul(WATCH_FOR);
        {
            let mut table = self.table.lock();
            table.retain(|_, e| e.watched_until > now);
            let new = hops
                .iter()
                .filter(|h| !table.contains_key(&(h.key, lane)))
                .count();
            if table.len() + new > MAX_WATCHED {
                tracing::warn!(
                    "{MAX_WATCHED} multipath hops already probed: this send's paths are not"
                );
                return false;
            }
            for hop in hops {
                let e = table.entry((hop.key, lane)).or_insert_with(|| Entry {
                    peer: Arc::clone(hop),
                    lane,
                    interval,
                    health: Health::Unknown,
                    last_error: None,
                    next_at: now,
                    watched_until: until,
                    probing: false,
                });
                e.interval = e.interval.min(interval);
                e.watched_until = e.watched_until.max(until);
            }
            let want = table.len().min(MAX_WORKERS);
            drop(table);
            self.start(node, want);
        }
        self.notify();
        true
    }

    /// The hop's health and the reason of its last failed probe.
    pub fn health(&self, key: u64, lane: Lane) -> (Health, Option<String>) {
        self.table
            .lock()
            .get(&(key, lane))
            .map_or((Health::Unknown, None), |e| {
                (e.health, e.last_error.clone())
            })
    }

    /// Counter of health changes (cheap to compare per chunk).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Probe these hops now (every path of a send is down).
    pub fn hurry(&self, keys: &[u64], lane: Lane) {
        let now = Instant::now();
        let mut table = self.table.lock();
        for k in keys {
            if let Some(e) = table.get_mut(&(*k, lane)) {
                e.next_at = e.next_at.min(now);
            }
        }
        drop(table);
        self.notify();
    }

    /// Waits (at most until `deadline`) for the next verdict.
    pub fn wait_verdict(&self, deadline: Instant) {
        let mut g = self.wake.0.lock();
        let wait = deadline.saturating_duration_since(Instant::now()).min(TICK);
        self.wake.1.wait_for(&mut g, wait);
    }

    fn notify(&self) {
        let _g = self.wake.0.lock();
        self.wake.1.notify_all();
    }

    /// Starts workers until there are `want` (never more than [`MAX_WORKERS`]).
    fn start(&self, node: &Arc<NodeInner>, want: usize) {
        while !node.is_shutting_down() {
            let n = self.workers.load(Ordering::Acquire);
            if n >= want.min(MAX_WORKERS) {
                return;
            }
            if self
                .workers
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let node2 = Arc::clone(node);
            let spawned = std::thread::Builder::new()
                .name(format!("hf-probe-{}-{n}", node.me))
                .spawn(move || probe_loop(&node2));
            match spawned {
                Ok(h) => node.threads.lock().push(h),
                Err(e) => {
                    self.workers.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!("cannot spawn a multipath probe thread: {e}");
                    return;
                }
            }
        }
    }

    /// The next hop due (and when the earliest one is due otherwise).
    /// Taken (marked `probing`) when due.
    fn due(&self, now: Instant) -> Result<(Arc<Peer>, Lane, Duration), Instant> {
        let mut table = self.table.lock();
        let next = table
            .values_mut()
            .filter(|e| !e.probing)
            .min_by_key(|e| e.next_at);
        match next {
            Some(e) if e.next_at <= now => {
                e.probing = true;
                Ok((Arc::clone(&e.peer), e.lane, e.interval))
            }
            Some(e) => Err(e.next_at),
            None => Err(now + TICK),
        }
    }

    fn record(&self, key: u64, lane: Lane, verdict: Result<(), String>, interval: Duration) {
        let mut table = self.table.lock();
        let Some(e) = table.get_mut(&(key, lane)) else {
            return;
        };
        e.probing = false;
        e.next_at = Instant::now() + e.interval.max(interval);
        let health = if verdict.is_ok() {
            Health::Up
        } else {
            Health::Down
        };
        let was = e.health;
        e.health = health;
        e.last_error = verdict.err();
        if was != health {
            match (&e.last_error, was) {
                (Some(why), _) => {
                    tracing::info!(hop = %e.peer.id, "multipath probe: path is down: {why}")
                }
                (None, Health::Down) => {
                    tracing::info!(hop = %e.peer.id, "multipath probe: path is up again")
                }
                (None, _) => tracing::debug!(hop = %e.peer.id, "multipath probe: path is up"),
            }
            self.changes.fetch_add(1, Ordering::AcqRel);
        }
        drop(table);
        self.notify();
    }
}

fn probe_loop(node: &Arc<NodeInner>) {
    let prober = &node.prober;
    while !node.is_shutting_down() {
        // Looked up under the wake lock: a watch between the look and the wait is not lost.
        let mut g = prober.wake.0.lock();
        let now = Instant::now();
        let (peer, lane, interval) = match prober.due(now) {
            Ok(due) => due,
            Err(at) => {
                let wait = at.saturating_duration_since(now).min(TICK);
                prober.wake.1.wait_for(&mut g, wait);
                continue;
            }
        };
        drop(g);
        let budget = interval.min(Duration::from_millis(node.tuning.connect_timeout_ms));
        let verdict = probe(node, &peer, lane, now + budget)
            .map(|_| ())
            .map_err(|e| e.reason_about(&peer.id));
        prober.record(peer.key, lane, verdict, interval);
    }
}

/// One probe: the live connection, or one handshake attempt (the interval is the retry),
/// all of it (waiting for another thread's dial of the hop, connect, TLS, the greeting)
/// over by `deadline`.
fn probe(
    node: &Arc<NodeInner>,
    peer: &Peer,
    lane: Lane,
    deadline: Instant,
) -> crate::error::Result<Arc<Conn>> {
    if let Some(c) = node.live_conn(peer.key, lane) {
        return Ok(c);
    }
    let gate = Arc::clone(node.dialing.lock().entry((peer.key, lane)).or_default());
    let Some(_dialing) = gate.try_lock_until(deadline) else {
        return Err(Error::Unreachable {
            node: peer.id.clone(),
            reason: "another dial of this hop did not finish within the probe's budget".into(),
        });
    };
    if let Some(c) = node.live_conn(peer.key, lane) {
        return Ok(c);
    }
    if node.is_shutting_down() {
        return Err(Error::Shutdown);
    }
    handshake::dial_bounded(node, peer, lane, deadline, DialBound::Whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FabricConfig;
    use crate::runtime::Sink;
    use crate::transport::TransportChoice;
    use std::net::{SocketAddr, TcpListener};

    /// Long enough that only a probe that is not waited on can finish before it.
    const SLOW_MS: u64 = 20_000;

    /// A fabric of `me`, `live` and the silent hops, every wait `SLOW_MS` unless bounded
    /// (`me` and, before it listens, `live` are given placeholder addresses).
    fn fabric(live: SocketAddr, silent: &[SocketAddr]) -> FabricConfig {
        let mut text = format!(
            "[fabric]\nname = \"probe\"\nconnect_timeout_ms = {SLOW_MS}\n\
             handshake_timeout_ms = {SLOW_MS}\n\
             [[nodes]]\nid = \"me\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:2\"\n\
             [[nodes]]\nid = \"live\"\nhardware = \"cpu-cluster\"\nlisten = \"{live}\"\n"
        );
        for (i, a) in silent.iter().enumerate() {
            text += &format!(
                "[[nodes]]\nid = \"silent-{i}\"\nhardware = \"cpu-cluster\"\nlisten = \"{a}\"\n"
            );
        }
        FabricConfig::from_toml_str(&text, "probe.toml").unwrap()
    }

    /// Sockets that listen and never accept: a dial connects (the kernel's backlog) and
    /// then hears nothing.
    fn silent_hops(n: usize) -> (Vec<TcpListener>, Vec<SocketAddr>) {
        let ls: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs = ls.iter().map(|l| l.local_addr().unwrap()).collect();
        (ls, addrs)
    }

    /// `me` and a served `live` node knowing `n` silent hops.
    fn nodes(n: usize) -> (Arc<NodeInner>, Arc<NodeInner>, Vec<TcpListener>) {
        let (silent, addrs) = silent_hops(n);
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let start = |cfg: &FabricConfig, id: &str, at: SocketAddr| {
            NodeInner::start(
                cfg,
                id,
                Sink::Memory,
                Some(at),
                (TransportChoice::Tcp, false),
            )
            .unwrap()
        };
        let placeholder = SocketAddr::from(([127, 0, 0, 1], 1));
        let live = start(&fabric(placeholder, &addrs), "live", any);
        let me = start(&fabric(live.local_addr, &addrs), "me", any);
        (me, live, silent)
    }

    fn hops(node: &NodeInner, ids: &[String]) -> Vec<Arc<Peer>> {
        ids.iter()
            .map(|id| Arc::new(node.peer_by_id(id).unwrap()))
            .collect()
    }

    /// Waits (bounded by `within`) until `done` holds of the prober.
    fn wait_for(p: &Prober, within: Duration, done: impl Fn(&Prober) -> bool) -> bool {
        let until = Instant::now() + within;
        while !done(p) && Instant::now() < until {
            p.wait_verdict(until);
        }
        done(p)
    }

    #[test]
    fn a_silent_hop_does_not_delay_the_live_hops_verdict() {
        let (me, live, silent) = nodes(1);
        let interval = Duration::from_millis(SLOW_MS);
        let watched = hops(&me, &["silent-0".into(), "live".into()]);
        let (s, l) = (watched[0].key, watched[1].key);
        assert!(me.prober.watch(&me, &watched, Lane::Bulk, interval));
        let up = wait_for(&me.prober, interval, |p| {
            p.health(l, Lane::Bulk).0 == Health::Up
        });
        assert!(up, "the live hop has no verdict within one interval");
        // Its verdict did not wait for the silent hop's probe, which is still waiting.
        assert_eq!(me.prober.health(s, Lane::Bulk).0, Health::Unknown);
        drop(silent); // resets the pending connection: the probe ends now
        me.shutdown();
        live.shutdown();
    }

    #[test]
    fn silent_hops_are_down_within_the_probe_budget_on_bounded_threads() {
        let n = MAX_WORKERS + 2;
        let (me, live, silent) = nodes(n);
        let ids: Vec<String> = (0..n).map(|i| format!("silent-{i}")).collect();
        let watched = hops(&me, &ids);
        // The handshake timeout is SLOW_MS: only the probe's own budget can end these.
        let interval = Duration::from_millis(300);
        assert!(me.prober.watch(&me, &watched, Lane::Bulk, interval));
        assert!(me.prober.workers.load(Ordering::Acquire) <= MAX_WORKERS);
        let all_down = |p: &Prober| {
            watched
                .iter()
                .all(|h| p.health(h.key, Lane::Bulk).0 == Health::Down)
        };
        let bound = Duration::from_millis(SLOW_MS / 2);
        assert!(
            wait_for(&me.prober, bound, all_down),
            "a silent probe ran past its budget"
        );
        let (_, why) = me.prober.health(watched[0].key, Lane::Bulk);
        let why = why.unwrap_or_default();
        assert!(why.contains("health probe's budget"), "{why}");
        assert_eq!(me.prober.workers.load(Ordering::Acquire), MAX_WORKERS);
        drop(silent);
        me.shutdown();
        live.shutdown();
    }
}
