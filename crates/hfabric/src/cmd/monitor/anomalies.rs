//! The dashboard's anomalies: every round's figures go through the alert engine of
//! `hyperfabric::alert` (the thresholds of the fabric file's `[alerts]`, or the guide's
//! defaults: latency > 1 ms, loss > 0.1 %, CPU > 90 %, memory > 90 %; and the statistical
//! detector, so a spike on a fast link shows too), plus nodes that do not answer.

use super::state::{Anomaly, NodeView};
use hyperfabric::alert::{AlertState, Engine, Metric, Sample, Subject};
use hyperfabric::config::AlertsConfig;
use std::collections::BTreeMap;
use std::time::Instant;

/// The engine and what each alert it holds said last.
#[derive(Debug, Clone)]
pub struct Detector {
    engine: Engine,
    firing: BTreeMap<(Subject, Metric), (f64, String)>,
}

impl Detector {
    pub fn new(cfg: &AlertsConfig) -> Detector {
        Detector {
            engine: Engine::new(cfg),
            firing: BTreeMap::new(),
        }
    }

    /// Feeds the nodes' latest figures; returns what is anomalous now.
    pub fn check(&mut self, nodes: &[NodeView], at: Instant) -> Vec<Anomaly> {
        let mut out = Vec::new();
        for n in nodes {
            if !n.reachable {
                let why = n.error.as_deref().unwrap_or("no answer yet");
                out.push(Anomaly {
                    node: n.id.clone(),
                    metric: "unreachable",
                    value: 1.0,
                    message: format!("{}: unreachable ({})", n.id, crate::common::tidy_error(why)),
                });
                continue;
            }
            for (metric, value) in figures(n) {
                let sample = Sample {
                    subject: Subject::Node(n.id.clone()),
                    metric,
                    value,
                    at,
                };
                if let Some(ev) = self.engine.observe(&sample) {
                    let key = (ev.subject.clone(), ev.metric);
                    match ev.state {
                        AlertState::Resolved => self.firing.remove(&key),
                        _ => self.firing.insert(key, (ev.value, ev.text())),
                    };
                }
            }
        }
        for ((subject, metric), (value, text)) in &self.firing {
            out.push(Anomaly {
                node: subject.to_string(),
                metric: metric.as_str(),
                value: *value,
                message: text.clone(),
            });
        }
        out
    }
}

/// A node's figures as the engine's metrics (ratios, not percent).
fn figures(n: &NodeView) -> Vec<(Metric, f64)> {
    let p = &n.now;
    let mut v = Vec::new();
    if let Some(lat) = p.latency_p50_ns {
        v.push((Metric::LatencyNs, lat as f64));
    }
    v.push((
        Metric::LossRatio,
        p.loss_percent.max(p.retransmit_percent) / 100.0,
    ));
    if let Some(cpu) = p.cpu_percent {
        v.push((Metric::CpuRatio, cpu / 100.0));
    }
    if let Some(mem) = p.memory_percent {
        v.push((Metric::MemoryRatio, mem / 100.0));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::monitor::state::Point;
    use std::time::Duration;

    fn node(id: &str, p: Point) -> NodeView {
        NodeView {
            id: id.into(),
            reachable: true,
            now: p,
            ..Default::default()
        }
    }

    fn quiet(latency_ns: u64) -> Point {
        Point {
            latency_p50_ns: Some(latency_ns),
            cpu_percent: Some(5.0),
            memory_percent: Some(1.0),
            ..Default::default()
        }
    }

    #[test]
    fn each_threshold_is_checked_and_quiet_nodes_pass() {
        let mut d = Detector::new(&AlertsConfig::default());
        let now = Instant::now();
        assert!(d.check(&[node("ok", quiet(20_000))], now).is_empty());
        let busy = node(
            "hot",
            Point {
                latency_p50_ns: Some(2_500_000),
                loss_percent: 0.5,
                retransmit_percent: 0.2,
                cpu_percent: Some(95.0),
                memory_percent: Some(91.0),
                ..Default::default()
            },
        );
        let down = NodeView {
            id: "gone".into(),
            error: Some("connection refused".into()),
            ..Default::default()
        };
        let found = d.check(&[busy, down], now);
        let mut metrics: Vec<_> = found.iter().map(|a| a.metric).collect();
        metrics.sort_unstable();
        assert_eq!(
            metrics,
            [
                "cpu_ratio",
                "latency_ns",
                "loss_ratio",
                "memory_ratio",
                "unreachable"
            ]
        );
        let lat = found.iter().find(|a| a.metric == "latency_ns").unwrap();
        assert!(lat.message.contains("2.500 ms"), "{}", lat.message);
        assert!(found[0].message.contains("connection refused"));
    }

    #[test]
    fn a_spike_under_the_threshold_is_caught_and_then_clears() {
        let mut d = Detector::new(&AlertsConfig::default());
        let t0 = Instant::now();
        let at = |i: u64| t0 + Duration::from_secs(i);
        for i in 0..20 {
            let jitter = 20_000 + (i % 3) * 500;
            assert!(d.check(&[node("fast", quiet(jitter))], at(i)).is_empty());
        }
        // 200 µs: far under 1 ms, ten times the usual.
        let found = d.check(&[node("fast", quiet(200_000))], at(20));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].metric, "latency_ns");
        for i in 21..24 {
            d.check(&[node("fast", quiet(20_000))], at(i));
        }
        assert!(d.check(&[node("fast", quiet(20_000))], at(24)).is_empty());
    }
}
