//! Wire format v2: a fixed 64-byte little-endian header followed by the payload.
//!
//! Pure code: no IO, no allocation in the decoder, no panics on any input. The layout is
//! documented, with the meaning of each field per frame kind, in `docs/wire.md`.
//!
//! ```text
//!  0               4       5       6               8       9      10      11      12
//!  +---------------+-------+-------+---------------+-------+------+-------+-------+
//!  | magic "HFAB"  |version| kind  |     flags     |  prio | dtype| hops  | strat |
//!  +---------------+-------+-------+---------------+-------+------+-------+-------+
//! 12  payload_len (u32)   16  src node key (u64)            24  dst node key (u64)
//! 32  transfer id (u64)   40  offset (u64)                  48  aux (u64)
//! 56  crc32c (u32)        60  reserved (u32, zero)          64  payload ...
//! ```
//!
//! The CRC32C covers header bytes 0..56 and 60..64, then the payload.

mod body;
pub mod codes;
mod crc;

pub use body::{
    decode_hello, decode_proof, decode_signature, encode_hello, Hello, HelloAuth, HelloIdentity,
    AUTH_LEN, SIGNATURE_LEN,
};
pub use codes::{Refusal, RefusalCode};
// Names are the vocabulary's (config validates them without the wire); frames carry them.
pub use crate::name::{node_key, FABRIC_NAME_MAX_BYTES};

use crate::types::{DataType, Priority, Strategy};

/// Largest strategy code a header may carry ([`Strategy::wire_code`]).
pub const STRATEGY_CODE_MAX: u8 = Strategy::ALL.len() as u8;
use std::fmt;

/// `b"HFAB"` read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"HFAB");
/// The version this build speaks and accepts. 2: a `Nack FATAL` carries a refusal code in
/// `aux` (see [`codes`]), the hello can prove a per-node key, and a relayed final ack can be
/// `SIGNED` by its destination; v1 peers are refused at the first frame.
pub const VERSION: u8 = 2;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// No frame may ever carry more than this, whatever the configuration says (64 MiB).
pub const MAX_PAYLOAD_HARD: u32 = 64 << 20;
/// Largest payload of a handshake frame (Hello, Welcome, Auth, Reject) an acceptor reads
/// before the peer is authenticated: a fabric name, a node id, a nonce and two 32-byte
/// fields fit; a header announcing more is refused before anything is allocated for it.
pub const MAX_HANDSHAKE_PAYLOAD: u32 = 4096;

/// Per-connection decoder limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload accepted; frames announcing more are refused before any allocation.
    pub max_payload: u32,
}

impl Default for Limits {
    fn default() -> Self {
        // 1 MiB packets plus room for a compression format's worst-case growth.
        Limits {
            max_payload: (1 << 20) + 4096,
        }
    }
}

/// Frame kinds of the wire format. Codes are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// First frame on a connection: fabric name and node id of the initiator.
    Hello = 1,
    /// Positive answer to `Hello`, with the acceptor's fabric name and node id.
    Welcome = 2,
    /// Refusal of a hello (or of the connection); payload is a UTF-8 reason. The sender closes.
    Reject = 3,
    /// One chunk of a transfer: `offset` into it, `aux` = total transfer length.
    Data = 4,
    /// Transfer metadata (UTF-8 name in the payload), `aux` = total length. Optional.
    Meta = 5,
    /// Progress from the destination: `offset` = contiguous bytes held, `aux` = bytes held;
    /// with `flags::FINAL` the transfer is complete and verified.
    Ack = 6,
    /// The destination asks for `aux` bytes at `offset` again, or with `flags::FATAL` refuses
    /// the transfer: `aux` = [`RefusalCode`], payload = optional UTF-8 text.
    Nack = 7,
    /// Latency probe: `transfer_id` = sequence number, `aux` = sender's opaque timestamp.
    Ping = 8,
    /// Echo of a `Ping`, same sequence, aux and payload.
    Pong = 9,
    /// Graceful end of the connection; payload = UTF-8 reason.
    Close = 10,
    /// Dialer to acceptor, right after Welcome: "move this connection's frames to the
    /// shared-memory rings named in the payload" (two UTF-8 names, newline separated).
    ShmOffer = 11,
    /// The acceptor opened both rings; frames travel through them from now on.
    ShmAccept = 12,
    /// "Send me your metrics": empty payload, `transfer_id` = request id. Per connection
    /// (not relayed); a node answers one peer at most every 50 ms and ignores the rest.
    MetricsRequest = 13,
    /// Answer to `MetricsRequest`, same `transfer_id`; payload = the node's `NodeMetrics` as
    /// JSON, at most 256 KiB (links are left out to fit).
    MetricsReply = 14,
    /// Dialer to acceptor, right after an authenticated Welcome: the dialer's 32-byte
    /// HMAC proof of the fabric secret (see `body.rs`).
    Auth = 15,
}

impl FrameKind {
    pub const ALL: [FrameKind; 15] = [
        FrameKind::Hello,
        FrameKind::Welcome,
        FrameKind::Reject,
        FrameKind::Data,
        FrameKind::Meta,
        FrameKind::Ack,
        FrameKind::Nack,
        FrameKind::Ping,
        FrameKind::Pong,
        FrameKind::Close,
        FrameKind::ShmOffer,
        FrameKind::ShmAccept,
        FrameKind::MetricsRequest,
        FrameKind::MetricsReply,
        FrameKind::Auth,
    ];

    pub fn from_code(code: u8) -> Option<FrameKind> {
        FrameKind::ALL.into_iter().find(|k| *k as u8 == code)
    }

    /// Frames addressed end to end, which relays forward (the others are per connection).
    pub fn is_routed(self) -> bool {
        matches!(
            self,
            FrameKind::Data
                | FrameKind::Meta
                | FrameKind::Ack
                | FrameKind::Nack
                | FrameKind::Ping
                | FrameKind::Pong
        )
    }
}

/// Header flag bits.
///
/// ```text
///  bit 0      FINAL        (Ack)  the transfer is complete at the destination
///  bits 1..=2 COMPRESSION  (Data) compression algorithm code, 0 = none (see compress::Algorithm)
///  bit 3      FATAL        (Nack) the destination refuses the transfer for good
///  bits 4..=6 TRANSFORM    (Data) payload transform code, 0 = none (see config::Transform)
///  bit 7      LOANED       (Data) shared memory only: the payload is a pool descriptor
///  bit 8      NAMED        (Data) the transfer has a Meta (name): complete it only with it
///  bit 9      SIGNED       (Ack FINAL) the payload starts with the destination's signature
///  bit 10     ORIGIN       (Data, Meta) the payload starts with the sender's signature
///  bit 11     OBSERVER     (Hello) the dialer joins as a read-only observer, not a member
/// ```
pub mod flags {
    /// Ack: the transfer is complete at the destination.
    pub const FINAL: u16 = 1 << 0;
    /// Data: the compression algorithm of the payload (2 bits, `Algorithm::wire_code`);
    /// a non-zero code means the payload is a compressed block with its uncompressed size
    /// prepended (u32 LE).
    pub const COMPRESSION_MASK: u16 = 0b11 << COMPRESSION_SHIFT;
    /// Position of the compression field.
    pub const COMPRESSION_SHIFT: u32 = 1;
    /// Nack: the destination refuses the transfer for good.
    pub const FATAL: u16 = 1 << 3;
    /// Data: the transform applied to the whole transfer before chunking (3 bits,
    /// `Transform::wire_code`; codes 6 and 7 are refused by the receiver).
    pub const TRANSFORM_MASK: u16 = 0b111 << TRANSFORM_SHIFT;
    /// Position of the transform field.
    pub const TRANSFORM_SHIFT: u32 = 4;
    /// Data, shared-memory links only: the payload is a 16-byte descriptor of a buffer-pool
    /// slot holding the chunk (see `runtime/shmlink.rs` and docs/wire.md).
    pub const LOANED: u16 = 1 << 7;
    /// Data: the transfer has a `Meta` frame (its name); the destination completes it only
    /// once the `Meta` arrived (a lost `Meta` is sent again with the retransmissions).
    pub const NAMED: u16 = 1 << 8;
    /// Ack FINAL (wire v2): the payload starts with the destination's 64-byte Ed25519
    /// signature of the acknowledgement (`auth::identity::FinalAck`), then the stored name.
    pub const SIGNED: u16 = 1 << 9;
    /// Data and Meta sent through relays (wire v2, per-node keys): the payload starts with
    /// the sender's 64-byte Ed25519 signature of the transfer (`auth::identity::Origin`).
    pub const ORIGIN: u16 = 1 << 10;
    /// Hello: the dialer is an observer (a monitor without a node entry): it proves the
    /// fabric's credentials but is no member; its connection answers only Ping and
    /// MetricsRequest. A node that predates this bit refuses such a hello (unknown flag).
    pub const OBSERVER: u16 = 1 << 11;
    /// Every bit this version knows; others are refused.
    pub const KNOWN: u16 = FINAL
        | COMPRESSION_MASK
        | FATAL
        | TRANSFORM_MASK
        | LOANED
        | NAMED
        | SIGNED
        | ORIGIN
        | OBSERVER;

    /// The compression code (0..=3) carried in `flags`.
    pub fn compression(flags: u16) -> u8 {
        ((flags & COMPRESSION_MASK) >> COMPRESSION_SHIFT) as u8
    }

    /// `flags` with its compression field set to `code` (only the low 2 bits are used).
    pub fn with_compression(flags: u16, code: u8) -> u16 {
        (flags & !COMPRESSION_MASK) | ((u16::from(code) << COMPRESSION_SHIFT) & COMPRESSION_MASK)
    }

    /// The transform code (0..=7) carried in `flags`.
    pub fn transform(flags: u16) -> u8 {
        ((flags & TRANSFORM_MASK) >> TRANSFORM_SHIFT) as u8
    }

    /// `flags` with its transform field set to `code` (only the low 3 bits are used).
    pub fn with_transform(flags: u16, code: u8) -> u16 {
        (flags & !TRANSFORM_MASK) | ((u16::from(code) << TRANSFORM_SHIFT) & TRANSFORM_MASK)
    }
}

/// A decoded, validated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: FrameKind,
    pub flags: u16,
    pub priority: Priority,
    pub data_type: DataType,
    pub hops: u8,
    /// The route strategy the source chose ([`Strategy::wire_code`], 1..=[`STRATEGY_CODE_MAX`]);
    /// 0: none given. Relays forward a frame by it (see docs/wire.md).
    pub strategy: u8,
    pub payload_len: u32,
    pub src: u64,
    pub dst: u64,
    pub transfer_id: u64,
    pub offset: u64,
    pub aux: u64,
}

/// Why bytes could not be read as a frame. Every variant is caused by the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("incomplete frame: {needed} more bytes needed")]
    Incomplete { needed: usize },
    #[error("bad magic {found:#010x} (not a HyperFabric frame)")]
    BadMagic { found: u32 },
    #[error("unsupported wire version {found} (this node speaks {VERSION})")]
    UnsupportedVersion { found: u8 },
    #[error("unknown frame kind {found}")]
    UnknownKind { found: u8 },
    #[error("unknown flag bits {found:#06x} for this wire version")]
    UnknownFlags { found: u16 },
    #[error("unknown priority code {found}")]
    UnknownPriority { found: u8 },
    #[error("unknown data type code {found}")]
    UnknownDataType { found: u8 },
    #[error("unknown route strategy code {found}")]
    UnknownStrategy { found: u8 },
    #[error("reserved header bytes are not zero")]
    ReservedNotZero,
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    Oversize { len: u32, max: u32 },
    #[error("checksum mismatch: header says {expected:#010x}, frame gives {actual:#010x}")]
    BadChecksum { expected: u32, actual: u32 },
    #[error("malformed {kind:?} body: {reason}")]
    MalformedBody {
        kind: FrameKind,
        reason: &'static str,
    },
}

impl Header {
    /// A header of `kind` with every other field zero/default.
    pub fn new(kind: FrameKind) -> Header {
        Header {
            kind,
            flags: 0,
            priority: Priority::Normal,
            data_type: DataType::Custom,
            hops: 0,
            strategy: 0,
            payload_len: 0,
            src: 0,
            dst: 0,
            transfer_id: 0,
            offset: 0,
            aux: 0,
        }
    }

    /// Serialises the header for `payload`, setting `payload_len` and the CRC32C.
    ///
    /// Fails only on a local misuse: a payload over [`MAX_PAYLOAD_HARD`].
    #[inline]
    pub fn encode(&self, payload: &[u8]) -> Result<[u8; HEADER_LEN], Oversize> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_PAYLOAD_HARD)
            .ok_or(Oversize { len: payload.len() })?;
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4] = VERSION;
        b[5] = self.kind as u8;
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8] = self.priority.code();
        b[9] = self.data_type.code();
        b[10] = self.hops;
        b[11] = self.strategy;
        b[12..16].copy_from_slice(&len.to_le_bytes());
        b[16..24].copy_from_slice(&self.src.to_le_bytes());
        b[24..32].copy_from_slice(&self.dst.to_le_bytes());
        b[32..40].copy_from_slice(&self.transfer_id.to_le_bytes());
        b[40..48].copy_from_slice(&self.offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.aux.to_le_bytes());
        let crc = checksum(&b, payload);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        Ok(b)
    }

    /// Parses and validates a header. The payload checksum is checked separately by
    /// [`verify`] once the payload is read, so a reader can size its buffer first.
    #[inline]
    pub fn decode(bytes: &[u8], limits: Limits) -> Result<Header, DecodeError> {
        let b: &[u8; HEADER_LEN] = match bytes.get(..HEADER_LEN).and_then(|s| s.try_into().ok()) {
            Some(b) => b,
            None => {
                return Err(DecodeError::Incomplete {
                    needed: HEADER_LEN - bytes.len(),
                })
            }
        };
        let magic = le_u32(b, 0);
        if magic != MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        if b[4] != VERSION {
            return Err(DecodeError::UnsupportedVersion { found: b[4] });
        }
        let kind = FrameKind::from_code(b[5]).ok_or(DecodeError::UnknownKind { found: b[5] })?;
        let flags = u16::from_le_bytes([b[6], b[7]]);
        if flags & !flags::KNOWN != 0 {
            return Err(DecodeError::UnknownFlags { found: flags });
        }
        let priority =
            Priority::from_code(b[8]).ok_or(DecodeError::UnknownPriority { found: b[8] })?;
        let data_type =
            DataType::from_code(b[9]).ok_or(DecodeError::UnknownDataType { found: b[9] })?;
        if b[11] > STRATEGY_CODE_MAX {
            return Err(DecodeError::UnknownStrategy { found: b[11] });
        }
        if le_u32(b, 60) != 0 {
            return Err(DecodeError::ReservedNotZero);
        }
        let payload_len = le_u32(b, 12);
        let max = limits.max_payload.min(MAX_PAYLOAD_HARD);
        if payload_len > max {
            return Err(DecodeError::Oversize {
                len: payload_len,
                max,
            });
        }
        Ok(Header {
            kind,
            flags,
            priority,
            data_type,
            hops: b[10],
            strategy: b[11],
            payload_len,
            src: le_u64(b, 16),
            dst: le_u64(b, 24),
            transfer_id: le_u64(b, 32),
            offset: le_u64(b, 40),
            aux: le_u64(b, 48),
        })
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// A payload too large to be framed at all (a local error, not a peer's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    pub len: usize,
}

impl fmt::Display for Oversize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "payload of {} bytes exceeds the wire maximum {MAX_PAYLOAD_HARD}",
            self.len
        )
    }
}

/// The CRC32C a frame with this raw header and payload must carry.
pub fn checksum(raw_header: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    crc::frame(raw_header, payload)
}

/// The CRC32C of a payload passed outside a frame (by shared-memory pool descriptor), the
/// same value as `crc32c::crc32c` by the fastest means this CPU has.
pub fn payload_checksum(bytes: &[u8]) -> u32 {
    crc::bulk(bytes)
}

/// `crc32c::crc32c_append(crc, bytes)` by [`payload_checksum`]'s means: a running CRC32C
/// over data that comes in pieces (the collective arena's shares).
pub fn checksum_append(crc: u32, bytes: &[u8]) -> u32 {
    crc::append(crc, bytes)
}

/// Checks the CRC32C of a frame whose header was decoded from `raw_header`.
pub fn verify(raw_header: &[u8; HEADER_LEN], payload: &[u8]) -> Result<(), DecodeError> {
    let expected = le_u32(raw_header, 56);
    let actual = checksum(raw_header, payload);
    if expected == actual {
        Ok(())
    } else {
        Err(DecodeError::BadChecksum { expected, actual })
    }
}

/// Decodes one whole frame from the front of `buf`: header, payload and checksum.
/// Returns the header, the payload and the number of bytes consumed.
pub fn decode_frame(buf: &[u8], limits: Limits) -> Result<(Header, &[u8], usize), DecodeError> {
    let header = Header::decode(buf, limits)?;
    let total = HEADER_LEN + header.payload_len as usize;
    let Some(frame) = buf.get(..total) else {
        return Err(DecodeError::Incomplete {
            needed: total - buf.len(),
        });
    };
    let (raw, payload) = frame.split_at(HEADER_LEN);
    // `raw` is exactly HEADER_LEN long by construction of `split_at`.
    let raw: &[u8; HEADER_LEN] = raw
        .try_into()
        .map_err(|_| DecodeError::Incomplete { needed: HEADER_LEN })?;
    verify(raw, payload)?;
    Ok((header, payload, total))
}

/// Encodes a whole frame into a new vector (for tests, tools and small control frames).
pub fn encode_frame(header: &Header, payload: &[u8]) -> Result<Vec<u8>, Oversize> {
    let raw = header.encode(payload)?;
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&raw);
    v.extend_from_slice(payload);
    Ok(v)
}

fn le_u32(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            kind: FrameKind::Data,
            flags: flags::with_compression(0, 1),
            priority: Priority::High,
            data_type: DataType::Gradient,
            hops: 2,
            strategy: Strategy::HighestBandwidth.wire_code(),
            payload_len: 0,
            src: node_key("gpu-01"),
            dst: node_key("gpu-02"),
            transfer_id: 42,
            offset: 1 << 20,
            aux: 5 << 20,
        }
    }

    #[test]
    fn round_trip() {
        let payload = b"hello fabric";
        let frame = encode_frame(&sample(), payload).unwrap();
        let (h, p, used) = decode_frame(&frame, Limits::default()).unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(p, payload);
        assert_eq!(
            h,
            Header {
                payload_len: payload.len() as u32,
                ..sample()
            }
        );
    }

    #[test]
    fn refuses_corruption_anywhere() {
        let frame = encode_frame(&sample(), b"0123456789").unwrap();
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_frame(&bad, Limits::default()).is_err(),
                "flip at byte {i} accepted"
            );
        }
    }

    #[test]
    fn refuses_huge_length_before_reading_payload() {
        let mut raw = sample().encode(&[]).unwrap();
        raw[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Header::decode(&raw, Limits::default()),
            Err(DecodeError::Oversize {
                len: u32::MAX,
                max: Limits::default().max_payload
            })
        );
    }

    #[test]
    fn typed_errors() {
        let raw = sample().encode(&[]).unwrap();
        let mut v = raw;
        v[4] = 9;
        assert_eq!(
            Header::decode(&v, Limits::default()),
            Err(DecodeError::UnsupportedVersion { found: 9 })
        );
        let mut v = raw;
        v[0] = b'X';
        assert!(matches!(
            Header::decode(&v, Limits::default()),
            Err(DecodeError::BadMagic { .. })
        ));
        assert_eq!(
            Header::decode(&raw[..10], Limits::default()),
            Err(DecodeError::Incomplete { needed: 54 })
        );
        let frame = encode_frame(&sample(), b"abc").unwrap();
        assert_eq!(
            decode_frame(&frame[..66], Limits::default()),
            Err(DecodeError::Incomplete { needed: 1 })
        );
    }

    #[test]
    fn flag_fields() {
        for code in 0..=3u8 {
            let f = flags::with_compression(flags::FINAL | flags::FATAL, code);
            assert_eq!(flags::compression(f), code);
            assert_eq!(
                f & (flags::FINAL | flags::FATAL),
                flags::FINAL | flags::FATAL
            );
            assert_eq!(flags::compression(flags::with_compression(f, 0)), 0);
        }
        for code in 0..=7u8 {
            let f = flags::with_transform(flags::with_compression(0, 3), code);
            assert_eq!((flags::transform(f), flags::compression(f)), (code, 3));
        }
        let mut raw = sample().encode(&[]).unwrap();
        raw[7] = 0x80;
        assert!(matches!(
            Header::decode(&raw, Limits::default()),
            Err(DecodeError::UnknownFlags { .. })
        ));
    }

    #[test]
    fn node_keys_differ() {
        assert_ne!(node_key("a"), node_key("b"));
        assert_eq!(node_key(""), 0xcbf2_9ce4_8422_2325);
    }
}
