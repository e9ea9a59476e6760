//! Errors inside the library, grouped by whose fault they are, in the manner of rustls's
//! `Error`: one `#[non_exhaustive]` enum whose variants hold sub-enums, each with a
//! hand-written `Display`. The public [`crate::Error`] is what users match on; a `Fault`
//! is what the node's own functions return, so the node can act on the kind (close the
//! connection, refuse the transfer, retry) without reading a string.

use crate::wire::{FrameKind, Refusal};
use std::fmt;

/// An error inside the library, by whose fault.
#[derive(Debug)]
#[non_exhaustive]
pub enum Fault {
    /// The peer broke the protocol: its connection ends.
    Peer(PeerMisbehaved),
    /// The peer (or a relay for it) refused a transfer.
    Refused(Refusal),
    /// This node's own rules or state forbid it.
    Local(LocalFault),
    /// The operating system failed us.
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// How a peer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// A handshake frame (or another per-connection kind) after the handshake.
    UnexpectedKind { kind: FrameKind },
    /// A compression code no algorithm has.
    UnknownCompression { code: u8 },
    /// A compressed chunk that does not inflate within the limits.
    BadCompressedChunk { why: String },
}

/// What this node's own rules forbid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalFault {
    /// Zone isolation forbids a transfer.
    Zone(ZoneDenial),
}

/// Why zone isolation forbids a transfer (zones named as in the fabric file).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZoneDenial {
    /// `isolated` is hard-isolated and `other` is another zone (or none).
    HardIsolated { isolated: String, other: String },
    /// A relay in the hard-isolated zone `zone` would carry another zone's transfer.
    Transit { zone: String },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Peer(e) => write!(f, "{e}"),
            Fault::Refused(r) => write!(f, "refused ({}): {r}", r.code),
            Fault::Local(e) => write!(f, "{e}"),
            Fault::Io { context, source } => write!(f, "I/O error: {context}: {source}"),
        }
    }
}

impl fmt::Display for PeerMisbehaved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerMisbehaved::UnexpectedKind { kind } => {
                write!(f, "unexpected {kind:?} after the handshake")
            }
            PeerMisbehaved::UnknownCompression { code } => {
                write!(f, "unknown compression code {code}")
            }
            PeerMisbehaved::BadCompressedChunk { why } => write!(f, "bad compressed chunk: {why}"),
        }
    }
}

impl fmt::Display for LocalFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalFault::Zone(z) => write!(f, "{z}"),
        }
    }
}

impl fmt::Display for ZoneDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZoneDenial::HardIsolated { isolated, other } => {
                write!(f, "zone {isolated} is hard-isolated from zone {other}")
            }
            ZoneDenial::Transit { zone } => {
                write!(
                    f,
                    "transit through hard-isolated zone {zone} is not allowed"
                )
            }
        }
    }
}

impl std::error::Error for Fault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Fault::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<PeerMisbehaved> for Fault {
    fn from(e: PeerMisbehaved) -> Fault {
        Fault::Peer(e)
    }
}

impl From<ZoneDenial> for Fault {
    fn from(e: ZoneDenial) -> Fault {
        Fault::Local(LocalFault::Zone(e))
    }
}

/// The receive paths not converted yet (`conn.rs`, `shmlink/`) still end a connection
/// with a text; this keeps their `?` working until they return a `Fault` too.
impl From<Fault> for String {
    fn from(e: Fault) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::RefusalCode;

    #[test]
    fn messages_name_the_fault_once() {
        let z: Fault = ZoneDenial::HardIsolated {
            isolated: "`quantum`".into(),
            other: "`compute`".into(),
        }
        .into();
        assert_eq!(
            z.to_string(),
            "zone `quantum` is hard-isolated from zone `compute`"
        );
        let p: Fault = PeerMisbehaved::UnknownCompression { code: 3 }.into();
        assert!(matches!(p, Fault::Peer(_)));
        assert_eq!(String::from(p), "unknown compression code 3");
        let r = Fault::Refused(Refusal::new(RefusalCode::CacheMiss, ""));
        assert_eq!(
            r.to_string(),
            "refused (parameter cache miss): parameter cache miss"
        );
    }
}
