//! Observers: monitors that join a running fabric without a node entry (their Hello carries
//! `flags::OBSERVER`). They prove the same credentials a member proves (the fabric secret,
//! a TLS certificate for their id; with `node_keys` only members' keys are known, so
//! observers are refused there), but they are no
//! members: they live in this bounded table, never in the peer table or the topology, so
//! nothing is routed through or relayed to them. Their connections are answered for Ping
//! and MetricsRequest only; anything else is refused (`RefusalCode::ObserverReadOnly`) and
//! counted in `observer_refusals`.

use super::{Conn, NodeInner};
use crate::core::answer;
use crate::wire::{FrameKind, Header, RefusalCode};
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Most observer connections a node holds at once (a monitor uses one or two).
pub const MAX_OBSERVERS: usize = 16;

/// The live observer connections of one node.
#[derive(Default)]
pub(super) struct Observers {
    conns: Mutex<Vec<Arc<Conn>>>,
}

impl Observers {
    /// Why a new observer is refused before its Welcome, if the table is full.
    pub(super) fn full(&self) -> Option<String> {
        (self.conns.lock().len() >= MAX_OBSERVERS)
            .then(|| format!("this node already serves {MAX_OBSERVERS} observers"))
    }

    /// Takes `conn` in; false when the table filled since `full` was asked.
    pub(super) fn admit(&self, conn: &Arc<Conn>) -> bool {
        let mut conns = self.conns.lock();
        if conns.len() >= MAX_OBSERVERS {
            return false;
        }
        conn.mark_observer();
        conns.push(Arc::clone(conn));
        true
    }

    /// Drops `conn`; true when no other observer connection of its id is left.
    pub(super) fn forget(&self, conn: &Arc<Conn>) -> bool {
        let mut conns = self.conns.lock();
        conns.retain(|c| !Arc::ptr_eq(c, conn));
        !conns.iter().any(|c| c.peer_key == conn.peer_key)
    }

    pub(super) fn close_all(&self) {
        for c in self.conns.lock().drain(..) {
            c.close("node shutting down");
        }
    }
}

impl NodeInner {
    /// Whether a frame on an observer's connection goes on to the member dispatch: pings
    /// of this node and metrics requests (answered there, as a member's are), Close and the
    /// handshake kinds (which end the connection there, as on any other). The rest is
    /// refused here (Data, Meta, a Ping of another node) or only counted (Ack, Nack), and
    /// answers to nothing this node asked an observer (Pong, MetricsReply) are dropped.
    pub(super) fn observer_may(&self, conn: &Conn, h: &Header) -> bool {
        match h.kind {
            FrameKind::Ping => {
                if h.dst == self.my_key {
                    return true;
                }
            }
            FrameKind::Data | FrameKind::Meta | FrameKind::Ack | FrameKind::Nack => {}
            FrameKind::Pong | FrameKind::MetricsReply => return false,
            FrameKind::MetricsRequest
            | FrameKind::Close
            | FrameKind::Hello
            | FrameKind::Welcome
            | FrameKind::Reject
            | FrameKind::ShmOffer
            | FrameKind::ShmAccept
            | FrameKind::Auth => return true,
        }
        self.stats.observer_refusals.fetch_add(1, Ordering::Relaxed);
        // Refusing a refusal would answer forever: Acks and Nacks are only counted.
        if matches!(h.kind, FrameKind::Data | FrameKind::Meta | FrameKind::Ping) {
            self.refuse_observer(conn, h);
        }
        false
    }

    fn refuse_observer(&self, conn: &Conn, h: &Header) {
        let why = "an observer may only ping this node and ask for its metrics";
        tracing::debug!(observer = %conn.peer, kind = ?h.kind, "refused: {why}");
        let n = answer::refusal(self.my_key, h, RefusalCode::ObserverReadOnly);
        let _ = conn.send(&n, why.as_bytes());
    }
}
