//! The handles over a [`Ring`]: [`Producer`]/[`WriteSlot`], [`Consumer`]/[`ReadSlot`] and
//! [`Waiter`]. Positions and headers go through [`protocol`](super::protocol); what is added
//! here is payload access, claims and the spin-then-park wake-up.

use super::protocol::{ConsumerState, ProducerState};
use super::{Ring, RingError, PARK_SLICE};
use crate::transport::shm::wait::{futex_wait, futex_wake, Backoff, Schedule, Step};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

/// Records up to this size get all their lines requested at once when read (small frames
/// are latency-bound; large ones are streamed by the hardware prefetcher anyway).
const PREFETCH_MAX: u32 = 1024;

/// Writes records. Obtained once from [`Ring::producer`].
pub struct Producer {
    ring: Ring,
    st: ProducerState,
}

/// A reserved, not yet committed record; derefs to its payload.
pub struct WriteSlot<'a> {
    p: &'a mut Producer,
    idx: u64,
    len: u32,
}

impl Producer {
    pub(super) fn new(ring: Ring, st: ProducerState) -> Producer {
        Producer { ring, st }
    }

    /// Reserves a record of `len` payload bytes. `Ok(None)`: the ring is full right now.
    /// Unpublished commits are published first when space runs out, so a full ring never
    /// waits on ourselves.
    pub fn try_reserve(&mut self, len: usize) -> Result<Option<WriteSlot<'_>>, RingError> {
        let max = self.ring.max_payload();
        if len > max {
            return Err(RingError::TooLarge { len, max });
        }
        // max_payload < cap / 2 fits a u32 (segments are far smaller than 8 GiB).
        let len = u32::try_from(len).map_err(|_| RingError::TooLarge { len, max })?;
        match self.st.reserve(&self.ring, len)? {
            Some(idx) => Ok(Some(WriteSlot { p: self, idx, len })),
            None => {
                if self.st.unpublished() != 0 {
                    self.publish();
                }
                Ok(None)
            }
        }
    }

    /// Makes every committed record visible to the consumer (one Release store of the
    /// batch's first header), and wakes the consumer if it announced that it parked.
    pub fn publish(&mut self) {
        if !self.st.publish(&self.ring) {
            return;
        }
        self.ring.prefetch_for_write(self.st.tail());
        let w = &self.ring.header().wake;
        // Pairs with the consumer's fence between raising `parked` and re-reading the header
        // at its head: either it sees our header, or we see its flag.
        fence(Ordering::SeqCst);
        if w.parked.load(Ordering::Relaxed) != 0 {
            w.seq.fetch_add(1, Ordering::Release);
            futex_wake(&w.seq, 1);
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
        self.st.unpublished()
    }

    /// The ring this producer writes.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.publish();
        let h = self.ring.header();
        // Where the next producer continues; its claim (Acquire) pairs with our release below.
        h.tail.0.store(self.st.tail(), Ordering::Relaxed);
        h.meta.producer.store(0, Ordering::Release);
    }
}

impl WriteSlot<'_> {
    /// Commits the record (visible to the consumer after the next [`Producer::publish`]).
    pub fn commit(self) {
        self.p.st.commit(&self.p.ring, self.idx, self.len);
    }
}

impl std::ops::Deref for WriteSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: reserve returned idx with idx + 8 + len <= cap, so the range lies in the
        // record area; it is free space (beyond the published records, before the consumer's
        // head plus one lap), which an honest consumer does not read until we publish it.
        unsafe { std::slice::from_raw_parts(self.p.ring.payload_ptr(self.idx), self.len as usize) }
    }
}

impl std::ops::DerefMut for WriteSlot<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the range in
        // this process, and an honest consumer does not touch unpublished space.
        unsafe {
            std::slice::from_raw_parts_mut(self.p.ring.payload_ptr(self.idx), self.len as usize)
        }
    }
}

/// Reads records. Obtained once from [`Ring::consumer`].
pub struct Consumer {
    ring: Ring,
    st: ConsumerState,
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
    pub(super) fn new(ring: Ring, st: ConsumerState) -> Consumer {
        Consumer {
            ring,
            st,
            poisoned: None,
        }
    }

    fn check(&self) -> Result<(), RingError> {
        match &self.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Polls the record header at our position; `Ok(true)` if a record (possibly only a
    /// padding record, which [`Consumer::try_read`] skips) is there.
    #[inline]
    pub fn poll_ready(&mut self) -> Result<bool, RingError> {
        self.check()?;
        Ok(self.st.ready(&self.ring))
    }

    /// The next record, `Ok(None)` if there is none yet, `Err(Corrupt)` (sticky) if the
    /// shared memory holds something an honest producer cannot have written.
    pub fn try_read(&mut self) -> Result<Option<ReadSlot<'_>>, RingError> {
        self.check()?;
        match self.st.peek(&self.ring) {
            Ok(Some(r)) => {
                if r.len <= PREFETCH_MAX {
                    self.ring.prefetch_payload(r.idx, r.len);
                }
                Ok(Some(ReadSlot {
                    c: self,
                    idx: r.idx,
                    len: r.len,
                    next_head: r.next,
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.poisoned = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Waits for a record with `strategy`, up to `timeout` (`None`: forever). Parking
    /// raises the `parked` flag so the producer's next publish wakes us.
    pub fn read_wait(
        &mut self,
        strategy: Schedule,
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
                park(&self.ring, || self.st.ready(&self.ring), deadline);
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
            }
        }
        self.try_read()
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

/// Raises `parked`, re-checks with `ready` and sleeps on the futex (at most until `deadline`
/// and [`PARK_SLICE`]) unless something arrived in between.
fn park(ring: &Ring, ready: impl Fn() -> bool, deadline: Option<Instant>) {
    let w = &ring.header().wake;
    let seq = w.seq.load(Ordering::Acquire);
    w.parked.store(1, Ordering::Relaxed);
    // Pairs with the producer's fence after its header store (see `Producer::publish`).
    fence(Ordering::SeqCst);
    if !ready() {
        let slice = deadline
            .map(|d| d.saturating_duration_since(Instant::now()).min(PARK_SLICE))
            .unwrap_or(PARK_SLICE);
        futex_wait(&w.seq, seq, slice);
    }
    w.parked.store(0, Ordering::Relaxed);
}

/// Waits for unread records of a ring (see [`Consumer::waiter`]).
#[derive(Clone)]
pub struct Waiter {
    ring: Ring,
}

impl Waiter {
    /// True when a record (or a padding record) waits at the consumer's released position.
    pub fn ready(&self) -> bool {
        // `head` is written by the consumer, but lies in shared memory: the mask in
        // record_header keeps any value inside the record area.
        let head = self.ring.header().head.0.load(Ordering::Acquire);
        self.ring.record_header(head).load(Ordering::Acquire) != 0
    }

    /// Waits with `strategy` until [`Waiter::ready`], `deadline`, or `stop()` (checked between
    /// polls, and on every wake-up from a park); parking raises the ring's parked flag so the
    /// producer's next publish wakes us. True when a record is ready.
    pub fn wait(&self, strategy: Schedule, deadline: Instant, stop: impl Fn() -> bool) -> bool {
        let mut backoff = Backoff::new(strategy);
        let mut polls: u32 = 0;
        while !self.ready() {
            if stop() {
                return false;
            }
            polls = polls.wrapping_add(1);
            if polls & 255 == 0 && Instant::now() >= deadline {
                return false;
            }
            if backoff.step() == Step::Park {
                park(&self.ring, || self.ready() || stop(), Some(deadline));
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
        self.c.st.release(&self.c.ring, self.next_head);
    }
}

impl std::ops::Deref for ReadSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: peek checked idx + align8(8 + len) <= cap, so the range lies inside the
        // record area; it is published and not yet released, so an honest producer does not
        // write it until we release. (A hostile one may: see the module docs.)
        unsafe { std::slice::from_raw_parts(self.c.ring.payload_ptr(self.idx), self.len as usize) }
    }
}
