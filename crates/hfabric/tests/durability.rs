//! Durability of received files: a transfer stored to disk goes to a temporary file that is
//! synced, checked and renamed, so a full disk or a killed receiver never leaves a truncated
//! file under the final name, and the sender learns that the transfer failed.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn send(cfg: &std::path::Path, server: &Server, file: &std::path::Path) -> std::process::Output {
    let peer = server.peer_arg("node-b");
    hfabric(&[
        "send",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--peer",
        &peer,
        "--from",
        "node-a",
        "--to",
        "node-b",
        "--file",
        file.to_str().unwrap(),
    ])
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_full_disk_fails_the_transfer_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let store = dir.path().join("store");
    // The receiver may write files of at most 4 MiB: the 16 MiB transfer hits "disk full".
    let server = Server::start_with_file_limit(&cfg, "node-b", Some(&store), 4 << 20);
    let big = dir.path().join("big.bin");
    random_file(&big, 16 << 20, 3);
    let out = send(&cfg, &server, &big);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot store") && err.contains("too large"),
        "the sender is told why: {err}"
    );
    // Nothing under the final name, and the temporary file is gone too.
    assert!(names_in(&store).is_empty(), "{:?}", names_in(&store));
    assert!(server.wait_log("cannot store", Duration::from_secs(5)));

    // The node stays up and stores what fits.
    let small = dir.path().join("small.bin");
    random_file(&small, 1 << 20, 4);
    let out = send(&cfg, &server, &small);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(same_contents(&small, &store.join("small.bin")));
    assert_eq!(names_in(&store), vec!["small.bin".to_owned()]);
}

#[test]
fn a_receiver_killed_mid_transfer_leaves_no_file_under_the_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let store = dir.path().join("store");
    let mut server = Server::start(&cfg, "node-b", Some(&store));
    let big = dir.path().join("killed.bin");
    random_file(&big, 512 << 20, 5);
    let peer = server.peer_arg("node-b");
    let sender = Command::new(BIN)
        .args(["send", "--json", "--config"])
        .arg(&cfg)
        .args([
            "--peer", &peer, "--from", "node-a", "--to", "node-b", "--file",
        ])
        .arg(&big)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sender");
    // Kill the receiver once part of the file has landed.
    let until = Instant::now() + Duration::from_secs(30);
    while partial_bytes(&store) < (8 << 20) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(partial_bytes(&store) > 0, "the transfer never started");
    server.child.kill().expect("kill receiver");
    let _ = server.child.wait();
    let out = sender.wait_with_output().expect("sender exits");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the sender reports the failure: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !store.join("killed.bin").exists(),
        "no truncated file under the final name"
    );
    assert!(!server.is_running());
}
