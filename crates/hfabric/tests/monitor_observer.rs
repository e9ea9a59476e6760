//! `hfabric monitor` joining a running fabric as an observer: no node entry for it in the
//! file, no restart of the served nodes, the fabric secret proven like a member proves it.
//! An observer's connection is read-only (`ObserverReadOnly`), and a wrong secret is refused.

mod support;

use hyperfabric::wire::{self, flags, FrameKind, Header, Hello, RefusalCode};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;
use support::raw::read_frame;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

fn keygen(path: &Path) {
    let out = hfabric(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `monitor --once --json` as an observer (the file has no `monitor` entry).
fn observe(cfg: &Path, a: &Server, b: &Server) -> serde_json::Value {
    let out = observe_as(cfg, "monitor", a, b);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {err}"))
}

/// `monitor --once --json --from ID` over TCP, its exit status unchecked.
fn observe_as(cfg: &Path, id: &str, a: &Server, b: &Server) -> std::process::Output {
    hfabric(&[
        "monitor",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        id,
        "--transport",
        "tcp",
        "--peer",
        &a.peer_arg("node-a"),
        "--peer",
        &b.peer_arg("node-b"),
        "--once",
        "--json",
        "--interval",
        "200ms",
    ])
}

/// Every node of the file reachable, with its own metrics.
fn assert_all_watched(v: &serde_json::Value) {
    let nodes = v["nodes"].as_array().expect("nodes");
    let ids: Vec<_> = nodes
        .iter()
        .map(|n| n["id"].as_str().unwrap_or(""))
        .collect();
    // Every node of the file: none stood in for.
    assert_eq!(ids, ["node-a", "node-b"], "{v}");
    for n in nodes {
        assert_eq!(n["reachable"], true, "{n}");
        assert_eq!(n["metrics"]["node"], n["id"], "its own metrics: {n}");
        assert!(n["metrics"]["totals"].is_object(), "{n}");
    }
}

/// No node answered: none reachable, no figures.
fn assert_none_watched(v: &serde_json::Value) {
    for n in v["nodes"].as_array().expect("nodes") {
        assert_eq!(n["reachable"], false, "{n}");
        assert!(
            n["metrics"].is_null(),
            "no figures without credentials: {n}"
        );
    }
}

#[test]
fn monitor_joins_a_running_fabric_as_an_observer() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("fabric.key"));
    let cfg = fabric_with(dir.path(), "secure", "secret_file = \"fabric.key\"");
    let a = Server::start(&cfg, "node-a", None);
    let b = Server::start(&cfg, "node-b", None);
    let v = observe(&cfg, &a, &b);
    assert_eq!(v["from"], "monitor");
    assert_all_watched(&v);
    assert!(b.wait_log("an observer joined", WAIT), "{}", b.log_text());
}

/// Per-node key pairs for `ids` in `dir` (through `hfabric keygen --node`).
fn keygen_nodes(dir: &Path, ids: &[&str]) {
    let mut args = vec!["keygen", "--dir", dir.to_str().unwrap()];
    for id in ids {
        args.extend(["--node", id]);
    }
    let out = hfabric(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn with_node_keys_an_observer_proves_a_key_of_observer_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen_nodes(&d.join("keys"), &["node-a", "node-b"]);
    keygen_nodes(&d.join("observers"), &["monitor"]);
    keygen_nodes(&d.join("strangers"), &["watcher"]);
    let cfg = fabric_with(
        d,
        "keys",
        "node_keys = \"keys\"\nobserver_keys = \"observers\"",
    );
    let a = Server::start(&cfg, "node-a", None);
    let b = Server::start(&cfg, "node-b", None);
    assert_all_watched(&observe(&cfg, &a, &b));
    assert!(b.wait_log("an observer joined", WAIT), "{}", b.log_text());

    // A key the nodes do not list: refused, and the node says why.
    let stranger = fabric_with(
        d,
        "stranger",
        "node_keys = \"keys\"\nobserver_keys = \"strangers\"",
    );
    let out = observe_as(&stranger, "watcher", &a, &b);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_none_watched(&serde_json::from_slice(&out.stdout).expect("JSON"));
    assert!(
        b.wait_log("observer `watcher` has no public key here", WAIT),
        "{}",
        b.log_text()
    );

    // A listed id with another key (monitor.pub listed, a different monitor.key): refused.
    keygen_nodes(&d.join("forged"), &["monitor"]);
    let forged = fabric_with(
        d,
        "forged",
        "node_keys = \"keys\"\nobserver_keys = \"forged\"",
    );
    let out = observe_as(&forged, "monitor", &a, &b);
    assert_none_watched(&serde_json::from_slice(&out.stdout).expect("JSON"));
    assert!(
        b.wait_log("did not sign with `monitor`'s key", WAIT),
        "{}",
        b.log_text()
    );

    // No observer_keys at all: the monitor says what to set before it dials anyone.
    let bare = fabric_with(d, "bare", "node_keys = \"keys\"");
    let out = observe_as(&bare, "monitor", &a, &b);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("observer_keys"), "{err}");
}

#[test]
fn under_tls_an_observer_needs_a_certificate_for_its_id() {
    use support::pki::{pki_leaves, tls_lines};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("fabric.key"));
    pki_leaves(
        d,
        "ca",
        &[("", &["node-a", "node-b"]), ("monitor", &["monitor"])],
    );
    let cfg = fabric_with(d, "tls", &tls_lines("ca", "ca"));
    let a = Server::start(&cfg, "node-a", None);
    let b = Server::start(&cfg, "node-b", None);
    // Its own certificate (same CA, naming `monitor`): watched over TLS.
    let mine = fabric_with(d, "mine", &tls_lines("ca-monitor", "ca"));
    assert_all_watched(&observe(&mine, &a, &b));
    assert!(b.wait_log("an observer joined", WAIT), "{}", b.log_text());
    // The members' certificate does not name `monitor`: refused.
    assert_none_watched(&observe(&cfg, &a, &b));
    assert!(
        b.wait_log("its certificate is not for node `monitor`", WAIT),
        "{}",
        b.log_text()
    );
    // No TLS at all (the secret only): refused.
    let plain = fabric_with(d, "plain", "secret_file = \"fabric.key\"");
    assert_none_watched(&observe(&plain, &a, &b));
}

#[test]
fn a_wrong_secret_keeps_the_observer_out() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("fabric.key"));
    keygen(&dir.path().join("other.key"));
    let cfg = fabric_with(dir.path(), "secure", "secret_file = \"fabric.key\"");
    let wrong = fabric_with(dir.path(), "wrong", "secret_file = \"other.key\"");
    let a = Server::start(&cfg, "node-a", None);
    let b = Server::start(&cfg, "node-b", None);
    let v = observe(&wrong, &a, &b);
    assert_none_watched(&v);
    for n in v["nodes"].as_array().expect("nodes") {
        assert!(
            n["error"].as_str().is_some_and(|e| e.contains("secret")),
            "{n}"
        );
    }
    assert!(b.wait_log("refusing connection", WAIT), "{}", b.log_text());
}

/// A plain (no secret) observer hello from `id`, by hand.
fn observer_hello(id: &str) -> Vec<u8> {
    let mut h = Header::new(FrameKind::Hello);
    (h.src, h.dst, h.flags) = (
        wire::node_key(id),
        wire::node_key("node-b"),
        flags::OBSERVER,
    );
    let hello = Hello {
        fabric: "test".into(),
        node: id.into(),
        nonce: 7,
        auth: None,
        identity: None,
    };
    wire::encode_frame(&h, &wire::encode_hello(&hello)).expect("a hello fits")
}

fn frame(kind: FrameKind, id: u64) -> Vec<u8> {
    frame_from("watcher", kind, id)
}

fn frame_from(from: &str, kind: FrameKind, id: u64) -> Vec<u8> {
    let mut h = Header::new(kind);
    (h.src, h.dst, h.transfer_id) = (wire::node_key(from), wire::node_key("node-b"), id);
    h.aux = 4;
    let body: &[u8] = if kind == FrameKind::Data {
        b"data"
    } else {
        b""
    };
    wire::encode_frame(&h, body).expect("a frame")
}

#[test]
fn an_observer_may_ping_and_read_metrics_but_not_send() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let b = Server::start(&cfg, "node-b", None);
    let mut s = TcpStream::connect(b.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&observer_hello("watcher")).unwrap();
    let (w, body) = read_frame(&mut s).expect("an answer");
    assert_eq!(
        w.kind,
        FrameKind::Welcome,
        "{}",
        String::from_utf8_lossy(&body)
    );
    s.write_all(&frame(FrameKind::Ping, 1)).unwrap();
    assert_eq!(read_frame(&mut s).expect("pong").0.kind, FrameKind::Pong);
    s.write_all(&frame(FrameKind::MetricsRequest, 2)).unwrap();
    let (m, body) = read_frame(&mut s).expect("metrics");
    assert_eq!(m.kind, FrameKind::MetricsReply);
    let metrics: serde_json::Value = serde_json::from_slice(&body).expect("metrics JSON");
    s.write_all(&frame(FrameKind::Data, 3)).unwrap();
    let (n, why) = read_frame(&mut s).expect("a refusal");
    assert_eq!(n.kind, FrameKind::Nack);
    assert!(n.has(flags::FATAL));
    assert_eq!(
        RefusalCode::from_wire_code(n.aux),
        RefusalCode::ObserverReadOnly
    );
    assert!(String::from_utf8_lossy(&why).contains("observer"));
    // Counted: the next metrics show the refusal (answers are cached for 100 ms).
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(&frame(FrameKind::MetricsRequest, 4)).unwrap();
    let (_, body) = read_frame(&mut s).expect("metrics again");
    let after: serde_json::Value = serde_json::from_slice(&body).expect("metrics JSON");
    assert_eq!(after["totals"]["observer_refusals"], 1, "{after}");
    assert_eq!(metrics["totals"]["observer_refusals"], 0, "{metrics}");
}

#[test]
fn an_observer_cannot_use_a_members_id() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let b = Server::start(&cfg, "node-b", None);
    let mut s = TcpStream::connect(b.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&observer_hello("node-a")).unwrap();
    let (r, why) = read_frame(&mut s).expect("an answer");
    assert_eq!(r.kind, FrameKind::Reject);
    assert!(String::from_utf8_lossy(&why).contains("id of its own"));
}

#[test]
fn a_node_serves_a_bounded_number_of_observers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let b = Server::start(&cfg, "node-b", None);
    let join = |id: &str| {
        let mut s = TcpStream::connect(b.addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(&observer_hello(id)).unwrap();
        let answer = read_frame(&mut s).expect("an answer");
        (s, answer)
    };
    // MAX_OBSERVERS (16) are taken in; the next is refused with the reason.
    let held: Vec<_> = (0..16)
        .map(|i| {
            let id = format!("watcher-{i}");
            let (mut s, (h, why)) = join(&id);
            assert_eq!(
                h.kind,
                FrameKind::Welcome,
                "{}",
                String::from_utf8_lossy(&why)
            );
            // A pong: the connection is in the table (admitted before its read loop).
            s.write_all(&frame_from(&id, FrameKind::Ping, 1)).unwrap();
            assert_eq!(read_frame(&mut s).expect("pong").0.kind, FrameKind::Pong);
            s
        })
        .collect();
    let (_, (h, why)) = join("watcher-16");
    assert_eq!(h.kind, FrameKind::Reject);
    assert!(
        String::from_utf8_lossy(&why).contains("16 observers"),
        "{why:?}"
    );
    drop(held);
}
