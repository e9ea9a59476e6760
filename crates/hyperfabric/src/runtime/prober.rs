//! Background health probes of multipath first hops: a few threads per node (at most
//! [`MAX_WORKERS`], started by the first multipath sends) dial every watched hop once per
//! health-check interval, so a send learns which of its paths are up without dialing a dead
//! hop on its own thread, and a silent hop delays only its own verdict.
//!
//! A probe is one handshake attempt, bounded by the interval (and the connect timeout): a
//! hop that refuses is known down within milliseconds, a silent one within one interval.
//! The table is bounded ([`MAX_WATCHED`]); a hop no send asked about for [`WATCH_FOR`]
//! intervals is forgotten.

use super::{handshake, Conn, Lane, NodeInner, Peer};
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

/// One probe: the live connection, or one handshake attempt (the interval is the retry).
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
    let _dialing = gate.lock();
    if let Some(c) = node.live_conn(peer.key, lane) {
        return Ok(c);
    }
    if node.is_shutting_down() {
        return Err(Error::Shutdown);
    }
    handshake::dial(node, peer, lane, deadline)
}
