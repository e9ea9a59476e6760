//! The acceptor's side of a connection: TLS when the fabric wants it, the fabric handshake
//! (see `handshake.rs` for the exchange), then the read loop.
//!
//! Until the peer is authenticated it gets little: one socket descriptor (plain TCP), one
//! deadline for the whole handshake (`handshake_timeout_ms`, not a timeout per read), no
//! read buffer, and frames of at most [`wire::MAX_HANDSHAKE_PAYLOAD`] bytes (a header that
//! announces more is refused before anything is allocated). It counts against
//! `max_pending_handshakes` until then; when that many are pending, the oldest is cut to make
//! room, so strangers can delay a member's connection by at most one handshake but never keep
//! it out (a member's handshake takes a round trip, a stranger's runs to the deadline).

use super::conn::{body, read_frame, read_loop, Conn, Lane, READ_BUFFER_BYTES};
use super::handshake::{reject, send, send_reject_code};
use super::{NodeInner, Peer};
use crate::auth::{self, handshake::Acceptor};
use crate::transport::deadline::{Budget, Deadline};
use crate::transport::tcp;
use crate::transport::tls::{LinkReader, LinkWriter, TlsSession};
use crate::wire::{self, FrameKind};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

impl NodeInner {
    pub(super) fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        for stream in listener.incoming() {
            if self.is_shutting_down() {
                break;
            }
            match stream {
                Ok(stream) => self.on_accept(stream),
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    fn on_accept(self: &Arc<Self>, stream: TcpStream) {
        let peer_addr = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into());
        let open = self.all_conns.lock().len();
        let inbound = self.inbound.fetch_add(1, Ordering::AcqRel);
        let (max, max_pending) = (
            self.tuning.max_connections,
            self.tuning.max_pending_handshakes,
        );
        let admitted = if open.max(inbound) >= max {
            Err(format!("limit of {max} connections reached"))
        } else {
            self.pending
                .admit(&stream, max_pending)
                .map_err(|e| format!("cannot track the handshake: {e}"))
        };
        let slot = match admitted {
            Ok((id, evicted)) => {
                if evicted {
                    tracing::warn!(%peer_addr, "{max_pending} connections in handshake (max_pending_handshakes): cut the oldest to make room");
                }
                PendingSlot(Arc::clone(self), id)
            }
            Err(log) => {
                self.inbound.fetch_sub(1, Ordering::AcqRel);
                let open = open.max(inbound);
                self.stats
                    .connections_rejected
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer_addr, open, "refusing connection: {log}");
                reject(&stream, "too many connections");
                return;
            }
        };
        let node = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("hf-conn".into())
            .spawn(move || {
                serve_accepted(Arc::clone(&node), stream, peer_addr, slot);
                node.inbound.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            self.inbound.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("cannot spawn a connection thread: {e}");
        }
    }
}

/// Accepted connections still in their handshake, oldest first, with a handle to cut each.
#[derive(Default)]
pub(super) struct PendingTable {
    socks: Mutex<VecDeque<(u64, TcpStream)>>,
    next: AtomicU64,
}

impl PendingTable {
    /// Registers `stream`; with `max` already pending, the oldest is shut down first (its
    /// thread then fails its handshake at once). Returns the new entry's id and whether one
    /// was evicted.
    pub(super) fn admit(&self, stream: &TcpStream, max: usize) -> std::io::Result<(u64, bool)> {
        let handle = stream.try_clone()?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut socks = self.socks.lock();
        let mut evicted = false;
        while socks.len() >= max.max(1) {
            if let Some((_, old)) = socks.pop_front() {
                let _ = old.shutdown(Shutdown::Both);
                evicted = true;
            }
        }
        socks.push_back((id, handle));
        Ok((id, evicted))
    }

    fn done(&self, id: u64) {
        self.socks.lock().retain(|(i, _)| *i != id);
    }
}

/// One accepted connection's place in the [`PendingTable`] until dropped.
pub(super) struct PendingSlot(pub(super) Arc<NodeInner>, pub(super) u64);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.pending.done(self.1);
    }
}

/// The link while the handshake runs: the bare socket, or a TLS session over it.
enum Link {
    Plain,
    Tls {
        tx: LinkWriter,
        rx: LinkReader,
        session: Arc<TlsSession>,
    },
}

/// Runs on its own thread for an accepted connection: handshake, then the read loop.
pub(super) fn serve_accepted(
    node: Arc<NodeInner>,
    stream: TcpStream,
    peer_addr: String,
    slot: PendingSlot,
) {
    let socket = tcp::apply(&stream, &node.tuning);
    tcp::set_mss(&socket2::SockRef::from(&stream), node.segment.mss);
    let Some((link, peer, observer)) = handshake(&node, &stream, &peer_addr) else {
        return;
    };
    drop(slot);
    let _ = stream.set_read_timeout(None);
    let _ = stream.set_write_timeout(None);
    let ends = match link {
        Link::Plain => stream.try_clone().and_then(|tx| {
            Ok((
                LinkWriter::Plain(tx),
                LinkReader::Plain(stream.try_clone()?),
            ))
        }),
        Link::Tls { tx, rx, .. } => Ok((tx, rx)),
    };
    let conn = ends.and_then(|(tx, rx)| {
        Conn::new(&node, &peer, &stream, tx, socket, Lane::Bulk).map(|c| (c, rx))
    });
    let (conn, rx) = match conn {
        Ok(c) => c,
        Err(e) => return tracing::warn!(%peer_addr, "handshake failed: {e}"),
    };
    // The connection keeps its own handles: one descriptor fewer while it lives.
    drop(stream);
    node.stats
        .connections_accepted
        .fetch_add(1, Ordering::Relaxed);
    if join(&node, &conn, &peer, observer, &peer_addr) {
        read_loop(node, conn, BufReader::with_capacity(READ_BUFFER_BYTES, rx));
    }
}

/// TLS when the fabric wants it, then the fabric handshake, within one handshake deadline:
/// the link, the peer and whether it is an observer; `None` when refused (the refusal is
/// counted, logged and sent, and the socket shut down).
fn handshake(node: &NodeInner, stream: &TcpStream, peer_addr: &str) -> Option<(Link, Peer, bool)> {
    let budget = Budget::starting_now(Duration::from_millis(node.tuning.handshake_timeout_ms));
    let refuse = |why: &str| {
        node.stats
            .connections_rejected
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer_addr, "refusing connection: {why}");
    };
    let mut link = match secure_acceptor(node, stream, budget) {
        Ok(link) => link,
        Err((why, plain)) => {
            refuse(&why);
            // A plain-text peer understands a Reject frame; a TLS one got a TLS alert.
            if plain {
                reject(stream, &why);
            } else {
                let _ = stream.shutdown(Shutdown::Both);
            }
            return None;
        }
    };
    let greeted = match &mut link {
        Link::Plain => {
            let mut rx = Deadline::new(stream, stream, budget);
            let mut tx = Deadline::new(stream, stream, budget);
            greet_as_acceptor(node, &mut tx, &mut rx, None)
        }
        Link::Tls { tx, rx, session } => {
            let mut rx = Deadline::new(rx, stream, budget);
            let mut tx = Deadline::new(tx, stream, budget);
            greet_as_acceptor(node, &mut tx, &mut rx, Some(session))
        }
    };
    match greeted {
        Ok((peer, observer)) => Some((link, peer, observer)),
        Err(Refused { why, code }) => {
            refuse(&why);
            match &mut link {
                Link::Plain => send_reject_code(&mut &*stream, &why, code),
                Link::Tls { tx, .. } => send_reject_code(tx, &why, code),
            }
            let _ = stream.shutdown(Shutdown::Both);
            None
        }
    }
}

/// Makes an accepted, greeted connection the node's: an observer's (outside the peer table
/// and the topology, never routed through: observer.rs) or a member's. False when this node
/// serves the most observers it may (the connection is closed).
fn join(node: &Arc<NodeInner>, conn: &Arc<Conn>, peer: &Peer, observer: bool, addr: &str) -> bool {
    if observer {
        if !node.observers.admit(conn) {
            conn.close("this node serves the most observers it may");
            return false;
        }
        tracing::info!(observer = %peer.id, peer_addr = %addr, "an observer joined");
    } else {
        tracing::debug!(peer = %peer.id, peer_addr = %addr, "accepted connection");
        node.adopt(Arc::clone(conn));
    }
    true
}

/// The acceptor's link. Err: (why, whether the peer speaks plain frames).
fn secure_acceptor(
    node: &NodeInner,
    stream: &TcpStream,
    budget: Budget,
) -> std::result::Result<Link, (String, bool)> {
    // A plain frame starts with the magic, a TLS client hello with record type 22.
    let mut first = [0u8; 4];
    let _ = stream.set_read_timeout(Some(budget.left().max(Duration::from_millis(1))));
    let peeked = match stream.peek(&mut first) {
        Ok(n) => n,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            return Err((format!("no hello: {}", budget.expired()), false))
        }
        Err(e) => return Err((format!("no hello: {e}"), false)),
    };
    let plain_peer = peeked == 4 && first == wire::MAGIC.to_le_bytes();
    let Some(tls) = &node.tls else {
        if peeked > 0 && first[0] == 0x16 {
            return Err((
                "the peer speaks TLS but this node has encryption_enabled = false".into(),
                false,
            ));
        }
        return Ok(Link::Plain);
    };
    if plain_peer {
        return Err((
            "the peer speaks plain TCP but this fabric requires TLS (encryption_enabled = true)"
                .into(),
            true,
        ));
    }
    let conn = rustls::ServerConnection::new(Arc::clone(&tls.server))
        .map_err(|e| (format!("TLS: {e}"), false))?;
    let (session, rx) = TlsSession::handshake(stream, conn.into(), Some(budget))
        .map_err(|e| (format!("TLS handshake failed: {e}"), false))?;
    Ok(Link::Tls {
        tx: LinkWriter::Tls(Arc::clone(&session)),
        rx: LinkReader::Tls(rx),
        session,
    })
}

/// Why the acceptor refuses a connection, and the `Reject` code that says what kind.
struct Refused {
    why: String,
    code: u64,
}

impl From<String> for Refused {
    fn from(why: String) -> Refused {
        Refused {
            why,
            code: wire::codes::reject::UNSPECIFIED,
        }
    }
}

impl From<&str> for Refused {
    fn from(why: &str) -> Refused {
        Refused::from(why.to_owned())
    }
}

/// The acceptor's half of the fabric handshake: the peer and whether it is an observer,
/// or why it is refused.
fn greet_as_acceptor(
    node: &NodeInner,
    tx: &mut impl Write,
    rx: &mut impl Read,
    session: Option<&TlsSession>,
) -> std::result::Result<(Peer, bool), Refused> {
    let acceptor = Acceptor {
        fabric: &node.fabric_name,
        me: &node.me,
        secret: node.secret.as_ref(),
        keys: node.keys.as_deref(),
        challenge: auth::challenge(),
    };
    let limits = wire::Limits {
        max_payload: wire::MAX_HANDSHAKE_PAYLOAD,
    };
    let mut payload = Vec::new();
    let header = read_frame(rx, limits, &mut payload).map_err(|e| format!("bad hello: {e}"))?;
    let known = |id: &str, key: u64| {
        node.peer_by_key(wire::node_key(id))
            .is_some_and(|p| p.id == id && p.key == key)
    };
    let greeted = acceptor.on_hello(&header, body(&payload, &header), known)?;
    let peer = match greeted.observer {
        // Not in the peer table: a Peer value for this connection only, with no address.
        true => match node.observers.full() {
            Some(why) => return Err(why.into()),
            None => Peer {
                key: wire::node_key(&greeted.peer),
                id: greeted.peer.clone(),
                addr: None,
            },
        },
        false => node.peer_by_id(&greeted.peer).map_err(|e| e.to_string())?,
    };
    if let Some(session) = session {
        let certs = session.peer_certificates();
        let cert = certs
            .first()
            .ok_or("the peer presented no TLS certificate")?;
        auth::tls::cert_names(cert, &peer.id).map_err(|e| format!("node `{}`: {e}", peer.id))?;
    }
    send(tx, node, peer.key, FrameKind::Welcome, &greeted.welcome)
        .map_err(|e| format!("welcome not sent: {e}"))?;
    if let Some(theirs) = greeted.awaiting_proof {
        let header = read_frame(rx, limits, &mut payload).map_err(|e| {
            format!(
                "node `{}` sent no proof of its key or the secret: {e}",
                peer.id
            )
        })?;
        // A proof checked and found wrong says so (PROOF_REFUSED): the dialer stops re-dialing.
        let code = match header.kind {
            FrameKind::Auth => wire::codes::reject::PROOF_REFUSED,
            _ => wire::codes::reject::UNSPECIFIED,
        };
        acceptor
            .on_proof(
                (&peer.id, greeted.observer),
                &theirs,
                &header,
                body(&payload, &header),
            )
            .map_err(|why| Refused { why, code })?;
    }
    Ok((peer, greeted.observer))
}
