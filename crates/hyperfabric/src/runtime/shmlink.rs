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

use super::conn::{body, read_frame};
use super::{Conn, NodeInner, Peer};
use crate::config::IdleStrategy;
use crate::error::{Error, Result};
use crate::transport::shm::{self, Consumer, Producer, Ring, Segment, Waiter};
use crate::transport::tls::{LinkReader, LinkWriter};
use crate::transport::TransportChoice;
use crate::wire::{self, FrameKind, Header, HEADER_LEN};
use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of each direction's ring: holds several 1 MiB frames (pages are touched on use).
pub const RING_BYTES: usize = 8 << 20;
/// How long a writer waits for ring space before declaring the peer stuck.
const FULL_RING_TIMEOUT: Duration = Duration::from_secs(30);
/// The reader checks the connection's liveness at least this often.
const LIVENESS_POLL: Duration = Duration::from_millis(100);

static LINK_SEQ: AtomicU64 = AtomicU64::new(0);

/// The dialer's ends of a new link, and the names the acceptor must open.
pub struct Offer {
    pub tx: Producer,
    pub rx: Consumer,
    pub names: [String; 2],
}

/// Creates both segments (a2b: we write, b2a: we read) and formats their rings.
pub fn create(fabric: &str, me: &str, peer: &str) -> Result<Offer, String> {
    let pid = std::process::id();
    let seq = LINK_SEQ.fetch_add(1, Ordering::Relaxed);
    let name = |from: &str, to: &str| format!("{}-{seq}", shm::segment_name(fabric, from, to, pid));
    let make = |name: &str| -> Result<Ring, String> {
        let seg =
            Segment::create(name, Ring::segment_len_for(RING_BYTES)).map_err(|e| e.to_string())?;
        Ring::init(Arc::new(seg)).map_err(|e| e.to_string())
    };
    let names = [name(me, peer), name(peer, me)];
    let a2b = make(&names[0])?;
    let b2a = make(&names[1])?;
    let tx = a2b.producer().map_err(|e| e.to_string())?;
    let rx = b2a.consumer().map_err(|e| e.to_string())?;
    Ok(Offer { tx, rx, names })
}

/// The acceptor's ends: reads a2b, writes b2a.
pub fn open(names: &[String; 2]) -> Result<(Producer, Consumer), String> {
    let attach = |name: &str| -> Result<Ring, String> {
        let seg = Segment::open(name).map_err(|e| e.to_string())?;
        Ring::attach(Arc::new(seg)).map_err(|e| e.to_string())
    };
    let rx = attach(&names[0])?.consumer().map_err(|e| e.to_string())?;
    let tx = attach(&names[1])?.producer().map_err(|e| e.to_string())?;
    Ok((tx, rx))
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

/// Writes one frame as one ring record, waiting (spin, then yield, then short sleeps) while
/// the ring is full.
pub fn write_frame(
    p: &mut Producer,
    raw: &[u8; HEADER_LEN],
    payload: &[u8],
    alive: &dyn Fn() -> bool,
) -> std::io::Result<()> {
    let len = HEADER_LEN + payload.len();
    let started = Instant::now();
    let mut idle: u32 = 0;
    loop {
        let slot = p
            .try_reserve(len)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if let Some(mut slot) = slot {
            slot[..HEADER_LEN].copy_from_slice(raw);
            slot[HEADER_LEN..].copy_from_slice(payload);
            slot.commit();
            p.publish();
            return Ok(());
        }
        idle += 1;
        if idle < 1000 {
            std::hint::spin_loop();
        } else if idle < 2000 {
            std::thread::yield_now();
        } else {
            if !alive() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "shared-memory peer is gone",
                ));
            }
            if started.elapsed() > FULL_RING_TIMEOUT {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "shared-memory ring stayed full",
                ));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

fn ring_strategy(s: IdleStrategy) -> shm::IdleStrategy {
    match s {
        // A reader thread never spins without yielding: with the waiting caller spinning too,
        // pure spinners outnumber the cores of small machines and time slices (ms) decide.
        IdleStrategy::BusySpin => shm::IdleStrategy::SpinYield { spins: 200 },
        IdleStrategy::SpinYield => shm::IdleStrategy::SpinYield { spins: 1000 },
        IdleStrategy::SpinPark => shm::IdleStrategy::default(),
    }
}

/// The reader of a shared-memory link: waits for records without holding the ring, then
/// takes it and dispatches what is there; ends when the connection dies or the ring is corrupt.
pub fn read_loop(node: Arc<NodeInner>, conn: Arc<Conn>, waiter: Waiter) {
    let strategy = ring_strategy(node.tuning.idle_strategy);
    let mut scratch = Vec::new();
    let why = loop {
        if !conn.is_alive() {
            break None;
        }
        // Blocks (without spinning) while a waiting caller drives the ring itself.
        let mut rx = conn.shm_rx.lock();
        let Some(consumer) = rx.as_mut() else {
            break None;
        };
        if let Err(why) = drain(&node, &conn, consumer, &mut scratch) {
            break Some(why);
        }
        drop(rx);
        waiter.wait(strategy, Instant::now() + LIVENESS_POLL);
    };
    if let Some(why) = why {
        if why != GOODBYE {
            node.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %conn.peer, "closing shared-memory link: {why}");
        }
        conn.close(&why);
    }
}

/// Reads the ring from the calling thread if nobody else is (a caller waiting for an answer).
pub fn progress(node: &Arc<NodeInner>, conn: &Arc<Conn>, scratch: &mut Vec<u8>) {
    if let Some(mut rx) = conn.shm_rx.try_lock() {
        if let Some(consumer) = rx.as_mut() {
            // An error is left for the reader thread, which closes the link.
            let _ = drain(node, conn, consumer, scratch);
        }
    }
}

const GOODBYE: &str = "peer said goodbye";

/// Dispatches every record available now.
fn drain(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    rx: &mut Consumer,
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    loop {
        let slot = match rx.try_read() {
            Ok(Some(slot)) => slot,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("shared memory: {e}")),
        };
        let (raw, payload) = slot
            .split_first_chunk::<HEADER_LEN>()
            .ok_or("record shorter than a frame header")?;
        let header = match Header::decode(raw, node.limits)
            .and_then(|h| wire::verify(raw, payload).map(|()| h))
        {
            Ok(h) if h.payload_len as usize == payload.len() => h,
            Ok(_) => return Err("record length disagrees with its frame header".into()),
            Err(e) => return Err(format!("protocol violation: {e}")),
        };
        node.stats.frames_received.fetch_add(1, Ordering::Relaxed);
        conn.link.on_received(slot.len());
        if header.hops == 0 && header.src != conn.peer_key {
            return Err(format!(
                "frame claims source key {:#x}, link is {}",
                header.src, conn.peer
            ));
        }
        match node.dispatch(conn, &header, payload, scratch) {
            Ok(true) => {}
            Ok(false) => return Err(GOODBYE.into()),
            Err(why) => return Err(why),
        }
    }
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
) -> Result<Option<(Producer, Consumer)>> {
    if !node.wants_shm(peer, addr) {
        return Ok(None);
    }
    let forced = node.transport == TransportChoice::Shm;
    let fail = |why: String| -> Result<Option<(Producer, Consumer)>> {
        if forced {
            return Err(Error::Unreachable {
                node: peer.id.clone(),
                reason: format!("no shared-memory link: {why}"),
            });
        }
        tracing::info!(peer = %peer.id, "staying on TCP: {why}");
        Ok(None)
    };
    let offer = match create(&node.fabric_name, &node.me, &peer.id) {
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
        Ok(a) if a.kind == FrameKind::ShmAccept => Ok(Some((offer.tx, offer.rx))),
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
    std::thread::Builder::new()
        .name(format!("hf-shm-{}", conn.peer))
        .spawn(move || read_loop(node, conn2, rx))
        .map(|_| ())
        .map_err(|e| Error::io("spawning a shared-memory reader thread", e))
}

/// The acceptor's answer to a ShmOffer: open both rings, say yes on TCP, then switch.
pub(super) fn accept(node: &Arc<NodeInner>, conn: &Arc<Conn>, payload: &[u8]) {
    let opened = if node.transport == TransportChoice::Tcp {
        Err("shared memory is disabled on this node".to_owned())
    } else {
        decode_offer(payload).and_then(|names| open(&names))
    };
    match opened {
        Ok((tx, rx)) => {
            if conn.send(&conn.control(FrameKind::ShmAccept), &[]).is_ok() {
                let waiter = rx.waiter();
                conn.switch_to_shm(tx, rx);
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
}
