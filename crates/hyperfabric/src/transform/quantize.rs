//! Parameter quantisation. **Lossy**, with these bounds for finite inputs:
//!
//! - [`Quantization::Fp16`]: IEEE half precision, round to nearest even. Relative error
//!   ≤ 2⁻¹¹ (≈ 4.9e-4) for |x| in the normal range [6.1e-5, 65504]; smaller magnitudes lose
//!   relative precision (subnormals, then 0); |x| > 65504 becomes ±infinity.
//! - [`Quantization::Bf16`]: bfloat16, round to nearest even. Relative error ≤ 2⁻⁸ (≈ 3.9e-3)
//!   over the whole f32 normal range (same exponent range as f32).
//! - [`Quantization::Int8`]: symmetric, one f32 scale per block of [`INT8_BLOCK`] values,
//!   `scale = max|finite x| / 127`, `q = round(x / scale)`. Absolute error ≤ scale / 2.
//!
//! Non-finite values: fp16 and bf16 keep NaN and ±infinity. int8 cannot: NaN encodes as 0 and
//! ±infinity saturates to ±127 × scale (the block's largest finite magnitude).
//!
//! # Layout
//! ```text
//!  0      4     5     6       8               16
//!  +------+-----+-----+-------+---------------+--------------------------------------+
//!  | HFQZ | ver | kind| 0 0   | count u64 LE  | fp16/bf16: count × u16 LE            |
//!  |      | =1  | 1..3|       |               | int8: ceil(count/256) × f32 LE scale,|
//!  |      |     |     |       |               |       then count × i8                |
//!  +------+-----+-----+-------+---------------+--------------------------------------+
//! ```
//! The body length follows from `count`, and must match exactly, so decoding allocates at most
//! four times the input's size.

use super::{write_preamble, Reader, TransformError};
use half::{bf16, f16};

pub const MAGIC: [u8; 4] = *b"HFQZ";
pub const HEADER_LEN: usize = 16;
/// Values per int8 scale block.
pub const INT8_BLOCK: usize = 256;

/// A quantisation format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantization {
    Fp16,
    Bf16,
    Int8,
}

impl Quantization {
    pub const ALL: [Quantization; 3] = [Quantization::Fp16, Quantization::Bf16, Quantization::Int8];

    fn code(self) -> u8 {
        match self {
            Quantization::Fp16 => 1,
            Quantization::Bf16 => 2,
            Quantization::Int8 => 3,
        }
    }

    fn from_code(code: u8) -> Option<Quantization> {
        Quantization::ALL.into_iter().find(|q| q.code() == code)
    }

    /// Encoded body bytes for `count` values; `None` on overflow.
    fn body_len(self, count: u64) -> Option<usize> {
        let count = usize::try_from(count).ok()?;
        match self {
            Quantization::Fp16 | Quantization::Bf16 => count.checked_mul(2),
            Quantization::Int8 => count
                .div_ceil(INT8_BLOCK)
                .checked_mul(4)?
                .checked_add(count),
        }
    }
}

/// Quantises `values` into a self-describing buffer.
pub fn quantize(q: Quantization, values: &[f32]) -> Vec<u8> {
    let body = q.body_len(values.len() as u64).unwrap_or(0);
    let mut out = Vec::with_capacity(HEADER_LEN + body);
    write_preamble(&mut out, MAGIC, q.code());
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    match q {
        Quantization::Fp16 => {
            for v in values {
                out.extend_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
        Quantization::Bf16 => {
            for v in values {
                out.extend_from_slice(&bf16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
        Quantization::Int8 => quantize_int8(values, &mut out),
    }
    out
}

/// The scale of one int8 block: largest finite magnitude / 127 (0 for an all-zero block).
fn int8_scale(block: &[f32]) -> f32 {
    let max = block
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    max / 127.0
}

fn quantize_int8(values: &[f32], out: &mut Vec<u8>) {
    for block in values.chunks(INT8_BLOCK) {
        out.extend_from_slice(&int8_scale(block).to_le_bytes());
    }
    for block in values.chunks(INT8_BLOCK) {
        let scale = int8_scale(block);
        for &v in block {
            let q = if scale > 0.0 && !v.is_nan() {
                (v / scale).round().clamp(-127.0, 127.0) as i8
            } else {
                0
            };
            out.push(q as u8);
        }
    }
}

/// Decodes a buffer made by [`quantize`]. Never panics; any malformed input is an error.
pub fn dequantize(bytes: &[u8]) -> Result<Vec<f32>, TransformError> {
    let mut r = Reader::new(bytes);
    let code = r.preamble(MAGIC)?;
    let q = Quantization::from_code(code)
        .ok_or_else(|| TransformError::Invalid(format!("unknown quantisation kind {code}")))?;
    let count = r.u64()?;
    let need = q
        .body_len(count)
        .filter(|&n| n == r.remaining())
        .ok_or_else(|| {
            TransformError::Invalid(format!(
                "{} body bytes do not fit {count} {q:?} values",
                r.remaining()
            ))
        })?;
    let body = r.bytes(need)?;
    r.finish()?;
    let halves = body
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    match q {
        Quantization::Fp16 => Ok(halves.map(|h| f16::from_bits(h).to_f32()).collect()),
        Quantization::Bf16 => Ok(halves.map(|h| bf16::from_bits(h).to_f32()).collect()),
        Quantization::Int8 => dequantize_int8(body, count as usize),
    }
}

fn dequantize_int8(body: &[u8], count: usize) -> Result<Vec<f32>, TransformError> {
    let (scales, quants) = body.split_at(body.len() - count);
    let mut out = Vec::with_capacity(count);
    for (s, block) in scales.chunks_exact(4).zip(quants.chunks(INT8_BLOCK)) {
        let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(TransformError::Invalid(format!("int8 scale {scale}")));
        }
        out.extend(block.iter().map(|&b| (b as i8) as f32 * scale));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| rng.gen_range(-1.0f32..1.0) * 10f32.powi(rng.gen_range(-4..4)))
            .collect()
    }

    fn max_rel_error(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((x - y) / x).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn fp16_and_bf16_relative_error_bounds() {
        let v: Vec<f32> = values(10_000, 1)
            .into_iter()
            .filter(|x| x.abs() >= 1e-4)
            .collect();
        let fp16 = dequantize(&quantize(Quantization::Fp16, &v)).expect("fp16");
        let bf16 = dequantize(&quantize(Quantization::Bf16, &v)).expect("bf16");
        assert!(
            max_rel_error(&v, &fp16) <= 1e-3,
            "fp16 {}",
            max_rel_error(&v, &fp16)
        );
        assert!(
            max_rel_error(&v, &bf16) <= 1e-2,
            "bf16 {}",
            max_rel_error(&v, &bf16)
        );
        let wide = [1e-30f32, 3e30, -7.5e-20];
        let back = dequantize(&quantize(Quantization::Bf16, &wide)).expect("bf16");
        assert!(max_rel_error(&wide, &back) <= 1e-2);
    }

    #[test]
    fn int8_error_is_at_most_half_a_scale() {
        let v = values(1000, 2);
        let back = dequantize(&quantize(Quantization::Int8, &v)).expect("int8");
        assert_eq!(back.len(), v.len());
        for (block, got) in v.chunks(INT8_BLOCK).zip(back.chunks(INT8_BLOCK)) {
            let scale = int8_scale(block);
            for (x, y) in block.iter().zip(got) {
                assert!(
                    (x - y).abs() <= scale / 2.0 * 1.0001,
                    "{x} vs {y}, scale {scale}"
                );
            }
        }
        assert_eq!(
            quantize(Quantization::Int8, &v).len(),
            HEADER_LEN + 4 * 4 + 1000
        );
    }

    #[test]
    fn non_finite_values_as_documented() {
        let v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 2.0, 1e6];
        let fp16 = dequantize(&quantize(Quantization::Fp16, &v)).expect("fp16");
        assert!(fp16[0].is_nan() && fp16[1] == f32::INFINITY && fp16[2] == f32::NEG_INFINITY);
        assert_eq!(fp16[4], f32::INFINITY, "beyond 65504");
        let bf16 = dequantize(&quantize(Quantization::Bf16, &v)).expect("bf16");
        assert!(bf16[0].is_nan() && bf16[1] == f32::INFINITY && bf16[3] == 2.0);
        let int8 = dequantize(&quantize(Quantization::Int8, &v)).expect("int8");
        assert_eq!(int8[0], 0.0);
        assert!(
            (int8[1] - 1e6).abs() <= 1.0 && (int8[2] + 1e6).abs() <= 1.0,
            "{int8:?}"
        );
    }

    #[test]
    fn empty_and_malformed_inputs() {
        for q in Quantization::ALL {
            assert_eq!(
                dequantize(&quantize(q, &[])).expect("empty"),
                Vec::<f32>::new()
            );
            let good = quantize(q, &[1.0, 2.0, 3.0]);
            assert!(dequantize(&good[..good.len() - 1]).is_err());
            let mut long = good.clone();
            long.push(0);
            assert!(dequantize(&long).is_err());
            let mut huge = good.clone();
            huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
            assert!(dequantize(&huge).is_err());
        }
        let mut bad_kind = quantize(Quantization::Fp16, &[1.0]);
        bad_kind[5] = 9;
        assert!(dequantize(&bad_kind).is_err());
        let mut bad_scale = quantize(Quantization::Int8, &[1.0]);
        bad_scale[16..20].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(dequantize(&bad_scale).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..512), kind in 0u8..5) {
            if bytes.len() >= 8 {
                bytes[..4].copy_from_slice(&MAGIC);
                bytes[4] = 1;
                bytes[5] = kind;
            }
            let _ = dequantize(&bytes);
        }

        #[test]
        fn int8_round_trip_bound(v in proptest::collection::vec(-1e3f32..1e3, 0..600)) {
            let back = dequantize(&quantize(Quantization::Int8, &v)).expect("int8");
            prop_assert_eq!(back.len(), v.len());
            for (block, got) in v.chunks(INT8_BLOCK).zip(back.chunks(INT8_BLOCK)) {
                let half = int8_scale(block) / 2.0 * 1.0001;
                for (x, y) in block.iter().zip(got) {
                    prop_assert!((x - y).abs() <= half);
                }
            }
        }
    }
}
