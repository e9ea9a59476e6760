//! Which transform a transfer carries: the name a fabric file uses and the code in the
//! frame flags (`wire::flags::TRANSFORM_MASK`), beside the transforms themselves (as
//! `compress::Algorithm` is beside the compressors).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An opt-in payload transform, applied to a whole transfer before chunking. **The
/// destination receives the transformed form** ([`crate::Message::transform`] says which);
/// the application decodes it with [`crate::transform`], except `cache`, which the
/// destination resolves itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    #[default]
    None,
    /// Lossy: gradient top-k sparsification, error feedback kept at the sender
    /// (decode with [`super::TopK::decode`]).
    TopK,
    /// Lossy: IEEE half precision (decode with [`super::dequantize`]).
    Fp16,
    /// Lossy: bfloat16 (decode with [`super::dequantize`]).
    Bf16,
    /// Lossy: int8 with a scale per block (decode with [`super::dequantize`]).
    Int8,
    /// Lossless: content-addressed parameter caching; chunks the destination already holds
    /// are not sent again. The destination's `recv` returns the full bytes.
    Cache,
}

impl Transform {
    pub const ALL: [Transform; 6] = [
        Transform::None,
        Transform::TopK,
        Transform::Fp16,
        Transform::Bf16,
        Transform::Int8,
        Transform::Cache,
    ];

    /// The code carried in the frame flags (`wire::flags::TRANSFORM_MASK`).
    pub fn wire_code(self) -> u8 {
        match self {
            Transform::None => 0,
            Transform::TopK => 1,
            Transform::Fp16 => 2,
            Transform::Bf16 => 3,
            Transform::Int8 => 4,
            Transform::Cache => 5,
        }
    }

    pub fn from_wire_code(code: u8) -> Option<Transform> {
        Transform::ALL.into_iter().find(|t| t.wire_code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Transform::None => "none",
            Transform::TopK => "topk",
            Transform::Fp16 => "fp16",
            Transform::Bf16 => "bf16",
            Transform::Int8 => "int8",
            Transform::Cache => "cache",
        }
    }

    /// True for the transforms that lose precision.
    pub fn is_lossy(self) -> bool {
        matches!(
            self,
            Transform::TopK | Transform::Fp16 | Transform::Bf16 | Transform::Int8
        )
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Transform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transform::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                format!("unknown transform `{s}` (expected none, topk, fp16, bf16, int8 or cache)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_and_names_round_trip() {
        for (i, t) in Transform::ALL.into_iter().enumerate() {
            assert_eq!(t.wire_code(), i as u8, "{t} keeps its code");
            assert_eq!(Transform::from_wire_code(t.wire_code()), Some(t));
            assert_eq!(t.name().parse::<Transform>(), Ok(t));
        }
        assert_eq!(Transform::from_wire_code(6), None);
        assert_eq!(Transform::from_wire_code(7), None);
    }
}
