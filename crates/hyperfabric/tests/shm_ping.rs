//! Back-to-back pings over a shared-memory link: the pinging thread owns the ring's consumer
//! for the whole run, so every other frame that arrives meanwhile (data, acks) must be
//! dispatched by it. Two nodes in one process, transport forced to shm, low_latency profile.

use hyperfabric::config::FabricConfig;
use hyperfabric::transport::{TransportChoice, TransportKind};
use hyperfabric::{Fabric, PingOptions, SendOptions};
use std::time::Duration;

fn pair() -> (Fabric, Fabric) {
    let text = r#"
[fabric]
name = "shmping"
profile = "low_latency"
send_timeout_ms = 10000
connect_timeout_ms = 1000

[[nodes]]
id = "a"
hardware = "nvidia-h100"
listen = "127.0.0.1:0"

[[nodes]]
id = "b"
hardware = "amd-mi300x"
listen = "127.0.0.1:1"
"#;
    let cfg = FabricConfig::from_toml_str(text, "<test>").expect("valid config");
    let b = Fabric::from_config(cfg.clone())
        .node("b")
        .transport(TransportChoice::Shm)
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    let mut cfg_a = cfg;
    cfg_a.set_listen("b", b.local_addr()).unwrap();
    let a = Fabric::from_config(cfg_a)
        .node("a")
        .transport(TransportChoice::Shm)
        .start()
        .unwrap();
    (a, b)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29) ^ seed)
        .collect()
}

#[test]
fn frames_arriving_during_a_ping_run_are_delivered() {
    let (a, b) = pair();
    // Open the link (a dials b) before the run.
    let warm = a.ping("b", PingOptions::new().count(1).warmup(0)).unwrap();
    assert_eq!(warm.transport, TransportKind::Shm);
    std::thread::scope(|s| {
        let pinger = s.spawn(|| {
            a.ping(
                "b",
                PingOptions::new()
                    .count(20_000)
                    .warmup(0)
                    .timeout(Duration::from_secs(5)),
            )
        });
        // b sends to a while a's pinger holds a's ring consumer: the transfers complete only
        // if the pinger dispatches b's data (and a answers with acks).
        for i in 0..20u8 {
            b.send(
                "a",
                &pattern(10_000 + usize::from(i), i),
                SendOptions::new(),
            )
            .unwrap();
        }
        let stats = pinger.join().unwrap().unwrap();
        assert_eq!(
            (stats.sent, stats.received, stats.lost),
            (20_000, 20_000, 0)
        );
        assert_eq!(stats.transport, TransportKind::Shm);
    });
    for i in 0..20u8 {
        let m = a.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(&m.payload[..], &pattern(10_000 + usize::from(i), i)[..]);
    }
}
