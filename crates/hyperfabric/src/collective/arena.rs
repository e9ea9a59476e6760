//! The intra-host fast path ([`GroupOptions::arena`](super::GroupOptions)): a small
//! all_reduce through one shared-memory [`Arena`] per group instead of fabric transfers.
//! Every rank publishes its vector into its own region with the call descriptor and a
//! CRC32C; every rank reads all regions and reduces them in rank order (bit-identical
//! results everywhere); one round of cache-line transfers, no acknowledgement round trips.
//!
//! Set-up (once, at the group's first eligible all_reduce, over the ordinary fabric path):
//! rank 0 creates the arena (a sealed memfd, mode 0600) under a fresh name and broadcasts the
//! name; every rank opens it; an all_reduce (min) of "opened" tells every rank whether all
//! could (ranks on different hosts cannot), then rank 0 removes the name.

use super::dtype::Element;
use super::error::{CollectiveError, Result};
use super::group::{disagreement, Group};
use super::op::{self, ReduceOp};
use super::wire::{Call, Header, HEADER_LEN};
use crate::transport::shm::arena::{Arena, ArenaError, Desc};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// Longest arena name we broadcast (a file name under /dev/shm).
const NAME_BYTES: usize = 96;
/// Distinguishes arenas of one process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Where a group stands with its arena.
#[derive(Default)]
pub(crate) enum ArenaState {
    #[default]
    Unset,
    /// Set-up runs (its own collectives take the fabric path).
    Setting,
    Ready(Box<ArenaPath>),
    Failed(String),
}

/// The mapped arena and the buffers a call reuses (no allocation per call once grown).
pub(crate) struct ArenaPath {
    pub(super) arena: Arena,
    mine: Vec<u8>,
    peer: Vec<u8>,
    /// Arena rounds so far: the arena's own sequence (the group's counts fabric-path
    /// collectives too, which publish nothing here).
    rounds: u32,
    /// Scratch of the stage path, u64 words (viewed as any element type).
    pub(super) scratch: Vec<u64>,
    /// Stage chunks so far (`collective::arena_stage`): the stage's own sequence.
    pub(super) chunks: u32,
}

/// The descriptor of collective `seq`'s `step` / `chunk` (the slot: 0 / 0; the stage: 1 /
/// the chunk's number in the collective, wrapping at 2^16).
pub(super) fn encode(
    call: &Call,
    seq: u64,
    group: u32,
    rank: usize,
    step: u16,
    chunk: u16,
) -> Desc {
    let mut b = [0u8; 40];
    Header {
        group,
        seq,
        step,
        chunk,
        rank: rank as u16,
        call: *call,
    }
    .encode(&mut b[..HEADER_LEN]);
    std::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    })
}

pub(super) fn decode(desc: &Desc, rank: usize) -> Result<Header> {
    let mut b = [0u8; 40];
    for (i, w) in desc.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    Header::decode(&b[..HEADER_LEN]).map_err(|e| CollectiveError::Malformed {
        node: format!("rank {rank}"),
        reason: format!("arena descriptor: {e}"),
    })
}

pub(super) fn arena_err(g: &Group<'_>, e: ArenaError, call: &Call, seq: u64) -> CollectiveError {
    match e {
        // Step 0: the arena round is the collective's only step.
        ArenaError::Timeout { rank, .. } => CollectiveError::Timeout {
            kind: call.kind,
            seq,
            rank,
            node: g.ranks.get(rank).cloned().unwrap_or_default(),
            step: 0,
            after: g.opts.timeout,
        },
        ArenaError::Malformed { rank, reason } => CollectiveError::Malformed {
            node: g.ranks.get(rank).cloned().unwrap_or_default(),
            reason,
        },
        other => CollectiveError::InvalidArgument(format!("arena: {other}")),
    }
}

impl Group<'_> {
    /// Whether an all_reduce takes the arena; sets it up on first use (its own
    /// collectives then take the fabric path).
    pub(crate) fn arena_eligible(&mut self) -> Result<bool> {
        if !self.opts.arena {
            return Ok(false);
        }
        match &self.arena {
            ArenaState::Setting => Ok(false),
            ArenaState::Ready(_) => Ok(true),
            ArenaState::Failed(why) => Err(CollectiveError::Poisoned(why.clone())),
            ArenaState::Unset => self.setup_arena().map(|()| true),
        }
    }

    /// The slot each rank gets: the largest all_reduce the arena carries in one round.
    pub(crate) fn arena_slot_bytes(&self) -> usize {
        self.opts.small_bytes.max(64).next_multiple_of(64)
    }

    /// Creates (rank 0) or opens the arena; every rank learns whether all of them could.
    pub(crate) fn setup_arena(&mut self) -> Result<()> {
        self.arena = ArenaState::Setting;
        let outcome = self.open_arena();
        self.arena = match outcome {
            Ok(path) => ArenaState::Ready(Box::new(path)),
            Err(e) => {
                self.arena = ArenaState::Failed(e.to_string());
                return Err(e);
            }
        };
        Ok(())
    }

    fn open_arena(&mut self) -> Result<ArenaPath> {
        let (n, slot, stage) = (self.size(), self.arena_slot_bytes(), self.opts.arena_bytes);
        let mut name = [0u8; NAME_BYTES];
        let mut created = None;
        if self.rank == 0 {
            let s = format!(
                "hf-arena-{}-{:08x}-{}",
                std::process::id(),
                self.id,
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            match Arena::create(&s, n, slot, stage) {
                Ok(a) => created = Some(a),
                Err(e) => tracing::warn!("collective arena not created: {e}"),
            }
            name[..s.len()].copy_from_slice(s.as_bytes());
        }
        self.broadcast(&mut name, 0)?;
        let arena = match created {
            Some(a) => Ok(a),
            None => {
                let end = name.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES);
                let s = String::from_utf8_lossy(&name[..end]).into_owned();
                Arena::open(&s, n, slot, stage)
            }
        };
        let mut ok = [u8::from(arena.is_ok())];
        self.all_reduce(&mut ok, ReduceOp::Min)?;
        let why = |e: String| CollectiveError::InvalidArgument(format!("GroupOptions::arena: {e}"));
        let arena = arena.map_err(|e| why(format!("this rank cannot map the arena: {e}")))?;
        if self.rank == 0 {
            // Everybody answered: those who could open it did, the name is no longer needed.
            let _ = arena.unlink();
        }
        if ok[0] == 0 {
            return Err(why(
                "a rank could not map the group's arena (not all ranks share this host?)".into(),
            ));
        }
        Ok(ArenaPath {
            arena,
            mine: Vec::new(),
            peer: Vec::new(),
            rounds: 0,
            chunks: 0,
            scratch: Vec::new(),
        })
    }

    /// all_reduce of `buf` (a barrier: an empty one) as collective `seq` through the arena.
    pub(crate) fn arena_all_reduce<T: Element>(
        &mut self,
        buf: &mut [T],
        op: ReduceOp,
        call: &Call,
        seq: u64,
    ) -> Result<()> {
        // Fabric-path messages of earlier collectives move on only while awaited: finish
        // them first, or a peer still in that collective never gets them.
        while let Some(p) = self.inflight.pop_front() {
            p.finish()?;
        }
        let ArenaState::Ready(mut path) = std::mem::take(&mut self.arena) else {
            return Err(CollectiveError::InvalidArgument(
                "arena is not set up".into(),
            ));
        };
        let out = if buf.len() * T::DTYPE.size() <= self.arena_slot_bytes() {
            self.arena_round(&mut path, buf, op, call, seq)
        } else {
            self.stage_all_reduce(&mut path, buf, op, call, seq)
        };
        self.arena = ArenaState::Ready(path);
        out
    }

    fn arena_round<T: Element>(
        &self,
        p: &mut ArenaPath,
        buf: &mut [T],
        op: ReduceOp,
        call: &Call,
        seq: u64,
    ) -> Result<()> {
        let bytes = buf.len() * T::DTYPE.size();
        // Wrapping (0 included): the halves alternate with the parity, and the waits
        // compare sequence numbers with wrapping arithmetic.
        p.rounds = p.rounds.wrapping_add(1);
        let aseq = p.rounds;
        let deadline = Instant::now() + self.opts.timeout;
        p.mine.resize(bytes, 0);
        p.peer.resize(bytes, 0);
        op::write_bytes(&mut p.mine, buf);
        let desc = encode(call, seq, self.id, self.rank, 0, 0);
        let e = |e| arena_err(self, e, call, seq);
        p.arena
            .publish(self.rank, aseq, &desc, &p.mine)
            .map_err(e)?;
        for from in 0..self.size() {
            // Our own bytes from our private copy: the region is shared, the copy is not.
            let src = if from == self.rank {
                &p.mine
            } else {
                self.arena_read(p, from, aseq, call, seq, deadline)?;
                &p.peer
            };
            // Rank order on every rank: the same sums in the same order, bit for bit.
            if from == 0 {
                op::copy_from_bytes(buf, src);
            } else {
                op::reduce_from_bytes(buf, src, op);
            }
        }
        if op == ReduceOp::Avg {
            op::divide(buf, self.size());
        }
        Ok(())
    }

    /// Reads rank `from`'s arena round `aseq` into `p.peer`, checking its descriptor.
    fn arena_read(
        &self,
        p: &mut ArenaPath,
        from: usize,
        aseq: u32,
        call: &Call,
        seq: u64,
        deadline: Instant,
    ) -> Result<()> {
        let (desc, filled) = match p.arena.read(from, aseq, &mut p.peer, deadline) {
            Ok(Ok(d)) => (d, true),
            Ok(Err(d)) => (d, false),
            Err(err) => return Err(arena_err(self, err, call, seq)),
        };
        let theirs = decode(&desc, from)?;
        if theirs.seq != seq || usize::from(theirs.rank) != from {
            return Err(CollectiveError::Malformed {
                node: self.ranks[from].clone(),
                reason: format!(
                    "arena holds collective {} of rank {}",
                    theirs.seq, theirs.rank
                ),
            });
        }
        if let Some(err) = disagreement(seq, call, &theirs) {
            return Err(err);
        }
        if !filled {
            return Err(CollectiveError::Malformed {
                node: self.ranks[from].clone(),
                reason: "arena length disagrees with its descriptor".into(),
            });
        }
        Ok(())
    }
}
