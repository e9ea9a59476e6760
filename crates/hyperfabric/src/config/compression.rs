//! `[compression]`: the guide's compression settings, read by the adaptive compressor that
//! `Compression::Auto` sends use.
//!
//! ```toml
//! [compression]
//! threshold_bytes = 1024            # shorter messages are never compressed
//! max_compression_time_us = 1000    # an algorithm slower than this on the sample is skipped
//! min_compression_ratio = 1.1       # an algorithm that shrinks less is skipped
//! threshold_bandwidth_gbps = 10     # compress only over links slower than this (guide: 1)
//! algorithms = ["lz4", "zstd", "snappy"]   # the set the compressor may pick from
//! ```

use crate::compress::{Algorithm, CompressionPolicy};
use serde::{Deserialize, Serialize};

/// Largest `threshold_bytes` / `max_compression_time_us` a file may ask for.
pub const THRESHOLD_BYTES_MAX: usize = 1 << 40;
pub const MAX_COMPRESSION_TIME_US_MAX: u64 = 60_000_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompression {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_compression_time_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_compression_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_bandwidth_gbps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
}

type Problem = (String, String);

/// The policy of the file's `[compression]` (absent: the compressor's defaults).
pub(crate) fn build(raw: Option<&RawCompression>) -> Result<CompressionPolicy, Problem> {
    let mut p = CompressionPolicy::default();
    let Some(r) = raw else { return Ok(p) };
    let at = |f: &str| format!("compression.{f}");
    if let Some(v) = r.threshold_bytes {
        if v > THRESHOLD_BYTES_MAX {
            return Err((
                at("threshold_bytes"),
                format!("at most {THRESHOLD_BYTES_MAX}"),
            ));
        }
        p.threshold_bytes = v;
    }
    if let Some(v) = r.max_compression_time_us {
        if !(1..=MAX_COMPRESSION_TIME_US_MAX).contains(&v) {
            let reason = format!("must be in 1..={MAX_COMPRESSION_TIME_US_MAX} (got {v})");
            return Err((at("max_compression_time_us"), reason));
        }
        p.max_compression_time_us = v;
    }
    if let Some(v) = r.min_compression_ratio {
        if !(v.is_finite() && v >= 1.0) {
            let reason = format!("must be a number >= 1 (got {v})");
            return Err((at("min_compression_ratio"), reason));
        }
        p.min_compression_ratio = v;
    }
    if let Some(v) = r.threshold_bandwidth_gbps {
        if !(v.is_finite() && v >= 0.0) {
            let reason = format!("must be a number >= 0 (got {v})");
            return Err((at("threshold_bandwidth_gbps"), reason));
        }
        p.threshold_bandwidth_mbps = v * 1000.0;
    }
    if let Some(names) = &r.algorithms {
        p.algorithms = algorithms(names).map_err(|reason| (at("algorithms"), reason))?;
    }
    Ok(p)
}

fn algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let alg: Algorithm = name.parse().map_err(|e| format!("{e}"))?;
        if alg == Algorithm::None {
            return Err("\"none\" is not an algorithm to pick (use an empty list)".into());
        }
        if out.contains(&alg) {
            return Err(format!("\"{name}\" is listed twice"));
        }
        out.push(alg);
    }
    Ok(out)
}

/// The file form of `p` (every field written: what the effective-configuration report lists).
pub(crate) fn to_raw(p: &CompressionPolicy) -> RawCompression {
    RawCompression {
        threshold_bytes: Some(p.threshold_bytes),
        max_compression_time_us: Some(p.max_compression_time_us),
        min_compression_ratio: Some(p.min_compression_ratio),
        threshold_bandwidth_gbps: Some(p.threshold_bandwidth_mbps / 1000.0),
        algorithms: Some(p.algorithms.iter().map(|a| a.name().to_string()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_read_and_checked() {
        let raw = RawCompression {
            threshold_bytes: Some(4096),
            max_compression_time_us: Some(50),
            min_compression_ratio: Some(2.0),
            threshold_bandwidth_gbps: Some(1.0),
            algorithms: Some(vec!["zstd".into()]),
        };
        let p = build(Some(&raw)).unwrap();
        assert_eq!(p.threshold_bytes, 4096);
        assert_eq!(p.max_compression_time_us, 50);
        assert_eq!(p.min_compression_ratio, 2.0);
        assert_eq!(p.threshold_bandwidth_mbps, 1000.0);
        assert_eq!(p.algorithms, vec![Algorithm::Zstd]);
        assert_eq!(to_raw(&p), raw);
        let bad = |r: RawCompression, field: &str| {
            let (f, _) = build(Some(&r)).unwrap_err();
            assert_eq!(f, format!("compression.{field}"));
        };
        bad(
            RawCompression {
                min_compression_ratio: Some(0.5),
                ..raw.clone()
            },
            "min_compression_ratio",
        );
        bad(
            RawCompression {
                algorithms: Some(vec!["gzip".into()]),
                ..raw.clone()
            },
            "algorithms",
        );
        bad(
            RawCompression {
                algorithms: Some(vec!["none".into()]),
                ..raw.clone()
            },
            "algorithms",
        );
        bad(
            RawCompression {
                max_compression_time_us: Some(0),
                ..raw
            },
            "max_compression_time_us",
        );
    }
}
