//! Shared-memory links between two nodes on one host. The TCP connection stays the control
//! channel (handshake, liveness: its end means the peer is gone); frames travel through two
//! SPSC rings in `/dev/shm` segments, one per direction, created by the dialer (mode 0600)
//! and opened by the acceptor — which proves both run on the same machine.
//!
//! ```text
//!  dialer                                  acceptor
//!   Hello ─────────────── tcp ─────────────▶
//!   ◀──────────────────── tcp ───────────── Welcome
//!   ShmOffer "a2b\nb2a" ─ tcp ─────────────▶  opens both segments, claims its ends
//!   ◀──────────────────── tcp ───────────── ShmAccept      (or Reject: stay on TCP)
//!   frames ══════════ ring a2b ════════════▶
//!   ◀════════════════ ring b2a ════════════ frames
//! ```
//!
//! Beside each ring the dialer creates a buffer pool (`<ring name>.pool`, `buffer_pool_buffers`
//! slots of `buffer_pool_slot_bytes`, default [`POOL_SLOT_BYTES`]) that the ring's producer lends from: a `Data` frame with the `LOANED`
//! flag carries a 16-byte descriptor of a slot instead of the bytes (loan API, and one-chunk
//! copy-API transfers of at least [`POOL_COPY_MIN`]). The acceptor answers `ShmAccept` with
//! the payload `pool` when it attached both pools; otherwise the link runs rings only.

mod data;

pub use data::read_loop;
pub(super) use data::{drain_until, end_link, on_loaned, take_loan};

use super::conn::{body, read_frame};
use super::{Conn, NodeInner, Peer};
use crate::error::{Error, Result};
use crate::transport::shm::{
    self, Consumer, LinkPools, Pool, PoolReceiver, PoolSender, Producer, Ring, Segment,
};
use crate::transport::shmframe;
use crate::transport::tls::{LinkReader, LinkWriter};
use crate::transport::TransportChoice;
use crate::wire::{self, FrameKind, Header};
use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes of each direction's ring: holds three 1 MiB frames (larger one-chunk messages go
/// through the pool). Its pages are faulted in when the link is set up (see `prefault`).
pub const RING_BYTES: usize = 4 << 20;

/// Default bytes of one buffer-pool slot (`buffer_pool_slot_bytes`): the largest loan, and the
/// largest copy-API transfer that travels by descriptor (1 MiB, the high-throughput chunk size).
pub const POOL_SLOT_BYTES: usize = 1 << 20;
/// Copy-API transfers sent whole in one chunk go through the pool from this size on (below,
/// the ring record is as cheap and needs no slot).
pub const POOL_COPY_MIN: usize = 64 << 10;
/// The `ShmAccept` payload of an acceptor that attached both pools.
const POOL_ACCEPT: &[u8] = b"pool";

static LINK_SEQ: AtomicU64 = AtomicU64::new(0);

/// One side's ends of a shared-memory link.
pub struct ShmEnds {
    pub tx: Producer,
    pub rx: Consumer,
    pub pools: Option<Arc<LinkPools>>,
}

/// The dialer's ends of a new link, and the names the acceptor must open.
pub struct Offer {
    pub ends: ShmEnds,
    pub names: [String; 2],
}

/// Maps a ring's pages now (both sides, each in its own page tables): otherwise the first lap
/// takes a page fault every ~30 small frames, in the middle of the latency path. Pools are
/// left to fault in on use (only the slots in use are ever touched), and so are rings made
/// larger than [`RING_BYTES`] for huge `max_packet_size` settings (memory over first-lap speed).
fn prefault(seg: &Segment) {
    if seg.data_len() > Ring::segment_len_for(RING_BYTES) {
        return;
    }
    if let Err(e) = seg.populate() {
        tracing::debug!(
            segment = seg.name(),
            "ring pages left to fault in on first use: {e}"
        );
    }
}

/// The pool segment beside the ring segment `ring`.
fn pool_name(ring: &str) -> String {
    format!("{ring}.pool")
}

fn create_pool(ring: &str, shape: PoolShape) -> Result<Pool, String> {
    let len = Pool::segment_len_for(shape.slot_bytes, shape.slots);
    let seg = Segment::create(&pool_name(ring), len).map_err(|e| e.to_string())?;
    Pool::init(Arc::new(seg), shape.slot_bytes, shape.slots).map_err(|e| e.to_string())
}

/// Slot count and size of the pools of the links a node dials.
#[derive(Debug, Clone, Copy)]
pub struct PoolShape {
    pub slots: u32,
    pub slot_bytes: usize,
}

impl PoolShape {
    /// From `buffer_pool_buffers` and `buffer_pool_slot_bytes` (checked at load: whole
    /// pages, at most 64 MiB).
    pub fn of(tuning: &crate::config::Tuning) -> PoolShape {
        PoolShape {
            slots: pool_slots(tuning),
            slot_bytes: tuning.buffer_pool_slot_bytes,
        }
    }
}

/// Slots per direction of the pools of the links a node dials: `buffer_pool_buffers`, at
/// most [`POOL_SLOTS_MAX`](crate::transport::shm::pool::POOL_SLOTS_MAX) (tmpfs pages are
/// only allocated once a slot is touched).
pub fn pool_slots(tuning: &crate::config::Tuning) -> u32 {
    let max = crate::transport::shm::pool::POOL_SLOTS_MAX;
    u32::try_from(tuning.buffer_pool_buffers).map_or(max, |n| n.clamp(1, max))
}

/// Counts the slots of the pool this node lends from on its newest link (metrics).
fn record_pool(node: &NodeInner, ends: &ShmEnds) {
    if let Some(p) = &ends.pools {
        let tx = p.tx.lock();
        let slots = u64::from(tx.pool().slot_count());
        node.stats.shm_pool_slots.store(slots, Ordering::Relaxed);
        let bytes = tx.pool().slot_size() as u64;
        node.stats
            .shm_pool_slot_bytes
            .store(bytes, Ordering::Relaxed);
    }
}

fn attach_pool(ring: &str) -> Result<Pool, String> {
    let seg = Segment::open(&pool_name(ring)).map_err(|e| e.to_string())?;
    Pool::attach(Arc::new(seg)).map_err(|e| e.to_string())
}

/// Both pools of a link: we lend from `send`'s, we read the peer's loans from `recv`'s.
fn link_pools(send: Pool, recv: Pool) -> Arc<LinkPools> {
    Arc::new(LinkPools {
        tx: parking_lot::Mutex::new(PoolSender::new(send)),
        rx: PoolReceiver::new(recv),
    })
}

/// Ring capacity for a node whose frames carry up to `max_payload` bytes: [`RING_BYTES`], or
/// more when a frame (header and record header included) would not fit half of it.
pub fn ring_bytes_for(max_payload: usize) -> usize {
    RING_BYTES.max((2 * (shmframe::max_record(max_payload) + 8)).next_power_of_two())
}

/// Creates both segments (a2b: we write, b2a: we read), sized for frames of up to
/// `max_payload` bytes, and formats their rings.
pub fn create(
    fabric: &str,
    me: &str,
    peer: &str,
    max_payload: usize,
    pool: PoolShape,
) -> Result<Offer, String> {
    let pid = std::process::id();
    let seq = LINK_SEQ.fetch_add(1, Ordering::Relaxed);
    let name = |from: &str, to: &str| format!("{}-{seq}", shm::segment_name(fabric, from, to, pid));
    let make = |name: &str| -> Result<Ring, String> {
        let seg = Segment::create(name, Ring::segment_len_for(ring_bytes_for(max_payload)))
            .map_err(|e| e.to_string())?;
        prefault(&seg);
        Ring::init(Arc::new(seg)).map_err(|e| e.to_string())
    };
    let names = [name(me, peer), name(peer, me)];
    let a2b = make(&names[0])?;
    let b2a = make(&names[1])?;
    let tx = a2b.producer().map_err(|e| e.to_string())?;
    let rx = b2a.consumer().map_err(|e| e.to_string())?;
    // Pools are an optimisation: a link without them still works (by copy through the rings).
    let pools = match (create_pool(&names[0], pool), create_pool(&names[1], pool)) {
        (Ok(a2b), Ok(b2a)) => Some(link_pools(a2b, b2a)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::info!("shared-memory link without buffer pools: {e}");
            None
        }
    };
    Ok(Offer {
        ends: ShmEnds { tx, rx, pools },
        names,
    })
}

/// The acceptor's ends: reads a2b, writes b2a (and the pools beside them, when present).
/// The ring we write must hold our largest frame (`max_payload` bytes of payload), or the
/// link stays on TCP.
pub fn open(names: &[String; 2], max_payload: usize) -> Result<ShmEnds, String> {
    let attach = |name: &str| -> Result<Ring, String> {
        let seg = Segment::open(name).map_err(|e| e.to_string())?;
        prefault(&seg);
        Ring::attach(Arc::new(seg)).map_err(|e| e.to_string())
    };
    let rx = attach(&names[0])?.consumer().map_err(|e| e.to_string())?;
    let tx = attach(&names[1])?.producer().map_err(|e| e.to_string())?;
    let fits = tx.ring().max_payload();
    let need = shmframe::max_record(max_payload);
    if fits < need {
        return Err(format!(
            "the offered ring holds records of up to {fits} bytes, this node sends up to {need}"
        ));
    }
    let pools = match (attach_pool(&names[1]), attach_pool(&names[0])) {
        (Ok(send), Ok(recv)) => Some(link_pools(send, recv)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::info!("shared-memory link without buffer pools: {e}");
            None
        }
    };
    Ok(ShmEnds { tx, rx, pools })
}

/// The 16-byte payload of a `LOANED` data frame.
///
/// ```text
///  0          4          8           12          16
///  | slot u32 | len u32  | crc32c u32 | dflags u32 |   dflags bit 0: crc32c is present
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    pub slot: u32,
    pub len: u32,
    /// CRC32C of the slot's `len` bytes, when the sender asked for payload verification.
    pub crc: Option<u32>,
}

pub const DESCRIPTOR_LEN: usize = 16;
const DESC_CRC: u32 = 1;

impl Descriptor {
    pub fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut b = [0u8; DESCRIPTOR_LEN];
        b[0..4].copy_from_slice(&self.slot.to_le_bytes());
        b[4..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..12].copy_from_slice(&self.crc.unwrap_or(0).to_le_bytes());
        let f = if self.crc.is_some() { DESC_CRC } else { 0 };
        b[12..16].copy_from_slice(&f.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Descriptor, String> {
        let b: &[u8; DESCRIPTOR_LEN] = b.try_into().map_err(|_| {
            format!(
                "loan descriptor of {} bytes, want {DESCRIPTOR_LEN}",
                b.len()
            )
        })?;
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let f = word(12);
        if f & !DESC_CRC != 0 {
            return Err(format!("unknown loan descriptor flags {f:#x}"));
        }
        Ok(Descriptor {
            slot: word(0),
            len: word(4),
            crc: (f & DESC_CRC != 0).then(|| word(8)),
        })
    }
}

pub fn encode_offer(names: &[String; 2]) -> Vec<u8> {
    format!("{}\n{}", names[0], names[1]).into_bytes()
}

pub fn decode_offer(payload: &[u8]) -> Result<[String; 2], String> {
    let text = std::str::from_utf8(payload).map_err(|_| "offer is not UTF-8".to_owned())?;
    let (a, b) = text
        .split_once('\n')
        .ok_or("offer needs two segment names")?;
    if [a, b]
        .iter()
        .any(|n| n.is_empty() || n.len() > 200 || n.contains('/'))
    {
        return Err("bad segment name in offer".into());
    }
    Ok([a.to_owned(), b.to_owned()])
}

/// A control frame (offer/accept) from `node` to `peer_key`.
pub fn control(node: &NodeInner, peer_key: u64, kind: FrameKind) -> Header {
    let mut h = Header::new(kind);
    h.src = node.my_key;
    h.dst = peer_key;
    h
}

// ---- The handshake: offer (dialer) and accept (acceptor) ----

/// Offers a shared-memory link when the peer may be on this host. `Ok(None)`: stay on TCP.
pub(super) fn offer(
    node: &Arc<NodeInner>,
    peer: &Peer,
    addr: std::net::SocketAddr,
    stream: &mut LinkWriter,
    reader: &mut BufReader<LinkReader>,
) -> Result<Option<ShmEnds>> {
    if !node.wants_shm(peer, addr) {
        return Ok(None);
    }
    let forced = node.transport == TransportChoice::Shm;
    let fail = |why: String| -> Result<Option<ShmEnds>> {
        if forced {
            return Err(Error::Unreachable {
                node: peer.id.clone(),
                reason: format!("no shared-memory link: {why}"),
            });
        }
        tracing::info!(peer = %peer.id, "staying on TCP: {why}");
        Ok(None)
    };
    let max_payload = node.limits.max_payload as usize;
    let shape = PoolShape::of(&node.tuning);
    let offer = match create(&node.fabric_name, &node.me, &peer.id, max_payload, shape) {
        Ok(o) => o,
        Err(e) => return fail(format!("cannot create segments: {e}")),
    };
    let h = control(node, peer.key, FrameKind::ShmOffer);
    let frame = wire::encode_frame(&h, &encode_offer(&offer.names))
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    if let Err(e) = stream.write_all(&frame) {
        return fail(format!("offer not sent: {e}"));
    }
    let mut payload = Vec::new();
    match read_frame(reader, node.limits, &mut payload) {
        Ok(a) if a.kind == FrameKind::ShmAccept => {
            let mut ends = offer.ends;
            if body(&payload, &a) != POOL_ACCEPT {
                ends.pools = None;
            }
            record_pool(node, &ends);
            Ok(Some(ends))
        }
        // The acceptor refused our proof (sent just before the offer): not a decline of
        // shared memory, and dialing again with the same credentials is refused again.
        Ok(a) if a.kind == FrameKind::Reject && a.aux == wire::codes::reject::PROOF_REFUSED => {
            Err(Error::Rejected {
                reason: node.proof_refused(&peer.id, peer.key, body(&payload, &a)),
            })
        }
        Ok(a) => fail(format!(
            "peer declined ({:?}): {}",
            a.kind,
            String::from_utf8_lossy(body(&payload, &a))
        )),
        Err(e) => fail(format!("no answer to the offer: {e}")),
    }
}

pub(super) fn spawn_reader(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    rx: crate::transport::shm::Waiter,
) -> Result<()> {
    let (node, conn2) = (Arc::clone(node), Arc::clone(conn));
    let name = format!("hf-shm-{}", conn.peer);
    let what = "spawning a shared-memory reader thread";
    super::receive::spawn_reader_thread(name, what, move || read_loop(node, conn2, rx))
}

/// The acceptor's answer to a ShmOffer: open both rings, say yes on TCP, then switch.
pub(super) fn accept(node: &Arc<NodeInner>, conn: &Arc<Conn>, payload: &[u8]) {
    let opened = if node.transport == TransportChoice::Tcp {
        Err("shared memory is disabled on this node".to_owned())
    } else {
        decode_offer(payload).and_then(|names| open(&names, node.limits.max_payload as usize))
    };
    match opened {
        Ok(ends) => {
            record_pool(node, &ends);
            let answer: &[u8] = if ends.pools.is_some() {
                POOL_ACCEPT
            } else {
                &[]
            };
            if conn
                .send(&conn.control(FrameKind::ShmAccept), answer)
                .is_ok()
            {
                let waiter = ends.rx.waiter();
                conn.switch_to_shm(ends);
                if let Err(e) = spawn_reader(node, conn, waiter) {
                    tracing::warn!(peer = %conn.peer, "{e}");
                    conn.close("cannot start the shared-memory reader");
                }
            }
        }
        Err(why) => {
            tracing::info!(peer = %conn.peer, "declining shared memory: {why}");
            let _ = conn.send(&conn.control(FrameKind::Reject), why.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_round_trip_and_refuse_paths() {
        let names = ["hf-a-b-1-0".to_owned(), "hf-b-a-1-0".to_owned()];
        assert_eq!(decode_offer(&encode_offer(&names)).unwrap(), names);
        assert!(decode_offer(b"only-one").is_err());
        assert!(decode_offer(b"../etc\nx").is_err());
        assert!(decode_offer(&[0xff, b'\n', b'a']).is_err());
    }

    #[test]
    fn descriptors_round_trip_and_refuse_garbage() {
        for d in [
            Descriptor {
                slot: 3,
                len: 1 << 20,
                crc: Some(0xdead_beef),
            },
            Descriptor {
                slot: 0,
                len: 0,
                crc: None,
            },
        ] {
            assert_eq!(Descriptor::decode(&d.encode()), Ok(d));
        }
        assert!(Descriptor::decode(&[0u8; 15]).is_err());
        let mut b = Descriptor {
            slot: 1,
            len: 2,
            crc: None,
        }
        .encode();
        b[12] = 2;
        assert!(Descriptor::decode(&b).is_err());
    }
}
