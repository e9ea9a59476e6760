//! A per-group collective arena: one shared [`Segment`] in which every rank of a group on one
//! host owns a control block and a data region (Open MPI's sm / NCCL's shm idea: publish into
//! your own region, everybody reads everybody's).
//!
//! ```text
//!  data offset 0     arena header (64 B): magic, ranks, slot_bytes, stage_bytes
//!  64 + 1024*r       rank r's control block (every word written by rank r, except the
//!                    sleepers counts its readers raise):
//!                      line 0: cpu (the CPU rank r last ran on: a hint for waiting)
//!                      line 1, 2: per slot half: seq (futex word), sleepers, len, crc,
//!                              desc[5]                     (the slot, collective seq in
//!                                                           half seq % 2)
//!                      line 3: raw, sleepers     (chunk c's raw shares are staged)
//!                      line 4: reduced, sleepers (chunk c's reduced share is staged)
//!                      line 5: read, sleepers    (rank r read everything of chunk c)
//!                      line 6, 7: per stage half: desc[5], CRC32C of the reduced share
//!                      line 8..15: per stage half: CRC32C of each raw share (64 each)
//!  64 + 1024*N       rank 0's data region: its slot (two halves of slot_bytes, 64-aligned),
//!                    then its stage (stage_bytes: two halves, chunk c in half c % 2);
//!                    rank 1's, ...
//! ```
//!
//! The slot carries a whole small vector per collective ([`slot`]); the stage carries large
//! ones chunk by chunk, reduce-scatter then all-gather ([`stage`]). Waiting for a peer's
//! word spins, yields or parks depending on where the peer runs ([`pace`]).

mod pace;
mod slot;
mod stage;

pub use pace::Pace;

use super::segment::{Segment, SegmentError};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

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
    cpu: AtomicU32,
    _pad0: [u32; 15],
    slot: [SlotInfo; 2],
    raw: Line,
    reduced: Line,
    read: Line,
    half: [HalfInfo; 2],
    share_crc: [[AtomicU32; ARENA_RANKS_MAX]; 2],
}

/// A sequence word and the count of its sleepers (readers parked on its futex).
#[derive(Default)]
#[repr(C)]
struct Word {
    value: AtomicU32,
    sleepers: AtomicU32,
}

/// A [`Word`] alone on a cache line.
#[repr(C, align(64))]
struct Line {
    word: Word,
    _pad: [u64; 7],
}

/// What rank r published in one slot half: the collective's number (the half's futex
/// word), the length and CRC32C of its bytes, its descriptor. One cache line, so a reader
/// that sees the number has the rest at hand.
#[repr(C, align(64))]
struct SlotInfo {
    seq: Word,
    len: AtomicU64,
    crc: AtomicU32,
    _pad: u32,
    desc: [AtomicU64; 5],
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
    assert!(std::mem::size_of::<SlotInfo>() == 64);
    assert!(std::mem::offset_of!(Block, slot) == 64);
    assert!(std::mem::offset_of!(Block, raw) == 192);
    assert!(std::mem::offset_of!(Block, read) == 320);
    assert!(std::mem::offset_of!(Block, half) == 384);
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
    pace: Pace,
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
    Ok(HEADER + BLOCK * ranks + (2 * slot_bytes + stage_bytes) * ranks)
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
            pace: Pace::for_ranks(ranks),
        };
        let h = a.header();
        h.ranks.store(ranks as u64, Ordering::Relaxed);
        h.slot_bytes.store(slot_bytes as u64, Ordering::Relaxed);
        h.stage_bytes.store(stage_bytes as u64, Ordering::Relaxed);
        // A fresh block says CPU 0, a real CPU: no rank has run anywhere yet.
        for r in 0..ranks {
            a.block(r)?.cpu.store(pace::CPU_UNKNOWN, Ordering::Relaxed);
        }
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
            pace: Pace::for_ranks(ranks),
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

    /// Rank `rank`'s data region: its two slot halves, then its stage.
    fn region(&self, rank: usize) -> *mut u8 {
        let off = HEADER + BLOCK * self.ranks + (2 * self.slot_bytes + self.stage_bytes) * rank;
        // SAFETY: rank < ranks (callers went through `block` first), so
        // off + 2 * slot_bytes + stage_bytes <= layout length <= data_len: inside the mapping.
        unsafe { self.seg.data_ptr().as_ptr().add(off) }
    }

    /// How this process waits for the others (from the ranks and its CPUs).
    pub fn pace(&self) -> Pace {
        self.pace
    }

    /// Waits with [`Self::pace`] for rank `peer`'s `word` to reach `target`.
    fn wait_on(
        &self,
        peer: &Block,
        word: &Word,
        target: u32,
        deadline: std::time::Instant,
    ) -> Result<u32, ()> {
        word.wait(self.pace, &peer.cpu, target, deadline)
    }

    /// Notes the CPU rank `me` runs on in its block (a store only when it moved).
    fn note_cpu(&self, own: &Block) {
        let cpu = pace::cpu_word();
        if own.cpu.load(Ordering::Relaxed) != cpu {
            own.cpu.store(cpu, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
