//! The loan API and the buffer pool, two nodes in one process over a shared-memory link
//! (loopback addresses: `auto` picks shm), and the fallbacks when there is no pool.

use hyperfabric::config::FabricConfig;
use hyperfabric::transport::TransportChoice;
use hyperfabric::{Error, Fabric, SendOptions, LOAN_SLOT_BYTES};
use std::time::Duration;

mod common;
use common::{pattern, start_pair, two_node_config};

const RECV: Duration = Duration::from_secs(5);

fn config(send_timeout_ms: u64, extra: &str) -> FabricConfig {
    let fabric = format!(
        "profile = \"high_throughput\"\nsend_timeout_ms = {send_timeout_ms}\nconnect_timeout_ms = 1000\n{extra}"
    );
    two_node_config("loan", &fabric)
}

fn pair(transport: TransportChoice, send_timeout_ms: u64) -> (Fabric, Fabric) {
    start_pair(config(send_timeout_ms, ""), transport)
}

#[test]
fn loaned_buffers_arrive_in_place_and_slots_come_back() {
    let (a, b) = pair(TransportChoice::Auto, 3000);
    // More rounds than the pool has slots: each received message is dropped, returning its slot.
    for round in 0..80u32 {
        let len = if round % 2 == 0 {
            LOAN_SLOT_BYTES
        } else {
            1000 + round as usize
        };
        let mut buf = a.loan("b", len).unwrap();
        assert!(buf.is_shared(), "round {round}: loan should be a pool slot");
        let want = pattern(len, round as u8);
        buf.copy_from_slice(&want);
        let opts = SendOptions::new().verify_payload(round % 3 == 0);
        let report = a.send_loaned(buf, opts).unwrap();
        assert_eq!(report.bytes, len as u64);
        let msg = b.recv_timeout(RECV).unwrap();
        assert!(
            msg.payload.is_shared(),
            "round {round}: payload should be a view"
        );
        assert!(msg.payload == want, "round {round}: bytes differ");
        assert_eq!(msg.source, "a");
    }
}

#[test]
fn a_held_message_keeps_its_slot_and_an_unsent_loan_returns_it() {
    // `buffer_pool_buffers` sets the pool's slot count: the ninth loan finds none free.
    let cfg = config(400, "buffer_pool_buffers = 8");
    let (a, b) = start_pair(cfg, TransportChoice::Auto);
    let mut held = Vec::new();
    for i in 0..8u8 {
        let mut buf = a.loan("b", 4096).unwrap();
        buf.fill(i);
        a.send_loaned(buf, SendOptions::new()).unwrap();
        held.push(b.recv_timeout(RECV).unwrap());
    }
    // Every slot is held by the receiver: the next loan waits, then times out.
    assert!(matches!(a.loan("b", 10), Err(Error::Timeout { .. })));
    assert_eq!((a.stats().shm_pool_slots, b.stats().shm_pool_slots), (8, 8));
    assert!(held
        .iter()
        .enumerate()
        .all(|(i, m)| m.payload.iter().all(|&x| x == i as u8)));
    drop(held.pop());
    let unsent = a.loan("b", 10).unwrap();
    drop(unsent);
    // The slot the dropped loan had is free again.
    let mut buf = a.loan("b", 3).unwrap();
    buf.copy_from_slice(b"end");
    a.send_loaned(buf, SendOptions::new()).unwrap();
    assert_eq!(b.recv_timeout(RECV).unwrap().payload, b"end");
}

#[test]
fn copy_api_uses_the_pool_for_large_single_chunk_messages() {
    let (a, b) = pair(TransportChoice::Auto, 3000);
    for (len, pooled) in [(256 << 10, true), (16 << 10, false), (3 << 20, false)] {
        let data = pattern(len, 7);
        a.send("b", &data, SendOptions::new()).unwrap();
        let msg = b.recv_timeout(RECV).unwrap();
        assert_eq!(msg.payload.is_shared(), pooled, "{len} bytes");
        assert!(msg.payload == data, "{len} bytes differ");
    }
}

#[test]
fn without_shared_memory_a_loan_is_a_heap_buffer_sent_by_copy() {
    let (a, b) = pair(TransportChoice::Tcp, 3000);
    let mut buf = a.loan("b", 5000).unwrap();
    assert!(!buf.is_shared());
    buf.copy_from_slice(&pattern(5000, 1));
    a.send_loaned(buf, SendOptions::new()).unwrap();
    let msg = b.recv_timeout(RECV).unwrap();
    assert!(!msg.payload.is_shared());
    assert!(msg.payload == pattern(5000, 1));
    // Larger than a slot: heap on any link.
    let (a, _b) = pair(TransportChoice::Auto, 3000);
    assert!(!a.loan("b", LOAN_SLOT_BYTES + 1).unwrap().is_shared());
    assert!(matches!(
        a.loan("nobody", 1),
        Err(Error::NodeNotFound { .. })
    ));
}

#[test]
fn the_pool_slot_size_comes_from_the_file_and_loans_follow_it() {
    for (slot, loans, copies) in [
        // 128 KiB slots: a loan or a copy-API message over one slot goes by copy.
        (
            128usize << 10,
            [(128 << 10, true), ((128 << 10) + 1, false)],
            [(100 << 10, true), (256 << 10, false)],
        ),
        // 4 MiB slots: a 3 MiB loan (over the default 1 MiB slot) is a slot; the copy API
        // pools only one-chunk messages (max_packet_size, 1 MiB here).
        (
            4 << 20,
            [(3 << 20, true), ((4 << 20) + 1, false)],
            [(512 << 10, true), (3 << 20, false)],
        ),
    ] {
        let cfg = config(3000, &format!("buffer_pool_slot_bytes = {slot}"));
        let (a, b) = start_pair(cfg, TransportChoice::Auto);
        for (len, shared) in loans {
            let mut buf = a.loan("b", len).unwrap();
            assert_eq!(buf.is_shared(), shared, "slot {slot}: loan of {len}");
            buf.copy_from_slice(&pattern(len, 3));
            a.send_loaned(buf, SendOptions::new()).unwrap();
            let msg = b.recv_timeout(RECV).unwrap();
            assert_eq!(msg.payload.is_shared(), shared, "slot {slot}: loaned {len}");
            assert!(msg.payload == pattern(len, 3));
        }
        for (len, pooled) in copies {
            let data = pattern(len, 5);
            a.send("b", &data, SendOptions::new()).unwrap();
            let msg = b.recv_timeout(RECV).unwrap();
            assert_eq!(
                msg.payload.is_shared(),
                pooled,
                "slot {slot}: copy of {len}"
            );
            assert!(msg.payload == data);
        }
        let bytes = slot as u64;
        let seen = (a.stats().shm_pool_slot_bytes, b.stats().shm_pool_slot_bytes);
        assert_eq!(seen, (bytes, bytes), "slot {slot}");
    }
}

#[test]
fn a_pool_slot_size_that_is_not_whole_pages_is_refused_naming_the_field() {
    for bad in ["5000", "0", "134217728"] {
        let text = common::two_node_toml("loan", &format!("buffer_pool_slot_bytes = {bad}\n"));
        let err = FabricConfig::from_toml_str(&text, "slots.toml").unwrap_err();
        assert!(
            matches!(&err, Error::Config { field, .. } if field == "fabric.buffer_pool_slot_bytes"),
            "{bad}: {err}"
        );
    }
}
