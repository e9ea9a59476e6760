//! The bench's report: per size, the slowest rank's time per iteration (median and p99),
//! algbw = size / time, busbw = algbw × the collective's bus factor, wrong elements.

use super::rank::RankRow;
use super::Args;
use crate::common::{print_json, CliError, CliResult};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Row {
    pub size_bytes: u64,
    pub count: u64,
    pub dtype: &'static str,
    pub op: &'static str,
    pub time_median_us: f64,
    pub time_p99_us: f64,
    /// GB/s (10^9 bytes) of the buffer size over the median time.
    pub algbw_gbs: f64,
    pub busbw_gbs: f64,
    /// Over every rank and timed iteration; -1 with --no-check.
    pub wrong: i64,
    /// The path every rank's timed calls took (`arena`, `ring`, ...), or `mixed`.
    pub path: String,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    collective: super::Collective,
    ranks: usize,
    config: Config<'a>,
    machine: Machine,
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Config<'a> {
    op: &'static str,
    dtype: &'static str,
    iters: usize,
    warmup: usize,
    timeout_ms: u64,
    chunk_bytes: usize,
    small_bytes: usize,
    arena: bool,
    arena_bytes: usize,
    window: usize,
    profile: &'static str,
    transport: String,
    checked: bool,
    sizes: &'a [u64],
    processes: &'static str,
}

#[derive(Debug, Serialize)]
struct Machine {
    cpu_model: String,
    cpus: usize,
}

fn machine() -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Machine { cpu_model, cpus }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// One row per size from every rank's rows: per iteration the slowest rank.
fn rows(a: &Args, ranks: &[Vec<RankRow>]) -> Vec<Row> {
    let Some(first) = ranks.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|s| {
            let iters = first[s].times_ns.len();
            let mut slowest: Vec<u64> = (0..iters)
                .map(|i| {
                    ranks
                        .iter()
                        .filter_map(|r| r.get(s)?.times_ns.get(i).copied())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            slowest.sort_unstable();
            let med = percentile(&slowest, 0.5) as f64;
            let size = first[s].size;
            let algbw = if med > 0.0 { size as f64 / med } else { 0.0 };
            let wrong = if a.no_check {
                -1
            } else {
                ranks.iter().filter_map(|r| r.get(s)).map(|r| r.wrong).sum()
            };
            Row {
                size_bytes: size,
                count: first[s].count,
                dtype: a.dtype.as_str(),
                op: if a.collective.reduces() {
                    a.op.as_str()
                } else {
                    "none"
                },
                time_median_us: med / 1e3,
                time_p99_us: percentile(&slowest, 0.99) as f64 / 1e3,
                algbw_gbs: algbw,
                busbw_gbs: algbw * a.collective.bus_factor(a.ranks),
                wrong,
                path: path(ranks, s),
            }
        })
        .collect()
}

pub fn report(a: &Args, ranks: &[Vec<RankRow>]) -> CliResult {
    let rows = rows(a, ranks);
    let o = a.group_options();
    if let Some(path) = &a.plot {
        plot(a, &rows, path)?;
    }
    let wrong: i64 = rows.iter().map(|r| r.wrong.max(0)).sum();
    if a.json {
        print_json(&Report {
            collective: a.collective,
            ranks: a.ranks,
            config: Config {
                op: a.op.as_str(),
                dtype: a.dtype.as_str(),
                iters: a.iters,
                warmup: a.warmup,
                timeout_ms: a.timeout_ms,
                chunk_bytes: o.chunk_bytes,
                small_bytes: o.small_bytes,
                arena: o.arena,
                arena_bytes: o.arena_bytes,
                window: o.window,
                profile: a.profile.as_str(),
                transport: format!("{:?}", a.transport).to_lowercase(),
                checked: !a.no_check,
                sizes: &a.sizes,
                processes: "one hfabric process per rank, this host",
            },
            machine: machine(),
            rows,
        })?;
    } else {
        print_table(a, &rows);
    }
    if wrong > 0 {
        return Err(CliError::failed(format!(
            "{wrong} elements differed from the reference"
        )));
    }
    Ok(())
}

fn print_table(a: &Args, rows: &[Row]) {
    let m = machine();
    println!(
        "# hfabric bench allreduce: {:?}, {} ranks (processes), profile {}, transport {:?}, {} iters (+{} warmup)",
        a.collective, a.ranks, a.profile, a.transport, a.iters, a.warmup
    );
    println!(
        "# machine: {} ({} CPUs); time = slowest rank per iteration",
        m.cpu_model, m.cpus
    );
    println!(
        "#{:>12} {:>12} {:>6} {:>6} {:>14} {:>14} {:>12} {:>12} {:>8}",
        "size(B)",
        "count",
        "type",
        "redop",
        "time_med(us)",
        "time_p99(us)",
        "algbw(GB/s)",
        "busbw(GB/s)",
        "#wrong"
    );
    for r in rows {
        println!(
            " {:>12} {:>12} {:>6} {:>6} {:>14.2} {:>14.2} {:>12.3} {:>12.3} {:>8}",
            r.size_bytes,
            r.count,
            r.dtype,
            r.op,
            r.time_median_us,
            r.time_p99_us,
            r.algbw_gbs,
            r.busbw_gbs,
            r.wrong
        );
    }
}

fn plot(a: &Args, rows: &[Row], path: &std::path::Path) -> CliResult {
    let data = crate::plot::PlotData {
        title: format!("{:?} busbw, {} ranks, {}", a.collective, a.ranks, a.dtype),
        latency: Vec::new(),
        throughput: rows
            .iter()
            .filter(|r| r.size_bytes > 0)
            .map(|r| crate::plot::ThroughputPoint {
                message_bytes: r.size_bytes,
                gbit_per_s: r.busbw_gbs * 8.0,
            })
            .collect(),
        peer_lines: Vec::new(),
    };
    crate::plot::write_plot(path, &data).map_err(CliError::failed)?;
    if !a.json {
        eprintln!("plot written to {} (busbw in Gbit/s)", path.display());
    }
    Ok(())
}

/// The path size `s` took on every rank, `mixed` where ranks disagree.
fn path(ranks: &[Vec<RankRow>], s: usize) -> String {
    let mut paths = ranks
        .iter()
        .filter_map(|r| r.get(s))
        .map(|r| r.path.as_str());
    let first = paths.next().unwrap_or("none");
    if paths.all(|p| p == first) {
        first.to_owned()
    } else {
        "mixed".to_owned()
    }
}
