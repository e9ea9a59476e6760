//! `hfabric monitor` against a known fabric of real processes: two `hfabric serve` nodes, a
//! 3 MiB transfer into one of them, then the monitor's off-screen dashboard (ratatui's test
//! backend, `--once`) must show their ids and figures, and `--once --json` the same as data.

mod support;

use std::path::{Path, PathBuf};
use support::*;

const LEN: u64 = 3 << 20;

fn fabric(dir: &Path) -> PathBuf {
    let mut text = String::from(
        "[fabric]\nname = \"watched\"\nsend_timeout_ms = 5000\nconnect_timeout_ms = 1000\n",
    );
    for (i, id) in ["node-a", "node-b", "node-c", "monitor"].iter().enumerate() {
        text += &format!(
            "\n[[nodes]]\nid = \"{id}\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:{}\"\n",
            i + 1
        );
    }
    for (a, b) in [
        ("node-a", "node-b"),
        ("monitor", "node-b"),
        ("monitor", "node-c"),
    ] {
        text += &format!(
            "\n[[links]]\nbetween = [\"{a}\", \"{b}\"]\nbandwidth_gbps = 10\nlatency_ns = 1000\n"
        );
    }
    let path = dir.join("watched.toml");
    std::fs::write(&path, text).expect("write fabric file");
    path
}

/// Two served nodes, one transfer node-a → node-b; returns the servers and `--peer` args.
fn known_fabric(cfg: &Path) -> (Server, Server, Vec<String>) {
    let b = Server::start(cfg, "node-b", None);
    let c = Server::start(cfg, "node-c", None);
    let peers = vec![
        "--peer".to_owned(),
        b.peer_arg("node-b"),
        "--peer".to_owned(),
        c.peer_arg("node-c"),
    ];
    let size = LEN.to_string();
    let mut send = vec![
        "send",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        "node-a",
    ];
    send.extend(["--to", "node-b", "--size", &size, "--peer", &peers[1]]);
    let out = hfabric(&send);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (b, c, peers)
}

fn monitor(cfg: &Path, peers: &[String], extra: &[&str]) -> String {
    let mut args = vec!["monitor", "--config", cfg.to_str().unwrap()];
    args.extend(peers.iter().map(String::as_str));
    args.extend(["--nodes", "node-b,node-c", "--once", "--interval", "200ms"]);
    args.extend(extra);
    let out = hfabric(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn the_dashboard_shows_a_known_fabric() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric(dir.path());
    let (_b, _c, peers) = known_fabric(&cfg);
    let export = dir.path().join("series.json");
    let export_s = export.to_str().unwrap();
    let screen = monitor(
        &cfg,
        &peers,
        &["--samples", "3", "--screen", "140x30", "--export", export_s],
    );
    assert!(screen.contains("fabric watched — from monitor"), "{screen}");
    assert!(screen.contains("round 3"), "{screen}");
    let row = |id: &str| {
        screen
            .lines()
            .find(|l| l.contains(&format!("│{id} ")) || l.contains(&format!(" {id} ")))
            .unwrap_or_else(|| panic!("no row for {id}:\n{screen}"))
            .to_owned()
    };
    let b = row("node-b");
    // node-b received the 3 MiB transfer (data frame headers add under 0.01 MiB).
    assert!(b.contains(" up ") && b.contains("3.00 MiB"), "{b}");
    assert!(b.contains("µs") || b.contains("ms"), "latency figures: {b}");
    let c = row("node-c");
    assert!(c.contains(" up ") && c.contains("0 B"), "{c}");
    // Links as node-b and node-c see them, with sparklines.
    assert!(screen.contains("node-b↔node-a"), "{screen}");
    assert!(screen.contains("node-c↔monitor"), "{screen}");
    assert!(screen.contains("Anomalies"), "{screen}");

    // The export holds every round of every node.
    let series: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&export).expect("export written")).expect("json");
    assert_eq!(series["rounds"], 3);
    for n in series["nodes"].as_array().expect("nodes") {
        assert_eq!(n["series"].as_array().map(Vec::len), Some(3), "{n}");
    }
    assert_eq!(
        series["links"]["node-b↔monitor"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn once_json_is_a_snapshot_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric(dir.path());
    let (_b, _c, peers) = known_fabric(&cfg);
    let out = monitor(&cfg, &peers, &["--json", "--samples", "2"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v["fabric"], "watched");
    assert_eq!(v["from"], "monitor");
    assert_eq!(v["rounds"], 2);
    let nodes = v["nodes"].as_array().expect("nodes");
    let ids: Vec<_> = nodes
        .iter()
        .map(|n| n["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["node-b", "node-c"]);
    let b = &nodes[0];
    assert_eq!(b["reachable"], true);
    assert_eq!(b["metrics"]["node"], "node-b");
    assert_eq!(b["metrics"]["totals"]["transfers_received"], 1);
    let received = b["metrics"]["totals"]["bytes_received"]
        .as_u64()
        .expect("bytes");
    assert!((LEN..LEN + LEN / 100).contains(&received), "{received}");
    // The monitor's pings came back (5 per round, none lost on loopback) and were timed.
    assert_eq!(b["now"]["loss_percent"], 0.0);
    assert!(
        b["now"]["latency_p50_ns"].as_u64().is_some_and(|ns| ns > 0),
        "{b}"
    );
    // node-b counted the monitor's pings on its link to the monitor: 2 rounds x 5.
    let link = b["metrics"]["links"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["peer"] == "monitor"))
        .expect("link to the monitor");
    assert!(
        link["frames_received"].as_u64().is_some_and(|f| f >= 10),
        "{link}"
    );
    assert!(b["metrics"]["process"]["resident_memory_bytes"]
        .as_u64()
        .is_some_and(|r| r > 0));
    assert!(v["anomalies"].is_array());
}
