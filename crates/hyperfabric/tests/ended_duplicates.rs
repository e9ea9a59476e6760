//! A duplicate of a frame of a transfer that already ended is answered from the memory of
//! ended transfers (`core::ended`, one policy for every link) and never delivered again:
//! node `a` writes every end-to-end frame twice (fault injection, `duplicate = 1`), so the
//! copy of each transfer's last frame reaches `b` after the transfer was delivered. Over
//! TCP and over shared memory (there loaned frames, whose slot is lent once, go once).
//! Each copy arrives within the memory's linger (one retransmit timeout): it is dropped
//! even when the source ends transfers from several threads at once, and that honest fast
//! source is never refused for the memory's per-source bound.

use hyperfabric::config::FabricConfig;
use hyperfabric::transport::{TransportChoice, TransportKind};
use hyperfabric::{Error, SendOptions};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{pattern, start_pair, two_node_toml};

/// Whole in one frame, a few chunks, many chunks (64 KiB frames).
const SIZES: [usize; 4] = [100, 70_000, 300_000, 1 << 20];

fn duplicating_pair(transport: TransportChoice) -> (hyperfabric::Fabric, hyperfabric::Fabric) {
    let mut toml = two_node_toml("dup", "max_packet_size = 65536\nconnect_timeout_ms = 2000");
    toml.push_str("\n[[faults]]\nfrom = \"a\"\nto = \"b\"\nduplicate = 1.0\nseed = 16\n");
    let cfg = FabricConfig::from_toml_str(&toml, "<dup>").expect("valid config");
    start_pair(cfg, transport)
}

fn each_transfer_arrives_once(transport: TransportChoice, kind: TransportKind) {
    let (a, b) = duplicating_pair(transport);
    for (i, &len) in SIZES.iter().enumerate() {
        let data = pattern(len, i as u8);
        let report = a
            .send("b", &data, SendOptions::new())
            .expect("the send completes");
        assert_eq!(report.hops[0].transport, kind);
        let msg = b.recv_timeout(Duration::from_secs(10)).expect("delivered");
        assert!(
            msg.payload[..] == data[..],
            "transfer {i} ({len} B) damaged"
        );
    }
    // Every copy has arrived by now (each was written right behind its original, before
    // the final ack the send waited for): none was delivered a second time.
    match b.recv_timeout(Duration::from_millis(300)) {
        Err(Error::Timeout { .. }) => {}
        other => panic!("a duplicate was delivered again: {other:?}"),
    }
    let duplicated = a.stats().faults_duplicated;
    assert!(
        duplicated >= SIZES.len() as u64,
        "a duplicated {duplicated} frames"
    );
    assert_eq!(b.stats().transfers_received, SIZES.len() as u64);
}

#[test]
fn a_late_duplicate_over_tcp_is_answered_not_delivered() {
    each_transfer_arrives_once(TransportChoice::Tcp, TransportKind::Tcp);
}

#[test]
fn a_late_duplicate_over_shared_memory_is_answered_not_delivered() {
    each_transfer_arrives_once(TransportChoice::Shm, TransportKind::Shm);
}

/// Threads of `a` sending small transfers at once, each frame written twice.
const THREADS: usize = 4;
const EACH: usize = 1500;

fn concurrent_small_transfers_arrive_once(transport: TransportChoice) {
    let (a, b) = duplicating_pair(transport);
    let a = Arc::new(a);
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let a = Arc::clone(&a);
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let data = pattern(64, (t * EACH + i) as u8);
                    if let Err(e) = a.send("b", &data, SendOptions::new()) {
                        panic!("thread {t}, send {i} refused: {e}");
                    }
                }
            })
        })
        .collect();
    let mut received = 0;
    while received < THREADS * EACH {
        let msg = b.recv_timeout(Duration::from_secs(10)).expect("delivered");
        assert_eq!(msg.payload.len(), 64);
        received += 1;
    }
    for s in senders {
        s.join().expect("every send completes");
    }
    match b.recv_timeout(Duration::from_millis(300)) {
        Err(Error::Timeout { .. }) => {}
        other => panic!("a duplicate was delivered again: {other:?}"),
    }
    assert_eq!(b.stats().transfers_received, (THREADS * EACH) as u64);
    assert!(a.stats().faults_duplicated >= (THREADS * EACH) as u64);
}

#[test]
fn duplicates_of_concurrent_small_transfers_over_tcp_are_dropped() {
    concurrent_small_transfers_arrive_once(TransportChoice::Tcp);
}

#[test]
fn duplicates_of_concurrent_small_transfers_over_shared_memory_are_dropped() {
    concurrent_small_transfers_arrive_once(TransportChoice::Shm);
}
