//! What a collective reports when it cannot complete. Every failure is one of these, within
//! the group's timeout: a collective never hangs.

use super::wire::{HeaderError, Kind};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectiveError {
    /// No message this rank waited for arrived within the group's timeout (a rank died,
    /// hangs, or never called this collective).
    #[error(
        "{kind} #{seq}: no message from rank {rank} (`{node}`) for step {step} within {after:?}"
    )]
    Timeout {
        kind: Kind,
        seq: u64,
        rank: usize,
        node: String,
        step: usize,
        after: Duration,
    },
    /// A rank called the collective differently (another operation, type, size or root).
    #[error(
        "{kind} #{seq}: rank {rank} disagrees on the {field}: it called {theirs}, this rank {ours}"
    )]
    Mismatch {
        kind: Kind,
        seq: u64,
        rank: usize,
        field: &'static str,
        ours: String,
        theirs: String,
    },
    /// Another rank gave up this collective and said why.
    #[error("collective #{seq} aborted by rank {rank}: {reason}")]
    Aborted {
        seq: u64,
        rank: usize,
        reason: String,
    },
    /// A group member sent something that is not a valid collective message.
    #[error("malformed collective message from `{node}`: {reason}")]
    Malformed { node: String, reason: String },
    /// A limit a peer could fill was reached.
    #[error("{what}: limit of {limit} reached")]
    Limit { what: &'static str, limit: usize },
    /// A caller-side misuse (buffer sizes, ranks, options).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The group was left unusable by an earlier failure (ranks may be at different
    /// collectives now): build a new group.
    #[error("the group failed earlier ({0}); build a new one")]
    Poisoned(String),
    /// The fabric underneath failed (send refused, peer unreachable, shut down).
    #[error("fabric: {0}")]
    Fabric(#[from] crate::Error),
}

impl CollectiveError {
    pub(crate) fn malformed(node: &str, e: HeaderError) -> CollectiveError {
        CollectiveError::Malformed {
            node: node.to_owned(),
            reason: e.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, CollectiveError>;
