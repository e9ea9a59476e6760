//! The one error type of the library. Variants say who is at fault: the caller's input
//! (`Config`, `NodeNotFound`, `InvalidArgument`), the peer (`Protocol`, `Rejected`), the
//! network or time (`Unreachable`, `Timeout`, `ConnectionLost`), or the OS (`Io`).
//!
//! Inside the library, functions return a [`Fault`] (peer-caused, refused, local, I/O), which
//! the public API turns into an [`Error`] where it meets the user.

mod fault;

pub use fault::{Fault, LocalFault, PeerMisbehaved, ZoneDenial};

use crate::wire::DecodeError;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A fabric file (or an API-built configuration) is invalid.
    #[error("{file}: field `{field}`: {reason}")]
    Config {
        file: String,
        field: String,
        reason: String,
    },
    /// A node id that the fabric does not know.
    #[error("node `{node}` is not part of this fabric")]
    NodeNotFound { node: String },
    /// The destination could not be reached (refused, no address, connection lost for good).
    #[error("node `{node}` is unreachable: {reason}")]
    Unreachable { node: String, reason: String },
    /// An operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    /// The peer refused the operation, with its reason.
    #[error("rejected: {reason}")]
    Rejected { reason: String },
    /// The route cannot meet the requested latency bound.
    #[error("latency constraint violated: best route {route_latency_ns} ns > limit {limit_ns} ns")]
    LatencyViolation {
        route_latency_ns: u64,
        limit_ns: u64,
    },
    /// No route offers the requested bandwidth: the best route's bottleneck is below it.
    #[error("bandwidth requirement not met: best route bottleneck {route_bandwidth_gbps} Gbit/s < required {required_gbps} Gbit/s")]
    BandwidthExceeded {
        route_bandwidth_gbps: f64,
        required_gbps: f64,
    },
    /// The peer broke the wire protocol.
    #[error("protocol error from `{peer}`: {source}")]
    Protocol { peer: String, source: DecodeError },
    /// A caller-side misuse (empty id, zero count, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A service the node depends on (etcd) refused our credentials, or we refused its
    /// certificate: a wrong password or user, an untrusted CA. Retrying will not help.
    #[error("{service}: {reason}")]
    Credentials { service: String, reason: String },
    /// The fabric was shut down while the operation was pending.
    #[error("the fabric is shut down")]
    Shutdown,
    #[error("I/O error: {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    /// What went wrong with `node`, without repeating "`node` is unreachable:" when this
    /// error already says that (for wrapping it in another error about the same node).
    pub fn reason_about(&self, node: &str) -> String {
        match self {
            Error::Unreachable { node: n, reason } if n == node => reason.clone(),
            e => e.to_string(),
        }
    }

    pub fn config(
        file: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Error {
        Error::Config {
            file: file.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True for errors that are the caller's or the configuration's fault (CLI exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Config { .. }
                | Error::InvalidArgument(_)
                | Error::NodeNotFound { .. }
                | Error::Credentials { .. }
        )
    }
}
