//! Keeps a fabric's peers equal to a directory's records.

use super::watch::Feed;
use super::NodeRecord;
use crate::config::{FabricConfig, NodeConfig};
use crate::error::Result;
use crate::Fabric;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A place node records live, each under its node's lease.
pub trait Directory: Send {
    /// Writes this node's record (under its lease).
    fn publish(&mut self, id: &str, record: &[u8]) -> Result<()>;
    /// Removes this node's record (a clean leave).
    fn withdraw(&mut self, id: &str) -> Result<()>;
    /// Every record now.
    fn records(&mut self) -> Result<Vec<Vec<u8>>>;
    /// Keeps this node's lease alive.
    fn keepalive(&mut self) -> Result<()>;
    /// For logs and reports: `rendezvous 10.0.0.1:29500`, `etcd 10.0.0.2:2379/prefix`.
    fn describe(&self) -> String;
    /// A thread that says when the records changed (etcd's watch), until `stop`; `None`
    /// when this directory can only be polled.
    fn watch(&self, _stop: Arc<AtomicBool>) -> Option<(Feed, JoinHandle<()>)> {
        None
    }
}

/// What a sync changed.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub joined: Vec<String>,
    pub left: Vec<String>,
}

/// This node's side of membership.
pub struct Members {
    pub dir: Box<dyn Directory>,
    pub me: NodeRecord,
    /// The optional fabric file: links and zones for nodes it names.
    pub file: Option<FabricConfig>,
    pub known: BTreeMap<String, NodeRecord>,
}

impl Members {
    /// Reads the directory and admits / dismisses nodes until the fabric matches it.
    pub fn sync(&mut self, fabric: &Fabric) -> Result<Changes> {
        let mut seen = BTreeMap::new();
        for bytes in self.dir.records()? {
            match NodeRecord::parse(&bytes) {
                Ok(r) if r.id == self.me.id => {}
                Ok(r) => {
                    seen.insert(r.id.clone(), r);
                }
                Err(e) => tracing::warn!("membership: ignoring a record: {e}"),
            }
        }
        let mut changes = Changes::default();
        for id in self.known.keys() {
            if !seen.contains_key(id) {
                changes.left.push(id.clone());
            }
        }
        for id in &changes.left {
            self.known.remove(id);
            if let Err(e) = fabric.dismiss_node(id) {
                tracing::debug!("membership: dismissing {id}: {e}");
            }
            tracing::info!(node = %id, "membership: node left");
        }
        for (id, r) in seen {
            if moved(self.known.get(&id), &r) {
                match self.admit(fabric, &r) {
                    Ok(()) => {
                        tracing::info!(node = %id, addr = %r.addr, "membership: node joined");
                        changes.joined.push(id.clone());
                    }
                    Err(e) => {
                        tracing::warn!("membership: cannot admit {id}: {e}");
                        continue;
                    }
                }
            }
            self.known.insert(id, r);
        }
        let knows: Vec<String> = self.known.keys().cloned().collect();
        if knows != self.me.knows {
            self.me.knows = knows;
            self.publish()?;
        }
        Ok(changes)
    }

    fn admit(&self, fabric: &Fabric, r: &NodeRecord) -> Result<()> {
        let from_file = self.file.as_ref().and_then(|f| f.node(&r.id));
        let node = NodeConfig {
            signature: r.signature.clone(),
            listen: Some(r.addr),
            zone: from_file.and_then(|n| n.zone.clone()),
            host: None,
        };
        let links: Vec<_> = self
            .file
            .iter()
            .flat_map(|f| f.links.iter())
            .filter(|l| l.between.contains(&r.id))
            .filter(|l| {
                l.between
                    .iter()
                    .all(|e| *e == r.id || *e == self.me.id || self.known.contains_key(e))
            })
            .cloned()
            .collect();
        fabric.admit_node(&node, &links, Some(r.host == self.me.host))
    }

    pub fn publish(&mut self) -> Result<()> {
        let bytes = serde_json::to_vec(&self.me)
            .map_err(|e| crate::Error::InvalidArgument(format!("encoding our record: {e}")))?;
        self.dir.publish(&self.me.id.clone(), &bytes)
    }

    /// Every record names us and there are `world_size` of us.
    pub fn ready(&self, world_size: usize) -> bool {
        self.known.len() + 1 >= world_size
            && self.known.values().all(|r| r.knows.contains(&self.me.id))
    }

    /// How many known nodes share this node's host (itself included).
    pub fn on_my_host(&self) -> usize {
        1 + self
            .known
            .values()
            .filter(|r| r.host == self.me.host)
            .count()
    }
}

/// New, or back at another address or host (a restart): admit again.
fn moved(old: Option<&NodeRecord>, now: &NodeRecord) -> bool {
    old.is_none_or(|o| o.addr != now.addr || o.host != now.host)
}
