//! Two `hfabric serve` processes on loopback: transfers of every awkward size arrive
//! byte-identical, and the CLI reports errors clearly with the documented exit codes.

mod support;

use std::time::{Duration, Instant};
use support::*;

fn send_file(cfg: &std::path::Path, server: &Server, file: &std::path::Path) -> serde_json::Value {
    send_file_with(cfg, server, file, &[])
}

/// `hfabric send --json --file FILE` from node-a to the running node-b, with extra arguments.
fn send_file_with(
    cfg: &std::path::Path,
    server: &Server,
    file: &std::path::Path,
    extra: &[&str],
) -> serde_json::Value {
    let peer = server.peer_arg("node-b");
    let mut args = vec!["--json", "--to", "node-b", "--file", file.to_str().unwrap()];
    args.extend(extra);
    report_of(&hfabric_from("send", cfg, &peer, "node-a", &args))
}

#[test]
fn files_of_awkward_sizes_arrive_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let store = dir.path().join("store");
    let server = Server::start(&cfg, "node-b", Some(&store));
    for (i, len) in [0u64, 1, (1 << 20) + 7].into_iter().enumerate() {
        let name = format!("payload-{len}.bin");
        let src = dir.path().join(&name);
        random_file(&src, len, i as u64 + 1);
        let report = send_file(&cfg, &server, &src);
        assert_eq!(report["bytes"], len);
        assert_eq!(report["path"], serde_json::json!(["node-a", "node-b"]));
        assert!(
            same_contents(&src, &store.join(&name)),
            "{name} differs at the destination"
        );
    }
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_256_mib_file_is_streamed_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let store = dir.path().join("store");
    let server = Server::start(&cfg, "node-b", Some(&store));
    let idle_rss = server.peak_rss_bytes();
    let src = dir.path().join("big.bin");
    random_file(&src, 256 << 20, 99);
    let report = send_file(&cfg, &server, &src);
    assert_eq!(report["bytes"], 256u64 << 20);
    assert!(
        same_contents(&src, &store.join("big.bin")),
        "256 MiB file differs"
    );
    let sender_rss = report["peak_rss_bytes"].as_u64().expect("sender rss");
    let receiver_rss = server.peak_rss_bytes();
    eprintln!(
        "idle receiver {idle_rss} B, receiver peak {receiver_rss} B, sender peak {sender_rss} B"
    );
    assert!(idle_rss < 20 << 20, "idle node uses {idle_rss} bytes");
    assert!(
        receiver_rss < 128 << 20,
        "receiver peaked at {receiver_rss} bytes"
    );
    assert!(
        sender_rss < 128 << 20,
        "sender peaked at {sender_rss} bytes"
    );
}

#[test]
fn generated_bytes_and_compression_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "low_latency");
    let server = Server::start(&cfg, "node-b", None);
    let peer = server.peer_arg("node-b");
    let out = hfabric_from(
        "send",
        &cfg,
        &peer,
        "node-a",
        &[
            "--json",
            "--to",
            "node-b",
            "--size",
            "300000",
            "--compression",
            "--data-type",
            "gradient",
            "--priority",
            "high",
        ],
    );
    let v: serde_json::Value = report_of(&out);
    assert_eq!(v["bytes"], 300000);
    assert_eq!(v["data_type"], "gradient");
    assert_eq!(v["priority"], "high");
    // Random bytes do not compress: every chunk goes raw, the ratio stays 1.
    assert_eq!(v["compression_ratio"], 1.0);
}

#[test]
fn unknown_destination_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let out = hfabric(&[
        "send",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        "node-a",
        "--to",
        "node-z",
        "--size",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node `node-z` is not part of this fabric"),
        "{err}"
    );
}

#[test]
fn destination_not_running_fails_clearly_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let peer = format!("node-b=127.0.0.1:{port}");
    let start = Instant::now();
    let out = hfabric_from(
        "send",
        &cfg,
        &peer,
        "node-a",
        &["--to", "node-b", "--size", "10", "--timeout", "2"],
    );
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node `node-b` is unreachable") && err.contains("refused"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let out = hfabric_from("ping", &cfg, &peer, "node-a", &["node-b", "--count", "2"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ping_reports_consistent_figures() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "low_latency");
    let server = Server::start(&cfg, "node-b", None);
    let peer = server.peer_arg("node-b");
    let out = hfabric_from(
        "ping",
        &cfg,
        &peer,
        "node-a",
        &["--json", "node-b", "--count", "200", "--size", "64"],
    );
    let v: serde_json::Value = report_of(&out);
    assert_eq!(
        (
            v["sent"].as_u64(),
            v["received"].as_u64(),
            v["lost"].as_u64()
        ),
        (Some(200), Some(200), Some(0))
    );
    let (min, med, p99, max) = (
        v["min_ns"].as_u64().unwrap(),
        v["median_ns"].as_u64().unwrap(),
        v["p99_ns"].as_u64().unwrap(),
        v["max_ns"].as_u64().unwrap(),
    );
    assert!(0 < min && min <= med && med <= p99 && p99 <= max, "{v}");
}

#[test]
fn bad_config_names_file_field_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[fabric]\nname = \"x\"\n\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\nbandwidth_gbps = -1\n").unwrap();
    let out = hfabric(&["nodes", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("nodes[0].bandwidth_gbps"),
        "{err}"
    );
}

#[test]
fn nodes_lists_the_example_lab() {
    let lab = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/lab.toml");
    let out = hfabric(&["nodes", "--config", lab]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("nvidia-h100")
            && text.contains("quantum-qpu")
            && text.contains("Zones")
            && text.contains("Links"),
        "{text}"
    );
    let out = hfabric(&["nodes", "--json", "--config", lab]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["nodes"].as_array().unwrap().len() >= 5);
}

#[test]
fn both_transports_carry_files_byte_identical_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    for transport in ["tcp", "shm"] {
        let store = dir.path().join(format!("store-{transport}"));
        let server = Server::start_with(
            &cfg,
            "node-b",
            Some(&store),
            &["--transport".into(), transport.into()],
        );
        let name = format!("via-{transport}.bin");
        let src = dir.path().join(&name);
        random_file(&src, (3 << 20) + 11, 7);
        let r = send_file_with(&cfg, &server, &src, &["--transport", transport]);
        assert_eq!(r["hops"][0]["transport"], transport, "{r}");
        assert!(
            same_contents(&src, &store.join(&name)),
            "{transport}: file differs"
        );
    }
    // A node that refuses shared memory: `--transport shm` on the sender fails clearly.
    let server = Server::start_with(&cfg, "node-b", None, &["--transport".into(), "tcp".into()]);
    let peer = server.peer_arg("node-b");
    let out = hfabric(&[
        "send",
        "--transport",
        "shm",
        "--config",
        cfg.to_str().unwrap(),
        "--peer",
        &peer,
        "--from",
        "node-a",
        "--to",
        "node-b",
        "--size",
        "1000",
        "--timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no shared-memory link"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
