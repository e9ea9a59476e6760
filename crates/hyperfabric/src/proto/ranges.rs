//! A bounded set of disjoint byte ranges: what a destination already holds of a transfer.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included};

/// Disjoint, non-adjacent half-open ranges `[start, end)`, merged on insert.
///
/// The range that starts at zero is kept apart as `prefix`: chunks that arrive in order only
/// move its end, so a transfer received in order never touches the map (and allocates
/// nothing); the map holds what arrived ahead of a hole.
#[derive(Debug, Clone, Default)]
pub struct RangeSet {
    /// `[0, prefix)` is held (empty when 0).
    prefix: u64,
    /// start -> end of the ranges after a hole: every start is above `prefix`.
    rest: BTreeMap<u64, u64>,
    covered: u64,
}

/// Refused because the set would need more than its limit of separate ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooFragmented;

/// Bytes of `[s, e)` inside `[start, end)`.
fn overlap((s, e): (u64, u64), start: u64, end: u64) -> u64 {
    e.min(end).saturating_sub(s.max(start))
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes covered.
    pub fn covered(&self) -> u64 {
        self.covered
    }

    /// Number of separate ranges.
    pub fn len(&self) -> usize {
        usize::from(self.prefix > 0) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// End of the range that starts at zero (bytes held contiguously from the start).
    pub fn contiguous_from_zero(&self) -> u64 {
        self.prefix
    }

    /// True when `[start, end)` is entirely held.
    pub fn contains(&self, start: u64, end: u64) -> bool {
        if start >= end || end <= self.prefix {
            return true;
        }
        match self.rest.range(..=start).next_back() {
            Some((_, e)) => *e >= end,
            None => false,
        }
    }

    /// Adds `[start, end)`; returns how many bytes were new. Refuses (changing nothing) when
    /// the result would hold more than `max_ranges` separate ranges.
    pub fn insert(
        &mut self,
        start: u64,
        end: u64,
        max_ranges: usize,
    ) -> Result<u64, TooFragmented> {
        if start >= end {
            return Ok(0);
        }
        let already = if start <= self.prefix {
            self.extend_prefix(start, end, max_ranges)?
        } else {
            self.insert_after_hole(start, end, max_ranges)?
        };
        let added = (end - start) - already;
        self.covered += added;
        Ok(added)
    }

    /// [`Self::insert`] of a range that starts inside or just after the prefix: the prefix
    /// grows, absorbing the ranges it reaches. Returns the bytes already held.
    fn extend_prefix(
        &mut self,
        start: u64,
        end: u64,
        max_ranges: usize,
    ) -> Result<u64, TooFragmented> {
        let reaches_rest = self.rest.first_key_value().is_some_and(|(&s, _)| s <= end);
        if self.prefix == 0 && !reaches_rest && self.len() >= max_ranges {
            return Err(TooFragmented);
        }
        let mut already = self.prefix.min(end) - start;
        let mut new_end = end.max(self.prefix);
        while let Some((&s, &e)) = self.rest.first_key_value() {
            if s > new_end {
                break;
            }
            already += overlap((s, e), start, end);
            new_end = new_end.max(e);
            self.rest.remove(&s);
        }
        self.prefix = new_end;
        Ok(already)
    }

    /// [`Self::insert`] of a range that starts past the prefix's end (so it cannot touch
    /// it): merged with the ranges it overlaps or touches. Returns the bytes already held.
    fn insert_after_hole(
        &mut self,
        start: u64,
        end: u64,
        max_ranges: usize,
    ) -> Result<u64, TooFragmented> {
        // The range before (or at) `start` that reaches it, if any: it absorbs the rest.
        let before = self
            .rest
            .range(..=start)
            .next_back()
            .map(|(&s, &e)| (s, e))
            .filter(|&(_, e)| e >= start);
        let lower = before.map_or(Included(start), |(s, _)| Excluded(s));
        let reaches_next = self.rest.range((lower, Included(end))).next().is_some();
        if before.is_none() && !reaches_next && self.len() >= max_ranges {
            return Err(TooFragmented);
        }
        let (mut already, mut new_end) =
            before.map_or((0, end), |r| (overlap(r, start, end), end.max(r.1)));
        while let Some((&s, &e)) = self.rest.range((lower, Included(end))).next() {
            already += overlap((s, e), start, end);
            new_end = new_end.max(e);
            self.rest.remove(&s);
        }
        match before {
            Some((s, _)) => {
                if let Some(e) = self.rest.get_mut(&s) {
                    *e = new_end;
                }
            }
            None => {
                self.rest.insert(start, new_end);
            }
        }
        Ok(already)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_counts() {
        let mut r = RangeSet::new();
        assert_eq!(r.insert(10, 20, 8), Ok(10));
        assert_eq!(r.insert(0, 5, 8), Ok(5));
        assert_eq!(r.contiguous_from_zero(), 5);
        assert_eq!(r.insert(5, 10, 8), Ok(5));
        assert_eq!(r.len(), 1);
        assert_eq!(r.contiguous_from_zero(), 20);
        assert_eq!(r.insert(15, 25, 8), Ok(5));
        assert_eq!(r.insert(0, 25, 8), Ok(0));
        assert_eq!(r.covered(), 25);
        assert!(r.contains(3, 25));
        assert!(!r.contains(3, 26));
    }

    #[test]
    fn bounded_fragments() {
        let mut r = RangeSet::new();
        for i in 0..4 {
            r.insert(i * 10, i * 10 + 1, 4).unwrap();
        }
        assert_eq!(r.insert(100, 101, 4), Err(TooFragmented));
        assert_eq!(r.insert(1, 10, 4), Ok(9), "merging is always allowed");
        assert_eq!(r.len(), 3);
        // The range from zero counts as one of them.
        let mut r = RangeSet::new();
        for i in 1..5 {
            r.insert(i * 10, i * 10 + 1, 4).unwrap();
        }
        assert_eq!(r.insert(0, 1, 4), Err(TooFragmented));
        assert_eq!(r.insert(0, 10, 4), Ok(10), "touching the next is a merge");
        assert_eq!((r.len(), r.contiguous_from_zero()), (4, 11));
    }

    #[test]
    fn in_order_chunks_leave_the_map_alone() {
        let mut r = RangeSet::new();
        for i in 0..64 {
            assert_eq!(r.insert(i * 4096, (i + 1) * 4096, 8), Ok(4096));
        }
        assert!(r.rest.is_empty());
        assert_eq!((r.len(), r.contiguous_from_zero()), (1, 64 * 4096));
        assert_eq!(r.insert(100, 200, 8), Ok(0));
    }

    #[test]
    fn matches_a_bitmap_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let mut r = RangeSet::new();
            let mut model = [false; 200];
            for _ in 0..30 {
                let a = rng.gen_range(0..200u64);
                let b = rng.gen_range(a..=200u64);
                let before = model.iter().filter(|x| **x).count() as u64;
                for m in &mut model[a as usize..b as usize] {
                    *m = true;
                }
                let after = model.iter().filter(|x| **x).count() as u64;
                assert_eq!(r.insert(a, b, 1000), Ok(after - before));
                assert_eq!(r.covered(), after);
                let contig = model.iter().take_while(|x| **x).count() as u64;
                assert_eq!(r.contiguous_from_zero(), contig);
                let runs = (0..200)
                    .filter(|&i| model[i] && (i == 0 || !model[i - 1]))
                    .count();
                assert_eq!(r.len(), runs);
                let c = rng.gen_range(0..200u64);
                let d = rng.gen_range(c..=200u64);
                let held = model[c as usize..d as usize].iter().all(|x| *x);
                assert_eq!(r.contains(c, d), held, "[{c}, {d})");
            }
        }
    }
}
