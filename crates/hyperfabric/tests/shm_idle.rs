//! An idle pair of `high_throughput` nodes holding a shared-memory link costs no CPU, also
//! right after caller-driven traffic (its own test binary: the process's CPU time must not
//! include other tests running in parallel).

use hyperfabric::transport::TransportChoice;
use hyperfabric::{Fabric, SendOptions};
use std::time::Duration;

mod common;
use common::{pattern, start_pair, two_node_config};

const RECV: Duration = Duration::from_secs(5);

fn pair() -> (Fabric, Fabric) {
    let fabric = "profile = \"high_throughput\"\nconnect_timeout_ms = 1000";
    start_pair(two_node_config("idle", fabric), TransportChoice::Shm)
}

fn message(i: u32) -> Vec<u8> {
    pattern([64usize, 100 << 10][i as usize % 2], i as u8)
}

#[test]
fn an_idle_pair_holding_a_link_after_driven_traffic_costs_no_cpu() {
    let (a, b) = pair();
    for i in 0..200u32 {
        a.send("b", &message(i), SendOptions::new()).unwrap();
        b.recv_timeout(RECV).unwrap();
    }
    // The last lease runs out within a millisecond; then both nodes (four ring readers, the
    // TCP control readers) must sleep. A spinning thread would show ~2 s here.
    std::thread::sleep(Duration::from_millis(300));
    let cpu = || {
        hyperfabric::metrics::ProcessMetrics::read()
            .cpu_seconds_total
            .expect("/proc/self/stat")
    };
    let before = cpu();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu() - before;
    eprintln!("two idle nodes holding a shm link: {used:.2} s of CPU in 2 s");
    assert!(
        used <= 0.04,
        "two idle nodes used {used:.2} s of CPU in 2 s (limit: 2% of a core)"
    );
    drop((a, b));
}
