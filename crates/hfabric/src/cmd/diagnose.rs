//! `hfabric diagnose`: why is A → B slow? Pings at 64..8192 B, the route, per-hop latency,
//! jitter, loss and health, bottlenecks, the bandwidth-delay product, and recommendations
//! derived from those figures. This process runs as node `--from` (as `hfabric ping` does);
//! the other nodes of the route must be running.

use crate::common::{fmt_bytes, fmt_ns, CliError, CliResult, FabricArgs};
use hyperfabric::diagnose::{self, DiagnoseReport, Health, Limits, Plan};
use hyperfabric::route::Strategy;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub fabric: FabricArgs,
    /// The source node (runs in this process).
    #[arg(long, value_name = "ID")]
    pub from: String,
    /// The destination node (must be running, as must the relays of the route).
    #[arg(long, value_name = "ID")]
    pub to: String,
    /// Routing strategy whose route is diagnosed.
    #[arg(long, short = 's', default_value = "lowest_latency")]
    pub strategy: Strategy,
    /// Timed probes per series.
    #[arg(long, default_value_t = 15)]
    pub probes: u64,
    /// Also measure bulk throughput to every node of the route (slower).
    #[arg(long)]
    pub full: bool,
    /// Bytes of each bulk transfer with --full.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    pub full_bytes: usize,
    /// Write the report (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the report as JSON on stdout (with the effective configuration and the machine).
    #[arg(long)]
    pub json: bool,
}

/// `--full` sends bulk probes: into a node that stores what it receives they would leave
/// files behind, so such a destination is refused with the reason.
fn refuse_storing_destination(
    fabric: &hyperfabric::Fabric,
    to: &str,
    timeout: Duration,
) -> CliResult {
    // An unreachable destination is for the diagnosis to report, not this check.
    let Ok(m) = fabric.node_metrics(to, timeout) else {
        return Ok(());
    };
    if m.receives == "store" {
        return Err(CliError::usage(format!(
            "node `{to}` runs with --store: the --full bulk probes would be stored there as \
             files; diagnose without --full (pings only), or against a node served without --store"
        )));
    }
    Ok(())
}

pub fn run(a: Args) -> CliResult {
    if a.probes == 0 {
        return Err(CliError::usage("--probes must be at least 1"));
    }
    let cfg = a.fabric.load()?;
    let limits = Limits::from_config(&cfg);
    let timeout = Duration::from_millis(cfg.tuning.send_timeout_ms);
    let fabric = crate::common::start_client_with(cfg, &a.from, a.fabric.transport.into())?;
    let plan = Plan {
        strategy: a.strategy,
        probes: a.probes,
        full: a.full,
        full_bytes: a.full_bytes,
        timeout,
    };
    if a.full {
        refuse_storing_destination(&fabric, &a.to, timeout)?;
    }
    let measured = diagnose::measure(&fabric, &a.to, &plan)?;
    let report = diagnose::analyse(&measured, fabric.config(), &limits);
    let effective = fabric.config().clone();
    fabric.shutdown();
    // The file and --json hold the same document: the report with its context.
    let document = crate::context::with_context(&report, Some(&effective))?;
    if let Some(path) = &a.output {
        let text =
            serde_json::to_string_pretty(&document).map_err(|e| CliError::failed(e.to_string()))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| CliError::failed(format!("writing {}: {e}", path.display())))?;
    }
    if a.json {
        crate::common::print_json(&document)?;
    } else {
        print_report(&report);
    }
    if let Some(h) = report.hops.iter().find(|h| h.health == Health::Down) {
        return Err(CliError::failed(format!(
            "no probe through {} -> {} came back",
            h.from, h.to
        )));
    }
    Ok(())
}

fn opt_ns(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |n| fmt_ns(n as f64))
}

fn print_report(r: &DiagnoseReport) {
    println!(
        "diagnose {} -> {} (strategy {}): {}",
        r.from,
        r.to,
        r.strategy,
        r.route.join(" -> ")
    );
    print_sweep(r);
    print_hops(r);
    print_findings(r);
}

fn print_sweep(r: &DiagnoseReport) {
    println!("\nSize sweep (pings over the direct connection, one-way; routed = round trip of a transfer along the route)");
    println!(
        "{:>8}  {:>12}  {:>12}  {:>7}  {:>12}",
        "Size", "Ping median", "Ping p99", "Loss", "Routed RTT"
    );
    for p in &r.size_sweep {
        println!(
            "{:>8}  {:>12}  {:>12}  {:>6.2}%  {:>12}{}",
            fmt_bytes(p.size_bytes as u64),
            opt_ns(p.ping_median_ns),
            opt_ns(p.ping_p99_ns),
            p.ping_loss_pct,
            opt_ns(p.routed_median_ns),
            p.note
                .as_deref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
    }
}

fn print_hops(r: &DiagnoseReport) {
    println!("\nHops (RTT to = round trip of a small routed transfer to the hop's end; adds = its growth over the previous hop)");
    println!(
        "{:>2}  {:<28} {:>10}  {:>10}  {:>10}  {:>10}  {:>6}  {:>6}  Health",
        "#", "Hop", "Config lat", "RTT to", "Adds", "Jitter", "Loss", "Util"
    );
    for (i, h) in r.hops.iter().enumerate() {
        println!(
            "{:>2}  {:<28} {:>10}  {:>10}  {:>10}  {:>10}  {:>5.1}%  {:>6}  {:?}{}",
            i + 1,
            format!("{} -> {}", h.from, h.to),
            fmt_ns(h.configured_latency_ns as f64),
            opt_ns(h.rtt_to_ns),
            h.latency_ns
                .map_or_else(|| "-".into(), |l| fmt_ns(l as f64)),
            opt_ns(h.jitter_ns),
            h.loss_pct,
            h.utilisation
                .map_or_else(|| "-".into(), |u| format!("{:.0}%", u * 100.0)),
            h.health,
            h.path_taken
                .as_ref()
                .map(|p| format!("  (took {})", p.join(" -> ")))
                .unwrap_or_default()
        );
    }
}

fn print_findings(r: &DiagnoseReport) {
    for b in &r.bottlenecks {
        println!(
            "\nBottleneck ({}): {} -> {} {}",
            b.kind, b.from, b.to, b.reason
        );
    }
    if let Some(g) = r.throughput_gbps {
        println!("Throughput end to end: {g:.2} Gbit/s");
    }
    if let Some(b) = &r.bdp {
        println!(
            "Bandwidth-delay product: {:.2} Gbit/s ({}) x {} = {} -> buffer {} (socket_buffer_bytes {})",
            b.bandwidth_gbps,
            b.bandwidth_source,
            fmt_ns(b.rtt_ns as f64),
            fmt_bytes(b.bytes),
            fmt_bytes(b.buffer_bytes),
            fmt_bytes(b.socket_buffer_bytes as u64)
        );
    }
    println!("\nRecommendations");
    if r.recommendations.is_empty() {
        println!("  none: every figure is within the limits");
    }
    for x in &r.recommendations {
        println!("  [{:?}] {}: {}", x.priority, x.category, x.issue);
        println!("      -> {}", x.recommendation);
    }
}
