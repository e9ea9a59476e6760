//! [`Endpoint`]: a sender's handle on one destination, as UCX's `ucp_ep` or an iceoryx2
//! publisher is. [`Fabric::send`] resolves the peer, the zone check, the data type's policy,
//! the constraints and the route on every call; an endpoint resolves them once and reuses
//! them, so a stream of sends to one destination pays only for its transfers. After a 1 MiB
//! copy has pushed the node's state out of the caches, that resolution costs microseconds.
//!
//! An endpoint resolves again at its next call once a policy or multipath set changed
//! ([`Fabric::configure_data_type`], [`Fabric::configure_multipath`]) or [`ENDPOINT_REPLAN`]
//! passed (so that it follows route changes, as the route cache does); it looks its loan
//! link up again once that link died. Failover inside a transfer is the transfer's own, as
//! for every send.

use super::loan::loan_on;
use super::{Fabric, SendOptions, SendPlan, SendReport};
use crate::buffer::{LoanMem, LoanedBuf};
use crate::error::Result;
use crate::runtime::{Conn, Lane, PendingSend, SendSource};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an endpoint uses what it resolved before resolving it again.
pub const ENDPOINT_REPLAN: Duration = Duration::from_millis(100);

/// Sends to one destination with options fixed at creation; see the module docs.
///
/// ```no_run
/// # fn main() -> hyperfabric::Result<()> {
/// # let fabric = hyperfabric::Fabric::from_config_file("examples/local.toml")?.node("node-a").start()?;
/// let mut ep = fabric.endpoint("node-b", hyperfabric::SendOptions::new())?;
/// for i in 0..100u8 {
///     let mut buf = ep.loan(1 << 20)?; // a slot of the shared-memory pool when there is one
///     buf.fill(i);
///     ep.send_loaned(buf)?;
/// }
/// # Ok(()) }
/// ```
pub struct Endpoint<'f> {
    fabric: &'f Fabric,
    dst: Arc<str>,
    /// The options as the caller gave them (the plan holds them with the policy applied).
    opts: SendOptions,
    plan: SendPlan,
    planned_at: Instant,
    /// The direct link loans come from, once one was asked for.
    link: Option<Arc<Conn>>,
}

impl Fabric {
    /// An [`Endpoint`] for sends to `dst` with `opts`. Fails as a send would (unknown node,
    /// isolation zones, constraints no route meets, no route).
    pub fn endpoint(&self, dst: &str, opts: SendOptions) -> Result<Endpoint<'_>> {
        let plan = self.plan(dst, opts.clone())?;
        Ok(Endpoint {
            fabric: self,
            dst: dst.into(),
            opts,
            plan,
            planned_at: Instant::now(),
            link: None,
        })
    }
}

impl Endpoint<'_> {
    /// The destination.
    pub fn destination(&self) -> &str {
        &self.dst
    }

    /// The plan, resolved again first if it went stale.
    fn current(&mut self) -> Result<&SendPlan> {
        let now = Instant::now();
        let stale = self.plan.generation != self.fabric.generation.load(Ordering::Acquire)
            || now.duration_since(self.planned_at) >= ENDPOINT_REPLAN;
        if stale {
            self.plan = self.fabric.plan(&self.dst, self.opts.clone())?;
            self.planned_at = now;
            // The priority may have moved to another lane.
            self.link = None;
        }
        Ok(&self.plan)
    }

    fn start<'a>(&mut self, source: SendSource<'a>) -> Result<PendingSend<'a>> {
        let fabric = self.fabric;
        let plan = self.current()?;
        let paths = plan.paths.renewed(Instant::now());
        PendingSend::start(
            &fabric.inner,
            Arc::clone(&plan.peer),
            source,
            plan.opts.clone(),
            paths,
        )
    }

    /// As [`Fabric::start_send`] to this endpoint's destination.
    pub fn start_send<'a>(&mut self, data: &'a [u8]) -> Result<PendingSend<'a>> {
        self.start(SendSource::Bytes(data))
    }

    /// As [`Fabric::send`] (without the parameter cache's `transform = cache`, which keeps
    /// its own per-destination index: use [`Fabric::send`] for that).
    pub fn send(&mut self, data: &[u8]) -> Result<SendReport> {
        self.start_send(data)?.wait()
    }

    /// As [`Fabric::loan`] for this endpoint's destination, from the pool of the link its
    /// sends take (with QoS on, `high` and `ultra_high` have their own link and pool, which
    /// [`Fabric::loan`] does not know of); the link is looked up once.
    pub fn loan(&mut self, len: usize) -> Result<LoanedBuf> {
        self.current()?;
        if len > self.fabric.inner.tuning.buffer_pool_slot_bytes {
            let dst = Arc::clone(&self.dst);
            return Ok(LoanedBuf::new(dst, len, LoanMem::Heap(vec![0; len])));
        }
        let tuning = &self.fabric.inner.tuning;
        let timeout = Duration::from_millis(tuning.send_timeout_ms);
        // The lane this endpoint's sends take (urgent priorities have their own link when
        // QoS is on): a slot of that link's pool goes by descriptor.
        let lane = Lane::of(self.plan.opts.priority, tuning.qos_enabled);
        let link = match self.link.as_ref().filter(|c| c.is_alive()) {
            Some(c) => Arc::clone(c),
            None => {
                let c = self.fabric.inner.connection_to(
                    &self.plan.peer,
                    lane,
                    Instant::now() + timeout,
                )?;
                self.link = Some(Arc::clone(&c));
                c
            }
        };
        loan_on(&link, Arc::clone(&self.dst), len, timeout)
    }

    /// As [`Fabric::start_send_loaned`]. The buffer must have been loaned for this
    /// endpoint's destination.
    pub fn start_send_loaned(&mut self, buf: LoanedBuf) -> Result<PendingSend<'static>> {
        if buf.dst != self.dst {
            return Err(crate::error::Error::InvalidArgument(format!(
                "a buffer loaned for `{}` sent through the endpoint for `{}`",
                buf.dst, self.dst
            )));
        }
        self.start(SendSource::Loaned(buf))
    }

    /// As [`Fabric::send_loaned`].
    pub fn send_loaned(&mut self, buf: LoanedBuf) -> Result<SendReport> {
        self.start_send_loaned(buf)?.wait()
    }
}
