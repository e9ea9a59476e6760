//! The data path of a shared-memory link: frames written into our ring, and the peer's ring
//! read by the link's reader thread (or by a caller driving the link) and dispatched, loans
//! included.

use super::super::shmframe::{self, LinkKeys};
use super::super::{Conn, NodeInner};
use super::Descriptor;
use crate::buffer::Payload;
use crate::config::Transform;
use crate::idle::{self, Backoff, Step};
use crate::transport::shm::{Consumer, Producer, SlotView, Waiter};
use crate::wire::{self, flags, FrameKind, Header, HEADER_LEN};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The reader checks the connection's liveness at least this often.
const LIVENESS_POLL: Duration = Duration::from_millis(100);
/// How long a writer waits for ring space before declaring the peer stuck.
const FULL_RING_TIMEOUT: Duration = Duration::from_secs(30);
/// Writes one frame as one ring record, waiting (spin, then yield, then short sleeps) while
/// the ring is full.
pub fn write_frame(
    p: &mut Producer,
    raw: &[u8; HEADER_LEN],
    payload: &[u8],
    keys: LinkKeys,
    alive: &dyn Fn() -> bool,
) -> std::io::Result<()> {
    let (len, compact) = shmframe::plan(raw, payload, keys);
    // Read the clock only once the ring is found full (~20 ns the hot path does not pay).
    let mut started: Option<Instant> = None;
    let mut backoff = Backoff::new(idle::FULL_RING);
    loop {
        let slot = p
            .try_reserve(len)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if let Some(mut slot) = slot {
            shmframe::write(&mut slot, raw, payload, compact);
            slot.commit();
            p.publish();
            return Ok(());
        }
        // The reader frees space without waking writers: past spinning and yielding, sleep.
        if backoff.step() == Step::Park {
            if !alive() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "shared-memory peer is gone",
                ));
            }
            if started.get_or_insert_with(Instant::now).elapsed() > FULL_RING_TIMEOUT {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "shared-memory ring stayed full",
                ));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// The reader of a shared-memory link: waits for records without holding the ring, then
/// takes it and dispatches what is there; ends when the connection dies or the ring is corrupt.
pub fn read_loop(node: Arc<NodeInner>, conn: Arc<Conn>, waiter: Waiter) {
    let strategy = node.tuning.idle_strategy.ring_reader();
    let lease = node.tuning.idle_strategy.reader_lease();
    let mut scratch = Vec::new();
    let why = loop {
        if !conn.is_alive() {
            break None;
        }
        // A caller drives the ring itself: stay out of its way (and off its core).
        if conn.lease.sleep_while_held(lease) {
            continue;
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
        // A caller that starts driving meanwhile takes over: stop spinning on its core.
        waiter.wait(strategy, Instant::now() + LIVENESS_POLL, || {
            conn.lease.is_held()
        });
    };
    if let Some(why) = why {
        end_link(&node, &conn, &why);
    }
}

/// Closes a link whose ring gave `why` (a peer's goodbye, or a corrupt record).
pub(in crate::runtime) fn end_link(node: &NodeInner, conn: &Conn, why: &str) {
    if why != GOODBYE {
        node.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(peer = %conn.peer, "closing shared-memory link: {why}");
    }
    conn.close(why);
}

const GOODBYE: &str = "peer said goodbye";

/// Dispatches every record available now.
fn drain(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    rx: &mut Consumer,
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    drain_until(node, conn, rx, scratch, &|| false)
}

/// Dispatches the records available now, stopping early once `stop()` holds after one.
pub(in crate::runtime) fn drain_until(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    rx: &mut Consumer,
    scratch: &mut Vec<u8>,
    stop: &dyn Fn() -> bool,
) -> Result<(), String> {
    while !stop() {
        let slot = match rx.try_read() {
            Ok(Some(slot)) => slot,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("shared memory: {e}")),
        };
        let keys = LinkKeys {
            local: node.my_key,
            peer: conn.peer_key,
        };
        let (raw, payload) = shmframe::read(&slot, keys)?;
        let raw = &raw;
        let header = match Header::decode(raw, node.limits) {
            Ok(h) if h.payload_len as usize == payload.len() => h,
            Ok(_) => return Err("record length disagrees with its frame header".into()),
            Err(e) => return Err(format!("protocol violation: {e}")),
        };
        if let Err(e) = wire::verify(raw, payload) {
            // Records keep their boundaries: a bad checksum costs this frame only.
            super::super::conn::corrupt_frame(node, conn, &e);
            continue;
        }
        super::super::conn::check_source(node, conn, &header)?;
        let go_on = if header.kind == FrameKind::Data && header.has(flags::LOANED) {
            let view = take_loan(conn, &header, payload)?;
            on_loaned(node, conn, header, view, scratch)?
        } else {
            node.dispatch(conn, &header, payload, scratch)?
        };
        // Counted after the frame was handled: its answer (a pong, an ack) does not wait for
        // these read-modify-writes.
        node.stats.frames_received.fetch_add(1, Ordering::Relaxed);
        conn.link.on_received(HEADER_LEN + payload.len());
        if !go_on {
            return Err(GOODBYE.into());
        }
    }
    Ok(())
}

/// The pool slot a `LOANED` frame names, validated; any lie closes the link.
fn take_loan(conn: &Conn, h: &Header, payload: &[u8]) -> Result<SlotView, String> {
    let pools = conn
        .pools()
        .ok_or("loaned frame on a link without buffer pools")?;
    let d = Descriptor::decode(payload)?;
    let view = pools
        .rx
        .accept(d.slot, d.len as usize)
        .map_err(|e| e.to_string())?;
    if let Some(crc) = d.crc {
        if crc32c::crc32c(&view) != crc {
            return Err(format!(
                "loaned payload of transfer {:#x} fails its CRC32C",
                h.transfer_id
            ));
        }
    }
    Ok(view)
}

/// Delivers a loaned chunk: in place when it is a whole transfer for an in-memory node (the
/// application reads the slot; dropping the message returns it), otherwise through the usual
/// dispatch as if its bytes had come in the frame (relay, store, discard, duplicates, refusals).
fn on_loaned(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    mut h: Header,
    view: SlotView,
    scratch: &mut Vec<u8>,
) -> Result<bool, String> {
    let key = (h.src, h.transfer_id);
    let transform = Transform::from_wire_code(flags::transform(h.flags));
    let whole = h.dst == node.my_key
        && h.offset == 0
        && h.aux == view.len() as u64
        && flags::compression(h.flags) == 0
        && h.flags & flags::NAMED == 0 // its name comes in a Meta: the usual path waits for it
        && transform.is_some_and(|t| t != Transform::Cache)
        && node.zones.check(h.src, node.my_key, &[]).is_ok()
        && node.incoming.claim_whole(key);
    if !whole {
        h.flags &= !flags::LOANED;
        h.payload_len = view.len() as u32;
        return Ok(node.dispatch(conn, &h, &view, scratch)?);
    }
    node.stats
        .bytes_received
        .fetch_add(view.len() as u64 + HEADER_LEN as u64, Ordering::Relaxed);
    let transform = transform.unwrap_or(Transform::None);
    node.deliver_whole(conn, &h, transform, Payload::Shared(view));
    Ok(true)
}
