//! Setting up a connection: TCP, then TLS when `encryption_enabled`, then the fabric
//! handshake inside it: Hello / Welcome, and with a fabric secret the mutual HMAC proofs, or
//! with per-node keys (`node_keys`) the mutual Ed25519 signatures of each side's own id.
//!
//! ```text
//!  dialer                                         acceptor
//!   [TLS 1.3 handshake, both certificates checked against tls_ca]
//!   Hello(fabric, node, nonce, challenge_d) ────▶  checks fabric, node (and its certificate)
//!   ◀──── Welcome(fabric, node, nonce, challenge_a, proof_a)
//!   checks proof_a (the acceptor holds the secret, or the acceptor id's private key)
//!   Auth(proof_d) ──────────────────────────────▶  checks proof_d; only now is the peer adopted
//! ```
//! A failed check is answered with `Reject(reason)` by whichever side found it, logged, and
//! the connection is closed before any other frame is read or sent. Both sides give the
//! whole exchange one deadline (`handshake_timeout_ms`), not a timeout per read.

use super::conn::{body, read_frame, read_loop, Conn, FrameError, Lane, READ_BUFFER_BYTES};
use super::{shmlink, NodeInner, Peer};
use crate::auth;
use crate::error::{Error, Result};
use crate::transport::deadline::{Budget, Deadline};
use crate::transport::tcp;
use crate::transport::tls::{LinkReader, LinkWriter, TlsSession};
use crate::wire::{self, FrameKind, Header, Hello, HelloAuth, HelloIdentity};
use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Reader = BufReader<LinkReader>;

/// Writes a Reject frame and closes: used before any handshake completed.
pub(super) fn reject(stream: &TcpStream, reason: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    let Ok(tx) = stream.try_clone() else { return };
    send_reject(&mut LinkWriter::Plain(tx), reason);
    let _ = stream.shutdown(Shutdown::Both);
}

pub(super) fn send_reject(tx: &mut impl Write, reason: &str) {
    send_reject_code(tx, reason, wire::codes::reject::UNSPECIFIED);
}

/// A Reject whose `aux` says what kind of refusal it is (`wire::codes::reject`).
pub(super) fn send_reject_code(tx: &mut impl Write, reason: &str, code: u64) {
    let mut h = Header::new(FrameKind::Reject);
    h.aux = code;
    if let Ok(frame) = wire::encode_frame(&h, reason.as_bytes()) {
        let _ = tx.write_all(&frame);
    }
}

pub(super) fn send(
    tx: &mut impl Write,
    node: &NodeInner,
    peer_key: u64,
    kind: FrameKind,
    body: &[u8],
) -> io::Result<()> {
    let mut h = Header::new(kind);
    h.src = node.my_key;
    h.dst = peer_key;
    let frame = wire::encode_frame(&h, body)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    tx.write_all(&frame)
}

/// How long a dial may take.
#[derive(Clone, Copy)]
pub(super) enum DialBound {
    /// `deadline` bounds the TCP connect; the handshake gets `handshake_timeout_ms`.
    Connect,
    /// `deadline` bounds the whole exchange (a health probe: a listener that accepts and
    /// never answers costs at most the probe's budget, not the handshake timeout).
    Whole,
}

/// Dials `peer`, says hello and waits for its welcome.
pub(super) fn dial(
    node: &Arc<NodeInner>,
    peer: &Peer,
    lane: Lane,
    deadline: Instant,
) -> Result<Arc<Conn>> {
    dial_bounded(node, peer, lane, deadline, DialBound::Connect)
}

/// As [`dial`], bounded as `bound` says.
pub(super) fn dial_bounded(
    node: &Arc<NodeInner>,
    peer: &Peer,
    lane: Lane,
    deadline: Instant,
    bound: DialBound,
) -> Result<Arc<Conn>> {
    let addr = peer.addr.ok_or_else(|| Error::Unreachable {
        node: peer.id.clone(),
        reason: "no listen address in the fabric file".into(),
    })?;
    let budget = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let timeout = budget.min(Duration::from_millis(node.tuning.connect_timeout_ms));
    let (stream, socket) =
        tcp::connect(addr, timeout, &node.tuning, node.segment.mss).map_err(|e| {
            Error::Unreachable {
                node: peer.id.clone(),
                reason: format!("connect to {addr}: {e}"),
            }
        })?;
    let io_err = |e: io::Error| Error::Unreachable {
        node: peer.id.clone(),
        reason: format!("handshake with {addr}: {e}"),
    };
    let mut handshake_timeout = Duration::from_millis(node.tuning.handshake_timeout_ms);
    let mut budget = Budget::starting_now(handshake_timeout);
    if let DialBound::Whole = bound {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        if left < handshake_timeout {
            handshake_timeout = left;
            budget = Budget::starting_now(left).limited_by("the health probe's budget");
        }
    }
    // One deadline for TLS and the fabric handshake; the shared-memory offer after it
    // keeps a timeout per read.
    stream
        .set_read_timeout(Some(handshake_timeout))
        .map_err(io_err)?;
    let (mut tx, rx) = secure_dialer(node, peer, &stream, budget)?;
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, rx);
    greet_as_dialer(node, peer, addr, (&mut tx, &mut reader), &stream, budget)?;
    stream.set_write_timeout(None).map_err(io_err)?;
    let shm = shmlink::offer(node, peer, addr, &mut tx, &mut reader)?;
    stream.set_read_timeout(None).map_err(io_err)?;
    let conn = Conn::new(node, peer, &stream, tx, socket, lane).map_err(io_err)?;
    node.adopt(Arc::clone(&conn));
    spawn_reader(node, &conn, reader)?;
    if let Some(ends) = shm {
        let waiter = ends.rx.waiter();
        conn.switch_to_shm(ends);
        shmlink::spawn_reader(node, &conn, waiter)?;
    }
    tracing::debug!(peer = %peer.id, %addr, "connected");
    Ok(conn)
}

/// TLS as a client when the fabric wants it; the plain socket otherwise.
fn secure_dialer(
    node: &NodeInner,
    peer: &Peer,
    stream: &TcpStream,
    budget: Budget,
) -> Result<(LinkWriter, LinkReader)> {
    let io_err = |e: io::Error| Error::io("cloning a socket", e);
    let Some(tls) = &node.tls else {
        let rx = stream.try_clone().map_err(io_err)?;
        return Ok((
            LinkWriter::Plain(stream.try_clone().map_err(io_err)?),
            LinkReader::Plain(rx),
        ));
    };
    let refused = |reason: String| Error::Rejected { reason };
    let name = auth::tls::server_name(&peer.id).map_err(refused)?;
    let conn = rustls::ClientConnection::new(Arc::clone(&tls.client), name)
        .map_err(|e| refused(format!("TLS with {}: {e}", peer.id)))?;
    let (session, reader) = TlsSession::handshake(stream, conn.into(), Some(budget)).map_err(|e| {
        refused(format!(
            "TLS handshake with {} failed: {e} (does it have encryption_enabled and a certificate for `{}` from tls_ca?)",
            peer.id, peer.id
        ))
    })?;
    Ok((LinkWriter::Tls(session), LinkReader::Tls(reader)))
}

/// The dialer's half of the fabric handshake, within `budget`.
fn greet_as_dialer(
    node: &NodeInner,
    peer: &Peer,
    addr: SocketAddr,
    (tx, reader): (&mut LinkWriter, &mut Reader),
    stream: &TcpStream,
    budget: Budget,
) -> Result<()> {
    let io_err = |e: String| Error::Unreachable {
        node: peer.id.clone(),
        reason: format!("handshake with {addr}: {e}"),
    };
    let tls = tx.is_tls();
    let mut tx = Deadline::new(tx, stream, budget);
    let mut rx = Deadline::new(reader, stream, budget);
    let my_challenge = (node.secret.is_some() || node.keys.is_some()).then(auth::challenge);
    hello_frame(node, peer, my_challenge)
        .and_then(|frame| tx.write_all(&frame).map_err(|e| e.to_string()))
        .map_err(io_err)?;
    let mut payload = Vec::new();
    let answer = read_frame(&mut rx, node.limits, &mut payload).map_err(|e| match e {
        // With TLS, a failure here is the peer's verdict on our certificate (a TLS alert).
        FrameError::Io(e) if tls && e.kind() == io::ErrorKind::InvalidData => {
            Error::Rejected {
                reason: format!(
                    "{} refused the TLS session: {e} (is our certificate signed by its tls_ca and made for `{}`?)",
                    peer.id, node.me
                ),
            }
        }
        FrameError::Eof => io_err("the peer closed the connection during the handshake".into()),
        e => io_err(e.to_string()),
    })?;
    let welcome = read_welcome(node, peer, addr, &answer, body(&payload, &answer))?;
    let Some(mine) = &my_challenge else {
        return match (welcome.auth, welcome.identity) {
            (None, None) => Ok(()),
            _ => Err(Error::Rejected {
                reason: format!(
                    "{} sent a proof this node cannot check (it has a secret_file or node_keys, this node has neither)",
                    peer.id
                ),
            }),
        };
    };
    match prove(node, peer, mine, &welcome) {
        Ok(mine) => {
            send(&mut tx, node, peer.key, FrameKind::Auth, &mine).map_err(|e| io_err(e.to_string()))
        }
        Err(why) => {
            tracing::warn!(peer = %peer.id, %addr, "refusing connection: {why}");
            send_reject(&mut tx, &why);
            Err(Error::Rejected { reason: why })
        }
    }
}

/// The dialer's Hello to `peer`, encoded: with `challenge` as a secret's challenge, or as
/// an identity's when this node has per-node keys.
fn hello_frame(
    node: &NodeInner,
    peer: &Peer,
    challenge: Option<[u8; wire::AUTH_LEN]>,
) -> std::result::Result<Vec<u8>, String> {
    let hello = Hello {
        fabric: node.fabric_name.clone(),
        node: node.me.clone(),
        nonce: rand::random(),
        auth: challenge
            .filter(|_| node.keys.is_none())
            .map(|c| HelloAuth {
                challenge: c,
                proof: None,
            }),
        identity: challenge
            .filter(|_| node.keys.is_some())
            .map(|c| HelloIdentity {
                challenge: c,
                signature: None,
            }),
    };
    let mut h = Header::new(FrameKind::Hello);
    (h.src, h.dst) = (node.my_key, peer.key);
    if node.observer {
        h.flags = wire::flags::OBSERVER;
    }
    wire::encode_frame(&h, &wire::encode_hello(&hello)).map_err(|e| e.to_string())
}

/// The dialer's proof for `welcome`, answering our challenge `mine`: a signature with this
/// node's key, or a proof of the fabric's secret.
fn prove(
    node: &NodeInner,
    peer: &Peer,
    mine: &[u8; wire::AUTH_LEN],
    welcome: &Hello,
) -> std::result::Result<Vec<u8>, String> {
    let (fabric, me, them) = (&node.fabric_name, &node.me, &peer.id);
    match (&node.keys, &node.secret) {
        (Some(keys), _) => auth::handshake::dialer_signature(
            keys,
            fabric,
            me,
            them,
            mine,
            welcome.identity.as_ref(),
        )
        .map(|s| s.to_vec()),
        (None, Some(secret)) => {
            auth::handshake::dialer_proof(secret, fabric, me, them, mine, welcome.auth.as_ref())
                .map(|p| p.to_vec())
        }
        (None, None) => Err("no key to prove".into()),
    }
}

/// The acceptor's answer to our hello: its Welcome from the expected node, or why not.
fn read_welcome(
    node: &NodeInner,
    peer: &Peer,
    addr: SocketAddr,
    answer: &Header,
    body: &[u8],
) -> Result<Hello> {
    let refused = |reason: String| Error::Rejected { reason };
    let welcome = match answer.kind {
        FrameKind::Welcome => {
            wire::decode_hello(FrameKind::Welcome, body).map_err(|e| Error::Protocol {
                peer: peer.id.clone(),
                source: e,
            })?
        }
        FrameKind::Reject => {
            return Err(refused(format!(
                "{} refused the connection: {}",
                peer.id,
                String::from_utf8_lossy(body)
            )))
        }
        other => {
            return Err(refused(format!(
                "{} answered the hello with {other:?}",
                peer.id
            )))
        }
    };
    if welcome.fabric != node.fabric_name || welcome.node != peer.id {
        return Err(refused(format!(
            "{addr} answered as node `{}` of fabric `{}`, expected `{}` of `{}`",
            welcome.node, welcome.fabric, peer.id, node.fabric_name
        )));
    }
    Ok(welcome)
}

fn spawn_reader(node: &Arc<NodeInner>, conn: &Arc<Conn>, reader: Reader) -> Result<()> {
    let (node, conn2) = (Arc::clone(node), Arc::clone(conn));
    let name = format!("hf-rx-{}", conn.peer);
    super::receive::spawn_reader_thread(name, "spawning a reader thread", move || {
        read_loop(node, conn2, reader)
    })
}
