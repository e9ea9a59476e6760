//! Opt-in payload transforms for data-type policies. Pure code: no IO, no clock.
//!
//! | transform | module | lossy? |
//! |---|---|---|
//! | gradient top-k sparsification with sender-side error feedback | [`topk`] | lossy per message; the error is carried to later messages |
//! | parameter quantisation fp16 / bf16 / int8 with per-block scale | [`quantize`] | lossy, bounded error |
//! | content-addressed parameter caching | [`cache`] | lossless |
//!
//! Every encoded form starts with a 4-byte magic and a version byte, and every decoder
//! parses the whole input before acting: wrong magic, truncation, trailing bytes, out-of-range
//! indices and oversized claims are a [`TransformError`], never a panic.

pub mod cache;
mod kind;
mod lru;
pub mod quantize;
pub mod topk;

pub use cache::{ChunkCache, ChunkId, Plan, PlanEntry, SentIndex};
pub use kind::Transform;
pub use quantize::{dequantize, quantize, Quantization};
pub use topk::TopK;

/// The version byte written by every transform encoder.
pub const TRANSFORM_VERSION: u8 = 1;

/// Why a transform could not encode or decode. Decoding errors are caused by the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    #[error("bad magic: expected {expected:?}, found {found:?}")]
    BadMagic { expected: [u8; 4], found: [u8; 4] },
    #[error("unsupported transform version {0}")]
    UnsupportedVersion(u8),
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("{extra} trailing bytes after the encoded data")]
    TrailingBytes { extra: usize },
    #[error("invalid encoding: {0}")]
    Invalid(String),
    #[error("index {index} out of range for length {len}")]
    IndexOutOfRange { index: u64, len: u64 },
    #[error("length {len} exceeds the limit of {max}")]
    TooLarge { len: u64, max: u64 },
    /// The plan references chunks the cache does not hold: the sender should send them literally.
    #[error("{} referenced chunk(s) not in the cache", missing.len())]
    MissingChunks { missing: Vec<cache::ChunkId> },
    #[error("chunk content does not match its id {id}")]
    HashMismatch { id: cache::ChunkId },
    /// A caller-side misuse (k fraction out of range, zero chunk size, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// A cursor over an encoded buffer: every read checks bounds; `finish` refuses trailing bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], TransformError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(TransformError::Truncated {
                need: self.pos.saturating_add(n),
                have: self.buf.len(),
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], TransformError> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, TransformError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, TransformError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, TransformError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Checks magic and version, and skips the 3 reserved bytes of the common 8-byte preamble.
    pub(crate) fn preamble(&mut self, magic: [u8; 4]) -> Result<u8, TransformError> {
        let found = self.array::<4>()?;
        if found != magic {
            return Err(TransformError::BadMagic {
                expected: magic,
                found,
            });
        }
        let version = self.u8()?;
        if version != TRANSFORM_VERSION {
            return Err(TransformError::UnsupportedVersion(version));
        }
        let [kind, _, _] = self.array::<3>()?;
        Ok(kind)
    }

    pub(crate) fn finish(&self) -> Result<(), TransformError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(TransformError::TrailingBytes { extra }),
        }
    }
}

/// Writes the common 8-byte preamble: magic, version, a kind byte, two reserved zero bytes.
pub(crate) fn write_preamble(out: &mut Vec<u8>, magic: [u8; 4], kind: u8) {
    out.extend_from_slice(&magic);
    out.extend_from_slice(&[TRANSFORM_VERSION, kind, 0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_checks_bounds_and_trailing_bytes() {
        let mut out = Vec::new();
        write_preamble(&mut out, *b"TEST", 7);
        out.extend_from_slice(&5u32.to_le_bytes());
        let mut r = Reader::new(&out);
        assert_eq!(r.preamble(*b"TEST"), Ok(7));
        assert_eq!(r.u32(), Ok(5));
        assert!(r.finish().is_ok());
        assert!(matches!(r.u8(), Err(TransformError::Truncated { .. })));
        let mut r = Reader::new(&out);
        assert!(matches!(
            r.preamble(*b"NOPE"),
            Err(TransformError::BadMagic { .. })
        ));
        let mut r = Reader::new(&out[..6]);
        assert!(r.preamble(*b"TEST").is_err());
        let mut r = Reader::new(&out);
        assert!(r.bytes(usize::MAX).is_err());
        r.preamble(*b"TEST").ok();
        assert_eq!(r.finish(), Err(TransformError::TrailingBytes { extra: 4 }));
    }
}
