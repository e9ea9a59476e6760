//! The acceptor's side of the fabric handshake as pure code (no IO, no randomness: the
//! challenge is an argument), so the runtime and the `handshake` fuzz target run the same
//! decisions. Every refusal is a reason the runtime sends in a `Reject` frame and logs.

use super::{Role, Secret, Transcript};
use crate::wire::{self, FrameKind, Header, Hello, HelloAuth, AUTH_LEN};

/// What the acceptor knows before the first frame arrives.
pub struct Acceptor<'a> {
    pub fabric: &'a str,
    pub me: &'a str,
    pub secret: Option<&'a Secret>,
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
        if !known(&hello.node, header.src) {
            return Err(format!(
                "unknown node `{}` in fabric `{}`",
                hello.node, self.fabric
            ));
        }
        let peer = hello.node;
        let theirs = match (self.secret, &hello.auth) {
            (None, None) => None,
            (Some(_), None) => return Err(format!(
                "node `{peer}` sent no proof of the fabric secret (secret_file is set here; is it set on `{peer}`?)"
            )),
            (None, Some(_)) => return Err(format!(
                "node `{peer}` offers a fabric secret but this node has none (secret_file is not set here)"
            )),
            (Some(_), Some(HelloAuth { proof: Some(_), .. })) => {
                return Err("a hello must not carry a proof".into())
            }
            (Some(_), Some(a)) => Some(a.challenge),
        };
        let auth = match (self.secret, &theirs) {
            (Some(s), Some(theirs)) => Some(HelloAuth {
                challenge: self.challenge,
                proof: Some(s.prove(Role::Acceptor, &self.transcript(&peer, theirs))),
            }),
            _ => None,
        };
        let welcome = wire::encode_hello(&Hello {
            fabric: self.fabric.to_owned(),
            node: self.me.to_owned(),
            nonce: hello.nonce,
            auth,
        });
        Ok(Greeted {
            peer,
            welcome,
            awaiting_proof: theirs,
        })
    }

    /// Checks the frame after the Welcome when a proof is due.
    pub fn on_proof(
        &self,
        peer: &str,
        their_challenge: &[u8; AUTH_LEN],
        header: &Header,
        body: &[u8],
    ) -> Result<(), String> {
        let Some(secret) = self.secret else {
            return Err("no proof is expected without a fabric secret".into());
        };
        match header.kind {
            FrameKind::Auth => {
                let proof = wire::decode_proof(body).map_err(|e| format!("bad proof: {e}"))?;
                if secret.verify(
                    Role::Dialer,
                    &self.transcript(peer, their_challenge),
                    &proof,
                ) {
                    Ok(())
                } else {
                    Err(format!(
                        "node `{peer}` sent a wrong proof of the fabric secret (a different secret_file)"
                    ))
                }
            }
            FrameKind::Reject => Err(format!(
                "node `{peer}` refused our proof: {}",
                String::from_utf8_lossy(body)
            )),
            other => Err(format!("expected Auth from `{peer}`, got {other:?}")),
        }
    }

    fn transcript<'t>(&'t self, peer: &'t str, theirs: &'t [u8; AUTH_LEN]) -> Transcript<'t> {
        Transcript {
            fabric: self.fabric,
            dialer: peer,
            acceptor: self.me,
            dialer_challenge: theirs,
            acceptor_challenge: &self.challenge,
        }
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
    let t = Transcript {
        fabric,
        dialer: me,
        acceptor: peer,
        dialer_challenge: mine,
        acceptor_challenge: challenge,
    };
    if !secret.verify(Role::Acceptor, &t, proof) {
        return Err(format!(
            "`{peer}` answered with a wrong proof of the fabric secret (a different secret_file)"
        ));
    }
    Ok(secret.prove(Role::Dialer, &t))
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
            challenge: [2; 32],
        };
        let (h, body) = hello("a", Some([1; 32]));
        let g = acc.on_hello(&h, &body, known).unwrap();
        let welcome = wire::decode_hello(FrameKind::Welcome, &g.welcome).unwrap();
        let proof = dialer_proof(&key, "lab", "a", "b", &[1; 32], welcome.auth.as_ref()).unwrap();
        let auth = Header::new(FrameKind::Auth);
        assert_eq!(acc.on_proof("a", &[1; 32], &auth, &proof), Ok(()));
        // A replayed proof from another connection (other acceptor challenge) fails.
        let acc2 = Acceptor {
            challenge: [3; 32],
            ..acc
        };
        assert!(acc2
            .on_proof("a", &[1; 32], &auth, &proof)
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
}
