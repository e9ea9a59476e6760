//! Transports move frames over one link ([`link`]): TCP or TLS between hosts ([`stream`]),
//! shared-memory rings inside one ([`ring_link`]), memory inside one process ([`mem`]);
//! fault injection and pacing wrap any of them ([`wrap`]).

pub mod deadline;
pub mod fault;
#[allow(unsafe_code)]
#[deny(clippy::undocumented_unsafe_blocks)]
pub mod fdlimit;
pub mod link;
pub mod mem;
pub mod pacer;
pub mod ring_link;
#[allow(unsafe_code)]
pub mod shm;
pub mod shmframe;
pub mod stream;
pub mod tcp;
pub mod tls;
pub mod wrap;

pub use link::{Frame, LinkRx, LinkTx, RecvError, Sent};

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
    /// Both ends in one process (tests, simulation).
    Mem,
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
            TransportKind::Mem => "mem",
        })
    }
}
