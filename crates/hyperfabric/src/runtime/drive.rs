//! Caller-driven progress of shared-memory links (what UCX's `ucp_worker_progress` does): a
//! thread that waits for something from a shm link — `recv` for a message, a send for its
//! acknowledgement — reads the ring itself instead of sleeping until the link's reader
//! thread hands the result over.
//!
//! While it drives, the caller holds the link's [`Lease`], which sends the reader thread to
//! sleep: on a small machine the two would otherwise take turns on one core, and every
//! message would cost a wake-up of the reader (futex) and then of the caller (condvar). The
//! lease runs out by itself one to two
//! [`crate::idle::IdleStrategy::reader_lease`] after the caller's last poll; a caller that gave up
//! waiting (nothing came within [`DRIVE_SPIN`]) hands it back at once, so the reader thread
//! takes over and parks on the ring as usual (an idle node still costs no CPU).

use super::{shmlink, Conn, Message, NodeInner};
use parking_lot::{Condvar, Mutex};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a caller polls with nothing arriving before it gives the link back to the reader
/// thread and sleeps (the gap between messages of a stream is shorter).
pub const DRIVE_SPIN: Duration = Duration::from_micros(200);

/// Who reads a shared-memory link right now: a caller holding the lease, or the reader thread.
#[derive(Default)]
pub struct Lease {
    /// Bumped by the driving caller at every poll (a plain store: no clock read on its hot
    /// path); 0 while nobody drives. The reader thread sees the caller gone when it stops
    /// moving for a whole lease length.
    beat: AtomicU64,
    /// Where the reader thread sleeps while the lease holds.
    gate: (Mutex<()>, Condvar),
}

impl Lease {
    pub(super) fn renew(&self) {
        let b = self.beat.load(Ordering::Relaxed);
        self.beat.store(b.wrapping_add(1).max(1), Ordering::Relaxed);
    }

    /// A caller drives the link now (or did within the last lease length).
    pub fn is_held(&self) -> bool {
        self.beat.load(Ordering::Relaxed) != 0
    }

    /// Hands the link back to the reader thread now (a caller that stops waiting).
    pub fn release(&self) {
        if self.beat.swap(0, Ordering::AcqRel) != 0 {
            let _guard = self.gate.0.lock();
            self.gate.1.notify_all();
        }
    }

    /// The reader thread: sleeps while a caller holds the lease, that is until it is handed
    /// back or nobody polled for `len` (noticed within `2 × len` of the last poll). Returns
    /// whether it slept.
    pub fn sleep_while_held(&self, len: Duration) -> bool {
        let mut slept = false;
        loop {
            let seen = self.beat.load(Ordering::Relaxed);
            if seen == 0 {
                return slept;
            }
            {
                let mut guard = self.gate.0.lock();
                if self.beat.load(Ordering::Relaxed) != 0 {
                    self.gate.1.wait_for(&mut guard, len);
                }
            }
            slept = true;
            if self.beat.load(Ordering::Relaxed) == seen {
                // Not one poll for a whole lease: the caller went away without handing back.
                let _ = self
                    .beat
                    .compare_exchange(seen, 0, Ordering::Relaxed, Ordering::Relaxed);
                return true;
            }
        }
    }
}

/// Reads what `conn`'s ring holds now, from the calling thread, unless another thread reads it.
/// A ring error ends the link here (the reader thread may be asleep on the lease).
pub fn drive(node: &Arc<NodeInner>, conn: &Arc<Conn>, scratch: &mut Vec<u8>) {
    read_ring(node, conn, scratch, &|| false, || None::<()>);
}

/// Under `conn`'s ring lock (if no other thread holds it): `first()`, whose `Some` is returned
/// at once; otherwise renews the lease and dispatches records until `stop()`. A ring error
/// ends the link here (the reader thread may be asleep on the lease).
fn read_ring<T>(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    scratch: &mut Vec<u8>,
    stop: &dyn Fn() -> bool,
    first: impl FnOnce() -> Option<T>,
) -> Option<T> {
    let mut rx = conn.shm_rx.try_lock()?;
    if let Some(got) = first() {
        return Some(got);
    }
    let consumer = rx.as_mut()?;
    conn.lease.renew();
    if let Err(why) = shmlink::drain_until(node, conn, consumer, scratch, stop) {
        drop(rx);
        shmlink::end_link(node, conn, &why);
    }
    None
}

thread_local! {
    /// This thread waits in `recv` and drives rings: a message completed here is handed to it
    /// directly (see [`offer_to_driver`]), never queued behind the channel it would wait on.
    static RECEIVING: Cell<bool> = const { Cell::new(false) };
    static STASH: RefCell<Option<Message>> = const { RefCell::new(None) };
    /// Shared-memory links the receiving thread drives (reused: no allocation per call).
    static LINKS: RefCell<Vec<Arc<Conn>>> = const { RefCell::new(Vec::new()) };
}

fn stashed() -> bool {
    STASH.with(|s| s.borrow().is_some())
}

impl NodeInner {
    /// Hands a received message to the application: to the thread waiting in `recv` when
    /// that thread read the ring itself, else to the receive queue.
    pub(super) fn deliver(&self, msg: Message) {
        if let Some(msg) = offer_to_driver(msg) {
            self.incoming.enqueue(msg, is_receiving());
        }
    }
}

/// True on a thread that is the application's receiver, driving links itself.
pub fn is_receiving() -> bool {
    RECEIVING.with(Cell::get)
}

/// Delivery of a completed message: `None` when the current thread is a receiving driver that
/// took it; otherwise the message goes back to the caller (for the channel).
pub fn offer_to_driver(msg: Message) -> Option<Message> {
    if !RECEIVING.with(Cell::get) {
        return Some(msg);
    }
    STASH.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_some() {
            return Some(msg);
        }
        *s = Some(msg);
        None
    })
}

/// `recv` over shared-memory links: polls the message channel and drives every shm link of
/// the node until a message comes or [`DRIVE_SPIN`] passes. `None`: nothing came (the caller
/// then blocks on the channel, the reader threads having taken the links back).
pub fn recv_driven(node: &Arc<NodeInner>, deadline: Option<Instant>) -> Option<Message> {
    LINKS.with(|links| {
        let mut links = links.borrow_mut();
        node.shm_links(&mut links);
        if links.is_empty() {
            return None;
        }
        RECEIVING.with(|r| r.set(true));
        let got = poll_links(node, &links, deadline);
        RECEIVING.with(|r| r.set(false));
        if got.is_none() {
            for conn in links.iter() {
                conn.lease.release();
            }
        }
        links.clear();
        got
    })
}

fn poll_links(
    node: &Arc<NodeInner>,
    links: &[Arc<Conn>],
    deadline: Option<Instant>,
) -> Option<Message> {
    let mut scratch = Vec::new();
    let started = Instant::now();
    let mut polls: u32 = 0;
    loop {
        for conn in links {
            // Frames the reader thread delivered before we took the ring come first.
            let queued = || node.incoming.try_recv().ok();
            if let Some(msg) = read_ring(node, conn, &mut scratch, &stashed, queued) {
                return Some(msg);
            }
            if let Some(msg) = STASH.with(|s| s.borrow_mut().take()) {
                return Some(msg);
            }
        }
        if let Ok(msg) = node.incoming.try_recv() {
            return Some(msg);
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(64) {
            let now = Instant::now();
            if now - started >= DRIVE_SPIN || deadline.is_some_and(|d| now >= d) {
                return None;
            }
        }
        std::hint::spin_loop();
    }
}

/// A send's wait for its acknowledgement over `conn`: drives the ring until `ready()`, the
/// deadline, or [`DRIVE_SPIN`] without it; `false` when it stopped without `ready()` (the
/// lease is handed back: the caller parks, the reader thread reads).
pub fn wait_driven(
    node: &Arc<NodeInner>,
    conn: &Arc<Conn>,
    deadline: Instant,
    ready: impl Fn() -> bool,
) -> bool {
    let mut scratch = Vec::new();
    let started = Instant::now();
    let mut polls: u32 = 0;
    while conn.is_alive() {
        drive(node, conn, &mut scratch);
        if ready() {
            return true;
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(64) {
            let now = Instant::now();
            if now - started >= DRIVE_SPIN || now >= deadline {
                break;
            }
        }
        std::hint::spin_loop();
    }
    conn.lease.release();
    ready()
}
