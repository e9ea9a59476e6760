//! The stage: a large all_reduce through the arena, chunk by chunk, reduce-scatter then
//! all-gather, double-buffered (chunk `c` in half `c % 2` of every rank's stage).
//!
//! Chunk `c` (1, 2, ...; the arena's own chunk count, wrapping) of `N` ranks, each chunk
//! cut into `N` shares by the caller's own layout:
//!
//! ```text
//!  rank r: wait every peer's read >= c-2        (nobody still reads half c%2 of ours)
//!          put shares j != r of its chunk into half c%2, their CRC32Cs, the descriptor
//!          raw = c
//!          for q in 0..N (rank order): wait raw_q >= c, copy share r out of q's half,
//!                                      verify its CRC, reduce                [reduce-scatter]
//!          put the reduced share r into share r of its own half (only r reads it there
//!          before: nobody else reads share r of r's region), its CRC32C; reduced = c
//!          for q != r: wait reduced_q == c, copy share q out of q's half, verify [all-gather]
//!          read = c
//! ```
//!
//! A peer's words can only be so far ahead (it waits for our `read` before it reuses a
//! half): `raw` is `c` or `c + 1` while we read chunk `c`, `reduced` exactly `c`, `read`
//! `c - 2` or `c - 1` while we wait to stage `c`. Anything else is [`ArenaError::Malformed`].
//! The bytes a reader copies are judged by their CRC32C on the copy (the caller verifies:
//! it copies in cache-sized pieces and reduces each while it is hot), and every offset is
//! checked against our own layout, never taken from the shared memory.

use super::{Arena, ArenaError, Desc, ARENA_RANKS_MAX};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Wrapping distance `v - base` as a signed number.
fn ahead(v: u32, base: u32) -> i32 {
    v.wrapping_sub(base) as i32
}

impl Arena {
    /// Bytes of one stage half: the largest chunk.
    pub fn stage_half_bytes(&self) -> usize {
        self.stage_bytes / 2
    }

    /// The address of `len` bytes at `off` in rank `rank`'s half for chunk `c`.
    fn stage_at(&self, rank: usize, c: u32, off: usize, len: usize) -> Result<*mut u8, ArenaError> {
        self.block(rank)?;
        let half = self.stage_half_bytes();
        if off.checked_add(len).is_none_or(|end| end > half) {
            return Err(ArenaError::Layout(format!(
                "{len} bytes at {off} of a stage half of {half}"
            )));
        }
        let at = 2 * self.slot_bytes + half * (c % 2) as usize + off;
        // SAFETY: rank < ranks (block above), so the region lies in the mapping, and
        // 2 * slot_bytes + half * 2 == 2 * slot_bytes + stage_bytes bounds `at + len`
        // (checked).
        Ok(unsafe { self.region(rank).add(at) })
    }

    fn malformed(rank: usize, reason: String) -> ArenaError {
        ArenaError::Malformed { rank, reason }
    }

    /// Waits until every peer finished reading chunk `c - 2` (the one that used `c`'s half).
    pub fn stage_wait_free(&self, me: usize, c: u32, deadline: Instant) -> Result<(), ArenaError> {
        let base = c.wrapping_sub(2);
        for peer in (0..self.ranks).filter(|&p| p != me) {
            let b = self.block(peer)?;
            let v = self
                .wait_on(b, &b.read.word, base, deadline)
                .map_err(|()| ArenaError::Timeout {
                    rank: peer,
                    what: "reading chunk",
                    seq: base,
                })?;
            if ahead(v, base) > 1 {
                return Err(Self::malformed(peer, format!("read chunk {v} before {c}")));
            }
        }
        Ok(())
    }

    /// Copies `data` into rank `me`'s half of chunk `c` at `off` (after [`Self::stage_wait_free`]).
    pub fn stage_put(&self, me: usize, c: u32, off: usize, data: &[u8]) -> Result<(), ArenaError> {
        let dst = self.stage_at(me, c, off, data.len())?;
        // SAFETY: inside our own half (stage_at); no peer reads these bytes now (they
        // finished chunk c - 2 and we have not said raw = c, or they are our own share,
        // which no peer reads before reduced = c); `data` is caller memory.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Copies `out.len()` bytes at `off` of rank `from`'s half of chunk `c` into `out`.
    /// Untrusted bytes: the caller verifies their CRC32C on `out`.
    pub fn stage_get(
        &self,
        from: usize,
        c: u32,
        off: usize,
        out: &mut [u8],
    ) -> Result<(), ArenaError> {
        let src = self.stage_at(from, c, off, out.len())?;
        // SAFETY: inside rank `from`'s half (stage_at); `out` is our own memory, never the
        // mapping. The peer may write meanwhile: raw bytes, judged by their CRC.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Rank `me` staged its raw shares of chunk `c` (CRC32C of share j in `crcs[j]`).
    pub fn stage_publish_raw(
        &self,
        me: usize,
        c: u32,
        desc: &Desc,
        crcs: &[u32],
    ) -> Result<(), ArenaError> {
        let own = self.block(me)?;
        if crcs.len() > self.ranks {
            return Err(ArenaError::Layout(format!(
                "{} shares of {} ranks",
                crcs.len(),
                self.ranks
            )));
        }
        let h = (c % 2) as usize;
        for (w, v) in own.share_crc[h].iter().zip(crcs) {
            w.store(*v, Ordering::Relaxed);
        }
        for (w, v) in own.half[h].desc.iter().zip(desc) {
            w.store(*v, Ordering::Relaxed);
        }
        self.note_cpu(own);
        own.raw.word.set(c);
        Ok(())
    }

    /// Waits for rank `from`'s raw shares of chunk `c`: its descriptor and the CRC32C of
    /// share `share`.
    pub fn stage_wait_raw(
        &self,
        from: usize,
        c: u32,
        share: usize,
        deadline: Instant,
    ) -> Result<(Desc, u32), ArenaError> {
        let b = self.block(from)?;
        if share >= self.ranks.min(ARENA_RANKS_MAX) {
            return Err(ArenaError::Layout(format!(
                "share {share} of {}",
                self.ranks
            )));
        }
        let v = self
            .wait_on(b, &b.raw.word, c, deadline)
            .map_err(|()| ArenaError::Timeout {
                rank: from,
                what: "chunk",
                seq: c,
            })?;
        if ahead(v, c) > 1 {
            return Err(Self::malformed(
                from,
                format!("staged chunk {v} while we read {c}"),
            ));
        }
        let h = (c % 2) as usize;
        let desc: Desc = std::array::from_fn(|i| b.half[h].desc[i].load(Ordering::Relaxed));
        Ok((desc, b.share_crc[h][share].load(Ordering::Relaxed)))
    }

    /// Rank `me` staged its reduced share of chunk `c` (CRC32C `crc`).
    pub fn stage_publish_reduced(&self, me: usize, c: u32, crc: u32) -> Result<(), ArenaError> {
        let own = self.block(me)?;
        own.half[(c % 2) as usize]
            .reduced_crc
            .store(crc, Ordering::Relaxed);
        own.reduced.word.set(c);
        Ok(())
    }

    /// Waits for rank `from`'s reduced share of chunk `c`; returns its CRC32C.
    pub fn stage_wait_reduced(
        &self,
        from: usize,
        c: u32,
        deadline: Instant,
    ) -> Result<u32, ArenaError> {
        let b = self.block(from)?;
        let v = self
            .wait_on(b, &b.reduced.word, c, deadline)
            .map_err(|()| ArenaError::Timeout {
                rank: from,
                what: "reduced chunk",
                seq: c,
            })?;
        if v != c {
            return Err(Self::malformed(
                from,
                format!("reduced chunk {v} while we read {c}"),
            ));
        }
        Ok(b.half[(c % 2) as usize].reduced_crc.load(Ordering::Relaxed))
    }

    /// Rank `me` read everything of chunk `c`: its half may be reused for `c + 2`.
    pub fn stage_finish(&self, me: usize, c: u32) -> Result<(), ArenaError> {
        self.block(me)?.read.word.set(c);
        Ok(())
    }
}
