//! The node's metrics registry: per-peer link slots, the rate window behind throughput and
//! CPU percentages, and the bookkeeping of remote metrics requests and replies.

use super::{LinkCounters, NodeMetrics};
use crate::config::FabricConfig;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest `MetricsReply` body a node sends (and a requester accepts).
pub const MAX_REPLY_BYTES: usize = 256 << 10;
/// A node answers one peer at most once per this many milliseconds; extra requests are dropped.
pub const MIN_REPLY_INTERVAL_MS: u64 = 50;
/// A built reply is reused for this long, whoever asks: building it is the costly part.
const REPLY_CACHE: Duration = Duration::from_millis(100);
/// Rates are computed over windows of at least this long (however often snapshots are taken).
const MIN_RATE_WINDOW: Duration = Duration::from_millis(500);
/// Most metrics requests of this node waiting for their reply at once.
const MAX_PENDING: usize = 1024;

/// Counters, rates and rate base of the previous window.
#[derive(Default)]
struct RateWindow {
    at: Option<Instant>,
    cpu_seconds: f64,
    bytes: HashMap<String, (u64, u64)>,
    cpu_percent: Option<f64>,
    rates: HashMap<String, (f64, f64)>,
}

/// A request waiting for its reply: who must answer, and the body once it came.
struct Pending {
    peer_key: u64,
    body: Option<Vec<u8>>,
}

pub struct Registry {
    links: RwLock<HashMap<u64, Arc<LinkCounters>>>,
    /// Nominal capacity of the link from this node to each peer (fabric file).
    capacities: HashMap<String, f64>,
    window: Mutex<RateWindow>,
    pending: Mutex<HashMap<u64, Pending>>,
    replied: Condvar,
    next_request: AtomicU64,
    reply_cache: Mutex<Option<(Instant, Arc<Vec<u8>>)>>,
}

impl Registry {
    pub fn new(cfg: &FabricConfig, me: &str) -> Registry {
        let own = cfg.node(me).map(|n| n.signature.bandwidth_gbps);
        let capacities = cfg
            .nodes
            .iter()
            .filter(|n| n.id() != me)
            .filter_map(|n| {
                let gbps = match cfg.link_between(me, n.id()) {
                    Some(l) => l.bandwidth_gbps,
                    None => own.unwrap_or(f64::INFINITY).min(n.signature.bandwidth_gbps),
                };
                (gbps.is_finite() && gbps > 0.0).then(|| (n.id().to_owned(), gbps))
            })
            .collect();
        Registry {
            links: RwLock::new(HashMap::new()),
            capacities,
            window: Mutex::new(RateWindow::default()),
            pending: Mutex::new(HashMap::new()),
            replied: Condvar::new(),
            next_request: AtomicU64::new(1),
            reply_cache: Mutex::new(None),
        }
    }

    /// The slot of the link to `peer` (key `key`), created on first use.
    pub fn link(&self, key: u64, peer: &str) -> Arc<LinkCounters> {
        if let Some(l) = self.links.read().get(&key) {
            return Arc::clone(l);
        }
        let mut links = self.links.write();
        let slot = links.entry(key).or_insert_with(|| {
            Arc::new(LinkCounters::new(peer, self.capacities.get(peer).copied()))
        });
        Arc::clone(slot)
    }

    /// Drops the slot of `key` (an observer's, once its last connection ended).
    pub fn forget_link(&self, key: u64) {
        self.links.write().remove(&key);
    }

    /// Every link slot, sorted by peer id.
    pub fn links(&self) -> Vec<Arc<LinkCounters>> {
        let mut v: Vec<_> = self.links.read().values().cloned().collect();
        v.sort_by(|a, b| a.peer.cmp(&b.peer));
        v
    }

    /// Fills throughput, utilisation and CPU percent from the counters of `m`, over a window
    /// of at least [`MIN_RATE_WINDOW`] (a shorter one reuses the previous window's rates).
    pub fn apply_rates(&self, now: Instant, m: &mut NodeMetrics) {
        let mut w = self.window.lock();
        let cpu = m.process.cpu_seconds_total.unwrap_or(0.0);
        let elapsed = w.at.map(|at| now.saturating_duration_since(at));
        if !matches!(elapsed, Some(e) if e < MIN_RATE_WINDOW) {
            if let Some(e) = elapsed {
                let secs = e.as_secs_f64();
                w.cpu_percent = Some(((cpu - w.cpu_seconds) / secs * 100.0).max(0.0));
                let rates = m
                    .links
                    .iter()
                    .map(|l| {
                        let (s0, r0) = w.bytes.get(&l.peer).copied().unwrap_or((0, 0));
                        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
                        let sent = rate(l.bytes_sent, s0);
                        let recv = rate(l.bytes_received, r0);
                        (l.peer.clone(), (sent, recv))
                    })
                    .collect();
                w.rates = rates;
            }
            w.at = Some(now);
            w.cpu_seconds = cpu;
            w.bytes = m
                .links
                .iter()
                .map(|l| (l.peer.clone(), (l.bytes_sent, l.bytes_received)))
                .collect();
        }
        m.process.cpu_percent = w.cpu_percent;
        for l in &mut m.links {
            let (sent, recv) = w.rates.get(&l.peer).copied().unwrap_or((0.0, 0.0));
            l.send_bytes_per_second = sent;
            l.receive_bytes_per_second = recv;
            l.utilisation = l.capacity_gbps.map(|c| sent * 8.0 / (c * 1e9));
        }
    }

    /// May this node answer `link`'s peer now? At most once per [`MIN_REPLY_INTERVAL_MS`].
    pub fn allow_reply(link: &LinkCounters, now_ms: u64) -> bool {
        let last = link.last_reply_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms < last + MIN_REPLY_INTERVAL_MS {
            return false;
        }
        link.last_reply_ms
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// The reply body built by `build`, or one built less than [`REPLY_CACHE`] ago.
    pub fn reply_body(
        &self,
        now: Instant,
        build: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<Arc<Vec<u8>>> {
        let mut cache = self.reply_cache.lock();
        if let Some((at, body)) = cache.as_ref() {
            if now.saturating_duration_since(*at) < REPLY_CACHE {
                return Some(Arc::clone(body));
            }
        }
        let body = Arc::new(build()?);
        *cache = Some((now, Arc::clone(&body)));
        Some(body)
    }

    /// Registers a request to `peer_key`; `None` when too many are already waiting.
    pub fn expect_reply(&self, peer_key: u64) -> Option<u64> {
        let mut pending = self.pending.lock();
        if pending.len() >= MAX_PENDING {
            return None;
        }
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        pending.insert(
            id,
            Pending {
                peer_key,
                body: None,
            },
        );
        Some(id)
    }

    /// A reply arrived from `src`; kept only if it answers a request of ours to that peer.
    pub fn fulfil(&self, id: u64, src: u64, body: &[u8]) -> bool {
        let mut pending = self.pending.lock();
        match pending.get_mut(&id) {
            Some(p) if p.peer_key == src && p.body.is_none() && body.len() <= MAX_REPLY_BYTES => {
                p.body = Some(body.to_vec());
                self.replied.notify_all();
                true
            }
            _ => false,
        }
    }

    /// Waits until `deadline` for the reply to `id`, calling `progress` between short waits
    /// (a shared-memory link is read by whoever waits); the request is forgotten either way.
    pub fn wait_reply(
        &self,
        id: u64,
        deadline: Instant,
        mut progress: impl FnMut(),
    ) -> Option<Vec<u8>> {
        let mut pending = self.pending.lock();
        loop {
            if let Some(body) = pending.get_mut(&id).and_then(|p| p.body.take()) {
                pending.remove(&id);
                return Some(body);
            }
            let now = Instant::now();
            if now >= deadline {
                pending.remove(&id);
                return None;
            }
            let step = (deadline - now).min(Duration::from_millis(1));
            self.replied.wait_for(&mut pending, step);
            parking_lot::MutexGuard::unlocked(&mut pending, &mut progress);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let cfg = FabricConfig::from_toml_str(
            "[fabric]\nname = \"t\"\n\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n\n\
             [[nodes]]\nid = \"b\"\nhardware = \"cpu-cluster\"\n\n\
             [[links]]\nbetween = [\"a\", \"b\"]\nbandwidth_gbps = 8\nlatency_ns = 1000\n",
            "t.toml",
        )
        .expect("valid test fabric");
        Registry::new(&cfg, "a")
    }

    #[test]
    fn link_slots_are_shared_and_know_their_capacity() {
        let r = registry();
        let one = r.link(7, "b");
        let two = r.link(7, "b");
        assert!(Arc::ptr_eq(&one, &two));
        assert_eq!(one.capacity_gbps, Some(8.0));
        assert_eq!(r.links().len(), 1);
    }

    #[test]
    fn rates_come_from_windows_of_at_least_half_a_second() {
        let r = registry();
        let t0 = Instant::now();
        let link = r.link(7, "b");
        let mut m = NodeMetrics {
            links: vec![link.snapshot()],
            ..Default::default()
        };
        m.process.cpu_seconds_total = Some(1.0);
        r.apply_rates(t0, &mut m);
        assert_eq!(m.links[0].send_bytes_per_second, 0.0);
        link.on_sent(2, 500_000_000);
        m.links = vec![link.snapshot()];
        m.process.cpu_seconds_total = Some(1.5);
        // Too soon: the previous (empty) window's rates stay.
        r.apply_rates(t0 + Duration::from_millis(100), &mut m);
        assert_eq!(m.links[0].send_bytes_per_second, 0.0);
        r.apply_rates(t0 + Duration::from_secs(1), &mut m);
        assert_eq!(m.links[0].send_bytes_per_second, 5e8);
        // 4 Gbit/s over an 8 Gbit/s link.
        assert_eq!(m.links[0].utilisation, Some(0.5));
        assert_eq!(m.process.cpu_percent, Some(50.0));
    }

    #[test]
    fn replies_are_rate_limited_per_peer() {
        let link = LinkCounters::new("b", None);
        assert!(Registry::allow_reply(&link, 1000));
        assert!(!Registry::allow_reply(
            &link,
            1000 + MIN_REPLY_INTERVAL_MS - 1
        ));
        assert!(Registry::allow_reply(&link, 1000 + MIN_REPLY_INTERVAL_MS));
    }

    #[test]
    fn only_the_asked_peer_can_answer() {
        let r = registry();
        let id = r.expect_reply(7).expect("room for a request");
        assert!(!r.fulfil(id, 8, b"{}"), "another peer's reply is ignored");
        assert!(!r.fulfil(id + 1, 7, b"{}"), "an unknown id is ignored");
        assert!(r.fulfil(id, 7, b"{}"));
        let body = r.wait_reply(id, Instant::now() + Duration::from_secs(5), || {});
        assert_eq!(body.as_deref(), Some(&b"{}"[..]));
        // Forgotten once taken.
        assert!(!r.fulfil(id, 7, b"{}"));
        let late = r.expect_reply(7).expect("room");
        assert_eq!(r.wait_reply(late, Instant::now(), || {}), None);
    }

    #[test]
    fn the_reply_body_is_reused_briefly() {
        let r = registry();
        let t0 = Instant::now();
        let a = r.reply_body(t0, || Some(vec![1])).expect("built");
        let b = r.reply_body(t0 + Duration::from_millis(10), || Some(vec![2]));
        assert_eq!(b.as_deref(), Some(&vec![1]));
        let c = r.reply_body(t0 + Duration::from_secs(1), || Some(vec![3]));
        assert_eq!((a.as_slice(), c.as_deref()), (&[1][..], Some(&vec![3])));
    }
}
