//! [`Node`]: the state, the commands and the poll side of the core.

use super::event::{CommandError, Event, SendError, TransferId, Transmit};
use super::incoming::Incoming;
use super::outgoing::{End, Out};
use super::pack::Packer;
use super::paths::{LinkId, Paths};
use super::time::Time;
use super::CoreConfig;
use crate::route::Topology;
use crate::types::{DataType, Priority};
use crate::wire::{flags, node_key, FrameKind, Header};
use std::collections::{HashMap, VecDeque};

/// Counters of one node core (a snapshot; never reset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames dropped because the transmit queue was full.
    pub frames_dropped: u64,
    pub frames_relayed: u64,
    /// Frames ignored: not routed, for an unknown transfer, or from an unknown node.
    pub frames_ignored: u64,
    pub refusals_sent: u64,
    /// Frames dropped because their claimed source cannot be true on their link
    /// ([`super::source::check`]).
    pub frames_bad_source: u64,
    pub deliveries: u64,
    /// Data frames sent with a compressed payload.
    pub chunks_compressed: u64,
}

/// One node's protocol state. See the [module docs](super).
#[derive(Debug)]
pub struct Node {
    pub(super) cfg: CoreConfig,
    pub(super) key: u64,
    pub(super) paths: Paths,
    pub(super) out: Vec<Out>,
    pub(super) inc: Incoming,
    /// Ping sequence -> (destination key, sent at).
    pub(super) pings: HashMap<u64, (u64, Time)>,
    transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<Event>,
    next_transfer: u32,
    next_ping: u64,
    pump_from: usize,
    /// Reused for decompressing a received chunk.
    pub(super) scratch: Vec<u8>,
    /// The chunk compressor (the runtime's decision, [`Packer::pack`]) and its buffer.
    packer: Packer,
    pack_buf: Vec<u8>,
    pub(super) stats: Stats,
}

impl Node {
    /// A node `cfg.name` of `topology` (which must contain it), with no link yet.
    pub fn new(cfg: CoreConfig, topology: Topology) -> Node {
        let inc = Incoming::new(cfg.recv, cfg.limits, cfg.incoming_idle, cfg.finished_linger);
        Node {
            key: node_key(&cfg.name),
            paths: Paths::new(&cfg.name, topology),
            out: Vec::new(),
            inc,
            pings: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_transfer: 0,
            next_ping: 0,
            pump_from: 0,
            scratch: Vec::new(),
            packer: Packer::default(),
            pack_buf: Vec::new(),
            stats: Stats::default(),
            cfg,
        }
    }

    pub fn name(&self) -> &str {
        self.paths.me()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Registers a link to neighbour `peer` (up). `None` when `peer` is not in the
    /// topology or the node has [`LINKS_MAX`](super::LINKS_MAX) links.
    pub fn add_link(&mut self, peer: &str) -> Option<LinkId> {
        self.paths.add_link(peer)
    }

    /// The engine lost the link (or the simulator cut it): transfers using it fail over.
    pub fn link_down(&mut self, now: Time, link: LinkId) {
        if !self.paths.set_up(link, false) {
            return;
        }
        let max = self.cfg.paths_max;
        let mut i = 0;
        while i < self.out.len() {
            if self.out[i].uses(link) {
                let fresh = self.paths.first_hops(self.out[i].dst, max);
                if !self.out[i].fail_over(link, fresh) {
                    let o = self.out.swap_remove(i);
                    self.fail(&o, SendError::Unreachable);
                    continue;
                }
            }
            i += 1;
        }
        self.reap(now);
    }

    pub fn link_up(&mut self, link: LinkId) {
        self.paths.set_up(link, true);
    }

    /// A crash: every open transfer, ping and queued frame is lost without an event; the
    /// links are down until the engine says otherwise; the record of finished transfers
    /// stays (it lives with the delivered data). `incarnation` must differ from every
    /// earlier one, so new transfer ids never meet old ones.
    pub fn restart(&mut self, incarnation: u32) {
        self.cfg.incarnation = incarnation;
        self.next_transfer = 0;
        self.out.clear();
        self.inc.crash();
        self.pings.clear();
        self.transmits.clear();
        self.events.clear();
        let links: Vec<LinkId> = (0..super::LINKS_MAX as u32)
            .map(LinkId)
            .take_while(|l| self.paths.peer(*l).is_some())
            .collect();
        for l in links {
            self.paths.set_up(l, false);
        }
    }

    /// Starts a transfer of `data` to `dst`. Refused locally (nothing sent) when `dst` is
    /// unknown or unreachable, too many transfers are open, or `data` is too large.
    pub fn send(
        &mut self,
        now: Time,
        dst: &str,
        data: Vec<u8>,
        kind: (DataType, Priority),
    ) -> Result<TransferId, CommandError> {
        let dst_key = node_key(dst);
        if self.paths.name_of(dst_key).is_none() || dst_key == self.key {
            return Err(CommandError::UnknownDestination(dst.to_string()));
        }
        self.cfg
            .zones
            .check(self.key, dst_key, &[])
            .map_err(CommandError::ZoneDenied)?;
        let max = self.cfg.limits.outgoing_max;
        if self.out.len() >= max {
            return Err(CommandError::TooMany {
                open: self.out.len(),
                max,
            });
        }
        let len = data.len() as u64;
        if len > self.cfg.recv.max_transfer_bytes {
            let max = self.cfg.recv.max_transfer_bytes;
            return Err(CommandError::TooLarge { len, max });
        }
        let paths = self.paths.first_hops(dst_key, self.cfg.paths_max);
        if paths.is_empty() {
            return Err(CommandError::Unreachable(dst.to_string()));
        }
        let id =
            TransferId((u64::from(self.cfg.incarnation) << 32) | u64::from(self.next_transfer));
        self.next_transfer = self.next_transfer.wrapping_add(1);
        let o = Out::new(id, dst_key, data, kind, self.cfg.send, paths, now);
        self.out.push(o);
        Ok(id)
    }

    /// Sends a ping to `dst`; its pong (or its loss) comes as an event with this sequence.
    pub fn ping(&mut self, now: Time, dst: &str) -> Result<u64, CommandError> {
        let dst_key = node_key(dst);
        if self.paths.name_of(dst_key).is_none() || dst_key == self.key {
            return Err(CommandError::UnknownDestination(dst.to_string()));
        }
        let max = self.cfg.limits.pings_max;
        if self.pings.len() >= max {
            let open = self.pings.len();
            return Err(CommandError::TooMany { open, max });
        }
        let link = self
            .paths
            .next_hop(dst_key)
            .ok_or_else(|| CommandError::Unreachable(dst.to_string()))?;
        let seq = self.next_ping;
        self.next_ping += 1;
        self.pings.insert(seq, (dst_key, now));
        let mut h = Header::new(FrameKind::Ping);
        (h.src, h.dst, h.transfer_id, h.aux) = (self.key, dst_key, seq, now.as_nanos());
        self.push(link, h, Vec::new());
        Ok(seq)
    }

    /// The next frame to send, and the link to send it on.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() {
            self.pump();
        }
        let t = self.transmits.pop_front()?;
        self.stats.frames_out += 1;
        Some(t)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] is due next, if anything waits for time.
    pub fn poll_timeout(&self) -> Option<Time> {
        let out = self.out.iter().filter_map(Out::poll_timeout).min();
        let ping = self
            .pings
            .values()
            .map(|(_, at)| *at + self.cfg.ping_timeout)
            .min();
        [out, ping, self.inc.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Time) {
        for o in &mut self.out {
            if o.poll_timeout().is_some_and(|t| t <= now) {
                o.handle_timeout(now);
            }
        }
        self.inc.handle_timeout(now);
        let timeout = self.cfg.ping_timeout;
        let lost: Vec<(u64, u64)> = self
            .pings
            .iter()
            .filter(|(_, (_, at))| now.since(*at) >= timeout)
            .map(|(seq, (dst, _))| (*seq, *dst))
            .collect();
        for (seq, dst) in lost {
            self.pings.remove(&seq);
            let dst = self.paths.name_of(dst).unwrap_or_default().to_string();
            self.events.push_back(Event::PingTimedOut { dst, seq });
        }
        self.reap(now);
    }

    /// Queues a frame; a full queue drops it (retransmission recovers data; a lost ack or
    /// pong is answered again or times out).
    pub(super) fn push(&mut self, link: LinkId, mut header: Header, payload: Vec<u8>) {
        if self.transmits.len() >= self.cfg.limits.transmit_queue_max {
            self.stats.frames_dropped += 1;
            return;
        }
        // Payloads are at most one chunk or one refusal text, far under u32::MAX.
        header.payload_len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.transmits.push_back(Transmit {
            link,
            header,
            payload,
        });
    }

    /// Fills the transmit queue from the open transfers, one chunk each in turn.
    fn pump(&mut self) {
        let max = self.cfg.limits.transmit_queue_max;
        let mut idle_rounds = 0;
        while self.transmits.len() < max && !self.out.is_empty() && idle_rounds < self.out.len() {
            let i = self.pump_from % self.out.len();
            self.pump_from = self.pump_from.wrapping_add(1);
            let o = &mut self.out[i];
            let Some((link, chunk)) = o.poll_chunk() else {
                idle_rounds += 1;
                continue;
            };
            idle_rounds = 0;
            let mut h = Header::new(FrameKind::Data);
            (h.priority, h.data_type) = (o.priority, o.data_type);
            (h.src, h.dst, h.transfer_id) = (self.key, o.dst, o.id.0);
            (h.offset, h.aux) = (chunk.offset, o.data.len() as u64);
            // The machine hands out chunks inside the transfer.
            let (at, len) = (chunk.offset as usize, chunk.len as usize);
            let raw = &o.data[at..at + len];
            let packed = self
                .packer
                .pack(self.cfg.compression, raw, &mut self.pack_buf);
            let payload = match packed.map(<[u8]>::to_vec) {
                Some(block) => {
                    h.flags = flags::with_compression(0, self.cfg.compression.wire_code());
                    self.stats.chunks_compressed += 1;
                    block
                }
                None => raw.to_vec(),
            };
            self.push(link, h, payload);
        }
    }

    /// Turns ended transfers into events.
    pub(super) fn reap(&mut self, now: Time) {
        let mut i = 0;
        while i < self.out.len() {
            let paths = &self.paths;
            let name = |l: LinkId| paths.peer(l).unwrap_or_default().to_string();
            let Some(end) = self.out[i].end(now, name) else {
                i += 1;
                continue;
            };
            let o = self.out.swap_remove(i);
            match end {
                End::Sent(report) => {
                    let dst = self.dst_name(o.dst);
                    self.events.push_back(Event::Sent {
                        id: o.id,
                        dst,
                        report,
                    });
                }
                End::Failed(error) => self.fail(&o, error),
            }
        }
    }

    fn fail(&mut self, o: &Out, error: SendError) {
        let dst = self.dst_name(o.dst);
        self.events.push_back(Event::Failed {
            id: o.id,
            dst,
            error,
        });
    }

    pub(super) fn dst_name(&self, key: u64) -> String {
        self.paths.name_of(key).unwrap_or_default().to_string()
    }
}
