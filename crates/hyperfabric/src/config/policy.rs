//! Data-type policies (the guide's `configure_data_types`): per data type a default priority,
//! a compression choice and an opt-in payload transform.
//!
//! In the fabric file:
//! ```toml
//! [data_types.gradient]
//! priority = "high"
//! compression = "auto"          # off | auto | lz4 | zstd | snappy
//! transform = "topk"            # none | topk | fp16 | bf16 | int8 | cache
//! topk_fraction = 0.01
//! ```
//! A send whose options leave priority or compression at their defaults takes them from the
//! policy of its data type. Transforms are documented per kind on [`Transform`].

use crate::compress::Algorithm;
pub use crate::transform::Transform;
use crate::types::{DataType, Priority};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Capacity of the parameter cache, the same at both ends (the sender's index of what the
/// destination holds and the destination's cache per source must agree).
pub const PARAM_CACHE_BYTES: usize = 256 << 20;

/// Default share of gradient entries sent by the top-k transform.
pub const DEFAULT_TOPK_FRACTION: f64 = 0.01;

/// How a send compresses its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(into = "String")]
pub enum Compression {
    /// Never compress.
    #[default]
    Off,
    /// The adaptive compressor picks per transfer (sampling the first chunk) the algorithm
    /// that maximises effective throughput on the first hop's link, or none.
    Auto,
    /// Always this algorithm (a chunk that does not shrink still travels raw).
    Fixed(Algorithm),
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Off | Compression::Fixed(Algorithm::None) => "off",
            Compression::Auto => "auto",
            Compression::Fixed(a) => a.name(),
        }
    }
}

impl From<bool> for Compression {
    /// `true` is LZ4 (the former on/off switch), `false` is off.
    fn from(on: bool) -> Self {
        if on {
            Compression::Fixed(Algorithm::Lz4)
        } else {
            Compression::Off
        }
    }
}

impl From<Algorithm> for Compression {
    fn from(a: Algorithm) -> Self {
        match a {
            Algorithm::None => Compression::Off,
            a => Compression::Fixed(a),
        }
    }
}

impl From<Compression> for String {
    fn from(c: Compression) -> String {
        c.name().to_string()
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = String;
    /// `off` (or `none`), `auto`, `lz4`, `zstd`, `snappy`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(Compression::Off),
            "auto" => Ok(Compression::Auto),
            other => other
                .parse::<Algorithm>()
                .map(Compression::from)
                .map_err(|_| {
                    format!("unknown compression `{s}` (expected off, auto, lz4, zstd or snappy)")
                }),
        }
    }
}

/// What a data type gets by default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DataTypePolicy {
    pub priority: Priority,
    pub compression: Compression,
    pub transform: Transform,
    /// Share of entries kept by `transform = topk`, in (0, 1].
    pub topk_fraction: f64,
}

impl Default for DataTypePolicy {
    fn default() -> Self {
        DataTypePolicy {
            priority: Priority::Normal,
            compression: Compression::Off,
            transform: Transform::None,
            topk_fraction: DEFAULT_TOPK_FRACTION,
        }
    }
}

impl DataTypePolicy {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }
    pub fn compression(mut self, c: impl Into<Compression>) -> Self {
        self.compression = c.into();
        self
    }
    pub fn transform(mut self, t: Transform) -> Self {
        self.transform = t;
        self
    }
    pub fn topk_fraction(mut self, f: f64) -> Self {
        self.topk_fraction = f;
        self
    }

    /// Checks the fields; the error is `(field, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(self.topk_fraction > 0.0 && self.topk_fraction <= 1.0) {
            return Err((
                "topk_fraction".into(),
                format!("must be in (0, 1] (got {})", self.topk_fraction),
            ));
        }
        Ok(())
    }
}

/// `[data_types.<name>]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataTypePolicy {
    pub priority: Option<String>,
    pub compression: Option<String>,
    pub transform: Option<String>,
    pub topk_fraction: Option<f64>,
}

/// Checks `[data_types.*]`; problems are `(field path, reason)`.
pub(crate) fn build(
    raw: &BTreeMap<String, RawDataTypePolicy>,
) -> Result<Vec<(DataType, DataTypePolicy)>, (String, String)> {
    let mut out = Vec::with_capacity(raw.len());
    for (name, r) in raw {
        let at = |f: &str| format!("data_types.{name}.{f}");
        let dt = name
            .parse::<DataType>()
            .map_err(|reason| (format!("data_types.{name}"), reason))?;
        let mut p = DataTypePolicy::default();
        if let Some(v) = &r.priority {
            p.priority = v.parse().map_err(|e| (at("priority"), e))?;
        }
        if let Some(v) = &r.compression {
            p.compression = v.parse().map_err(|e| (at("compression"), e))?;
        }
        if let Some(v) = &r.transform {
            p.transform = v.parse().map_err(|e| (at("transform"), e))?;
        }
        if let Some(v) = r.topk_fraction {
            p.topk_fraction = v;
        }
        if r.topk_fraction.is_some() && p.transform != Transform::TopK {
            return Err((
                at("topk_fraction"),
                "only meaningful with transform = \"topk\"".into(),
            ));
        }
        p.validate().map_err(|(f, r)| (at(&f), r))?;
        out.push((dt, p));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in ["off", "auto", "lz4", "zstd", "snappy"] {
            assert_eq!(c.parse::<Compression>().unwrap().name(), c);
        }
        assert!("gzip".parse::<Compression>().is_err());
        for t in Transform::ALL {
            assert_eq!(t.name().parse::<Transform>(), Ok(t));
        }
        assert_eq!(Compression::from(true), Compression::Fixed(Algorithm::Lz4));
        assert_eq!(Compression::from(false), Compression::Off);
    }
}
