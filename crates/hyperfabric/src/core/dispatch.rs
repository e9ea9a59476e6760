//! [`Node::handle_frame`]: a decoded frame is relayed (not for this node) or acted on
//! (data, ack, nack, ping, pong).

use super::answer;
use super::event::Event;
use super::incoming::Outcome;
use super::node::Node;
use super::pack;
use super::paths::LinkId;
use super::relay;
use super::source;
use super::time::Time;
use crate::proto::AckInfo;
use crate::wire::{flags, FrameKind, Header, Refusal, RefusalCode};

/// Flags of a data frame the core does not handle yet (transforms, loans, names live in
/// the runtime): such a transfer is refused, never silently misread.
const DATA_FLAGS_UNHANDLED: u16 = flags::TRANSFORM_MASK | flags::LOANED | flags::NAMED;

impl Node {
    /// A frame that arrived on `link`, already decoded with its CRC32C checked.
    /// Per-connection kinds (hello, close, shm, metrics) are the engine's and are ignored;
    /// a frame whose claimed source cannot be true on `link` ([`source::check`]) is dropped
    /// and counted (`Stats::frames_bad_source`).
    pub fn handle_frame(&mut self, now: Time, link: LinkId, h: &Header, payload: &[u8]) {
        self.stats.frames_in += 1;
        let sane = h.payload_len as usize == payload.len() && self.paths.peer(link).is_some();
        if !sane || !h.kind.is_routed() || self.paths.name_of(h.src).is_none() {
            self.stats.frames_ignored += 1;
            return;
        }
        let peer = self.paths.peer_key(link).unwrap_or_default();
        let paths = &self.paths;
        if source::check(h, self.key, peer, |k| paths.name_of(k).is_some()).is_err() {
            self.stats.frames_bad_source += 1;
            return;
        }
        if h.dst != self.key {
            self.relay(link, h, payload);
            return;
        }
        match h.kind {
            FrameKind::Data => self.on_data(now, h, payload),
            FrameKind::Ack => self.on_ack(now, h),
            FrameKind::Nack => self.on_nack(now, h, payload),
            FrameKind::Ping => {
                let pong = answer::pong(self.key, h);
                self.send_to(h.src, pong, payload.to_vec());
            }
            FrameKind::Pong => self.on_pong(now, h),
            _ => self.stats.frames_ignored += 1,
        }
        self.reap(now);
    }

    /// Forwards a frame along the router's next hop, or refuses it back to its source
    /// ([`relay::decide`], the decision the runtime's relays take too).
    fn relay(&mut self, from: LinkId, h: &Header, payload: &[u8]) {
        if let Err(why) = self.cfg.zones.check(h.src, h.dst, &[self.key]) {
            if relay::refused_back(h.kind) {
                let text = format!("rejected at relay `{}`: {why}", self.paths.me());
                self.refuse(h, Refusal::new(RefusalCode::ZoneDenied, text));
            }
            return;
        }
        // handle_frame checked that `from` is a registered link.
        let from_peer = self.paths.peer_key(from).unwrap_or_default();
        let paths = &mut self.paths;
        match relay::decide(h, self.cfg.limits.hops_max, from_peer, || {
            paths.route(h.dst)
        }) {
            Ok(next) => {
                let mut fwd = *h;
                fwd.hops += 1;
                self.stats.frames_relayed += 1;
                self.push(next, fwd, payload.to_vec());
            }
            Err(r) if relay::refused_back(h.kind) => {
                self.refuse(h, Refusal::new(r.code(), r.to_string()));
            }
            Err(_) => {}
        }
    }

    fn on_data(&mut self, now: Time, h: &Header, payload: &[u8]) {
        if h.flags & DATA_FLAGS_UNHANDLED != 0 {
            let text = "transforms, loans and names are not handled by the core";
            return self.refuse(h, Refusal::new(RefusalCode::BadFrame, text));
        }
        if self.events.len() >= self.cfg.limits.events_max && !self.inc.knows(h.src, h.transfer_id)
        {
            let text = "undelivered events fill the queue";
            return self.refuse(h, Refusal::new(RefusalCode::TooManyTransfers, text));
        }
        if let Err(why) = self.cfg.zones.check(h.src, self.key, &[]) {
            let text = format!("rejected at the destination: {why}");
            return self.refuse(h, Refusal::new(RefusalCode::ZoneDenied, text));
        }
        let code = flags::compression(h.flags);
        let payload = if code == 0 {
            payload
        } else {
            // A chunk never inflates past what is left of its transfer.
            let max = h
                .aux
                .saturating_sub(h.offset)
                .min(self.cfg.recv.max_transfer_bytes);
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            match pack::inflate(code, payload, &mut self.scratch, max) {
                Ok(inflated) => inflated,
                Err(e) => {
                    return self.refuse(h, Refusal::new(RefusalCode::BadFrame, e.to_string()))
                }
            }
        };
        match self.inc.on_data(now, h, payload) {
            Outcome::Quiet => {}
            Outcome::Ack(ack) => self.ack(h, ack),
            Outcome::Refuse(r) => self.refuse(h, r),
            Outcome::Complete(data) => {
                let total = data.len() as u64;
                self.stats.deliveries += 1;
                self.events.push_back(Event::Delivered {
                    src: self.dst_name(h.src),
                    id: super::TransferId(h.transfer_id),
                    crc32c: crc32c::crc32c(&data),
                    data,
                    data_type: h.data_type,
                    priority: h.priority,
                });
                self.ack(h, crate::proto::IncomingTransfer::final_ack(total));
            }
        }
    }

    fn on_ack(&mut self, now: Time, h: &Header) {
        let ack = answer::ack_info(h);
        match self
            .out
            .iter_mut()
            .find(|o| o.id.0 == h.transfer_id && o.dst == h.src)
        {
            Some(o) => o.on_ack(ack, now),
            None => self.stats.frames_ignored += 1,
        }
    }

    fn on_nack(&mut self, now: Time, h: &Header, payload: &[u8]) {
        let Some(o) = self.out.iter_mut().find(|o| o.id.0 == h.transfer_id) else {
            self.stats.frames_ignored += 1;
            return;
        };
        if h.has(flags::FATAL) {
            // A relay on the way may refuse it (its refusal names the relay); only the
            // destination's own refusal proves the transfer was not delivered.
            o.on_refused(Refusal::from_nack(h.aux, payload), h.src == o.dst);
        } else if h.src == o.dst {
            o.on_nack(h.offset, h.aux, now);
        }
    }

    fn on_pong(&mut self, now: Time, h: &Header) {
        match self.pings.get(&h.transfer_id) {
            Some(&(dst, sent)) if dst == h.src => {
                self.pings.remove(&h.transfer_id);
                let dst = self.dst_name(dst);
                let (seq, rtt) = (h.transfer_id, now.since(sent));
                self.events.push_back(Event::Pong { dst, seq, rtt });
            }
            _ => self.stats.frames_ignored += 1,
        }
    }

    /// Sends `ack` for the data frame `h` back to its source.
    fn ack(&mut self, h: &Header, ack: AckInfo) {
        let a = answer::ack(self.key, h, ack);
        self.send_to(h.src, a, Vec::new());
    }

    /// Refuses the transfer of frame `h` with a Nack FATAL to its source. The refusal names
    /// this node, the destination or a relay (`docs/wire.md`, "Refusal codes").
    fn refuse(&mut self, h: &Header, refusal: Refusal) {
        self.stats.refusals_sent += 1;
        let n = answer::refusal(self.key, h, refusal.code);
        self.send_to(h.src, n, refusal.reason.into_bytes());
    }

    /// Queues an end-to-end frame for `dst` on the next hop; without one it is dropped
    /// (its sender's timeout recovers).
    fn send_to(&mut self, dst: u64, h: Header, payload: Vec<u8>) {
        match self.paths.next_hop(dst) {
            Some(link) => self.push(link, h, payload),
            None => self.stats.frames_dropped += 1,
        }
    }
}
