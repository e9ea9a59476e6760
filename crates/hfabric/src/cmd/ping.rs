//! `hfabric ping`: round trips to a node.

use crate::common::{fmt_ns, CliResult, FabricArgs};
use hyperfabric::{PingOptions, PingStats};
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub fabric: FabricArgs,
    /// The node that pings (runs in this process).
    #[arg(long, value_name = "ID")]
    pub from: String,
    /// The node to ping (must be running: `hfabric serve`).
    #[arg(value_name = "DST")]
    pub to: String,
    /// Number of timed pings.
    #[arg(long, default_value_t = 10)]
    pub count: u64,
    /// Payload bytes per ping.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Untimed pings first, to warm caches and the connection.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Pause between pings, in milliseconds (outside the timed region).
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// How long to wait for each pong, in milliseconds, before counting it lost.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Print the statistics as JSON (with the effective configuration and the machine).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> CliResult {
    let cfg = a.fabric.load()?;
    if cfg.node(&a.to).is_some() && cfg.link_between(&a.from, &a.to).is_none() {
        // As `send` does: traffic goes over the file's links, and there is none here.
        return Err(crate::common::CliError::usage(format!(
            "no link between `{}` and `{}` in {}: ping measures a link (send would refuse too); \
             `hfabric route` shows the path through the fabric",
            a.from,
            a.to,
            a.fabric.config.display()
        )));
    }
    let fabric = crate::common::start_client_with(cfg, &a.from, a.fabric.transport.into())?;
    let opts = PingOptions::new()
        .size(a.size)
        .count(a.count)
        .warmup(a.warmup)
        .interval(Duration::from_millis(a.interval_ms))
        .timeout(Duration::from_millis(a.timeout_ms));
    let stats = fabric.ping(&a.to, opts)?;
    if a.json {
        crate::context::print_report(&stats, Some(fabric.config()))?;
    } else {
        print_ping(&a.from, &stats);
    }
    if stats.received == 0 {
        return Err(crate::common::CliError::failed(format!(
            "no pong from {}",
            a.to
        )));
    }
    Ok(())
}

pub fn print_ping(from: &str, s: &PingStats) {
    println!(
        "ping {from} -> {} over {}: {} B payload, {} sent, {} received, {:.2}% loss",
        s.peer, s.transport, s.size_bytes, s.sent, s.received, s.loss_pct
    );
    println!(
        "one-way latency: min {}  median {}  mean {}  p99 {}  p99.9 {}  max {}  stddev {}",
        fmt_ns(s.min_ns as f64),
        fmt_ns(s.median_ns as f64),
        fmt_ns(s.mean_ns),
        fmt_ns(s.p99_ns as f64),
        fmt_ns(s.p999_ns as f64),
        fmt_ns(s.max_ns as f64),
        fmt_ns(s.stddev_ns)
    );
}
