//! `[alerts]` in the fabric file (the guide's `configure_alerts`): thresholds, the
//! statistical detector, timing, endpoints and automatic remedies.
//!
//! ```toml
//! [alerts]
//! latency_ms = 1.0
//! loss_ratio = 0.001
//! endpoints = ["log", "webhook:http://127.0.0.1:9999/hook", "command:mail -s alert ops"]
//! escalate_after_s = 30          # still firing: escalated to `endpoints` (tier 0)
//!
//! [[alerts.escalation]]          # tier 1: still firing after 120 s, these hear of it too
//! after_s = 120
//! endpoints = ["email:oncall@example.com?via=127.0.0.1:25"]
//! ```

use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// Where alert events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The node's log (tracing, target `hyperfabric::alert`).
    Log,
    /// JSON POST to an `http://` URL (Slack-compatible `{"text": …}` plus structured fields).
    Webhook { url: String },
    /// A shell command (`sh -c`), the event as JSON on stdin and in `HF_ALERT_*` variables.
    Command { command: String },
    /// Mail over SMTP: `email:TO[,TO…][?via=HOST:PORT]` (see [`crate::alert::smtp`]).
    Email { spec: String },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Log => f.write_str("log"),
            Endpoint::Webhook { url } => write!(f, "webhook:{url}"),
            Endpoint::Command { command } => write!(f, "command:{command}"),
            Endpoint::Email { spec } => write!(f, "email:{spec}"),
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "log" {
            return Ok(Endpoint::Log);
        }
        if let Some(url) = s.strip_prefix("webhook:") {
            super::HttpUrl::parse(url)?;
            return Ok(Endpoint::Webhook {
                url: url.to_owned(),
            });
        }
        if let Some(spec) = s.strip_prefix("email:") {
            super::EmailTarget::parse(spec)?;
            return Ok(Endpoint::Email {
                spec: spec.to_owned(),
            });
        }
        if let Some(command) = s.strip_prefix("command:") {
            if command.trim().is_empty() {
                return Err("`command:` needs a command after the colon".into());
            }
            return Ok(Endpoint::Command {
                command: command.to_owned(),
            });
        }
        Err(format!(
            "unknown endpoint \"{s}\" (expected \"log\", \"webhook:http://HOST:PORT/PATH\", \"email:TO?via=HOST:PORT\" or \"command:CMD\")"
        ))
    }
}

/// The checked `[alerts]` table; defaults are the guide's thresholds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertsConfig {
    /// One-way latency above this is an anomaly.
    pub latency_ms: f64,
    /// Estimated link bandwidth below this is an anomaly (no floor: not measured).
    pub bandwidth_floor_gbps: Option<f64>,
    /// Lost / sent above this is an anomaly.
    pub loss_ratio: f64,
    pub cpu_ratio: f64,
    pub memory_ratio: f64,
    /// Robust z-score (median and MAD of the recent window) beyond which a sample is an outlier.
    pub zscore: f64,
    /// Samples kept per (subject, metric) for the statistical detector.
    pub window: usize,
    /// How often the node measures itself and its neighbours.
    pub interval_ms: u64,
    /// An alert still firing this long after it fired is escalated to `endpoints` (tier 0).
    pub escalate_after_s: f64,
    /// Further tiers (`[[alerts.escalation]]`, tier 1, 2, …): still firing `after_s` after
    /// it fired, the alert is escalated to the tier's own endpoints.
    pub escalation: Vec<EscalationTier>,
    /// New alerts each endpoint receives per minute at most (follow-ups always pass).
    pub rate_limit_per_min: u32,
    pub endpoints: Vec<Endpoint>,
    /// Apply safe remedies (adaptive multipath, compression) when an alert fires.
    pub auto_optimization: bool,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            latency_ms: 1.0,
            bandwidth_floor_gbps: None,
            loss_ratio: 0.001,
            cpu_ratio: 0.9,
            memory_ratio: 0.9,
            zscore: 6.0,
            window: 60,
            interval_ms: 1000,
            escalate_after_s: 30.0,
            escalation: Vec::new(),
            rate_limit_per_min: 20,
            endpoints: vec![Endpoint::Log],
            auto_optimization: false,
        }
    }
}

/// Fewest samples the statistical detector needs before it judges.
pub const MIN_WINDOW: usize = 8;
/// `[[alerts.escalation]]` tiers at most.
pub const ESCALATION_TIERS_MAX: usize = 8;

/// One escalation tier: who hears of an alert still firing `after_s` after it fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EscalationTier {
    pub after_s: f64,
    pub endpoints: Vec<Endpoint>,
}

/// `[[alerts.escalation]]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTier {
    pub after_s: f64,
    pub endpoints: Vec<String>,
}

/// `[alerts]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_floor_gbps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zscore: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalate_after_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_optimization: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Vec<RawTier>>,
}

type Problem = (String, String);

fn positive(field: &str, v: f64) -> Result<f64, Problem> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err((
            format!("alerts.{field}"),
            format!("must be a finite number > 0 (got {v})"),
        ))
    }
}

fn ratio(field: &str, v: f64) -> Result<f64, Problem> {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err((
            format!("alerts.{field}"),
            format!("must be a ratio with 0 < x <= 1 (got {v})"),
        ))
    }
}

/// Checks `[alerts]`; problems are `(field path, reason)`.
pub(crate) fn build(raw: &RawAlerts) -> Result<AlertsConfig, Problem> {
    let d = AlertsConfig::default();
    let mut c = AlertsConfig {
        latency_ms: positive("latency_ms", raw.latency_ms.unwrap_or(d.latency_ms))?,
        bandwidth_floor_gbps: raw
            .bandwidth_floor_gbps
            .map(|v| positive("bandwidth_floor_gbps", v))
            .transpose()?,
        loss_ratio: ratio("loss_ratio", raw.loss_ratio.unwrap_or(d.loss_ratio))?,
        cpu_ratio: ratio("cpu_ratio", raw.cpu_ratio.unwrap_or(d.cpu_ratio))?,
        memory_ratio: ratio("memory_ratio", raw.memory_ratio.unwrap_or(d.memory_ratio))?,
        zscore: positive("zscore", raw.zscore.unwrap_or(d.zscore))?,
        escalate_after_s: positive(
            "escalate_after_s",
            raw.escalate_after_s.unwrap_or(d.escalate_after_s),
        )?,
        auto_optimization: raw.auto_optimization.unwrap_or(d.auto_optimization),
        ..d
    };
    c.window = raw.window.unwrap_or(c.window);
    if !(MIN_WINDOW..=10_000).contains(&c.window) {
        let reason = format!("must be in {MIN_WINDOW}..=10000 samples (got {})", c.window);
        return Err(("alerts.window".into(), reason));
    }
    c.interval_ms = raw.interval_ms.unwrap_or(c.interval_ms);
    if !(10..=3_600_000).contains(&c.interval_ms) {
        let reason = format!("must be in 10..=3600000 ms (got {})", c.interval_ms);
        return Err(("alerts.interval_ms".into(), reason));
    }
    c.rate_limit_per_min = raw.rate_limit_per_min.unwrap_or(c.rate_limit_per_min);
    if c.rate_limit_per_min == 0 {
        let reason = "must be at least 1 (remove an endpoint to silence it)".to_string();
        return Err(("alerts.rate_limit_per_min".into(), reason));
    }
    if let Some(list) = &raw.endpoints {
        c.endpoints = endpoints("alerts.endpoints", list)?;
    }
    c.escalation = tiers(raw.escalation.as_deref().unwrap_or_default())?;
    Ok(c)
}

fn endpoints(field: &str, list: &[String]) -> Result<Vec<Endpoint>, Problem> {
    list.iter()
        .enumerate()
        .map(|(i, e)| e.parse().map_err(|r| (format!("{field}[{i}]"), r)))
        .collect()
}

/// Checks `[[alerts.escalation]]`: at most [`ESCALATION_TIERS_MAX`] tiers, each with a
/// delay > 0 and at least one endpoint.
fn tiers(raw: &[RawTier]) -> Result<Vec<EscalationTier>, Problem> {
    if raw.len() > ESCALATION_TIERS_MAX {
        let reason = format!("{} tiers: at most {ESCALATION_TIERS_MAX}", raw.len());
        return Err(("alerts.escalation".into(), reason));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let at = |f: &str| format!("alerts.escalation[{i}].{f}");
        let after_s = positive("", t.after_s).map_err(|(_, r)| (at("after_s"), r))?;
        if t.endpoints.is_empty() {
            let reason = "a tier needs at least one endpoint".to_string();
            return Err((at("endpoints"), reason));
        }
        let endpoints = endpoints(&at("endpoints"), &t.endpoints)?;
        out.push(EscalationTier { after_s, endpoints });
    }
    Ok(out)
}

impl AlertsConfig {
    /// The table as written back to a file (every field explicit).
    pub(crate) fn to_raw(&self) -> RawAlerts {
        RawAlerts {
            latency_ms: Some(self.latency_ms),
            bandwidth_floor_gbps: self.bandwidth_floor_gbps,
            loss_ratio: Some(self.loss_ratio),
            cpu_ratio: Some(self.cpu_ratio),
            memory_ratio: Some(self.memory_ratio),
            zscore: Some(self.zscore),
            window: Some(self.window),
            interval_ms: Some(self.interval_ms),
            escalate_after_s: Some(self.escalate_after_s),
            rate_limit_per_min: Some(self.rate_limit_per_min),
            endpoints: Some(self.endpoints.iter().map(ToString::to_string).collect()),
            auto_optimization: Some(self.auto_optimization),
            escalation: (!self.escalation.is_empty()).then(|| {
                self.escalation
                    .iter()
                    .map(|t| RawTier {
                        after_s: t.after_s,
                        endpoints: t.endpoints.iter().map(ToString::to_string).collect(),
                    })
                    .collect()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FabricConfig;
    use crate::error::Error;

    const BASE: &str =
        "[fabric]\nname = \"a\"\n[[nodes]]\nid = \"n\"\nhardware = \"cpu-cluster\"\n";

    fn load(alerts: &str) -> Result<FabricConfig, Error> {
        FabricConfig::from_toml_str(&format!("{BASE}\n[alerts]\n{alerts}"), "f.toml")
    }

    #[test]
    fn defaults_are_the_guides_thresholds() {
        let cfg = load("").unwrap();
        assert_eq!(cfg.alerts, Some(AlertsConfig::default()));
        let no_table = FabricConfig::from_toml_str(BASE, "f.toml").unwrap();
        assert_eq!(no_table.alerts, None);
        let a = AlertsConfig::default();
        assert_eq!((a.latency_ms, a.loss_ratio, a.cpu_ratio), (1.0, 0.001, 0.9));
    }

    #[test]
    fn endpoints_parse() {
        let cfg = load("endpoints = [\"log\", \"webhook:http://127.0.0.1:9/h\", \"command:cat > /tmp/x\"]\nescalate_after_s = 0.5").unwrap();
        let a = cfg.alerts.unwrap();
        assert_eq!(a.endpoints[0], Endpoint::Log);
        assert_eq!(
            a.endpoints[1],
            Endpoint::Webhook {
                url: "http://127.0.0.1:9/h".into()
            }
        );
        assert_eq!(a.endpoints[2].to_string(), "command:cat > /tmp/x");
        assert_eq!(a.escalate_after_s, 0.5);
    }

    #[test]
    fn each_problem_names_its_field() {
        let cases = [
            ("latency_ms = 0", "alerts.latency_ms", "> 0"),
            ("loss_ratio = 1.5", "alerts.loss_ratio", "0 < x <= 1"),
            ("cpu_ratio = -1", "alerts.cpu_ratio", "0 < x <= 1"),
            ("window = 3", "alerts.window", "8..="),
            ("interval_ms = 1", "alerts.interval_ms", "10..="),
            (
                "rate_limit_per_min = 0",
                "alerts.rate_limit_per_min",
                "at least 1",
            ),
            (
                "endpoints = [\"log\", \"pager\"]",
                "alerts.endpoints[1]",
                "unknown endpoint",
            ),
            (
                "endpoints = [\"webhook:ftp://x/y\"]",
                "alerts.endpoints[0]",
                "http:// or https://",
            ),
            (
                "endpoints = [\"command: \"]",
                "alerts.endpoints[0]",
                "needs a command",
            ),
            ("latency = 3", "alerts.latency", "unknown field"),
            (
                "[[alerts.escalation]]\nafter_s = 0\nendpoints = [\"log\"]",
                "alerts.escalation[0].after_s",
                "> 0",
            ),
            (
                "[[alerts.escalation]]\nafter_s = 5\nendpoints = []",
                "alerts.escalation[0].endpoints",
                "at least one endpoint",
            ),
            (
                "[[alerts.escalation]]\nafter_s = 5\nendpoints = [\"log\", \"pager\"]",
                "alerts.escalation[0].endpoints[1]",
                "unknown endpoint",
            ),
        ];
        for (text, field, fragment) in cases {
            match load(text) {
                Err(Error::Config {
                    file,
                    field: got,
                    reason,
                }) => {
                    assert_eq!(file, "f.toml");
                    assert_eq!(got, field, "{reason}");
                    assert!(reason.contains(fragment), "{field}: {reason}");
                }
                other => panic!("{text}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn round_trips_through_text() {
        let cfg = load(
            "bandwidth_floor_gbps = 5\nendpoints = [\"command:true\"]\nauto_optimization = true\n\
             [[alerts.escalation]]\nafter_s = 60\nendpoints = [\"log\", \"command:false\"]",
        )
        .unwrap();
        let tiers = &cfg.alerts.as_ref().unwrap().escalation;
        assert_eq!((tiers.len(), tiers[0].after_s), (1, 60.0));
        let back = FabricConfig::from_toml_str(&cfg.to_toml_string(), "f.toml").unwrap();
        assert_eq!(back.alerts, cfg.alerts);
    }
}
