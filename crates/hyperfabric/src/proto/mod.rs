//! The transfer protocol, sans IO: chunking, reassembly, acknowledgement and retransmission
//! as pure state machines driven by the runtime (or by the deterministic simulator).
//!
//! A transfer is cut into chunks of at most `max_packet_size`; each travels in a `Data`
//! frame carrying its offset and the transfer's total length, so the destination can
//! reassemble in any arrival order. The destination acknowledges progress every
//! `ack_every_bytes` and, once it holds every byte (and has stored it safely), sends a
//! `FINAL` ack: `send` returns only after that end-to-end acknowledgement.

pub mod content_crc;
pub mod ranges;
pub mod recv;
pub mod send;

pub use content_crc::ContentCrc;
pub use recv::{IncomingTransfer, RecvError, RecvParams, Verdict};
pub use send::{AckInfo, OutgoingTransfer, SendFailure, SendParams, SendState};

use std::time::{Duration, Instant};

/// A point in time as the machines see it: `Instant` in the runtime, virtual time in the
/// node core and the simulator. The machines never read a clock; `now` is an argument.
pub trait Timestamp: Copy + Ord + std::fmt::Debug + std::ops::Add<Duration, Output = Self> {
    /// `self - earlier`, or zero when `earlier` is later.
    fn duration_since_or_zero(self, earlier: Self) -> Duration;
}

impl Timestamp for Instant {
    fn duration_since_or_zero(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// A piece of a transfer to put in one data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub len: u64,
}
