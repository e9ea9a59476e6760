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
use crate::wire::{flags, Header, Refusal, RefusalCode, SIGNATURE_LEN};
use smallvec::SmallVec;

/// A FINAL ack's payload: signature and content CRC32C (when signed) then the stored name;
/// names up to 444 bytes stay on the stack.
pub(super) type AckPayload = SmallVec<[u8; 512]>;

/// Bytes a signed FINAL ack puts before the stored name: signature, content CRC32C (LE).
const SIGNED_PREFIX: usize = SIGNATURE_LEN + 4;

/// What the sender makes of a FINAL ack for one of its transfers.
pub(super) enum FinalVerdict<'p> {
    /// Delivered; the stored name it carries (empty: none).
    Accept(&'p [u8]),
    /// Forged or premature: dropped (logged); the transfer goes on.
    Drop,
    /// The destination signed for bytes other than those sent: the transfer fails.
    Mismatch(Refusal),
}

impl NodeInner {
    /// The payload and extra flags of the FINAL ack this node sends for frame `h` (of the
    /// transfer `h.transfer_id` from `h.src`, `len` bytes whose CRC32C is `content_crc`),
    /// naming `stored_as`. A relayed transfer whose content CRC is unknown (one remembered
    /// from the journal) gets an unsigned ack, which its sender drops: nothing is vouched
    /// for that was not checked.
    pub(super) fn final_ack_payload(
        &self,
        h: &Header,
        len: u64,
        stored_as: &[u8],
        content_crc: Option<u32>,
    ) -> (AckPayload, u16) {
        let mut out = AckPayload::new();
        let signing = self.keys.as_ref().filter(|_| h.hops > 0);
        let (Some(keys), Some(content_crc)) = (signing, content_crc) else {
            out.extend_from_slice(stored_as);
            return (out, 0);
        };
        let sig = keys.sign_final_ack(&FinalAck {
            transfer_id: h.transfer_id,
            len,
            sender: h.src,
            destination: self.my_key,
            content_crc,
            stored_as,
        });
        out.extend_from_slice(&sig);
        out.extend_from_slice(&content_crc.to_le_bytes());
        out.extend_from_slice(stored_as);
        (out, flags::SIGNED)
    }

    /// The CRC32C a destination signs for a transfer that arrived whole in one frame
    /// (`bytes`): only when it will sign, i.e. with per-node keys and relayed.
    pub(super) fn whole_content_crc(&self, h: &Header, bytes: &[u8]) -> Option<u32> {
        (self.keys.is_some() && h.hops > 0).then(|| crc32c::crc32c(bytes))
    }

    /// Checks a FINAL ack `h` for one of our transfers against the signature it carries and
    /// the content CRC32C this sender computed.
    pub(super) fn accept_final_ack<'p>(
        &self,
        conn: &Conn,
        h: &Header,
        payload: &'p [u8],
    ) -> FinalVerdict<'p> {
        let (signed, name) = if h.has(flags::SIGNED) {
            if payload.len() < SIGNED_PREFIX {
                self.forged(conn, h, "its signature is cut short");
                return FinalVerdict::Drop;
            }
            let (prefix, name) = payload.split_at(SIGNED_PREFIX);
            let (sig, crc) = prefix.split_at(SIGNATURE_LEN);
            let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
            (Some((sig, crc)), name)
        } else {
            (None, payload)
        };
        let Some(keys) = &self.keys else {
            return FinalVerdict::Accept(name);
        };
        let Some((sig, theirs)) = signed else {
            // Straight from the destination over a connection that proved its key.
            if h.hops == 0 {
                return FinalVerdict::Accept(name);
            }
            self.forged(conn, h, "it crossed relays unsigned");
            return FinalVerdict::Drop;
        };
        let ack = FinalAck {
            transfer_id: h.transfer_id,
            len: h.aux,
            sender: self.my_key,
            destination: h.src,
            content_crc: theirs,
            stored_as: name,
        };
        if !keys.verify_final_ack(&ack, sig) {
            self.forged(conn, h, "its signature is not the destination's");
            return FinalVerdict::Drop;
        }
        match self.outgoing.content_crc(h.transfer_id) {
            None => {
                self.forged(conn, h, "it came before every byte was sent");
                FinalVerdict::Drop
            }
            Some(ours) if ours == theirs => FinalVerdict::Accept(name),
            Some(ours) => FinalVerdict::Mismatch(self.content_mismatch(conn, h, ours, theirs)),
        }
    }

    /// The destination holds other bytes than we sent: a relay altered them. Logged and
    /// counted; the transfer fails with this refusal.
    fn content_mismatch(&self, conn: &Conn, h: &Header, ours: u32, theirs: u32) -> Refusal {
        self.stats
            .content_mismatches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let why = format!(
            "content mismatch: the destination signed for content with CRC32C {theirs:#010x}, \
             but the bytes sent have {ours:#010x}: a relay on the path (last hop `{}`) altered \
             or dropped data",
            conn.peer
        );
        tracing::warn!(via = %conn.peer, "transfer {:#x}: {why}", h.transfer_id);
        Refusal::new(RefusalCode::ContentMismatch, why)
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
