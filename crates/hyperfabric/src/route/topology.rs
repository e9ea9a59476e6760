//! The fabric as a graph: interned node ids, undirected links, zones and measurements.

use super::fxhash::FxBuildHasher;
use super::{DEFAULT_LINK_COST, DEFAULT_LINK_FIDELITY};
use crate::config::{FabricConfig, Isolation, LinkConfig, NodeConfig};
use crate::node::HardwareType;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What was measured on a link (by health checks or completed transfers).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LinkSample {
    /// Fraction of the link's capacity in use, 0..1.
    pub utilisation: f64,
    /// Measured one-way latency; `None` keeps the nominal one.
    pub latency_ns: Option<u64>,
    /// Fraction of frames lost, 0..1.
    pub loss: f64,
    pub throughput_gbps: Option<f64>,
}

#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    pub id: String,
    pub hardware: Option<HardwareType>,
    pub up: bool,
    pub present: bool,
    pub zone: Option<u32>,
    /// Coherence time of a QPU, in nanoseconds.
    pub coherence_ns: Option<f64>,
}

impl NodeInfo {
    pub fn usable(&self) -> bool {
        self.up && self.present
    }
}

#[derive(Debug, Clone)]
pub(crate) struct LinkInfo {
    pub a: u32,
    pub b: u32,
    pub bandwidth_gbps: f64,
    pub latency_ns: u64,
    pub cost: f64,
    pub fidelity: f64,
    pub fidelity_given: bool,
    pub up: bool,
    pub present: bool,
    pub sample: Option<LinkSample>,
}

impl LinkInfo {
    pub fn usable(&self) -> bool {
        self.up && self.present
    }
    /// The measured latency if one was recorded, else the nominal one.
    #[inline]
    pub fn effective_latency_ns(&self) -> f64 {
        self.sample
            .and_then(|s| s.latency_ns)
            .unwrap_or(self.latency_ns) as f64
    }
    pub fn utilisation(&self) -> f64 {
        self.sample.map_or(0.0, |s| s.utilisation)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Edge {
    pub to: u32,
    pub link: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct ZoneInfo {
    pub id: String,
    pub isolation: Isolation,
}

/// The routing graph. Indices are stable: a removed node keeps its slot (marked absent).
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub(crate) nodes: Vec<NodeInfo>,
    index: HashMap<String, u32, FxBuildHasher>,
    pub(crate) links: Vec<LinkInfo>,
    link_index: HashMap<(u32, u32), u32, FxBuildHasher>,
    pub(crate) adj: Vec<Vec<Edge>>,
    pub(crate) zones: Vec<ZoneInfo>,
    version: u64,
    /// Per-node [`class`] bits, valid for `class_version` (rebuilt lazily after changes).
    class: Vec<u8>,
    class_version: Option<u64>,
}

/// Node class bits, one byte per node, so searches test a node without chasing pointers.
pub(crate) mod class {
    /// Present and up.
    pub const USABLE: u8 = 1;
    /// In a zone with hard isolation.
    pub const HARD: u8 = 2;
    /// In a zone with medium isolation.
    pub const MEDIUM: u8 = 4;
    /// At most one link: never a transit node.
    pub const LEAF: u8 = 8;
}

fn pair(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

impl Topology {
    pub fn new() -> Topology {
        Topology::default()
    }

    /// Nodes, undirected links and zones (with their isolation) of a checked fabric file.
    pub fn from_config(cfg: &FabricConfig) -> Topology {
        let mut t = Topology::new();
        for z in &cfg.zones {
            t.set_zone(&z.id, z.isolation);
        }
        for n in &cfg.nodes {
            t.add_node(n);
        }
        for l in &cfg.links {
            t.add_link(l);
        }
        t
    }

    /// Bumps on every structural change (nodes, links, zones, up/down).
    pub fn version(&self) -> u64 {
        self.version
    }

    fn bump(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    /// Declares zone `id` (or changes its isolation).
    pub fn set_zone(&mut self, id: &str, isolation: Isolation) {
        match self.zones.iter_mut().find(|z| z.id == id) {
            Some(z) => z.isolation = isolation,
            None => self.zones.push(ZoneInfo {
                id: id.to_string(),
                isolation,
            }),
        }
        self.bump();
    }

    fn zone_index(&mut self, id: &str) -> u32 {
        if let Some(i) = self.zones.iter().position(|z| z.id == id) {
            return i as u32;
        }
        self.set_zone(id, Isolation::None);
        (self.zones.len() - 1) as u32
    }

    /// Adds (or re-adds, up) a node from the fabric file.
    pub fn add_node(&mut self, node: &NodeConfig) {
        let sig = &node.signature;
        let i = self.add_node_id(node.id(), node.zone.as_deref());
        let info = &mut self.nodes[i as usize];
        info.hardware = Some(sig.hardware_type);
        info.coherence_ns = sig.quantum_coherence_time_us.map(|us| us * 1_000.0);
    }

    /// Adds (or re-adds, up) a node by id, optionally in a zone; returns its index.
    pub fn add_node_id(&mut self, id: &str, zone: Option<&str>) -> u32 {
        let zone = zone.map(|z| self.zone_index(z));
        self.bump();
        if let Some(&i) = self.index.get(id) {
            let n = &mut self.nodes[i as usize];
            (n.present, n.up, n.zone) = (true, true, zone);
            return i;
        }
        let i = self.nodes.len() as u32;
        self.nodes.push(NodeInfo {
            id: id.to_string(),
            hardware: None,
            up: true,
            present: true,
            zone,
            coherence_ns: None,
        });
        self.adj.push(Vec::new());
        self.index.insert(id.to_string(), i);
        i
    }

    /// Sets the coherence time (µs) of a node, making it count as a QPU for quantum routes.
    pub fn set_coherence_us(&mut self, id: &str, us: Option<f64>) {
        if let Some(i) = self.node_index(id) {
            self.nodes[i as usize].coherence_ns = us.map(|us| us * 1_000.0);
            self.bump();
        }
    }

    /// Removes a node and its links (a node that left the fabric).
    pub fn remove_node(&mut self, id: &str) {
        let Some(i) = self.node_index(id) else { return };
        self.nodes[i as usize].present = false;
        for e in std::mem::take(&mut self.adj[i as usize]) {
            self.links[e.link as usize].present = false;
            self.adj[e.to as usize].retain(|x| x.to != i);
            self.link_index.remove(&pair(i, e.to));
        }
        self.bump();
    }

    /// Marks a node up or down (a failed node is avoided, its links kept).
    pub fn set_node_up(&mut self, id: &str, up: bool) {
        if let Some(i) = self.node_index(id) {
            if self.nodes[i as usize].up != up {
                self.nodes[i as usize].up = up;
                self.bump();
            }
        }
    }

    /// Marks the link between `a` and `b` up or down; unknown links are ignored.
    pub fn set_link_up(&mut self, a: &str, b: &str, up: bool) {
        if let Some(l) = self.link_id(a, b) {
            if self.links[l as usize].up != up {
                self.links[l as usize].up = up;
                self.bump();
            }
        }
    }

    /// Adds a link from the fabric file (or replaces the one between the same nodes); its
    /// end nodes are created (zoneless) if unknown.
    pub fn add_link(&mut self, link: &LinkConfig) {
        let [a, b] = &link.between;
        let l = self.add_link_raw(a, b, link.bandwidth_gbps, link.latency_ns);
        let info = &mut self.links[l as usize];
        info.cost = link.cost.unwrap_or(DEFAULT_LINK_COST);
        info.fidelity = link.fidelity.unwrap_or(DEFAULT_LINK_FIDELITY);
        info.fidelity_given = link.fidelity.is_some();
    }

    /// Adds or replaces a link with default cost and fidelity; returns its index.
    pub fn add_link_raw(&mut self, a: &str, b: &str, bandwidth_gbps: f64, latency_ns: u64) -> u32 {
        let ia = self
            .node_index(a)
            .unwrap_or_else(|| self.add_node_id(a, None));
        let ib = self
            .node_index(b)
            .unwrap_or_else(|| self.add_node_id(b, None));
        self.bump();
        let info = LinkInfo {
            a: ia,
            b: ib,
            bandwidth_gbps,
            latency_ns,
            cost: DEFAULT_LINK_COST,
            fidelity: DEFAULT_LINK_FIDELITY,
            fidelity_given: false,
            up: true,
            present: true,
            sample: None,
        };
        if let Some(&l) = self.link_index.get(&pair(ia, ib)) {
            self.links[l as usize] = info;
            return l;
        }
        let l = self.links.len() as u32;
        self.links.push(info);
        self.adj[ia as usize].push(Edge { to: ib, link: l });
        self.adj[ib as usize].push(Edge { to: ia, link: l });
        self.link_index.insert(pair(ia, ib), l);
        l
    }

    /// Sets a link's fidelity (0 < f <= 1; other values are ignored).
    pub fn set_link_fidelity(&mut self, a: &str, b: &str, fidelity: f64) {
        if !(fidelity > 0.0 && fidelity <= 1.0) {
            return;
        }
        if let Some(l) = self.link_id(a, b) {
            self.links[l as usize].fidelity = fidelity;
            self.links[l as usize].fidelity_given = true;
            self.bump();
        }
    }

    /// Records a measurement on the link between `a` and `b` (replacing the previous one).
    /// Values are clamped to their ranges; non-finite ones are dropped. Does not bump the
    /// version: cached routes see it when they expire.
    pub fn record(&mut self, a: &str, b: &str, sample: LinkSample) {
        let Some(l) = self.link_id(a, b) else { return };
        let unit = |x: f64| {
            if x.is_finite() {
                x.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let clean = LinkSample {
            utilisation: unit(sample.utilisation),
            loss: unit(sample.loss),
            latency_ns: sample.latency_ns,
            throughput_gbps: sample
                .throughput_gbps
                .filter(|t| t.is_finite() && *t >= 0.0),
        };
        self.links[l as usize].sample = Some(clean);
    }

    pub fn node_index(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    pub(crate) fn link_id(&self, a: &str, b: &str) -> Option<u32> {
        let (ia, ib) = (self.node_index(a)?, self.node_index(b)?);
        self.link_index.get(&pair(ia, ib)).copied()
    }

    /// True if `id` is a node of the fabric (not removed).
    pub fn contains(&self, id: &str) -> bool {
        self.node_index(id)
            .is_some_and(|i| self.nodes[i as usize].present)
    }

    /// Ids of the present nodes, in the order they were added.
    pub fn node_ids(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .filter(|n| n.present)
            .map(|n| n.id.as_str())
    }

    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.present).count()
    }

    pub fn link_count(&self) -> usize {
        self.links.iter().filter(|l| l.present).count()
    }

    /// Rebuilds the per-node class bits if the topology changed since the last call.
    pub(crate) fn refresh_classes(&mut self) {
        if self.class_version == Some(self.version) {
            return;
        }
        let mut class = std::mem::take(&mut self.class);
        class.clear();
        for (i, n) in self.nodes.iter().enumerate() {
            let mut c = 0;
            if n.usable() {
                c |= class::USABLE;
            }
            match self.isolation_of(i as u32) {
                Isolation::Hard => c |= class::HARD,
                Isolation::Medium => c |= class::MEDIUM,
                _ => {}
            }
            if self.adj[i].len() < 2 {
                c |= class::LEAF;
            }
            class.push(c);
        }
        self.class = class;
        self.class_version = Some(self.version);
    }

    /// Class bits of node `i` (call [`refresh_classes`](Self::refresh_classes) first).
    #[inline]
    pub(crate) fn class(&self, i: u32) -> u8 {
        self.class.get(i as usize).copied().unwrap_or(0)
    }

    /// The zone of node `i` and its isolation.
    pub(crate) fn zone_of(&self, i: u32) -> Option<&ZoneInfo> {
        let z = self.nodes.get(i as usize)?.zone?;
        self.zones.get(z as usize)
    }

    pub(crate) fn isolation_of(&self, i: u32) -> Isolation {
        self.zone_of(i).map_or(Isolation::None, |z| z.isolation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diamond() -> Topology {
        let mut t = Topology::new();
        t.add_link_raw("src", "r1", 100.0, 100);
        t.add_link_raw("src", "r2", 100.0, 100);
        t.add_link_raw("r1", "dst", 100.0, 100);
        t.add_link_raw("r2", "dst", 100.0, 100);
        t
    }

    #[test]
    fn interns_and_versions() {
        let mut t = diamond();
        assert_eq!(t.node_count(), 4);
        assert_eq!(t.link_count(), 4);
        let v = t.version();
        t.set_node_up("r1", false);
        assert!(t.version() > v);
        let v = t.version();
        t.set_node_up("r1", false);
        assert_eq!(t.version(), v, "no change, no bump");
        t.record("src", "r1", LinkSample::default());
        assert_eq!(t.version(), v, "measurements do not bump");
    }

    #[test]
    fn remove_node_drops_links_and_readd_works() {
        let mut t = diamond();
        t.remove_node("r1");
        assert_eq!(t.link_count(), 2);
        assert!(!t.contains("r1"));
        assert!(t.link_id("src", "r1").is_none());
        t.add_node_id("r1", None);
        assert!(t.contains("r1"));
        t.add_link_raw("src", "r1", 10.0, 5);
        assert_eq!(t.link_count(), 3);
        assert_eq!(t.adj[t.node_index("src").unwrap_or(0) as usize].len(), 2);
    }

    #[test]
    fn record_clamps() {
        let mut t = diamond();
        let s = LinkSample {
            utilisation: 7.0,
            loss: f64::NAN,
            ..LinkSample::default()
        };
        t.record("r1", "src", s);
        let l = &t.links[t.link_id("src", "r1").unwrap_or(0) as usize];
        assert_eq!(l.utilisation(), 1.0);
        assert_eq!(l.sample.map(|s| s.loss), Some(0.0));
    }

    #[test]
    fn from_config_reads_lab() {
        let text = include_str!("../../../../examples/lab.toml");
        let cfg = FabricConfig::from_toml_str(text, "lab.toml").expect("lab parses");
        let t = Topology::from_config(&cfg);
        assert_eq!(t.node_count(), cfg.nodes.len());
        assert_eq!(t.link_count(), cfg.links.len());
        let q = t.node_index("qpu-01").expect("qpu");
        assert_eq!(t.isolation_of(q), Isolation::Hard);
        assert_eq!(t.nodes[q as usize].coherence_ns, Some(100_000.0));
    }
}
