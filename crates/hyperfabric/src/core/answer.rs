//! The frames a node answers with (ack, refusal, pong) and what an ack says: built and
//! read here once, for the core's [`Node`](super::Node) and the runtime alike. Pure
//! header arithmetic, allocation-free, on every transfer's path.

use crate::proto::AckInfo;
use crate::wire::{flags, FrameKind, Header, RefusalCode};

/// The ack node `me` sends back for data frame `h` (FINAL when `ack` says complete).
#[inline]
pub fn ack(me: u64, h: &Header, ack: AckInfo) -> Header {
    let mut a = Header::new(FrameKind::Ack);
    (a.src, a.dst, a.transfer_id) = (me, h.src, h.transfer_id);
    (a.offset, a.aux) = (ack.contiguous, ack.held);
    a.flags = if ack.complete { flags::FINAL } else { 0 };
    a
}

/// What the ack frame `h` says of its transfer.
#[inline]
pub fn ack_info(h: &Header) -> AckInfo {
    AckInfo {
        contiguous: h.offset,
        held: h.aux,
        complete: h.has(flags::FINAL),
    }
}

/// The refusal (`Nack FATAL` with `code`; the reason text is its payload) of frame `h`'s
/// transfer, sent by `me` to `h`'s source.
#[inline]
pub fn refusal(me: u64, h: &Header, code: RefusalCode) -> Header {
    let mut n = Header::new(FrameKind::Nack);
    (n.src, n.dst, n.transfer_id) = (me, h.src, h.transfer_id);
    (n.flags, n.aux) = (flags::FATAL, code.wire_code());
    n
}

/// The pong node `me` answers ping `h` with: same sequence, timestamp and payload, on its
/// way back with a fresh hop count (its relays count again from zero).
#[inline]
pub fn pong(me: u64, h: &Header) -> Header {
    let mut pong = *h;
    (pong.kind, pong.src, pong.dst, pong.hops) = (FrameKind::Pong, me, h.src, 0);
    pong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_go_back_to_the_source_and_an_ack_reads_as_it_was_written() {
        let mut d = Header::new(FrameKind::Data);
        (d.src, d.dst, d.transfer_id, d.hops) = (1, 2, 9, 3);
        let info = AckInfo {
            contiguous: 5,
            held: 7,
            complete: true,
        };
        let a = ack(2, &d, info);
        assert_eq!(
            (a.kind, a.src, a.dst, a.transfer_id),
            (FrameKind::Ack, 2, 1, 9)
        );
        assert_eq!(ack_info(&a), info);
        let n = refusal(2, &d, RefusalCode::Quota);
        assert!(n.has(flags::FATAL) && n.kind == FrameKind::Nack && n.dst == 1);
        assert_eq!(n.aux, RefusalCode::Quota.wire_code());
        let p = pong(
            2,
            &Header {
                kind: FrameKind::Ping,
                ..d
            },
        );
        assert_eq!((p.kind, p.src, p.dst, p.hops), (FrameKind::Pong, 2, 1, 0));
    }
}
