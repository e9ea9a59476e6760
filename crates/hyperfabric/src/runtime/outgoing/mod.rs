//! Driving an outgoing transfer: the caller's thread asks the sans-IO sender for chunks,
//! frames them, spreads them over the transfer's paths, fails over when a path breaks, and
//! waits for the destination's acks.

mod file;
mod keyed;
mod paths;
mod report;
mod source;
mod table;

use keyed::{note_content, OriginSigner};
pub use source::SendSource;
pub(super) use table::{OutSlot, OutgoingTable};

pub use report::Completion;
pub(crate) use report::SendFailed;

pub use file::{FileRead, FileSource};
pub(crate) use paths::{Path, PathSet};
pub use paths::{PathReport, PathScheduler};

use super::{idle, shmlink, Conn, Lane, NodeInner, Peer};
use crate::auth::identity::Origin;
use crate::compress::Algorithm;
use crate::config::Compression;
use crate::core::pack::Packer;
use crate::error::{Error, Result};
use crate::proto::{ContentCrc, OutgoingTransfer, SendParams, SendState};
use crate::runtime::options::{SendOptions, SendReport};
use crate::types::Strategy;
use crate::wire::{flags, FrameKind, Header, SIGNATURE_LEN};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Transfers up to this size teach the predictive router the link's latency.
const LEARN_MAX_BYTES: u64 = 64 << 10;

/// A send in flight; [`PendingSend::wait`] drives it to completion.
pub struct PendingSend<'a> {
    node: Arc<NodeInner>,
    peer: Arc<Peer>,
    id: u64,
    slot: Arc<OutSlot>,
    source: SendSource<'a>,
    opts: SendOptions,
    paths: PathSet,
    started: Instant,
    read_buf: Vec<u8>,
    compress_buf: Vec<u8>,
    /// The transfer's algorithm, chosen on its first chunk.
    algorithm: Option<Algorithm>,
    /// Kept across chunks: a zstd context allocates, so it is made once per transfer.
    packer: Packer,
    wire_payload_bytes: u64,
    /// Send the Meta (name) again before the next chunk (after a retransmission timeout).
    reannounce: bool,
    /// Stripes (bit per `connections_per_link` index) that had the name since it last
    /// had to go again.
    announced: u32,
    /// The content's CRC32C as chunks first go out (per-node keys only; inline, no
    /// allocation when they go in order).
    content: Option<ContentCrc>,
    /// The transfer's origin signature (made on its first relayed frame) and the buffer
    /// that puts it before a relayed frame's payload (origin.rs).
    origin_sig: Option<[u8; SIGNATURE_LEN]>,
    origin_buf: Vec<u8>,
}

impl<'a> PendingSend<'a> {
    pub(crate) fn start(
        node: &Arc<NodeInner>,
        peer: Arc<Peer>,
        source: SendSource<'a>,
        mut opts: SendOptions,
        paths: PathSet,
    ) -> Result<Self> {
        if matches!(source, SendSource::Loaned(_)) {
            // A loan is sent as it lies in its buffer: compressing it would need a copy.
            opts.compression = Compression::Off;
        }
        let t = &node.tuning;
        // A slot loan goes whole, as one descriptor (slots are at most 1 MiB: a copy
        // fallback over TCP still fits the frame limit).
        let one_chunk = match &source {
            SendSource::Loaned(b) if b.is_shared() => source.len().max(1),
            _ => 0,
        };
        let params = SendParams {
            chunk_len: (t.max_packet_size as u64).max(one_chunk),
            window_bytes: t.window_bytes.max(one_chunk),
            retransmit_timeout: Duration::from_millis(t.retransmit_timeout_ms),
            max_retransmits: t.max_retransmits,
            stall_timeout: opts
                .timeout
                .unwrap_or(Duration::from_millis(t.send_timeout_ms)),
        };
        let started = Instant::now();
        let id = node.next_transfer_id();
        let slot = node.outgoing.slot(
            peer.key,
            paths.first_hop_keys(),
            OutgoingTransfer::new(source.len(), params, started),
        );
        node.outgoing.map.lock().insert(id, Arc::clone(&slot));
        let mut pending = PendingSend {
            node: Arc::clone(node),
            peer,
            id,
            slot,
            source,
            opts,
            paths,
            started,
            read_buf: Vec::new(),
            compress_buf: Vec::new(),
            algorithm: None,
            packer: Packer::default(),
            wire_payload_bytes: 0,
            reannounce: false,
            announced: 0,
            content: node.keys.is_some().then(ContentCrc::default),
            origin_sig: None,
            origin_buf: Vec::new(),
        };
        pending.pump()?;
        // Over shared memory, read what the link holds now (acks of earlier sends): a
        // streaming sender then keeps the link's lease, and the reader thread does not wake
        // up to compete for the sender's core between its waits.
        if let Some(conn) = pending.paths.shm_conn() {
            super::drive::drive(&pending.node, conn, &mut Vec::new());
        }
        Ok(pending)
    }

    pub fn transfer_id(&self) -> u64 {
        self.id
    }

    /// Puts on the wire every chunk the window allows now.
    fn pump(&mut self) -> Result<()> {
        let budget = Duration::from_millis(self.node.tuning.connect_timeout_ms);
        let lane = Lane::of(self.opts.priority, self.node.tuning.qos_enabled);
        loop {
            if self.slot.lost.swap(false, Ordering::AcqRel) && self.paths.drop_dead() {
                self.slot.state.lock().on_connection_lost();
            }
            self.paths
                .health_check(&self.node, lane, Instant::now(), budget);
            if self.paths.all_down() {
                return Err(self.paths.unreachable(&self.peer.id));
            }
            let Some(chunk) = self.slot.state.lock().poll_chunk() else {
                return Ok(());
            };
            let Some(path) = self.paths.pick() else {
                continue;
            };
            let Some((conn, fresh)) = self.paths.conn(path, &self.node, lane, budget) else {
                self.slot.state.lock().on_connection_lost();
                continue;
            };
            if fresh || std::mem::take(&mut self.reannounce) {
                self.announced = 0;
            }
            let (conn, stripe) = self
                .node
                .stripe(self.paths.first_hop(path), conn, lane, budget);
            // A named transfer's name goes first on every connection its chunks take.
            if self.announced & (1 << stripe) == 0 {
                self.announce(&conn);
                self.announced |= 1 << stripe;
            }
            let started = Instant::now();
            match self.send_chunk(&conn, chunk)? {
                Ok(wire_bytes) => self.paths.record(path, wire_bytes, started.elapsed()),
                Err(e) => {
                    tracing::debug!(hop = %conn.peer, "write failed, failing over: {e}");
                    self.paths.mark_down(path);
                    self.slot.state.lock().on_connection_lost();
                }
            }
        }
    }

    /// Frames and writes one chunk; returns the payload bytes put on the wire, or the write
    /// error of the connection (the outer error is fatal: the source could not be read).
    fn send_chunk(
        &mut self,
        conn: &Conn,
        chunk: crate::proto::Chunk,
    ) -> Result<std::io::Result<u64>> {
        let mut h = self.header(FrameKind::Data, conn.peer_key);
        h.offset = chunk.offset;
        h.aux = self.source.len();
        let alg = match self.algorithm {
            Some(a) => a,
            None => {
                let a = match self.opts.compression {
                    Compression::Off => Algorithm::None,
                    Compression::Fixed(a) => a,
                    Compression::Auto => {
                        let sample = self
                            .source
                            .chunk(chunk.offset, chunk.len, &mut self.read_buf)
                            .map_err(|e| {
                                Error::io(format!("reading chunk at offset {}", chunk.offset), e)
                            })?;
                        self.node.outgoing.auto_select(sample, self.opts.link_gbps)
                    }
                };
                self.algorithm = Some(a);
                a
            }
        };
        h.flags = flags::with_transform(h.flags, self.opts.transform.wire_code());
        if self.opts.name.is_some() {
            h.flags |= flags::NAMED;
        }
        // With per-node keys a frame through a relay carries the sender's signature: a pool
        // descriptor cannot, so such frames go by copy.
        let relayed = self.node.keys.is_some() && conn.peer_key != self.peer.key;
        if !relayed && alg == Algorithm::None && chunk.offset == 0 && chunk.len == self.source.len()
        {
            if let Some(sent) = self.send_pooled(conn, &mut h)? {
                if self.content.is_some() {
                    // Pooled sends are of in-memory sources: this read is a slice.
                    let data = self
                        .source
                        .chunk(0, chunk.len, &mut self.read_buf)
                        .map_err(|e| Error::io("reading the transfer", e))?;
                    note_content(&mut self.content, &self.slot, 0, data, h.aux);
                }
                return Ok(sent);
            }
        }
        let data = self
            .source
            .chunk(chunk.offset, chunk.len, &mut self.read_buf)
            .map_err(|e| Error::io(format!("reading chunk at offset {}", chunk.offset), e))?;
        note_content(&mut self.content, &self.slot, chunk.offset, data, h.aux);
        let payload = match self.packer.pack(alg, data, &mut self.compress_buf) {
            Some(packed) => {
                h.flags = flags::with_compression(h.flags, alg.wire_code());
                packed
            }
            None => data,
        };
        let payload = match (&self.node.keys, relayed) {
            (Some(keys), true) => OriginSigner {
                keys,
                origin: Origin {
                    transfer_id: self.id,
                    len: h.aux,
                    sender: self.node.my_key,
                    destination: self.peer.key,
                },
                sig: &mut self.origin_sig,
            }
            .sign(&mut self.origin_buf, &mut h, payload),
            _ => payload,
        };
        if let Err(e) = conn.send(&h, payload) {
            return Ok(Err(e));
        }
        let wire = payload.len() as u64;
        Ok(Ok(self.count_sent(wire)))
    }

    fn count_sent(&mut self, wire: u64) -> u64 {
        self.wire_payload_bytes += wire;
        let stats = &self.node.stats;
        stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes_sent
            .fetch_add(wire + crate::wire::HEADER_LEN as u64, Ordering::Relaxed);
        wire
    }

    /// Sends the whole transfer by pool descriptor when `conn` has buffer pools: a loan of
    /// this link's pool as it is, bytes of at least `POOL_COPY_MIN` copied into a free slot
    /// (one copy end to end). `None`: not possible now, send by copy through the ring.
    fn send_pooled(&mut self, conn: &Conn, h: &mut Header) -> Result<Option<std::io::Result<u64>>> {
        let Some(pools) = conn.pools() else {
            return Ok(None);
        };
        let len = self.source.len();
        let copied = match &mut self.source {
            SendSource::Loaned(buf) => match buf.pools() {
                Some(p) if Arc::ptr_eq(p, pools) => Ok(buf.lend().map(|(idx, _)| idx)),
                _ => Ok(None),
            },
            SendSource::Bytes(data) => pool_copy(conn, pools, data),
            // A mapped file is copied from its mapping like bytes in memory.
            SendSource::File(f) => f.whole().map_or(Ok(None), |d| pool_copy(conn, pools, d)),
        };
        let slot = match copied {
            Ok(Some(slot)) => slot,
            Ok(None) => return Ok(None),
            Err(e) => return Ok(Some(Err(e))),
        };
        let crc = self.opts.verify_payload.then(|| {
            let bytes = self.source.chunk(0, len, &mut self.read_buf).unwrap_or(&[]);
            crate::wire::payload_checksum(bytes)
        });
        let desc = shmlink::Descriptor {
            slot,
            len: len as u32,
            crc,
        };
        h.flags |= flags::LOANED;
        if let Err(e) = conn.send(h, &desc.encode()) {
            return Ok(Some(Err(e)));
        }
        Ok(Some(Ok(self.count_sent(len))))
    }

    /// The header of a frame written to the neighbour `next`.
    fn header(&self, kind: FrameKind, next: u64) -> Header {
        let mut h = Header::new(kind);
        h.src = self.node.my_key;
        h.dst = self.peer.key;
        h.transfer_id = self.id;
        h.priority = self.opts.priority;
        h.data_type = self.opts.data_type;
        // Relays forward by the sender's strategy, not their own default; a frame written
        // to its destination needs none (and so keeps the compact shm form).
        if next != self.peer.key {
            h.strategy = self.opts.strategy.map_or(0, Strategy::wire_code);
        }
        h
    }

    /// Tells the destination the transfer's name over a new connection (best effort: a
    /// failed write shows up on the data frames that follow).
    fn announce(&mut self, conn: &Conn) {
        if let Some(name) = &self.opts.name {
            let mut h = self.header(FrameKind::Meta, conn.peer_key);
            h.aux = self.source.len();
            let name = &name.as_bytes()[..name.len().min(255)];
            let payload = match (&self.node.keys, conn.peer_key != self.peer.key) {
                (Some(keys), true) => OriginSigner {
                    keys,
                    origin: Origin {
                        transfer_id: self.id,
                        len: self.source.len(),
                        sender: self.node.my_key,
                        destination: self.peer.key,
                    },
                    sig: &mut self.origin_sig,
                }
                .sign(&mut self.origin_buf, &mut h, name),
                _ => name,
            };
            let _ = conn.send(&h, payload);
        }
    }

    /// Drives the transfer until the destination acknowledged every byte, or it failed.
    pub fn wait(self) -> Result<SendReport> {
        self.wait_coded().map_err(|f| f.error)
    }

    /// As [`PendingSend::wait`], keeping the destination's refusal code when it refused
    /// (for decisions such as resending after a parameter-cache miss).
    pub(crate) fn wait_coded(mut self) -> std::result::Result<SendReport, SendFailed> {
        let retransmitted = self.run_to_end()?;
        Ok(self.report(retransmitted))
    }

    /// As [`PendingSend::wait`], returning only the [`Completion`] figures: no path, hop or
    /// node names are copied, so a stream that does not read them allocates nothing here.
    pub fn finish(mut self) -> Result<Completion> {
        let retransmitted = self.run_to_end().map_err(|f| f.error)?;
        Ok(self.complete(retransmitted))
    }

    /// Drives the transfer until the destination acknowledged everything (the bytes it had
    /// to send again) or it failed.
    fn run_to_end(&mut self) -> std::result::Result<u64, SendFailed> {
        loop {
            self.pump()?;
            let next_timeout = {
                let st = self.slot.state.lock();
                match st.state() {
                    SendState::Complete => return Ok(st.retransmitted_bytes()),
                    SendState::Failed(f) => return Err(self.failure(f.clone())),
                    SendState::Sending => st.poll_timeout(),
                }
            };
            let deadline =
                next_timeout.unwrap_or_else(|| Instant::now() + Duration::from_millis(100));
            let slot = &self.slot;
            let ready = || slot.woken.load(Ordering::Acquire);
            // Over shared memory or a caller-polled TCP link, read the ack ourselves first
            // (no reader thread wake-ups, no reader spinning on our core).
            let (node, paths) = (&self.node, &self.paths);
            let driven = paths
                .shm_conn()
                .is_some_and(|conn| super::drive::wait_driven(node, conn, deadline, ready))
                || paths
                    .polled_conn()
                    .is_some_and(|conn| super::tcp_poll::wait_polled(node, conn, deadline, ready));
            if !driven {
                idle::wait_until(self.node.tuning.idle_strategy, deadline, &slot.gate, ready);
            }
            slot.woken.store(false, Ordering::Release);
            let now = Instant::now();
            if next_timeout.is_some_and(|t| now >= t) {
                slot.state.lock().handle_timeout(now);
                // The name may have been lost with the data: it goes again with this round.
                self.reannounce = true;
            }
        }
    }
}

/// `data` (of at least `POOL_COPY_MIN` bytes, at most a slot) copied into a free slot of
/// the link's pool; `None` when it does not fit or no slot is free now.
fn pool_copy(
    conn: &Conn,
    pools: &crate::transport::shm::LinkPools,
    data: &[u8],
) -> std::io::Result<Option<u32>> {
    let mut tx = pools.tx.lock();
    if data.len() < shmlink::POOL_COPY_MIN || data.len() > tx.pool().slot_size() {
        return Ok(None);
    }
    match tx.try_take() {
        Ok(Some(mut slot)) => {
            slot.as_mut_slice()[..data.len()].copy_from_slice(data);
            Ok(Some(tx.lend(&slot)))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            drop(tx);
            // The peer broke the pool protocol: drop the link, fail over.
            conn.close(&e.to_string());
            Err(std::io::Error::other(e.to_string()))
        }
    }
}

impl Drop for PendingSend<'_> {
    fn drop(&mut self) {
        self.node.outgoing.retire(self.id, &self.slot);
    }
}
