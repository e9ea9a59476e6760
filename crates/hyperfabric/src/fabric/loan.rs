//! The loan API: `fabric.loan(dst, len)` hands out a buffer inside the shared-memory pool of
//! the link to `dst`; `fabric.send_loaned(buf, opts)` passes it by descriptor, and the
//! destination's [`crate::Message::payload`] is a read-only view of the same memory.

use super::{Fabric, SendOptions, SendReport};
use crate::buffer::{LoanMem, LoanedBuf};
use crate::error::{Error, Result};
use crate::idle::{Backoff, Step, FREE_SLOT};
use crate::runtime::{Conn, Lane, PendingSend, SendSource};
use crate::transport::shm::LinkPools;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest buffer one loan hands out from a pool of the default shape (one slot); the slot
/// size of a link's pool is its dialer's `buffer_pool_slot_bytes`.
pub const LOAN_SLOT_BYTES: usize = crate::runtime::POOL_SLOT_BYTES_DEFAULT;

impl Fabric {
    /// A writable buffer of `len` bytes for a message to `dst`.
    ///
    /// When this node has a shared-memory link with buffer pools straight to `dst`, the buffer
    /// is a slot of that pool ([`LoanedBuf::is_shared`]): the sender writes the message in
    /// place and the destination reads it in place. Otherwise (TCP, a relay on the way, no
    /// pool, `len` above this node's `buffer_pool_slot_bytes` (default [`LOAN_SLOT_BYTES`]) or
    /// above the slot size of the link's pool, which its dialer chose) it is a heap buffer that
    /// [`Fabric::send_loaned`] sends by copy, so code written for loans works on any link.
    /// Waits up to the profile's send timeout for a free slot while all are lent.
    ///
    /// The slot comes from the bulk lane's link. With QoS on, a `high` or `ultra_high` send
    /// takes the urgent lane's own link, where this buffer goes by copy; an
    /// [`Endpoint::loan`](super::Endpoint::loan) loans from the lane its sends take.
    pub fn loan(&self, dst: &str, len: usize) -> Result<LoanedBuf> {
        let peer = self.inner.peer_by_id(dst)?;
        if len > self.inner.tuning.buffer_pool_slot_bytes {
            // Over this node's own slot size: a heap buffer, without dialing for it.
            return Ok(LoanedBuf::new(dst.into(), len, LoanMem::Heap(vec![0; len])));
        }
        let timeout = Duration::from_millis(self.inner.tuning.send_timeout_ms);
        let conn = self
            .inner
            .connection_to(&peer, Lane::Bulk, Instant::now() + timeout)?;
        loan_on(&conn, dst.into(), len, timeout)
    }

    /// Sends a loaned buffer and returns once the destination acknowledged it (end to end,
    /// as every send). Over the buffer's own link only a 16-byte descriptor travels; the
    /// payload is covered by a CRC32C only with [`SendOptions::verify_payload`]. Compression
    /// does not apply to loans (it would need a copy).
    pub fn send_loaned(&self, buf: LoanedBuf, opts: SendOptions) -> Result<SendReport> {
        self.start_send_loaned(buf, opts)?.wait()
    }

    /// Like [`Fabric::send_loaned`], returning at once with a handle (several may be in
    /// flight, each holding its slot until the destination drops the message).
    pub fn start_send_loaned(
        &self,
        buf: LoanedBuf,
        opts: SendOptions,
    ) -> Result<PendingSend<'static>> {
        let dst = buf.dst.clone();
        self.begin(&dst, SendSource::Loaned(buf), opts)
    }
}

/// A loan of `len` bytes for `dst` from the pool of `conn` (its direct link), or from the heap
/// when that link has no pool; waits up to `timeout` for a free slot.
pub(super) fn loan_on(
    conn: &Conn,
    dst: Arc<str>,
    len: usize,
    timeout: Duration,
) -> Result<LoanedBuf> {
    let Some(pools) = conn
        .pools()
        .cloned()
        .filter(|p| len <= p.tx.lock().pool().slot_size())
    else {
        // No pool, or `len` over its slot size: a heap buffer, sent by copy.
        return Ok(LoanedBuf::new(dst, len, LoanMem::Heap(vec![0; len])));
    };
    let slot = take_slot(&pools, Instant::now() + timeout).map_err(|e| match e {
        TakeError::Protocol(why) => {
            conn.close(&why);
            Error::Unreachable {
                node: dst.to_string(),
                reason: format!("shared-memory link closed: {why}"),
            }
        }
        TakeError::Timeout => Error::Timeout {
            what: format!("a free shared-memory buffer for `{dst}` (all lent)"),
            after: timeout,
        },
    })?;
    let mem = LoanMem::Slot {
        slot,
        pools,
        lent: false,
    };
    Ok(LoanedBuf::new(dst, len, mem))
}

enum TakeError {
    Protocol(String),
    Timeout,
}

/// A free slot of `pools`, waiting (spin, yield, then short sleeps) until `deadline`.
fn take_slot(
    pools: &Arc<LinkPools>,
    deadline: Instant,
) -> std::result::Result<crate::transport::shm::SlotMut, TakeError> {
    let mut backoff = Backoff::new(FREE_SLOT);
    loop {
        match pools.tx.lock().try_take() {
            Ok(Some(slot)) => return Ok(slot),
            Ok(None) => {}
            Err(e) => return Err(TakeError::Protocol(e.to_string())),
        }
        // No futex to park on (returns come through a ring nobody wakes us for): short sleeps.
        if backoff.step() == Step::Park {
            if Instant::now() >= deadline {
                return Err(TakeError::Timeout);
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}
