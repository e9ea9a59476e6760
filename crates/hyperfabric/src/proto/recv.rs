//! The destination's half of a transfer, as a pure state machine: which bytes are held,
//! when to acknowledge, when the transfer is complete. Where bytes are stored is the
//! runtime's business (memory, a file, or nowhere).

use super::ranges::{RangeSet, TooFragmented};
use super::send::AckInfo;

/// Limits a destination puts on one incoming transfer.
#[derive(Debug, Clone, Copy)]
pub struct RecvParams {
    /// Largest transfer accepted.
    pub max_transfer_bytes: u64,
    /// Acknowledge progress after this many new bytes (and always at completion).
    pub ack_every_bytes: u64,
    /// Most separate holes tolerated (bounds memory under reordering or hostility).
    pub max_ranges: usize,
}

/// What the runtime must do with a data chunk that passed its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Store the chunk; `new_bytes` of it were not held before.
    Store { new_bytes: u64 },
    /// Already held entirely; drop it (an ack is due so the sender learns).
    Duplicate,
}

/// Why a chunk is refused; the transfer is abandoned and the sender told (Nack FATAL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    #[error("transfer of {total} bytes exceeds this node's limit of {max} bytes")]
    TooLarge { total: u64, max: u64 },
    #[error("chunk [{offset}, +{len}) lies outside the transfer of {total} bytes")]
    OutOfBounds { offset: u64, len: u64, total: u64 },
    #[error("chunk announces total length {found}, the transfer has {expected}")]
    LengthChanged { expected: u64, found: u64 },
    #[error("transfer is fragmented into more than {max} holes")]
    TooFragmented { max: usize },
}

#[derive(Debug)]
pub struct IncomingTransfer {
    total: u64,
    params: RecvParams,
    held: RangeSet,
    acked_held: u64,
    ack_due: bool,
    final_sent: bool,
}

impl IncomingTransfer {
    /// Opens a transfer announced with `total` bytes.
    pub fn new(total: u64, params: RecvParams) -> Result<Self, RecvError> {
        if total > params.max_transfer_bytes {
            return Err(RecvError::TooLarge {
                total,
                max: params.max_transfer_bytes,
            });
        }
        Ok(IncomingTransfer {
            total,
            params,
            held: RangeSet::new(),
            acked_held: 0,
            ack_due: false,
            final_sent: false,
        })
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn held(&self) -> u64 {
        self.held.covered()
    }

    pub fn is_complete(&self) -> bool {
        self.held.covered() == self.total
    }

    /// Accounts for a checksummed chunk `[offset, offset+len)` of a transfer announced as `total`.
    pub fn on_data(&mut self, offset: u64, len: u64, total: u64) -> Result<Verdict, RecvError> {
        if total != self.total {
            return Err(RecvError::LengthChanged {
                expected: self.total,
                found: total,
            });
        }
        let end = offset
            .checked_add(len)
            .filter(|end| *end <= self.total)
            .ok_or(RecvError::OutOfBounds {
                offset,
                len,
                total: self.total,
            })?;
        if len == 0 || self.held.contains(offset, end) {
            // The empty transfer's announcement, or a resend of bytes we hold.
            self.ack_due = true;
            return Ok(if len == 0 && self.total == 0 {
                Verdict::Store { new_bytes: 0 }
            } else {
                Verdict::Duplicate
            });
        }
        let new_bytes = self
            .held
            .insert(offset, end, self.params.max_ranges)
            .map_err(|TooFragmented| RecvError::TooFragmented {
                max: self.params.max_ranges,
            })?;
        if self.is_complete()
            || self.held.covered() - self.acked_held >= self.params.ack_every_bytes
        {
            self.ack_due = true;
        }
        Ok(Verdict::Store { new_bytes })
    }

    /// The acknowledgement to send now, if one is due. `complete` is only reported once the
    /// runtime says the stored bytes are safe (`stored = true`, e.g. after fsync and rename).
    pub fn poll_ack(&mut self, stored: bool) -> Option<AckInfo> {
        if !self.ack_due {
            return None;
        }
        let complete = self.is_complete() && stored;
        if self.is_complete() && !stored {
            // Completion is acknowledged by the runtime once storage is durable.
            return None;
        }
        self.ack_due = false;
        self.acked_held = self.held.covered();
        self.final_sent |= complete;
        Some(AckInfo {
            contiguous: self.held.contiguous_from_zero(),
            held: self.held.covered(),
            complete,
        })
    }

    /// The FINAL acknowledgement for a completed transfer (also used to answer duplicates
    /// that arrive after completion).
    pub fn final_ack(total: u64) -> AckInfo {
        AckInfo {
            contiguous: total,
            held: total,
            complete: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> RecvParams {
        RecvParams {
            max_transfer_bytes: 1000,
            ack_every_bytes: 40,
            max_ranges: 4,
        }
    }

    #[test]
    fn reassembles_out_of_order_and_acks_at_thresholds() {
        let mut t = IncomingTransfer::new(100, params()).unwrap();
        assert_eq!(t.on_data(50, 25, 100), Ok(Verdict::Store { new_bytes: 25 }));
        assert_eq!(t.poll_ack(true), None);
        assert_eq!(t.on_data(0, 25, 100), Ok(Verdict::Store { new_bytes: 25 }));
        assert_eq!(
            t.poll_ack(true),
            Some(AckInfo {
                contiguous: 25,
                held: 50,
                complete: false
            })
        );
        assert_eq!(t.on_data(0, 25, 100), Ok(Verdict::Duplicate));
        assert!(t.poll_ack(true).is_some(), "a duplicate asks for an ack");
        t.on_data(75, 25, 100).unwrap();
        t.on_data(25, 25, 100).unwrap();
        assert!(t.is_complete());
        assert_eq!(
            t.poll_ack(false),
            None,
            "not final before storage is durable"
        );
        assert_eq!(
            t.poll_ack(true),
            Some(AckInfo {
                contiguous: 100,
                held: 100,
                complete: true
            })
        );
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert_eq!(
            IncomingTransfer::new(1001, params()).unwrap_err(),
            RecvError::TooLarge {
                total: 1001,
                max: 1000
            }
        );
        let mut t = IncomingTransfer::new(100, params()).unwrap();
        assert!(matches!(
            t.on_data(90, 20, 100),
            Err(RecvError::OutOfBounds { .. })
        ));
        assert!(matches!(
            t.on_data(u64::MAX, 2, 100),
            Err(RecvError::OutOfBounds { .. })
        ));
        assert!(matches!(
            t.on_data(0, 10, 99),
            Err(RecvError::LengthChanged { .. })
        ));
        for i in 0..4 {
            t.on_data(i * 10, 1, 100).unwrap();
        }
        assert_eq!(
            t.on_data(60, 1, 100),
            Err(RecvError::TooFragmented { max: 4 })
        );
    }

    #[test]
    fn empty_transfer_completes_on_its_announcement() {
        let mut t = IncomingTransfer::new(0, params()).unwrap();
        assert_eq!(t.on_data(0, 0, 0), Ok(Verdict::Store { new_bytes: 0 }));
        assert!(t.is_complete());
        assert_eq!(t.poll_ack(true), Some(IncomingTransfer::final_ack(0)));
    }
}
