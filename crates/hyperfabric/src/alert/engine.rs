//! The alert state machine: one alert per (subject, metric), Firing → Escalated (once per
//! tier, in the order of their delays, at most one tier per sample) → Resolved.
//! Sans-IO: time comes in with each sample.

use super::detect::{StatDetector, Threshold};
use super::{AlertEvent, AlertState, DetectorKind, Metric, Sample, Subject};
use crate::config::AlertsConfig;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Consecutive normal samples before an alert resolves (one good sample amid a fault is
/// not recovery).
pub const CLEAR_AFTER: u32 = 2;

#[derive(Debug, Clone)]
struct Active {
    id: u64,
    since: Instant,
    /// Index into [`Engine::tiers`] of the next tier to reach.
    next_tier: usize,
    normal_streak: u32,
    detector: DetectorKind,
}

/// Detectors and alert states; see the module docs.
#[derive(Debug, Clone)]
pub struct Engine {
    thresholds: HashMap<Metric, Threshold>,
    stats: HashMap<(Subject, Metric), StatDetector>,
    active: HashMap<(Subject, Metric), Active>,
    window: usize,
    zscore: f64,
    /// (delay, tier number), by delay: tier 0 is `escalate_after_s`, n the n-th
    /// `[[alerts.escalation]]` tier.
    tiers: Vec<(Duration, u32)>,
    next_id: u64,
}

impl Engine {
    pub fn new(cfg: &AlertsConfig) -> Engine {
        let mut thresholds = HashMap::new();
        let ceiling = |limit| Threshold {
            limit,
            low_is_bad: false,
        };
        thresholds.insert(Metric::LatencyNs, ceiling(cfg.latency_ms * 1e6));
        thresholds.insert(Metric::LossRatio, ceiling(cfg.loss_ratio));
        thresholds.insert(Metric::CpuRatio, ceiling(cfg.cpu_ratio));
        thresholds.insert(Metric::MemoryRatio, ceiling(cfg.memory_ratio));
        if let Some(floor) = cfg.bandwidth_floor_gbps {
            let t = Threshold {
                limit: floor,
                low_is_bad: true,
            };
            thresholds.insert(Metric::BandwidthGbps, t);
        }
        Engine {
            thresholds,
            stats: HashMap::new(),
            active: HashMap::new(),
            window: cfg.window,
            zscore: cfg.zscore,
            tiers: tiers(cfg),
            next_id: 1,
        }
    }

    /// Alerts currently firing (escalated or not).
    pub fn firing(&self) -> Vec<(Subject, Metric)> {
        let mut v: Vec<_> = self.active.keys().cloned().collect();
        v.sort();
        v
    }

    /// Judges one sample; returns the event it causes, if any.
    pub fn observe(&mut self, s: &Sample) -> Option<AlertEvent> {
        let key = (s.subject.clone(), s.metric);
        let anomaly = self.judge(s);
        let event = |id, state, detector, reason: String, since: Instant, tier| AlertEvent {
            id,
            state,
            subject: s.subject.clone(),
            metric: s.metric,
            value: s.value,
            detector,
            reason,
            firing_for_s: s.at.saturating_duration_since(since).as_secs_f64(),
            tier,
        };
        match (anomaly, self.active.get_mut(&key)) {
            (Some((detector, reason)), None) => {
                let id = self.next_id;
                self.next_id += 1;
                let a = Active {
                    id,
                    since: s.at,
                    next_tier: 0,
                    normal_streak: 0,
                    detector,
                };
                self.active.insert(key, a);
                Some(event(id, AlertState::Firing, detector, reason, s.at, None))
            }
            (Some((_, reason)), Some(a)) => {
                a.normal_streak = 0;
                let firing_for = s.at.saturating_duration_since(a.since);
                let (_, tier) = *self
                    .tiers
                    .get(a.next_tier)
                    .filter(|(after, _)| firing_for >= *after)?;
                a.next_tier += 1;
                let (id, detector, since) = (a.id, a.detector, a.since);
                Some(event(
                    id,
                    AlertState::Escalated,
                    detector,
                    reason,
                    since,
                    Some(tier),
                ))
            }
            (None, Some(a)) => {
                a.normal_streak += 1;
                if a.normal_streak < CLEAR_AFTER {
                    return None;
                }
                let (id, detector, since) = (a.id, a.detector, a.since);
                self.active.remove(&key);
                let reason = format!("back within limits for {CLEAR_AFTER} samples");
                Some(event(
                    id,
                    AlertState::Resolved,
                    detector,
                    reason,
                    since,
                    None,
                ))
            }
            (None, None) => None,
        }
    }

    /// The threshold's verdict first; the statistical detector sees every sample either way
    /// (it keeps the window), for latency and bandwidth.
    fn judge(&mut self, s: &Sample) -> Option<(DetectorKind, String)> {
        let human = |v| s.metric.human(v);
        let stat = if matches!(s.metric, Metric::LatencyNs | Metric::BandwidthGbps) {
            let (window, z) = (self.window, self.zscore);
            self.stats
                .entry((s.subject.clone(), s.metric))
                .or_insert_with(|| StatDetector::new(window, z, s.metric.low_is_bad()))
                .observe(s.value, human)
        } else {
            None
        };
        let threshold = self
            .thresholds
            .get(&s.metric)
            .and_then(|t| t.check(s.value, human));
        match (threshold, stat) {
            (Some(r), _) => Some((DetectorKind::Threshold, r)),
            (None, Some(r)) => Some((DetectorKind::Statistical, r)),
            (None, None) => None,
        }
    }
}

/// The escalation tiers of `cfg` by delay (a tie keeps tier 0 first).
fn tiers(cfg: &AlertsConfig) -> Vec<(Duration, u32)> {
    let mut tiers = vec![(Duration::from_secs_f64(cfg.escalate_after_s), 0)];
    for (n, t) in cfg.escalation.iter().enumerate() {
        tiers.push((Duration::from_secs_f64(t.after_s), n as u32 + 1));
    }
    tiers.sort_by_key(|&(after, _)| after);
    tiers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AlertsConfig {
        AlertsConfig {
            escalate_after_s: 30.0,
            ..AlertsConfig::default()
        }
    }

    fn link() -> Subject {
        Subject::Link {
            from: "a".into(),
            to: "b".into(),
        }
    }

    fn at(t0: Instant, secs: u64, metric: Metric, value: f64) -> Sample {
        Sample {
            subject: link(),
            metric,
            value,
            at: t0 + Duration::from_secs(secs),
        }
    }

    #[test]
    fn fires_escalates_once_and_resolves_with_virtual_time() {
        let mut e = Engine::new(&cfg());
        let t0 = Instant::now();
        let lat = Metric::LatencyNs;
        assert_eq!(e.observe(&at(t0, 0, lat, 20_000.0)), None);
        let fired = e.observe(&at(t0, 1, lat, 3e6)).expect("firing");
        assert_eq!(fired.state, AlertState::Firing);
        assert_eq!(fired.detector, DetectorKind::Threshold);
        assert!(fired
            .text()
            .contains("[FIRING] latency_ns on a->b: 3.000 ms"));
        // Still firing but before the delay: de-duplicated, no event.
        for s in 2..31 {
            assert_eq!(e.observe(&at(t0, s, lat, 3e6)), None, "second {s}");
        }
        let esc = e.observe(&at(t0, 31, lat, 3e6)).expect("escalated");
        assert_eq!((esc.state, esc.id), (AlertState::Escalated, fired.id));
        assert_eq!(esc.tier, Some(0));
        assert_eq!(esc.firing_for_s, 30.0);
        assert_eq!(e.observe(&at(t0, 60, lat, 3e6)), None, "escalates once");
        // One good sample is not recovery; two are.
        assert_eq!(e.observe(&at(t0, 61, lat, 20_000.0)), None);
        let res = e.observe(&at(t0, 62, lat, 20_000.0)).expect("resolved");
        assert_eq!((res.state, res.id), (AlertState::Resolved, fired.id));
        assert!(e.firing().is_empty());
        // A new fault is a new alert.
        let again = e.observe(&at(t0, 70, lat, 3e6)).expect("fires again");
        assert_ne!(again.id, fired.id);
    }

    #[test]
    fn each_tier_escalates_once_in_the_order_of_its_delay() {
        let tier = |after_s, endpoint: &str| crate::config::EscalationTier {
            after_s,
            endpoints: vec![endpoint.parse().unwrap()],
        };
        let mut e = Engine::new(&AlertsConfig {
            escalate_after_s: 10.0,
            escalation: vec![tier(20.0, "command:page"), tier(5.0, "log")],
            ..cfg()
        });
        let t0 = Instant::now();
        let lat = Metric::LatencyNs;
        assert_eq!(e.observe(&at(t0, 0, lat, 3e6)).unwrap().tier, None);
        let mut seen = Vec::new();
        for s in 1..40 {
            if let Some(ev) = e.observe(&at(t0, s, lat, 3e6)) {
                assert_eq!(ev.state, AlertState::Escalated);
                seen.push((s, ev.tier));
            }
        }
        // Tier 2 (5 s) first, then tier 0 (escalate_after_s, 10 s), then tier 1 (20 s).
        assert_eq!(seen, vec![(5, Some(2)), (10, Some(0)), (20, Some(1))]);
        // Samples far apart: one tier per sample, the next one first.
        let mut e = Engine::new(&AlertsConfig {
            escalation: vec![tier(1.0, "log")],
            escalate_after_s: 2.0,
            ..cfg()
        });
        e.observe(&at(t0, 0, lat, 3e6));
        assert_eq!(e.observe(&at(t0, 50, lat, 3e6)).unwrap().tier, Some(1));
        assert_eq!(e.observe(&at(t0, 51, lat, 3e6)).unwrap().tier, Some(0));
        assert_eq!(e.observe(&at(t0, 52, lat, 3e6)), None);
        let text = e.observe(&at(t0, 53, lat, 1.0));
        assert_eq!(text, None, "one good sample is not recovery");
    }

    #[test]
    fn a_good_sample_between_bad_ones_resets_the_clear_count() {
        let mut e = Engine::new(&cfg());
        let t0 = Instant::now();
        let loss = Metric::LossRatio;
        assert!(e.observe(&at(t0, 0, loss, 0.5)).is_some());
        assert_eq!(e.observe(&at(t0, 1, loss, 0.0)), None);
        assert_eq!(e.observe(&at(t0, 2, loss, 0.5)), None);
        assert_eq!(e.observe(&at(t0, 3, loss, 0.0)), None);
        assert!(e.observe(&at(t0, 4, loss, 0.0)).is_some());
    }

    #[test]
    fn subjects_and_metrics_are_separate_alerts() {
        let mut e = Engine::new(&cfg());
        let t0 = Instant::now();
        let mut s = at(t0, 0, Metric::LossRatio, 0.5);
        assert!(e.observe(&s).is_some());
        s.metric = Metric::CpuRatio;
        s.value = 0.95;
        assert!(e.observe(&s).is_some());
        s.subject = Subject::Node("a".into());
        assert!(e.observe(&s).is_some());
        assert_eq!(e.firing().len(), 3);
    }

    #[test]
    fn statistical_detector_fires_below_the_threshold() {
        let mut e = Engine::new(&cfg());
        let t0 = Instant::now();
        for (i, v) in [
            5000.0, 5200.0, 4800.0, 5100.0, 4900.0, 5050.0, 4950.0, 5000.0,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(e.observe(&at(t0, i as u64, Metric::LatencyNs, v)), None);
        }
        let ev = e
            .observe(&at(t0, 9, Metric::LatencyNs, 60_000.0))
            .expect("spike");
        assert_eq!(ev.detector, DetectorKind::Statistical);
        assert!(ev.value < 1e6);
    }

    #[test]
    fn bandwidth_floor_only_when_configured() {
        let t0 = Instant::now();
        let mut e = Engine::new(&cfg());
        assert_eq!(e.observe(&at(t0, 0, Metric::BandwidthGbps, 0.1)), None);
        let mut e = Engine::new(&AlertsConfig {
            bandwidth_floor_gbps: Some(10.0),
            ..cfg()
        });
        let ev = e.observe(&at(t0, 0, Metric::BandwidthGbps, 2.0)).unwrap();
        assert!(ev.reason.contains("floor 10.00 Gbit/s"), "{}", ev.reason);
    }
}
