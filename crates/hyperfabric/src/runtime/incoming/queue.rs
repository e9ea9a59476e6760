//! The received messages waiting for the application's `recv`: bounded per peer (the
//! unread ledger) and in all (the channel), with backpressure rather than loss.

use super::{IncomingTable, Message, Sink};
use crate::error::{Error, Result};
use std::time::Duration;

impl IncomingTable {
    /// Queues a message for `recv` (the node's `deliver` decides it goes here rather than
    /// straight to a driving receiver). `receiving`: the calling thread is the application's
    /// receiver itself, which must not wait for room it would make.
    pub(in crate::runtime) fn enqueue(&self, msg: Message, receiving: bool) {
        // Waits while this peer has its share unread (backpressure on it alone; never on a
        // thread that is itself the application's receiver, which would wait for itself).
        let (src, bytes) = unread_key(&msg);
        if receiving {
            self.unread.reserve_now(src, bytes);
        } else if !self.unread.reserve(src, bytes) {
            return; // the node is stopping
        }
        // Blocks when the application does not keep up: backpressure, never silent loss.
        if self.tx.send(msg).is_err() {
            self.unread.release(src, bytes);
        }
    }

    /// A message leaves the queue: its peer's unread share shrinks.
    fn taken(&self, msg: Message) -> Message {
        let (src, bytes) = unread_key(&msg);
        self.unread.release(src, bytes);
        msg
    }

    /// `recv` is for in-memory nodes.
    pub(in crate::runtime) fn check_receivable(&self) -> Result<()> {
        if matches!(self.sink, Sink::Discard | Sink::Store(_)) {
            return Err(Error::InvalidArgument(
                "this node discards or stores what it receives; recv is for in-memory nodes".into(),
            ));
        }
        Ok(())
    }

    /// A message already queued, if any.
    pub(in crate::runtime) fn try_recv(
        &self,
    ) -> std::result::Result<Message, crossbeam_channel::TryRecvError> {
        self.rx.try_recv().map(|m| self.taken(m))
    }

    /// Waits on the message channel (the caller checked [`Self::check_receivable`]).
    pub(in crate::runtime) fn recv(&self, timeout: Option<Duration>) -> Result<Message> {
        let got = match timeout {
            None => self.rx.recv().map_err(|_| Error::Shutdown),
            Some(t) => self.rx.recv_timeout(t).map_err(|e| match e {
                crossbeam_channel::RecvTimeoutError::Timeout => Error::Timeout {
                    what: "recv".into(),
                    after: t,
                },
                crossbeam_channel::RecvTimeoutError::Disconnected => Error::Shutdown,
            }),
        };
        got.map(|m| self.taken(m))
    }
}

/// Which peer's unread share a message counts against, and how much of it.
fn unread_key(msg: &Message) -> (u64, u64) {
    (crate::wire::node_key(&msg.source), msg.payload.len() as u64)
}
