//! `hfabric serve`: host one node until interrupted.

use crate::common::{CliError, CliResult, FabricArgs};
use hyperfabric::Fabric;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub fabric: FabricArgs,
    /// The node this process hosts.
    #[arg(long, short = 'n', value_name = "ID")]
    pub node: String,
    /// Write received transfers as files here (temporary file, fsync, rename when complete).
    /// Without it, received bytes are verified, acknowledged and dropped.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Listen here instead of the fabric file's address (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Pin this process (all its threads) to one CPU.
    #[arg(long, value_name = "CPU")]
    pub pin: Option<usize>,
    /// Print the ready line (and nothing else on stdout) as JSON: {"event":"listening",...}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> CliResult {
    if let Some(cpu) = a.pin {
        crate::cmd::bench::pin_current(cpu)?;
    }
    let cfg = a.fabric.load()?;
    let profile = cfg.profile;
    let mut builder = Fabric::from_config(cfg)
        .node(&a.node)
        .transport(a.fabric.transport.into());
    builder = match &a.store {
        Some(dir) => builder.store_to(dir),
        None => builder.discard_received(),
    };
    if let Some(addr) = a.listen {
        builder = builder.listen(addr);
    }
    let fabric = builder.start()?;
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| CliError::failed(format!("cannot install the signal handler: {e}")))?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"event": "listening", "node": a.node, "addr": fabric.local_addr().to_string(), "profile": profile.as_str()})
        );
    } else {
        println!(
            "{} listening on {} (fabric {}, profile {profile}); Ctrl-C to stop",
            a.node,
            fabric.local_addr(),
            fabric.config().name
        );
    }
    // With [alerts], a watcher measures this node and its neighbours until shutdown.
    let stop = hyperfabric::alert::watch::Stop::new();
    std::thread::scope(|s| {
        if let Some(alerts) = &fabric.config().alerts {
            s.spawn(|| {
                if let Err(e) = hyperfabric::alert::watch::run(&fabric, alerts, &stop) {
                    tracing::error!("alerts are off: {e}");
                }
            });
        }
        let _ = rx.recv();
        stop.stop();
    });
    let stats = fabric.stats();
    tracing::info!(
        received = stats.transfers_received,
        bytes = stats.bytes_received,
        rejected_connections = stats.connections_rejected,
        protocol_errors = stats.protocol_errors,
        peak_rss_bytes = crate::common::peak_rss_bytes(),
        "shutting down"
    );
    fabric.shutdown();
    Ok(())
}
