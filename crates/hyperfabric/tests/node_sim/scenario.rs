//! A seed -> one scenario: the mesh's shape, the node cores' knobs, the link faults, and a
//! script of sends, pings, partitions and crashes.

use hyperfabric::compress::Algorithm;
use hyperfabric::core::{CoreConfig, Limits};
use hyperfabric::proto::{RecvParams, SendParams};
use rand::rngs::StdRng;
use rand::Rng;
use std::time::Duration;

pub const NODES_MIN: usize = 2;
pub const NODES_MAX: usize = 16;
/// Largest transfer a scenario sends.
pub const TRANSFER_MAX: usize = 24 << 10;
pub const SENDS_MAX: usize = 8;
pub const PINGS_MAX: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 0 - 1 - ... - n-1: every transfer between non-neighbours is relayed.
    Line,
    /// A ring: two disjoint paths between any two nodes (multipath, failover).
    Ring,
    /// A random spanning tree plus chords.
    Mesh,
}

/// Faults of every link direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub corrupt: f64,
    pub latency: Duration,
    /// Extra uniform delay in `[0, jitter)`: reorders frames.
    pub jitter: Duration,
    /// Chance of a straggler, delayed up to `STRAGGLE_MAX` more.
    pub straggle: f64,
}

pub const STRAGGLE_MAX: Duration = Duration::from_millis(200);

impl Faults {
    pub fn is_clean(&self) -> bool {
        self.drop == 0.0 && self.duplicate == 0.0 && self.corrupt == 0.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Send {
        src: usize,
        dst: usize,
        len: usize,
    },
    Ping {
        src: usize,
        dst: usize,
    },
    /// Edge `edge` stops carrying frames; `declared`: both ends are told the link is down.
    Cut {
        edge: usize,
        declared: bool,
    },
    Heal {
        edge: usize,
        declared: bool,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub shape: Shape,
    pub nodes: usize,
    pub edges: Vec<(usize, usize)>,
    pub faults: Faults,
    pub send: SendParams,
    pub recv: RecvParams,
    pub paths_max: usize,
    pub compression: Algorithm,
    /// Sorted by time.
    pub script: Vec<(Duration, Action)>,
}

impl Scenario {
    pub fn generate(rng: &mut StdRng) -> Scenario {
        let nodes = rng.gen_range(NODES_MIN..=NODES_MAX);
        let shape = match rng.gen_range(0..3) {
            0 => Shape::Line,
            1 if nodes >= 3 => Shape::Ring,
            _ => Shape::Mesh,
        };
        let edges = edges(rng, shape, nodes);
        let chunk_len = rng.gen_range(512..=4096);
        let send = SendParams {
            chunk_len,
            window_bytes: chunk_len * rng.gen_range(2..=16),
            retransmit_timeout: Duration::from_millis(rng.gen_range(20..=60)),
            max_retransmits: rng.gen_range(6..=10),
            stall_timeout: Duration::from_millis(rng.gen_range(1_000..=3_000)),
        };
        let recv = RecvParams {
            max_transfer_bytes: TRANSFER_MAX as u64,
            ack_every_bytes: chunk_len * rng.gen_range(1..=4),
            max_ranges: 1024,
        };
        let faults = faults(rng);
        let script = script(rng, nodes, &edges);
        Scenario {
            shape,
            nodes,
            edges,
            faults,
            send,
            recv,
            paths_max: rng.gen_range(1..=2),
            compression: Algorithm::ALL[rng.gen_range(0..Algorithm::ALL.len())],
            script,
        }
    }

    /// The node cores' configuration; `finished_linger` covers the senders' stall
    /// timeout and the longest frame delay, as `CoreConfig` asks.
    pub fn core_config(&self, name: &str, incarnation: u32) -> CoreConfig {
        let mut c = CoreConfig::new(name, incarnation);
        c.send = self.send;
        c.recv = self.recv;
        c.paths_max = self.paths_max;
        c.compression = self.compression;
        c.limits = Limits {
            hops_max: NODES_MAX as u8,
            ..Limits::default()
        };
        c.ping_timeout = Duration::from_secs(2);
        c.incoming_idle = self.send.stall_timeout * 2;
        let delay_max = self.faults.latency + self.faults.jitter + STRAGGLE_MAX;
        c.finished_linger = self.send.stall_timeout * 2 + delay_max * (NODES_MAX as u32);
        c
    }

    /// No fault at all: every transfer must then be sent and delivered.
    pub fn is_clean(&self) -> bool {
        self.faults.is_clean()
            && self
                .script
                .iter()
                .all(|(_, a)| matches!(a, Action::Send { .. } | Action::Ping { .. }))
    }
}

fn edges(rng: &mut StdRng, shape: Shape, n: usize) -> Vec<(usize, usize)> {
    let mut e: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
    match shape {
        Shape::Line => {}
        Shape::Ring => e.push((n - 1, 0)),
        Shape::Mesh => {
            e = (1..n).map(|i| (rng.gen_range(0..i), i)).collect();
            for _ in 0..rng.gen_range(0..=n / 2) {
                let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
                let (a, b) = (a.min(b), a.max(b));
                if a != b && !e.contains(&(a, b)) {
                    e.push((a, b));
                }
            }
        }
    }
    e
}

fn faults(rng: &mut StdRng) -> Faults {
    if rng.gen_bool(0.2) {
        return Faults {
            latency: Duration::from_micros(rng.gen_range(10..=2_000)),
            ..Faults::default()
        };
    }
    Faults {
        drop: rng.gen_range(0.0..0.05),
        duplicate: rng.gen_range(0.0..0.05),
        corrupt: rng.gen_range(0.0..0.03),
        latency: Duration::from_micros(rng.gen_range(10..=2_000)),
        jitter: Duration::from_micros(rng.gen_range(0..=5_000)),
        straggle: rng.gen_range(0.0..0.01),
    }
}

fn script(rng: &mut StdRng, n: usize, edges: &[(usize, usize)]) -> Vec<(Duration, Action)> {
    let mut s = Vec::new();
    let at = |rng: &mut StdRng| Duration::from_millis(rng.gen_range(0..500));
    let pair = |rng: &mut StdRng| {
        let src = rng.gen_range(0..n);
        (src, (src + rng.gen_range(1..n)) % n)
    };
    for _ in 0..rng.gen_range(1..=SENDS_MAX) {
        let (src, dst) = pair(rng);
        let len = match rng.gen_range(0..10) {
            0 => 0,
            1 => rng.gen_range(1..64),
            _ => rng.gen_range(64..=TRANSFER_MAX),
        };
        s.push((at(rng), Action::Send { src, dst, len }));
    }
    for _ in 0..rng.gen_range(0..=PINGS_MAX) {
        let (src, dst) = pair(rng);
        s.push((at(rng), Action::Ping { src, dst }));
    }
    if rng.gen_bool(0.4) {
        let (mut edge, declared) = (rng.gen_range(0..edges.len()), rng.gen_bool(0.7));
        let mut t = at(rng);
        // Half the cuts hit a sender's link just after its send: failover while it runs.
        if let Some(&(sent, Action::Send { src, .. })) = s.first().filter(|_| rng.gen_bool(0.5)) {
            let mine: Vec<usize> = (0..edges.len())
                .filter(|e| edges[*e].0 == src || edges[*e].1 == src)
                .collect();
            edge = mine[rng.gen_range(0..mine.len())];
            t = sent + Duration::from_millis(rng.gen_range(0..20));
        }
        let heal = t + Duration::from_millis(rng.gen_range(10..2_000));
        s.push((t, Action::Cut { edge, declared }));
        s.push((heal, Action::Heal { edge, declared }));
    }
    if rng.gen_bool(0.15) {
        let node = rng.gen_range(0..n);
        let t = at(rng);
        s.push((t, Action::Crash { node }));
        s.push((
            t + Duration::from_millis(rng.gen_range(1..1_500)),
            Action::Restart { node },
        ));
    }
    s.sort_by_key(|(t, _)| *t);
    s
}
