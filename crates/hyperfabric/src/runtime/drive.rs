//! Caller-driven progress of shared-memory links (what UCX's `ucp_worker_progress` does): a
//! thread that waits for something from a shm link — `recv` for a message, a send for its
//! acknowledgement — reads the ring itself instead of sleeping until the link's reader
//! thread hands the result over.
//!
//! While it drives, the caller holds the link's [`Lease`], which sends the reader thread to
//! sleep: on a small machine the two would otherwise take turns on one core, and every
//! message would cost a wake-up of the reader (futex) and then of the caller (condvar). The
//! lease runs out by itself [`lease_len`] after the caller's last poll; a caller that gave up
//! waiting (nothing came within [`DRIVE_SPIN`]) hands it back at once, so the reader thread
//! takes over and parks on the ring as usual (an idle node still costs no CPU).

use super::{shmlink, Conn, Message, NodeInner};
use crate::config::IdleStrategy;
use parking_lot::{Condvar, Mutex};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long a caller polls with nothing arriving before it gives the link back to the reader
/// thread and sleeps (the gap between messages of a stream is shorter).
pub const DRIVE_SPIN: Duration = Duration::from_micros(200);

/// How long the reader thread stays away after a caller's last poll.
pub fn lease_len(strategy: IdleStrategy) -> Duration {
    match strategy {
        // An idle high-throughput node must not spin: its reader sleeps through the lease.
        IdleStrategy::SpinPark => Duration::from_millis(1),
        // Low-latency nodes: frames the caller leaves behind wait for the reader only briefly.
        IdleStrategy::SpinYield | IdleStrategy::BusySpin => Duration::from_micros(100),
    }
}

fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Who reads a shared-memory link right now: a caller holding the lease, or the reader thread.
#[derive(Default)]
pub struct Lease {
    /// Time (ns since the process epoch) until which a caller drives the ring; 0: nobody.
    until_ns: AtomicU64,
    /// Where the reader thread sleeps while the lease holds.
    gate: (Mutex<()>, Condvar),
}

impl Lease {
    fn renew(&self, len: Duration) {
        self.until_ns
            .store(now_ns() + len.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Hands the link back to the reader thread now (a caller that stops waiting).
    pub fn release(&self) {
        if self.until_ns.swap(0, Ordering::AcqRel) != 0 {
            let _guard = self.gate.0.lock();
            self.gate.1.notify_all();
        }
    }

    /// Time left on the lease, if a caller holds it.
    fn left(&self) -> Option<Duration> {
        let until = self.until_ns.load(Ordering::Relaxed);
        if until == 0 {
            // Nobody drives (the reader thread's hot path: no clock read).
            return None;
        }
        let now = now_ns();
        if until <= now {
            // Lapsed: clear it (unless renewed meanwhile) so later checks skip the clock.
            let _ = self
                .until_ns
                .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
            return None;
        }
        Some(Duration::from_nanos(until - now))
    }

    /// The reader thread: sleeps while a caller holds the lease. Returns whether it slept.
    pub fn sleep_while_held(&self) -> bool {
        let mut slept = false;
        while let Some(left) = self.left() {
            let mut guard = self.gate.0.lock();
            if self.left().is_some() {
                self.gate.1.wait_for(&mut guard, left);
            }
            slept = true;
        }
        slept
    }
}

/// Reads what `conn`'s ring holds now, from the calling thread, unless another thread reads it.
/// A ring error ends the link here (the reader thread may be asleep on the lease).
pub fn drive(node: &Arc<NodeInner>, conn: &Arc<Conn>, scratch: &mut Vec<u8>) {
    if let Some(mut rx) = conn.shm_rx.try_lock() {
        if let Some(consumer) = rx.as_mut() {
            conn.lease.renew(lease_len(node.tuning.idle_strategy));
            if let Err(why) = shmlink::drain(node, conn, consumer, scratch) {
                drop(rx);
                shmlink::end_link(node, conn, &why);
            }
        }
    }
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
            if let Some(mut rx) = conn.shm_rx.try_lock() {
                if let Ok(msg) = node.incoming.try_recv() {
                    return Some(msg);
                }
                if let Some(consumer) = rx.as_mut() {
                    conn.lease.renew(lease_len(node.tuning.idle_strategy));
                    let res = shmlink::drain_until(node, conn, consumer, &mut scratch, &stashed);
                    if let Err(why) = res {
                        drop(rx);
                        shmlink::end_link(node, conn, &why);
                    }
                }
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
