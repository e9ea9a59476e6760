//! Membership and encryption: the fabric secret (HMAC-SHA256 challenge-response in the hello,
//! the secret never on the wire), per-node Ed25519 keys (`identity`: each node proves its
//! own id) and TLS for TCP links (`tls`).
//!
//! The transcript both proofs cover binds the fabric, both node ids, both challenges and the
//! role of the prover, so a proof cannot be replayed on another connection (fresh challenges),
//! reflected back to its sender (role label) or moved to another pair of nodes (ids).

pub mod handshake;
pub mod identity;
pub mod tls;

use crate::config::{FabricConfig, SecurityConfig};
use crate::error::{Error, Result};
use crate::wire::AUTH_LEN;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;

/// Shortest key accepted (bytes): the HMAC-SHA256 output size.
pub const MIN_SECRET_BYTES: usize = 32;
/// Largest key file read (a wrong path must not read a disk image).
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Which side of the handshake computes a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Dialer,
    Acceptor,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Dialer => b"dialer",
            Role::Acceptor => b"acceptor",
        }
    }
}

/// What one connection's proofs are computed over.
pub struct Transcript<'a> {
    pub fabric: &'a str,
    pub dialer: &'a str,
    pub acceptor: &'a str,
    pub dialer_challenge: &'a [u8; AUTH_LEN],
    pub acceptor_challenge: &'a [u8; AUTH_LEN],
}

impl Transcript<'_> {
    /// The bytes a signature covers: `label`, the role, then the same fields as the HMAC.
    pub(crate) fn bytes(&self, label: &[u8], role: Role) -> Vec<u8> {
        let mut m = Vec::with_capacity(label.len() + 16 + 3 * 8 + 256 + 2 * AUTH_LEN);
        m.extend_from_slice(label);
        m.extend_from_slice(role.label());
        // Length-prefixed so field boundaries cannot shift ("ab"+"c" vs "a"+"bc").
        for field in [self.fabric, self.dialer, self.acceptor] {
            m.extend_from_slice(&(field.len() as u64).to_le_bytes());
            m.extend_from_slice(field.as_bytes());
        }
        m.extend_from_slice(self.dialer_challenge);
        m.extend_from_slice(self.acceptor_challenge);
        m
    }
}

/// The fabric secret. Debug never shows the key.
#[derive(Clone)]
pub struct Secret {
    key: Arc<[u8]>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.key.len())
    }
}

impl Secret {
    /// A key given directly (at least [`MIN_SECRET_BYTES`]).
    pub fn new(key: &[u8]) -> std::result::Result<Secret, String> {
        if key.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the key has {} bytes, at least {MIN_SECRET_BYTES} are needed",
                key.len()
            ));
        }
        Ok(Secret { key: key.into() })
    }

    /// Reads `[fabric] secret_file` for node `me`; `None` when the file names no secret.
    /// Warns (once per start) when the key file is readable by group or others.
    pub fn from_config(cfg: &FabricConfig, me: &str) -> Result<Option<Secret>> {
        let Some(written) = &cfg.security.secret_file else {
            return Ok(None);
        };
        let path = SecurityConfig::resolve(&cfg.source, written, me);
        let err = |reason: String| {
            Error::config(
                cfg.source.clone(),
                "fabric.secret_file",
                format!("{}: {reason}", path.display()),
            )
        };
        let meta = std::fs::metadata(&path).map_err(|e| err(format!("cannot read: {e}")))?;
        if meta.len() > MAX_SECRET_BYTES {
            return Err(err(format!(
                "the key file has {} bytes (at most {MAX_SECRET_BYTES})",
                meta.len()
            )));
        }
        warn_if_shared(&path, "fabric secret");
        let key = std::fs::read(&path).map_err(|e| err(format!("cannot read: {e}")))?;
        Secret::new(&key).map(Some).map_err(err)
    }

    /// HMAC-SHA256 of the transcript as seen by `role`.
    pub fn prove(&self, role: Role, t: &Transcript<'_>) -> [u8; AUTH_LEN] {
        self.mac(role, t).finalize().into_bytes().into()
    }

    /// Checks a peer's proof in constant time (`hmac`'s `verify_slice`).
    pub fn verify(&self, role: Role, t: &Transcript<'_>, proof: &[u8; AUTH_LEN]) -> bool {
        self.mac(role, t).verify_slice(proof).is_ok()
    }

    fn mac(&self, role: Role, t: &Transcript<'_>) -> Hmac<Sha256> {
        // Any key length is valid for HMAC; the fallback is unreachable but keeps us panic-free.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        m.update(b"hyperfabric-auth-v1\0");
        m.update(role.label());
        // Length-prefixed so field boundaries cannot shift ("ab"+"c" vs "a"+"bc").
        for field in [t.fabric, t.dialer, t.acceptor] {
            m.update(&(field.len() as u64).to_le_bytes());
            m.update(field.as_bytes());
        }
        m.update(t.dialer_challenge);
        m.update(t.acceptor_challenge);
        m
    }
}

/// Warns (once per start) when a key file (`what`) is readable by group or others.
#[cfg(unix)]
fn warn_if_shared(path: &std::path::Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            "{what} {} is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &std::path::Path, _: &str) {}

/// Says at start how peers are authenticated here and what that does not protect against.
pub(crate) fn announce_mode(me: &str, secret: bool, keys: bool, tls: bool) {
    if keys {
        tracing::info!(
            node = me,
            "authentication: per-node keys (node_keys): every peer proves the key of the id it \
             claims; final acknowledgements that cross relays are signed by their destination. \
             A relay can still drop, delay or refuse what it carries"
        );
    } else if secret {
        tracing::warn!(
            node = me,
            "authentication: shared secret (secret_file): strangers are kept out, but any member \
             holding the secret can claim to be any other member and a relay can forge a final \
             acknowledgement (set node_keys for per-node identity, `hfabric keygen --node ID`)"
        );
    } else if tls {
        tracing::warn!(
            node = me,
            "authentication: TLS certificates only: ids are bound by certificate names, but a \
             relay can forge a final acknowledgement (set node_keys for signed acknowledgements)"
        );
    } else {
        tracing::warn!(
            node = me,
            "authentication: NONE (no secret_file, no node_keys): any local process can join as \
             any node of the fabric, receive its traffic and acknowledge transfers in its name \
             (make per-node keys with `hfabric keygen --node ID --dir keys` and set node_keys)"
        );
    }
}

/// A fresh random challenge.
pub fn challenge() -> [u8; AUTH_LEN] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript<'a>(d: &'a [u8; 32], a: &'a [u8; 32]) -> Transcript<'a> {
        Transcript {
            fabric: "lab",
            dialer: "a",
            acceptor: "b",
            dialer_challenge: d,
            acceptor_challenge: a,
        }
    }

    #[test]
    fn proofs_bind_key_role_and_transcript() {
        let s = Secret::new(&[1; 32]).unwrap();
        let (d, a) = ([2; 32], [3; 32]);
        let t = transcript(&d, &a);
        let p = s.prove(Role::Dialer, &t);
        assert!(s.verify(Role::Dialer, &t, &p));
        assert!(
            !s.verify(Role::Acceptor, &t, &p),
            "reflected proof accepted"
        );
        let other = Secret::new(&[9; 32]).unwrap();
        assert!(!other.verify(Role::Dialer, &t, &p), "wrong key accepted");
        let fresh = [4; 32];
        assert!(
            !s.verify(Role::Dialer, &transcript(&d, &fresh), &p),
            "replay"
        );
        let swapped = Transcript {
            dialer: "b",
            acceptor: "a",
            ..transcript(&d, &a)
        };
        assert!(!s.verify(Role::Dialer, &swapped, &p));
    }

    #[test]
    fn short_and_missing_keys_are_config_errors() {
        assert!(Secret::new(&[0; 31]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let fabric = dir.path().join("fabric.toml");
        let text = "[fabric]\nname = \"t\"\nsecret_file = \"k.key\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n";
        std::fs::write(&fabric, text).unwrap();
        let cfg = FabricConfig::from_file(&fabric).unwrap();
        let field_of = |e: Error| match e {
            Error::Config { field, reason, .. } => (field, reason),
            other => panic!("{other}"),
        };
        let (field, reason) = field_of(Secret::from_config(&cfg, "a").unwrap_err());
        assert_eq!(field, "fabric.secret_file");
        assert!(
            reason.contains("k.key") && reason.contains("cannot read"),
            "{reason}"
        );
        std::fs::write(dir.path().join("k.key"), [5u8; 16]).unwrap();
        let (_, reason) = field_of(Secret::from_config(&cfg, "a").unwrap_err());
        assert!(reason.contains("16 bytes"), "{reason}");
        std::fs::write(dir.path().join("k.key"), [5u8; 32]).unwrap();
        assert!(Secret::from_config(&cfg, "a").unwrap().is_some());
    }
}
