//! From the file as written ([`RawFile`]) to a checked [`FabricConfig`]. Every refusal names
//! the file, the field path and the reason.

use super::raw::{RawFabric, RawFile, RawLink, RawMetadata, RawNode, RawZone};
use super::{FabricConfig, Isolation, LinkConfig, NodeConfig, ProfileName, Tuning, ZoneConfig};
use crate::error::Error;
use crate::name::node_key;
use crate::node::{
    HardwareType, NodeMetadata, NodeSignature, SchedPolicy, DEFAULT_QPU_COHERENCE_US,
};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

/// Builds and checks the whole configuration.
pub(crate) fn build(raw: RawFile, origin: &str) -> Result<FabricConfig, Error> {
    let err = |field: String, reason: String| Error::config(origin, field, reason);
    let fabric = raw.fabric.unwrap_or_default();
    let name = fabric.name.clone().unwrap_or_default();
    if name.trim().is_empty() {
        return Err(err(
            "fabric.name".into(),
            "the fabric needs a non-empty name".into(),
        ));
    }
    if name.len() > crate::name::FABRIC_NAME_MAX_BYTES {
        return Err(err(
            "fabric.name".into(),
            format!(
                "the name has {} bytes (at most {}: it travels in every hello)",
                name.len(),
                crate::name::FABRIC_NAME_MAX_BYTES
            ),
        ));
    }
    let (profile, tuning) = tuning_of(&fabric).map_err(|(f, r)| err(format!("fabric.{f}"), r))?;
    let security = super::security::build(&fabric).map_err(|(f, r)| err(f, r))?;
    let zones = raw
        .zones
        .into_iter()
        .enumerate()
        .map(|(i, z)| zone(i, z))
        .collect::<Result<Vec<_>, _>>();
    let zones = zones.map_err(|(f, r)| err(f, r))?;
    check_zones(&zones).map_err(|(f, r)| err(f, r))?;
    if raw.nodes.is_empty() {
        return Err(err(
            "nodes".into(),
            "the fabric needs at least one [[nodes]] entry".into(),
        ));
    }
    let nodes = raw
        .nodes
        .into_iter()
        .enumerate()
        .map(|(i, n)| node(i, n))
        .collect::<Result<Vec<_>, _>>();
    let nodes = nodes.map_err(|(f, r)| err(f, r))?;
    let data_types = super::policy::build(&raw.data_types).map_err(|(f, r)| err(f, r))?;
    let alerts = raw
        .alerts
        .as_ref()
        .map(super::alerts::build)
        .transpose()
        .map_err(|(f, r)| err(f, r))?;
    let compression =
        super::compression::build(raw.compression.as_ref()).map_err(|(f, r)| err(f, r))?;
    let routing = super::routing::build(raw.routing.as_ref()).map_err(|(f, r)| err(f, r))?;
    let membership =
        super::membership::build(raw.membership.as_ref()).map_err(|(f, r)| err(f, r))?;
    let cfg = FabricConfig {
        membership,
        compression,
        routing,
        provenance: Default::default(),
        source: origin.to_string(),
        name,
        profile,
        tuning,
        nodes,
        links: Vec::new(),
        zones,
        data_types,
        faults: Vec::new(),
        alerts,
        security,
    };
    check_nodes(&cfg, node_key).map_err(|(f, r)| err(f, r))?;
    let links = raw
        .links
        .into_iter()
        .enumerate()
        .map(|(i, l)| link(i, l))
        .collect::<Result<Vec<_>, _>>();
    let links = links.map_err(|(f, r)| err(f, r))?;
    let cfg = FabricConfig { links, ..cfg };
    check_links(&cfg).map_err(|(f, r)| err(f, r))?;
    let ids: Vec<&str> = cfg.nodes.iter().map(NodeConfig::id).collect();
    let faults = super::faults::build(&raw.faults, &ids).map_err(|(f, r)| err(f, r))?;
    Ok(FabricConfig { faults, ..cfg })
}

type Problem = (String, String);

/// The profile's tuning with `[fabric]`'s overrides applied, checked.
fn tuning_of(f: &RawFabric) -> Result<(ProfileName, Tuning), Problem> {
    let profile = match &f.profile {
        Some(p) => p
            .parse::<ProfileName>()
            .map_err(|r| ("profile".to_string(), r))?,
        None => ProfileName::HighThroughput,
    };
    let mut t = Tuning::for_profile(profile);
    macro_rules! take {
        ($($field:ident),*) => { $( if let Some(v) = f.$field { t.$field = v; } )* };
    }
    take!(
        buffer_pool_buffers,
        buffer_pool_slot_bytes,
        max_packet_size,
        socket_buffer_bytes,
        tcp_nodelay,
        busy_poll,
        idle_strategy
    );
    take!(
        window_bytes,
        connect_timeout_ms,
        handshake_timeout_ms,
        send_timeout_ms,
        retransmit_timeout_ms
    );
    take!(
        max_retransmits,
        max_transfer_bytes,
        max_connections,
        qos_enabled,
        throttle_gbps
    );
    take!(max_pending_handshakes, on_conflict, connections_per_link);
    if let Some(cc) = &f.congestion_control {
        t.congestion_control = (cc != "default").then(|| cc.clone());
    }
    t.validate()?;
    Ok((profile, t))
}

fn zone(i: usize, z: RawZone) -> Result<ZoneConfig, Problem> {
    let at = |f: &str| format!("zones[{i}].{f}");
    crate::node::check_node_id(&z.id).map_err(|r| (at("id"), r.replace("node id", "zone id")))?;
    if z.zone_type.trim().is_empty() {
        return Err((at("type"), "zone type must not be empty".into()));
    }
    let isolation = z
        .isolation
        .parse::<Isolation>()
        .map_err(|r| (at("isolation"), r))?;
    Ok(ZoneConfig {
        id: z.id,
        zone_type: z.zone_type,
        isolation,
    })
}

fn check_zones(zones: &[ZoneConfig]) -> Result<(), Problem> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, z) in zones.iter().enumerate() {
        if let Some(first) = seen.insert(&z.id, i) {
            return Err((
                format!("zones[{i}].id"),
                format!("duplicate zone id \"{}\" (first at zones[{first}])", z.id),
            ));
        }
    }
    Ok(())
}

/// One `[[nodes]]` entry: hardware defaults, the file's values on top, then the checks.
fn node(i: usize, n: RawNode) -> Result<NodeConfig, Problem> {
    let at = |f: &str| format!("nodes[{i}].{f}");
    let hw = n
        .hardware
        .parse::<HardwareType>()
        .map_err(|r| (at("hardware"), r))?;
    let listen = match &n.listen {
        Some(a) => Some(a.parse::<SocketAddr>().map_err(|e| {
            (
                at("listen"),
                format!("\"{a}\" is not an address such as 127.0.0.1:7101 ({e})"),
            )
        })?),
        None => None,
    };
    let mut sig = NodeSignature::new(n.id, hw);
    sig.bandwidth_gbps = n.bandwidth_gbps.unwrap_or(sig.bandwidth_gbps);
    sig.latency_ns = n.latency_ns.unwrap_or(sig.latency_ns);
    sig.memory_gb = n.memory_gb.unwrap_or(sig.memory_gb);
    sig.compute_units = n.compute_units.unwrap_or(sig.compute_units);
    if hw == HardwareType::QuantumQpu {
        sig.quantum_coherence_time_us = Some(
            n.quantum_coherence_time_us
                .unwrap_or(DEFAULT_QPU_COHERENCE_US),
        );
    } else {
        sig.quantum_coherence_time_us = n.quantum_coherence_time_us;
    }
    sig.photonic_channels = n.photonic_channels;
    sig.neuromorphic_neurons = n.neuromorphic_neurons;
    sig.location = n.location;
    sig.rack_position = n.rack_position;
    sig.switch_port = n.switch_port;
    sig.metadata = match n.metadata {
        Some(m) => metadata(m).map_err(|(f, r)| (at(f), r))?,
        None => NodeMetadata::default(),
    };
    sig.validate_field().map_err(|(f, r)| (at(f), r))?;
    if let Some(host) = &n.host {
        if host.trim().is_empty() {
            return Err((at("host"), "host must not be empty when given".into()));
        }
    }
    Ok(NodeConfig {
        signature: sig,
        listen,
        zone: n.zone,
        host: n.host,
    })
}

fn metadata(m: RawMetadata) -> Result<NodeMetadata, (&'static str, String)> {
    let realtime = match &m.realtime {
        Some(s) => Some(
            s.parse::<SchedPolicy>()
                .map_err(|r| ("metadata.realtime", r))?,
        ),
        None => None,
    };
    Ok(NodeMetadata {
        interface_type: m.interface_type,
        mtu_size: m.mtu_size,
        numa_node: m.numa_node,
        cpu_affinity: m.cpu_affinity,
        tcp_window_size: m.tcp_window_size,
        interrupt_coalescing: m.interrupt_coalescing,
        nice: m.nice,
        realtime,
        realtime_priority: m.realtime_priority,
        mlock: m.mlock,
        huge_pages: m.huge_pages,
        extra: m.extra,
    })
}

/// Cross-node checks: unique ids, unique wire keys (`key` is [`node_key`] outside tests),
/// known zones, unique listen addresses.
fn check_nodes(cfg: &FabricConfig, key: fn(&str) -> u64) -> Result<(), Problem> {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut keys: HashMap<u64, usize> = HashMap::new();
    let mut listens: HashMap<SocketAddr, usize> = HashMap::new();
    for (i, n) in cfg.nodes.iter().enumerate() {
        let id = n.signature.node_id.as_str();
        if let Some(first) = ids.insert(id, i) {
            return Err((
                format!("nodes[{i}].id"),
                format!("duplicate node id \"{id}\" (first at nodes[{first}])"),
            ));
        }
        if let Some(first) = keys.insert(key(id), i) {
            let other = &cfg.nodes[first].signature.node_id;
            let reason = format!("node id \"{id}\" has the same wire key as \"{other}\" (nodes[{first}]); rename one");
            return Err((format!("nodes[{i}].id"), reason));
        }
        if let Some(zone) = &n.zone {
            if !cfg.zones.iter().any(|z| &z.id == zone) {
                return Err((
                    format!("nodes[{i}].zone"),
                    format!("unknown zone \"{zone}\" (no [[zones]] entry has this id)"),
                ));
            }
        }
        if let Some(addr) = n.listen {
            if let Some(first) = listens.insert(addr, i) {
                let reason = format!(
                    "listen address {addr} is already used by \"{}\" (nodes[{first}])",
                    cfg.nodes[first].signature.node_id
                );
                return Err((format!("nodes[{i}].listen"), reason));
            }
        }
    }
    Ok(())
}

fn link(i: usize, l: RawLink) -> Result<LinkConfig, Problem> {
    let at = |f: &str| format!("links[{i}].{f}");
    let between: [String; 2] = l.between.try_into().map_err(|v: Vec<String>| {
        (
            at("between"),
            format!("must name exactly two nodes (got {})", v.len()),
        )
    })?;
    if !l.bandwidth_gbps.is_finite() || l.bandwidth_gbps <= 0.0 {
        return Err((
            at("bandwidth_gbps"),
            format!("must be a finite number > 0 (got {})", l.bandwidth_gbps),
        ));
    }
    if let Some(cost) = l.cost {
        if !cost.is_finite() || cost < 0.0 {
            return Err((
                at("cost"),
                format!("must be a finite number >= 0 (got {cost})"),
            ));
        }
    }
    if let Some(f) = l.fidelity {
        if !f.is_finite() || f <= 0.0 || f > 1.0 {
            return Err((
                at("fidelity"),
                format!("must be a number with 0 < fidelity <= 1 (got {f})"),
            ));
        }
    }
    Ok(LinkConfig {
        between,
        bandwidth_gbps: l.bandwidth_gbps,
        latency_ns: l.latency_ns,
        cost: l.cost,
        fidelity: l.fidelity,
    })
}

/// Links name known nodes, never a node to itself, and each pair at most once.
fn check_links(cfg: &FabricConfig) -> Result<(), Problem> {
    let mut pairs: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (i, l) in cfg.links.iter().enumerate() {
        let at = format!("links[{i}].between");
        let [a, b] = &l.between;
        for end in [a, b] {
            if cfg.node(end).is_none() {
                return Err((at, format!("unknown node \"{end}\" (not in [[nodes]])")));
            }
        }
        if a == b {
            return Err((at, format!("a link cannot join node \"{a}\" to itself")));
        }
        let pair = if a <= b {
            (a.as_str(), b.as_str())
        } else {
            (b.as_str(), a.as_str())
        };
        if let Some(first) = pairs.insert(pair, i) {
            return Err((
                at,
                format!("duplicate link between \"{a}\" and \"{b}\" (first at links[{first}])"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_nodes() -> FabricConfig {
        let text = "[fabric]\nname = \"k\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n[[nodes]]\nid = \"b\"\nhardware = \"fpga-fabric\"\n";
        FabricConfig::from_toml_str(text, "k.toml").unwrap()
    }

    #[test]
    fn colliding_wire_keys_are_refused() {
        // A real 64-bit FNV collision is impractical to find here: use a key function
        // under which every id collides.
        let (field, reason) = check_nodes(&two_nodes(), |_| 7).unwrap_err();
        assert_eq!(field, "nodes[1].id");
        assert!(reason.contains("same wire key as \"a\""), "{reason}");
        assert_eq!(check_nodes(&two_nodes(), node_key), Ok(()));
    }

    #[test]
    fn an_unknown_realtime_policy_names_the_field() {
        let text = "[fabric]\nname = \"m\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\nmetadata = { realtime = \"idle\" }\n";
        let err = FabricConfig::from_toml_str(text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nodes[0].metadata.realtime") && err.contains("\"fifo\" or \"rr\""),
            "{err}"
        );
    }

    #[test]
    fn metadata_extra_keeps_string_keys() {
        let text = "[fabric]\nname = \"m\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\nmetadata = { role = \"storage\", numa_node = 1 }\n";
        let cfg = FabricConfig::from_toml_str(text, "m.toml").unwrap();
        let meta = &cfg.nodes[0].signature.metadata;
        assert_eq!(meta.extra.get("role").map(String::as_str), Some("storage"));
        assert_eq!(meta.numa_node, Some(1));
        let bad = text.replace("\"storage\"", "3");
        let err = FabricConfig::from_toml_str(&bad, "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.toml: field `nodes[0].metadata"), "{err}");
    }
}
