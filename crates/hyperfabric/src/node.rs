//! Node signatures: what a fabric node is (hardware kind, link speed, memory, compute) and the
//! checks every signature must pass before the fabric uses it.
//!
//! The per-hardware numbers below are *defaults*: they are plausible public figures for each
//! kind of device and a fabric file (or the API) can override every one of them.
//!
//! Units (units last in names): `bandwidth_gbps` is gigabits per second of the node's fastest
//! fabric attachment (NVLink, Infinity Fabric, RoCE, InfiniBand, …), `latency_ns` the one-hop
//! latency in nanoseconds, `memory_gb` device memory in gigabytes (10^9 bytes).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Largest CPU number a set may name (the size of the kernel's `cpu_set_t`).
pub const CPU_MAX: usize = libc::CPU_SETSIZE as usize - 1;

/// Longest node id we accept, in bytes (ids travel in handshakes and logs).
pub const NODE_ID_MAX_BYTES: usize = 256;
/// Smallest and largest MTU a node may declare (IPv4 minimum .. IP maximum).
pub const MTU_MIN: u32 = 68;
pub const MTU_MAX: u32 = 65_535;
/// Coherence time given to a QPU whose file does not say (IBM Eagle-class T1, ~100 µs).
pub const DEFAULT_QPU_COHERENCE_US: f64 = 100.0;

/// The kinds of device a fabric node can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HardwareType {
    NvidiaH100,
    NvidiaA100,
    NvidiaV100,
    #[serde(rename = "amd-mi300x")]
    AmdMi300x,
    #[serde(rename = "intel-gaudi2")]
    IntelGaudi2,
    QuantumQpu,
    CpuCluster,
    FpgaFabric,
    PhotonicSwitch,
    NeuromorphicChip,
}

impl HardwareType {
    pub const ALL: [HardwareType; 10] = [
        HardwareType::NvidiaH100,
        HardwareType::NvidiaA100,
        HardwareType::NvidiaV100,
        HardwareType::AmdMi300x,
        HardwareType::IntelGaudi2,
        HardwareType::QuantumQpu,
        HardwareType::CpuCluster,
        HardwareType::FpgaFabric,
        HardwareType::PhotonicSwitch,
        HardwareType::NeuromorphicChip,
    ];

    /// The name used in fabric files and on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            HardwareType::NvidiaH100 => "nvidia-h100",
            HardwareType::NvidiaA100 => "nvidia-a100",
            HardwareType::NvidiaV100 => "nvidia-v100",
            HardwareType::AmdMi300x => "amd-mi300x",
            HardwareType::IntelGaudi2 => "intel-gaudi2",
            HardwareType::QuantumQpu => "quantum-qpu",
            HardwareType::CpuCluster => "cpu-cluster",
            HardwareType::FpgaFabric => "fpga-fabric",
            HardwareType::PhotonicSwitch => "photonic-switch",
            HardwareType::NeuromorphicChip => "neuromorphic-chip",
        }
    }

    /// Default device memory in GB (10^9 bytes). Overridable by `memory_gb`.
    pub const fn default_memory_gb(self) -> f64 {
        match self {
            HardwareType::NvidiaH100 => 80.0,      // H100 SXM5 HBM3
            HardwareType::NvidiaA100 => 80.0,      // A100 80GB HBM2e
            HardwareType::NvidiaV100 => 32.0,      // V100 32GB HBM2
            HardwareType::AmdMi300x => 192.0,      // MI300X HBM3
            HardwareType::IntelGaudi2 => 96.0,     // Gaudi2 HBM2e
            HardwareType::QuantumQpu => 0.0,       // no addressable classical memory
            HardwareType::CpuCluster => 512.0,     // a dual-socket server's DRAM
            HardwareType::FpgaFabric => 16.0,      // Alveo U55C HBM2
            HardwareType::PhotonicSwitch => 0.0,   // a switch stores nothing
            HardwareType::NeuromorphicChip => 0.0, // Loihi 2: ~25 MB on-chip SRAM only
        }
    }

    /// Default compute units: SMs, CUs, TPCs, cores, qubits, DSP slices or ports, per kind.
    pub const fn default_compute_units(self) -> u32 {
        match self {
            HardwareType::NvidiaH100 => 132,       // streaming multiprocessors
            HardwareType::NvidiaA100 => 108,       // streaming multiprocessors
            HardwareType::NvidiaV100 => 80,        // streaming multiprocessors
            HardwareType::AmdMi300x => 304,        // compute units
            HardwareType::IntelGaudi2 => 24,       // tensor processor cores
            HardwareType::QuantumQpu => 127,       // qubits (IBM Eagle)
            HardwareType::CpuCluster => 128,       // CPU cores
            HardwareType::FpgaFabric => 9_024,     // DSP slices (Alveo U55C)
            HardwareType::PhotonicSwitch => 64,    // optical ports
            HardwareType::NeuromorphicChip => 128, // neuromorphic cores (Loihi 2)
        }
    }

    /// Default link bandwidth in Gbit/s. Overridable by `bandwidth_gbps`.
    pub const fn default_bandwidth_gbps(self) -> f64 {
        match self {
            HardwareType::NvidiaH100 => 7_200.0,      // NVLink 4: 900 GB/s
            HardwareType::NvidiaA100 => 4_800.0,      // NVLink 3: 600 GB/s
            HardwareType::NvidiaV100 => 2_400.0,      // NVLink 2: 300 GB/s
            HardwareType::AmdMi300x => 7_168.0,       // Infinity Fabric: 896 GB/s
            HardwareType::IntelGaudi2 => 2_400.0,     // 24 x 100 GbE RoCE
            HardwareType::QuantumQpu => 10.0,         // classical control link
            HardwareType::CpuCluster => 400.0,        // NDR InfiniBand / 400 GbE
            HardwareType::FpgaFabric => 200.0,        // 2 x 100 GbE QSFP28
            HardwareType::PhotonicSwitch => 51_200.0, // 51.2 Tbit/s switch ASIC class
            HardwareType::NeuromorphicChip => 10.0,   // 10 GbE host link
        }
    }

    /// Default one-hop latency in nanoseconds. Overridable by `latency_ns`.
    pub const fn default_latency_ns(self) -> u64 {
        match self {
            HardwareType::NvidiaH100 => 500,
            HardwareType::NvidiaA100 => 700,
            HardwareType::NvidiaV100 => 1_000,
            HardwareType::AmdMi300x => 600,
            HardwareType::IntelGaudi2 => 1_500,
            HardwareType::QuantumQpu => 10_000,
            HardwareType::CpuCluster => 1_500,
            HardwareType::FpgaFabric => 300,
            HardwareType::PhotonicSwitch => 50,
            HardwareType::NeuromorphicChip => 2_000,
        }
    }
}

impl fmt::Display for HardwareType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HardwareType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HardwareType::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = HardwareType::ALL.iter().map(|h| h.as_str()).collect();
                format!(
                    "unknown hardware type \"{s}\" (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// Parses a CPU list as Linux writes them (`0`, `0,1`, `0-3,8`): sorted, without repeats.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, crate::Error> {
    let bad = |why: &str| crate::Error::InvalidArgument(format!("CPU list \"{s}\": {why}"));
    let mut cpus = std::collections::BTreeSet::new();
    for part in s.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let num = |t: &str| {
            t.parse::<usize>()
                .map_err(|_| bad("expected numbers like 0,1 or 0-3"))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi || hi > CPU_MAX {
            return Err(bad(&format!(
                "range {lo}-{hi} is empty or above {}",
                CPU_MAX
            )));
        }
        cpus.extend(lo..=hi);
    }
    Ok(cpus.into_iter().collect())
}

/// Bounds of `metadata.tcp_window_size` (the same as `socket_buffer_bytes`).
pub const TCP_WINDOW_MIN: u64 = 64 * 1024;
pub const TCP_WINDOW_MAX: u64 = 1 << 30;

/// Free-form facts about a node that routing and transports may use.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeMetadata {
    pub interface_type: Option<String>,
    pub mtu_size: Option<u32>,
    pub numa_node: Option<u32>,
    pub cpu_affinity: Vec<usize>,
    /// This node's socket buffer size in bytes (overrides `socket_buffer_bytes` for it).
    #[serde(default)]
    pub tcp_window_size: Option<u64>,
    /// Asked-for NIC interrupt coalescing (applied through the NIC where permitted).
    #[serde(default)]
    pub interrupt_coalescing: Option<bool>,
    /// Nice value of every thread of the node (-20..=19; lowering needs CAP_SYS_NICE).
    #[serde(default)]
    pub nice: Option<i32>,
    /// Real-time scheduling of every thread of the node.
    #[serde(default)]
    pub realtime: Option<SchedPolicy>,
    /// Its priority, 1..=[`REALTIME_PRIORITY_MAX`] (1 when `realtime` is set alone).
    #[serde(default)]
    pub realtime_priority: Option<u32>,
    /// Lock the node's pages in RAM (`mlockall`).
    #[serde(default)]
    pub mlock: Option<bool>,
    /// Transparent huge pages for the node's large buffers (`MADV_HUGEPAGE`).
    #[serde(default)]
    pub huge_pages: Option<bool>,
    /// Any other string-valued key from the file's `metadata` table.
    pub extra: BTreeMap<String, String>,
}

/// Highest real-time priority Linux accepts for SCHED_FIFO / SCHED_RR.
pub const REALTIME_PRIORITY_MAX: u32 = 99;

/// A real-time scheduling policy (`metadata.realtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedPolicy {
    /// SCHED_FIFO: runs until it blocks or a higher priority is runnable.
    Fifo,
    /// SCHED_RR: like FIFO, with a time slice among equal priorities.
    Rr,
}

impl SchedPolicy {
    pub fn name(self) -> &'static str {
        match self {
            SchedPolicy::Fifo => "fifo",
            SchedPolicy::Rr => "rr",
        }
    }
}

impl std::str::FromStr for SchedPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fifo" => Ok(SchedPolicy::Fifo),
            "rr" => Ok(SchedPolicy::Rr),
            other => Err(format!("\"{other}\": expected \"fifo\" or \"rr\"")),
        }
    }
}

/// Everything the fabric knows about one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSignature {
    pub node_id: String,
    pub hardware_type: HardwareType,
    pub bandwidth_gbps: f64,
    pub latency_ns: u64,
    pub memory_gb: f64,
    pub compute_units: u32,
    pub quantum_coherence_time_us: Option<f64>,
    pub photonic_channels: Option<u32>,
    pub neuromorphic_neurons: Option<u64>,
    pub location: Option<String>,
    pub rack_position: Option<String>,
    pub switch_port: Option<u32>,
    pub metadata: NodeMetadata,
}

impl NodeSignature {
    /// A signature with the defaults of `hw` (a QPU also gets a default coherence time).
    pub fn new(node_id: impl Into<String>, hw: HardwareType) -> Self {
        let coherence = (hw == HardwareType::QuantumQpu).then_some(DEFAULT_QPU_COHERENCE_US);
        NodeSignature {
            node_id: node_id.into(),
            hardware_type: hw,
            bandwidth_gbps: hw.default_bandwidth_gbps(),
            latency_ns: hw.default_latency_ns(),
            memory_gb: hw.default_memory_gb(),
            compute_units: hw.default_compute_units(),
            quantum_coherence_time_us: coherence,
            photonic_channels: None,
            neuromorphic_neurons: None,
            location: None,
            rack_position: None,
            switch_port: None,
            metadata: NodeMetadata::default(),
        }
    }

    /// Checks the signature; the error is a reason naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_field()
            .map_err(|(field, reason)| format!("{field}: {reason}"))
    }

    /// Like [`validate`](Self::validate) but returns the field (relative to the node, e.g.
    /// `id`, `bandwidth_gbps`, `metadata.mtu_size`) and the reason separately.
    pub fn validate_field(&self) -> Result<(), (&'static str, String)> {
        check_node_id(&self.node_id).map_err(|r| ("id", r))?;
        if !self.bandwidth_gbps.is_finite() || self.bandwidth_gbps <= 0.0 {
            return Err((
                "bandwidth_gbps",
                format!("must be a finite number > 0 (got {})", self.bandwidth_gbps),
            ));
        }
        if !self.memory_gb.is_finite() || self.memory_gb < 0.0 {
            return Err((
                "memory_gb",
                format!("must be a finite number >= 0 (got {})", self.memory_gb),
            ));
        }
        if let Some(t) = self.quantum_coherence_time_us {
            if !t.is_finite() || t <= 0.0 {
                return Err((
                    "quantum_coherence_time_us",
                    format!("must be a finite number > 0 (got {t})"),
                ));
            }
        }
        if self.photonic_channels == Some(0) {
            return Err(("photonic_channels", "must be > 0 when given".to_string()));
        }
        if self.neuromorphic_neurons == Some(0) {
            return Err(("neuromorphic_neurons", "must be > 0 when given".to_string()));
        }
        self.validate_metadata()
    }

    fn validate_metadata(&self) -> Result<(), (&'static str, String)> {
        let m = &self.metadata;
        if let Some(mtu) = m.mtu_size {
            if !(MTU_MIN..=MTU_MAX).contains(&mtu) {
                return Err((
                    "metadata.mtu_size",
                    format!("must be in {MTU_MIN}..={MTU_MAX} (got {mtu})"),
                ));
            }
        }
        if let Some(iface) = &m.interface_type {
            if iface.trim().is_empty() {
                return Err((
                    "metadata.interface_type",
                    "must not be empty when given".to_string(),
                ));
            }
        }
        if let Some(w) = m.tcp_window_size {
            if !(TCP_WINDOW_MIN..=TCP_WINDOW_MAX).contains(&w) {
                return Err((
                    "metadata.tcp_window_size",
                    format!("must be in {TCP_WINDOW_MIN}..={TCP_WINDOW_MAX} bytes (got {w})"),
                ));
            }
        }
        if let Some(n) = m.nice {
            if !(-20..=19).contains(&n) {
                return Err(("metadata.nice", format!("must be in -20..=19 (got {n})")));
            }
        }
        if let Some(p) = m.realtime_priority {
            if m.realtime.is_none() {
                return Err((
                    "metadata.realtime_priority",
                    "needs metadata.realtime = \"fifo\" or \"rr\"".to_string(),
                ));
            }
            if !(1..=REALTIME_PRIORITY_MAX).contains(&p) {
                return Err((
                    "metadata.realtime_priority",
                    format!("must be in 1..={REALTIME_PRIORITY_MAX} (got {p})"),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for cpu in &m.cpu_affinity {
            if !seen.insert(cpu) {
                return Err((
                    "metadata.cpu_affinity",
                    format!("cpu {cpu} is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

/// A node id must be non-empty, at most [`NODE_ID_MAX_BYTES`] bytes, and free of whitespace
/// and control characters (ids appear in logs, tables and command lines).
pub fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("node id must not be empty".to_string());
    }
    if id.len() > NODE_ID_MAX_BYTES {
        return Err(format!(
            "node id is {} bytes long (at most {NODE_ID_MAX_BYTES})",
            id.len()
        ));
    }
    if let Some(c) = id.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "node id {id:?} contains whitespace or a control character ({c:?})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for hw in HardwareType::ALL {
            assert_eq!(hw.as_str().parse::<HardwareType>(), Ok(hw));
            assert_eq!(hw.to_string(), hw.as_str());
            let json = serde_json::to_string(&hw).unwrap();
            assert_eq!(json, format!("\"{}\"", hw.as_str()));
            assert_eq!(serde_json::from_str::<HardwareType>(&json).unwrap(), hw);
        }
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = "nvidia-h200".parse::<HardwareType>().unwrap_err();
        assert!(err.contains("nvidia-h200"));
        assert!(err.contains("nvidia-h100") && err.contains("neuromorphic-chip"));
    }

    #[test]
    fn defaults_are_valid_and_plausible() {
        for hw in HardwareType::ALL {
            let sig = NodeSignature::new("n1", hw);
            assert_eq!(sig.validate(), Ok(()), "{hw}");
            assert!(hw.default_bandwidth_gbps() > 0.0);
        }
        assert_eq!(HardwareType::NvidiaH100.default_compute_units(), 132);
        assert_eq!(HardwareType::AmdMi300x.default_memory_gb(), 192.0);
        let qpu = NodeSignature::new("q", HardwareType::QuantumQpu);
        assert_eq!(
            qpu.quantum_coherence_time_us,
            Some(DEFAULT_QPU_COHERENCE_US)
        );
        assert_eq!(qpu.memory_gb, 0.0);
    }

    #[test]
    fn bad_signatures_name_the_field() {
        let base = NodeSignature::new("gpu-01", HardwareType::NvidiaH100);
        type Case = (fn(&mut NodeSignature), &'static str);
        let cases: Vec<Case> = vec![
            (|s| s.node_id.clear(), "id"),
            (|s| s.node_id = "gpu 01".into(), "id"),
            (|s| s.node_id = "x".repeat(300), "id"),
            (|s| s.node_id = "a\u{7}b".into(), "id"),
            (|s| s.bandwidth_gbps = 0.0, "bandwidth_gbps"),
            (|s| s.bandwidth_gbps = f64::NAN, "bandwidth_gbps"),
            (|s| s.memory_gb = -1.0, "memory_gb"),
            (
                |s| s.quantum_coherence_time_us = Some(0.0),
                "quantum_coherence_time_us",
            ),
            (|s| s.photonic_channels = Some(0), "photonic_channels"),
            (|s| s.metadata.mtu_size = Some(20), "metadata.mtu_size"),
            (
                |s| s.metadata.cpu_affinity = vec![1, 1],
                "metadata.cpu_affinity",
            ),
            (|s| s.metadata.nice = Some(20), "metadata.nice"),
            (
                |s| s.metadata.realtime_priority = Some(5),
                "metadata.realtime_priority",
            ),
            (
                |s| {
                    s.metadata.realtime = Some(SchedPolicy::Fifo);
                    s.metadata.realtime_priority = Some(100);
                },
                "metadata.realtime_priority",
            ),
        ];
        for (mutate, field) in cases {
            let mut sig = base.clone();
            mutate(&mut sig);
            let (got, _) = sig.validate_field().unwrap_err();
            assert_eq!(got, field);
            assert!(sig.validate().unwrap_err().starts_with(field));
        }
    }

    #[test]
    fn id_of_max_length_is_accepted() {
        assert!(check_node_id(&"a".repeat(NODE_ID_MAX_BYTES)).is_ok());
        assert!(check_node_id("gpu-01.rack3").is_ok());
    }
}
