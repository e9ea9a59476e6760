//! Routing: the topology graph, the strategies, a route cache and a learned latency predictor.
//!
//! Pure code (the sans-IO rule of the README's Layout): no IO, no clock reads (`now` is an argument), no randomness.
//! Node ids are interned to `u32` indices; searches run over adjacency lists with reusable
//! scratch buffers and one class byte per node (usable, hard, medium, leaf), so the hot path
//! allocates only the returned [`Route`] (nothing on a cache hit via [`Router::route_shared`]).
//! Additive strategies use a bidirectional Dijkstra; leaves other than the endpoints are
//! never expanded. On a 10,000-node fat-tree a path takes tens of µs (`benches/route.rs`).
//!
//! # Strategies
//! - `shortest_path`: fewest hops; ties broken by latency.
//! - `lowest_latency`: Dijkstra on link latency (the measured one if recorded, else nominal).
//! - `highest_bandwidth`: widest path (largest bottleneck bandwidth); ties by fewest hops.
//! - `load_balanced`: Dijkstra on `latency / (1 - utilisation) / (1 - loss)` from the latest
//!   [`LinkSample`] (utilisation and loss clamped to [`UTILISATION_MAX`]).
//! - `predictive`: Dijkstra on the latency a [`Predictor`] (online recursive least squares)
//!   expects per link from its features and latest [`LinkSample`]; falls back to
//!   `lowest_latency` weights until trained. The hour of day comes from [`Router::set_hour`].
//! - `quantum_optimized`: maximise `Π link fidelity × Π exp(-path_latency / coherence)` over the
//!   QPU endpoints; refuses routes below the threshold ([`DEFAULT_FIDELITY_THRESHOLD`]).
//!
//! # Zones
//! - `hard`: a route that starts or ends in a hard zone must start, end and stay inside that
//!   zone ([`RouteError::Isolated`] otherwise); other routes never transit a hard zone.
//! - `medium`: crossing is allowed; each hop that enters or leaves a medium zone adds
//!   [`MEDIUM_CROSSING_PENALTY_NS`] to the search weight and [`MEDIUM_CROSSING_COST`] to the cost.
//! - `soft` / `none`: no effect on routing.
//!
//! # Cache
//! [`Router::route`] caches per (from, to, strategy) for a TTL ([`DEFAULT_CACHE_TTL`]); any
//! structural change to the topology (bumps [`Topology::version`]) invalidates it. Measured
//! samples ([`Topology::record`]) do not: they reach cached routes when those expire.

mod cache;
pub mod export;
pub mod formats;
mod fxhash;
pub mod gen;
mod predictor;
mod router;
mod search;
mod strategy;
mod topology;

pub use cache::DEFAULT_CACHE_TTL;
pub use export::TopologyDoc;
pub use predictor::{Predictor, PredictorSample, FEATURE_COUNT};
pub use router::Router;
pub use strategy::Strategy;
pub use topology::{LinkSample, Topology};

use serde::Serialize;

/// Quantum routes below this end-to-end fidelity are refused unless the threshold is changed.
pub const DEFAULT_FIDELITY_THRESHOLD: f64 = 0.9;
/// Fidelity assumed for a link whose file gives none.
pub const DEFAULT_LINK_FIDELITY: f64 = 0.999;
/// Cost of a link whose file gives none.
pub const DEFAULT_LINK_COST: f64 = 1.0;
/// Search weight added to a hop entering or leaving a `medium` zone.
pub const MEDIUM_CROSSING_PENALTY_NS: f64 = 10_000.0;
/// Cost added to a hop entering or leaving a `medium` zone.
pub const MEDIUM_CROSSING_COST: f64 = 10.0;
/// Utilisation and loss are clamped to this before dividing by `1 - x`.
pub const UTILISATION_MAX: f64 = 0.99;
/// Longest route we return (a hop limit the relays can also enforce).
pub const ROUTE_HOPS_MAX: usize = 64;

/// One hop of a route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteHop {
    pub from: String,
    pub to: String,
    /// Nominal link latency.
    pub latency_ns: u64,
    pub bandwidth_gbps: f64,
    /// The link's cost (default [`DEFAULT_LINK_COST`]) plus any medium-zone penalty.
    pub cost: f64,
    /// Latest measured utilisation (0 when none was recorded).
    pub utilisation: f64,
}

/// A path through the fabric chosen by one strategy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    pub strategy: Strategy,
    /// Every node from source to destination, both included.
    pub nodes: Vec<String>,
    pub hops: Vec<RouteHop>,
    /// Sum of the nominal hop latencies.
    pub latency_ns: u64,
    /// The bottleneck bandwidth (infinite for a route from a node to itself).
    pub bandwidth_gbps: f64,
    /// Sum of the hop costs.
    pub cost: f64,
    /// End-to-end fidelity (quantum_optimized only).
    pub fidelity: Option<f64>,
    /// The predictor's expected latency (predictive only, once trained).
    pub predicted_latency_ns: Option<f64>,
}

impl Route {
    /// The node after the source, or `None` for a route from a node to itself.
    pub fn next_hop(&self) -> Option<&str> {
        self.nodes.get(1).map(String::as_str)
    }
}

/// Why no route could be given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    #[error("unknown node \"{0}\"")]
    UnknownNode(String),
    #[error("no route from \"{from}\" to \"{to}\"")]
    NoRoute { from: String, to: String },
    #[error("route from zone \"{from_zone}\" to zone \"{to_zone}\" refused: {reason}")]
    Isolated {
        from_zone: String,
        to_zone: String,
        reason: String,
    },
    #[error("best route fidelity {best:.4} is below the threshold {threshold}")]
    FidelityTooLow { best: f64, threshold: f64 },
}

impl RouteError {
    /// True for errors caused by the caller's input (an unknown node).
    pub fn is_usage(&self) -> bool {
        matches!(self, RouteError::UnknownNode(_))
    }
}
