//! A single-producer single-consumer ring of `u32` slot indices: how a receiver hands pool
//! slots back to their sender. The algorithm is written against two tiny traits so the same
//! code runs over atomics in a shared mapping (production) and over loom's model atomics on
//! the heap (`RUSTFLAGS="--cfg loom"`, see `tests` below).
//!
//! Positions are monotonic counts; `entries.len()` is a power of two. The producer writes an
//! entry, then publishes `tail` with a Release store; the consumer loads `tail` with Acquire,
//! reads the entry and frees it with a Release store of `head`. Each side keeps its own
//! position locally and validates the peer's: a corrupt position is an error, never an
//! out-of-bounds access (indices are masked).

use std::sync::atomic::Ordering;

/// A 64-bit shared word (a position).
pub trait Word64 {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, v: u64, order: Ordering);
}

/// A 32-bit shared word (an entry).
pub trait Word32 {
    fn load(&self, order: Ordering) -> u32;
    fn store(&self, v: u32, order: Ordering);
}

impl Word64 for std::sync::atomic::AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        std::sync::atomic::AtomicU64::load(self, order)
    }
    fn store(&self, v: u64, order: Ordering) {
        std::sync::atomic::AtomicU64::store(self, v, order)
    }
}

impl Word32 for std::sync::atomic::AtomicU32 {
    fn load(&self, order: Ordering) -> u32 {
        std::sync::atomic::AtomicU32::load(self, order)
    }
    fn store(&self, v: u32, order: Ordering) {
        std::sync::atomic::AtomicU32::store(self, v, order)
    }
}

/// The shared part of an index ring: two positions and the entries.
pub struct IndexRing<'a, P, E> {
    pub head: &'a P,
    pub tail: &'a P,
    pub entries: &'a [E],
}

/// Producer state (kept locally, never re-read from shared memory).
#[derive(Debug, Default)]
pub struct IndexProducer {
    tail: u64,
}

/// Consumer state (kept locally).
#[derive(Debug, Default)]
pub struct IndexConsumer {
    head: u64,
}

impl<P: Word64, E: Word32> IndexRing<'_, P, E> {
    fn mask(&self) -> u64 {
        self.entries.len() as u64 - 1
    }

    /// Appends `v`. `Ok(false)`: full. `Err`: the consumer's position is impossible.
    pub fn push(&self, p: &mut IndexProducer, v: u32) -> Result<bool, &'static str> {
        let head = self.head.load(Ordering::Acquire);
        let cap = self.entries.len() as u64;
        if head > p.tail || p.tail - head > cap {
            return Err("return ring head out of range");
        }
        if p.tail - head == cap {
            return Ok(false);
        }
        self.entries[(p.tail & self.mask()) as usize].store(v, Ordering::Relaxed);
        p.tail += 1;
        self.tail.store(p.tail, Ordering::Release);
        Ok(true)
    }

    /// Takes the oldest entry. `Ok(None)`: empty. `Err`: the producer's position is impossible.
    pub fn pop(&self, c: &mut IndexConsumer) -> Result<Option<u32>, &'static str> {
        let tail = self.tail.load(Ordering::Acquire);
        let cap = self.entries.len() as u64;
        if tail < c.head || tail - c.head > cap {
            return Err("return ring tail out of range");
        }
        if tail == c.head {
            return Ok(None);
        }
        let v = self.entries[(c.head & self.mask()) as usize].load(Ordering::Relaxed);
        c.head += 1;
        self.head.store(c.head, Ordering::Release);
        Ok(Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, AtomicU64};

    #[test]
    fn fifo_full_empty_and_corrupt_positions() {
        let (head, tail) = (AtomicU64::new(0), AtomicU64::new(0));
        let entries: Vec<AtomicU32> = (0..4).map(|_| AtomicU32::new(0)).collect();
        let r = IndexRing {
            head: &head,
            tail: &tail,
            entries: &entries,
        };
        let (mut p, mut c) = (IndexProducer::default(), IndexConsumer::default());
        assert_eq!(r.pop(&mut c), Ok(None));
        for v in 10..14 {
            assert_eq!(r.push(&mut p, v), Ok(true));
        }
        assert_eq!(r.push(&mut p, 99), Ok(false));
        for round in 0..3u32 {
            let got = r.pop(&mut c).unwrap().unwrap();
            assert_eq!(got, 10 + round);
            assert_eq!(r.push(&mut p, 14 + round), Ok(true));
        }
        let rest: Vec<u32> = std::iter::from_fn(|| r.pop(&mut c).unwrap()).collect();
        assert_eq!(rest, vec![13, 14, 15, 16]);
        // A hostile peer moves the positions: errors, not out-of-range reads.
        tail.store(1_000, Ordering::Relaxed);
        assert!(r.pop(&mut c).is_err());
        head.store(u64::MAX, Ordering::Relaxed);
        assert!(r.push(&mut p, 1).is_err());
    }
}

/// Loom models of the slot hand-off: `RUSTFLAGS="--cfg loom" cargo test -p hyperfabric --lib
/// --release loom`. Two index rings (lend: sender to receiver, the publication the data ring
/// makes; return: receiver to sender) and non-atomic slot contents: loom reports a data race
/// if the orderings fail to order the slot writes before the reads on the other side.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicU32, AtomicU64};
    use loom::sync::Arc;

    impl Word64 for AtomicU64 {
        fn load(&self, order: Ordering) -> u64 {
            AtomicU64::load(self, order)
        }
        fn store(&self, v: u64, order: Ordering) {
            AtomicU64::store(self, v, order)
        }
    }
    impl Word32 for AtomicU32 {
        fn load(&self, order: Ordering) -> u32 {
            AtomicU32::load(self, order)
        }
        fn store(&self, v: u32, order: Ordering) {
            AtomicU32::store(self, v, order)
        }
    }

    struct Shared {
        lend: (AtomicU64, AtomicU64, Vec<AtomicU32>),
        ret: (AtomicU64, AtomicU64, Vec<AtomicU32>),
        slots: Vec<UnsafeCell<u64>>,
    }

    fn ring(r: &(AtomicU64, AtomicU64, Vec<AtomicU32>)) -> IndexRing<'_, AtomicU64, AtomicU32> {
        IndexRing {
            head: &r.0,
            tail: &r.1,
            entries: &r.2,
        }
    }

    fn words(n: usize) -> (AtomicU64, AtomicU64, Vec<AtomicU32>) {
        (
            AtomicU64::new(0),
            AtomicU64::new(0),
            (0..n).map(|_| AtomicU32::new(0)).collect(),
        )
    }

    /// Two slots, three messages: the third reuses a slot the receiver returned, so the
    /// sender's rewrite must happen after the receiver's read (return ring ordering).
    #[test]
    fn loom_slot_lend_and_return() {
        loom::model(|| {
            let s = Arc::new(Shared {
                lend: words(2),
                ret: words(2),
                slots: (0..2).map(|_| UnsafeCell::new(0)).collect(),
            });
            let rx = Arc::clone(&s);
            let receiver = loom::thread::spawn(move || {
                let (mut c, mut p) = (IndexConsumer::default(), IndexProducer::default());
                let mut seen = Vec::new();
                while seen.len() < 3 {
                    match ring(&rx.lend).pop(&mut c).unwrap() {
                        Some(i) => {
                            // SAFETY: loom checks this read is ordered after the write.
                            let v = rx.slots[i as usize].with(|p| unsafe { *p });
                            seen.push(v);
                            assert!(ring(&rx.ret).push(&mut p, i).unwrap());
                        }
                        None => loom::thread::yield_now(),
                    }
                }
                seen
            });
            let (mut p, mut c) = (IndexProducer::default(), IndexConsumer::default());
            let mut free = vec![1u32, 0];
            for msg in 1..=3u64 {
                let slot = loop {
                    if let Some(i) = ring(&s.ret).pop(&mut c).unwrap() {
                        free.push(i);
                    }
                    match free.pop() {
                        Some(i) => break i,
                        None => loom::thread::yield_now(),
                    }
                };
                // SAFETY: loom checks this write is ordered after the last read.
                s.slots[slot as usize].with_mut(|p| unsafe { *p = msg });
                assert!(ring(&s.lend).push(&mut p, slot).unwrap());
            }
            assert_eq!(receiver.join().unwrap(), vec![1, 2, 3]);
        });
    }
}
