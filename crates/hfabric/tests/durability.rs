//! Durability of received files: a transfer stored to disk goes to a temporary file that is
//! synced, checked and renamed, so a full disk or a killed receiver never leaves a truncated
//! file under the final name, and the sender learns that the transfer failed.

mod support;

use hyperfabric::wire::{self, flags, FrameKind, Header};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn send(cfg: &std::path::Path, server: &Server, file: &std::path::Path) -> std::process::Output {
    let peer = server.peer_arg("node-b");
    hfabric_from(
        "send",
        cfg,
        &peer,
        "node-a",
        &["--json", "--to", "node-b", "--file", file.to_str().unwrap()],
    )
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
    assert!(
        stored_files(&store).is_empty(),
        "{:?}",
        stored_files(&store)
    );
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
    assert_eq!(stored_files(&store), vec!["small.bin".to_owned()]);
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

/// A raw member connection: hello as node-a, welcome read.
fn member(server: &Server) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(&hello_frame("node-a", "test")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_frame(&mut s).0.kind, FrameKind::Welcome);
    s
}

fn read_frame(s: &mut TcpStream) -> (Header, Vec<u8>) {
    let mut head = [0u8; wire::HEADER_LEN];
    s.read_exact(&mut head).unwrap();
    let len = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;
    let mut frame = head.to_vec();
    frame.resize(wire::HEADER_LEN + len, 0);
    s.read_exact(&mut frame[wire::HEADER_LEN..]).unwrap();
    let (h, body, _) = wire::decode_frame(&frame, wire::Limits::default()).unwrap();
    (h, body.to_vec())
}

/// Sends a whole one-frame transfer and returns the acknowledgement it gets.
fn one_frame_transfer(s: &mut TcpStream, id: u64, payload: &[u8]) -> Header {
    let mut d = Header::new(FrameKind::Data);
    d.src = wire::node_key("node-a");
    d.dst = wire::node_key("node-b");
    d.transfer_id = id;
    d.aux = payload.len() as u64;
    s.write_all(&wire::encode_frame(&d, payload).unwrap())
        .unwrap();
    loop {
        let (h, _) = read_frame(s);
        if h.kind == FrameKind::Ack && h.transfer_id == id {
            return h;
        }
    }
}

#[test]
fn a_transfer_stored_before_a_crash_is_not_stored_again_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let store = dir.path().join("store");
    let id = 0x5eed_0000_0000_0001;
    let name = format!("node-a-{id:016x}.bin");
    let mut server = Server::start(&cfg, "node-b", Some(&store));
    let ack = one_frame_transfer(&mut member(&server), id, b"first copy");
    assert!(ack.has(flags::FINAL));
    assert_eq!(std::fs::read(store.join(&name)).unwrap(), b"first copy");

    // The receiver dies (its FINAL ack may never have arrived) and comes back on the same
    // store; the sender retransmits the transfer. Different bytes show a second store.
    server.child.kill().unwrap();
    let _ = server.child.wait();
    let server = Server::start(&cfg, "node-b", Some(&store));
    let ack = one_frame_transfer(&mut member(&server), id, b"other copy");
    assert!(ack.has(flags::FINAL), "the retransmission is acknowledged");
    assert_eq!(
        std::fs::read(store.join(&name)).unwrap(),
        b"first copy",
        "the restarted receiver stored the transfer a second time"
    );
    // A new transfer is stored as usual.
    let ack = one_frame_transfer(&mut member(&server), id + 1, b"new");
    assert!(ack.has(flags::FINAL));
    assert!(store.join(format!("node-a-{:016x}.bin", id + 1)).exists());
}
