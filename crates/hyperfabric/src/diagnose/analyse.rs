//! From measured figures to a report: pure functions of [`Measured`] and the fabric file.
//! Every recommendation quotes the numbers that triggered it.

use super::*;
use crate::config::FabricConfig;
use crate::route::{Route, Router, Topology};
use std::time::Instant;

/// What counts as a problem: the `[alerts]` thresholds when the file has them, else the
/// guide's defaults (1 ms, 0.1% loss).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub latency_ns: f64,
    pub loss_ratio: f64,
}

impl Limits {
    pub fn from_config(cfg: &FabricConfig) -> Limits {
        let a = cfg.alerts.clone().unwrap_or_default();
        Limits {
            latency_ns: a.latency_ms * 1e6,
            loss_ratio: a.loss_ratio,
        }
    }
}

const MIN_BUFFER: u64 = 64 * 1024;

pub fn analyse(m: &Measured, cfg: &FabricConfig, limits: &Limits) -> DiagnoseReport {
    let hops = hop_reports(m, limits);
    let throughput_gbps = m.throughput_gbps.last().copied().flatten();
    let bdp = bdp(m, throughput_gbps);
    let mut recs = Vec::new();
    for (i, h) in hops.iter().enumerate() {
        hop_recommendations(m, cfg, limits, i, h, &mut recs);
    }
    if let Some(b) = &bdp {
        buffer_recommendation(b, &mut recs);
    }
    sweep_recommendation(m, limits, &mut recs);
    throughput_recommendation(m, cfg, &hops, throughput_gbps, &mut recs);
    recs.sort_by_key(|r| r.priority);
    DiagnoseReport {
        from: m.from.clone(),
        to: m.to.clone(),
        strategy: m.route.strategy,
        route: m.route.nodes.clone(),
        size_sweep: sweep(m),
        bottlenecks: bottlenecks(&hops),
        hops,
        bdp,
        throughput_gbps,
        recommendations: recs,
    }
}

/// "1.23 ms", "45.6 µs", "800 ns".
pub fn human_ns(ns: f64) -> String {
    match ns.abs() {
        n if n >= 1e6 => format!("{:.2} ms", ns / 1e6),
        n if n >= 1e3 => format!("{:.1} µs", ns / 1e3),
        _ => format!("{ns:.0} ns"),
    }
}

fn hop_reports(m: &Measured, limits: &Limits) -> Vec<HopReport> {
    let mut prev = Some(0u64);
    let mut out = Vec::with_capacity(m.route.hops.len());
    for (i, hop) in m.route.hops.iter().enumerate() {
        let (series, path) = m.hops.get(i).cloned().unwrap_or_default();
        let rtt = series.median();
        let latency = rtt.zip(prev).map(|(r, p)| r as i64 - p as i64);
        let jitter = series
            .percentile(90)
            .zip(series.percentile(10))
            .map(|(hi, lo)| hi - lo);
        let loss = series.loss_ratio();
        let throughput = m.throughput_gbps.get(i).copied().flatten();
        let health = if rtt.is_none() && series.failed == 0 {
            Health::Unmeasured
        } else if rtt.is_none() {
            Health::Down
        } else if latency.is_some_and(|l| l as f64 > limits.latency_ns)
            || loss > limits.loss_ratio
            || jitter.is_some_and(|j| j as f64 > limits.latency_ns)
        {
            Health::Degraded
        } else {
            Health::Ok
        };
        let prefix = &m.route.nodes[..(i + 2).min(m.route.nodes.len())];
        out.push(HopReport {
            from: hop.from.clone(),
            to: hop.to.clone(),
            configured_latency_ns: hop.latency_ns,
            configured_bandwidth_gbps: hop.bandwidth_gbps,
            rtt_to_ns: rtt,
            latency_ns: latency,
            jitter_ns: jitter,
            loss_pct: loss * 100.0,
            utilisation: throughput.map(|t| t / hop.bandwidth_gbps),
            throughput_gbps: throughput,
            health,
            path_taken: (!path.is_empty() && path != prefix).then_some(path),
        });
        prev = rtt;
    }
    out
}

fn sweep(m: &Measured) -> Vec<SizePoint> {
    m.sweep
        .iter()
        .map(|(size, ping, routed)| SizePoint {
            size_bytes: *size,
            ping_median_ns: ping.median(),
            ping_p99_ns: ping.percentile(99),
            ping_loss_pct: ping.loss_ratio() * 100.0,
            routed_median_ns: routed.median(),
            note: ping.error.clone().or_else(|| routed.error.clone()),
        })
        .collect()
}

/// The hop adding the most latency, and with `--full` the one with the lowest utilisation.
fn bottlenecks(hops: &[HopReport]) -> Vec<Bottleneck> {
    let mut out = Vec::new();
    let slowest = hops
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.latency_ns.map(|l| (i, h, l)))
        .max_by_key(|(_, _, l)| *l);
    if let Some((i, h, l)) = slowest {
        let reason = format!(
            "adds {} to the round trip (configured link latency {}), the most of {} hops",
            human_ns(l as f64),
            human_ns(h.configured_latency_ns as f64),
            hops.len()
        );
        out.push(bottleneck("latency", i, h, reason));
    }
    let narrowest = hops
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.utilisation.map(|u| (i, h, u)))
        .min_by(|a, b| a.2.total_cmp(&b.2));
    if let Some((i, h, u)) = narrowest {
        let reason = format!(
            "a bulk transfer through it reached {:.2} Gbit/s, {:.0}% of its configured {} Gbit/s",
            h.throughput_gbps.unwrap_or(0.0),
            u * 100.0,
            h.configured_bandwidth_gbps
        );
        out.push(bottleneck("bandwidth", i, h, reason));
    }
    out
}

fn bottleneck(kind: &str, hop: usize, h: &HopReport, reason: String) -> Bottleneck {
    Bottleneck {
        kind: kind.into(),
        hop,
        from: h.from.clone(),
        to: h.to.clone(),
        reason,
    }
}

/// The product of the route's configured bottleneck bandwidth (what the buffers must be able
/// to fill; a measured figure would size them for today's shortfall) and the measured RTT.
/// A route without a finite figure falls back to the measured throughput.
fn bdp(m: &Measured, measured_gbps: Option<f64>) -> Option<Bdp> {
    let rtt = m.hops.last()?.0.median()?;
    let (gbps, source) = match measured_gbps {
        Some(g) if !m.route.bandwidth_gbps.is_finite() => (g, "measured"),
        _ => (m.route.bandwidth_gbps, "configured"),
    };
    if !gbps.is_finite() || gbps <= 0.0 {
        return None;
    }
    let bytes = (gbps * 1e9 / 8.0 * rtt as f64 / 1e9).ceil() as u64;
    Some(Bdp {
        bandwidth_gbps: gbps,
        bandwidth_source: source.into(),
        rtt_ns: rtt,
        bytes,
        buffer_bytes: bytes.max(MIN_BUFFER).next_power_of_two(),
        socket_buffer_bytes: m.socket_buffer_bytes,
    })
}

/// The route from `m.from` to `m.to` by the same strategy with the link `a`–`b` down.
fn route_around(m: &Measured, cfg: &FabricConfig, a: &str, b: &str) -> Option<Route> {
    let mut topo = Topology::from_config(cfg);
    topo.set_link_up(a, b, false);
    let r = Router::new(topo)
        .route(&m.from, &m.to, m.route.strategy, Instant::now())
        .ok()?;
    (r.nodes != m.route.nodes).then_some(r)
}

/// A hop whose utilisation is below this share of the best measured hop's is singled out by
/// the measurement; closer than that, the hops fall short alike.
const STANDS_OUT: f64 = 0.7;

/// Whether `h` is clearly narrower than another measured hop of the route.
fn stands_out(h: &HopReport, hops: &[HopReport]) -> bool {
    let best = hops
        .iter()
        .filter_map(|x| x.utilisation)
        .fold(0.0, f64::max);
    h.utilisation.is_some_and(|u| u < STANDS_OUT * best)
}

/// Whether the route around `h` is configured with a wider bottleneck than the route taken.
fn better_around(m: &Measured, cfg: &FabricConfig, h: &HopReport) -> bool {
    route_around(m, cfg, &h.from, &h.to).is_some_and(|r| r.bandwidth_gbps > m.route.bandwidth_gbps)
}

fn detour_advice(m: &Measured, cfg: &FabricConfig, h: &HopReport) -> String {
    match route_around(m, cfg, &h.from, &h.to).map(|r| r.nodes) {
        Some(alt) => format!(
            "route around it: {} avoids {}-{} (e.g. `hfabric send --from {} --to {} --via {}=1`), \
             or stripe over both paths with adaptive multipath",
            alt.join(" -> "),
            h.from,
            h.to,
            m.from,
            m.to,
            alt.get(1).map_or("", String::as_str)
        ),
        None => format!(
            "no other route from {} to {} avoids {}-{}: inspect that link (queueing, shaping, \
             a faulty NIC or cable, injected faults) or add a parallel link to the fabric",
            m.from, m.to, h.from, h.to
        ),
    }
}

fn hop_recommendations(
    m: &Measured,
    cfg: &FabricConfig,
    limits: &Limits,
    i: usize,
    h: &HopReport,
    recs: &mut Vec<Recommendation>,
) {
    let mut rec = |category: &str, issue: String, recommendation: String, priority| {
        recs.push(Recommendation {
            category: category.into(),
            issue,
            recommendation,
            priority,
        })
    };
    if h.health == Health::Unmeasured {
        return;
    }
    if h.health == Health::Down {
        let err = m
            .hops
            .get(i)
            .and_then(|s| s.0.error.clone())
            .unwrap_or_default();
        let issue = format!("no probe through {} -> {} came back ({err})", h.from, h.to);
        let advice = format!(
            "check that {} runs and is reachable; {}",
            h.to,
            detour_advice(m, cfg, h)
        );
        rec("reachability", issue, advice, Urgency::High);
        return;
    }
    if let Some(l) = h.latency_ns.filter(|l| *l as f64 > limits.latency_ns) {
        let issue = format!(
            "hop {} -> {} adds {} to the round trip (configured {}, limit {})",
            h.from,
            h.to,
            human_ns(l as f64),
            human_ns(h.configured_latency_ns as f64),
            human_ns(limits.latency_ns)
        );
        rec("latency", issue, detour_advice(m, cfg, h), Urgency::High);
    }
    if h.loss_pct / 100.0 > limits.loss_ratio {
        let issue = format!(
            "{:.1}% of the probes through {} -> {} failed (limit {:.2}%)",
            h.loss_pct,
            h.from,
            h.to,
            limits.loss_ratio * 100.0
        );
        rec(
            "reliability",
            issue,
            detour_advice(m, cfg, h),
            Urgency::High,
        );
    }
    jitter_recommendation(limits, h, recs);
}

fn jitter_recommendation(limits: &Limits, h: &HopReport, recs: &mut Vec<Recommendation>) {
    if let Some(j) = h.jitter_ns.filter(|j| *j as f64 > limits.latency_ns) {
        let issue = format!(
            "round trips through {} -> {} vary by {} (p90 − p10)",
            h.from,
            h.to,
            human_ns(j as f64)
        );
        let advice = "latency varies more than the limit: pin the node processes (`hfabric serve --pin CPU`), \
                      use profile low_latency for latency-critical nodes, and look for competing load on the hosts";
        recs.push(Recommendation {
            category: "jitter".into(),
            issue,
            recommendation: advice.into(),
            priority: Urgency::Medium,
        });
    }
}

fn buffer_recommendation(b: &Bdp, recs: &mut Vec<Recommendation>) {
    let buf = b.socket_buffer_bytes as u64;
    if b.bytes > buf {
        recs.push(Recommendation {
            category: "buffers".into(),
            issue: format!(
                "bandwidth-delay product {} B ({:.2} Gbit/s {} × {} round trip) exceeds socket_buffer_bytes {} B",
                b.bytes,
                b.bandwidth_gbps,
                b.bandwidth_source,
                human_ns(b.rtt_ns as f64),
                buf
            ),
            recommendation: format!(
                "set socket_buffer_bytes = {} in [fabric] (and net.core.wmem_max / rmem_max at least as large): \
                 one stream cannot fill the route with less in flight",
                b.buffer_bytes
            ),
            priority: if b.bytes > 2 * buf { Urgency::High } else { Urgency::Medium },
        });
    } else if buf >= 16 * b.buffer_bytes && buf > 16 << 20 {
        recs.push(Recommendation {
            category: "memory".into(),
            issue: format!(
                "socket buffers of {buf} B are {}× the bandwidth-delay product ({} B)",
                buf / b.bytes.max(1),
                b.bytes
            ),
            recommendation: format!(
                "socket_buffer_bytes = {} would carry this route at full rate with less memory per connection",
                b.buffer_bytes
            ),
            priority: Urgency::Low,
        });
    }
}

/// Large transfers much slower than the link allows: serialisation-bound.
fn sweep_recommendation(m: &Measured, limits: &Limits, recs: &mut Vec<Recommendation>) {
    let at = |size| {
        m.sweep
            .iter()
            .find(|(s, _, _)| *s == size)
            .and_then(|(_, _, r)| r.median())
    };
    let (Some(small), Some(big)) = (at(SWEEP_SIZES[0]), at(SWEEP_SIZES[4])) else {
        return;
    };
    let Some(delta) = big
        .checked_sub(small)
        .filter(|d| *d as f64 > limits.latency_ns / 10.0)
    else {
        return;
    };
    let bits = ((SWEEP_SIZES[4] - SWEEP_SIZES[0]) * 8) as f64;
    let effective = bits / delta as f64;
    if effective < 0.1 * m.route.bandwidth_gbps {
        recs.push(Recommendation {
            category: "bandwidth".into(),
            issue: format!(
                "8 KiB transfers take {} longer than 64 B ones: an effective {:.3} Gbit/s against the route's {} Gbit/s",
                human_ns(delta as f64),
                effective,
                m.route.bandwidth_gbps
            ),
            recommendation: "larger messages are bandwidth-bound on this route: enable compression for \
                             compressible data (`--compression auto`, or compression = \"auto\" under \
                             [data_types.*]) and stripe bulk transfers over several paths (--via)"
                .into(),
            priority: Urgency::Medium,
        });
    }
}

fn throughput_recommendation(
    m: &Measured,
    cfg: &FabricConfig,
    hops: &[HopReport],
    gbps: Option<f64>,
    recs: &mut Vec<Recommendation>,
) {
    let Some(g) = gbps else { return };
    let configured = m.route.bandwidth_gbps;
    if g >= 0.5 * configured {
        return;
    }
    let narrow = hops
        .iter()
        .filter(|h| h.utilisation.is_some())
        .min_by(|a, b| {
            a.utilisation
                .unwrap_or(1.0)
                .total_cmp(&b.utilisation.unwrap_or(1.0))
        });
    let advice = match narrow {
        Some(h) if stands_out(h, hops) || better_around(m, cfg, h) => format!(
            "the narrowest hop is {} -> {}; {}; compressible data gains from `--compression auto`",
            h.from,
            h.to,
            detour_advice(m, cfg, h)
        ),
        // Every hop falls short alike and no other path is configured wider: the shortfall is
        // the route's (hosts, copies), and naming a detour through an equal path would be
        // advice drawn from measurement noise.
        Some(_) => "no hop stands out (each reaches about the same share of its configured \
                    bandwidth) and no other path is configured wider, so a detour would not help: \
                    the shortfall is common to the route (the hosts' CPU or memory bandwidth, \
                    copies in the processes); compressible data gains from `--compression auto`"
            .into(),
        None => "compressible data gains from `--compression auto`".into(),
    };
    recs.push(Recommendation {
        category: "bandwidth".into(),
        issue: format!(
            "a bulk transfer reached {g:.2} Gbit/s, {:.0}% of the route's configured {configured} Gbit/s",
            g / configured * 100.0
        ),
        recommendation: advice,
        priority: Urgency::Medium,
    });
}

#[cfg(test)]
#[path = "analyse_tests.rs"]
mod tests;
