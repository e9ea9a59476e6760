//! Loom model of the ring protocol: `RUSTFLAGS="--cfg loom" cargo test -p hyperfabric --lib
//! --release loom`. It runs the production code of [`protocol`](super::protocol) (reserve,
//! commit, publish, peek, release) over loom atomics: a record area of 4 header words, each
//! with a loom `UnsafeCell` beside it for payload. In the mapping a word is a header in one
//! lap and payload in another; here the two roles are separate cells, so loom checks the
//! orderings of each role (payload written before its header is published, read before its
//! space is released, never reused before that) but not the mixing of the two on one word,
//! which happens-before ties the same way. The wake-up handshake (`parked`, SeqCst fences)
//! lives in `handles.rs` over the futex; `loom_no_lost_wakeup` models that exact sequence.

use super::protocol::{pack, Area, ConsumerState, ProducerState, Record, Word};
use super::KIND_DATA;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicU32, AtomicU64};
use loom::sync::Arc;
use std::sync::atomic::Ordering;

impl Word for AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    fn store(&self, v: u64, order: Ordering) {
        AtomicU64::store(self, v, order)
    }
}

struct Model {
    headers: Vec<AtomicU64>,
    cells: Vec<UnsafeCell<u64>>,
    head: AtomicU64,
    parked: AtomicU32,
}

impl Area for Model {
    type W = AtomicU64;
    fn cap(&self) -> u64 {
        8 * self.headers.len() as u64
    }
    fn header(&self, idx: u64) -> &AtomicU64 {
        &self.headers[(idx / 8) as usize]
    }
    fn head(&self) -> &AtomicU64 {
        &self.head
    }
}

/// A ring of `words` 8-byte words whose memory holds an earlier lap's headers (valid-looking
/// empty DATA records) everywhere but at index 0, which `Ring::init` zeroes.
fn model(words: usize) -> Arc<Model> {
    let stale = pack(0, KIND_DATA);
    Arc::new(Model {
        headers: (0..words)
            .map(|i| AtomicU64::new(if i == 0 { 0 } else { stale }))
            .collect(),
        cells: (0..words).map(|_| UnsafeCell::new(0)).collect(),
        head: AtomicU64::new(0),
        parked: AtomicU32::new(0),
    })
}

/// Reserves (spinning while full, publishing pending commits first like `try_reserve`),
/// writes `v` as the one payload word when `len == 8`, and commits.
fn push(m: &Model, p: &mut ProducerState, len: u32, v: u64) {
    let idx = loop {
        if let Some(idx) = p.reserve(m, len).unwrap() {
            break idx;
        }
        if p.unpublished() != 0 {
            p.publish(m);
        }
        loom::thread::yield_now();
    };
    if len == 8 {
        // SAFETY: loom checks that this write is ordered after the consumer's last read.
        m.cells[(idx / 8 + 1) as usize].with_mut(|c| unsafe { *c = v });
    }
    p.commit(m, idx, len);
}

/// Reads `n` records: (payload length, payload word or 0).
fn consume(m: &Model, n: usize) -> Vec<(u32, u64)> {
    let mut c = ConsumerState::new(0);
    let mut seen = Vec::new();
    while seen.len() < n {
        match c.peek(m).unwrap() {
            Some(Record { idx, len, next }) => {
                let v = if len == 8 {
                    // SAFETY: loom checks that this read is ordered after the write.
                    m.cells[(idx / 8 + 1) as usize].with(|c| unsafe { *c })
                } else {
                    0
                };
                seen.push((len, v));
                c.release(m, next);
            }
            None => loom::thread::yield_now(),
        }
    }
    // Everything pushed was read: the word at head is the zeroed successor, not a stale one.
    assert_eq!(c.peek(m).unwrap(), None);
    seen
}

/// Three records of 16, 8 and 16 bytes in 32 bytes: the third pads the ring end, wraps to
/// index 0 and reuses the first one's payload word; the successor of the last lands on the
/// second one's stale header. `batch`: the first two are published with one store.
fn three_records(batch: bool) {
    loom::model(move || {
        let m = model(4);
        let rx = Arc::clone(&m);
        let consumer = loom::thread::spawn(move || consume(&rx, 3));
        let mut p = ProducerState::new(0, 0);
        push(&m, &mut p, 8, 1);
        if !batch {
            p.publish(&*m);
        }
        push(&m, &mut p, 0, 0);
        p.publish(&*m);
        push(&m, &mut p, 8, 3);
        p.publish(&*m);
        assert_eq!(consumer.join().unwrap(), vec![(8, 1), (0, 0), (8, 3)]);
    });
}

#[test]
fn loom_records_one_by_one_with_wrap() {
    three_records(false);
}

#[test]
fn loom_batch_then_wrap() {
    three_records(true);
}

/// The park handshake of `handles.rs`: the consumer raises `parked`, fences, re-checks the
/// header at its head; the producer stores the header, fences, reads `parked`. At least one
/// of them must see the other's store, or the consumer would sleep on a published record.
#[test]
fn loom_no_lost_wakeup() {
    loom::model(|| {
        let m = model(4);
        let rx = Arc::clone(&m);
        let consumer = loom::thread::spawn(move || {
            let c = ConsumerState::new(0);
            rx.parked.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            c.ready(&*rx)
        });
        let mut p = ProducerState::new(0, 0);
        push(&m, &mut p, 8, 7);
        p.publish(&*m);
        fence(Ordering::SeqCst);
        let saw_parked = m.parked.load(Ordering::Relaxed) != 0;
        let saw_record = consumer.join().unwrap();
        assert!(saw_record || saw_parked, "lost wake-up");
    });
}
