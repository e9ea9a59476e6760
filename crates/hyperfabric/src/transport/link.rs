//! The link abstraction: one link moves encoded frames (64-byte header with its CRC32C, then
//! the payload) between two nodes, whatever carries them.
//!
//! A link comes in two halves because the runtime uses it that way: many threads write
//! (under the connection's writer lock, in QoS order) while one thread reads without any
//! lock. [`LinkTx`] is `send`, `kind` and `close`; [`LinkRx`] is `poll_recv`, which hands
//! out only frames that decoded and passed their checksum.
//!
//! Implementations: [`super::stream`] (TCP, plain or TLS), [`super::ring_link`] (shared
//! memory), [`super::mem`] (in memory, for tests and simulation). Wrappers around any
//! sending half: [`super::wrap::Faulty`] (fault injection) and [`super::wrap::Paced`]
//! (`throttle_gbps`). The runtime names its halves by type (static dispatch, an enum where
//! a connection changes transport): no virtual call or allocation per frame.

use super::TransportKind;
use crate::wire::{self, DecodeError, FrameKind, Header, HEADER_LEN};
use std::io;

/// Offset of the frame kind in an encoded header (the wire layout, see `wire`).
const KIND_AT: usize = 5;

/// The kind of the encoded frame `raw` (None: not a kind of this wire version).
pub fn frame_kind(raw: &[u8; HEADER_LEN]) -> Option<FrameKind> {
    FrameKind::from_code(raw[KIND_AT])
}

/// What became of a frame given to [`LinkTx::send`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// On its way to the other side.
    Written,
    /// Dropped on purpose (fault injection), as a lossy wire would: the caller is not told
    /// otherwise, but it is not counted as sent.
    Dropped,
}

/// A frame that arrived whole and passed its CRC32C. `payload` lies where the link keeps it
/// (the read buffer, the ring record): no copy.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub header: Header,
    pub payload: &'a [u8],
}

/// Why [`LinkRx::poll_recv`] gave no frame.
#[derive(Debug)]
pub enum RecvError {
    /// The other side ended the link (end of stream; every frame before it was handed out).
    Closed,
    Io(io::Error),
    /// A frame failed its checksum. Its boundaries held, so only it is lost (the sender's
    /// retransmission recovers it) and the link goes on.
    Corrupt(DecodeError),
    /// The bytes no longer make frames (a header that does not decode, a record that lies
    /// about its size, a stream out of step): the link must close. The text says why.
    Protocol(String),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Closed => f.write_str("link closed"),
            RecvError::Io(e) => write!(f, "{e}"),
            RecvError::Corrupt(e) => write!(f, "{e}"),
            RecvError::Protocol(why) => f.write_str(why),
        }
    }
}

/// The sending half of a link.
pub trait LinkTx: Send {
    /// What carries the frames.
    fn kind(&self) -> TransportKind;

    /// Writes one encoded frame: `raw` is its header (checksum included), then `payload`.
    /// Blocks while the link is full, for a bounded time (each link names its limit).
    fn send(&mut self, raw: &[u8; HEADER_LEN], payload: &[u8]) -> io::Result<Sent>;

    /// Ends the link: writes `goodbye` (an encoded Close frame and its reason) if that can
    /// be done without waiting, then shuts the link down so the other side sees it end.
    fn close(&mut self, goodbye: Option<(&[u8; HEADER_LEN], &[u8])>);
}

/// The receiving half of a link.
pub trait LinkRx: Send {
    /// What carries the frames.
    fn kind(&self) -> TransportKind;

    /// The next frame, handed to `on_frame` in place. `Ok(None)`: nothing has arrived yet
    /// (a stream link blocks until something does instead).
    fn poll_recv<R>(
        &mut self,
        on_frame: impl FnOnce(Frame<'_>) -> R,
    ) -> Result<Option<R>, RecvError>;

    /// Whether [`Self::give_payload`] works: the payload lies in a vector of the link's own
    /// (a stream's read buffer), not in memory the link must keep (a ring record).
    const GIVES_PAYLOAD: bool = false;

    /// Gives away the vector that holds the payload of the frame last handed to `on_frame`
    /// (its first `payload_len` bytes), taking `spare` to read the next frames into. Where
    /// [`Self::GIVES_PAYLOAD`] is false, `spare` comes back and the payload stays.
    fn give_payload(&mut self, spare: Vec<u8>) -> Vec<u8> {
        spare
    }
}

/// Decodes and verifies the frame whose header is `raw` and whose payload is `payload`
/// (as cut out by the link): the one check every receiving half makes. Always inlined: on
/// the latency path, a call would move the decoded header through memory twice.
#[inline(always)]
pub fn verified<'a>(
    raw: &[u8; HEADER_LEN],
    payload: &'a [u8],
    limits: wire::Limits,
) -> Result<Frame<'a>, RecvError> {
    let header = match Header::decode(raw, limits) {
        Ok(h) if h.payload_len as usize == payload.len() => h,
        Ok(_) => {
            return Err(RecvError::Protocol(
                "record length disagrees with its frame header".into(),
            ))
        }
        Err(e) => return Err(RecvError::Protocol(format!("protocol violation: {e}"))),
    };
    wire::verify(raw, payload).map_err(RecvError::Corrupt)?;
    Ok(Frame { header, payload })
}
