//! Peers that refused this node after the handshake. The dialer does not wait for the
//! acceptor's verdict on its key proof (that would cost a round trip per connection), so a
//! peer that rejects the proof answers with a Reject on a connection the dialer already
//! uses. Remembering that answer for a moment lets the next dial fail at once with the
//! peer's reason instead of re-dialing (and being refused again) until the send times out.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a refusal stands: longer than a re-dial takes, short enough that a peer whose
/// keys were fixed is dialed again soon.
const REMEMBERED: Duration = Duration::from_secs(2);
/// At most this many peers remembered (members of the topology, in practice far fewer).
const CAPACITY: usize = 1024;

#[derive(Default)]
pub(super) struct Refusals {
    by_peer: Mutex<HashMap<u64, (Instant, String)>>,
}

impl Refusals {
    pub fn note(&self, peer: u64, reason: &str) {
        let now = Instant::now();
        let mut map = self.by_peer.lock();
        if map.len() >= CAPACITY {
            map.retain(|_, (at, _)| now.duration_since(*at) < REMEMBERED);
        }
        if map.len() < CAPACITY {
            map.insert(peer, (now, reason.to_owned()));
        }
    }

    /// The reason `peer` gave, if it refused this node in the last moments.
    pub fn recent(&self, peer: u64) -> Option<String> {
        let map = self.by_peer.lock();
        let (at, why) = map.get(&peer)?;
        (at.elapsed() < REMEMBERED).then(|| why.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_remembered_per_peer_and_bounded() {
        let r = Refusals::default();
        r.note(1, "bad key");
        assert_eq!(r.recent(1).as_deref(), Some("bad key"));
        assert_eq!(r.recent(2), None);
        for k in 0..(CAPACITY as u64 + 10) {
            r.note(k + 100, "x");
        }
        assert!(r.by_peer.lock().len() <= CAPACITY);
    }
}
