//! A checkable input and its expected reduction: what `hfabric bench allreduce` and the
//! collective tests fill their buffers with and compare against, so both check the same thing.

use super::{Element, ReduceOp};

/// What rank `r` contributes at element `i`: small integers, exact in every element type
/// (sums stay small; products are powers of two up to 2^ranks).
pub fn value<T: Element>(op: ReduceOp, r: usize, i: usize) -> T {
    let v = if op == ReduceOp::Prod {
        if (r + i).is_multiple_of(3) {
            2.0
        } else {
            1.0
        }
    } else {
        ((r * 7 + i) % 4) as f64
    };
    T::from_f64(v)
}

/// Element `i` of `op` over the [`value`]s of `n` ranks, computed one element at a time.
pub fn reduced<T: Element>(op: ReduceOp, n: usize, i: usize) -> T {
    let mut acc = value::<T>(op, 0, i);
    for r in 1..n {
        acc = op.apply(acc, value(op, r, i));
    }
    if op == ReduceOp::Avg {
        acc = acc.div_count(n);
    }
    acc
}
