//! `hfabric monitor`: a live dashboard of a whole fabric. It joins the running fabric as an
//! observer (or as its own node when the file has an entry for `--from`), and every interval pings each node (latency, loss) and asks it for its metrics
//! (bandwidth, retransmissions, CPU, memory) over `MetricsRequest` frames.

mod anomalies;
mod render;
mod state;
mod tui;

use crate::common::{CliError, CliResult, FabricArgs};
use hyperfabric::{Fabric, PingOptions};
use state::{MonitorState, Observation};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub fabric: FabricArgs,
    /// The id the monitor joins as (default: `monitor`). When the fabric file has a node
    /// entry for it, the monitor runs that node as a member; otherwise it joins the running
    /// nodes as an observer, with no entry and no restart: it proves the fabric's
    /// credentials (the secret_file; a TLS certificate for ID; with node_keys the key
    /// `observer_keys` lists for ID, made with `hfabric keygen --node ID --dir DIR`), the
    /// nodes answer its pings and metrics requests only, and it shows every node of the file.
    #[arg(long, value_name = "ID", default_value = "monitor")]
    pub from: String,
    /// Nodes to watch, comma separated (default: every node of the file but `--from`).
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Time between rounds: 500ms, 1s, 2.5s, or plain seconds.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Pings per node per round.
    #[arg(long, default_value_t = 5)]
    pub pings: u64,
    /// Take `--samples` rounds, print one snapshot and exit (the dashboard as text, or JSON
    /// with --json).
    #[arg(long)]
    pub once: bool,
    /// Rounds `--once` takes before printing (two or more measure rates over an interval).
    #[arg(long, default_value_t = 1)]
    pub samples: u64,
    /// With --once: print the snapshot as JSON.
    #[arg(long)]
    pub json: bool,
    /// Size of the `--once` text dashboard, WIDTHxHEIGHT.
    #[arg(long, default_value = "120x32", value_parser = parse_screen)]
    pub screen: (u16, u16),
    /// Write the collected series (every node and link, every round) to FILE as JSON on exit.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
}

pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1e-3)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 500ms or 1s)"))?;
    let secs = v * scale;
    if !(0.05..=3600.0).contains(&secs) {
        return Err(format!("interval `{s}` must be between 50ms and 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_screen(s: &str) -> Result<(u16, u16), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or("expected WIDTHxHEIGHT, e.g. 120x32")?;
    let n = |v: &str| v.parse::<u16>().ok().filter(|v| (10..=1000).contains(v));
    match (n(w), n(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("bad screen size `{s}` (10..1000 each way)")),
    }
}

pub fn run(a: Args) -> CliResult {
    let mut cfg = a.fabric.load()?;
    let ids: Vec<String> = cfg.nodes.iter().map(|n| n.id().to_owned()).collect();
    let from = a.from.clone();
    // The report shows the file as written, without the observer's own entry.
    let file_cfg = cfg.clone();
    let observer = join_as(a.fabric.transport, &from, &mut cfg, &ids)?;
    let nodes = watched(&a.nodes, &from, &ids)?;
    let fabric_name = cfg.name.clone();
    let alerts = cfg.alerts.clone().unwrap_or_default();
    let fabric = if observer {
        crate::common::start_observer(cfg, &from)?
    } else {
        crate::common::start_client_with(cfg, &from, a.fabric.transport.into())?
    };
    let interval_ms = a.interval.as_millis() as u64;
    let mut state = MonitorState::new(&fabric_name, &from, interval_ms, &nodes, &alerts);
    let started = Instant::now();
    let sampler = Sampler {
        fabric: &fabric,
        nodes: &nodes,
        started,
        pings: a.pings.max(1),
        timeout: a
            .interval
            .clamp(Duration::from_millis(300), Duration::from_secs(2)),
    };
    if a.once {
        for i in 0..a.samples.max(1) {
            if i > 0 {
                std::thread::sleep(a.interval);
            }
            state.ingest(sampler.round());
        }
        export(&a, &state)?;
        return if a.json {
            crate::context::print_report(&snapshot_json(&state), Some(&file_cfg))
        } else {
            let text = render::to_text(&state, a.screen.0, a.screen.1)?;
            print!("{text}");
            Ok(())
        };
    }
    let result = tui::run(&mut state, a.interval, || sampler.round());
    export(&a, &state)?;
    result
}

/// Whether `from` watches as an observer (it has no entry in the file): then this
/// process's copy of the file gets one (the running nodes never learn of it). Refused over
/// `--transport shm`, which nodes do not offer observers.
fn join_as(
    transport: crate::common::TransportArg,
    from: &str,
    cfg: &mut hyperfabric::config::FabricConfig,
    ids: &[String],
) -> CliResult<bool> {
    let observer = !ids.iter().any(|i| i == from);
    if !observer {
        return Ok(false);
    }
    if transport == crate::common::TransportArg::Shm {
        return Err(CliError::usage(format!(
            "--transport shm: `{from}` has no entry in the fabric file, so the monitor joins as \
             an observer, and nodes answer observers over TCP only"
        )));
    }
    eprintln!(
        "hfabric: the fabric file has no node `{from}`, so the monitor joins the running \
         nodes as an observer `{from}` (read-only; every node of the file is watched)"
    );
    cfg.nodes.push(hyperfabric::config::NodeConfig {
        signature: hyperfabric::node::NodeSignature::new(
            from,
            hyperfabric::node::HardwareType::CpuCluster,
        ),
        listen: None,
        zone: None,
        host: None,
    });
    Ok(true)
}

/// The nodes watched: those of `--nodes` (each must be in the file), or every other node.
fn watched(asked: &[String], from: &str, ids: &[String]) -> CliResult<Vec<String>> {
    if asked.is_empty() {
        return Ok(ids.iter().filter(|i| *i != from).cloned().collect());
    }
    if let Some(bad) = asked.iter().find(|n| !ids.contains(n)) {
        return Err(CliError::usage(format!(
            "--nodes: `{bad}` is not a node of the fabric file"
        )));
    }
    Ok(asked.to_vec())
}

fn export(a: &Args, state: &MonitorState) -> CliResult {
    let Some(path) = &a.export else { return Ok(()) };
    let text = serde_json::to_vec_pretty(state).map_err(|e| CliError::failed(e.to_string()))?;
    std::fs::write(path, text)
        .map_err(|e| CliError::failed(format!("--export: writing {}: {e}", path.display())))
}

/// `--once --json`: the last round's figures, each node's full metrics, the anomalies.
fn snapshot_json(s: &MonitorState) -> serde_json::Value {
    let nodes: Vec<_> = s
        .nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "id": n.id, "reachable": n.reachable, "error": n.error,
                "now": n.now, "metrics": n.latest,
            })
        })
        .collect();
    serde_json::json!({
        "fabric": s.fabric, "from": s.from, "interval_ms": s.interval_ms, "rounds": s.rounds,
        "nodes": nodes, "anomalies": s.anomalies,
    })
}

/// Makes one round: every node pinged and asked for its metrics, in parallel.
struct Sampler<'a> {
    fabric: &'a Fabric,
    nodes: &'a [String],
    started: Instant,
    pings: u64,
    timeout: Duration,
}

impl Sampler<'_> {
    fn round(&self) -> Vec<Observation> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .nodes
                .iter()
                .map(|n| scope.spawn(move || self.observe(n)))
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        })
    }

    fn observe(&self, node: &str) -> Observation {
        let opts = PingOptions::new()
            .count(self.pings)
            .size(64)
            .timeout(self.timeout / 2);
        let ping_samples = match self.fabric.ping_samples(node, opts) {
            Ok((_, samples)) => samples,
            Err(e) => {
                tracing::debug!(node, "pings failed: {e}");
                Vec::new()
            }
        };
        let metrics = self
            .fabric
            .node_metrics(node, self.timeout)
            .map_err(|e| e.to_string());
        Observation {
            node: node.to_owned(),
            at_ms: self.started.elapsed().as_millis() as u64,
            ping_samples,
            pings_sent: self.pings,
            metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_screens_parse() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("soon").is_err());
        assert_eq!(parse_screen("120x32"), Ok((120, 32)));
        assert!(parse_screen("120").is_err());
        assert!(parse_screen("5x5").is_err());
    }
}
