//! Reassembly at the destination: where chunks go (memory, a file, nowhere), when a
//! transfer is complete, and what is remembered afterwards to answer late duplicates.

mod cache;
mod queue;

use super::open::{transfer_ledger, Ledger, Overload, Unread};
use super::store::{self, OnConflict};
use crate::buffer::{Payload, PooledBuf, RecvPool, BUFFER_BYTES_MAX};
use crate::config::{Transform, Tuning};
use crate::core::admission::recv_refusal;
use crate::core::ended::{Ended, EndedLimits, NoRoom, SourceFull};
use crate::proto::{ContentCrc, IncomingTransfer, RecvParams};
use crate::transform::ChunkCache;
use crate::types::{DataType, Priority};
use crate::wire::{Refusal, RefusalCode};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ended transfers remembered per source (to re-acknowledge retransmissions that cross the
/// FINAL ack, and to refuse a refused one again), in the core's one policy (`core::ended`).
const ENDED_PER_PEER_MAX: usize = 262_144;
/// Ended transfers remembered in all (about 100 bytes each: some 50 MB when full).
const ENDED_NODE_MAX: usize = 2 * ENDED_PER_PEER_MAX;

/// The memory of ended transfers of a node tuned by `tuning`: 262144 per source, 524288 in
/// all, each kept at least one retransmit timeout (`retransmit_timeout_ms`). A sender
/// copies a frame again only after a retransmit timeout without an answer, and stops at the
/// FINAL ack: a copy that crosses the ack reaches this node within about one round trip,
/// which the sender's timeout exceeds. A source that ends transfers faster than its bound
/// allows within that time (262144 a second with the high-throughput profile's 1 s; `hfabric
/// bench`'s 1 KiB stream over shared memory ends more) forgets its own oldest entries
/// (`SourceFull::ForgetOwnOldest`: refusing it would stop an honest fast sender) but never
/// pushes another source's out: past the node bound, young entries refuse. Older
/// entries stay until the bounds need their room (nothing expires them by time: the longer
/// a duplicate is recognised, the better).
pub(super) fn ended_limits(tuning: &Tuning) -> EndedLimits {
    EndedLimits {
        per_peer_max: ENDED_PER_PEER_MAX,
        node_max: ENDED_NODE_MAX,
        linger: Duration::from_millis(tuning.retransmit_timeout_ms),
        source_full: SourceFull::ForgetOwnOldest,
    }
}

/// Received messages waiting for `recv` before readers block (backpressure to senders).
const RECV_QUEUE: usize = 1024;
/// Separate holes tolerated in one transfer.
const MAX_RANGES: usize = 4096;
/// Largest transfer assembled in memory (a store directory takes larger ones).
const MAX_IN_MEMORY_BYTES: u64 = 4 << 30;

/// What a node does with the transfers it receives.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Keep them in memory and hand them to `recv`.
    Memory,
    /// Verify, acknowledge and drop them.
    Discard,
    /// Write them as files in this directory.
    Store(PathBuf),
}

/// A transfer received whole.
#[derive(Debug)]
pub struct Message {
    pub source: crate::NodeName,
    pub transfer_id: u64,
    pub data_type: DataType,
    pub priority: Priority,
    pub name: Option<String>,
    /// The transform the sender applied (its data-type policy). For the lossy ones the
    /// payload is the encoded form: decode it with [`crate::transform`]. `Cache` transfers
    /// are resolved here: the payload is the full bytes.
    pub transform: Transform,
    /// The bytes: owned, or (over shared memory, one-chunk transfers) a read-only view of
    /// the sender's pool slot, returned to it when the message is dropped.
    pub payload: Payload,
}

pub(super) enum Store {
    Nowhere,
    Memory(Vec<u8>),
    /// In memory, in a buffer of the node's receive pool (transfers up to its buffer size).
    Pooled(PooledBuf),
    File {
        tmp: PathBuf,
        file: File,
    },
}

pub(super) struct Entry {
    pub proto: IncomingTransfer,
    pub data_type: DataType,
    pub priority: Priority,
    pub name: Option<String>,
    pub store: Store,
    touched: Instant,
    /// Bytes this transfer counts against its peer's reassembly limit.
    reserved: u64,
    /// Delivered or refused: frames that waited for this entry's lock must not use it.
    pub closed: bool,
    /// The content's CRC32C as it is assembled (with per-node keys only: a relayed FINAL
    /// ack signs it).
    pub content: ContentCrc,
}

/// What to do with a completed transfer once its FINAL ack is out.
pub(super) enum Completed {
    Deliver(Message),
    Stored(PathBuf),
    Dropped,
}

/// (source node key, transfer id): a transfer's identity at the destination.
type TransferKey = (u64, u64);

/// Ended transfers' entries kept for new ones (no allocation per message): a few suffice.
const RETIRED_MAX: usize = 8;

/// The open transfers and what each peer holds of them (changed together, under one lock).
struct OpenTransfers {
    map: HashMap<TransferKey, Arc<Mutex<Entry>>>,
    ledger: Ledger<u64>,
    /// Entries of ended transfers, reused once nothing else holds them (`RETIRED_MAX`).
    retired: Vec<Arc<Mutex<Entry>>>,
}

impl OpenTransfers {
    fn new() -> Self {
        OpenTransfers {
            map: HashMap::new(),
            ledger: transfer_ledger(),
            retired: Vec::with_capacity(RETIRED_MAX),
        }
    }

    fn remove(&mut self, key: TransferKey, reserved: u64) {
        if let Some(e) = self.map.remove(&key) {
            self.ledger.remove(key.0, reserved);
            if self.retired.len() < RETIRED_MAX {
                self.retired.push(e);
            }
        }
    }

    /// `entry` in a retired entry nothing else holds any more (a frame that waited for the
    /// old transfer's lock keeps it from reuse until it lets go), or in a new one.
    fn shelter(&mut self, entry: Entry) -> Arc<Mutex<Entry>> {
        for i in 0..self.retired.len() {
            if let Some(old) = Arc::get_mut(&mut self.retired[i]) {
                *old.get_mut() = entry;
                return self.retired.swap_remove(i);
            }
        }
        Arc::new(Mutex::new(entry))
    }
}

/// How a transfer ended at this node: what late frames of it are answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Stored or delivered: `Ack FINAL`, signing this content CRC32C when it was relayed
    /// (`None`: not tracked, as for outcomes read back from the journal).
    Delivered(Option<u32>),
    /// Refused for good: `Nack FATAL` with this refusal (again, should the first be lost).
    Refused(Refusal),
}

/// Ended transfers and how each ended, one policy with the core's (`core::ended`).
type CompletedMemory = Ended<Instant, Outcome>;

pub(super) struct IncomingTable {
    sink: Sink,
    params: RecvParams,
    stale_after: Duration,
    on_conflict: OnConflict,
    open: Mutex<OpenTransfers>,
    /// Received messages not read yet, per peer (backpressure on the peer that is over).
    unread: Unread,
    done: Mutex<CompletedMemory>,
    /// With a store directory: the durable record of completed transfers (None if it could
    /// not be opened, which is logged: then only this process's memory answers duplicates).
    journal: Mutex<Option<super::journal::DoneJournal>>,
    tx: Sender<Message>,
    rx: Receiver<Message>,
    /// Parameter caches, one per source node (what `Transform::Cache` senders rely on).
    caches: Mutex<HashMap<u64, ChunkCache>>,
    /// Buffers for messages assembled in memory, returned when the application drops them.
    pool: Arc<RecvPool>,
}

impl IncomingTable {
    pub(super) fn new(sink: Sink, tuning: &Tuning) -> Self {
        Self::with_ended_limits(sink, tuning, ended_limits(tuning))
    }

    /// [`Self::new`] with the memory of ended transfers bounded by `ended` (tests shrink it).
    pub(super) fn with_ended_limits(sink: Sink, tuning: &Tuning, ended: EndedLimits) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(RECV_QUEUE);
        let max = match sink {
            Sink::Memory => tuning.max_transfer_bytes.min(MAX_IN_MEMORY_BYTES),
            _ => tuning.max_transfer_bytes,
        };
        let (journal, done) = open_journal(&sink, ended);
        if let Sink::Store(dir) = &sink {
            match store::remove_stale_parts(dir, stale_after(tuning)) {
                Ok(0) => {}
                Ok(n) => tracing::info!("removed {n} stale .part files from {}", dir.display()),
                Err(e) => {
                    tracing::warn!("cannot scan {} for stale .part files: {e}", dir.display())
                }
            }
        }
        IncomingTable {
            sink,
            params: RecvParams {
                max_transfer_bytes: max,
                ack_every_bytes: (tuning.window_bytes / 4).max(tuning.max_packet_size as u64),
                max_ranges: MAX_RANGES,
            },
            stale_after: stale_after(tuning),
            on_conflict: tuning.on_conflict,
            open: Mutex::new(OpenTransfers::new()),
            unread: Unread::new(RECV_QUEUE),
            done: Mutex::new(done),
            journal: Mutex::new(journal),
            tx,
            rx,
            caches: Mutex::new(HashMap::new()),
            pool: RecvPool::new(),
        }
    }

    /// May a transfer of `total` bytes be delivered whole from one frame? (the limit that
    /// reassembly would check)
    pub(super) fn fits_whole(&self, total: u64) -> bool {
        matches!(self.sink, Sink::Memory) && total <= self.params.max_transfer_bytes
    }

    /// A copy of `bytes` in a buffer of the receive pool (a message that came whole).
    pub(super) fn pooled_copy(&self, bytes: &[u8]) -> Payload {
        let mut buf = self.pool.take(bytes.len());
        buf.as_mut_slice().copy_from_slice(bytes);
        Payload::Pooled(buf)
    }

    /// `buf[..len]`, the whole message a stream link read into `buf` and gave away, as a
    /// buffer of the receive pool (no copy unless `buf` is far larger than its bytes).
    pub(super) fn adopt(&self, buf: Vec<u8>, len: usize) -> Payload {
        Payload::Pooled(self.pool.adopt(buf, len))
    }

    /// A vector for a stream link to read its next frames into once it gave its buffer
    /// away: a kept one (capacity for `len` bytes) if there is one.
    pub(super) fn spare(&self, len: usize) -> Vec<u8> {
        self.pool.spare(len)
    }

    /// How transfer `key` ended, if it did (and is still remembered).
    pub(super) fn outcome(&self, key: TransferKey) -> Option<Outcome> {
        self.done.lock().get(key).cloned()
    }

    /// Transfers being received, and messages waiting for the application (metrics).
    pub(super) fn depths(&self) -> (usize, usize) {
        (self.open.lock().map.len(), self.rx.len())
    }

    /// The open transfer `key`, opened now if this is its first frame; `None` if it was
    /// delivered, its refusal if it was refused. (Decided under the `open` lock, which
    /// [`Self::close`] holds while it moves a transfer from `open` to `done`: a late frame
    /// from another connection never opens an ended transfer again.)
    pub(super) fn entry(
        &self,
        key: TransferKey,
        total: u64,
        dt: DataType,
        prio: Priority,
    ) -> Result<Option<Arc<Mutex<Entry>>>, Refusal> {
        let mut open = self.open.lock();
        if let Some(e) = open.map.get(&key) {
            let e = Arc::clone(e);
            // Never an entry's lock under `open`: `complete` takes them the other way round.
            drop(open);
            e.lock().touched = Instant::now();
            return Ok(Some(e));
        }
        match self.outcome(key) {
            Some(Outcome::Delivered(_)) => return Ok(None),
            Some(Outcome::Refused(reason)) => return Err(reason),
            None => {}
        }
        let (open_peer, open_node) = open.ledger.counts(key.0);
        self.done
            .lock()
            .room(Instant::now(), key.0, open_peer, open_node)
            .map_err(NoRoom::refusal)?;
        let proto = IncomingTransfer::new(total, self.params).map_err(recv_refusal)?;
        let reserved = match self.sink {
            Sink::Memory => total,
            _ => 0,
        };
        if open.ledger.check(key.0, reserved).is_err() {
            self.sweep(&mut open);
            open.ledger
                .check(key.0, reserved)
                .map_err(Overload::refusal)?;
        }
        let store = self.new_store(key, total)?;
        let entry = open.shelter(Entry {
            proto,
            data_type: dt,
            priority: prio,
            name: None,
            store,
            touched: Instant::now(),
            reserved,
            closed: false,
            content: ContentCrc::default(),
        });
        open.map.insert(key, Arc::clone(&entry));
        open.ledger.add(key.0, reserved);
        Ok(Some(entry))
    }

    /// Where a new transfer `key` of `total` bytes keeps its bytes: nowhere, a pooled or
    /// owned buffer, or a temporary file in the store directory.
    fn new_store(&self, key: TransferKey, total: u64) -> Result<Store, Refusal> {
        let store = match &self.sink {
            Sink::Discard => Store::Nowhere,
            Sink::Memory if total as usize <= BUFFER_BYTES_MAX => {
                Store::Pooled(self.pool.take(total as usize))
            }
            Sink::Memory => Store::Memory(vec![0u8; total as usize]),
            Sink::Store(dir) => {
                let tmp = store::part_path(dir, key);
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)
                    .map_err(|e| {
                        Refusal::new(
                            RefusalCode::StoreFailed,
                            format!("cannot store: creating {}: {e}", tmp.display()),
                        )
                    })?;
                Store::File { tmp, file }
            }
        };
        Ok(store)
    }

    /// Drops the transfers whose sender went silent for the transfer deadline (the node's
    /// sweeper calls this periodically; a full table calls it too).
    pub(super) fn sweep_stale(&self) {
        self.sweep(&mut self.open.lock());
    }

    /// Drops every open transfer and its temporary file (the node is stopping).
    pub(super) fn drop_all(&self) {
        self.unread.stop();
        let mut open = self.open.lock();
        for (key, e) in open.map.drain() {
            if let Some(mut e) = e.try_lock_for(Duration::from_millis(100)) {
                remove_tmp(&e.store);
                e.store = Store::Nowhere;
                e.closed = true;
            } else {
                tracing::warn!("transfer {:#x} busy at shutdown: its temporary file may remain until the next start", key.1);
            }
        }
        open.ledger = transfer_ledger();
        open.retired.clear();
    }

    fn sweep(&self, open: &mut OpenTransfers) {
        let now = Instant::now();
        let OpenTransfers { map, ledger, .. } = open;
        map.retain(|key, e| {
            // A busy entry is not stale (and waiting for it under `open` could deadlock).
            let Some(mut e) = e.try_lock() else {
                return true;
            };
            let keep = now.duration_since(e.touched) < self.stale_after;
            if !keep {
                tracing::info!(
                    "dropping stale incoming transfer {:#x} ({} of {} bytes held)",
                    key.1,
                    e.proto.held(),
                    e.proto.total()
                );
                remove_tmp(&e.store);
                e.store = Store::Nowhere;
                e.closed = true;
                ledger.remove(key.0, e.reserved);
            }
            keep
        });
    }

    /// Refuses transfer `e` (locked by the caller) for good: its temporary file goes, and
    /// late frames of it are refused with `refusal` again.
    pub(super) fn abandon(&self, key: TransferKey, e: &mut Entry, refusal: &Refusal) {
        remove_tmp(&e.store);
        e.store = Store::Nowhere;
        self.close(key, e, Outcome::Refused(refusal.clone()));
    }

    /// Ends transfer `e` (locked by the caller): out of `open`, into `done` with `outcome`,
    /// in one step under the `open` lock. Only after this may its FINAL ack go out, so a
    /// sender never hears "complete" before the file is in place.
    pub(super) fn close(&self, key: TransferKey, e: &mut Entry, outcome: Outcome) {
        e.closed = true;
        let mut open = self.open.lock();
        open.remove(key, e.reserved);
        self.done.lock().remember(Instant::now(), key, outcome);
    }

    /// Records a stored transfer as done on disk (before its FINAL ack goes out).
    fn journal_done(&self, key: TransferKey) {
        let mut journal = self.journal.lock();
        if let Some(j) = journal.as_mut() {
            let recent = self.done.lock().keys_oldest_first();
            if let Err(e) = j.record(key, recent.iter()) {
                tracing::warn!(
                    "cannot record transfer {:#x} as done in the store journal ({e}): a crash \
                     before its acknowledgement arrives could store it again",
                    key.1
                );
            }
        }
    }

    /// Claims a transfer that arrived whole in one shared-memory slot, for zero-copy delivery:
    /// true (and remembered as delivered) when this node keeps messages in memory and the
    /// transfer is neither ended nor partly assembled; otherwise the caller takes the copying
    /// path. Decided under the `open` lock, as [`Self::close`] does.
    pub(super) fn claim_whole(&self, key: TransferKey, content_crc: Option<u32>) -> bool {
        if !matches!(self.sink, Sink::Memory) {
            return false;
        }
        let open = self.open.lock();
        if open.map.contains_key(&key) {
            return false;
        }
        let mut done = self.done.lock();
        let now = Instant::now();
        let (open_peer, open_node) = open.ledger.counts(key.0);
        // No room to remember it without forgetting a young entry: `entry` refuses it.
        if done.contains(key) || done.room(now, key.0, open_peer, open_node).is_err() {
            return false;
        }
        done.remember(now, key, Outcome::Delivered(content_crc));
        true
    }

    /// Makes a complete transfer durable (fsync, rename); the caller then [`Self::close`]s it.
    pub(super) fn complete(
        &self,
        key: TransferKey,
        source: crate::NodeName,
        e: &mut Entry,
    ) -> Result<Completed, Refusal> {
        match std::mem::replace(&mut e.store, Store::Nowhere) {
            Store::Nowhere => Ok(Completed::Dropped),
            Store::Memory(v) => Ok(self.message(key, source, e, Payload::Owned(v))),
            Store::Pooled(b) => Ok(self.message(key, source, e, Payload::Pooled(b))),
            Store::File { tmp, file } => {
                let dir = match &self.sink {
                    Sink::Store(d) => d.clone(),
                    _ => {
                        return Err(Refusal::new(
                            RefusalCode::StoreFailed,
                            "internal: file store without a directory",
                        ))
                    }
                };
                let name = e
                    .name
                    .as_deref()
                    .and_then(store::safe_file_name)
                    .unwrap_or_else(|| format!("{source}-{:016x}.bin", key.1));
                let total = e.proto.total();
                let target = store::finish_file(&file, total, &tmp, &dir, &name, self.on_conflict)
                    .map_err(|err| {
                        let _ = std::fs::remove_file(&tmp);
                        Refusal::new(
                            RefusalCode::StoreFailed,
                            format!("cannot store {name}: {err}"),
                        )
                    })?;
                self.journal_done(key);
                Ok(Completed::Stored(target))
            }
        }
    }

    fn message(
        &self,
        key: TransferKey,
        source: crate::NodeName,
        e: &Entry,
        payload: Payload,
    ) -> Completed {
        Completed::Deliver(Message {
            source,
            transfer_id: key.1,
            data_type: e.data_type,
            priority: e.priority,
            name: e.name.clone(),
            transform: Transform::None,
            payload,
        })
    }

    /// What this node does with what it receives, as `NodeMetrics::receives` names it.
    pub(super) fn sink_name(&self) -> &'static str {
        match self.sink {
            Sink::Memory => "memory",
            Sink::Discard => "discard",
            Sink::Store(_) => "store",
        }
    }
}

impl Entry {
    /// Writes a verified chunk where this transfer keeps its bytes.
    pub(super) fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.store {
            Store::Nowhere => Ok(()),
            Store::Memory(buf) => {
                // The protocol checked offset + len <= total == buf.len().
                buf[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
                Ok(())
            }
            Store::Pooled(buf) => {
                // As above: the buffer was taken at the transfer's total length.
                buf.as_mut_slice()[offset as usize..offset as usize + bytes.len()]
                    .copy_from_slice(bytes);
                Ok(())
            }
            Store::File { file, .. } => file.write_all_at(bytes, offset),
        }
    }
}

/// The store directory's journal and the completed transfers it remembers.
fn open_journal(
    sink: &Sink,
    limits: EndedLimits,
) -> (Option<super::journal::DoneJournal>, CompletedMemory) {
    let mut done = CompletedMemory::new(limits);
    let Sink::Store(dir) = sink else {
        return (None, done);
    };
    match super::journal::DoneJournal::open(dir, limits.node_max) {
        Ok((journal, keys)) => {
            // They ended before this process started: past their linger, so they never
            // leave a new transfer without room (and the bounds forget them first).
            let now = Instant::now();
            let ended_at = now.checked_sub(limits.linger).unwrap_or(now);
            for key in keys {
                done.remember(ended_at, key, Outcome::Delivered(None));
            }
            (Some(journal), done)
        }
        Err(e) => {
            tracing::warn!(
                "cannot open the journal of completed transfers in {} ({e}): duplicates are \
                 recognised only while this process runs",
                dir.display()
            );
            (None, done)
        }
    }
}

/// The transfer deadline: an open transfer untouched this long is dropped (its sender has
/// given up: `send_timeout_ms` passed twice).
pub(super) fn stale_after(tuning: &Tuning) -> Duration {
    Duration::from_millis(tuning.send_timeout_ms.saturating_mul(2))
}

fn remove_tmp(store: &Store) {
    if let Store::File { tmp, .. } = store {
        let _ = std::fs::remove_file(tmp);
    }
}

#[cfg(test)]
mod tests;
