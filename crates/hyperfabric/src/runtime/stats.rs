//! Node counters: cheap relaxed atomics on the hot path, read as a snapshot by reports.

use crate::transport::fault::FaultCounters;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct NodeStats {
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub transfers_sent: AtomicU64,
    pub transfers_received: AtomicU64,
    pub transfers_failed: AtomicU64,
    pub retransmitted_bytes: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub frames_forwarded: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    /// Frames whose payload failed its checksum under a sane header: dropped, link kept
    /// (the sender's retransmission recovers them).
    pub corrupt_frames_dropped: AtomicU64,
}

/// A point-in-time copy of [`NodeStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
    pub open_connections: usize,
    /// Fault injection (tests): frames this node dropped, corrupted, delayed, and
    /// connections it cut. Zero without `[[faults]]`/`HF_FAULTS`/`HF_FAULTS_FILE`.
    pub faults_dropped: u64,
    pub faults_corrupted: u64,
    pub faults_cut: u64,
    pub faults_delayed: u64,
}

impl StatsSnapshot {
    /// Adds the fault injector's counters.
    pub fn with_faults(mut self, c: &FaultCounters) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.faults_dropped = r(&c.dropped);
        self.faults_corrupted = r(&c.corrupted);
        self.faults_cut = r(&c.cut);
        self.faults_delayed = r(&c.delayed);
        self
    }
}

impl NodeStats {
    pub fn snapshot(&self, open_connections: usize) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            bytes_sent: r(&self.bytes_sent),
            bytes_received: r(&self.bytes_received),
            frames_sent: r(&self.frames_sent),
            frames_received: r(&self.frames_received),
            transfers_sent: r(&self.transfers_sent),
            transfers_received: r(&self.transfers_received),
            transfers_failed: r(&self.transfers_failed),
            retransmitted_bytes: r(&self.retransmitted_bytes),
            connections_accepted: r(&self.connections_accepted),
            connections_rejected: r(&self.connections_rejected),
            protocol_errors: r(&self.protocol_errors),
            frames_forwarded: r(&self.frames_forwarded),
            bytes_forwarded: r(&self.bytes_forwarded),
            corrupt_frames_dropped: r(&self.corrupt_frames_dropped),
            open_connections,
            ..StatsSnapshot::default()
        }
    }
}
