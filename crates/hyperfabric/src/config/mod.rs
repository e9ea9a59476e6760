//! The fabric file (TOML): nodes, links, zones and a tuning profile.
//!
//! Reading goes in two steps, "parse, then check": [`raw`] deserializes the text into structs
//! that refuse unknown fields, then [`validate`] turns them into the checked public types.
//! Every problem is an [`Error::Config`] naming the file, the field path and the reason, e.g.
//! `fabric.toml: field `nodes[1].id`: duplicate node id "gpu-01" (first at nodes[0])`.

pub mod alerts;
mod compression;
pub mod effective;
pub mod faults;
pub mod membership;
mod policy;
mod profile;
mod raw;
mod render;
pub mod routing;
mod security;
mod targets;
mod validate;

pub use alerts::{AlertsConfig, Endpoint, EscalationTier};
pub use policy::{
    Compression, DataTypePolicy, Transform, DEFAULT_TOPK_FRACTION, PARAM_CACHE_BYTES,
};
pub use profile::{IdleStrategy, OnConflict, ProfileName, Tuning, POOL_SLOT_BYTES_MAX};
pub use render::nodes_table;
pub use routing::RoutingConfig;
pub use security::SecurityConfig;
pub use targets::{EmailTarget, HttpUrl, DEFAULT_RELAY, RECIPIENTS_MAX};

use crate::error::Error;
use crate::name::node_key;
use crate::node::NodeSignature;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

/// Largest fabric file we read (a typo in a path should not read a disk image).
pub const CONFIG_FILE_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// A checked fabric: every invariant listed in [`FabricConfig::from_toml_str`] holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FabricConfig {
    /// The file path, or an origin label such as `<embedded local.toml>`.
    pub source: String,
    pub name: String,
    pub profile: ProfileName,
    pub tuning: Tuning,
    pub nodes: Vec<NodeConfig>,
    pub links: Vec<LinkConfig>,
    pub zones: Vec<ZoneConfig>,
    /// `[data_types.<name>]`: per data type defaults (priority, compression, transform).
    pub data_types: Vec<(crate::types::DataType, DataTypePolicy)>,
    /// `[[faults]]`: fault injection for tests (see [`crate::transport::fault`]).
    pub faults: Vec<crate::transport::fault::FaultRule>,
    /// `[alerts]`: anomaly thresholds and alert endpoints (absent: no watcher runs).
    pub alerts: Option<alerts::AlertsConfig>,
    /// Membership secret and TLS (`secret_file`, `encryption_enabled`, `tls_*`).
    pub security: SecurityConfig,
    /// `[compression]`: what the adaptive compressor of `Compression::Auto` sends may do.
    pub compression: crate::compress::CompressionPolicy,
    /// `[routing]`: default strategy, predictor knobs and history, quantum routing knobs.
    pub routing: routing::RoutingConfig,
    /// `[membership]`: the etcd this fabric's records live in, and how to get in.
    pub membership: membership::MembershipConfig,
    /// Which fields the file set (for the effective-configuration report; not compared).
    #[serde(skip)]
    pub provenance: effective::Provenance,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeConfig {
    pub signature: NodeSignature,
    /// Where the node accepts connections; a node without one cannot be connected to.
    pub listen: Option<SocketAddr>,
    pub zone: Option<String>,
    pub host: Option<String>,
}

impl NodeConfig {
    pub fn id(&self) -> &str {
        &self.signature.node_id
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkConfig {
    pub between: [String; 2],
    pub bandwidth_gbps: f64,
    pub latency_ns: u64,
    pub cost: Option<f64>,
    /// Quantum state fidelity across the link, in (0, 1]; used by `quantum_optimized` routing.
    pub fidelity: Option<f64>,
}

impl LinkConfig {
    /// True if this link joins `a` and `b`, in either order.
    pub fn joins(&self, a: &str, b: &str) -> bool {
        let [x, y] = &self.between;
        (x == a && y == b) || (x == b && y == a)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneConfig {
    pub id: String,
    pub zone_type: String,
    pub isolation: Isolation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    None,
    Soft,
    Medium,
    Hard,
}

impl Isolation {
    pub const ALL: [Isolation; 4] = [
        Isolation::None,
        Isolation::Soft,
        Isolation::Medium,
        Isolation::Hard,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Isolation::None => "none",
            Isolation::Soft => "soft",
            Isolation::Medium => "medium",
            Isolation::Hard => "hard",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Isolation::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| {
                format!("unknown isolation \"{s}\" (expected one of: none, soft, medium, hard)")
            })
    }
}

impl FabricConfig {
    /// Reads and checks a fabric file; an unreadable file is reported on field `(file)`.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let origin = path.display().to_string();
        let file_err = |reason: String| Error::config(origin.clone(), "(file)", reason);
        let meta = std::fs::metadata(path).map_err(|e| file_err(format!("cannot read: {e}")))?;
        if meta.len() > CONFIG_FILE_MAX_BYTES {
            return Err(file_err(format!(
                "file is {} bytes (at most {CONFIG_FILE_MAX_BYTES})",
                meta.len()
            )));
        }
        // Read at most one byte past the limit: a device or a pipe (`/dev/zero`) reports a
        // length of 0 but never ends.
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(CONFIG_FILE_MAX_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| file_err(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > CONFIG_FILE_MAX_BYTES {
            return Err(file_err(format!(
                "more than {CONFIG_FILE_MAX_BYTES} bytes (is it a fabric file?)"
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| file_err(format!("not UTF-8 text: {e} (is it a fabric file?)")))?;
        Self::from_toml_str(&text, &origin)
    }

    /// Parses and checks fabric text. `origin` names it in errors. Checks: a non-empty name;
    /// a valid tuning; at least one node; valid, unique node ids with unique wire keys;
    /// zones unique and known; listen addresses unique; links between two distinct known
    /// nodes, at most one per pair, with positive bandwidth.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, Error> {
        let raw = raw::parse(text, origin)?;
        let mut cfg = validate::build(raw, origin)?;
        cfg.provenance = effective::Provenance::from_text(text);
        Ok(cfg)
    }

    pub fn node(&self, id: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.signature.node_id == id)
    }

    /// The node whose id hashes to `key` on the wire (keys are unique in a checked config).
    pub fn node_by_key(&self, key: u64) -> Option<&NodeConfig> {
        self.nodes
            .iter()
            .find(|n| node_key(&n.signature.node_id) == key)
    }

    /// The link joining `a` and `b`, in either order.
    pub fn link_between(&self, a: &str, b: &str) -> Option<&LinkConfig> {
        self.links.iter().find(|l| l.joins(a, b))
    }

    /// Sets where node `id` listens (e.g. after binding port 0); refuses an address that
    /// another node already uses.
    pub fn set_listen(&mut self, id: &str, addr: SocketAddr) -> Result<(), Error> {
        let index = self
            .nodes
            .iter()
            .position(|n| n.signature.node_id == id)
            .ok_or_else(|| Error::NodeNotFound {
                node: id.to_string(),
            })?;
        if let Some(other) = self
            .nodes
            .iter()
            .find(|n| n.listen == Some(addr) && n.signature.node_id != id)
        {
            let reason = format!(
                "listen address {addr} is already used by \"{}\"",
                other.signature.node_id
            );
            return Err(Error::config(
                self.source.clone(),
                format!("nodes[{index}].listen"),
                reason,
            ));
        }
        self.nodes[index].listen = Some(addr);
        Ok(())
    }

    /// The configuration as a fabric file that [`from_toml_str`](Self::from_toml_str) reads
    /// back equal (tuning fields that differ from the profile are written as overrides).
    pub fn to_toml_string(&self) -> String {
        render::to_toml(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::HardwareType;

    const GOOD: &str = r#"
[fabric]
name = "t"

[[nodes]]
id = "a"
hardware = "cpu-cluster"
listen = "127.0.0.1:7001"
zone = "z"

[[nodes]]
id = "b"
hardware = "quantum-qpu"

[[links]]
between = ["a", "b"]
bandwidth_gbps = 10
latency_ns = 500

[[zones]]
id = "z"
type = "compute_cluster"
isolation = "soft"
"#;

    #[test]
    fn an_endless_file_is_refused_after_a_bounded_read() {
        let e = FabricConfig::from_file(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    fn load(text: &str) -> Result<FabricConfig, Error> {
        FabricConfig::from_toml_str(text, "fabric.toml")
    }

    fn examples_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
    }

    #[test]
    fn good_file_loads_with_defaults() {
        let cfg = load(GOOD).unwrap();
        assert_eq!(cfg.profile, ProfileName::HighThroughput);
        assert_eq!(cfg.tuning, Tuning::for_profile(ProfileName::HighThroughput));
        let b = &cfg.node("b").unwrap().signature;
        assert_eq!(b.hardware_type, HardwareType::QuantumQpu);
        assert_eq!(
            b.compute_units,
            HardwareType::QuantumQpu.default_compute_units()
        );
        assert!(b.quantum_coherence_time_us.is_some());
        assert_eq!(
            cfg.node_by_key(node_key("a")).map(NodeConfig::id),
            Some("a")
        );
        assert_eq!(cfg.link_between("b", "a").map(|l| l.latency_ns), Some(500));
        assert!(cfg.link_between("a", "c").is_none());
    }

    #[test]
    fn override_in_fabric_wins_over_profile() {
        let text = GOOD.replace("name = \"t\"", "name = \"t\"\nprofile = \"low_latency\"\nmax_packet_size = 65536\ncongestion_control = \"cubic\"");
        let cfg = load(&text).unwrap();
        assert_eq!(cfg.profile, ProfileName::LowLatency);
        assert_eq!(cfg.tuning.max_packet_size, 65536);
        assert_eq!(cfg.tuning.congestion_control.as_deref(), Some("cubic"));
        assert_eq!(cfg.tuning.buffer_pool_buffers, 32);
        let text = GOOD.replace(
            "name = \"t\"",
            "name = \"t\"\ncongestion_control = \"default\"",
        );
        assert_eq!(load(&text).unwrap().tuning.congestion_control, None);
    }

    #[test]
    fn each_problem_names_its_field() {
        let swap = |from: &str, to: &str| GOOD.replacen(from, to, 1);
        let cases: Vec<(String, &str, &str)> = vec![
            (swap("name = \"t\"", "name = \"\""), "fabric.name", "non-empty"),
            (swap("name = \"t\"", "name = \"t\"\nprofile = \"fast\""), "fabric.profile", "unknown profile"),
            (swap("name = \"t\"", "name = \"t\"\nmax_packet_size = 100"), "fabric.max_packet_size", "512..="),
            (swap("name = \"t\"", "name = \"t\"\nwindow_bytes = 1024"), "fabric.window_bytes", "max_packet_size"),
            (swap("name = \"t\"", "name = \"t\"\nsend_timeout_ms = 0"), "fabric.send_timeout_ms", "1..="),
            (swap("name = \"t\"", "name = \"t\"\nmax_retransmits = 5000"), "fabric.max_retransmits", "0..=1000"),
            (swap("name = \"t\"", "name = \"t\"\nconnections_per_link = 17"), "fabric.connections_per_link", "1..=16"),
            (swap("id = \"b\"", "id = \"a\""), "nodes[1].id", "duplicate node id \"a\" (first at nodes[0])"),
            (swap("id = \"b\"", "id = \"b c\""), "nodes[1].id", "whitespace"),
            (swap("hardware = \"quantum-qpu\"", "hardware = \"tpu\""), "nodes[1].hardware", "nvidia-h100"),
            (swap("id = \"b\"", "id = \"b\"\nbandwidth_gbps = -5"), "nodes[1].bandwidth_gbps", "> 0"),
            (swap("id = \"b\"", "id = \"b\"\nmemory_gb = -1"), "nodes[1].memory_gb", ">= 0"),
            (swap("id = \"b\"", "id = \"b\"\nquantum_coherence_time_us = 0.0"), "nodes[1].quantum_coherence_time_us", "> 0"),
            (swap("id = \"b\"", "id = \"b\"\nmetadata = { mtu_size = 20 }"), "nodes[1].metadata.mtu_size", "68..=65535"),
            (swap("127.0.0.1:7001", "localhost"), "nodes[0].listen", "not an address"),
            (swap("id = \"b\"", "id = \"b\"\nlisten = \"127.0.0.1:7001\""), "nodes[1].listen", "already used by \"a\""),
            (swap("zone = \"z\"", "zone = \"y\""), "nodes[0].zone", "unknown zone \"y\""),
            (swap("[\"a\", \"b\"]", "[\"a\", \"c\"]"), "links[0].between", "unknown node \"c\""),
            (swap("[\"a\", \"b\"]", "[\"a\", \"a\"]"), "links[0].between", "to itself"),
            (swap("[\"a\", \"b\"]", "[\"a\"]"), "links[0].between", "exactly two"),
            (format!("{GOOD}\n[[links]]\nbetween = [\"b\", \"a\"]\nbandwidth_gbps = 1\nlatency_ns = 1\n"), "links[1].between", "duplicate link"),
            (swap("bandwidth_gbps = 10", "bandwidth_gbps = 0"), "links[0].bandwidth_gbps", "> 0"),
            (format!("{GOOD}\n[[zones]]\nid = \"z\"\ntype = \"x\"\nisolation = \"hard\"\n"), "zones[1].id", "duplicate zone id"),
            (swap("isolation = \"soft\"", "isolation = \"total\""), "zones[0].isolation", "unknown isolation"),
            (swap("latency_ns = 500", "latency_ns = \"fast\""), "links[0].latency_ns", "invalid type"),
        ];
        for (text, field, fragment) in cases {
            match load(&text) {
                Err(Error::Config {
                    file,
                    field: got,
                    reason,
                }) => {
                    assert_eq!(file, "fabric.toml");
                    assert_eq!(got, field, "reason was: {reason}");
                    assert!(
                        reason.contains(fragment),
                        "{field}: {reason:?} lacks {fragment:?}"
                    );
                }
                other => panic!("{field}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn no_nodes_is_refused() {
        let err = load("[fabric]\nname = \"empty\"\n").unwrap_err();
        assert!(
            matches!(&err, Error::Config { field, .. } if field == "nodes"),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_is_refused_by_name() {
        let err =
            load(&GOOD.replacen("id = \"b\"", "id = \"b\"\nbandwith_gbps = 5", 1)).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, Error::Config { field, .. } if field == "nodes[1].bandwith_gbps"),
            "{text}"
        );
        assert!(
            text.starts_with("fabric.toml: field `nodes[1].bandwith_gbps`: unknown field"),
            "{text}"
        );
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = FabricConfig::from_file(Path::new("/nonexistent/fabric.toml")).unwrap_err();
        assert!(
            matches!(&err, Error::Config { file, field, .. } if file.contains("nonexistent") && field == "(file)")
        );
    }

    #[test]
    fn round_trip_through_text() {
        let mut cfgs = vec![load(GOOD).unwrap()];
        for entry in std::fs::read_dir(examples_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                cfgs.push(FabricConfig::from_file(&path).unwrap());
            }
        }
        let mut tuned = load(GOOD).unwrap();
        tuned.tuning.congestion_control = None;
        tuned.tuning.max_packet_size = 8192;
        cfgs.push(tuned);
        for cfg in cfgs {
            let text = cfg.to_toml_string();
            let back = FabricConfig::from_toml_str(&text, &cfg.source)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, cfg, "{text}");
        }
    }

    #[test]
    fn every_example_validates() {
        let mut seen = 0;
        for entry in std::fs::read_dir(examples_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                FabricConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 2);
        let local = FabricConfig::from_file(&examples_dir().join("local.toml")).unwrap();
        assert_eq!(local.nodes.len(), 2);
        assert!(local.nodes.iter().all(|n| n.listen.is_some()));
    }

    #[test]
    fn set_listen_checks_node_and_address() {
        let mut cfg = load(GOOD).unwrap();
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        cfg.set_listen("b", addr).unwrap();
        assert_eq!(cfg.node("b").unwrap().listen, Some(addr));
        assert!(matches!(
            cfg.set_listen("zz", addr),
            Err(Error::NodeNotFound { .. })
        ));
        assert!(matches!(
            cfg.set_listen("a", addr),
            Err(Error::Config { .. })
        ));
    }

    #[test]
    fn nodes_table_lists_nodes_zones_and_links() {
        let cfg = FabricConfig::from_file(&examples_dir().join("lab.toml")).unwrap();
        let table = nodes_table(&cfg);
        for n in &cfg.nodes {
            assert!(table.contains(n.id()), "{table}");
        }
        assert!(table.contains("Bandwidth (Gbps)") && table.contains("Listen"));
        assert!(table.contains("\nZones\n") && table.contains("quantum_domain"));
        assert!(table.contains("\nLinks\n") && table.contains("gpu-01 <-> switch-1"));
        assert!(table.contains("qpu-01"));
    }
}
