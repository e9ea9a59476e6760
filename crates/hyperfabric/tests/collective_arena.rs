//! The intra-host arena (`GroupOptions::arena`) over real in-process fabrics: the slot
//! (one round up to `small_bytes`) and the stage (larger all_reduce chunk by chunk,
//! reduce-scatter then all-gather) against the reference for 2 to 8 ranks, mixed with
//! each other and with barriers; disagreements and a silent rank.

mod common;
#[path = "collective/ranks.rs"]
mod ranks;

use common::start_mesh;
use half::{bf16, f16};
use hyperfabric::collective::reference::reduced as reference;
use hyperfabric::collective::{CollectiveError, Group, GroupOptions, ReduceOp};
use hyperfabric::transport::TransportChoice;
use ranks::{all_reduce_matches, all_reduce_matches_every_type, on_every_rank};
use std::time::Duration;

/// The intra-host arena (`GroupOptions::arena`): every op and type for 2 to 8 ranks, the
/// arena's largest size, and a ring-sized call and a barrier between arena calls (the
/// paths share the sequence numbers).
#[test]
fn arena_all_reduce_of_every_op_and_type_matches_the_reference_for_2_to_8_ranks() {
    for n in 2..=8 {
        let fabrics = start_mesh(n, "", TransportChoice::Auto);
        let opts = GroupOptions::default()
            .arena(true)
            .timeout(Duration::from_secs(30));
        on_every_rank(&fabrics, opts, |_, g| {
            let sizes = [0, 1, 5, 300];
            all_reduce_matches_every_type(g, &sizes);
            g.barrier().expect("barrier");
            all_reduce_matches::<f32>(g, &[(64 << 10) / 4, (64 << 10) / 4 + 1, 3]);
        });
    }
}

#[test]
fn arena_ranks_that_disagree_or_never_call_get_typed_errors() {
    let fabrics = start_mesh(3, "", TransportChoice::Auto);
    let opts = GroupOptions::default()
        .arena(true)
        .timeout(Duration::from_secs(10));
    let errors = on_every_rank(&fabrics, opts.clone(), |r, g| {
        let mut warm = [1u8];
        g.all_reduce(&mut warm, ReduceOp::Sum).expect("set-up");
        let dtype_differs = |g: &mut Group<'_>| {
            if r == 1 {
                g.all_reduce(&mut [1.0f64; 4], ReduceOp::Sum)
            } else {
                g.all_reduce(&mut [1.0f32; 4], ReduceOp::Sum)
            }
        };
        dtype_differs(g).expect_err("types differ")
    });
    assert!(
        errors.iter().all(|e| matches!(
            e,
            CollectiveError::Mismatch {
                field: "element type",
                ..
            } | CollectiveError::Aborted { .. }
        )),
        "{errors:?}"
    );
    let opts = opts.context(1).timeout(Duration::from_millis(500));
    let results = on_every_rank(&fabrics, opts, |r, g| {
        let mut warm = [1u8];
        g.all_reduce(&mut warm, ReduceOp::Sum).expect("set-up");
        if r == 2 {
            return None;
        }
        Some(
            g.all_reduce(&mut [1.0f32; 100], ReduceOp::Sum)
                .expect_err("rank 2 never calls"),
        )
    });
    for e in results.into_iter().flatten() {
        assert!(matches!(e, CollectiveError::Timeout { rank: 2, .. }), "{e}");
    }
}

/// The stage at small sizes: a 64-byte slot and 2 KiB chunks, so a few hundred elements
/// already take several chunks (shares of one element and empty ones included), every op
/// and type, mixed with slot calls (0, 1, 5 elements) and barriers.
#[test]
fn arena_stage_of_every_op_and_type_matches_the_reference_for_2_to_8_ranks() {
    for n in 2..=8 {
        let fabrics = start_mesh(n, "", TransportChoice::Auto);
        let opts = GroupOptions::default()
            .arena(true)
            .small_bytes(64)
            .arena_bytes(4096)
            .timeout(Duration::from_secs(30));
        on_every_rank(&fabrics, opts, |_, g| {
            let sizes = [0, 17, 5, 300, 511, 512, 513, 1, 1025, 3001];
            all_reduce_matches::<f32>(g, &sizes);
            assert_eq!(g.last_path(), "arena_rs_ag");
            all_reduce_matches::<f64>(g, &sizes);
            g.barrier().expect("barrier");
            all_reduce_matches::<f16>(g, &sizes);
            all_reduce_matches::<bf16>(g, &sizes);
            all_reduce_matches::<i32>(g, &sizes);
            all_reduce_matches::<i64>(g, &sizes);
            all_reduce_matches::<u8>(g, &sizes);
        });
    }
}

/// The stage with default options (2 MiB per rank: 1 MiB chunks) across the slot and
/// chunk seams and at 32 MiB, element by element.
#[test]
fn arena_stage_with_default_options_matches_across_the_seams_and_at_32_mib() {
    for n in [3, 5] {
        let fabrics = start_mesh(n, "", TransportChoice::Auto);
        let opts = GroupOptions::default()
            .arena(true)
            .timeout(Duration::from_secs(60));
        on_every_rank(&fabrics, opts, |_, g| {
            let seams = [
                (64 << 10) / 4,
                (64 << 10) / 4 + 1,
                (1 << 18) - 1,
                1 << 18,
                (1 << 18) + 7,
            ];
            all_reduce_matches::<f32>(g, &seams);
            let count = (32 << 20) / 4;
            let r = g.rank();
            let mut buf: Vec<f32> = (0..count)
                .map(|i| hyperfabric::collective::reference::value(ReduceOp::Sum, r, i))
                .collect();
            g.all_reduce(&mut buf, ReduceOp::Sum).expect("32 MiB");
            assert_eq!(g.last_path(), "arena_rs_ag");
            let wrong = (0..count)
                .filter(|&i| buf[i] != reference::<f32>(ReduceOp::Sum, g.size(), i))
                .count();
            assert_eq!(wrong, 0, "32 MiB on {n} ranks, rank {r}");
        });
    }
}

#[test]
fn arena_stage_ranks_that_disagree_or_never_call_get_typed_errors() {
    let fabrics = start_mesh(3, "", TransportChoice::Auto);
    let opts = GroupOptions::default()
        .arena(true)
        .small_bytes(64)
        .arena_bytes(4096)
        .timeout(Duration::from_secs(10));
    let errors = on_every_rank(&fabrics, opts.clone(), |r, g| {
        g.all_reduce(&mut [1u8], ReduceOp::Sum).expect("set-up");
        let count = if r == 1 { 700 } else { 600 };
        g.all_reduce(&mut vec![1.0f32; count], ReduceOp::Sum)
            .expect_err("counts differ")
    });
    assert!(
        errors.iter().all(|e| matches!(
            e,
            CollectiveError::Mismatch {
                field: "element count",
                ..
            } | CollectiveError::Aborted { .. }
        )),
        "{errors:?}"
    );
    let opts = opts.context(1).timeout(Duration::from_millis(500));
    let results = on_every_rank(&fabrics, opts, |r, g| {
        g.all_reduce(&mut [1u8], ReduceOp::Sum).expect("set-up");
        g.all_reduce(&mut vec![1.0f32; 3000], ReduceOp::Sum)
            .expect("a stage call");
        if r == 2 {
            return None;
        }
        let t = std::time::Instant::now();
        let e = g
            .all_reduce(&mut vec![1.0f32; 3000], ReduceOp::Sum)
            .expect_err("rank 2 never calls");
        Some((e, t.elapsed()))
    });
    for (e, took) in results.into_iter().flatten() {
        assert!(matches!(e, CollectiveError::Timeout { rank: 2, .. }), "{e}");
        assert!(took < Duration::from_secs(20), "bounded wait: {took:?}");
    }
}

#[test]
fn arena_bytes_is_validated_and_refused_without_the_arena() {
    let fabrics = start_mesh(2, "", TransportChoice::Auto);
    let ranks = common::mesh_ranks(2);
    let make = |o: GroupOptions| Group::with_options(&fabrics[0], &ranks, o).map(|_| ());
    let bad = |o: GroupOptions| matches!(make(o), Err(CollectiveError::InvalidArgument(_)));
    assert!(bad(GroupOptions::default().arena_bytes(1 << 20)));
    assert!(bad(GroupOptions::default().arena(true).arena_bytes(5000)));
    assert!(bad(GroupOptions::default()
        .arena(true)
        .arena_bytes(128 << 20)));
    assert!(make(GroupOptions::default().arena(true).arena_bytes(8192)).is_ok());
}
