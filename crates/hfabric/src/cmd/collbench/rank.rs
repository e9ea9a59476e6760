//! One rank of the bench (`--worker FILE --node ID`): runs every size, checks every
//! iteration against the reference, and prints one JSON line per size on stdout.

use super::{Args, Collective};
use crate::common::{apply_overrides, CliError, CliResult};
use hyperfabric::collective::reference::{reduced, value};
use hyperfabric::collective::{bf16, f16, CollectiveError, DType, Element, Group, ReduceOp};
use hyperfabric::config::FabricConfig;
use hyperfabric::{Fabric, PingOptions};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// What one rank measured at one size.
#[derive(Debug, Serialize, Deserialize)]
pub struct RankRow {
    pub size: u64,
    pub count: u64,
    /// Per timed iteration, this rank's time from the call to its return.
    pub times_ns: Vec<u64>,
    /// Elements that differed from the reference over all timed iterations (-1: unchecked).
    pub wrong: i64,
    /// The path the timed calls took (`Group::last_path`).
    pub path: String,
}

/// The bound on the first barriers, while ranks are still starting (a loaded 2-core machine
/// takes seconds to start a few rank processes); a rank that never comes still fails.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A rank's exit code when its port was taken before it bound it (EX_TEMPFAIL).
pub const PORT_TAKEN: u8 = 75;

pub fn rank_name(i: usize) -> String {
    format!("rank-{i}")
}

fn coll(e: CollectiveError) -> CliError {
    CliError::failed(e.to_string())
}

pub fn run(a: &Args, file: &Path, node: &str) -> CliResult {
    let cfg = apply_overrides(FabricConfig::from_file(file)?, Some(a.profile), &[])?;
    let fabric = match Fabric::from_config(cfg)
        .node(node)
        .transport(a.transport.into())
        .start()
    {
        // The launcher's free port was taken between its probe and our bind: say so with
        // PORT_TAKEN, and the launcher starts every rank again on fresh ports.
        Err(hyperfabric::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            return Err(CliError {
                message: format!("{node}'s port was taken before it could bind it: {source}"),
                code: PORT_TAKEN,
            })
        }
        r => r?,
    };
    let ranks: Vec<String> = (0..a.ranks).map(rank_name).collect();
    wait_for_peers(&fabric, &ranks, node)?;
    let mut g = Group::with_options(&fabric, &ranks, a.group_options()).map_err(coll)?;
    // Every link up before the first timed call. A peer that answered our ping may still be
    // waiting for a slower rank to start (or, with --arena, rank 0 for all of them before
    // it sends the arena's name), so the joining barriers get JOIN_TIMEOUT, not --timeout-ms.
    let steady = g.options().timeout;
    g.set_timeout(steady.max(JOIN_TIMEOUT)).map_err(coll)?;
    g.barrier().map_err(coll)?;
    g.barrier().map_err(coll)?;
    g.set_timeout(steady).map_err(coll)?;
    match a.dtype {
        DType::F32 => sizes::<f32>(a, &mut g),
        DType::F64 => sizes::<f64>(a, &mut g),
        DType::F16 => sizes::<f16>(a, &mut g),
        DType::Bf16 => sizes::<bf16>(a, &mut g),
        DType::I32 => sizes::<i32>(a, &mut g),
        DType::I64 => sizes::<i64>(a, &mut g),
        DType::U8 => sizes::<u8>(a, &mut g),
    }
}

/// Waits until every other rank answers a ping: the ranks start at once, and over TCP a
/// connection to a rank that is not listening yet is refused. At most 200 tries per rank,
/// 50 ms apart.
fn wait_for_peers(fabric: &Fabric, ranks: &[String], me: &str) -> CliResult {
    let once = PingOptions::new()
        .count(1)
        .timeout(Duration::from_millis(500));
    for peer in ranks.iter().filter(|r| r.as_str() != me) {
        let mut last = None;
        for _ in 0..200 {
            match fabric.ping(peer, once) {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(e) = last {
            return Err(CliError::failed(format!(
                "rank `{peer}` never answered: {e}"
            )));
        }
    }
    Ok(())
}

fn sizes<T: Element>(a: &Args, g: &mut Group<'_>) -> CliResult {
    let sizes = if a.collective == Collective::Barrier {
        vec![0]
    } else {
        a.sizes.clone()
    };
    for size in sizes {
        let row = one_size::<T>(a, g, size)?;
        let line = serde_json::to_string(&row).map_err(|e| CliError::failed(e.to_string()))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

/// This rank's input, and what its buffer must hold afterwards (`None`: unspecified).
fn input_and_want<T: Element>(
    c: Collective,
    op: ReduceOp,
    n: usize,
    r: usize,
    count: usize,
) -> (Vec<T>, Vec<Option<T>>) {
    let per = (count / n).max(1);
    let v = |q: usize, i: usize| value::<T>(op, q, i);
    let zero = T::from_f64(0.0);
    let input: Vec<T> = (0..count)
        .map(|i| match c {
            Collective::AllGather if i / per != r => zero,
            Collective::Broadcast if r != 0 => zero,
            Collective::Broadcast => v(0, i),
            _ => v(r, i),
        })
        .collect();
    let want = (0..count)
        .map(|i| match c {
            Collective::AllReduce => Some(reduced(op, n, i)),
            Collective::ReduceScatter => (i / per == r).then(|| reduced(op, n, i)),
            Collective::Reduce if r == 0 => Some(reduced(op, n, i)),
            Collective::Reduce => Some(v(r, i)),
            Collective::AllGather => Some(v(i / per, i)),
            Collective::Broadcast => Some(v(0, i)),
            Collective::AllToAll => Some(v(i / per, r * per + i % per)),
            Collective::Barrier => None,
        })
        .collect();
    (input, want)
}

fn call<T: Element>(
    c: Collective,
    g: &mut Group<'_>,
    buf: &mut [T],
    op: ReduceOp,
) -> Result<(), CollectiveError> {
    match c {
        Collective::AllReduce => g.all_reduce(buf, op),
        Collective::ReduceScatter => g.reduce_scatter(buf, op),
        Collective::AllGather => g.all_gather(buf),
        Collective::Broadcast => g.broadcast(buf, 0),
        Collective::Reduce => g.reduce(buf, op, 0),
        Collective::AllToAll => g.all_to_all(buf),
        Collective::Barrier => g.barrier(),
    }
}

fn one_size<T: Element>(a: &Args, g: &mut Group<'_>, size: u64) -> CliResult<RankRow> {
    let (n, r) = (g.size(), g.rank());
    let mut count = size as usize / T::DTYPE.size();
    if matches!(
        a.collective,
        Collective::ReduceScatter | Collective::AllGather | Collective::AllToAll
    ) {
        count -= count % n;
    }
    let (input, want) = input_and_want::<T>(a.collective, a.op, n, r, count);
    let mut buf = input.clone();
    // At most a million reserved up front: --iters is the user's, the samples grow past it.
    let mut times_ns = Vec::with_capacity(a.iters.min(1 << 20));
    let mut wrong = 0i64;
    let mut path = g.last_path().to_owned();
    for it in 0..a.warmup + a.iters {
        buf.copy_from_slice(&input);
        // Every rank starts the timed call together (as ../shared/peers/collectives.py does).
        g.barrier().map_err(coll)?;
        let t = Instant::now();
        call(a.collective, g, &mut buf, a.op).map_err(coll)?;
        let ns = t.elapsed().as_nanos() as u64;
        // The timed call's path, before the barrier below names its own.
        path = g.last_path().to_owned();
        if it < a.warmup {
            continue;
        }
        times_ns.push(ns);
        // Every rank left the timed call before any checks its buffer: a rank's check must
        // not take the CPU from a slower rank still timing (4 ranks on 2 cores).
        g.barrier().map_err(coll)?;
        if !a.no_check {
            wrong += buf
                .iter()
                .zip(&want)
                .filter(|(b, w)| w.is_some_and(|w| **b != w))
                .count() as i64;
        }
    }
    Ok(RankRow {
        size: (count * T::DTYPE.size()) as u64,
        count: count as u64,
        times_ns,
        wrong: if a.no_check { -1 } else { wrong },
        path,
    })
}
