//! Planning a send before its first byte: the peer, the zone check, the data type's policy,
//! the latency and bandwidth constraints against the routes, and the paths (the route's
//! first hop or a multipath set). An [`super::Endpoint`] keeps a plan and re-plans when the
//! fabric's generation moves.

use super::{Fabric, MultipathConfig, SendOptions};
use crate::error::{Error, Result};
use crate::route::{Router, Strategy};
use crate::runtime::{Path as RoutePath, PathScheduler, PathSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// What [`Fabric::plan`] resolved for sends to one destination.
pub(crate) struct SendPlan {
    pub peer: Arc<crate::runtime::Peer>,
    /// The caller's options with the data type's policy and the first hop's speed applied.
    pub opts: SendOptions,
    pub paths: PathSet,
    /// [`Fabric::generation`] when planned.
    pub generation: u64,
}

impl Fabric {
    /// Resolves what a send to `dst` needs before its first byte: the peer, the zone check,
    /// the data type's policy, the constraints, and the paths (route or multipath set).
    pub(crate) fn plan(&self, dst: &str, opts: SendOptions) -> Result<SendPlan> {
        let generation = self.generation.load(Ordering::Acquire);
        let peer = self.inner.peer_by_id(dst)?;
        if let Err(why) = self.inner.zones.check(self.inner.my_key, peer.key, &[]) {
            return Err(Error::Rejected {
                reason: why.to_string(),
            });
        }
        let policy = self.policy(opts.data_type);
        let mut opts = opts.with_policy(&policy);
        self.check_constraints(dst, &opts)?;
        opts.link_gbps = self.first_hop_gbps(dst, opts.strategy);
        // Resolved here so the frames carry it and the relays forward by it.
        opts.strategy = Some(
            opts.strategy
                .unwrap_or_else(|| self.inner.default_strategy()),
        );
        let paths = self.paths_to(
            &peer,
            opts.multipath
                .clone()
                .or_else(|| self.multipath.lock().get(dst).cloned()),
            opts.strategy,
        )?;
        Ok(SendPlan {
            peer: Arc::new(peer),
            opts,
            paths,
            generation,
        })
    }

    /// The paths a send to `dst` uses: the configured multipath set, or the route's first hop.
    pub(super) fn paths_to(
        &self,
        dst: &crate::runtime::Peer,
        multipath: Option<MultipathConfig>,
        strategy: Option<crate::route::Strategy>,
    ) -> Result<PathSet> {
        let now = std::time::Instant::now();
        let me = self.node_id().to_owned();
        let Some(m) = multipath else {
            let (hop, via) = self.inner.first_hop(dst, strategy, now)?;
            return Ok(PathSet::new(
                vec![RoutePath::new(hop, via, 1.0)],
                PathScheduler::WeightedRoundRobin,
                Duration::from_secs(1),
                now,
            ));
        };
        let mut paths = Vec::with_capacity(m.paths.len());
        for (hop, weight) in &m.paths {
            if !(weight.is_finite() && *weight > 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "multipath weight of `{hop}` must be > 0 (got {weight})"
                )));
            }
            let peer = self.inner.peer_by_id(hop)?;
            let via = if peer.key == dst.key {
                vec![me.clone(), dst.id.clone()]
            } else {
                vec![me.clone(), hop.clone(), dst.id.clone()]
            };
            paths.push(RoutePath::new(peer, via, *weight));
        }
        if paths.is_empty() {
            return Err(Error::InvalidArgument(
                "multipath needs at least one path".into(),
            ));
        }
        Ok(PathSet::new(
            paths,
            m.scheduler,
            m.health_check_interval,
            now,
        ))
    }

    /// The guide's `configure_multipath`: later sends to `dst` are striped over these paths.
    pub fn configure_multipath(&self, dst: &str, config: MultipathConfig) -> Result<()> {
        self.inner.peer_by_id(dst)?;
        for (hop, _) in &config.paths {
            self.inner.peer_by_id(hop)?;
        }
        self.multipath.lock().insert(dst.to_owned(), config);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Refuses a send whose constraints no route meets, naming the best route's figures.
    pub(super) fn check_constraints(&self, dst: &str, opts: &SendOptions) -> Result<()> {
        if opts.latency_constraint_ns.is_none() && opts.bandwidth_requirement_gbps.is_none() {
            return Ok(());
        }
        let me = self.node_id().to_owned();
        self.inner
            .with_router(|router| self.check_constraints_on(router, &me, dst, opts))
    }

    fn check_constraints_on(
        &self,
        router: &mut Router,
        me: &str,
        dst: &str,
        opts: &SendOptions,
    ) -> Result<()> {
        let now = std::time::Instant::now();
        if let Some(limit) = opts.latency_constraint_ns {
            let route = match router.route_shared(me, dst, Strategy::LowestLatency, now) {
                Ok(r) => r.latency_ns,
                Err(_) => self.direct_latency_ns(dst),
            };
            if route > limit {
                return Err(Error::LatencyViolation {
                    route_latency_ns: route,
                    limit_ns: limit,
                });
            }
        }
        if let Some(required) = opts.bandwidth_requirement_gbps {
            let route = match router.route_shared(me, dst, Strategy::HighestBandwidth, now) {
                Ok(r) => r.bandwidth_gbps,
                Err(_) => self.direct_bandwidth_gbps(dst),
            };
            if route < required {
                return Err(Error::BandwidthExceeded {
                    route_bandwidth_gbps: route,
                    required_gbps: required,
                });
            }
        }
        Ok(())
    }

    /// The bandwidth of the link a send to `dst` crosses first (the route's first hop by
    /// the send's strategy; without a route, the direct link or the nodes' own figures).
    pub(super) fn first_hop_gbps(&self, dst: &str, strategy: Option<Strategy>) -> f64 {
        let now = std::time::Instant::now();
        let hop = self.inner.with_router(|router| {
            let strategy = strategy.unwrap_or_else(|| router.default_strategy());
            match router.route_shared(self.node_id(), dst, strategy, now) {
                Ok(r) => r.hops.first().map(|h| h.bandwidth_gbps),
                Err(_) => None,
            }
        });
        hop.unwrap_or_else(|| self.direct_bandwidth_gbps(dst))
    }

    /// The configured latency of the direct link, or the two nodes' own latencies.
    fn direct_latency_ns(&self, dst: &str) -> u64 {
        let me = self.node_id();
        if let Some(link) = self.config.link_between(me, dst) {
            return link.latency_ns;
        }
        let lat = |id: &str| self.config.node(id).map_or(0, |n| n.signature.latency_ns);
        lat(me) + lat(dst)
    }

    /// The configured bandwidth of the direct link, or the slower of the two nodes.
    fn direct_bandwidth_gbps(&self, dst: &str) -> f64 {
        let me = self.node_id();
        if let Some(link) = self.config.link_between(me, dst) {
            return link.bandwidth_gbps;
        }
        let bw = |id: &str| {
            self.config
                .node(id)
                .map_or(f64::INFINITY, |n| n.signature.bandwidth_gbps)
        };
        bw(me).min(bw(dst))
    }
}
