//! QoS: one-way latency of ultra_high 64 B pings while a background-priority bulk stream
//! saturates the same link, with QoS on (urgent lane + priority gate) and off, beside the
//! idle figure.

use super::latency::figures;
use super::report::{LatencyFigures, QosTest};
use super::throughput::payload;
use super::{progress, Args, Target};
use crate::common::{apply_overrides, start_client, CliResult};
use hyperfabric::config::ProfileName;
use hyperfabric::{Fabric, PendingSend, PingOptions, Priority, SendOptions};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bulk transfers in flight while pinging.
const BULK_INFLIGHT: usize = 8;
const BULK_BYTES: u64 = 1 << 20;

pub fn run(t: &Target, a: &Args) -> CliResult<QosTest> {
    let profile = a.profile.unwrap_or(ProfileName::HighThroughput);
    let iterations = a.iterations.min(5_000);
    let bar = progress(a, 3, "qos: idle, QoS on, QoS off");
    let on = client(t, profile, true)?;
    let idle_transport = super::transport_of(&on, &t.to)?;
    let idle = pings(&on, &t.to, a, iterations)?;
    bar.inc(1);
    let (loaded_on, bulk_on) = under_load(&on, &t.to, a, iterations)?;
    drop(on);
    bar.inc(1);
    let off = client(t, profile, false)?;
    let (loaded_off, bulk_off) = under_load(&off, &t.to, a, iterations)?;
    bar.finish_and_clear();
    let note = qos_note(idle_transport, &loaded_on, &loaded_off);
    Ok(QosTest {
        profile,
        transport: idle_transport,
        size_bytes: a.size,
        iterations,
        ping_priority: Priority::UltraHigh,
        bulk_priority: Priority::Background,
        idle,
        loaded_qos_on: loaded_on,
        loaded_qos_off: loaded_off,
        bulk_gbit_per_s_qos_on: bulk_on,
        bulk_gbit_per_s_qos_off: bulk_off,
        note,
    })
}

/// Says why QoS on can measure slower than off over shared memory, when it did.
fn qos_note(
    transport: hyperfabric::transport::TransportKind,
    on: &LatencyFigures,
    off: &LatencyFigures,
) -> Option<String> {
    if transport != hyperfabric::transport::TransportKind::Shm || on.p99_ns <= off.p99_ns {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some(format!(
        "over shared memory QoS on gives urgent frames a ring of their own (a second lane with \
         its own reader thread), while with QoS off they queue behind bulk frames in one ring; on \
         {cores} cores the extra reader competes with the bulk stream for CPU, which can cost more \
         than the queueing it saves. QoS pays off where frames share a socket: try --transport tcp"
    ))
}

fn client(t: &Target, profile: ProfileName, qos: bool) -> CliResult<Fabric> {
    let mut cfg = apply_overrides(t.base.clone(), Some(profile), &t.peers)?;
    cfg.tuning.qos_enabled = qos;
    start_client(cfg, &t.from)
}

fn pings(fabric: &Fabric, to: &str, a: &Args, n: u64) -> CliResult<LatencyFigures> {
    let opts = PingOptions::new()
        .size(a.size)
        .priority(Priority::UltraHigh)
        .timeout(Duration::from_secs(2));
    fabric.ping(to, opts.count(a.warmup.clamp(1, 500)))?;
    let (_, samples) = fabric.ping_samples(to, opts.count(n))?;
    figures(&samples, n)
}

/// Pings while another thread keeps `BULK_INFLIGHT` background transfers in flight.
fn under_load(fabric: &Fabric, to: &str, a: &Args, n: u64) -> CliResult<(LatencyFigures, f64)> {
    let stop = AtomicBool::new(false);
    let bulk_bytes = AtomicU64::new(0);
    let data = payload(BULK_BYTES, 3);
    std::thread::scope(|s| {
        let bulk = s.spawn(|| -> CliResult<f64> {
            let start = Instant::now();
            let mut pending: VecDeque<PendingSend<'_>> = VecDeque::new();
            let opts = SendOptions::new().priority(Priority::Background);
            while !stop.load(Ordering::Acquire) || !pending.is_empty() {
                if !stop.load(Ordering::Acquire) && pending.len() < BULK_INFLIGHT {
                    pending.push_back(fabric.start_send(to, &data, opts.clone())?);
                } else if let Some(p) = pending.pop_front() {
                    bulk_bytes.fetch_add(p.wait()?.bytes, Ordering::Relaxed);
                }
            }
            Ok(bulk_bytes.load(Ordering::Relaxed) as f64 * 8.0
                / start.elapsed().as_secs_f64()
                / 1e9)
        });
        // Let the bulk stream fill the socket buffers before measuring.
        std::thread::sleep(Duration::from_millis(300));
        let figs = pings(fabric, to, a, n);
        stop.store(true, Ordering::Release);
        let gbps = bulk
            .join()
            .unwrap_or_else(|_| Err(crate::common::CliError::failed("the bulk thread panicked")));
        Ok((figs?, gbps?))
    })
}
