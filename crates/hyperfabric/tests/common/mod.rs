//! Helpers shared by the in-process tests: two nodes of one fabric started in this process.
#![allow(dead_code)]

use hyperfabric::config::FabricConfig;
use hyperfabric::transport::TransportChoice;
use hyperfabric::Fabric;

/// Starts node `b` on an ephemeral loopback port, then node `a` knowing where `b` listens.
pub fn start_pair(cfg: FabricConfig, transport: TransportChoice) -> (Fabric, Fabric) {
    let b = Fabric::from_config(cfg.clone())
        .node("b")
        .transport(transport)
        .listen("127.0.0.1:0".parse().expect("loopback address"))
        .start()
        .expect("node b starts");
    let mut cfg_a = cfg;
    cfg_a.set_listen("b", b.local_addr()).expect("b's address");
    let a = Fabric::from_config(cfg_a)
        .node("a")
        .transport(transport)
        .start()
        .expect("node a starts");
    (a, b)
}

/// `len` bytes of a pattern that differs with `seed` (misplaced bytes show).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// A fabric of two nodes, `a` and `b`, on loopback (`start_pair` fills in b's port), with
/// `fabric_lines` (TOML `key = value` lines) under `[fabric]` after its name.
pub fn two_node_config(name: &str, fabric_lines: &str) -> FabricConfig {
    FabricConfig::from_toml_str(&two_node_toml(name, fabric_lines), "<test>").expect("valid config")
}

/// The text of [`two_node_config`], for fabrics that add nodes, links or sections after it.
pub fn two_node_toml(name: &str, fabric_lines: &str) -> String {
    format!(
        r#"
[fabric]
name = "{name}"
{fabric_lines}

[[nodes]]
id = "a"
hardware = "nvidia-h100"
listen = "127.0.0.1:0"

[[nodes]]
id = "b"
hardware = "amd-mi300x"
listen = "127.0.0.1:1"
"#
    )
}

/// `n` nodes `r0..r{n-1}` of one fabric started in this process, each on a loopback port
/// picked free just before (listeners bound at once, then released for the nodes).
pub fn start_mesh(n: usize, fabric_lines: &str, transport: TransportChoice) -> Vec<Fabric> {
    let ports: Vec<u16> = {
        let held: Vec<std::net::TcpListener> = (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
            .collect();
        held.iter()
            .map(|l| l.local_addr().expect("bound address").port())
            .collect()
    };
    let mut toml = format!("[fabric]\nname = \"mesh\"\n{fabric_lines}\n");
    for (i, port) in ports.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[nodes]]\nid = \"r{i}\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:{port}\"\n"
        ));
    }
    let cfg = FabricConfig::from_toml_str(&toml, "<mesh>").expect("valid mesh config");
    (0..n)
        .map(|i| {
            Fabric::from_config(cfg.clone())
                .node(format!("r{i}"))
                .transport(transport)
                .start()
                .expect("mesh node starts")
        })
        .collect()
}

/// The rank names of [`start_mesh`].
pub fn mesh_ranks(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}")).collect()
}

/// A committed seed file: rewritten with `bytes` when `write` (`HF_WRITE_SEEDS=1`), else
/// checked to hold exactly them.
pub fn seed_file(path: &std::path::Path, bytes: &[u8], write: bool) {
    if write {
        std::fs::write(path, bytes).expect("write the seed file");
    } else {
        let on_disk = std::fs::read(path).unwrap_or_default();
        assert_eq!(
            on_disk,
            bytes,
            "{} is stale; rerun with HF_WRITE_SEEDS=1",
            path.display()
        );
    }
}
