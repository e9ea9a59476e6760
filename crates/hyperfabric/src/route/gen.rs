//! Synthetic topologies for tests and benchmarks.

use super::Topology;

/// A k-ary fat-tree (k even): `(k/2)²` core switches, `k` pods of `k/2` aggregation and
/// `k/2` edge switches, and `k/2` hosts per edge switch (`k³/4` hosts). k = 34 gives
/// 11,271 nodes and 29,478 links. Link latencies vary deterministically (100..=163 ns) so
/// the latency strategies have real choices; hosts links are 100 Gbps, switch links 400.
/// Names: `core-i`, `agg-p-i`, `edge-p-i`, `host-p-e-i`. An odd `k` is rounded down.
pub fn fat_tree(k: usize) -> Topology {
    let k = k & !1;
    let half = k / 2;
    let mut t = Topology::new();
    let lat = |a: usize, b: usize| 100 + ((a * 31 + b * 17) % 64) as u64;
    for p in 0..k {
        for a in 0..half {
            for c in 0..half {
                let core = a * half + c;
                t.add_link_raw(
                    &format!("agg-{p}-{a}"),
                    &format!("core-{core}"),
                    400.0,
                    lat(p, core),
                );
            }
            for e in 0..half {
                t.add_link_raw(
                    &format!("agg-{p}-{a}"),
                    &format!("edge-{p}-{e}"),
                    400.0,
                    lat(a, e + p),
                );
            }
        }
        for e in 0..half {
            for h in 0..half {
                t.add_link_raw(
                    &format!("edge-{p}-{e}"),
                    &format!("host-{p}-{e}-{h}"),
                    100.0,
                    lat(e, h),
                );
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let t = fat_tree(4);
        assert_eq!(t.node_count(), 4 + 8 + 8 + 16);
        assert_eq!(t.link_count(), 16 + 16 + 16);
        let t = fat_tree(34);
        assert_eq!(t.node_count(), 11_271);
    }
}
