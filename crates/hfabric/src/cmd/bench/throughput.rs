//! Throughput: for each message size, a stream of transfers (`--inflight` at a time, each
//! acknowledged end to end) for a fixed time, through one [`hyperfabric::Endpoint`] (planned
//! once, as a streaming application sends) and waited for with `finish()`.

use super::report::{ThroughputResult, ThroughputTest};
use super::{progress, Args, Target};
use crate::common::CliResult;
use hyperfabric::config::ProfileName;
use hyperfabric::{Fabric, PendingSend, SendOptions};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub fn run(t: &Target, a: &Args) -> CliResult<ThroughputTest> {
    let profile = a.profile.unwrap_or(ProfileName::HighThroughput);
    let fabric = t.client(profile)?;
    let mut results = Vec::new();
    for &size in &a.sizes {
        let bar = progress(
            a,
            (a.seconds_per_size * 10.0) as u64,
            &format!("throughput {size} B"),
        );
        let tick = |elapsed_s: f64| bar.set_position((elapsed_s * 10.0) as u64);
        let opts = a.send_options();
        let spec = StreamSpec {
            size,
            inflight: a.inflight,
            opts: &opts,
            kind: a.payload,
            duration: Duration::from_secs_f64(a.seconds_per_size),
            api: a.api,
        };
        let r = stream(&fabric, &t.to, &spec, &tick)?;
        bar.finish_and_clear();
        results.push(r);
    }
    Ok(ThroughputTest {
        profile,
        transport: super::transport_of(&fabric, &t.to)?,
        compression: a.compression.to_string(),
        priority: a.priority,
        payload: a.payload,
        api: a.api,
        verify_payload: a.verify_payload,
        inflight: a.inflight,
        seconds_per_size: a.seconds_per_size,
        results,
    })
}

/// One stream of the throughput test.
pub struct StreamSpec<'a> {
    pub size: u64,
    pub inflight: usize,
    pub opts: &'a SendOptions,
    pub kind: PayloadKind,
    pub duration: Duration,
    pub api: Api,
}

/// Which send API the throughput test drives.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `Endpoint::start_send(&bytes)`: the fabric copies the message (into the shared-memory pool or
    /// ring, or the socket); the local server reads every byte it receives.
    Copy,
    /// `Endpoint::loan` + `start_send_loaned`: each message is written (every byte, from a private
    /// buffer) into a loaned pool slot; the local server reads every byte it receives.
    Loan,
}

/// Streams `size`-byte messages for `duration`, `inflight` at a time.
pub fn stream(
    fabric: &Fabric,
    to: &str,
    spec: &StreamSpec<'_>,
    tick: &dyn Fn(f64),
) -> CliResult<ThroughputResult> {
    let StreamSpec {
        size,
        inflight,
        opts,
        kind,
        duration,
        api,
    } = *spec;
    let data = match kind {
        PayloadKind::Random => payload(size, 0),
        PayloadKind::Tensor => hyperfabric::compress::samples::float_tensor(size as usize),
        PayloadKind::Text => hyperfabric::compress::samples::text(size as usize),
    };
    let mut ep = fabric.endpoint(to, opts.clone())?;
    let mut pending: VecDeque<PendingSend<'_>> = VecDeque::with_capacity(inflight);
    let mut transfer_ns: Vec<u64> = Vec::new();
    let start = Instant::now();
    let mut last_tick = start;
    while start.elapsed() < duration || !pending.is_empty() {
        if start.elapsed() < duration && pending.len() < inflight {
            let p = match api {
                Api::Copy => ep.start_send(&data)?,
                Api::Loan => {
                    let mut buf = ep.loan(data.len())?;
                    buf.copy_from_slice(&data);
                    ep.start_send_loaned(buf)?
                }
            };
            pending.push_back(p);
            continue;
        }
        if let Some(p) = pending.pop_front() {
            transfer_ns.push(p.finish()?.latency.as_nanos() as u64);
        }
        if last_tick.elapsed() > Duration::from_millis(100) {
            tick(start.elapsed().as_secs_f64());
            last_tick = Instant::now();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(ThroughputResult::new(size, &mut transfer_ns, seconds))
}

/// What the throughput test sends.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// Incompressible bytes.
    Random,
    /// A float32 tensor with structure (compresses well).
    Tensor,
    /// English-like text.
    Text,
}

/// Deterministic, incompressible-looking bytes (a xorshift stream).
pub fn payload(size: u64, seed: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
