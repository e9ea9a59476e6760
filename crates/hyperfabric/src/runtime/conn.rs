//! One TCP connection to a peer (plain or TLS): framed writes, and the reader thread that
//! decodes every frame and hands it to the node. Setting one up is `handshake.rs`.

use super::shmlink;
use super::{NodeInner, Peer};
use crate::transport::shm::Consumer;
use crate::transport::tcp::{self, SocketReport};
use crate::transport::tls::{LinkReader, LinkWriter};
use crate::transport::TransportKind;
use crate::types::Priority;
use crate::wire::{self, DecodeError, FrameKind, Header, HEADER_LEN};
use parking_lot::{Condvar, Mutex};
use std::io::{self, BufReader, IoSlice, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Read buffer of a connection: small frames (acks, pings) come out of it without syscalls.
pub(super) const READ_BUFFER_BYTES: usize = 256 << 10;
/// Most times a frame defers to more urgent writers before it goes anyway (no starvation).
const MAX_DEFERRALS: u32 = 10_000;

/// Which connection to a peer carries a frame. With QoS on, urgent traffic has its own
/// connection so it never queues behind bulk bytes in socket buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Urgent,
    Bulk,
}

impl Lane {
    pub fn of(priority: Priority, qos_enabled: bool) -> Lane {
        if qos_enabled && priority <= Priority::High {
            Lane::Urgent
        } else {
            Lane::Bulk
        }
    }
}

/// Priority among the writers of one connection: ultra_high and high go first (a frame of
/// a lower class yields while one of theirs waits, so an urgent message overtakes a bulk
/// transfer within one chunk); normal, low and background share the link by weight.
#[derive(Default)]
struct WriteGate {
    waiting: [AtomicU32; 5],
    /// Bytes written per class, for the weighted share of the bulk classes.
    served: [AtomicU64; 5],
}

/// Weights of normal, low and background (codes 2, 3, 4) when they compete.
const BULK_WEIGHTS: [u64; 5] = [0, 0, 4, 2, 1];

impl WriteGate {
    fn snapshot(&self) -> ([u32; 5], [u64; 5]) {
        let w = std::array::from_fn(|i| self.waiting[i].load(Ordering::Acquire));
        let s = std::array::from_fn(|i| self.served[i].load(Ordering::Relaxed));
        (w, s)
    }

    fn nobody_waits(&self) -> bool {
        self.waiting.iter().all(|w| w.load(Ordering::Acquire) == 0)
    }
}

/// Should a frame of class `p` let a waiting class go first? Urgent classes (0, 1) go first,
/// the more urgent of them before the other; among the bulk classes the one furthest behind
/// its weighted share of the bytes goes (ties: the more urgent), so with normal, low and
/// background all waiting they get 4/7, 2/7 and 1/7 of the link.
fn should_defer(p: usize, waiting: &[u32; 5], served: &[u64; 5]) -> bool {
    let p = p.min(4);
    (0..5).any(|q| {
        if q == p || waiting[q] == 0 {
            return false;
        }
        match (q < 2, p < 2) {
            (true, true) => q < p,
            (true, false) => true,
            (false, true) => false,
            // Compare served/weight without dividing: q goes first if it is further behind.
            (false, false) => {
                let (lq, lp) = (served[q] * BULK_WEIGHTS[p], served[p] * BULK_WEIGHTS[q]);
                lq < lp || (lq == lp && q < p)
            }
        }
    })
}

/// Where a connection's frames go (TCP: plain or TLS).
pub(super) enum Tx {
    Tcp(LinkWriter),
    Shm(crate::transport::shm::Producer),
}

pub struct Conn {
    /// This node's wire key (the source of the frames we write).
    local_key: u64,
    pub peer: crate::NodeName,
    pub peer_key: u64,
    pub socket: SocketReport,
    pub lane: Lane,
    qos: bool,
    gate: WriteGate,
    /// `throttle_gbps` from the fabric file: paces writes (None: full speed).
    pacer: Option<Mutex<crate::transport::pacer::Pacer>>,
    writer: Mutex<Tx>,
    /// The TCP stream: the data path until a shared-memory link takes over, and always the
    /// control channel (shutting it down wakes the TCP reader).
    control: TcpStream,
    alive: AtomicBool,
    /// Set when the connection starts closing: a writer blocked on a full ring gives up.
    closing: AtomicBool,
    /// Frames travel through shared memory (a cheap check that needs no lock).
    shm: AtomicBool,
    /// The shared-memory ring we read, taken by the reader thread or by a caller waiting
    /// for an answer (who then reads it itself: no thread hand-off on the latency path).
    pub(super) shm_rx: Mutex<Option<Consumer>>,
    /// Held by a caller that reads the ring itself (see `drive`): the reader thread sleeps.
    pub(super) lease: super::drive::Lease,
    /// Buffer pools of the shared-memory link (loans and one-copy large messages).
    pools: std::sync::OnceLock<Arc<crate::transport::shm::LinkPools>>,
    /// Highest pong sequence seen, and the wake-up for parked pingers.
    pub(super) pong_seq: AtomicU64,
    pub(super) pong_gate: (Mutex<()>, Condvar),
    /// Fault injection on this connection's writes (tests); None: no rule can apply.
    faults: Option<Arc<crate::transport::fault::FaultInjector>>,
    /// This peer's metrics slot (shared by every connection to it).
    pub link: Arc<crate::metrics::LinkCounters>,
}

impl Conn {
    pub(super) fn new(
        node: &NodeInner,
        peer: &Peer,
        stream: &TcpStream,
        tx: LinkWriter,
        socket: SocketReport,
        lane: Lane,
    ) -> io::Result<Arc<Conn>> {
        Ok(Arc::new(Conn {
            local_key: node.my_key,
            lane,
            qos: node.tuning.qos_enabled,
            gate: WriteGate::default(),
            pacer: crate::transport::pacer::Pacer::new(node.tuning.throttle_gbps, Instant::now())
                .map(Mutex::new),
            control: stream.try_clone()?,
            peer: peer.id.as_str().into(),
            peer_key: peer.key,
            socket,
            writer: Mutex::new(Tx::Tcp(tx)),
            alive: AtomicBool::new(true),
            closing: AtomicBool::new(false),
            shm: AtomicBool::new(false),
            shm_rx: Mutex::new(None),
            lease: super::drive::Lease::default(),
            pools: std::sync::OnceLock::new(),
            pong_seq: AtomicU64::new(0),
            pong_gate: (Mutex::new(()), Condvar::new()),
            faults: (node.faults.as_ref())
                .filter(|f| f.may_apply_to(&peer.id))
                .cloned(),
            link: node.metrics.link(peer.key, &peer.id),
        }))
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub(super) fn mark_dead(&self) {
        self.alive.store(false, Ordering::Release);
    }

    /// Frames and writes one message. The checksum is computed before taking the lock.
    pub fn send(&self, header: &Header, payload: &[u8]) -> io::Result<()> {
        let raw = header
            .encode(payload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        if header.kind == FrameKind::Data && !self.shm.load(Ordering::Relaxed) {
            // Transfer bytes over TCP: now a capped socket buffer matters (warned once).
            tcp::note_payload_over_tcp();
        }
        match &self.faults {
            None => self.write_frame(header.priority, &raw, payload),
            Some(f) => f.write_through(
                &self.peer,
                header.kind,
                raw,
                payload,
                || self.cut(),
                |raw, payload| self.write_frame(header.priority, raw, payload),
            ),
        }
    }

    /// Fault injection's cut: the connection dies at once, both ways, without a goodbye.
    fn cut(&self) {
        self.mark_dead();
        let _ = self.control.shutdown(Shutdown::Both);
    }

    /// Writes one encoded frame (the writer lock, QoS order, pacing).
    fn write_frame(
        &self,
        priority: Priority,
        raw: &[u8; HEADER_LEN],
        payload: &[u8],
    ) -> io::Result<()> {
        let mut w = if self.qos {
            self.lock_by_priority(priority)
        } else {
            self.writer.lock()
        };
        if !self.is_alive() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection is closed",
            ));
        }
        let res = match &mut *w {
            Tx::Tcp(s) => {
                tcp::write_all_vectored(s, &mut [IoSlice::new(raw), IoSlice::new(payload)])
            }
            Tx::Shm(p) => super::shmlink::write_frame(p, raw, payload, self.keys(), &|| {
                self.is_alive() && !self.closing.load(Ordering::Acquire)
            }),
        };
        if res.is_ok() {
            let class = usize::from(priority.code()).min(4);
            self.gate.served[class]
                .fetch_add((HEADER_LEN + payload.len()) as u64, Ordering::Relaxed);
            self.link
                .on_sent(priority.code(), HEADER_LEN + payload.len());
        }
        if let (Ok(()), Some(pacer)) = (&res, &self.pacer) {
            // Sleep with the writer held: the link itself is busy for that long.
            let pause = pacer
                .lock()
                .delay(HEADER_LEN + payload.len(), Instant::now());
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        if res.is_err() {
            self.mark_dead();
        }
        res
    }

    /// Takes the writer, letting more urgent waiting writers go first (bounded).
    fn lock_by_priority(&self, priority: Priority) -> parking_lot::MutexGuard<'_, Tx> {
        let p = usize::from(priority.code()).min(4);
        // Nobody waits and the writer is free: nothing to order (no read-modify-writes).
        if self.gate.nobody_waits() {
            if let Some(guard) = self.writer.try_lock() {
                return guard;
            }
        }
        self.gate.waiting[p].fetch_add(1, Ordering::AcqRel);
        let mut deferrals = 0;
        while deferrals < MAX_DEFERRALS && {
            let (waiting, served) = self.gate.snapshot();
            should_defer(p, &waiting, &served)
        } {
            std::thread::yield_now();
            deferrals += 1;
        }
        let guard = self.writer.lock();
        self.gate.waiting[p].fetch_sub(1, Ordering::AcqRel);
        guard
    }

    /// Both ends' wire keys (compact shared-memory frames leave them implied).
    fn keys(&self) -> super::shmframe::LinkKeys {
        super::shmframe::LinkKeys {
            local: self.local_key,
            peer: self.peer_key,
        }
    }

    /// A header of `kind` from this node to the peer.
    pub fn control(&self, kind: FrameKind) -> Header {
        let mut h = Header::new(kind);
        h.src = self.local_key;
        h.dst = self.peer_key;
        h
    }

    /// Sends a Close frame (best effort) and shuts the socket down, waking its reader.
    pub fn close(&self, reason: &str) {
        self.closing.store(true, Ordering::Release);
        // Best effort goodbye; a writer stuck on a full ring (dead peer) must not block it.
        if self.is_alive() {
            if let Some(mut w) = self.writer.try_lock_for(Duration::from_millis(20)) {
                let h = self.control(FrameKind::Close);
                if let Ok(raw) = h.encode(reason.as_bytes()) {
                    let _ = match &mut *w {
                        Tx::Tcp(s) => tcp::write_all_vectored(
                            s,
                            &mut [IoSlice::new(&raw), IoSlice::new(reason.as_bytes())],
                        ),
                        Tx::Shm(p) => {
                            let keys = self.keys();
                            super::shmlink::write_frame(p, &raw, reason.as_bytes(), keys, &|| false)
                        }
                    };
                }
            }
        }
        self.mark_dead();
        self.unlink_shm();
        let _ = self.control.shutdown(Shutdown::Both);
    }

    /// The transport carrying this connection's frames now.
    pub fn transport(&self) -> TransportKind {
        match &*self.writer.lock() {
            Tx::Tcp(_) => TransportKind::Tcp,
            Tx::Shm(_) => TransportKind::Shm,
        }
    }

    /// Moves this connection's writes to a shared-memory ring.
    pub(super) fn switch_to_shm(&self, ends: shmlink::ShmEnds) {
        if let Some(pools) = ends.pools {
            let _ = self.pools.set(pools);
        }
        *self.shm_rx.lock() = Some(ends.rx);
        *self.writer.lock() = Tx::Shm(ends.tx);
        self.shm.store(true, Ordering::Release);
    }

    /// The buffer pools of this connection's shared-memory link, if it has them.
    pub(crate) fn pools(&self) -> Option<&Arc<crate::transport::shm::LinkPools>> {
        self.pools.get()
    }

    /// Removes this link's segment files (either side may: the mappings live on until both
    /// processes drop them, and a peer that was killed cannot clean up after itself).
    fn unlink_shm(&self) {
        if !self.is_shm() {
            return;
        }
        if let Some(w) = self.writer.try_lock_for(Duration::from_millis(20)) {
            if let Tx::Shm(p) = &*w {
                let _ = p.ring().segment().unlink();
            }
        }
        if let Some(rx) = self.shm_rx.try_lock_for(Duration::from_millis(20)) {
            if let Some(c) = rx.as_ref() {
                let _ = c.ring().segment().unlink();
            }
        }
        if let Some(p) = self.pools.get() {
            let _ = p.rx.pool().segment().unlink();
            if let Some(tx) = p.tx.try_lock_for(Duration::from_millis(20)) {
                let _ = tx.pool().segment().unlink();
            }
        }
    }

    /// Writers waiting for this connection now (the QoS gate's queue).
    pub fn waiting_writers(&self) -> u64 {
        self.gate.snapshot().0.iter().map(|&w| u64::from(w)).sum()
    }

    /// True once frames travel through shared memory.
    pub fn is_shm(&self) -> bool {
        self.shm.load(Ordering::Acquire)
    }
}

/// Why a read loop ended.
enum ReadEnd {
    Eof,
    Closed(String),
    Io(io::Error),
    Protocol(DecodeError),
    Misbehaved(String),
}

pub(super) fn read_loop(node: Arc<NodeInner>, conn: Arc<Conn>, mut reader: BufReader<LinkReader>) {
    let mut payload = Vec::new();
    let mut scratch = Vec::new();
    let mut offered = false;
    // The last frame failed its checksum: if this one does too, the stream is out of step.
    let mut after_corrupt = false;
    let end = loop {
        let header = match read_frame(&mut reader, node.limits, &mut payload) {
            Ok(h) => h,
            Err(FrameError::Eof) => break ReadEnd::Eof,
            Err(FrameError::Io(e)) => break ReadEnd::Io(e),
            Err(FrameError::Corrupt(e)) if !after_corrupt => {
                after_corrupt = true;
                corrupt_frame(&node, &conn, &e);
                continue;
            }
            Err(FrameError::Decode(e) | FrameError::Corrupt(e)) => break ReadEnd::Protocol(e),
        };
        after_corrupt = false;
        node.stats.frames_received.fetch_add(1, Ordering::Relaxed);
        conn.link
            .on_received(HEADER_LEN + header.payload_len as usize);
        if let Err(why) = check_source(&node, &conn, &header) {
            break ReadEnd::Misbehaved(why);
        }
        if header.kind == FrameKind::Data && header.has(wire::flags::LOANED) {
            break ReadEnd::Misbehaved(
                "a LOANED frame over TCP (loans exist only on shared-memory links)".into(),
            );
        }
        let body = body(&payload, &header);
        if header.kind == FrameKind::ShmOffer && !offered {
            offered = true;
            shmlink::accept(&node, &conn, body);
            continue;
        }
        match node.dispatch(&conn, &header, body, &mut scratch) {
            Ok(true) => {}
            Ok(false) => break ReadEnd::Closed(String::from_utf8_lossy(body).into_owned()),
            Err(fault) => break ReadEnd::Misbehaved(fault.into()),
        }
    };
    let reason = match end {
        ReadEnd::Eof => "peer closed the connection".to_owned(),
        ReadEnd::Closed(why) => format!("peer said goodbye: {why}"),
        ReadEnd::Io(e) if !conn.is_alive() => format!("closed locally ({e})"),
        ReadEnd::Io(e) => format!("I/O error: {e}"),
        ReadEnd::Protocol(e) => {
            node.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %conn.peer, "closing connection: protocol violation: {e}");
            format!("protocol violation: {e}")
        }
        ReadEnd::Misbehaved(why) => {
            node.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %conn.peer, "closing connection: {why}");
            why
        }
    };
    conn.close(&reason);
    node.forget(&conn, &reason);
}

/// Who a frame may claim to come from. Straight from the peer (hops = 0) it carries the
/// peer's key; relayed (hops > 0) it carries its origin's, which must be another member: not
/// this node (nobody relays our own frames to us) and not the peer itself (its own frames
/// are direct). What a relay cannot be stopped from claiming is in docs/operations.md.
pub(super) fn check_source(node: &NodeInner, conn: &Conn, h: &Header) -> Result<(), String> {
    if h.hops == 0 {
        return if h.src == conn.peer_key {
            Ok(())
        } else {
            Err(format!(
                "frame claims source key {:#x}, connection is {}",
                h.src, conn.peer
            ))
        };
    }
    if h.src == node.my_key || h.src == conn.peer_key {
        return Err(format!(
            "a relayed frame (hops {}) from {} claims to come from {}",
            h.hops,
            conn.peer,
            if h.src == node.my_key {
                "this node"
            } else {
                "the relay itself"
            }
        ));
    }
    if node.peer_by_key(h.src).is_none() {
        return Err(format!(
            "a relayed frame from {} claims an unknown source key {:#x}",
            conn.peer, h.src
        ));
    }
    Ok(())
}

/// A whole frame, sane header included, failed its checksum: it is dropped and the link
/// kept, since the sender's retransmission recovers it. (A header corrupted into another
/// sane header, e.g. a wrong length, puts the stream out of step: the next header then fails
/// to decode, or fails its checksum too, and the link is closed.)
pub(super) fn corrupt_frame(node: &NodeInner, conn: &Conn, e: &DecodeError) {
    node.stats
        .corrupt_frames_dropped
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!(peer = %conn.peer, "dropping a corrupt frame: {e}");
}

pub(super) enum FrameError {
    Eof,
    Io(io::Error),
    Decode(DecodeError),
    /// The header decoded and the payload was read, but the checksum does not match.
    Corrupt(DecodeError),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Eof => f.write_str("connection closed"),
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::Decode(e) | FrameError::Corrupt(e) => write!(f, "{e}"),
        }
    }
}

/// Reads one whole frame: header, then (only if the header is valid) its payload into
/// `payload[..payload_len]`, then checks the CRC. The buffer only grows (to the largest
/// frame seen), so steady state neither allocates nor clears memory.
pub(super) fn read_frame(
    r: &mut impl Read,
    limits: wire::Limits,
    payload: &mut Vec<u8>,
) -> Result<Header, FrameError> {
    let mut raw = [0u8; HEADER_LEN];
    if let Err(e) = r.read_exact(&mut raw) {
        return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Eof
        } else {
            FrameError::Io(e)
        });
    }
    let header = Header::decode(&raw, limits).map_err(FrameError::Decode)?;
    let len = header.payload_len as usize;
    if payload.len() < len {
        payload.resize(len, 0);
    }
    let body = &mut payload[..len];
    r.read_exact(body).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the middle of a frame",
            ))
        } else {
            FrameError::Io(e)
        }
    })?;
    wire::verify(&raw, body).map_err(FrameError::Corrupt)?;
    Ok(header)
}

/// The payload of the frame `header` that [`read_frame`] just read into `buf`.
pub(super) fn body<'a>(buf: &'a [u8], header: &Header) -> &'a [u8] {
    &buf[..header.payload_len as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everyone always waits; the writer goes to the first class that does not defer.
    fn shares(classes: &[usize], rounds: usize) -> [u64; 5] {
        let mut served = [0u64; 5];
        let mut waiting = [0u32; 5];
        for &c in classes {
            waiting[c] = 1;
        }
        for _ in 0..rounds {
            let next = classes
                .iter()
                .copied()
                .find(|&c| !should_defer(c, &waiting, &served))
                .unwrap_or(classes[0]);
            served[next] += 1000;
        }
        served
    }

    #[test]
    fn urgent_classes_always_go_first() {
        let s = shares(&[0, 2, 4], 100);
        assert_eq!((s[0], s[2], s[4]), (100_000, 0, 0));
        let s = shares(&[1, 3], 50);
        assert_eq!((s[1], s[3]), (50_000, 0));
    }

    #[test]
    fn bulk_classes_share_by_weight() {
        let s = shares(&[2, 3, 4], 7000);
        let total = (s[2] + s[3] + s[4]) as f64;
        for (class, want) in [(2, 4.0 / 7.0), (3, 2.0 / 7.0), (4, 1.0 / 7.0)] {
            let got = s[class] as f64 / total;
            assert!(
                (got - want).abs() < 0.01,
                "class {class}: {got:.3} vs {want:.3}"
            );
        }
        let s = shares(&[2, 4], 5000);
        assert!((s[4] as f64 / (s[2] + s[4]) as f64 - 0.2).abs() < 0.01);
    }
}
