//! The incoming transfers: reassembly into a buffer, the limits per peer and per node, and
//! the memory of finished transfers that makes delivery exactly once.

use super::admission::{recv_refusal, Ledger, Load, Overload};
use super::ended::{Ended, EndedLimits, SourceFull};
use super::time::Time;
use super::Limits;
use crate::proto::{AckInfo, IncomingTransfer, RecvError, RecvParams, Verdict};
use crate::wire::{Header, Refusal};
use std::collections::HashMap;
use std::time::Duration;

/// (source node key, transfer id): a transfer's identity at its destination.
pub(super) type Key = (u64, u64);

#[derive(Debug)]
struct Open {
    machine: IncomingTransfer,
    buf: Vec<u8>,
    last_seen: Time,
}

/// What the node must do after a data frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Nothing (an ack is not due yet).
    Quiet,
    /// Send this ack to the source.
    Ack(AckInfo),
    /// The transfer is complete: deliver these bytes, then send the final ack.
    Complete(Vec<u8>),
    /// Refuse the transfer (Nack FATAL).
    Refuse(Refusal),
}

#[derive(Debug)]
pub(super) struct Incoming {
    params: RecvParams,
    limits: Limits,
    idle: Duration,
    open: HashMap<Key, Open>,
    /// Open transfers and their buffers' bytes, per source and in all.
    ledger: Ledger<u64>,
    /// Finished transfers and their total, kept at least `linger` after completion so a
    /// late duplicate is answered with a final ack instead of delivered again.
    finished: Ended<Time, u64>,
}

impl Incoming {
    pub fn new(params: RecvParams, limits: Limits, idle: Duration, linger: Duration) -> Self {
        Incoming {
            params,
            limits,
            idle,
            open: HashMap::new(),
            ledger: ledger(&limits),
            finished: Ended::new(EndedLimits {
                per_peer_max: limits.finished_per_peer_max,
                node_max: limits.finished_max,
                linger,
                source_full: SourceFull::Refuse,
            }),
        }
    }

    /// Forgets everything a crash loses; the record of finished transfers stays (it is
    /// kept with the delivered data, which a restart does not lose either).
    pub fn crash(&mut self) {
        self.open.clear();
        self.ledger = ledger(&self.limits);
    }

    /// Accounts for a data frame of `src` that passed its CRC.
    pub fn on_data(&mut self, now: Time, h: &Header, payload: &[u8]) -> Outcome {
        let key = (h.src, h.transfer_id);
        if let Some(&total) = self.finished.get(key) {
            return Outcome::Ack(IncomingTransfer::final_ack(total));
        }
        if let Err(refusal) = self.admit(now, key, h.aux) {
            return Outcome::Refuse(refusal);
        }
        let Some(open) = self.open.get_mut(&key) else {
            return Outcome::Quiet;
        };
        open.last_seen = now;
        let len = payload.len() as u64;
        match open.machine.on_data(h.offset, len, h.aux) {
            Ok(Verdict::Store { new_bytes }) if new_bytes > 0 => {
                // on_data checked offset + len <= total = buf.len().
                let at = h.offset as usize;
                open.buf[at..at + payload.len()].copy_from_slice(payload);
            }
            Ok(_) => {}
            Err(e) => return Outcome::Refuse(self.abandon(key, e)),
        }
        if open.machine.is_complete() {
            return Outcome::Complete(self.finish(now, key));
        }
        open.machine
            .poll_ack(true)
            .map_or(Outcome::Quiet, Outcome::Ack)
    }

    /// Opens the transfer if it is new and fits every limit.
    fn admit(&mut self, now: Time, key: Key, total: u64) -> Result<(), Refusal> {
        if self.open.contains_key(&key) {
            return Ok(());
        }
        let (open_peer, open_node) = self.ledger.counts(key.0);
        self.finished
            .room(now, key.0, open_peer, open_node)
            .map_err(|full| full.refusal())?;
        self.ledger.check(key.0, total).map_err(Overload::refusal)?;
        let machine = IncomingTransfer::new(total, self.params).map_err(recv_refusal)?;
        // total <= max_transfer_bytes, checked by IncomingTransfer::new.
        let buf = vec![0u8; total as usize];
        self.ledger.add(key.0, total);
        self.open.insert(
            key,
            Open {
                machine,
                buf,
                last_seen: Time::ZERO,
            },
        );
        Ok(())
    }

    fn abandon(&mut self, key: Key, e: RecvError) -> Refusal {
        if let Some(open) = self.open.remove(&key) {
            self.ledger.remove(key.0, open.buf.len() as u64);
        }
        recv_refusal(e)
    }

    fn finish(&mut self, now: Time, key: Key) -> Vec<u8> {
        let Some(open) = self.open.remove(&key) else {
            return Vec::new();
        };
        self.ledger.remove(key.0, open.buf.len() as u64);
        self.finished.remember(now, key, open.machine.total());
        open.buf
    }

    /// Drops reassemblies idle for too long (their sender gave up or crashed) and forgets
    /// finished transfers older than the linger time.
    pub fn handle_timeout(&mut self, now: Time) {
        let (idle, ledger) = (self.idle, &mut self.ledger);
        self.open.retain(|key, o| {
            let keep = now.since(o.last_seen) < idle;
            if !keep {
                ledger.remove(key.0, o.buf.len() as u64);
            }
            keep
        });
        self.finished.expire(now);
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        let idle = self.open.values().map(|o| o.last_seen + self.idle).min();
        idle.into_iter().chain(self.finished.next_expiry()).min()
    }

    /// Whether transfer `id` of `src` is open or finished (remembered).
    pub fn knows(&self, src: u64, id: u64) -> bool {
        self.open.contains_key(&(src, id)) || self.finished.contains((src, id))
    }
}

/// The admission ledger of `limits`: no per-peer byte limit of its own (the node's
/// reassembly bytes bound each peer too).
fn ledger(limits: &Limits) -> Ledger<u64> {
    let peer = Load {
        count: limits.incoming_per_peer_max,
        bytes: limits.reassembly_bytes_max,
    };
    let node = Load {
        count: limits.incoming_max,
        bytes: limits.reassembly_bytes_max,
    };
    Ledger::new(peer, node)
}
