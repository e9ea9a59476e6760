//! Writing a configuration out: as a fabric file (`to_toml_string`) and as the plain-text
//! table `hfabric nodes` prints.

use super::{FabricConfig, NodeConfig, Tuning};
use crate::node::NodeMetadata;
use std::fmt::Write as _;
use toml::Value;

/// The fabric file for `cfg`; tuning fields that differ from the profile become overrides.
pub(crate) fn to_toml(cfg: &FabricConfig) -> String {
    let mut out = String::new();
    out.push_str("[fabric]\n");
    line(&mut out, "name", Value::from(cfg.name.as_str()));
    line(&mut out, "profile", Value::from(cfg.profile.as_str()));
    tuning_overrides(&mut out, &cfg.tuning, &Tuning::for_profile(cfg.profile));
    super::security::render(&mut out, &cfg.security);
    for n in &cfg.nodes {
        out.push_str("\n[[nodes]]\n");
        node(&mut out, n);
    }
    for l in &cfg.links {
        out.push_str("\n[[links]]\n");
        let between: Vec<Value> = l.between.iter().map(|s| Value::from(s.as_str())).collect();
        line(&mut out, "between", Value::Array(between));
        line(&mut out, "bandwidth_gbps", Value::Float(l.bandwidth_gbps));
        line(&mut out, "latency_ns", int(l.latency_ns));
        if let Some(cost) = l.cost {
            line(&mut out, "cost", Value::Float(cost));
        }
        if let Some(f) = l.fidelity {
            line(&mut out, "fidelity", Value::Float(f));
        }
    }
    for z in &cfg.zones {
        out.push_str("\n[[zones]]\n");
        line(&mut out, "id", Value::from(z.id.as_str()));
        line(&mut out, "type", Value::from(z.zone_type.as_str()));
        line(&mut out, "isolation", Value::from(z.isolation.as_str()));
    }
    for f in &cfg.faults {
        out.push_str("\n[[faults]]\n");
        if let Ok(Value::Table(t)) = Value::try_from(super::faults::raw_of(f)) {
            for (key, value) in t {
                line(&mut out, &key, value);
            }
        }
    }
    if cfg.compression != crate::compress::CompressionPolicy::default() {
        out.push_str("\n[compression]\n");
        if let Ok(Value::Table(t)) = Value::try_from(super::compression::to_raw(&cfg.compression)) {
            t.iter().for_each(|(k, v)| line(&mut out, k, v.clone()));
        }
    }
    if let Some(routing) = cfg.routing.to_raw() {
        out.push_str("\n[routing]\n");
        if let Ok(Value::Table(t)) = Value::try_from(routing) {
            t.iter().for_each(|(k, v)| line(&mut out, k, v.clone()));
        }
    }
    super::membership::render(&mut out, &cfg.membership);
    if let Some(alerts) = &cfg.alerts {
        out.push_str("\n[alerts]\n");
        match Value::try_from(alerts.to_raw()) {
            Ok(Value::Table(t)) => t.iter().for_each(|(k, v)| line(&mut out, k, v.clone())),
            _ => out.push_str("# alerts could not be written (a value does not fit in TOML)\n"),
        }
    }
    out
}

fn line(out: &mut String, key: &str, value: Value) {
    let _ = writeln!(out, "{key} = {value}");
}

/// TOML integers are i64; larger values (never in a checked config) are clamped.
fn int(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

fn tuning_overrides(out: &mut String, tuning: &Tuning, base: &Tuning) {
    let (Ok(Value::Table(mine)), Ok(Value::Table(theirs))) =
        (Value::try_from(tuning), Value::try_from(base))
    else {
        out.push_str("# tuning could not be written (a value does not fit in TOML)\n");
        return;
    };
    for (key, value) in &mine {
        if theirs.get(key) != Some(value) {
            line(out, key, value.clone());
        }
    }
    // `None` (kernel default) is absent from the table: say so when the profile has one.
    if tuning.congestion_control.is_none() && base.congestion_control.is_some() {
        line(out, "congestion_control", Value::from("default"));
    }
}

fn node(out: &mut String, n: &NodeConfig) {
    let s = &n.signature;
    line(out, "id", Value::from(s.node_id.as_str()));
    line(out, "hardware", Value::from(s.hardware_type.as_str()));
    line(out, "bandwidth_gbps", Value::Float(s.bandwidth_gbps));
    line(out, "latency_ns", int(s.latency_ns));
    line(out, "memory_gb", Value::Float(s.memory_gb));
    line(out, "compute_units", Value::from(s.compute_units));
    let strings = [
        ("listen", n.listen.map(|a| a.to_string())),
        ("host", n.host.clone()),
        ("zone", n.zone.clone()),
        ("location", s.location.clone()),
        ("rack_position", s.rack_position.clone()),
    ];
    for (key, value) in strings {
        if let Some(v) = value {
            line(out, key, Value::from(v));
        }
    }
    if let Some(p) = s.switch_port {
        line(out, "switch_port", Value::from(p));
    }
    if let Some(t) = s.quantum_coherence_time_us {
        line(out, "quantum_coherence_time_us", Value::Float(t));
    }
    if let Some(c) = s.photonic_channels {
        line(out, "photonic_channels", Value::from(c));
    }
    if let Some(n) = s.neuromorphic_neurons {
        line(out, "neuromorphic_neurons", int(n));
    }
    if s.metadata != NodeMetadata::default() {
        line(out, "metadata", metadata(&s.metadata));
    }
}

fn metadata(m: &NodeMetadata) -> Value {
    let mut t = toml::Table::new();
    for (k, v) in &m.extra {
        t.insert(k.clone(), Value::from(v.as_str()));
    }
    if let Some(i) = &m.interface_type {
        t.insert("interface_type".into(), Value::from(i.as_str()));
    }
    if let Some(w) = m.tcp_window_size {
        t.insert("tcp_window_size".into(), int(w));
    }
    if let Some(c) = m.interrupt_coalescing {
        t.insert("interrupt_coalescing".into(), Value::Boolean(c));
    }
    if let Some(mtu) = m.mtu_size {
        t.insert("mtu_size".into(), Value::from(mtu));
    }
    if let Some(numa) = m.numa_node {
        t.insert("numa_node".into(), Value::from(numa));
    }
    if !m.cpu_affinity.is_empty() {
        let cpus = m.cpu_affinity.iter().map(|&c| int(c as u64)).collect();
        t.insert("cpu_affinity".into(), Value::Array(cpus));
    }
    if let Some(n) = m.nice {
        t.insert("nice".into(), Value::from(n));
    }
    if let Some(p) = m.realtime {
        t.insert("realtime".into(), Value::from(p.name()));
    }
    if let Some(p) = m.realtime_priority {
        t.insert("realtime_priority".into(), Value::from(p));
    }
    for (key, on) in [("mlock", m.mlock), ("huge_pages", m.huge_pages)] {
        if let Some(on) = on {
            t.insert(key.into(), Value::Boolean(on));
        }
    }
    Value::Table(t)
}

/// The table `hfabric nodes` prints: one row per node, then the zones and the links.
pub fn nodes_table(cfg: &FabricConfig) -> String {
    let mut out = format!(
        "Fabric \"{}\" (profile {}, {} nodes)\n\n",
        cfg.name,
        cfg.profile,
        cfg.nodes.len()
    );
    let headers = [
        "Node",
        "Hardware",
        "Bandwidth (Gbps)",
        "Latency (ns)",
        "Memory (GB)",
        "Units",
        "Zone",
        "Listen",
    ];
    let rows = cfg
        .nodes
        .iter()
        .map(|n| {
            let s = &n.signature;
            vec![
                s.node_id.clone(),
                s.hardware_type.to_string(),
                number(s.bandwidth_gbps),
                s.latency_ns.to_string(),
                number(s.memory_gb),
                s.compute_units.to_string(),
                n.zone.clone().unwrap_or_else(|| "-".into()),
                n.listen.map_or_else(|| "-".into(), |a| a.to_string()),
            ]
        })
        .collect();
    out.push_str(&table(&headers, rows, &[2, 3, 4, 5]));
    out.push_str(&zones_section(cfg));
    out.push_str(&links_section(cfg));
    out
}

fn zones_section(cfg: &FabricConfig) -> String {
    let zones = cfg.zones.iter().map(|z| {
        vec![
            z.id.clone(),
            z.zone_type.clone(),
            z.isolation.to_string(),
            members(cfg, &z.id),
        ]
    });
    let body = table(
        &["Zone", "Type", "Isolation", "Members"],
        zones.collect(),
        &[],
    );
    format!("\nZones\n{body}")
}

fn links_section(cfg: &FabricConfig) -> String {
    let links = cfg.links.iter().map(|l| {
        let cost = l.cost.map_or_else(|| "-".into(), number);
        vec![
            format!("{} <-> {}", l.between[0], l.between[1]),
            number(l.bandwidth_gbps),
            l.latency_ns.to_string(),
            cost,
        ]
    });
    let headers = ["Link", "Bandwidth (Gbps)", "Latency (ns)", "Cost"];
    let body = table(&headers, links.collect(), &[1, 2, 3]);
    format!("\nLinks\n{body}")
}

fn members(cfg: &FabricConfig, zone: &str) -> String {
    let ids: Vec<&str> = cfg
        .nodes
        .iter()
        .filter(|n| n.zone.as_deref() == Some(zone))
        .map(|n| n.id())
        .collect();
    if ids.is_empty() {
        "-".into()
    } else {
        ids.join(", ")
    }
}

/// `400` rather than `400.0`, but keeps fractions (`0.025`).
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        x.to_string()
    }
}

/// Aligned columns separated by two spaces; columns listed in `right` are right-aligned.
fn table(headers: &[&str], rows: Vec<Vec<String>>, right: &[usize]) -> String {
    if rows.is_empty() {
        return "  (none)\n".to_string();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let format_row = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                if right.contains(&i) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = format_row(headers.iter().map(|h| h.to_string()).collect());
    out.push_str(&format_row(widths.iter().map(|&w| "-".repeat(w)).collect()));
    for row in rows {
        out.push_str(&format_row(row));
    }
    out
}
