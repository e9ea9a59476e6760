//! Options of sends and pings, and what a completed send reports.

use super::{PathReport, PathScheduler};
use crate::compress::Algorithm;
use crate::config::{Compression, DataTypePolicy, Transform};
use crate::transport::TransportKind;
use crate::types::{DataType, Priority};
use serde::Serialize;
use std::time::Duration;

/// Options of one send.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    pub data_type: DataType,
    /// Left at the default (`normal`, not set by [`SendOptions::priority`]), the data type's
    /// policy decides.
    pub priority: Priority,
    /// Left at the default (`Off`, not set by [`SendOptions::compression`]), the data type's
    /// policy decides.
    pub compression: Compression,
    /// Refuse the send before any byte moves if the best route's nominal latency exceeds this.
    pub latency_constraint_ns: Option<u64>,
    /// Refuse the send before any byte moves if no route's bottleneck bandwidth reaches this.
    pub bandwidth_requirement_gbps: Option<f64>,
    /// Longest time without progress before the send fails (default: the profile's).
    pub timeout: Option<Duration>,
    /// Name the destination may store the transfer under (files keep their base name).
    pub name: Option<String>,
    /// Routing strategy for this send (default: the router's default, lowest latency).
    pub strategy: Option<crate::route::Strategy>,
    /// Stripe this send over several paths (overrides `configure_multipath` for this send).
    pub multipath: Option<MultipathConfig>,
    /// Over shared memory, payloads passed by pool descriptor (loans, one-chunk copies of
    /// 64 KiB and more) carry only a CRC32C of the descriptor; with this on, the sender also
    /// checksums the payload and the receiver verifies it before reading. Every other frame
    /// is always fully checksummed.
    pub verify_payload: bool,
    /// File sends read each chunk with `pread` instead of copying from a mapping of the
    /// file (the guide's `zero_copy=False`; set with [`SendOptions::zero_copy`]).
    pub file_by_pread: bool,
    /// Set by the builder methods: the caller chose these explicitly.
    priority_set: bool,
    compression_set: bool,
    /// Filled in by the fabric before the send starts.
    pub(crate) link_gbps: f64,
    pub(crate) transform: Transform,
    pub(crate) bytes_saved: u64,
}

/// The guide's `configure_multipath`: the paths to a destination, named by their first hop
/// (a relay, or the destination itself for the direct path), with weights.
#[derive(Debug, Clone, PartialEq)]
pub struct MultipathConfig {
    /// (first hop, weight): chunks are shared in proportion to the weights.
    pub paths: Vec<(String, f64)>,
    pub scheduler: PathScheduler,
    /// How often a path that broke is tried again.
    pub health_check_interval: Duration,
}

impl MultipathConfig {
    pub fn new(paths: Vec<(String, f64)>) -> Self {
        MultipathConfig {
            paths,
            scheduler: PathScheduler::WeightedRoundRobin,
            health_check_interval: Duration::from_secs(1),
        }
    }
    pub fn scheduler(mut self, s: PathScheduler) -> Self {
        self.scheduler = s;
        self
    }
    pub fn health_check_interval(mut self, i: Duration) -> Self {
        self.health_check_interval = i;
        self
    }
}

impl SendOptions {
    pub fn new() -> Self {
        Self::default()
    }
    /// See [`SendOptions::verify_payload`](struct.SendOptions.html#structfield.verify_payload).
    pub fn verify_payload(mut self, on: bool) -> Self {
        self.verify_payload = on;
        self
    }
    pub fn data_type(mut self, d: DataType) -> Self {
        self.data_type = d;
        self
    }
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self.priority_set = true;
        self
    }
    /// `Compression::Off | Auto | Fixed(alg)`, an [`Algorithm`], or a bool (`true` = LZ4).
    pub fn compression(mut self, c: impl Into<Compression>) -> Self {
        self.compression = c.into();
        self.compression_set = true;
        self
    }
    pub fn latency_constraint_ns(mut self, ns: u64) -> Self {
        self.latency_constraint_ns = Some(ns);
        self
    }
    pub fn bandwidth_requirement_gbps(mut self, gbps: f64) -> Self {
        self.bandwidth_requirement_gbps = Some(gbps);
        self
    }

    /// Fills what the caller left at its default from the data type's policy.
    pub(crate) fn with_policy(mut self, p: &DataTypePolicy) -> Self {
        if !self.priority_set && self.priority == Priority::default() {
            self.priority = p.priority;
        }
        if !self.compression_set && self.compression == Compression::default() {
            self.compression = p.compression;
        }
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }
    pub fn strategy(mut self, s: crate::route::Strategy) -> Self {
        self.strategy = Some(s);
        self
    }
    pub fn multipath(mut self, m: MultipathConfig) -> Self {
        self.multipath = Some(m);
        self
    }
    /// File sends copy from a mapping of the file (`true`, the default) or read each chunk
    /// with `pread` into a buffer first (`false`). [`SendReport::file_read`] says which.
    pub fn zero_copy(mut self, on: bool) -> Self {
        self.file_by_pread = !on;
        self
    }
}

/// One hop of the path a transfer took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    pub from: String,
    pub to: String,
    pub transport: TransportKind,
}

/// What a completed send reports. `latency` runs from the call to the end-to-end ack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendReport {
    pub transfer_id: u64,
    pub bytes: u64,
    #[serde(serialize_with = "ser_duration_ns", rename = "latency_ns")]
    pub latency: Duration,
    pub throughput_gbps: f64,
    pub path: Vec<String>,
    pub hops: Vec<Hop>,
    /// Payload bytes over bytes on the wire (1.0 without compression).
    pub compression_ratio: f64,
    /// The algorithm the transfer used (chosen on its first chunk under `Auto`); single
    /// chunks that did not shrink still travelled raw.
    pub compression: Algorithm,
    /// The transform applied before sending (`bytes` counts the transformed form).
    pub transform: Transform,
    /// Bytes not sent because the destination already held them (parameter cache).
    pub bytes_saved: u64,
    pub retransmitted_bytes: u64,
    /// Every path the transfer was striped over, with what it carried.
    pub paths: Vec<PathReport>,
    /// Paths that broke during the transfer (their chunks went on the others).
    pub failovers: u32,
    pub data_type: DataType,
    pub priority: Priority,
    /// The file name the destination's store directory gave the transfer (its own name, or
    /// a numbered one under `on_conflict = "rename"`); `None` when the destination keeps
    /// messages in memory, discards them, or is older than the 2026-12-02 addition to wire v1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_as: Option<String>,
    /// How a file send read its file (`mmap` or `pread`); `None` for other sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_read: Option<super::FileRead>,
}

fn ser_duration_ns<S: serde::Serializer>(
    d: &Duration,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_nanos() as u64)
}

/// How to ping.
#[derive(Debug, Clone, Copy)]
pub struct PingOptions {
    /// Ultra_high and high pings take the urgent lane when QoS is on.
    pub priority: Priority,
    pub size: usize,
    pub count: u64,
    pub warmup: u64,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for PingOptions {
    fn default() -> Self {
        PingOptions {
            priority: Priority::Normal,
            size: 64,
            count: 10,
            warmup: 0,
            interval: Duration::ZERO,
            timeout: Duration::from_secs(1),
        }
    }
}

impl PingOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn size(mut self, s: usize) -> Self {
        self.size = s;
        self
    }
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }
    pub fn count(mut self, c: u64) -> Self {
        self.count = c;
        self
    }
    pub fn warmup(mut self, w: u64) -> Self {
        self.warmup = w;
        self
    }
    pub fn interval(mut self, i: Duration) -> Self {
        self.interval = i;
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
}
