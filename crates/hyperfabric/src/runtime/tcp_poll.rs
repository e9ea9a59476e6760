//! Caller-driven progress on a plain TCP link (`busy_poll`, on in `low_latency`), as UCX does:
//! a caller waiting for an answer (a pinger) reads the socket itself, non-blocking, between
//! spins, so no kernel wake-up of the reader thread and no hand-off to the caller sits in the
//! round trip. The stream (its buffered reader) lives in the connection under a lock; the
//! reader thread waits for bytes without holding it (a blocking `MSG_PEEK`), then takes it and
//! handles what arrived, and sleeps on the link's lease while a caller drives.
//!
//! Between frames the reader thread itself polls the socket without blocking for a bounded
//! while ([`crate::idle::IdleStrategy::socket_reader`]), so on the answering side too a
//! frame that follows soon after the last (a ping run, a stream) finds a thread already
//! running instead of one to wake; past that it blocks in the kernel. A sending caller waits
//! for its acknowledgement by reading the socket itself ([`wait_polled`]), as a pinger does.
//!
//! Links without `busy_poll`, and TLS links (whose plaintext may sit buffered where the socket
//! cannot tell), keep the plain reader thread (`conn::read_loop`).

use super::receive::{self, End};
use super::{Conn, NodeInner};
use crate::idle::{Backoff, Step};
use crate::sys::socket::poll_readable;
use crate::transport::stream::StreamRx;
use socket2::SockRef;
use std::io;
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A caller that finds the stream held (the reader thread is inside a frame) waits this long
/// for it, then lets the reader thread answer instead.
const TAKE_TIMEOUT: Duration = Duration::from_millis(20);
/// A parked poller waits in `poll(2)` for at most this long before it looks at its deadline
/// again (the kernel wakes it as soon as a byte arrives: no fixed sleep).
const PARK_MAX: Duration = Duration::from_millis(10);
/// Attempts a sending caller makes to take the stream from a spinning reader thread.
const TAKE_TRIES: u32 = 64;
/// A sending caller polls this long with nothing arriving before it hands the stream back.
const SEND_SPIN: Duration = super::drive::DRIVE_SPIN;

/// A connection's stream with what its reader has learnt so far.
pub struct PolledRx {
    rx: StreamRx,
    /// Whether this link has had its shared-memory offer (only the first sets a link up).
    offered: bool,
}

impl PolledRx {
    pub fn new(rx: StreamRx) -> PolledRx {
        PolledRx { rx, offered: false }
    }

    /// Handles the next frame, blocking until it is whole.
    fn step(
        &mut self,
        node: &Arc<NodeInner>,
        conn: &Arc<Conn>,
        scratch: &mut Vec<u8>,
    ) -> Result<bool, End> {
        receive::step(node, conn, &mut self.rx, scratch, &mut self.offered)
    }
}

/// Whether bytes wait on `conn`'s stream: buffered already, or on the socket (a non-blocking
/// `MSG_PEEK`; the end of the stream counts, so that the next read reports it).
fn readable_now(conn: &Conn, rx: &PolledRx) -> io::Result<bool> {
    if rx.rx.buffered() {
        return Ok(true);
    }
    let mut byte = [MaybeUninit::<u8>::uninit()];
    match SockRef::from(&conn.control)
        .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// Blocks until a byte waits on the socket (or it ends, or fails), consuming nothing.
fn wait_readable(conn: &Conn) {
    let mut byte = [MaybeUninit::<u8>::uninit()];
    // Any outcome sends the reader to look: data, the end, an error (its read reports it),
    // or a caller's receive timeout (then nothing is there and the reader waits again).
    let _ = SockRef::from(&conn.control).peek(&mut byte);
}

/// The reader thread of a caller-polled link: handles every frame until the stream ends.
pub(super) fn read_loop(node: &Arc<NodeInner>, conn: &Arc<Conn>, rx: StreamRx) -> End {
    *conn.tcp_rx.lock() = Some(PolledRx::new(rx));
    match serve(node, conn) {
        Err(end) => end,
    }
}

/// [`read_loop`]'s frames, spin then block between them, until the stream ends.
fn serve(node: &Arc<NodeInner>, conn: &Arc<Conn>) -> Result<std::convert::Infallible, End> {
    let lease = node.tuning.idle_strategy.reader_lease();
    let mut backoff = Backoff::new(node.tuning.idle_strategy.socket_reader());
    let mut scratch = Vec::new();
    loop {
        // A caller drives the stream: stay out of its way (and off its core).
        if conn.lease.sleep_while_held(lease) {
            backoff.reset();
            continue;
        }
        // Spinning: one non-blocking look, under the lock only if nobody else holds it.
        if let Some(mut held) = conn.tcp_rx.try_lock() {
            if take_frame(node, conn, &mut held, &mut scratch)? {
                backoff.reset();
                continue;
            }
        }
        if backoff.step() != Step::Park {
            continue;
        }
        // Quiet for the whole spin: block in the kernel until a byte comes.
        backoff.reset();
        let buffered = conn.tcp_rx.lock().as_ref().is_some_and(|r| r.rx.buffered());
        if !buffered {
            wait_readable(conn);
        }
        take_frame(node, conn, &mut conn.tcp_rx.lock(), &mut scratch)?;
    }
}

/// Handles the next frame of the stream in `held` if one waits (a caller may have read what
/// woke us); `Ok(false)`: nothing waits.
fn take_frame(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    held: &mut Option<PolledRx>,
    scratch: &mut Vec<u8>,
) -> Result<bool, End> {
    let Some(rx) = held.as_mut() else {
        return Err(End::Eof);
    };
    match readable_now(conn, rx) {
        Ok(false) => Ok(false),
        Ok(true) => rx.step(node, conn, scratch),
        Err(e) => Err(End::Io(e)),
    }
}

/// A caller's hold on a polled stream for a run of round trips: the lease sends the reader
/// thread to sleep, a receive timeout bounds a read that a peer leaves half done.
pub(super) struct Hold<'a> {
    conn: &'a Conn,
    rx: parking_lot::MutexGuard<'a, Option<PolledRx>>,
    /// Let the lease lapse by itself instead of handing it back when this hold ends.
    keep_lease: bool,
}

impl<'a> Hold<'a> {
    /// The stream of `conn`, if it is caller-polled and can be had now (`first`: within
    /// [`TAKE_TIMEOUT`]). None also while the reader thread has not yet handed the stream
    /// over (a connection just made): a later attempt may get it.
    pub(super) fn take(conn: &'a Conn, read_timeout: Duration, first: bool) -> Option<Hold<'a>> {
        if !conn.caller_polls() || conn.is_shm() {
            return None;
        }
        let rx = match first {
            true => conn.tcp_rx.try_lock_for(TAKE_TIMEOUT)?,
            false => conn.tcp_rx.try_lock()?,
        };
        rx.as_ref()?;
        // Without it a peer that sends half a frame and stops would hold this caller forever.
        if let Err(e) = conn
            .control
            .set_read_timeout(Some(read_timeout.max(Duration::from_millis(1))))
        {
            tracing::debug!(peer = %conn.peer, "no receive timeout for a polled read: {e}");
            return None;
        }
        conn.lease.renew();
        Some(Hold {
            conn,
            rx,
            keep_lease: false,
        })
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        // The reader thread reads without a timeout: a quiet peer is no error.
        let _ = self.conn.control.set_read_timeout(None);
        if !self.keep_lease {
            self.conn.lease.release();
        }
    }
}

impl NodeInner {
    /// Waits for pong `seq` reading the stream through `hold` (spin, then yield, then park
    /// between polls); `Err`: the stream failed and the connection must end.
    pub(super) fn await_pong_polled(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        hold: &mut Hold<'_>,
        answered: impl Fn() -> bool,
        deadline: Instant,
        scratch: &mut Vec<u8>,
    ) -> Result<bool, String> {
        let Some(rx) = hold.rx.as_mut() else {
            return Err("connection closed".into());
        };
        let mut backoff = Backoff::new(self.tuning.idle_strategy.socket_poll());
        while !answered() {
            conn.lease.renew();
            if readable_now(conn, rx).map_err(|e| format!("I/O error: {e}"))? {
                rx.step(self, conn, scratch).map_err(describe)?;
                self.stats.frames_polled.fetch_add(1, Ordering::Relaxed);
                backoff.reset();
                continue;
            }
            let step = backoff.step();
            if backoff.polls().is_multiple_of(64) && Instant::now() >= deadline {
                return Ok(answered());
            }
            if step == Step::Park {
                park(conn, deadline).map_err(|e| format!("I/O error: {e}"))?;
            }
        }
        Ok(true)
    }
}

/// A poller past its spins and yields waits in the kernel until a byte arrives (or
/// [`PARK_MAX`], or the deadline): one wake-up, and no fixed sleep after the answer came.
fn park(conn: &Conn, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    poll_readable(&conn.control, left.min(PARK_MAX)).map(|_| ())
}

/// A send's wait for its acknowledgement over a caller-polled TCP link: reads the stream on
/// this thread until `ready()`, the deadline, or [`SEND_SPIN`] without a frame. `false`: it
/// stopped without `ready()` (or could not take the stream), the lease handed back, so the
/// caller parks and the reader thread reads. On `true` the lease lapses by itself, so a
/// sender that sends again at once finds the reader thread still away from its core.
pub(super) fn wait_polled(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    deadline: Instant,
    ready: impl Fn() -> bool,
) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    // The reader thread takes the lock for a moment at each of its polls: try a few times.
    let Some(mut hold) = (0..TAKE_TRIES).find_map(|_| {
        std::hint::spin_loop();
        Hold::take(conn, left, false)
    }) else {
        return false;
    };
    let mut scratch = Vec::new();
    let mut started = Instant::now();
    let mut polls: u32 = 0;
    let failed = loop {
        if ready() {
            hold.keep_lease = true;
            return true;
        }
        let Some(rx) = hold.rx.as_mut() else {
            return false;
        };
        conn.lease.renew();
        match readable_now(conn, rx) {
            Ok(true) => match rx.step(node, conn, &mut scratch) {
                Ok(_) => {
                    node.stats.frames_polled.fetch_add(1, Ordering::Relaxed);
                    started = Instant::now();
                    continue;
                }
                Err(end) => break describe(end),
            },
            Ok(false) => {}
            Err(e) => break format!("I/O error: {e}"),
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(64) {
            let now = Instant::now();
            if now - started >= SEND_SPIN || now >= deadline {
                return ready();
            }
        }
        std::hint::spin_loop();
    };
    drop(hold);
    end_polled(node, conn, &failed);
    ready()
}

/// Why a polled stream ended, as the reader thread would say it.
fn describe(end: End) -> String {
    match end {
        End::Eof => "peer closed the connection".to_owned(),
        End::Goodbye(why) => format!("peer said goodbye: {why}"),
        End::Io(e) => format!("I/O error: {e}"),
        End::Violation(why) | End::Refused(why) => why,
    }
}

/// Ends a connection whose stream failed under a polling caller (the reader thread, asleep
/// on the lease or waiting for the stream, then sees it closed and forgets it).
pub(super) fn end_polled(node: &NodeInner, conn: &Conn, why: &str) {
    if !why.starts_with("peer ") && !why.starts_with("I/O") {
        node.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(peer = %conn.peer, "closing connection: {why}");
    }
    conn.close(why);
}
