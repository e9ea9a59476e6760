//! Prometheus text exposition (format 0.0.4) of a [`NodeMetrics`] snapshot: a pure function,
//! so what a scrape returns is exactly what the snapshot holds.
//!
//! Names carry the `hyperfabric_` prefix and their unit (`_bytes`, `_seconds`, `_total` for
//! counters); labels are `node`, `peer`, `transport` and, for bytes sent, `priority`.

use super::{LatencySummary, LinkMetrics, NodeMetrics, ProcessMetrics, StatsSnapshot};
use crate::types::Priority;
use std::fmt::Write;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `m` in the Prometheus text format.
pub fn render(m: &NodeMetrics) -> String {
    let mut o = Out {
        text: String::with_capacity(8192),
        node: &m.node,
    };
    node_families(&mut o, m);
    link_families(&mut o, &m.links);
    latency_family(
        &mut o,
        "hyperfabric_ping_latency_seconds",
        "One-way ping latency (half the round trip) per link.",
        &m.links,
        |l| &l.ping_latency,
    );
    latency_family(
        &mut o,
        "hyperfabric_transfer_latency_seconds",
        "Time from the start of a transfer to its end-to-end acknowledgement, per link.",
        &m.links,
        |l| &l.transfer_latency,
    );
    o.text
}

struct Out<'a> {
    text: String,
    node: &'a str,
}

impl Out<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; the `node` label comes first on every sample.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        let _ = write!(self.text, "{name}{{node=\"{}\"", escape(self.node));
        for (k, v) in labels {
            let _ = write!(self.text, ",{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(self.text, "}} {}", value.into());
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl Into<Value>) {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A sample value: integers stay exact, floats use Prometheus' spelling of infinities.
enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) if v.is_nan() => f.write_str("NaN"),
            Value::Float(v) if v.is_infinite() => {
                f.write_str(if *v > 0.0 { "+Inf" } else { "-Inf" })
            }
            Value::Float(v) => write!(f, "{v}"),
        }
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A node-wide counter: name, help, its value in the totals.
type NodeCounter = (&'static str, &'static str, fn(&StatsSnapshot) -> u64);

const NODE_COUNTERS: [NodeCounter; 12] = [
    (
        "hyperfabric_node_payload_bytes_sent_total",
        "Transfer bytes (with frame headers) this node sent as a source.",
        |t| t.bytes_sent,
    ),
    (
        "hyperfabric_node_payload_bytes_received_total",
        "Transfer bytes (with frame headers) this node received as a destination.",
        |t| t.bytes_received,
    ),
    (
        "hyperfabric_node_transfers_sent_total",
        "Transfers acknowledged end to end.",
        |t| t.transfers_sent,
    ),
    (
        "hyperfabric_node_transfers_received_total",
        "Transfers received complete.",
        |t| t.transfers_received,
    ),
    (
        "hyperfabric_node_transfers_failed_total",
        "Transfers that ended in an error.",
        |t| t.transfers_failed,
    ),
    (
        "hyperfabric_node_retransmitted_bytes_total",
        "Bytes sent again after loss.",
        |t| t.retransmitted_bytes,
    ),
    (
        "hyperfabric_node_connections_rejected_total",
        "Connections refused (limit, bad hello).",
        |t| t.connections_rejected,
    ),
    (
        "hyperfabric_node_protocol_errors_total",
        "Connections closed for a protocol violation.",
        |t| t.protocol_errors,
    ),
    (
        "hyperfabric_node_forwarded_frames_total",
        "Frames relayed for other nodes.",
        |t| t.frames_forwarded,
    ),
    (
        "hyperfabric_node_forwarded_bytes_total",
        "Payload bytes relayed for other nodes.",
        |t| t.bytes_forwarded,
    ),
    (
        "hyperfabric_node_content_mismatches_total",
        "Sends failed: the destination signed for other content (a relay altered it).",
        |t| t.content_mismatches,
    ),
    (
        "hyperfabric_node_origin_refusals_total",
        "Relayed frames refused: their sender's origin signature was missing or wrong.",
        |t| t.origin_refusals,
    ),
];

/// A process or machine gauge: name, help, its value when the platform reports it.
type ProcessGauge = (
    &'static str,
    &'static str,
    fn(&ProcessMetrics) -> Option<Value>,
);

const PROCESS_GAUGES: [ProcessGauge; 6] = [
    (
        "hyperfabric_process_cpu_seconds_total",
        "User and system CPU time of the process.",
        |p| p.cpu_seconds_total.map(Value::from),
    ),
    (
        "hyperfabric_process_cpu_usage_ratio",
        "CPU used over the last rate window, in cores (1 = one core busy).",
        |p| p.cpu_percent.map(|v| Value::from(v / 100.0)),
    ),
    (
        "hyperfabric_process_resident_memory_bytes",
        "Resident memory of the process.",
        |p| p.resident_memory_bytes.map(Value::from),
    ),
    (
        "hyperfabric_process_peak_resident_memory_bytes",
        "Peak resident memory of the process.",
        |p| p.peak_resident_memory_bytes.map(Value::from),
    ),
    (
        "hyperfabric_machine_memory_bytes",
        "Physical memory of the machine.",
        |p| p.memory_total_bytes.map(Value::from),
    ),
    (
        "hyperfabric_process_threads",
        "Threads of the process.",
        |p| p.threads.map(Value::from),
    ),
];

fn node_families(o: &mut Out, m: &NodeMetrics) {
    o.gauge(
        "hyperfabric_uptime_seconds",
        "Seconds since the node started.",
        m.uptime_seconds,
    );
    for (name, help, get) in NODE_COUNTERS {
        o.gauge(name, help, get(&m.totals));
    }
    o.gauge(
        "hyperfabric_open_connections",
        "Connections open now.",
        m.totals.open_connections as u64,
    );
    for (name, help, get) in PROCESS_GAUGES {
        if let Some(v) = get(&m.process) {
            o.gauge(name, help, v);
        }
    }
    let name = "hyperfabric_queue_depth";
    o.family(name, "gauge", "Work waiting inside the node, per queue.");
    let q = &m.queues;
    for (queue, v) in [
        ("outgoing_transfers", q.outgoing_transfers),
        ("incoming_transfers", q.incoming_transfers),
        ("undelivered_messages", q.undelivered_messages),
        ("waiting_writers", q.waiting_writers),
    ] {
        o.sample(name, &[("queue", queue)], v);
    }
}

/// A per-link counter or gauge, labelled peer and transport.
type LinkField = fn(&LinkMetrics) -> Value;

/// Per-link families: name, kind, help, value.
const LINK_FIELDS: [(&str, &str, &str, LinkField); 12] = [
    (
        "hyperfabric_bytes_received_total",
        "counter",
        "Wire bytes (headers included) received from a peer.",
        |l| l.bytes_received.into(),
    ),
    (
        "hyperfabric_frames_sent_total",
        "counter",
        "Frames sent to a peer.",
        |l| l.frames_sent.into(),
    ),
    (
        "hyperfabric_frames_received_total",
        "counter",
        "Frames received from a peer.",
        |l| l.frames_received.into(),
    ),
    (
        "hyperfabric_transfers_total",
        "counter",
        "Transfers to a peer acknowledged end to end.",
        |l| l.transfers_sent.into(),
    ),
    (
        "hyperfabric_transfers_failed_total",
        "counter",
        "Transfers to a peer that failed.",
        |l| l.transfers_failed.into(),
    ),
    (
        "hyperfabric_retransmitted_bytes_total",
        "counter",
        "Bytes sent to a peer again after loss.",
        |l| l.retransmitted_bytes.into(),
    ),
    (
        "hyperfabric_pings_total",
        "counter",
        "Pings sent to a peer.",
        |l| l.pings_sent.into(),
    ),
    (
        "hyperfabric_pings_lost_total",
        "counter",
        "Pings to a peer that got no pong in time.",
        |l| l.pings_lost.into(),
    ),
    (
        "hyperfabric_drops_total",
        "counter",
        "Lost pings plus failed transfers, per peer.",
        |l| l.drops.into(),
    ),
    (
        "hyperfabric_link_up",
        "gauge",
        "1 while a connection to the peer is open.",
        |l| u64::from(l.connected).into(),
    ),
    (
        "hyperfabric_send_throughput_bytes_per_second",
        "gauge",
        "Wire bytes per second sent to a peer over the last rate window.",
        |l| l.send_bytes_per_second.into(),
    ),
    (
        "hyperfabric_receive_throughput_bytes_per_second",
        "gauge",
        "Wire bytes per second received from a peer over the last rate window.",
        |l| l.receive_bytes_per_second.into(),
    ),
];

fn link_families(o: &mut Out, links: &[LinkMetrics]) {
    let name = "hyperfabric_bytes_sent_total";
    o.family(
        name,
        "counter",
        "Wire bytes (headers included) sent to a peer, per priority.",
    );
    for l in links {
        for (i, p) in Priority::ALL.iter().enumerate() {
            let labels = [
                ("peer", l.peer.as_str()),
                ("transport", l.transport.as_str()),
                ("priority", p.as_str()),
            ];
            o.sample(name, &labels, l.bytes_sent_by_priority[i]);
        }
    }
    for (name, kind, help, get) in LINK_FIELDS {
        o.family(name, kind, help);
        for l in links {
            o.sample(
                name,
                &[("peer", &l.peer), ("transport", &l.transport)],
                get(l),
            );
        }
    }
    let name = "hyperfabric_link_utilisation_ratio";
    o.family(
        name,
        "gauge",
        "Send throughput over the link's nominal capacity (fabric file).",
    );
    for l in links {
        if let Some(u) = l.utilisation {
            o.sample(name, &[("peer", &l.peer), ("transport", &l.transport)], u);
        }
    }
}

fn latency_family(
    o: &mut Out,
    name: &str,
    help: &str,
    links: &[LinkMetrics],
    get: fn(&LinkMetrics) -> &LatencySummary,
) {
    o.family(name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for l in links {
        let s = get(l);
        let base = [
            ("peer", l.peer.as_str()),
            ("transport", l.transport.as_str()),
        ];
        for (le, count) in &s.buckets {
            let le = Value::Float(*le).to_string();
            o.sample(&bucket, &[base[0], base[1], ("le", &le)], *count);
        }
        o.sample(&bucket, &[base[0], base[1], ("le", "+Inf")], s.count);
        o.sample(&format!("{name}_sum"), &base, s.sum_seconds);
        o.sample(&format!("{name}_count"), &base, s.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_escaped_labels() {
        let mut m = NodeMetrics {
            node: "gpu-\"1\"".into(),
            ..Default::default()
        };
        let link = crate::metrics::LinkCounters::new("b\\c", Some(1.0));
        link.on_sent(1, 128);
        link.on_pings(2, &[2_000]);
        m.links.push(link.snapshot());
        m.links[0].transport = "tcp".into();
        let text = render(&m);
        assert!(text.contains("# TYPE hyperfabric_bytes_sent_total counter\n"));
        assert!(text.contains(
            "hyperfabric_bytes_sent_total{node=\"gpu-\\\"1\\\"\",peer=\"b\\\\c\",transport=\"tcp\",priority=\"high\"} 128\n"
        ));
        assert!(text.contains("hyperfabric_ping_latency_seconds_bucket{node=\"gpu-\\\"1\\\"\",peer=\"b\\\\c\",transport=\"tcp\",le=\"+Inf\"} 1\n"));
        assert!(text.contains("le=\"0.0000025\"} 1\n"), "{text}");
        assert!(text.contains("hyperfabric_pings_lost_total{"));
        // Every sample line belongs to a family announced before it.
        let mut announced = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                announced.insert(rest.split(' ').next().unwrap_or("").to_owned());
            } else if !line.starts_with('#') {
                let name = line.split('{').next().unwrap_or("");
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| announced.contains(*f)))
                    .unwrap_or(name);
                assert!(announced.contains(family), "{line}");
            }
        }
    }
}
