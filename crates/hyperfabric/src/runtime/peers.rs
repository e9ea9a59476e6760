//! The peers a node knows: the table of ids and addresses (fabric file, membership,
//! run-time registrations), their place in the routing topology, and which transport a
//! connection to each should try.

use super::{Lane, NodeInner, Peer};
use crate::config::FabricConfig;
use crate::error::{Error, Result};
use crate::transport::TransportChoice;
use crate::wire;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Keys of the nodes the fabric file places on the same `host` as `me`.
pub(super) fn same_host(cfg: &FabricConfig, me: &str) -> std::collections::HashSet<u64> {
    let Some(host) = cfg.node(me).and_then(|n| n.host.as_deref()) else {
        return Default::default();
    };
    cfg.nodes
        .iter()
        .filter(|n| n.host.as_deref() == Some(host))
        .map(|n| wire::node_key(n.id()))
        .collect()
}

/// The peers of the fabric file, by wire key.
pub(super) fn table(cfg: &FabricConfig) -> HashMap<u64, Peer> {
    cfg.nodes
        .iter()
        .map(|n| {
            let key = wire::node_key(&n.signature.node_id);
            let peer = Peer {
                id: n.signature.node_id.clone(),
                key,
                addr: n.listen,
            };
            (key, peer)
        })
        .collect()
}

impl NodeInner {
    pub fn peer_by_id(&self, id: &str) -> Result<Peer> {
        self.peers
            .read()
            .get(&wire::node_key(id))
            .filter(|p| p.id == id)
            .cloned()
            .ok_or_else(|| Error::NodeNotFound {
                node: id.to_owned(),
            })
    }

    pub fn peer_by_key(&self, key: u64) -> Option<Peer> {
        self.peers.read().get(&key).cloned()
    }

    pub fn register_peer(&self, id: &str, addr: Option<SocketAddr>) -> Result<()> {
        let key = wire::node_key(id);
        let mut peers = self.peers.write();
        if let Some(existing) = peers.get(&key) {
            if existing.id != id {
                return Err(Error::InvalidArgument(format!(
                    "node id `{id}` collides with `{}` on the wire key; choose another id",
                    existing.id
                )));
            }
        }
        peers.insert(
            key,
            Peer {
                id: id.to_owned(),
                key,
                addr,
            },
        );
        Ok(())
    }

    /// Adds a node (and its links) to the routing topology at run time.
    pub fn add_to_topology(
        &self,
        node: &crate::config::NodeConfig,
        links: &[crate::config::LinkConfig],
    ) {
        let mut router = self.router.lock();
        router.topology_mut().add_node(node);
        for l in links {
            router.topology_mut().add_link(l);
        }
    }

    pub fn unregister_peer(&self, id: &str) -> Result<()> {
        let key = wire::node_key(id);
        self.router.lock().topology_mut().remove_node(id);
        self.peers
            .write()
            .remove(&key)
            .ok_or_else(|| Error::NodeNotFound {
                node: id.to_owned(),
            })?;
        for lane in [Lane::Urgent, Lane::Bulk] {
            if let Some(conn) = self.conns.lock().remove(&(key, lane)) {
                conn.close("peer unregistered");
            }
        }
        Ok(())
    }

    /// Should a connection to `peer` at `addr` try shared memory?
    pub(super) fn wants_shm(&self, peer: &Peer, addr: SocketAddr) -> bool {
        if self.observer {
            // Acceptors answer observers over TCP only: no rings for a read-only link.
            return false;
        }
        match self.transport {
            TransportChoice::Tcp => false,
            TransportChoice::Shm => true,
            TransportChoice::Auto => {
                if self.same_host.contains(&peer.key) {
                    return true;
                }
                // A host id beats the address: a loopback address says little about a peer
                // that membership placed on another host (another IPC namespace).
                match self.host_ids.read().get(&peer.key) {
                    Some(same) => *same,
                    None => addr.ip().is_loopback(),
                }
            }
        }
    }

    /// Records whether `id` shares this node's host (from comparing host ids); `None`
    /// forgets it (the fabric file's `host`, else the address, decides again).
    pub fn set_same_host(&self, id: &str, same: Option<bool>) {
        let key = wire::node_key(id);
        let mut ids = self.host_ids.write();
        match same {
            Some(s) => ids.insert(key, s),
            None => ids.remove(&key),
        };
    }

    /// The ids of every peer this node knows (itself included when the file lists it).
    pub fn peer_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.peers.read().values().map(|p| p.id.clone()).collect();
        ids.sort();
        ids
    }
}
