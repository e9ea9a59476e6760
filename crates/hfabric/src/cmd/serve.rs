//! `hfabric serve`: host one node until interrupted.

use super::join::BootstrapArgs;
use crate::common::{CliError, CliResult, TransportArg};
use hyperfabric::config::{FabricConfig, ProfileName};
use hyperfabric::{Fabric, FabricBuilder};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};

#[derive(clap::Args)]
pub struct Args {
    /// The fabric file (TOML): nodes, links, zones, profile. Optional with --bootstrap or
    /// --membership, where it adds links, zones, policies and security to what the
    /// directory gives.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        required_unless_present_any = ["bootstrap", "membership"]
    )]
    pub config: Option<PathBuf>,
    /// Replace the file's tuning by this profile's defaults: high_throughput or low_latency.
    #[arg(long, value_name = "PROFILE", requires = "config")]
    pub profile: Option<ProfileName>,
    /// Reach node ID at ADDR instead of the file's address (repeatable), e.g. node-b=127.0.0.1:9000.
    #[arg(long = "peer", value_name = "ID=ADDR", value_parser = crate::common::parse_peer, requires = "config")]
    pub peers: Vec<(String, SocketAddr)>,
    /// auto: shared memory with nodes of this host, TCP otherwise; or force tcp / shm.
    #[arg(long, value_enum, default_value = "auto")]
    pub transport: TransportArg,
    /// The node this process hosts (with --bootstrap: default rank-N; required with
    /// --membership alone).
    #[arg(
        long,
        short = 'n',
        value_name = "ID",
        required_unless_present = "bootstrap"
    )]
    pub node: Option<String>,
    #[command(flatten)]
    pub boot: BootstrapArgs,
    /// Write received transfers as files here (temporary file, fsync, rename when complete).
    /// Without it, received bytes are verified, acknowledged and dropped.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// What --store does with a received file whose name is taken: `rename` (keep both; the
    /// new one is stored as NAME.1.EXT, NAME.2.EXT, ... and its sender told), `overwrite`,
    /// or `refuse` the transfer. Default: the fabric file's `on_conflict`, else rename.
    #[arg(long, value_name = "POLICY", requires = "store")]
    pub on_conflict: Option<hyperfabric::config::OnConflict>,
    /// Keep received messages in memory and read every byte of each (a consumer's cost, for
    /// the local fabric of `hfabric bench`), then drop them. Without it (and --store) bytes
    /// are discarded.
    #[arg(long, conflicts_with = "store")]
    pub read_all: bool,
    /// Listen here instead of the fabric file's address (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Run every thread of this node on these CPUs: one (3), a list (0,1) or a range
    /// (0-3); over the fabric file's metadata.cpu_affinity. The effective-configuration
    /// report (log, --json) says what the kernel granted.
    #[arg(long, value_name = "CPUS", value_parser = cpu_list)]
    pub pin: Option<CpuList>,
    /// Serve metrics over HTTP here: Prometheus text at GET /metrics, JSON at
    /// GET /metrics.json (port 0: any free port; the ready line names the real one).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Print the ready line (and nothing else on stdout) as JSON: {"event":"listening",...}.
    #[arg(long)]
    pub json: bool,
    /// Keep the node's counters (the stats snapshot, as JSON) in this file, rewritten
    /// every 100 ms and at exit: what a test or a monitor reads from a running node.
    #[arg(long, value_name = "PATH")]
    pub stats_file: Option<PathBuf>,
}

/// `--pin`'s CPU set (a newtype: clap would read a bare `Vec` as repeated values).
#[derive(Clone, Debug)]
pub struct CpuList(pub Vec<usize>);

fn cpu_list(s: &str) -> Result<CpuList, hyperfabric::Error> {
    hyperfabric::node::parse_cpu_list(s).map(CpuList)
}

/// Replaces `path` with the node's stats as JSON (write then rename: never half a file).
fn write_stats(fabric: &Fabric, path: &std::path::Path) {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string(&fabric.stats()).unwrap_or_default();
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}

/// What `serve` started: the node, and its membership when bootstrapped.
struct Started {
    fabric: Arc<Fabric>,
    joined: Option<hyperfabric::membership::Joined>,
}

fn start(a: &Args) -> CliResult<Started> {
    let mut cfg = a
        .config
        .as_ref()
        .map(|path| {
            let cfg = FabricConfig::from_file(path)?;
            crate::common::apply_overrides(cfg, a.profile, &a.peers)
        })
        .transpose()
        // A flag that needs joining is the first thing to fix when the file is unreadable
        // too (its membership.url cannot make this node join then).
        .or_else(|e| a.boot.check_flags(false).and(Err(e)))?;
    if let (Some(cfg), Some(policy)) = (cfg.as_mut(), a.on_conflict) {
        cfg.tuning.on_conflict = policy;
    }
    let customize = |mut builder: FabricBuilder| {
        builder = builder.transport(a.transport.into());
        builder = match &a.store {
            Some(dir) => builder.store_to(dir),
            None if a.read_all || a.boot.check_all_to_all.is_some() => builder,
            None => builder.discard_received(),
        };
        if let Some(CpuList(cpus)) = a.pin.clone() {
            builder = builder.cpu_affinity(cpus);
        }
        builder
    };
    let file_url = cfg.as_ref().is_some_and(|c| c.membership.url.is_some());
    a.boot.check_flags(file_url)?;
    if a.boot.joins() || file_url {
        let mode = a.boot.bootstrap;
        let joined = a
            .boot
            .join(mode, cfg, a.node.clone(), a.listen, customize)?;
        return Ok(Started {
            fabric: Arc::clone(&joined.fabric),
            joined: Some(joined),
        });
    }
    let (Some(cfg), Some(node)) = (cfg, &a.node) else {
        return Err(CliError::usage(
            "--config and --node are required without --bootstrap or --membership",
        ));
    };
    let mut builder = customize(Fabric::from_config(cfg).node(node));
    if let Some(addr) = a.listen {
        builder = builder.listen(addr);
    }
    Ok(Started {
        fabric: Arc::new(builder.start()?),
        joined: None,
    })
}

pub fn run(a: Args) -> CliResult {
    if a.on_conflict.is_some() && a.config.is_none() {
        return Err(CliError::usage(
            "--on-conflict sets the fabric file's on_conflict: give --config",
        ));
    }
    let Started { fabric, mut joined } = start(&a)?;
    let exporter = a
        .metrics
        .map(|addr| MetricsServer::start(addr, &fabric))
        .transpose()?;
    let metrics_addr = exporter.as_ref().map(|e| e.addr.to_string());
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| CliError::failed(format!("cannot install the signal handler: {e}")))?;
    // SIGHUP retrains the predictor from routing.history (it no longer stops the node).
    hyperfabric::sys::signal::catch_hangup()
        .map_err(|e| CliError::failed(format!("cannot install the SIGHUP handler: {e}")))?;
    announce(&a, &fabric, joined.as_ref(), metrics_addr.as_deref());
    if let Some(bytes) = a.boot.check_all_to_all {
        let report = super::join::check_all_to_all(&fabric, bytes)?;
        match a.json {
            true => println!("{report}"),
            false => println!(
                "all-to-all check passed: {bytes} bytes with each of {}",
                report["peers"]
            ),
        }
    }
    serve_until_stopped(&a, &fabric, joined.as_ref(), &rx);
    let stats = fabric.stats();
    tracing::info!(
        received = stats.transfers_received,
        bytes = stats.bytes_received,
        rejected_connections = stats.connections_rejected,
        protocol_errors = stats.protocol_errors,
        peak_rss_bytes = crate::common::peak_rss_bytes(),
        "shutting down"
    );
    drop(exporter);
    // Withdraw our record first, so the others dismiss us before the node stops.
    if let Some(j) = joined.as_mut() {
        j.leave();
    }
    drop(joined);
    // The exporter's and membership's threads are gone: the last handle, the node stops.
    drop(fabric);
    Ok(())
}

/// Says the node listens: where, its profile, metrics and bootstrap (one JSON event with
/// --json).
fn announce(
    a: &Args,
    fabric: &Fabric,
    joined: Option<&hyperfabric::membership::Joined>,
    metrics_addr: Option<&str>,
) {
    let profile = fabric.config().profile;
    let node = fabric.node_id();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"event": "listening", "node": node, "addr": fabric.local_addr().to_string(), "profile": profile.as_str(), "metrics": metrics_addr, "bootstrap": joined.map(bootstrap_report), "effective_config": fabric.effective_config(), "predictor": fabric.predictor_model()})
        );
        return;
    }
    println!(
        "{} listening on {} (fabric {}, profile {profile}); Ctrl-C to stop",
        node,
        fabric.local_addr(),
        fabric.config().name
    );
    if let Some(addr) = metrics_addr {
        println!("metrics at http://{addr}/metrics");
    }
    if let Some(j) = joined {
        println!(
            "bootstrapped from {:?} as rank {} of {} through {}",
            j.launch.source, j.launch.rank, j.launch.world_size, j.directory
        );
    }
}

/// Serves until Ctrl-C (`stop_rx`): the alert watcher and the reader with [alerts] and
/// --read-all, the stats file, SIGHUP retraining, membership changes printed.
fn serve_until_stopped(
    a: &Args,
    fabric: &Fabric,
    joined: Option<&hyperfabric::membership::Joined>,
    stop_rx: &mpsc::Receiver<()>,
) {
    let node = fabric.node_id();
    let read_all_on = a.read_all || a.boot.check_all_to_all.is_some();
    // With [alerts], a watcher measures this node and its neighbours until shutdown.
    let stop = hyperfabric::alert::watch::Stop::new();
    let read_stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        if let Some(alerts) = &fabric.config().alerts {
            s.spawn(|| {
                if let Err(e) = hyperfabric::alert::watch::run(fabric, alerts, &stop) {
                    tracing::error!("alerts are off: {e}");
                }
            });
        }
        if read_all_on {
            s.spawn(|| read_all(fabric, &read_stop));
        }
        let mut members = fabric.known_nodes();
        if joined.is_some() {
            print_members(node, &members, joined, a.json);
        }
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            stop_rx.recv_timeout(std::time::Duration::from_millis(100))
        {
            if let Some(path) = &a.stats_file {
                write_stats(fabric, path);
            }
            if hyperfabric::sys::signal::take_hangup() {
                retrain(fabric, a.json);
            }
            let now = fabric.known_nodes();
            if joined.is_some() && now != members {
                members = now;
                print_members(node, &members, joined, a.json);
            }
        }
        if let Some(path) = &a.stats_file {
            write_stats(fabric, path);
        }
        stop.stop();
        read_stop.store(true, std::sync::atomic::Ordering::Release);
    });
}

/// SIGHUP: trains the predictor on `routing.history` again and says what it holds now
/// (a JSON event with --json). A failure is reported; the node keeps serving.
fn retrain(fabric: &Fabric, json: bool) {
    use std::io::Write;
    let (event, text) = match fabric.train_predictor_from_history() {
        Ok(t) => {
            let again = match t.started_over {
                true => ", the file was truncated or replaced: read from its start",
                false => "",
            };
            let text = format!(
                "predictor trained from {} ({} samples appended since byte {}{again}; {} learned, trained: {})",
                t.history.display(),
                t.lines,
                t.from_byte,
                t.predictor.samples,
                t.predictor.trained
            );
            let event = serde_json::json!({"event": "predictor_trained", "node": fabric.node_id(), "history": t.history, "lines": t.lines, "from_byte": t.from_byte, "started_over": t.started_over, "predictor": t.predictor});
            (event, text)
        }
        Err(e) => {
            tracing::warn!("SIGHUP: the predictor was not retrained: {e}");
            let event = serde_json::json!({"event": "predictor_training_failed", "node": fabric.node_id(), "error": e.to_string(), "predictor": fabric.predictor_model()});
            (event, format!("predictor not retrained: {e}"))
        }
    };
    // stdout may be closed by whoever started us: nothing to tell then.
    let mut out = std::io::stdout();
    let _ = match json {
        true => writeln!(out, "{event}"),
        false => writeln!(out, "{text}"),
    };
}

fn bootstrap_report(j: &hyperfabric::membership::Joined) -> serde_json::Value {
    serde_json::json!({"launch": j.launch, "directory": j.directory, "store": j.store.map(|a| a.to_string()), "etcd": j.etcd})
}

/// A line on stdout whenever membership changed the nodes this node knows (with JSON, also
/// how the directory was read: on the watch's word, by polling, by resync).
fn print_members(
    node: &str,
    members: &[String],
    joined: Option<&hyperfabric::membership::Joined>,
    json: bool,
) {
    match json {
        true => println!(
            "{}",
            serde_json::json!({"event": "members", "node": node, "nodes": members, "reads": joined.map(|j| j.reads())})
        ),
        false => println!("members: {}", members.join(", ")),
    }
}

/// Receives until `stop`, reading every byte of every message (XOR over u64 words).
fn read_all(fabric: &Fabric, stop: &std::sync::atomic::AtomicBool) {
    let mut acc = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        match fabric.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(msg) => {
                let words = msg.payload.chunks_exact(8);
                acc ^= words.remainder().iter().fold(0, |x, &b| x ^ u64::from(b));
                acc ^= words.fold(0, |x, w| {
                    x ^ w.try_into().map(u64::from_ne_bytes).unwrap_or_default()
                });
            }
            Err(hyperfabric::Error::Timeout { .. }) => {}
            Err(_) => break,
        }
    }
    std::hint::black_box(acc);
}

/// The `--metrics` HTTP endpoint: one thread answering scrapes (a scrape renders a fresh
/// snapshot; the node itself never waits for it).
struct MetricsServer {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    fn start(addr: SocketAddr, fabric: &Arc<Fabric>) -> CliResult<MetricsServer> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| CliError::failed(format!("--metrics: cannot listen on {addr}: {e}")))?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let (srv, fabric) = (Arc::clone(&server), Arc::clone(fabric));
        let thread = std::thread::Builder::new()
            .name("hf-metrics-http".into())
            .spawn(move || {
                for request in srv.incoming_requests() {
                    let response = answer(&fabric, request.method(), request.url());
                    if let Err(e) = request.respond(response) {
                        tracing::debug!("metrics scrape: {e}");
                    }
                }
            })
            .map_err(|e| CliError::failed(format!("cannot spawn the metrics thread: {e}")))?;
        tracing::info!(%addr, "serving metrics at /metrics");
        Ok(MetricsServer {
            addr,
            server,
            thread: Some(thread),
        })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Body = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn answer(fabric: &Fabric, method: &tiny_http::Method, url: &str) -> Body {
    let path = url.split('?').next().unwrap_or(url);
    let text = |code: u16, ctype: &str, body: String| {
        let mut r = tiny_http::Response::from_string(body).with_status_code(code);
        if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", ctype) {
            r = r.with_header(h);
        }
        r
    };
    if *method != tiny_http::Method::Get {
        return text(405, "text/plain", "only GET\n".into());
    }
    match path {
        "/metrics" => {
            let body = hyperfabric::metrics::prometheus::render(&fabric.metrics());
            text(200, hyperfabric::metrics::prometheus::CONTENT_TYPE, body)
        }
        "/metrics.json" => match serde_json::to_string_pretty(&fabric.metrics()) {
            Ok(body) => text(200, "application/json", body),
            Err(e) => text(500, "text/plain", format!("{e}\n")),
        },
        _ => text(404, "text/plain", "try /metrics or /metrics.json\n".into()),
    }
}
