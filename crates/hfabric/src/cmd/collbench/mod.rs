//! `hfabric bench allreduce`: collectives across N ranks, each a separate `hfabric` process
//! on this host, started by this command on a fabric file it writes (free loopback ports).
//! Prints an nccl-tests-style table: size, count, type, time (median and p99 over the
//! iterations, the slowest rank's per iteration), algbw, busbw, wrong elements.

mod launch;
mod rank;
mod table;

use crate::common::{CliError, CliResult, TransportArg};
use clap::Parser;
use hyperfabric::collective::{DType, GroupOptions, ReduceOp};
use hyperfabric::config::ProfileName;
use std::path::PathBuf;
use std::time::Duration;

/// Which collective the bench runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Collective {
    AllReduce,
    ReduceScatter,
    AllGather,
    /// From rank 0.
    Broadcast,
    /// To rank 0.
    Reduce,
    AllToAll,
    /// Sizes are ignored (one row).
    Barrier,
}

impl Collective {
    /// busbw / algbw, as nccl-tests defines it (the data each rank's link must carry).
    pub fn bus_factor(self, n: usize) -> f64 {
        let n = n as f64;
        match self {
            Collective::AllReduce => 2.0 * (n - 1.0) / n,
            Collective::ReduceScatter | Collective::AllGather | Collective::AllToAll => {
                (n - 1.0) / n
            }
            Collective::Broadcast | Collective::Reduce | Collective::Barrier => 1.0,
        }
    }
    pub fn reduces(self) -> bool {
        matches!(
            self,
            Collective::AllReduce | Collective::ReduceScatter | Collective::Reduce
        )
    }
}

/// Collectives over N local ranks (separate processes), timed nccl-tests style.
///
/// Example: hfabric bench allreduce --ranks 4 --sizes 8,1K,1M,16M --op sum --dtype f32
#[derive(Parser, Debug, Clone)]
#[command(name = "hfabric bench allreduce", version)]
pub struct Args {
    /// Ranks to start, each its own `hfabric` process on this host (2..=64).
    #[arg(long, default_value_t = 2)]
    pub ranks: usize,
    /// Buffer sizes in bytes per rank, comma separated; K, M, G suffixes are powers of 1024.
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_values = ["8", "1K", "64K", "1M", "16M", "64M"])]
    pub sizes: Vec<u64>,
    /// Reduction of all_reduce, reduce_scatter and reduce: sum, avg, min, max, prod.
    #[arg(long, default_value = "sum", value_parser = parse_op)]
    pub op: ReduceOp,
    /// Element type: f32, f64, f16, bf16, i32, i64, u8.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: DType,
    /// The collective to time.
    #[arg(long, value_enum, default_value = "all-reduce")]
    pub collective: Collective,
    /// Timed iterations per size.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Untimed iterations per size first.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// A rank fails (and the bench with it) after this long without progress.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Bytes per message (large buffers go in chunks this size). Default: the library's.
    #[arg(long)]
    pub chunk_bytes: Option<usize>,
    /// all_reduce up to this many bytes takes recursive doubling, above it the ring.
    /// Default: the library's.
    #[arg(long)]
    pub small_bytes: Option<usize>,
    /// all_reduce and barrier through one shared-memory arena per group instead of fabric
    /// messages: up to --small-bytes in one round (`arena`: every rank reduces all ranks'
    /// slots), larger ones chunk by chunk (`arena_rs_ag`: reduce-scatter then all-gather
    /// through each rank's --arena-bytes). Each row's `path` in --json says which ran.
    #[arg(long)]
    pub arena: bool,
    /// With --arena: each rank's stage for the chunked path (two chunks; a multiple of
    /// 4096 up to 64 MiB). Default: the library's (2 MiB).
    #[arg(long, requires = "arena")]
    pub arena_bytes: Option<usize>,
    /// Messages in flight per rank and collective (1..=24). Default: the library's.
    #[arg(long)]
    pub window: Option<usize>,
    /// The ranks' fabric profile (high_throughput spins then parks: ranks may outnumber cores).
    #[arg(long, default_value = "high_throughput")]
    pub profile: ProfileName,
    /// auto: shared memory between the ranks (one host), or force tcp / shm.
    #[arg(long, value_enum, default_value = "auto")]
    pub transport: TransportArg,
    /// Skip checking every iteration's result against the reference (wrong = -1 then).
    #[arg(long)]
    pub no_check: bool,
    /// Print the report as JSON (the effective configuration, the machine, one row per size).
    #[arg(long)]
    pub json: bool,
    /// Draw busbw against size (.svg, or .png with rsvg-convert).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// (internal) run as one rank of this fabric file; the command starts these itself.
    #[arg(long, hide = true, requires = "node")]
    pub worker: Option<PathBuf>,
    /// (internal) the rank's node id, with --worker.
    #[arg(long, hide = true)]
    pub node: Option<String>,
}

impl Args {
    pub fn group_options(&self) -> GroupOptions {
        let d = GroupOptions::default();
        GroupOptions {
            timeout: Duration::from_millis(self.timeout_ms),
            chunk_bytes: self.chunk_bytes.unwrap_or(d.chunk_bytes),
            small_bytes: self.small_bytes.unwrap_or(d.small_bytes),
            window: self.window.unwrap_or(d.window),
            context: 0,
            arena: self.arena,
            arena_bytes: self.arena_bytes.unwrap_or(d.arena_bytes),
        }
    }

    fn validate(&self) -> CliResult {
        if !(2..=64).contains(&self.ranks) {
            return Err(CliError::usage("--ranks must be 2..=64"));
        }
        if self.iters == 0 || self.sizes.is_empty() {
            return Err(CliError::usage("--iters and --sizes must be at least 1"));
        }
        if self.sizes.iter().any(|&s| s > 1 << 30) {
            return Err(CliError::usage("--sizes must be at most 1G"));
        }
        if self.timeout_ms == 0 {
            return Err(CliError::usage("--timeout-ms must be at least 1"));
        }
        if self.op != ReduceOp::Sum && !self.collective.reduces() {
            return Err(CliError::usage(format!(
                "--op applies to all-reduce, reduce-scatter and reduce, not {:?}",
                self.collective
            )));
        }
        Ok(())
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'B' => 1,
                _ => return Err(format!("`{s}`: unknown unit `{c}` (K, M, G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (8, 1K, 16M, 1G)"))?;
    n.checked_mul(mul)
        .ok_or_else(|| format!("`{s}` is too large"))
}

fn parse_op(s: &str) -> Result<ReduceOp, String> {
    ReduceOp::parse(s).ok_or_else(|| format!("`{s}`: one of sum, avg, min, max, prod"))
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    DType::parse(s).ok_or_else(|| format!("`{s}`: one of f32, f64, f16, bf16, i32, i64, u8"))
}

/// Entry point: `argv` starts with `hfabric bench allreduce`.
pub fn main(argv: Vec<String>) -> CliResult {
    let mut args = vec!["hfabric bench allreduce".to_owned()];
    args.extend(argv.into_iter().skip(3));
    let a = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return if code == 0 {
                Ok(())
            } else {
                Err(CliError::usage("see --help"))
            };
        }
    };
    a.validate()?;
    match (&a.worker, &a.node) {
        (Some(file), Some(node)) => rank::run(&a, file, node),
        _ => {
            let rows = launch::run(&a)?;
            table::report(&a, &rows)
        }
    }
}
