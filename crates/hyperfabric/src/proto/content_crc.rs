//! The CRC32C of a transfer's whole content, built from chunks that arrive in any order.
//!
//! The destination signs it in a relayed FINAL ack (`auth::identity::FinalAck`), so a relay
//! that altered or dropped bytes cannot have the sender report them delivered. Each chunk's
//! new bytes become a run `(start, end, crc)`; adjacent runs merge with `crc32c_combine`, so
//! a transfer that arrives in order keeps one run (inline, no allocation). Runs mirror the
//! receiver's held ranges, which `RecvParams::max_ranges` bounds.

use smallvec::SmallVec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: u64,
    end: u64,
    crc: u32,
}

/// Disjoint, sorted, never adjacent runs of content with their CRC32C.
#[derive(Debug, Default, Clone)]
pub struct ContentCrc {
    runs: SmallVec<[Run; 4]>,
}

impl ContentCrc {
    /// Adds the chunk `bytes` at `offset`; bytes already covered keep their first CRC (the
    /// receiver stores a resend's overlap again, the protocol checked it is in bounds).
    pub fn add(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset + bytes.len() as u64;
        let mut gaps: SmallVec<[(u64, u64); 4]> = SmallVec::new();
        let mut cursor = offset;
        for r in self.runs.iter().filter(|r| r.end > offset && r.start < end) {
            if r.start > cursor {
                gaps.push((cursor, r.start));
            }
            cursor = cursor.max(r.end);
        }
        if cursor < end {
            gaps.push((cursor, end));
        }
        for (s, e) in gaps {
            let slice = &bytes[(s - offset) as usize..(e - offset) as usize];
            self.insert(Run {
                start: s,
                end: e,
                crc: crc32c::crc32c(slice),
            });
        }
    }

    /// Inserts a run that overlaps none, merging it with its neighbours.
    fn insert(&mut self, run: Run) {
        let i = self.runs.partition_point(|r| r.start < run.start);
        self.runs.insert(i, run);
        if i + 1 < self.runs.len() && self.runs[i].end == self.runs[i + 1].start {
            let next = self.runs.remove(i + 1);
            self.runs[i] = merged(self.runs[i], next);
        }
        if i > 0 && self.runs[i - 1].end == self.runs[i].start {
            let this = self.runs.remove(i);
            self.runs[i - 1] = merged(self.runs[i - 1], this);
        }
    }

    /// The CRC32C of `[0, total)` once every byte of it was added; `None` before.
    pub fn whole(&self, total: u64) -> Option<u32> {
        match self.runs.as_slice() {
            [] if total == 0 => Some(crc32c::crc32c(&[])),
            [r] if r.start == 0 && r.end == total => Some(r.crc),
            _ => None,
        }
    }
}

fn merged(a: Run, b: Run) -> Run {
    Run {
        start: a.start,
        end: b.end,
        crc: crc32c::crc32c_combine(a.crc, b.crc, (b.end - b.start) as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn any_order_and_overlap_give_the_crc_of_the_whole() {
        let data = content(10_000);
        let want = crc32c::crc32c(&data);
        // (offset, len) pieces: out of order, with overlaps and a duplicate.
        let pieces = [
            (4000, 3000),
            (0, 1000),
            (9000, 1000),
            (500, 4000),
            (4000, 3000),
            (6500, 3000),
        ];
        let mut c = ContentCrc::default();
        for (i, (o, l)) in pieces.iter().enumerate() {
            assert_eq!(c.whole(10_000), None, "complete too early at piece {i}");
            c.add(*o, &data[*o as usize..(*o + *l) as usize]);
        }
        assert_eq!(c.whole(10_000), Some(want));
        assert_eq!(c.runs.len(), 1);
    }

    #[test]
    fn altered_or_missing_bytes_change_or_withhold_the_crc() {
        let data = content(4096);
        let mut altered = data.clone();
        altered[1234] ^= 1;
        let mut c = ContentCrc::default();
        c.add(0, &altered[..2048]);
        c.add(2048, &altered[2048..]);
        assert_ne!(c.whole(4096), Some(crc32c::crc32c(&data)));
        let mut short = ContentCrc::default();
        short.add(0, &data[..4000]);
        assert_eq!(short.whole(4096), None);
        assert_eq!(ContentCrc::default().whole(0), Some(0));
    }
}
