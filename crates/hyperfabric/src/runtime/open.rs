//! What the destination holds for its peers: the open transfers (with what each peer has of
//! them) and the received messages the application has not read yet (per peer as well).
//!
//! Every limit here is per peer as well as per node, so one peer, however busy or hostile,
//! can take at most its share and never refuse or stall another peer's transfers:
//!
//! | what                               | per peer                          | per node                     |
//! |------------------------------------|-----------------------------------|------------------------------|
//! | open (half-received) transfers     | [`MAX_OPEN_TRANSFERS_PER_PEER`]   | [`MAX_OPEN_TRANSFERS`]       |
//! | bytes announced for in-memory      | [`MAX_REASSEMBLY_BYTES_PER_PEER`] | [`MAX_REASSEMBLY_BYTES`]     |
//! | received messages not yet read     | [`MAX_UNREAD_PER_PEER`]           | `RECV_QUEUE` (incoming.rs)   |
//! | bytes of messages not yet read     | [`MAX_UNREAD_BYTES_PER_PEER`]     | [`MAX_UNREAD_BYTES`]         |
//!
//! An open transfer nobody touched for the transfer deadline (twice `send_timeout_ms`: its
//! sender has given up by then) is dropped by the node's sweeper, temporary file and all.

pub use crate::core::admission::{Ledger, Load, Overload};
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Transfers open at once on one node.
pub const MAX_OPEN_TRANSFERS: usize = 1024;
/// Transfers open at once from one peer (a quarter of the node's).
pub const MAX_OPEN_TRANSFERS_PER_PEER: usize = MAX_OPEN_TRANSFERS / 4;
/// Bytes one peer's open in-memory transfers may announce together: one largest in-memory
/// transfer (`MAX_IN_MEMORY_BYTES`).
pub const MAX_REASSEMBLY_BYTES_PER_PEER: u64 = 4 << 30;
/// Bytes all open in-memory transfers may announce together.
pub const MAX_REASSEMBLY_BYTES: u64 = 4 * MAX_REASSEMBLY_BYTES_PER_PEER;
/// Received messages of one peer waiting for `recv`; past it that peer's reader waits
/// (backpressure on that peer alone, the shared queue stays open to the others).
pub const MAX_UNREAD_PER_PEER: usize = 256;
/// Bytes of one peer's received messages waiting for `recv` (one message always fits).
pub const MAX_UNREAD_BYTES_PER_PEER: u64 = 256 << 20;
/// Bytes of all received messages waiting for `recv` (one message always fits).
pub const MAX_UNREAD_BYTES: u64 = 1 << 30;
/// How often a reader waiting for room re-checks that the node still runs.
const UNREAD_WAIT: Duration = Duration::from_millis(100);

/// The ledger of open transfers (keyed by source node key).
pub fn transfer_ledger() -> Ledger<u64> {
    Ledger::new(
        Load {
            count: MAX_OPEN_TRANSFERS_PER_PEER,
            bytes: MAX_REASSEMBLY_BYTES_PER_PEER,
        },
        Load {
            count: MAX_OPEN_TRANSFERS,
            bytes: MAX_REASSEMBLY_BYTES,
        },
    )
}

/// Received messages not read yet, per source: a reader waits while its peer is over.
pub struct Unread {
    ledger: Mutex<Ledger<u64>>,
    room: Condvar,
    stopped: AtomicBool,
}

impl Unread {
    pub fn new(node_messages: usize) -> Self {
        Unread {
            ledger: Mutex::new(Ledger::new(
                Load {
                    count: MAX_UNREAD_PER_PEER,
                    bytes: MAX_UNREAD_BYTES_PER_PEER,
                },
                Load {
                    count: node_messages,
                    bytes: MAX_UNREAD_BYTES,
                },
            )),
            room: Condvar::new(),
            stopped: AtomicBool::new(false),
        }
    }

    /// Waits until `peer` may queue a message of `bytes` and counts it; false when the node
    /// stopped while waiting.
    pub fn reserve(&self, peer: u64, bytes: u64) -> bool {
        let mut ledger = self.ledger.lock();
        while ledger.check(peer, bytes).is_err() {
            if self.stopped.load(Ordering::Acquire) {
                return false;
            }
            self.room.wait_for(&mut ledger, UNREAD_WAIT);
        }
        ledger.add(peer, bytes);
        true
    }

    /// Counts a message without waiting (a receiving thread cannot wait for itself).
    pub fn reserve_now(&self, peer: u64, bytes: u64) {
        self.ledger.lock().add(peer, bytes);
    }

    /// A message of `peer` was read (or never queued after all).
    pub fn release(&self, peer: u64, bytes: u64) {
        self.ledger.lock().remove(peer, bytes);
        self.room.notify_all();
    }

    /// Wakes every waiting reader for good (the node is stopping).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.room.notify_all();
    }

    #[cfg(test)]
    pub fn of(&self, peer: u64) -> Load {
        self.ledger.lock().of(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_cannot_take_the_whole_node() {
        let mut l = transfer_ledger();
        for _ in 0..MAX_OPEN_TRANSFERS_PER_PEER {
            l.check(1, 10).unwrap();
            l.add(1, 10);
        }
        let why = l.check(1, 10).unwrap_err();
        assert_eq!(
            why,
            Overload::PeerCount {
                max: MAX_OPEN_TRANSFERS_PER_PEER
            }
        );
        assert!(why.to_string().contains("from this peer"), "{why}");
        l.check(2, 10).expect("another peer still gets in");
        l.remove(1, 10);
        l.check(1, 10).expect("room again after one ended");
        assert_eq!(l.of(1).count, MAX_OPEN_TRANSFERS_PER_PEER - 1);
    }

    #[test]
    fn reassembly_bytes_are_bounded_per_peer_but_one_transfer_always_fits() {
        let mut l = transfer_ledger();
        l.check(1, MAX_REASSEMBLY_BYTES_PER_PEER).unwrap();
        l.add(1, MAX_REASSEMBLY_BYTES_PER_PEER);
        assert!(l
            .check(1, 1)
            .unwrap_err()
            .to_string()
            .contains("reassembly"));
        l.check(2, MAX_REASSEMBLY_BYTES_PER_PEER).unwrap();
    }

    #[test]
    fn an_unread_reader_waits_for_its_own_peer_only() {
        let u = Unread::new(1024);
        for _ in 0..MAX_UNREAD_PER_PEER {
            assert!(u.reserve(1, 1));
        }
        assert!(u.reserve(2, 1), "another peer is not held up");
        std::thread::scope(|s| {
            let waiter = s.spawn(|| u.reserve(1, 1));
            u.release(1, 1);
            assert!(waiter.join().unwrap());
        });
        assert_eq!(u.of(1).count, MAX_UNREAD_PER_PEER);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| u.reserve(1, 1));
            u.stop();
            assert!(!waiter.join().unwrap(), "a stopped node wakes its readers");
        });
    }
}
