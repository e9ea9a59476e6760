//! Buffers handed to applications: a received message's [`Payload`] is either bytes of its
//! own or a read-only view of a shared-memory pool slot (zero copy), returned to the sender's
//! pool when dropped; a [`LoanedBuf`] is a writable slot of our own pool (the loan API).

mod loan;
mod pool;

pub(crate) use loan::LoanMem;
pub use loan::LoanedBuf;
pub use pool::{PooledBuf, RecvPool, BUFFER_BYTES_MAX};

use crate::transport::shm::SlotView;

/// The bytes of a received message. Derefs to `[u8]` whichever form it has.
pub enum Payload {
    /// Bytes owned by this process (reassembled from chunks, or decoded).
    Owned(Vec<u8>),
    /// A slot of the sender's shared-memory pool, read in place. Hold it briefly: the sender
    /// can lend only as many buffers as its pool has slots.
    Shared(SlotView),
    /// Bytes copied into a buffer of this node's receive pool, which gets it back when the
    /// message is dropped (no allocation per message in a stream).
    Pooled(PooledBuf),
}

impl Payload {
    /// True when the bytes are read in place from shared memory.
    pub fn is_shared(&self) -> bool {
        matches!(self, Payload::Shared(_))
    }

    /// The bytes as a vector of their own (copies a shared view and returns its slot).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Payload::Owned(v) => v,
            Payload::Shared(view) => view.to_vec(),
            Payload::Pooled(b) => b.into_vec(),
        }
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Owned(v) => v,
            Payload::Shared(view) => view,
            Payload::Pooled(b) => b,
        }
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload::Owned(v)
    }
}

impl From<Payload> for Vec<u8> {
    fn from(p: Payload) -> Self {
        p.into_vec()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Payload::Shared(_) => "shared",
            Payload::Owned(_) | Payload::Pooled(_) => "owned",
        };
        write!(f, "Payload({kind}, {} bytes)", self.len())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self[..] == other[..]
    }
}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        &self[..] == other
    }
}

impl PartialEq<Vec<u8>> for Payload {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self[..] == other[..]
    }
}

impl PartialEq<&[u8]> for Payload {
    fn eq(&self, other: &&[u8]) -> bool {
        &self[..] == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Payload {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self[..] == other[..]
    }
}

impl PartialEq<Payload> for Vec<u8> {
    fn eq(&self, other: &Payload) -> bool {
        self[..] == other[..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_payload_compares_and_converts() {
        let p = Payload::from(b"abc".to_vec());
        assert!(!p.is_shared());
        assert_eq!(p, b"abc".to_vec());
        assert!(p == b"abc"[..]);
        assert_ne!(p, b"abd".to_vec());
        assert_eq!(format!("{p:?}"), "Payload(owned, 3 bytes)");
        assert_eq!(p.into_vec(), b"abc");
    }
}
