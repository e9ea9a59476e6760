//! What a node does with each frame a connection delivers.

use super::incoming::{Completed, Entry, Outcome};
use super::signed_ack::FinalVerdict;
use super::{Conn, Lane, NodeInner};
use crate::config::Transform;
use crate::core::admission::recv_refusal;
use crate::core::answer;
use crate::core::pack::{self, InflateError};
use crate::core::relay::{self, NextHop};
use crate::error::{Fault, PeerMisbehaved};
use crate::proto::{AckInfo, IncomingTransfer, Verdict};
use crate::types::Strategy;
use crate::wire::{flags, FrameKind, Header, Refusal, RefusalCode};
use parking_lot::MutexGuard;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Smallest whole message handed to the application in the link's own read buffer; below
/// it a copy costs little and keeps the buffer with the link.
pub(super) const HANDOFF_MIN_BYTES: usize = 64 << 10;

/// Whether a whole message may go to the application in the very vector its link read it
/// into ([`crate::transport::LinkRx::give_payload`]), and whether the dispatch chose that:
/// the delivery then waits until the link's frame callback has returned
/// ([`NodeInner::deliver_handed`]).
pub(super) enum Handoff {
    /// The link keeps its payloads (a ring record): whole messages are copied.
    Never,
    /// The link can give this frame's payload away.
    Possible,
    /// The dispatch claimed this frame as a whole message: deliver it from the link's buffer.
    Deferred {
        header: Header,
        transform: Transform,
    },
}

impl Handoff {
    pub(super) fn new(link_gives: bool) -> Handoff {
        match link_gives {
            true => Handoff::Possible,
            false => Handoff::Never,
        }
    }
}

impl NodeInner {
    /// Handles one verified frame. `Ok(false)` ends the connection gracefully (Close);
    /// `Err(fault)` ends it as the peer's protocol violation.
    pub(super) fn dispatch(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        h: &Header,
        payload: &[u8],
        scratch: &mut Vec<u8>,
        handoff: &mut Handoff,
    ) -> Result<bool, Fault> {
        // An observer's frame goes on to the member dispatch below, or stops here.
        if conn.is_observer() && !self.observer_may(conn, h) {
            return Ok(true);
        }
        if h.dst != self.my_key && h.kind.is_routed() {
            self.forward(conn, h, payload);
            return Ok(true);
        }
        match h.kind {
            FrameKind::Data => self.on_data(conn, h, payload, scratch, handoff)?,
            FrameKind::Meta => self.on_meta(conn, h, payload),
            FrameKind::Ack => {
                if self.outgoing.belongs_to(h.transfer_id, h.src) {
                    let ack = answer::ack_info(h);
                    // A FINAL ack may name the file the destination stored; a relayed one
                    // must carry the destination's signature (signed_ack.rs).
                    let name = match ack.complete {
                        true => match self.accept_final_ack(conn, h, payload) {
                            FinalVerdict::Accept(name) => name,
                            FinalVerdict::Drop => return Ok(true),
                            FinalVerdict::Mismatch(refusal) => {
                                self.outgoing.on_nack(h.transfer_id, 0, 0, Some(refusal));
                                return Ok(true);
                            }
                        },
                        false => &[],
                    };
                    let stored_as =
                        (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned());
                    self.outgoing.on_ack(h.transfer_id, ack, stored_as);
                }
            }
            FrameKind::Nack => self.on_nack(h, payload),
            FrameKind::Ping => {
                let pong = answer::pong(self.my_key, h);
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
                return Err(PeerMisbehaved::UnexpectedKind { kind: h.kind }.into());
            }
        }
        Ok(true)
    }

    /// A refusal names who refused: the destination or a relay on the way (docs/wire.md,
    /// "Who a refusal names"); a retransmission request only the destination makes.
    fn on_nack(&self, h: &Header, payload: &[u8]) {
        let fatal = h.has(flags::FATAL);
        let known = match fatal {
            true => self.outgoing.is_open(h.transfer_id),
            false => self.outgoing.belongs_to(h.transfer_id, h.src),
        };
        if known {
            let fatal = fatal.then(|| Refusal::from_nack(h.aux, payload));
            self.outgoing.on_nack(h.transfer_id, h.offset, h.aux, fatal);
        }
    }

    fn on_meta(&self, conn: &Arc<Conn>, h: &Header, payload: &[u8]) {
        let payload = match self.check_origin(conn, h, payload) {
            Ok(p) => p,
            Err(refusal) => return self.refuse(conn, h, &refusal),
        };
        let key = (h.src, h.transfer_id);
        if self.incoming.outcome(key).is_some() {
            return;
        }
        match self.incoming.entry(key, h.aux, h.data_type, h.priority) {
            Ok(Some(e)) => e.lock().name = Some(String::from_utf8_lossy(payload).into_owned()),
            Ok(None) => {}
            Err(refusal) => self.refuse(conn, h, &refusal),
        }
    }

    /// Answers a frame of a transfer that already ended (its FINAL ack or its refusal,
    /// again: the first may have been lost). False if it has not ended.
    fn answer_ended(&self, conn: &Conn, h: &Header) -> bool {
        match self.incoming.outcome((h.src, h.transfer_id)) {
            Some(Outcome::Delivered(crc)) => {
                self.send_ack_with(conn, h, IncomingTransfer::final_ack(h.aux), &[], crc)
            }
            Some(Outcome::Refused(refusal)) => self.refuse(conn, h, &refusal),
            None => return false,
        }
        true
    }

    fn on_data(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        h: &Header,
        framed: &[u8],
        scratch: &mut Vec<u8>,
        handoff: &mut Handoff,
    ) -> Result<(), Fault> {
        let Some((payload, transform)) = self.admit_data(conn, h, framed) else {
            return Ok(());
        };
        let bytes = match flags::compression(h.flags) {
            0 => payload,
            code => self.decompress(code, payload, scratch)?,
        };
        // A transfer whole in this one frame skips reassembly: no entry, no ranges.
        let whole = h.offset == 0
            && bytes.len() as u64 == h.aux
            && !h.has(flags::NAMED) // its name comes in a Meta: reassembly waits for it
            && transform != Transform::Cache
            && self.incoming.fits_whole(h.aux)
            && self.incoming.claim_whole((h.src, h.transfer_id), self.whole_content_crc(h, bytes));
        if whole {
            // The message is the frame's payload as the link read it (no origin prefix, not
            // compressed): a large one goes on in the link's buffer once the link lets go.
            let as_read = std::ptr::eq(bytes, framed);
            if as_read && bytes.len() >= HANDOFF_MIN_BYTES && matches!(handoff, Handoff::Possible) {
                *handoff = Handoff::Deferred {
                    header: *h,
                    transform,
                };
                return Ok(());
            }
            let payload = self.incoming.pooled_copy(bytes);
            self.deliver_whole(conn, h, transform, payload);
            return Ok(());
        }
        let entry =
            match self
                .incoming
                .entry((h.src, h.transfer_id), h.aux, h.data_type, h.priority)
            {
                Ok(Some(e)) => e,
                Ok(None) => {
                    // Ended since `admit_data` looked: answer as it would.
                    self.answer_ended(conn, h);
                    return Ok(());
                }
                Err(refusal) => {
                    self.refuse(conn, h, &refusal);
                    return Ok(());
                }
            };
        let e = entry.lock();
        if e.closed {
            // Another connection's reader ended it while this one waited for the lock.
            drop(e);
            self.answer_ended(conn, h);
            return Ok(());
        }
        self.store_chunk(conn, h, bytes, transform, e);
        Ok(())
    }

    /// The checks a data frame passes before it touches a transfer: this node is its
    /// destination, its origin's signature (relayed with per-node keys), a transfer that
    /// ended (answered again), the zones, a known transform. Its payload (past the
    /// signature) and transform, or `None` when it was answered or refused here.
    fn admit_data<'p>(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        h: &Header,
        payload: &'p [u8],
    ) -> Option<(&'p [u8], Transform)> {
        if h.dst != self.my_key {
            let why = "this node is not the destination and does not relay";
            self.refuse(conn, h, &Refusal::new(RefusalCode::UnknownDestination, why));
            return None;
        }
        // Relayed with per-node keys: its sender's signature, checked before any state.
        let payload = match self.check_origin(conn, h, payload) {
            Ok(p) => p,
            Err(refusal) => {
                self.refuse(conn, h, &refusal);
                return None;
            }
        };
        self.stats.bytes_received.fetch_add(
            payload.len() as u64 + crate::wire::HEADER_LEN as u64,
            Ordering::Relaxed,
        );
        if self.answer_ended(conn, h) {
            return None;
        }
        if let Err(why) = self.zones.check(h.src, self.my_key, &[]) {
            let why = format!("rejected at the destination: {why}");
            self.refuse_routed(conn, h, &Refusal::new(RefusalCode::ZoneDenied, why));
            return None;
        }
        let Some(transform) = Transform::from_wire_code(flags::transform(h.flags)) else {
            let why = "unknown transform code in the frame flags";
            self.refuse(conn, h, &Refusal::new(RefusalCode::BadFrame, why));
            return None;
        };
        Some((payload, transform))
    }

    /// Accounts for and stores one verified chunk of the open transfer `e`; completes the
    /// transfer when it was the last missing one.
    fn store_chunk(
        &self,
        conn: &Conn,
        h: &Header,
        bytes: &[u8],
        transform: Transform,
        mut e: MutexGuard<'_, Entry>,
    ) {
        let key = (h.src, h.transfer_id);
        let stored = match e.proto.on_data(h.offset, bytes.len() as u64, h.aux) {
            Err(err) => Err(recv_refusal(err)),
            Ok(Verdict::Store { .. }) => {
                if self.keys.is_some() {
                    e.content.add(h.offset, bytes);
                }
                e.write_at(h.offset, bytes).map_err(|err| {
                tracing::warn!(peer = %conn.peer, "cannot store transfer {:#x}: {err}", h.transfer_id);
                Refusal::new(RefusalCode::StoreFailed, format!("cannot store: {err}"))
                })
            }
            Ok(Verdict::Duplicate) => Ok(()),
        };
        if let Err(refusal) = stored {
            self.incoming.abandon(key, &mut e, &refusal);
            drop(e);
            return self.refuse(conn, h, &refusal);
        }
        // A named transfer completes with its name: a lost Meta comes again with the
        // sender's next retransmission round (and its duplicate chunk brings us back here).
        let named_ok = e.name.is_some() || !h.has(flags::NAMED);
        if !(e.proto.is_complete() && named_ok) {
            if let Some(ack) = e.proto.poll_ack(false) {
                drop(e);
                self.send_ack(conn, h, ack);
            }
            return;
        }
        self.finish(conn, h, transform, e);
    }

    /// Ends a transfer that arrived whole in one frame and was claimed with
    /// `claim_whole` (so it is remembered as delivered): FINAL ack, then the message.
    pub(super) fn deliver_whole(
        &self,
        conn: &Conn,
        h: &Header,
        transform: Transform,
        payload: crate::buffer::Payload,
    ) {
        let crc = self.whole_content_crc(h, &payload);
        self.send_ack_with(conn, h, IncomingTransfer::final_ack(h.aux), &[], crc);
        self.stats
            .transfers_received
            .fetch_add(1, Ordering::Relaxed);
        self.deliver(super::Message {
            source: conn.peer.clone(),
            transfer_id: h.transfer_id,
            data_type: h.data_type,
            priority: h.priority,
            name: None,
            transform,
            payload,
        });
    }

    /// Delivers the whole message the dispatch deferred ([`Handoff::Deferred`]) in `buf`,
    /// the vector its link read it into and gave away.
    pub(super) fn deliver_handed(
        &self,
        conn: &Conn,
        h: &Header,
        transform: Transform,
        buf: Vec<u8>,
    ) {
        let payload = self.incoming.adopt(buf, h.payload_len as usize);
        self.deliver_whole(conn, h, transform, payload);
    }

    /// Stores a complete transfer for good (or refuses it), then acknowledges it FINAL.
    fn finish(&self, conn: &Conn, h: &Header, transform: Transform, mut e: MutexGuard<'_, Entry>) {
        let key = (h.src, h.transfer_id);
        let crc = e.content.whole(h.aux);
        let done = self
            .incoming
            .complete(key, conn.peer.clone(), &mut e)
            .and_then(|done| self.incoming.finish_transform(h.src, transform, done));
        match done {
            Ok(done) => {
                self.incoming.close(key, &mut e, Outcome::Delivered(crc));
                drop(e);
                let name = match &done {
                    Completed::Stored(path) => path.file_name().map(|n| n.to_string_lossy()),
                    _ => None,
                };
                let name = name.as_deref().unwrap_or_default().as_bytes();
                self.send_ack_with(conn, h, IncomingTransfer::final_ack(h.aux), name, crc);
                self.stats
                    .transfers_received
                    .fetch_add(1, Ordering::Relaxed);
                match done {
                    Completed::Deliver(msg) => self.deliver(msg),
                    Completed::Stored(path) => {
                        tracing::info!(peer = %conn.peer, bytes = h.aux, "stored transfer {:#x} at {}", h.transfer_id, path.display())
                    }
                    Completed::Dropped => {}
                }
            }
            Err(refusal) => {
                tracing::warn!(peer = %conn.peer, "transfer {:#x} failed at completion: {refusal}", h.transfer_id);
                self.incoming.abandon(key, &mut e, &refusal);
                drop(e);
                self.refuse(conn, h, &refusal);
            }
        }
    }

    /// Inflates a compressed chunk (algorithm `code` from the frame flags) into `scratch`;
    /// a bad block is the peer's protocol violation.
    fn decompress<'s>(
        &self,
        code: u8,
        payload: &[u8],
        scratch: &'s mut Vec<u8>,
    ) -> Result<&'s [u8], PeerMisbehaved> {
        let max = self.limits.max_payload as usize;
        pack::inflate(code, payload, scratch, max).map_err(|e| match e {
            InflateError::UnknownAlgorithm { code } => PeerMisbehaved::UnknownCompression { code },
            InflateError::Bad(e) => PeerMisbehaved::BadCompressedChunk { why: e.to_string() },
        })
    }

    pub(super) fn send_ack(&self, conn: &Conn, h: &Header, ack: AckInfo) {
        self.send_ack_with(conn, h, ack, &[], None);
    }

    /// An ack with a payload: a FINAL ack names the stored file and, relayed, signs the
    /// content's CRC32C `content_crc` (signed_ack.rs).
    fn send_ack_with(
        &self,
        conn: &Conn,
        h: &Header,
        ack: AckInfo,
        payload: &[u8],
        content_crc: Option<u32>,
    ) {
        let mut a = answer::ack(self.my_key, h, ack);
        if ack.complete {
            let (signed, extra) = self.final_ack_payload(h, ack.held, payload, content_crc);
            a.flags |= extra;
            let _ = conn.send(&a, &signed);
            return;
        }
        let _ = conn.send(&a, payload);
    }

    /// Relays a frame towards its destination, chunk by chunk (cut-through: nothing is
    /// reassembled here). The hop count bounds loops; the destination acknowledges end to end.
    fn forward(self: &Arc<Self>, from: &Conn, h: &Header, payload: &[u8]) {
        let refuse = |code: RefusalCode, why: String| {
            if relay::refused_back(h.kind) {
                self.refuse_routed(from, h, &Refusal::new(code, why));
            } else {
                tracing::debug!(kind = ?h.kind, "dropping a frame that cannot be relayed: {why}");
            }
        };
        if let Err(why) = self.zones.check(h.src, h.dst, &[self.my_key]) {
            let why = format!("rejected at relay `{}`: {why}", self.me);
            return refuse(RefusalCode::ZoneDenied, why);
        }
        let now = Instant::now();
        let strategy = Strategy::from_wire_code(h.strategy);
        let mut route_err = None;
        let decided = relay::decide(h, relay::HOPS_MAX, from.peer_key, || {
            let Some(dst) = self.peer_by_key(h.dst) else {
                return NextHop::UnknownDestination;
            };
            match self.first_hop(&dst, strategy, now) {
                Ok((p, _)) => NextHop::Via {
                    peer: p.key,
                    hop: p,
                },
                Err(e) => {
                    route_err = Some(e);
                    NextHop::NoRoute
                }
            }
        });
        let next = match decided {
            Ok(p) => p,
            Err(r) => {
                let detail = route_err.map(|e| format!(": {e}")).unwrap_or_default();
                return refuse(r.code(), format!("relay `{}`: {r}{detail}", self.me));
            }
        };
        let deadline = now + Duration::from_millis(self.tuning.connect_timeout_ms);
        let lane = Lane::of(h.priority, self.tuning.qos_enabled);
        let mut out = *h;
        out.hops = h.hops + 1;
        // A second try over a fresh connection: a link that just broke costs a redial, not
        // the transfer. Only a next hop that cannot be reached again refuses it.
        for retry in [false, true] {
            let conn = match self.connection_to(&next, lane, deadline) {
                Ok(c) => c,
                Err(e) => {
                    let why = format!("relay `{}` cannot reach `{}`: {e}", self.me, next.id);
                    return refuse(RefusalCode::NextHopUnreachable, why);
                }
            };
            match conn.send(&out, payload) {
                Ok(()) => {
                    self.stats.frames_forwarded.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .bytes_forwarded
                        .fetch_add(payload.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(e) if retry => {
                    let why = format!("relay `{}` lost `{}`: {e}", self.me, next.id);
                    return refuse(RefusalCode::NextHopUnreachable, why);
                }
                Err(e) => tracing::debug!(next = %next.id, "forwarding failed, redialing: {e}"),
            }
        }
    }

    /// Refuses a transfer that arrived through relays (or is being relayed here): the Nack
    /// travels back by routing.
    fn refuse_routed(self: &Arc<Self>, via: &Conn, h: &Header, refusal: &Refusal) {
        tracing::warn!(peer = %via.peer, code = %refusal.code, "refusing transfer {:#x}: {refusal}", h.transfer_id);
        // Made here, so it names this node (docs/wire.md, "Refusal codes"), as the core's
        // relay does; the sender takes a refusal from the destination or a relay.
        let n = answer::refusal(self.my_key, h, refusal.code);
        let back = if h.src == via.peer_key {
            None
        } else {
            self.next_hop(h.src, None, Instant::now())
                .ok()
                .and_then(|p| self.live_conn(p.key, Lane::of(h.priority, self.tuning.qos_enabled)))
        };
        let _ = back
            .as_deref()
            .unwrap_or(via)
            .send(&n, refusal.reason.as_bytes());
    }

    /// Tells the sender that this transfer is refused for good.
    fn refuse(&self, conn: &Conn, h: &Header, refusal: &Refusal) {
        tracing::warn!(peer = %conn.peer, code = %refusal.code, "refusing transfer {:#x}: {refusal}", h.transfer_id);
        let n = answer::refusal(self.my_key, h, refusal.code);
        let _ = conn.send(&n, refusal.reason.as_bytes());
    }
}
