//! Admission of incoming transfers, the one decision the core's
//! [`Node`](super::Node) and the runtime's `IncomingTable` both take: counts and bytes per
//! peer and per node against their limits ([`Ledger`]), and the refusal each overload or
//! reassembly error travels back with ([`Overload::refusal`], [`recv_refusal`]).

use crate::proto::RecvError;
use crate::wire::{Refusal, RefusalCode};
use std::collections::HashMap;
use std::hash::Hash;

/// What one peer holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub count: usize,
    pub bytes: u64,
}

/// Which limit of a [`Ledger`] an addition would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// The peer has `max` items already.
    PeerCount { max: usize },
    /// The node has `max` items already.
    NodeCount { max: usize },
    /// The peer holds `held` bytes, at most `max`.
    PeerBytes { held: u64, max: u64 },
    /// The node holds `held` bytes, at most `max`.
    NodeBytes { held: u64, max: u64 },
}

impl Overload {
    /// A count limit (too many items) rather than a byte limit.
    pub fn is_count(self) -> bool {
        matches!(
            self,
            Overload::PeerCount { .. } | Overload::NodeCount { .. }
        )
    }
}

impl Overload {
    /// The refusal a transfer that would pass this limit gets: too many transfers for a
    /// count, quota for bytes.
    pub fn refusal(self) -> Refusal {
        let code = if self.is_count() {
            RefusalCode::TooManyTransfers
        } else {
            RefusalCode::Quota
        };
        Refusal::new(code, self.to_string())
    }
}

impl std::fmt::Display for Overload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Overload::PeerCount { max } => {
                write!(f, "too many open transfers from this peer ({max})")
            }
            Overload::NodeCount { max } => write!(f, "too many open transfers ({max})"),
            Overload::PeerBytes { held, max } => {
                write!(
                    f,
                    "this peer holds {held} bytes in reassembly (at most {max})"
                )
            }
            Overload::NodeBytes { held, max } => {
                write!(f, "{held} bytes in reassembly on this node (at most {max})")
            }
        }
    }
}

/// Counts per peer and in total, with a limit on each.
#[derive(Debug)]
pub struct Ledger<K> {
    per_peer: HashMap<K, Load>,
    total: Load,
    peer_max: Load,
    node_max: Load,
}

impl<K: Hash + Eq + Copy> Ledger<K> {
    pub fn new(peer_max: Load, node_max: Load) -> Self {
        Ledger {
            per_peer: HashMap::new(),
            total: Load::default(),
            peer_max,
            node_max,
        }
    }

    /// Why `peer` may not add `bytes` more now, if it may not. A peer holding nothing may
    /// always add one item within the per-peer byte limit's reach (so one large message is
    /// never refused for good).
    pub fn check(&self, peer: K, bytes: u64) -> Result<(), Overload> {
        let mine = self.per_peer.get(&peer).copied().unwrap_or_default();
        if mine.count >= self.peer_max.count {
            return Err(Overload::PeerCount {
                max: self.peer_max.count,
            });
        }
        if self.total.count >= self.node_max.count {
            return Err(Overload::NodeCount {
                max: self.node_max.count,
            });
        }
        if mine.count > 0 && mine.bytes.saturating_add(bytes) > self.peer_max.bytes {
            return Err(Overload::PeerBytes {
                held: mine.bytes,
                max: self.peer_max.bytes,
            });
        }
        if self.total.count > 0 && self.total.bytes.saturating_add(bytes) > self.node_max.bytes {
            return Err(Overload::NodeBytes {
                held: self.total.bytes,
                max: self.node_max.bytes,
            });
        }
        Ok(())
    }

    pub fn add(&mut self, peer: K, bytes: u64) {
        let mine = self.per_peer.entry(peer).or_default();
        mine.count += 1;
        mine.bytes += bytes;
        self.total.count += 1;
        self.total.bytes += bytes;
    }

    pub fn remove(&mut self, peer: K, bytes: u64) {
        if let Some(mine) = self.per_peer.get_mut(&peer) {
            mine.count = mine.count.saturating_sub(1);
            mine.bytes = mine.bytes.saturating_sub(bytes);
            if mine.count == 0 {
                self.per_peer.remove(&peer);
            }
        }
        self.total.count = self.total.count.saturating_sub(1);
        self.total.bytes = self.total.bytes.saturating_sub(bytes);
    }

    /// What is open now: `peer`'s count and the node's.
    pub fn counts(&self, peer: K) -> (usize, usize) {
        let mine = self.per_peer.get(&peer).map_or(0, |l| l.count);
        (mine, self.total.count)
    }

    #[cfg(test)]
    pub fn of(&self, peer: K) -> Load {
        self.per_peer.get(&peer).copied().unwrap_or_default()
    }
}

/// The refusal an incoming transfer's reassembly error is sent back with.
pub fn recv_refusal(e: RecvError) -> Refusal {
    let code = match e {
        RecvError::TooLarge { .. } | RecvError::TooFragmented { .. } => RefusalCode::Quota,
        RecvError::OutOfBounds { .. } | RecvError::LengthChanged { .. } => RefusalCode::BadFrame,
    };
    Refusal::new(code, e.to_string())
}
