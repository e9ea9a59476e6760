//! Transports move frames over one link. TCP today; shared memory inside a host next.

#[allow(unsafe_code)]
pub mod shm;
pub mod tcp;

use serde::Serialize;
use std::fmt;

/// Which transport carried a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Tcp,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Tcp => "tcp",
        })
    }
}
