//! Runs a schedule: cuts each step's ranges into chunks, keeps up to `window` messages in
//! flight, reduces every received chunk straight out of its payload (a shared-memory slot
//! when the link has pools), and fails after `timeout` without progress. Resumable:
//! [`Exec::poll`] does what it can and returns, so a [`Pending`] handle can be tested.

use super::algo::Step;
use super::dtype::Element;
use super::error::{CollectiveError, Result};
use super::group::{Group, Key};
use super::op::{copy_from_bytes, divide, reduce_from_bytes, write_bytes, ReduceOp};
use super::wire::{Call, Header, HEADER_LEN};
use std::ops::Range;
use std::time::Instant;

/// Most arrived messages sorted per freed window place (each is one non-blocking receive).
const DRAIN_MAX: usize = 64;

pub(crate) struct Exec<T> {
    pub call: Call,
    pub seq: u64,
    steps: Vec<Step>,
    snapshot: Option<Vec<T>>,
    /// Divide this range by the group size at the end (`avg`).
    divide: Option<Range<usize>>,
    chunk_elems: usize,
    step: usize,
    /// Chunks of the current step's sends started (over all its sends, in order).
    sent: usize,
    /// Next chunk expected, per receive of the current step.
    recv_next: Vec<usize>,
    last_progress: Instant,
    pub done: bool,
}

/// Non-blocking receives (a yield between each) before a rank with sends in flight waits
/// on the oldest one's acknowledgement instead.
const ARRIVAL_POLLS: usize = 16;

/// True if a message arrived within [`ARRIVAL_POLLS`] polls.
fn poll_arrivals(g: &Group<'_>) -> Result<bool> {
    for i in 0..ARRIVAL_POLLS {
        if i > 0 {
            std::thread::yield_now();
        }
        if g.pull(None)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn chunks(len: usize, per: usize) -> usize {
    len.div_ceil(per).max(1)
}

fn chunk_range(r: &Range<usize>, c: usize, per: usize) -> Range<usize> {
    let start = (r.start + c * per).min(r.end);
    start..(start + per).min(r.end)
}

impl<T: Element> Exec<T> {
    pub fn new(
        g: &Group<'_>,
        call: Call,
        steps: Vec<Step>,
        snapshot: Option<Vec<T>>,
        divide: Option<Range<usize>>,
    ) -> Result<Exec<T>> {
        let chunk_elems = (g.opts.chunk_bytes / T::DTYPE.size()).max(1);
        for s in &steps {
            let longest = s
                .sends
                .iter()
                .map(|x| x.range.len())
                .chain(s.recvs.iter().map(|r| r.range.len()))
                .max()
                .unwrap_or(0);
            if chunks(longest, chunk_elems) > usize::from(u16::MAX) {
                return Err(CollectiveError::InvalidArgument(format!(
                    "{} elements need more than 65535 chunks of {} bytes: raise chunk_bytes",
                    longest, g.opts.chunk_bytes
                )));
            }
        }
        if steps.len() > usize::from(u16::MAX) {
            return Err(CollectiveError::InvalidArgument(
                "more than 65535 steps".into(),
            ));
        }
        let recv_next = steps.first().map_or(Vec::new(), |s| vec![0; s.recvs.len()]);
        Ok(Exec {
            call,
            seq: g.seq,
            steps,
            snapshot,
            divide,
            chunk_elems,
            step: 0,
            sent: 0,
            recv_next,
            last_progress: Instant::now(),
            done: false,
        })
    }

    fn header(&self, g: &Group<'_>, chunk: usize) -> Header {
        Header {
            group: g.id,
            seq: self.seq,
            step: self.step as u16,
            chunk: chunk as u16,
            rank: g.rank as u16,
            call: self.call,
        }
    }

    /// Starts the current step's next chunk; false when all are started.
    fn send_next(&mut self, g: &mut Group<'_>, buf: &[T]) -> Result<bool> {
        let st = &self.steps[self.step];
        let mut i = self.sent;
        for x in &st.sends {
            let n = chunks(x.range.len(), self.chunk_elems);
            if i < n {
                let range = chunk_range(&x.range, i, self.chunk_elems);
                let src = match (&self.snapshot, x.from_snapshot) {
                    (Some(s), true) => &s[range],
                    _ => &buf[range],
                };
                let header = self.header(g, i);
                let len = src.len() * T::DTYPE.size();
                let pending = g.send_to(x.peer, &header, len, |out| write_bytes(out, src))?;
                g.inflight.push_back(pending);
                self.sent += 1;
                return Ok(true);
            }
            i -= n;
        }
        Ok(false)
    }

    /// Takes every chunk of the current step that has arrived, in order; true if all have.
    fn receive_ready(&mut self, g: &Group<'_>, buf: &mut [T]) -> Result<bool> {
        let st = &self.steps[self.step];
        let mut all = true;
        for (i, rv) in st.recvs.iter().enumerate() {
            let n = chunks(rv.range.len(), self.chunk_elems);
            while self.recv_next[i] < n {
                let c = self.recv_next[i];
                let key = Key {
                    group: g.id,
                    seq: self.seq,
                    step: self.step as u16,
                    chunk: c as u16,
                    rank: rv.peer as u16,
                };
                let Some(msg) = g.take(&key)? else {
                    all = false;
                    break;
                };
                let range = chunk_range(&rv.range, c, self.chunk_elems);
                let body = &msg.payload[HEADER_LEN..];
                if body.len() != range.len() * T::DTYPE.size() {
                    return Err(CollectiveError::Malformed {
                        node: msg.source.to_string(),
                        reason: format!(
                            "step {} chunk {c}: {} bytes where {} were due",
                            self.step,
                            body.len(),
                            range.len() * T::DTYPE.size()
                        ),
                    });
                }
                match (rv.reduce, self.call.op) {
                    (true, Some(op)) => reduce_from_bytes(&mut buf[range], body, op),
                    (true, None) => reduce_from_bytes(&mut buf[range], body, ReduceOp::Sum),
                    (false, _) => copy_from_bytes(&mut buf[range], body),
                }
                self.recv_next[i] += 1;
                self.last_progress = Instant::now();
            }
        }
        Ok(all)
    }

    /// Waits for the oldest message in flight (of this collective or an earlier one) to be
    /// acknowledged.
    fn retire_oldest(&mut self, g: &mut Group<'_>) -> Result<()> {
        if let Some(p) = g.inflight.pop_front() {
            match p.finish() {
                Ok(_) => self.last_progress = Instant::now(),
                // A peer that received everything it needed may have left before its
                // acknowledgement reached us. If it still needed this message, the ranks
                // waiting on it fail by their timeout.
                Err(e @ crate::Error::Unreachable { .. }) => {
                    tracing::debug!("collective message to a peer that left: {e}");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Frees a place in the window: sorts what has arrived into the mailbox first, then
    /// waits on the oldest send. Without the first part a ring step longer than the fabric's
    /// per-peer unread limit (256 messages; a 256 MiB all_reduce on 3 ranks has 341 chunks
    /// per step) deadlocks: every rank waits on its own acknowledgements while its left
    /// neighbour's messages stay unread, so its right neighbour stops acknowledging.
    fn make_room(&mut self, g: &mut Group<'_>) -> Result<()> {
        for _ in 0..DRAIN_MAX {
            if !g.pull(None)? {
                break;
            }
        }
        self.retire_oldest(g)
    }

    /// Makes what progress it can; with `block`, waits (up to the timeout without
    /// progress) until the collective is done. True once done.
    pub fn poll(&mut self, g: &mut Group<'_>, buf: &mut [T], block: bool) -> Result<bool> {
        loop {
            if self.step == self.steps.len() {
                // The acknowledgements of the last messages are collected later (by the
                // next collective's window): a rank may be done, and gone, once it has
                // received everything it needed.
                if let Some(r) = self.divide.take() {
                    divide(&mut buf[r], g.size());
                }
                self.done = true;
                return Ok(true);
            }
            let overlap = self.steps[self.step].overlaps();
            // With overlap, every send of the step goes out before a receive lands.
            loop {
                if g.inflight.len() >= g.opts.window {
                    if !overlap {
                        break;
                    }
                    self.make_room(g)?;
                }
                if !self.send_next(g, buf)? {
                    break;
                }
            }
            let all_sent = self.total_sends() == self.sent;
            if self.receive_ready(g, buf)? && all_sent {
                self.step += 1;
                self.sent = 0;
                self.recv_next = self
                    .steps
                    .get(self.step)
                    .map_or(Vec::new(), |s| vec![0; s.recvs.len()]);
                continue;
            }
            if !all_sent && g.inflight.len() >= g.opts.window {
                self.make_room(g)?;
                continue;
            }
            // Nothing to do but wait. The message waited for is the critical path, our
            // oldest send's acknowledgement (a round trip) is not: poll for arrivals a
            // bounded while, yielding the core (ranks may oversubscribe it), and only then
            // wait on the oldest send. A transfer moves on (a retransmission, a chunk the
            // window held back) only while it is awaited, so the polls stay short.
            if !g.inflight.is_empty() {
                if !poll_arrivals(g)? {
                    self.retire_oldest(g)?;
                }
                continue;
            }
            let deadline = self.last_progress + g.opts.timeout;
            if Instant::now() >= deadline {
                return Err(self.timeout(g));
            }
            let got = g.pull(block.then_some(deadline))?;
            if !got && !block {
                return Ok(false);
            }
        }
    }

    fn total_sends(&self) -> usize {
        self.steps[self.step]
            .sends
            .iter()
            .map(|x| chunks(x.range.len(), self.chunk_elems))
            .sum()
    }

    fn timeout(&self, g: &Group<'_>) -> CollectiveError {
        let st = &self.steps[self.step];
        let rank = st
            .recvs
            .iter()
            .enumerate()
            .find(|(i, rv)| self.recv_next[*i] < chunks(rv.range.len(), self.chunk_elems))
            .map_or(g.rank, |(_, rv)| rv.peer);
        CollectiveError::Timeout {
            kind: self.call.kind,
            seq: self.seq,
            rank,
            node: g.ranks[rank].clone(),
            step: self.step,
            after: g.opts.timeout,
        }
    }
}
