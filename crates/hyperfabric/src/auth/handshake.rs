//! The acceptor's side of the fabric handshake as pure code (no IO, no randomness: the
//! challenge is an argument), so the runtime and the `handshake` fuzz target run the same
//! decisions. Every refusal is a reason the runtime sends in a `Reject` frame and logs.

use super::identity::NodeKeys;
use super::{Role, Secret, Transcript};
use crate::wire::{self, FrameKind, Header, Hello, HelloAuth, HelloIdentity, AUTH_LEN};

/// What the acceptor knows before the first frame arrives.
pub struct Acceptor<'a> {
    pub fabric: &'a str,
    pub me: &'a str,
    pub secret: Option<&'a Secret>,
    /// Per-node keys (`node_keys`; never together with `secret`): the dialer must sign with
    /// the private key of the id it claims.
    pub keys: Option<&'a NodeKeys>,
    /// The challenge this acceptor sends (fresh random bytes per connection).
    pub challenge: [u8; AUTH_LEN],
}

/// A hello the acceptor accepted: who the peer is, what to answer, what to expect next.
#[derive(Debug)]
pub struct Greeted {
    pub peer: String,
    /// The Welcome body to send.
    pub welcome: Vec<u8>,
    /// The dialer's challenge, when it must still send an `Auth` proof over it.
    pub awaiting_proof: Option<[u8; AUTH_LEN]>,
    /// The hello carried `flags::OBSERVER`: a read-only monitor, no member (it proved the
    /// same credentials a member proves, under the id it claims).
    pub observer: bool,
}

impl Acceptor<'_> {
    /// Checks the first frame. `known(id, src_key)` says whether `id` is a member of this
    /// fabric whose wire key is `src_key`.
    pub fn on_hello(
        &self,
        header: &Header,
        body: &[u8],
        known: impl Fn(&str, u64) -> bool,
    ) -> Result<Greeted, String> {
        if header.kind != FrameKind::Hello {
            return Err(format!("expected Hello, got {:?}", header.kind));
        }
        let hello =
            wire::decode_hello(FrameKind::Hello, body).map_err(|e| format!("bad hello: {e}"))?;
        if hello.fabric != self.fabric {
            return Err(format!(
                "wrong fabric `{}` (this is `{}`)",
                hello.fabric, self.fabric
            ));
        }
        if hello.node == self.me {
            return Err(format!(
                "the hello claims this node's own id `{}`",
                hello.node
            ));
        }
        let observer = header.has(wire::flags::OBSERVER);
        self.check_claim(&hello.node, header.src, observer, known)?;
        let peer = hello.node;
        let theirs = match self.keys {
            Some(keys) => {
                self.their_identity(&peer, &hello.auth, &hello.identity, (keys, observer))?
            }
            None if hello.identity.is_some() => return Err(format!(
                "node `{peer}` proves a per-node key but this node has none (node_keys is not set here)"
            )),
            None => self.their_secret(&peer, &hello.auth)?,
        };
        let welcome = self.welcome(&peer, theirs.as_ref(), hello.nonce);
        Ok(Greeted {
            peer,
            welcome,
            awaiting_proof: theirs,
            observer,
        })
    }

    /// Whether the hello's id `node` (sent with wire key `src`) may connect: a member's id
    /// and key, or for an observer an id (and key) of its own that no member has.
    fn check_claim(
        &self,
        node: &str,
        src: u64,
        observer: bool,
        known: impl Fn(&str, u64) -> bool,
    ) -> Result<(), String> {
        if observer {
            // Not a member, yet never a member's id: it must not stand in for one.
            if known(node, src) || src != wire::node_key(node) {
                return Err(format!(
                    "an observer must use an id of its own, not `{node}`'s (or its key)"
                ));
            }
        } else if !known(node, src) {
            return Err(format!(
                "unknown node `{node}` in fabric `{}` (a monitor without an entry joins as an observer)",
                self.fabric
            ));
        }
        Ok(())
    }

    /// The Welcome body: this node's proof over the dialer's challenge `theirs` (with a
    /// secret or node keys), echoing the hello's `nonce`.
    fn welcome(&self, peer: &str, theirs: Option<&[u8; AUTH_LEN]>, nonce: u64) -> Vec<u8> {
        let (mut auth, mut identity) = (None, None);
        if let Some(theirs) = theirs {
            let t = self.transcript(peer, theirs);
            if let Some(keys) = self.keys {
                identity = Some(HelloIdentity {
                    challenge: self.challenge,
                    signature: Some(keys.prove(Role::Acceptor, &t)),
                });
            } else if let Some(s) = self.secret {
                auth = Some(HelloAuth {
                    challenge: self.challenge,
                    proof: Some(s.prove(Role::Acceptor, &t)),
                });
            }
        }
        wire::encode_hello(&Hello {
            fabric: self.fabric.to_owned(),
            node: self.me.to_owned(),
            nonce,
            auth,
            identity,
        })
    }

    /// The dialer's challenge when this node holds a shared secret (or none).
    fn their_secret(
        &self,
        peer: &str,
        auth: &Option<HelloAuth>,
    ) -> Result<Option<[u8; AUTH_LEN]>, String> {
        match (self.secret, auth) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(format!(
                "node `{peer}` sent no proof of the fabric secret (secret_file is set here; is it set on `{peer}`?)"
            )),
            (None, Some(_)) => Err(format!(
                "node `{peer}` offers a fabric secret but this node has none (secret_file is not set here)"
            )),
            (Some(_), Some(HelloAuth { proof: Some(_), .. })) => {
                Err("a hello must not carry a proof".into())
            }
            (Some(_), Some(a)) => Ok(Some(a.challenge)),
        }
    }

    /// The dialer's challenge when this node uses per-node keys.
    fn their_identity(
        &self,
        peer: &str,
        auth: &Option<HelloAuth>,
        identity: &Option<HelloIdentity>,
        (keys, observer): (&NodeKeys, bool),
    ) -> Result<Option<[u8; AUTH_LEN]>, String> {
        match (auth, identity) {
            (Some(_), _) => Err(format!(
                "node `{peer}` proves only a shared fabric secret; this node requires per-node keys (node_keys)"
            )),
            (None, None) => Err(format!(
                "node `{peer}` proves no per-node key (node_keys is set here; is it set on `{peer}`?)"
            )),
            (None, Some(HelloIdentity { signature: Some(_), .. })) => {
                Err("a hello must not carry a signature".into())
            }
            (None, Some(_)) if observer && !keys.knows_observer(peer) => Err(format!(
                "observer `{peer}` has no public key here (observer_keys lists no {peer}.pub; make one with `hfabric keygen --node {peer} --dir DIR` and copy {peer}.pub to every node's observer_keys)"
            )),
            (None, Some(_)) if !observer && !keys.knows(peer) => {
                Err(format!("no public key for node `{peer}` here"))
            }
            (None, Some(i)) => Ok(Some(i.challenge)),
        }
    }

    /// Checks the frame after the Welcome when a proof is due; `observer` as greeted (an
    /// observer's signature is checked against `observer_keys`, a member's against its own).
    pub fn on_proof(
        &self,
        (peer, observer): (&str, bool),
        their_challenge: &[u8; AUTH_LEN],
        header: &Header,
        body: &[u8],
    ) -> Result<(), String> {
        if self.secret.is_none() && self.keys.is_none() {
            return Err("no proof is expected without a fabric secret or node keys".into());
        }
        let t = self.transcript(peer, their_challenge);
        match header.kind {
            FrameKind::Auth => match (self.keys, self.secret) {
                (Some(keys), _) => {
                    let sig =
                        wire::decode_signature(body).map_err(|e| format!("bad signature: {e}"))?;
                    let proven = match observer {
                        true => keys.verify_observer(peer, &t, &sig),
                        false => keys.verify(peer, Role::Dialer, &t, &sig),
                    };
                    if proven {
                        Ok(())
                    } else {
                        Err(format!(
                            "the connection claims to be node `{peer}` but did not sign with `{peer}`'s key (an impostor, or a stale {peer}.pub)"
                        ))
                    }
                }
                (None, Some(secret)) => {
                    let proof = wire::decode_proof(body).map_err(|e| format!("bad proof: {e}"))?;
                    if secret.verify(Role::Dialer, &t, &proof) {
                        Ok(())
                    } else {
                        Err(format!(
                            "node `{peer}` sent a wrong proof of the fabric secret (a different secret_file)"
                        ))
                    }
                }
                (None, None) => Err("no proof is expected".into()),
            },
            FrameKind::Reject => Err(format!(
                "node `{peer}` refused our proof: {}",
                String::from_utf8_lossy(body)
            )),
            other => Err(format!("expected Auth from `{peer}`, got {other:?}")),
        }
    }

    fn transcript<'t>(&'t self, peer: &'t str, theirs: &'t [u8; AUTH_LEN]) -> Transcript<'t> {
        dialer_transcript(self.fabric, peer, self.me, theirs, &self.challenge)
    }
}

/// What the dialer `me` proves to `peer`: its challenge `mine`, the acceptor's `theirs`.
fn dialer_transcript<'t>(
    fabric: &'t str,
    me: &'t str,
    peer: &'t str,
    mine: &'t [u8; AUTH_LEN],
    theirs: &'t [u8; AUTH_LEN],
) -> Transcript<'t> {
    Transcript {
        fabric,
        dialer: me,
        acceptor: peer,
        dialer_challenge: mine,
        acceptor_challenge: theirs,
    }
}

/// The dialer's check of an authenticated Welcome: returns the dialer's proof to send.
pub fn dialer_proof(
    secret: &Secret,
    fabric: &str,
    me: &str,
    peer: &str,
    mine: &[u8; AUTH_LEN],
    theirs: Option<&HelloAuth>,
) -> Result<[u8; AUTH_LEN], String> {
    let Some(HelloAuth {
        challenge,
        proof: Some(proof),
    }) = theirs
    else {
        return Err(format!(
            "`{peer}` did not prove the fabric secret (is secret_file set on it?)"
        ));
    };
    let t = dialer_transcript(fabric, me, peer, mine, challenge);
    if !secret.verify(Role::Acceptor, &t, proof) {
        return Err(format!(
            "`{peer}` answered with a wrong proof of the fabric secret (a different secret_file)"
        ));
    }
    Ok(secret.prove(Role::Dialer, &t))
}

/// The dialer's check of a Welcome signed with the acceptor's node key: returns the
/// dialer's signature to send.
pub fn dialer_signature(
    keys: &NodeKeys,
    fabric: &str,
    me: &str,
    peer: &str,
    mine: &[u8; AUTH_LEN],
    theirs: Option<&HelloIdentity>,
) -> Result<[u8; wire::SIGNATURE_LEN], String> {
    let Some(HelloIdentity {
        challenge,
        signature: Some(sig),
    }) = theirs
    else {
        return Err(format!(
            "`{peer}` did not sign with a node key (is node_keys set on it?)"
        ));
    };
    let t = dialer_transcript(fabric, me, peer, mine, challenge);
    if !keys.verify(peer, Role::Acceptor, &t, sig) {
        return Err(format!(
            "the node at this address answered as `{peer}` but did not sign with `{peer}`'s key (an impostor, or a stale {peer}.pub)"
        ));
    }
    Ok(keys.prove(Role::Dialer, &t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(node: &str, challenge: Option<[u8; 32]>) -> (Header, Vec<u8>) {
        let mut h = Header::new(FrameKind::Hello);
        h.src = wire::node_key(node);
        let body = wire::encode_hello(&Hello {
            fabric: "lab".into(),
            node: node.into(),
            nonce: 1,
            auth: challenge.map(|challenge| HelloAuth {
                challenge,
                proof: None,
            }),
            identity: None,
        });
        (h, body)
    }

    fn known(id: &str, key: u64) -> bool {
        id == "a" && key == wire::node_key("a")
    }

    #[test]
    fn full_exchange_and_each_refusal() {
        let key = Secret::new(&[7; 32]).unwrap();
        let acc = Acceptor {
            fabric: "lab",
            me: "b",
            secret: Some(&key),
            keys: None,
            challenge: [2; 32],
        };
        let (h, body) = hello("a", Some([1; 32]));
        let g = acc.on_hello(&h, &body, known).unwrap();
        let welcome = wire::decode_hello(FrameKind::Welcome, &g.welcome).unwrap();
        let proof = dialer_proof(&key, "lab", "a", "b", &[1; 32], welcome.auth.as_ref()).unwrap();
        let auth = Header::new(FrameKind::Auth);
        assert_eq!(acc.on_proof(("a", false), &[1; 32], &auth, &proof), Ok(()));
        // A replayed proof from another connection (other acceptor challenge) fails.
        let acc2 = Acceptor {
            challenge: [3; 32],
            ..acc
        };
        assert!(acc2
            .on_proof(("a", false), &[1; 32], &auth, &proof)
            .unwrap_err()
            .contains("wrong proof"));
        // The dialer with another key refuses the acceptor.
        let other = Secret::new(&[8; 32]).unwrap();
        let err = dialer_proof(&other, "lab", "a", "b", &[1; 32], welcome.auth.as_ref());
        assert!(err.unwrap_err().contains("wrong proof"));
        // No challenge against a secret, a challenge without one, strangers.
        let (h, plain) = hello("a", None);
        assert!(acc
            .on_hello(&h, &plain, known)
            .unwrap_err()
            .contains("no proof"));
        let open = Acceptor {
            fabric: "lab",
            me: "b",
            secret: None,
            keys: None,
            challenge: [0; 32],
        };
        let (h, body) = hello("a", Some([1; 32]));
        assert!(open
            .on_hello(&h, &body, known)
            .unwrap_err()
            .contains("has none"));
        assert!(open
            .on_hello(&h, &plain, known)
            .unwrap()
            .awaiting_proof
            .is_none());
        let (h, body) = hello("b", None);
        assert!(open
            .on_hello(&h, &body, |_, _| true)
            .unwrap_err()
            .contains("own id"));
        let (h, body) = hello("z", None);
        assert!(open
            .on_hello(&h, &body, known)
            .unwrap_err()
            .contains("unknown node"));
    }

    fn keys_of(me: &str) -> NodeKeys {
        let seed = |id: &str| [id.as_bytes()[0]; 32];
        let members = ["a", "b", "c"].map(|id| {
            let k = NodeKeys::new(id, &seed(id), []).unwrap().public_key();
            (id.to_string(), k)
        });
        NodeKeys::new(me, &seed(me), members).unwrap()
    }

    fn identity_hello(node: &str) -> (Header, Vec<u8>) {
        let mut h = Header::new(FrameKind::Hello);
        h.src = wire::node_key(node);
        let body = wire::encode_hello(&Hello {
            fabric: "lab".into(),
            node: node.into(),
            nonce: 1,
            auth: None,
            identity: Some(HelloIdentity {
                challenge: [1; 32],
                signature: None,
            }),
        });
        (h, body)
    }

    #[test]
    fn per_node_keys_refuse_a_member_claiming_another_id() {
        let (a, b, c) = (keys_of("a"), keys_of("b"), keys_of("c"));
        let acc = Acceptor {
            fabric: "lab",
            me: "b",
            secret: None,
            keys: Some(&b),
            challenge: [2; 32],
        };
        let members = |id: &str, key: u64| id != "b" && key == wire::node_key(id);
        let (h, body) = identity_hello("a");
        let g = acc.on_hello(&h, &body, members).unwrap();
        let welcome = wire::decode_hello(FrameKind::Welcome, &g.welcome).unwrap();
        let auth = Header::new(FrameKind::Auth);
        let sig = dialer_signature(&a, "lab", "a", "b", &[1; 32], welcome.identity.as_ref());
        assert_eq!(
            acc.on_proof(("a", false), &[1; 32], &auth, &sig.unwrap()),
            Ok(())
        );
        // c is a member with a key of its own; claiming a's id, it cannot sign as a.
        let forged = dialer_signature(&c, "lab", "c", "b", &[1; 32], welcome.identity.as_ref());
        assert!(
            forged.is_err(),
            "c checks b's signature over a transcript naming c"
        );
        let t = Transcript {
            fabric: "lab",
            dialer: "a",
            acceptor: "b",
            dialer_challenge: &[1; 32],
            acceptor_challenge: &[2; 32],
        };
        let as_a = c.prove(Role::Dialer, &t);
        let why = acc
            .on_proof(("a", false), &[1; 32], &auth, &as_a)
            .unwrap_err();
        assert!(why.contains("did not sign with `a`'s key"), "{why}");
        // A 32-byte HMAC-sized proof is refused; a secret-only hello is refused by name.
        assert!(acc
            .on_proof(("a", false), &[1; 32], &auth, &[0; 32])
            .is_err());
        let (h, plain) = hello("a", Some([1; 32]));
        let why = acc.on_hello(&h, &plain, members).unwrap_err();
        assert!(why.contains("only a shared fabric secret"), "{why}");
        // And a dialer refuses an acceptor that is not b.
        let acc_c = Acceptor {
            keys: Some(&c),
            me: "c",
            ..acc
        };
        let g = acc_c.on_hello(&h, &body, |_, _| true).unwrap();
        let w = wire::decode_hello(FrameKind::Welcome, &g.welcome).unwrap();
        let err = dialer_signature(&a, "lab", "a", "b", &[1; 32], w.identity.as_ref());
        assert!(err.unwrap_err().contains("did not sign with `b`'s key"));
    }
}
