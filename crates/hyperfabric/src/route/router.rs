//! The [`Router`]: strategies over a [`Topology`], with a cache and a trained predictor.

use super::cache::RouteCache;
use super::predictor::{Predictor, PredictorSample};
use super::search::{bidijkstra, widest, Filter, Path, Scratch};
use super::strategy::{link_weight, WeightCtx};
use super::topology::{class, Topology};
use super::{Route, RouteError, RouteHop, Strategy};
use super::{DEFAULT_FIDELITY_THRESHOLD, MEDIUM_CROSSING_COST, MEDIUM_CROSSING_PENALTY_NS};
use crate::config::Isolation;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Hour of day assumed by the predictor until [`Router::set_hour`] is called.
pub const DEFAULT_HOUR: f64 = 12.0;

/// Computes and caches routes over a topology.
#[derive(Debug)]
pub struct Router {
    topo: Topology,
    cache: RouteCache,
    scratch: Scratch,
    predictor: Predictor,
    threshold: f64,
    hour: f64,
    default_strategy: Strategy,
}

/// Nodes and links a search must avoid (disjoint paths).
#[derive(Default)]
struct Blocked {
    nodes: Vec<bool>,
    links: Vec<bool>,
}

impl Router {
    pub fn new(topology: Topology) -> Router {
        Router {
            topo: topology,
            cache: RouteCache::default(),
            scratch: Scratch::default(),
            predictor: Predictor::new(),
            threshold: DEFAULT_FIDELITY_THRESHOLD,
            hour: DEFAULT_HOUR,
            default_strategy: Strategy::default(),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Structural changes made through this bump the version, which invalidates the cache.
    pub fn topology_mut(&mut self) -> &mut Topology {
        &mut self.topo
    }

    pub fn predictor(&self) -> &Predictor {
        &self.predictor
    }

    /// Online training of the predictive strategy from a completed transfer. Cached
    /// predictive routes pick the new model up when they expire.
    pub fn train(&mut self, sample: PredictorSample) {
        self.predictor.train(&sample);
    }

    /// Trains from a JSON-lines history; returns the number of samples read.
    pub fn train_from_jsonl(&mut self, text: &str) -> Result<usize, String> {
        self.predictor.train_from_jsonl(text)
    }

    /// Quantum routes below `t` are refused (values outside 0..=1 are clamped).
    pub fn set_fidelity_threshold(&mut self, t: f64) {
        self.threshold = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            DEFAULT_FIDELITY_THRESHOLD
        };
        self.cache.clear();
    }

    pub fn fidelity_threshold(&self) -> f64 {
        self.threshold
    }

    /// The local hour of day (0..24) the predictor uses; the runtime passes it in.
    pub fn set_hour(&mut self, hour: f64) {
        if hour.is_finite() {
            self.hour = hour.rem_euclid(24.0);
        }
    }

    /// The strategy [`next_hop`](Self::next_hop) uses (default `lowest_latency`).
    pub fn set_default_strategy(&mut self, s: Strategy) {
        self.default_strategy = s;
    }

    pub fn default_strategy(&self) -> Strategy {
        self.default_strategy
    }

    /// Applies the file's `[routing]` (the history is read by the node, which knows where
    /// the file is): default strategy, predictor knobs, fidelity threshold.
    pub fn configure(&mut self, r: &crate::config::RoutingConfig) {
        if let Some(s) = r.default_strategy {
            self.default_strategy = s;
        }
        if let Some(rate) = r.learning_rate {
            self.predictor.set_learning_rate(rate);
        }
        if let Some(n) = r.training_samples {
            self.predictor.set_min_samples(n);
        }
        if let Some(t) = r.fidelity_threshold {
            self.set_fidelity_threshold(t);
        }
        self.cache.clear();
    }

    pub fn set_cache_ttl(&mut self, ttl: Duration) {
        self.cache.set_ttl(ttl);
    }

    pub fn cache_ttl(&self) -> Duration {
        self.cache.ttl()
    }

    pub fn cached_routes(&self) -> usize {
        self.cache.len()
    }

    /// Drops every cached route.
    pub fn invalidate(&mut self) {
        self.cache.clear();
    }

    fn index(&self, id: &str) -> Result<u32, RouteError> {
        self.topo
            .node_index(id)
            .filter(|&i| self.topo.nodes[i as usize].present)
            .ok_or_else(|| RouteError::UnknownNode(id.to_string()))
    }

    /// The route from `from` to `to` by `strategy`, from the cache while it is valid.
    pub fn route(
        &mut self,
        from: &str,
        to: &str,
        strategy: Strategy,
        now: Instant,
    ) -> Result<Route, RouteError> {
        self.route_shared(from, to, strategy, now)
            .map(|r| Route::clone(&r))
    }

    /// Like [`route`](Self::route) but shares the cached route instead of copying it (the
    /// cheapest form for a hot path: no allocation on a cache hit).
    pub fn route_shared(
        &mut self,
        from: &str,
        to: &str,
        strategy: Strategy,
        now: Instant,
    ) -> Result<Arc<Route>, RouteError> {
        let (f, t) = (self.index(from)?, self.index(to)?);
        let version = self.topo.version();
        if let Some(r) = self.cache.get(f, t, strategy, now, version) {
            return Ok(Arc::clone(r));
        }
        let route = Arc::new(self.compute(f, t, strategy, &Blocked::default())?);
        self.cache.insert(f, t, Arc::clone(&route), now, version);
        Ok(route)
    }

    /// First hop of the default-strategy route (`to` itself when `from == to`).
    pub fn next_hop(&mut self, from: &str, to: &str, now: Instant) -> Result<String, RouteError> {
        let r = self.route_shared(from, to, self.default_strategy, now)?;
        Ok(r.next_hop().unwrap_or(to).to_string())
    }

    /// Up to `k` node-disjoint routes, best first: each next one avoids the intermediate
    /// nodes of the ones before (and the direct link, if one was used). Greedy, so on rare
    /// graphs fewer than the maximum number of disjoint paths are found. Not cached.
    pub fn disjoint_routes(
        &mut self,
        from: &str,
        to: &str,
        k: usize,
        strategy: Strategy,
    ) -> Vec<Route> {
        let (Ok(f), Ok(t)) = (self.index(from), self.index(to)) else {
            return Vec::new();
        };
        let mut blocked = Blocked {
            nodes: vec![false; self.topo.nodes.len()],
            links: vec![false; self.topo.links.len()],
        };
        let mut out = Vec::new();
        while out.len() < k {
            let Ok(route) = self.compute(f, t, strategy, &blocked) else {
                break;
            };
            if route.hops.is_empty() {
                out.push(route);
                break;
            }
            for id in &route.nodes[1..route.nodes.len() - 1] {
                if let Some(i) = self.topo.node_index(id) {
                    blocked.nodes[i as usize] = true;
                }
            }
            if route.hops.len() == 1 {
                if let Some(l) = self.topo.link_id(from, to) {
                    blocked.links[l as usize] = true;
                }
            }
            out.push(route);
        }
        out
    }

    /// Zone rule for a route: `Ok(Some(z))` confines it to hard zone `z`, `Ok(None)` keeps it
    /// out of every hard zone.
    fn zone_rule(&self, f: u32, t: u32) -> Result<Option<u32>, RouteError> {
        let (nf, nt) = (&self.topo.nodes[f as usize], &self.topo.nodes[t as usize]);
        let (hf, ht) = (self.topo.isolation_of(f), self.topo.isolation_of(t));
        if hf != Isolation::Hard && ht != Isolation::Hard {
            return Ok(None);
        }
        if nf.zone.is_some() && nf.zone == nt.zone {
            return Ok(nf.zone);
        }
        let name = |i| {
            self.topo
                .zone_of(i)
                .map_or("(none)".to_string(), |z| z.id.clone())
        };
        let hard = if hf == Isolation::Hard { f } else { t };
        Err(RouteError::Isolated {
            from_zone: name(f),
            to_zone: name(t),
            reason: format!("zone \"{}\" has hard isolation", name(hard)),
        })
    }

    fn compute(
        &mut self,
        f: u32,
        t: u32,
        s: Strategy,
        blocked: &Blocked,
    ) -> Result<Route, RouteError> {
        self.topo.refresh_classes();
        let only_zone = self.zone_rule(f, t)?;
        // Built only when needed: a found route copies no names into an error.
        let no_route = |topo: &Topology| RouteError::NoRoute {
            from: topo.nodes[f as usize].id.clone(),
            to: topo.nodes[t as usize].id.clone(),
        };
        if !self.topo.nodes[f as usize].usable() || !self.topo.nodes[t as usize].usable() {
            return Err(no_route(&self.topo));
        }
        let filter = Filter {
            only_zone,
            blocked: &blocked.nodes,
            blocked_links: &blocked.links,
        };
        let path = if f == t {
            Some(Path {
                nodes: vec![f],
                links: Vec::new(),
                score: 0.0,
            })
        } else if s == Strategy::HighestBandwidth {
            widest(&self.topo, &mut self.scratch, f, t, &filter)
        } else {
            self.shortest(f, t, s, &filter)
        };
        let path = path.ok_or_else(|| no_route(&self.topo))?;
        let route = self.build(s, &path, self.decoherence_per_ns(f, t));
        match route.fidelity {
            Some(best) if best < self.threshold => Err(RouteError::FidelityTooLow {
                best,
                threshold: self.threshold,
            }),
            _ => Ok(route),
        }
    }

    fn shortest(&mut self, f: u32, t: u32, s: Strategy, filter: &Filter<'_>) -> Option<Path> {
        let ctx = WeightCtx {
            predictor: &self.predictor,
            hour: self.hour,
            decoherence_per_ns: self.decoherence_per_ns(f, t),
        };
        let topo = &self.topo;
        let penalised = s != Strategy::QuantumOptimized;
        bidijkstra(topo, &mut self.scratch, f, t, filter, |l, u, v| {
            let w = link_weight(s, l, &ctx);
            if penalised && medium_crossing(topo, u, v) {
                w + MEDIUM_CROSSING_PENALTY_NS
            } else {
                w
            }
        })
    }

    /// Σ 1/coherence over the QPU endpoints (each counted once).
    fn decoherence_per_ns(&self, f: u32, t: u32) -> f64 {
        let rate = |i: u32| {
            self.topo.nodes[i as usize]
                .coherence_ns
                .filter(|c| *c > 0.0)
                .map_or(0.0, |c| 1.0 / c)
        };
        rate(f) + if f == t { 0.0 } else { rate(t) }
    }

    fn build(&self, s: Strategy, p: &Path, decoherence_per_ns: f64) -> Route {
        let topo = &self.topo;
        let id = |i: u32| topo.nodes[i as usize].id.clone();
        let mut hops = Vec::with_capacity(p.links.len());
        let (mut fidelity, mut predicted) = (1.0, 0.0);
        for (w, &l) in p.nodes.windows(2).zip(&p.links) {
            let link = &topo.links[l as usize];
            let penalty = if medium_crossing(topo, w[0], w[1]) {
                MEDIUM_CROSSING_COST
            } else {
                0.0
            };
            fidelity *= link.fidelity;
            if s == Strategy::Predictive {
                predicted += self
                    .predictor
                    .predict_link_ns(link, self.hour)
                    .unwrap_or(0.0);
            }
            hops.push(RouteHop {
                from: id(w[0]),
                to: id(w[1]),
                latency_ns: link.latency_ns,
                bandwidth_gbps: link.bandwidth_gbps,
                cost: link.cost + penalty,
                utilisation: link.utilisation(),
            });
        }
        let latency_ns = hops.iter().map(|h| h.latency_ns).sum::<u64>();
        let fidelity = fidelity * (-(latency_ns as f64) * decoherence_per_ns).exp();
        Route {
            strategy: s,
            nodes: p.nodes.iter().map(|&i| id(i)).collect(),
            latency_ns,
            bandwidth_gbps: hops
                .iter()
                .map(|h| h.bandwidth_gbps)
                .fold(f64::INFINITY, f64::min),
            cost: hops.iter().map(|h| h.cost).sum(),
            hops,
            fidelity: (s == Strategy::QuantumOptimized).then_some(fidelity),
            predicted_latency_ns: (s == Strategy::Predictive && self.predictor.is_trained())
                .then_some(predicted),
        }
    }
}

/// True if the hop u→v enters or leaves a medium-isolation zone.
fn medium_crossing(t: &Topology, u: u32, v: u32) -> bool {
    (t.class(u) | t.class(v)) & class::MEDIUM != 0
        && t.nodes[u as usize].zone != t.nodes[v as usize].zone
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
