//! Delivers alert events to the endpoints on a thread of its own, so that a slow webhook or
//! command never holds up the node or the watcher. Every failure is logged, none panics.

use super::{AlertEvent, AlertState, RateLimiter};
use crate::config::{AlertsConfig, Endpoint};
use crate::error::{Error, Result};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use std::io::Write;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Events waiting for delivery at most; more are dropped (and logged).
const QUEUE: usize = 256;
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3);
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Who sends the alerts (named in every payload).
#[derive(Debug, Clone)]
pub struct Origin {
    pub fabric: String,
    pub node: String,
}

/// The JSON every endpoint receives: a Slack-compatible `text`, and the event's fields.
pub fn payload(ev: &AlertEvent, origin: &Origin, unix_ms: u64) -> serde_json::Value {
    serde_json::json!({
        "text": format!("{} (fabric {}, node {})", ev.text(), origin.fabric, origin.node),
        "fabric": origin.fabric,
        "node": origin.node,
        "time_unix_ms": unix_ms,
        "alert": ev,
    })
}

/// Which endpoints hear which event: `endpoints` hear the firing and tier 0; each
/// `[[alerts.escalation]]` tier's endpoints hear that tier; the resolution goes to
/// `endpoints` and to every endpoint that was told about the alert.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Every distinct endpoint once (one rate-limit budget each).
    all: Vec<Endpoint>,
    base: Vec<usize>,
    /// Per tier number: indices into `all`.
    tiers: Vec<Vec<usize>>,
}

impl Routes {
    pub fn new(cfg: &AlertsConfig) -> Routes {
        let mut all = Vec::new();
        let base = indices(&mut all, &cfg.endpoints);
        let mut tiers = vec![base.clone()];
        for t in &cfg.escalation {
            tiers.push(indices(&mut all, &t.endpoints));
        }
        Routes { all, base, tiers }
    }

    /// The endpoints (indices into `all`) `ev` goes to; `told(i)`: endpoint `i` heard of
    /// this alert.
    fn targets(&self, ev: &AlertEvent, told: impl Fn(usize) -> bool) -> Vec<usize> {
        match ev.state {
            AlertState::Firing => self.base.clone(),
            AlertState::Escalated => {
                let tier = ev.tier.unwrap_or(0) as usize;
                self.tiers.get(tier).cloned().unwrap_or_default()
            }
            AlertState::Resolved => (0..self.all.len())
                .filter(|&i| self.base.contains(&i) || told(i))
                .collect(),
        }
    }
}

/// The indices of `list` in `all`, adding the ones not there yet.
fn indices(all: &mut Vec<Endpoint>, list: &[Endpoint]) -> Vec<usize> {
    let mut out = Vec::with_capacity(list.len());
    for e in list {
        let i = all.iter().position(|a| a == e).unwrap_or_else(|| {
            all.push(e.clone());
            all.len() - 1
        });
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

pub struct Dispatcher {
    tx: Option<Sender<AlertEvent>>,
    handle: Option<JoinHandle<()>>,
}

impl Dispatcher {
    pub fn start(routes: Routes, per_min: u32, origin: Origin) -> Result<Dispatcher> {
        let (tx, rx) = bounded(QUEUE);
        let handle = std::thread::Builder::new()
            .name("hf-alerts".into())
            .spawn(move || deliver_all(rx, routes, per_min, origin))
            .map_err(|e| Error::io("starting the alert dispatcher thread", e))?;
        Ok(Dispatcher {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Queues `ev` (never blocks).
    pub fn send(&self, ev: AlertEvent) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Full(ev)) => {
                tracing::warn!(target: "hyperfabric::alert", id = ev.id, "alert queue full: event dropped");
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!(target: "hyperfabric::alert", "alert dispatcher gone: event dropped");
            }
        }
    }

    /// Delivers what is queued, then stops.
    pub fn stop(mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn deliver_all(rx: Receiver<AlertEvent>, routes: Routes, per_min: u32, origin: Origin) {
    let mut limiter = RateLimiter::new(routes.all.len(), per_min);
    for ev in rx {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let body = payload(&ev, &origin, unix_ms);
        let now = Instant::now();
        for i in routes.targets(&ev, |i| limiter.told(i, ev.id)) {
            let endpoint = &routes.all[i];
            if !limiter.admit(i, &ev, now) {
                tracing::debug!(target: "hyperfabric::alert", %endpoint, id = ev.id, suppressed = limiter.suppressed(i), "rate limited");
                continue;
            }
            if let Err(e) = deliver(endpoint, &ev, &body) {
                tracing::warn!(target: "hyperfabric::alert", %endpoint, id = ev.id, "alert delivery failed: {e}");
            }
        }
    }
}

fn deliver(endpoint: &Endpoint, ev: &AlertEvent, body: &serde_json::Value) -> Result<()> {
    match endpoint {
        Endpoint::Log => {
            let text = ev.text();
            match ev.state {
                super::AlertState::Resolved => {
                    tracing::info!(target: "hyperfabric::alert", id = ev.id, "{text}")
                }
                _ => tracing::warn!(target: "hyperfabric::alert", id = ev.id, "{text}"),
            }
            Ok(())
        }
        Endpoint::Webhook { url } => {
            super::http::post_json(url, body.to_string().as_bytes(), WEBHOOK_TIMEOUT).map(|_| ())
        }
        Endpoint::Command { command } => run_command(command, ev, body, COMMAND_TIMEOUT),
        Endpoint::Email { spec } => {
            let target = super::smtp::EmailTarget::parse(spec).map_err(Error::InvalidArgument)?;
            let text = serde_json::to_string_pretty(body).unwrap_or_default();
            super::smtp::send(&target, &ev.text(), &text, WEBHOOK_TIMEOUT)
        }
    }
}

/// Runs `sh -c command` with the event as one line of JSON on stdin and in `HF_ALERT_*` variables;
/// killed after `timeout`.
pub fn run_command(
    command: &str,
    ev: &AlertEvent,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<()> {
    let ctx = |what: &str| format!("alert command `{command}`: {what}");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("HF_ALERT_ID", ev.id.to_string())
        .env("HF_ALERT_STATE", ev.state.as_str())
        .env("HF_ALERT_SUBJECT", ev.subject.to_string())
        .env("HF_ALERT_METRIC", ev.metric.as_str())
        .env("HF_ALERT_VALUE", ev.value.to_string())
        .env("HF_ALERT_TEXT", ev.text())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io(ctx("starting"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that ignores stdin may exit first: a broken pipe is not a failure.
        // One JSON document per line (JSON lines), so `cat >> FILE` keeps a readable log.
        let mut line = body.to_string();
        line.push('\n');
        let _ = stdin.write_all(line.as_bytes());
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(Error::Rejected {
                    reason: ctx(&format!("exited with {status}")),
                })
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout {
                    what: ctx("running"),
                    after: timeout,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(Error::io(ctx("waiting"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertState, DetectorKind, Metric, Subject};

    fn ev() -> AlertEvent {
        AlertEvent {
            id: 7,
            state: AlertState::Firing,
            subject: Subject::Link {
                from: "a".into(),
                to: "b".into(),
            },
            metric: Metric::LatencyNs,
            value: 2.5e6,
            detector: DetectorKind::Threshold,
            reason: "threshold: limit 1.000 ms".into(),
            firing_for_s: 0.0,
            tier: None,
        }
    }

    fn origin() -> Origin {
        Origin {
            fabric: "lab".into(),
            node: "a".into(),
        }
    }

    #[test]
    fn an_email_endpoint_delivers_the_event_to_an_smtp_sink() {
        let (relay, rx) = crate::alert::smtp::tests::sink(false);
        let endpoint: Endpoint = format!("email:ops@example.com?via={relay}")
            .parse()
            .unwrap();
        let body = payload(&ev(), &origin(), 5);
        deliver(&endpoint, &ev(), &body).unwrap();
        let data = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(data.contains("Subject: [FIRING]"), "{data}");
        assert!(data.contains("\"fabric\": \"lab\""), "{data}");
        assert!("email:nobody".parse::<Endpoint>().is_err());
    }

    #[test]
    fn tiers_reach_their_own_endpoints_and_the_end_reaches_everyone_told() {
        let ep = |s: &str| s.parse::<Endpoint>().unwrap();
        let cfg = AlertsConfig {
            endpoints: vec![ep("log"), ep("command:a")],
            escalation: vec![
                crate::config::EscalationTier {
                    after_s: 60.0,
                    endpoints: vec![ep("command:pager"), ep("log")],
                },
                crate::config::EscalationTier {
                    after_s: 300.0,
                    endpoints: vec![ep("command:lead")],
                },
            ],
            ..AlertsConfig::default()
        };
        let r = Routes::new(&cfg);
        let names = |v: Vec<usize>| -> Vec<String> {
            v.into_iter().map(|i| r.all[i].to_string()).collect()
        };
        let mut e = ev();
        assert_eq!(names(r.targets(&e, |_| false)), ["log", "command:a"]);
        e.state = AlertState::Escalated;
        e.tier = Some(0);
        assert_eq!(names(r.targets(&e, |_| false)), ["log", "command:a"]);
        e.tier = Some(1);
        assert_eq!(names(r.targets(&e, |_| false)), ["command:pager", "log"]);
        e.tier = Some(2);
        assert_eq!(names(r.targets(&e, |_| false)), ["command:lead"]);
        e.state = AlertState::Resolved;
        e.tier = None;
        // The pager was told (tier 1), the lead was not (tier 2 never reached).
        let pager = r
            .all
            .iter()
            .position(|x| x == &ep("command:pager"))
            .unwrap();
        let told = names(r.targets(&e, |i| i == pager));
        assert_eq!(told, ["log", "command:a", "command:pager"]);
        assert_eq!(r.all.len(), 4, "log is one endpoint with one budget");
    }

    #[test]
    fn payload_is_slack_compatible_and_structured() {
        let p = payload(&ev(), &origin(), 5);
        let text = p["text"].as_str().unwrap();
        assert!(
            text.starts_with("[FIRING] latency_ns on a->b: 2.500 ms"),
            "{text}"
        );
        assert_eq!(p["alert"]["subject"], "a->b");
        assert_eq!(p["alert"]["metric"], "latency_ns");
        assert_eq!(p["alert"]["state"], "firing");
        assert_eq!(p["node"], "a");
    }

    #[test]
    fn command_gets_json_on_stdin_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got");
        let cmd = format!(
            "cat > {0}; echo \"$HF_ALERT_STATE $HF_ALERT_SUBJECT\" >> {0}",
            out.display()
        );
        let body = payload(&ev(), &origin(), 5);
        run_command(&cmd, &ev(), &body, Duration::from_secs(10)).unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        assert!(got.contains("\"metric\":\"latency_ns\""), "{got}");
        assert!(got.ends_with("firing a->b\n"), "{got}");
        // JSON lines: the event is one whole line of its own.
        let first = got.lines().next().unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(first).unwrap()["node"],
            "a"
        );
    }

    #[test]
    fn failing_and_hanging_commands_are_errors() {
        let body = payload(&ev(), &origin(), 5);
        let err = run_command("exit 3", &ev(), &body, Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("exit status: 3"), "{err}");
        let err = run_command("sleep 30", &ev(), &body, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
}
