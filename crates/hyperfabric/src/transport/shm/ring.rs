//! Single-producer single-consumer ring of variable-length records in a [`Segment`].
//!
//! Layout of the segment's data region (offsets from its start, which is page aligned):
//!
//! ```text
//!    0 +-----------------------------------------------------------------+
//!      | magic u64 | capacity u64 | producer pid u32 | consumer pid u32 | read-only after init
//!  128 +-----------------------------------------------------------------+  (+ claims)
//!      | tail u64: bytes ever published          written by the producer only
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
//! `kind` is `DATA` or `PAD`; a `PAD` record fills the space up to the end of the ring when
//! the next record does not fit there, and the record follows at offset 0. The header is one
//! 8-byte atomic word. The producer writes payload and header, then (once per batch)
//! publishes with a Release store of `tail`; the consumer loads `tail` with Acquire and
//! frees space with a Release store of `head`. Positions are monotonic byte counts
//! (`index = pos & (capacity - 1)`).
//!
//! Trust: each side keeps its own position locally and never re-reads it from shared
//! memory. Everything it does read (the peer's position, record headers) is validated
//! against the ring bounds; garbage yields [`RingError::Corrupt`], never an access outside
//! the mapping. Payload bytes handed out by [`ReadSlot`] can still be changed by a hostile
//! peer while they are read: copy them out and verify the checksum after the copy.

use super::segment::Segment;
use super::wait::{futex_wait, futex_wake, Backoff, IdleStrategy, Step};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `b"HFRING01"` as a little-endian u64.
pub const RING_MAGIC: u64 = u64::from_le_bytes(*b"HFRING01");
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

    /// The producer handle; only one may exist at a time (across processes).
    pub fn producer(&self) -> Result<Producer, RingError> {
        self.claim("producer", &self.header().meta.producer)?;
        // The producer owns `tail`: start from the published value.
        let tail = self.header().tail.0.load(Ordering::Acquire);
        let head = self.header().head.0.load(Ordering::Acquire);
        if head > tail || tail - head > self.cap {
            self.header().meta.producer.store(0, Ordering::Release);
            return Err(corrupt(tail, "head/tail out of range at claim"));
        }
        Ok(Producer {
            ring: self.clone(),
            tail,
            published: tail,
            cached_head: head,
        })
    }

    /// The consumer handle; only one may exist at a time (across processes).
    pub fn consumer(&self) -> Result<Consumer, RingError> {
        self.claim("consumer", &self.header().meta.consumer)?;
        let head = self.header().head.0.load(Ordering::Acquire);
        Ok(Consumer {
            ring: self.clone(),
            head,
            cached_tail: head,
            poisoned: None,
        })
    }

    /// The 8-byte record header at `idx` (8-aligned, `idx + 8 <= cap`).
    fn record_header(&self, idx: u64) -> &AtomicU64 {
        debug_assert!(idx & 7 == 0 && idx + 8 <= self.cap);
        // SAFETY: idx is 8-aligned and idx + 8 <= cap (callers derive idx from `pos & mask`
        // with pos 8-aligned), the record area is 8-aligned, so this is an aligned u64 inside
        // the mapping; AtomicU64 is valid for any bit pattern.
        unsafe { &*self.data.as_ptr().add(idx as usize).cast::<AtomicU64>() }
    }
}

fn corrupt(position: u64, reason: &'static str) -> RingError {
    RingError::Corrupt { position, reason }
}

fn pack(len: u32, kind: u32) -> u64 {
    u64::from(len) | (u64::from(kind) << 32)
}

/// Writes records. Obtained once from [`Ring::producer`].
pub struct Producer {
    ring: Ring,
    tail: u64,
    published: u64,
    cached_head: u64,
}

/// A reserved, not yet committed record; derefs to its payload.
pub struct WriteSlot<'a> {
    p: &'a mut Producer,
    idx: u64,
    len: u32,
}

impl Producer {
    /// Reserves a record of `len` payload bytes. `Ok(None)`: the ring is full right now.
    /// Unpublished commits are published first when space runs out, so a full ring never
    /// waits on ourselves.
    pub fn try_reserve(&mut self, len: usize) -> Result<Option<WriteSlot<'_>>, RingError> {
        let max = self.ring.max_payload();
        if len > max {
            return Err(RingError::TooLarge { len, max });
        }
        let cap = self.ring.cap;
        let rec = align8((RECORD_HEADER_LEN + len) as u64);
        let idx = self.tail & (cap - 1);
        let to_end = cap - idx;
        let need = if rec <= to_end { rec } else { to_end + rec };
        if self.tail + need - self.cached_head > cap {
            self.refresh_head()?;
            if self.tail + need - self.cached_head > cap {
                if self.published != self.tail {
                    self.publish();
                }
                return Ok(None);
            }
        }
        let idx = if rec > to_end {
            let pad_len = (to_end - RECORD_HEADER_LEN as u64) as u32;
            self.ring
                .record_header(idx)
                .store(pack(pad_len, KIND_PAD), Ordering::Relaxed);
            self.tail += to_end;
            0
        } else {
            idx
        };
        Ok(Some(WriteSlot {
            p: self,
            idx,
            len: len as u32,
        }))
    }

    fn refresh_head(&mut self) -> Result<(), RingError> {
        let head = self.ring.header().head.0.load(Ordering::Acquire);
        if head < self.cached_head || head > self.published {
            return Err(corrupt(head, "consumer head out of range"));
        }
        self.cached_head = head;
        Ok(())
    }

    /// Makes every committed record visible to the consumer (one Release store), and wakes
    /// the consumer if it announced that it parked.
    pub fn publish(&mut self) {
        if self.published == self.tail {
            return;
        }
        let h = self.ring.header();
        h.tail.0.store(self.tail, Ordering::Release);
        self.published = self.tail;
        // Pairs with the consumer's fence between raising `parked` and re-reading `tail`:
        // either it sees our tail, or we see its flag.
        fence(Ordering::SeqCst);
        if h.wake.parked.load(Ordering::Relaxed) != 0 {
            h.wake.seq.fetch_add(1, Ordering::Release);
            futex_wake(&h.wake.seq, 1);
        }
    }

    /// Copies `payload` into one record and publishes it. `Ok(false)`: ring full.
    pub fn try_push(&mut self, payload: &[u8]) -> Result<bool, RingError> {
        match self.try_reserve(payload.len())? {
            Some(mut slot) => {
                slot.copy_from_slice(payload);
                slot.commit();
                self.publish();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Bytes committed but not yet published.
    pub fn unpublished(&self) -> u64 {
        self.tail - self.published
    }

    /// The ring this producer writes.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.publish();
        self.ring.header().meta.producer.store(0, Ordering::Release);
    }
}

impl WriteSlot<'_> {
    /// Commits the record (visible to the consumer after the next [`Producer::publish`]).
    pub fn commit(self) {
        let rec = align8((RECORD_HEADER_LEN as u64) + u64::from(self.len));
        self.p
            .ring
            .record_header(self.idx)
            .store(pack(self.len, KIND_DATA), Ordering::Relaxed);
        self.p.tail += rec;
    }
}

impl std::ops::Deref for WriteSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: try_reserve checked idx + 8 + len <= cap, and the consumer does not read
        // this range until we publish it (it is beyond the published tail).
        unsafe {
            std::slice::from_raw_parts(
                self.p
                    .ring
                    .data
                    .as_ptr()
                    .add(self.idx as usize + RECORD_HEADER_LEN),
                self.len as usize,
            )
        }
    }
}

impl std::ops::DerefMut for WriteSlot<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the range in
        // this process, and an honest consumer does not touch unpublished space.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.p
                    .ring
                    .data
                    .as_ptr()
                    .add(self.idx as usize + RECORD_HEADER_LEN),
                self.len as usize,
            )
        }
    }
}

/// Reads records. Obtained once from [`Ring::consumer`].
pub struct Consumer {
    ring: Ring,
    head: u64,
    cached_tail: u64,
    poisoned: Option<RingError>,
}

/// A record being read; derefs to its payload. Dropping it (or [`ReadSlot::release`])
/// frees its space for the producer.
pub struct ReadSlot<'a> {
    c: &'a mut Consumer,
    idx: u64,
    len: u32,
    next_head: u64,
}

impl Consumer {
    fn fail(&mut self, e: RingError) -> RingError {
        self.poisoned = Some(e.clone());
        e
    }

    /// Re-reads the producer's tail; `Ok(true)` if unread bytes exist.
    pub fn poll_ready(&mut self) -> Result<bool, RingError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        if self.head != self.cached_tail {
            return Ok(true);
        }
        let tail = self.ring.header().tail.0.load(Ordering::Acquire);
        if tail < self.head || tail - self.head > self.ring.cap || tail & 7 != 0 {
            return Err(self.fail(corrupt(tail, "producer tail out of range")));
        }
        self.cached_tail = tail;
        Ok(tail != self.head)
    }

    /// The next record, `Ok(None)` if there is none yet, `Err(Corrupt)` (sticky) if the
    /// shared memory holds something an honest producer cannot have written.
    pub fn try_read(&mut self) -> Result<Option<ReadSlot<'_>>, RingError> {
        if !self.poll_ready()? {
            return Ok(None);
        }
        let cap = self.ring.cap;
        let mut head = self.head;
        for _ in 0..2 {
            let avail = self.cached_tail - head;
            if avail == 0 {
                // Only a padding record was pending: consume it.
                self.set_head(head);
                return Ok(None);
            }
            if avail < RECORD_HEADER_LEN as u64 {
                return Err(self.fail(corrupt(head, "partial record header")));
            }
            let idx = head & (cap - 1);
            let word = self.ring.record_header(idx).load(Ordering::Relaxed);
            let (len, kind) = (word as u32, (word >> 32) as u32);
            let rec = align8(RECORD_HEADER_LEN as u64 + u64::from(len));
            if rec > cap - idx || rec > avail {
                return Err(self.fail(corrupt(head, "record length exceeds ring bounds")));
            }
            match kind {
                KIND_DATA => {
                    return Ok(Some(ReadSlot {
                        c: self,
                        idx,
                        len,
                        next_head: head + rec,
                    }));
                }
                KIND_PAD if rec == cap - idx => head += rec,
                KIND_PAD => return Err(self.fail(corrupt(head, "padding not up to ring end"))),
                _ => return Err(self.fail(corrupt(head, "unknown record kind"))),
            }
        }
        Err(self.fail(corrupt(head, "padding after padding")))
    }

    fn set_head(&mut self, head: u64) {
        self.head = head;
        self.ring.header().head.0.store(head, Ordering::Release);
    }

    /// Waits for a record with `strategy`, up to `timeout` (`None`: forever). Parking
    /// raises the `parked` flag so the producer's next publish wakes us.
    pub fn read_wait(
        &mut self,
        strategy: IdleStrategy,
        timeout: Option<Duration>,
    ) -> Result<Option<ReadSlot<'_>>, RingError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut backoff = Backoff::new(strategy);
        let mut polls: u32 = 0;
        while !self.poll_ready()? {
            polls = polls.wrapping_add(1);
            if polls & 1023 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            if backoff.step() == Step::Park {
                self.park(deadline);
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
            }
        }
        self.try_read()
    }

    fn park(&self, deadline: Option<Instant>) {
        let w = &self.ring.header().wake;
        let seq = w.seq.load(Ordering::Acquire);
        w.parked.store(1, Ordering::Relaxed);
        // Pairs with the producer's fence after its tail store (see `publish`).
        fence(Ordering::SeqCst);
        let tail = self.ring.header().tail.0.load(Ordering::Acquire);
        if tail == self.head {
            let slice = deadline
                .map(|d| d.saturating_duration_since(Instant::now()).min(PARK_SLICE))
                .unwrap_or(PARK_SLICE);
            futex_wait(&w.seq, seq, slice);
        }
        w.parked.store(0, Ordering::Relaxed);
    }

    /// The ring this consumer reads.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// A handle that waits for new records without holding the consumer, so another thread
    /// may take the consumer and read in the meantime (caller-driven progress).
    pub fn waiter(&self) -> Waiter {
        Waiter {
            ring: self.ring.clone(),
        }
    }
}

/// Waits for unread records of a ring (see [`Consumer::waiter`]).
#[derive(Clone)]
pub struct Waiter {
    ring: Ring,
}

impl Waiter {
    /// True when the producer published bytes the consumer has not released yet.
    pub fn ready(&self) -> bool {
        let h = self.ring.header();
        h.tail.0.load(Ordering::Acquire) != h.head.0.load(Ordering::Acquire)
    }

    /// Waits with `strategy` until [`Waiter::ready`] or `deadline`; parking raises the ring's
    /// parked flag so the producer's next publish wakes us.
    pub fn wait(&self, strategy: IdleStrategy, deadline: Instant) -> bool {
        let mut backoff = Backoff::new(strategy);
        let mut polls: u32 = 0;
        while !self.ready() {
            polls = polls.wrapping_add(1);
            if polls & 255 == 0 && Instant::now() >= deadline {
                return false;
            }
            if backoff.step() == Step::Park {
                let w = &self.ring.header().wake;
                let seq = w.seq.load(Ordering::Acquire);
                w.parked.store(1, Ordering::Relaxed);
                // Pairs with the producer's fence after its tail store (see `publish`).
                fence(Ordering::SeqCst);
                if !self.ready() {
                    let slice = deadline
                        .saturating_duration_since(Instant::now())
                        .min(PARK_SLICE);
                    futex_wait(&w.seq, seq, slice);
                }
                w.parked.store(0, Ordering::Relaxed);
                if Instant::now() >= deadline {
                    return self.ready();
                }
            }
        }
        true
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.ring.header().meta.consumer.store(0, Ordering::Release);
    }
}

impl ReadSlot<'_> {
    /// Frees the record's space (same as dropping the slot).
    pub fn release(self) {}
}

impl Drop for ReadSlot<'_> {
    fn drop(&mut self) {
        self.c.set_head(self.next_head);
    }
}

impl std::ops::Deref for ReadSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: try_read checked idx + align8(8 + len) <= cap, so the range lies inside the
        // record area; it is below the published tail, so an honest producer does not write
        // it until we release. (A hostile one may: see the module docs.)
        unsafe {
            std::slice::from_raw_parts(
                self.c
                    .ring
                    .data
                    .as_ptr()
                    .add(self.idx as usize + RECORD_HEADER_LEN),
                self.len as usize,
            )
        }
    }
}

#[cfg(test)]
mod tests;
