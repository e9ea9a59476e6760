//! The paths one transfer is striped over: a first hop each (the destination itself, or a
//! relay), a weight, a connection, and counters. Chunks go to paths by smooth weighted
//! round-robin; a path whose connection breaks is marked down and its unacknowledged chunks
//! are sent again on the others; health checks try down paths again at an interval.
//! Paths of a multipath set are watched by the node's background prober (prober.rs): a
//! hop it finds down is skipped from the start and the sending thread never dials it.

use super::super::prober::Health;
use super::super::{Conn, Lane, NodeInner, Peer};
use crate::error::Error;
use serde::Serialize;
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How chunks are shared between paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathScheduler {
    /// Fixed weights, smooth weighted round-robin.
    #[default]
    WeightedRoundRobin,
    /// Weights follow each path's measured write throughput.
    Adaptive,
}

/// What a path did during one transfer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathReport {
    /// Source, first hop, …, destination.
    pub via: Vec<String>,
    pub weight: f64,
    pub bytes: u64,
    pub chunks: u64,
    /// The path broke during the transfer (its chunks were resent on the others).
    pub failed: bool,
    /// The background probe found the first hop down before the path carried anything:
    /// it was skipped (not a failover).
    pub skipped: bool,
    /// Why the path was down (its last failed dial or probe), if it was.
    pub error: Option<String>,
}

pub(crate) struct Path {
    /// Shared with the plan it came from (an endpoint's paths are renewed per transfer).
    pub first_hop: Arc<Peer>,
    pub via: Arc<[String]>,
    weight: f64,
    conn: Option<Arc<Conn>>,
    down: bool,
    failed: bool,
    credit: f64,
    bytes: u64,
    chunks: u64,
    write_time: Duration,
    last_error: Option<String>,
    /// Failed re-dials in a row, and when the next may be tried (while other paths are up).
    probe_fails: u32,
    next_probe: Option<Instant>,
    /// Down by the prober's verdict before it carried a chunk.
    skipped: bool,
    /// `conn` was set by a probe or health check, not by [`PathSet::conn`]: the transfer
    /// is not announced on it yet (its first chunk goes after the name's Meta frame).
    unannounced: bool,
}

/// The first hops of a transfer's paths: one without an allocation (the common case).
pub(crate) enum FirstHops {
    One(u64),
    Many(Vec<u64>),
}

impl FirstHops {
    pub fn contains(&self, key: u64) -> bool {
        match self {
            FirstHops::One(k) => *k == key,
            FirstHops::Many(keys) => keys.contains(&key),
        }
    }
}

impl Path {
    pub fn new(first_hop: Peer, via: Vec<String>, weight: f64) -> Path {
        Path::shared(Arc::new(first_hop), via.into(), weight)
    }

    /// A path over a hop and route already held elsewhere, with fresh per-transfer state.
    fn shared(first_hop: Arc<Peer>, via: Arc<[String]>, weight: f64) -> Path {
        Path {
            first_hop,
            via,
            weight: weight.max(f64::MIN_POSITIVE),
            conn: None,
            down: false,
            failed: false,
            credit: 0.0,
            bytes: 0,
            chunks: 0,
            write_time: Duration::ZERO,
            last_error: None,
            probe_fails: 0,
            next_probe: None,
            skipped: false,
            unannounced: false,
        }
    }
}

/// Inline for the common single path: renewing an endpoint's plan per transfer then
/// allocates nothing.
type Paths = SmallVec<[Path; 1]>;

/// Whether the node's prober decides which paths are up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Probed {
    /// One path: the sending thread dials it (no prober).
    No,
    /// Several paths, not yet handed to the prober (the first health check does).
    Pending,
    /// Watched; the prober's change counter when this set last read it.
    Yes { seen: u64 },
}

pub(crate) struct PathSet {
    paths: Paths,
    scheduler: PathScheduler,
    health_interval: Duration,
    last_health: Instant,
    probed: Probed,
    pub failovers: u32,
}

impl PathSet {
    pub fn new(
        paths: Vec<Path>,
        scheduler: PathScheduler,
        health_interval: Duration,
        now: Instant,
    ) -> PathSet {
        let probed = if paths.len() > 1 {
            Probed::Pending
        } else {
            Probed::No
        };
        PathSet {
            paths: Paths::from_vec(paths),
            scheduler,
            health_interval,
            last_health: now,
            probed,
            failovers: 0,
        }
    }

    /// The same paths for a new transfer: first hops, routes and weights, none of this
    /// transfer's state (its connections, counters, failures).
    pub fn renewed(&self, now: Instant) -> PathSet {
        PathSet {
            paths: self
                .paths
                .iter()
                .map(|p| Path::shared(Arc::clone(&p.first_hop), Arc::clone(&p.via), p.weight))
                .collect(),
            scheduler: self.scheduler,
            health_interval: self.health_interval,
            last_health: now,
            probed: match self.probed {
                Probed::No => Probed::No,
                _ => Probed::Pending,
            },
            failovers: 0,
        }
    }

    /// Keys of the first hops (their connection loss concerns this transfer).
    pub fn first_hop_keys(&self) -> FirstHops {
        match self.paths.as_slice() {
            [one] => FirstHops::One(one.first_hop.key),
            many => FirstHops::Many(many.iter().map(|p| p.first_hop.key).collect()),
        }
    }

    /// The next path to carry a chunk (smooth weighted round-robin over the paths that are up).
    pub fn pick(&mut self) -> Option<usize> {
        let adaptive = self.scheduler == PathScheduler::Adaptive;
        let weight = |p: &Path| {
            if adaptive {
                adaptive_weight(p)
            } else {
                p.weight
            }
        };
        let total: f64 = self.paths.iter().filter(|p| !p.down).map(weight).sum();
        let mut best: Option<usize> = None;
        for i in 0..self.paths.len() {
            if self.paths[i].down {
                continue;
            }
            let w = weight(&self.paths[i]);
            self.paths[i].credit += w;
            if best.is_none_or(|b| self.paths[i].credit > self.paths[b].credit) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            self.paths[b].credit -= total;
        }
        best
    }

    /// The connection of path `i`, dialing it if needed. A failed dial marks the path down.
    pub fn conn(
        &mut self,
        i: usize,
        node: &Arc<NodeInner>,
        lane: Lane,
        budget: Duration,
    ) -> Option<(Arc<Conn>, bool)> {
        let path = &mut self.paths[i];
        if let Some(c) = path.conn.as_ref().filter(|c| c.is_alive()) {
            return Some((Arc::clone(c), std::mem::take(&mut path.unannounced)));
        }
        if matches!(self.probed, Probed::Yes { .. }) {
            // The prober dials; this thread only takes the connection it made.
            let Some(c) = node.live_conn(path.first_hop.key, lane) else {
                path.last_error = Some("connection lost".into());
                self.mark_down(i);
                return None;
            };
            path.conn = Some(Arc::clone(&c));
            return Some((c, true));
        }
        match node.connection_to(&path.first_hop, lane, Instant::now() + budget) {
            Ok(c) => {
                path.conn = Some(Arc::clone(&c));
                Some((c, true))
            }
            Err(e) => {
                tracing::debug!(hop = %path.first_hop.id, "path down: {e}");
                path.last_error = Some(e.reason_about(&path.first_hop.id));
                self.mark_down(i);
                None
            }
        }
    }

    /// Path `i` broke: no more chunks on it until a health check brings it back.
    pub fn mark_down(&mut self, i: usize) {
        let many = self.paths.len() > 1;
        let path = &mut self.paths[i];
        if path.down {
            return;
        }
        path.down = true;
        path.conn = None;
        if many && path.chunks > 0 {
            path.failed = true;
            self.failovers += 1;
            tracing::info!(hop = %path.first_hop.id, "path failed; its chunks go on the other paths");
        } else if many && !path.skipped {
            path.skipped = true;
            let why = path.last_error.as_deref().unwrap_or("down");
            tracing::warn!(hop = %path.first_hop.id, "path skipped (down before it carried anything): {why}");
        }
    }

    /// Hands the paths to the node's prober; until it finds a hop up, its path stays down.
    /// False (the table is full): this set dials its paths itself.
    fn start_probing(&mut self, node: &Arc<NodeInner>, lane: Lane) -> bool {
        let hops: SmallVec<[Arc<Peer>; 4]> = self
            .paths
            .iter()
            .map(|p| Arc::clone(&p.first_hop))
            .collect();
        if !node.prober.watch(node, &hops, lane, self.health_interval) {
            self.probed = Probed::No;
            return false;
        }
        for p in self.paths.iter_mut() {
            p.down = true;
        }
        // Never equal to the prober's counter: the first look reads every verdict.
        self.probed = Probed::Yes { seen: u64::MAX };
        true
    }

    /// Follows the prober's verdicts: at each change, at the health-check interval, and
    /// while no path is up (waiting for a verdict, at most `budget` or one interval). A
    /// transfer's first look waits (at most one interval) for a verdict on every path, so
    /// the weights hold from the first chunk.
    fn follow_prober(&mut self, node: &Arc<NodeInner>, lane: Lane, now: Instant, budget: Duration) {
        let Probed::Yes { seen } = self.probed else {
            return;
        };
        let first = seen == u64::MAX;
        let prober = &node.prober;
        let changes = prober.changes();
        let due = now.duration_since(self.last_health) >= self.health_interval;
        if changes == seen && !due && !self.all_down() {
            return;
        }
        self.last_health = now;
        let mut unknown = self.apply_verdicts(node, lane, changes);
        let settling = first && unknown > 0;
        if !self.all_down() && !settling {
            return;
        }
        if self.all_down() {
            let keys: SmallVec<[u64; 4]> = self.paths.iter().map(|p| p.first_hop.key).collect();
            prober.hurry(&keys, lane);
        }
        let deadline = now + budget.max(self.health_interval);
        let settle = now + budget.min(self.health_interval);
        loop {
            let t = Instant::now();
            let waiting = (self.all_down() && t < deadline) || (first && unknown > 0 && t < settle);
            if !waiting || node.is_shutting_down() {
                break;
            }
            prober.wait_verdict(if self.all_down() { deadline } else { settle });
            let changes = prober.changes();
            unknown = self.apply_verdicts(node, lane, changes);
        }
        let waited = budget.max(self.health_interval);
        for p in self
            .paths
            .iter_mut()
            .filter(|p| p.down && p.last_error.is_none())
        {
            p.last_error = Some(format!("no verdict of its health probe within {waited:?}"));
        }
    }

    /// Brings up the paths the prober found up (with the connection it made) and takes
    /// down (or skips) those it found down. Returns how many are not probed yet.
    fn apply_verdicts(&mut self, node: &Arc<NodeInner>, lane: Lane, changes: u64) -> usize {
        self.probed = Probed::Yes { seen: changes };
        let mut unknown = 0;
        for i in 0..self.paths.len() {
            let key = self.paths[i].first_hop.key;
            match node.prober.health(key, lane) {
                (Health::Up, _) if self.paths[i].down => {
                    let Some(c) = node.live_conn(key, lane) else {
                        // Up at the last probe, gone since: probe it again.
                        node.prober.hurry(&[key], lane);
                        continue;
                    };
                    let p = &mut self.paths[i];
                    p.conn = Some(c);
                    p.unannounced = true;
                    p.down = false;
                    p.credit = 0.0;
                }
                (Health::Down, why) => {
                    let p = &mut self.paths[i];
                    if why.is_some() {
                        p.last_error = why;
                    }
                    if !p.down || (p.chunks == 0 && !p.skipped) {
                        p.down = false;
                        self.mark_down(i);
                    }
                }
                (Health::Unknown, _) => unknown += 1,
                (Health::Up, _) => {}
            }
        }
        unknown
    }

    /// Marks down every path whose connection died; true if any did.
    pub fn drop_dead(&mut self) -> bool {
        let dead: Vec<usize> = (0..self.paths.len())
            .filter(|&i| self.paths[i].conn.as_ref().is_some_and(|c| !c.is_alive()))
            .collect();
        for &i in &dead {
            self.mark_down(i);
        }
        !dead.is_empty()
    }

    pub fn all_down(&self) -> bool {
        self.paths.iter().all(|p| p.down)
    }

    /// Tries the down paths again: at the health-check interval, or at once when none is up.
    /// The re-dial runs on the sending thread, so while another path carries the data a
    /// silent first hop (no RST: every SYN unanswered) must not stall it: such a probe gets
    /// at most one interval, and a path that keeps failing is tried at doubling intervals
    /// (up to 32 of them).
    pub fn health_check(
        &mut self,
        node: &Arc<NodeInner>,
        lane: Lane,
        now: Instant,
        budget: Duration,
    ) {
        match self.probed {
            Probed::No => {}
            Probed::Pending => {
                if self.start_probing(node, lane) {
                    return self.follow_prober(node, lane, now, budget);
                }
            }
            Probed::Yes { .. } => return self.follow_prober(node, lane, now, budget),
        }
        let all_down = self.all_down();
        if !all_down && now.duration_since(self.last_health) < self.health_interval {
            return;
        }
        self.last_health = now;
        let interval = self.health_interval;
        for p in self.paths.iter_mut().filter(|p| p.down) {
            if !all_down && p.next_probe.is_some_and(|t| now < t) {
                continue;
            }
            let dial = if all_down {
                budget
            } else {
                budget.min(interval)
            };
            match node.connection_to(&p.first_hop, lane, Instant::now() + dial) {
                Ok(c) => {
                    tracing::info!(hop = %p.first_hop.id, "path is up again");
                    p.conn = Some(c);
                    p.unannounced = true;
                    p.down = false;
                    p.credit = 0.0;
                    p.probe_fails = 0;
                    p.next_probe = None;
                }
                Err(e) => {
                    p.last_error = Some(e.reason_about(&p.first_hop.id));
                    p.probe_fails = (p.probe_fails + 1).min(5);
                    p.next_probe = Some(Instant::now() + interval * (1u32 << p.probe_fails));
                }
            }
        }
    }

    pub fn record(&mut self, i: usize, bytes: u64, took: Duration) {
        let p = &mut self.paths[i];
        p.bytes += bytes;
        p.chunks += 1;
        p.write_time += took;
    }

    pub fn unreachable(&self, dst: &str) -> Error {
        if let [only] = &self.paths[..] {
            let mut reason = only
                .last_error
                .clone()
                .unwrap_or_else(|| "connection lost".into());
            if only.first_hop.id != dst {
                reason = format!("via {}: {reason}", only.first_hop.id);
            }
            return Error::Unreachable {
                node: dst.to_owned(),
                reason,
            };
        }
        let tried: Vec<String> = self
            .paths
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p.first_hop.id,
                    p.last_error.as_deref().unwrap_or("connection lost")
                )
            })
            .collect();
        Error::Unreachable {
            node: dst.to_owned(),
            reason: format!("no path is up ({})", tried.join("; ")),
        }
    }

    pub fn report(&self) -> Vec<PathReport> {
        self.paths
            .iter()
            .map(|p| PathReport {
                via: p.via.to_vec(),
                weight: p.weight,
                bytes: p.bytes,
                chunks: p.chunks,
                failed: p.failed,
                skipped: p.skipped,
                error: p.down.then(|| p.last_error.clone()).flatten(),
            })
            .collect()
    }

    /// The transport of the first hop of the main path (what this node chose).
    pub fn first_hop_transport(&self) -> crate::transport::TransportKind {
        self.main_path()
            .and_then(|p| p.conn.as_ref())
            .map_or(crate::transport::TransportKind::Tcp, |c| c.transport())
    }

    /// The main path's connection when it is a live shared-memory link (which the waiting
    /// caller may drive itself).
    pub fn shm_conn(&self) -> Option<&Arc<Conn>> {
        self.main_path()
            .and_then(|p| p.conn.as_ref())
            .filter(|c| c.is_shm() && c.is_alive())
    }

    /// The first hop of path `i`.
    pub fn first_hop(&self, i: usize) -> &Arc<Peer> {
        &self.paths[i].first_hop
    }

    /// The main path's connection if it is a caller-polled TCP link (`busy_poll`).
    pub fn polled_conn(&self) -> Option<&Arc<Conn>> {
        self.main_path()
            .and_then(|p| p.conn.as_ref())
            .filter(|c| c.caller_polls() && !c.is_shm() && c.is_alive())
    }

    /// The path that carried the most bytes (the "path taken" of a single-path report).
    pub fn main_path(&self) -> Option<&Path> {
        self.paths.iter().max_by_key(|p| p.bytes)
    }
}

/// Throughput seen on a path so far (bytes per second of write time), or its configured
/// weight until it has carried enough to measure.
fn adaptive_weight(p: &Path) -> f64 {
    if p.chunks < 4 || p.write_time.is_zero() {
        return p.weight;
    }
    p.bytes as f64 / p.write_time.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str) -> Peer {
        Peer {
            id: id.into(),
            key: crate::wire::node_key(id),
            addr: None,
        }
    }

    fn set(weights: &[f64]) -> PathSet {
        let paths = weights
            .iter()
            .enumerate()
            .map(|(i, w)| Path::new(peer(&format!("r{i}")), vec![], *w))
            .collect();
        PathSet::new(
            paths,
            PathScheduler::WeightedRoundRobin,
            Duration::from_secs(1),
            Instant::now(),
        )
    }

    #[test]
    fn smooth_round_robin_follows_the_weights() {
        let mut s = set(&[3.0, 1.0]);
        let picks: Vec<usize> = (0..400).map(|_| s.pick().unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 300);
        // Smooth: never more than 3 in a row on the heavy path.
        assert!(picks.windows(4).all(|w| w.contains(&1)));
    }

    #[test]
    fn down_paths_get_nothing_and_count_as_failover() {
        let mut s = set(&[1.0, 1.0]);
        s.record(0, 10, Duration::ZERO);
        s.record(1, 10, Duration::ZERO);
        s.mark_down(0);
        assert!((0..10).all(|_| s.pick() == Some(1)));
        assert_eq!(s.failovers, 1);
        s.mark_down(1);
        assert!(s.all_down() && s.pick().is_none());
        assert!(s.report().iter().all(|p| p.failed));
    }

    #[test]
    fn a_path_down_before_its_first_chunk_is_skipped_not_a_failover() {
        let mut s = set(&[1.0, 1.0]);
        s.paths[0].last_error = Some("connection refused".into());
        s.mark_down(0);
        assert!((0..10).all(|_| s.pick() == Some(1)));
        assert_eq!(s.failovers, 0);
        let r = s.report();
        assert!(r[0].skipped && !r[0].failed);
        assert_eq!(r[0].error.as_deref(), Some("connection refused"));
        assert!(!r[1].skipped && r[1].error.is_none());
    }
}
