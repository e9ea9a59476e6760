//! `hfabric serve --bootstrap` / `--membership`: join a fabric from the job launcher's
//! variables (or explicit flags) through the rendezvous store or etcd, and optionally
//! check it all-to-all.

use crate::common::{CliError, CliResult};
use hyperfabric::bootstrap::{Explicit, Launch, Mode};
use hyperfabric::membership::{JoinOptions, Joined};
use hyperfabric::{Fabric, FabricBuilder, SendOptions};
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone, Debug)]
pub struct BootstrapArgs {
    /// Join without a full fabric file: read rank, world size and the rendezvous store
    /// (MASTER_ADDR:MASTER_PORT) from `explicit` flags, `torchrun` (RANK, WORLD_SIZE,
    /// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), `slurm` (SLURM_PROCID,
    /// SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID, SLURM_JOB_NODELIST; the store on the
    /// first host unless MASTER_ADDR is set) or `mpi` (OMPI_COMM_WORLD_RANK, _SIZE,
    /// _LOCAL_RANK, plus MASTER_ADDR/PORT); `auto` takes the first present in that order.
    /// Rank 0 serves the store; the node id is rank-N unless --node is given.
    #[arg(long, value_name = "MODE")]
    pub bootstrap: Option<Mode>,
    /// Keep node records in etcd (etcd://HOST:PORT/prefix, its v3 JSON gateway over plain
    /// HTTP; etcds://HOST:PORT/prefix over TLS, see --etcd-cacert) instead of
    /// rank 0's store: each under a lease of --lease seconds, so a dead node leaves every
    /// topology when it runs out; joins and leaves come through etcd's watch on the prefix
    /// (read every 200 ms instead while the watch is down, and every 60 s anyway).
    /// With --bootstrap the launcher gives rank and world size (no store is served); without
    /// it, --node names this node, which waits for --world-size nodes (default 1: itself).
    #[arg(long, value_name = "URL")]
    pub membership: Option<hyperfabric::membership::etcd::EtcdUrl>,
    /// --etcd-cacert, --etcd-cert, --etcd-key, --etcd-user, --etcd-password-file.
    #[command(flatten)]
    pub etcd: Box<super::etcd_args::EtcdArgs>,
    /// This process's rank (over the launcher's variable).
    #[arg(long, value_name = "N", requires = "bootstrap")]
    pub rank: Option<u32>,
    /// How many nodes the fabric starts with (over the launcher's variable; with
    /// --membership alone, how many start-up waits for).
    #[arg(long, value_name = "N")]
    pub world_size: Option<u32>,
    /// This process's rank on its host (over the launcher's variable; reported).
    #[arg(long, value_name = "N", requires = "bootstrap")]
    pub local_rank: Option<u32>,
    /// The rendezvous store, HOST:PORT (over MASTER_ADDR / MASTER_PORT). Not with
    /// --membership, where etcd holds the records.
    #[arg(long, value_name = "HOST:PORT", requires = "bootstrap", conflicts_with = "membership", value_parser = parse_master)]
    pub master: Option<(String, u16)>,
    /// Seconds start-up waits for the whole world to publish itself [default: 60].
    /// With --bootstrap or --membership.
    #[arg(long, value_name = "SECS")]
    pub bootstrap_timeout: Option<u64>,
    /// Seconds a node's record outlives its last keep-alive: a killed node leaves every
    /// other node's topology within this (1..=600) [default: 5]. With --bootstrap or
    /// --membership.
    #[arg(long, value_name = "SECS")]
    pub lease: Option<u64>,
    /// Once the fabric formed, send BYTES to every other node and check, byte for byte,
    /// what every other node sends here; report it (--json: an "all_to_all" line) and
    /// exit 1 if any transfer fails. Received messages are then read and dropped.
    /// With --bootstrap or --membership.
    #[arg(long, value_name = "BYTES", conflicts_with = "store")]
    pub check_all_to_all: Option<usize>,
}

/// Largest --check-all-to-all (one buffer per peer is held at once).
pub const CHECK_BYTES_MAX: usize = 256 << 20;

fn parse_master(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s.rsplit_once(':').ok_or("expected HOST:PORT")?;
    let port: u16 = port.parse().map_err(|_| format!("bad port `{port}`"))?;
    if host.is_empty() || port == 0 {
        return Err("expected HOST:PORT with a port above 0".into());
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

impl BootstrapArgs {
    /// True when this process joins through a directory (--bootstrap or --membership).
    pub fn joins(&self) -> bool {
        self.bootstrap.is_some() || self.membership.is_some()
    }

    /// Flags that only mean something when joining are refused otherwise, naming them
    /// (`file_url`: the fabric file's membership.url makes this node join).
    pub fn check_flags(&self, file_url: bool) -> CliResult<()> {
        if self.joins() || file_url {
            return Ok(());
        }
        let given = [
            ("--world-size", self.world_size.is_some()),
            ("--bootstrap-timeout", self.bootstrap_timeout.is_some()),
            ("--lease", self.lease.is_some()),
            ("--check-all-to-all", self.check_all_to_all.is_some()),
            ("--etcd-cacert", self.etcd.etcd_cacert.is_some()),
            ("--etcd-cert", self.etcd.etcd_cert.is_some()),
            ("--etcd-key", self.etcd.etcd_key.is_some()),
            ("--etcd-user", self.etcd.etcd_user.is_some()),
            (
                "--etcd-password-file",
                self.etcd.etcd_password_file.is_some(),
            ),
        ];
        match given.iter().find(|(_, set)| *set) {
            Some((flag, _)) => Err(CliError::usage(format!(
                "{flag} applies to a node that joins: give --bootstrap or --membership (or \
                 membership.url in the fabric file)"
            ))),
            None => Ok(()),
        }
    }

    /// The launch this process is part of (explicit flags over the environment).
    pub fn launch(&self, mode: Mode) -> CliResult<Launch> {
        let explicit = Explicit {
            rank: self.rank,
            world_size: self.world_size,
            local_rank: self.local_rank,
            master: self.master.clone(),
        };
        Launch::detect(mode, &explicit, &|k| std::env::var(k).ok())
            .map_err(|e| CliError::usage(format!("--bootstrap: {e}")))
    }

    /// Joins: from the launcher with --bootstrap, else (--membership alone) as a node of a
    /// long-lived fabric that waits for --world-size nodes (default: only itself).
    pub fn join(
        &self,
        mode: Option<Mode>,
        file: Option<hyperfabric::config::FabricConfig>,
        node: Option<String>,
        listen: Option<std::net::SocketAddr>,
        customize: impl FnOnce(FabricBuilder) -> FabricBuilder,
    ) -> CliResult<Joined> {
        if let Some(n) = self.check_all_to_all.filter(|n| *n > CHECK_BYTES_MAX) {
            return Err(CliError::usage(format!(
                "--check-all-to-all {n}: at most {CHECK_BYTES_MAX} bytes"
            )));
        }
        let launch = match mode {
            Some(m) => self.launch(m)?,
            None => Launch::explicit(self.world_size.unwrap_or(1)),
        };
        let opts = JoinOptions {
            launch,
            etcd: self.membership.clone(),
            etcd_access: self.etcd.access()?,
            file,
            node_id: node,
            listen,
            timeout: Duration::from_secs(self.bootstrap_timeout.unwrap_or(60)),
            lease: Duration::from_secs(self.lease.unwrap_or(5)),
        };
        Ok(hyperfabric::membership::join(opts, customize)?)
    }
}

/// The bytes `src` sends `dst` in the check: differ per pair, so a misdelivery shows.
pub fn pattern(src: &str, dst: &str, len: usize) -> Vec<u8> {
    let seed = hyperfabric::wire::node_key(src) ^ hyperfabric::wire::node_key(dst).rotate_left(17);
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends to every peer while receiving from every peer; every byte compared.
pub fn check_all_to_all(fabric: &Fabric, bytes: usize) -> CliResult<serde_json::Value> {
    let me = fabric.node_id().to_owned();
    let peers: Vec<String> = fabric
        .known_nodes()
        .into_iter()
        .filter(|p| *p != me)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (sent, received) = std::thread::scope(|s| {
        let rx = s.spawn(|| receive_all(fabric, &peers, bytes, deadline));
        let sent: Result<(), String> = peers.iter().try_for_each(|p| {
            fabric
                .send(p, &pattern(&me, p, bytes), SendOptions::new())
                .map(|_| ())
                .map_err(|e| format!("sending to {p}: {e}"))
        });
        (
            sent,
            rx.join()
                .unwrap_or_else(|_| Err("the receiver panicked".into())),
        )
    });
    let failure = sent.err().or(received.err());
    let report = serde_json::json!({
        "event": "all_to_all", "node": me, "peers": peers, "bytes": bytes,
        "ok": failure.is_none(), "error": failure,
    });
    match &failure {
        Some(f) => {
            Err(CliError::failed(format!("all-to-all check failed: {f}"))).inspect_err(|_| {
                println!("{report}");
            })
        }
        None => Ok(report),
    }
}

fn receive_all(
    fabric: &Fabric,
    peers: &[String],
    bytes: usize,
    deadline: Instant,
) -> Result<(), String> {
    let me = fabric.node_id();
    let mut missing: std::collections::BTreeSet<&str> = peers.iter().map(String::as_str).collect();
    while !missing.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("nothing arrived from {missing:?}"));
        }
        let msg = fabric.recv_timeout(left.min(Duration::from_secs(1)));
        let msg = match msg {
            Ok(m) => m,
            Err(hyperfabric::Error::Timeout { .. }) => continue,
            Err(e) => return Err(format!("receiving: {e}")),
        };
        let src = msg.source.as_str();
        if !missing.remove(src) {
            return Err(format!("an unexpected transfer from {src}"));
        }
        if msg.payload[..] != pattern(src, me, bytes)[..] {
            return Err(format!("the bytes from {src} differ from what it sent"));
        }
    }
    Ok(())
}
