//! The outgoing transfers: each one's proto machine, its bytes, and the paths its chunks
//! take (spread over up to `paths_max` disjoint first hops; a path whose link goes down is
//! dropped and the unacknowledged bytes go again on the others).

use super::event::{SendError, SendReport, TransferId};
use super::paths::LinkId;
use super::time::Time;
use crate::proto::{AckInfo, Chunk, OutgoingTransfer, SendFailure, SendParams, SendState};
use crate::types::{DataType, Priority};
use crate::wire::Refusal;

#[derive(Debug)]
pub(super) struct Out {
    pub id: TransferId,
    pub dst: u64,
    pub data: Vec<u8>,
    pub data_type: DataType,
    pub priority: Priority,
    machine: OutgoingTransfer<Time>,
    paths: Vec<LinkId>,
    turn: usize,
    first_hops: Vec<LinkId>,
    failovers: u32,
    started: Time,
    crc32c: u32,
    refused_by_destination: bool,
}

/// How a transfer ended.
#[derive(Debug)]
pub(super) enum End {
    Sent(SendReport),
    Failed(SendError),
}

impl Out {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: TransferId,
        dst: u64,
        data: Vec<u8>,
        (data_type, priority): (DataType, Priority),
        params: SendParams,
        paths: Vec<LinkId>,
        now: Time,
    ) -> Out {
        let crc32c = crc32c::crc32c(&data);
        Out {
            id,
            dst,
            machine: OutgoingTransfer::new(data.len() as u64, params, now),
            data,
            data_type,
            priority,
            paths,
            turn: 0,
            first_hops: Vec::new(),
            failovers: 0,
            started: now,
            crc32c,
            refused_by_destination: false,
        }
    }

    /// The next chunk and the link it leaves by (round robin over the paths).
    pub fn poll_chunk(&mut self) -> Option<(LinkId, Chunk)> {
        if self.paths.is_empty() {
            return None;
        }
        let chunk = self.machine.poll_chunk()?;
        let link = self.paths[self.turn % self.paths.len()];
        self.turn = self.turn.wrapping_add(1);
        if !self.first_hops.contains(&link) {
            self.first_hops.push(link);
        }
        Some((link, chunk))
    }

    pub fn on_ack(&mut self, ack: AckInfo, now: Time) {
        self.machine.on_ack(ack, now);
    }

    pub fn on_nack(&mut self, offset: u64, len: u64, now: Time) {
        self.machine.on_nack(offset, len, now);
    }

    pub fn on_refused(&mut self, refusal: Refusal, by_destination: bool) {
        self.refused_by_destination = by_destination;
        self.machine.on_refused(refusal);
    }

    pub fn uses(&self, link: LinkId) -> bool {
        self.paths.contains(&link)
    }

    /// `link` went down: drop it from the paths, take `fresh` ones if none is left, and
    /// send everything unacknowledged again. False when no path is left.
    pub fn fail_over(&mut self, link: LinkId, fresh: Vec<LinkId>) -> bool {
        self.paths.retain(|l| *l != link);
        if self.paths.is_empty() {
            self.paths = fresh;
        }
        self.failovers += 1;
        self.machine.on_connection_lost();
        !self.paths.is_empty()
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        self.machine.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Time) {
        self.machine.handle_timeout(now);
    }

    /// The end of the transfer, once it has one; `names` turns links into neighbours.
    pub fn end(&self, now: Time, names: impl Fn(LinkId) -> String) -> Option<End> {
        match self.machine.state() {
            SendState::Sending => None,
            SendState::Complete => Some(End::Sent(SendReport {
                bytes: self.machine.total(),
                retransmitted_bytes: self.machine.retransmitted_bytes(),
                elapsed: now.since(self.started),
                first_hops: self.first_hops.iter().map(|l| names(*l)).collect(),
                failovers: self.failovers,
                crc32c: self.crc32c,
            })),
            SendState::Failed(SendFailure::Refused(r)) => Some(End::Failed(SendError::Refused {
                refusal: r.clone(),
                by_destination: self.refused_by_destination,
            })),
            SendState::Failed(SendFailure::TimedOut {
                retransmits,
                stalled_for,
            }) => Some(End::Failed(SendError::TimedOut {
                retransmits: *retransmits,
                stalled_for: *stalled_for,
            })),
        }
    }
}
