//! Graph formats for other tools: Graphviz DOT, GraphML (write and read), GML and a
//! built-in circular-layout SVG for machines without Graphviz.

use super::export::{DocLink, DocNode, TopologyDoc};
use std::fmt::Write as _;

/// Escapes text for XML attributes and content.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn unxml(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Escapes a string for a DOT or GML quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn to_dot(doc: &TopologyDoc) -> String {
    let mut out = format!("graph {} {{\n  node [shape=box];\n", quoted(&doc.name));
    for n in &doc.nodes {
        let label = format!("{}\\n{}", n.id, n.hardware.as_deref().unwrap_or(""));
        let _ = writeln!(
            out,
            "  {} [label={}];",
            quoted(&n.id),
            quoted(&label).replace("\\\\n", "\\n")
        );
    }
    for l in &doc.links {
        let label = format!("{} ns / {} Gbps", l.latency_ns, l.bandwidth_gbps);
        let _ = writeln!(
            out,
            "  {} -- {} [label={}];",
            quoted(&l.between[0]),
            quoted(&l.between[1]),
            quoted(&label)
        );
    }
    out.push_str("}\n");
    out
}

pub fn to_gml(doc: &TopologyDoc) -> String {
    let mut out = String::from("graph [\n  directed 0\n");
    for (i, n) in doc.nodes.iter().enumerate() {
        let _ = writeln!(out, "  node [\n    id {i}\n    label {}", quoted(&n.id));
        if let Some(h) = &n.hardware {
            let _ = writeln!(out, "    hardware {}", quoted(h));
        }
        out.push_str("  ]\n");
    }
    let pos = |id: &str| {
        doc.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or(usize::MAX)
    };
    for l in &doc.links {
        let _ = writeln!(
            out,
            "  edge [\n    source {}\n    target {}\n    latency_ns {}\n    bandwidth_gbps {}\n  ]",
            pos(&l.between[0]),
            pos(&l.between[1]),
            l.latency_ns,
            l.bandwidth_gbps
        );
    }
    out.push_str("]\n");
    out
}

const GRAPHML_KEYS: [(&str, &str, &str, &str); 6] = [
    ("hardware", "node", "string", "hardware"),
    ("zone", "node", "string", "zone"),
    ("bandwidth_gbps", "edge", "double", "bandwidth_gbps"),
    ("latency_ns", "edge", "long", "latency_ns"),
    ("cost", "edge", "double", "cost"),
    ("fidelity", "edge", "double", "fidelity"),
];

pub fn to_graphml(doc: &TopologyDoc) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n");
    for (id, on, ty, name) in GRAPHML_KEYS {
        let _ = writeln!(
            out,
            "  <key id=\"{id}\" for=\"{on}\" attr.name=\"{name}\" attr.type=\"{ty}\"/>"
        );
    }
    let _ = writeln!(
        out,
        "  <graph id=\"{}\" edgedefault=\"undirected\">",
        xml(&doc.name)
    );
    for n in &doc.nodes {
        let _ = writeln!(out, "    <node id=\"{}\">", xml(&n.id));
        for (k, v) in [("hardware", &n.hardware), ("zone", &n.zone)] {
            if let Some(v) = v {
                let _ = writeln!(out, "      <data key=\"{k}\">{}</data>", xml(v));
            }
        }
        out.push_str("    </node>\n");
    }
    for l in &doc.links {
        let _ = writeln!(
            out,
            "    <edge source=\"{}\" target=\"{}\">",
            xml(&l.between[0]),
            xml(&l.between[1])
        );
        let _ = writeln!(
            out,
            "      <data key=\"bandwidth_gbps\">{}</data>",
            l.bandwidth_gbps
        );
        let _ = writeln!(
            out,
            "      <data key=\"latency_ns\">{}</data>",
            l.latency_ns
        );
        for (k, v) in [("cost", l.cost), ("fidelity", l.fidelity)] {
            if let Some(v) = v {
                let _ = writeln!(out, "      <data key=\"{k}\">{v}</data>");
            }
        }
        out.push_str("    </edge>\n");
    }
    out.push_str("  </graph>\n</graphml>\n");
    out
}

/// The value of attribute `name` in the tag text `tag` (`<node id="x" ...>`).
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(unxml(&tag[start..start + len]))
}

/// `(key, value)` of every `<data key="k">v</data>` inside `body`.
fn data(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in body.split("<data").skip(1) {
        let Some(close) = part.find('>') else {
            continue;
        };
        let Some(end) = part.find("</data>") else {
            continue;
        };
        if let (Some(k), true) = (attr(&part[..close], "key"), close < end) {
            out.push((k, unxml(part[close + 1..end].trim())));
        }
    }
    out
}

/// Elements `<tag ...>...</tag>` or `<tag .../>`: (opening tag text, body).
fn elements<'a>(text: &'a str, tag: &str) -> Vec<(&'a str, &'a str)> {
    let (open, close) = (format!("<{tag} "), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i..];
        let Some(gt) = rest.find('>') else { break };
        let head = &rest[..gt];
        if head.ends_with('/') {
            out.push((head, ""));
            rest = &rest[gt + 1..];
            continue;
        }
        let Some(end) = rest.find(&close) else { break };
        out.push((head, &rest[gt + 1..end]));
        rest = &rest[end + close.len()..];
    }
    out
}

/// Reads the GraphML this module writes (and simple GraphML from other tools: node ids,
/// edge source/target, data keys named as ours). Missing bandwidth defaults to 1 Gbps.
pub fn from_graphml(text: &str) -> Result<TopologyDoc, String> {
    if !text.contains("<graphml") {
        return Err("not a GraphML document (no <graphml> element)".into());
    }
    let name = elements(text, "graph")
        .first()
        .and_then(|(h, _)| attr(h, "id"))
        .unwrap_or_default();
    let mut doc = TopologyDoc {
        name,
        ..TopologyDoc::default()
    };
    for (head, body) in elements(text, "node") {
        let id = attr(head, "id").ok_or("a <node> has no id")?;
        let d = data(body);
        let get = |k: &str| d.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        doc.nodes.push(DocNode {
            id,
            hardware: get("hardware"),
            zone: get("zone"),
            listen: None,
        });
    }
    for (head, body) in elements(text, "edge") {
        let (Some(a), Some(b)) = (attr(head, "source"), attr(head, "target")) else {
            return Err("an <edge> lacks source or target".into());
        };
        let d = data(body);
        let num = |k: &str| {
            d.iter()
                .find(|(key, _)| key == k)
                .and_then(|(_, v)| v.parse::<f64>().ok())
        };
        doc.links.push(DocLink {
            between: [a, b],
            bandwidth_gbps: num("bandwidth_gbps").unwrap_or(1.0),
            latency_ns: num("latency_ns").map_or(0, |v| v.max(0.0) as u64),
            cost: num("cost"),
            fidelity: num("fidelity"),
        });
    }
    let json = serde_json::to_string(&doc).map_err(|e| e.to_string())?;
    TopologyDoc::from_json(&json)
}

/// Nodes on a circle, links as lines, labels beside the nodes.
pub fn to_svg(doc: &TopologyDoc) -> String {
    let n = doc.nodes.len().max(1) as f64;
    let radius = (60.0 * n / std::f64::consts::TAU).max(150.0);
    let size = 2.0 * radius + 240.0;
    let c = size / 2.0;
    let at = |i: usize| {
        let a = i as f64 / n * std::f64::consts::TAU;
        (c + radius * a.cos(), c + radius * a.sin())
    };
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size:.0}\" height=\"{size:.0}\" viewBox=\"0 0 {size:.0} {size:.0}\">\n  <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for l in &doc.links {
        let pos = |id: &str| doc.nodes.iter().position(|x| x.id == id);
        if let (Some(a), Some(b)) = (pos(&l.between[0]), pos(&l.between[1])) {
            let ((x1, y1), (x2, y2)) = (at(a), at(b));
            let _ = writeln!(out, "  <line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#888\"><title>{} ns, {} Gbps</title></line>", l.latency_ns, l.bandwidth_gbps);
        }
    }
    for (i, node) in doc.nodes.iter().enumerate() {
        let (x, y) = at(i);
        let _ = writeln!(
            out,
            "  <circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"8\" fill=\"#3b82f6\"/>"
        );
        let _ = writeln!(
            out,
            "  <text x=\"{:.1}\" y=\"{:.1}\" font-family=\"sans-serif\" font-size=\"12\">{}</text>",
            x + 11.0,
            y + 4.0,
            xml(&node.id)
        );
    }
    out.push_str("</svg>\n");
    out
}
