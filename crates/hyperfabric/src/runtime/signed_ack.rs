//! Final acknowledgements a relay cannot forge (with per-node keys, `node_keys`).
//!
//! A FINAL ack that comes straight from the destination over a connection whose peer proved
//! the destination's key needs nothing more: `check_source` ties a direct frame's source to
//! the connection. One that crossed relays could have been made up by any of them, so the
//! destination signs it (`flags::SIGNED`, the signature first in the payload) when the frame
//! it answers arrived relayed, and the sender drops a relayed FINAL ack whose signature does
//! not check: a relay or an impostor can then delay or fail a transfer, never make its
//! sender report it acknowledged. Signing and checking allocate nothing.

use super::{Conn, NodeInner};
use crate::auth::identity::FinalAck;
use crate::wire::{flags, Header, SIGNATURE_LEN};
use smallvec::SmallVec;

/// A FINAL ack's payload: signature (when signed) then the stored name; names up to
/// 448 bytes stay on the stack.
pub(super) type AckPayload = SmallVec<[u8; 512]>;

impl NodeInner {
    /// The payload and extra flags of the FINAL ack this node sends for frame `h` (of the
    /// transfer `h.transfer_id` from `h.src`, `len` bytes), naming `stored_as`.
    pub(super) fn final_ack_payload(
        &self,
        h: &Header,
        len: u64,
        stored_as: &[u8],
    ) -> (AckPayload, u16) {
        let mut out = AckPayload::new();
        let Some(keys) = self.keys.as_ref().filter(|_| h.hops > 0) else {
            out.extend_from_slice(stored_as);
            return (out, 0);
        };
        let sig = keys.sign_final_ack(&FinalAck {
            transfer_id: h.transfer_id,
            len,
            sender: h.src,
            destination: self.my_key,
            stored_as,
        });
        out.extend_from_slice(&sig);
        out.extend_from_slice(stored_as);
        (out, flags::SIGNED)
    }

    /// Checks a FINAL ack `h` for one of our transfers: the stored name it carries, or
    /// `None` when it must be dropped as forged (logged).
    pub(super) fn accept_final_ack<'p>(
        &self,
        conn: &Conn,
        h: &Header,
        payload: &'p [u8],
    ) -> Option<&'p [u8]> {
        let (sig, name) = if h.has(flags::SIGNED) {
            if payload.len() < SIGNATURE_LEN {
                self.forged(conn, h, "its signature is cut short");
                return None;
            }
            let (sig, name) = payload.split_at(SIGNATURE_LEN);
            (Some(sig), name)
        } else {
            (None, payload)
        };
        let Some(keys) = &self.keys else {
            return Some(name);
        };
        let ack = FinalAck {
            transfer_id: h.transfer_id,
            len: h.aux,
            sender: self.my_key,
            destination: h.src,
            stored_as: name,
        };
        match sig {
            Some(sig) if keys.verify_final_ack(&ack, sig) => Some(name),
            Some(_) => {
                self.forged(conn, h, "its signature is not the destination's");
                None
            }
            // Straight from the destination over a connection that proved its key.
            None if h.hops == 0 => Some(name),
            None => {
                self.forged(conn, h, "it crossed relays unsigned");
                None
            }
        }
    }

    fn forged(&self, conn: &Conn, h: &Header, why: &str) {
        let dst = self.peer_by_key(h.src).map(|p| p.id).unwrap_or_default();
        tracing::warn!(
            via = %conn.peer,
            "dropping a forged final acknowledgement of transfer {:#x} in the name of `{dst}`: {why}",
            h.transfer_id
        );
    }
}
