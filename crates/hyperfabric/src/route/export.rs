//! Topology exchange and drawing formats: table, BFS tree, JSON, Graphviz DOT, GraphML, GML
//! and a hand-made circular SVG; JSON and GraphML can be read back ([`TopologyDoc::from_json`],
//! [`formats::from_graphml`](super::formats::from_graphml)). Pure: strings in, strings out.

use super::Topology;
use crate::config::{FabricConfig, Isolation};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt::Write as _;

/// Largest document we import (nodes + links), a limit against hostile files.
pub const IMPORT_ITEMS_MAX: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocNode {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocLink {
    pub between: [String; 2],
    pub bandwidth_gbps: f64,
    pub latency_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocZone {
    pub id: String,
    pub isolation: Isolation,
}

/// A topology as data: what `hfabric topo --format json` prints and `--import` reads.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TopologyDoc {
    #[serde(default)]
    pub name: String,
    pub nodes: Vec<DocNode>,
    pub links: Vec<DocLink>,
    #[serde(default)]
    pub zones: Vec<DocZone>,
}

impl TopologyDoc {
    pub fn from_config(cfg: &FabricConfig) -> TopologyDoc {
        let nodes = cfg.nodes.iter().map(|n| DocNode {
            id: n.id().to_string(),
            hardware: Some(n.signature.hardware_type.as_str().to_string()),
            zone: n.zone.clone(),
            listen: n.listen.map(|a| a.to_string()),
        });
        let links = cfg.links.iter().map(|l| DocLink {
            between: l.between.clone(),
            bandwidth_gbps: l.bandwidth_gbps,
            latency_ns: l.latency_ns,
            cost: l.cost,
            fidelity: l.fidelity,
        });
        let zones = cfg.zones.iter().map(|z| DocZone {
            id: z.id.clone(),
            isolation: z.isolation,
        });
        TopologyDoc {
            name: cfg.name.clone(),
            nodes: nodes.collect(),
            links: links.collect(),
            zones: zones.collect(),
        }
    }

    /// The present nodes and links of a live topology (hardware and listen are not kept there).
    pub fn from_topology(t: &Topology) -> TopologyDoc {
        let zone = |z: Option<u32>| {
            z.and_then(|z| t.zones.get(z as usize))
                .map(|z| z.id.clone())
        };
        let nodes = t.nodes.iter().filter(|n| n.present).map(|n| DocNode {
            id: n.id.clone(),
            hardware: n.hardware.map(|h| h.as_str().to_string()),
            zone: zone(n.zone),
            listen: None,
        });
        let links = t.links.iter().filter(|l| l.present).map(|l| DocLink {
            between: [
                t.nodes[l.a as usize].id.clone(),
                t.nodes[l.b as usize].id.clone(),
            ],
            bandwidth_gbps: l.bandwidth_gbps,
            latency_ns: l.latency_ns,
            cost: Some(l.cost),
            fidelity: l.fidelity_given.then_some(l.fidelity),
        });
        let zones = t.zones.iter().map(|z| DocZone {
            id: z.id.clone(),
            isolation: z.isolation,
        });
        TopologyDoc {
            name: String::new(),
            nodes: nodes.collect(),
            links: links.collect(),
            zones: zones.collect(),
        }
    }

    /// The routing graph of this document.
    pub fn to_topology(&self) -> Topology {
        let mut t = Topology::new();
        for z in &self.zones {
            t.set_zone(&z.id, z.isolation);
        }
        for n in &self.nodes {
            t.add_node_id(&n.id, n.zone.as_deref());
        }
        for l in &self.links {
            let [a, b] = &l.between;
            let i = t.add_link_raw(a, b, l.bandwidth_gbps, l.latency_ns);
            if let Some(c) = l.cost.filter(|c| c.is_finite() && *c >= 0.0) {
                t.links[i as usize].cost = c;
            }
            if let Some(f) = l.fidelity {
                t.set_link_fidelity(a, b, f);
            }
        }
        t
    }

    /// Reads the JSON form; checks that links name known, distinct nodes.
    pub fn from_json(text: &str) -> Result<TopologyDoc, String> {
        let doc: TopologyDoc = serde_json::from_str(text).map_err(|e| e.to_string())?;
        doc.check()?;
        Ok(doc)
    }

    fn check(&self) -> Result<(), String> {
        if self.nodes.len() + self.links.len() > IMPORT_ITEMS_MAX {
            return Err(format!("more than {IMPORT_ITEMS_MAX} nodes and links"));
        }
        let known: std::collections::HashSet<&str> =
            self.nodes.iter().map(|n| n.id.as_str()).collect();
        if known.len() != self.nodes.len() {
            return Err("duplicate node id".into());
        }
        for (i, l) in self.links.iter().enumerate() {
            for end in &l.between {
                if !known.contains(end.as_str()) {
                    return Err(format!("links[{i}]: unknown node \"{end}\""));
                }
            }
            if l.between[0] == l.between[1] {
                return Err(format!("links[{i}]: a link cannot join a node to itself"));
            }
            if !l.bandwidth_gbps.is_finite() || l.bandwidth_gbps <= 0.0 {
                return Err(format!("links[{i}]: bandwidth_gbps must be > 0"));
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    fn degree(&self, id: &str) -> usize {
        self.links
            .iter()
            .filter(|l| l.between.iter().any(|e| e == id))
            .count()
    }

    fn neighbours<'a>(&'a self, id: &'a str) -> impl Iterator<Item = (&'a str, &'a DocLink)> {
        self.links.iter().filter_map(move |l| match &l.between {
            [a, b] if a == id => Some((b.as_str(), l)),
            [a, b] if b == id => Some((a.as_str(), l)),
            _ => None,
        })
    }

    /// One row per node: id, hardware, zone, degree, neighbours.
    pub fn to_table(&self) -> String {
        let w = self
            .nodes
            .iter()
            .map(|n| n.id.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!(
            "{:<w$}  {:<18}  {:<10}  {:>6}  Links\n",
            "Node", "Hardware", "Zone", "Degree"
        );
        for n in &self.nodes {
            let peers: Vec<&str> = self.neighbours(&n.id).map(|(p, _)| p).collect();
            let _ = writeln!(
                out,
                "{:<w$}  {:<18}  {:<10}  {:>6}  {}",
                n.id,
                n.hardware.as_deref().unwrap_or("-"),
                n.zone.as_deref().unwrap_or("-"),
                self.degree(&n.id),
                if peers.is_empty() {
                    "-".to_string()
                } else {
                    peers.join(", ")
                }
            );
        }
        let _ = writeln!(
            out,
            "\n{} nodes, {} links",
            self.nodes.len(),
            self.links.len()
        );
        out
    }

    /// A breadth-first tree from `root` (default: the first node), drawn depth-first;
    /// nodes it cannot reach are listed at the end.
    pub fn to_tree(&self, root: Option<&str>) -> Result<String, String> {
        let root = match root {
            Some(r) => self
                .nodes
                .iter()
                .position(|n| n.id == r)
                .ok_or(format!("unknown node \"{r}\""))?,
            None if self.nodes.is_empty() => return Err("the topology has no nodes".into()),
            None => 0,
        };
        let index: std::collections::HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut seen = vec![false; self.nodes.len()];
        let mut kids: Vec<Vec<(usize, String)>> = vec![Vec::new(); self.nodes.len()];
        seen[root] = true;
        let mut queue = VecDeque::from([root]);
        while let Some(u) = queue.pop_front() {
            for (peer, l) in self.neighbours(&self.nodes[u].id) {
                let Some(&v) = index.get(peer) else { continue };
                if !seen[v] {
                    seen[v] = true;
                    kids[u].push((
                        v,
                        format!("({} ns, {} Gbps)", l.latency_ns, l.bandwidth_gbps),
                    ));
                    queue.push_back(v);
                }
            }
        }
        let mut out = format!("{}\n", self.nodes[root].id);
        let mut stack: Vec<(usize, String, String)> = Vec::new();
        let push_kids = |stack: &mut Vec<(usize, String, String)>, u: usize, prefix: &str| {
            for (v, label) in kids[u].iter().rev() {
                stack.push((*v, label.clone(), prefix.to_string()));
            }
        };
        push_kids(&mut stack, root, "");
        while let Some((v, label, prefix)) = stack.pop() {
            let _ = writeln!(out, "{prefix}└─ {}  {label}", self.nodes[v].id);
            push_kids(&mut stack, v, &format!("{prefix}   "));
        }
        let unreached: Vec<&str> = (0..self.nodes.len())
            .filter(|&i| !seen[i])
            .map(|i| self.nodes[i].id.as_str())
            .collect();
        if !unreached.is_empty() {
            let _ = writeln!(out, "(not reached: {})", unreached.join(", "));
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
