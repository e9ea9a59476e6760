//! Collectives over real in-process fabrics (shared memory between the nodes, TCP where
//! asked): every operation and element type against a scalar reference for 2 to 8 ranks,
//! disagreements, a rank that never calls, other traffic, sub-groups.

// Index loops read more plainly than zipped iterators when checking against a reference.
#![allow(clippy::needless_range_loop)]

mod common;
#[path = "collective/ranks.rs"]
mod ranks;

use common::start_mesh;
use half::{bf16, f16};
use hyperfabric::collective::reference::{reduced as reference, value};
use hyperfabric::collective::{CollectiveError, Element, Group, GroupOptions, ReduceOp};
use hyperfabric::transport::TransportChoice;
use hyperfabric::SendOptions;
use ranks::{all_reduce_matches, all_reduce_matches_every_type, on_every_rank};
use std::time::Duration;

/// Small chunks and a low doubling threshold, so a few hundred elements already take the
/// ring over many chunks (and the window fills).
fn small_chunks() -> GroupOptions {
    GroupOptions::default()
        .chunk_bytes(512)
        .small_bytes(64)
        .window(4)
        .timeout(Duration::from_secs(20))
}

#[test]
fn all_reduce_of_every_op_and_type_matches_the_reference_for_2_to_8_ranks() {
    for n in 2..=8 {
        let fabrics = start_mesh(n, "", TransportChoice::Auto);
        on_every_rank(&fabrics, small_chunks(), |_, g| {
            let sizes = [0, 1, 5, 300];
            all_reduce_matches_every_type(g, &sizes);
        });
    }
}

#[test]
fn all_reduce_over_tcp_and_a_32_mib_buffer_with_default_options() {
    let fabrics = start_mesh(3, "", TransportChoice::Tcp);
    on_every_rank(&fabrics, small_chunks(), |_, g| {
        all_reduce_matches::<f32>(g, &[7, 1000])
    });
    drop(fabrics);
    let fabrics = start_mesh(3, "", TransportChoice::Auto);
    let count = 8 << 20; // 32 MiB of f32
    on_every_rank(&fabrics, GroupOptions::default(), |r, g| {
        let mut buf: Vec<f32> = (0..count).map(|i| value(ReduceOp::Sum, r, i)).collect();
        // Non-blocking: a few tests, then the wait.
        let mut pending = g.start_all_reduce(&mut buf, ReduceOp::Sum).expect("start");
        for _ in 0..3 {
            if pending.test().expect("test") {
                break;
            }
        }
        pending.wait().expect("wait");
        let wrong = (0..count)
            .filter(|&i| buf[i] != reference::<f32>(ReduceOp::Sum, 3, i))
            .count();
        assert_eq!(wrong, 0, "rank {r}");
    });
}

/// Element counts of `T` around the default options' seams: the largest all_reduce that
/// takes recursive doubling, the smallest that takes the ring, and one just over 1 MiB
/// (several 256 KiB chunks per ring segment, a short last chunk).
fn seam_counts<T: Element>() -> [usize; 3] {
    let d = GroupOptions::default();
    let size = T::DTYPE.size();
    [
        d.small_bytes / size,
        d.small_bytes / size + 1,
        (1 << 20) / size + 7,
    ]
}

fn all_reduce_matches_at_the_seams(g: &mut Group<'_>) {
    all_reduce_matches::<f32>(g, &seam_counts::<f32>());
    all_reduce_matches::<f64>(g, &seam_counts::<f64>());
    all_reduce_matches::<f16>(g, &seam_counts::<f16>());
    all_reduce_matches::<bf16>(g, &seam_counts::<bf16>());
    all_reduce_matches::<i32>(g, &seam_counts::<i32>());
    all_reduce_matches::<i64>(g, &seam_counts::<i64>());
    all_reduce_matches::<u8>(g, &seam_counts::<u8>());
}

#[test]
fn all_reduce_with_default_options_matches_across_the_algorithm_and_chunk_seams() {
    for n in [3, 4] {
        let fabrics = start_mesh(n, "", TransportChoice::Auto);
        let opts = GroupOptions::default().timeout(Duration::from_secs(30));
        on_every_rank(&fabrics, opts, |_, g| all_reduce_matches_at_the_seams(g));
    }
}

/// The largest size: 256 MiB of f32 per rank on 3 ranks (a ring whose segments do
/// not divide evenly: 2^26 elements over 3 ranks), checked element by element.
#[test]
fn all_reduce_of_256_mib_of_f32_matches_the_reference() {
    let (n, count) = (3, 64 << 20);
    let fabrics = start_mesh(n, "", TransportChoice::Auto);
    let opts = GroupOptions::default().timeout(Duration::from_secs(30));
    on_every_rank(&fabrics, opts, |r, g| {
        let mut buf: Vec<f32> = (0..count).map(|i| value(ReduceOp::Sum, r, i)).collect();
        g.all_reduce(&mut buf, ReduceOp::Sum).expect("all_reduce");
        let wrong = (0..count)
            .filter(|&i| buf[i] != reference::<f32>(ReduceOp::Sum, n, i))
            .count();
        assert_eq!(wrong, 0, "rank {r}: {wrong} of {count} elements wrong");
    });
}

#[test]
fn the_other_collectives_match_the_reference() {
    for n in [2, 3, 5, 8] {
        let fabrics = start_mesh(n, "", TransportChoice::Auto);
        on_every_rank(&fabrics, small_chunks(), |r, g| {
            let per = 150;
            let len = n * per;
            let mut rs: Vec<f32> = (0..len).map(|i| value(ReduceOp::Sum, r, i)).collect();
            g.reduce_scatter(&mut rs, ReduceOp::Sum)
                .expect("reduce_scatter");
            for i in r * per..(r + 1) * per {
                assert_eq!(
                    rs[i],
                    reference::<f32>(ReduceOp::Sum, n, i),
                    "reduce_scatter n={n}"
                );
            }
            let mut ag: Vec<u8> = (0..len)
                .map(|i| if i / per == r { (i % 251) as u8 } else { 0 })
                .collect();
            g.all_gather(&mut ag).expect("all_gather");
            assert!(
                ag.iter().enumerate().all(|(i, &v)| v == (i % 251) as u8),
                "all_gather n={n}"
            );
            let root = n - 1;
            let mut b: Vec<f64> = (0..len)
                .map(|i| if r == root { i as f64 * 0.5 } else { -1.0 })
                .collect();
            g.broadcast(&mut b, root).expect("broadcast");
            assert!(
                b.iter().enumerate().all(|(i, &v)| v == i as f64 * 0.5),
                "broadcast n={n}"
            );
            let mine: Vec<i32> = (0..len).map(|i| value(ReduceOp::Max, r, i)).collect();
            let mut red = mine.clone();
            g.reduce(&mut red, ReduceOp::Max, 1 % n).expect("reduce");
            if r == 1 % n {
                assert!(
                    (0..len).all(|i| red[i] == reference::<i32>(ReduceOp::Max, n, i)),
                    "reduce n={n}"
                );
            } else {
                assert_eq!(red, mine, "reduce leaves the other ranks' buffers");
            }
            let mut a2a: Vec<i64> = (0..len).map(|i| (r * 1_000_000 + i) as i64).collect();
            g.all_to_all(&mut a2a).expect("all_to_all");
            for j in 0..n {
                for k in 0..per {
                    assert_eq!(
                        a2a[j * per + k],
                        (j * 1_000_000 + r * per + k) as i64,
                        "all_to_all n={n}"
                    );
                }
            }
            g.barrier().expect("barrier");
        });
    }
}

#[test]
fn ranks_that_disagree_get_an_error_naming_the_disagreement() {
    let fabrics = start_mesh(2, "", TransportChoice::Auto);
    let opts = GroupOptions::default().timeout(Duration::from_secs(10));
    let errors = on_every_rank(&fabrics, opts.clone(), |r, g| {
        let mut buf = vec![1.0f32; 10 + r];
        g.all_reduce(&mut buf, ReduceOp::Sum)
            .expect_err("sizes differ")
    });
    for e in &errors {
        assert!(
            matches!(
                e,
                CollectiveError::Mismatch {
                    field: "element count",
                    ..
                } | CollectiveError::Aborted { .. }
            ),
            "{e}"
        );
    }
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, CollectiveError::Mismatch { .. })),
        "{errors:?}"
    );
    let errors = on_every_rank(&fabrics, opts.context(1), |r, g| {
        let op = if r == 0 { ReduceOp::Sum } else { ReduceOp::Max };
        let mut buf = vec![1i32; 4];
        let e = g.all_reduce(&mut buf, op).expect_err("ops differ");
        let again = g.barrier().expect_err("a failed group refuses more");
        assert!(matches!(again, CollectiveError::Poisoned(_)), "{again}");
        e
    });
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("disagrees on the reduction")),
        "{errors:?}"
    );
}

#[test]
fn a_rank_that_never_calls_makes_the_others_fail_within_the_timeout() {
    let fabrics = start_mesh(3, "", TransportChoice::Auto);
    let opts = GroupOptions::default().timeout(Duration::from_millis(500));
    let results = on_every_rank(&fabrics, opts, |r, g| {
        if r == 2 {
            return None;
        }
        let mut buf = vec![1.0f32; 1000];
        Some(
            g.all_reduce(&mut buf, ReduceOp::Sum)
                .expect_err("rank 2 never calls"),
        )
    });
    for e in results.into_iter().flatten() {
        assert!(
            matches!(
                e,
                CollectiveError::Timeout { .. } | CollectiveError::Aborted { .. }
            ),
            "{e}"
        );
    }
}

#[test]
fn other_traffic_is_kept_apart() {
    let fabrics = start_mesh(2, "", TransportChoice::Auto);
    on_every_rank(&fabrics, small_chunks(), |r, g| {
        if r == 1 {
            let plain = SendOptions::new().name("not-a-collective");
            g.fabric().send("r0", b"hello", plain).expect("plain send");
        }
        // Rank 0 reads rank 1's collective messages only after the plain one (one link).
        let mut buf = vec![r as i64 + 1; 700];
        g.all_reduce(&mut buf, ReduceOp::Sum).expect("all_reduce");
        assert!(buf.iter().all(|&v| v == 3));
        if r == 0 {
            let m = g.take_foreign().expect("the plain message was kept aside");
            assert_eq!(&m.payload[..], b"hello");
            assert_eq!(m.name.as_deref(), Some("not-a-collective"));
        }
    });
}

#[test]
fn sub_groups_reduce_their_own_members() {
    let fabrics = start_mesh(4, "", TransportChoice::Auto);
    on_every_rank(&fabrics, small_chunks(), |r, g| {
        let mut sub = g
            .split(Some((r % 2) as u32))
            .expect("split")
            .expect("a member");
        assert_eq!(sub.size(), 2);
        let mut buf = vec![r as i64 + 1; 700];
        sub.all_reduce(&mut buf, ReduceOp::Sum)
            .expect("sub all_reduce");
        let want = if r.is_multiple_of(2) { 1 + 3 } else { 2 + 4 };
        assert!(buf.iter().all(|&v| v == want), "rank {r}: {}", buf[0]);
        let mut buf = vec![r as i64 + 1; 700];
        g.all_reduce(&mut buf, ReduceOp::Sum)
            .expect("all_reduce of the whole group after");
        assert!(buf.iter().all(|&v| v == 10));
        let picked = g.subgroup(&[3, 1]);
        if r == 1 || r == 3 {
            let mut pair = picked.expect("subgroup");
            assert_eq!(pair.rank(), if r == 3 { 0 } else { 1 });
            pair.barrier().expect("pair barrier");
        } else {
            assert!(picked.is_err(), "a non-member cannot build it");
        }
    });
}

/// Seeded gradient-like values in about [-1, 1] (a few larger), different per rank and step.
fn gradient(rank: usize, step: usize, len: usize) -> Vec<f32> {
    let mut x =
        ((rank as u64 + 1) * 0x9e37_79b9_7f4a_7c15) ^ ((step as u64 + 7) * 0xbf58_476d_1ce4_e5b9);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            (u * u * u * 3.0) as f32
        })
        .collect()
}

/// ||got - want|| / ||want||.
fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).powi(2))
        .sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    (num / den).sqrt()
}

#[test]
fn compressed_all_reduce_errors_stay_within_their_documented_bounds() {
    use hyperfabric::collective::{Compressor, GradientCompression};
    let (n, len, steps) = (4, 20_000, 10);
    let fabrics = start_mesh(n, "", TransportChoice::Auto);
    let modes = [
        (GradientCompression::Fp16, 1e-3),
        (GradientCompression::Bf16, 1e-2),
        (GradientCompression::Int8, 2e-2),
    ];
    let errors = on_every_rank(&fabrics, GroupOptions::default(), |r, g| {
        let mut out = Vec::new();
        let grads: Vec<Vec<f32>> = (0..n).map(|q| gradient(q, 0, len)).collect();
        let want: Vec<f64> = (0..len)
            .map(|i| grads.iter().map(|g| g[i] as f64).sum())
            .collect();
        for (mode, _) in modes {
            let mut c = Compressor::new(mode).expect("compressor");
            let mut buf = gradient(r, 0, len);
            g.all_reduce_compressed(&mut buf, ReduceOp::Sum, &mut c)
                .expect("compressed all_reduce");
            out.push((format!("{mode:?}"), relative_error(&buf, &want), buf));
        }
        // Top-k: one step alone loses most of the gradient; with error feedback the sum over
        // steps of what arrived tracks the sum of the gradients.
        let mut c = Compressor::new(GradientCompression::TopK { fraction: 0.1 }).expect("top-k");
        let (mut got, mut exact) = (vec![0f32; len], vec![0f64; len]);
        let mut first = 0.0;
        for s in 0..steps {
            let mut buf = gradient(r, s, len);
            g.all_reduce_compressed(&mut buf, ReduceOp::Sum, &mut c)
                .expect("top-k all_reduce");
            got.iter_mut().zip(&buf).for_each(|(a, b)| *a += b);
            for q in 0..n {
                exact
                    .iter_mut()
                    .zip(gradient(q, s, len))
                    .for_each(|(e, v)| *e += v as f64);
            }
            if s == 0 {
                first = relative_error(&got, &exact);
            }
        }
        out.push(("TopK(0.1), one step".into(), first, Vec::new()));
        out.push((
            format!("TopK(0.1), sum of {steps} steps"),
            relative_error(&got, &exact),
            got,
        ));
        out
    });
    for (i, (mode, bound)) in modes.iter().enumerate() {
        let e = errors[0][i].1;
        eprintln!("{mode:?}: relative L2 error {e:.2e} (bound {bound:.0e})");
        assert!(e <= *bound, "{mode:?}: {e}");
        for r in 1..n {
            assert_eq!(
                errors[r][i].2, errors[0][i].2,
                "every rank ends with the same values"
            );
        }
    }
    let (one, many) = (errors[0][3].1, errors[0][4].1);
    eprintln!("TopK(0.1): one step {one:.3}, sum of {steps} steps {many:.3}");
    assert!(
        many < one * 0.6,
        "error feedback shrinks the error of the sum: {one} -> {many}"
    );
    assert!(Compressor::new(GradientCompression::TopK { fraction: 0.0 }).is_err());
}
