//! The reading side of a shared-memory link: the peer's ring read by the link's reader
//! thread (or by a caller driving the link), each frame through the one receive path
//! (`receive.rs`), and loans taken from the pool. Writing is `transport::ring_link`.

use super::super::receive::{self, End};
use super::super::{Conn, NodeInner};
use super::Descriptor;
use crate::buffer::Payload;
use crate::config::Transform;
use crate::transport::ring_link::ShmRx;
use crate::transport::shm::{SlotView, Waiter};
use crate::wire::{flags, Header, HEADER_LEN};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The reader checks the connection's liveness at least this often.
const LIVENESS_POLL: Duration = Duration::from_millis(100);

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
        if let Err(why) = drain_until(&node, &conn, consumer, &mut scratch, &|| false) {
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

/// Dispatches the records available now, stopping early once `stop()` holds after one.
pub(in crate::runtime) fn drain_until(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    rx: &mut ShmRx,
    scratch: &mut Vec<u8>,
    stop: &dyn Fn() -> bool,
) -> Result<(), String> {
    // This link came from an offer: any other one is the dispatch's to answer.
    let mut offered = true;
    while !stop() {
        match receive::step(node, conn, rx, scratch, &mut offered) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(End::Goodbye(_)) => return Err(GOODBYE.into()),
            Err(End::Violation(why) | End::Refused(why)) => return Err(why),
            Err(End::Eof) => return Err("shared-memory ring ended".into()),
            Err(End::Io(e)) => return Err(format!("shared memory: {e}")),
        }
    }
    Ok(())
}

/// The pool slot a `LOANED` frame names, validated; any lie closes the link.
pub(in crate::runtime) fn take_loan(
    conn: &Conn,
    h: &Header,
    payload: &[u8],
) -> Result<SlotView, String> {
    let pools = conn
        .pools()
        .ok_or("loaned frame on a link without buffer pools")?;
    let d = Descriptor::decode(payload)?;
    let view = pools
        .rx
        .accept(d.slot, d.len as usize)
        .map_err(|e| e.to_string())?;
    if let Some(crc) = d.crc {
        if crate::wire::payload_checksum(&view) != crc {
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
pub(in crate::runtime) fn on_loaned(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    mut h: Header,
    view: SlotView,
    scratch: &mut Vec<u8>,
) -> Result<bool, String> {
    let key = (h.src, h.transfer_id);
    let transform = Transform::from_wire_code(flags::transform(h.flags));
    // A relayed loan takes the usual path, which checks its origin (origin.rs).
    let whole = h.dst == node.my_key
        && h.hops == 0
        && h.offset == 0
        && h.aux == view.len() as u64
        && flags::compression(h.flags) == 0
        && h.flags & flags::NAMED == 0 // its name comes in a Meta: the usual path waits for it
        && transform.is_some_and(|t| t != Transform::Cache)
        && node.zones.check(h.src, node.my_key, &[]).is_ok()
        && node.incoming.claim_whole(key, node.whole_content_crc(&h, &view));
    if !whole {
        h.flags &= !flags::LOANED;
        h.payload_len = view.len() as u32;
        let handoff = &mut super::super::dispatch::Handoff::Never;
        return Ok(node.dispatch(conn, &h, &view, scratch, handoff)?);
    }
    node.stats
        .bytes_received
        .fetch_add(view.len() as u64 + HEADER_LEN as u64, Ordering::Relaxed);
    let transform = transform.unwrap_or(Transform::None);
    node.deliver_whole(conn, &h, transform, Payload::Shared(view));
    Ok(true)
}
