//! The sender's half of a transfer, as a pure state machine.
//!
//! The runtime asks [`OutgoingTransfer::poll_chunk`] what to put on the wire next, feeds it
//! acknowledgements and nacks from the destination, tells it when the connection was lost,
//! and calls [`OutgoingTransfer::handle_timeout`] at [`OutgoingTransfer::poll_timeout`].
//! Time is always an argument; nothing here reads a clock.

use super::{Chunk, Timestamp};
use crate::wire::Refusal;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Knobs of one outgoing transfer (from the profile, or the send's options).
#[derive(Debug, Clone, Copy)]
pub struct SendParams {
    /// Largest chunk put in one data frame.
    pub chunk_len: u64,
    /// Most bytes sent beyond what the destination holds contiguously.
    pub window_bytes: u64,
    /// Silence after which unacknowledged data is sent again.
    pub retransmit_timeout: Duration,
    /// Retransmission rounds without progress before giving up.
    pub max_retransmits: u32,
    /// Longest time without any progress before the transfer fails.
    pub stall_timeout: Duration,
}

/// Why a transfer ended without delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// The destination (or a relay for it) refused it: its code and text.
    Refused(Refusal),
    /// No progress for the stall timeout, or retransmissions exhausted.
    TimedOut {
        retransmits: u32,
        stalled_for: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendState {
    Sending,
    Complete,
    Failed(SendFailure),
}

/// Progress reported by the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckInfo {
    /// Bytes held contiguously from the start.
    pub contiguous: u64,
    /// Bytes held in all.
    pub held: u64,
    /// The destination holds and has verified every byte.
    pub complete: bool,
}

/// Generic over the clock (`T`): the runtime passes `Instant`s, the node core and the
/// simulator a virtual time.
#[derive(Debug)]
pub struct OutgoingTransfer<T: Timestamp = Instant> {
    total: u64,
    params: SendParams,
    /// Next offset to send in order (moves back on go-back-N).
    next: u64,
    /// Highest offset ever sent (to count retransmitted bytes).
    high_water: u64,
    /// Ranges the destination asked for again.
    resend: VecDeque<(u64, u64)>,
    acked: u64,
    /// Bytes the destination reported holding in all.
    held: u64,
    /// The empty transfer still has to announce itself once.
    empty_pending: bool,
    last_progress: T,
    retransmit_at: T,
    rounds: u32,
    retransmitted_bytes: u64,
    state: SendState,
}

impl<T: Timestamp> OutgoingTransfer<T> {
    pub fn new(total: u64, params: SendParams, now: T) -> Self {
        let params = SendParams {
            chunk_len: params.chunk_len.max(1),
            window_bytes: params.window_bytes.max(params.chunk_len.max(1)),
            ..params
        };
        OutgoingTransfer {
            total,
            params,
            next: 0,
            high_water: 0,
            resend: VecDeque::new(),
            acked: 0,
            held: 0,
            empty_pending: total == 0,
            last_progress: now,
            retransmit_at: now + params.retransmit_timeout,
            rounds: 0,
            retransmitted_bytes: 0,
            state: SendState::Sending,
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn state(&self) -> &SendState {
        &self.state
    }

    pub fn retransmitted_bytes(&self) -> u64 {
        self.retransmitted_bytes
    }

    /// The next chunk to transmit now, if the window and the state allow one.
    pub fn poll_chunk(&mut self) -> Option<Chunk> {
        if self.state != SendState::Sending {
            return None;
        }
        if self.empty_pending {
            self.empty_pending = false;
            return Some(Chunk { offset: 0, len: 0 });
        }
        if let Some(chunk) = self.next_resend() {
            return Some(chunk);
        }
        if self.next >= self.total || self.next - self.acked >= self.params.window_bytes {
            return None;
        }
        let len = self.params.chunk_len.min(self.total - self.next);
        let chunk = Chunk {
            offset: self.next,
            len,
        };
        self.next += len;
        if self.next > self.high_water {
            self.high_water = self.next;
        } else {
            self.retransmitted_bytes += len;
        }
        Some(chunk)
    }

    fn next_resend(&mut self) -> Option<Chunk> {
        while let Some((start, end)) = self.resend.pop_front() {
            let start = start.max(self.acked);
            if start >= end {
                continue;
            }
            let len = self.params.chunk_len.min(end - start);
            if start + len < end {
                self.resend.push_front((start + len, end));
            }
            self.retransmitted_bytes += len;
            return Some(Chunk { offset: start, len });
        }
        None
    }

    /// True when everything currently allowed has been handed out (the caller may block).
    pub fn is_window_blocked(&self) -> bool {
        self.state == SendState::Sending
            && !self.empty_pending
            && self.resend.is_empty()
            && (self.next >= self.total || self.next - self.acked >= self.params.window_bytes)
    }

    pub fn on_ack(&mut self, ack: AckInfo, now: T) {
        if self.state != SendState::Sending {
            return;
        }
        let contiguous = ack.contiguous.min(self.total);
        if contiguous > self.acked || ack.held > self.held || ack.complete {
            self.acked = self.acked.max(contiguous);
            self.held = self.held.max(ack.held);
            self.next = self.next.max(self.acked);
            self.progress(now);
        }
        if ack.complete {
            self.state = SendState::Complete;
        }
    }

    /// The destination asks for `[offset, offset+len)` again.
    pub fn on_nack(&mut self, offset: u64, len: u64, now: T) {
        if self.state != SendState::Sending {
            return;
        }
        let end = offset.saturating_add(len).min(self.high_water);
        if offset < end && self.resend.len() < 1024 {
            self.resend.push_back((offset, end));
        }
        self.progress(now);
    }

    /// The destination refused the transfer for good.
    pub fn on_refused(&mut self, refusal: Refusal) {
        if self.state == SendState::Sending {
            self.state = SendState::Failed(SendFailure::Refused(refusal));
        }
    }

    /// The connection carrying this transfer broke: everything unacknowledged goes again.
    pub fn on_connection_lost(&mut self) {
        self.go_back();
    }

    fn go_back(&mut self) {
        self.resend.clear();
        self.next = self.acked;
        if self.total == 0 {
            self.empty_pending = true;
        }
    }

    fn progress(&mut self, now: T) {
        self.last_progress = now;
        self.retransmit_at = now + self.params.retransmit_timeout;
        self.rounds = 0;
    }

    /// When [`Self::handle_timeout`] must be called next, if the transfer is still open.
    pub fn poll_timeout(&self) -> Option<T> {
        match self.state {
            SendState::Sending => Some(
                self.retransmit_at
                    .min(self.last_progress + self.params.stall_timeout),
            ),
            _ => None,
        }
    }

    pub fn handle_timeout(&mut self, now: T) {
        if self.state != SendState::Sending {
            return;
        }
        let stalled_for = now.duration_since_or_zero(self.last_progress);
        if stalled_for >= self.params.stall_timeout
            || (now >= self.retransmit_at && self.rounds >= self.params.max_retransmits)
        {
            self.state = SendState::Failed(SendFailure::TimedOut {
                retransmits: self.rounds,
                stalled_for,
            });
            return;
        }
        if now >= self.retransmit_at {
            self.rounds += 1;
            // Exponential backoff, capped at 2^6 times the base timeout.
            let backoff = self.params.retransmit_timeout * (1u32 << self.rounds.min(6));
            self.retransmit_at = now + backoff;
            self.go_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SendParams {
        SendParams {
            chunk_len: 10,
            window_bytes: 30,
            retransmit_timeout: Duration::from_millis(100),
            max_retransmits: 3,
            stall_timeout: Duration::from_secs(5),
        }
    }

    fn drain(t: &mut OutgoingTransfer) -> Vec<Chunk> {
        std::iter::from_fn(|| t.poll_chunk()).collect()
    }

    #[test]
    fn chunks_respect_the_window_and_complete_on_final_ack() {
        let now = Instant::now();
        let mut t = OutgoingTransfer::new(45, params(), now);
        let first = drain(&mut t);
        assert_eq!(
            first,
            vec![
                Chunk { offset: 0, len: 10 },
                Chunk {
                    offset: 10,
                    len: 10
                },
                Chunk {
                    offset: 20,
                    len: 10
                }
            ]
        );
        assert!(t.is_window_blocked());
        t.on_ack(
            AckInfo {
                contiguous: 20,
                held: 20,
                complete: false,
            },
            now,
        );
        assert_eq!(
            drain(&mut t),
            vec![
                Chunk {
                    offset: 30,
                    len: 10
                },
                Chunk { offset: 40, len: 5 }
            ]
        );
        t.on_ack(
            AckInfo {
                contiguous: 45,
                held: 45,
                complete: true,
            },
            now,
        );
        assert_eq!(t.state(), &SendState::Complete);
        assert_eq!(t.retransmitted_bytes(), 0);
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn empty_transfer_sends_one_empty_chunk() {
        let now = Instant::now();
        let mut t = OutgoingTransfer::new(0, params(), now);
        assert_eq!(drain(&mut t), vec![Chunk { offset: 0, len: 0 }]);
        t.on_connection_lost();
        assert_eq!(drain(&mut t), vec![Chunk { offset: 0, len: 0 }]);
    }

    #[test]
    fn silence_goes_back_to_the_last_ack_then_gives_up() {
        let start = Instant::now();
        let mut t = OutgoingTransfer::new(30, params(), start);
        drain(&mut t);
        t.on_ack(
            AckInfo {
                contiguous: 10,
                held: 10,
                complete: false,
            },
            start,
        );
        let mut now = start;
        for round in 1..=3 {
            now = t.poll_timeout().unwrap();
            t.handle_timeout(now);
            assert_eq!(t.state(), &SendState::Sending, "round {round}");
            assert_eq!(
                drain(&mut t)[0],
                Chunk {
                    offset: 10,
                    len: 10
                }
            );
        }
        now = t.poll_timeout().unwrap().max(now);
        t.handle_timeout(now);
        assert!(matches!(
            t.state(),
            SendState::Failed(SendFailure::TimedOut { retransmits: 3, .. })
        ));
        assert_eq!(t.retransmitted_bytes(), 60);
    }

    #[test]
    fn nack_resends_only_the_range_asked() {
        let now = Instant::now();
        let mut t = OutgoingTransfer::new(30, params(), now);
        drain(&mut t);
        t.on_nack(10, 15, now);
        assert_eq!(
            drain(&mut t),
            vec![
                Chunk {
                    offset: 10,
                    len: 10
                },
                Chunk { offset: 20, len: 5 }
            ]
        );
        let full = Refusal::new(crate::wire::RefusalCode::StoreFailed, "disk full");
        t.on_refused(full.clone());
        assert_eq!(t.state(), &SendState::Failed(SendFailure::Refused(full)));
    }

    #[test]
    fn stall_timeout_bounds_total_silence() {
        let now = Instant::now();
        let p = SendParams {
            max_retransmits: 1000,
            stall_timeout: Duration::from_millis(250),
            ..params()
        };
        let mut t = OutgoingTransfer::new(30, p, now);
        let mut at = now;
        while t.state() == &SendState::Sending {
            at = t.poll_timeout().unwrap();
            t.handle_timeout(at);
        }
        assert!(at - now <= Duration::from_millis(250));
    }
}
