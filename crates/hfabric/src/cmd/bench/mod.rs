//! `hfabric bench`: the main job. Latency (ping-pong), throughput (a stream of transfers per
//! message size) and concurrent streams between two nodes. With no --config it starts a local
//! two-node fabric itself (a child `hfabric serve`) and tears it down afterwards.

mod concurrent;
mod latency;
mod local;
mod qos;
mod report;
mod throughput;

use crate::common::{apply_overrides, print_json, start_client_with, CliError, CliResult};
use hyperfabric::config::{FabricConfig, ProfileName};
use hyperfabric::Fabric;
use report::{Report, Tests};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The bundled fabric `bench` starts when no --config is given.
pub const LOCAL_FABRIC: &str = include_str!("../../../../../examples/local.toml");

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Latency,
    Throughput,
    Concurrent,
    /// Urgent pings while a background bulk stream saturates the link, QoS on and off.
    /// Not part of `all` (it loads the link on purpose).
    Qos,
    All,
    /// Collectives across N local rank processes, nccl-tests style; it has flags of its
    /// own: `hfabric bench allreduce --help`. Must come first, alone.
    Allreduce,
}

#[derive(clap::Args)]
pub struct Args {
    /// Which tests to run (one or more).
    #[arg(value_enum, default_value = "all")]
    pub tests: Vec<Which>,
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
    #[arg(long = "peer", value_name = "ID=ADDR", value_parser = crate::common::parse_peer)]
    pub peers: Vec<(String, SocketAddr)>,
    /// One profile for every test. Default: low_latency for latency, high_throughput otherwise.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<ProfileName>,
    /// auto: shared memory between processes of this host, TCP otherwise; or force tcp / shm.
    #[arg(long, value_enum, default_value = "auto")]
    pub transport: crate::common::TransportArg,
    /// Pin this process to CPU A and the local server to CPU B: --pin A,B (or just A).
    #[arg(long, value_name = "CPUS", value_delimiter = ',')]
    pub pin: Vec<usize>,
    /// Latency: timed ping-pongs (after --warmup untimed ones).
    #[arg(long, alias = "count", default_value_t = 10_000)]
    pub iterations: u64,
    /// Latency: untimed ping-pongs first (connection set-up, caches, CPU frequency).
    #[arg(long, default_value_t = 1_000)]
    pub warmup: u64,
    /// Latency: payload bytes of each ping.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Latency: pause between pings in microseconds (outside the timed region).
    #[arg(long, default_value_t = 0)]
    pub interval_us: u64,
    /// Throughput: message sizes, comma separated.
    #[arg(
        long,
        value_name = "BYTES,..",
        value_delimiter = ',',
        default_value = "1024,10240,102400,1048576"
    )]
    pub sizes: Vec<u64>,
    /// Throughput: seconds of streaming per size.
    #[arg(long, default_value_t = 2.0)]
    pub seconds_per_size: f64,
    /// Throughput: what the messages hold (random bytes do not compress; tensor and text do).
    #[arg(long, value_enum, default_value = "random")]
    pub payload: throughput::PayloadKind,
    /// Throughput: the send API. loan: each message is written into a loaned shared-memory
    /// buffer and the local server reads every byte it receives (compare with iceoryx2).
    #[arg(long, value_enum, default_value = "copy")]
    pub api: throughput::Api,
    /// Throughput: transfers in flight at once (each acknowledged end to end).
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,
    /// Throughput and concurrent: compression of every transfer: off, auto, lz4, zstd, snappy.
    #[arg(long, default_value = "off")]
    pub compression: hyperfabric::Compression,
    /// Throughput and concurrent: priority of every transfer.
    #[arg(long, default_value = "normal")]
    pub priority: hyperfabric::Priority,
    /// Throughput and concurrent: over shared memory, the sender also checksums (CRC32C) each
    /// payload it passes by pool descriptor (copies of 64 KiB to a slot, loans) and the
    /// receiver verifies it before reading (`SendOptions::verify_payload`); every other frame
    /// is checksummed either way. The report's `verify_payload` says which.
    #[arg(long)]
    pub verify_payload: bool,
    /// Concurrent: number of streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Concurrent: seconds the streams run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Draw the latency distribution and throughput against size (.svg, or .png with rsvg-convert).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Measure a node that runs with --store anyway: every bench transfer becomes a file in
    /// its store (thousands of them), and the figures measure its disk. Without this flag
    /// such a node is refused with the reason.
    #[arg(long)]
    pub allow_store: bool,
    /// Print the report as JSON (schema: docs/bench.md); no progress bars.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The send options of the throughput and concurrent tests.
    pub fn send_options(&self) -> hyperfabric::SendOptions {
        hyperfabric::SendOptions::new()
            .compression(self.compression)
            .priority(self.priority)
            .verify_payload(self.verify_payload)
    }

    fn runs(&self, t: Which) -> bool {
        (self.tests.contains(&Which::All) && t != Which::Qos) || self.tests.contains(&t)
    }
}

/// What every test needs: a way to start the measuring node with a given profile.
pub struct Target {
    pub base: FabricConfig,
    pub from: String,
    pub to: String,
    pub peers: Vec<(String, SocketAddr)>,
    pub transport: crate::common::TransportArg,
}

impl Target {
    pub fn client(&self, profile: ProfileName) -> CliResult<Fabric> {
        start_client_with(
            apply_overrides(self.base.clone(), Some(profile), &self.peers)?,
            &self.from,
            self.transport.into(),
        )
    }
}

pub fn run(a: Args) -> CliResult {
    if a.tests.contains(&Which::Allreduce) {
        return Err(CliError::usage(
            "allreduce takes its own flags and must come right after `bench`: hfabric bench allreduce --help",
        ));
    }
    validate(&a)?;
    let (base, from, to, server) = measured(&a)?;
    // Pinned after the local server started: a child inherits its parent's CPU mask, and
    // the server's own --pin must find its CPU in it.
    if let Some(&cpu) = a.pin.first() {
        pin_current(cpu)?;
    }
    let mut peers = a.peers.clone();
    if let Some(s) = &server {
        peers.push((to.clone(), s.addr));
    }
    let target = Target {
        base,
        from,
        to,
        peers,
        transport: a.transport,
    };
    if a.config.is_some() && !a.allow_store {
        refuse_storing_target(&target)?;
    }
    let mut tests = Tests::default();
    if a.runs(Which::Latency) {
        tests.latency = Some(latency::run(&target, &a)?);
    }
    if a.runs(Which::Throughput) {
        tests.throughput = Some(throughput::run(&target, &a)?);
    }
    if a.runs(Which::Concurrent) {
        tests.concurrent = Some(concurrent::run(&target, &a)?);
    }
    if a.runs(Which::Qos) {
        tests.qos = Some(qos::run(&target, &a)?);
    }
    drop(server);
    let report = Report::new(&target, a.config.is_none(), a.pin.clone(), tests);
    if let Some(path) = &a.plot {
        report::plot(&report, path).map_err(CliError::failed)?;
        if !a.json {
            eprintln!("plot written to {}", path.display());
        }
    }
    if a.json {
        print_json(&report)
    } else {
        report.print_text();
        Ok(())
    }
}

/// What is measured: the fabric file with --from and --to, or (without --config) a local
/// two-node fabric with its server started here, node-a measuring node-b.
fn measured(a: &Args) -> CliResult<(FabricConfig, String, String, Option<local::LocalServer>)> {
    let measured = match &a.config {
        Some(path) => (
            FabricConfig::from_file(path)?,
            a.from.clone().unwrap_or_default(),
            a.to.clone().unwrap_or_default(),
            None,
        ),
        None => {
            let mut cfg =
                FabricConfig::from_toml_str(LOCAL_FABRIC, "<embedded examples/local.toml>")?;
            // A latency-only run measures both ends in the latency profile (the server's
            // reader spins), as busy-polling peers such as ucx_perftest do.
            let latency_only = !a.tests.is_empty() && a.tests.iter().all(|t| *t == Which::Latency);
            let server_profile = a
                .profile
                .or(latency_only.then_some(ProfileName::LowLatency));
            let server =
                local::LocalServer::start(server_profile, a.pin.get(1).copied(), a.transport)?;
            // Both ends prove the ephemeral secret the local server was given.
            cfg.security.secret_file = Some(server.secret_path().display().to_string());
            (cfg, "node-a".to_owned(), "node-b".to_owned(), Some(server))
        }
    };
    Ok(measured)
}

fn validate(a: &Args) -> CliResult {
    if a.iterations == 0 || a.inflight == 0 || a.sizes.is_empty() || a.streams == 0 {
        return Err(CliError::usage(
            "--iterations, --inflight, --sizes and --streams must be at least 1",
        ));
    }
    for (name, v) in [
        ("--seconds-per-size", a.seconds_per_size),
        ("--duration", a.duration),
    ] {
        if !(v > 0.0 && v.is_finite() && v <= 3600.0) {
            return Err(CliError::usage(format!(
                "{name} must be a number of seconds in (0, 3600]"
            )));
        }
    }
    if a.sizes.iter().any(|&s| s == 0 || s > 1 << 30) {
        return Err(CliError::usage("--sizes must lie between 1 byte and 1 GiB"));
    }
    if let Some(path) = &a.plot {
        // Checked before minutes of measuring, not after.
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("svg" | "png")) {
            return Err(CliError::usage(format!(
                "--plot {}: unsupported file extension; use .svg or .png",
                path.display()
            )));
        }
    }
    if a.pin.len() > 2 {
        return Err(CliError::usage(
            "--pin takes one or two CPU numbers: this process, then the local server",
        ));
    }
    Ok(())
}

/// A bench against a node that stores what it receives writes every transfer as a file:
/// refused, with the reason and what to do instead.
fn refuse_storing_target(t: &Target) -> CliResult {
    let fabric = t.client(ProfileName::HighThroughput)?;
    let m = fabric.node_metrics(&t.to, Duration::from_secs(5))?;
    if m.receives == "store" {
        return Err(CliError::usage(format!(
            "node `{}` runs with --store: every bench transfer would become a file in its store \
             (thousands per second) and the figures would measure its disk, not the fabric. \
             Benchmark a node served without --store (it verifies, acknowledges and drops what \
             it receives), or pass --allow-store to measure the store anyway",
            t.to
        )));
    }
    Ok(())
}

/// Pins the calling thread (and the threads it starts later) to `cpu`.
pub fn pin_current(cpu: usize) -> CliResult {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let core = cores.into_iter().find(|c| c.id == cpu).ok_or_else(|| {
        CliError::usage(format!("--pin: CPU {cpu} is not available to this process"))
    })?;
    if core_affinity::set_for_current(core) {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "--pin: the kernel refused to pin to CPU {cpu}"
        )))
    }
}

/// The transport the link from `fabric` to `to` uses (asked with one ping).
pub fn transport_of(fabric: &Fabric, to: &str) -> CliResult<hyperfabric::transport::TransportKind> {
    Ok(fabric
        .ping(
            to,
            hyperfabric::PingOptions::new()
                .count(1)
                .timeout(Duration::from_secs(2)),
        )?
        .transport)
}

/// A progress bar on a terminal; hidden when piped or with --json.
pub fn progress(a: &Args, len: u64, what: &str) -> crate::logging::Progress {
    crate::logging::progress(a.json, len, what)
}
