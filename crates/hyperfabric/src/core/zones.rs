//! Zone isolation, one check ([`Zones::check`]) that the runtime asks at the source, at
//! every relay and at the destination, and the core's [`Node`](super::Node) at the same
//! three places (so the simulator runs it).
//!
//! `hard`: nothing crosses the zone's boundary, in or out, and no transfer between other
//! zones may transit through it. `none`, `soft` and `medium` let traffic cross (routing may
//! still prefer to stay inside; that is the router's business, not a refusal).

use crate::config::{FabricConfig, Isolation};
use crate::error::ZoneDenial;
use crate::wire::node_key;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Zones {
    /// node key -> (zone id, its isolation)
    of: HashMap<u64, (String, Isolation)>,
}

impl Zones {
    pub fn from_config(cfg: &FabricConfig) -> Zones {
        let isolation: HashMap<&str, Isolation> = cfg
            .zones
            .iter()
            .map(|z| (z.id.as_str(), z.isolation))
            .collect();
        let of = cfg
            .nodes
            .iter()
            .filter_map(|n| {
                let zone = n.zone.as_ref()?;
                let iso = isolation
                    .get(zone.as_str())
                    .copied()
                    .unwrap_or(Isolation::None);
                Some((node_key(n.id()), (zone.clone(), iso)))
            })
            .collect();
        Zones { of }
    }

    /// Puts node `node` in zone `zone` of isolation `isolation` (what a fabric file's
    /// `zone` and `[[zones]]` say; for cores built without one).
    pub fn insert(&mut self, node: &str, zone: &str, isolation: Isolation) {
        self.of.insert(node_key(node), (zone.to_owned(), isolation));
    }

    fn zone(&self, key: u64) -> Option<&(String, Isolation)> {
        self.of.get(&key)
    }

    /// Why a transfer from `src` to `dst` through `via` (relays, may be empty) is refused.
    #[inline]
    pub fn check(&self, src: u64, dst: u64, via: &[u64]) -> Result<(), ZoneDenial> {
        let (zs, zd) = (self.zone(src), self.zone(dst));
        let same = |a: Option<&(String, Isolation)>, b: Option<&(String, Isolation)>| {
            a.map(|z| &z.0) == b.map(|z| &z.0)
        };
        let hard = |z: Option<&(String, Isolation)>| z.is_some_and(|z| z.1 == Isolation::Hard);
        let name = |z: Option<&(String, Isolation)>| {
            z.map_or("(no zone)".to_owned(), |z| format!("`{}`", z.0))
        };
        if !same(zs, zd) && (hard(zs) || hard(zd)) {
            return Err(ZoneDenial::HardIsolated {
                isolated: name(if hard(zs) { zs } else { zd }),
                other: name(if hard(zs) { zd } else { zs }),
            });
        }
        for &r in via {
            let zr = self.zone(r);
            if hard(zr) && !same(zr, zs) {
                return Err(ZoneDenial::Transit { zone: name(zr) });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Zones {
        let of = [
            ("q1", "quantum", Isolation::Hard),
            ("q2", "quantum", Isolation::Hard),
            ("g1", "compute", Isolation::Soft),
            ("g2", "compute", Isolation::Soft),
        ]
        .into_iter()
        .map(|(n, z, i)| (node_key(n), (z.to_owned(), i)))
        .collect();
        Zones { of }
    }

    #[test]
    fn hard_zones_keep_to_themselves() {
        let z = zones();
        let k = node_key;
        assert!(z.check(k("q1"), k("q2"), &[]).is_ok());
        assert!(z.check(k("g1"), k("g2"), &[]).is_ok());
        assert_eq!(
            z.check(k("g1"), k("q1"), &[]),
            Err(ZoneDenial::HardIsolated {
                isolated: "`quantum`".into(),
                other: "`compute`".into()
            })
        );
        assert!(z.check(k("q1"), k("g1"), &[]).is_err());
        let transit = z.check(k("g1"), k("g2"), &[k("q1")]).unwrap_err();
        assert!(transit.to_string().contains("transit"), "{transit}");
        assert!(z.check(k("q1"), k("q2"), &[k("q2")]).is_ok());
        assert!(
            z.check(k("x"), k("g1"), &[]).is_ok(),
            "soft zones accept outsiders"
        );
    }
}
