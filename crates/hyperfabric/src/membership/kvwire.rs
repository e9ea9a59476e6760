//! The rendezvous store's bytes. One request per connection:
//!
//! ```text
//! store  -> client  "HFKV1\0" | store challenge (32)
//! client -> store   client challenge (32) | client proof (32, zeros without a secret)
//! store  -> client  store proof (32)            (then the store checks the client's proof)
//! client -> store   op u8 | ttl_ms u32 | key_len u16 | value_len u32 | key | value
//! store  -> client  status u8 | body_len u32 | body
//! LIST body:        { key_len u16 | value_len u32 | key | value }*
//! ```
//! Integers are little-endian. Every length is checked against the limits below before
//! anything is allocated.

use crate::auth::{Role, Secret, Transcript};
use crate::wire::AUTH_LEN;
use std::io::{self, Read, Write};

pub const MAGIC: &[u8; 6] = b"HFKV1\0";
/// Longest key.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value (a node record with the ids of a 4096-node view fits).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most keys the store holds.
pub const MAX_KEYS: usize = 2 * crate::bootstrap::launch::MAX_WORLD_SIZE as usize;
/// Most bytes of keys and values the store holds (bounds a LIST answer too).
pub const MAX_STORE_BYTES: usize = 16 << 20;
/// Longest time-to-live of a key.
pub const MAX_TTL_MS: u32 = 600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    Put = 1,
    Get = 2,
    Delete = 3,
    List = 4,
}

impl Op {
    pub fn from_u8(b: u8) -> Option<Op> {
        [Op::Put, Op::Get, Op::Delete, Op::List]
            .into_iter()
            .find(|o| *o as u8 == b)
    }
}

pub const STATUS_OK: u8 = 0;
pub const STATUS_NOT_FOUND: u8 = 1;
pub const STATUS_REFUSED: u8 = 2;

const ZERO_PROOF: [u8; AUTH_LEN] = [0; AUTH_LEN];

fn transcript<'a>(client: &'a [u8; AUTH_LEN], store: &'a [u8; AUTH_LEN]) -> Transcript<'a> {
    Transcript {
        fabric: "hf-rendezvous",
        dialer: "client",
        acceptor: "store",
        dialer_challenge: client,
        acceptor_challenge: store,
    }
}

/// The proof `role` sends (zeros without a secret).
pub fn prove(
    secret: Option<&Secret>,
    role: Role,
    client: &[u8; AUTH_LEN],
    store: &[u8; AUTH_LEN],
) -> [u8; AUTH_LEN] {
    secret.map_or(ZERO_PROOF, |s| s.prove(role, &transcript(client, store)))
}

/// Checks the other side's proof; without a secret every proof is accepted.
pub fn verify(
    secret: Option<&Secret>,
    role: Role,
    client: &[u8; AUTH_LEN],
    store: &[u8; AUTH_LEN],
    proof: &[u8; AUTH_LEN],
) -> bool {
    match secret {
        Some(s) => s.verify(role, &transcript(client, store), proof),
        None => true,
    }
}

pub fn read_array<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

/// Reads `len` bytes after checking `len <= max` (`what` names the field in the error).
pub fn read_bounded(r: &mut impl Read, len: usize, max: usize, what: &str) -> io::Result<Vec<u8>> {
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} of {len} bytes (at most {max})"),
        ));
    }
    let mut v = vec![0u8; len];
    r.read_exact(&mut v)?;
    Ok(v)
}

/// A request as it travels.
pub struct Request<'a> {
    pub op: Op,
    pub ttl_ms: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

pub fn write_request(w: &mut impl Write, r: &Request<'_>) -> io::Result<()> {
    let mut head = [0u8; 11];
    head[0] = r.op as u8;
    head[1..5].copy_from_slice(&r.ttl_ms.to_le_bytes());
    head[5..7].copy_from_slice(&(r.key.len() as u16).to_le_bytes());
    head[7..11].copy_from_slice(&(r.value.len() as u32).to_le_bytes());
    w.write_all(&head)?;
    w.write_all(r.key)?;
    w.write_all(r.value)?;
    w.flush()
}

/// Reads a request: (op byte, ttl, key, value), lengths checked first.
pub fn read_request(r: &mut impl Read) -> io::Result<(u8, u32, Vec<u8>, Vec<u8>)> {
    let head: [u8; 11] = read_array(r)?;
    let ttl = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let key_len = u16::from_le_bytes([head[5], head[6]]) as usize;
    let value_len = u32::from_le_bytes([head[7], head[8], head[9], head[10]]) as usize;
    let key = read_bounded(r, key_len, MAX_KEY_BYTES, "key")?;
    let value = read_bounded(r, value_len, MAX_VALUE_BYTES, "value")?;
    Ok((head[0], ttl, key, value))
}

pub fn write_entry(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Parses a LIST body; trailing or short bytes are an error.
pub fn parse_entries(mut body: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let head: [u8; 6] = read_array(&mut body)?;
        let key_len = u16::from_le_bytes([head[0], head[1]]) as usize;
        let value_len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let key = read_bounded(&mut body, key_len, MAX_KEY_BYTES, "key")?;
        let value = read_bounded(&mut body, value_len, MAX_VALUE_BYTES, "value")?;
        let key = String::from_utf8(key)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a key is not UTF-8"))?;
        out.push((key, value));
        if out.len() > MAX_KEYS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many entries",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_entries_round_trip_and_oversize_is_refused() {
        let mut buf = Vec::new();
        let req = Request {
            op: Op::Put,
            ttl_ms: 9,
            key: b"node/a",
            value: b"{}",
        };
        write_request(&mut buf, &req).unwrap();
        let (op, ttl, k, v) = read_request(&mut buf.as_slice()).unwrap();
        assert_eq!(
            (Op::from_u8(op), ttl, k.as_slice(), v.as_slice()),
            (Some(Op::Put), 9, &b"node/a"[..], &b"{}"[..])
        );
        let mut body = Vec::new();
        write_entry(&mut body, b"k", b"v");
        assert_eq!(
            parse_entries(&body).unwrap(),
            vec![("k".to_string(), b"v".to_vec())]
        );
        assert!(parse_entries(&body[..body.len() - 1]).is_err());
        let mut huge = vec![Op::Put as u8, 0, 0, 0, 0, 0, 1];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_request(&mut huge.as_slice()).is_err());
    }
}
