//! Who a frame may claim to come from, given the link it came on: the one check against
//! impersonation, taken by the core ([`Node::handle_frame`](super::Node::handle_frame)) and
//! by the runtime's receive path (`runtime/receive.rs`, every link: TCP, TLS, shm).
//!
//! Straight from the peer (`hops == 0`) a frame carries the peer's key: every node puts its
//! own key in what it makes, answers and refusals included (a relay's refusal names the relay,
//! `docs/wire.md`, "Refusal codes"). Relayed (`hops > 0`) it carries its origin's, which must
//! be another member: not this node (nobody relays our own frames to us) and not the peer
//! itself (its own frames are direct). What a relay cannot be stopped from claiming (another
//! member's key, without per-node keys) is in `docs/operations.md`.

use crate::wire::Header;
use std::fmt;

/// A frame whose claimed source cannot be true on the link it came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMismatch {
    /// Direct (`hops` 0) but not the link's peer's key.
    NotThePeer { claimed: u64 },
    /// Relayed, but claiming to come from this node.
    RelayedFromMe { hops: u8 },
    /// Relayed, but claiming to come from the peer that sent it (its own frames are direct).
    RelayedFromThePeer { hops: u8 },
    /// Relayed from a key that is no member.
    UnknownOrigin { claimed: u64 },
}

impl fmt::Display for SourceMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceMismatch::NotThePeer { claimed } => {
                write!(
                    f,
                    "a direct frame claims source key {claimed:#x}, not the link's peer"
                )
            }
            SourceMismatch::RelayedFromMe { hops } => {
                write!(
                    f,
                    "a relayed frame (hops {hops}) claims to come from this node"
                )
            }
            SourceMismatch::RelayedFromThePeer { hops } => {
                write!(
                    f,
                    "a relayed frame (hops {hops}) claims to come from the relay itself"
                )
            }
            SourceMismatch::UnknownOrigin { claimed } => {
                write!(
                    f,
                    "a relayed frame claims an unknown source key {claimed:#x}"
                )
            }
        }
    }
}

/// Whether `h`'s source can be true on a link to `peer` at node `me`; `is_member` says
/// whether a key is a member of the fabric.
#[inline]
pub fn check(
    h: &Header,
    me: u64,
    peer: u64,
    is_member: impl FnOnce(u64) -> bool,
) -> Result<(), SourceMismatch> {
    if h.hops == 0 {
        return match h.src == peer {
            true => Ok(()),
            false => Err(SourceMismatch::NotThePeer { claimed: h.src }),
        };
    }
    if h.src == me {
        return Err(SourceMismatch::RelayedFromMe { hops: h.hops });
    }
    if h.src == peer {
        return Err(SourceMismatch::RelayedFromThePeer { hops: h.hops });
    }
    if !is_member(h.src) {
        return Err(SourceMismatch::UnknownOrigin { claimed: h.src });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FrameKind;

    fn frame(src: u64, hops: u8) -> Header {
        let mut h = Header::new(FrameKind::Data);
        (h.src, h.hops) = (src, hops);
        h
    }

    #[test]
    fn direct_frames_carry_the_peer_and_relayed_ones_another_member() {
        let (me, peer, other, stranger) = (1, 2, 3, 4);
        let member = |k: u64| k != stranger;
        assert_eq!(check(&frame(peer, 0), me, peer, member), Ok(()));
        assert_eq!(check(&frame(other, 2), me, peer, member), Ok(()));
        let cases = [
            (
                frame(other, 0),
                SourceMismatch::NotThePeer { claimed: other },
            ),
            (frame(me, 1), SourceMismatch::RelayedFromMe { hops: 1 }),
            (
                frame(peer, 1),
                SourceMismatch::RelayedFromThePeer { hops: 1 },
            ),
            (
                frame(stranger, 3),
                SourceMismatch::UnknownOrigin { claimed: stranger },
            ),
        ];
        for (h, want) in cases {
            assert_eq!(check(&h, me, peer, member), Err(want));
        }
    }
}
