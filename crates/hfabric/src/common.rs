//! Pieces every subcommand shares: loading the fabric file with command-line overrides,
//! starting the local node, printing, and the mapping from errors to exit codes.

use clap::Args;
use hyperfabric::config::{FabricConfig, ProfileName, Tuning};
use hyperfabric::transport::TransportChoice;
use hyperfabric::{Error, Fabric};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A CLI failure with the exit code it deserves.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: u8,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: 2,
        }
    }
    pub fn failed(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: 1,
        }
    }
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> CliError {
        let code = match &e {
            e if e.is_usage() => 2,
            // What the user gave cannot be used (a port taken, a file missing or already
            // there, no permission): fix the command line, do not retry it.
            Error::Io { source, .. } if is_usage_io(source.kind()) => 2,
            _ => 1,
        };
        CliError {
            code,
            message: e.to_string(),
        }
    }
}

/// I/O failures caused by what the command line named, not by the fabric.
pub fn is_usage_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        kind,
        K::AddrInUse | K::AddrNotAvailable | K::NotFound | K::AlreadyExists | K::PermissionDenied
    )
}

impl CliError {
    /// An I/O error about `what` (a path, an address the user gave): exit 2 when the
    /// command line is at fault (see [`is_usage_io`]), 1 otherwise.
    pub fn io(what: impl fmt::Display, e: &std::io::Error) -> CliError {
        CliError {
            code: if is_usage_io(e.kind()) { 2 } else { 1 },
            message: format!("{what}: {e}"),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::failed(e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Options that choose and adjust the fabric file.
#[derive(Args, Clone, Debug)]
pub struct FabricArgs {
    /// The fabric file (TOML): nodes, links, zones, profile.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Replace the file's tuning by this profile's defaults: high_throughput or low_latency.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<ProfileName>,
    /// Reach node ID at ADDR instead of the file's address (repeatable), e.g. node-b=127.0.0.1:9000.
    #[arg(long = "peer", value_name = "ID=ADDR", value_parser = parse_peer)]
    pub peers: Vec<(String, SocketAddr)>,
    /// auto: shared memory with nodes of this host, TCP otherwise; or force tcp / shm.
    #[arg(long, value_enum, default_value = "auto")]
    pub transport: TransportArg,
}

pub fn parse_peer(s: &str) -> Result<(String, SocketAddr), String> {
    let (id, addr) = s.split_once('=').ok_or("expected ID=ADDR")?;
    let addr = addr
        .parse()
        .map_err(|e| format!("bad address `{addr}`: {e}"))?;
    Ok((id.to_owned(), addr))
}

impl FabricArgs {
    pub fn load(&self) -> CliResult<FabricConfig> {
        let cfg = FabricConfig::from_file(&self.config)?;
        apply_overrides(cfg, self.profile, &self.peers)
    }
}

pub fn apply_overrides(
    mut cfg: FabricConfig,
    profile: Option<ProfileName>,
    peers: &[(String, SocketAddr)],
) -> CliResult<FabricConfig> {
    // A different profile brings its own tuning; the file's own profile keeps the file's
    // overrides. The link throttle is a property of the test setup and always stays.
    if let Some(p) = profile.filter(|p| *p != cfg.profile) {
        let throttle = cfg.tuning.throttle_gbps;
        cfg.profile = p;
        cfg.tuning = Tuning::for_profile(p);
        cfg.tuning.throttle_gbps = throttle;
    }
    for (id, addr) in peers {
        cfg.set_listen(id, *addr)?;
    }
    Ok(cfg)
}

/// Starts `node` as a client: it listens on an ephemeral port of its configured address
/// (it only dials out, so it must not take the port its `serve` twin would use).
pub fn start_client(cfg: FabricConfig, node: &str) -> CliResult<Fabric> {
    start_client_with(cfg, node, TransportChoice::Auto)
}

/// [`start_client`] with a transport choice.
pub fn start_client_with(
    cfg: FabricConfig,
    node: &str,
    transport: TransportChoice,
) -> CliResult<Fabric> {
    let ip = cfg
        .node(node)
        .ok_or_else(|| {
            CliError::from(Error::NodeNotFound {
                node: node.to_owned(),
            })
        })?
        .listen
        .map_or_else(|| [127, 0, 0, 1].into(), |a| a.ip());
    let builder = Fabric::from_config(cfg)
        .node(node)
        .discard_received()
        .transport(transport);
    Ok(builder.listen(SocketAddr::new(ip, 0)).start()?)
}

/// Starts `node` as an observer: `cfg` is this process's copy of the file with an entry
/// added for it; the running nodes need none (see `Fabric::observer`).
pub fn start_observer(cfg: FabricConfig, node: &str) -> CliResult<Fabric> {
    let builder = Fabric::from_config(cfg)
        .node(node)
        .discard_received()
        .observer()
        .transport(TransportChoice::Tcp);
    Ok(builder
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .start()?)
}

/// `--transport` on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TransportArg {
    /// Shared memory with nodes on this host, TCP otherwise.
    #[default]
    Auto,
    /// TCP for every link, also between nodes of one host (e.g. to keep them under TLS).
    Tcp,
    /// Shared memory only (an error for nodes on other hosts).
    Shm,
}

impl From<TransportArg> for TransportChoice {
    fn from(t: TransportArg) -> TransportChoice {
        match t {
            TransportArg::Auto => TransportChoice::Auto,
            TransportArg::Tcp => TransportChoice::Tcp,
            TransportArg::Shm => TransportChoice::Shm,
        }
    }
}

pub fn print_json(value: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Peak resident set size of this process (Linux `VmHWM`), if readable.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    hyperfabric::metrics::kb_field(&status, "VmHWM:")
}

/// Human figures: 1234567 -> "1.23 ms".
pub fn fmt_ns(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.2} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

/// An error text without its repetitions: "node `x` is unreachable: node `x` is unreachable:
/// connect …" reads "node `x` is unreachable: connect …" (layers that each add the same context).
pub fn tidy_error(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// Gbit/s (10^9 bits) to GiB/s (2^30 bytes): the one conversion every report uses.
pub fn gbps_to_gib_per_s(gbps: f64) -> f64 {
    gbps * 1e9 / 8.0 / (1u64 << 30) as f64
}

pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(fmt_ns(950.0), "950 ns");
        assert_eq!(fmt_ns(27_400.0), "27.40 µs");
        assert_eq!(fmt_bytes(1 << 20), "1.00 MiB");
        assert_eq!(fmt_bytes(7), "7 B");
        assert!(parse_peer("b=127.0.0.1:1").is_ok());
        assert!(parse_peer("b").is_err());
        assert_eq!(
            tidy_error("node `b` is unreachable: node `b` is unreachable: connect: refused"),
            "node `b` is unreachable: connect: refused"
        );
        assert!((gbps_to_gib_per_s(8.0 * 1.073_741_824) - 1.0).abs() < 1e-9);
    }
}
