//! The node's counters as a point-in-time snapshot: what `monitor`, `diagnose` and the
//! metrics reply read, without touching the hot path.

use crate::transport::fault::FaultCounters;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// A point-in-time copy of the node's counters (`runtime::NodeStats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsSnapshot {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub transfers_sent: u64,
    pub transfers_received: u64,
    pub transfers_failed: u64,
    pub retransmitted_bytes: u64,
    pub connections_accepted: u64,
    pub connections_rejected: u64,
    pub protocol_errors: u64,
    pub frames_forwarded: u64,
    pub bytes_forwarded: u64,
    pub corrupt_frames_dropped: u64,
    /// Sends that failed because their destination signed for other content than was sent
    /// (a relay altered or dropped bytes; per-node keys only).
    pub content_mismatches: u64,
    /// Relayed transfers refused because their origin's signature was missing or wrong
    /// (a relay claiming another member as source; per-node keys only).
    pub origin_refusals: u64,
    /// Frames other than Ping and MetricsRequest that an observer (a monitor without a node
    /// entry) sent and this node refused (`ObserverReadOnly`) or dropped.
    pub observer_refusals: u64,
    pub open_connections: usize,
    /// Fault injection (tests): frames this node dropped, corrupted, delayed, duplicated,
    /// and connections it cut. Zero without `[[faults]]`/`HF_FAULTS`/`HF_FAULTS_FILE`.
    pub faults_dropped: u64,
    pub faults_corrupted: u64,
    pub faults_cut: u64,
    pub faults_delayed: u64,
    #[serde(default)]
    pub faults_duplicated: u64,
    /// Slots of the shared-memory pool this node lends from on its newest link (0: none);
    /// `buffer_pool_buffers` on links this node dialed, the dialer's on links it accepted.
    #[serde(default)]
    pub shm_pool_slots: u64,
    /// Bytes per slot of that pool (0: none): `buffer_pool_slot_bytes` of the dialer.
    #[serde(default)]
    pub shm_pool_slot_bytes: u64,
    /// Frames a waiting caller read from a plain TCP socket itself (`busy_poll`), not the
    /// link's reader thread.
    #[serde(default)]
    pub frames_polled: u64,
}

impl StatsSnapshot {
    /// Adds the fault injector's counters.
    pub fn with_faults(mut self, c: &FaultCounters) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.faults_dropped = r(&c.dropped);
        self.faults_corrupted = r(&c.corrupted);
        self.faults_cut = r(&c.cut);
        self.faults_delayed = r(&c.delayed);
        self.faults_duplicated = r(&c.duplicated);
        self
    }
}
