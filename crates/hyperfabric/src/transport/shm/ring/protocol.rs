//! The ring protocol itself, written against a tiny [`Area`] trait so that the very same code
//! runs over the mapping (production, [`super::Ring`]) and over loom's model atomics
//! (`RUSTFLAGS="--cfg loom"`, see `loom_model.rs`). It knows positions, record headers and
//! the consumer's released `head`; payload bytes, claims and wake-ups stay with the handles.
//!
//! Invariant the producer keeps: the header word at its next free position (`tail`) is zero
//! before any record in front of it becomes visible, and the header of the first unpublished
//! record is held back (in [`ProducerState::held`]) until [`ProducerState::publish`] stores it
//! with Release. The consumer polls the header word at its `head` with Acquire: zero means
//! nothing yet; nonzero means a record is there, and the Acquire makes its payload (and every
//! later record of the same batch, with its headers and its zeroed successor) visible.

use super::{align8, corrupt, RingError, KIND_DATA, KIND_PAD, RECORD_HEADER_LEN};
use std::sync::atomic::Ordering;

/// Bytes kept free behind the last record: the zeroed header slot of its successor.
pub(super) const SUCCESSOR_LEN: u64 = RECORD_HEADER_LEN as u64;

/// A shared 64-bit word (a record header or the consumer's `head`).
pub(super) trait Word {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, v: u64, order: Ordering);
}

impl Word for std::sync::atomic::AtomicU64 {
    #[inline(always)]
    fn load(&self, order: Ordering) -> u64 {
        std::sync::atomic::AtomicU64::load(self, order)
    }
    #[inline(always)]
    fn store(&self, v: u64, order: Ordering) {
        std::sync::atomic::AtomicU64::store(self, v, order)
    }
}

/// What the protocol needs from the shared memory.
pub(super) trait Area {
    type W: Word;
    /// Record area bytes: a power of two, at least 32.
    fn cap(&self) -> u64;
    /// The header word at byte index `idx` of the record area (8-aligned, below `cap`).
    fn header(&self, idx: u64) -> &Self::W;
    /// The consumer's released position (read by the producer for free space).
    fn head(&self) -> &Self::W;
}

pub(super) fn pack(len: u32, kind: u32) -> u64 {
    u64::from(len) | (u64::from(kind) << 32)
}

/// Largest record (header, payload, alignment) the ring accepts: half its capacity.
pub(super) fn max_record(cap: u64) -> u64 {
    cap / 2
}

/// Producer positions, kept locally and never re-read from shared memory.
#[derive(Debug)]
pub(super) struct ProducerState {
    /// End of the committed records: the next record starts here.
    tail: u64,
    /// End of the published records: the first unpublished record starts here.
    published: u64,
    /// The consumer's `head` as last read (free space is `cap - (tail - cached_head)`).
    cached_head: u64,
    /// Header word of the record at `published` while `tail > published` (held back).
    held: u64,
}

impl ProducerState {
    /// Continues at `tail` (8-aligned, validated by the caller) with the consumer at `head`.
    pub fn new(tail: u64, head: u64) -> Self {
        ProducerState {
            tail,
            published: tail,
            cached_head: head,
            held: 0,
        }
    }

    pub fn tail(&self) -> u64 {
        self.tail
    }

    pub fn unpublished(&self) -> u64 {
        self.tail - self.published
    }

    /// Finds room for a record of `len` payload bytes (`len` ≤ the ring's maximum, checked
    /// by the caller) and returns the index of its header, after committing a padding record
    /// when it has to start at the ring's beginning. `Ok(None)`: no room right now.
    pub fn reserve<A: Area>(&mut self, a: &A, len: u32) -> Result<Option<u64>, RingError> {
        let cap = a.cap();
        let rec = align8(RECORD_HEADER_LEN as u64 + u64::from(len));
        let idx = self.tail & (cap - 1);
        let to_end = cap - idx;
        let wraps = rec > to_end;
        let need = if wraps { to_end + rec } else { rec } + SUCCESSOR_LEN;
        if self.tail + need - self.cached_head > cap {
            self.refresh_head(a)?;
            if self.tail + need - self.cached_head > cap {
                return Ok(None);
            }
        }
        if !wraps {
            return Ok(Some(idx));
        }
        let pad_len = (to_end - RECORD_HEADER_LEN as u64) as u32;
        self.commit_record(a, idx, pack(pad_len, KIND_PAD), to_end);
        Ok(Some(0))
    }

    fn refresh_head<A: Area>(&mut self, a: &A) -> Result<(), RingError> {
        let head = a.head().load(Ordering::Acquire);
        // An honest consumer never passes what we published, nor goes back.
        if head < self.cached_head || head > self.published {
            return Err(corrupt(head, "consumer head out of range"));
        }
        self.cached_head = head;
        Ok(())
    }

    /// Commits the data record of `len` payload bytes reserved at `idx`.
    pub fn commit<A: Area>(&mut self, a: &A, idx: u64, len: u32) {
        let rec = align8(RECORD_HEADER_LEN as u64 + u64::from(len));
        self.commit_record(a, idx, pack(len, KIND_DATA), rec);
    }

    /// Appends the record `word` of `rec` bytes at `idx` (= `tail & mask`).
    fn commit_record<A: Area>(&mut self, a: &A, idx: u64, word: u64, rec: u64) {
        let next = self.tail + rec;
        // The successor's slot must read zero before this record can be seen: otherwise the
        // consumer, arriving there, could take a header of an earlier lap for a new record.
        // Relaxed: the Release in `publish` orders it (reserve kept the slot free).
        a.header(next & (a.cap() - 1)).store(0, Ordering::Relaxed);
        if self.tail == self.published {
            // First of the batch: its header is the publication itself.
            self.held = word;
        } else {
            // Behind a held header: invisible until that one is stored with Release.
            a.header(idx).store(word, Ordering::Relaxed);
        }
        self.tail = next;
    }

    /// Makes every committed record visible (one Release store of the held header).
    /// `false`: there was nothing to publish.
    pub fn publish<A: Area>(&mut self, a: &A) -> bool {
        if self.published == self.tail {
            return false;
        }
        a.header(self.published & (a.cap() - 1))
            .store(self.held, Ordering::Release);
        self.published = self.tail;
        true
    }
}

/// A ready data record: header index, payload length, position after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Record {
    pub idx: u64,
    pub len: u32,
    pub next: u64,
}

/// Consumer position, kept locally and never re-read from shared memory.
#[derive(Debug)]
pub(super) struct ConsumerState {
    head: u64,
}

impl ConsumerState {
    /// Starts at `head` (8-aligned, validated by the caller).
    pub fn new(head: u64) -> Self {
        ConsumerState { head }
    }

    /// Whether the header word at `head` announces a record (padding included).
    pub fn ready<A: Area>(&self, a: &A) -> bool {
        a.header(self.head & (a.cap() - 1)).load(Ordering::Acquire) != 0
    }

    /// The data record at `head`, consuming a padding record in front of it. `Ok(None)`:
    /// nothing published there yet. Header values an honest producer cannot write are
    /// `Corrupt`; any value keeps the record inside the area.
    pub fn peek<A: Area>(&mut self, a: &A) -> Result<Option<Record>, RingError> {
        let cap = a.cap();
        let mut head = self.head;
        for _ in 0..2 {
            let idx = head & (cap - 1);
            let word = a.header(idx).load(Ordering::Acquire);
            if word == 0 {
                if head != self.head {
                    // Only a padding record was there: free it.
                    self.release(a, head);
                }
                return Ok(None);
            }
            let (len, kind) = (word as u32, (word >> 32) as u32);
            let rec = align8(RECORD_HEADER_LEN as u64 + u64::from(len));
            if rec > cap - idx || rec > max_record(cap) {
                return Err(corrupt(head, "record length exceeds ring bounds"));
            }
            match kind {
                KIND_DATA => {
                    return Ok(Some(Record {
                        idx,
                        len,
                        next: head + rec,
                    }))
                }
                KIND_PAD if rec == cap - idx => head += rec,
                KIND_PAD => return Err(corrupt(head, "padding not up to ring end")),
                _ => return Err(corrupt(head, "unknown record kind")),
            }
        }
        // Unreachable with an area of at least 32 bytes (a padding record at index 0 would
        // exceed the maximum record), kept so that no header value can loop.
        Err(corrupt(head, "padding after padding"))
    }

    /// Frees everything before `next` for the producer (Release: our reads of the records
    /// happen before its rewrite).
    pub fn release<A: Area>(&mut self, a: &A, next: u64) {
        self.head = next;
        a.head().store(next, Ordering::Release);
    }
}
