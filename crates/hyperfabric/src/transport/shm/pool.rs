//! A pool of fixed-size buffer slots in a [`Segment`], lent by one sender to one receiver:
//! the memory behind the loan API and the one-copy path for large messages.
//!
//! Layout of the segment's data region:
//!
//! ```text
//!     0 +------------------------------------------------------------+
//!       | magic u64 | slot_size u64 | slot_count u32 | ret_cap u32     | read-only after init
//!   128 | ret_tail u64: slots ever returned     written by the receiver only
//!   256 | ret_head u64: returns ever reclaimed  written by the sender only
//!   384 | return ring: ret_cap × u32 slot indices (receiver → sender)
//!  4096·k +----------------------------------------------------------+  page aligned
//!       | slot 0 | slot 1 | ... slot_count × slot_size bytes           |
//!       +------------------------------------------------------------+
//! ```
//!
//! The sender writes a slot, then names it in a descriptor record on the data ring (whose
//! Release/Acquire publication orders the slot bytes before the receiver's reads). The
//! receiver reads it in place and, when done, pushes the index on the return ring
//! ([`super::index`]). Neither side trusts the other's accounting: the sender knows which
//! slots it lent and refuses a return of anything else (a bogus index, a slot returned twice);
//! the receiver knows which slots it holds and refuses a descriptor that names a held slot or
//! lies about bounds. Each such event is a [`PoolError`] that closes the link, never UB.

use super::index::{IndexConsumer, IndexProducer, IndexRing};
use super::segment::Segment;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// `b"HFPOOL01"` as a little-endian u64.
pub const POOL_MAGIC: u64 = u64::from_le_bytes(*b"HFPOOL01");
/// Offset of the return ring's entries in the data region.
const RET_OFFSET: usize = 384;
const PAGE: usize = 4096;
/// Most slots a pool may have (bounds the receiver's bookkeeping against a hostile header).
pub const POOL_SLOTS_MAX: u32 = 4096;

#[repr(C, align(128))]
struct Meta {
    magic: AtomicU64,
    slot_size: AtomicU64,
    slot_count: AtomicU32,
    ret_cap: AtomicU32,
}

#[repr(C, align(128))]
struct Line(AtomicU64);

#[repr(C)]
struct PoolHeader {
    meta: Meta,
    ret_tail: Line,
    ret_head: Line,
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<PoolHeader>() == RET_OFFSET);
    assert!(offset_of!(PoolHeader, ret_tail) == 128);
    assert!(offset_of!(PoolHeader, ret_head) == 256);
    assert!(offset_of!(Meta, slot_count) == 16);
};

/// What went wrong with a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The peer broke the protocol (bogus index, double return, impossible position).
    #[error("buffer pool protocol violation: {0}")]
    Protocol(String),
    /// The segment does not hold a pool of the expected shape.
    #[error("buffer pool layout: {0}")]
    BadLayout(&'static str),
}

fn protocol(why: impl Into<String>) -> PoolError {
    PoolError::Protocol(why.into())
}

/// Geometry of a pool: where the slots start and how big the data region is.
const fn slots_offset(slot_count: u32) -> usize {
    let ret = RET_OFFSET + 4 * (slot_count as usize).next_power_of_two();
    ret.div_ceil(PAGE) * PAGE
}

/// A pool inside a segment (cheap to clone): geometry and pointers, no role.
#[derive(Clone)]
pub struct Pool {
    seg: Arc<Segment>,
    slot_size: usize,
    slot_count: u32,
    ret_cap: u32,
}

// SAFETY: `Pool` holds only the segment (Send + Sync) and plain numbers; shared memory is
// reached through atomics or through slot ranges whose use the sender/receiver protocol
// makes exclusive.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

impl Pool {
    /// Segment data length for `slot_count` slots of `slot_size` bytes (a multiple of 4096).
    pub const fn segment_len_for(slot_size: usize, slot_count: u32) -> usize {
        slots_offset(slot_count) + slot_size * slot_count as usize
    }

    /// Formats a fresh pool over `seg` (the creator does this before the peer attaches).
    pub fn init(seg: Arc<Segment>, slot_size: usize, slot_count: u32) -> Result<Pool, PoolError> {
        if slot_size == 0 || !slot_size.is_multiple_of(PAGE) || slot_count == 0 {
            return Err(PoolError::BadLayout("slot size or count"));
        }
        if slot_count > POOL_SLOTS_MAX
            || seg.data_len() != Self::segment_len_for(slot_size, slot_count)
        {
            return Err(PoolError::BadLayout("segment size does not match the pool"));
        }
        let pool = Pool {
            seg,
            slot_size,
            slot_count,
            ret_cap: slot_count.next_power_of_two(),
        };
        let h = pool.header();
        h.meta.slot_size.store(slot_size as u64, Ordering::Relaxed);
        h.meta.slot_count.store(slot_count, Ordering::Relaxed);
        h.meta.ret_cap.store(pool.ret_cap, Ordering::Relaxed);
        h.ret_tail.0.store(0, Ordering::Relaxed);
        h.ret_head.0.store(0, Ordering::Relaxed);
        h.meta.magic.store(POOL_MAGIC, Ordering::Release);
        Ok(pool)
    }

    /// Attaches to a pool formatted by [`Pool::init`], checking its geometry against the
    /// segment's real size (taken from the file with fstat when it was opened).
    pub fn attach(seg: Arc<Segment>) -> Result<Pool, PoolError> {
        if seg.data_len() < PAGE {
            return Err(PoolError::BadLayout("segment too small"));
        }
        // SAFETY: data region ≥ 4096 bytes, page aligned; all header fields are atomics.
        let h = unsafe { &*seg.data_ptr().as_ptr().cast::<PoolHeader>() };
        if h.meta.magic.load(Ordering::Acquire) != POOL_MAGIC {
            return Err(PoolError::BadLayout("pool magic"));
        }
        let slot_size = h.meta.slot_size.load(Ordering::Relaxed);
        let slot_count = h.meta.slot_count.load(Ordering::Relaxed);
        let ret_cap = h.meta.ret_cap.load(Ordering::Relaxed);
        let ok = slot_size > 0
            && slot_size.is_multiple_of(PAGE as u64)
            && slot_size <= seg.data_len() as u64
            && (1..=POOL_SLOTS_MAX).contains(&slot_count)
            && ret_cap == slot_count.next_power_of_two()
            && seg.data_len() == Self::segment_len_for(slot_size as usize, slot_count);
        if !ok {
            return Err(PoolError::BadLayout(
                "pool header does not match the segment",
            ));
        }
        Ok(Pool {
            seg,
            slot_size: slot_size as usize,
            slot_count,
            ret_cap,
        })
    }

    fn header(&self) -> &PoolHeader {
        // SAFETY: the data region is page aligned and at least RET_OFFSET bytes (checked in
        // init/attach); every field is an atomic, valid for any bit pattern.
        unsafe { &*self.seg.data_ptr().as_ptr().cast::<PoolHeader>() }
    }

    fn return_ring(&self) -> IndexRing<'_, AtomicU64, AtomicU32> {
        let h = self.header();
        // SAFETY: entries live at [RET_OFFSET, RET_OFFSET + 4 * ret_cap), inside the data
        // region (slots_offset accounts for them), 4-byte aligned; AtomicU32 accepts any bits.
        let entries = unsafe {
            std::slice::from_raw_parts(
                self.seg
                    .data_ptr()
                    .as_ptr()
                    .add(RET_OFFSET)
                    .cast::<AtomicU32>(),
                self.ret_cap as usize,
            )
        };
        IndexRing {
            head: &h.ret_head.0,
            tail: &h.ret_tail.0,
            entries,
        }
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Number of slots.
    pub fn slot_count(&self) -> u32 {
        self.slot_count
    }

    /// The segment holding the pool.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// Start of slot `idx` (`idx < slot_count`, checked by the callers).
    fn slot_ptr(&self, idx: u32) -> NonNull<u8> {
        debug_assert!(idx < self.slot_count);
        let off = slots_offset(self.slot_count) + idx as usize * self.slot_size;
        // SAFETY: idx < slot_count, so [off, off + slot_size) lies inside the data region
        // (its size was checked against segment_len_for).
        unsafe { NonNull::new_unchecked(self.seg.data_ptr().as_ptr().add(off)) }
    }
}

/// Both pools of a shared-memory link: the one we lend from (our sending direction) and the
/// one the peer lends from (we hold views of its slots).
pub struct LinkPools {
    pub tx: parking_lot::Mutex<PoolSender>,
    pub rx: Arc<PoolReceiver>,
}

/// Where a slot is, as seen by the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    /// Handed to local code (a [`SlotMut`] exists).
    Writing,
    /// Named in a descriptor: the receiver owns it until it comes back.
    Lent,
}

/// Which free slot a sender takes: the oldest of this many most recently returned ones.
///
/// Not the most recent one (a stack): the receiver has just read it, so its lines sit in the
/// receiver's L2, and every line the sender writes must first be taken from that cache.
/// A slot returned two returns ago has been pushed out of the receiver's L2 by the reads
/// since (1 MiB slots, 1.25 MiB of L2 here) and is written from L3. Not the oldest of the
/// whole pool (a queue) either: that cycles through all 32 slots, out of the caches.
/// Measured with 1 MiB loans, the sender writing and the receiver reading every byte
/// (`hfabric bench throughput --api loan`): the sender's copy ran at 11.3–12.6 GB/s with a
/// stack, 13.4–15.4 GB/s with a window of 2–6, ~8 GB/s cycling the whole pool.
pub const HOT_WINDOW: usize = 3;

/// The sending side of a pool: hands out free slots and takes back returned ones.
pub struct PoolSender {
    pool: Pool,
    state: Vec<SlotState>,
    free: std::collections::VecDeque<u32>,
    ret: IndexConsumer,
}

impl PoolSender {
    pub fn new(pool: Pool) -> PoolSender {
        let n = pool.slot_count;
        PoolSender {
            state: vec![SlotState::Free; n as usize],
            // Lowest index on top: slots are reused hot.
            free: (0..n).collect(),
            ret: IndexConsumer::default(),
            pool,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Takes back every slot the receiver returned. A bogus or duplicate return is an error.
    pub fn reclaim(&mut self) -> Result<(), PoolError> {
        let pool = self.pool.clone();
        let ring = pool.return_ring();
        while let Some(idx) = ring.pop(&mut self.ret).map_err(protocol)? {
            match self.state.get(idx as usize) {
                Some(SlotState::Lent) => {
                    self.state[idx as usize] = SlotState::Free;
                    self.free.push_back(idx);
                }
                Some(_) => return Err(protocol(format!("slot {idx} returned but not lent"))),
                None => return Err(protocol(format!("returned slot index {idx} out of range"))),
            }
        }
        Ok(())
    }

    /// A free slot for local writing, `Ok(None)` when every slot is out.
    ///
    /// Returned slots are taken back first, and the one handed out is the oldest of the
    /// [`HOT_WINDOW`] most recently returned (see there).
    pub fn try_take(&mut self) -> Result<Option<SlotMut>, PoolError> {
        self.reclaim()?;
        let at = self.free.len().saturating_sub(HOT_WINDOW);
        Ok(self.free.remove(at).map(|idx| {
            self.state[idx as usize] = SlotState::Writing;
            SlotMut {
                pool: self.pool.clone(),
                idx,
            }
        }))
    }

    /// Gives a slot back unsent (its loan was dropped).
    pub fn put_back(&mut self, slot: &SlotMut) {
        if self.state.get(slot.idx as usize) == Some(&SlotState::Writing) {
            self.state[slot.idx as usize] = SlotState::Free;
            self.free.push_back(slot.idx);
        }
    }

    /// Marks the slot lent: the caller is about to publish its descriptor. Returns the index.
    /// After this the receiver owns the slot; the SlotMut must not be written again.
    pub fn lend(&mut self, slot: &SlotMut) -> u32 {
        self.state[slot.idx as usize] = SlotState::Lent;
        slot.idx
    }

    /// Slots not lent or being written now.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }
}

/// A slot being written by its sender. Only [`PoolSender`] makes one, for a slot it holds.
pub struct SlotMut {
    pool: Pool,
    idx: u32,
}

impl SlotMut {
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// The whole slot, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the slot is in state Writing: the receiver does not own it (it was never lent,
        // or was returned), and only this SlotMut names it in this process.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.pool.slot_ptr(self.idx).as_ptr(),
                self.pool.slot_size,
            )
        }
    }

    /// The whole slot, read-only.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as in `as_mut_slice`.
        unsafe {
            std::slice::from_raw_parts(self.pool.slot_ptr(self.idx).as_ptr(), self.pool.slot_size)
        }
    }
}

/// The receiving side of a pool: accepts descriptors, hands out read-only views, and
/// returns slots to the sender when the views are dropped (from any thread).
pub struct PoolReceiver {
    pool: Pool,
    inner: parking_lot::Mutex<RecvState>,
}

struct RecvState {
    held: Vec<bool>,
    ret: IndexProducer,
    /// Set when a return could not be published (peer corrupted the ring): the link is dead.
    broken: bool,
}

impl PoolReceiver {
    pub fn new(pool: Pool) -> Arc<PoolReceiver> {
        Arc::new(PoolReceiver {
            inner: parking_lot::Mutex::new(RecvState {
                held: vec![false; pool.slot_count as usize],
                ret: IndexProducer::default(),
                broken: false,
            }),
            pool,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Takes ownership of slot `idx` holding `len` bytes, as a descriptor says.
    pub fn accept(self: &Arc<Self>, idx: u32, len: usize) -> Result<SlotView, PoolError> {
        if idx >= self.pool.slot_count {
            return Err(protocol(format!(
                "descriptor names slot {idx} of {}",
                self.pool.slot_count
            )));
        }
        if len > self.pool.slot_size {
            return Err(protocol(format!(
                "descriptor length {len} exceeds the slot size {}",
                self.pool.slot_size
            )));
        }
        let mut st = self.inner.lock();
        if st.broken {
            return Err(protocol("return ring corrupt"));
        }
        if std::mem::replace(&mut st.held[idx as usize], true) {
            return Err(protocol(format!("slot {idx} lent again while still held")));
        }
        Ok(SlotView {
            rx: Arc::clone(self),
            idx,
            len,
        })
    }

    fn give_back(&self, idx: u32) {
        let mut st = self.inner.lock();
        st.held[idx as usize] = false;
        let ring = self.pool.return_ring();
        match ring.push(&mut st.ret, idx) {
            Ok(true) => {}
            // Honest senders lend at most slot_count ≤ ret_cap slots: full means a lie.
            Ok(false) => st.broken = true,
            Err(why) => {
                tracing::warn!("shared-memory pool: {why}");
                st.broken = true;
            }
        }
    }

    /// Slots held by views right now.
    pub fn held(&self) -> usize {
        self.inner.lock().held.iter().filter(|h| **h).count()
    }
}

/// A read-only view of a received slot; dropping it returns the slot to the sender.
///
/// The bytes live in memory the sending process can write: an honest sender does not touch a
/// lent slot, a hostile one can change it while it is read (never make us read outside it).
pub struct SlotView {
    rx: Arc<PoolReceiver>,
    idx: u32,
    len: usize,
}

impl SlotView {
    pub fn index(&self) -> u32 {
        self.idx
    }
}

impl std::ops::Deref for SlotView {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: accept checked idx < slot_count and len <= slot_size; the view holds the
        // pool (and so the mapping) alive; an honest sender does not write a lent slot.
        unsafe { std::slice::from_raw_parts(self.rx.pool.slot_ptr(self.idx).as_ptr(), self.len) }
    }
}

impl Drop for SlotView {
    fn drop(&mut self) {
        self.rx.give_back(self.idx);
    }
}

impl std::fmt::Debug for SlotView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotView")
            .field("slot", &self.idx)
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(slots: u32) -> (PoolSender, Arc<PoolReceiver>) {
        let name = super::super::segment::tests::unique("pool");
        let seg = Segment::create(&name, Pool::segment_len_for(PAGE, slots)).unwrap();
        let pool = Pool::init(Arc::new(seg), PAGE, slots).unwrap();
        let peer = Pool::attach(Arc::new(Segment::open(&name).unwrap())).unwrap();
        (PoolSender::new(pool), PoolReceiver::new(peer))
    }

    #[test]
    fn lend_read_return_reuse() {
        let (mut tx, rx) = pair(2);
        let mut a = tx.try_take().unwrap().unwrap();
        a.as_mut_slice()[..5].copy_from_slice(b"hello");
        let b = tx.try_take().unwrap().unwrap();
        assert!(tx.try_take().unwrap().is_none(), "two slots only");
        tx.put_back(&b);
        let ia = tx.lend(&a);
        let view = rx.accept(ia, 5).unwrap();
        assert_eq!(&view[..], b"hello");
        assert_eq!(rx.held(), 1);
        let c = tx.try_take().unwrap().unwrap();
        assert!(tx.try_take().unwrap().is_none(), "slot a is still lent");
        drop(view);
        tx.reclaim().unwrap();
        assert_eq!(tx.free_slots(), 1);
        tx.put_back(&c);
        assert_eq!(tx.free_slots(), 2);
    }

    #[test]
    fn takes_the_oldest_of_the_hot_window() {
        let (mut tx, rx) = pair(8);
        // Lend every slot and have the receiver return them in the order 7, 6, ..., 0.
        let slots: Vec<SlotMut> = (0..8).map(|_| tx.try_take().unwrap().unwrap()).collect();
        let views: Vec<SlotView> = slots
            .iter()
            .map(|s| rx.accept(tx.lend(s), 1).unwrap())
            .collect();
        assert!(tx.try_take().unwrap().is_none());
        let mut order: Vec<u32> = views.iter().map(|v| v.idx).collect();
        order.reverse();
        for v in views.into_iter().rev() {
            drop(v);
        }
        // The most recent returns are order[5..] = the last three; the oldest of them is taken.
        let want = order[8 - HOT_WINDOW];
        let got = tx.try_take().unwrap().unwrap();
        assert_eq!(got.index(), want, "returned in the order {order:?}");
        // With fewer free slots than the window, the oldest free one goes first.
        let (mut tx, _rx) = pair(2);
        let first = tx.try_take().unwrap().unwrap().index();
        let second = tx.try_take().unwrap().unwrap().index();
        assert_ne!(first, second);
    }

    #[test]
    fn hostile_peers_get_errors() {
        let (mut tx, rx) = pair(4);
        // Receiver side: bogus index, oversize length, a held slot lent again.
        assert!(rx.accept(4, 1).is_err());
        assert!(rx.accept(0, PAGE + 1).is_err());
        let v = rx.accept(1, 8).unwrap();
        assert!(rx.accept(1, 8).is_err());
        // Sender side: a return of a slot never lent (the view above was not lent by tx).
        drop(v);
        assert!(matches!(tx.reclaim(), Err(PoolError::Protocol(_))));
        // A return ring whose tail runs ahead of anything possible.
        let (mut tx, _rx) = pair(4);
        tx.pool
            .header()
            .ret_tail
            .0
            .store(1 << 40, Ordering::Relaxed);
        assert!(tx.reclaim().is_err());
    }

    #[test]
    fn attach_refuses_a_lying_header() {
        let name = super::super::segment::tests::unique("pool-bad");
        let seg = Arc::new(Segment::create(&name, Pool::segment_len_for(PAGE, 2)).unwrap());
        assert!(Pool::init(Arc::clone(&seg), PAGE, 3).is_err());
        let pool = Pool::init(Arc::clone(&seg), PAGE, 2).unwrap();
        pool.header()
            .meta
            .slot_count
            .store(1 << 20, Ordering::Relaxed);
        assert!(Pool::attach(Arc::new(Segment::open(&name).unwrap())).is_err());
        pool.header().meta.slot_count.store(2, Ordering::Relaxed);
        pool.header()
            .meta
            .slot_size
            .store(1 << 30, Ordering::Relaxed);
        assert!(Pool::attach(Arc::new(Segment::open(&name).unwrap())).is_err());
    }
}
