//! Bodies of control frames that carry structure (hello/welcome).
//!
//! ```text
//!  u16 LE fabric_len | fabric (UTF-8) | u16 LE node_len | node (UTF-8) | u64 LE nonce
//! ```

use super::{DecodeError, FrameKind};

/// Largest fabric name or node id accepted in a hello.
pub const MAX_NAME_LEN: usize = 256;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub fabric: String,
    pub node: String,
    /// Random per connection; lets a node recognise a connection to itself.
    pub nonce: u64,
}

/// Encodes a hello/welcome body. Names longer than [`MAX_NAME_LEN`] are cut at a character
/// boundary (they are validated by the configuration long before they get here).
pub fn encode_hello(h: &Hello) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + h.fabric.len() + h.node.len() + 8);
    for s in [&h.fabric, &h.node] {
        // Cut where `decode_hello` can read it back: never inside a UTF-8 character.
        let mut end = s.len().min(MAX_NAME_LEN);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let bytes = &s.as_bytes()[..end];
        v.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        v.extend_from_slice(bytes);
    }
    v.extend_from_slice(&h.nonce.to_le_bytes());
    v
}

/// Decodes a hello/welcome body. Trailing bytes are an error.
pub fn decode_hello(kind: FrameKind, mut b: &[u8]) -> Result<Hello, DecodeError> {
    let bad = |reason| DecodeError::MalformedBody { kind, reason };
    let take_str = |b: &mut &[u8]| -> Result<String, DecodeError> {
        let (len, rest) = b.split_first_chunk::<2>().ok_or(bad("truncated length"))?;
        let len = u16::from_le_bytes(*len) as usize;
        if len > MAX_NAME_LEN {
            return Err(bad("name too long"));
        }
        let s = rest.get(..len).ok_or(bad("truncated name"))?;
        let s = std::str::from_utf8(s)
            .map_err(|_| bad("name is not UTF-8"))?
            .to_owned();
        *b = &rest[len..];
        Ok(s)
    };
    let fabric = take_str(&mut b)?;
    let node = take_str(&mut b)?;
    let (nonce, rest) = b.split_first_chunk::<8>().ok_or(bad("truncated nonce"))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(Hello {
        fabric,
        node,
        nonce: u64::from_le_bytes(*nonce),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_truncation() {
        let h = Hello {
            fabric: "lab".into(),
            node: "gpu-01".into(),
            nonce: 7,
        };
        let b = encode_hello(&h);
        assert_eq!(decode_hello(FrameKind::Hello, &b), Ok(h));
        for cut in 0..b.len() {
            assert!(decode_hello(FrameKind::Hello, &b[..cut]).is_err());
        }
        let mut long = b.clone();
        long.push(0);
        assert!(decode_hello(FrameKind::Hello, &long).is_err());
    }

    #[test]
    fn long_names_are_cut_at_a_char_boundary() {
        // 255 ASCII bytes then a 3-byte character: a plain byte cut at 256 splits it.
        let node = format!("{}ノ", "a".repeat(255));
        let h = Hello {
            fabric: "lab".into(),
            node,
            nonce: 1,
        };
        let got = decode_hello(FrameKind::Hello, &encode_hello(&h)).unwrap();
        assert_eq!(got.node, "a".repeat(255));
    }
}
