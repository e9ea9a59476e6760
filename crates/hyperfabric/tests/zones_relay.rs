//! Zones and relays with several nodes in one process, over real loopback TCP.

use hyperfabric::config::FabricConfig;
use hyperfabric::{Error, Fabric, MultipathConfig, SendOptions};
use std::time::Duration;

const FABRIC: &str = r#"
[fabric]
name = "zones"
send_timeout_ms = 3000
connect_timeout_ms = 1000

[[nodes]]
id = "a"
hardware = "nvidia-h100"
zone = "compute"
listen = "127.0.0.1:0"

[[nodes]]
id = "b"
hardware = "nvidia-a100"
zone = "compute"
listen = "127.0.0.1:1"

[[nodes]]
id = "q"
hardware = "quantum-qpu"
zone = "quantum"
listen = "127.0.0.1:2"

[[nodes]]
id = "r"
hardware = "photonic-switch"
zone = "quantum"
listen = "127.0.0.1:3"

[[zones]]
id = "compute"
type = "compute_cluster"
isolation = "soft"

[[zones]]
id = "quantum"
type = "quantum_lab"
isolation = "hard"
"#;

/// Starts every node on a free port, each knowing the others' real addresses.
fn start_all(ids: &[&str]) -> Vec<Fabric> {
    let base = FabricConfig::from_toml_str(FABRIC, "<zones>").unwrap();
    let mut addrs: Vec<(String, std::net::SocketAddr)> = Vec::new();
    let mut nodes: Vec<Fabric> = Vec::new();
    for id in ids {
        let mut cfg = base.clone();
        for (other, addr) in &addrs {
            cfg.set_listen(other, *addr).unwrap();
        }
        let f = Fabric::from_config(cfg)
            .node(*id)
            .listen("127.0.0.1:0".parse().unwrap())
            .start()
            .unwrap();
        addrs.push((id.to_string(), f.local_addr()));
        nodes.push(f);
    }
    nodes
}

#[test]
fn hard_isolated_zones_refuse_cross_zone_sends_at_the_source() {
    let nodes = start_all(&["b", "q", "a"]);
    let (b, a) = (&nodes[0], &nodes[2]);
    let err = a.send("q", b"secret", SendOptions::new()).unwrap_err();
    assert!(
        matches!(&err, Error::Rejected { reason } if reason.contains("hard-isolated")),
        "{err}"
    );
    a.send("b", b"fine", SendOptions::new()).unwrap();
    assert_eq!(
        b.recv_timeout(Duration::from_secs(5)).unwrap().payload,
        b"fine"
    );
}

#[test]
fn relays_forward_and_refuse_transit_through_a_hard_zone() {
    // b and q listen first so the relays and the source know their addresses.
    let nodes = start_all(&["b", "r", "q", "a"]);
    let (b, a) = (&nodes[0], &nodes[3]);
    // a -> r -> b: r sits in the hard-isolated quantum zone, so it refuses to carry compute traffic.
    let via_r = SendOptions::new().multipath(MultipathConfig::new(vec![("r".into(), 1.0)]));
    let err = a.send("b", b"through the lab", via_r).unwrap_err();
    assert!(
        // The refusal names r, which made it (docs/wire.md, "Who a refusal names"): the
        // sender takes a relay's refusal of its transfer.
        matches!(&err, Error::Rejected { reason } if reason.contains("transit") && reason.contains("`r`")),
        "{err}"
    );
    // a -> b directly still works, and a relay outside hard zones forwards (b relays to itself is direct).
    let report = a
        .send("b", &vec![9u8; 3 << 20], SendOptions::new())
        .unwrap();
    assert_eq!(report.path, ["a", "b"]);
    assert_eq!(
        b.recv_timeout(Duration::from_secs(5))
            .unwrap()
            .payload
            .len(),
        3 << 20
    );
}
