//! The store directory against senders and receivers that die, and against two senders
//! choosing the same file name: no `.part` debris after the transfer deadline (or after a
//! restart), no silent overwrite, and a legitimate transfer byte-identical afterwards.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::raw::{extend_fabric, send_file};
use support::*;

/// A three-node fabric whose transfer deadline is short (send_timeout_ms = 2000: an idle
/// transfer is dropped after 4 s) and whose links are paced, so a 64 MiB transfer takes a
/// few seconds and can be interrupted.
fn slow_fabric(dir: &Path) -> PathBuf {
    let cfg = fabric_file(dir, "high_throughput");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("send_timeout_ms = 5000", "send_timeout_ms = 2000"),
    )
    .unwrap();
    extend_fabric(&cfg, "throttle_gbps = 0.2");
    cfg
}

fn spawn_send(cfg: &Path, server: &Server, file: &Path) -> Child {
    Command::new(BIN)
        .args(["send", "--config"])
        .arg(cfg)
        .args([
            "--peer",
            &server.peer_arg("node-b"),
            "--from",
            "node-a",
            "--to",
            "node-b",
            "--file",
        ])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (at most 30 s) until the store has a `.part` file with bytes in it.
fn wait_for_partial(store: &Path) {
    let until = Instant::now() + Duration::from_secs(30);
    while partial_bytes(store) == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(partial_bytes(store) > 0, "the transfer never started");
}

fn part_files(store: &Path) -> Vec<String> {
    stored_files(store)
        .into_iter()
        .filter(|n| n.ends_with(".part"))
        .collect()
}

fn legitimate_transfer(dir: &Path, cfg: &Path, server: &Server, store: &Path) {
    let file = dir.join("legit.bin");
    random_file(&file, 1_000_000, 3);
    send_file(cfg, server, "node-c", &file);
    assert!(same_contents(&file, &store.join("legit.bin")));
}

#[test]
fn a_killed_sender_leaves_no_part_file_after_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = slow_fabric(dir.path());
    let store = dir.path().join("store");
    let server = Server::start(&cfg, "node-b", Some(&store));
    let file = dir.path().join("big.bin");
    random_file(&file, 64 << 20, 1);
    let mut sender = spawn_send(&cfg, &server, &file);
    wait_for_partial(&store);
    sender.kill().unwrap();
    sender.wait().unwrap();
    assert!(
        !part_files(&store).is_empty(),
        "the .part is there while the deadline runs"
    );
    // The deadline is 4 s; the sweeper runs every second. Wait at most 30 s.
    let until = Instant::now() + Duration::from_secs(30);
    while !part_files(&store).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        part_files(&store),
        Vec::<String>::new(),
        "debris left behind"
    );
    assert!(
        server.wait_log("dropping stale incoming transfer", Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
    legitimate_transfer(dir.path(), &cfg, &server, &store);
}

#[test]
fn a_killed_receiver_leaves_no_part_file_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = slow_fabric(dir.path());
    let store = dir.path().join("store");
    let mut server = Server::start(&cfg, "node-b", Some(&store));
    let file = dir.path().join("big.bin");
    random_file(&file, 64 << 20, 2);
    let mut sender = spawn_send(&cfg, &server, &file);
    wait_for_partial(&store);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let _ = sender.wait();
    let left = part_files(&store);
    assert_eq!(left.len(), 1, "a killed node cannot clean up: {left:?}");
    // Until the .part is older than the deadline (4 s) it may be a live transfer's; wait for
    // that (at most 30 s), then restart on the same store.
    let part = store.join(&left[0]);
    let until = Instant::now() + Duration::from_secs(30);
    let age = || {
        std::fs::metadata(&part)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default()
    };
    while age() < Duration::from_secs(5) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    let server = Server::start(&cfg, "node-b", Some(&store));
    assert_eq!(
        part_files(&store),
        Vec::<String>::new(),
        "debris survived the restart"
    );
    assert!(
        server.log_text().contains("removed 1 stale .part files"),
        "{}",
        server.log_text()
    );
    legitimate_transfer(dir.path(), &cfg, &server, &store);
}

#[test]
fn two_same_named_files_from_two_senders_both_survive() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    extend_fabric(&cfg, "");
    let store = dir.path().join("store");
    let (one, two) = (dir.path().join("1"), dir.path().join("2"));
    std::fs::create_dir_all(&one).unwrap();
    std::fs::create_dir_all(&two).unwrap();
    let (a, c) = (one.join("same.bin"), two.join("same.bin"));
    random_file(&a, 200_000, 11);
    random_file(&c, 300_000, 12);
    {
        let server = Server::start(&cfg, "node-b", Some(&store));
        let ra = send_file(&cfg, &server, "node-a", &a);
        let rc = send_file(&cfg, &server, "node-c", &c);
        assert_eq!(ra["stored_as"], "same.bin");
        assert_eq!(
            rc["stored_as"], "same.1.bin",
            "the second sender is told the new name"
        );
        assert!(same_contents(&a, &store.join("same.bin")));
        assert!(same_contents(&c, &store.join("same.1.bin")));
    }
    // Under `--on-conflict refuse` a third one is refused and nothing is replaced.
    let extra = ["--on-conflict".to_string(), "refuse".to_string()];
    let server = Server::start_with(&cfg, "node-b", Some(&store), &extra);
    let peer = server.peer_arg("node-b");
    let out = hfabric(&[
        "send",
        "--config",
        cfg.to_str().unwrap(),
        "--peer",
        &peer,
        "--from",
        "node-c",
        "--to",
        "node-b",
        "--file",
        c.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success(),
        "a refused transfer must not report success"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("on_conflict"), "{err}");
    assert!(same_contents(&a, &store.join("same.bin")));
    assert_eq!(stored_files(&store), ["same.1.bin", "same.bin"]);
}
