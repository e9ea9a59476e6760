//! Reduction operations and the kernels that apply them.
//!
//! Every kernel is one monomorphic loop over `chunks_exact` of the received bytes, with the
//! operation chosen outside the loop: LLVM vectorises these loops for the native types
//! (f32/f64/i32/i64/u8: SSE2/AVX2 loads, adds, min/max), which is the portable SIMD path;
//! `f16`/`bf16` go through f32 element by element, which is the scalar fallback.

use super::dtype::Element;
use std::fmt;

/// How all_reduce, reduce and reduce_scatter combine the ranks' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReduceOp {
    #[default]
    Sum,
    /// The sum divided by the group size (integers truncate).
    Avg,
    Min,
    Max,
    Prod,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 5] = [
        ReduceOp::Sum,
        ReduceOp::Avg,
        ReduceOp::Min,
        ReduceOp::Max,
        ReduceOp::Prod,
    ];

    pub const fn code(self) -> u8 {
        match self {
            ReduceOp::Sum => 1,
            ReduceOp::Avg => 2,
            ReduceOp::Min => 3,
            ReduceOp::Max => 4,
            ReduceOp::Prod => 5,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Avg => "avg",
            ReduceOp::Min => "min",
            ReduceOp::Max => "max",
            ReduceOp::Prod => "prod",
        }
    }

    pub fn parse(s: &str) -> Option<ReduceOp> {
        ReduceOp::ALL
            .into_iter()
            .find(|o| o.as_str() == s.to_ascii_lowercase())
    }

    /// Combines two values (the reference the kernels are checked against).
    pub fn apply<T: Element>(self, a: T, b: T) -> T {
        match self {
            ReduceOp::Sum | ReduceOp::Avg => a.add(b),
            ReduceOp::Prod => a.mul(b),
            ReduceOp::Min => a.min(b),
            ReduceOp::Max => a.max(b),
        }
    }
}

impl fmt::Display for ReduceOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `dst[i] = op(dst[i], src[i])` with `src` the little-endian bytes of `dst.len()` elements.
pub fn reduce_from_bytes<T: Element>(dst: &mut [T], src: &[u8], op: ReduceOp) {
    let n = T::DTYPE.size();
    debug_assert_eq!(src.len(), dst.len() * n);
    let pairs = dst.iter_mut().zip(src.chunks_exact(n));
    match op {
        ReduceOp::Sum | ReduceOp::Avg => pairs.for_each(|(d, s)| *d = d.add(T::read(s))),
        ReduceOp::Prod => pairs.for_each(|(d, s)| *d = d.mul(T::read(s))),
        ReduceOp::Min => pairs.for_each(|(d, s)| *d = d.min(T::read(s))),
        ReduceOp::Max => pairs.for_each(|(d, s)| *d = d.max(T::read(s))),
    }
}

/// `dst[i] = op(dst[i], src[i])` over two typed slices of one length (native bytes: the
/// intra-host arena's kernel, one zipped loop the compiler vectorises for native types).
pub fn reduce_slices<T: Element>(dst: &mut [T], src: &[T], op: ReduceOp) {
    debug_assert_eq!(src.len(), dst.len());
    let pairs = dst.iter_mut().zip(src);
    match op {
        ReduceOp::Sum | ReduceOp::Avg => pairs.for_each(|(d, s)| *d = d.add(*s)),
        ReduceOp::Prod => pairs.for_each(|(d, s)| *d = d.mul(*s)),
        ReduceOp::Min => pairs.for_each(|(d, s)| *d = d.min(*s)),
        ReduceOp::Max => pairs.for_each(|(d, s)| *d = d.max(*s)),
    }
}

/// `dst[i] = op(src[i], dst[i])`: [`reduce_slices`] with `src` as the left operand, so an
/// accumulator of the ranks before ours can meet our values in place, in rank order (the
/// same bits as reducing in order: min/max of signed zeros or NaN payloads depend on it).
pub fn reduce_slices_rev<T: Element>(dst: &mut [T], src: &[T], op: ReduceOp) {
    debug_assert_eq!(src.len(), dst.len());
    let pairs = dst.iter_mut().zip(src);
    match op {
        ReduceOp::Sum | ReduceOp::Avg => pairs.for_each(|(d, s)| *d = s.add(*d)),
        ReduceOp::Prod => pairs.for_each(|(d, s)| *d = s.mul(*d)),
        ReduceOp::Min => pairs.for_each(|(d, s)| *d = s.min(*d)),
        ReduceOp::Max => pairs.for_each(|(d, s)| *d = s.max(*d)),
    }
}

/// `dst[i] = src[i]` from little-endian bytes.
pub fn copy_from_bytes<T: Element>(dst: &mut [T], src: &[u8]) {
    let n = T::DTYPE.size();
    debug_assert_eq!(src.len(), dst.len() * n);
    dst.iter_mut()
        .zip(src.chunks_exact(n))
        .for_each(|(d, s)| *d = T::read(s));
}

/// Writes `src` as little-endian bytes into `dst` (`src.len() * size` bytes).
pub fn write_bytes<T: Element>(dst: &mut [u8], src: &[T]) {
    let n = T::DTYPE.size();
    debug_assert_eq!(dst.len(), src.len() * n);
    dst.chunks_exact_mut(n)
        .zip(src)
        .for_each(|(d, s)| s.write(d));
}

/// Divides every element by `n` (the last step of `avg`).
pub fn divide<T: Element>(buf: &mut [T], n: usize) {
    buf.iter_mut().for_each(|v| *v = v.div_count(n));
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    fn check<T: Element>(a: &[f64], b: &[f64]) {
        for op in ReduceOp::ALL {
            let mut dst: Vec<T> = a.iter().map(|&v| T::from_f64(v)).collect();
            let src: Vec<T> = b.iter().map(|&v| T::from_f64(v)).collect();
            let mut bytes = vec![0u8; src.len() * T::DTYPE.size()];
            write_bytes(&mut bytes, &src);
            let want: Vec<T> = dst
                .iter()
                .zip(&src)
                .map(|(&x, &y)| op.apply(x, y))
                .collect();
            let mut rev = src.clone();
            reduce_slices_rev(&mut rev, &dst, op);
            reduce_from_bytes(&mut dst, &bytes, op);
            assert_eq!(dst, want, "{op} on {}", T::DTYPE);
            assert_eq!(rev, want, "{op} reversed on {}", T::DTYPE);
        }
    }

    #[test]
    fn kernels_match_the_scalar_reference_for_every_type_and_op() {
        let a: Vec<f64> = (0..37).map(|i| (i % 5) as f64 - 1.0).collect();
        let b: Vec<f64> = (0..37).map(|i| (i % 3) as f64 + 1.0).collect();
        check::<f32>(&a, &b);
        check::<f64>(&a, &b);
        check::<f16>(&a, &b);
        check::<bf16>(&a, &b);
        check::<i32>(&a, &b);
        check::<i64>(&a, &b);
        let ua: Vec<f64> = a.iter().map(|v| v + 1.0).collect();
        check::<u8>(&ua, &b);
    }

    #[test]
    fn copy_and_divide() {
        let src = [1.0f32, 2.0, 3.0];
        let mut bytes = [0u8; 12];
        write_bytes(&mut bytes, &src);
        let mut dst = [0f32; 3];
        copy_from_bytes(&mut dst, &bytes);
        assert_eq!(dst, src);
        divide(&mut dst, 2);
        assert_eq!(dst, [0.5, 1.0, 1.5]);
        let mut ints = [7i32, -7];
        divide(&mut ints, 2);
        assert_eq!(ints, [3, -3]);
        assert_eq!(ReduceOp::parse("MAX"), Some(ReduceOp::Max));
        assert_eq!(ReduceOp::parse("xor"), None);
    }
}
