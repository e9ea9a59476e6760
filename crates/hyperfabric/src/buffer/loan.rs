//! [`LoanedBuf`]: a buffer the sender writes in place, inside the shared-memory pool of its
//! link to the destination (or on the heap when that link has no pool).

use crate::transport::shm::{LinkPools, SlotMut};
use std::sync::Arc;

/// Where a loan's bytes live.
pub(crate) enum LoanMem {
    /// A slot of the link's pool: sending it passes a descriptor, not the bytes.
    Slot {
        slot: SlotMut,
        pools: Arc<LinkPools>,
        /// The receiver owns the slot now (its descriptor went out).
        lent: bool,
    },
    /// No pool on the way (TCP, a relay, a loan larger than a slot): sent by copy.
    Heap(Vec<u8>),
}

/// A writable buffer from [`crate::Fabric::loan`]; derefs to `len` bytes. Hand it to
/// [`crate::Fabric::send_loaned`]; dropping it unsent returns its slot to the pool.
pub struct LoanedBuf {
    pub(crate) dst: Arc<str>,
    pub(crate) len: usize,
    pub(crate) mem: LoanMem,
}

impl LoanedBuf {
    pub(crate) fn new(dst: Arc<str>, len: usize, mem: LoanMem) -> LoanedBuf {
        LoanedBuf { dst, len, mem }
    }

    /// True when the bytes live in shared memory the destination will read in place.
    pub fn is_shared(&self) -> bool {
        matches!(self.mem, LoanMem::Slot { .. })
    }

    /// The destination this buffer was loaned for.
    pub fn destination(&self) -> &str {
        &self.dst
    }

    /// Shortens the buffer (only what is written before sending needs to go).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Marks the slot lent and returns its index and the pools it belongs to; `None` for a
    /// heap loan or one already lent (a retransmission then goes by copy).
    pub(crate) fn lend(&mut self) -> Option<(u32, &Arc<LinkPools>)> {
        match &mut self.mem {
            LoanMem::Slot { slot, pools, lent } if !*lent => {
                *lent = true;
                Some((pools.tx.lock().lend(slot), pools))
            }
            _ => None,
        }
    }

    /// The pools a slot loan belongs to.
    pub(crate) fn pools(&self) -> Option<&Arc<LinkPools>> {
        match &self.mem {
            LoanMem::Slot {
                pools, lent: false, ..
            } => Some(pools),
            _ => None,
        }
    }
}

impl std::ops::Deref for LoanedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.mem {
            LoanMem::Slot { slot, .. } => &slot.as_slice()[..self.len],
            LoanMem::Heap(v) => &v[..self.len],
        }
    }
}

impl std::ops::DerefMut for LoanedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.mem {
            // Once lent the buffer is only reachable by the send that consumed it, which
            // reads it (a copy retransmission) and never writes.
            LoanMem::Slot { slot, .. } => &mut slot.as_mut_slice()[..self.len],
            LoanMem::Heap(v) => &mut v[..self.len],
        }
    }
}

impl Drop for LoanedBuf {
    fn drop(&mut self) {
        if let LoanMem::Slot {
            slot,
            pools,
            lent: false,
        } = &self.mem
        {
            pools.tx.lock().put_back(slot);
        }
    }
}

impl std::fmt::Debug for LoanedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoanedBuf")
            .field("dst", &self.dst)
            .field("len", &self.len)
            .field("shared", &self.is_shared())
            .finish()
    }
}
