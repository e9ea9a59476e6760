//! What the monitor knows: the latest figures of every node, bounded series of samples per
//! node and per link, and the anomalies of the last round. Pure data: sampling feeds it,
//! rendering and export read it.

use hyperfabric::metrics::NodeMetrics;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// Samples kept per node and per link (10 minutes at the default 1 s interval).
pub const HISTORY: usize = 600;

/// One round's observation of one node, as the sampler made it.
#[derive(Debug, Clone)]
pub struct Observation {
    pub node: String,
    /// Monitor clock, milliseconds since the monitor started.
    pub at_ms: u64,
    /// One-way ping latencies (ns) of the pings that came back, and how many were sent.
    pub ping_samples: Vec<u64>,
    pub pings_sent: u64,
    /// The node's metrics, or why they could not be had.
    pub metrics: Result<NodeMetrics, String>,
}

/// One point of a node's series.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Point {
    pub at_ms: u64,
    pub latency_p50_ns: Option<u64>,
    pub latency_p99_ns: Option<u64>,
    pub loss_percent: f64,
    pub retransmit_percent: f64,
    pub send_bytes_per_second: f64,
    pub receive_bytes_per_second: f64,
    pub cpu_percent: Option<f64>,
    pub resident_memory_bytes: Option<u64>,
    pub memory_percent: Option<f64>,
}

/// One point of a link's series (as the link's source node measures it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkPoint {
    pub at_ms: u64,
    pub send_bytes_per_second: f64,
    pub receive_bytes_per_second: f64,
}

/// Everything known about one node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeView {
    pub id: String,
    pub reachable: bool,
    pub error: Option<String>,
    /// The figures of the last round (also the last point of `series`).
    pub now: Point,
    #[serde(skip)]
    pub latest: Option<NodeMetrics>,
    pub series: VecDeque<Point>,
}

/// An alert of the engine that is firing now, or a node that does not answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub node: String,
    pub metric: &'static str,
    pub value: f64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonitorState {
    pub fabric: String,
    pub from: String,
    pub interval_ms: u64,
    pub rounds: u64,
    pub nodes: Vec<NodeView>,
    /// Series per (node, peer) link.
    pub links: BTreeMap<String, VecDeque<LinkPoint>>,
    pub anomalies: Vec<Anomaly>,
    #[serde(skip)]
    detector: super::anomalies::Detector,
}

fn push_bounded<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() == HISTORY {
        q.pop_front();
    }
    q.push_back(v);
}

/// Nearest-rank quantile of sorted samples.
fn quantile(sorted: &[u64], per_mille: usize) -> Option<u64> {
    let n = sorted.len();
    (n > 0).then(|| sorted[(per_mille * n).div_ceil(1000).clamp(1, n) - 1])
}

impl MonitorState {
    /// `alerts`: the fabric file's `[alerts]` (or the defaults) for the anomalies panel.
    pub fn new(
        fabric: &str,
        from: &str,
        interval_ms: u64,
        nodes: &[String],
        alerts: &hyperfabric::config::AlertsConfig,
    ) -> MonitorState {
        MonitorState {
            fabric: fabric.to_owned(),
            from: from.to_owned(),
            interval_ms,
            rounds: 0,
            nodes: nodes
                .iter()
                .map(|id| NodeView {
                    id: id.clone(),
                    ..Default::default()
                })
                .collect(),
            links: BTreeMap::new(),
            anomalies: Vec::new(),
            detector: super::anomalies::Detector::new(alerts),
        }
    }

    /// Takes one round of observations (one per node), then feeds the alert engine.
    pub fn ingest(&mut self, round: Vec<Observation>) {
        self.rounds += 1;
        for obs in round {
            self.ingest_one(obs);
        }
        self.anomalies = self.detector.check(&self.nodes, std::time::Instant::now());
    }

    fn ingest_one(&mut self, mut obs: Observation) {
        let Some(view) = self.nodes.iter_mut().find(|v| v.id == obs.node) else {
            return;
        };
        obs.ping_samples.sort_unstable();
        let lost = obs.pings_sent.saturating_sub(obs.ping_samples.len() as u64);
        let mut p = Point {
            at_ms: obs.at_ms,
            latency_p50_ns: quantile(&obs.ping_samples, 500),
            latency_p99_ns: quantile(&obs.ping_samples, 990),
            loss_percent: if obs.pings_sent == 0 {
                0.0
            } else {
                lost as f64 * 100.0 / obs.pings_sent as f64
            },
            ..Default::default()
        };
        match obs.metrics {
            Ok(m) => {
                fill_from_metrics(&mut p, view.latest.as_ref(), &m);
                for (peer, lp) in link_points(view.latest.as_ref(), &m, obs.at_ms) {
                    let series = self.links.entry(format!("{}↔{peer}", m.node)).or_default();
                    push_bounded(series, lp);
                }
                view.reachable = true;
                view.error = None;
                view.latest = Some(m);
            }
            Err(e) => {
                view.reachable = false;
                view.error = Some(e);
            }
        }
        view.now = p.clone();
        push_bounded(&mut view.series, p);
    }
}

/// Rates between the node's previous snapshot and this one (the node's own uptime clock),
/// or the node's own rate window for the first.
fn fill_from_metrics(p: &mut Point, prev: Option<&NodeMetrics>, m: &NodeMetrics) {
    let sum = |m: &NodeMetrics, f: fn(&hyperfabric::metrics::LinkMetrics) -> u64| {
        m.links.iter().map(f).sum::<u64>()
    };
    let dt = prev
        .map(|pm| m.uptime_seconds - pm.uptime_seconds)
        .filter(|dt| *dt > 0.0);
    match (prev, dt) {
        (Some(pm), Some(dt)) => {
            let d = |f| sum(m, f).saturating_sub(sum(pm, f)) as f64;
            p.send_bytes_per_second = d(|l| l.bytes_sent) / dt;
            p.receive_bytes_per_second = d(|l| l.bytes_received) / dt;
            let sent = d(|l| l.bytes_sent);
            let resent = d(|l| l.retransmitted_bytes);
            p.retransmit_percent = if sent > 0.0 {
                resent * 100.0 / sent
            } else {
                0.0
            };
            p.cpu_percent = match (m.process.cpu_seconds_total, pm.process.cpu_seconds_total) {
                (Some(now), Some(then)) => Some(((now - then) / dt * 100.0).max(0.0)),
                _ => m.process.cpu_percent,
            };
        }
        _ => {
            p.send_bytes_per_second = m.links.iter().map(|l| l.send_bytes_per_second).sum();
            p.receive_bytes_per_second = m.links.iter().map(|l| l.receive_bytes_per_second).sum();
            p.cpu_percent = m.process.cpu_percent;
        }
    }
    p.resident_memory_bytes = m.process.resident_memory_bytes;
    p.memory_percent = m.process.memory_percent;
}

/// Per-link rates of node `m` since its previous snapshot.
fn link_points(
    prev: Option<&NodeMetrics>,
    m: &NodeMetrics,
    at_ms: u64,
) -> Vec<(String, LinkPoint)> {
    m.links
        .iter()
        .map(|l| {
            let before = prev.and_then(|pm| pm.link(&l.peer).map(|pl| (pm.uptime_seconds, pl)));
            let (send, recv) = match before {
                Some((t0, pl)) if m.uptime_seconds > t0 => {
                    let dt = m.uptime_seconds - t0;
                    (
                        l.bytes_sent.saturating_sub(pl.bytes_sent) as f64 / dt,
                        l.bytes_received.saturating_sub(pl.bytes_received) as f64 / dt,
                    )
                }
                _ => (l.send_bytes_per_second, l.receive_bytes_per_second),
            };
            let point = LinkPoint {
                at_ms,
                send_bytes_per_second: send,
                receive_bytes_per_second: recv,
            };
            (l.peer.clone(), point)
        })
        .collect()
}
