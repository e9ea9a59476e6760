//! One receive path for verified frames, whatever link they came by: the link's half cut
//! the frame out and checked its CRC32C ([`crate::transport::LinkRx`]); here it is checked
//! against the connection (who may send what), loans are taken, and it goes to the dispatch.
//! The TCP reader thread, the shared-memory reader thread and callers driving a ring all
//! come through [`step`].

use super::dispatch::Handoff;
use super::{shmlink, Conn, NodeInner};
use crate::transport::{Frame, LinkRx, RecvError, TransportKind};
use crate::wire::{flags, DecodeError, FrameKind, Header, HEADER_LEN};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Why a link's reading ended.
pub(super) enum End {
    /// The other side closed the link without a word.
    Eof,
    /// The peer said goodbye (a Close frame), with this reason.
    Goodbye(String),
    Io(io::Error),
    /// The peer broke the protocol: why.
    Violation(String),
    /// The peer refused this node's proof of its credentials (`Reject`, `PROOF_REFUSED`).
    Refused(String),
}

/// Starts a link's reader thread `name` running `read` (the TCP reader and the
/// shared-memory reader alike); `what` names it in the error.
pub(super) fn spawn_reader_thread(
    name: String,
    what: &'static str,
    read: impl FnOnce() + Send + 'static,
) -> crate::error::Result<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(read)
        .map(|_| ())
        .map_err(|e| crate::error::Error::io(what, e))
}

/// Takes the next frame from `rx` and handles it. `Ok(false)`: nothing had arrived;
/// `Ok(true)`: a frame was handled (or dropped for a bad checksum). `offered` says whether
/// this link has had its shared-memory offer (the first one sets a link up).
pub(super) fn step<L: LinkRx>(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    rx: &mut L,
    scratch: &mut Vec<u8>,
    offered: &mut bool,
) -> Result<bool, End> {
    let kind = rx.kind();
    let mut handoff = Handoff::new(L::GIVES_PAYLOAD);
    let ho = &mut handoff;
    match rx.poll_recv(|f| on_frame(node, conn, kind, f, scratch, offered, ho)) {
        Ok(Some(handled)) => {
            // A whole message the dispatch left in the link's buffer: the link gives it away.
            if let Handoff::Deferred { header, transform } = handoff {
                let spare = node.incoming.spare(header.payload_len as usize);
                node.deliver_handed(conn, &header, transform, rx.give_payload(spare));
            }
            handled.map(|()| true)
        }
        Ok(None) => Ok(false),
        Err(RecvError::Corrupt(e)) => {
            corrupt_frame(node, conn, &e);
            Ok(true)
        }
        Err(RecvError::Closed) => Err(End::Eof),
        Err(RecvError::Io(e)) => Err(End::Io(e)),
        Err(RecvError::Protocol(why)) => Err(End::Violation(why)),
    }
}

/// One verified frame: source check, loans, the offer, the dispatch, then the counters
/// (after the frame was handled: its answer, a pong or an ack, does not wait for them).
// Always inlined into the link's poll: a call would move the decoded header (64 bytes)
// through memory twice more per frame.
#[inline(always)]
fn on_frame(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    kind: TransportKind,
    f: Frame<'_>,
    scratch: &mut Vec<u8>,
    offered: &mut bool,
    handoff: &mut Handoff,
) -> Result<(), End> {
    let Frame { header: h, payload } = f;
    let violation = |e: String| End::Violation(e);
    if h.kind == FrameKind::Reject && h.aux == crate::wire::codes::reject::PROOF_REFUSED {
        // Connection-level, like every handshake Reject: it carries no source key.
        return Err(End::Refused(node.proof_refused(
            &conn.peer,
            conn.peer_key,
            payload,
        )));
    }
    check_source(node, conn, &h).map_err(violation)?;
    let go_on = if h.kind == FrameKind::Data && h.has(flags::LOANED) {
        if kind != TransportKind::Shm {
            return Err(End::Violation(loan_refused(kind)));
        }
        let view = shmlink::take_loan(conn, &h, payload).map_err(violation)?;
        shmlink::on_loaned(node, conn, h, view, scratch).map_err(violation)?
    } else if h.kind == FrameKind::ShmOffer && !*offered && !conn.is_observer() {
        *offered = true;
        shmlink::accept(node, conn, payload);
        true
    } else {
        node.dispatch(conn, &h, payload, scratch, handoff)
            .map_err(|fault| End::Violation(fault.into()))?
    };
    node.stats.frames_received.fetch_add(1, Ordering::Relaxed);
    conn.link.on_received(HEADER_LEN + payload.len());
    if go_on {
        Ok(())
    } else {
        Err(End::Goodbye(String::from_utf8_lossy(payload).into_owned()))
    }
}

fn loan_refused(kind: TransportKind) -> String {
    let over = match kind {
        TransportKind::Tcp => "TCP".to_owned(),
        other => format!("a {other} link"),
    };
    format!("a LOANED frame over {over} (loans exist only on shared-memory links)")
}

/// Who a frame may claim to come from on this connection: the core's one check
/// ([`crate::core::source::check`]); a frame that fails it ends the connection.
fn check_source(node: &NodeInner, conn: &Conn, h: &Header) -> Result<(), String> {
    crate::core::source::check(h, node.my_key, conn.peer_key, |k| {
        node.peer_by_key(k).is_some()
    })
    .map_err(|why| format!("{why} (connection from {})", conn.peer))
}

/// A whole frame, sane header included, failed its checksum: it is dropped and the link
/// kept, since the sender's retransmission recovers it. (On a stream, a header corrupted
/// into another sane header puts it out of step: the next frame fails too, and the stream
/// link reports that as a protocol violation.)
fn corrupt_frame(node: &NodeInner, conn: &Conn, e: &DecodeError) {
    node.stats
        .corrupt_frames_dropped
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!(peer = %conn.peer, "dropping a corrupt frame: {e}");
}
