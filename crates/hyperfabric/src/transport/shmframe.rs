//! How a frame sits in a shared-memory ring record.
//!
//! Two forms, told apart by the first byte (a full header starts with `MAGIC`, "HFAB"):
//!
//! ```text
//!  full:     | 64-byte frame header (as on TCP) | payload | pad |
//!  compact:  | 0xC7 | kind u8 | flags u16 | priority u8 | data_type u8 | 0 u16 |
//!            | payload_len u32 | crc32c u32 | transfer_id u64 | offset u64 | aux u64 |   40 bytes
//!            | payload | pad |
//! ```
//!
//! A frame from the link's peer straight to us (hops 0, src the peer, dst us) with a small
//! payload travels compact: magic, version, hops, src, dst and the reserved bytes are implied
//! by the link. The reader rebuilds the 64-byte header from them and checks it exactly as a
//! full one (decode, then the CRC32C, which the sender computed over the full header: the
//! checksum means the same on every transport). A 64-byte ping then fills 112 bytes, two
//! cache lines instead of three (the raw ring measured ~50 ns less one-way for that).
//!
//! Every record is padded to a multiple of 64 bytes (record header included), so frames start
//! on a cache line; the padding (< 64 bytes) follows the payload and is never read.

use crate::wire::{HEADER_LEN, MAGIC, VERSION};

/// First byte of a compact frame.
const COMPACT: u8 = 0xC7;
/// Bytes of a compact header.
pub const COMPACT_LEN: usize = 40;
/// Largest payload sent compact (larger frames gain nothing measurable from 24 bytes).
const COMPACT_MAX_PAYLOAD: usize = 1024;
/// Records are padded to this (the ring's record header included).
const RECORD_ALIGN: usize = 64;
/// The ring's record header, in front of each record payload.
const RING_RECORD_HEADER: usize = crate::transport::shm::RECORD_HEADER_LEN;

/// The two keys of a link, as seen by one side.
#[derive(Debug, Clone, Copy)]
pub struct LinkKeys {
    pub local: u64,
    pub peer: u64,
}

/// Whether the encoded frame `raw` goes compact from `keys.local` to `keys.peer`.
fn compact_ok(raw: &[u8; HEADER_LEN], payload: &[u8], keys: LinkKeys) -> bool {
    payload.len() <= COMPACT_MAX_PAYLOAD
        && raw[10] == 0
        && raw[11] == 0
        && raw[16..24] == keys.local.to_le_bytes()
        && raw[24..32] == keys.peer.to_le_bytes()
}

/// Record payload length for a frame with a header of `header_len` bytes: padded so that the
/// whole record is a multiple of 64 bytes.
fn padded(header_len: usize, payload_len: usize) -> usize {
    let rec = (RING_RECORD_HEADER + header_len + payload_len).div_ceil(RECORD_ALIGN) * RECORD_ALIGN;
    rec - RING_RECORD_HEADER
}

/// How `raw` + `payload` will be written: the record payload length and whether compact.
pub fn plan(raw: &[u8; HEADER_LEN], payload: &[u8], keys: LinkKeys) -> (usize, bool) {
    if compact_ok(raw, payload, keys) {
        (padded(COMPACT_LEN, payload.len()), true)
    } else {
        (padded(HEADER_LEN, payload.len()), false)
    }
}

/// Writes the frame into a record payload of the length [`plan`] gave.
#[inline]
pub fn write(dst: &mut [u8], raw: &[u8; HEADER_LEN], payload: &[u8], compact: bool) {
    let hdr = if compact {
        dst[0] = COMPACT;
        dst[1] = raw[5]; // kind
        dst[2..4].copy_from_slice(&raw[6..8]); // flags
        dst[4] = raw[8]; // priority
        dst[5] = raw[9]; // data type
        dst[6..8].fill(0);
        dst[8..12].copy_from_slice(&raw[12..16]); // payload length
        dst[12..16].copy_from_slice(&raw[56..60]); // crc32c
        dst[16..40].copy_from_slice(&raw[32..56]); // transfer id, offset, aux
        COMPACT_LEN
    } else {
        dst[..HEADER_LEN].copy_from_slice(raw);
        HEADER_LEN
    };
    dst[hdr..hdr + payload.len()].copy_from_slice(payload);
}

/// Splits a record payload into the frame's 64-byte header (rebuilt when compact) and its
/// payload. Only sizes are checked here; the caller decodes and verifies the header.
#[inline]
pub fn read(record: &[u8], keys: LinkKeys) -> Result<([u8; HEADER_LEN], &[u8]), String> {
    let (raw, hdr_len) = match record.first() {
        Some(&COMPACT) => {
            let c: &[u8; COMPACT_LEN] = record
                .get(..COMPACT_LEN)
                .and_then(|s| s.try_into().ok())
                .ok_or("record shorter than a compact frame header")?;
            if c[6..8] != [0, 0] {
                return Err("compact frame header with reserved bytes set".into());
            }
            let mut raw = [0u8; HEADER_LEN];
            raw[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            raw[4] = VERSION;
            raw[5] = c[1];
            raw[6..8].copy_from_slice(&c[2..4]);
            raw[8] = c[4];
            raw[9] = c[5];
            raw[12..16].copy_from_slice(&c[8..12]);
            // From the link: the peer sent it (src), to us (dst), directly (hops 0).
            raw[16..24].copy_from_slice(&keys.peer.to_le_bytes());
            raw[24..32].copy_from_slice(&keys.local.to_le_bytes());
            raw[32..56].copy_from_slice(&c[16..40]);
            raw[56..60].copy_from_slice(&c[12..16]);
            (raw, COMPACT_LEN)
        }
        _ => {
            let raw: [u8; HEADER_LEN] = record
                .get(..HEADER_LEN)
                .and_then(|s| s.try_into().ok())
                .ok_or("record shorter than a frame header")?;
            (raw, HEADER_LEN)
        }
    };
    let len = u32::from_le_bytes([raw[12], raw[13], raw[14], raw[15]]) as usize;
    if padded(hdr_len, len) != record.len() {
        return Err(format!(
            "record of {} bytes for a frame of {len} payload bytes",
            record.len()
        ));
    }
    Ok((raw, &record[hdr_len..hdr_len + len]))
}

/// The largest record payload a frame of up to `max_payload` payload bytes needs.
pub fn max_record(max_payload: usize) -> usize {
    padded(HEADER_LEN, max_payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{FrameKind, Header, Limits};

    const KEYS: LinkKeys = LinkKeys {
        local: 0x1111_2222_3333_4444,
        peer: 0x5555_6666_7777_8888,
    };
    const THEIRS: LinkKeys = LinkKeys {
        local: KEYS.peer,
        peer: KEYS.local,
    };

    fn frame(src: u64, dst: u64, hops: u8, payload: &[u8]) -> [u8; HEADER_LEN] {
        let mut h = Header::new(FrameKind::Ping);
        (h.src, h.dst, h.hops) = (src, dst, hops);
        (h.transfer_id, h.offset, h.aux, h.flags) = (7, 8, 9, crate::wire::flags::FINAL);
        h.encode(payload).unwrap()
    }

    #[test]
    fn frames_round_trip_compact_or_full_and_records_fill_whole_lines() {
        let limits = Limits::default();
        for len in [0usize, 1, 16, 24, 64, 65, 1024, 1025, 5000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for (src, dst, hops, want_compact) in [
                (KEYS.local, KEYS.peer, 0, len <= COMPACT_MAX_PAYLOAD),
                (KEYS.local, KEYS.peer, 1, false),
                (42, KEYS.peer, 0, false),
                (KEYS.local, 43, 0, false),
            ] {
                let raw = frame(src, dst, hops, &payload);
                let (rec_len, compact) = plan(&raw, &payload, KEYS);
                assert_eq!(compact, want_compact, "len {len} hops {hops}");
                assert_eq!((rec_len + RING_RECORD_HEADER) % RECORD_ALIGN, 0);
                let mut rec = vec![0xEEu8; rec_len];
                write(&mut rec, &raw, &payload, compact);
                // The reader sees the link from the other side.
                let (back, body) = read(&rec, THEIRS).unwrap();
                assert_eq!(back, raw, "len {len}: header rebuilt exactly");
                assert_eq!(body, &payload[..]);
                let h = Header::decode(&back, limits).unwrap();
                assert_eq!(h.payload_len as usize, len);
                crate::wire::verify(&back, body).unwrap();
            }
        }
        // A 64-byte ping: two cache lines with the ring's record header.
        let raw = frame(KEYS.local, KEYS.peer, 0, &[0; 64]);
        assert_eq!(plan(&raw, &[0; 64], KEYS).0 + RING_RECORD_HEADER, 128);
    }

    #[test]
    fn wrong_sizes_and_a_lying_link_are_refused() {
        let payload = [5u8; 64];
        let raw = frame(KEYS.local, KEYS.peer, 0, &payload);
        let (rec_len, compact) = plan(&raw, &payload, KEYS);
        let mut rec = vec![0u8; rec_len];
        write(&mut rec, &raw, &payload, compact);
        assert!(read(&rec[..rec_len - 8], THEIRS).is_err(), "short record");
        let mut longer = rec.clone();
        longer.extend_from_slice(&[0; 64]);
        assert!(read(&longer, THEIRS).is_err(), "padding past a line");
        assert!(read(&rec[..10], THEIRS).is_err());
        let mut reserved = rec.clone();
        reserved[6] = 1;
        assert!(read(&reserved, THEIRS).is_err());
        // Rebuilt with other keys, the header no longer matches its checksum.
        let (back, body) = read(&rec, KEYS).unwrap();
        assert!(crate::wire::verify(&back, body).is_err());
        assert!(read(&[], THEIRS).is_err());
    }
}
