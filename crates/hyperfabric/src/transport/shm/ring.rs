//! Single-producer single-consumer ring of variable-length records in a [`Segment`].
//!
//! Layout of the segment's data region (offsets from its start, which is page aligned):
//!
//! ```text
//!    0 +-----------------------------------------------------------------+
//!      | magic u64 | capacity u64 | producer pid u32 | consumer pid u32 | read-only after init
//!  128 +-----------------------------------------------------------------+  (+ claims)
//!      | tail u64: where a re-claimed producer continues (see below)      producer only
//!  256 +-----------------------------------------------------------------+
//!      | head u64: bytes ever consumed           written by the consumer only
//!  384 +-----------------------------------------------------------------+
//!      | parked u32 | wake_seq u32 (futex)      consumer raises parked, producer wakes
//!  512 +-----------------------------------------------------------------+
//!      | records ... capacity bytes (a power of two)                      |
//!      +-----------------------------------------------------------------+
//! ```
//!
//! Each field group sits on its own 128-byte block (two 64-byte cache lines: no false
//! sharing, not even through the adjacent-line prefetcher). A record is 8-byte aligned:
//!
//! ```text
//!  0          4          8                          8 + len      align8
//!  +----------+----------+--------------------------+------------+
//!  | len u32  | kind u32 | payload (len bytes)       | pad to 8   |
//!  +----------+----------+--------------------------+------------+
//! ```
//!
//! `kind` is `DATA` or `PAD` (both nonzero); a `PAD` record fills the space up to the end of
//! the ring when the next record does not fit there, and the record follows at offset 0.
//! Positions are monotonic byte counts (`index = pos & (capacity - 1)`).
//!
//! Protocol (in [`protocol`], shared with the loom model): the header is one 8-byte atomic
//! word and doubles as the "ready" flag. Zero means "nothing here yet". The consumer polls
//! the header word at its `head` with Acquire, so a single cache-line transfer brings the
//! signal together with the first 56 payload bytes (no separate `tail` line to poll). The
//! producer keeps the header slot at its next free position zero: each commit stores 0 into
//! the successor's slot before the record becomes visible, which is why a record needs 8
//! bytes of free space beyond itself (the ring never fills up completely). The first record
//! of a batch has its header held back in the [`Producer`] and stored with Release by
//! [`Producer::publish`]; later records of the batch store their headers Relaxed at once,
//! ordered by that Release. The consumer frees space with a Release store of `head`.
//!
//! Why a stale header from an earlier lap is never taken for a new record: the consumer
//! reaches position P only after it read, with Acquire, the record ending at P (or, at P = 0,
//! after `init` zeroed it), and the producer zeroed P's slot before it published that record.
//! So the zero store happens-before the consumer's load at P, which then reads that zero or
//! the new header stored after it, never anything older. The 8 bytes kept free guarantee the
//! zero store never lands in a record the consumer has not released.
//!
//! `tail` is off the fast path: [`Producer`] writes it when dropped (after publishing), and
//! [`Ring::producer`] continues from it. Wake-up (spin-then-park): a parking consumer raises
//! `parked`, issues a SeqCst fence and re-checks the header at `head` before it sleeps on the
//! futex; the producer, after its Release header store, issues a SeqCst fence and wakes if
//! `parked` is set. Of two such fenced store-then-load sequences, at least one load sees the
//! other's store: the consumer sees the record, or the producer sees the flag.
//!
//! Trust: each side keeps its own position locally and never re-reads it from shared
//! memory. Everything it does read (the peer's position, record headers) is validated
//! against the ring bounds; garbage yields [`RingError::Corrupt`], never an access outside
//! the mapping. A hostile producer can write any header at any time, e.g. "ready" while the
//! payload is still being written: that only yields garbage bytes. Payload bytes handed out
//! by [`ReadSlot`] can be changed by a hostile peer while they are read: copy them out and
//! verify the checksum after the copy.

use super::segment::Segment;
use protocol::{ConsumerState, ProducerState};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod handles;
mod protocol;

pub use handles::{Consumer, Producer, ReadSlot, Waiter, WriteSlot};

/// `b"HFRING02"` as a little-endian u64. Version 02: the consumer polls record headers (01
/// polled `tail`); the two cannot share a ring, so a peer of the other version fails to attach.
pub const RING_MAGIC: u64 = u64::from_le_bytes(*b"HFRING02");
/// Bytes of ring header in front of the records.
pub const RING_HEADER_LEN: usize = 512;
/// Record header bytes.
pub const RECORD_HEADER_LEN: usize = 8;
/// Smallest ring capacity.
pub const RING_CAPACITY_MIN: usize = 64;
const KIND_DATA: u32 = 0x4154_4144; // "DATA"
const KIND_PAD: u32 = 0x2044_4150; // "PAD "
/// Longest a parked consumer sleeps before it re-checks on its own (bounds any lost wake-up).
const PARK_SLICE: Duration = Duration::from_millis(100);

#[repr(C, align(128))]
struct Meta {
    magic: AtomicU64,
    capacity: AtomicU64,
    producer: AtomicU32,
    consumer: AtomicU32,
}

#[repr(C, align(128))]
struct Line<T>(T);

#[repr(C, align(128))]
struct Wake {
    parked: AtomicU32,
    seq: AtomicU32,
}

/// The ring's control block at the start of the data region (see the module diagram).
#[repr(C)]
pub struct RingHeader {
    meta: Meta,
    tail: Line<AtomicU64>,
    head: Line<AtomicU64>,
    wake: Wake,
}

const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<RingHeader>() == RING_HEADER_LEN);
    assert!(align_of::<RingHeader>() == 128);
    assert!(offset_of!(RingHeader, meta) == 0);
    assert!(offset_of!(RingHeader, tail) == 128);
    assert!(offset_of!(RingHeader, head) == 256);
    assert!(offset_of!(RingHeader, wake) == 384);
    assert!(offset_of!(Meta, capacity) == 8);
    assert!(offset_of!(Meta, producer) == 16);
    assert!(offset_of!(Meta, consumer) == 20);
    assert!(offset_of!(Wake, seq) == 4);
    assert!(RING_HEADER_LEN & 63 == 0 && RECORD_HEADER_LEN == 8);
    assert!(super::segment::SEGMENT_HEADER_LEN & 127 == 0);
};

/// What went wrong with a ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The peer wrote something impossible into the shared memory; the link must be dropped.
    #[error("ring corrupt at position {position}: {reason}")]
    Corrupt { position: u64, reason: &'static str },
    /// A record larger than [`Ring::max_payload`] was requested (local misuse).
    #[error("record of {len} bytes exceeds the ring's maximum of {max}")]
    TooLarge { len: usize, max: usize },
    /// The segment is too small, or its ring header does not match its size.
    #[error("ring layout: {0}")]
    BadLayout(&'static str),
    /// The producer or consumer side is already held (by pid).
    #[error("ring {side} already claimed by pid {pid}")]
    AlreadyClaimed { side: &'static str, pid: u32 },
}

/// A ring inside a segment. Cheap to clone; hands out one [`Producer`] and one [`Consumer`].
#[derive(Clone)]
pub struct Ring {
    seg: Arc<Segment>,
    hdr: NonNull<RingHeader>,
    data: NonNull<u8>,
    cap: u64,
}

// SAFETY: `Ring` only holds pointers into the segment kept alive by `seg`; shared state is
// reached through atomics, and record memory through the single Producer / single Consumer
// protocol (claims enforce one of each).
unsafe impl Send for Ring {}
// SAFETY: as above; `&Ring` exposes no non-atomic shared state.
unsafe impl Sync for Ring {}

fn capacity_for(data_len: usize) -> Option<u64> {
    let room = data_len.checked_sub(RING_HEADER_LEN)?;
    if room < RING_CAPACITY_MIN {
        return None;
    }
    // Largest power of two that fits.
    Some(1u64 << (usize::BITS - 1 - room.leading_zeros()))
}

const fn align8(n: u64) -> u64 {
    (n + 7) & !7
}

impl Ring {
    /// Segment data length needed for a ring of `capacity` bytes (a power of two ≥ 64).
    pub const fn segment_len_for(capacity: usize) -> usize {
        RING_HEADER_LEN + capacity
    }

    fn from_segment(seg: Arc<Segment>) -> Result<Ring, RingError> {
        let cap = capacity_for(seg.data_len()).ok_or(RingError::BadLayout("segment too small"))?;
        let hdr = seg.data_ptr().cast::<RingHeader>();
        // SAFETY: capacity_for guaranteed data_len ≥ RING_HEADER_LEN + cap, so the record
        // area [RING_HEADER_LEN, RING_HEADER_LEN + cap) is inside the data region.
        let data = unsafe { NonNull::new_unchecked(seg.data_ptr().as_ptr().add(RING_HEADER_LEN)) };
        Ok(Ring {
            seg,
            hdr,
            data,
            cap,
        })
    }

    /// Formats a fresh ring over the whole data region of `seg` (the creator does this once,
    /// before the peer attaches).
    pub fn init(seg: Arc<Segment>) -> Result<Ring, RingError> {
        let ring = Ring::from_segment(seg)?;
        let h = ring.header();
        h.meta.capacity.store(ring.cap, Ordering::Relaxed);
        h.meta.producer.store(0, Ordering::Relaxed);
        h.meta.consumer.store(0, Ordering::Relaxed);
        h.tail.0.store(0, Ordering::Relaxed);
        h.head.0.store(0, Ordering::Relaxed);
        h.wake.parked.store(0, Ordering::Relaxed);
        h.wake.seq.store(0, Ordering::Relaxed);
        // The consumer's first poll reads this word: "nothing yet", whatever the memory held.
        ring.record_header(0).store(0, Ordering::Relaxed);
        h.meta.magic.store(RING_MAGIC, Ordering::Release);
        Ok(ring)
    }

    /// Attaches to a ring formatted by [`Ring::init`]; the capacity is derived from the
    /// segment size and must match the header.
    pub fn attach(seg: Arc<Segment>) -> Result<Ring, RingError> {
        let ring = Ring::from_segment(seg)?;
        let h = ring.header();
        if h.meta.magic.load(Ordering::Acquire) != RING_MAGIC {
            return Err(RingError::BadLayout("ring magic"));
        }
        if h.meta.capacity.load(Ordering::Relaxed) != ring.cap {
            return Err(RingError::BadLayout(
                "ring capacity does not match segment size",
            ));
        }
        Ok(ring)
    }

    fn header(&self) -> &RingHeader {
        // SAFETY: the data region is page aligned (≥ 128) and at least RING_HEADER_LEN
        // bytes; all fields are atomics, valid for any bit pattern; `seg` keeps it mapped.
        unsafe { self.hdr.as_ref() }
    }

    /// Record area capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Largest payload one record may carry: half the capacity less a header, so that a
    /// record always fits in an empty ring wherever the wrap point is.
    pub fn max_payload(&self) -> usize {
        (self.cap / 2) as usize - RECORD_HEADER_LEN
    }

    /// The segment this ring lives in.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    fn claim(&self, side: &'static str, slot: &AtomicU32) -> Result<(), RingError> {
        let pid = std::process::id().max(1);
        slot.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|pid| RingError::AlreadyClaimed { side, pid })
    }

    /// The producer handle; only one may exist at a time (across processes). It continues
    /// where the previous producer stopped (`tail`, written when that one was dropped).
    pub fn producer(&self) -> Result<Producer, RingError> {
        let h = self.header();
        self.claim("producer", &h.meta.producer)?;
        let tail = h.tail.0.load(Ordering::Acquire);
        let head = h.head.0.load(Ordering::Acquire);
        if head > tail || tail - head > self.cap - protocol::SUCCESSOR_LEN || tail & 7 != 0 {
            h.meta.producer.store(0, Ordering::Release);
            return Err(corrupt(tail, "head/tail out of range at claim"));
        }
        Ok(Producer::new(self.clone(), ProducerState::new(tail, head)))
    }

    /// The consumer handle; only one may exist at a time (across processes).
    pub fn consumer(&self) -> Result<Consumer, RingError> {
        let h = self.header();
        self.claim("consumer", &h.meta.consumer)?;
        let head = h.head.0.load(Ordering::Acquire);
        if head & 7 != 0 {
            h.meta.consumer.store(0, Ordering::Release);
            return Err(corrupt(head, "consumer head not 8-aligned at claim"));
        }
        Ok(Consumer::new(self.clone(), ConsumerState::new(head)))
    }

    /// The 8-byte record header word at `idx`, masked into the record area and 8-aligned
    /// (callers pass aligned indices; the mask makes any value safe).
    fn record_header(&self, idx: u64) -> &AtomicU64 {
        let idx = idx & (self.cap - 1) & !7;
        // SAFETY: idx < cap and 8-aligned, cap is a multiple of 8 and the record area starts
        // 8-aligned (page + RING_HEADER_LEN), so this is an aligned u64 inside the mapping
        // (`seg` keeps it mapped); AtomicU64 is valid for any bit pattern.
        unsafe { &*self.data.as_ptr().add(idx as usize).cast::<AtomicU64>() }
    }

    /// Start of the payload of the record whose header is at `idx` (callers checked that
    /// `idx + 8 + len <= cap`).
    /// Asks for every cache line of a record's payload past the first at once, so that their
    /// transfers from the producer's core overlap instead of following the reads one by one.
    fn prefetch_payload(&self, idx: u64, len: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let start = self.payload_ptr(idx) as usize;
            let end = start + len as usize;
            let mut line = (start & !63) + 64;
            while line < end {
                // SAFETY: prefetch is a hint that never faults and reads nothing into the
                // program; `line` lies inside the validated record (idx + 8 + len <= cap).
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        line as *const i8,
                    )
                };
                line += 64;
            }
        }
    }

    /// Takes ownership ahead of time of the two cache lines after the one holding position
    /// `pos` (where the next small record's payload goes), while nobody waits on them: the
    /// consumer polls only the line at `pos`, which we leave alone.
    fn prefetch_for_write(&self, pos: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            let base = self.data.as_ptr() as usize;
            let idx = (pos & (self.cap - 1)) as usize & !63;
            for k in [64, 128] {
                if idx + k < self.cap as usize {
                    // SAFETY: PREFETCHW is a hint: it never faults and changes no data; the
                    // address lies inside the record area (checked against cap above).
                    unsafe {
                        std::arch::asm!("prefetchw [{0}]", in(reg) base + idx + k,
                            options(nostack, preserves_flags, readonly));
                    }
                }
            }
        }
    }

    fn payload_ptr(&self, idx: u64) -> *mut u8 {
        // SAFETY: idx < cap (callers derive it from a mask), so idx + 8 <= cap and the
        // pointer stays inside (or one past) the record area.
        unsafe {
            self.data
                .as_ptr()
                .add((idx & (self.cap - 1)) as usize + RECORD_HEADER_LEN)
        }
    }
}

impl protocol::Area for Ring {
    type W = AtomicU64;
    #[inline(always)]
    fn cap(&self) -> u64 {
        self.cap
    }
    #[inline(always)]
    fn header(&self, idx: u64) -> &AtomicU64 {
        self.record_header(idx)
    }
    #[inline(always)]
    fn head(&self) -> &AtomicU64 {
        &self.header().head.0
    }
}

fn corrupt(position: u64, reason: &'static str) -> RingError {
    RingError::Corrupt { position, reason }
}

#[cfg(all(test, loom))]
mod loom_model;
#[cfg(test)]
mod tests;
