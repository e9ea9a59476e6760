//! One connection to a peer: the link its frames go out on (its TCP or TLS stream, or a
//! shared-memory ring once one is set up), its writers' QoS order, and the TCP reader
//! thread. Setting one up is `handshake.rs`; what a received frame does is `receive.rs`.

use super::gate::{should_defer, WriteGate};
use super::receive::{self, End};
use super::shmlink;
use super::{NodeInner, Peer};
use crate::transport::ring_link::{ShmRx, ShmTx};
use crate::transport::shmframe::LinkKeys;
use crate::transport::stream::{StreamRx, StreamTx};
use crate::transport::tcp::SocketReport;
use crate::transport::tls::{LinkReader, LinkWriter};
use crate::transport::wrap::{Faulty, Paced};
use crate::transport::{LinkTx, Sent, TransportKind};
use crate::types::Priority;
use crate::wire::{self, FrameKind, Header, HEADER_LEN};
use parking_lot::{Condvar, Mutex};
use std::io::{self, BufReader};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(super) use crate::transport::stream::{body, read_frame, FrameError, READ_BUFFER_BYTES};

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

/// The link a connection writes to: its TCP (or TLS) stream until a shared-memory link takes
/// over. An enum, not a trait object: no virtual call on the per-frame path.
pub(super) enum AnyTx {
    Stream(StreamTx),
    Shm(ShmTx),
}

impl LinkTx for AnyTx {
    fn kind(&self) -> TransportKind {
        match self {
            AnyTx::Stream(l) => l.kind(),
            AnyTx::Shm(l) => l.kind(),
        }
    }

    #[inline]
    fn send(&mut self, raw: &[u8; HEADER_LEN], payload: &[u8]) -> io::Result<Sent> {
        match self {
            AnyTx::Stream(l) => l.send(raw, payload),
            AnyTx::Shm(l) => l.send(raw, payload),
        }
    }

    fn close(&mut self, goodbye: Option<(&[u8; HEADER_LEN], &[u8])>) {
        match self {
            AnyTx::Stream(l) => l.close(goodbye),
            AnyTx::Shm(l) => l.close(goodbye),
        }
    }
}

/// The writing side: fault injection (if any rule can apply to this peer), then pacing (if
/// `throttle_gbps`), then the link.
type Writer = Faulty<Paced<AnyTx>>;

pub struct Conn {
    /// This node's wire key (the source of the frames we write).
    local_key: u64,
    /// How long a write may move no byte before the peer counts as stalled.
    write_stall: Duration,
    pub peer: crate::NodeName,
    pub peer_key: u64,
    pub socket: SocketReport,
    pub lane: Lane,
    qos: bool,
    gate: WriteGate,
    /// Limits on the frames this connection reads.
    limits: wire::Limits,
    writer: Mutex<Writer>,
    /// The TCP stream: the data path until a shared-memory link takes over, and always the
    /// control channel (shutting it down wakes the TCP reader).
    pub(super) control: TcpStream,
    /// A waiting caller may read the stream itself (`busy_poll` on a plain TCP link).
    caller_polls: bool,
    /// The stream's reading half when callers may poll it (`tcp_poll`); None otherwise.
    pub(super) tcp_rx: Mutex<Option<super::tcp_poll::PolledRx>>,
    alive: AtomicBool,
    /// An observer's connection (see `observer.rs`): answered only for Ping and
    /// MetricsRequest; set once, before its read loop starts.
    observer: AtomicBool,
    /// Set when the connection dies or starts closing: a writer blocked on a full ring gives
    /// up (shared with the ring link).
    closing: Arc<AtomicBool>,
    /// Frames travel through shared memory (a cheap check that needs no lock).
    shm: AtomicBool,
    /// The shared-memory ring we read, taken by the reader thread or by a caller waiting
    /// for an answer (who then reads it itself: no thread hand-off on the latency path).
    pub(super) shm_rx: Mutex<Option<ShmRx>>,
    /// Held by a caller that reads the ring itself (see `drive`): the reader thread sleeps.
    pub(super) lease: super::drive::Lease,
    /// Buffer pools of the shared-memory link (loans and one-copy large messages).
    pools: std::sync::OnceLock<Arc<crate::transport::shm::LinkPools>>,
    /// Highest pong sequence seen, and the wake-up for parked pingers.
    pub(super) pong_seq: AtomicU64,
    pub(super) pong_gate: (Mutex<()>, Condvar),
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
        // A peer that stops reading fills its socket buffer and then ours: without a bound a
        // blocking write (holding the writer) would wait forever. The kernel's SO_SNDTIMEO
        // fails a write that moved no byte for the fabric's send timeout.
        let write_stall = Duration::from_millis(node.tuning.send_timeout_ms.max(1));
        stream.set_write_timeout(Some(write_stall))?;
        // TLS plaintext may wait inside the session, where polling the socket cannot see it.
        let caller_polls = node.tuning.busy_poll && matches!(tx, LinkWriter::Plain(_));
        Ok(Arc::new(Conn {
            local_key: node.my_key,
            write_stall,
            lane,
            qos: node.tuning.qos_enabled,
            gate: WriteGate::default(),
            limits: node.limits,
            control: stream.try_clone()?,
            caller_polls,
            tcp_rx: Mutex::new(None),
            peer: peer.id.as_str().into(),
            peer_key: peer.key,
            socket,
            writer: Mutex::new(Faulty::new(
                Paced::new(AnyTx::Stream(StreamTx::new(tx)), node.tuning.throttle_gbps),
                node.faults.as_ref(),
                &peer.id,
            )),
            alive: AtomicBool::new(true),
            observer: AtomicBool::new(false),
            closing: Arc::new(AtomicBool::new(false)),
            shm: AtomicBool::new(false),
            shm_rx: Mutex::new(None),
            lease: super::drive::Lease::default(),
            pools: std::sync::OnceLock::new(),
            pong_seq: AtomicU64::new(0),
            pong_gate: (Mutex::new(()), Condvar::new()),
            link: node.metrics.link(peer.key, &peer.id),
        }))
    }

    /// A write the socket timed out names the stall (the kernel says only "would block").
    fn stalled(&self, e: io::Error) -> io::Error {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            return io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "`{}` took no byte for {} ms (send_timeout_ms): it stopped reading",
                    self.peer,
                    self.write_stall.as_millis()
                ),
            );
        }
        e
    }

    pub fn is_observer(&self) -> bool {
        self.observer.load(Ordering::Acquire)
    }

    pub(super) fn mark_observer(&self) {
        self.observer.store(true, Ordering::Release);
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub(super) fn mark_dead(&self) {
        self.alive.store(false, Ordering::Release);
        self.closing.store(true, Ordering::Release);
    }

    /// A write failed (or fault injection cut the link): the connection dies at once, both
    /// ways, so its readers wake and the peer sees the end.
    fn fail(&self) {
        self.mark_dead();
        let _ = self.control.shutdown(Shutdown::Both);
    }

    /// Frames and writes one message. The checksum is computed before taking the lock.
    pub fn send(&self, header: &Header, payload: &[u8]) -> io::Result<()> {
        let raw = header
            .encode(payload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.write_frame(header.priority, &raw, payload)
    }

    /// Writes one encoded frame (the writer lock in QoS order, then the link).
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
        match w.send(raw, payload) {
            Ok(Sent::Written) => {
                let class = usize::from(priority.code()).min(4);
                self.gate.served[class]
                    .fetch_add((HEADER_LEN + payload.len()) as u64, Ordering::Relaxed);
                self.link
                    .on_sent(priority.code(), HEADER_LEN + payload.len());
                Ok(())
            }
            Ok(Sent::Dropped) => Ok(()),
            Err(e) => {
                self.fail();
                Err(self.stalled(e))
            }
        }
    }

    /// Takes the writer, letting more urgent waiting writers go first (bounded).
    fn lock_by_priority(&self, priority: Priority) -> parking_lot::MutexGuard<'_, Writer> {
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
    fn keys(&self) -> LinkKeys {
        LinkKeys {
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

    /// Sends a Close frame (best effort) and shuts the link and the socket down, waking
    /// their readers.
    pub fn close(&self, reason: &str) {
        self.closing.store(true, Ordering::Release);
        // A writer stuck on a full ring (dead peer) must not block the close.
        if let Some(mut w) = self.writer.try_lock_for(Duration::from_millis(20)) {
            let raw = self
                .control(FrameKind::Close)
                .encode(reason.as_bytes())
                .ok();
            let goodbye = raw.as_ref().filter(|_| self.is_alive());
            w.close(goodbye.map(|raw| (raw, reason.as_bytes())));
        }
        self.mark_dead();
        self.unlink_shm();
        let _ = self.control.shutdown(Shutdown::Both);
    }

    /// The transport carrying this connection's frames now.
    pub fn transport(&self) -> TransportKind {
        self.writer.lock().kind()
    }

    /// Moves this connection's frames to a shared-memory link.
    pub(super) fn switch_to_shm(&self, ends: shmlink::ShmEnds) {
        if let Some(pools) = ends.pools {
            let _ = self.pools.set(pools);
        }
        let keys = self.keys();
        *self.shm_rx.lock() = Some(ShmRx::new(ends.rx, keys, self.limits));
        let tx = ShmTx::new(ends.tx, keys, Arc::clone(&self.closing));
        *self.writer.lock().get_mut().get_mut() = AnyTx::Shm(tx);
        self.shm.store(true, Ordering::Release);
    }

    /// The buffer pools of this connection's shared-memory link, if it has them.
    pub(crate) fn pools(&self) -> Option<&Arc<crate::transport::shm::LinkPools>> {
        self.pools.get()
    }

    /// Removes the segment files of this link's receiving ring and pools (either side may:
    /// the mappings live on until both processes drop them, and a peer that was killed
    /// cannot clean up after itself). The sending ring's goes when its link is closed.
    fn unlink_shm(&self) {
        if !self.is_shm() {
            return;
        }
        if let Some(rx) = self.shm_rx.try_lock_for(Duration::from_millis(20)) {
            if let Some(rx) = rx.as_ref() {
                rx.unlink();
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

    /// Whether a waiting caller may read the TCP stream itself (see `tcp_poll`).
    pub(super) fn caller_polls(&self) -> bool {
        self.caller_polls
    }

    /// True once frames travel through shared memory.
    pub fn is_shm(&self) -> bool {
        self.shm.load(Ordering::Acquire)
    }
}

/// The reader of a connection's TCP stream (the data path until a shared-memory link takes
/// over, the control channel always): handles every frame until the stream ends.
pub(super) fn read_loop(node: Arc<NodeInner>, conn: Arc<Conn>, reader: BufReader<LinkReader>) {
    let mut rx = StreamRx::new(reader, node.limits);
    let mut scratch = Vec::new();
    // Only the first offer sets up a shared-memory link; later ones are the dispatch's.
    let mut offered = false;
    let end = if conn.caller_polls() {
        super::tcp_poll::read_loop(&node, &conn, rx)
    } else {
        loop {
            if let Err(end) = receive::step(&node, &conn, &mut rx, &mut scratch, &mut offered) {
                break end;
            }
        }
    };
    let reason = match end {
        End::Eof => "peer closed the connection".to_owned(),
        End::Goodbye(why) => format!("peer said goodbye: {why}"),
        End::Io(e) if !conn.is_alive() => format!("closed locally ({e})"),
        End::Io(e) => format!("I/O error: {e}"),
        End::Refused(why) => why,
        End::Violation(why) => {
            node.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %conn.peer, "closing connection: {why}");
            why
        }
    };
    conn.close(&reason);
    node.forget(&conn, &reason);
}
