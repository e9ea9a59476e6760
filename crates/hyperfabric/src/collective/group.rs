//! [`Group`]: a communicator over an ordered list of nodes, and the mailbox that sorts the
//! fabric's incoming messages by (group, collective, step, chunk, sender).

use super::arena::ArenaState;
use super::error::{CollectiveError, Result};
pub use super::options::{GroupOptions, ARENA_BYTES_DEFAULT};
use super::wire::{Call, Header, Kind, HEADER_LEN};
use crate::fabric::{Endpoint, Fabric, SendOptions};
use crate::runtime::{Message, PendingSend};
use crate::types::DataType;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name every collective message carries, followed by the group id in hex: the mark
/// that keeps collectives apart from other traffic on the same fabric.
pub const TAG_PREFIX: &str = "hf.coll/";
/// Most collective messages held for later steps or collectives (all groups of a fabric).
pub const MAILBOX_MAX: usize = 4096;
/// Most non-collective messages held while collectives run ([`Group::take_foreign`]).
pub const FOREIGN_MAX: usize = 1024;
/// Longest single wait on the fabric's receive queue (another group may have taken ours
/// into the shared mailbox meanwhile).
const RECV_SLICE: Duration = Duration::from_millis(10);

/// Where one message belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub group: u32,
    pub seq: u64,
    pub step: u16,
    pub chunk: u16,
    pub rank: u16,
}

/// Collective messages that arrived before their step, shared by a group and its
/// sub-groups (they all read the one receive queue of their fabric).
#[derive(Default)]
pub(crate) struct Mailbox {
    msgs: HashMap<Key, Message>,
    /// Per group: the collective it runs now (messages of that one are checked on arrival).
    active: HashMap<u32, (u64, Call)>,
    /// Per group: a disagreement or abort seen on arrival, for the group's next poll.
    failed: HashMap<u32, CollectiveError>,
    /// Per group: the latest abort that came while the group ran no collective (sequence
    /// number, rank, reason); its next collective of that number or later fails at once.
    aborts: HashMap<u32, (u64, usize, String)>,
    foreign: VecDeque<Message>,
}

/// A communicator: the ranks are the positions of the nodes in the list every member
/// passes (the same list, in the same order, on every member).
///
/// A group reads its fabric's receive queue while a collective runs; messages that are not
/// collectives are kept (up to [`FOREIGN_MAX`]) for [`Group::take_foreign`]. More groups on
/// one fabric come from [`Group::split`] / [`Group::subgroup`], which share the sorting.
pub struct Group<'f> {
    pub(crate) fabric: &'f Fabric,
    pub(crate) ranks: Arc<[String]>,
    pub(crate) rank: usize,
    pub(crate) id: u32,
    pub(crate) seq: u64,
    pub(crate) opts: GroupOptions,
    endpoints: Vec<Option<Endpoint<'f>>>,
    send_opts: SendOptions,
    pub(crate) mailbox: Arc<Mutex<Mailbox>>,
    pub(crate) poisoned: Option<String>,
    /// Messages sent and not yet acknowledged (at most `window`; the oldest is awaited
    /// before another goes out). They outlive their collective: see `Exec::poll`.
    pub(crate) inflight: VecDeque<PendingSend<'static>>,
    /// The intra-host arena (`GroupOptions::arena`), set up at the first call that uses it.
    pub(crate) arena: ArenaState,
    /// The path the latest collective took ([`Group::last_path`]).
    pub(crate) last_path: &'static str,
}

fn group_id(parent: u32, ranks: &[String]) -> u32 {
    let mut h = blake3::Hasher::new();
    h.update(&parent.to_le_bytes());
    for r in ranks {
        h.update(&(r.len() as u64).to_le_bytes());
        h.update(r.as_bytes());
    }
    let b = h.finalize();
    let b = b.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl<'f> Group<'f> {
    /// The group of `ranks` (node ids of `fabric`'s file; this node must be one of them).
    pub fn new(fabric: &'f Fabric, ranks: &[impl AsRef<str>]) -> Result<Group<'f>> {
        Group::with_options(fabric, ranks, GroupOptions::default())
    }

    pub fn with_options(
        fabric: &'f Fabric,
        ranks: &[impl AsRef<str>],
        opts: GroupOptions,
    ) -> Result<Group<'f>> {
        let ranks: Vec<String> = ranks.iter().map(|r| r.as_ref().to_owned()).collect();
        let context = opts.context;
        Group::build(fabric, ranks, context, opts, Arc::default())
    }

    fn build(
        fabric: &'f Fabric,
        ranks: Vec<String>,
        parent: u32,
        opts: GroupOptions,
        mailbox: Arc<Mutex<Mailbox>>,
    ) -> Result<Group<'f>> {
        opts.validate()?;
        let bad = |why: String| Err(CollectiveError::InvalidArgument(why));
        if ranks.is_empty() || ranks.len() > usize::from(u16::MAX) {
            return bad(format!("a group has 1..=65535 ranks (got {})", ranks.len()));
        }
        for (i, r) in ranks.iter().enumerate() {
            if ranks[..i].contains(r) {
                return bad(format!("`{r}` appears twice in the rank list"));
            }
            if fabric.config().node(r).is_none() {
                return Err(crate::Error::NodeNotFound { node: r.clone() }.into());
            }
        }
        let Some(rank) = ranks.iter().position(|r| r == fabric.node_id()) else {
            return bad(format!(
                "this node `{}` is not in the rank list",
                fabric.node_id()
            ));
        };
        let id = group_id(parent, &ranks);
        let send_opts = SendOptions::new()
            .data_type(DataType::Tensor)
            .name(format!("{TAG_PREFIX}{id:08x}"))
            .timeout(opts.timeout);
        Ok(Group {
            fabric,
            endpoints: (0..ranks.len()).map(|_| None).collect(),
            ranks: ranks.into(),
            rank,
            id,
            seq: 0,
            opts,
            send_opts,
            mailbox,
            poisoned: None,
            inflight: VecDeque::new(),
            arena: ArenaState::Unset,
            last_path: "none",
        })
    }

    /// Changes how long a rank waits without progress ([`GroupOptions::timeout`]) for the
    /// collectives started from now on: a job gives its first barrier (every rank still
    /// starting) a longer bound than the steady-state calls after it.
    pub fn set_timeout(&mut self, t: Duration) -> Result<()> {
        if t.is_zero() {
            return Err(CollectiveError::InvalidArgument(
                "timeout must be above zero".into(),
            ));
        }
        self.opts.timeout = t;
        self.send_opts = self.send_opts.clone().timeout(t);
        Ok(())
    }

    /// The fabric this group runs on (for traffic of its own beside the collectives).
    pub fn fabric(&self) -> &'f Fabric {
        self.fabric
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }
    pub fn size(&self) -> usize {
        self.ranks.len()
    }
    /// The node ids, by rank.
    pub fn ranks(&self) -> &[String] {
        &self.ranks
    }
    /// The path the latest collective started on this group took: `arena` (the intra-host
    /// fast path), `recursive_doubling` or `ring` (all_reduce over fabric messages),
    /// `fabric` (the other collectives), `local` (a group of one), `none` before any: what
    /// a benchmark reports, so a comparison can check it measured what it names.
    pub fn last_path(&self) -> &'static str {
        self.last_path
    }

    pub fn options(&self) -> &GroupOptions {
        &self.opts
    }

    /// A sub-group of the ranks `members` (ranks of this group; every member calls this
    /// with the same list, non-members do not call it). It shares this group's sorting of
    /// the receive queue; its ranks are the positions in `members`.
    pub fn subgroup(&self, members: &[usize]) -> Result<Group<'f>> {
        let mut ranks = Vec::with_capacity(members.len());
        for &m in members {
            let node = self.ranks.get(m).ok_or_else(|| {
                CollectiveError::InvalidArgument(format!(
                    "rank {m} is not in a group of {}",
                    self.size()
                ))
            })?;
            ranks.push(node.clone());
        }
        Group::build(
            self.fabric,
            ranks,
            self.id,
            self.opts.clone(),
            Arc::clone(&self.mailbox),
        )
    }

    /// MPI's `comm_split`: every rank calls it (a collective over this group); the ranks
    /// with the same `color` form a sub-group, ordered by their rank here. `None` takes
    /// part in the exchange but joins no group.
    pub fn split(&mut self, color: Option<u32>) -> Result<Option<Group<'f>>> {
        let mut colors = vec![-1i64; self.size()];
        colors[self.rank] = color.map_or(-1, i64::from);
        self.all_gather(&mut colors)?;
        let Some(c) = color else { return Ok(None) };
        let members: Vec<usize> = (0..self.size())
            .filter(|&r| colors[r] == i64::from(c))
            .collect();
        let mut g = self.subgroup(&members)?;
        g.id = group_id(self.id ^ c.wrapping_mul(0x9e37_79b9), &g.ranks);
        g.send_opts = g
            .send_opts
            .clone()
            .name(format!("{TAG_PREFIX}{:08x}", g.id));
        Ok(Some(g))
    }

    /// A message that arrived while collectives ran and is not one of theirs.
    pub fn take_foreign(&self) -> Option<Message> {
        self.mailbox.lock().foreign.pop_front()
    }

    pub(crate) fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(CollectiveError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Marks the start of collective `seq`: older leftovers of this group go, and messages
    /// of this one are checked against `call` as they arrive.
    pub(crate) fn begin(&self, seq: u64, call: Call) -> Result<()> {
        let mut mb = self.mailbox.lock();
        let id = self.id;
        mb.msgs.retain(|k, _| k.group != id || k.seq >= seq);
        if let Some((at, rank, reason)) = mb.aborts.remove(&id) {
            if at >= seq {
                return Err(CollectiveError::Aborted {
                    seq: at,
                    rank,
                    reason,
                });
            }
        }
        mb.active.insert(id, (seq, call));
        let early: Vec<Key> = mb
            .msgs
            .keys()
            .filter(|k| k.group == id && k.seq == seq)
            .copied()
            .collect();
        for k in early {
            let theirs = mb
                .msgs
                .get(&k)
                .and_then(|m| Header::decode(&m.payload).ok());
            if let Some(h) = theirs {
                if let Some(e) = disagreement(seq, &call, &h) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn end(&self) {
        self.mailbox.lock().active.remove(&self.id);
    }

    /// The message `key`, if it arrived (its sender checked against the rank list).
    pub(crate) fn take(&self, key: &Key) -> Result<Option<Message>> {
        let msg = {
            let mut mb = self.mailbox.lock();
            if let Some(e) = mb.failed.remove(&self.id) {
                return Err(e);
            }
            mb.msgs.remove(key)
        };
        match msg {
            Some(m) if m.source != self.ranks[usize::from(key.rank)] => {
                Err(CollectiveError::Malformed {
                    node: m.source.to_string(),
                    reason: format!(
                        "it claims rank {} of a group where that is `{}`",
                        key.rank,
                        self.ranks[usize::from(key.rank)]
                    ),
                })
            }
            other => Ok(other),
        }
    }

    /// Waits up to `deadline` (or not at all) for one message from the fabric and sorts it;
    /// true if one came.
    pub(crate) fn pull(&self, deadline: Option<Instant>) -> Result<bool> {
        let wait = deadline.map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(Instant::now()).min(RECV_SLICE)
        });
        let msg = match self.fabric.recv_timeout(wait) {
            Ok(m) => m,
            Err(crate::Error::Timeout { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        sort(&mut self.mailbox.lock(), msg)?;
        Ok(true)
    }

    /// Starts one message of a collective to rank `peer`: the header, then `body` writes
    /// `body_len` bytes after it (into a slot of the shared-memory pool when the link has
    /// one).
    pub(crate) fn send_to(
        &mut self,
        peer: usize,
        header: &Header,
        body_len: usize,
        body: impl FnOnce(&mut [u8]),
    ) -> Result<PendingSend<'static>> {
        let ep = match &mut self.endpoints[peer] {
            Some(ep) => ep,
            slot => slot.insert(
                self.fabric
                    .endpoint(&self.ranks[peer], self.send_opts.clone())?,
            ),
        };
        let mut buf = ep.loan(HEADER_LEN + body_len)?;
        header.encode(&mut buf[..HEADER_LEN]);
        body(&mut buf[HEADER_LEN..]);
        Ok(ep.start_send_loaned(buf)?)
    }

    /// Tells every other rank that this one gave up collective `seq`. The messages join
    /// `inflight`, so the group's drop waits for their acknowledgements (bounded: a dead
    /// rank refuses at once, a silent one within the group's timeout): a process that gives
    /// up and leaves at once must not take its abort with it, or the others wait out their
    /// timeout instead of hearing why.
    pub(crate) fn abort(&mut self, seq: u64, call: Call, reason: &str) {
        let reason = &reason.as_bytes()[..reason.len().min(1024)];
        let header = Header {
            group: self.id,
            seq,
            step: 0,
            chunk: 0,
            rank: self.rank as u16,
            call: Call {
                kind: Kind::Abort,
                ..call
            },
        };
        let me = self.rank;
        for peer in (0..self.ranks.len()).filter(|&r| r != me) {
            match self.send_to(peer, &header, reason.len(), |out| {
                out.copy_from_slice(reason)
            }) {
                Ok(pending) => self.inflight.push_back(pending),
                Err(e) => {
                    tracing::debug!("abort of collective #{seq} not sent to rank {peer}: {e}")
                }
            }
        }
    }
}

impl Drop for Group<'_> {
    /// Waits for the acknowledgements still due (each within the group's timeout): a
    /// process that leaves right after its last collective must not take undelivered
    /// messages with it. A peer that already left makes its wait fail at once (refused
    /// reconnection); that error has nobody to go to and is dropped.
    fn drop(&mut self) {
        for p in self.inflight.drain(..) {
            if let Err(e) = p.finish() {
                tracing::debug!("collective message unacknowledged at group end: {e}");
            }
        }
    }
}

/// What differs between the collective this rank runs (`ours`) and the one a message says
/// its sender runs.
pub(crate) fn disagreement(seq: u64, ours: &Call, h: &Header) -> Option<CollectiveError> {
    let theirs = &h.call;
    if theirs.kind == Kind::Abort {
        return None;
    }
    let (field, o, t) = if theirs.kind != ours.kind {
        ("operation", ours.kind.to_string(), theirs.kind.to_string())
    } else if theirs.dtype != ours.dtype {
        (
            "element type",
            ours.dtype.to_string(),
            theirs.dtype.to_string(),
        )
    } else if theirs.op != ours.op {
        let name = |o: Option<super::ReduceOp>| o.map_or("-".into(), |o| o.to_string());
        ("reduction", name(ours.op), name(theirs.op))
    } else if theirs.count != ours.count {
        (
            "element count",
            ours.count.to_string(),
            theirs.count.to_string(),
        )
    } else if theirs.root != ours.root {
        ("root", ours.root.to_string(), theirs.root.to_string())
    } else {
        return None;
    };
    Some(CollectiveError::Mismatch {
        kind: ours.kind,
        seq,
        rank: usize::from(h.rank),
        field,
        ours: o,
        theirs: t,
    })
}

/// Files one message from the fabric: a collective's by its key (checked against the
/// collective its group runs now), an abort as its group's failure, anything else aside.
fn sort(mb: &mut Mailbox, msg: Message) -> Result<()> {
    if !msg
        .name
        .as_deref()
        .is_some_and(|n| n.starts_with(TAG_PREFIX))
    {
        if mb.foreign.len() >= FOREIGN_MAX {
            return Err(CollectiveError::Limit {
                what: "non-collective messages held during collectives (read them with Group::take_foreign)",
                limit: FOREIGN_MAX,
            });
        }
        mb.foreign.push_back(msg);
        return Ok(());
    }
    let h = Header::decode(&msg.payload).map_err(|e| CollectiveError::malformed(&msg.source, e))?;
    let active = mb.active.get(&h.group).copied();
    if h.call.kind == Kind::Abort {
        note_abort(mb, &h, active, &msg.payload[HEADER_LEN..]);
        return Ok(());
    }
    if let Some((seq, call)) = active {
        if h.seq < seq {
            return Ok(()); // a leftover of a collective that failed here
        }
        if h.seq == seq {
            if let Some(e) = disagreement(seq, &call, &h) {
                mb.failed.insert(h.group, e);
                return Ok(());
            }
        }
    }
    if mb.msgs.len() >= MAILBOX_MAX {
        return Err(CollectiveError::Limit {
            what: "collective messages held for later steps",
            limit: MAILBOX_MAX,
        });
    }
    let key = Key {
        group: h.group,
        seq: h.seq,
        step: h.step,
        chunk: h.chunk,
        rank: h.rank,
    };
    if mb.msgs.insert(key, msg).is_some() {
        return Err(CollectiveError::Malformed {
            node: format!("rank {}", h.rank),
            reason: format!(
                "step {} chunk {} of collective #{} arrived twice",
                h.step, h.chunk, h.seq
            ),
        });
    }
    Ok(())
}

/// Records a peer's abort of collective `h.seq`: it fails the active
/// collective it belongs to, is ignored for one that already ended here, and
/// is held for a collective not yet started.
fn note_abort(mb: &mut Mailbox, h: &Header, active: Option<(u64, Call)>, reason: &[u8]) {
    let reason = String::from_utf8_lossy(reason).into_owned();
    let rank = usize::from(h.rank);
    match active {
        Some((seq, _)) if h.seq >= seq => {
            mb.failed.insert(
                h.group,
                CollectiveError::Aborted {
                    seq: h.seq,
                    rank,
                    reason,
                },
            );
        }
        Some(_) => {} // an abort of a collective that ended here
        None => {
            mb.aborts.insert(h.group, (h.seq, rank, reason));
        }
    }
}
