//! The simulated mesh: node cores joined by in-memory links that carry real encoded frames
//! (wire encode with CRC32C on the way in, decode with the CRC check on every hop), with
//! seeded drop, duplicate, corrupt, delay/reorder, partitions and crashes, in virtual time.

use super::scenario::{Action, Scenario, STRAGGLE_MAX};
use hyperfabric::core::{Event, LinkId, Node, Time, Transmit};
use hyperfabric::route::Topology;
use hyperfabric::types::{DataType, Priority};
use hyperfabric::wire::{decode_frame, encode_frame, Limits};
use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

/// Steps (arrivals, timeouts, script actions) after which a run counts as a livelock.
pub const STEPS_MAX: u64 = 2_000_000;
/// Virtual time after which a run counts as a hang.
pub const VIRTUAL_TIME_MAX: Duration = Duration::from_secs(600);
/// Frames in flight in the whole mesh.
pub const IN_FLIGHT_MAX: usize = 200_000;

/// A frame on its way: (arrival, sequence) order, then the bytes.
type Flight = Reverse<(Time, u64, usize, u32, Vec<u8>)>;

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub frames: u64,
    pub dropped: u64,
    pub corrupted: u64,
    pub duplicated: u64,
}

pub struct Mesh {
    pub sc: Scenario,
    pub rng: StdRng,
    pub nodes: Vec<Node>,
    pub names: Vec<String>,
    /// (node, its link) -> (peer, the peer's link for the same edge, edge index).
    ends: HashMap<(usize, LinkId), (usize, LinkId, usize)>,
    /// Per edge: the link id at each end.
    edge_links: Vec<(LinkId, LinkId)>,
    flights: BinaryHeap<Flight>,
    seq: u64,
    pub now: Time,
    pub down: Vec<bool>,
    pub cut: Vec<bool>,
    /// Cuts both ends were told of (a restart leaves those links down).
    declared: Vec<bool>,
    incarnations: u32,
    pub counts: Counts,
}

/// What the application at a node saw.
pub type Seen = (usize, Event);

impl Mesh {
    pub fn new(sc: Scenario, rng: StdRng) -> Mesh {
        let names: Vec<String> = (0..sc.nodes).map(|i| format!("n{i:02}")).collect();
        let mut topo = Topology::new();
        for n in &names {
            topo.add_node_id(n, None);
        }
        for (i, &(a, b)) in sc.edges.iter().enumerate() {
            let latency_ns = 1_000 + 100 * i as u64;
            topo.add_link_raw(&names[a], &names[b], 100.0, latency_ns);
        }
        let mut nodes: Vec<Node> = (0..sc.nodes)
            .map(|i| Node::new(sc.core_config(&names[i], i as u32), topo.clone()))
            .collect();
        let (mut ends, mut edge_links) = (HashMap::new(), Vec::new());
        for (e, &(a, b)) in sc.edges.iter().enumerate() {
            let la = nodes[a].add_link(&names[b]).expect("link a");
            let lb = nodes[b].add_link(&names[a]).expect("link b");
            ends.insert((a, la), (b, lb, e));
            ends.insert((b, lb), (a, la, e));
            edge_links.push((la, lb));
        }
        Mesh {
            down: vec![false; sc.nodes],
            cut: vec![false; sc.edges.len()],
            declared: vec![false; sc.edges.len()],
            incarnations: sc.nodes as u32,
            sc,
            rng,
            nodes,
            names,
            ends,
            edge_links,
            flights: BinaryHeap::new(),
            seq: 0,
            now: Time::ZERO,
            counts: Counts::default(),
        }
    }

    /// Drains every live node's transmits and events; returns the events.
    pub fn flush(&mut self, seen: &mut Vec<Seen>) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            if self.down[i] {
                continue;
            }
            while let Some(t) = self.nodes[i].poll_transmit() {
                self.transmit(i, t)?;
            }
            while let Some(e) = self.nodes[i].poll_event() {
                seen.push((i, e));
            }
        }
        Ok(())
    }

    /// Encodes the frame and puts it (or its faulty twins) in flight.
    fn transmit(&mut self, from: usize, t: Transmit) -> Result<(), String> {
        let &(to, link, edge) = self
            .ends
            .get(&(from, t.link))
            .ok_or_else(|| format!("node {from} sent on unknown link {:?}", t.link))?;
        let bytes = encode_frame(&t.header, &t.payload).map_err(|e| e.to_string())?;
        self.counts.frames += 1;
        let f = self.sc.faults;
        if self.cut[edge] || self.down[to] || self.rng.gen_bool(f.drop) {
            self.counts.dropped += 1;
            return Ok(());
        }
        let copies = if self.rng.gen_bool(f.duplicate) { 2 } else { 1 };
        self.counts.duplicated += copies - 1;
        for _ in 0..copies {
            let mut b = bytes.clone();
            if self.rng.gen_bool(f.corrupt) {
                let bit = self.rng.gen_range(0..b.len() * 8);
                b[bit / 8] ^= 1 << (bit % 8);
            }
            let mut delay = f.latency + jitter(&mut self.rng, f.jitter);
            if self.rng.gen_bool(f.straggle) {
                delay += jitter(&mut self.rng, STRAGGLE_MAX);
            }
            if self.flights.len() >= IN_FLIGHT_MAX {
                return Err(format!("over {IN_FLIGHT_MAX} frames in flight"));
            }
            self.seq += 1;
            self.flights
                .push(Reverse((self.now + delay, self.seq, to, link.0, b)));
        }
        Ok(())
    }

    pub fn next_arrival(&self) -> Option<Time> {
        self.flights.peek().map(|Reverse(f)| f.0)
    }

    /// Delivers every frame due by `now`: decoded (CRC checked) on arrival, as a real
    /// reader does. A corrupted frame must fail its decode.
    pub fn arrive_due(&mut self) -> Result<(), String> {
        while self.next_arrival().is_some_and(|t| t <= self.now) {
            let Some(Reverse((_, _, to, link, bytes))) = self.flights.pop() else {
                break;
            };
            let link = LinkId(link);
            let edge = self.ends[&(to, link)].2;
            if self.down[to] || self.cut[edge] {
                self.counts.dropped += 1;
                continue;
            }
            match decode_frame(&bytes, Limits::default()) {
                Ok((h, payload, _)) => self.nodes[to].handle_frame(self.now, link, &h, payload),
                Err(_) => self.counts.corrupted += 1,
            }
        }
        Ok(())
    }

    /// The earliest timeout of a live node.
    pub fn next_timeout(&self) -> Option<Time> {
        (0..self.nodes.len())
            .filter(|i| !self.down[*i])
            .filter_map(|i| self.nodes[i].poll_timeout())
            .min()
    }

    pub fn fire_timeouts(&mut self) {
        for i in 0..self.nodes.len() {
            let due = self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now);
            if !self.down[i] && due {
                self.nodes[i].handle_timeout(self.now);
            }
        }
    }

    /// Applies one script action; a send's local refusal is returned as an event-like
    /// outcome by the caller.
    pub fn act(&mut self, a: Action, data: &mut dyn FnMut(usize) -> Vec<u8>) -> ActOutcome {
        match a {
            Action::Send { src, dst, len } if !self.down[src] => {
                let kind = (DataType::Custom, Priority::Normal);
                let bytes = data(len);
                let r =
                    self.nodes[src].send(self.now, &self.names[dst].clone(), bytes.clone(), kind);
                ActOutcome::Sent {
                    src,
                    dst,
                    bytes,
                    result: r.map_err(|e| e.to_string()),
                }
            }
            Action::Ping { src, dst } if !self.down[src] => {
                let r = self.nodes[src].ping(self.now, &self.names[dst].clone());
                ActOutcome::Pinged {
                    src,
                    result: r.ok(),
                }
            }
            Action::Cut { edge, declared } => {
                self.cut[edge] = true;
                self.declared[edge] = declared;
                if declared {
                    self.set_edge(edge, false);
                }
                ActOutcome::None
            }
            Action::Heal { edge, declared } => {
                self.cut[edge] = false;
                self.declared[edge] = false;
                if declared {
                    self.set_edge(edge, true);
                }
                ActOutcome::None
            }
            Action::Crash { node } => {
                self.down[node] = true;
                self.incarnations += 1;
                self.nodes[node].restart(self.incarnations);
                self.set_node_edges(node, false);
                ActOutcome::Crashed { node }
            }
            Action::Restart { node } => {
                self.down[node] = false;
                self.set_node_edges(node, true);
                ActOutcome::None
            }
            _ => ActOutcome::None,
        }
    }

    /// Tells both (live) ends of `edge` that its link is up or down.
    fn set_edge(&mut self, edge: usize, up: bool) {
        let (a, b) = self.sc.edges[edge];
        let (la, lb) = self.edge_links[edge];
        for (n, l) in [(a, la), (b, lb)] {
            if self.down[n] {
                continue;
            }
            if up && !self.down[a] && !self.down[b] {
                self.nodes[n].link_up(l);
            } else if !up {
                self.nodes[n].link_down(self.now, l);
            }
        }
    }

    /// A node's connections break (crash) or come back (restart) on every uncut edge.
    fn set_node_edges(&mut self, node: usize, up: bool) {
        for e in 0..self.sc.edges.len() {
            let (a, b) = self.sc.edges[e];
            if (a == node || b == node) && (!up || !self.declared[e]) {
                self.set_edge(e, up);
            }
        }
    }
}

pub enum ActOutcome {
    None,
    Sent {
        src: usize,
        dst: usize,
        bytes: Vec<u8>,
        result: Result<hyperfabric::core::TransferId, String>,
    },
    Pinged {
        src: usize,
        result: Option<u64>,
    },
    Crashed {
        node: usize,
    },
}

fn jitter(rng: &mut StdRng, max: Duration) -> Duration {
    let max = max.as_nanos() as u64;
    if max == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(rng.next_u64() % max)
    }
}
