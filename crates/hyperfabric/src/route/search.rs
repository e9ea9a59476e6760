//! Graph searches over interned indices with reusable scratch buffers: Dijkstra on an
//! additive weight, and the widest (max-bottleneck) path.

use super::topology::{class, LinkInfo, Topology};
use super::ROUTE_HOPS_MAX;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

const NONE: u32 = u32::MAX;

/// A path as node indices and the link index of each hop.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    pub nodes: Vec<u32>,
    pub links: Vec<u32>,
    /// Sum of weights (Dijkstra) or the bottleneck (widest).
    pub score: f64,
}

/// Which nodes a search may visit.
pub(crate) struct Filter<'a> {
    /// `Some(z)`: only nodes of zone `z` (a route inside a hard zone); `None`: any node not
    /// in a hard zone.
    pub only_zone: Option<u32>,
    /// Nodes excluded by the caller (disjoint paths), indexed by node.
    pub blocked: &'a [bool],
    /// Links excluded by the caller, indexed by link.
    pub blocked_links: &'a [bool],
}

impl Filter<'_> {
    /// Whether the search may step onto node `i` over `link` (`to` is the target).
    #[inline]
    fn allows(&self, t: &Topology, i: u32, link: u32, to: u32) -> bool {
        let c = t.class(i);
        // A leaf other than the target is never on a path (fat-tree hosts: most nodes).
        if c & class::USABLE == 0 || (c & class::LEAF != 0 && i != to) {
            return false;
        }
        if self.blocked.get(i as usize).copied().unwrap_or(false)
            || self
                .blocked_links
                .get(link as usize)
                .copied()
                .unwrap_or(false)
        {
            return false;
        }
        match self.only_zone {
            Some(z) => t.nodes[i as usize].zone == Some(z),
            None => c & class::HARD == 0,
        }
    }

    /// The steps a search may take from node `u` towards `goal`: (next node, link index,
    /// link) over usable links onto allowed nodes.
    #[inline]
    fn steps<'t>(
        &'t self,
        t: &'t Topology,
        u: u32,
        goal: u32,
    ) -> impl Iterator<Item = (u32, u32, &'t LinkInfo)> + 't {
        t.adj[u as usize]
            .iter()
            .filter(move |e| self.allows(t, e.to, e.link, goal))
            .map(|e| (e.to, e.link, &t.links[e.link as usize]))
            .filter(|(_, _, l)| l.usable())
    }
}

/// Follows `prev` from `at` until `stop`, pushing each node reached and the link taken.
fn walk(prev: &[(u32, u32)], mut at: u32, stop: u32, nodes: &mut Vec<u32>, links: &mut Vec<u32>) {
    while at != stop {
        let (p, l) = prev[at as usize];
        nodes.push(p);
        links.push(l);
        at = p;
    }
}

/// Reusable buffers (sized to the topology on each search; no per-search allocation once warm).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    dist: Vec<f64>,
    hops: Vec<u32>,
    prev: Vec<(u32, u32)>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    back: Side,
    wide: BinaryHeap<(u64, Reverse<u32>, u32)>,
}

impl Scratch {
    fn reset(&mut self, n: usize, dist: f64) {
        self.dist.clear();
        self.dist.resize(n, dist);
        self.hops.clear();
        self.hops.resize(n, u32::MAX);
        self.prev.clear();
        self.prev.resize(n, (NONE, NONE));
        self.heap.clear();
        self.wide.clear();
        self.back.reset(n);
    }

    fn path(&self, from: u32, to: u32, score: f64) -> Path {
        let (mut nodes, mut links) = (vec![to], Vec::new());
        walk(&self.prev, to, from, &mut nodes, &mut links);
        nodes.reverse();
        links.reverse();
        Path {
            nodes,
            links,
            score,
        }
    }
}

/// Dijkstra from `from` to `to` (the reference for [`bidijkstra`], kept for tests) minimising the sum of `weight(link, u, v)` (must be >= 0).
#[cfg(test)]
pub(crate) fn dijkstra(
    t: &Topology,
    s: &mut Scratch,
    from: u32,
    to: u32,
    filter: &Filter<'_>,
    weight: impl Fn(&LinkInfo, u32, u32) -> f64,
) -> Option<Path> {
    s.reset(t.nodes.len(), f64::INFINITY);
    s.dist[from as usize] = 0.0;
    s.hops[from as usize] = 0;
    s.heap.push(Reverse((0f64.to_bits(), from)));
    while let Some(Reverse((bits, u))) = s.heap.pop() {
        let d = f64::from_bits(bits);
        if u == to {
            return Some(s.path(from, to, d));
        }
        if d > s.dist[u as usize] || s.hops[u as usize] as usize >= ROUTE_HOPS_MAX {
            continue;
        }
        for (v, link, l) in filter.steps(t, u, to) {
            let nd = d + weight(l, u, v).max(0.0);
            if nd < s.dist[v as usize] {
                s.dist[v as usize] = nd;
                s.hops[v as usize] = s.hops[u as usize] + 1;
                s.prev[v as usize] = (u, link);
                s.heap.push(Reverse((nd.to_bits(), v)));
            }
        }
    }
    None
}

/// One direction of a bidirectional search.
#[derive(Debug, Default)]
struct Side {
    dist: Vec<f64>,
    prev: Vec<(u32, u32)>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
}

impl Side {
    fn reset(&mut self, n: usize) {
        self.dist.clear();
        self.dist.resize(n, f64::INFINITY);
        self.prev.clear();
        self.prev.resize(n, (NONE, NONE));
        self.heap.clear();
    }

    fn top(&self) -> f64 {
        self.heap
            .peek()
            .map_or(f64::INFINITY, |Reverse((b, _))| f64::from_bits(*b))
    }

    /// Settles one node; updates `best` = (length, meeting node) from the `other` side.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        other: &[f64],
        t: &Topology,
        filter: &Filter<'_>,
        goal: u32,
        best: &mut (f64, u32),
        weight: &impl Fn(&LinkInfo, u32, u32) -> f64,
    ) {
        let Some(Reverse((bits, u))) = self.heap.pop() else {
            return;
        };
        let d = f64::from_bits(bits);
        if d > self.dist[u as usize] {
            return;
        }
        for (to, link, l) in filter.steps(t, u, goal) {
            let nd = d + weight(l, u, to).max(0.0);
            let v = to as usize;
            if nd < self.dist[v] {
                self.dist[v] = nd;
                self.prev[v] = (u, link);
                self.heap.push(Reverse((nd.to_bits(), to)));
            }
            let through = self.dist[v] + other[v];
            if through < best.0 {
                *best = (through, to);
            }
        }
    }
}

/// Bidirectional Dijkstra: same result as [`dijkstra`] (up to ties), settling far fewer
/// nodes on wide graphs. Routes over [`ROUTE_HOPS_MAX`] hops are refused.
pub(crate) fn bidijkstra(
    t: &Topology,
    s: &mut Scratch,
    from: u32,
    to: u32,
    filter: &Filter<'_>,
    weight: impl Fn(&LinkInfo, u32, u32) -> f64,
) -> Option<Path> {
    s.reset(t.nodes.len(), f64::INFINITY);
    let mut fwd = Side {
        dist: std::mem::take(&mut s.dist),
        prev: std::mem::take(&mut s.prev),
        heap: std::mem::take(&mut s.heap),
    };
    let mut back = std::mem::take(&mut s.back);
    fwd.dist[from as usize] = 0.0;
    back.dist[to as usize] = 0.0;
    fwd.heap.push(Reverse((0f64.to_bits(), from)));
    back.heap.push(Reverse((0f64.to_bits(), to)));
    let mut best = (f64::INFINITY, NONE);
    loop {
        let (tf, tb) = (fwd.top(), back.top());
        if tf + tb >= best.0 || (tf.is_infinite() && tb.is_infinite()) {
            break;
        }
        if tf <= tb {
            fwd.step(&back.dist, t, filter, to, &mut best, &weight);
        } else {
            back.step(&fwd.dist, t, filter, from, &mut best, &weight);
        }
    }
    let path = (best.1 != NONE).then(|| join(&fwd, &back, from, to, best));
    (s.dist, s.prev, s.heap, s.back) = (fwd.dist, fwd.prev, fwd.heap, back);
    path.filter(|p| p.links.len() <= ROUTE_HOPS_MAX)
}

/// The path from `from` to the meeting node (forward) and on to `to` (backward).
fn join(fwd: &Side, back: &Side, from: u32, to: u32, best: (f64, u32)) -> Path {
    let (mut nodes, mut links) = (vec![best.1], Vec::new());
    walk(&fwd.prev, best.1, from, &mut nodes, &mut links);
    nodes.reverse();
    links.reverse();
    walk(&back.prev, best.1, to, &mut nodes, &mut links);
    Path {
        nodes,
        links,
        score: best.0,
    }
}

/// Widest path: maximises the bottleneck bandwidth, ties broken by fewer hops.
pub(crate) fn widest(
    t: &Topology,
    s: &mut Scratch,
    from: u32,
    to: u32,
    filter: &Filter<'_>,
) -> Option<Path> {
    s.reset(t.nodes.len(), -1.0);
    s.dist[from as usize] = f64::MAX;
    s.hops[from as usize] = 0;
    s.wide.push((f64::MAX.to_bits(), Reverse(0), from));
    while let Some((bits, Reverse(h), u)) = s.wide.pop() {
        let bw = f64::from_bits(bits);
        if u == to {
            return Some(s.path(from, to, bw));
        }
        if bw < s.dist[u as usize] || h > s.hops[u as usize] || h as usize >= ROUTE_HOPS_MAX {
            continue;
        }
        for (v, link, l) in filter.steps(t, u, to) {
            let nb = bw.min(l.bandwidth_gbps.max(0.0));
            let (vb, vh) = (s.dist[v as usize], s.hops[v as usize]);
            if nb > vb || (nb == vb && h + 1 < vh) {
                s.dist[v as usize] = nb;
                s.hops[v as usize] = h + 1;
                s.prev[v as usize] = (u, link);
                s.wide.push((nb.to_bits(), Reverse(h + 1), v));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Filter<'static> {
        Filter {
            only_zone: None,
            blocked: &[],
            blocked_links: &[],
        }
    }

    #[test]
    fn dijkstra_and_widest_disagree_on_purpose() {
        let mut t = Topology::new();
        t.add_link_raw("a", "b", 10.0, 10);
        t.add_link_raw("b", "d", 10.0, 10);
        t.add_link_raw("a", "c", 100.0, 50);
        t.add_link_raw("c", "d", 100.0, 50);
        let (a, d) = (
            t.node_index("a").unwrap_or(0),
            t.node_index("d").unwrap_or(0),
        );
        t.refresh_classes();
        let mut s = Scratch::default();
        let fast = dijkstra(&t, &mut s, a, d, &open(), |l, _, _| l.latency_ns as f64);
        let wide = widest(&t, &mut s, a, d, &open());
        let name = |p: Option<Path>| p.map(|p| t.nodes[p.nodes[1] as usize].id.clone());
        assert_eq!(name(fast), Some("b".to_string()));
        assert_eq!(name(wide), Some("c".to_string()));
    }

    #[test]
    fn bidirectional_matches_dijkstra() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for _ in 0..200 {
            let mut t = Topology::new();
            let n = 2 + next(30);
            for _ in 0..next(4 * n) {
                let (a, b) = (next(n), next(n));
                if a != b {
                    t.add_link_raw(&format!("n{a}"), &format!("n{b}"), 1.0, 1 + next(100));
                }
            }
            t.refresh_classes();
            let mut s = Scratch::default();
            let (Some(a), Some(b)) = (t.node_index("n0"), t.node_index("n1")) else {
                continue;
            };
            let w = |l: &LinkInfo, _: u32, _: u32| l.latency_ns as f64;
            let uni = dijkstra(&t, &mut s, a, b, &open(), w).map(|p| p.score);
            let bi = bidijkstra(&t, &mut s, a, b, &open(), w);
            assert_eq!(uni, bi.as_ref().map(|p| p.score));
            if let Some(p) = bi {
                let sum: u64 = p
                    .links
                    .iter()
                    .map(|&l| t.links[l as usize].latency_ns)
                    .sum();
                assert_eq!(sum as f64, p.score, "path is consistent");
                assert_eq!((p.nodes.first(), p.nodes.last()), (Some(&a), Some(&b)));
            }
        }
    }

    #[test]
    fn blocked_nodes_are_avoided() {
        let mut t = Topology::new();
        t.add_link_raw("a", "b", 10.0, 10);
        t.add_link_raw("b", "c", 10.0, 10);
        let (a, c) = (
            t.node_index("a").unwrap_or(0),
            t.node_index("c").unwrap_or(0),
        );
        let blocked = [false, true, false];
        let f = Filter {
            blocked: &blocked,
            ..open()
        };
        t.refresh_classes();
        let mut s = Scratch::default();
        assert!(dijkstra(&t, &mut s, a, c, &f, |_, _, _| 1.0).is_none());
        assert!(bidijkstra(&t, &mut s, a, c, &f, |_, _, _| 1.0).is_none());
        assert!(widest(&t, &mut s, a, c, &f).is_none());
    }
}
