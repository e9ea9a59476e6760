//! What a sender adds with per-node keys: the origin signature a relayed frame carries
//! (origin.rs) and the content CRC32C the destination's signed FINAL ack is checked against.

use super::OutSlot;
use crate::auth::identity::Origin;
use crate::proto::ContentCrc;
use crate::wire::{flags, Header, SIGNATURE_LEN};

/// The transfer's origin signature (made once, kept in `sig`) and the frame's header and
/// payload to send through a relay with per-node keys (origin.rs).
pub(super) struct OriginSigner<'s> {
    pub keys: &'s crate::auth::identity::NodeKeys,
    pub origin: Origin,
    pub sig: &'s mut Option<[u8; SIGNATURE_LEN]>,
}

impl OriginSigner<'_> {
    /// `payload` behind the signature, in `buf` (reused across chunks), and
    /// `flags::ORIGIN` set on `h`.
    pub(super) fn sign<'b>(self, buf: &'b mut Vec<u8>, h: &mut Header, payload: &[u8]) -> &'b [u8] {
        h.flags |= flags::ORIGIN;
        let (keys, origin) = (self.keys, self.origin);
        let sig = *self.sig.get_or_insert_with(|| keys.sign_origin(&origin));
        buf.clear();
        buf.extend_from_slice(&sig);
        buf.extend_from_slice(payload);
        buf
    }
}

/// Adds a chunk about to go out to the content CRC and publishes the whole once complete.
pub(super) fn note_content(
    content: &mut Option<ContentCrc>,
    slot: &OutSlot,
    offset: u64,
    data: &[u8],
    total: u64,
) {
    if let Some(c) = content {
        c.add(offset, data);
        if let Some(crc) = c.whole(total) {
            *slot.content_crc.lock() = Some(crc);
        }
    }
}
