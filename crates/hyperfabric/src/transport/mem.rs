//! The link in memory: both halves in one process, for tests and simulation. It carries the
//! real encoded frames (header with its CRC32C, then the payload) and checks them on receipt
//! exactly as the other links do, so a flipped byte is caught here too.
//!
//! The queue is bounded in bytes ([`channel`]'s `capacity_bytes`): a writer waits for room
//! (at most [`FULL_TIMEOUT`]) instead of the queue growing, and buffers are recycled (at most
//! [`SPARE_BUFFERS`] kept), so steady state allocates nothing.

use super::link::{self, Frame, LinkRx, LinkTx, RecvError, Sent};
use super::TransportKind;
use crate::wire::{self, HEADER_LEN};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a writer waits for room before the link is declared stuck.
pub const FULL_TIMEOUT: Duration = Duration::from_secs(30);
/// Frame buffers kept for reuse.
const SPARE_BUFFERS: usize = 64;

struct Queue {
    frames: VecDeque<Vec<u8>>,
    /// Bytes of the frames queued.
    bytes: usize,
    spare: Vec<Vec<u8>>,
    /// One half was closed or dropped: no more frames go in.
    closed: bool,
}

struct Shared {
    q: Mutex<Queue>,
    /// Signalled when room is made or the link closes.
    room: Condvar,
    capacity_bytes: usize,
}

/// One direction of an in-memory link holding at most `capacity_bytes` of frames (a frame
/// larger than that is refused); `limits` are the receiver's.
pub fn channel(capacity_bytes: usize, limits: wire::Limits) -> (MemTx, MemRx) {
    let shared = Arc::new(Shared {
        q: Mutex::new(Queue {
            frames: VecDeque::new(),
            bytes: 0,
            spare: Vec::new(),
            closed: false,
        }),
        room: Condvar::new(),
        capacity_bytes,
    });
    let tx = MemTx {
        shared: Arc::clone(&shared),
    };
    (tx, MemRx { shared, limits })
}

/// The sending half.
pub struct MemTx {
    shared: Arc<Shared>,
}

impl MemTx {
    /// Queues one frame, waiting for room unless `wait` is false. Returns whether it went in.
    fn push(&self, raw: &[u8; HEADER_LEN], payload: &[u8], wait: bool) -> io::Result<bool> {
        let len = HEADER_LEN + payload.len();
        let cap = self.shared.capacity_bytes;
        if len > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a frame of {len} bytes exceeds the link's {cap} bytes"),
            ));
        }
        let deadline = Instant::now() + FULL_TIMEOUT;
        let mut q = self.shared.q.lock();
        while !q.closed && q.bytes + len > cap {
            if !wait {
                return Ok(false);
            }
            if self.shared.room.wait_until(&mut q, deadline).timed_out() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "in-memory link stayed full",
                ));
            }
        }
        if q.closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "in-memory link is closed",
            ));
        }
        let mut buf = q.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(raw);
        buf.extend_from_slice(payload);
        q.bytes += len;
        q.frames.push_back(buf);
        Ok(true)
    }
}

impl LinkTx for MemTx {
    fn kind(&self) -> TransportKind {
        TransportKind::Mem
    }

    fn send(&mut self, raw: &[u8; HEADER_LEN], payload: &[u8]) -> io::Result<Sent> {
        self.push(raw, payload, true).map(|_| Sent::Written)
    }

    fn close(&mut self, goodbye: Option<(&[u8; HEADER_LEN], &[u8])>) {
        if let Some((raw, reason)) = goodbye {
            let _ = self.push(raw, reason, false);
        }
        self.shared.close();
    }
}

impl Drop for MemTx {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Shared {
    fn close(&self) {
        self.q.lock().closed = true;
        self.room.notify_all();
    }
}

/// The receiving half.
pub struct MemRx {
    shared: Arc<Shared>,
    limits: wire::Limits,
}

impl LinkRx for MemRx {
    fn kind(&self) -> TransportKind {
        TransportKind::Mem
    }

    /// Frames queued before a close are all handed out; then [`RecvError::Closed`].
    fn poll_recv<R>(
        &mut self,
        on_frame: impl FnOnce(Frame<'_>) -> R,
    ) -> Result<Option<R>, RecvError> {
        let buf = {
            let mut q = self.shared.q.lock();
            match q.frames.pop_front() {
                Some(buf) => {
                    q.bytes -= buf.len();
                    buf
                }
                None if q.closed => return Err(RecvError::Closed),
                None => return Ok(None),
            }
        };
        self.shared.room.notify_all();
        let got = match buf.split_first_chunk::<HEADER_LEN>() {
            Some((raw, payload)) => link::verified(raw, payload, self.limits).map(on_frame),
            None => Err(RecvError::Protocol("frame shorter than its header".into())),
        };
        let mut q = self.shared.q.lock();
        if q.spare.len() < SPARE_BUFFERS {
            q.spare.push(buf);
        }
        got.map(Some)
    }
}

impl Drop for MemRx {
    fn drop(&mut self) {
        // Nobody reads any more: writers fail instead of waiting for room.
        self.shared.close();
    }
}
