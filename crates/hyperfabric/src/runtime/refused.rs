//! Peers that refused this node's proof of its credentials. The dialer does not wait for the
//! acceptor's verdict on its `Auth` proof (that would cost a round trip per connection), so a
//! peer that rejects the proof answers with a `Reject` (code `PROOF_REFUSED`) on a connection
//! the dialer already uses. Remembering that answer lets the next dial fail at once with the
//! peer's reason instead of re-dialing (and being refused again) until the send's deadline.
//! Only that code is remembered: any other Reject (a second connection on simultaneous dials,
//! a full handshake table) refuses one connection, not the next.

use super::NodeInner;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The first refusal stands this long: longer than a re-dial takes.
const HOLD_FIRST: Duration = Duration::from_secs(2);
/// Refusals in a row double the hold up to this, so a node whose keys were fixed is dialed
/// again within half a minute.
const HOLD_MAX: Duration = Duration::from_secs(30);
/// A refusal this long after the last one's hold ended starts again at `HOLD_FIRST`.
const FORGIVEN_AFTER: Duration = Duration::from_secs(60);
/// At most this many peers remembered (members of the topology, in practice far fewer).
const CAPACITY: usize = 1024;

struct Entry {
    at: Instant,
    hold: Duration,
    reason: String,
}

#[derive(Default)]
pub(super) struct Refusals {
    by_peer: Mutex<HashMap<u64, Entry>>,
}

impl Refusals {
    /// `peer` refused this node's proof, for `reason`: how long it is not dialed again.
    pub fn note(&self, peer: u64, reason: &str) -> Duration {
        let now = Instant::now();
        let mut map = self.by_peer.lock();
        let hold = match map.get(&peer) {
            Some(e) if now.duration_since(e.at) < e.hold + FORGIVEN_AFTER => {
                (e.hold * 2).min(HOLD_MAX)
            }
            _ => HOLD_FIRST,
        };
        if map.len() >= CAPACITY && !map.contains_key(&peer) {
            map.retain(|_, e| now.duration_since(e.at) < e.hold + FORGIVEN_AFTER);
        }
        if map.len() < CAPACITY || map.contains_key(&peer) {
            let reason = reason.to_owned();
            map.insert(
                peer,
                Entry {
                    at: now,
                    hold,
                    reason,
                },
            );
        }
        hold
    }

    /// The reason `peer` gave, while its refusal stands.
    pub fn recent(&self, peer: u64) -> Option<String> {
        let map = self.by_peer.lock();
        let e = map.get(&peer)?;
        let left = e.hold.checked_sub(e.at.elapsed())?;
        Some(format!(
            "{} (not dialed again for {:.1} s)",
            e.reason,
            left.as_secs_f64()
        ))
    }
}

impl NodeInner {
    /// `peer` answered this node's proof with `Reject(PROOF_REFUSED, body)`: remembered, and
    /// the reason to end the connection with.
    pub(super) fn proof_refused(&self, peer: &str, peer_key: u64, body: &[u8]) -> String {
        let why = format!(
            "{peer} refused this node: {}",
            String::from_utf8_lossy(body)
        );
        let hold = self.refused.note(peer_key, &why);
        tracing::warn!(%peer, "{why} (not dialed again for {} s)", hold.as_secs());
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_remembered_per_peer_with_backoff_and_bounded() {
        let r = Refusals::default();
        assert_eq!(r.note(1, "bad key"), HOLD_FIRST);
        assert!(r.recent(1).is_some_and(|w| w.starts_with("bad key")));
        assert_eq!(r.recent(2), None);
        // Again and again: the hold doubles, up to HOLD_MAX.
        assert_eq!(r.note(1, "bad key"), HOLD_FIRST * 2);
        for _ in 0..10 {
            r.note(1, "bad key");
        }
        assert_eq!(r.note(1, "bad key"), HOLD_MAX);
        for k in 0..(CAPACITY as u64 + 10) {
            r.note(k + 100, "x");
        }
        assert!(r.by_peer.lock().len() <= CAPACITY);
        assert!(r.recent(1).is_some(), "a known peer keeps its entry");
    }
}
