//! Metrics of a node: per-link counters and latency histograms, process CPU and memory, and
//! a serde snapshot ([`NodeMetrics`]) that reports, the Prometheus renderer and remote
//! monitors (over `MetricsRequest`/`MetricsReply` frames) all read.
//!
//! Hot-path cost: one relaxed atomic add per counter per frame on a per-peer slot allocated
//! once (at connect). Histograms take a lock once per ping run or per transfer, never per frame.

mod link;
mod process;
pub mod prometheus;
mod registry;
mod snapshot;

pub use link::{LatencyHistogram, LinkCounters, BUCKETS_SECONDS, PRIORITIES};
pub use process::{kb_field, parse_stat, ProcessMetrics};
pub use registry::{Registry, MAX_REPLY_BYTES, MIN_REPLY_INTERVAL_MS};

use serde::{Deserialize, Serialize};
pub use snapshot::StatsSnapshot;

/// Latency figures of one kind on one link (nanoseconds unless named otherwise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub sum_seconds: f64,
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
    /// Cumulative (upper bound in seconds, samples at or below it), as Prometheus buckets.
    pub buckets: Vec<(f64, u64)>,
}

/// What one node measured about its link to one peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkMetrics {
    pub peer: String,
    /// `tcp`, `shm`, or `none` when no connection is open.
    pub transport: String,
    pub connected: bool,
    /// Wire bytes (headers included) of every frame sent to the peer.
    pub bytes_sent: u64,
    /// The same by priority class: ultra_high, high, normal, low, background.
    pub bytes_sent_by_priority: [u64; PRIORITIES],
    pub frames_sent: u64,
    pub bytes_received: u64,
    pub frames_received: u64,
    /// Transfers to this peer acknowledged end to end / failed.
    pub transfers_sent: u64,
    pub transfers_failed: u64,
    pub retransmitted_bytes: u64,
    pub pings_sent: u64,
    pub pings_lost: u64,
    /// Lost pings plus failed transfers.
    pub drops: u64,
    /// One-way ping latency (half the round trip).
    pub ping_latency: LatencySummary,
    /// Send-to-final-ack time of transfers.
    pub transfer_latency: LatencySummary,
    pub send_bytes_per_second: f64,
    pub receive_bytes_per_second: f64,
    pub capacity_gbps: Option<f64>,
    /// Send throughput over the nominal capacity (0..1), when the capacity is known.
    pub utilisation: Option<f64>,
}

/// Work waiting inside the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepths {
    /// Transfers this node is sending and not yet acknowledged.
    pub outgoing_transfers: u64,
    /// Transfers being received and not yet complete.
    pub incoming_transfers: u64,
    /// Received messages waiting for the application (in-memory mode).
    pub undelivered_messages: u64,
    /// Writers waiting for a connection's lock (QoS gate).
    pub waiting_writers: u64,
}

/// A point-in-time snapshot of everything a node measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeMetrics {
    pub node: String,
    pub fabric: String,
    /// Milliseconds since the Unix epoch when the snapshot was taken (the node's clock).
    pub timestamp_ms: u64,
    pub uptime_seconds: f64,
    /// The node's totals (payload bytes of transfers, frames, connections, errors).
    pub totals: StatsSnapshot,
    pub process: ProcessMetrics,
    pub queues: QueueDepths,
    pub links: Vec<LinkMetrics>,
    /// True when links were left out to keep a remote reply under [`MAX_REPLY_BYTES`].
    #[serde(default)]
    pub links_truncated: bool,
    /// What the node does with transfers it receives: `memory` (handed to `recv`),
    /// `discard` (verified, acknowledged, dropped) or `store` (written as files). Empty when
    /// a node of an older version answered.
    #[serde(default)]
    pub receives: String,
}

impl NodeMetrics {
    /// The link to `peer`, if this node has seen it.
    pub fn link(&self, peer: &str) -> Option<&LinkMetrics> {
        self.links.iter().find(|l| l.peer == peer)
    }

    /// JSON of at most `max` bytes: links are left out (last first) until it fits.
    pub fn to_bounded_json(&self, max: usize) -> Option<Vec<u8>> {
        let mut m = self.clone();
        loop {
            let bytes = serde_json::to_vec(&m).ok()?;
            if bytes.len() <= max {
                return Some(bytes);
            }
            m.links.pop()?;
            m.links_truncated = true;
        }
    }
}
