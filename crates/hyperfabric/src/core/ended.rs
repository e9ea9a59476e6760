//! The memory of ended transfers: what a destination remembers of a transfer after it was
//! delivered (or refused for good) so that a late duplicate of one of its frames is
//! answered again (the final ack, or the refusal) instead of delivered a second time.
//!
//! One policy for every receive path, the core's and the runtime's (TCP, TLS and
//! shared-memory links all reach it):
//! - an ended transfer is kept at least `linger` (the longest its sender may still send a
//!   frame of it, plus the longest a frame can be delayed);
//! - at most `per_peer_max` are kept per source and `node_max` in all; remembering one more
//!   forgets the source's oldest (per-peer bound) or the node's oldest (node bound);
//! - [`Ended::room`] tells the admission of a new transfer whether it could be remembered
//!   when it ends without forgetting an entry younger than `linger`: a peer that finishes
//!   transfers faster than its bound allows is refused (`TooManyTransfers`), it cannot push
//!   another peer's young entries out.
//!
//! With `linger` zero nothing is young: the bounds alone decide, the oldest is forgotten.
//! Time is any [`Timestamp`] (`core::Time` in the core, `Instant` in the runtime).

use crate::proto::Timestamp;
use crate::wire::{Refusal, RefusalCode};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

/// (source node key, transfer id): a transfer's identity at its destination.
pub type Key = (u64, u64);

/// The bounds of one node's memory of ended transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndedLimits {
    /// Ended transfers remembered per source.
    pub per_peer_max: usize,
    /// Ended transfers remembered in all.
    pub node_max: usize,
    /// How long an ended transfer is kept at least (zero: only the bounds decide).
    pub linger: Duration,
    /// What a source that reached `per_peer_max` young entries gets.
    pub source_full: SourceFull,
}

/// What happens when one source has `per_peer_max` entries younger than the linger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFull {
    /// Its new transfers are refused: no duplicate within the linger is ever delivered twice.
    Refuse,
    /// It forgets its own oldest entry (counted in `forgotten_young`): an honest source that
    /// ends transfers faster than its bound per linger is served, and only its own late
    /// duplicates are at risk, never another source's (the node bound still refuses).
    ForgetOwnOldest,
}

/// Why a new transfer could not be remembered when it ends (it is refused instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    Peer { max: usize },
    Node { max: usize },
}

impl NoRoom {
    /// The refusal a transfer opened without room is sent back with.
    pub fn refusal(self) -> Refusal {
        Refusal::new(RefusalCode::TooManyTransfers, self.to_string())
    }
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (max, whose) = match self {
            NoRoom::Peer { max } => (max, "from this source"),
            NoRoom::Node { max } => (max, "in all"),
        };
        write!(
            f,
            "{max} ended transfers {whose} remembered, none old enough to forget yet"
        )
    }
}

#[derive(Debug)]
struct Remembered<O> {
    /// Order of remembering, node-wide (the journal keeps the newest).
    seq: u64,
    outcome: O,
}

/// An entry remembered less than `linger` ago, or one forgotten since (stale: its `seq` is
/// no longer the map's for `key`).
#[derive(Debug)]
struct Young<T> {
    at: T,
    key: Key,
    seq: u64,
}

/// The ended transfers of one node, with their outcome `O`.
#[derive(Debug)]
pub struct Ended<T, O> {
    limits: EndedLimits,
    map: HashMap<Key, Remembered<O>>,
    /// Per source: (ended at, transfer id), oldest first.
    peers: HashMap<u64, VecDeque<(T, u64)>>,
    /// The entries of the last `linger`, node-wide, oldest first (in `seq` order); stale ones
    /// are dropped as they age, or all at once past [`Self::young_cap`].
    young: VecDeque<Young<T>>,
    /// Remembered entries younger than `linger` (those of `young` not stale): what
    /// [`Ended::room`] counts, kept as entries come, age and go instead of summed per call.
    young_count: usize,
    seq: u64,
    /// Entries younger than `linger` forgotten for room (a caller that did not ask
    /// [`Ended::room`] first, or a restart's journal): duplicates of them may be delivered.
    forgotten_young: u64,
}

impl<T: Timestamp, O> Ended<T, O> {
    pub fn new(limits: EndedLimits) -> Self {
        Ended {
            limits,
            map: HashMap::new(),
            peers: HashMap::new(),
            young: VecDeque::new(),
            young_count: 0,
            seq: 0,
            forgotten_young: 0,
        }
    }

    pub fn limits(&self) -> EndedLimits {
        self.limits
    }

    /// How transfer `key` ended, if it did and is still remembered.
    pub fn get(&self, key: Key) -> Option<&O> {
        self.map.get(&key).map(|r| &r.outcome)
    }

    pub fn contains(&self, key: Key) -> bool {
        self.map.contains_key(&key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries forgotten before their linger ran out (see the field).
    pub fn forgotten_young(&self) -> u64 {
        self.forgotten_young
    }

    /// Whether a new transfer of `src` can be remembered when it ends, with `open_peer`
    /// transfers of `src` and `open_node` in all already open (each will need room too),
    /// without forgetting an entry younger than `linger`.
    pub fn room(
        &mut self,
        now: T,
        src: u64,
        open_peer: usize,
        open_node: usize,
    ) -> Result<(), NoRoom> {
        self.age(now);
        if self.limits.source_full == SourceFull::Refuse {
            let young_peer = self.peers.get(&src).map_or(0, |q| self.young_of(now, q));
            if young_peer + open_peer >= self.limits.per_peer_max {
                let max = self.limits.per_peer_max;
                return Err(NoRoom::Peer { max });
            }
        }
        if self.young_count + open_node >= self.limits.node_max {
            let max = self.limits.node_max;
            return Err(NoRoom::Node { max });
        }
        Ok(())
    }

    /// Remembers that `key` ended now with `outcome` (replacing an earlier outcome), then
    /// forgets the oldest entries beyond the bounds.
    pub fn remember(&mut self, now: T, key: Key, outcome: O) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(r) = self.map.get_mut(&key) {
            r.outcome = outcome;
            return;
        }
        self.age(now);
        self.map.insert(key, Remembered { seq, outcome });
        if !self.limits.linger.is_zero() {
            self.young.push_back(Young { at: now, key, seq });
            self.young_count += 1;
            if self.young.len() > self.young_cap() {
                let map = &self.map;
                self.young
                    .retain(|y| map.get(&y.key).is_some_and(|r| r.seq == y.seq));
            }
        }
        let q = self.peers.entry(key.0).or_default();
        q.push_back((now, key.1));
        if q.len() > self.limits.per_peer_max {
            self.forget_oldest_of(now, key.0);
        }
        while self.map.len() > self.limits.node_max {
            let Some(src) = self.oldest_peer() else { break };
            self.forget_oldest_of(now, src);
        }
    }

    /// Forgets the entries older than `linger` (a caller with a clock calls this on its
    /// timeouts, so the memory shrinks when traffic stops).
    pub fn expire(&mut self, now: T) {
        self.age(now);
        let linger = self.limits.linger;
        let first_young = self.young.front().map(|y| y.seq);
        let (map, young_count) = (&mut self.map, &mut self.young_count);
        self.peers.retain(|&src, q| {
            while let Some(&(at, id)) = q.front() {
                if now < at + linger {
                    break;
                }
                q.pop_front();
                if let Some(r) = map.remove(&(src, id)) {
                    *young_count -= usize::from(first_young.is_some_and(|f| r.seq >= f));
                }
            }
            !q.is_empty()
        });
    }

    /// When [`Ended::expire`] next has something to forget.
    pub fn next_expiry(&self) -> Option<T> {
        let oldest = self
            .peers
            .values()
            .filter_map(|q| q.front())
            .map(|&(at, _)| at);
        oldest.min().map(|at| at + self.limits.linger)
    }

    /// Every remembered key, the oldest remembered first.
    pub fn keys_oldest_first(&self) -> Vec<Key> {
        let mut keys: Vec<(u64, Key)> = self.map.iter().map(|(k, r)| (r.seq, *k)).collect();
        keys.sort_unstable();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    fn old(&self, now: T, at: T) -> bool {
        at + self.limits.linger <= now
    }

    /// Entries of source queue `q` younger than `linger` at `now`.
    fn young_of(&self, now: T, q: &VecDeque<(T, u64)>) -> usize {
        match self.limits.linger.is_zero() {
            true => 0,
            false => q.len() - q.partition_point(|&(at, _)| self.old(now, at)),
        }
    }

    /// Ages the records of `young` that are `linger` old at `now`.
    fn age(&mut self, now: T) {
        while let Some(y) = self.young.front() {
            if !self.old(now, y.at) {
                break;
            }
            let current = self.map.get(&y.key).is_some_and(|r| r.seq == y.seq);
            self.young_count -= usize::from(current);
            self.young.pop_front();
        }
    }

    /// Records `young` may hold, stale ones included, before they are dropped at once (one
    /// pass over it per `node_max / 4` remembered: constant time per entry).
    fn young_cap(&self) -> usize {
        self.limits.node_max + self.limits.node_max / 4 + 64
    }

    /// Takes the young count down if the forgotten entry `r` was still counted young.
    fn forgot(&mut self, r: &Remembered<O>) {
        if self.young.front().is_some_and(|f| r.seq >= f.seq) {
            self.young_count -= 1;
        }
    }

    /// The source whose oldest entry is the node's oldest.
    fn oldest_peer(&self) -> Option<u64> {
        let fronts = self
            .peers
            .iter()
            .filter_map(|(src, q)| q.front().map(|f| (f.0, *src)));
        fronts.min().map(|(_, src)| src)
    }

    fn forget_oldest_of(&mut self, now: T, src: u64) {
        let Some(q) = self.peers.get_mut(&src) else {
            return;
        };
        let popped = q.pop_front();
        if q.is_empty() {
            self.peers.remove(&src);
        }
        if let Some((at, id)) = popped {
            if let Some(r) = self.map.remove(&(src, id)) {
                self.forgot(&r);
            }
            if at + self.limits.linger > now {
                self.forgotten_young += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Time;

    fn ended(per_peer_max: usize, node_max: usize, linger_ms: u64) -> Ended<Time, u32> {
        Ended::new(EndedLimits {
            per_peer_max,
            node_max,
            linger: Duration::from_millis(linger_ms),
            source_full: SourceFull::Refuse,
        })
    }

    fn ms(n: u64) -> Time {
        Time::from_nanos(n * 1_000_000)
    }

    #[test]
    fn a_peer_forgets_its_own_oldest_first_never_another_peers() {
        let mut e = ended(2, 3, 0);
        e.remember(ms(1), (1, 10), 0);
        e.remember(ms(2), (2, 20), 0);
        e.remember(ms(3), (1, 11), 0);
        e.remember(ms(4), (1, 12), 0);
        assert!(
            !e.contains((1, 10)),
            "source 1 is over its bound: its oldest goes"
        );
        assert!(e.contains((2, 20)) && e.contains((1, 11)) && e.contains((1, 12)));
        e.remember(ms(5), (3, 30), 0);
        assert_eq!(e.len(), 3, "node bound");
        assert!(!e.contains((2, 20)), "the node's oldest goes");
        assert_eq!(e.forgotten_young(), 0);
        assert_eq!(e.keys_oldest_first(), [(1, 11), (1, 12), (3, 30)]);
    }

    #[test]
    fn young_entries_leave_no_room_and_expire_after_their_linger() {
        let mut e = ended(2, 3, 10);
        e.remember(ms(0), (1, 1), 7);
        assert_eq!(e.room(ms(1), 1, 1, 1), Err(NoRoom::Peer { max: 2 }));
        assert!(e.room(ms(1), 2, 0, 1).is_ok());
        assert_eq!(e.room(ms(1), 2, 0, 2), Err(NoRoom::Node { max: 3 }));
        assert!(
            e.room(ms(10), 1, 1, 1).is_ok(),
            "old enough to forget for room"
        );
        assert_eq!(e.next_expiry(), Some(ms(10)));
        e.expire(ms(9));
        assert_eq!(e.get((1, 1)), Some(&7));
        e.expire(ms(10));
        assert!(e.is_empty() && e.next_expiry().is_none());
    }

    #[test]
    fn remembering_again_keeps_one_entry_with_the_new_outcome() {
        let mut e = ended(4, 4, 0);
        e.remember(ms(0), (1, 1), 1);
        e.remember(ms(1), (1, 1), 2);
        assert_eq!((e.len(), e.get((1, 1))), (1, Some(&2)));
        assert_eq!(e.peers[&1].len(), 1);
    }

    #[test]
    fn forgetting_a_young_entry_is_counted() {
        let mut e = ended(1, 8, 100);
        e.remember(ms(0), (1, 1), 0);
        e.remember(ms(1), (1, 2), 0);
        assert_eq!((e.len(), e.forgotten_young()), (1, 1));
    }

    /// The running young count equals the sum over sources it replaced, whatever the mix of
    /// remembering, forgetting for the bounds, expiring and asking for room.
    #[test]
    fn the_young_count_matches_a_sum_over_sources() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for policy in [SourceFull::Refuse, SourceFull::ForgetOwnOldest] {
            let mut e: Ended<Time, u32> = Ended::new(EndedLimits {
                per_peer_max: 6,
                node_max: 10,
                linger: Duration::from_millis(20),
                source_full: policy,
            });
            let mut t = 0;
            for _ in 0..5_000 {
                t += rng.gen_range(0..4u64);
                let (src, id) = (rng.gen_range(0..4u64), rng.gen_range(0..40u64));
                match rng.gen_range(0..10) {
                    0 => e.expire(ms(t)),
                    1..=3 => drop(e.room(ms(t), src, 0, 0)),
                    _ => e.remember(ms(t), (src, id), 0),
                }
                e.age(ms(t));
                let summed: usize = e.peers.values().map(|q| e.young_of(ms(t), q)).sum();
                assert_eq!(e.young_count, summed, "at {t} ms");
                assert!(e.young.len() <= e.young_cap());
            }
        }
    }
}
