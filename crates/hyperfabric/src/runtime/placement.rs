//! What a node asks of the machine at start (CPU set, NUMA node, socket buffers, segment
//! size, NIC settings; priority, scheduling, locked memory and huge pages in [`process`]),
//! and what it got: each outcome is recorded in the node's
//! effective-configuration report, with the reason when the machine could not honour it.

use crate::config::effective::{Effect, EffectiveConfig, Source};
use crate::config::NodeConfig;
use crate::sys;
use crate::transport::tcp::Grant;
use serde_json::Value;
use std::net::SocketAddr;

mod process;

/// IPv4 + TCP headers without options: TCP_MAXSEG = MTU - this.
pub const TCP_IP_HEADERS: u32 = 40;

/// The segment size a node uses on its TCP links, and how it was decided.
#[derive(Debug, Clone)]
pub struct SegmentPlan {
    pub mss: Option<u32>,
    effect: Effect,
    detail: String,
}

/// `metadata.mtu_size` checked against the MTU of the interface of `addr`.
pub fn segment_plan(node: &NodeConfig, addr: SocketAddr) -> SegmentPlan {
    let Some(mtu) = node.signature.metadata.mtu_size else {
        return SegmentPlan {
            mss: None,
            effect: Effect::Applied,
            detail: String::new(),
        };
    };
    let (iface, iface_mtu) = interface_mtu(addr);
    let used = iface_mtu.map_or(mtu, |m| m.min(mtu));
    let mss = used.saturating_sub(TCP_IP_HEADERS).max(88);
    let (effect, detail) = match iface_mtu {
        Some(m) if m < mtu => (
            Effect::Fallback,
            format!("{iface} has MTU {m} < {mtu}: TCP_MAXSEG = {mss} (from the interface)"),
        ),
        Some(m) => (
            Effect::Applied,
            format!("{iface} has MTU {m}: TCP_MAXSEG = {mss} on every TCP link"),
        ),
        None => (
            Effect::Applied,
            format!(
                "interface of {} unknown (not checked): TCP_MAXSEG = {mss}",
                addr.ip()
            ),
        ),
    };
    SegmentPlan {
        mss: Some(mss),
        effect,
        detail,
    }
}

/// The interface that carries `addr` and its MTU, where this can be told without netlink:
/// loopback addresses are on `lo`.
fn interface_mtu(addr: SocketAddr) -> (String, Option<u32>) {
    if !addr.ip().is_loopback() {
        return (format!("the interface of {}", addr.ip()), None);
    }
    let mtu = std::fs::read_to_string("/sys/class/net/lo/mtu")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    ("lo".to_string(), mtu)
}

/// Applies the node's CPU set (`cpus`: the API's or `--pin`'s, else the file's) and NUMA
/// node to this process, before its threads start, and records what it got.
pub fn apply_placement(
    node: &NodeConfig,
    index: usize,
    cpus: Option<&[usize]>,
    report: &mut EffectiveConfig,
) {
    let meta = &node.signature.metadata;
    let field = |k: &str| format!("nodes[{index}].metadata.{k}");
    let asked = match cpus {
        Some(c) => {
            report.asked_by_api(&field("cpu_affinity"), Value::from(c.to_vec()), Source::Api);
            c.to_vec()
        }
        None => meta.cpu_affinity.clone(),
    };
    if !asked.is_empty() {
        let (effect, detail) = cpu_affinity(&asked);
        report.record(&field("cpu_affinity"), Value::from(asked), effect, detail);
    }
    if let Some(numa) = meta.numa_node {
        let (effect, detail) = numa_node(numa as usize);
        report.record(&field("numa_node"), Value::from(numa), effect, detail);
    }
    process::apply(meta, index, report);
    if let Some(on) = meta.interrupt_coalescing {
        let detail = "interrupt coalescing is a NIC setting (ethtool -C, CAP_NET_ADMIN); this \
                      node does not drive its NIC, so it runs with the NIC's current setting";
        report.record(
            &field("interrupt_coalescing"),
            Value::from(on),
            Effect::Refused,
            detail,
        );
    }
}

fn cpu_affinity(asked: &[usize]) -> (Effect, String) {
    let allowed = sys::allowed_cpus().unwrap_or_default();
    let usable: Vec<usize> = asked
        .iter()
        .copied()
        .filter(|c| allowed.contains(c))
        .collect();
    if usable.is_empty() {
        return (
            Effect::Refused,
            format!("none of CPUs {asked:?} is available to this process (allowed: {allowed:?}); threads stay on {allowed:?}"),
        );
    }
    match sys::set_process_affinity(&usable) {
        Ok(threads) if usable.len() == asked.len() => (
            Effect::Applied,
            format!("every thread ({threads} now, and every later one) on CPUs {usable:?}"),
        ),
        Ok(threads) => (
            Effect::Fallback,
            format!("{threads} threads on CPUs {usable:?}: the others of {asked:?} are not available (allowed: {allowed:?})"),
        ),
        Err(e) => (
            Effect::Refused,
            format!("the kernel refused CPUs {usable:?}: {e}"),
        ),
    }
}

fn numa_node(node: usize) -> (Effect, String) {
    let online = sys::numa_nodes_online();
    if !online.contains(&node) {
        return (
            Effect::Refused,
            format!("no NUMA node {node} on this machine (online: {online:?}); no policy set"),
        );
    }
    if online.len() == 1 {
        return (
            Effect::Fallback,
            format!(
                "this machine has one NUMA node ({node}): all memory is local, no policy needed"
            ),
        );
    }
    match sys::prefer_numa_node(node) {
        Ok(()) => (
            Effect::Applied,
            format!("buffers are allocated preferably on NUMA node {node} (MPOL_PREFERRED)"),
        ),
        Err(e) => (
            Effect::Fallback,
            format!("set_mempolicy(MPOL_PREFERRED, {node}) failed: {e}; default policy kept"),
        ),
    }
}

/// Records the socket knobs: `tcp_window_size` (or `socket_buffer_bytes`) as the kernel
/// granted it on a probe socket, and the segment size.
pub fn record_sockets(
    index: usize,
    node: &NodeConfig,
    socket_buffer_bytes: usize,
    plan: &SegmentPlan,
    report: &mut EffectiveConfig,
) {
    let field = match node.signature.metadata.tcp_window_size {
        Some(_) => format!("nodes[{index}].metadata.tcp_window_size"),
        None => "fabric.socket_buffer_bytes".to_string(),
    };
    let (effect, detail) = probe_buffers(socket_buffer_bytes);
    report.record(&field, Value::from(socket_buffer_bytes), effect, detail);
    if let Some(mtu) = node.signature.metadata.mtu_size {
        let field = format!("nodes[{index}].metadata.mtu_size");
        report.record(&field, Value::from(mtu), plan.effect, plan.detail.clone());
    }
    if let Some(kind) = &node.signature.metadata.interface_type {
        let field = format!("nodes[{index}].metadata.interface_type");
        let detail = format!(
            "\"{kind}\": reported only; links are chosen by address, not by interface type"
        );
        report.record(
            &field,
            Value::from(kind.as_str()),
            Effect::Describes,
            detail,
        );
    }
}

/// Sizes the send and receive buffers of a fresh socket for `want` bytes by the rule every
/// TCP link follows ([`crate::transport::tcp::probe_buffers`]: set, or left to the kernel's
/// autotuning where a set buffer would be capped lower) and says what that came to.
fn probe_buffers(want: usize) -> (Effect, String) {
    let (send, recv) = match crate::transport::tcp::probe_buffers(want) {
        Ok(grants) => grants,
        Err(e) => return (Effect::Fallback, format!("cannot open a probe socket: {e}")),
    };
    // Linux reports twice what it grants (the other half is its bookkeeping).
    let usable = |g: &Grant| match g {
        Grant::Fixed(n) => (n / 2).to_string(),
        other => other.shown(),
    };
    if send.in_full(want) && recv.in_full(want) {
        (
            Effect::Applied,
            format!(
                "SO_SNDBUF/SO_RCVBUF = {want} on every TCP link (granted send={} recv={})",
                usable(&send),
                usable(&recv)
            ),
        )
    } else {
        (
            Effect::Fallback,
            format!(
                "asked {want} bytes, the kernel grants send={} recv={} (capped by net.core.wmem_max/rmem_max = {}/{}; raise them for the full window)",
                usable(&send),
                usable(&recv),
                sysctl("net/core/wmem_max"),
                sysctl("net/core/rmem_max")
            ),
        )
    }
}

fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{name}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}
