//! The QoS gate of a connection's writers: who goes first when several wait for the link.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Priority among the writers of one connection: ultra_high and high go first (a frame of
/// a lower class yields while one of theirs waits, so an urgent message overtakes a bulk
/// transfer within one chunk); normal, low and background share the link by weight.
#[derive(Default)]
pub(super) struct WriteGate {
    pub(super) waiting: [AtomicU32; 5],
    /// Bytes written per class, for the weighted share of the bulk classes.
    pub(super) served: [AtomicU64; 5],
}

/// Weights of normal, low and background (codes 2, 3, 4) when they compete.
const BULK_WEIGHTS: [u64; 5] = [0, 0, 4, 2, 1];

impl WriteGate {
    pub(super) fn snapshot(&self) -> ([u32; 5], [u64; 5]) {
        let w = std::array::from_fn(|i| self.waiting[i].load(Ordering::Acquire));
        let s = std::array::from_fn(|i| self.served[i].load(Ordering::Relaxed));
        (w, s)
    }

    pub(super) fn nobody_waits(&self) -> bool {
        self.waiting.iter().all(|w| w.load(Ordering::Acquire) == 0)
    }
}

/// Should a frame of class `p` let a waiting class go first? Urgent classes (0, 1) go first,
/// the more urgent of them before the other; among the bulk classes the one furthest behind
/// its weighted share of the bytes goes (ties: the more urgent), so with normal, low and
/// background all waiting they get 4/7, 2/7 and 1/7 of the link.
pub(super) fn should_defer(p: usize, waiting: &[u32; 5], served: &[u64; 5]) -> bool {
    let p = p.min(4);
    (0..5).any(|q| {
        if q == p || waiting[q] == 0 {
            return false;
        }
        match (q < 2, p < 2) {
            (true, true) => q < p,
            (true, false) => true,
            (false, true) => false,
            // Compare served/weight without dividing: q goes first if it is further behind.
            (false, false) => {
                let (lq, lp) = (served[q] * BULK_WEIGHTS[p], served[p] * BULK_WEIGHTS[q]);
                lq < lp || (lq == lp && q < p)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everyone always waits; the writer goes to the first class that does not defer.
    fn shares(classes: &[usize], rounds: usize) -> [u64; 5] {
        let mut served = [0u64; 5];
        let mut waiting = [0u32; 5];
        for &c in classes {
            waiting[c] = 1;
        }
        for _ in 0..rounds {
            let next = classes
                .iter()
                .copied()
                .find(|&c| !should_defer(c, &waiting, &served))
                .unwrap_or(classes[0]);
            served[next] += 1000;
        }
        served
    }

    #[test]
    fn urgent_classes_always_go_first() {
        let s = shares(&[0, 2, 4], 100);
        assert_eq!((s[0], s[2], s[4]), (100_000, 0, 0));
        let s = shares(&[1, 3], 50);
        assert_eq!((s[1], s[3]), (50_000, 0));
    }

    #[test]
    fn bulk_classes_share_by_weight() {
        let s = shares(&[2, 3, 4], 7000);
        let total = (s[2] + s[3] + s[4]) as f64;
        for (class, want) in [(2, 4.0 / 7.0), (3, 2.0 / 7.0), (4, 1.0 / 7.0)] {
            let got = s[class] as f64 / total;
            assert!(
                (got - want).abs() < 0.01,
                "class {class}: {got:.3} vs {want:.3}"
            );
        }
        let s = shares(&[2, 4], 5000);
        assert!((s[4] as f64 / (s[2] + s[4]) as f64 - 0.2).abs() < 0.01);
    }
}
