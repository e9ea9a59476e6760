//! The compression decision for each chunk, the one the core's [`Node`](super::Node) and
//! the runtime's sender both take ([`Packer::pack`]: compress when it pays, never below
//! [`MIN_COMPRESS_BYTES`]), and its inverse at the destination ([`inflate`]).

use crate::compress::{self, Algorithm, CompressError, PREFIX_LEN};
use std::fmt;

/// Chunks smaller than this are never compressed (the frame header dominates anyway).
pub const MIN_COMPRESS_BYTES: usize = 512;

/// Compresses chunks into the block layout of [`crate::compress`] (u32 LE uncompressed
/// length, then the algorithm's bytes), reusing its contexts and the caller's buffer: no
/// allocation per chunk once warm.
#[derive(Default)]
pub struct Packer {
    zstd: Option<zstd::bulk::Compressor<'static>>,
    snappy: Option<snap::raw::Encoder>,
}

impl Packer {
    /// `Some(block)` when `alg` makes `data` smaller; `None` sends the chunk raw.
    #[inline]
    pub fn pack<'b>(
        &mut self,
        alg: Algorithm,
        data: &[u8],
        buf: &'b mut Vec<u8>,
    ) -> Option<&'b [u8]> {
        if alg == Algorithm::None || data.len() < MIN_COMPRESS_BYTES {
            return None;
        }
        let len = u32::try_from(data.len()).ok()?;
        let bound = match alg {
            Algorithm::None => return None,
            Algorithm::Lz4 => lz4_flex::block::get_maximum_output_size(data.len()),
            Algorithm::Zstd => zstd::zstd_safe::compress_bound(data.len()),
            Algorithm::Snappy => snap::raw::max_compress_len(data.len()),
        };
        buf.resize(PREFIX_LEN + bound, 0);
        buf[..PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
        let dst = &mut buf[PREFIX_LEN..];
        let n = match alg {
            Algorithm::None => return None,
            Algorithm::Lz4 => lz4_flex::block::compress_into(data, dst).ok()?,
            Algorithm::Zstd => {
                if self.zstd.is_none() {
                    self.zstd = zstd::bulk::Compressor::new(crate::compress::ZSTD_LEVEL).ok();
                }
                self.zstd.as_mut()?.compress_to_buffer(data, dst).ok()?
            }
            Algorithm::Snappy => self
                .snappy
                .get_or_insert_with(snap::raw::Encoder::new)
                .compress(data, dst)
                .ok()?,
        };
        (PREFIX_LEN + n < data.len()).then(|| &buf[..PREFIX_LEN + n])
    }
}

impl fmt::Debug for Packer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packer")
            .field("zstd", &self.zstd.is_some())
            .field("snappy", &self.snappy.is_some())
            .finish()
    }
}

/// Why a received chunk could not be inflated: the peer's error either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// The flags name no algorithm this build knows.
    UnknownAlgorithm { code: u8 },
    /// The block does not decode (or would grow past the caller's limit).
    Bad(CompressError),
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InflateError::UnknownAlgorithm { code } => {
                write!(f, "unknown compression code {code} in the frame flags")
            }
            InflateError::Bad(e) => e.fmt(f),
        }
    }
}

/// Inflates a chunk compressed with the algorithm of wire `code` into `scratch` (reused:
/// no allocation once it has grown), at most `max` bytes.
#[inline]
pub fn inflate<'s>(
    code: u8,
    payload: &[u8],
    scratch: &'s mut Vec<u8>,
    max: usize,
) -> Result<&'s [u8], InflateError> {
    let alg = Algorithm::from_wire_code(code).ok_or(InflateError::UnknownAlgorithm { code })?;
    compress::decompress_into(alg, payload, scratch, max).map_err(InflateError::Bad)?;
    Ok(&scratch[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_only_when_it_pays() {
        let mut buf = Vec::new();
        let mut packer = Packer::default();
        let zeros = vec![0u8; 4096];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        for alg in [Algorithm::Lz4, Algorithm::Zstd, Algorithm::Snappy] {
            let packed = packer.pack(alg, &zeros, &mut buf).unwrap().to_vec();
            assert!(packed.len() < 400, "{alg}: {}", packed.len());
            let mut out = Vec::new();
            let code = alg.wire_code();
            assert_eq!(
                inflate(code, &packed, &mut out, 1 << 20).unwrap(),
                &zeros[..]
            );
            assert!(packer.pack(alg, &noise, &mut buf).is_none(), "{alg}");
        }
        assert!(packer.pack(Algorithm::None, &zeros, &mut buf).is_none());
        assert!(packer
            .pack(Algorithm::Lz4, &zeros[..MIN_COMPRESS_BYTES - 1], &mut buf)
            .is_none());
        let mut out = Vec::new();
        assert_eq!(
            inflate(9, &zeros, &mut out, 1 << 20),
            Err(InflateError::UnknownAlgorithm { code: 9 })
        );
    }
}
