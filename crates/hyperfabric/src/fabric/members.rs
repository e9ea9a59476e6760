//! Nodes learned at run time from membership (the rendezvous store, etcd): admitted and
//! dismissed through `&self`, so a membership thread can keep a shared fabric current.

use super::Fabric;
use crate::config::{LinkConfig, NodeConfig};
use crate::error::{Error, Result};

impl Fabric {
    /// Adds `node` (replacing a node of the same id, e.g. restarted on a new address) with
    /// `links` from the fabric file; `same_host` says whether its host id equals ours
    /// (`None`: unknown, the fabric file's `host` or the address decides).
    pub fn admit_node(
        &self,
        node: &NodeConfig,
        links: &[LinkConfig],
        same_host: Option<bool>,
    ) -> Result<()> {
        node.signature
            .validate()
            .map_err(|reason| Error::config("(membership)", "node", reason))?;
        let id = node.id();
        if id == self.node_id() {
            return Err(Error::InvalidArgument(format!(
                "membership offered this node's own id `{id}` as a peer"
            )));
        }
        if let Ok(old) = self.inner.peer_by_id(id) {
            if old.addr != node.listen {
                // A restarted node: its old connections lead nowhere.
                self.dismiss_node(id)?;
            }
        }
        self.inner.register_peer(id, node.listen)?;
        self.inner.set_same_host(id, same_host);
        self.inner.add_to_topology(node, links);
        Ok(())
    }

    /// Removes a node membership says is gone: its routes and connections go with it.
    pub fn dismiss_node(&self, id: &str) -> Result<()> {
        self.inner.unregister_peer(id)?;
        self.inner.set_same_host(id, None);
        Ok(())
    }

    /// Every node this node can address now, sorted (itself included when its fabric
    /// file lists it).
    pub fn known_nodes(&self) -> Vec<String> {
        self.inner.peer_ids()
    }
}
