//! Taking the figures: this process is the source node (as `hfabric ping --from` is); the
//! other nodes must be running. Pings go over the direct connection; per-hop figures come
//! from small transfers routed to each node of the route in turn (a transfer to the k-th
//! node crosses the route's first k hops and returns its end-to-end ack), so the growth of
//! the round trip from one node to the next is what that hop adds.

use super::{Measured, Series, SWEEP_SIZES};
use crate::error::{Error, Result};
use crate::fabric::{Fabric, PingOptions, SendOptions};
use crate::route::{RouteError, Router, Strategy, Topology};
use std::time::{Duration, Instant};

/// How much to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    pub strategy: Strategy,
    /// Timed probes per series (after two untimed ones that open the connections).
    pub probes: u64,
    /// Also measure bulk throughput to every route node.
    pub full: bool,
    /// Bytes of each bulk transfer (`full`).
    pub full_bytes: usize,
    pub timeout: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            strategy: Strategy::LowestLatency,
            probes: 15,
            full: false,
            full_bytes: 16 << 20,
            timeout: Duration::from_secs(5),
        }
    }
}

const WARMUP: u64 = 2;
/// A pong later than this counts as lost (and bounds the wait for a connection).
const PING_TIMEOUT: Duration = Duration::from_secs(1);

pub fn measure(fabric: &Fabric, to: &str, plan: &Plan) -> Result<Measured> {
    let cfg = fabric.config();
    let me = fabric.node_id().to_owned();
    let route = Router::new(Topology::from_config(cfg))
        .route(&me, to, plan.strategy, Instant::now())
        .map_err(|e| match e {
            RouteError::UnknownNode(node) => Error::NodeNotFound { node },
            e => Error::Unreachable {
                node: to.to_owned(),
                reason: e.to_string(),
            },
        })?;
    let (hops, cut) = probe_hops(fabric, &route.nodes[1..], plan);
    let sweep = sweep(fabric, to, cut.as_deref(), plan);
    let throughput_gbps = if plan.full {
        let data = noise(plan.full_bytes);
        route.nodes[1..]
            .iter()
            .map(|n| bulk(fabric, n, &data, plan))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Measured {
        from: me,
        to: to.to_owned(),
        route,
        sweep,
        hops,
        throughput_gbps,
        socket_buffer_bytes: cfg.tuning.socket_buffer_bytes,
    })
}

fn opts(plan: &Plan) -> SendOptions {
    SendOptions::new()
        .strategy(plan.strategy)
        .timeout(plan.timeout)
        .name("hfabric-diagnose-probe")
}

/// Probes every node in turn. Past a node that does not answer the route is cut: the nodes
/// after it are not probed (returned as the second value).
fn probe_hops(
    fabric: &Fabric,
    nodes: &[String],
    plan: &Plan,
) -> (Vec<(Series, Vec<String>)>, Option<String>) {
    let mut hops = Vec::with_capacity(nodes.len());
    let mut cut: Option<String> = None;
    for n in nodes {
        let (series, path) = match &cut {
            Some(dead) => (unmeasured(dead), Vec::new()),
            None => probe(fabric, n, 64, plan),
        };
        if cut.is_none() && series.samples_ns.is_empty() {
            cut = Some(n.clone());
        }
        hops.push((series, path));
    }
    (hops, cut)
}

/// A series not taken because `dead` does not answer.
fn unmeasured(dead: &str) -> Series {
    Series {
        samples_ns: Vec::new(),
        failed: 0,
        error: Some(format!("not measured: {dead} does not answer")),
    }
}

/// Round trips of `size`-byte routed transfers to `node`, and the path the last one took.
/// A node that never answered is not asked again and again (each try can take the whole
/// send timeout): its first failure counts, and the series ends.
fn probe(fabric: &Fabric, node: &str, size: usize, plan: &Plan) -> (Series, Vec<String>) {
    let payload = vec![0x5Au8; size];
    let mut series = Series::default();
    let mut path = Vec::new();
    let mut answered = false;
    for i in 0..WARMUP + plan.probes {
        let r = fabric.send(node, &payload, opts(plan)).map(|rep| {
            path = rep.path;
            rep.latency.as_nanos() as u64
        });
        answered |= r.is_ok();
        if i >= WARMUP || !answered {
            series.push(r);
        }
        if !answered {
            break;
        }
    }
    (series, path)
}

/// Pings and routed transfers at every sweep size. Once `to` cannot be pinged at all (no
/// connection) the larger sizes are not tried; routed transfers not when the route is `cut`.
fn sweep(
    fabric: &Fabric,
    to: &str,
    cut: Option<&str>,
    plan: &Plan,
) -> Vec<(usize, Series, Series)> {
    let mut unpingable = false;
    let mut out = Vec::with_capacity(SWEEP_SIZES.len());
    for size in SWEEP_SIZES {
        let pings = if unpingable {
            unmeasured(to)
        } else {
            ping(fabric, to, size, plan)
        };
        unpingable |= pings.samples_ns.is_empty() && pings.failed > 0;
        let routed = match cut {
            Some(dead) => unmeasured(dead),
            None => probe(fabric, to, size, plan).0,
        };
        out.push((size, pings, routed));
    }
    out
}

/// One-way pings (half round trips) over the direct connection.
fn ping(fabric: &Fabric, to: &str, size: usize, plan: &Plan) -> Series {
    let o = PingOptions::new()
        .size(size)
        .count(plan.probes)
        .warmup(WARMUP)
        .timeout(plan.timeout.min(PING_TIMEOUT));
    match fabric.ping_samples(to, o) {
        Ok((stats, mut samples)) => {
            samples.sort_unstable();
            Series {
                samples_ns: samples,
                failed: stats.lost,
                error: None,
            }
        }
        // A size the profile's frames cannot carry was not sent: not a loss.
        Err(e @ Error::InvalidArgument(_)) => Series {
            samples_ns: Vec::new(),
            failed: 0,
            error: Some(e.to_string()),
        },
        Err(e) => Series {
            samples_ns: Vec::new(),
            failed: plan.probes,
            error: Some(e.to_string()),
        },
    }
}

/// The better of two bulk transfers' throughput to `node` (Gbit/s), `None` if both failed.
fn bulk(fabric: &Fabric, node: &str, data: &[u8], plan: &Plan) -> Option<f64> {
    let timeout = plan.timeout.max(Duration::from_secs(30));
    (0..2)
        .filter_map(|_| {
            fabric
                .send(node, data, opts(plan).timeout(timeout))
                .map_err(|e| tracing::warn!("diagnose: bulk transfer to {node} failed: {e}"))
                .ok()
        })
        .map(|r| r.throughput_gbps)
        .reduce(f64::max)
}

/// Incompressible bytes (xorshift), so that a compression policy cannot flatter the figure.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
