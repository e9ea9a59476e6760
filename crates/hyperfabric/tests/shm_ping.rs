//! Back-to-back pings over a shared-memory link: the pinging thread owns the ring's consumer
//! for the whole run, so every other frame that arrives meanwhile (data, acks) must be
//! dispatched by it. Two nodes in one process, transport forced to shm, low_latency profile.

use hyperfabric::transport::{TransportChoice, TransportKind};
use hyperfabric::{Fabric, PingOptions, SendOptions};
use std::time::{Duration, Instant};

mod common;
use common::{pattern, start_pair, two_node_config};

fn pair() -> (Fabric, Fabric) {
    let fabric = "profile = \"low_latency\"\nsend_timeout_ms = 10000\nconnect_timeout_ms = 1000";
    start_pair(two_node_config("shmping", fabric), TransportChoice::Shm)
}

#[test]
fn frames_arriving_during_a_ping_run_are_delivered() {
    let (a, b) = pair();
    // Open the link (a dials b) before the run.
    let warm = a.ping("b", PingOptions::new().count(1).warmup(0)).unwrap();
    assert_eq!(warm.transport, TransportKind::Shm);
    std::thread::scope(|s| {
        // Long enough (hundreds of ms) that b's first transfer starts and ends inside it.
        const PINGS: u64 = 300_000;
        let pinger = s.spawn(|| {
            let stats = a.ping(
                "b",
                PingOptions::new()
                    .count(PINGS)
                    .warmup(0)
                    .timeout(Duration::from_secs(5)),
            );
            (stats, Instant::now())
        });
        // b sends to a while a's pinger holds a's ring consumer: the transfers complete only
        // if the pinger dispatches b's data (and a answers with acks).
        let mut first_done = None;
        for i in 0..20u8 {
            b.send(
                "a",
                &pattern(10_000 + usize::from(i), i),
                SendOptions::new(),
            )
            .unwrap();
            first_done.get_or_insert_with(Instant::now);
        }
        let (stats, run_ended) = pinger.join().unwrap();
        let stats = stats.unwrap();
        assert_eq!((stats.sent, stats.received, stats.lost), (PINGS, PINGS, 0));
        // Were the frames handled during the run, not after it? A pinger that left them in
        // the ring would hold the first transfer until the run ended.
        assert!(
            first_done.is_some_and(|t| t < run_ended),
            "the first transfer completed only after the ping run"
        );
        assert_eq!(stats.transport, TransportKind::Shm);
    });
    for i in 0..20u8 {
        let m = a.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(&m.payload[..], &pattern(10_000 + usize::from(i), i)[..]);
    }
}
