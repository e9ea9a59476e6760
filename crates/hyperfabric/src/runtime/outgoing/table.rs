//! The node's table of open outgoing transfers: per transfer, the state the sender's thread
//! and the reader threads that deliver its acks share, and what a lost connection or a
//! shutdown does to every transfer at once.

use super::{idle, paths};
use crate::compress::{AdaptiveCompressor, Algorithm, CompressionPolicy};
use crate::proto::{AckInfo, OutgoingTransfer};
use crate::wire::{Refusal, RefusalCode};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The sender's state shared with the reader threads that deliver acks.
pub(in crate::runtime) struct OutSlot {
    /// The destination: only its acks count.
    pub(super) dst: u64,
    /// First hops of the transfer's paths: losing one of them concerns this transfer.
    pub(super) first_hops: paths::FirstHops,
    pub(super) state: Mutex<OutgoingTransfer>,
    /// Set by readers when something happened (ack, nack, connection lost).
    pub(super) woken: AtomicBool,
    pub(super) lost: AtomicBool,
    pub(super) gate: (Mutex<()>, Condvar),
    /// The name a store directory gave the file (carried by the FINAL ack; docs/wire.md).
    pub(super) stored_as: Mutex<Option<String>>,
    /// CRC32C of the whole content once every byte went out (per-node keys only): a
    /// relayed FINAL ack must sign the same (signed_ack.rs).
    pub(super) content_crc: Mutex<Option<u32>>,
}

impl OutSlot {
    pub(super) fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        idle::notify(&self.gate);
    }
}

/// Finished transfers' slots kept for the next sends: a stream reuses them instead of
/// allocating one per transfer. Bounded: past this many, a returned slot is freed.
const FREE_SLOTS_MAX: usize = 64;

pub(in crate::runtime) struct OutgoingTable {
    pub(super) map: Mutex<HashMap<u64, Arc<OutSlot>>>,
    /// Slots no reader can reach any more (out of `map`), for reuse.
    pub(super) free: Mutex<Vec<Arc<OutSlot>>>,
    /// The node's adaptive compressor (its estimates carry over between transfers).
    pub(super) compressor: Mutex<AdaptiveCompressor>,
}

impl OutgoingTable {
    /// A table whose `Compression::Auto` sends follow `policy` (the file's `[compression]`).
    pub(in crate::runtime) fn new(policy: CompressionPolicy) -> Self {
        OutgoingTable {
            map: Mutex::default(),
            free: Mutex::default(),
            compressor: Mutex::new(AdaptiveCompressor::new(policy)),
        }
    }

    /// The algorithm `Compression::Auto` uses for a transfer whose first chunk is `sample`,
    /// crossing a first hop of `link_gbps`.
    pub(super) fn auto_select(&self, sample: &[u8], link_gbps: f64) -> Algorithm {
        self.compressor
            .lock()
            .auto_select(sample, link_gbps, &mut Instant::now)
            .algorithm
    }

    pub(in crate::runtime) fn on_ack(&self, id: u64, ack: AckInfo, stored_as: Option<String>) {
        if let Some(slot) = self.map.lock().get(&id).cloned() {
            if stored_as.is_some() {
                *slot.stored_as.lock() = stored_as;
            }
            slot.state.lock().on_ack(ack, Instant::now());
            slot.wake();
        }
    }

    pub(in crate::runtime) fn on_nack(
        &self,
        id: u64,
        offset: u64,
        len: u64,
        fatal: Option<Refusal>,
    ) {
        if let Some(slot) = self.map.lock().get(&id).cloned() {
            let mut st = slot.state.lock();
            match fatal {
                Some(refusal) => st.on_refused(refusal),
                None => st.on_nack(offset, len, Instant::now()),
            }
            drop(st);
            slot.wake();
        }
    }

    /// A slot for a new transfer: a returned one when no reader still holds it, else a new one.
    pub(super) fn slot(
        &self,
        dst: u64,
        first_hops: paths::FirstHops,
        state: OutgoingTransfer,
    ) -> Arc<OutSlot> {
        let reused = self.free.lock().pop();
        if let Some(mut slot) = reused {
            // Unique (no reader cloned it from the map before it left): reset it in place.
            if let Some(s) = Arc::get_mut(&mut slot) {
                s.dst = dst;
                s.first_hops = first_hops;
                *s.state.get_mut() = state;
                *s.woken.get_mut() = false;
                *s.lost.get_mut() = false;
                *s.stored_as.get_mut() = None;
                *s.content_crc.get_mut() = None;
                return slot;
            }
        }
        Arc::new(OutSlot {
            dst,
            first_hops,
            state: Mutex::new(state),
            woken: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            gate: (Mutex::new(()), Condvar::new()),
            stored_as: Mutex::new(None),
            content_crc: Mutex::new(None),
        })
    }

    /// Takes transfer `id` out of the table and keeps its slot for reuse.
    pub(super) fn retire(&self, id: u64, slot: &Arc<OutSlot>) {
        self.map.lock().remove(&id);
        let mut free = self.free.lock();
        if free.len() < FREE_SLOTS_MAX {
            free.push(Arc::clone(slot));
        }
    }

    /// The CRC32C of transfer `id`'s content, once all of it was sent (per-node keys only).
    pub(in crate::runtime) fn content_crc(&self, id: u64) -> Option<u32> {
        let slot = self.map.lock().get(&id).cloned()?;
        let crc = *slot.content_crc.lock();
        crc
    }

    /// Transfers being sent now (a queue depth for metrics).
    pub(in crate::runtime) fn in_flight(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether transfer `id` is being sent (to any destination).
    pub(in crate::runtime) fn is_open(&self, id: u64) -> bool {
        self.map.lock().contains_key(&id)
    }

    /// Does `id` belong to a transfer in flight to `dst`? (acks from anyone else are ignored)
    pub(in crate::runtime) fn belongs_to(&self, id: u64, dst: u64) -> bool {
        self.map.lock().get(&id).is_some_and(|s| s.dst == dst)
    }

    pub(in crate::runtime) fn connection_lost(&self, peer: u64) {
        for slot in self
            .map
            .lock()
            .values()
            .filter(|s| s.first_hops.contains(peer))
        {
            slot.lost.store(true, Ordering::Release);
            slot.wake();
        }
    }

    pub(in crate::runtime) fn fail_all(&self) {
        for slot in self.map.lock().values() {
            let why = "the local node is shutting down";
            slot.state
                .lock()
                .on_refused(Refusal::new(RefusalCode::ShuttingDown, why));
            slot.wake();
        }
    }
}
