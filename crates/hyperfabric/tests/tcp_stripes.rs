//! `connections_per_link`: a bulk TCP link striped over N connections. N connections to the
//! peer's port are really established (counted in /proc/net/tcp), transfers spread over
//! them arrive byte-identical, and N = 1 keeps one connection. No timing is asserted.

use hyperfabric::transport::TransportChoice;
use hyperfabric::{Fabric, SendOptions};
use std::time::Duration;

mod common;
use common::{pattern, start_pair, two_node_config};

const RECV: Duration = Duration::from_secs(20);

fn pair(name: &str, n: u32) -> (Fabric, Fabric) {
    let lines = format!("profile = \"high_throughput\"\nconnections_per_link = {n}");
    start_pair(two_node_config(name, &lines), TransportChoice::Tcp)
}

/// Established IPv4 TCP sockets whose local port is `port` (the accepted ends of a listener).
fn established_at(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f.get(1).and_then(|a| a.rsplit(':').next());
            let port_hex = format!("{port:04X}");
            local_port == Some(port_hex.as_str()) && f.get(3) == Some(&"01")
        })
        .count()
}

/// Sends `count` transfers of `len` bytes (several chunks each) from `a` to `b`; every one
/// arrives byte-identical.
fn transfers_arrive(a: &Fabric, b: &Fabric, count: u8, len: usize) {
    for seed in 0..count {
        let data = pattern(len, seed);
        a.send("b", &data, SendOptions::new())
            .expect("send acknowledged");
        let msg = b.recv_timeout(RECV).expect("message arrives");
        assert_eq!(msg.payload.len(), data.len());
        assert!(msg.payload[..] == data[..], "bytes changed on the way");
    }
}

#[test]
fn a_striped_link_opens_n_connections_and_delivers_intact() {
    let (a, b) = pair("stripes-4", 4);
    assert_eq!(a.config().tuning.connections_per_link, 4);
    let port = b.local_addr().port();
    // 3.5 MiB: four chunks of the 1 MiB packet size, spread over the stripes.
    transfers_arrive(&a, &b, 12, (7 << 20) / 2);
    assert_eq!(established_at(port), 4, "connections to b's port");
    // Transfers from several threads at once over the stripes: each arrives whole.
    let sent: Vec<Vec<u8>> = (0..8u8).map(|s| pattern((3 << 20) / 2, s + 50)).collect();
    std::thread::scope(|scope| {
        for data in &sent {
            let a = &a;
            scope.spawn(move || a.send("b", data, SendOptions::new()).expect("acknowledged"));
        }
    });
    let mut seen = vec![false; sent.len()];
    for _ in 0..sent.len() {
        let msg = b.recv_timeout(RECV).expect("message arrives");
        let i = sent
            .iter()
            .position(|d| d[..] == msg.payload[..])
            .expect("a message that was sent, byte-identical");
        assert!(!std::mem::replace(&mut seen[i], true), "delivered twice");
    }
    assert_eq!(established_at(port), 4, "still four connections");
}

#[test]
fn one_connection_per_link_keeps_one() {
    let (a, b) = pair("stripes-1", 1);
    transfers_arrive(&a, &b, 4, (7 << 20) / 2);
    assert_eq!(established_at(b.local_addr().port()), 1);
}
