//! The route cache: per (from, to, strategy), valid until its expiry and only for the
//! topology version it was computed on.

use super::fxhash::FxBuildHasher;
use super::{Route, Strategy};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a cached route is reused when nothing structural changes.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; a full cache drops its expired entries, then everything.
pub const ROUTE_CACHE_MAX_ENTRIES: usize = 65_536;

#[derive(Debug)]
struct Entry {
    route: Arc<Route>,
    expires: Instant,
    version: u64,
}

#[derive(Debug)]
pub(crate) struct RouteCache {
    entries: HashMap<(u32, u32, u8), Entry, FxBuildHasher>,
    ttl: Duration,
}

impl Default for RouteCache {
    fn default() -> Self {
        RouteCache {
            entries: HashMap::default(),
            ttl: DEFAULT_CACHE_TTL,
        }
    }
}

impl RouteCache {
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
        self.entries.clear();
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn get(
        &self,
        from: u32,
        to: u32,
        s: Strategy,
        now: Instant,
        version: u64,
    ) -> Option<&Arc<Route>> {
        let e = self.entries.get(&(from, to, s.index()))?;
        (e.version == version && now < e.expires).then_some(&e.route)
    }

    pub fn insert(&mut self, from: u32, to: u32, route: Arc<Route>, now: Instant, version: u64) {
        if self.entries.len() >= ROUTE_CACHE_MAX_ENTRIES {
            self.entries
                .retain(|_, e| e.version == version && now < e.expires);
            if self.entries.len() >= ROUTE_CACHE_MAX_ENTRIES {
                self.entries.clear();
            }
        }
        let expires = now.checked_add(self.ttl).unwrap_or(now);
        let key = (from, to, route.strategy.index());
        self.entries.insert(
            key,
            Entry {
                route,
                expires,
                version,
            },
        );
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
