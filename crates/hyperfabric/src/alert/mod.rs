//! Anomaly detection and alerts (the guide's `configure_alerts`).
//!
//! [`Engine`] is sans-IO: it is fed [`Sample`]s with the time as an argument and returns
//! [`AlertEvent`]s (Firing → Escalated → Resolved, one alert per subject and metric).
//! [`RateLimiter`] decides per endpoint what is delivered; [`dispatch`] delivers (log,
//! webhook, command) on its own thread; [`watch`] measures a running node and feeds it all.

mod detect;
pub mod dispatch;
mod engine;
pub mod http;
pub mod https;
mod ratelimit;
mod remedy;
pub mod smtp;
pub mod sysinfo;
pub mod watch;

pub use detect::{robust_z, StatDetector, Threshold};
pub use engine::Engine;
pub use ratelimit::RateLimiter;

use serde::Serialize;
use std::fmt;
use std::time::Instant;

/// What a sample is about: a node, or the link from one node to a neighbour.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Node(String),
    Link { from: String, to: String },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Node(n) => f.write_str(n),
            Subject::Link { from, to } => write!(f, "{from}->{to}"),
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// One-way latency (half a ping round trip), nanoseconds.
    LatencyNs,
    /// Estimated link bandwidth, Gbit/s.
    BandwidthGbps,
    /// Lost / sent (pings) or retransmitted / sent (bytes).
    LossRatio,
    /// Host CPU busy share.
    CpuRatio,
    /// Host memory in use share.
    MemoryRatio,
}

impl Metric {
    pub const fn as_str(self) -> &'static str {
        match self {
            Metric::LatencyNs => "latency_ns",
            Metric::BandwidthGbps => "bandwidth_gbps",
            Metric::LossRatio => "loss_ratio",
            Metric::CpuRatio => "cpu_ratio",
            Metric::MemoryRatio => "memory_ratio",
        }
    }

    /// True when a low value is the problem (bandwidth); otherwise a high one is.
    pub const fn low_is_bad(self) -> bool {
        matches!(self, Metric::BandwidthGbps)
    }

    /// The value in the unit people read (ms, Gbit/s, %).
    pub fn human(self, v: f64) -> String {
        match self {
            Metric::LatencyNs => format!("{:.3} ms", v / 1e6),
            Metric::BandwidthGbps => format!("{v:.2} Gbit/s"),
            _ => format!("{:.2}%", v * 100.0),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub subject: Subject,
    pub metric: Metric,
    pub value: f64,
    pub at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    /// Still firing one tier's delay after it fired (the event names the tier).
    Escalated,
    Resolved,
}

impl AlertState {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Escalated => "escalated",
            AlertState::Resolved => "resolved",
        }
    }
}

/// Which detector judged a sample anomalous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    Threshold,
    Statistical,
}

/// A change of an alert's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    /// Stable for the life of one alert (firing to resolved).
    pub id: u64,
    pub state: AlertState,
    pub subject: Subject,
    pub metric: Metric,
    /// The sample that caused this event.
    pub value: f64,
    /// Which detector fired (for Resolved: the one that fired the alert).
    pub detector: DetectorKind,
    /// Why, in words, with the limit or the window's figures.
    pub reason: String,
    /// Seconds since the alert fired.
    pub firing_for_s: f64,
    /// For `Escalated`: the tier reached (0: `escalate_after_s`, to the `endpoints`; n: the
    /// n-th `[[alerts.escalation]]` tier, to its own endpoints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<u32>,
}

impl AlertEvent {
    /// One line for people (and the Slack-compatible `text`).
    pub fn text(&self) -> String {
        let tier = match self.tier {
            Some(t) if t > 0 => format!(", escalation tier {t}"),
            _ => String::new(),
        };
        format!(
            "[{}] {} on {}: {} ({}; firing for {:.1} s{tier})",
            self.state.as_str().to_uppercase(),
            self.metric,
            self.subject,
            self.metric.human(self.value),
            self.reason,
            self.firing_for_s
        )
    }
}
