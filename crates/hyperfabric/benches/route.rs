//! Path computation on a 10,000-node fat-tree (k = 34: 11,271 nodes, 29,478 links),
//! host to host across the core (6 hops), uncached and cached.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use hyperfabric::route::gen::fat_tree;
use hyperfabric::route::{Router, Strategy};
use std::time::{Duration, Instant};

fn bench(c: &mut Criterion) {
    let mut router = Router::new(fat_tree(34));
    let (from, to) = ("host-0-0-0", "host-33-16-16");
    let now = Instant::now();
    let mut g = c.benchmark_group("route_fat_tree_k34");
    for s in [
        Strategy::ShortestPath,
        Strategy::LowestLatency,
        Strategy::HighestBandwidth,
        Strategy::LoadBalanced,
    ] {
        g.bench_function(format!("uncached/{s}"), |b| {
            b.iter(|| {
                router.invalidate();
                black_box(router.route(from, to, s, now).ok())
            })
        });
    }
    router.set_cache_ttl(Duration::from_secs(3_600));
    let _ = router.route(from, to, Strategy::LowestLatency, now);
    g.bench_function("cached/lowest_latency", |b| {
        b.iter(|| black_box(router.route(from, to, Strategy::LowestLatency, now).ok()))
    });
    g.bench_function("cached_shared/lowest_latency", |b| {
        b.iter(|| {
            black_box(
                router
                    .route_shared(from, to, Strategy::LowestLatency, now)
                    .ok(),
            )
        })
    });
    g.bench_function("next_hop_cached", |b| {
        b.iter(|| black_box(router.next_hop(from, to, now).ok()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
