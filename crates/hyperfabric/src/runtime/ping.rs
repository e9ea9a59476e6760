//! Latency probes: ping/pong over a connection, timed on the caller's thread.

use super::{idle, Conn, Lane, NodeInner, Peer};
use crate::error::{Error, Result};
use crate::transport::ring_link::ShmRx;
use crate::transport::TransportKind;
use crate::wire::{FrameKind, Header};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Figures of a ping run. Latencies are one-way (half the round trip), in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingStats {
    pub peer: String,
    pub transport: TransportKind,
    pub size_bytes: usize,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
    pub median_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub stddev_ns: f64,
    pub rtt_median_ns: u64,
}

impl PingStats {
    /// Computes the figures from one-way samples (sorted in place).
    pub fn from_samples(peer: &str, size: usize, sent: u64, samples: &mut [u64]) -> PingStats {
        samples.sort_unstable();
        let n = samples.len();
        // Nearest-rank percentile in integer arithmetic (floats misround 99.9% of 1000).
        let pct = |per_mille: usize| -> u64 {
            if n == 0 {
                return 0;
            }
            let rank = (per_mille * n).div_ceil(1000);
            samples[rank.clamp(1, n) - 1]
        };
        let mean = if n == 0 {
            0.0
        } else {
            samples.iter().map(|&s| s as f64).sum::<f64>() / n as f64
        };
        let var = if n < 2 {
            0.0
        } else {
            samples
                .iter()
                .map(|&s| (s as f64 - mean).powi(2))
                .sum::<f64>()
                / (n - 1) as f64
        };
        let received = n as u64;
        let lost = sent.saturating_sub(received);
        PingStats {
            peer: peer.to_owned(),
            transport: TransportKind::Tcp,
            size_bytes: size,
            sent,
            received,
            lost,
            loss_pct: if sent == 0 {
                0.0
            } else {
                lost as f64 * 100.0 / sent as f64
            },
            min_ns: samples.first().copied().unwrap_or(0),
            max_ns: samples.last().copied().unwrap_or(0),
            mean_ns: mean,
            median_ns: pct(500),
            p99_ns: pct(990),
            p999_ns: pct(999),
            stddev_ns: var.sqrt(),
            rtt_median_ns: pct(500) * 2,
        }
    }
}

/// The reading half a pinging thread holds for its run, if any.
enum Held<'r, 'c> {
    /// The shared-memory ring's consumer.
    Ring(&'r mut ShmRx),
    /// A caller-polled TCP stream.
    Stream(&'r mut super::tcp_poll::Hold<'c>),
    Nothing,
}

/// How to ping.
#[derive(Debug, Clone, Copy)]
pub struct PingPlan {
    pub size: usize,
    pub count: u64,
    pub warmup: u64,
    pub interval: Duration,
    pub timeout: Duration,
    pub priority: crate::types::Priority,
}

impl NodeInner {
    /// Pings `peer`; returns the figures and the one-way samples (sorted, nanoseconds).
    pub fn ping(self: &Arc<Self>, peer: &Peer, plan: PingPlan) -> Result<(PingStats, Vec<u64>)> {
        let max = self.limits.max_payload as usize;
        if plan.size > max {
            return Err(Error::InvalidArgument(format!(
                "ping size {} exceeds the frame limit of {max} bytes",
                plan.size
            )));
        }
        let payload = vec![0xA5u8; plan.size];
        let mut samples = Vec::with_capacity(plan.count.min(10_000_000) as usize);
        let lane = Lane::of(plan.priority, self.tuning.qos_enabled);
        let mut conn = self.connection_to(peer, lane, Instant::now() + plan.timeout)?;
        let mut last_err = None;
        let mut i = 0;
        while i < plan.warmup + plan.count {
            if !conn.is_alive() {
                i += 1;
                conn = match self.connection_to(peer, lane, Instant::now() + plan.timeout) {
                    Ok(c) => c,
                    Err(e) => {
                        last_err = Some(e);
                        continue;
                    }
                };
            }
            self.ping_run(&conn, &plan, &payload, &mut i, &mut samples);
        }
        self.metrics
            .link(peer.key, &peer.id)
            .on_pings(plan.count, &samples);
        if samples.is_empty() && plan.count > 0 {
            return Err(last_err.unwrap_or_else(|| Error::Timeout {
                what: format!("every ping to `{}`", peer.id),
                after: plan.timeout,
            }));
        }
        let mut stats = PingStats::from_samples(&peer.id, plan.size, plan.count, &mut samples);
        stats.transport = conn.transport();
        if stats.received > 0 {
            self.observe_link(&peer.id, stats.median_ns as f64, Instant::now());
        }
        Ok((stats, samples))
    }

    /// Pings on `conn` from iteration `*i` until the plan is done or the connection dies.
    fn ping_run(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        plan: &PingPlan,
        payload: &[u8],
        i: &mut u64,
        samples: &mut Vec<u64>,
    ) {
        // Back-to-back pings over shared memory: this thread owns the ring's consumer for the
        // whole run, so the link's reader thread sleeps on the lock instead of competing for
        // the pongs (and for a core) at every round trip.
        let mut rx = (conn.is_shm() && plan.interval.is_zero()).then(|| conn.shm_rx.lock());
        // The same over a caller-polled TCP link: this thread reads the socket itself.
        let polls = plan.interval.is_zero();
        let mut stream = polls
            .then(|| super::tcp_poll::Hold::take(conn, plan.timeout, true))
            .flatten();
        let mut scratch = Vec::new();
        while *i < plan.warmup + plan.count && conn.is_alive() {
            if polls && rx.is_none() && stream.is_none() {
                stream = super::tcp_poll::Hold::take(conn, plan.timeout, false);
            }
            let held = match (rx.as_mut().and_then(|g| g.as_mut()), stream.as_mut()) {
                (Some(consumer), _) => Held::Ring(consumer),
                (None, Some(hold)) => Held::Stream(hold),
                (None, None) => Held::Nothing,
            };
            let rtt = match self.ping_once(conn, payload, plan, held, &mut scratch) {
                Ok(rtt) => rtt,
                Err(why) => {
                    // Closing takes the reading half's lock: let go of it first.
                    drop(rx);
                    match stream.take() {
                        Some(hold) => {
                            drop(hold);
                            super::tcp_poll::end_polled(self, conn, &why);
                        }
                        None => super::shmlink::end_link(self, conn, &why),
                    }
                    return;
                }
            };
            if *i >= plan.warmup {
                if let Some(rtt) = rtt {
                    samples.push((rtt.as_nanos() / 2) as u64);
                }
            }
            *i += 1;
            if !plan.interval.is_zero() {
                std::thread::sleep(plan.interval);
            }
        }
    }

    /// One round trip; `None` when no pong came back in time. `held`: the reading half this
    /// thread holds, if any; `Err`: that half failed and the link must end.
    fn ping_once(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        payload: &[u8],
        plan: &PingPlan,
        held: Held<'_, '_>,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<Duration>, String> {
        let seq = self.next_ping_seq();
        let mut h = Header::new(FrameKind::Ping);
        h.src = self.my_key;
        h.dst = conn.peer_key;
        h.transfer_id = seq;
        h.priority = plan.priority;
        let start = Instant::now();
        if conn.send(&h, payload).is_err() {
            return Ok(None);
        }
        let deadline = start + plan.timeout;
        let answered = || conn.pong_seq.load(Ordering::Acquire) >= seq;
        let done = match held {
            Held::Ring(rx) => self.await_pong_held(conn, rx, seq, deadline, scratch)?,
            Held::Stream(hold) => {
                self.await_pong_polled(conn, hold, answered, deadline, scratch)?
            }
            Held::Nothing if conn.is_shm() => self.await_pong_shm(conn, seq, deadline, scratch),
            Held::Nothing => idle::wait_until(
                self.tuning.idle_strategy,
                deadline,
                &conn.pong_gate,
                answered,
            ),
        };
        Ok(done.then(|| start.elapsed()))
    }

    /// Waits for pong `seq` reading the ring through `rx`, held by this thread: no lock, no
    /// hand-off to or wake-up of the reader thread in the round trip.
    fn await_pong_held(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        rx: &mut ShmRx,
        seq: u64,
        deadline: Instant,
        scratch: &mut Vec<u8>,
    ) -> Result<bool, String> {
        let mut spins: u32 = 0;
        let answered = || conn.pong_seq.load(Ordering::Acquire) >= seq;
        while !answered() {
            // The reader thread waits for the lock we hold: a ring error is ours to report.
            // Stop right after our pong: looking past it would wait for the next record's
            // cache line (which the peer just wrote) inside the timed round trip.
            // The empty poll is one load: the spin stays short, so a pong is seen sooner.
            if rx.ready() {
                super::shmlink::drain_until(self, conn, rx, scratch, &answered)?;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && Instant::now() >= deadline {
                return Ok(false);
            }
            std::hint::spin_loop();
        }
        Ok(true)
    }

    /// Waits for pong `seq` reading the shared-memory ring on this thread whenever the reader
    /// thread is not: no hand-off to, or wake-up of, the reader thread on the latency path.
    fn await_pong_shm(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        seq: u64,
        deadline: Instant,
        scratch: &mut Vec<u8>,
    ) -> bool {
        let mut spins: u32 = 0;
        while conn.pong_seq.load(Ordering::Acquire) < seq {
            super::drive::drive(self, conn, scratch);
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && Instant::now() >= deadline {
                return false;
            }
            std::hint::spin_loop();
        }
        true
    }

    /// A pong arrived on `conn`.
    pub(super) fn on_pong(&self, conn: &Conn, seq: u64) {
        conn.pong_seq.fetch_max(seq, Ordering::AcqRel);
        // Pingers on a shared-memory link poll `pong_seq` and never sleep on the gate (one
        // that slept through a switch from TCP re-checks within its 100 ms slice): spare the
        // lock and notify on every pong.
        if !conn.is_shm() {
            idle::notify(&conn.pong_gate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_consistent() {
        let mut s: Vec<u64> = (1..=1000).rev().collect();
        let p = PingStats::from_samples("b", 64, 1010, &mut s);
        assert_eq!(
            (p.min_ns, p.max_ns, p.median_ns, p.p99_ns, p.p999_ns),
            (1, 1000, 500, 990, 999)
        );
        assert_eq!(p.lost, 10);
        assert!((p.loss_pct - 0.990099).abs() < 1e-3);
        assert!((p.mean_ns - 500.5).abs() < 1e-9);
        assert!((p.stddev_ns - 288.8194).abs() < 1e-3);
        let empty = PingStats::from_samples("b", 64, 0, &mut []);
        assert_eq!(empty.median_ns, 0);
    }
}
