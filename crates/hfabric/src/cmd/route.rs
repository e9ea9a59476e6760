//! `hfabric route`: the path a strategy picks between two nodes of a fabric file.

use crate::common::{fmt_ns, CliError, CliResult};
use hyperfabric::config::FabricConfig;
use hyperfabric::route::{Route, RouteError, Router, Strategy, Topology};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// The transport `--transport auto` takes on the hop `from` -> `to`, by the rule the node
/// applies: shared memory when the peer listens on loopback or the file puts both on one
/// `host`, TCP otherwise.
fn hop_transport(cfg: &FabricConfig, from: &str, to: &str) -> &'static str {
    let loopback = (cfg.node(to).and_then(|n| n.listen)).is_some_and(|a| a.ip().is_loopback());
    let host = |id: &str| cfg.node(id).and_then(|n| n.host.clone());
    let same_host = host(from).is_some() && host(from) == host(to);
    if loopback || same_host {
        "shm"
    } else {
        "tcp"
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// The fabric file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Source node id.
    #[arg(long)]
    pub from: String,
    /// Destination node id.
    #[arg(long)]
    pub to: String,
    /// shortest_path, lowest_latency, highest_bandwidth, load_balanced, predictive or
    /// quantum_optimized.
    #[arg(long, short = 's', default_value = "lowest_latency")]
    pub strategy: Strategy,
    /// Refuse quantum_optimized routes below this end-to-end fidelity.
    #[arg(long, value_name = "F")]
    pub fidelity_threshold: Option<f64>,
    /// Train the predictive strategy first from a JSON-lines history of transfers.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Print the route as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct HopReport<'a> {
    from: &'a str,
    to: &'a str,
    latency_ns: u64,
    bandwidth_gbps: f64,
    cost: f64,
    utilisation: f64,
    transport: &'static str,
}

#[derive(Serialize)]
struct RouteReport<'a> {
    from: &'a str,
    to: &'a str,
    strategy: Strategy,
    nodes: &'a [String],
    hops: Vec<HopReport<'a>>,
    latency_ns: u64,
    bandwidth_gbps: Option<f64>,
    cost: f64,
    fidelity: Option<f64>,
    predicted_latency_ns: Option<f64>,
}

fn report<'a>(a: &'a Args, r: &'a Route, cfg: &FabricConfig) -> RouteReport<'a> {
    let hops = r.hops.iter().map(|h| HopReport {
        from: &h.from,
        to: &h.to,
        latency_ns: h.latency_ns,
        bandwidth_gbps: h.bandwidth_gbps,
        cost: h.cost,
        utilisation: h.utilisation,
        transport: hop_transport(cfg, &h.from, &h.to),
    });
    RouteReport {
        from: &a.from,
        to: &a.to,
        strategy: r.strategy,
        nodes: &r.nodes,
        hops: hops.collect(),
        latency_ns: r.latency_ns,
        bandwidth_gbps: r.bandwidth_gbps.is_finite().then_some(r.bandwidth_gbps),
        cost: r.cost,
        fidelity: r.fidelity,
        predicted_latency_ns: r.predicted_latency_ns,
    }
}

fn route_error(e: RouteError) -> CliError {
    if e.is_usage() {
        CliError::usage(e.to_string())
    } else {
        CliError::failed(e.to_string())
    }
}

pub fn run(a: Args) -> CliResult {
    let cfg = FabricConfig::from_file(&a.config)?;
    let mut router = Router::new(Topology::from_config(&cfg));
    // The file's [routing] first (predictor knobs, fidelity threshold); the flags win.
    router.configure(&cfg.routing);
    if let Some(t) = a.fidelity_threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(CliError::usage(format!(
                "--fidelity-threshold must be in 0..=1 (got {t})"
            )));
        }
        router.set_fidelity_threshold(t);
    }
    if let Some(path) = &a.history {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("{}: cannot read: {e}", path.display())))?;
        router
            .train_from_jsonl(&text)
            .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
    }
    let route = router
        .route(&a.from, &a.to, a.strategy, Instant::now())
        .map_err(route_error)?;
    if a.json {
        return crate::context::print_report(&report(&a, &route, &cfg), Some(&cfg));
    }
    print!("{}", text(&route, &cfg));
    Ok(())
}

fn text(r: &Route, cfg: &FabricConfig) -> String {
    let mut out = format!(
        "Route {} -> {} ({}): {} hop{}\n",
        r.nodes.first().map_or("?", String::as_str),
        r.nodes.last().map_or("?", String::as_str),
        r.strategy,
        r.hops.len(),
        if r.hops.len() == 1 { "" } else { "s" }
    );
    let w = r.nodes.iter().map(String::len).max().unwrap_or(4).max(4);
    out.push_str(&format!(
        "  {:>3}  {:<w$}  {:<w$}  {:>10}  {:>12}  {:>6}  {:>5}  Transport\n",
        "#", "From", "To", "Latency", "Bandwidth", "Cost", "Util"
    ));
    for (i, h) in r.hops.iter().enumerate() {
        out.push_str(&format!(
            "  {:>3}  {:<w$}  {:<w$}  {:>10}  {:>7} Gbit/s  {:>6}  {:>4.0}%  {}\n",
            i + 1,
            h.from,
            h.to,
            fmt_ns(h.latency_ns as f64),
            h.bandwidth_gbps,
            h.cost,
            h.utilisation * 100.0,
            hop_transport(cfg, &h.from, &h.to)
        ));
    }
    let bw = if r.bandwidth_gbps.is_finite() {
        format!("{} Gbps", r.bandwidth_gbps)
    } else {
        "-".into()
    };
    out.push_str(&format!(
        "Total: latency {}, bottleneck {bw}, cost {}",
        fmt_ns(r.latency_ns as f64),
        r.cost
    ));
    if let Some(f) = r.fidelity {
        out.push_str(&format!(", fidelity {f:.4}"));
    }
    if let Some(p) = r.predicted_latency_ns {
        out.push_str(&format!(", predicted latency {}", fmt_ns(p)));
    }
    out.push('\n');
    out
}
