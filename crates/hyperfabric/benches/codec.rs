//! Wire v1 codec throughput: header encoding (CRC32C over header and payload) and whole-frame
//! decoding with checksum verification, for a small control-sized and a 1 MiB data payload.
//!
//! `cargo bench -p hyperfabric --bench codec -- --warm-up-time 1 --measurement-time 2`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hyperfabric::wire::{
    decode_frame, encode_frame, node_key, FrameKind, Header, Limits, HEADER_LEN,
};
use hyperfabric::{DataType, Priority};

const SIZES: [(&str, usize); 2] = [("64B", 64), ("1MiB", 1 << 20)];

fn data_header() -> Header {
    Header {
        priority: Priority::High,
        data_type: DataType::Tensor,
        src: node_key("gpu-01"),
        dst: node_key("gpu-02"),
        transfer_id: 42,
        offset: 0,
        aux: 1 << 30,
        ..Header::new(FrameKind::Data)
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_header");
    let h = data_header();
    for (name, len) in SIZES {
        let p = payload(len);
        g.throughput(Throughput::Bytes((HEADER_LEN + len) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &p, |b, p| {
            b.iter(|| {
                black_box(&h)
                    .encode(black_box(p))
                    .expect("payload under the hard limit")
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_frame");
    for (name, len) in SIZES {
        let frame =
            encode_frame(&data_header(), &payload(len)).expect("payload under the hard limit");
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &frame, |b, f| {
            b.iter(|| {
                decode_frame(black_box(f), Limits::default())
                    .expect("valid frame")
                    .2
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
