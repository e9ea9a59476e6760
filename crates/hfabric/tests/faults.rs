//! Fault injection between real processes: frames dropped, corrupted, delayed and
//! connections cut on the write side of every node, and still every transfer arrives
//! byte-identical exactly once, or fails with a clear error and no file under its name.
//! Each test also checks the nodes' counters, so none can pass with no fault injected.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

/// Small frames (many of them per transfer), a small window and a short retransmission
/// timeout, so that 1% loss costs little time.
const TUNING: &str = "max_packet_size = 4096\nwindow_bytes = 1048576\nretransmit_timeout_ms = 50\nmax_retransmits = 100\nsend_timeout_ms = 30000\nconnect_timeout_ms = 2000\nhandshake_timeout_ms = 2000\n";

/// The figures, on every node and in both directions, plus a little delay. The seed
/// makes every process draw the same faults by frame index: with 1140, frame 18 of each
/// process is dropped and frames 8, 32 and 95 are corrupted, so no run passes without
/// corruption (the 0.1% rate alone could leave a short run untouched).
const LOSSY: &str = "\n[[faults]]\ndrop = 0.01\ncorrupt = 0.001\ndelay_us = 20\nseed = 1140\n";

/// A two-node fabric (node-a sends, node-b serves) with `faults` appended.
fn two_nodes(dir: &Path, faults: &str) -> PathBuf {
    let text = format!(
        "[fabric]\nname = \"faults\"\n{TUNING}\n[[nodes]]\nid = \"node-a\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:0\"\n\n[[nodes]]\nid = \"node-b\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:1\"\n\n[[links]]\nbetween = [\"node-a\", \"node-b\"]\nbandwidth_gbps = 100\nlatency_ns = 1000\n{faults}"
    );
    let path = dir.join("faults.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The chain src - relay-1 - relay-2 - dst with the tuning above and `faults` appended.
fn chain(dir: &Path, faults: &str) -> PathBuf {
    let path = chain_file(dir);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "name = \"chain\"\n",
        &format!("name = \"chain\"\n{TUNING}"),
        1,
    );
    let text = text.replace("send_timeout_ms = 10000\nconnect_timeout_ms = 1000\n", "");
    std::fs::write(&path, text + faults).unwrap();
    path
}

/// `hfabric send --json --file`; the report, or the exit code and stderr of a failure.
fn send(
    cfg: &Path,
    from: &str,
    to: &str,
    peers: &[String],
    file: &Path,
    transport: &str,
) -> Result<Value, (i32, String)> {
    let mut args = vec![
        "send",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        from,
        "--to",
        to,
        "--transport",
        transport,
    ];
    args.extend(["--file", file.to_str().unwrap()]);
    args.extend(peers.iter().map(String::as_str));
    let out = hfabric(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err((out.status.code().unwrap_or(-1), stderr));
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("report: {e}\n{stderr}")))
}

/// Sizes from 1 B to a few MiB, spread over the orders of magnitude (seeded).
fn sizes(n: usize, max: u64, seed: u64) -> Vec<u64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let exp = (i as f64 / (n - 1).max(1) as f64) * (max as f64).log2();
            (2f64.powf(exp) as u64 + x % 4096).clamp(1, max)
        })
        .collect()
}

/// A stats file of `hfabric serve --stats-file`, once it exists.
fn stats(path: &Path) -> Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            return v;
        }
        assert!(Instant::now() < until, "no stats in {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stats file as rewritten after this call (what happened before it is in there).
fn fresh_stats(path: &Path) -> Value {
    std::fs::remove_file(path).ok();
    stats(path)
}

/// Waits until the stats file says `field` >= `at_least`, and returns it.
fn stats_when(path: &Path, field: &str, at_least: u64) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let s = stats(path);
        if s[field].as_u64().unwrap_or(0) >= at_least || Instant::now() > until {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn n(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

/// Sends files of `sizes` and checks every one arrived byte-identical under its name;
/// returns the sum of the senders' counters `faults_dropped`, `faults_corrupted`, `faults_delayed`.
fn send_and_verify(
    cfg: &Path,
    route: (&str, &str),
    peers: &[String],
    store: &Path,
    sizes: &[u64],
    transport: &str,
) -> [u64; 3] {
    let mut sum = [0u64; 3];
    for (i, &len) in sizes.iter().enumerate() {
        let name = format!("{transport}-{i}-{len}.bin");
        let src = store.parent().unwrap().join(&name);
        random_file(&src, len, 100 + i as u64);
        let r = send(cfg, route.0, route.1, peers, &src, transport)
            .unwrap_or_else(|(code, err)| panic!("transfer {i} of {len} B failed ({code}): {err}"));
        assert_eq!(r["bytes"], len);
        assert!(
            same_contents(&src, &store.join(&name)),
            "{name} differs at the destination"
        );
        let st = &r["node_stats"];
        for (k, f) in ["faults_dropped", "faults_corrupted", "faults_delayed"]
            .iter()
            .enumerate()
        {
            sum[k] += n(st, f);
        }
    }
    // Exactly once: one file per transfer, nothing else, nothing half-written.
    let names = stored_files(store);
    assert_eq!(names.len(), sizes.len(), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with(transport)), "{names:?}");
    sum
}

#[test]
fn lossy_links_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = two_nodes(dir.path(), LOSSY);
    let store = dir.path().join("store");
    let sizes = sizes(16, 4 << 20, 1);
    for transport in ["tcp", "shm"] {
        std::fs::remove_dir_all(&store).ok();
        let stats_file = dir.path().join(format!("b-{transport}.json"));
        let extra = [
            "--stats-file".into(),
            stats_file.display().to_string(),
            "--transport".into(),
            transport.into(),
        ];
        let server = Server::start_with(&cfg, "node-b", Some(&store), &extra);
        let peers = ["--peer".to_owned(), server.peer_arg("node-b")];
        let [dropped, corrupted, delayed] = send_and_verify(
            &cfg,
            ("node-a", "node-b"),
            &peers,
            &store,
            &sizes,
            transport,
        );
        let b = stats_when(&stats_file, "transfers_received", sizes.len() as u64);
        eprintln!("{transport}: senders dropped {dropped}, corrupted {corrupted}, delayed {delayed}; receiver {b}");
        assert!(
            dropped > 0 && corrupted > 0 && delayed > 0,
            "no fault was injected by the senders"
        );
        assert_eq!(n(&b, "transfers_received"), sizes.len() as u64);
        assert!(
            n(&b, "faults_delayed") > 0,
            "no fault was injected by the receiver"
        );
        drop(server);
    }
}

#[test]
fn lossy_relays_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = chain(dir.path(), LOSSY);
    let store = dir.path().join("store");
    let stats_of = |node: &str| dir.path().join(format!("{node}.json"));
    // A relay knows its next hop's address and keeps its counters in a file.
    let relay_args = |node: &str, next: String| {
        vec![
            "--peer".into(),
            next,
            "--stats-file".into(),
            stats_of(node).display().to_string(),
        ]
    };
    let dst = Server::start(&cfg, "dst", Some(&store));
    let r2 = Server::start_with(
        &cfg,
        "relay-2",
        None,
        &relay_args("relay-2", dst.peer_arg("dst")),
    );
    let r1 = Server::start_with(
        &cfg,
        "relay-1",
        None,
        &relay_args("relay-1", r2.peer_arg("relay-2")),
    );
    let peers = ["--peer".to_owned(), r1.peer_arg("relay-1")];
    let sizes = [1, 70_000, 3 << 20];
    let [dropped, corrupted, _] =
        send_and_verify(&cfg, ("src", "dst"), &peers, &store, &sizes, "auto");
    assert!(
        dropped > 0 && corrupted > 0,
        "no fault was injected by the sender"
    );
    for relay in ["relay-1", "relay-2"] {
        let s = fresh_stats(&stats_of(relay));
        eprintln!("{relay}: {s}");
        assert!(
            n(&s, "frames_forwarded") > 0 && n(&s, "faults_delayed") > 0,
            "{relay}: {s}"
        );
    }
}

#[test]
fn cut_connections_complete_or_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = two_nodes(dir.path(), "\n[[faults]]\ncut = 0.002\ndrop = 0.005\n");
    let store = dir.path().join("store");
    let server = Server::start_with(
        &cfg,
        "node-b",
        Some(&store),
        &["--transport".into(), "tcp".into()],
    );
    let peers = ["--peer".to_owned(), server.peer_arg("node-b")];
    let (mut cuts, mut completed) = (0, 0);
    for i in 0..3u64 {
        let name = format!("cut-{i}.bin");
        let src = dir.path().join(&name);
        random_file(&src, 4 << 20, 200 + i);
        match send(&cfg, "node-a", "node-b", &peers, &src, "tcp") {
            Ok(r) => {
                assert!(same_contents(&src, &store.join(&name)), "{name} differs");
                cuts += n(&r["node_stats"], "faults_cut");
                completed += 1;
            }
            Err((code, err)) => {
                // A clear error, and never a partial file under the final name.
                assert_eq!(code, 1, "{err}");
                assert!(err.contains("hfabric: error:"), "{err}");
                assert!(
                    !store.join(&name).exists(),
                    "{name} exists after a failed transfer"
                );
            }
        }
    }
    eprintln!("{completed} of 3 completed; senders cut {cuts} connections");
    assert!(
        completed > 0 && cuts > 0,
        "no connection was cut in a completed transfer"
    );
}

#[test]
fn a_fault_file_switches_faults_on_and_off_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = two_nodes(dir.path(), "");
    let rules = dir.path().join("live-faults.toml");
    let stats_file = dir.path().join("b.json");
    let extra = ["--stats-file".into(), stats_file.display().to_string()];
    let env = [("HF_FAULTS_FILE", rules.to_str().unwrap())];
    let server = Server::start_env(&cfg, "node-b", None, &extra, &env);
    let peer = server.peer_arg("node-b");
    let ping = |count: &str| -> Value {
        let out = hfabric_from(
            "ping",
            &cfg,
            &peer,
            "node-a",
            &["--json", "node-b", "--count", count, "--timeout-ms", "100"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // The file is looked at again at most 100 ms after a change: the first pong after
    // that sees the new rules.
    let settle = || std::thread::sleep(Duration::from_millis(250));
    let received = |p: &Value| n(p, "received");

    ping("20");
    let before = fresh_stats(&stats_file);
    assert_eq!(
        (n(&before, "faults_delayed"), n(&before, "faults_dropped")),
        (0, 0)
    );

    std::fs::write(
        &rules,
        "[[faults]]\nfrom = \"node-b\"\ndrop = 0.05\ndelay_us = 10\n",
    )
    .unwrap();
    settle();
    let p = ping("200");
    let on = fresh_stats(&stats_file);
    assert!(
        server.wait_log("fault rules reloaded", Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
    assert!(
        n(&on, "faults_delayed") >= received(&p),
        "every pong written was delayed: {on}"
    );
    assert!(n(&on, "faults_dropped") > 0 && received(&p) < 200, "{on}");

    // A broken file keeps the rules in force.
    std::fs::write(&rules, "[[faults]]\ndrop = \"lots\"\n").unwrap();
    settle();
    ping("50");
    let kept = fresh_stats(&stats_file);
    assert!(
        server.wait_log("bad fault file", Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
    assert!(
        n(&kept, "faults_delayed") > n(&on, "faults_delayed"),
        "{kept}"
    );

    // Removed: no more faults.
    std::fs::remove_file(&rules).unwrap();
    settle();
    let p = ping("200");
    let off = fresh_stats(&stats_file);
    assert_eq!(received(&p), 200);
    for f in ["faults_delayed", "faults_dropped"] {
        assert_eq!(n(&off, f), n(&kept, f), "{f} still rising: {kept} -> {off}");
    }
}

#[test]
fn bad_hf_faults_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = two_nodes(dir.path(), "");
    let out = std::process::Command::new(BIN)
        .args([
            "send",
            "--config",
            cfg.to_str().unwrap(),
            "--from",
            "node-a",
            "--to",
            "node-b",
            "--size",
            "10",
        ])
        .env("HF_FAULTS", "to=node-b,drop=0.5;corrupt=often")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("HF_FAULTS: field `faults[1].corrupt`: \"often\" is not a number"),
        "{err}"
    );
}
