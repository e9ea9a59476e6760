//! A byte-bounded least-recently-used map. Deterministic: the same sequence of operations
//! gives the same contents, which lets the sender's [`super::SentIndex`] mirror the
//! receiver's [`super::ChunkCache`] exactly.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

#[derive(Debug)]
struct Slot<V> {
    value: V,
    size: usize,
    stamp: u64,
}

#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    capacity_bytes: usize,
    used_bytes: usize,
    next_stamp: u64,
    slots: HashMap<K, Slot<V>>,
    order: BTreeMap<u64, K>,
}

impl<K: Copy + Eq + Hash, V> Lru<K, V> {
    pub(crate) fn new(capacity_bytes: usize) -> Self {
        Lru {
            capacity_bytes,
            used_bytes: 0,
            next_stamp: 0,
            slots: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub(crate) fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    pub(crate) fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn contains(&self, key: &K) -> bool {
        self.slots.contains_key(key)
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    /// The value for `key`, marked most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        let stamp = self.stamp();
        let slot = self.slots.get_mut(key)?;
        self.order.remove(&slot.stamp);
        slot.stamp = stamp;
        self.order.insert(stamp, *key);
        Some(&slot.value)
    }

    /// Inserts (or refreshes) `key`, evicting least recently used entries to fit. An entry
    /// larger than the whole capacity is not stored.
    pub(crate) fn insert(&mut self, key: K, value: V, size: usize) {
        self.remove(&key);
        if size > self.capacity_bytes {
            return;
        }
        while self.used_bytes + size > self.capacity_bytes {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.slots.remove(&oldest) {
                self.used_bytes -= slot.size;
            }
        }
        let stamp = self.stamp();
        self.order.insert(stamp, key);
        self.slots.insert(key, Slot { value, size, stamp });
        self.used_bytes += size;
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.slots.remove(key)?;
        self.order.remove(&slot.stamp);
        self.used_bytes -= slot.size;
        Some(slot.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_first() {
        let mut lru = Lru::new(30);
        lru.insert(1u8, "a", 10);
        lru.insert(2, "b", 10);
        lru.insert(3, "c", 10);
        assert_eq!(lru.get(&1), Some(&"a"));
        lru.insert(4, "d", 10);
        assert!(!lru.contains(&2), "2 was the least recently used");
        assert!(lru.contains(&1) && lru.contains(&3) && lru.contains(&4));
        assert_eq!(lru.used_bytes(), 30);
        lru.insert(5, "big", 31);
        assert!(!lru.contains(&5));
        assert_eq!(lru.len(), 3);
        lru.insert(6, "wide", 25);
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.remove(&6), Some("wide"));
        assert_eq!(lru.used_bytes(), 0);
    }
}
