//! The node's links and its one router: next hops for relaying and acks, disjoint first
//! hops for a transfer's paths, and which links are up.

use super::relay::NextHop;
use crate::route::{Router, Topology};
use crate::wire::node_key;
use std::collections::HashMap;

/// Most links one node registers.
pub const LINKS_MAX: usize = 256;

/// A link of this node, as the engine registered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u32);

#[derive(Debug)]
struct LinkEntry {
    peer: String,
    peer_key: u64,
    up: bool,
}

#[derive(Debug)]
pub(super) struct Paths {
    me: String,
    router: Router,
    links: Vec<LinkEntry>,
    /// Node key -> id, for every node of the topology.
    names: HashMap<u64, String>,
    /// Next hop per destination key, valid for `cache_version` of the topology.
    next_hops: HashMap<u64, Option<LinkId>>,
    cache_version: u64,
}

impl Paths {
    pub fn new(me: &str, topology: Topology) -> Paths {
        let names = topology
            .node_ids()
            .map(|id| (node_key(id), id.to_string()))
            .collect();
        let cache_version = topology.version();
        Paths {
            me: me.to_string(),
            router: Router::new(topology),
            links: Vec::new(),
            names,
            next_hops: HashMap::new(),
            cache_version,
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    /// Registers a link to `peer` (up). `None` when the table is full or `peer` is unknown.
    pub fn add_link(&mut self, peer: &str) -> Option<LinkId> {
        if self.links.len() >= LINKS_MAX || !self.router.topology().contains(peer) {
            return None;
        }
        let id = LinkId(u32::try_from(self.links.len()).ok()?);
        self.links.push(LinkEntry {
            peer: peer.to_string(),
            peer_key: node_key(peer),
            up: true,
        });
        Some(id)
    }

    /// Marks a link up or down; the router stops (or starts again) using it.
    pub fn set_up(&mut self, link: LinkId, up: bool) -> bool {
        let Some(l) = self.links.get_mut(link.0 as usize) else {
            return false;
        };
        l.up = up;
        let peer = l.peer.clone();
        // Up again only if no other link to the same peer is still up.
        let any_up = self.links.iter().any(|l| l.peer == peer && l.up);
        let me = self.me.clone();
        self.router.topology_mut().set_link_up(&me, &peer, any_up);
        true
    }

    pub fn peer(&self, link: LinkId) -> Option<&str> {
        self.links.get(link.0 as usize).map(|l| l.peer.as_str())
    }

    pub fn peer_key(&self, link: LinkId) -> Option<u64> {
        self.links.get(link.0 as usize).map(|l| l.peer_key)
    }

    /// The way on towards `dst` as [`relay::decide`](super::relay::decide) asks for it.
    pub fn route(&mut self, dst: u64) -> NextHop<LinkId> {
        if self.name_of(dst).is_none() {
            return NextHop::UnknownDestination;
        }
        let next = self.next_hop(dst);
        match next.and_then(|hop| Some((hop, self.peer_key(hop)?))) {
            None => NextHop::NoRoute,
            Some((hop, peer)) => NextHop::Via { hop, peer },
        }
    }

    pub fn name_of(&self, key: u64) -> Option<&str> {
        self.names.get(&key).map(String::as_str)
    }

    fn link_to(&self, peer_key: u64) -> Option<LinkId> {
        let i = self
            .links
            .iter()
            .position(|l| l.up && l.peer_key == peer_key)?;
        Some(LinkId(i as u32))
    }

    /// The link to forward a frame for `dst` on: the first hop of the router's route.
    pub fn next_hop(&mut self, dst: u64) -> Option<LinkId> {
        let version = self.router.topology().version();
        if version != self.cache_version {
            self.next_hops.clear();
            self.cache_version = version;
        }
        if let Some(hop) = self.next_hops.get(&dst) {
            return *hop;
        }
        let hop = self.first_hops(dst, 1).first().copied();
        if self.next_hops.len() < self.names.len() {
            self.next_hops.insert(dst, hop);
        }
        hop
    }

    /// First hops of up to `k` node-disjoint routes to `dst`, best first. A route whose
    /// first hop would itself route back through this node (by the same router over the
    /// same topology) is left out: its frames would bounce.
    pub fn first_hops(&mut self, dst: u64, k: usize) -> Vec<LinkId> {
        let Some(dst_name) = self.names.get(&dst).cloned() else {
            return Vec::new();
        };
        let strategy = self.router.default_strategy();
        let routes = self
            .router
            .disjoint_routes(&self.me, &dst_name, k, strategy);
        let mut hops = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let Some(first) = route.nodes.get(1) else {
                continue;
            };
            if i > 0 && first != &dst_name {
                let back = self.router.disjoint_routes(first, &dst_name, 1, strategy);
                if back.first().is_none_or(|r| r.nodes.contains(&self.me)) {
                    continue;
                }
            }
            if let Some(link) = self.link_to(node_key(first)) {
                if !hops.contains(&link) {
                    hops.push(link);
                }
            }
        }
        hops
    }
}
