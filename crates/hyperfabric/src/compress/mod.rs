//! Lossless block compression (lz4, zstd, snappy) and the adaptive choice between them.
//!
//! Pure code: no IO, no clock reads. [`AdaptiveCompressor::auto_select`] times its probes
//! with a clock the caller passes in, so tests run it on a fake clock.
//!
//! # Block layout
//! Every algorithm, `None` included, produces a self-describing block:
//! ```text
//!  0       4                                    4 + n
//!  +-------+------------------------------------+
//!  | u32LE |  algorithm payload (n bytes)       |
//!  | orig  |  lz4 block / zstd frame / snappy   |
//!  | len   |  raw block / the bytes as they are |
//!  +-------+------------------------------------+
//! ```
//! The algorithm itself is not in the block: it travels in the frame flags
//! ([`Algorithm::wire_code`]). [`decompress_into`] refuses a claimed length above the
//! caller's `max_len` before allocating anything, and refuses a payload that does not
//! decode to exactly the claimed length (truncation, trailing garbage, corruption).

mod adaptive;

pub use adaptive::{AdaptiveCompressor, CompressionPolicy, Selection};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Bytes of the uncompressed-length prefix at the start of every block.
pub const PREFIX_LEN: usize = 4;

/// zstd level used on the data path: the fastest standard level; the link, not the ratio,
/// is what we optimise for.
pub const ZSTD_LEVEL: i32 = 1;

/// A lossless compression algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    None,
    Lz4,
    Zstd,
    Snappy,
}

impl Algorithm {
    /// Every algorithm, `None` first.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::None,
        Algorithm::Lz4,
        Algorithm::Zstd,
        Algorithm::Snappy,
    ];

    /// The code carried in the frame flags (0..=3).
    pub fn wire_code(self) -> u8 {
        match self {
            Algorithm::None => 0,
            Algorithm::Lz4 => 1,
            Algorithm::Zstd => 2,
            Algorithm::Snappy => 3,
        }
    }

    /// The algorithm for a frame-flag code; `None` (the Option) for an unknown code.
    pub fn from_wire_code(code: u8) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.wire_code() == code)
    }

    /// The lower-case name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::None => "none",
            Algorithm::Lz4 => "lz4",
            Algorithm::Zstd => "zstd",
            Algorithm::Snappy => "snappy",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = CompressError;

    /// Accepts `none`, `off`, `lz4`, `zstd`, `snappy` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(Algorithm::None),
            "lz4" => Ok(Algorithm::Lz4),
            "zstd" => Ok(Algorithm::Zstd),
            "snappy" => Ok(Algorithm::Snappy),
            _ => Err(CompressError::UnknownAlgorithm(s.to_string())),
        }
    }
}

/// Why a block could not be compressed or decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompressError {
    /// An algorithm name that is not one of `none|off|lz4|zstd|snappy`.
    #[error("unknown compression algorithm `{0}` (expected none, lz4, zstd or snappy)")]
    UnknownAlgorithm(String),
    /// The input is longer than the u32 length prefix can describe.
    #[error("input of {len} bytes is too large to compress (limit {max})")]
    InputTooLarge { len: usize, max: usize },
    /// The block is shorter than its length prefix.
    #[error("compressed block truncated: {len} bytes, need at least {PREFIX_LEN}")]
    Truncated { len: usize },
    /// The block claims more uncompressed bytes than the caller accepts (hostile peer).
    #[error("block claims {claimed} uncompressed bytes, above the limit of {max_len}")]
    ClaimedLengthTooLarge { claimed: usize, max_len: usize },
    /// The payload decoded to a different length than claimed (truncation or trailing bytes).
    #[error("{algorithm} block decoded to {actual} bytes, but claims {claimed}")]
    LengthMismatch {
        algorithm: Algorithm,
        claimed: usize,
        actual: usize,
    },
    /// The payload is not a valid block of its algorithm.
    #[error("corrupt {algorithm} block: {reason}")]
    Corrupt {
        algorithm: Algorithm,
        reason: String,
    },
    /// The compressor itself failed (should not happen for in-range inputs).
    #[error("{algorithm} compression failed: {reason}")]
    Backend {
        algorithm: Algorithm,
        reason: String,
    },
}

/// Compresses `input` with `alg` into `out` (cleared first) as a self-describing block.
pub fn compress_into(alg: Algorithm, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressError> {
    let len = u32::try_from(input.len()).map_err(|_| CompressError::InputTooLarge {
        len: input.len(),
        max: u32::MAX as usize,
    })?;
    out.clear();
    out.extend_from_slice(&len.to_le_bytes());
    let bound = match alg {
        Algorithm::None => {
            out.extend_from_slice(input);
            return Ok(());
        }
        Algorithm::Lz4 => lz4_flex::block::get_maximum_output_size(input.len()),
        Algorithm::Zstd => zstd::zstd_safe::compress_bound(input.len()),
        Algorithm::Snappy => snap::raw::max_compress_len(input.len()),
    };
    out.resize(PREFIX_LEN + bound, 0);
    let dst = &mut out[PREFIX_LEN..];
    let written = match alg {
        Algorithm::None => Ok(0),
        Algorithm::Lz4 => lz4_flex::block::compress_into(input, dst).map_err(|e| e.to_string()),
        Algorithm::Zstd => {
            zstd::bulk::compress_to_buffer(input, dst, ZSTD_LEVEL).map_err(|e| e.to_string())
        }
        Algorithm::Snappy => snap::raw::Encoder::new()
            .compress(input, dst)
            .map_err(|e| e.to_string()),
    }
    .map_err(|reason| CompressError::Backend {
        algorithm: alg,
        reason,
    })?;
    out.truncate(PREFIX_LEN + written);
    Ok(())
}

/// Reads the uncompressed length a block claims, checking it against `max_len`.
pub fn claimed_len(input: &[u8], max_len: usize) -> Result<usize, CompressError> {
    let prefix: [u8; PREFIX_LEN] = input
        .get(..PREFIX_LEN)
        .and_then(|p| p.try_into().ok())
        .ok_or(CompressError::Truncated { len: input.len() })?;
    let claimed = u32::from_le_bytes(prefix) as usize;
    if claimed > max_len {
        return Err(CompressError::ClaimedLengthTooLarge { claimed, max_len });
    }
    Ok(claimed)
}

/// Decompresses a block made by [`compress_into`] into `out` (cleared first).
///
/// Refuses a claimed length above `max_len` before allocating, and any payload that does not
/// decode to exactly the claimed length. Never panics, whatever `input` holds.
pub fn decompress_into(
    alg: Algorithm,
    input: &[u8],
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<(), CompressError> {
    let claimed = claimed_len(input, max_len)?;
    let payload = &input[PREFIX_LEN..];
    out.clear();
    if alg == Algorithm::None {
        if payload.len() != claimed {
            return Err(CompressError::LengthMismatch {
                algorithm: alg,
                claimed,
                actual: payload.len(),
            });
        }
        out.extend_from_slice(payload);
        return Ok(());
    }
    if alg == Algorithm::Snappy {
        check_snappy_len(payload, claimed)?;
    }
    out.resize(claimed, 0);
    let corrupt = |reason: String| CompressError::Corrupt {
        algorithm: alg,
        reason,
    };
    let actual = match alg {
        Algorithm::None => Ok(claimed),
        Algorithm::Lz4 => lz4_flex::block::decompress_into(payload, out).map_err(|e| e.to_string()),
        Algorithm::Zstd => {
            zstd::bulk::decompress_to_buffer(payload, out).map_err(|e| e.to_string())
        }
        Algorithm::Snappy => snap::raw::Decoder::new()
            .decompress(payload, out)
            .map_err(|e| e.to_string()),
    }
    .map_err(corrupt)?;
    if actual != claimed {
        out.clear();
        return Err(CompressError::LengthMismatch {
            algorithm: alg,
            claimed,
            actual,
        });
    }
    Ok(())
}

/// Snappy's raw format carries its own length: it must agree with our prefix.
fn check_snappy_len(payload: &[u8], claimed: usize) -> Result<(), CompressError> {
    let inner = snap::raw::decompress_len(payload).map_err(|e| CompressError::Corrupt {
        algorithm: Algorithm::Snappy,
        reason: e.to_string(),
    })?;
    if inner != claimed {
        return Err(CompressError::LengthMismatch {
            algorithm: Algorithm::Snappy,
            claimed,
            actual: inner,
        });
    }
    Ok(())
}

/// Test and bench inputs: text, a structured float32 tensor, seeded random bytes.
#[doc(hidden)]
pub mod samples {
    use rand::{Rng, SeedableRng};

    /// English-like text with repetition, `len` bytes.
    pub fn text(len: usize) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "fabric ",
            "tensor ",
            "gradient ",
            "the ",
            "node ",
            "link ",
            "of ",
            "and ",
            "bandwidth ",
            "latency ",
            "parameter ",
            "route ",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            out.extend_from_slice(WORDS[rng.gen_range(0..WORDS.len())].as_bytes());
        }
        out.truncate(len);
        out
    }

    /// A float32 tensor with structure (smooth rows, few distinct exponents), `len` bytes.
    pub fn float_tensor(len: usize) -> Vec<u8> {
        let n = len / 4;
        let mut out = Vec::with_capacity(len);
        for i in 0..n {
            let row = (i / 256) as f32;
            let v = ((i % 256) as f32 * 0.25).round() * 0.5 + row;
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.resize(len, 0);
        out
    }

    /// Seeded uniformly random bytes (incompressible), `len` bytes.
    pub fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = vec![0u8; len];
        rng.fill(&mut out[..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(alg: Algorithm, data: &[u8]) {
        let mut c = Vec::new();
        compress_into(alg, data, &mut c).expect("compress");
        let mut d = vec![9u8; 3];
        decompress_into(alg, &c, &mut d, data.len()).expect("decompress");
        assert_eq!(d, data, "{alg}");
    }

    #[test]
    fn round_trip_every_algorithm_on_every_kind_of_data() {
        let inputs = [
            samples::text(100_000),
            samples::float_tensor(100_000),
            samples::random(100_000, 1),
            Vec::new(),
            vec![42u8],
        ];
        for alg in Algorithm::ALL {
            for data in &inputs {
                round_trip(alg, data);
            }
        }
    }

    #[test]
    fn names_and_wire_codes_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.to_string().parse::<Algorithm>(), Ok(alg));
            assert_eq!(Algorithm::from_wire_code(alg.wire_code()), Some(alg));
            let json = serde_json::to_string(&alg).expect("json");
            assert_eq!(json, format!("\"{alg}\""));
        }
        assert_eq!("off".parse::<Algorithm>(), Ok(Algorithm::None));
        assert_eq!("ZSTD".parse::<Algorithm>(), Ok(Algorithm::Zstd));
        assert!("gzip".parse::<Algorithm>().is_err());
        assert_eq!(Algorithm::from_wire_code(4), None);
    }

    #[test]
    fn huge_claimed_length_is_refused_before_allocating() {
        for alg in Algorithm::ALL {
            let mut block = u32::MAX.to_le_bytes().to_vec();
            block.extend_from_slice(&[0u8; 8]);
            let mut out = Vec::new();
            let err = decompress_into(alg, &block, &mut out, 1 << 20).unwrap_err();
            assert!(
                matches!(err, CompressError::ClaimedLengthTooLarge { .. }),
                "{err}"
            );
            assert_eq!(out.capacity(), 0);
        }
    }

    #[test]
    fn truncated_and_padded_blocks_are_typed_errors() {
        let data = samples::text(10_000);
        for alg in Algorithm::ALL {
            let mut c = Vec::new();
            compress_into(alg, &data, &mut c).expect("compress");
            let mut out = Vec::new();
            for cut in [0, 2, PREFIX_LEN, c.len() / 2, c.len() - 1] {
                assert!(
                    decompress_into(alg, &c[..cut], &mut out, 1 << 20).is_err(),
                    "{alg}"
                );
            }
            let mut padded = c.clone();
            padded.extend_from_slice(b"garbage!");
            assert!(
                decompress_into(alg, &padded, &mut out, 1 << 20).is_err(),
                "{alg}"
            );
        }
    }

    #[test]
    fn a_lie_about_the_length_is_a_mismatch() {
        let data = samples::text(5000);
        for alg in Algorithm::ALL {
            let mut c = Vec::new();
            compress_into(alg, &data, &mut c).expect("compress");
            c[..PREFIX_LEN].copy_from_slice(&4000u32.to_le_bytes());
            let mut out = Vec::new();
            assert!(
                decompress_into(alg, &c, &mut out, 1 << 20).is_err(),
                "{alg}"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut out = Vec::new();
            for alg in Algorithm::ALL {
                let _ = decompress_into(alg, &bytes, &mut out, 1 << 16);
            }
        }

        #[test]
        fn arbitrary_payload_with_valid_prefix_never_panics(
            len in 0u32..70_000,
            payload in proptest::collection::vec(any::<u8>(), 0..1024),
        ) {
            let mut block = len.to_le_bytes().to_vec();
            block.extend_from_slice(&payload);
            let mut out = Vec::new();
            for alg in Algorithm::ALL {
                if decompress_into(alg, &block, &mut out, 1 << 17).is_ok() {
                    prop_assert_eq!(out.len(), len as usize);
                }
            }
        }

        #[test]
        fn round_trip_arbitrary(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            for alg in Algorithm::ALL {
                let mut c = Vec::new();
                compress_into(alg, &data, &mut c).expect("compress");
                let mut d = Vec::new();
                decompress_into(alg, &c, &mut d, data.len()).expect("decompress");
                prop_assert_eq!(&d, &data);
            }
        }
    }
}
