//! The watcher a node runs when its fabric file has `[alerts]`: every `interval_ms` it
//! pings its neighbours (latency, loss, and with a bandwidth floor an estimated bandwidth),
//! reads its own counters (retransmitted / sent bytes) and the host's CPU and memory, feeds
//! the [`Engine`] and hands the events to the [`Dispatcher`].

use super::dispatch::{Dispatcher, Origin, Routes};
use super::remedy::Remedies;
use super::{sysinfo, Engine, Metric, Sample, Subject};
use crate::config::AlertsConfig;
use crate::error::Result;
use crate::fabric::{Fabric, PingOptions};
use crate::runtime::StatsSnapshot;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Timed pings per neighbour and round, back to back. The fastest is the latency sample:
/// the link's steady one-way latency. A stall of either process (a busy host descheduling
/// the pinger or the peer's reader for a time slice, ms) only ever adds to a round trip, so
/// on a loaded machine the median of an idle loopback link read over 1 ms, while a slow
/// link (a delay on every frame) raises every ping, the fastest too.
const PINGS: u64 = 5;
const SMALL: usize = 64;
/// Largest payload of the bandwidth probe.
const BIG_MAX: usize = 256 * 1024;

/// Tells a running watcher to stop (and wakes it).
#[derive(Debug, Default)]
pub struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    pub fn stop(&self) {
        *self.stopped.lock() = true;
        self.cv.notify_all();
    }

    /// Waits up to `d`; true once stopped.
    fn wait(&self, d: Duration) -> bool {
        let mut s = self.stopped.lock();
        if !*s {
            let _ = self.cv.wait_for(&mut s, d);
        }
        *s
    }
}

/// The nodes `me` has links to (every other node when the file has no links).
pub fn neighbours(cfg: &crate::config::FabricConfig, me: &str) -> Vec<String> {
    let linked: Vec<String> = cfg
        .links
        .iter()
        .filter_map(|l| match &l.between {
            [a, b] if a == me => Some(b.clone()),
            [a, b] if b == me => Some(a.clone()),
            _ => None,
        })
        .collect();
    if !linked.is_empty() || !cfg.links.is_empty() {
        return linked;
    }
    cfg.nodes
        .iter()
        .map(|n| n.id().to_owned())
        .filter(|id| id != me)
        .collect()
}

/// Runs until `stop`; returns an error only if the dispatcher cannot start.
pub fn run(fabric: &Fabric, cfg: &AlertsConfig, stop: &Stop) -> Result<()> {
    let origin = Origin {
        fabric: fabric.config().name.clone(),
        node: fabric.node_id().to_owned(),
    };
    let dispatcher = Dispatcher::start(Routes::new(cfg), cfg.rate_limit_per_min, origin)?;
    let mut w = Watcher {
        fabric,
        cfg: cfg.clone(),
        engine: Engine::new(cfg),
        neighbours: neighbours(fabric.config(), fabric.node_id()),
        cpu_prev: sysinfo::read_cpu(),
        stats_prev: fabric.stats(),
        links_prev: HashMap::new(),
        remedies: Remedies::default(),
    };
    tracing::info!(
        target: "hyperfabric::alert",
        neighbours = ?w.neighbours,
        interval_ms = cfg.interval_ms,
        endpoints = ?cfg.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
        escalate_after_s = cfg.escalate_after_s,
        escalation_tiers = ?cfg.escalation.iter().map(|t| (t.after_s, t.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>())).collect::<Vec<_>>(),
        "alert watcher started"
    );
    let interval = Duration::from_millis(cfg.interval_ms);
    while !stop.wait(interval) {
        for s in w.measure() {
            if let Some(ev) = w.engine.observe(&s) {
                if w.cfg.auto_optimization {
                    w.remedies.on_event(fabric, &ev);
                }
                dispatcher.send(ev);
            }
        }
    }
    dispatcher.stop();
    Ok(())
}

struct Watcher<'f> {
    fabric: &'f Fabric,
    cfg: AlertsConfig,
    engine: Engine,
    neighbours: Vec<String>,
    cpu_prev: Option<(u64, u64)>,
    stats_prev: StatsSnapshot,
    /// Per neighbour: (bytes sent, bytes retransmitted) at the last round.
    links_prev: HashMap<String, (u64, u64)>,
    remedies: Remedies,
}

impl Watcher<'_> {
    fn measure(&mut self) -> Vec<Sample> {
        let mut out = Vec::new();
        let resent = self.retransmit_ratios();
        for n in self.neighbours.clone() {
            self.link_samples(&n, resent.get(&n).copied(), &mut out);
        }
        let at = Instant::now();
        let me = Subject::Node(self.fabric.node_id().to_owned());
        let mut node = |metric, value| {
            out.push(Sample {
                subject: me.clone(),
                metric,
                value,
                at,
            })
        };
        let stats = self.fabric.stats();
        let sent = stats.bytes_sent.saturating_sub(self.stats_prev.bytes_sent)
            + stats
                .bytes_forwarded
                .saturating_sub(self.stats_prev.bytes_forwarded);
        let resent = stats
            .retransmitted_bytes
            .saturating_sub(self.stats_prev.retransmitted_bytes);
        if sent > 0 {
            node(Metric::LossRatio, resent as f64 / sent as f64);
        }
        self.stats_prev = stats;
        let cpu = sysinfo::read_cpu();
        if let Some(r) = self
            .cpu_prev
            .zip(cpu)
            .and_then(|(a, b)| sysinfo::cpu_ratio(a, b))
        {
            node(Metric::CpuRatio, r);
        }
        self.cpu_prev = cpu;
        if let Some(m) = sysinfo::read_memory_ratio() {
            node(Metric::MemoryRatio, m);
        }
        out
    }

    /// Per neighbour that carried traffic since the last round: retransmitted / sent bytes.
    fn retransmit_ratios(&mut self) -> HashMap<String, f64> {
        let mut ratios = HashMap::new();
        for l in self.fabric.metrics().links {
            let now = (l.bytes_sent, l.retransmitted_bytes);
            let (sent0, resent0) = self.links_prev.insert(l.peer.clone(), now).unwrap_or(now);
            let sent = now.0.saturating_sub(sent0);
            if sent > 0 {
                ratios.insert(l.peer, now.1.saturating_sub(resent0) as f64 / sent as f64);
            }
        }
        ratios
    }

    /// Latency and loss of the link to `peer` (an unreachable peer is total loss; loss is the
    /// worse of lost pings and retransmitted bytes), and with a bandwidth floor the bandwidth
    /// estimated from a small and a large ping.
    fn link_samples(&self, peer: &str, resent: Option<f64>, out: &mut Vec<Sample>) {
        let timeout = Duration::from_millis(self.cfg.interval_ms.clamp(50, 1000));
        let opts = |size| PingOptions::new().size(size).count(PINGS).timeout(timeout);
        let subject = Subject::Link {
            from: self.fabric.node_id().to_owned(),
            to: peer.to_owned(),
        };
        // An untimed ping first, in the same back-to-back run: it pays for connection
        // set-up and for waking the peer's parked reader, which an idle link would otherwise
        // report as latency (ms on loopback). A separate call would leave a gap in which the
        // reader parks again.
        let small = self.fabric.ping(peer, opts(SMALL).warmup(1));
        let at = Instant::now();
        let mut push = |metric, value| {
            out.push(Sample {
                subject: subject.clone(),
                metric,
                value,
                at,
            })
        };
        let small = match small {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(target: "hyperfabric::alert", "ping {peer}: {e}");
                push(Metric::LossRatio, 1.0);
                return;
            }
        };
        let lost = small.lost as f64 / small.sent.max(1) as f64;
        push(Metric::LossRatio, lost.max(resent.unwrap_or(0.0)));
        push(Metric::LatencyNs, small.min_ns as f64);
        if self.cfg.bandwidth_floor_gbps.is_none() {
            return;
        }
        let big = (self.fabric.config().tuning.max_packet_size / 2).clamp(4096, BIG_MAX);
        if let Ok(b) = self.fabric.ping(peer, opts(big)) {
            if let Some(gbps) = bandwidth_gbps(SMALL, small.min_ns, big, b.min_ns) {
                push(Metric::BandwidthGbps, gbps);
            }
        }
    }
}

/// Bandwidth from two one-way latencies of different sizes: extra bits / extra time
/// (bits per nanosecond are Gbit/s). `None` when the larger ping was not slower.
pub fn bandwidth_gbps(small: usize, small_ns: u64, big: usize, big_ns: u64) -> Option<f64> {
    let dt = big_ns.checked_sub(small_ns).filter(|d| *d > 0)?;
    let bits = (big.checked_sub(small)? * 8) as f64;
    Some(bits / dt as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_from_two_sizes() {
        // 8 KiB − 64 B more in 6.5 µs more: ~10 Gbit/s.
        let g = bandwidth_gbps(64, 1000, 8192, 7502).unwrap();
        assert!((g - 10.0).abs() < 0.01, "{g}");
        assert_eq!(bandwidth_gbps(64, 1000, 8192, 900), None);
    }

    #[test]
    fn neighbours_come_from_links() {
        let text = "[fabric]\nname = \"w\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n[[nodes]]\nid = \"b\"\nhardware = \"cpu-cluster\"\n[[nodes]]\nid = \"c\"\nhardware = \"cpu-cluster\"\n";
        let open = crate::config::FabricConfig::from_toml_str(text, "w.toml").unwrap();
        assert_eq!(neighbours(&open, "a"), ["b", "c"]);
        let linked = format!(
            "{text}[[links]]\nbetween = [\"c\", \"a\"]\nbandwidth_gbps = 1\nlatency_ns = 1\n"
        );
        let cfg = crate::config::FabricConfig::from_toml_str(&linked, "w.toml").unwrap();
        assert_eq!(neighbours(&cfg, "a"), ["c"]);
        assert!(neighbours(&cfg, "b").is_empty());
    }

    #[test]
    fn stop_wakes_the_waiter() {
        let s = Stop::new();
        assert!(!s.wait(Duration::from_millis(1)));
        s.stop();
        assert!(s.wait(Duration::from_secs(3600)));
    }
}
