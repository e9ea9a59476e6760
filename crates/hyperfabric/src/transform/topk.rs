//! Gradient top-k sparsification with error feedback kept at the sender. **Lossy** per
//! message: only the `k` largest-magnitude entries are sent. What is not sent stays in the
//! sender's residual and is added to the next gradient, so over many steps the sum of what
//! the receiver decodes tracks the sum of the gradients (the difference is the residual,
//! which stays bounded).
//!
//! Non-finite gradient entries are not filtered: a NaN or infinity enters the residual and
//! is sent (NaN sorts above every magnitude); callers that care check their gradients first.
//!
//! # Layout
//! ```text
//!  0      4     5     6         8           12          16
//!  +------+-----+-----+---------+-----------+-----------+------------------+-----------------+
//!  | HFTK | ver | 0   | 0 0     | dense_len | k         | k × u32 LE index | k × f32 LE value|
//!  |      | =1  |     | reserved| u32 LE    | u32 LE    | strictly rising  |                 |
//!  +------+-----+-----+---------+-----------+-----------+------------------+-----------------+
//! ```

use super::{write_preamble, Reader, TransformError};

pub const MAGIC: [u8; 4] = *b"HFTK";
pub const HEADER_LEN: usize = 16;
/// Default most dense elements [`TopK::decode`] accepts (1 GiB of f32).
pub const DEFAULT_MAX_DENSE_LEN: usize = 1 << 28;

/// Sender-side top-k sparsifier with its error-feedback residual.
#[derive(Clone, Debug)]
pub struct TopK {
    k_fraction: f64,
    residual: Vec<f32>,
}

impl TopK {
    /// `k_fraction` in (0, 1]: the share of entries sent per message (at least one).
    pub fn new(k_fraction: f64) -> Result<TopK, TransformError> {
        if !(k_fraction > 0.0 && k_fraction <= 1.0) {
            return Err(TransformError::InvalidArgument(format!(
                "top-k fraction {k_fraction} is not in (0, 1]"
            )));
        }
        Ok(TopK {
            k_fraction,
            residual: Vec::new(),
        })
    }

    pub fn k_fraction(&self) -> f64 {
        self.k_fraction
    }

    /// What has been accumulated but not yet sent.
    pub fn residual(&self) -> &[f32] {
        &self.residual
    }

    /// Entries sent for a gradient of `len` entries.
    pub fn k_for(&self, len: usize) -> usize {
        let k = (self.k_fraction * len as f64).ceil() as usize;
        k.clamp(len.min(1), len)
    }

    /// Adds `grad` to the residual and encodes its top-k entries, which leave the residual.
    /// A gradient of a different length than the previous one restarts the residual.
    pub fn encode(&mut self, grad: &[f32]) -> Result<Vec<u8>, TransformError> {
        let dense_len = u32::try_from(grad.len()).map_err(|_| TransformError::TooLarge {
            len: grad.len() as u64,
            max: u32::MAX as u64,
        })?;
        if self.residual.len() != grad.len() {
            self.residual = vec![0.0; grad.len()];
        }
        for (r, g) in self.residual.iter_mut().zip(grad) {
            *r += g;
        }
        let picked = self.top_indices(self.k_for(grad.len()));
        let mut out = Vec::with_capacity(HEADER_LEN + picked.len() * 8);
        write_preamble(&mut out, MAGIC, 0);
        out.extend_from_slice(&dense_len.to_le_bytes());
        out.extend_from_slice(&(picked.len() as u32).to_le_bytes());
        for &i in &picked {
            out.extend_from_slice(&i.to_le_bytes());
        }
        for &i in &picked {
            let slot = &mut self.residual[i as usize];
            out.extend_from_slice(&slot.to_le_bytes());
            *slot = 0.0;
        }
        Ok(out)
    }

    /// Indices of the `k` largest |residual| entries, ascending.
    fn top_indices(&self, k: usize) -> Vec<u32> {
        let mut idx: Vec<u32> = (0..self.residual.len() as u32).collect();
        if k < idx.len() && k > 0 {
            let mag = |i: &u32| self.residual[*i as usize].abs();
            idx.select_nth_unstable_by(k - 1, |a, b| mag(b).total_cmp(&mag(a)));
        }
        idx.truncate(k);
        idx.sort_unstable();
        idx
    }

    /// Decodes to a dense vector (zeros where nothing was sent), at most
    /// [`DEFAULT_MAX_DENSE_LEN`] entries.
    pub fn decode(bytes: &[u8]) -> Result<Vec<f32>, TransformError> {
        Self::decode_with_limit(bytes, DEFAULT_MAX_DENSE_LEN)
    }

    /// As [`TopK::decode`], refusing a dense length above `max_dense_len` before allocating.
    pub fn decode_with_limit(
        bytes: &[u8],
        max_dense_len: usize,
    ) -> Result<Vec<f32>, TransformError> {
        let mut r = Reader::new(bytes);
        r.preamble(MAGIC)?;
        let len = r.u32()? as usize;
        let k = r.u32()? as usize;
        if len > max_dense_len {
            return Err(TransformError::TooLarge {
                len: len as u64,
                max: max_dense_len as u64,
            });
        }
        if k > len {
            return Err(TransformError::Invalid(format!(
                "k {k} > dense length {len}"
            )));
        }
        let need = k
            .checked_mul(8)
            .ok_or(TransformError::Invalid("k overflows".into()))?;
        if r.remaining() != need {
            return Err(TransformError::Invalid(format!(
                "{} body bytes for k = {k} (need {need})",
                r.remaining()
            )));
        }
        let indices = r.bytes(k * 4)?;
        let values = r.bytes(k * 4)?;
        r.finish()?;
        scatter(indices, values, len)
    }
}

/// Places `values` at `indices` (strictly rising, each below `len`) in a dense zero vector.
fn scatter(indices: &[u8], values: &[u8], len: usize) -> Result<Vec<f32>, TransformError> {
    let mut dense = vec![0.0f32; len];
    let mut prev: Option<u32> = None;
    for (i, v) in indices.chunks_exact(4).zip(values.chunks_exact(4)) {
        let index = u32::from_le_bytes([i[0], i[1], i[2], i[3]]);
        if prev.is_some_and(|p| index <= p) {
            return Err(TransformError::Invalid(format!(
                "index {index} does not rise after {prev:?}"
            )));
        }
        let slot = dense
            .get_mut(index as usize)
            .ok_or(TransformError::IndexOutOfRange {
                index: index as u64,
                len: len as u64,
            })?;
        *slot = f32::from_le_bytes([v[0], v[1], v[2], v[3]]);
        prev = Some(index);
    }
    Ok(dense)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn sends_the_largest_magnitudes() {
        let mut t = TopK::new(0.25).expect("k");
        let grad = [0.1, -5.0, 0.2, 3.0, 0.0, 0.0, -0.3, 0.05];
        let dense = TopK::decode(&t.encode(&grad).expect("encode")).expect("decode");
        assert_eq!(dense, vec![0.0, -5.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(t.residual()[1], 0.0);
        assert_eq!(t.residual()[6], -0.3);
    }

    #[test]
    fn error_feedback_makes_sums_converge() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let n = 1000;
        let mut t = TopK::new(0.01).expect("k");
        let mut sent = vec![0.0f64; n];
        let mut total = vec![0.0f64; n];
        for _ in 0..500 {
            let grad: Vec<f32> = (0..n)
                .map(|i| rng.gen_range(-1.0..1.0) + (i % 7) as f32 * 0.1)
                .collect();
            let dense = TopK::decode(&t.encode(&grad).expect("encode")).expect("decode");
            for i in 0..n {
                sent[i] += dense[i] as f64;
                total[i] += grad[i] as f64;
            }
        }
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let diff: Vec<f64> = sent.iter().zip(&total).map(|(s, g)| s - g).collect();
        let rel = norm(&diff) / norm(&total);
        assert!(rel < 0.1, "relative error {rel}");
        for i in 0..n {
            let with_residual = sent[i] + t.residual()[i] as f64;
            assert!((with_residual - total[i]).abs() < 1e-2, "entry {i}");
        }
    }

    #[test]
    fn edge_cases() {
        assert!(TopK::new(0.0).is_err());
        assert!(TopK::new(1.5).is_err());
        assert!(TopK::new(f64::NAN).is_err());
        let mut t = TopK::new(1.0).expect("k");
        assert_eq!(
            TopK::decode(&t.encode(&[]).expect("e")).expect("d"),
            Vec::<f32>::new()
        );
        let g = [1.0, 2.0, 3.0];
        assert_eq!(
            TopK::decode(&t.encode(&g).expect("e")).expect("d"),
            g.to_vec()
        );
        assert_eq!(TopK::new(0.001).expect("k").k_for(10), 1);
    }

    #[test]
    fn hostile_headers_are_refused() {
        let mut t = TopK::new(0.5).expect("k");
        let good = t.encode(&[1.0, 2.0, 3.0, 4.0]).expect("encode");
        let mut big = good.clone();
        big[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            TopK::decode(&big),
            Err(TransformError::TooLarge { .. })
        ));
        let mut out_of_range = good.clone();
        out_of_range[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(TopK::decode(&out_of_range).is_err());
        let mut dup = good.clone();
        dup.copy_within(20..24, 16);
        assert!(TopK::decode(&dup).is_err());
        assert!(TopK::decode(&good[..good.len() - 1]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(TopK::decode(&trailing).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..512), magic in any::<bool>()) {
            if magic && bytes.len() >= 5 {
                bytes[..4].copy_from_slice(&MAGIC);
                bytes[4] = 1;
            }
            if let Ok(dense) = TopK::decode_with_limit(&bytes, 1 << 20) {
                prop_assert!(dense.len() <= 1 << 20);
            }
        }

        #[test]
        fn decode_inverts_encode(grad in proptest::collection::vec(-1e6f32..1e6, 0..300), k in 0.01f64..1.0) {
            let mut t = TopK::new(k).expect("k");
            let dense = TopK::decode(&t.encode(&grad).expect("encode")).expect("decode");
            prop_assert_eq!(dense.len(), grad.len());
            for i in 0..grad.len() {
                prop_assert_eq!(dense[i] + t.residual()[i], grad[i]);
            }
        }
    }
}
