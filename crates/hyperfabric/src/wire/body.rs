//! Bodies of control frames that carry structure (hello/welcome, auth).
//!
//! ```text
//!  u16 LE fabric_len | fabric (UTF-8) | u16 LE node_len | node (UTF-8) | u64 LE nonce
//!  [ u8 auth_mode | challenge [32] | proof [32] if mode 2 | signature [64] if mode 4 ]
//! ```
//!
//! Without a fabric secret or node keys the body ends after the nonce (the original layout).
//! With a secret, `auth_mode` 1 carries the sender's 32-byte challenge (Hello), 2 the
//! challenge and the sender's HMAC proof (Welcome). With per-node keys (wire v2), mode 3
//! carries the challenge (Hello), 4 the challenge and the sender's Ed25519 signature
//! (Welcome). Mode 0 does not exist, so every value has one encoding. An `Auth` frame's
//! body is exactly one 32-byte proof (secret) or one 64-byte signature (node keys).

use super::{DecodeError, FrameKind};

/// Largest fabric name or node id accepted in a hello.
pub const MAX_NAME_LEN: usize = 256;

/// Bytes of a challenge and of a proof (HMAC-SHA256).
pub const AUTH_LEN: usize = 32;
/// Bytes of an Ed25519 signature (per-node keys).
pub const SIGNATURE_LEN: usize = 64;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub fabric: String,
    pub node: String,
    /// Random per connection; lets a node recognise a connection to itself.
    pub nonce: u64,
    /// Present when the sender holds a fabric secret.
    pub auth: Option<HelloAuth>,
    /// Present when the sender holds a per-node key (never together with `auth`).
    pub identity: Option<HelloIdentity>,
}

/// The per-node-key part of a hello/welcome: the peer must sign over both challenges with
/// the private key of the id it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloIdentity {
    pub challenge: [u8; AUTH_LEN],
    /// The sender's signature over the transcript (Welcome only).
    pub signature: Option<[u8; SIGNATURE_LEN]>,
}

/// The challenge-response part of a hello/welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloAuth {
    /// Random per connection: the peer must prove the secret over it.
    pub challenge: [u8; AUTH_LEN],
    /// The sender's proof over both challenges (Welcome only: the acceptor answers first).
    pub proof: Option<[u8; AUTH_LEN]>,
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
    if let Some(a) = &h.auth {
        v.push(if a.proof.is_some() { 2 } else { 1 });
        v.extend_from_slice(&a.challenge);
        if let Some(p) = &a.proof {
            v.extend_from_slice(p);
        }
    } else if let Some(i) = &h.identity {
        v.push(if i.signature.is_some() { 4 } else { 3 });
        v.extend_from_slice(&i.challenge);
        if let Some(s) = &i.signature {
            v.extend_from_slice(s);
        }
    }
    v
}

/// Decodes an `Auth` body sent with per-node keys: exactly one signature.
pub fn decode_signature(b: &[u8]) -> Result<[u8; SIGNATURE_LEN], DecodeError> {
    b.try_into().map_err(|_| DecodeError::MalformedBody {
        kind: FrameKind::Auth,
        reason: "a signature is exactly 64 bytes",
    })
}

/// Decodes an `Auth` body: exactly one proof.
pub fn decode_proof(b: &[u8]) -> Result<[u8; AUTH_LEN], DecodeError> {
    b.try_into().map_err(|_| DecodeError::MalformedBody {
        kind: FrameKind::Auth,
        reason: "a proof is exactly 32 bytes",
    })
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
    let (mut auth, mut identity) = (None, None);
    if let Some((&mode, rest)) = rest.split_first() {
        if !(1..=4).contains(&mode) {
            return Err(bad("unknown auth mode"));
        }
        let (challenge, rest) = rest
            .split_first_chunk::<AUTH_LEN>()
            .ok_or(bad("truncated challenge"))?;
        let rest = match mode {
            1 | 2 => {
                let (proof, rest) = if mode == 2 {
                    let (p, rest) = rest
                        .split_first_chunk::<AUTH_LEN>()
                        .ok_or(bad("truncated proof"))?;
                    (Some(*p), rest)
                } else {
                    (None, rest)
                };
                auth = Some(HelloAuth {
                    challenge: *challenge,
                    proof,
                });
                rest
            }
            _ => {
                let (signature, rest) = if mode == 4 {
                    let (s, rest) = rest
                        .split_first_chunk::<SIGNATURE_LEN>()
                        .ok_or(bad("truncated signature"))?;
                    (Some(*s), rest)
                } else {
                    (None, rest)
                };
                identity = Some(HelloIdentity {
                    challenge: *challenge,
                    signature,
                });
                rest
            }
        };
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
    }
    Ok(Hello {
        fabric,
        node,
        nonce: u64::from_le_bytes(*nonce),
        auth,
        identity,
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
            auth: None,
            identity: None,
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
            auth: None,
            identity: None,
        };
        let got = decode_hello(FrameKind::Hello, &encode_hello(&h)).unwrap();
        assert_eq!(got.node, "a".repeat(255));
    }

    #[test]
    fn auth_fields_round_trip_and_refuse_bad_modes() {
        for proof in [None, Some([9u8; AUTH_LEN])] {
            let h = Hello {
                fabric: "lab".into(),
                node: "n".into(),
                nonce: 3,
                auth: Some(HelloAuth {
                    challenge: [7; AUTH_LEN],
                    proof,
                }),
                identity: None,
            };
            let b = encode_hello(&h);
            assert_eq!(decode_hello(FrameKind::Welcome, &b), Ok(h));
            for cut in 0..b.len() {
                // Cutting exactly after the nonce leaves a valid body without auth.
                let plain = cut == b.len() - 1 - AUTH_LEN * (1 + usize::from(proof.is_some()));
                assert_eq!(decode_hello(FrameKind::Hello, &b[..cut]).is_ok(), plain);
            }
            let mut long = b.clone();
            long.push(0);
            assert!(decode_hello(FrameKind::Hello, &long).is_err());
            let mut mode0 = b.clone();
            mode0[b.len() - 1 - AUTH_LEN * (1 + usize::from(proof.is_some()))] = 0;
            assert!(decode_hello(FrameKind::Hello, &mode0).is_err());
        }
        assert_eq!(decode_proof(&[1; AUTH_LEN]), Ok([1; AUTH_LEN]));
        assert!(decode_signature(&[1; AUTH_LEN]).is_err());
        assert_eq!(
            decode_signature(&[2; SIGNATURE_LEN]),
            Ok([2; SIGNATURE_LEN])
        );
        assert!(decode_proof(&[1; AUTH_LEN + 1]).is_err());
        assert!(decode_proof(&[]).is_err());
    }

    #[test]
    fn identity_fields_round_trip() {
        for signature in [None, Some([9u8; SIGNATURE_LEN])] {
            let h = Hello {
                fabric: "lab".into(),
                node: "n".into(),
                nonce: 3,
                auth: None,
                identity: Some(HelloIdentity {
                    challenge: [7; AUTH_LEN],
                    signature,
                }),
            };
            let b = encode_hello(&h);
            assert_eq!(decode_hello(FrameKind::Welcome, &b), Ok(h));
            let tail = AUTH_LEN + signature.map_or(0, |_| SIGNATURE_LEN);
            for cut in b.len() - tail..b.len() {
                assert!(decode_hello(FrameKind::Hello, &b[..cut]).is_err());
            }
            let mut long = b.clone();
            long.push(0);
            assert!(decode_hello(FrameKind::Hello, &long).is_err());
            let mut mode5 = b.clone();
            mode5[b.len() - 1 - tail] = 5;
            assert!(decode_hello(FrameKind::Hello, &mode5).is_err());
        }
    }
}
