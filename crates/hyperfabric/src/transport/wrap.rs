//! Wrappers around any sending half of a link, in the manner of smoltcp's middleware devices
//! and Aeron's loss generators: [`Faulty`] applies the fault rules (`transport::fault`) to
//! the frames it passes on, [`Paced`] holds a link to `throttle_gbps`. Either with its knob
//! off is a plain pass-through (one branch per frame).

use super::fault::FaultInjector;
use super::link::{frame_kind, LinkTx, Sent};
use super::pacer::Pacer;
use super::TransportKind;
use crate::wire::HEADER_LEN;
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// Fault injection on the frames written to one neighbour: dropped, corrupted, delayed or
/// the link cut, as the rules say (see README, "Fault injection").
///
/// A delay is served with the link held (the writer lock of its connection), as pacing is:
/// the frames behind a delayed one wait for it, in order, as on a slow wire.
pub struct Faulty<L> {
    inner: L,
    /// The injector and the neighbour's name (rules match on it); None: faults off.
    faults: Option<(Arc<FaultInjector>, String)>,
}

impl<L: LinkTx> Faulty<L> {
    /// `inner` under `faults` for frames written to `peer` (None, or no rule that could ever
    /// apply to `peer`: faults off).
    pub fn new(inner: L, faults: Option<&Arc<FaultInjector>>, peer: &str) -> Faulty<L> {
        let faults = faults
            .filter(|f| f.may_apply_to(peer))
            .map(|f| (Arc::clone(f), peer.to_owned()));
        Faulty { inner, faults }
    }

    pub fn get_ref(&self) -> &L {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut L {
        &mut self.inner
    }
}

impl<L: LinkTx> LinkTx for Faulty<L> {
    fn kind(&self) -> TransportKind {
        self.inner.kind()
    }

    /// A cut fails the write (`ConnectionAborted`): the connection that sees it ends the link.
    fn send(&mut self, raw: &[u8; HEADER_LEN], payload: &[u8]) -> io::Result<Sent> {
        let Some((faults, peer)) = &self.faults else {
            return self.inner.send(raw, payload);
        };
        let Some(kind) = frame_kind(raw) else {
            return self.inner.send(raw, payload);
        };
        let inner = &mut self.inner;
        let mut sent = Sent::Dropped;
        faults.write_through(
            peer,
            kind,
            *raw,
            payload,
            || {},
            |raw, payload| {
                sent = inner.send(raw, payload)?;
                Ok(())
            },
        )?;
        Ok(sent)
    }

    fn close(&mut self, goodbye: Option<(&[u8; HEADER_LEN], &[u8])>) {
        self.inner.close(goodbye);
    }
}

/// A link paced to a rate: after each frame written the writer sleeps as long as the frame
/// would take on a link of that speed (past a short burst), with the link held, since the
/// link itself is busy for that long.
pub struct Paced<L> {
    inner: L,
    pacer: Option<Pacer>,
}

impl<L: LinkTx> Paced<L> {
    /// `inner` paced to `gbps` (0: full speed).
    pub fn new(inner: L, gbps: f64) -> Paced<L> {
        Paced {
            inner,
            pacer: Pacer::new(gbps, Instant::now()),
        }
    }

    pub fn get_ref(&self) -> &L {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut L {
        &mut self.inner
    }
}

impl<L: LinkTx> LinkTx for Paced<L> {
    fn kind(&self) -> TransportKind {
        self.inner.kind()
    }

    fn send(&mut self, raw: &[u8; HEADER_LEN], payload: &[u8]) -> io::Result<Sent> {
        let sent = self.inner.send(raw, payload)?;
        if let (Sent::Written, Some(pacer)) = (sent, &mut self.pacer) {
            let pause = pacer.delay(HEADER_LEN + payload.len(), Instant::now());
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        Ok(sent)
    }

    fn close(&mut self, goodbye: Option<(&[u8; HEADER_LEN], &[u8])>) {
        self.inner.close(goodbye);
    }
}
