//! Node counters: cheap relaxed atomics on the hot path, read as a snapshot by reports;
//! and the node's full metrics snapshot, served locally and to remote monitors.

use super::{Conn, Lane, NodeInner, Peer};
use crate::error::{Error, Result};
use crate::metrics::{NodeMetrics, ProcessMetrics, QueueDepths, Registry, MAX_REPLY_BYTES};
use crate::types::Priority;
use crate::wire::{DecodeError, FrameKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// See [`StatsSnapshot::content_mismatches`].
    pub content_mismatches: AtomicU64,
    /// See [`StatsSnapshot::origin_refusals`].
    pub origin_refusals: AtomicU64,
    /// See [`StatsSnapshot::observer_refusals`].
    pub observer_refusals: AtomicU64,
    /// See [`StatsSnapshot::shm_pool_slots`].
    pub shm_pool_slots: AtomicU64,
    /// See [`StatsSnapshot::shm_pool_slot_bytes`].
    pub shm_pool_slot_bytes: AtomicU64,
    /// See [`StatsSnapshot::frames_polled`].
    pub frames_polled: AtomicU64,
}

pub use crate::metrics::StatsSnapshot;

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
            content_mismatches: r(&self.content_mismatches),
            origin_refusals: r(&self.origin_refusals),
            observer_refusals: r(&self.observer_refusals),
            shm_pool_slots: r(&self.shm_pool_slots),
            shm_pool_slot_bytes: r(&self.shm_pool_slot_bytes),
            frames_polled: r(&self.frames_polled),
            open_connections,
            ..StatsSnapshot::default()
        }
    }
}

impl NodeInner {
    /// Everything this node measures, now (rates over the registry's window).
    pub fn node_metrics(&self) -> NodeMetrics {
        let now = Instant::now();
        let conns: Vec<Arc<Conn>> = self.all_conns.lock().clone();
        // Per peer: the transport of a live connection (shm wins: it carries the data).
        let mut transports: HashMap<u64, &'static str> = HashMap::new();
        for c in conns.iter().filter(|c| c.is_alive()) {
            let t = if c.is_shm() { "shm" } else { "tcp" };
            let e = transports.entry(c.peer_key).or_insert(t);
            if t == "shm" {
                *e = t;
            }
        }
        let peers = self.peers.read();
        let links = self
            .metrics
            .links()
            .iter()
            .map(|l| {
                let mut m = l.snapshot();
                let key = peers.values().find(|p| p.id == l.peer).map_or(0, |p| p.key);
                let t = transports.get(&key).copied();
                m.connected = t.is_some();
                m.transport = t.unwrap_or("none").to_owned();
                m
            })
            .collect();
        drop(peers);
        let (incoming, undelivered) = self.incoming.depths();
        let mut m = NodeMetrics {
            node: self.me.clone(),
            fabric: self.fabric_name.clone(),
            timestamp_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            uptime_seconds: now.saturating_duration_since(self.started).as_secs_f64(),
            totals: self.stats.snapshot(conns.len()),
            process: ProcessMetrics::read(),
            queues: QueueDepths {
                outgoing_transfers: self.outgoing.in_flight() as u64,
                incoming_transfers: incoming as u64,
                undelivered_messages: undelivered as u64,
                waiting_writers: conns.iter().map(|c| c.waiting_writers()).sum(),
            },
            links,
            links_truncated: false,
            receives: self.incoming.sink_name().to_owned(),
        };
        self.metrics.apply_rates(now, &mut m);
        m
    }

    /// Answers a peer's `MetricsRequest`: at most once per peer per 50 ms (extra requests
    /// are dropped), with a body built at most every 100 ms and bounded in size.
    pub(super) fn answer_metrics(&self, conn: &Conn, h: &crate::wire::Header) {
        let now = Instant::now();
        let now_ms = now.saturating_duration_since(self.started).as_millis() as u64;
        if !Registry::allow_reply(&conn.link, now_ms) {
            tracing::debug!(peer = %conn.peer, "metrics request dropped: too frequent");
            return;
        }
        let Some(body) = self
            .metrics
            .reply_body(now, || self.node_metrics().to_bounded_json(MAX_REPLY_BYTES))
        else {
            return;
        };
        let mut reply = conn.control(FrameKind::MetricsReply);
        reply.transfer_id = h.transfer_id;
        reply.priority = h.priority;
        // A failed write closes the connection; the reader notices on its next read.
        let _ = conn.send(&reply, &body);
    }

    /// Asks `peer` for its metrics and waits up to `timeout` for the answer.
    pub fn remote_metrics(self: &Arc<Self>, peer: &Peer, timeout: Duration) -> Result<NodeMetrics> {
        let deadline = Instant::now() + timeout;
        let lane = Lane::of(Priority::High, self.tuning.qos_enabled);
        let conn = self.connection_to(peer, lane, deadline)?;
        let id = self
            .metrics
            .expect_reply(peer.key)
            .ok_or_else(|| Error::InvalidArgument("too many metrics requests in flight".into()))?;
        let mut req = conn.control(FrameKind::MetricsRequest);
        req.transfer_id = id;
        req.priority = Priority::High;
        if let Err(e) = conn.send(&req, &[]) {
            // A zero wait forgets the request.
            self.metrics.wait_reply(id, Instant::now(), || {});
            return Err(Error::Unreachable {
                node: peer.id.clone(),
                reason: format!("sending the metrics request: {e}"),
            });
        }
        let mut scratch = Vec::new();
        let body = self.metrics.wait_reply(id, deadline, || {
            if conn.is_shm() {
                super::drive::drive(self, &conn, &mut scratch);
            }
        });
        let body = body.ok_or_else(|| Error::Timeout {
            what: format!("metrics of `{}`", peer.id),
            after: timeout,
        })?;
        serde_json::from_slice(&body).map_err(|_| Error::Protocol {
            peer: peer.id.clone(),
            source: DecodeError::MalformedBody {
                kind: FrameKind::MetricsReply,
                reason: "not a NodeMetrics JSON document",
            },
        })
    }
}
