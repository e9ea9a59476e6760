//! Striping a bulk TCP link over several connections (`connections_per_link`): the chunks
//! of the transfers to one peer go out round-robin on up to N TCP connections, each with its
//! own socket buffers, reader thread and congestion window. Nothing above the connection
//! changes: a chunk is a frame of its transfer wherever it travels, the destination
//! reassembles by transfer id and acknowledges on the connection a frame came by, and the
//! sender's window, acks and retransmissions are the transfer's, not a connection's.
//!
//! The extra connections are dialed lazily by the sender that first needs one (a handshake
//! each, as any connection), at most one dial per peer at a time; a failed dial is not
//! retried for [`REDIAL_AFTER`] (the link then runs on the connections it has). Shared-memory
//! links and the urgent lane are never striped. N = 1: this module is not entered.

use super::conn::Lane;
use super::{handshake, Conn, NodeInner, Peer};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stripe whose dial failed is not dialed again before this.
const REDIAL_AFTER: Duration = Duration::from_secs(1);

/// The stripes of every striped link: one entry per peer (bounded by the members), at most
/// `connections_per_link` connections each.
#[derive(Default)]
pub(super) struct Stripes {
    table: Mutex<HashMap<u64, Set>>,
}

#[derive(Default)]
struct Set {
    conns: Vec<Arc<Conn>>,
    next: usize,
    dialing: bool,
    failed_at: Option<Instant>,
}

impl Set {
    /// Drops dead connections and makes sure `main` is one of the stripes.
    fn refresh(&mut self, main: &Arc<Conn>, n: usize) {
        self.conns.retain(|c| c.is_alive());
        if !self.conns.iter().any(|c| Arc::ptr_eq(c, main)) {
            if self.conns.len() >= n {
                self.conns.pop();
            }
            self.conns.insert(0, Arc::clone(main));
        }
    }

    /// Whether this caller should dial one more stripe now.
    fn wants_dial(&self, n: usize, now: Instant) -> bool {
        self.conns.len() < n
            && !self.dialing
            && self.failed_at.is_none_or(|t| now >= t + REDIAL_AFTER)
    }

    /// The next stripe, round-robin, and its index.
    fn pick(&mut self) -> (Arc<Conn>, usize) {
        let i = self.next % self.conns.len().max(1);
        self.next = i + 1;
        (Arc::clone(&self.conns[i]), i)
    }
}

impl NodeInner {
    /// The connection the next chunk to `peer` goes on: `main` itself, or one of the link's
    /// other stripes (dialed here, within `budget`, the first time it is missing), with its
    /// index among them (below `connections_per_link`).
    pub(super) fn stripe(
        self: &Arc<Self>,
        peer: &Peer,
        main: Arc<Conn>,
        lane: Lane,
        budget: Duration,
    ) -> (Arc<Conn>, usize) {
        let n = self.tuning.connections_per_link as usize;
        if n <= 1 || lane != Lane::Bulk || main.is_shm() || main.is_observer() {
            return (main, 0);
        }
        let main = &main;
        let now = Instant::now();
        {
            let mut table = self.stripes.table.lock();
            let set = table.entry(peer.key).or_default();
            set.refresh(main, n);
            if !set.wants_dial(n, now) {
                return set.pick();
            }
            // Dialed without the table's lock: other senders go on with the stripes there are.
            set.dialing = true;
        }
        let dialed = handshake::dial(self, peer, lane, now + budget);
        let mut table = self.stripes.table.lock();
        let set = table.entry(peer.key).or_default();
        set.dialing = false;
        match dialed {
            Ok(conn) if !conn.is_shm() && set.conns.len() < n => set.conns.push(conn),
            Ok(conn) => conn.close("a stripe the link does not need"),
            Err(e) => {
                tracing::debug!(peer = %peer.id, "striping: dial failed, retrying in {REDIAL_AFTER:?}: {e}");
                set.failed_at = Some(now);
            }
        }
        set.refresh(main, n);
        set.pick()
    }
}
