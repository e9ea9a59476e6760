//! Compression throughput: compress + decompress of 1 MiB with each algorithm on random bytes,
//! a structured float32 tensor and text; and the cost of one `auto_select` (full probe and
//! between probes) on a 1 Gbit/s link.
//!
//! `cargo bench -p hyperfabric --bench compress -- --warm-up-time 1 --measurement-time 2`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hyperfabric::compress::{
    compress_into, decompress_into, samples, AdaptiveCompressor, Algorithm, CompressionPolicy,
};
use std::time::Instant;

const LEN: usize = 1 << 20;

fn inputs() -> [(&'static str, Vec<u8>); 3] {
    [
        ("random", samples::random(LEN, 1)),
        ("f32_tensor", samples::float_tensor(LEN)),
        ("text", samples::text(LEN)),
    ]
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("compress_round_trip_1MiB");
    group.throughput(Throughput::Bytes(LEN as u64));
    for (name, data) in inputs() {
        for alg in Algorithm::ALL {
            let (mut packed, mut unpacked) = (Vec::new(), Vec::new());
            compress_into(alg, &data, &mut packed).expect("compress");
            eprintln!(
                "ratio {alg}/{name}: {:.2}",
                LEN as f64 / packed.len() as f64
            );
            let id = BenchmarkId::new(alg.name(), name);
            group.bench_with_input(id, &data, |b, data| {
                b.iter(|| {
                    compress_into(alg, black_box(data), &mut packed).expect("compress");
                    decompress_into(alg, &packed, &mut unpacked, LEN).expect("decompress");
                    black_box(unpacked.len())
                })
            });
        }
    }
    group.finish();
}

fn auto_select(c: &mut Criterion) {
    let mut group = c.benchmark_group("auto_select_1MiB_1Gbps");
    for (name, data) in inputs() {
        for (mode, interval) in [("full_probe", 1), ("between_probes", u32::MAX)] {
            let mut ac =
                AdaptiveCompressor::new(CompressionPolicy::default()).with_probe_interval(interval);
            let mut clock = Instant::now;
            ac.auto_select(&data, 1.0, &mut clock);
            group.bench_with_input(BenchmarkId::new(mode, name), &data, |b, data| {
                b.iter(|| black_box(ac.auto_select(black_box(data), 1.0, &mut clock)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, round_trip, auto_select);
criterion_main!(benches);
