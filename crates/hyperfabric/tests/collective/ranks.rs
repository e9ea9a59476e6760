//! Helpers shared by the collective tests: a group on every rank of an in-process mesh,
//! and all_reduce of every op checked element by element against the reference.
#![allow(dead_code)]

use hyperfabric::collective::reference::{reduced as reference, value};
use hyperfabric::collective::{bf16, f16, Element, Group, GroupOptions, ReduceOp};
use hyperfabric::Fabric;

/// Runs `f(rank, group)` on every node of `fabrics`, each on its own thread.
pub fn on_every_rank<R: Send>(
    fabrics: &[Fabric],
    opts: GroupOptions,
    f: impl Fn(usize, &mut Group<'_>) -> R + Sync,
) -> Vec<R> {
    let ranks = super::common::mesh_ranks(fabrics.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = fabrics
            .iter()
            .enumerate()
            .map(|(r, fabric)| {
                let (ranks, opts, f) = (&ranks, opts.clone(), &f);
                s.spawn(move || {
                    let mut g = Group::with_options(fabric, ranks, opts).expect("group");
                    f(r, &mut g)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("rank thread"))
            .collect()
    })
}

/// [`all_reduce_matches`] for every element type, in the order of `DType`.
pub fn all_reduce_matches_every_type(g: &mut Group<'_>, sizes: &[usize]) {
    all_reduce_matches::<f32>(g, sizes);
    all_reduce_matches::<f64>(g, sizes);
    all_reduce_matches::<f16>(g, sizes);
    all_reduce_matches::<bf16>(g, sizes);
    all_reduce_matches::<i32>(g, sizes);
    all_reduce_matches::<i64>(g, sizes);
    all_reduce_matches::<u8>(g, sizes);
}

pub fn all_reduce_matches<T: Element>(g: &mut Group<'_>, sizes: &[usize]) {
    let (n, r) = (g.size(), g.rank());
    for op in ReduceOp::ALL {
        for &count in sizes {
            let mut buf: Vec<T> = (0..count).map(|i| value(op, r, i)).collect();
            g.all_reduce(&mut buf, op).expect("all_reduce");
            let wrong = (0..count)
                .filter(|&i| buf[i] != reference::<T>(op, n, i))
                .count();
            assert_eq!(
                wrong,
                0,
                "{op} {} count {count} on {n} ranks, rank {r}",
                T::DTYPE
            );
        }
    }
}
