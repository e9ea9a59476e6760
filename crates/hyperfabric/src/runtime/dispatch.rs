//! What a node does with each frame a connection delivers.

use super::incoming::{refusal, Completed};
use super::{Conn, Lane, NodeInner};
use crate::compress::{self, Algorithm};
use crate::config::Transform;
use crate::proto::{AckInfo, IncomingTransfer, Verdict};
use crate::wire::{flags, FrameKind, Header};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most relays a frame may cross (loop protection).
pub const MAX_HOPS: u8 = 16;

impl NodeInner {
    /// Handles one verified frame. `Ok(false)` ends the connection gracefully (Close);
    /// `Err(reason)` ends it as a protocol violation.
    pub(super) fn dispatch(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        h: &Header,
        payload: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<bool, String> {
        if h.dst != self.my_key && h.kind.is_routed() {
            self.forward(conn, h, payload);
            return Ok(true);
        }
        match h.kind {
            FrameKind::Data => self.on_data(conn, h, payload, scratch)?,
            FrameKind::Meta => self.on_meta(conn, h, payload),
            FrameKind::Ack => {
                if self.outgoing.belongs_to(h.transfer_id, h.src) {
                    let ack = AckInfo {
                        contiguous: h.offset,
                        held: h.aux,
                        complete: h.has(flags::FINAL),
                    };
                    self.outgoing.on_ack(h.transfer_id, ack);
                }
            }
            FrameKind::Nack => {
                if self.outgoing.belongs_to(h.transfer_id, h.src) {
                    let fatal = h
                        .has(flags::FATAL)
                        .then(|| String::from_utf8_lossy(payload).into_owned());
                    self.outgoing.on_nack(h.transfer_id, h.offset, h.aux, fatal);
                }
            }
            FrameKind::Ping => {
                let mut pong = *h;
                pong.kind = FrameKind::Pong;
                pong.src = self.my_key;
                pong.dst = h.src;
                // A failed write closes the connection; the reader notices on its next read.
                let _ = conn.send(&pong, payload);
            }
            FrameKind::Pong => self.on_pong(conn, h.transfer_id),
            FrameKind::Close => return Ok(false),
            FrameKind::MetricsRequest => self.answer_metrics(conn, h),
            FrameKind::MetricsReply => {
                // A reply nobody asked for (or too late) is ignored, not an error.
                self.metrics.fulfil(h.transfer_id, h.src, payload);
            }
            FrameKind::Hello
            | FrameKind::Welcome
            | FrameKind::Reject
            | FrameKind::ShmOffer
            | FrameKind::ShmAccept
            | FrameKind::Auth => {
                return Err(format!("unexpected {:?} after the handshake", h.kind));
            }
        }
        Ok(true)
    }

    fn on_meta(&self, conn: &Arc<Conn>, h: &Header, payload: &[u8]) {
        let key = (h.src, h.transfer_id);
        if self.incoming.is_done(key) {
            return;
        }
        match self.incoming.entry(key, h.aux, h.data_type, h.priority) {
            Ok(e) => e.lock().name = Some(String::from_utf8_lossy(payload).into_owned()),
            Err(reason) => self.refuse(conn, h, &reason),
        }
    }

    fn on_data(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        h: &Header,
        payload: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<(), String> {
        if h.dst != self.my_key {
            self.refuse(
                conn,
                h,
                "this node is not the destination and does not relay",
            );
            return Ok(());
        }
        let key = (h.src, h.transfer_id);
        self.stats.bytes_received.fetch_add(
            payload.len() as u64 + crate::wire::HEADER_LEN as u64,
            Ordering::Relaxed,
        );
        if self.incoming.is_done(key) {
            self.send_ack(conn, h, IncomingTransfer::final_ack(h.aux));
            return Ok(());
        }
        if let Err(why) = self.zones.check(h.src, self.my_key, &[]) {
            self.refuse_routed(conn, h, &format!("rejected at the destination: {why}"));
            return Ok(());
        }
        let Some(transform) = Transform::from_wire_code(flags::transform(h.flags)) else {
            self.refuse(conn, h, "unknown transform code in the frame flags");
            return Ok(());
        };
        let bytes = match flags::compression(h.flags) {
            0 => payload,
            code => self.decompress(code, payload, scratch)?,
        };
        let entry = match self.incoming.entry(key, h.aux, h.data_type, h.priority) {
            Ok(e) => e,
            Err(reason) => {
                self.refuse(conn, h, &reason);
                return Ok(());
            }
        };
        let mut e = entry.lock();
        match e.proto.on_data(h.offset, bytes.len() as u64, h.aux) {
            Err(err) => {
                drop(e);
                self.incoming.abandon(key);
                self.refuse(conn, h, &refusal(err));
                return Ok(());
            }
            Ok(Verdict::Store { .. }) => {
                if let Err(err) = e.write_at(h.offset, bytes) {
                    drop(e);
                    self.incoming.abandon(key);
                    tracing::warn!(peer = %conn.peer, "cannot store transfer {:#x}: {err}", h.transfer_id);
                    self.refuse(conn, h, &format!("cannot store: {err}"));
                    return Ok(());
                }
            }
            Ok(Verdict::Duplicate) => {}
        }
        if e.proto.is_complete() {
            let done = self
                .incoming
                .complete(key, conn.peer.clone(), &mut e)
                .and_then(|done| self.incoming.finish_transform(h.src, transform, done));
            match done {
                Ok(done) => {
                    self.send_ack(conn, h, IncomingTransfer::final_ack(h.aux));
                    self.stats
                        .transfers_received
                        .fetch_add(1, Ordering::Relaxed);
                    drop(e);
                    match done {
                        Completed::Deliver(msg) => self.incoming.deliver(msg),
                        Completed::Stored(path) => {
                            tracing::info!(peer = %conn.peer, bytes = h.aux, "stored transfer {:#x} at {}", h.transfer_id, path.display())
                        }
                        Completed::Dropped => {}
                    }
                }
                Err(reason) => {
                    tracing::warn!(peer = %conn.peer, "transfer {:#x} failed at completion: {reason}", h.transfer_id);
                    self.refuse(conn, h, &reason);
                }
            }
        } else if let Some(ack) = e.proto.poll_ack(false) {
            drop(e);
            self.send_ack(conn, h, ack);
        }
        Ok(())
    }

    /// Inflates a compressed chunk (algorithm `code` from the frame flags) into `scratch`;
    /// a bad block is the peer's protocol violation.
    fn decompress<'s>(
        &self,
        code: u8,
        payload: &[u8],
        scratch: &'s mut Vec<u8>,
    ) -> Result<&'s [u8], String> {
        let alg = Algorithm::from_wire_code(code)
            .ok_or_else(|| format!("unknown compression code {code}"))?;
        compress::decompress_into(alg, payload, scratch, self.limits.max_payload as usize)
            .map_err(|e| format!("bad compressed chunk: {e}"))?;
        Ok(&scratch[..])
    }

    fn send_ack(&self, conn: &Conn, h: &Header, ack: AckInfo) {
        let mut a = Header::new(FrameKind::Ack);
        a.src = self.my_key;
        a.dst = h.src;
        a.transfer_id = h.transfer_id;
        a.offset = ack.contiguous;
        a.aux = ack.held;
        if ack.complete {
            a.flags |= flags::FINAL;
        }
        let _ = conn.send(&a, &[]);
    }

    /// Relays a frame towards its destination, chunk by chunk (cut-through: nothing is
    /// reassembled here). The hop count bounds loops; the destination acknowledges end to end.
    fn forward(self: &Arc<Self>, from: &Conn, h: &Header, payload: &[u8]) {
        let refuse = |why: &str| {
            if matches!(h.kind, FrameKind::Data | FrameKind::Meta) {
                self.refuse_routed(from, h, why);
            } else {
                tracing::debug!(kind = ?h.kind, "dropping a frame that cannot be relayed: {why}");
            }
        };
        if let Err(why) = self.zones.check(h.src, h.dst, &[self.my_key]) {
            return refuse(&format!("rejected at relay `{}`: {why}", self.me));
        }
        if h.hops >= MAX_HOPS {
            return refuse(&format!(
                "hop limit of {MAX_HOPS} reached at `{}` (routing loop?)",
                self.me
            ));
        }
        let now = Instant::now();
        let next = match self.next_hop(h.dst, now) {
            Ok(p) if p.key == from.peer_key && p.key != h.dst => {
                return refuse(&format!(
                    "`{}` would send the frame back where it came from",
                    self.me
                ))
            }
            Ok(p) => p,
            Err(e) => return refuse(&format!("relay `{}`: {e}", self.me)),
        };
        let deadline = now + Duration::from_millis(self.tuning.connect_timeout_ms);
        let conn = match self.connection_to(
            &next,
            Lane::of(h.priority, self.tuning.qos_enabled),
            deadline,
        ) {
            Ok(c) => c,
            Err(e) => {
                return refuse(&format!(
                    "relay `{}` cannot reach `{}`: {e}",
                    self.me, next.id
                ))
            }
        };
        let mut out = *h;
        out.hops = h.hops + 1;
        match conn.send(&out, payload) {
            Ok(()) => {
                self.stats.frames_forwarded.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes_forwarded
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
            }
            Err(e) => refuse(&format!("relay `{}` lost `{}`: {e}", self.me, next.id)),
        }
    }

    /// Refuses a transfer that arrived through relays: the Nack travels back by routing.
    fn refuse_routed(self: &Arc<Self>, via: &Conn, h: &Header, reason: &str) {
        tracing::warn!(peer = %via.peer, "refusing transfer {:#x}: {reason}", h.transfer_id);
        // Sent on behalf of the destination (the sender only listens to it for this transfer),
        // marked as relayed; the reason names this node.
        let mut n = Header::new(FrameKind::Nack);
        n.src = h.dst;
        n.dst = h.src;
        n.hops = 1;
        n.transfer_id = h.transfer_id;
        n.flags = flags::FATAL;
        let back = if h.src == via.peer_key {
            None
        } else {
            self.next_hop(h.src, Instant::now())
                .ok()
                .and_then(|p| self.live_conn(p.key, Lane::of(h.priority, self.tuning.qos_enabled)))
        };
        let _ = back.as_deref().unwrap_or(via).send(&n, reason.as_bytes());
    }

    /// Tells the sender that this transfer is refused for good.
    fn refuse(&self, conn: &Conn, h: &Header, reason: &str) {
        tracing::warn!(peer = %conn.peer, "refusing transfer {:#x}: {reason}", h.transfer_id);
        let mut n = Header::new(FrameKind::Nack);
        n.src = self.my_key;
        n.dst = h.src;
        n.transfer_id = h.transfer_id;
        n.flags = flags::FATAL;
        let _ = conn.send(&n, reason.as_bytes());
    }
}
