//! The link over shared memory: one SPSC ring per direction (see `shm::ring`), one record per
//! frame in the form `shmframe` describes. Records keep their boundaries, so a frame that
//! fails its checksum costs only itself; a ring the peer corrupted ends the link.
//! Setting a link up (segments, offer and accept over TCP) is `runtime::shmlink`.

use super::link::{self, Frame, LinkRx, LinkTx, RecvError, Sent};
use super::shm::{Consumer, Producer, Waiter};
use super::shmframe::{self, LinkKeys};
use super::TransportKind;
use crate::idle::{self, Backoff, Step};
use crate::wire::{self, HEADER_LEN};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a writer waits for ring space before declaring the peer stuck.
const FULL_RING_TIMEOUT: Duration = Duration::from_secs(30);

/// The sending half: our ring's producer.
pub struct ShmTx {
    p: Producer,
    keys: LinkKeys,
    /// Raised when the connection dies or starts closing: a writer waiting for space gives up.
    stop: Arc<AtomicBool>,
}

impl ShmTx {
    pub fn new(p: Producer, keys: LinkKeys, stop: Arc<AtomicBool>) -> ShmTx {
        ShmTx { p, keys, stop }
    }

    /// Removes our ring's segment file (the mappings live on until both sides drop them).
    pub fn unlink(&self) {
        let _ = self.p.ring().segment().unlink();
    }
}

impl LinkTx for ShmTx {
    fn kind(&self) -> TransportKind {
        TransportKind::Shm
    }

    fn send(&mut self, raw: &[u8; HEADER_LEN], payload: &[u8]) -> io::Result<Sent> {
        let stop = &self.stop;
        write_frame(&mut self.p, raw, payload, self.keys, &|| {
            !stop.load(Ordering::Acquire)
        })?;
        Ok(Sent::Written)
    }

    fn close(&mut self, goodbye: Option<(&[u8; HEADER_LEN], &[u8])>) {
        self.stop.store(true, Ordering::Release);
        if let Some((raw, reason)) = goodbye {
            // Best effort: a full ring (a dead or stuck peer) must not hold the close up.
            let _ = write_frame(&mut self.p, raw, reason, self.keys, &|| false);
        }
        self.unlink();
    }
}

/// Writes one frame as one ring record, waiting (spin, then yield, then short sleeps) while
/// the ring is full, as long as `alive()` and at most [`FULL_RING_TIMEOUT`].
fn write_frame(
    p: &mut Producer,
    raw: &[u8; HEADER_LEN],
    payload: &[u8],
    keys: LinkKeys,
    alive: &dyn Fn() -> bool,
) -> io::Result<()> {
    let (len, compact) = shmframe::plan(raw, payload, keys);
    // Read the clock only once the ring is found full (~20 ns the hot path does not pay).
    let mut started: Option<Instant> = None;
    let mut backoff = Backoff::new(idle::FULL_RING);
    loop {
        let slot = p
            .try_reserve(len)
            .map_err(|e| io::Error::other(e.to_string()))?;
        if let Some(mut slot) = slot {
            shmframe::write(&mut slot, raw, payload, compact);
            slot.commit();
            p.publish();
            return Ok(());
        }
        // The reader frees space without waking writers: past spinning and yielding, sleep.
        if backoff.step() == Step::Park {
            if !alive() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "shared-memory peer is gone",
                ));
            }
            if started.get_or_insert_with(Instant::now).elapsed() > FULL_RING_TIMEOUT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "shared-memory ring stayed full",
                ));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// The receiving half: the peer's ring's consumer.
pub struct ShmRx {
    c: Consumer,
    keys: LinkKeys,
    limits: wire::Limits,
}

impl ShmRx {
    pub fn new(c: Consumer, keys: LinkKeys, limits: wire::Limits) -> ShmRx {
        ShmRx { c, keys, limits }
    }

    /// A handle that waits for the next record without holding the ring.
    pub fn waiter(&self) -> Waiter {
        self.c.waiter()
    }

    /// Removes the peer's ring's segment file.
    pub fn unlink(&self) {
        let _ = self.c.ring().segment().unlink();
    }

    /// Whether a record waits (or the ring failed: [`LinkRx::poll_recv`] then says how). One
    /// load: a spinning reader checks this before taking the whole receive path.
    #[inline]
    pub fn ready(&mut self) -> bool {
        self.c.poll_ready().unwrap_or(true)
    }
}

impl LinkRx for ShmRx {
    fn kind(&self) -> TransportKind {
        TransportKind::Shm
    }

    fn poll_recv<R>(
        &mut self,
        on_frame: impl FnOnce(Frame<'_>) -> R,
    ) -> Result<Option<R>, RecvError> {
        let slot = match self.c.try_read() {
            Ok(Some(slot)) => slot,
            Ok(None) => return Ok(None),
            Err(e) => return Err(RecvError::Protocol(format!("shared memory: {e}"))),
        };
        let (raw, payload) = shmframe::read(&slot, self.keys).map_err(RecvError::Protocol)?;
        let frame = link::verified(&raw, payload, self.limits)?;
        // The record is freed for the producer once the frame has been handled.
        Ok(Some(on_frame(frame)))
    }
}
