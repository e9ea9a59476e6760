//! Threshold checks of the guide (latency > 1 ms, loss > 0.1 %, CPU > 90 %, memory > 90 %,
//! node unreachable). One function of the node views, so an alert engine can replace it.

use super::state::{Anomaly, NodeView};

pub const LATENCY_NS: f64 = 1e6;
pub const LOSS_PERCENT: f64 = 0.1;
pub const CPU_PERCENT: f64 = 90.0;
pub const MEMORY_PERCENT: f64 = 90.0;

/// The anomalies of the nodes' latest figures.
pub fn check(nodes: &[NodeView]) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for n in nodes {
        let mut flag = |metric: &'static str, value: f64, threshold: f64, message: String| {
            if value > threshold {
                out.push(Anomaly {
                    node: n.id.clone(),
                    metric,
                    value,
                    threshold,
                    message,
                });
            }
        };
        if !n.reachable {
            let why = n.error.as_deref().unwrap_or("no answer yet");
            flag(
                "unreachable",
                1.0,
                0.0,
                format!("{}: unreachable ({why})", n.id),
            );
            continue;
        }
        let p = &n.now;
        if let Some(lat) = p.latency_p50_ns {
            let ms = lat as f64 / 1e6;
            flag(
                "latency",
                lat as f64,
                LATENCY_NS,
                format!("{}: latency {ms:.2} ms > 1 ms", n.id),
            );
        }
        let loss = p.loss_percent;
        flag(
            "loss",
            loss,
            LOSS_PERCENT,
            format!("{}: ping loss {loss:.2}% > 0.1%", n.id),
        );
        let re = p.retransmit_percent;
        flag(
            "retransmits",
            re,
            LOSS_PERCENT,
            format!("{}: retransmitted {re:.2}% of bytes > 0.1%", n.id),
        );
        if let Some(cpu) = p.cpu_percent {
            flag(
                "cpu",
                cpu,
                CPU_PERCENT,
                format!("{}: CPU {cpu:.0}% > 90%", n.id),
            );
        }
        if let Some(mem) = p.memory_percent {
            flag(
                "memory",
                mem,
                MEMORY_PERCENT,
                format!("{}: memory {mem:.0}% > 90%", n.id),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::monitor::state::Point;

    fn node(id: &str, p: Point) -> NodeView {
        NodeView {
            id: id.into(),
            reachable: true,
            now: p,
            ..Default::default()
        }
    }

    #[test]
    fn each_threshold_is_checked_and_quiet_nodes_pass() {
        let quiet = node(
            "ok",
            Point {
                latency_p50_ns: Some(20_000),
                cpu_percent: Some(5.0),
                memory_percent: Some(1.0),
                ..Default::default()
            },
        );
        assert!(check(&[quiet]).is_empty());
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
        let found = check(&[busy, down]);
        let metrics: Vec<_> = found.iter().map(|a| a.metric).collect();
        assert_eq!(
            metrics,
            [
                "latency",
                "loss",
                "retransmits",
                "cpu",
                "memory",
                "unreachable"
            ]
        );
        assert_eq!(found[0].message, "hot: latency 2.50 ms > 1 ms");
        assert!(found[5].message.contains("connection refused"));
    }
}
