//! Transports move frames over one link. TCP today; shared memory inside a host next.

pub mod deadline;
pub mod fault;
#[allow(unsafe_code)]
#[deny(clippy::undocumented_unsafe_blocks)]
pub mod fdlimit;
pub mod pacer;
#[allow(unsafe_code)]
pub mod shm;
pub mod tcp;
pub mod tls;

use serde::Serialize;
use std::fmt;

/// Which transport carried a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Tcp,
    /// Shared-memory rings between two processes of one host.
    Shm,
    /// A hop after the first: the relay forwarding it chooses its transport.
    Relayed,
}

/// Which transport a node may use for its links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportChoice {
    /// Shared memory with peers on this host (loopback address or same `host` in the fabric
    /// file, confirmed by opening the segments), TCP otherwise.
    #[default]
    Auto,
    /// TCP only.
    Tcp,
    /// Shared memory or nothing (an error when the peer is not on this host).
    Shm,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Shm => "shm",
            TransportKind::Relayed => "relayed",
        })
    }
}
