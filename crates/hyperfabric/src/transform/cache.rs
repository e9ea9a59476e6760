//! Content-addressed parameter caching. **Lossless**: the receiver rebuilds the exact bytes.
//!
//! The sender splits a buffer into fixed chunks (default [`DEFAULT_CHUNK_SIZE`]) named by
//! their BLAKE3 hash ([`ChunkId`]). Its [`SentIndex`] models what the destination's
//! [`ChunkCache`] holds: both are byte-bounded LRUs of the same capacity, driven by the same
//! sequence of plans, so they agree. A chunk the destination holds is sent as a
//! [`PlanEntry::Reference`]; any other as a [`PlanEntry::Literal`], whose bytes follow the plan.
//! If they ever disagree (the receiver restarted, a plan was lost), [`ChunkCache::resolve`]
//! fails with [`TransformError::MissingChunks`] before touching its cache; the sender calls
//! [`SentIndex::forget`] with those ids and plans again, which sends them literally.
//!
//! # Plan layout
//! ```text
//!  0      4     5     6       8                16          20
//!  +------+-----+-----+-------+----------------+-----------+-------------------------------+
//!  | HFPC | ver | 0   | 0 0   | total_len u64  | count u32 | count × entry (37 bytes):     |
//!  |      | =1  |     |       |                |           |  kind u8 (0 literal, 1 ref)   |
//!  |      |     |     |       |                |           |  len u32 LE, BLAKE3 id [32]   |
//!  +------+-----+-----+-------+----------------+-----------+-------------------------------+
//! ```
//! The literal bytes travel separately, concatenated in plan order.

use super::lru::Lru;
use super::{write_preamble, Reader, TransformError};
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

pub const MAGIC: [u8; 4] = *b"HFPC";
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// The largest chunk a plan may describe.
pub const MAX_CHUNK_SIZE: usize = 16 << 20;
const PLAN_HEADER_LEN: usize = 20;
const ENTRY_LEN: usize = 37;

/// The BLAKE3 hash of a chunk's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    pub fn of(bytes: &[u8]) -> ChunkId {
        ChunkId(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Display for ChunkId {
    /// The first 8 bytes in hex, enough to tell chunks apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0[..8].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

/// One chunk of a planned buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanEntry {
    /// Sent as bytes: `range` of the planned buffer.
    Literal { range: Range<usize>, id: ChunkId },
    /// Not sent: the destination holds a chunk with this id and length.
    Reference { id: ChunkId, len: usize },
}

impl PlanEntry {
    pub fn id(&self) -> ChunkId {
        match self {
            PlanEntry::Literal { id, .. } | PlanEntry::Reference { id, .. } => *id,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            PlanEntry::Literal { range, .. } => range.len(),
            PlanEntry::Reference { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a buffer is sent: chunk by chunk, literal or by reference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub total_len: usize,
    pub entries: Vec<PlanEntry>,
}

impl Plan {
    /// Bytes that must be sent literally.
    pub fn literal_bytes(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, PlanEntry::Literal { .. }))
            .map(PlanEntry::len)
            .sum()
    }

    /// Bytes not sent because the destination holds them (the report's bytes saved).
    pub fn referenced_bytes(&self) -> usize {
        self.total_len - self.literal_bytes().min(self.total_len)
    }

    /// Concatenates the literal chunks of `data` (the planned buffer) into `out`.
    pub fn gather_literals(&self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TransformError> {
        out.clear();
        for entry in &self.entries {
            if let PlanEntry::Literal { range, .. } = entry {
                let bytes = data
                    .get(range.clone())
                    .ok_or(TransformError::IndexOutOfRange {
                        index: range.end as u64,
                        len: data.len() as u64,
                    })?;
                out.extend_from_slice(bytes);
            }
        }
        Ok(())
    }
}

/// Encodes a plan (without its literal bytes).
pub fn encode_plan(plan: &Plan) -> Vec<u8> {
    let mut out = Vec::with_capacity(PLAN_HEADER_LEN + plan.entries.len() * ENTRY_LEN);
    write_preamble(&mut out, MAGIC, 0);
    out.extend_from_slice(&(plan.total_len as u64).to_le_bytes());
    out.extend_from_slice(&(plan.entries.len() as u32).to_le_bytes());
    for entry in &plan.entries {
        let kind = u8::from(matches!(entry, PlanEntry::Reference { .. }));
        out.push(kind);
        out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
        out.extend_from_slice(&entry.id().0);
    }
    out
}

/// Decodes a plan, refusing a total length above `max_total_len`, chunks that are empty or
/// above [`MAX_CHUNK_SIZE`], and lengths that do not add up.
pub fn decode_plan(bytes: &[u8], max_total_len: usize) -> Result<Plan, TransformError> {
    let mut r = Reader::new(bytes);
    r.preamble(MAGIC)?;
    let total = r.u64()?;
    let count = r.u32()? as usize;
    if total > max_total_len as u64 {
        return Err(TransformError::TooLarge {
            len: total,
            max: max_total_len as u64,
        });
    }
    if count.checked_mul(ENTRY_LEN) != Some(r.remaining()) {
        return Err(TransformError::Invalid(format!(
            "{} bytes for {count} plan entries",
            r.remaining()
        )));
    }
    let mut entries = Vec::with_capacity(count);
    let mut offset = 0usize;
    for _ in 0..count {
        let kind = r.u8()?;
        let len = r.u32()? as usize;
        let id = ChunkId(r.array()?);
        if len == 0 || len > MAX_CHUNK_SIZE {
            return Err(TransformError::Invalid(format!("chunk length {len}")));
        }
        let end = offset.checked_add(len).filter(|&e| e as u64 <= total);
        let Some(end) = end else {
            return Err(TransformError::Invalid(format!(
                "chunks exceed total {total}"
            )));
        };
        entries.push(match kind {
            0 => PlanEntry::Literal {
                range: offset..end,
                id,
            },
            1 => PlanEntry::Reference { id, len },
            k => return Err(TransformError::Invalid(format!("plan entry kind {k}"))),
        });
        offset = end;
    }
    r.finish()?;
    if offset as u64 != total {
        return Err(TransformError::Invalid(format!(
            "chunks add up to {offset}, not {total}"
        )));
    }
    Ok(Plan {
        total_len: offset,
        entries,
    })
}

/// The sender's model of what the destination's [`ChunkCache`] holds.
#[derive(Debug)]
pub struct SentIndex {
    chunk_size: usize,
    lru: Lru<ChunkId, ()>,
}

impl SentIndex {
    /// `capacity_bytes` must equal the destination cache's capacity.
    pub fn new(chunk_size: usize, capacity_bytes: usize) -> Result<SentIndex, TransformError> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(TransformError::InvalidArgument(format!(
                "chunk size {chunk_size} not in 1..={MAX_CHUNK_SIZE}"
            )));
        }
        Ok(SentIndex {
            chunk_size,
            lru: Lru::new(capacity_bytes),
        })
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Plans `data`, recording that the destination will hold its chunks afterwards.
    pub fn plan(&mut self, data: &[u8]) -> Plan {
        let mut entries = Vec::with_capacity(data.len().div_ceil(self.chunk_size));
        for (i, chunk) in data.chunks(self.chunk_size).enumerate() {
            let id = ChunkId::of(chunk);
            if self.lru.get(&id).is_some() {
                entries.push(PlanEntry::Reference {
                    id,
                    len: chunk.len(),
                });
            } else {
                self.lru.insert(id, (), chunk.len());
                let start = i * self.chunk_size;
                entries.push(PlanEntry::Literal {
                    range: start..start + chunk.len(),
                    id,
                });
            }
        }
        Plan {
            total_len: data.len(),
            entries,
        }
    }

    /// Forgets chunks the destination turned out not to hold; they go literally next time.
    pub fn forget(&mut self, ids: &[ChunkId]) {
        for id in ids {
            self.lru.remove(id);
        }
    }
}

/// The receiver's byte-bounded LRU of chunks, which resolves plans into buffers.
#[derive(Debug)]
pub struct ChunkCache {
    lru: Lru<ChunkId, Vec<u8>>,
}

impl ChunkCache {
    pub fn new(capacity_bytes: usize) -> ChunkCache {
        ChunkCache {
            lru: Lru::new(capacity_bytes),
        }
    }

    pub fn capacity_bytes(&self) -> usize {
        self.lru.capacity_bytes()
    }

    pub fn used_bytes(&self) -> usize {
        self.lru.used_bytes()
    }

    pub fn chunks(&self) -> usize {
        self.lru.len()
    }

    pub fn contains(&self, id: &ChunkId) -> bool {
        self.lru.contains(id)
    }

    /// Rebuilds the planned buffer from cached chunks and `literals` (the literal chunks in
    /// plan order). Checks everything first: the cache is untouched on error.
    pub fn resolve(&mut self, plan: &Plan, literals: &[u8]) -> Result<Vec<u8>, TransformError> {
        self.check(plan, literals)?;
        let mut out = Vec::with_capacity(plan.total_len);
        let mut cursor = 0;
        for entry in &plan.entries {
            match entry {
                PlanEntry::Literal { id, .. } => {
                    let bytes = &literals[cursor..cursor + entry.len()];
                    cursor += entry.len();
                    out.extend_from_slice(bytes);
                    self.lru.insert(*id, bytes.to_vec(), bytes.len());
                }
                PlanEntry::Reference { id, len } => {
                    let bytes = self
                        .lru
                        .get(id)
                        .ok_or_else(|| TransformError::MissingChunks { missing: vec![*id] })?;
                    if bytes.len() != *len {
                        return Err(TransformError::Invalid(format!("chunk {id} length")));
                    }
                    out.extend_from_slice(bytes);
                }
            }
        }
        Ok(out)
    }

    /// Literal lengths and hashes match, and every reference is cached or sent earlier.
    fn check(&self, plan: &Plan, literals: &[u8]) -> Result<(), TransformError> {
        let literal_total = plan.literal_bytes();
        if literal_total != literals.len() {
            return Err(TransformError::Invalid(format!(
                "{} literal bytes for a plan that needs {literal_total}",
                literals.len()
            )));
        }
        let mut sent = HashSet::new();
        let mut missing = Vec::new();
        let mut cursor = 0;
        for entry in &plan.entries {
            let id = entry.id();
            if let PlanEntry::Literal { .. } = entry {
                let bytes = &literals[cursor..cursor + entry.len()];
                cursor += entry.len();
                if ChunkId::of(bytes) != id {
                    return Err(TransformError::HashMismatch { id });
                }
                sent.insert(id);
            } else if !self.lru.contains(&id) && !sent.contains(&id) {
                missing.push(id);
            }
        }
        match missing.is_empty() {
            true => Ok(()),
            false => Err(TransformError::MissingChunks { missing }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    const MIB: usize = 1 << 20;

    fn params(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut v = vec![0u8; len];
        rng.fill(&mut v[..]);
        v
    }

    fn send(idx: &mut SentIndex, cache: &mut ChunkCache, data: &[u8]) -> (Plan, Vec<u8>) {
        let plan = idx.plan(data);
        let wire = encode_plan(&plan);
        let decoded = decode_plan(&wire, 1 << 30).expect("decode plan");
        assert_eq!(decoded, plan);
        let mut literals = Vec::new();
        plan.gather_literals(data, &mut literals).expect("gather");
        let out = cache.resolve(&decoded, &literals).expect("resolve");
        (plan, out)
    }

    #[test]
    fn unchanged_64_mib_moves_under_one_percent_the_second_time() {
        let data = params(64 * MIB, 1);
        let mut idx = SentIndex::new(DEFAULT_CHUNK_SIZE, 128 * MIB).expect("index");
        let mut cache = ChunkCache::new(128 * MIB);
        let (first, out) = send(&mut idx, &mut cache, &data);
        assert_eq!(first.literal_bytes(), data.len());
        assert!(out == data);
        let (second, out) = send(&mut idx, &mut cache, &data);
        assert!(
            second.literal_bytes() * 100 < data.len(),
            "{}",
            second.literal_bytes()
        );
        assert_eq!(second.referenced_bytes(), data.len());
        assert!(out == data, "resolves byte-identical");
        assert!(encode_plan(&second).len() * 100 < data.len());
    }

    #[test]
    fn a_changed_chunk_is_sent_literally() {
        let mut data = params(4 * MIB + 123, 2);
        let mut idx = SentIndex::new(DEFAULT_CHUNK_SIZE, 64 * MIB).expect("index");
        let mut cache = ChunkCache::new(64 * MIB);
        send(&mut idx, &mut cache, &data);
        data[DEFAULT_CHUNK_SIZE * 3 + 17] ^= 0xff;
        let (plan, out) = send(&mut idx, &mut cache, &data);
        assert_eq!(plan.literal_bytes(), DEFAULT_CHUNK_SIZE);
        assert!(matches!(plan.entries[3], PlanEntry::Literal { .. }));
        assert!(out == data);
    }

    #[test]
    fn eviction_keeps_sender_and_receiver_in_step() {
        let chunk = 1024;
        let (a, b, c) = (params(chunk, 3), params(chunk, 4), params(chunk, 5));
        let mut idx = SentIndex::new(chunk, 2 * chunk).expect("index");
        let mut cache = ChunkCache::new(2 * chunk);
        for part in [&a, &b, &c] {
            send(&mut idx, &mut cache, part);
        }
        assert_eq!(cache.chunks(), 2);
        assert!(!cache.contains(&ChunkId::of(&a)), "a was evicted");
        let (plan, out) = send(&mut idx, &mut cache, &a);
        assert_eq!(plan.literal_bytes(), chunk, "sender knew a was evicted");
        assert_eq!(out, a);
        let (plan, _) = send(&mut idx, &mut cache, &c);
        assert_eq!(plan.literal_bytes(), 0);
    }

    #[test]
    fn missing_reference_is_typed_and_sender_falls_back() {
        let data = params(8 * 1024, 6);
        let mut idx = SentIndex::new(1024, 1 << 20).expect("index");
        let mut cache = ChunkCache::new(1 << 20);
        send(&mut idx, &mut cache, &data);
        let mut restarted = ChunkCache::new(1 << 20);
        let plan = idx.plan(&data);
        let err = restarted.resolve(&plan, &[]).unwrap_err();
        let TransformError::MissingChunks { missing } = err else {
            panic!("expected MissingChunks, got {err:?}");
        };
        assert_eq!(missing.len(), 8);
        assert_eq!(restarted.chunks(), 0, "cache untouched on error");
        idx.forget(&missing);
        let (plan, out) = send(&mut idx, &mut restarted, &data);
        assert_eq!(plan.literal_bytes(), data.len());
        assert_eq!(out, data);
    }

    #[test]
    fn repeated_chunks_within_one_plan_and_bad_literals() {
        let data = vec![0u8; 10 * 1024];
        let mut idx = SentIndex::new(1024, 1 << 20).expect("index");
        let mut cache = ChunkCache::new(1 << 20);
        let (plan, out) = send(&mut idx, &mut cache, &data);
        assert_eq!(plan.literal_bytes(), 1024);
        assert_eq!(out, data);
        let plan = SentIndex::new(1024, 1 << 20)
            .expect("index")
            .plan(&data[..1024]);
        let mut fresh = ChunkCache::new(1 << 20);
        let err = fresh.resolve(&plan, &[1u8; 1024]).unwrap_err();
        assert!(matches!(err, TransformError::HashMismatch { .. }));
        assert!(fresh.resolve(&plan, &[0u8; 10]).is_err());
        assert!(SentIndex::new(0, 1).is_err());
    }

    #[test]
    fn hostile_plans_are_refused() {
        let data = params(3000, 7);
        let plan = SentIndex::new(1024, 1 << 20).expect("index").plan(&data);
        let wire = encode_plan(&plan);
        assert!(decode_plan(&wire, 2000).is_err(), "over the limit");
        assert!(decode_plan(&wire[..wire.len() - 1], 1 << 20).is_err());
        let mut bad_total = wire.clone();
        bad_total[8..16].copy_from_slice(&2999u64.to_le_bytes());
        assert!(decode_plan(&bad_total, 1 << 20).is_err());
        let mut bad_kind = wire.clone();
        bad_kind[PLAN_HEADER_LEN] = 7;
        assert!(decode_plan(&bad_kind, 1 << 20).is_err());
        let mut zero_len = wire.clone();
        zero_len[PLAN_HEADER_LEN + 1..PLAN_HEADER_LEN + 5].copy_from_slice(&[0; 4]);
        assert!(decode_plan(&zero_len, 1 << 20).is_err());
    }

    proptest! {
        #[test]
        fn garbage_plans_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if bytes.len() >= 5 {
                bytes[..4].copy_from_slice(&MAGIC);
                bytes[4] = 1;
            }
            if let Ok(plan) = decode_plan(&bytes, 1 << 24) {
                let mut cache = ChunkCache::new(1 << 20);
                let _ = cache.resolve(&plan, &bytes);
            }
        }
    }
}
