//! The public API with two nodes in one process, over real loopback TCP.

use hyperfabric::config::FabricConfig;
use hyperfabric::transport::TransportChoice;
use hyperfabric::{DataType, Error, Fabric, PingOptions, Priority, SendOptions};
use std::time::Duration;

mod common;
use common::{start_pair, two_node_toml};

fn config(extra: &str) -> FabricConfig {
    let timeout = if extra.contains("send_timeout_ms") {
        ""
    } else {
        "send_timeout_ms = 3000"
    };
    let fabric = format!(
        "profile = \"high_throughput\"\nmax_packet_size = 65536\n{timeout}\n\
         connect_timeout_ms = 1000\n{extra}"
    );
    let text = format!(
        r#"{nodes}
[[nodes]]
id = "c"
hardware = "quantum-qpu"
listen = "127.0.0.1:2"

[[links]]
between = ["a", "b"]
bandwidth_gbps = 400
latency_ns = 500
"#,
        nodes = two_node_toml("api", &fabric)
    );
    FabricConfig::from_toml_str(&text, "<test>").expect("valid config")
}

/// Starts `b` (in-memory receiver) on a free port, then `a` knowing b's address.
fn pair(extra: &str) -> (Fabric, Fabric) {
    start_pair(config(extra), TransportChoice::Auto)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

#[test]
fn send_and_recv_in_memory_with_metadata() {
    let (a, b) = pair("");
    for (i, len) in [0usize, 1, 65535, 65536, 65537, 3 * 65536 + 11, 5 << 20]
        .into_iter()
        .enumerate()
    {
        let data = pattern(len, i as u8);
        let opts = SendOptions::new()
            .data_type(DataType::Tensor)
            .priority(Priority::High)
            .name(format!("t{i}"));
        let report = a.send("b", &data, opts).unwrap();
        assert_eq!(report.bytes, len as u64);
        assert_eq!(report.path, ["a", "b"]);
        let msg = b.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            (msg.source.as_str(), msg.data_type, msg.priority),
            ("a", DataType::Tensor, Priority::High)
        );
        assert_eq!(msg.name.as_deref(), Some(format!("t{i}").as_str()));
        assert!(msg.payload == data, "payload of {len} bytes differs");
        assert_eq!(msg.transfer_id, report.transfer_id);
    }
    assert!(matches!(
        b.recv_timeout(Duration::from_millis(50)),
        Err(Error::Timeout { .. })
    ));
}

#[test]
fn many_sends_in_flight_complete_in_any_order() {
    let (a, b) = pair("");
    let payloads: Vec<Vec<u8>> = (0..16)
        .map(|i| pattern(100_000 + i * 1000, i as u8))
        .collect();
    let pending: Vec<_> = payloads
        .iter()
        .map(|p| a.start_send("b", p, SendOptions::new()).unwrap())
        .collect();
    for p in pending.into_iter().rev() {
        p.wait().unwrap();
    }
    let mut got: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            b.recv_timeout(Duration::from_secs(5))
                .unwrap()
                .payload
                .into_vec()
        })
        .collect();
    got.sort_by_key(|p| p.len());
    assert!(got == payloads);
    assert_eq!(a.stats().transfers_sent, 16);
    assert_eq!(b.stats().transfers_received, 16);
}

#[test]
fn compression_shrinks_structured_data_and_round_trips() {
    let (a, b) = pair("");
    let floats: Vec<u8> = (0..262_144u32)
        .flat_map(|i| ((i % 1000) as f32 * 0.5).to_le_bytes())
        .collect();
    let report = a
        .send("b", &floats, SendOptions::new().compression(true))
        .unwrap();
    assert!(
        report.compression_ratio > 2.0,
        "ratio {}",
        report.compression_ratio
    );
    assert!(b.recv_timeout(Duration::from_secs(5)).unwrap().payload == floats);
}

#[test]
fn ping_measures_round_trips() {
    let (a, _b) = pair("");
    let s = a
        .ping("b", PingOptions::new().count(100).size(256).warmup(10))
        .unwrap();
    assert_eq!((s.sent, s.received, s.lost), (100, 100, 0));
    assert!(
        s.min_ns > 0 && s.min_ns <= s.median_ns && s.median_ns <= s.p99_ns && s.p99_ns <= s.max_ns
    );
    assert!(matches!(
        a.ping("b", PingOptions::new().count(0)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        a.ping("b", PingOptions::new().size(64 << 20)),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn unknown_nodes_and_violated_constraints_are_typed_errors() {
    let (a, _b) = pair("");
    assert!(
        matches!(a.send("zz", b"x", SendOptions::new()), Err(Error::NodeNotFound { node }) if node == "zz")
    );
    let err = a
        .send("b", b"x", SendOptions::new().latency_constraint_ns(100))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LatencyViolation {
                route_latency_ns: 500,
                limit_ns: 100
            }
        ),
        "{err}"
    );
    a.send("b", b"x", SendOptions::new().latency_constraint_ns(500))
        .unwrap();
    // `c` is in the file but not running: a clear error within the connect budget.
    let started = std::time::Instant::now();
    let err = a.send("c", b"x", SendOptions::new()).unwrap_err();
    assert!(
        matches!(err, Error::Unreachable { ref node, .. } if node == "c"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn nodes_can_join_and_leave_at_run_time() {
    let (mut a, b) = pair("");
    let mut newcomer = config("").nodes[2].clone();
    newcomer.signature.node_id = "d".into();
    newcomer.listen = Some("127.0.0.1:0".parse().unwrap());
    assert!(matches!(
        a.send("d", b"x", SendOptions::new()),
        Err(Error::NodeNotFound { .. })
    ));
    // d runs a fabric file that does not list a.
    let mut cfg = config("");
    cfg.nodes.retain(|n| n.signature.node_id != "a");
    cfg.links.clear();
    cfg.nodes.push(newcomer.clone());
    let d = Fabric::from_config(cfg).node("d").start().unwrap();
    newcomer.listen = Some(d.local_addr());
    a.register_node(newcomer).unwrap();
    let err = a.send("d", b"hi", SendOptions::new()).unwrap_err();
    assert!(err.to_string().contains("unknown node `a`"), "{err}");
    a.unregister_node("d").unwrap();
    assert!(matches!(
        a.send("d", b"x", SendOptions::new()),
        Err(Error::NodeNotFound { .. })
    ));
    a.unregister_node("b").unwrap();
    assert!(matches!(
        a.send("b", b"x", SendOptions::new()),
        Err(Error::NodeNotFound { .. })
    ));
    drop(b);
}

#[test]
fn oversize_transfers_are_refused_by_the_destination() {
    let (a, b) = pair("max_transfer_bytes = 100000");
    let err = a
        .send("b", &vec![0u8; 100_001], SendOptions::new())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Rejected { reason } if reason.contains("exceeds this node's limit")),
        "{err}"
    );
    a.send("b", &vec![0u8; 100_000], SendOptions::new())
        .unwrap();
    assert_eq!(
        b.recv_timeout(Duration::from_secs(5))
            .unwrap()
            .payload
            .len(),
        100_000
    );
}

#[test]
fn a_destination_that_stops_mid_transfer_fails_the_send_with_an_error() {
    let (a, b) = pair("send_timeout_ms = 1500");
    a.send("b", b"warm", SendOptions::new()).unwrap();
    let big = vec![7u8; 64 << 20];
    let pending = a.start_send("b", &big, SendOptions::new()).unwrap();
    b.shutdown();
    let err = pending.wait().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unreachable { .. } | Error::Timeout { .. } | Error::Rejected { .. }
        ),
        "{err}"
    );
}

#[test]
fn shutdown_is_graceful_and_idempotent() {
    let (a, b) = pair("");
    a.send("b", b"bye", SendOptions::new()).unwrap();
    a.shutdown();
    assert_eq!(
        b.recv_timeout(Duration::from_secs(5)).unwrap().payload,
        b"bye"
    );
    b.shutdown();
}
