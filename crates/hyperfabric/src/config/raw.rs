//! The fabric file exactly as written: serde structs that refuse unknown fields, and the
//! mapping from a toml error to the field path it concerns.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub fabric: Option<RawFabric>,
    #[serde(default)]
    pub nodes: Vec<RawNode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<RawLink>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<RawZone>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data_types: BTreeMap<String, super::policy::RawDataTypePolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<super::faults::RawFault>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<super::alerts::RawAlerts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<super::compression::RawCompression>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<super::routing::RawRouting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<super::membership::RawMembership>,
}

/// `[fabric]`: the name, the profile, and any [`super::Tuning`] field as an override.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFabric {
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_pool_buffers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_pool_slot_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_packet_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_buffer_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_nodelay: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub congestion_control: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub busy_poll: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_strategy: Option<super::IdleStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retransmit_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retransmits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_transfer_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_handshakes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_conflict: Option<super::OnConflict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_gbps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_per_link: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_keys: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observer_keys: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub id: String,
    pub hardware: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_gbps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_gb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_units: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rack_position: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_port: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantum_coherence_time_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photonic_channels: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neuromorphic_neurons: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RawMetadata>,
}

/// `metadata = { … }`: the known keys, and any other key with a string value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RawMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_affinity: Vec<usize>,
    /// The guide writes an integer (bytes): this node's socket buffers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_window_size: Option<u64>,
    /// The guide writes a boolean; needs NIC (ethtool) access, refused with the reason if not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupt_coalescing: Option<bool>,
    /// Nice value of every thread of the node (-20..=19).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nice: Option<i32>,
    /// Real-time scheduling of every thread: "fifo" or "rr".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime: Option<String>,
    /// Its priority (1..=99, default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime_priority: Option<u32>,
    /// Lock the node's memory in RAM (mlockall).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mlock: Option<bool>,
    /// Transparent huge pages for the node's large buffers (MADV_HUGEPAGE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub huge_pages: Option<bool>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLink {
    pub between: Vec<String>,
    pub bandwidth_gbps: f64,
    pub latency_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawZone {
    pub id: String,
    #[serde(rename = "type")]
    pub zone_type: String,
    pub isolation: String,
}

/// Parses the text; a syntax or type error names the field it concerns when it can be found.
pub(crate) fn parse(text: &str, origin: &str) -> Result<RawFile, Error> {
    parse_as(text, origin)
}

/// [`parse`] for any file layout (e.g. a file of only `[[faults]]`).
pub(crate) fn parse_as<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, Error> {
    // Syntax first, so that a broken file is reported as such and not as a type error.
    if let Err(e) = text.parse::<toml::Table>() {
        return Err(Error::config(origin, "(syntax)", describe(text, &e)));
    }
    toml::from_str::<T>(text).map_err(|e| {
        let field = e
            .span()
            .and_then(|span| path_at(text, span.start))
            .map(|p| with_named_field(p, e.message()))
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "(syntax)".to_string());
        Error::config(origin, field, describe(text, &e))
    })
}

/// toml's message on one line, with the line and column it points at.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("{message} (line {line}, column {column})")
        }
        None => message,
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// "unknown field `x`" / "missing field `x`": append `x` unless the path already ends in it.
fn with_named_field(path: String, message: &str) -> String {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| {
            let rest = message.split(prefix).nth(1)?;
            rest.split('`').next().map(str::to_string)
        });
    match named {
        Some(name) if !path.ends_with(&name) => join(&path, &name),
        _ => path,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The field path (`nodes[1].metadata.mtu_size`) of the value at byte `offset`, found from
/// the table headers above it and the keys on its line. A best effort: `None` if unclear.
fn path_at(text: &str, offset: usize) -> Option<String> {
    let mut table = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut key_line: Option<&str> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let here = pos + line.len() > offset;
        if let Some(name) = header(trimmed, "[[", "]]") {
            *counts.entry(name.to_string()).or_insert(0) += 1;
            table = format!("{name}[{}]", counts[name] - 1);
            key_line = None;
        } else if let Some(name) = header(trimmed, "[", "]") {
            table = sub_table(name, &counts);
            key_line = None;
        } else if trimmed.contains('=') && !trimmed.starts_with('#') {
            if let Some(key) = line_key(trimmed) {
                key_line = Some(key);
                if here {
                    let inner = inline_key(line, offset - pos);
                    let path = join(&table, key);
                    return Some(inner.map_or(path.clone(), |k| join(&path, k)));
                }
            }
        }
        if here {
            return Some(key_line.map_or(table.clone(), |k| join(&table, k)));
        }
        pos += line.len();
    }
    None
}

fn header<'a>(line: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let inner = line
        .split('#')
        .next()?
        .trim()
        .strip_prefix(open)?
        .strip_suffix(close)?;
    (!inner.starts_with('[')).then_some(inner.trim())
}

/// `[nodes.metadata]` after three `[[nodes]]` is `nodes[2].metadata`.
fn sub_table(name: &str, counts: &BTreeMap<String, usize>) -> String {
    match name.split_once('.') {
        Some((first, rest)) if counts.contains_key(first) => {
            format!("{first}[{}].{rest}", counts[first] - 1)
        }
        _ => name.to_string(),
    }
}

fn line_key(line: &str) -> Option<&str> {
    let key = line.split('=').next()?.trim().trim_matches('"');
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    ok.then_some(key)
}

/// Inside `metadata = { a = 1, b = "x" }`, the key whose value sits at column `col`.
fn inline_key(line: &str, col: usize) -> Option<&str> {
    let open = line.find('{')?;
    if col <= open {
        return None;
    }
    let inside = line.get(open + 1..col)?;
    let last = inside.rsplit(',').next()?;
    line_key(last.trim_start_matches('{').trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(text: &str) -> String {
        match parse(text, "t.toml") {
            Err(Error::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn type_errors_name_the_key() {
        let text = "[fabric]\nname = \"x\"\n\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n\n[[nodes]]\nid = \"b\"\nhardware = \"cpu-cluster\"\nlatency_ns = \"slow\"\n";
        assert_eq!(field_of(text), "nodes[1].latency_ns");
    }

    #[test]
    fn inline_table_keys_are_found() {
        let text = "[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\nmetadata = { numa_node = 0, mtu_size = \"big\" }\n";
        assert_eq!(field_of(text), "nodes[0].metadata.mtu_size");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        assert_eq!(
            field_of("[[nodes]]\nhardware = \"cpu-cluster\"\n"),
            "nodes[0].id"
        );
        assert_eq!(
            field_of("[fabric]\nname = \"x\"\nspeed = 3\n"),
            "fabric.speed"
        );
        assert_eq!(field_of("[fabrik]\nname = \"x\"\n"), "fabrik");
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let err = parse("[fabric]\nname = \n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("(syntax)") && err.contains("line 2"), "{err}");
    }
}
