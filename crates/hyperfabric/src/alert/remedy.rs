//! `auto_optimization`: the remedies a running node can apply safely by itself, each logged.
//! What cannot be changed live is logged as needing a restart, never pretended.

use super::{AlertEvent, AlertState, Metric, Subject};
use crate::config::Compression;
use crate::fabric::{Fabric, MultipathConfig};
use crate::runtime::PathScheduler;
use crate::types::DataType;
use std::collections::HashSet;

#[derive(Debug, Default)]
pub(super) struct Remedies {
    /// (subject, metric) already treated: one remedy per problem, not one per event.
    done: HashSet<(Subject, Metric)>,
    compression_on: bool,
}

impl Remedies {
    pub(super) fn on_event(&mut self, fabric: &Fabric, ev: &AlertEvent) {
        if ev.state != AlertState::Firing || !self.done.insert((ev.subject.clone(), ev.metric)) {
            return;
        }
        match (&ev.subject, ev.metric) {
            (Subject::Link { from, to }, Metric::LatencyNs | Metric::LossRatio)
                if from == fabric.node_id() =>
            {
                adaptive_multipath(fabric, to);
            }
            (Subject::Link { from, to }, Metric::BandwidthGbps) if from == fabric.node_id() => {
                adaptive_multipath(fabric, to);
                self.compression(fabric);
            }
            (subject, metric) => tracing::warn!(
                target: "hyperfabric::alert",
                "auto_optimization: no safe live remedy for {metric} on {subject}; \
                 a lighter profile or fewer buffers needs a restart with a changed fabric file"
            ),
        }
    }

    /// Sends this node originates of any data type without compression get `auto`.
    fn compression(&mut self, fabric: &Fabric) {
        if self.compression_on {
            return;
        }
        self.compression_on = true;
        let mut changed = Vec::new();
        for dt in DataType::ALL {
            let mut policy = fabric.policy(dt);
            if policy.compression == Compression::Off {
                policy.compression = Compression::Auto;
                if fabric.configure_data_type(dt, policy).is_ok() {
                    changed.push(dt.to_string());
                }
            }
        }
        tracing::warn!(
            target: "hyperfabric::alert",
            "auto_optimization: adaptive compression on for sends from this node (data types: {}); \
             relayed transfers keep their sender's choice",
            changed.join(", ")
        );
    }
}

/// Stripes later sends to `peer` over the direct link and every neighbour that also links to
/// `peer`, with adaptive weights (they follow each path's measured throughput).
fn adaptive_multipath(fabric: &Fabric, peer: &str) {
    let cfg = fabric.config();
    let me = fabric.node_id();
    let mut paths = vec![(peer.to_owned(), 1.0)];
    for l in cfg
        .links
        .iter()
        .filter(|l| l.between.iter().any(|e| e == me))
    {
        let n = other(&l.between, me);
        if n != peer && cfg.link_between(&n, peer).is_some() {
            paths.push((n, 1.0));
        }
    }
    if paths.len() < 2 {
        tracing::warn!(
            target: "hyperfabric::alert",
            "auto_optimization: no alternative path from {me} to {peer} in the fabric file; \
             the link needs attention (no live remedy)"
        );
        return;
    }
    let via: Vec<String> = paths.iter().map(|(p, _)| p.clone()).collect();
    let m = MultipathConfig::new(paths).scheduler(PathScheduler::Adaptive);
    match fabric.configure_multipath(peer, m) {
        Ok(()) => tracing::warn!(
            target: "hyperfabric::alert",
            "auto_optimization: adaptive multipath to {peer} via [{}] for sends from this node",
            via.join(", ")
        ),
        Err(e) => tracing::warn!(
            target: "hyperfabric::alert",
            "auto_optimization: adaptive multipath to {peer} refused: {e}"
        ),
    }
}

fn other(between: &[String; 2], me: &str) -> String {
    if between[0] == me {
        between[1].clone()
    } else {
        between[0].clone()
    }
}
