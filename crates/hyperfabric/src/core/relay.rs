//! The relay decision: whether a frame addressed to another node goes on, and on which
//! hop, or why not. One pure function, [`decide`], that the core's [`Node`](super::Node)
//! and the runtime's `dispatch::forward` both call, so the simulator runs the decision
//! production takes.

use crate::wire::{FrameKind, Header, RefusalCode};
use std::fmt;

/// Most relays a frame may cross (loop protection); the default of
/// [`Limits::hops_max`](super::Limits::hops_max) and the runtime's limit.
pub const HOPS_MAX: u8 = 16;

/// What the node's router says about the way on towards a frame's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop<H> {
    /// The destination is not a node this one knows.
    UnknownDestination,
    /// The router has no route (links down, node unreachable).
    NoRoute,
    /// Send it to `hop`, the neighbour whose node key is `peer`.
    Via { hop: H, peer: u64 },
}

/// Why a frame is not relayed; each reason has one wire code ([`Self::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayRefusal {
    /// The frame has crossed `max` relays already.
    HopLimit { max: u8 },
    /// The destination is not in this node's topology.
    UnknownDestination,
    /// The router has no next hop towards the destination.
    NoNextHop,
    /// The next hop is the neighbour the frame came from, and that is not its destination.
    BackWhereItCame,
}

impl RelayRefusal {
    /// The code the refusal travels with.
    #[inline]
    pub fn code(self) -> RefusalCode {
        match self {
            RelayRefusal::HopLimit { .. } | RelayRefusal::BackWhereItCame => {
                RefusalCode::RoutingLoop
            }
            RelayRefusal::UnknownDestination => RefusalCode::UnknownDestination,
            RelayRefusal::NoNextHop => RefusalCode::NextHopUnreachable,
        }
    }
}

impl fmt::Display for RelayRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayRefusal::HopLimit { max } => {
                write!(f, "hop limit of {max} reached (routing loop?)")
            }
            RelayRefusal::UnknownDestination => f.write_str("destination not in the topology"),
            RelayRefusal::NoNextHop => f.write_str("no next hop towards the destination"),
            RelayRefusal::BackWhereItCame => {
                f.write_str("the next hop is where the frame came from")
            }
        }
    }
}

/// Decides the relay of frame `h`, which came from the neighbour with node key
/// `from_peer`: the hop to send it on (its hop count is the caller's to increment), or
/// why it is refused. `next_hop` asks the router and is only called once the hop limit
/// `hops_max` passed. Allocation-free: it runs for every relayed frame.
#[inline]
pub fn decide<H>(
    h: &Header,
    hops_max: u8,
    from_peer: u64,
    next_hop: impl FnOnce() -> NextHop<H>,
) -> Result<H, RelayRefusal> {
    if h.hops >= hops_max {
        return Err(RelayRefusal::HopLimit { max: hops_max });
    }
    match next_hop() {
        NextHop::UnknownDestination => Err(RelayRefusal::UnknownDestination),
        NextHop::NoRoute => Err(RelayRefusal::NoNextHop),
        // Back to the neighbour it came from is a loop, unless that neighbour is where it goes.
        NextHop::Via { peer, .. } if peer == from_peer && peer != h.dst => {
            Err(RelayRefusal::BackWhereItCame)
        }
        NextHop::Via { hop, .. } => Ok(hop),
    }
}

/// Whether a frame that cannot be relayed is refused back to its source (data and meta:
/// a transfer's sender waits for them) rather than dropped (a lost ack, nack, ping or
/// pong is recovered by its sender's timeout).
#[inline]
pub fn refused_back(kind: FrameKind) -> bool {
    matches!(kind, FrameKind::Data | FrameKind::Meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: u64, hops: u8) -> Header {
        let mut h = Header::new(FrameKind::Data);
        (h.src, h.dst, h.hops) = (1, dst, hops);
        h
    }

    #[test]
    fn each_refusal_has_its_code_and_the_hop_limit_comes_first() {
        let via = |peer| move || NextHop::Via { hop: "x", peer };
        assert_eq!(decide(&frame(3, 0), 16, 1, via(2)), Ok("x"));
        let called = std::cell::Cell::new(false);
        let limit = decide(&frame(3, 16), 16, 1, || {
            called.set(true);
            NextHop::Via { hop: "x", peer: 2 }
        });
        assert_eq!(limit, Err(RelayRefusal::HopLimit { max: 16 }));
        assert!(!called.get(), "the router is not asked past the hop limit");
        assert_eq!(
            decide(&frame(3, 0), 16, 2, via(2)),
            Err(RelayRefusal::BackWhereItCame)
        );
        assert_eq!(
            decide(&frame(2, 0), 16, 2, via(2)),
            Ok("x"),
            "back to its destination"
        );
        let none = decide::<&str>(&frame(3, 0), 16, 1, || NextHop::NoRoute);
        assert_eq!(
            none.map_err(RelayRefusal::code),
            Err(RefusalCode::NextHopUnreachable)
        );
        let unknown = decide::<&str>(&frame(3, 0), 16, 1, || NextHop::UnknownDestination);
        assert_eq!(
            unknown.map_err(RelayRefusal::code),
            Err(RefusalCode::UnknownDestination)
        );
        assert_eq!(
            RelayRefusal::HopLimit { max: 1 }.code(),
            RefusalCode::RoutingLoop
        );
        assert!(refused_back(FrameKind::Meta) && !refused_back(FrameKind::Pong));
    }
}
