//! Compressed all_reduce of f32 gradients (the `gradient` policy's transforms, from
//! [`crate::transform`]), each trading accuracy for bytes on the links:
//!
//! - `Fp16` / `Bf16`: the ring runs on 16-bit values (half the bytes of f32 at any group
//!   size); partial sums are rounded to 16 bits once per step.
//! - `Int8`: each rank quantises its gradient (a scale per 256 values), the ranks
//!   all-gather the encodings and every rank sums the dequantised vectors in rank order.
//! - `TopK { fraction }`: each rank sends only its `ceil(fraction * len)` largest entries
//!   (with error feedback: what it did not send is added to its next gradient), gathered
//!   and summed as for `Int8`.
//!
//! Every rank ends with the same values. The error each introduces is measured by
//! `tests/collective.rs` (`compressed_all_reduce_errors_stay_within_their_documented_bounds`)
//! and written down in `docs/collectives.md`.

use super::error::{CollectiveError, Result};
use super::group::Group;
use super::op::ReduceOp;
use crate::transform::{dequantize, quantize, Quantization, TopK};
use half::{bf16, f16};

/// How [`Group::all_reduce_compressed`] shrinks what travels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GradientCompression {
    Fp16,
    Bf16,
    Int8,
    /// Keep this fraction (0, 1] of the entries, the largest in magnitude.
    TopK {
        fraction: f64,
    },
}

/// A rank's compression state: the mode, and for top-k the error-feedback residual (keep
/// one per gradient tensor and reuse it every step).
#[derive(Debug, Clone)]
pub struct Compressor {
    mode: GradientCompression,
    topk: Option<TopK>,
}

impl Compressor {
    pub fn new(mode: GradientCompression) -> Result<Compressor> {
        let topk = match mode {
            GradientCompression::TopK { fraction } => Some(
                TopK::new(fraction).map_err(|e| CollectiveError::InvalidArgument(e.to_string()))?,
            ),
            _ => None,
        };
        Ok(Compressor { mode, topk })
    }
    pub fn mode(&self) -> GradientCompression {
        self.mode
    }
    /// Top-k's residual: what this rank has not sent yet (empty before the first step).
    pub fn residual(&self) -> &[f32] {
        self.topk.as_ref().map_or(&[], TopK::residual)
    }
}

impl Group<'_> {
    /// all_reduce (`Sum` or `Avg`) of an f32 gradient through `c`; see the module docs.
    pub fn all_reduce_compressed(
        &mut self,
        buf: &mut [f32],
        op: ReduceOp,
        c: &mut Compressor,
    ) -> Result<()> {
        if !matches!(op, ReduceOp::Sum | ReduceOp::Avg) {
            return Err(CollectiveError::InvalidArgument(format!(
                "compressed all_reduce sums (sum or avg), not {op}"
            )));
        }
        match c.mode {
            GradientCompression::Fp16 => {
                let mut h: Vec<f16> = buf.iter().map(|&v| f16::from_f32(v)).collect();
                self.all_reduce(&mut h, op)?;
                buf.iter_mut().zip(&h).for_each(|(d, s)| *d = s.to_f32());
            }
            GradientCompression::Bf16 => {
                let mut h: Vec<bf16> = buf.iter().map(|&v| bf16::from_f32(v)).collect();
                self.all_reduce(&mut h, op)?;
                buf.iter_mut().zip(&h).for_each(|(d, s)| *d = s.to_f32());
            }
            GradientCompression::Int8 => {
                let enc = quantize(Quantization::Int8, buf);
                self.gather_and_sum(buf, &enc, op, dequantize)?;
            }
            GradientCompression::TopK { .. } => {
                let topk = c.topk.as_mut().ok_or_else(|| {
                    CollectiveError::InvalidArgument("top-k state missing".into())
                })?;
                let enc = topk
                    .encode(buf)
                    .map_err(|e| CollectiveError::InvalidArgument(e.to_string()))?;
                self.gather_and_sum(buf, &enc, op, TopK::decode)?;
            }
        }
        Ok(())
    }

    /// All-gathers every rank's encoding (all the same length: the same count and mode)
    /// and writes the sum of the decoded vectors, in rank order, into `buf`.
    fn gather_and_sum(
        &mut self,
        buf: &mut [f32],
        enc: &[u8],
        op: ReduceOp,
        decode: impl Fn(&[u8]) -> std::result::Result<Vec<f32>, crate::transform::TransformError>,
    ) -> Result<()> {
        let (n, r, l) = (self.size(), self.rank(), enc.len());
        let mut all = vec![0u8; n * l];
        all[r * l..(r + 1) * l].copy_from_slice(enc);
        self.all_gather(&mut all)?;
        buf.fill(0.0);
        for q in 0..n {
            let dense =
                decode(&all[q * l..(q + 1) * l]).map_err(|e| CollectiveError::Malformed {
                    node: self.ranks()[q].clone(),
                    reason: format!("its compressed gradient: {e}"),
                })?;
            if dense.len() != buf.len() {
                return Err(CollectiveError::Malformed {
                    node: self.ranks()[q].clone(),
                    reason: format!(
                        "a gradient of {} values where {} were due",
                        dense.len(),
                        buf.len()
                    ),
                });
            }
            buf.iter_mut().zip(&dense).for_each(|(d, s)| *d += s);
        }
        if op == ReduceOp::Avg {
            super::op::divide(buf, n);
        }
        Ok(())
    }
}
