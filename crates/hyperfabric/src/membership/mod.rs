//! Who else is in the fabric, learned at run time: every node publishes a [`NodeRecord`]
//! (id, address, host id, signature) in a directory — the rendezvous [`store`] rank 0
//! serves, or etcd — and admits the records of the others; a record that disappears
//! (withdrawn, or its time-to-live ran out) takes its node out of the topology.

pub mod client;
pub mod etcd;
pub mod etcd_access;
pub mod etcd_settings;
mod http;
pub mod join;
pub mod kvwire;
pub mod store;
mod sync;
pub mod watch;

pub use join::{join, JoinOptions, Joined, Reads};
pub use sync::Directory;

use crate::node::NodeSignature;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Where records live under a directory.
pub const RECORD_PREFIX: &str = "node/";

/// What one node tells the others about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub addr: SocketAddr,
    /// [`crate::bootstrap::HostId`]: equal ids share memory.
    pub host: String,
    pub signature: NodeSignature,
    /// Ids this node has admitted: a node is ready when every record lists it.
    #[serde(default)]
    pub knows: Vec<String>,
}

impl NodeRecord {
    /// Parses a peer's record; anything malformed is an error, never a panic.
    pub fn parse(bytes: &[u8]) -> Result<NodeRecord, String> {
        let r: NodeRecord =
            serde_json::from_slice(bytes).map_err(|e| format!("not a node record: {e}"))?;
        if r.id.is_empty() || r.id.len() > 128 || r.id != r.signature.node_id {
            return Err(format!("record of `{}`: bad or inconsistent id", r.id));
        }
        if r.host.len() > crate::bootstrap::hostid::MAX_HOST_ID_BYTES {
            return Err(format!("record of `{}`: host id too long", r.id));
        }
        Ok(r)
    }
}

/// A directory's record of `id` as a key.
pub fn record_key(id: &str) -> String {
    format!("{RECORD_PREFIX}{id}")
}
