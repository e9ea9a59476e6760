//! Frames as large as `max_packet_size` allows still travel over shared memory: the dialer
//! sizes the rings for its frames (the default 4 MiB ring holds 1 MiB frames).

use hyperfabric::transport::{TransportChoice, TransportKind};
use hyperfabric::SendOptions;
use std::time::Duration;

mod common;
use common::{pattern, start_pair, two_node_config};

#[test]
fn eight_mib_frames_cross_a_shared_memory_link() {
    let fabric = "profile = \"high_throughput\"\nmax_packet_size = 8388608\nwindow_bytes = 33554432\nconnect_timeout_ms = 1000";
    let cfg = two_node_config("sizes", fabric);
    let (a, b) = start_pair(cfg, TransportChoice::Shm);
    for (i, len) in [20 << 20, 8 << 20, 3].into_iter().enumerate() {
        let data = pattern(len, i as u8);
        let report = a.send("b", &data, SendOptions::new()).unwrap();
        assert_eq!(report.hops[0].transport, TransportKind::Shm);
        let msg = b.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(msg.payload.len(), len);
        assert!(msg.payload[..] == data[..], "transfer {i} damaged");
    }
}
