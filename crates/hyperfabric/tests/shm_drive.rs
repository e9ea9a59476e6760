//! Caller-driven progress over a shared-memory link: `recv` and a send's wait read the ring
//! themselves (the link's reader thread sleeps on a lease meanwhile), and the reader thread
//! takes the link back when the caller stops.

use hyperfabric::transport::{TransportChoice, TransportKind};
use hyperfabric::{Error, Fabric, PingOptions, SendOptions};
use std::collections::VecDeque;
use std::time::Duration;

mod common;
use common::{pattern, start_pair, two_node_config};

const RECV: Duration = Duration::from_secs(5);
const MESSAGES: u32 = 3000;

fn pair() -> (Fabric, Fabric) {
    let fabric = "profile = \"high_throughput\"\nsend_timeout_ms = 5000\nconnect_timeout_ms = 1000";
    start_pair(two_node_config("drive", fabric), TransportChoice::Shm)
}

/// Message `i`: its number in the first 4 bytes, then a pattern; sizes cover ring records
/// and pool slots (from 64 KiB on a one-chunk transfer goes by descriptor).
fn message(i: u32) -> Vec<u8> {
    let len = [64usize, 4096, 100 << 10, 700][i as usize % 4];
    let mut m = pattern(len, i as u8);
    m[..4].copy_from_slice(&i.to_le_bytes());
    m
}

#[test]
fn driven_recv_gets_every_message_once_and_the_reader_takes_over_after() {
    let (a, b) = pair();
    std::thread::scope(|s| {
        s.spawn(|| {
            let all: Vec<Vec<u8>> = (0..MESSAGES).map(message).collect();
            let mut inflight = VecDeque::new();
            for data in &all {
                inflight.push_back(a.start_send("b", data, SendOptions::new()).unwrap());
                if inflight.len() == 8 {
                    inflight.pop_front().unwrap().wait().unwrap();
                }
            }
            for p in inflight {
                p.wait().unwrap();
            }
        });
        let mut seen = vec![false; MESSAGES as usize];
        for _ in 0..MESSAGES {
            let msg = b.recv_timeout(RECV).unwrap();
            let i = u32::from_le_bytes(msg.payload[..4].try_into().unwrap());
            assert!(!seen[i as usize], "message {i} delivered twice");
            seen[i as usize] = true;
            assert_eq!(&msg.payload[..], &message(i)[..], "message {i} damaged");
        }
    });
    assert_eq!(a.stats().transfers_sent, u64::from(MESSAGES));

    // Nobody calls recv on b now: its reader thread must read the ring again, or these sends
    // (each waits for b's end-to-end acknowledgement) and pings would time out.
    let report = a.send("b", &message(7), SendOptions::new()).unwrap();
    assert_eq!(report.hops[0].transport, TransportKind::Shm);
    let pings = a.ping("b", PingOptions::new().count(20)).unwrap();
    assert_eq!(pings.received, 20);
    let msg = b.recv_timeout(RECV).unwrap();
    assert_eq!(&msg.payload[..], &message(7)[..]);

    // An idle driven recv gives up at its deadline.
    assert!(matches!(
        b.recv_timeout(Duration::from_millis(20)),
        Err(Error::Timeout { .. })
    ));
}

#[test]
fn both_directions_driven_at_once() {
    let (a, b) = pair();
    // Each side sends and receives from one thread at a time: a thread waiting for its ack
    // reads the ring, where the other side's messages also arrive.
    std::thread::scope(|s| {
        for (me, peer, from) in [(&a, "b", 0u32), (&b, "a", 1u32)] {
            s.spawn(move || {
                for i in 0..500u32 {
                    let data = message(i * 2 + from);
                    me.send(peer, &data, SendOptions::new()).unwrap();
                }
            });
            s.spawn(move || {
                for _ in 0..500u32 {
                    let msg = me.recv_timeout(RECV).unwrap();
                    let i = u32::from_le_bytes(msg.payload[..4].try_into().unwrap());
                    assert_eq!(i % 2, 1 - from, "a message from the wrong side");
                    assert_eq!(&msg.payload[..], &message(i)[..]);
                }
            });
        }
    });
}
