//! A per-group collective arena: one shared [`Segment`] in which every rank of a group on one
//! host owns a control block and a data region (Open MPI's sm / NCCL's shm idea: publish into
//! your own region, everybody reads everybody's).
//!
//! ```text
//!  data offset 0     arena header (64 B): magic, ranks, slot_bytes, stage_bytes
//!  64 + 1024*r       rank r's control block (every word written by rank r, except the
//!                    sleepers counts its readers raise):
//!                      line 0: seq (futex word), sleepers, len, crc, desc[5]   (the slot)
//!                      line 1: done (last seq it finished reading), sleepers   (the slot)
//!                      line 2: raw, sleepers     (chunk c's raw shares are staged)
//!                      line 3: reduced, sleepers (chunk c's reduced share is staged)
//!                      line 4: read, sleepers    (rank r read everything of chunk c)
//!                      line 5, 6: per stage half: desc[5], CRC32C of the reduced share
//!                      line 8..15: per stage half: CRC32C of each raw share (64 each)
//!  64 + 1024*N       rank 0's data region: its slot (slot_bytes, 64-aligned), then its
//!                    stage (stage_bytes: two halves, chunk c in half c % 2); rank 1's, ...
//! ```
//!
//! The slot carries a whole small vector per collective (below); the stage carries large
//! ones chunk by chunk, reduce-scatter then all-gather ([`stage`]).
//!
//! Protocol for collective number `seq` (1, 2, ...; never 0): a rank waits until every peer's
//! `done >= seq - 1` (they have read its previous publication), writes its bytes, `len`, the
//! CRC32C of the bytes and the call descriptor, then stores `seq` with Release and wakes
//! sleepers. A reader waits for `seq` with Acquire, copies the region out and verifies the
//! CRC over its copy (the peer is not trusted: it may scribble meanwhile), then the rank
//! stores `done = seq`. A peer's `seq` is never more than one ahead, so anything other than
//! `seq - 1` or `seq` is a protocol violation ([`ArenaError::Malformed`]).
//!
//! Waiting spins briefly, yields, then parks on the futex of the word waited on (a
//! `sleepers` count lets the writer skip the wake syscall when nobody sleeps), in slices of
//! at most [`PARK_SLICE`] so a deadline is always honoured.

mod stage;

use super::segment::{Segment, SegmentError};
use super::wait::{futex_wait, futex_wake, Backoff, Schedule, Step};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `b"HFARENA1"` as a little-endian u64.
pub const ARENA_MAGIC: u64 = u64::from_le_bytes(*b"HFARENA1");
/// Most ranks one arena serves.
pub const ARENA_RANKS_MAX: usize = 64;
/// Largest slot, and largest stage, per rank (64 MiB each); the whole arena must also fit
/// the segment limit (checked when it is created).
pub const ARENA_SLOT_MAX: usize = 64 << 20;
/// Longest single park before the deadline is re-checked.
pub const PARK_SLICE: Duration = Duration::from_millis(2);
const HEADER: usize = 64;
const BLOCK: usize = 1024;
const WAIT: Schedule = Schedule::SpinPark {
    spins: 200,
    yields: 20,
};

/// What went wrong in the arena.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArenaError {
    #[error("arena: {0}")]
    Segment(#[from] SegmentError),
    #[error("arena layout refused: {0}")]
    Layout(String),
    #[error("rank {rank} did not reach {what} {seq} in time")]
    Timeout {
        rank: usize,
        what: &'static str,
        seq: u32,
    },
    #[error("rank {rank}: {reason}")]
    Malformed { rank: usize, reason: String },
}

/// One rank's control block (see the module diagram).
#[repr(C, align(64))]
struct Block {
    seq: AtomicU32,
    seq_sleepers: AtomicU32,
    len: AtomicU64,
    crc: AtomicU32,
    _pad0: u32,
    desc: [AtomicU64; 5],
    done: Word,
    raw: Word,
    reduced: Word,
    read: Word,
    half: [HalfInfo; 2],
    _pad1: [u64; 8],
    share_crc: [[AtomicU32; ARENA_RANKS_MAX]; 2],
}

/// A sequence word and the count of its sleepers, alone on a cache line.
#[repr(C, align(64))]
struct Word {
    value: AtomicU32,
    sleepers: AtomicU32,
    _pad: [u64; 7],
}

/// What rank r staged in one half: the chunk's descriptor, its reduced share's CRC32C.
#[repr(C, align(64))]
struct HalfInfo {
    desc: [AtomicU64; 5],
    reduced_crc: AtomicU32,
    _pad: [u32; 5],
}

#[repr(C, align(64))]
struct Header {
    magic: AtomicU64,
    ranks: AtomicU64,
    slot_bytes: AtomicU64,
    stage_bytes: AtomicU64,
    _pad: [u64; 4],
}

const _: () = {
    assert!(std::mem::size_of::<Block>() == BLOCK);
    assert!(std::mem::offset_of!(Block, done) == 64);
    assert!(std::mem::offset_of!(Block, raw) == 128);
    assert!(std::mem::offset_of!(Block, read) == 256);
    assert!(std::mem::offset_of!(Block, half) == 320);
    assert!(std::mem::offset_of!(Block, share_crc) == 512);
    assert!(std::mem::size_of::<Header>() == HEADER);
};

/// The call descriptor every rank publishes beside its bytes (operation, type, ... : the
/// caller's encoding), compared by the collective to name a disagreement.
pub type Desc = [u64; 5];

/// A mapped arena (creator or opener).
pub struct Arena {
    seg: Segment,
    ranks: usize,
    slot_bytes: usize,
    stage_bytes: usize,
}

fn layout_len(ranks: usize, slot_bytes: usize, stage_bytes: usize) -> Result<usize, ArenaError> {
    if ranks == 0 || ranks > ARENA_RANKS_MAX {
        return Err(ArenaError::Layout(format!(
            "{ranks} ranks (1..={ARENA_RANKS_MAX})"
        )));
    }
    if slot_bytes == 0 || slot_bytes > ARENA_SLOT_MAX || !slot_bytes.is_multiple_of(64) {
        return Err(ArenaError::Layout(format!(
            "slot of {slot_bytes} bytes (a multiple of 64 up to {ARENA_SLOT_MAX})"
        )));
    }
    if stage_bytes > ARENA_SLOT_MAX || !stage_bytes.is_multiple_of(128) {
        return Err(ArenaError::Layout(format!(
            "stage of {stage_bytes} bytes (a multiple of 128 up to {ARENA_SLOT_MAX})"
        )));
    }
    Ok(HEADER + BLOCK * ranks + (slot_bytes + stage_bytes) * ranks)
}

impl Arena {
    /// Creates the arena `name` for `ranks` ranks with a slot of `slot_bytes` and a stage
    /// of `stage_bytes` (0: none) each.
    pub fn create(
        name: &str,
        ranks: usize,
        slot_bytes: usize,
        stage_bytes: usize,
    ) -> Result<Arena, ArenaError> {
        let len = layout_len(ranks, slot_bytes, stage_bytes)?;
        let seg = Segment::create(name, len)?;
        let a = Arena {
            seg,
            ranks,
            slot_bytes,
            stage_bytes,
        };
        let h = a.header();
        h.ranks.store(ranks as u64, Ordering::Relaxed);
        h.slot_bytes.store(slot_bytes as u64, Ordering::Relaxed);
        h.stage_bytes.store(stage_bytes as u64, Ordering::Relaxed);
        h.magic.store(ARENA_MAGIC, Ordering::Release);
        Ok(a)
    }

    /// Opens `name`, refusing any layout other than the one the group agreed on.
    pub fn open(
        name: &str,
        ranks: usize,
        slot_bytes: usize,
        stage_bytes: usize,
    ) -> Result<Arena, ArenaError> {
        let len = layout_len(ranks, slot_bytes, stage_bytes)?;
        let seg = Segment::open(name)?;
        if seg.data_len() < len {
            return Err(ArenaError::Layout(format!(
                "{} data bytes, the layout needs {len}",
                seg.data_len()
            )));
        }
        let a = Arena {
            seg,
            ranks,
            slot_bytes,
            stage_bytes,
        };
        let h = a.header();
        let got = (
            h.magic.load(Ordering::Acquire),
            h.ranks.load(Ordering::Relaxed),
            h.slot_bytes.load(Ordering::Relaxed),
            h.stage_bytes.load(Ordering::Relaxed),
        );
        if got
            != (
                ARENA_MAGIC,
                ranks as u64,
                slot_bytes as u64,
                stage_bytes as u64,
            )
        {
            return Err(ArenaError::Layout(format!(
                "header {:#x}/{} ranks/{} + {} bytes, expected {ranks} ranks of \
                 {slot_bytes} + {stage_bytes}",
                got.0, got.1, got.2, got.3
            )));
        }
        Ok(a)
    }

    pub fn ranks(&self) -> usize {
        self.ranks
    }

    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    pub fn stage_bytes(&self) -> usize {
        self.stage_bytes
    }

    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// Removes the name (the creator, once every rank opened it); mappings keep working.
    pub fn unlink(&self) -> std::io::Result<()> {
        self.seg.unlink()
    }

    fn header(&self) -> &Header {
        // SAFETY: the data region is page aligned and at least HEADER bytes (layout_len,
        // checked against data_len); every field is an atomic, so shared access across
        // processes is data-race free; the reference lives no longer than `self.seg`.
        unsafe { &*self.seg.data_ptr().as_ptr().cast::<Header>() }
    }

    fn block(&self, rank: usize) -> Result<&Block, ArenaError> {
        if rank >= self.ranks {
            return Err(ArenaError::Layout(format!("rank {rank} of {}", self.ranks)));
        }
        // SAFETY: HEADER + BLOCK * (rank + 1) <= layout length <= data_len (rank < ranks);
        // the offset is a multiple of 64 from a page-aligned base, Block's alignment; all
        // fields are atomics or padding, never read.
        Ok(unsafe {
            &*self
                .seg
                .data_ptr()
                .as_ptr()
                .add(HEADER + BLOCK * rank)
                .cast::<Block>()
        })
    }

    /// Rank `rank`'s data region: its slot, then its stage.
    fn region(&self, rank: usize) -> *mut u8 {
        let off = HEADER + BLOCK * self.ranks + (self.slot_bytes + self.stage_bytes) * rank;
        // SAFETY: rank < ranks (callers went through `block` first), so
        // off + slot_bytes + stage_bytes <= layout length <= data_len: inside the mapping.
        unsafe { self.seg.data_ptr().as_ptr().add(off) }
    }

    /// Publishes `data` (at most `slot_bytes`) with `desc` as rank `me`'s collective `seq`,
    /// after every peer finished reading `seq - 1`.
    pub fn publish(
        &self,
        me: usize,
        seq: u32,
        desc: &Desc,
        data: &[u8],
        deadline: Instant,
    ) -> Result<(), ArenaError> {
        let own = self.block(me)?;
        if seq == 0 || data.len() > self.slot_bytes {
            return Err(ArenaError::Layout(format!(
                "publish of {} bytes as seq {seq} (slot {})",
                data.len(),
                self.slot_bytes
            )));
        }
        for peer in (0..self.ranks).filter(|&p| p != me) {
            let b = self.block(peer)?;
            wait_word(&b.done.value, &b.done.sleepers, seq - 1, deadline).map_err(|()| {
                ArenaError::Timeout {
                    rank: peer,
                    what: "reading collective",
                    seq: seq - 1,
                }
            })?;
        }
        // SAFETY: our own region (rank `me` < ranks checked by `block`), `data.len()` <=
        // slot_bytes checked above; nobody reads it now (every peer's done == seq - 1 and
        // our seq word still says seq - 1), and `data` is caller memory, not the mapping.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.region(me), data.len()) };
        own.len.store(data.len() as u64, Ordering::Relaxed);
        own.crc.store(crc32c::crc32c(data), Ordering::Relaxed);
        for (w, v) in own.desc.iter().zip(desc) {
            w.store(*v, Ordering::Relaxed);
        }
        // SeqCst: the store must not pass the sleepers load below (a lost wake-up).
        own.seq.store(seq, Ordering::SeqCst);
        if own.seq_sleepers.load(Ordering::SeqCst) > 0 {
            futex_wake(&own.seq, u32::MAX);
        }
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
        wait_word(&b.seq, &b.seq_sleepers, seq, deadline).map_err(|()| ArenaError::Timeout {
            rank: from,
            what: "collective",
            seq,
        })?;
        let now = b.seq.load(Ordering::Acquire);
        if now != seq {
            return Err(malformed(format!("sequence {now}, expected {seq}")));
        }
        let desc: Desc = std::array::from_fn(|i| b.desc[i].load(Ordering::Relaxed));
        let len = b.len.load(Ordering::Relaxed);
        if len > self.slot_bytes as u64 {
            return Err(malformed(format!("length {len} over the slot")));
        }
        if len != out.len() as u64 {
            return Ok(Err(desc));
        }
        // SAFETY: `from` < ranks (block), len == out.len() <= slot_bytes: the source lies in
        // its region; `out` is our own memory, never the mapping. The peer may write the
        // region meanwhile (it is untrusted): we copy raw bytes and judge them by the CRC.
        unsafe { std::ptr::copy_nonoverlapping(self.region(from), out.as_mut_ptr(), out.len()) };
        let crc = b.crc.load(Ordering::Relaxed);
        if crc32c::crc32c(out) != crc {
            return Err(malformed(format!("CRC32C mismatch on collective {seq}")));
        }
        Ok(Ok(desc))
    }

    /// Rank `me` finished reading every peer's collective `seq`: they may publish the next.
    pub fn finish(&self, me: usize, seq: u32) -> Result<(), ArenaError> {
        let own = self.block(me)?;
        own.done.set(seq);
        Ok(())
    }
}

impl Word {
    /// Stores `v` and wakes the sleepers. SeqCst: the store must not pass the sleepers
    /// load (a lost wake-up).
    fn set(&self, v: u32) {
        self.value.store(v, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            futex_wake(&self.value, u32::MAX);
        }
    }

    /// Waits until the word is at least `target` (wrapping) or `deadline`; returns it.
    fn wait(&self, target: u32, deadline: Instant) -> Result<u32, ()> {
        wait_word(&self.value, &self.sleepers, target, deadline)?;
        Ok(self.value.load(Ordering::Acquire))
    }
}

/// Waits until `word` is at least `target` (wrapping sequence arithmetic) or `deadline`.
fn wait_word(
    word: &AtomicU32,
    sleepers: &AtomicU32,
    target: u32,
    deadline: Instant,
) -> Result<(), ()> {
    let reached = |v: u32| v.wrapping_sub(target) as i32 >= 0;
    let mut backoff = Backoff::new(WAIT);
    loop {
        let v = word.load(Ordering::Acquire);
        if reached(v) {
            return Ok(());
        }
        if backoff.step() == Step::Park {
            let now = Instant::now();
            if now >= deadline {
                return Err(());
            }
            sleepers.fetch_add(1, Ordering::SeqCst);
            // Re-check after announcing ourselves: a writer that stored before it saw the
            // count changed `v`, so the futex returns at once.
            futex_wait(word, v, (deadline - now).min(PARK_SLICE));
            sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests;
