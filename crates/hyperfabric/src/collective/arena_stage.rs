//! all_reduce above the arena's slot ([`GroupOptions::arena`](super::GroupOptions)): chunk
//! by chunk through every rank's stage (`transport::shm::arena::stage`), a reduce-scatter
//! straight out of the peers' stages (rank `r` reduces share `r` of the chunk from every
//! rank, in rank order) then an all-gather (every rank copies the others' reduced shares),
//! double-buffered so a rank stages chunk `c + 1` while slower peers still read chunk `c`.
//!
//! Each share is reduced by one rank only and copied by the others, so every rank ends
//! with the same bits. Copies go in [`PIECE`]-sized pieces, each reduced while it is in
//! the cache, and each share's CRC32C runs over the copies; a share whose CRC disagrees
//! fails the collective before anything reduced from it is staged. Elements travel as
//! native bytes (memcpy, no conversion): the arena never leaves the host.

use super::arena::{arena_err, decode, encode, ArenaPath};
use super::dtype::Element;
use super::error::{CollectiveError, Result};
use super::group::{disagreement, Group};
use super::op::{self, ReduceOp};
use super::wire::Call;
use crate::transport::shm::arena::{Arena, ArenaError, Desc, ARENA_RANKS_MAX};
use std::ops::Range;
use std::time::Instant;
use zerocopy::{FromBytes, IntoBytes};

/// Bytes copied out of (or into) the shared memory at a time: an L1 cache's worth.
const PIECE: usize = 32 << 10;

/// One chunk of one all_reduce: its elements in the buffer and its shares.
struct Chunk {
    /// The arena's chunk number (its half is `c % 2`).
    c: u32,
    /// The chunk's number within the collective (the descriptor's `chunk`, wrapping).
    k: u16,
    /// The chunk's elements in the caller's buffer.
    elems: Range<usize>,
    /// Ranks in the group.
    n: usize,
}

impl Chunk {
    /// Share `j`'s elements, relative to the chunk (the same cut on every rank).
    fn share(&self, j: usize) -> Range<usize> {
        let m = self.elems.len();
        (j * m / self.n)..((j + 1) * m / self.n)
    }
}

impl Group<'_> {
    /// all_reduce of `buf` (more than one slot) through the stage, as collective `seq`.
    pub(super) fn stage_all_reduce<T: Element>(
        &self,
        p: &mut ArenaPath,
        buf: &mut [T],
        op: ReduceOp,
        call: &Call,
        seq: u64,
    ) -> Result<()> {
        let size = T::DTYPE.size();
        let per = p.arena.stage_half_bytes() / size;
        if per < self.size() {
            return Err(CollectiveError::InvalidArgument(format!(
                "arena stage of {} bytes holds fewer elements than ranks",
                p.arena.stage_bytes()
            )));
        }
        // Scratch for the pieces, u64 words so it can be viewed as any element type (no
        // allocation per call once grown).
        p.scratch.resize(PIECE.min(per * size) / 8, 0);
        let mut scratch = std::mem::take(&mut p.scratch);
        let out = match <[T]>::mut_from_bytes(scratch.as_mut_bytes()) {
            Ok(tmp) => self.stage_chunks(p, buf, per, op, call, seq, tmp),
            Err(_) => Err(CollectiveError::InvalidArgument(
                "arena scratch is not aligned for the element type".into(),
            )),
        };
        p.scratch = scratch;
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn stage_chunks<T: Element>(
        &self,
        p: &mut ArenaPath,
        buf: &mut [T],
        per: usize,
        op: ReduceOp,
        call: &Call,
        seq: u64,
        tmp: &mut [T],
    ) -> Result<()> {
        let chunks = buf.len().div_ceil(per);
        for k in 0..chunks {
            p.chunks = p.chunks.wrapping_add(1);
            let ch = Chunk {
                c: p.chunks,
                k: k as u16,
                elems: k * per..((k + 1) * per).min(buf.len()),
                n: self.size(),
            };
            let e = |err| arena_err(self, err, call, seq);
            let data = &mut buf[ch.elems.clone()];
            self.stage_raw(&p.arena, &ch, data, call, seq, tmp)
                .map_err(|err| err.into_collective(self, call, seq))?;
            self.stage_reduce(&p.arena, &ch, data, op, call, seq, tmp)?;
            self.stage_gather(&p.arena, &ch, data, tmp)
                .map_err(|err| err.into_collective(self, call, seq))?;
            p.arena.stage_finish(self.rank, ch.c).map_err(e)?;
        }
        Ok(())
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.opts.timeout
    }

    /// Stages the shares of `data` the peers reduce, with their CRCs and the descriptor.
    fn stage_raw<T: Element>(
        &self,
        a: &Arena,
        ch: &Chunk,
        data: &[T],
        call: &Call,
        seq: u64,
        tmp: &[T],
    ) -> std::result::Result<(), StageError> {
        let (me, size) = (self.rank, T::DTYPE.size());
        a.stage_wait_free(me, ch.c, self.deadline())?;
        let mut crcs = [0u32; ARENA_RANKS_MAX];
        for j in (0..ch.n).filter(|&j| j != me) {
            let share = ch.share(j);
            let mut crc = 0;
            for (i, piece) in data[share.clone()].chunks(tmp.len()).enumerate() {
                let bytes = piece.as_bytes();
                crc = crate::wire::checksum_append(crc, bytes);
                a.stage_put(me, ch.c, (share.start + i * tmp.len()) * size, bytes)?;
            }
            crcs[j] = crc;
        }
        let desc = encode(call, seq, self.id, me, 1, ch.k);
        a.stage_publish_raw(me, ch.c, &desc, &crcs[..ch.n])?;
        Ok(())
    }

    /// Reduces share `rank` of every rank's chunk into `data` in rank order, piece by
    /// piece, and stages each reduced piece while it is hot; publishes the share (its
    /// CRC32C, `reduced`) only after every raw share's CRC32C matched.
    #[allow(clippy::too_many_arguments)]
    fn stage_reduce<T: Element>(
        &self,
        a: &Arena,
        ch: &Chunk,
        data: &mut [T],
        op: ReduceOp,
        call: &Call,
        seq: u64,
        tmp: &mut [T],
    ) -> Result<()> {
        let (me, size) = (self.rank, T::DTYPE.size());
        let e = |err| arena_err(self, err, call, seq);
        let mut want = [0u32; ARENA_RANKS_MAX];
        for q in (0..ch.n).filter(|&q| q != me) {
            let (desc, crc) = a.stage_wait_raw(q, ch.c, me, self.deadline()).map_err(e)?;
            self.check_desc(&desc, q, ch, call, seq)?;
            want[q] = crc;
        }
        let share = ch.share(me);
        let mine = &mut data[share.clone()];
        let mut running = [0u32; ARENA_RANKS_MAX];
        let mut crc = 0;
        let (acc, got) = tmp.split_at_mut(tmp.len() / 2);
        for start in (0..mine.len()).step_by(got.len()) {
            let end = (start + got.len()).min(mine.len());
            let piece = &mut mine[start..end];
            let off = (share.start + start) * size;
            let (acc, got) = (&mut acc[..piece.len()], &mut got[..piece.len()]);
            reduce_piece(a, ch, me, piece, off, op, &mut running, acc, got).map_err(e)?;
            if op == ReduceOp::Avg {
                op::divide(piece, ch.n);
            }
            // Staged, not yet published: peers read it only after `reduced = c` below.
            crc = crate::wire::checksum_append(crc, piece.as_bytes());
            a.stage_put(me, ch.c, off, piece.as_bytes()).map_err(e)?;
        }
        if let Some(q) = (0..ch.n).find(|&q| q != me && running[q] != want[q]) {
            return Err(CollectiveError::Malformed {
                node: self.ranks[q].clone(),
                reason: format!("CRC32C mismatch on arena chunk {} (share {me})", ch.c),
            });
        }
        a.stage_publish_reduced(me, ch.c, crc).map_err(e)
    }

    /// Copies every peer's reduced share of the chunk into `data`, verifying its CRC.
    fn stage_gather<T: Element>(
        &self,
        a: &Arena,
        ch: &Chunk,
        data: &mut [T],
        tmp: &[T],
    ) -> std::result::Result<(), StageError> {
        let size = T::DTYPE.size();
        for q in (0..ch.n).filter(|&q| q != self.rank) {
            let want = a.stage_wait_reduced(q, ch.c, self.deadline())?;
            let share = ch.share(q);
            let mut crc = 0;
            for (i, piece) in data[share.clone()].chunks_mut(tmp.len()).enumerate() {
                let off = (share.start + i * tmp.len()) * size;
                a.stage_get(q, ch.c, off, piece.as_mut_bytes())?;
                crc = crate::wire::checksum_append(crc, piece.as_bytes());
            }
            if crc != want {
                return Err(StageError::Crc { rank: q, c: ch.c });
            }
        }
        Ok(())
    }

    /// Rank `q`'s descriptor of chunk `ch` must name this collective, chunk and rank.
    fn check_desc(&self, desc: &Desc, q: usize, ch: &Chunk, call: &Call, seq: u64) -> Result<()> {
        let theirs = decode(desc, q)?;
        let named = theirs.seq == seq && usize::from(theirs.rank) == q;
        if named {
            if let Some(err) = disagreement(seq, call, &theirs) {
                return Err(err);
            }
        }
        if !named || (theirs.step, theirs.chunk) != (1, ch.k) {
            return Err(CollectiveError::Malformed {
                node: self.ranks[q].clone(),
                reason: format!(
                    "arena stage holds collective {} chunk {} step {} of rank {}",
                    theirs.seq, theirs.chunk, theirs.step, theirs.rank
                ),
            });
        }
        Ok(())
    }
}

/// Reduces `piece` (rank `me`'s own values of one piece of its share, at byte `off` of a
/// stage half) with the same piece of every peer, in rank order: the ranks before ours are
/// accumulated in `acc` and meet ours in place (no copy of our own values), the ranks after
/// ours are reduced into it. Every peer's bytes are copied out into `acc` / `got` first and
/// their CRC32C runs over the copy (`running[q]`).
#[allow(clippy::too_many_arguments)]
fn reduce_piece<T: Element>(
    a: &Arena,
    ch: &Chunk,
    me: usize,
    piece: &mut [T],
    off: usize,
    op: ReduceOp,
    running: &mut [u32; ARENA_RANKS_MAX],
    acc: &mut [T],
    got: &mut [T],
) -> std::result::Result<(), ArenaError> {
    let mut get = |q: usize, into: &mut [T]| -> std::result::Result<(), ArenaError> {
        a.stage_get(q, ch.c, off, into.as_mut_bytes())?;
        running[q] = crate::wire::checksum_append(running[q], into.as_bytes());
        Ok(())
    };
    if me > 0 {
        get(0, acc)?;
        for q in 1..me {
            get(q, got)?;
            op::reduce_slices(acc, got, op);
        }
        op::reduce_slices_rev(piece, acc, op);
    }
    for q in me + 1..ch.n {
        get(q, got)?;
        op::reduce_slices(piece, got, op);
    }
    Ok(())
}

/// What the stage's steps fail with before they become a [`CollectiveError`].
enum StageError {
    Arena(ArenaError),
    Crc { rank: usize, c: u32 },
}

impl From<ArenaError> for StageError {
    fn from(e: ArenaError) -> Self {
        StageError::Arena(e)
    }
}

impl StageError {
    fn into_collective(self, g: &Group<'_>, call: &Call, seq: u64) -> CollectiveError {
        match self {
            StageError::Arena(e) => arena_err(g, e, call, seq),
            StageError::Crc { rank, c } => CollectiveError::Malformed {
                node: g.ranks.get(rank).cloned().unwrap_or_default(),
                reason: format!("CRC32C mismatch on arena chunk {c} (reduced share)"),
            },
        }
    }
}
