use super::super::alerts::{RawAlerts, RawTier};
use super::super::compression::RawCompression;
use super::super::faults::RawFault;
use super::super::membership::RawMembership;
use super::super::policy::RawDataTypePolicy;
use super::super::raw::{RawFabric, RawFile, RawLink, RawNode, RawZone};
use super::super::routing::RawRouting;
use super::*;

/// A fabric file that sets every field of every raw struct (checked below, so a new field
/// must be added here and classified in the report).
const FULL: &str = r#"
[fabric]
name = "full"
profile = "low_latency"
buffer_pool_buffers = 64
buffer_pool_slot_bytes = 65536
max_packet_size = 8192
socket_buffer_bytes = 1048576
tcp_nodelay = true
congestion_control = "cubic"
busy_poll = true
idle_strategy = "spin_yield"
window_bytes = 1048576
connect_timeout_ms = 1000
handshake_timeout_ms = 1000
send_timeout_ms = 1000
retransmit_timeout_ms = 100
max_retransmits = 3
max_transfer_bytes = 1048576
max_connections = 16
max_pending_handshakes = 8
on_conflict = "refuse"
qos_enabled = false
throttle_gbps = 0.0
connections_per_link = 2
secret_file = "secret.key"
encryption_enabled = true
tls_cert = "node.crt"
tls_key = "node.key"
tls_ca = "ca.crt"

[[nodes]]
id = "a"
hardware = "cpu-cluster"
bandwidth_gbps = 100
latency_ns = 1000
memory_gb = 64
compute_units = 8
listen = "127.0.0.1:7001"
host = "h1"
zone = "z"
location = "lab"
rack_position = "r1"
switch_port = 4
quantum_coherence_time_us = 10.0
photonic_channels = 2
neuromorphic_neurons = 100
metadata = { interface_type = "ethernet", mtu_size = 9000, numa_node = 0, cpu_affinity = [0], tcp_window_size = 16777216, interrupt_coalescing = true, nice = 5, realtime = "rr", realtime_priority = 10, mlock = true, huge_pages = true, role = "storage" }

[[nodes]]
id = "b"
hardware = "nvidia-h100"
metadata = { cpu_affinity = [1] }

[[links]]
between = ["a", "b"]
bandwidth_gbps = 10
latency_ns = 500
cost = 1.0
fidelity = 0.99

[[zones]]
id = "z"
type = "compute_cluster"
isolation = "soft"

[data_types.tensor]
priority = "high"
compression = "auto"
transform = "topk"
topk_fraction = 0.05

[[faults]]
from = "a"
to = "b"
drop = 0.1
corrupt = 0.1
duplicate = 0.1
delay_us = 5
cut = 0.0
seed = 7

[alerts]
latency_ms = 10.0
bandwidth_floor_gbps = 1.0
loss_ratio = 0.1
cpu_ratio = 0.9
memory_ratio = 0.9
zscore = 3.0
window = 16
interval_ms = 100
escalate_after_s = 1.0
rate_limit_per_min = 10
endpoints = ["log"]
auto_optimization = false

[[alerts.escalation]]
after_s = 5.0
endpoints = ["command:true"]

[compression]
threshold_bytes = 4096
max_compression_time_us = 500
min_compression_ratio = 1.5
threshold_bandwidth_gbps = 1.0
algorithms = ["lz4", "zstd"]

[routing]
enable_ml_routing = true
default_strategy = "predictive"
learning_rate = 0.01
training_samples = 20
model_update_interval_s = 1.0
history = "Cargo.toml"
fidelity_threshold = 0.8

[membership]
url = "etcds://127.0.0.1:2379/hf/full"
cacert = "etcd-ca.pem"
cert = "etcd-client.pem"
key = "etcd-client.key"
user = "hf-node"
password_file = "etcd-password"
"#;

/// The field names of a raw struct, as serde lists them when it refuses an unknown field.
fn fields_of<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
    let err = toml::from_str::<T>("zz_probe = 1").expect_err("the probe field is unknown");
    let message = err.message().to_string();
    let list = message
        .split("expected one of ")
        .nth(1)
        .or_else(|| message.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("no field list in {message:?}"));
    // "one of `a`, `b`, `c`", or "`a` or `b`" for two.
    list.split(", ")
        .flat_map(|f| f.split(" or "))
        .map(|f| f.trim().trim_matches('`').to_string())
        .collect()
}

/// `RawMetadata` accepts any extra key, so serde cannot list its named fields: they are
/// listed here (a new named field must be added to this list and to `FULL`).
const METADATA_FIELDS: [&str; 11] = [
    "interface_type",
    "mtu_size",
    "numa_node",
    "cpu_affinity",
    "tcp_window_size",
    "interrupt_coalescing",
    "nice",
    "realtime",
    "realtime_priority",
    "mlock",
    "huge_pages",
];

fn full() -> FabricConfig {
    FabricConfig::from_toml_str(FULL, "full.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// FULL and its variants for fields that exclude one another (`node_keys` and
/// `secret_file` may not be set together).
fn full_variants() -> [FabricConfig; 2] {
    let keys = FULL.replace(
        "secret_file = \"secret.key\"",
        "node_keys = \"keys\"\nobserver_keys = \"observers\"",
    );
    let keys = FabricConfig::from_toml_str(&keys, "full.toml").unwrap_or_else(|e| panic!("{e}"));
    [full(), keys]
}

#[test]
fn the_fixture_sets_every_raw_field() {
    let variants = full_variants();
    let set: Vec<String> = variants
        .iter()
        .flat_map(|cfg| cfg.provenance.fields().map(|(f, _)| normalise(f).0))
        .collect();
    let tables: Vec<(&str, Vec<String>)> = vec![
        ("fabric.", fields_of::<RawFabric>()),
        ("nodes.", fields_of::<RawNode>()),
        ("links.", fields_of::<RawLink>()),
        ("zones.", fields_of::<RawZone>()),
        ("data_types.tensor.", fields_of::<RawDataTypePolicy>()),
        ("faults.", fields_of::<RawFault>()),
        ("alerts.", fields_of::<RawAlerts>()),
        ("alerts.escalation.", fields_of::<RawTier>()),
        ("compression.", fields_of::<RawCompression>()),
        ("routing.", fields_of::<RawRouting>()),
        ("membership.", fields_of::<RawMembership>()),
        (
            "nodes.metadata.",
            METADATA_FIELDS.map(String::from).to_vec(),
        ),
    ];
    for top in fields_of::<RawFile>() {
        assert!(
            set.iter().any(|f| f.starts_with(&top)),
            "FULL lacks [{top}]"
        );
    }
    for (prefix, fields) in tables {
        assert!(fields.len() >= 2, "{prefix}: {fields:?}");
        for f in fields {
            if prefix == "routing." && crate::config::routing::REFUSED.iter().any(|r| r.0 == f) {
                continue; // refused at load (routing::tests::bad_values_name_the_field_and_the_reason)
            }
            if prefix == "membership." && f == "password" {
                continue; // refused at load (membership::tests::what_cannot_work_is_refused_naming_the_field)
            }
            let path = format!("{prefix}{f}");
            let nested = set.iter().any(|s| s.starts_with(&format!("{path}.")));
            assert!(set.contains(&path) || nested, "FULL does not set {path}");
        }
    }
}

#[test]
fn every_raw_field_is_reported() {
    for (cfg, me) in full_variants()
        .iter()
        .flat_map(|cfg| [(cfg, "a"), (cfg, "b")])
    {
        let report = EffectiveConfig::new(cfg, me);
        for (field, value) in cfg.provenance.fields() {
            let k = report
                .get(field)
                .unwrap_or_else(|| panic!("{field} missing from the report of {me}"));
            assert_eq!(&k.value, value);
            assert_eq!(k.source, Source::File);
        }
        let unknown: Vec<&Knob> = report
            .knobs
            .iter()
            .filter(|k| k.effect == Effect::Unclassified || k.detail.is_empty())
            .collect();
        assert!(unknown.is_empty(), "unclassified for {me}: {unknown:#?}");
    }
}

#[test]
fn unset_fields_come_from_the_profile_or_the_defaults() {
    let text = "[fabric]\nname = \"t\"\nprofile = \"low_latency\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n";
    let cfg = FabricConfig::from_toml_str(text, "t.toml").unwrap();
    let report = EffectiveConfig::new(&cfg, "a");
    let pool = report.get("fabric.buffer_pool_buffers").unwrap();
    assert_eq!(
        (pool.source, pool.value.clone()),
        (Source::Profile, Value::from(32))
    );
    let threshold = report.get("compression.threshold_bytes").unwrap();
    assert_eq!(threshold.source, Source::Default);
    assert_eq!(report.get("fabric.profile").unwrap().source, Source::File);
    let serialised = serde_json::to_value(&report).unwrap();
    assert!(serialised["knobs"].as_array().is_some_and(|k| k.len() > 20));
}

#[test]
fn another_nodes_placement_only_describes_it() {
    let cfg = full();
    let b = EffectiveConfig::new(&cfg, "b");
    let k = b.get("nodes[0].metadata.cpu_affinity").unwrap();
    assert_eq!(k.effect, Effect::Describes);
    let a = EffectiveConfig::new(&cfg, "a");
    let k = a.get("nodes[0].metadata.interrupt_coalescing").unwrap();
    assert_eq!(k.effect, Effect::Refused);
}

#[test]
fn record_replaces_the_static_effect() {
    let mut r = EffectiveConfig::new(&full(), "a");
    r.record(
        "nodes[0].metadata.tcp_window_size",
        Value::Null,
        Effect::Fallback,
        "capped",
    );
    let k = r.get("nodes[0].metadata.tcp_window_size").unwrap();
    assert_eq!((k.effect, k.detail.as_str()), (Effect::Fallback, "capped"));
    assert_eq!(k.value, Value::from(16777216));
}
