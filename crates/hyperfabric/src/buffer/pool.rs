//! Received messages' buffers, reused: the copying receive path takes a buffer from here
//! for each message it assembles, and the application returns it by dropping the message.
//! A stream of messages then allocates nothing per message once the pool is warm.
//!
//! A buffer comes back with whatever bytes it last held: taking one clears nothing (a 1 MiB
//! memset per message was a tenth of a TCP receiver's time), so every user writes all of
//! its bytes before anyone reads them (a copy of a whole message, or a reassembly that
//! delivers only once every byte arrived). Only bytes a buffer never held are zeroed.
//!
//! Bounded two ways: at most [`POOL_BUFFERS_MAX`] buffers and [`POOL_BYTES_MAX`] bytes
//! wait here; a buffer returned past either bound (or larger than [`BUFFER_BYTES_MAX`]) is
//! freed instead, so a burst of large messages does not pin memory for good.

use crate::sys::memory;
use parking_lot::Mutex;
use std::sync::Arc;

/// Buffers kept for reuse, at most.
pub const POOL_BUFFERS_MAX: usize = 64;
/// Bytes kept for reuse (capacities summed), at most.
pub const POOL_BYTES_MAX: usize = 32 << 20;
/// Larger buffers are never kept.
pub const BUFFER_BYTES_MAX: usize = 4 << 20;

#[derive(Default)]
struct Free {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

/// A node's pool of receive buffers (shared by its reader threads and the application).
#[derive(Default)]
pub struct RecvPool {
    free: Mutex<Free>,
}

impl RecvPool {
    pub fn new() -> Arc<RecvPool> {
        Arc::new(RecvPool {
            free: Mutex::new(Free {
                bufs: Vec::with_capacity(POOL_BUFFERS_MAX),
                bytes: 0,
            }),
        })
    }

    /// A buffer of `len` bytes, a kept one large enough if there is one. Its bytes are
    /// unspecified (an earlier message's, or zero): the caller overwrites all of them.
    pub fn take(self: &Arc<Self>, len: usize) -> PooledBuf {
        let kept = {
            let mut free = self.free.lock();
            // Newest first: its lines are the likeliest to be in cache.
            let i = free.bufs.iter().rposition(|b| b.capacity() >= len);
            i.map(|i| {
                let b = free.bufs.swap_remove(i);
                free.bytes -= b.capacity();
                b
            })
        };
        let mut buf = kept.unwrap_or_else(|| fresh(len));
        // The vector's length is how far it was ever written: only bytes past it are zeroed.
        if buf.len() < len {
            buf.resize(len, 0);
        }
        PooledBuf {
            buf,
            len,
            pool: Arc::clone(self),
        }
    }

    /// A kept vector of at least `len` bytes' capacity, as it was (its length is how far
    /// it was ever written), or an empty one: the spare a stream link reads its next frames
    /// into after it gave its buffer away ([`Self::adopt`]).
    pub fn spare(&self, len: usize) -> Vec<u8> {
        let mut free = self.free.lock();
        let i = free.bufs.iter().rposition(|b| b.capacity() >= len);
        i.map_or_else(Vec::new, |i| {
            let b = free.bufs.swap_remove(i);
            free.bytes -= b.capacity();
            b
        })
    }

    /// Makes `buf[..len]` a buffer of this pool (it comes back here when dropped): a frame's
    /// payload that a stream link read into `buf` goes to the application without a copy.
    /// A vector too large for its bytes (over four times `len`) is copied from instead and
    /// kept (or freed) at once, so a small message never pins a large buffer.
    pub fn adopt(self: &Arc<Self>, buf: Vec<u8>, len: usize) -> PooledBuf {
        let len = len.min(buf.len());
        if buf.capacity() > len.saturating_mul(4) {
            let mut copy = self.take(len);
            copy.as_mut_slice().copy_from_slice(&buf[..len]);
            self.give_back(buf);
            return copy;
        }
        PooledBuf {
            buf,
            len,
            pool: Arc::clone(self),
        }
    }

    fn give_back(&self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0 || cap > BUFFER_BYTES_MAX {
            return;
        }
        let mut free = self.free.lock();
        if free.bufs.len() < POOL_BUFFERS_MAX && free.bytes + cap <= POOL_BYTES_MAX {
            free.bytes += cap;
            free.bufs.push(buf);
        }
    }

    /// Buffers and bytes waiting for reuse (tests, metrics).
    pub fn kept(&self) -> (usize, usize) {
        let free = self.free.lock();
        (free.bufs.len(), free.bytes)
    }
}

/// A new buffer for `len` bytes; one of a huge page or more is advised `MADV_HUGEPAGE`
/// before it is touched when the node asked for huge pages (`metadata.huge_pages`).
fn fresh(len: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(len);
    if len >= memory::HUGE_PAGE_BYTES && memory::huge_pages() {
        if let Err(e) = memory::advise_huge(&mut buf) {
            tracing::debug!("MADV_HUGEPAGE on a {len}-byte receive buffer: {e}");
        }
    }
    buf
}

/// A receive buffer that goes back to its pool when dropped.
pub struct PooledBuf {
    /// Initialised (ever written) up to its length; the buffer's bytes are `buf[..len]`.
    buf: Vec<u8>,
    len: usize,
    pool: Arc<RecvPool>,
}

impl PooledBuf {
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// The bytes as a vector of their own (the buffer leaves the pool for good).
    pub fn into_vec(mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.buf);
        v.truncate(self.len);
        v
    }
}

impl std::ops::Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_reused_without_clearing() {
        let pool = RecvPool::new();
        let mut a = pool.take(100);
        a.as_mut_slice().fill(7);
        let ptr = a.as_ptr();
        drop(a);
        assert_eq!(pool.kept(), (1, 100));
        let b = pool.take(60);
        assert_eq!(b.as_ptr(), ptr, "the kept buffer is handed out again");
        assert_eq!(b.len(), 60);
        assert!(
            b.iter().all(|&x| x == 7),
            "taking a kept buffer clears nothing"
        );
        assert_eq!(pool.kept(), (0, 0));
        assert_eq!(
            b.into_vec(),
            vec![7u8; 60],
            "its own vector holds its bytes only"
        );
        assert!(
            pool.take(150).iter().all(|&x| x == 0),
            "a new buffer comes zeroed"
        );
    }

    #[test]
    fn an_adopted_vector_comes_back_as_a_spare() {
        let pool = RecvPool::new();
        assert_eq!(pool.spare(10).capacity(), 0, "an empty pool has no spare");
        let v = vec![5u8; 1000];
        let ptr = v.as_ptr();
        let a = pool.adopt(v, 900);
        assert_eq!((a.len(), a.as_ptr()), (900, ptr), "adopted in place");
        drop(a);
        let spare = pool.spare(1000);
        assert_eq!((spare.as_ptr(), spare.len()), (ptr, 1000), "kept as it was");
        // Too large for its bytes: copied, and the large vector kept for later.
        let small = pool.adopt(spare, 10);
        assert_ne!(small.as_ptr(), ptr);
        assert_eq!(&small[..], &[5u8; 10]);
        assert_eq!(pool.kept(), (1, 1000));
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_bounds() {
        let pool = RecvPool::new();
        let bufs: Vec<_> = (0..POOL_BUFFERS_MAX + 5).map(|_| pool.take(16)).collect();
        drop(bufs);
        assert_eq!(pool.kept().0, POOL_BUFFERS_MAX);
        let big = pool.take(BUFFER_BYTES_MAX + 1);
        drop(big);
        assert_eq!(
            pool.kept().0,
            POOL_BUFFERS_MAX,
            "an oversize buffer is freed"
        );
        let pool = RecvPool::new();
        let many: Vec<_> = (0..10).map(|_| pool.take(BUFFER_BYTES_MAX)).collect();
        drop(many);
        assert!(pool.kept().1 <= POOL_BYTES_MAX);
    }

    #[test]
    fn into_vec_takes_the_buffer_out_of_the_pool() {
        let pool = RecvPool::new();
        let v = pool.take(8).into_vec();
        assert_eq!(v, vec![0u8; 8]);
        assert_eq!(pool.kept(), (0, 0));
    }
}
