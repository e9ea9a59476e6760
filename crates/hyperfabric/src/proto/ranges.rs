//! A bounded set of disjoint byte ranges: what a destination already holds of a transfer.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent half-open ranges `[start, end)`, merged on insert.
#[derive(Debug, Clone, Default)]
pub struct RangeSet {
    /// start -> end
    ranges: BTreeMap<u64, u64>,
    covered: u64,
}

/// Refused because the set would need more than its limit of separate ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooFragmented;

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
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// End of the range that starts at zero (bytes held contiguously from the start).
    pub fn contiguous_from_zero(&self) -> u64 {
        match self.ranges.first_key_value() {
            Some((0, end)) => *end,
            _ => 0,
        }
    }

    /// True when `[start, end)` is entirely held.
    pub fn contains(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        match self.ranges.range(..=start).next_back() {
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
        // Collect every range that overlaps or touches [start, end).
        let mut new_start = start;
        let mut new_end = end;
        let mut absorbed: Vec<(u64, u64)> = Vec::new();
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e >= start {
                absorbed.push((s, e));
            }
        }
        for (&s, &e) in self.ranges.range(start..=end) {
            if absorbed.first().map(|a| a.0) != Some(s) {
                absorbed.push((s, e));
            }
        }
        let already: u64 = absorbed
            .iter()
            .map(|&(s, e)| e.min(end).saturating_sub(s.max(start)))
            .sum();
        if absorbed.is_empty() && self.ranges.len() >= max_ranges {
            return Err(TooFragmented);
        }
        for (s, e) in &absorbed {
            new_start = new_start.min(*s);
            new_end = new_end.max(*e);
            self.ranges.remove(s);
        }
        self.ranges.insert(new_start, new_end);
        let added = (end - start) - already;
        self.covered += added;
        Ok(added)
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
            }
        }
    }
}
