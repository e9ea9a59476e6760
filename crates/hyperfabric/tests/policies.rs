//! Compression, data-type policies, transforms and route constraints, with two nodes in one
//! process over real loopback TCP.

use hyperfabric::compress::{samples, Algorithm};
use hyperfabric::config::FabricConfig;
use hyperfabric::transform::{dequantize, TopK};
use hyperfabric::transport::TransportChoice;
use hyperfabric::{
    Compression, DataType, DataTypePolicy, Error, Fabric, Priority, SendOptions, Transform,
};
use std::time::Duration;

mod common;
use common::{start_pair, two_node_toml};

const RECV: Duration = Duration::from_secs(20);

fn config(extra_fabric: &str, tail: &str) -> FabricConfig {
    let fabric = format!(
        "profile = \"high_throughput\"\nmax_packet_size = 1048576\nsend_timeout_ms = 10000\n\
         connect_timeout_ms = 1000\n{extra_fabric}"
    );
    let text = format!(
        r#"{nodes}
[[links]]
between = ["a", "b"]
bandwidth_gbps = 1
latency_ns = 500
{tail}
"#,
        nodes = two_node_toml("policies", &fabric)
    );
    FabricConfig::from_toml_str(&text, "<test>").expect("valid config")
}

fn start_b(cfg: &FabricConfig) -> Fabric {
    Fabric::from_config(cfg.clone())
        .node("b")
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap()
}

fn pair_with(cfg: FabricConfig) -> (Fabric, Fabric) {
    start_pair(cfg, TransportChoice::Auto)
}

fn pair() -> (Fabric, Fabric) {
    pair_with(config("", ""))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Deterministic values in about [-1, 1] with a few large ones.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            if i % 97 == 0 {
                v * 50.0
            } else {
                v
            }
        })
        .collect()
}

#[test]
fn every_algorithm_round_trips_byte_identical() {
    let (a, b) = pair();
    let tensor = samples::float_tensor(3 << 20);
    let text = samples::text(700_001);
    let random = samples::random(1 << 20, 9);
    for alg in Algorithm::ALL {
        for data in [&tensor, &text, &random] {
            let r = a
                .send("b", data, SendOptions::new().compression(alg))
                .unwrap();
            let m = b.recv_timeout(RECV).unwrap();
            assert!(m.payload == **data, "{alg}: payload differs");
            assert_eq!(m.transform, Transform::None);
            assert_eq!(r.compression, alg);
            if alg != Algorithm::None && !std::ptr::eq(data, &random) {
                assert!(r.compression_ratio > 1.5, "{alg}: {}", r.compression_ratio);
            } else {
                assert!((r.compression_ratio - 1.0).abs() < 1e-9, "{alg}");
            }
        }
    }
    // The old switch still works.
    let r = a
        .send("b", &tensor, SendOptions::new().compression(true))
        .unwrap();
    assert_eq!(r.compression, Algorithm::Lz4);
    assert_eq!(b.recv_timeout(RECV).unwrap().payload, tensor);
}

#[test]
fn auto_skips_random_data_and_compresses_a_structured_tensor_on_a_slow_link() {
    let (a, b) = pair();
    let random = samples::random(1 << 20, 3);
    let r = a
        .send(
            "b",
            &random,
            SendOptions::new().compression(Compression::Auto),
        )
        .unwrap();
    assert_eq!(r.compression, Algorithm::None);
    assert_eq!(b.recv_timeout(RECV).unwrap().payload, random);
    let tensor = samples::float_tensor(4 << 20);
    let r = a
        .send(
            "b",
            &tensor,
            SendOptions::new().compression(Compression::Auto),
        )
        .unwrap();
    assert_ne!(r.compression, Algorithm::None);
    assert!(r.compression_ratio > 2.0, "ratio {}", r.compression_ratio);
    assert_eq!(b.recv_timeout(RECV).unwrap().payload, tensor);
}

#[test]
fn data_type_policy_supplies_priority_and_compression() {
    let cfg = config(
        "",
        "[data_types.activation]\npriority = \"low\"\ncompression = \"snappy\"\n",
    );
    let (a, b) = pair_with(cfg);
    a.configure_data_type(
        DataType::Gradient,
        DataTypePolicy::new()
            .priority(Priority::High)
            .compression(Compression::Fixed(Algorithm::Zstd)),
    )
    .unwrap();
    let data = samples::float_tensor(1 << 20);
    let r = a
        .send("b", &data, SendOptions::new().data_type(DataType::Gradient))
        .unwrap();
    assert_eq!(
        (r.priority, r.compression),
        (Priority::High, Algorithm::Zstd)
    );
    let m = b.recv_timeout(RECV).unwrap();
    assert_eq!(
        (m.priority, m.data_type),
        (Priority::High, DataType::Gradient)
    );
    assert_eq!(m.payload, data);
    // From the fabric file.
    let r = a
        .send(
            "b",
            &data,
            SendOptions::new().data_type(DataType::Activation),
        )
        .unwrap();
    assert_eq!(
        (r.priority, r.compression),
        (Priority::Low, Algorithm::Snappy)
    );
    assert_eq!(b.recv_timeout(RECV).unwrap().payload, data);
    // Explicit options win, even when they name the defaults.
    let opts = SendOptions::new()
        .data_type(DataType::Gradient)
        .priority(Priority::Normal)
        .compression(Compression::Off);
    let r = a.send("b", &data, opts).unwrap();
    assert_eq!(
        (r.priority, r.compression),
        (Priority::Normal, Algorithm::None)
    );
    assert_eq!(b.recv_timeout(RECV).unwrap().payload, data);
    // A bad policy is refused, naming the field.
    let err = a
        .configure_data_type(
            DataType::Gradient,
            DataTypePolicy::new()
                .transform(Transform::TopK)
                .topk_fraction(0.0),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("data_types.gradient.topk_fraction"),
        "{err}"
    );
}

#[test]
fn fabric_file_policies_are_checked() {
    for (tail, field) in [
        (
            "[data_types.gradient]\ncompression = \"gzip\"\n",
            "data_types.gradient.compression",
        ),
        (
            "[data_types.gradient]\ntransform = \"fp8\"\n",
            "data_types.gradient.transform",
        ),
        (
            "[data_types.gradient]\npriority = \"urgent\"\n",
            "data_types.gradient.priority",
        ),
        (
            "[data_types.gradient]\ntransform = \"topk\"\ntopk_fraction = 2.0\n",
            "data_types.gradient.topk_fraction",
        ),
        (
            "[data_types.gradient]\ntopk_fraction = 0.5\n",
            "data_types.gradient.topk_fraction",
        ),
        (
            "[data_types.grads]\npriority = \"high\"\n",
            "data_types.grads",
        ),
        ("[data_types.gradient]\ncolour = \"red\"\n", "data_types"),
    ] {
        let text = format!(
            "[fabric]\nname = \"p\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n{tail}"
        );
        let err = FabricConfig::from_toml_str(&text, "p.toml").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("p.toml: field `") && msg.contains(field),
            "{tail}: {msg}"
        );
    }
    let text = "[fabric]\nname = \"p\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n[data_types.parameter]\npriority = \"high\"\ncompression = \"auto\"\ntransform = \"cache\"\n";
    let cfg = FabricConfig::from_toml_str(text, "p.toml").unwrap();
    assert_eq!(
        cfg.data_types,
        vec![(
            DataType::Parameter,
            DataTypePolicy::new()
                .priority(Priority::High)
                .compression(Compression::Auto)
                .transform(Transform::Cache)
        )]
    );
}

#[test]
fn topk_and_quantisation_decode_within_their_bounds() {
    let (a, b) = pair();
    let grad = values(100_000, 1);
    a.configure_data_type(
        DataType::Gradient,
        DataTypePolicy::new()
            .transform(Transform::TopK)
            .topk_fraction(0.05),
    )
    .unwrap();
    let r = a
        .send_f32("b", &grad, SendOptions::new().data_type(DataType::Gradient))
        .unwrap();
    assert_eq!(r.transform, Transform::TopK);
    assert_eq!(r.bytes, 16 + 5000 * 8, "index + value per entry sent");
    let m = b.recv_timeout(RECV).unwrap();
    assert_eq!(m.transform, Transform::TopK);
    let dense = TopK::decode(&m.payload).unwrap();
    assert_eq!(dense.len(), grad.len());
    let k = dense.iter().filter(|v| **v != 0.0).count();
    assert_eq!(k, 5000);
    // Every entry sent is exact; every entry left out is no larger than the smallest sent.
    let smallest_sent = grad
        .iter()
        .zip(&dense)
        .filter(|(_, d)| **d != 0.0)
        .map(|(g, _)| g.abs())
        .fold(f32::INFINITY, f32::min);
    for (g, d) in grad.iter().zip(&dense) {
        if *d != 0.0 {
            assert_eq!(g, d);
        } else {
            assert!(g.abs() <= smallest_sent);
        }
    }

    let params = values(65_536, 2);
    let max = params.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (t, rel, abs) in [
        (Transform::Fp16, 1.0 / 1024.0, 1e-6),
        (Transform::Bf16, 1.0 / 128.0, 1e-6),
        (Transform::Int8, 0.0, max / 127.0),
    ] {
        a.configure_data_type(DataType::Parameter, DataTypePolicy::new().transform(t))
            .unwrap();
        let r = a
            .send_f32(
                "b",
                &params,
                SendOptions::new().data_type(DataType::Parameter),
            )
            .unwrap();
        assert_eq!(r.transform, t);
        let m = b.recv_timeout(RECV).unwrap();
        assert_eq!(m.transform, t);
        let back = dequantize(&m.payload).unwrap();
        assert_eq!(back.len(), params.len());
        for (v, q) in params.iter().zip(&back) {
            assert!((v - q).abs() <= v.abs() * rel + abs, "{t}: {v} -> {q}");
        }
    }
    // Without a transform the destination gets the f32 bytes.
    a.configure_data_type(DataType::Tensor, DataTypePolicy::new())
        .unwrap();
    a.send_f32("b", &params, SendOptions::new().data_type(DataType::Tensor))
        .unwrap();
    assert_eq!(f32s(&b.recv_timeout(RECV).unwrap().payload), params);
}

#[test]
fn parameter_cache_skips_what_the_destination_holds() {
    let cfg = config("", "[data_types.parameter]\ntransform = \"cache\"\n");
    let (mut a, b) = pair_with(cfg.clone());
    let block = samples::random(64 << 20, 5);
    let opts = || SendOptions::new().data_type(DataType::Parameter);
    let first = a.send("b", &block, opts()).unwrap();
    assert_eq!(first.transform, Transform::Cache);
    assert_eq!(first.bytes_saved, 0);
    assert!(first.bytes >= block.len() as u64);
    let m = b.recv_timeout(RECV).unwrap();
    assert!(m.payload == block, "first send differs");
    assert_eq!(m.transform, Transform::Cache);

    let second = a.send("b", &block, opts()).unwrap();
    assert!(
        (second.bytes as f64) < 0.01 * block.len() as f64,
        "second send moved {} bytes",
        second.bytes
    );
    assert_eq!(second.bytes_saved, block.len() as u64);
    assert!(
        b.recv_timeout(RECV).unwrap().payload == block,
        "second send differs"
    );

    // One chunk changes: only it moves.
    let mut changed = block.clone();
    changed[10 << 20] ^= 0xff;
    let third = a.send("b", &changed, opts()).unwrap();
    assert!(third.bytes < 2 * 256 * 1024 + 64 * 1024, "{}", third.bytes);
    assert!(
        b.recv_timeout(RECV).unwrap().payload == changed,
        "third send differs"
    );

    // The destination restarts (empty cache): the sender falls back to literal, once.
    drop(b);
    let b2 = start_b(&cfg);
    let mut node_b = cfg.node("b").cloned().unwrap();
    node_b.listen = Some(b2.local_addr());
    a.register_node(node_b).unwrap();
    let fourth = a.send("b", &block, opts()).unwrap();
    assert_eq!(fourth.bytes_saved, 0);
    assert!(
        b2.recv_timeout(RECV).unwrap().payload == block,
        "after restart"
    );
}

#[test]
fn constraints_name_the_best_routes_figures() {
    let tail = r#"
[[nodes]]
id = "r"
hardware = "cpu-cluster"
listen = "127.0.0.1:3"

[[links]]
between = ["a", "r"]
bandwidth_gbps = 100
latency_ns = 100

[[links]]
between = ["r", "b"]
bandwidth_gbps = 40
latency_ns = 150
"#;
    let cfg = config("", tail);
    let a = Fabric::from_config(cfg).node("a").start().unwrap();
    let err = a
        .send("b", b"x", SendOptions::new().latency_constraint_ns(200))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LatencyViolation {
                route_latency_ns: 250,
                limit_ns: 200
            }
        ),
        "{err}"
    );
    let err = a
        .send(
            "b",
            b"x",
            SendOptions::new().bandwidth_requirement_gbps(50.0),
        )
        .unwrap_err();
    match err {
        Error::BandwidthExceeded {
            route_bandwidth_gbps,
            required_gbps,
        } => assert_eq!((route_bandwidth_gbps, required_gbps), (40.0, 50.0)),
        e => panic!("{e}"),
    }
    assert!(err_text(&a, 50.0).contains("40"));
}

fn err_text(a: &Fabric, gbps: f64) -> String {
    a.send(
        "b",
        b"x",
        SendOptions::new().bandwidth_requirement_gbps(gbps),
    )
    .unwrap_err()
    .to_string()
}

/// `[compression]` is read by the data path: the same send of compressible text over the same
/// 1 Gbit/s link is compressed or not depending on the threshold, the algorithm set and the
/// bandwidth threshold.
#[test]
fn compression_knobs_change_the_auto_decision() {
    let text = samples::text(4 << 20);
    let auto = |section: &str| {
        let (a, b) = start_pair(config("", section), TransportChoice::Tcp);
        let r = a
            .send(
                "b",
                &text,
                SendOptions::new().compression(Compression::Auto),
            )
            .unwrap();
        assert_eq!(b.recv_timeout(RECV).unwrap().payload, text);
        let knob = a
            .effective_config()
            .get("compression.threshold_bytes")
            .cloned();
        (r.compression, knob)
    };
    // A loaded machine can preempt the sample's compression past the default 1 ms time
    // budget; the cases that expect compression give it room (the budget has its own test).
    const ROOM: &str = "max_compression_time_us = 100000\n";
    let (alg, knob) = auto(&format!("[compression]\n{ROOM}"));
    assert_ne!(
        alg,
        Algorithm::None,
        "the defaults compress text on 1 Gbit/s"
    );
    assert_eq!(knob.map(|k| k.value), Some(1024.into()));
    let (alg, knob) = auto("[compression]\nthreshold_bytes = 8388608\n");
    assert_eq!(alg, Algorithm::None, "4 MiB is under the threshold");
    let knob = knob.unwrap();
    assert_eq!(knob.value, serde_json::json!(8388608));
    assert_eq!(format!("{:?}", knob.source), "File");
    let (alg, _) = auto(&format!("[compression]\n{ROOM}algorithms = [\"snappy\"]\n"));
    assert_eq!(alg, Algorithm::Snappy);
    let (alg, _) = auto("[compression]\nthreshold_bandwidth_gbps = 0.5\n");
    assert_eq!(alg, Algorithm::None, "1 Gbit/s is not slower than 0.5");
    let (alg, _) = auto("[compression]\nmax_compression_time_us = 1\n");
    assert_eq!(
        alg,
        Algorithm::None,
        "nothing compresses the sample in 1 µs"
    );
}
