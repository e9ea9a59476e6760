//! The benchmark report: the stable JSON schema (`hyperfabric.bench.v1`, documented in
//! docs/bench.md) and the guide's text report.

use super::Target;
use crate::common::fmt_ns;
use hyperfabric::config::ProfileName;
use hyperfabric::transport::TransportKind;
use serde::Serialize;

pub const SCHEMA: &str = "hyperfabric.bench.v1";

#[derive(Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub fabric: String,
    pub from: String,
    pub to: String,
    pub started_local_fabric: bool,
    pub pinned_cpus: Vec<usize>,
    pub machine: crate::context::Machine,
    /// The effective configuration: the fabric file after command-line overrides.
    pub config: hyperfabric::config::FabricConfig,
    pub tests: Tests,
}

#[derive(Serialize, Default)]
pub struct Tests {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyTest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<ThroughputTest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<ConcurrentTest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<QosTest>,
}

#[derive(Serialize)]
pub struct QosTest {
    pub profile: ProfileName,
    pub transport: TransportKind,
    pub size_bytes: usize,
    pub iterations: u64,
    pub ping_priority: hyperfabric::Priority,
    pub bulk_priority: hyperfabric::Priority,
    /// Pings with the link idle.
    pub idle: LatencyFigures,
    /// Pings while the bulk stream runs, QoS on.
    pub loaded_qos_on: LatencyFigures,
    /// The same with QoS off (one connection, no priority among writers).
    pub loaded_qos_off: LatencyFigures,
    pub bulk_gbit_per_s_qos_on: f64,
    pub bulk_gbit_per_s_qos_off: f64,
    /// Why the figures may not show QoS helping (absent when nothing needs saying).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Serialize)]
pub struct LatencyTest {
    pub profile: ProfileName,
    pub transport: TransportKind,
    pub size_bytes: usize,
    pub iterations: u64,
    pub warmup: u64,
    pub interval_us: u64,
    pub figures: LatencyFigures,
    /// Kept for plots; not part of the JSON.
    #[serde(skip)]
    pub samples_ns: Vec<u64>,
}

/// One-way latency (half the round trip), nanoseconds.
#[derive(Serialize)]
pub struct LatencyFigures {
    pub sent: u64,
    pub received: u64,
    pub loss_pct: f64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
    pub median_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub stddev_ns: f64,
}

#[derive(Serialize)]
pub struct ThroughputTest {
    pub profile: ProfileName,
    pub transport: TransportKind,
    /// `--compression` of every transfer.
    pub compression: String,
    pub priority: hyperfabric::Priority,
    pub payload: super::throughput::PayloadKind,
    /// `--api`: copy (`send`) or loan (`loan` + `send_loaned`).
    pub api: super::throughput::Api,
    /// `--verify-payload`: pool-descriptor payloads checksummed end to end too.
    pub verify_payload: bool,
    pub inflight: usize,
    pub seconds_per_size: f64,
    pub results: Vec<ThroughputResult>,
}

#[derive(Serialize)]
pub struct ThroughputResult {
    pub message_bytes: u64,
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
    pub messages_per_s: f64,
    /// Mean time between send and end-to-end acknowledgement of one transfer.
    pub avg_transfer_ns: f64,
    pub median_transfer_ns: u64,
    pub p99_transfer_ns: u64,
}

impl ThroughputResult {
    pub fn new(size: u64, transfer_ns: &mut [u64], seconds: f64) -> Self {
        transfer_ns.sort_unstable();
        let n = transfer_ns.len();
        let pct = |per_mille: usize| {
            if n == 0 {
                0
            } else {
                transfer_ns[(per_mille * n).div_ceil(1000).clamp(1, n) - 1]
            }
        };
        let messages = n as u64;
        let bytes = messages * size;
        ThroughputResult {
            message_bytes: size,
            messages,
            bytes,
            seconds,
            gbit_per_s: bytes as f64 * 8.0 / seconds / 1e9,
            messages_per_s: messages as f64 / seconds,
            avg_transfer_ns: if n == 0 {
                0.0
            } else {
                transfer_ns.iter().sum::<u64>() as f64 / n as f64
            },
            median_transfer_ns: pct(500),
            p99_transfer_ns: pct(990),
        }
    }
}

#[derive(Serialize)]
pub struct ConcurrentTest {
    pub profile: ProfileName,
    pub transport: TransportKind,
    /// `--compression` of every transfer.
    pub compression: String,
    pub priority: hyperfabric::Priority,
    /// `--verify-payload`: pool-descriptor payloads checksummed end to end too.
    pub verify_payload: bool,
    pub streams: usize,
    pub duration_s: f64,
    pub min_bytes: u64,
    pub max_bytes: u64,
    pub aggregate: StreamTotals,
    pub per_stream: Vec<StreamResult>,
}

#[derive(Serialize)]
pub struct StreamTotals {
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
}

#[derive(Serialize)]
pub struct StreamResult {
    pub stream: usize,
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
}

impl StreamResult {
    pub fn new(stream: usize, messages: u64, bytes: u64, seconds: f64) -> Self {
        StreamResult {
            stream,
            messages,
            bytes,
            seconds,
            gbit_per_s: bytes as f64 * 8.0 / seconds / 1e9,
        }
    }
}

impl ConcurrentTest {
    pub fn new(
        profile: ProfileName,
        transport: TransportKind,
        settings: (hyperfabric::Compression, hyperfabric::Priority, bool),
        duration_s: f64,
        per_stream: Vec<StreamResult>,
        seconds: f64,
    ) -> Self {
        let messages = per_stream.iter().map(|s| s.messages).sum();
        let bytes = per_stream.iter().map(|s| s.bytes).sum::<u64>();
        ConcurrentTest {
            profile,
            transport,
            compression: settings.0.to_string(),
            priority: settings.1,
            verify_payload: settings.2,
            streams: per_stream.len(),
            duration_s,
            min_bytes: super::concurrent::MIN_BYTES,
            max_bytes: super::concurrent::MAX_BYTES,
            aggregate: StreamTotals {
                messages,
                bytes,
                seconds,
                gbit_per_s: bytes as f64 * 8.0 / seconds / 1e9,
            },
            per_stream,
        }
    }
}

impl Report {
    pub fn new(
        t: &Target,
        started_local_fabric: bool,
        pinned_cpus: Vec<usize>,
        tests: Tests,
    ) -> Report {
        Report {
            schema: SCHEMA,
            fabric: t.base.name.clone(),
            from: t.from.clone(),
            to: t.to.clone(),
            started_local_fabric,
            pinned_cpus,
            machine: crate::context::machine(),
            config: crate::common::apply_overrides(t.base.clone(), None, &t.peers)
                .unwrap_or_else(|_| t.base.clone()),
            tests,
        }
    }

    pub fn print_text(&self) {
        println!("HyperFabric Performance Benchmark Report");
        println!("========================================");
        let origin = if self.started_local_fabric {
            "local fabric started by bench"
        } else {
            "configured fabric"
        };
        println!(
            "fabric {} ({origin}): {} -> {}",
            self.fabric, self.from, self.to
        );
        println!(
            "machine: {}, {} cores, Linux {}",
            self.machine.cpu_model, self.machine.cores, self.machine.kernel
        );
        if let Some(l) = &self.tests.latency {
            print_latency(l);
        }
        if let Some(t) = &self.tests.throughput {
            print_throughput(t);
        }
        if let Some(c) = &self.tests.concurrent {
            print_concurrent(c);
        }
        if let Some(q) = &self.tests.qos {
            print_qos(q);
        }
    }
}

fn print_latency(l: &LatencyTest) {
    let f = &l.figures;
    println!();
    println!(
        "Latency test ({} B payload, {} iterations after {} warm-up, profile {}, {})",
        l.size_bytes, l.iterations, l.warmup, l.profile, l.transport
    );
    println!("  one-way = half the round trip      ns          µs");
    for (name, v) in [
        ("min", f.min_ns as f64),
        ("median", f.median_ns as f64),
        ("mean", f.mean_ns),
        ("p99", f.p99_ns as f64),
        ("p99.9", f.p999_ns as f64),
        ("max", f.max_ns as f64),
        ("std dev", f.stddev_ns),
    ] {
        println!("  {name:<10} {v:>24.0} {:>11.2}", v / 1000.0);
    }
    println!(
        "  loss {:.2}% ({} of {} answered)",
        f.loss_pct, f.received, f.sent
    );
}

fn print_throughput(t: &ThroughputTest) {
    println!();
    println!(
        "Throughput test (profile {}, {}, {} transfers in flight, each acknowledged end to end)",
        t.profile, t.transport, t.inflight
    );
    println!(
        "  {:>10} {:>9} {:>10} {:>10} {:>12} {:>14}",
        "size", "messages", "Gbit/s", "msg/s", "avg time", "median time"
    );
    for r in &t.results {
        println!(
            "  {:>10} {:>9} {:>10.2} {:>10.0} {:>12} {:>14}",
            r.message_bytes,
            r.messages,
            r.gbit_per_s,
            r.messages_per_s,
            fmt_ns(r.avg_transfer_ns),
            fmt_ns(r.median_transfer_ns as f64)
        );
    }
}

fn print_concurrent(c: &ConcurrentTest) {
    println!();
    println!(
        "Concurrent test ({} streams, {:.0} s, sizes {}–{} B, profile {}, {})",
        c.streams, c.duration_s, c.min_bytes, c.max_bytes, c.profile, c.transport
    );
    for s in &c.per_stream {
        println!(
            "  stream {:>3}: {:>7} messages {:>9.2} Gbit/s",
            s.stream, s.messages, s.gbit_per_s
        );
    }
    println!(
        "  aggregate : {:>7} messages {:>9.2} Gbit/s",
        c.aggregate.messages, c.aggregate.gbit_per_s
    );
}

fn print_qos(q: &QosTest) {
    println!();
    println!(
        "QoS test ({} B {} pings while {} 1 MiB transfers saturate the link, profile {}, {})",
        q.size_bytes, q.ping_priority, q.bulk_priority, q.profile, q.transport
    );
    println!(
        "  {:<22} {:>12} {:>12} {:>12}",
        "one-way latency", "median", "p99", "bulk Gbit/s"
    );
    let row = |name: &str, f: &LatencyFigures, bulk: Option<f64>| {
        let bulk = bulk.map_or_else(|| "-".to_owned(), |g| format!("{g:.2}"));
        println!(
            "  {name:<22} {:>12} {:>12} {bulk:>12}",
            fmt_ns(f.median_ns as f64),
            fmt_ns(f.p99_ns as f64)
        );
    };
    row("idle link", &q.idle, None);
    row(
        "loaded, QoS on",
        &q.loaded_qos_on,
        Some(q.bulk_gbit_per_s_qos_on),
    );
    row(
        "loaded, QoS off",
        &q.loaded_qos_off,
        Some(q.bulk_gbit_per_s_qos_off),
    );
    let ratio = q.loaded_qos_on.p99_ns as f64 / q.idle.p99_ns.max(1) as f64;
    println!("  p99 loaded (QoS on) / p99 idle = {ratio:.2}");
    if let Some(note) = &q.note {
        println!("  note: {note}");
    }
}

/// Draws the latency distribution and throughput against size (`--plot FILE`).
pub fn plot(r: &Report, path: &std::path::Path) -> Result<(), String> {
    use crate::plot::{write_plot, LatencySeries, PlotData, ThroughputPoint};
    // The legend names the transport that carried the pings (shm or tcp), not a fixed one.
    let labels: Vec<String> = (r.tests.latency.iter())
        .map(|l| format!("hyperfabric ({})", l.transport))
        .collect();
    let latency = (r.tests.latency.iter().zip(&labels))
        .map(|(l, label)| LatencySeries {
            label,
            samples_ns: &l.samples_ns,
        })
        .collect();
    let throughput = r
        .tests
        .throughput
        .iter()
        .flat_map(|t| t.results.iter())
        .map(|x| ThroughputPoint {
            message_bytes: x.message_bytes,
            gbit_per_s: x.gbit_per_s,
        })
        .collect();
    let data = PlotData {
        title: format!("HyperFabric bench: {} -> {} ({})", r.from, r.to, r.fabric),
        latency,
        throughput,
        peer_lines: Vec::new(),
    };
    write_plot(path, &data)
}
