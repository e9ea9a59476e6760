//! The collectives on a [`Group`]: each starts a [`Pending`] handle (non-blocking) and has a
//! blocking twin that waits on it. All work in place on the caller's buffer.

use super::algo;
use super::dtype::Element;
use super::error::{CollectiveError, Result};
use super::exec::Exec;
use super::group::Group;
use super::op::ReduceOp;
use super::wire::{Call, Kind};
use std::ops::Range;

/// A collective in progress. [`Pending::test`] makes progress without blocking;
/// [`Pending::wait`] runs it to the end. Dropping it unfinished leaves the group unusable
/// (the other ranks are mid-collective): the next call on the group says so.
pub struct Pending<'g, 'f, 'b, T: Element> {
    group: &'g mut Group<'f>,
    buf: &'b mut [T],
    /// reduce on a rank other than the root works on a copy: the caller's buffer stays.
    scratch: Option<Vec<T>>,
    exec: Exec<T>,
    failed: bool,
}

impl<T: Element> Pending<'_, '_, '_, T> {
    /// Progress without waiting for messages; true once the collective completed. It may
    /// wait for the acknowledgement of one message already sent (a transfer moves on, a
    /// retransmission for one, only while it is awaited).
    pub fn test(&mut self) -> Result<bool> {
        self.progress(false)
    }

    /// Runs the collective to its end (or its failure, within the group's timeout).
    pub fn wait(mut self) -> Result<()> {
        self.progress(true).map(|_| ())
    }

    fn progress(&mut self, block: bool) -> Result<bool> {
        if self.failed {
            self.group.check_usable()?;
        }
        if self.exec.done {
            return Ok(true);
        }
        let buf = match &mut self.scratch {
            Some(s) => &mut s[..],
            None => &mut *self.buf,
        };
        match self.exec.poll(self.group, buf, block) {
            Ok(done) => {
                if done {
                    self.group.end();
                }
                Ok(done)
            }
            Err(e) => {
                self.failed = true;
                fail(self.group, &self.exec.call, self.exec.seq, &e);
                Err(e)
            }
        }
    }
}

impl<T: Element> Drop for Pending<'_, '_, '_, T> {
    fn drop(&mut self) {
        if !self.exec.done && !self.failed {
            let why = CollectiveError::InvalidArgument(format!(
                "the handle of {} #{} was dropped before it completed",
                self.exec.call.kind, self.exec.seq
            ));
            fail(self.group, &self.exec.call, self.exec.seq, &why);
        }
    }
}

/// Poisons the group and tells the others (unless they told us).
fn fail(g: &mut Group<'_>, call: &Call, seq: u64, e: &CollectiveError) {
    g.end();
    g.inflight.clear();
    if g.poisoned.is_none() {
        g.poisoned = Some(e.to_string());
    }
    if !matches!(e, CollectiveError::Aborted { .. }) {
        g.abort(seq, *call, &e.to_string());
    }
}

fn blocks(kind: Kind, count: usize, n: usize) -> Result<usize> {
    if !count.is_multiple_of(n) {
        return Err(CollectiveError::InvalidArgument(format!(
            "{kind} needs a buffer of group-size ({n}) blocks: {count} elements is not a multiple"
        )));
    }
    Ok(count / n)
}

impl<'f> Group<'f> {
    fn start<'g, 'b, T: Element>(
        &'g mut self,
        buf: &'b mut [T],
        kind: Kind,
        op: Option<ReduceOp>,
        root: usize,
    ) -> Result<Pending<'g, 'f, 'b, T>> {
        self.check_usable()?;
        let (n, r, count) = (self.size(), self.rank, buf.len());
        if root >= n {
            return Err(CollectiveError::InvalidArgument(format!(
                "root {root} in a group of {n}"
            )));
        }
        let plan = plan(buf, kind, op, (n, r, root), self.opts.small_bytes)?;
        let call = Call {
            kind,
            dtype: T::DTYPE,
            op,
            count: count as u64,
            root: root as u16,
        };
        // A barrier is an arena round of nothing: nobody passes before every rank published.
        let arena =
            matches!(kind, Kind::AllReduce | Kind::Barrier) && n > 1 && self.arena_eligible()?;
        let bytes = count * T::DTYPE.size();
        let (slot, small) = (self.arena_slot_bytes(), self.opts.small_bytes);
        self.last_path = path_name(kind, n, arena, bytes, count, slot, small);
        let Plan {
            steps,
            divide,
            scratch,
            snapshot,
        } = if arena { Plan::default() } else { plan };
        let exec = Exec::new(self, call, steps, snapshot, divide)?;
        let seq = self.seq;
        self.seq += 1;
        if let Err(e) = self.begin(seq, call) {
            fail(self, &call, seq, &e);
            return Err(e);
        }
        if arena {
            let op = op.unwrap_or(ReduceOp::Sum);
            if let Err(e) = self.arena_all_reduce(buf, op, &call, seq) {
                fail(self, &call, seq, &e);
                return Err(e);
            }
        }
        Ok(Pending {
            group: self,
            buf,
            scratch,
            exec,
            failed: false,
        })
    }

    /// Starts an all_reduce: every rank ends with `op` over all ranks' buffers.
    pub fn start_all_reduce<'g, 'b, T: Element>(
        &'g mut self,
        buf: &'b mut [T],
        op: ReduceOp,
    ) -> Result<Pending<'g, 'f, 'b, T>> {
        self.start(buf, Kind::AllReduce, Some(op), 0)
    }
    /// Every rank ends with `op` over all ranks' buffers (same length on every rank).
    pub fn all_reduce<T: Element>(&mut self, buf: &mut [T], op: ReduceOp) -> Result<()> {
        self.start_all_reduce(buf, op)?.wait()
    }

    /// Starts a reduce_scatter; see [`Group::reduce_scatter`].
    pub fn start_reduce_scatter<'g, 'b, T: Element>(
        &'g mut self,
        buf: &'b mut [T],
        op: ReduceOp,
    ) -> Result<Pending<'g, 'f, 'b, T>> {
        self.start(buf, Kind::ReduceScatter, Some(op), 0)
    }
    /// `buf` is `size()` blocks; rank `r` ends with block `r` reduced over all ranks (the
    /// other blocks hold partial results afterwards).
    pub fn reduce_scatter<T: Element>(&mut self, buf: &mut [T], op: ReduceOp) -> Result<()> {
        self.start_reduce_scatter(buf, op)?.wait()
    }

    /// Starts an all_gather; see [`Group::all_gather`].
    pub fn start_all_gather<'g, 'b, T: Element>(
        &'g mut self,
        buf: &'b mut [T],
    ) -> Result<Pending<'g, 'f, 'b, T>> {
        self.start(buf, Kind::AllGather, None, 0)
    }
    /// `buf` is `size()` blocks; rank `r` contributes block `r` and every rank ends with all.
    pub fn all_gather<T: Element>(&mut self, buf: &mut [T]) -> Result<()> {
        self.start_all_gather(buf)?.wait()
    }

    /// Starts a broadcast; see [`Group::broadcast`].
    pub fn start_broadcast<'g, 'b, T: Element>(
        &'g mut self,
        buf: &'b mut [T],
        root: usize,
    ) -> Result<Pending<'g, 'f, 'b, T>> {
        self.start(buf, Kind::Broadcast, None, root)
    }
    /// Every rank ends with `root`'s buffer.
    pub fn broadcast<T: Element>(&mut self, buf: &mut [T], root: usize) -> Result<()> {
        self.start_broadcast(buf, root)?.wait()
    }

    /// Starts a reduce; see [`Group::reduce`].
    pub fn start_reduce<'g, 'b, T: Element>(
        &'g mut self,
        buf: &'b mut [T],
        op: ReduceOp,
        root: usize,
    ) -> Result<Pending<'g, 'f, 'b, T>> {
        self.start(buf, Kind::Reduce, Some(op), root)
    }
    /// `root` ends with `op` over all ranks' buffers; the others' buffers are left as they were.
    pub fn reduce<T: Element>(&mut self, buf: &mut [T], op: ReduceOp, root: usize) -> Result<()> {
        self.start_reduce(buf, op, root)?.wait()
    }

    /// Starts an all_to_all; see [`Group::all_to_all`].
    pub fn start_all_to_all<'g, 'b, T: Element>(
        &'g mut self,
        buf: &'b mut [T],
    ) -> Result<Pending<'g, 'f, 'b, T>> {
        self.start(buf, Kind::AllToAll, None, 0)
    }
    /// `buf` is `size()` blocks: block `j` goes to rank `j`, and block `j` afterwards holds
    /// what rank `j` sent this rank.
    pub fn all_to_all<T: Element>(&mut self, buf: &mut [T]) -> Result<()> {
        self.start_all_to_all(buf)?.wait()
    }

    /// Returns once every rank has called it.
    pub fn barrier(&mut self) -> Result<()> {
        let mut none: [u8; 0] = [];
        let pending = self.start(&mut none, Kind::Barrier, None, 0)?;
        pending.wait()
    }
}

/// What the fabric path of one collective runs: its steps, the part of the buffer an `avg`
/// divides at the end, the copy a non-root reduce works on, all_to_all's input.
struct Plan<T> {
    steps: Vec<algo::Step>,
    divide: Option<Range<usize>>,
    scratch: Option<Vec<T>>,
    snapshot: Option<Vec<T>>,
}

impl<T> Default for Plan<T> {
    fn default() -> Self {
        Plan {
            steps: Vec::new(),
            divide: None,
            scratch: None,
            snapshot: None,
        }
    }
}

/// The fabric path's plan for `kind` on rank `r` of `n` (a buffer of blocks checked);
/// all_reduce up to `small_bytes` takes recursive doubling, above it the ring.
fn plan<T: Element>(
    buf: &[T],
    kind: Kind,
    op: Option<ReduceOp>,
    (n, r, root): (usize, usize, usize),
    small_bytes: usize,
) -> Result<Plan<T>> {
    let count = buf.len();
    let avg = op == Some(ReduceOp::Avg);
    let mut p = Plan::default();
    (p.steps, p.divide) = match kind {
        Kind::AllReduce => {
            let steps = if n == 1 {
                Vec::new()
            } else if count * T::DTYPE.size() <= small_bytes || count < n {
                algo::recursive_doubling_all_reduce(n, r, count)
            } else {
                algo::ring_all_reduce(n, r, count)
            };
            (steps, avg.then_some(0..count))
        }
        Kind::ReduceScatter => {
            let per = blocks(kind, count, n)?;
            (
                algo::reduce_scatter(n, r, per),
                avg.then_some(r * per..(r + 1) * per),
            )
        }
        Kind::AllGather => (algo::all_gather(n, r, blocks(kind, count, n)?), None),
        Kind::Broadcast => (algo::broadcast(n, r, root, count), None),
        Kind::Reduce => {
            if r != root {
                p.scratch = Some(buf.to_vec());
            }
            (
                algo::reduce(n, r, root, count),
                (avg && r == root).then_some(0..count),
            )
        }
        Kind::AllToAll => {
            let per = blocks(kind, count, n)?;
            p.snapshot = Some(buf.to_vec());
            (algo::all_to_all(n, r, per), None)
        }
        Kind::Barrier => (algo::barrier(n, r), None),
        Kind::Abort => {
            return Err(CollectiveError::InvalidArgument(
                "abort is not a collective".into(),
            ))
        }
    };
    Ok(p)
}

/// The name [`Group::last_path`] gives a collective of `bytes` (the arena's slot holds
/// `slot_bytes`, recursive doubling takes all_reduce up to `small_bytes`).
fn path_name(
    kind: Kind,
    n: usize,
    arena: bool,
    bytes: usize,
    count: usize,
    slot_bytes: usize,
    small_bytes: usize,
) -> &'static str {
    match kind {
        _ if n == 1 => "local",
        Kind::AllReduce | Kind::Barrier if arena && bytes <= slot_bytes => "arena",
        Kind::AllReduce if arena => "arena_rs_ag",
        Kind::AllReduce if bytes <= small_bytes || count < n => "recursive_doubling",
        Kind::AllReduce => "ring",
        _ => "fabric",
    }
}
