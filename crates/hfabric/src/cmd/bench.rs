//! `hfabric bench`: the main job. Measures latency and throughput between two nodes; with no
//! --config it starts a local two-node fabric itself (a child `hfabric serve`) and tears it down.

use crate::common::{apply_overrides, fmt_ns, print_json, start_client, CliError, CliResult};
use hyperfabric::config::{FabricConfig, ProfileName};
use hyperfabric::{Fabric, PendingSend, PingOptions, PingStats, SendOptions};
use serde::Serialize;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bundled fabric `bench` starts when no --config is given.
const LOCAL_FABRIC: &str = include_str!("../../../../examples/local.toml");

#[derive(clap::Args)]
pub struct Args {
    /// Measure this fabric's running nodes instead of starting a local one (needs --from, --to).
    #[arg(long, short = 'c', value_name = "FILE", requires_all = ["from", "to"])]
    pub config: Option<PathBuf>,
    /// The measuring node (runs in this process).
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// The node measured against (must be running `hfabric serve`).
    #[arg(long, value_name = "ID")]
    pub to: Option<String>,
    /// Reach node ID at ADDR instead of the file's address (repeatable).
    #[arg(long = "peer", value_name = "ID=ADDR", value_parser = parse_peer)]
    pub peers: Vec<(String, SocketAddr)>,
    /// One profile for every test. Default: low_latency for latency, high_throughput for throughput.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<ProfileName>,
    /// Timed pings of the latency test (after 1000 untimed warm-up pings).
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Payload bytes of each ping.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Message sizes of the throughput test, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1024u64, 65536, 1048576])]
    pub sizes: Vec<u64>,
    /// Seconds of streaming per throughput size.
    #[arg(long, default_value_t = 2.0)]
    pub duration: f64,
    /// Transfers in flight at once in the throughput test (each acknowledged end to end).
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_peer(s: &str) -> Result<(String, SocketAddr), String> {
    let (id, addr) = s.split_once('=').ok_or("expected ID=ADDR")?;
    Ok((
        id.to_owned(),
        addr.parse()
            .map_err(|e| format!("bad address `{addr}`: {e}"))?,
    ))
}

#[derive(Serialize)]
struct Report {
    fabric: String,
    from: String,
    to: String,
    started_local_fabric: bool,
    machine: Machine,
    latency: LatencyResult,
    throughput: Vec<ThroughputResult>,
}

#[derive(Serialize)]
struct Machine {
    cpu_model: String,
    cores: usize,
    kernel: String,
}

#[derive(Serialize)]
struct LatencyResult {
    profile: ProfileName,
    warmup: u64,
    #[serde(flatten)]
    stats: PingStats,
}

#[derive(Serialize)]
struct ThroughputResult {
    profile: ProfileName,
    transport: &'static str,
    message_bytes: u64,
    messages: u64,
    seconds: f64,
    gbit_per_s: f64,
    gbyte_per_s: f64,
    messages_per_s: f64,
    median_transfer_ns: u64,
    p99_transfer_ns: u64,
}

/// The child `hfabric serve` of a local fabric; killed when dropped.
struct LocalServer {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(a: Args) -> CliResult {
    validate(&a)?;
    let (base, from, to, server) = match &a.config {
        Some(path) => {
            let cfg = FabricConfig::from_file(path)?;
            let (from, to) = (
                a.from.clone().unwrap_or_default(),
                a.to.clone().unwrap_or_default(),
            );
            (cfg, from, to, None)
        }
        None => {
            let cfg = FabricConfig::from_toml_str(LOCAL_FABRIC, "<embedded examples/local.toml>")?;
            let server = start_local_server(&a)?;
            (cfg, "node-a".to_owned(), "node-b".to_owned(), Some(server))
        }
    };
    let mut peers = a.peers.clone();
    if let Some(s) = &server {
        peers.push((to.clone(), s.addr));
    }
    let client = |p: ProfileName| -> CliResult<Fabric> {
        start_client(apply_overrides(base.clone(), Some(p), &peers)?, &from)
    };
    let lat_profile = a.profile.unwrap_or(ProfileName::LowLatency);
    let tput_profile = a.profile.unwrap_or(ProfileName::HighThroughput);

    let latency = {
        let fabric = client(lat_profile)?;
        progress_note(
            &a,
            &format!("latency: {} pings of {} B to {to} ...", a.count, a.size),
        );
        let stats = fabric.ping(
            &to,
            PingOptions::new()
                .size(a.size)
                .count(a.count)
                .warmup(1000)
                .timeout(Duration::from_secs(2)),
        )?;
        LatencyResult {
            profile: lat_profile,
            warmup: 1000,
            stats,
        }
    };
    let fabric = client(tput_profile)?;
    let mut throughput = Vec::new();
    for &size in &a.sizes {
        progress_note(
            &a,
            &format!("throughput: {size} B messages for {:.1} s ...", a.duration),
        );
        throughput.push(stream(&fabric, &to, size, &a, tput_profile)?);
    }
    drop(server);
    let report = Report {
        fabric: base.name.clone(),
        from,
        to,
        started_local_fabric: a.config.is_none(),
        machine: machine(),
        latency,
        throughput,
    };
    if a.json {
        print_json(&report)
    } else {
        print_text(&report);
        Ok(())
    }
}

fn validate(a: &Args) -> CliResult {
    if a.count == 0 || a.inflight == 0 || a.sizes.is_empty() {
        return Err(CliError::usage(
            "--count, --inflight and --sizes must be at least 1",
        ));
    }
    if !(a.duration > 0.0 && a.duration.is_finite()) {
        return Err(CliError::usage(
            "--duration must be a positive number of seconds",
        ));
    }
    if a.sizes.iter().any(|&s| s == 0 || s > 1 << 30) {
        return Err(CliError::usage("--sizes must lie between 1 byte and 1 GiB"));
    }
    Ok(())
}

fn progress_note(a: &Args, msg: &str) {
    if !a.json && std::io::stderr().is_terminal() {
        eprintln!("{msg}");
    }
}

/// Starts `hfabric serve --node node-b` on a free port and waits for its ready line.
fn start_local_server(a: &Args) -> CliResult<LocalServer> {
    let dir = tempfile::tempdir()?;
    let cfg_path = dir.path().join("local.toml");
    std::fs::write(&cfg_path, LOCAL_FABRIC)?;
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "serve",
        "--json",
        "--node",
        "node-b",
        "--listen",
        "127.0.0.1:0",
        "--config",
    ])
    .arg(&cfg_path);
    if let Some(p) = a.profile {
        cmd.args(["--profile", p.as_str()]);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    let mut child = cmd.stdout(Stdio::piped()).stdin(Stdio::null()).spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| CliError::failed("no stdout from the local server"))?;
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    let addr = read
        .ok()
        .and_then(|_| serde_json::from_str::<serde_json::Value>(&line).ok())
        .and_then(|v| v["addr"].as_str()?.parse().ok());
    match addr {
        Some(addr) => Ok(LocalServer {
            child,
            addr,
            _dir: dir,
        }),
        None => {
            let _ = child.kill();
            Err(CliError::failed(format!(
                "the local server did not start (said: {:?})",
                line.trim()
            )))
        }
    }
}

/// Streams `size`-byte messages for the configured duration, `inflight` at a time.
fn stream(
    fabric: &Fabric,
    to: &str,
    size: u64,
    a: &Args,
    profile: ProfileName,
) -> CliResult<ThroughputResult> {
    let data: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    let mut inflight: VecDeque<PendingSend<'_>> = VecDeque::with_capacity(a.inflight);
    let mut latencies: Vec<u64> = Vec::new();
    let duration = Duration::from_secs_f64(a.duration);
    let start = Instant::now();
    let mut messages = 0u64;
    while start.elapsed() < duration || !inflight.is_empty() {
        if start.elapsed() < duration && inflight.len() < a.inflight {
            inflight.push_back(fabric.start_send(to, &data, SendOptions::new())?);
            continue;
        }
        if let Some(p) = inflight.pop_front() {
            let r = p.wait()?;
            latencies.push(r.latency.as_nanos() as u64);
            messages += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0)
    };
    let bytes = (messages * size) as f64;
    Ok(ThroughputResult {
        profile,
        transport: "tcp",
        message_bytes: size,
        messages,
        seconds,
        gbit_per_s: bytes * 8.0 / seconds / 1e9,
        gbyte_per_s: bytes / seconds / 1e9,
        messages_per_s: messages as f64 / seconds,
        median_transfer_ns: pct(0.5),
        p99_transfer_ns: pct(0.99),
    })
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel,
    }
}

fn print_text(r: &Report) {
    println!("HyperFabric Performance Benchmark Report");
    println!("========================================");
    let origin = if r.started_local_fabric {
        "local fabric started by bench"
    } else {
        "configured fabric"
    };
    println!(
        "fabric {} ({origin}): {} -> {} over tcp",
        r.fabric, r.from, r.to
    );
    println!(
        "machine: {}, {} cores, Linux {}",
        r.machine.cpu_model, r.machine.cores, r.machine.kernel
    );
    let s = &r.latency.stats;
    println!();
    println!(
        "Latency: {} B payload, {} pings after {} warm-up, profile {}",
        s.size_bytes, s.sent, r.latency.warmup, r.latency.profile
    );
    println!(
        "  one-way (half round trip): median {}  p99 {}  p99.9 {}",
        fmt_ns(s.median_ns as f64),
        fmt_ns(s.p99_ns as f64),
        fmt_ns(s.p999_ns as f64)
    );
    println!(
        "  min {}  mean {}  max {}  stddev {}  loss {:.2}%",
        fmt_ns(s.min_ns as f64),
        fmt_ns(s.mean_ns),
        fmt_ns(s.max_ns as f64),
        fmt_ns(s.stddev_ns),
        s.loss_pct
    );
    println!();
    println!("Throughput: each message a transfer acknowledged end to end, CRC32C per frame");
    println!(
        "  {:>10} {:>9} {:>8} {:>10} {:>8} {:>11} {:>14}",
        "size", "messages", "secs", "Gbit/s", "GB/s", "msg/s", "median xfer"
    );
    for t in &r.throughput {
        println!(
            "  {:>10} {:>9} {:>8.2} {:>10.2} {:>8.3} {:>11.0} {:>14}",
            t.message_bytes,
            t.messages,
            t.seconds,
            t.gbit_per_s,
            t.gbyte_per_s,
            t.messages_per_s,
            fmt_ns(t.median_transfer_ns as f64)
        );
    }
    if let Some(t) = r.throughput.first() {
        println!("  (profile {}, transport {})", t.profile, t.transport);
    }
}
