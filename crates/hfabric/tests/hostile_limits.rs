//! Starvation attempts against a real `hfabric serve`: one peer holding many half-open
//! transfers, strangers dripping their hello a byte at a time, strangers announcing huge
//! hellos. Each time a legitimate transfer from another node goes through, byte-identical.

mod support;

use hyperfabric::wire::{self, FrameKind};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::raw::{extend_fabric, read_frame, rss_bytes, send_file, RawMember};
use support::*;

/// A three-node fabric (node-a, node-b, node-c) with `lines` added to `[fabric]`, node-b
/// serving with a store; returns its file, the server and the store directory.
fn three_nodes(
    dir: &std::path::Path,
    lines: &str,
) -> (std::path::PathBuf, Server, std::path::PathBuf) {
    let cfg = fabric_file(dir, "high_throughput");
    extend_fabric(&cfg, lines);
    let store = dir.join("store");
    let server = Server::start(&cfg, "node-b", Some(&store));
    (cfg, server, store)
}

/// node-c sends a 3 MB file to node-b; it must arrive byte-identical.
fn legitimate_transfer(
    dir: &std::path::Path,
    cfg: &std::path::Path,
    server: &Server,
    store: &std::path::Path,
) {
    let file = dir.join("legit.bin");
    random_file(&file, 3_000_000, 5);
    send_file(cfg, server, "node-c", &file);
    assert!(
        same_contents(&file, &store.join("legit.bin")),
        "not byte-identical"
    );
}

#[test]
fn half_open_transfers_from_one_peer_leave_another_peers_transfers_working() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, server, store) = three_nodes(dir.path(), "");
    let mut mallory = RawMember::join(server.addr, "node-a");
    // 1,100 transfers of 1 MiB each, one 64-byte chunk apiece, never finished.
    for id in 0..1100u64 {
        mallory.data(1000 + id, 1 << 20, 0, &[7u8; 64]).unwrap();
    }
    // Past the peer's share of 256 open transfers, each new one is refused by name (acks of
    // the open ones may come in between; at most 2,200 frames are read).
    mallory
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut refused = 0;
    for _ in 0..2200 {
        if refused == 1100 - 256 {
            break;
        }
        let (h, body) = read_frame(&mut mallory.stream).expect("a refusal per extra transfer");
        if h.kind == FrameKind::Nack {
            let why = String::from_utf8_lossy(&body);
            assert!(
                why.contains("too many open transfers from this peer"),
                "{why}"
            );
            refused += 1;
        }
    }
    assert_eq!(
        refused,
        1100 - 256,
        "the peer's share is 256 open transfers"
    );
    legitimate_transfer(dir.path(), &cfg, &server, &store);
    drop(mallory);
}

#[test]
fn drip_fed_hellos_are_cut_at_the_handshake_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    // A deadline of 3 s against a byte every second: a timeout per read would never fire.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("handshake_timeout_ms = 1000", "handshake_timeout_ms = 3000"),
    )
    .unwrap();
    extend_fabric(
        &cfg,
        "max_connections = 2000\nmax_pending_handshakes = 1000",
    );
    let store = dir.path().join("store");
    let server = Server::start(&cfg, "node-b", Some(&store));
    let hello = hello_frame("node-a", "test");
    let mut drips: Vec<Option<TcpStream>> = (0..500)
        .map(|_| {
            let s = TcpStream::connect(server.addr).unwrap();
            s.set_nonblocking(true).unwrap();
            Some(s)
        })
        .collect();
    // At most 20 rounds of one byte per connection, one second apart.
    let mut rounds = 0;
    while drips.iter().any(Option::is_some) && rounds < 20 {
        for slot in drips.iter_mut() {
            let Some(s) = slot else { continue };
            let mut b = [0u8; 64];
            let closed = match s.read(&mut b) {
                Ok(_) => true,
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            } || s.write_all(&hello[rounds..rounds + 1]).is_err();
            if closed {
                *slot = None;
            }
        }
        rounds += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let open = drips.iter().filter(|s| s.is_some()).count();
    assert_eq!(
        open, 0,
        "{open} drip connections still open after {rounds} s"
    );
    assert!(
        server.wait_log("did not finish within 3000 ms", Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
    legitimate_transfer(dir.path(), &cfg, &server, &store);
}

#[test]
fn huge_hellos_from_strangers_cost_the_node_almost_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, server, store) = three_nodes(
        dir.path(),
        "max_connections = 2000\nmax_pending_handshakes = 1000",
    );
    let before = rss_bytes(server.child.id());
    let mut hello = hello_frame("node-a", "test");
    hello[12..16].copy_from_slice(&(1u32 << 20).to_le_bytes());
    let mut conns = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(&hello[..wire::HEADER_LEN]).unwrap();
        conns.push(s);
    }
    // Each is answered with a refusal that names the limit, and closed.
    for mut s in conns.drain(..) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let (h, why, _) = wire::decode_frame(&answer, wire::Limits::default()).expect("a Reject");
        assert_eq!(h.kind, FrameKind::Reject);
        let why = String::from_utf8_lossy(why);
        assert!(why.contains("exceeds the limit of 4096"), "{why}");
    }
    let grown = rss_bytes(server.child.id()).saturating_sub(before);
    println!("RSS grew by {} KiB over 500 huge hellos", grown >> 10);
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
    legitimate_transfer(dir.path(), &cfg, &server, &store);
}

#[test]
fn members_get_in_while_strangers_keep_every_handshake_slot_full() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (cfg, server, store) = three_nodes(dir.path(), "max_pending_handshakes = 64");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Silent sockets, one every 2 ms, the last 300 held open: the 64 handshake slots stay
        // full (each would last the 1 s deadline). At most 30 s.
        let flood = s.spawn(|| {
            let mut held = std::collections::VecDeque::new();
            let until = std::time::Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Acquire) && std::time::Instant::now() < until {
                if let Ok(c) = TcpStream::connect(server.addr) {
                    held.push_back(c);
                }
                if held.len() > 300 {
                    held.pop_front();
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        legitimate_transfer(dir.path(), &cfg, &server, &store);
        stop.store(true, Ordering::Release);
        flood.join().unwrap();
    });
    assert!(
        server.wait_log("cut the oldest to make room", Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
}
