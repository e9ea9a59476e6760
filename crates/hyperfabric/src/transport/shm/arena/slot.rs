//! The slot: a whole small vector per collective, one phase per collective.
//!
//! Collective number `seq` (the arena's own count, wrapping; the first is 1) lives in half
//! `seq % 2` of every rank's slot:
//!
//! ```text
//!  rank r: write its bytes into half seq%2 of its slot, then len, CRC32C, descriptor and
//!          seq into that half's line (seq last, Release; a futex wake only if one sleeps)
//!          for q != r: wait until q's half seq%2 says seq, copy q's bytes out, verify the
//!                      CRC32C on the copy
//! ```
//!
//! No "done reading" handshake: rank r starts collective `seq` only after it saw every
//! peer's `seq - 1`, and a peer publishes `seq - 1` only after it finished reading
//! `seq - 2`, the last user of half `seq % 2`. So that half is free, and a peer is at most
//! one collective ahead (its `seq + 1` goes into the other half). The number in the half we
//! wait on is therefore `seq - 2` (not yet) or `seq`; anything else past `seq - 2` is
//! [`ArenaError::Malformed`].

use super::{Arena, ArenaError, Desc};
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Arena {
    /// Publishes `data` (at most `slot_bytes`) with `desc` as rank `me`'s collective `seq`.
    /// The caller has seen every peer's `seq - 1` (or `seq` is its first, 1 or 2).
    pub fn publish(&self, me: usize, seq: u32, desc: &Desc, data: &[u8]) -> Result<(), ArenaError> {
        let own = self.block(me)?;
        if data.len() > self.slot_bytes {
            return Err(ArenaError::Layout(format!(
                "publish of {} bytes (slot {})",
                data.len(),
                self.slot_bytes
            )));
        }
        self.note_cpu(own);
        let half = (seq % 2) as usize;
        let info = &own.slot[half];
        // SAFETY: our own region (rank `me` < ranks checked by `block`), half `half` of the
        // slot: offset half * slot_bytes, `data.len()` <= slot_bytes checked above; no peer
        // reads it now (each finished seq - 2, its last user, before it published seq - 1,
        // which the caller saw); `data` is caller memory, not the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.region(me).add(half * self.slot_bytes),
                data.len(),
            )
        };
        info.len.store(data.len() as u64, Ordering::Relaxed);
        info.crc.store(crc32c::crc32c(data), Ordering::Relaxed);
        for (w, v) in info.desc.iter().zip(desc) {
            w.store(*v, Ordering::Relaxed);
        }
        // SeqCst (in `set`): the store must not pass the sleepers load (a lost wake-up).
        info.seq.set(seq);
        Ok(())
    }

    /// Waits for rank `from`'s collective `seq`, copies its bytes into `out` (which must be
    /// exactly as long as what was published) and verifies their CRC32C on the copy.
    /// Returns the publisher's descriptor for the caller to compare first: on a length
    /// mismatch `Ok(Err(desc))` lets it name the field that differs.
    pub fn read(
        &self,
        from: usize,
        seq: u32,
        out: &mut [u8],
        deadline: Instant,
    ) -> Result<Result<Desc, Desc>, ArenaError> {
        let b = self.block(from)?;
        let malformed = |reason: String| ArenaError::Malformed { rank: from, reason };
        let half = (seq % 2) as usize;
        let info = &b.slot[half];
        let now = self
            .wait_on(b, &info.seq, seq, deadline)
            .map_err(|()| ArenaError::Timeout {
                rank: from,
                what: "collective",
                seq,
            })?;
        if now != seq {
            return Err(malformed(format!("sequence {now}, expected {seq}")));
        }
        let desc: Desc = std::array::from_fn(|i| info.desc[i].load(Ordering::Relaxed));
        let len = info.len.load(Ordering::Relaxed);
        if len > self.slot_bytes as u64 {
            return Err(malformed(format!("length {len} over the slot")));
        }
        if len != out.len() as u64 {
            return Ok(Err(desc));
        }
        // SAFETY: `from` < ranks (block), half * slot_bytes + len <= 2 * slot_bytes: the
        // source lies in its region's slot; `out` is our own memory, never the mapping. The
        // peer may write the region meanwhile (it is untrusted): we copy raw bytes and
        // judge them by the CRC.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.region(from).add(half * self.slot_bytes),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        let crc = info.crc.load(Ordering::Relaxed);
        if crc32c::crc32c(out) != crc {
            return Err(malformed(format!("CRC32C mismatch on collective {seq}")));
        }
        Ok(Ok(desc))
    }
}
