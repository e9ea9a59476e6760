//! Relayed transfers a relay cannot make up (with per-node keys, `node_keys`).
//!
//! A direct frame's source is its connection's (`check_source`). A relayed one could claim
//! any member, so its sender signs the transfer (`auth::identity::Origin`: id, length,
//! sender, destination) once, and every relayed `Data` and `Meta` frame of it carries that
//! signature first in its payload (`flags::ORIGIN`). The destination checks it before the
//! frame touches any transfer state, and refuses an unsigned or wrongly signed relayed frame
//! with `origin unproven` (logged, counted as `origin_refusals`) without remembering the
//! refusal: a forged frame must not end the real sender's transfer of the same id. Verified
//! signatures are remembered in a small fixed table, so a transfer costs one verification,
//! not one per chunk. The direct path carries and checks nothing.

use super::{Conn, NodeInner};
use crate::auth::identity::Origin;
use crate::wire::{flags, Header, Refusal, RefusalCode, SIGNATURE_LEN};
use parking_lot::Mutex;
use std::sync::atomic::Ordering;

/// Verified origins remembered (transfers relayed to this node at once, per node).
const SEEN_MAX: usize = 16;

type Seen = (u64, u64, [u8; SIGNATURE_LEN]);

/// The origins verified last: (source key, transfer id, signature), replaced round robin.
#[derive(Default)]
pub(super) struct SeenOrigins {
    slots: Mutex<(Vec<Seen>, usize)>,
}

impl SeenOrigins {
    fn contains(&self, src: u64, id: u64, sig: &[u8]) -> bool {
        let g = self.slots.lock();
        g.0.iter()
            .any(|s| s.0 == src && s.1 == id && s.2[..] == *sig)
    }

    fn insert(&self, src: u64, id: u64, sig: &[u8]) {
        let mut s = [0u8; SIGNATURE_LEN];
        s.copy_from_slice(sig);
        let mut g = self.slots.lock();
        let (slots, next) = &mut *g;
        if slots.len() < SEEN_MAX {
            slots.push((src, id, s));
        } else {
            slots[*next] = (src, id, s);
            *next = (*next + 1) % SEEN_MAX;
        }
    }
}

impl NodeInner {
    /// The payload of a `Data` or `Meta` frame addressed to this node without its origin
    /// signature, once that is checked; `Err` refuses the frame (already logged and counted).
    pub(super) fn check_origin<'p>(
        &self,
        conn: &Conn,
        h: &Header,
        payload: &'p [u8],
    ) -> Result<&'p [u8], Refusal> {
        let (sig, rest) = match h.has(flags::ORIGIN) {
            true if payload.len() < SIGNATURE_LEN => {
                return Err(self.unproven(conn, h, "its origin signature is cut short"))
            }
            true => {
                let (sig, rest) = payload.split_at(SIGNATURE_LEN);
                (Some(sig), rest)
            }
            false => (None, payload),
        };
        let Some(keys) = self.keys.as_ref().filter(|_| h.hops > 0) else {
            return Ok(rest);
        };
        let Some(sig) = sig else {
            return Err(self.unproven(conn, h, "it crossed relays without its sender's signature"));
        };
        if self.origins.contains(h.src, h.transfer_id, sig) {
            return Ok(rest);
        }
        let origin = Origin {
            transfer_id: h.transfer_id,
            len: h.aux,
            sender: h.src,
            destination: self.my_key,
        };
        if !keys.verify_origin(&origin, sig) {
            return Err(self.unproven(conn, h, "its origin signature is not its sender's"));
        }
        self.origins.insert(h.src, h.transfer_id, sig);
        Ok(rest)
    }

    fn unproven(&self, conn: &Conn, h: &Header, why: &str) -> Refusal {
        self.stats.origin_refusals.fetch_add(1, Ordering::Relaxed);
        let src = self.peer_by_key(h.src).map(|p| p.id).unwrap_or_default();
        let why = format!(
            "origin unproven: a relayed {:?} frame of transfer {:#x} claims to come from `{src}` \
             but {why} (relayed by `{}`)",
            h.kind, h.transfer_id, conn.peer
        );
        Refusal::new(RefusalCode::OriginUnproven, why)
    }
}
