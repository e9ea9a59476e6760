//! Refusal codes: why a destination (or a relay on the way) refuses a transfer for good.
//!
//! A `Nack` with `flags::FATAL` carries the code in its `aux` field and an optional UTF-8
//! text for people in its payload (wire v2, see `docs/wire.md`). Decisions (a sender's
//! retry after a parameter-cache miss, for one) match on the code, never on the text.
//! Codes are stable; an unknown code from a newer peer reads as [`RefusalCode::Unspecified`].

use std::fmt;

/// What a `Reject` frame's `aux` says about the refusal (the numbers are part of the wire
/// format). Most Rejects refuse one connection for a passing reason (a hello before the
/// peer's table has it, a full handshake table, a second connection); only
/// [`reject::PROOF_REFUSED`] says the dialer's own credentials were checked and refused, so
/// dialing again with them is refused again.
pub mod reject {
    /// Any other refusal (and every Reject of a peer older than this code).
    pub const UNSPECIFIED: u64 = 0;
    /// The acceptor checked the dialer's `Auth` proof (a secret's HMAC or a node key's
    /// signature) and it was wrong.
    pub const PROOF_REFUSED: u64 = 1;
}

/// Why a transfer is refused. The numbers are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum RefusalCode {
    /// No code given, or one this build does not know.
    Unspecified = 0,
    /// The frame reached a node that is not its destination and does not relay it.
    UnknownDestination = 1,
    /// Zone isolation forbids the transfer (at the destination or at a relay).
    ZoneDenied = 2,
    /// The destination has too many transfers open (from this peer or in all).
    TooManyTransfers = 3,
    /// The destination lacks parameter-cache chunks the sender's plan refers to: resend
    /// literally.
    CacheMiss = 4,
    /// The transfer would exceed a byte quota: the transfer size limit or the bytes in
    /// reassembly (per peer or per node).
    Quota = 5,
    /// A frame of the transfer is malformed: an unknown transform or compression code, a
    /// chunk outside the transfer, a bad compressed block or cache plan.
    BadFrame = 6,
    /// The node is shutting down.
    ShuttingDown = 7,
    /// The frame crossed the most relays allowed, or would go back where it came from.
    RoutingLoop = 8,
    /// A relay cannot reach the next hop.
    NextHopUnreachable = 9,
    /// The destination could not store the transfer (disk, file name taken, ...).
    StoreFailed = 10,
    /// The destination signed for other content than the sender sent (a relay altered or
    /// dropped bytes); raised by the sender when it checks the signed FINAL ack.
    ContentMismatch = 11,
    /// A relayed transfer whose origin did not sign it (or whose signature does not check):
    /// a relay claimed another member as its source.
    OriginUnproven = 12,
    /// The frame came from an observer's connection (a monitor that joined without a node
    /// entry): it may only ping and ask for metrics.
    ObserverReadOnly = 13,
}

impl RefusalCode {
    /// Every code, in wire order.
    pub const ALL: [RefusalCode; 14] = [
        RefusalCode::Unspecified,
        RefusalCode::UnknownDestination,
        RefusalCode::ZoneDenied,
        RefusalCode::TooManyTransfers,
        RefusalCode::CacheMiss,
        RefusalCode::Quota,
        RefusalCode::BadFrame,
        RefusalCode::ShuttingDown,
        RefusalCode::RoutingLoop,
        RefusalCode::NextHopUnreachable,
        RefusalCode::StoreFailed,
        RefusalCode::ContentMismatch,
        RefusalCode::OriginUnproven,
        RefusalCode::ObserverReadOnly,
    ];

    /// The code as it travels in a `Nack FATAL`'s `aux`.
    pub fn wire_code(self) -> u64 {
        self as u16 as u64
    }

    /// The code a `Nack FATAL` carries; unknown values read as `Unspecified` (a newer peer
    /// may know more reasons; the transfer is refused either way).
    pub fn from_wire_code(aux: u64) -> RefusalCode {
        RefusalCode::ALL
            .into_iter()
            .find(|c| c.wire_code() == aux)
            .unwrap_or(RefusalCode::Unspecified)
    }

    /// A short name, as in `docs/wire.md` and logs.
    pub fn name(self) -> &'static str {
        match self {
            RefusalCode::Unspecified => "unspecified",
            RefusalCode::UnknownDestination => "unknown destination",
            RefusalCode::ZoneDenied => "zone denied",
            RefusalCode::TooManyTransfers => "too many transfers",
            RefusalCode::CacheMiss => "parameter cache miss",
            RefusalCode::Quota => "quota exceeded",
            RefusalCode::BadFrame => "bad frame",
            RefusalCode::ShuttingDown => "shutting down",
            RefusalCode::RoutingLoop => "routing loop",
            RefusalCode::NextHopUnreachable => "next hop unreachable",
            RefusalCode::StoreFailed => "store failed",
            RefusalCode::ContentMismatch => "content mismatch",
            RefusalCode::OriginUnproven => "origin unproven",
            RefusalCode::ObserverReadOnly => "observer is read-only",
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A refusal: its code, and the text for people (may be empty on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: RefusalCode,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: RefusalCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }

    /// The refusal a `Nack FATAL` carries: the code in `aux`, the text in the payload
    /// (invalid UTF-8 is replaced, never an error: the transfer is refused either way).
    pub fn from_nack(aux: u64, payload: &[u8]) -> Refusal {
        Refusal::new(
            RefusalCode::from_wire_code(aux),
            String::from_utf8_lossy(payload),
        )
    }
}

/// The text when there is one, else the code's name (a peer may send no text).
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            f.write_str(&self.reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_stable() {
        for (i, c) in RefusalCode::ALL.into_iter().enumerate() {
            assert_eq!(c.wire_code(), i as u64, "{c} keeps its number");
            assert_eq!(RefusalCode::from_wire_code(c.wire_code()), c);
        }
        assert_eq!(RefusalCode::CacheMiss.wire_code(), 4);
        assert_eq!(RefusalCode::ZoneDenied.wire_code(), 2);
    }

    #[test]
    fn unknown_codes_read_as_unspecified() {
        for aux in [14, 0xffff, 1 << 16, u64::MAX] {
            assert_eq!(RefusalCode::from_wire_code(aux), RefusalCode::Unspecified);
        }
    }

    #[test]
    fn a_nack_carries_code_and_text() {
        let r = Refusal::from_nack(4, b"2 chunk(s) not held");
        assert_eq!(r.code, RefusalCode::CacheMiss);
        assert_eq!(r.to_string(), "2 chunk(s) not held");
        let bare = Refusal::from_nack(2, b"");
        assert_eq!(
            bare.to_string(),
            "zone denied",
            "no text: the code names it"
        );
        let garbled = Refusal::from_nack(6, &[0xff, b'x']);
        assert_eq!(garbled.code, RefusalCode::BadFrame);
        assert!(garbled.reason.ends_with('x'));
    }
}
