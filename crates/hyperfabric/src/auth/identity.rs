//! Per-node identity: every node holds its own Ed25519 key pair, and the fabric's members
//! know every node's public key (`[fabric] node_keys`, a directory of `<id>.pub` files plus
//! this node's `<id>.key`). A node proves in the handshake that it holds the private key of
//! the id it claims, so a member cannot borrow another member's id the way it can with a
//! shared `secret_file`; and a destination signs the final acknowledgement of a transfer
//! that reached it through relays, so no relay can forge "acknowledged end to end".
//!
//! Files: `<id>.key` is the 32-byte Ed25519 seed (mode 0600, only on that node's host),
//! `<id>.pub` the 32-byte public key as 64 hex digits (not secret; copy it to every host).

use super::{Role, Transcript};
use crate::config::{FabricConfig, SecurityConfig};
use crate::error::{Error, Result};
use crate::wire::SIGNATURE_LEN;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// Bytes of an Ed25519 public key and of a private key's seed.
pub const KEY_LEN: usize = 32;
/// Largest key file read (a wrong path must not read a disk image).
const MAX_KEY_FILE_BYTES: u64 = 4096;
/// Most observer keys an `observer_keys` directory may list (a bounded table).
pub const MAX_OBSERVER_KEYS: usize = 256;

const HANDSHAKE_LABEL: &[u8] = b"hyperfabric-node-key-v1\0";
// v2: the message binds the content's CRC32C as well.
const FINAL_ACK_LABEL: &[u8] = b"hyperfabric-final-ack-v2\0";

const ORIGIN_LABEL: &[u8] = b"hyperfabric-origin-v1\0";

/// What a sender signs for a transfer whose frames cross relays (`flags::ORIGIN`): the
/// destination then knows the transfer comes from `sender`, not from a relay using its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub transfer_id: u64,
    /// Total bytes of the transfer.
    pub len: u64,
    pub sender: u64,
    pub destination: u64,
}

impl Origin {
    fn message(&self) -> [u8; ORIGIN_LABEL.len() + 32] {
        let mut m = [0u8; ORIGIN_LABEL.len() + 32];
        let (label, rest) = m.split_at_mut(ORIGIN_LABEL.len());
        label.copy_from_slice(ORIGIN_LABEL);
        for (i, v) in [self.transfer_id, self.len, self.sender, self.destination]
            .into_iter()
            .enumerate()
        {
            rest[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        m
    }
}

/// What a destination signs when it acknowledges a transfer FINAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalAck<'a> {
    pub transfer_id: u64,
    /// Total bytes of the transfer the destination holds.
    pub len: u64,
    /// Node keys of the transfer's sender and of the destination that signs.
    pub sender: u64,
    pub destination: u64,
    /// CRC32C of the whole content as the destination reassembled and verified it: a relay
    /// that altered or dropped bytes cannot produce an ack the sender's CRC matches.
    pub content_crc: u32,
    /// The name a store directory gave the file (empty: none); the ack carries it.
    pub stored_as: &'a [u8],
}

impl FinalAck<'_> {
    /// The signed message: fixed size, built on the stack (no allocation per transfer).
    fn message(&self) -> [u8; FINAL_ACK_LABEL.len() + 36 + 32] {
        let mut m = [0u8; FINAL_ACK_LABEL.len() + 36 + 32];
        let (label, rest) = m.split_at_mut(FINAL_ACK_LABEL.len());
        label.copy_from_slice(FINAL_ACK_LABEL);
        for (i, v) in [self.transfer_id, self.len, self.sender, self.destination]
            .into_iter()
            .enumerate()
        {
            rest[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        rest[32..36].copy_from_slice(&self.content_crc.to_le_bytes());
        rest[36..].copy_from_slice(&Sha256::digest(self.stored_as));
        m
    }
}

/// This node's key pair and every member's public key. Debug never shows the private key.
pub struct NodeKeys {
    me: String,
    pair: Ed25519KeyPair,
    public: HashMap<u64, (String, [u8; KEY_LEN])>,
    /// Observers' public keys (`observer_keys`), apart from the members': an observer's key
    /// never proves a member's id, nor signs an acknowledgement or an origin.
    observers: HashMap<u64, (String, [u8; KEY_LEN])>,
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NodeKeys({}, {} public keys)",
            self.me,
            self.public.len()
        )
    }
}

impl NodeKeys {
    /// From `me`'s seed and the members' public keys; `me`'s own public key, when listed,
    /// must be the seed's.
    pub fn new(
        me: &str,
        seed: &[u8; KEY_LEN],
        members: impl IntoIterator<Item = (String, [u8; KEY_LEN])>,
    ) -> std::result::Result<NodeKeys, String> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| format!("not an Ed25519 seed: {e}"))?;
        let mut public = HashMap::new();
        for (id, key) in members {
            public.insert(crate::wire::node_key(&id), (id, key));
        }
        let mine: [u8; KEY_LEN] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| "an Ed25519 public key has 32 bytes".to_string())?;
        match public.get(&crate::wire::node_key(me)) {
            Some((_, listed)) if *listed != mine => {
                return Err(format!(
                    "the public key listed for `{me}` is not the one of its private key"
                ))
            }
            Some(_) => {}
            None => {
                public.insert(crate::wire::node_key(me), (me.to_owned(), mine));
            }
        }
        Ok(NodeKeys {
            me: me.to_owned(),
            pair,
            public,
            observers: HashMap::new(),
        })
    }

    /// Adds the observers' public keys (ids that are members are refused).
    pub fn with_observers(
        mut self,
        observers: impl IntoIterator<Item = (String, [u8; KEY_LEN])>,
    ) -> std::result::Result<NodeKeys, String> {
        for (id, key) in observers {
            if self.knows(&id) {
                return Err(format!(
                    "`{id}.pub` names a member: an observer needs an id of its own"
                ));
            }
            self.observers.insert(crate::wire::node_key(&id), (id, key));
        }
        Ok(self)
    }

    /// Reads `[fabric] node_keys` for node `me`: its `<me>.key` and every node's `<id>.pub`,
    /// and the observers' `<id>.pub` of `observer_keys`. An `observer` (a monitor without a
    /// node entry) reads its own `<me>.key` from `observer_keys` instead. `None` when the
    /// file names no key directory.
    pub fn from_config(cfg: &FabricConfig, me: &str, observer: bool) -> Result<Option<NodeKeys>> {
        let Some(written) = &cfg.security.node_keys else {
            return Ok(None);
        };
        let dir = SecurityConfig::resolve(&cfg.source, written, me);
        let err = |reason: String| Error::config(cfg.source.clone(), "fabric.node_keys", reason);
        let obs_err =
            |reason: String| Error::config(cfg.source.clone(), "fabric.observer_keys", reason);
        let obs_dir = cfg
            .security
            .observer_keys
            .as_ref()
            .map(|w| SecurityConfig::resolve(&cfg.source, w, me));
        let mut members = Vec::with_capacity(cfg.nodes.len());
        for n in cfg.nodes.iter().filter(|n| !observer || n.id() != me) {
            let id = &n.signature.node_id;
            let path = key_path(&dir, id, "pub").map_err(err)?;
            members.push((id.clone(), read_public(&path).map_err(err)?));
        }
        let seed = match (observer, &obs_dir) {
            (false, _) => read_seed(&dir, me).map_err(err)?,
            (true, Some(obs)) => read_seed(obs, me).map_err(obs_err)?,
            (true, None) => {
                return Err(obs_err(format!(
                    "the nodes use per-node keys, so observer `{me}` needs a key they list: set \
                     observer_keys to a directory with {me}.key and {me}.pub (`hfabric keygen \
                     --node {me} --dir DIR`; copy {me}.pub to every node's observer_keys)"
                )))
            }
        };
        let keys = NodeKeys::new(me, &seed, members)
            .map_err(|e| err(format!("{}: {e}", dir.display())))?;
        match obs_dir.filter(|_| !observer) {
            None => Ok(Some(keys)),
            Some(obs) => {
                let listed = read_observer_keys(&obs).map_err(obs_err)?;
                keys.with_observers(listed)
                    .map(Some)
                    .map_err(|e| obs_err(format!("{}: {e}", obs.display())))
            }
        }
    }

    /// This node's public key.
    pub fn public_key(&self) -> [u8; KEY_LEN] {
        let mut k = [0u8; KEY_LEN];
        k.copy_from_slice(self.pair.public_key().as_ref());
        k
    }

    /// Whether `node` has a public key here.
    pub fn knows(&self, node: &str) -> bool {
        self.public
            .get(&crate::wire::node_key(node))
            .is_some_and(|(id, _)| id == node)
    }

    /// Whether observer `id` has a public key here (`observer_keys`).
    pub fn knows_observer(&self, id: &str) -> bool {
        self.observers
            .get(&crate::wire::node_key(id))
            .is_some_and(|(listed, _)| listed == id)
    }

    /// This node's signature of the handshake transcript as `role`.
    pub fn prove(&self, role: Role, t: &Transcript<'_>) -> [u8; SIGNATURE_LEN] {
        sig_bytes(&self.pair.sign(&t.bytes(HANDSHAKE_LABEL, role)))
    }

    /// Does `sig` prove that `node` (as `role`) holds its private key for this transcript?
    pub fn verify(
        &self,
        node: &str,
        role: Role,
        t: &Transcript<'_>,
        sig: &[u8; SIGNATURE_LEN],
    ) -> bool {
        verify_in(&self.public, node, role, t, sig)
    }

    /// Does `sig` prove that observer `id` (a dialer) holds the key `observer_keys` lists?
    pub fn verify_observer(&self, id: &str, t: &Transcript<'_>, sig: &[u8; SIGNATURE_LEN]) -> bool {
        verify_in(&self.observers, id, Role::Dialer, t, sig)
    }

    /// This node's signature of a final acknowledgement it sends.
    pub fn sign_final_ack(&self, ack: &FinalAck<'_>) -> [u8; SIGNATURE_LEN] {
        sig_bytes(&self.pair.sign(&ack.message()))
    }

    /// Did the destination named in `ack` sign it?
    pub fn verify_final_ack(&self, ack: &FinalAck<'_>, sig: &[u8]) -> bool {
        self.public.get(&ack.destination).is_some_and(|(_, key)| {
            UnparsedPublicKey::new(&ED25519, key)
                .verify(&ack.message(), sig)
                .is_ok()
        })
    }
}

impl NodeKeys {
    /// Signs a transfer this node sends through relays.
    pub fn sign_origin(&self, o: &Origin) -> [u8; SIGNATURE_LEN] {
        sig_bytes(&self.pair.sign(&o.message()))
    }

    /// Did the sender named in `o` sign it?
    pub fn verify_origin(&self, o: &Origin, sig: &[u8]) -> bool {
        self.public.get(&o.sender).is_some_and(|(_, key)| {
            UnparsedPublicKey::new(&ED25519, key)
                .verify(&o.message(), sig)
                .is_ok()
        })
    }
}

/// Checks a handshake signature against the key `table` lists for `node`.
fn verify_in(
    table: &HashMap<u64, (String, [u8; KEY_LEN])>,
    node: &str,
    role: Role,
    t: &Transcript<'_>,
    sig: &[u8; SIGNATURE_LEN],
) -> bool {
    let Some((id, key)) = table.get(&crate::wire::node_key(node)) else {
        return false;
    };
    id == node
        && UnparsedPublicKey::new(&ED25519, key)
            .verify(&t.bytes(HANDSHAKE_LABEL, role), sig)
            .is_ok()
}

fn sig_bytes(sig: &ring::signature::Signature) -> [u8; SIGNATURE_LEN] {
    let mut s = [0u8; SIGNATURE_LEN];
    s.copy_from_slice(sig.as_ref());
    s
}

/// `<dir>/<id>.<ext>`; an id that would leave the directory is refused.
pub fn key_path(
    dir: &Path,
    id: &str,
    ext: &str,
) -> std::result::Result<std::path::PathBuf, String> {
    if id.contains('/') || id.contains('\\') || id.starts_with('.') {
        return Err(format!(
            "node id `{id}` cannot name a key file (it contains a path separator or starts with a dot)"
        ));
    }
    Ok(dir.join(format!("{id}.{ext}")))
}

/// A `.pub` file's key.
fn read_public(path: &Path) -> std::result::Result<[u8; KEY_LEN], String> {
    let text = read_small(path)?;
    decode_public(&String::from_utf8_lossy(&text)).map_err(|e| format!("{}: {e}", path.display()))
}

/// `<dir>/<id>.key`: the 32-byte seed.
fn read_seed(dir: &Path, id: &str) -> std::result::Result<[u8; KEY_LEN], String> {
    let path = key_path(dir, id, "key")?;
    let seed = read_small(&path)?;
    super::warn_if_shared(&path, "node key");
    seed.as_slice().try_into().map_err(|_| {
        format!(
            "{}: a node key has {KEY_LEN} bytes, this file has {} (make one with `hfabric keygen --node {id}`)",
            path.display(),
            seed.len()
        )
    })
}

/// Every `<id>.pub` of an `observer_keys` directory (at most [`MAX_OBSERVER_KEYS`]).
fn read_observer_keys(dir: &Path) -> std::result::Result<Vec<(String, [u8; KEY_LEN])>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("{}: cannot read: {e}", dir.display()))?;
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: cannot read: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".pub")) else {
            continue;
        };
        if keys.len() == MAX_OBSERVER_KEYS {
            return Err(format!(
                "{}: more than {MAX_OBSERVER_KEYS} observer keys",
                dir.display()
            ));
        }
        let path = key_path(dir, id, "pub")?;
        keys.push((id.to_owned(), read_public(&path)?));
    }
    Ok(keys)
}

fn read_small(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "{}: {} bytes, a key file has at most {MAX_KEY_FILE_BYTES}",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// A fresh key pair from the OS's random source: (seed, public key).
pub fn generate() -> std::result::Result<([u8; KEY_LEN], [u8; KEY_LEN]), String> {
    let mut seed = [0u8; KEY_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| "the OS random source failed".to_string())?;
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|e| format!("not an Ed25519 seed: {e}"))?;
    let mut public = [0u8; KEY_LEN];
    public.copy_from_slice(pair.public_key().as_ref());
    Ok((seed, public))
}

/// A public key as written in a `.pub` file: 64 lowercase hex digits.
pub fn encode_public(key: &[u8; KEY_LEN]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a `.pub` file's text (surrounding whitespace allowed).
pub fn decode_public(text: &str) -> std::result::Result<[u8; KEY_LEN], String> {
    let hex = text.trim();
    if hex.len() != 2 * KEY_LEN || !hex.is_ascii() {
        return Err(format!(
            "a public key is {} hex digits, this has {} characters",
            2 * KEY_LEN,
            hex.chars().count()
        ));
    }
    let mut key = [0u8; KEY_LEN];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| "a public key is hex digits only".to_string())?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(me: &str, seeds: &[(&str, u8)]) -> NodeKeys {
        let members = seeds.iter().map(|(id, s)| {
            let k = NodeKeys::new(id, &[*s; 32], []).unwrap().public_key();
            (id.to_string(), k)
        });
        let mine = seeds.iter().find(|(id, _)| *id == me).unwrap().1;
        NodeKeys::new(me, &[mine; 32], members).unwrap()
    }

    #[test]
    fn a_signature_proves_one_node_one_role_one_transcript() {
        let ids = [("a", 1), ("b", 2), ("c", 3)];
        let (a, b, c) = (pair("a", &ids), pair("b", &ids), pair("c", &ids));
        let (d, x) = ([5; 32], [6; 32]);
        let t = Transcript {
            fabric: "lab",
            dialer: "a",
            acceptor: "b",
            dialer_challenge: &d,
            acceptor_challenge: &x,
        };
        let sig = a.prove(Role::Dialer, &t);
        assert!(b.verify("a", Role::Dialer, &t, &sig));
        assert!(!b.verify("a", Role::Acceptor, &t, &sig), "reflected");
        // c holds a key of its own, not a's: its signature does not pass as a's.
        assert!(!b.verify("a", Role::Dialer, &t, &c.prove(Role::Dialer, &t)));
        let fresh = [7; 32];
        let replay = Transcript {
            acceptor_challenge: &fresh,
            ..t
        };
        assert!(!b.verify("a", Role::Dialer, &replay, &sig), "replayed");
        assert!(!b.verify("z", Role::Dialer, &t, &sig), "unknown node");
    }

    #[test]
    fn origins_are_bound_to_sender_destination_transfer_and_length() {
        let ids = [("a", 1), ("b", 2), ("c", 3)];
        let (a, b, c) = (pair("a", &ids), pair("b", &ids), pair("c", &ids));
        let o = Origin {
            transfer_id: 7,
            len: 1000,
            sender: crate::wire::node_key("a"),
            destination: crate::wire::node_key("b"),
        };
        let sig = a.sign_origin(&o);
        assert!(b.verify_origin(&o, &sig));
        assert!(
            !b.verify_origin(&o, &c.sign_origin(&o)),
            "a relay's own key"
        );
        for other in [
            Origin {
                transfer_id: 8,
                ..o
            },
            Origin { len: 1001, ..o },
            Origin {
                destination: crate::wire::node_key("c"),
                ..o
            },
        ] {
            assert!(!b.verify_origin(&other, &sig), "{other:?}");
        }
    }

    #[test]
    fn final_acks_are_bound_to_destination_transfer_length_content_and_name() {
        let ids = [("a", 1), ("b", 2), ("c", 3)];
        let (a, b, c) = (pair("a", &ids), pair("b", &ids), pair("c", &ids));
        let ack = FinalAck {
            transfer_id: 9,
            len: 100,
            sender: crate::wire::node_key("a"),
            destination: crate::wire::node_key("b"),
            content_crc: 0xdead_beef,
            stored_as: b"x.bin",
        };
        let sig = b.sign_final_ack(&ack);
        assert!(a.verify_final_ack(&ack, &sig));
        assert!(
            !a.verify_final_ack(&ack, &c.sign_final_ack(&ack)),
            "a relay's"
        );
        for other in [
            FinalAck {
                transfer_id: 10,
                ..ack
            },
            FinalAck { len: 99, ..ack },
            FinalAck {
                content_crc: 0xdead_beee,
                ..ack
            },
            FinalAck {
                stored_as: b"y.bin",
                ..ack
            },
            FinalAck {
                sender: crate::wire::node_key("c"),
                ..ack
            },
        ] {
            assert!(!a.verify_final_ack(&other, &sig), "{other:?}");
        }
        assert!(!a.verify_final_ack(&ack, &sig[..63]), "short");
    }

    #[test]
    fn key_files_and_their_mistakes() {
        let (seed, public) = generate().unwrap();
        assert_eq!(
            decode_public(&format!("{}\n", encode_public(&public))),
            Ok(public)
        );
        assert!(decode_public("abc").is_err());
        assert!(decode_public(&"zz".repeat(32)).is_err());
        let wrong = NodeKeys::new("a", &seed, [("a".to_string(), [0u8; 32])]);
        assert!(wrong.unwrap_err().contains("not the one"));
        assert!(key_path(Path::new("k"), "../etc", "pub").is_err());
        assert_eq!(
            key_path(Path::new("k"), "gpu-01", "pub").unwrap(),
            Path::new("k/gpu-01.pub")
        );
    }
}
