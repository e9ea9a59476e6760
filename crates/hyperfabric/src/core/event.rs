//! What the core hands out: frames to transmit, events for the application, typed errors.

use super::paths::LinkId;
use crate::types::{DataType, Priority};
use crate::wire::{Header, Refusal};
use std::time::Duration;

/// A transfer's id, unique per sending node: the sender's incarnation in the high 32 bits,
/// a counter in the low 32, so a restarted sender never reuses an id a destination
/// remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub u64);

/// One frame to put on a link: the header (its `payload_len` already set) and the payload.
/// The engine encodes it (CRC32C) and sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub link: LinkId,
    pub header: Header,
    pub payload: Vec<u8>,
}

/// What a completed send reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReport {
    pub bytes: u64,
    /// Bytes sent more than once.
    pub retransmitted_bytes: u64,
    /// From the send command to the final ack.
    pub elapsed: Duration,
    /// The neighbours the transfer's chunks left by, in order of first use.
    pub first_hops: Vec<String>,
    /// Times the transfer moved to another path because a link went down.
    pub failovers: u32,
    /// CRC32C of the whole transfer, as the sender computed it.
    pub crc32c: u32,
}

/// Why a transfer ended without its final ack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Refused with a code. `by_destination`: the destination itself refused, so the
    /// transfer was not delivered; a relay's refusal leaves that open (an earlier chunk
    /// may have completed it along another path).
    #[error("refused ({}): {refusal}", if *.by_destination { "by the destination" } else { "by a relay" })]
    Refused {
        refusal: Refusal,
        by_destination: bool,
    },
    /// No progress for the stall timeout, or retransmissions exhausted.
    #[error(
        "timed out after {retransmits} retransmission rounds, {stalled_for:?} without progress"
    )]
    TimedOut {
        retransmits: u32,
        stalled_for: Duration,
    },
    /// Every path to the destination went down.
    #[error("no path left to the destination")]
    Unreachable,
}

impl SendError {
    /// False only when the destination is known not to have delivered the transfer. A
    /// timeout may hide a delivery whose final ack was lost: the caller must treat the
    /// outcome as unknown (the destination delivers a transfer at most once either way).
    pub fn may_have_been_delivered(&self) -> bool {
        !matches!(
            self,
            SendError::Refused {
                by_destination: true,
                ..
            }
        )
    }
}

/// Why a command was refused locally (nothing was sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown destination {0:?}")]
    UnknownDestination(String),
    #[error("no path to {0:?}")]
    Unreachable(String),
    #[error("zone isolation: {0}")]
    ZoneDenied(crate::error::ZoneDenial),
    #[error("{open} transfers (or pings) open, the limit is {max}")]
    TooMany { open: usize, max: usize },
    #[error("transfer of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: u64, max: u64 },
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete transfer arrived (once per transfer, whatever the duplicates).
    Delivered {
        src: String,
        id: TransferId,
        data: Vec<u8>,
        /// CRC32C of the reassembled bytes.
        crc32c: u32,
        data_type: DataType,
        priority: Priority,
    },
    /// The destination acknowledged every byte.
    Sent {
        id: TransferId,
        dst: String,
        report: SendReport,
    },
    Failed {
        id: TransferId,
        dst: String,
        error: SendError,
    },
    Pong {
        dst: String,
        seq: u64,
        rtt: Duration,
    },
    PingTimedOut {
        dst: String,
        seq: u64,
    },
}
