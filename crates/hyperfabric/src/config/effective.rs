//! The effective-configuration report: every field of the fabric file, where its value came
//! from (the file, the profile, a default) and what it did on this node (applied, fell back,
//! refused with the reason, or only describes the fabric). A node builds it at start, lets
//! the runtime record what the machine actually granted (socket buffers, CPU affinity, …),
//! logs it and hands it to `hfabric serve --json`.
//!
//! The rule it enforces: no field is parsed and then silently ignored. A field of the file
//! that [`classify`] does not know is reported as [`Effect::Unclassified`], and the test
//! `every_raw_field_is_reported` fails for it.

use super::FabricConfig;
use serde::Serialize;
use serde_json::Value;

/// The fields the file set, as `path -> value` (`nodes[1].metadata.mtu_size`).
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    fields: Vec<(String, Value)>,
}

/// Provenance is bookkeeping about the text, not part of the configuration's value: two
/// configurations that mean the same compare equal whichever file they came from.
impl PartialEq for Provenance {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Provenance {
    /// The leaf fields of a (syntactically valid) fabric file.
    pub fn from_text(text: &str) -> Provenance {
        let mut fields = Vec::new();
        if let Ok(table) = text.parse::<toml::Table>() {
            flatten("", &toml::Value::Table(table), &mut fields);
        }
        Provenance { fields }
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn contains(&self, path: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == path)
    }
}

/// Tables recurse (`a.b`), arrays of tables are indexed (`a[0].b`), anything else is a leaf.
fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, Value)>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        toml::Value::Table(t) => t.iter().for_each(|(k, v)| flatten(&join(k), v, out)),
        toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_table) => {
            for (i, item) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        leaf => out.push((
            prefix.to_string(),
            serde_json::to_value(leaf).unwrap_or(Value::Null),
        )),
    }
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    File,
    Profile,
    Default,
    /// Set by the Rust API or a command-line flag (e.g. `hfabric serve --pin`).
    Api,
}

/// What a field did on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Read by the runtime and in force.
    Applied,
    /// Asked for, but the machine granted something else (the detail says what and why).
    Fallback,
    /// Cannot be honoured here (the detail says why); the node runs without it.
    Refused,
    /// Parsed, but this version does not act on it yet (the detail says so).
    NotImplemented,
    /// Describes the fabric (another node, a label): read by routing or shown in tables.
    Describes,
    /// A field this report does not know: a bug, caught by the tests.
    Unclassified,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Knob {
    pub field: String,
    pub value: Value,
    pub source: Source,
    pub effect: Effect,
    pub detail: String,
}

/// The report for one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveConfig {
    pub node: String,
    pub knobs: Vec<Knob>,
}

impl EffectiveConfig {
    /// The static part: every file field, every tuning and compression field, classified.
    pub fn new(cfg: &FabricConfig, me: &str) -> EffectiveConfig {
        let mut knobs: Vec<Knob> = cfg
            .provenance
            .fields()
            .map(|(field, value)| {
                let (effect, detail) = classify(field, cfg, me);
                Knob {
                    field: field.to_string(),
                    value: value.clone(),
                    source: Source::File,
                    effect,
                    detail,
                }
            })
            .collect();
        let implied = [
            ("fabric", serde_json::to_value(&cfg.tuning), Source::Profile),
            (
                "compression",
                serde_json::to_value(super::compression::to_raw(&cfg.compression)),
                Source::Default,
            ),
        ];
        for (table, value, source) in implied {
            let Ok(Value::Object(map)) = value else {
                continue;
            };
            for (key, value) in map {
                let field = format!("{table}.{key}");
                if !cfg.provenance.contains(&field) && !value.is_null() {
                    let (effect, detail) = classify(&field, cfg, me);
                    knobs.push(Knob {
                        field,
                        value,
                        source,
                        effect,
                        detail,
                    });
                }
            }
        }
        EffectiveConfig {
            node: me.to_string(),
            knobs,
        }
    }

    pub fn get(&self, field: &str) -> Option<&Knob> {
        self.knobs.iter().find(|k| k.field == field)
    }

    /// Records what the runtime got for `field` (a field the file did not set is added with
    /// [`Source::Default`]).
    pub fn record(&mut self, field: &str, value: Value, effect: Effect, detail: impl Into<String>) {
        let detail = detail.into();
        match self.knobs.iter_mut().find(|k| k.field == field) {
            Some(k) => {
                k.effect = effect;
                k.detail = detail;
            }
            None => self.knobs.push(Knob {
                field: field.to_string(),
                value,
                source: Source::Default,
                effect,
                detail,
            }),
        }
    }

    /// Marks `field` as set by the API or a flag (over the file's value, if any).
    pub fn asked_by_api(&mut self, field: &str, value: Value, source: Source) {
        match self.knobs.iter_mut().find(|k| k.field == field) {
            Some(k) => {
                k.value = value;
                k.source = source;
            }
            None => self.knobs.push(Knob {
                field: field.to_string(),
                value,
                source,
                effect: Effect::Applied,
                detail: String::new(),
            }),
        }
    }

    /// Logs the report: a summary and every field that is not simply applied at info (a
    /// refusal at warn), the applied ones at debug.
    pub fn log(&self) {
        let count = |e: Effect| self.knobs.iter().filter(|k| k.effect == e).count();
        tracing::info!(
            node = %self.node,
            fields = self.knobs.len(),
            applied = count(Effect::Applied),
            fallback = count(Effect::Fallback),
            refused = count(Effect::Refused),
            not_implemented = count(Effect::NotImplemented),
            "effective configuration (all fields: `hfabric serve --json`, or RUST_LOG=debug)"
        );
        for k in &self.knobs {
            let line = format!(
                "{} = {} [{:?} from {:?}]: {}",
                k.field, k.value, k.effect, k.source, k.detail
            );
            match k.effect {
                Effect::Refused | Effect::Unclassified => tracing::warn!("config: {line}"),
                Effect::Fallback | Effect::NotImplemented => tracing::info!("config: {line}"),
                Effect::Applied | Effect::Describes => tracing::debug!("config: {line}"),
            }
        }
    }
}

/// `nodes[3].metadata.mtu_size` -> (`nodes.metadata.mtu_size`, Some(3)).
fn normalise(field: &str) -> (String, Option<usize>) {
    let mut out = String::with_capacity(field.len());
    let mut index = None;
    let mut rest = field;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find(']').map_or(rest.len(), |c| open + c);
        if index.is_none() {
            index = rest[open + 1..close].parse().ok();
        }
        rest = rest.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    (out, index)
}

/// The static effect of a field on node `me` (the runtime refines placement and sockets).
fn classify(field: &str, cfg: &FabricConfig, me: &str) -> (Effect, String) {
    let (norm, index) = normalise(field);
    if let Some(rest) = norm.strip_prefix("nodes.") {
        let node = index.and_then(|i| cfg.nodes.get(i)).map_or("?", |n| n.id());
        if node != me {
            return (
                Effect::Describes,
                format!("describes node {node} to this node"),
            );
        }
        return node_field(rest);
    }
    if let Some(rest) = norm.strip_prefix("data_types.") {
        let key = rest.rsplit('.').next().unwrap_or(rest);
        return match key {
            "priority" | "compression" | "transform" | "topk_fraction" => (
                Effect::Applied,
                "default of sends of this data type that leave it unset".into(),
            ),
            _ => unknown(),
        };
    }
    let applied = |d: &str| (Effect::Applied, d.to_string());
    match norm.as_str() {
        "fabric.name" => applied("names the fabric: checked in every handshake"),
        "fabric.profile" => applied("the starting point of every [fabric] tuning field"),
        "fabric.buffer_pool_buffers" => applied(
            "slots (buffer_pool_slot_bytes each, at most 4096) per direction of the \
             shared-memory pools of the links this node dials (stats: shm_pool_slots)",
        ),
        "fabric.buffer_pool_slot_bytes" => applied(
            "bytes per slot of the shared-memory pools of the links this node dials: the \
             largest loan and pooled copy (stats: shm_pool_slot_bytes)",
        ),
        "fabric.max_packet_size" => applied("chunk size of transfers"),
        "fabric.socket_buffer_bytes" => applied(
            "SO_SNDBUF/SO_RCVBUF of every TCP link; a direction that net.core.wmem_max/rmem_max \
             would cap below net.ipv4.tcp_wmem/tcp_rmem's max is left to the kernel's autotuning",
        ),
        "fabric.tcp_nodelay" => applied("TCP_NODELAY on every TCP link"),
        "fabric.congestion_control" => applied("TCP_CONGESTION on every TCP link"),
        "fabric.busy_poll" => applied(
            "TCP_QUICKACK, SO_BUSY_POLL, and pingers that read a plain TCP socket themselves",
        ),
        "fabric.idle_strategy" => applied("how idle data-plane threads wait"),
        "fabric.window_bytes" => applied("bytes in flight per transfer"),
        "fabric.connect_timeout_ms" | "fabric.handshake_timeout_ms" | "fabric.send_timeout_ms" => {
            applied("a timeout of the runtime")
        }
        "fabric.retransmit_timeout_ms" | "fabric.max_retransmits" => {
            applied("retransmission of unacknowledged chunks")
        }
        "fabric.max_transfer_bytes" => applied("largest transfer this node accepts"),
        "fabric.max_connections" => applied("accepted connections at once"),
        "fabric.max_pending_handshakes" => {
            applied("connections not yet authenticated at once (the oldest is cut past it)")
        }
        "fabric.on_conflict" => applied("what a stored file does when its name is taken"),
        "fabric.qos_enabled" => applied("priority lanes and deference per link"),
        "fabric.throttle_gbps" => applied("paces every connection (0: off)"),
        "fabric.connections_per_link" => applied(
            "TCP connections a bulk link is striped over: chunks go out round-robin on them",
        ),
        "fabric.secret_file" => applied("peers must prove the secret in the handshake"),
        "fabric.node_keys" => applied(
            "each peer proves its own id's key in the handshake; relayed final acks are signed",
        ),
        "fabric.observer_keys" => {
            applied("observers (monitors without a node entry) must prove a key listed here")
        }
        "fabric.encryption_enabled" | "fabric.tls_cert" | "fabric.tls_key" | "fabric.tls_ca" => {
            applied("TLS on TCP links")
        }
        "links.between"
        | "links.bandwidth_gbps"
        | "links.latency_ns"
        | "links.cost"
        | "links.fidelity" => (
            Effect::Describes,
            "a link of the topology routes use".into(),
        ),
        "zones.id" | "zones.type" | "zones.isolation" => applied("zone isolation rules"),
        "faults.from" | "faults.to" | "faults.drop" | "faults.corrupt" | "faults.duplicate"
        | "faults.delay_us" | "faults.cut" | "faults.seed" => applied("fault injection on frames this node writes"),
        f if f.starts_with("alerts.") => applied("read by the alert watcher of `hfabric serve`"),
        "routing.enable_ml_routing" | "routing.default_strategy" => {
            applied("the strategy of sends that name none and of this node's relaying")
        }
        "routing.learning_rate" | "routing.training_samples" => {
            applied("the predictor of the predictive strategy")
        }
        "routing.model_update_interval_s" => {
            applied("at most one live predictor sample per interval")
        }
        "routing.history" => {
            applied("the predictor is trained on it at start, and on what was appended at each SIGHUP (hfabric serve)")
        }
        "routing.fidelity_threshold" => applied("quantum_optimized routes below it are refused"),
        "membership.url" => applied(
            "the directory of node records (membership::join: hfabric serve, Python \
             hyperfabric.join): this node's record under a lease, joins and leaves through \
             etcd's watch; --membership overrides it",
        ),
        "membership.cacert" | "membership.cert" | "membership.key" => applied(
            "TLS to etcd (etcds://); --etcd-cacert, --etcd-cert, --etcd-key override it",
        ),
        "membership.user" | "membership.password_file" => applied(
            "the etcd user whose password buys the token of every request; --etcd-user, \
             --etcd-password-file override it",
        ),
        "compression.threshold_bytes"
        | "compression.max_compression_time_us"
        | "compression.min_compression_ratio"
        | "compression.threshold_bandwidth_gbps"
        | "compression.algorithms" => {
            applied("read by the adaptive compressor (Compression::Auto)")
        }
        _ => unknown(),
    }
}

fn unknown() -> (Effect, String) {
    (
        Effect::Unclassified,
        "this report does not know the field".into(),
    )
}

/// The effect of one of this node's own fields (placement and sockets are refined at start).
fn node_field(rest: &str) -> (Effect, String) {
    let d = |e: Effect, s: &str| (e, s.to_string());
    match rest {
        "id" => d(Effect::Applied, "this node"),
        "listen" => d(Effect::Applied, "the address this node binds"),
        "host" => d(
            Effect::Applied,
            "peers on the same host are reached over shared memory",
        ),
        "zone" => d(Effect::Applied, "this node's zone (isolation)"),
        "hardware"
        | "bandwidth_gbps"
        | "latency_ns"
        | "memory_gb"
        | "compute_units"
        | "quantum_coherence_time_us"
        | "photonic_channels"
        | "neuromorphic_neurons" => d(
            Effect::Describes,
            "routing input (node costs, hardware-aware strategies)",
        ),
        "location" | "rack_position" | "switch_port" => d(
            Effect::Describes,
            "a label shown by `hfabric nodes`; no runtime behaviour",
        ),
        "metadata.cpu_affinity" => d(Effect::Applied, "CPU set of every thread of this node"),
        "metadata.tcp_window_size" => d(Effect::Applied, "this node's socket buffers"),
        "metadata.mtu_size" => d(Effect::Applied, "TCP segment size (TCP_MAXSEG = mtu - 40)"),
        "metadata.interface_type" => d(Effect::Describes, "reported; not used to pick a NIC"),
        "metadata.numa_node" => d(Effect::Applied, "memory policy of this node"),
        "metadata.interrupt_coalescing" => d(Effect::Refused, "needs NIC access (ethtool)"),
        "metadata.nice" => d(Effect::Applied, "nice value of every thread of this node"),
        "metadata.realtime" | "metadata.realtime_priority" => d(
            Effect::Applied,
            "real-time scheduling of every thread of this node",
        ),
        "metadata.mlock" => d(Effect::Applied, "this node's pages locked in RAM"),
        "metadata.huge_pages" => d(Effect::Applied, "huge pages for large receive buffers"),
        m if m.starts_with("metadata.") => d(
            Effect::Describes,
            "a free-form label (metadata.extra); nothing reads it",
        ),
        _ => unknown(),
    }
}

#[cfg(test)]
#[path = "effective_tests.rs"]
mod tests;
