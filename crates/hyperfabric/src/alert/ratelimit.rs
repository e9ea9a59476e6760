//! Per-endpoint rate limit: at most N new alerts a minute (sliding window). Follow-ups
//! (escalated, resolved) of an alert an endpoint was told about always pass, so no endpoint
//! is left with an alert it never hears the end of; follow-ups of a suppressed alert are
//! suppressed too, except an escalation, which is news and takes a slot.

use super::{AlertEvent, AlertState};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
struct Slot {
    sent: VecDeque<Instant>,
    /// Alerts this endpoint was told about (until resolved).
    told: HashSet<u64>,
    suppressed: u64,
}

#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_min: u32,
    slots: Vec<Slot>,
}

impl RateLimiter {
    pub fn new(endpoints: usize, per_min: u32) -> RateLimiter {
        RateLimiter {
            per_min,
            slots: vec![Slot::default(); endpoints],
        }
    }

    /// Whether endpoint `i` gets `ev` now.
    pub fn admit(&mut self, i: usize, ev: &AlertEvent, now: Instant) -> bool {
        let per_min = self.per_min as usize;
        let Some(slot) = self.slots.get_mut(i) else {
            return false;
        };
        while slot
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            slot.sent.pop_front();
        }
        let told = slot.told.contains(&ev.id);
        let pass = match ev.state {
            AlertState::Resolved => told,
            AlertState::Escalated if told => true,
            AlertState::Firing | AlertState::Escalated => {
                let room = slot.sent.len() < per_min;
                if room {
                    slot.sent.push_back(now);
                    slot.told.insert(ev.id);
                }
                room
            }
        };
        if ev.state == AlertState::Resolved {
            slot.told.remove(&ev.id);
        }
        if !pass {
            slot.suppressed += 1;
        }
        pass
    }

    /// Whether endpoint `i` was told about alert `id` (and has not heard its end yet).
    pub fn told(&self, i: usize, id: u64) -> bool {
        self.slots.get(i).is_some_and(|s| s.told.contains(&id))
    }

    /// Events endpoint `i` did not get.
    pub fn suppressed(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(0, |s| s.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{DetectorKind, Metric, Subject};

    fn ev(id: u64, state: AlertState) -> AlertEvent {
        AlertEvent {
            id,
            state,
            subject: Subject::Node("n".into()),
            metric: Metric::CpuRatio,
            value: 0.95,
            detector: DetectorKind::Threshold,
            reason: String::new(),
            firing_for_s: 0.0,
            tier: None,
        }
    }

    #[test]
    fn new_alerts_are_limited_per_minute_and_per_endpoint() {
        let mut r = RateLimiter::new(2, 2);
        let t0 = Instant::now();
        assert!(r.admit(0, &ev(1, AlertState::Firing), t0));
        assert!(r.admit(0, &ev(2, AlertState::Firing), t0));
        assert!(!r.admit(0, &ev(3, AlertState::Firing), t0));
        assert!(r.admit(1, &ev(3, AlertState::Firing), t0), "own budget");
        assert_eq!(r.suppressed(0), 1);
        // A minute later the window has room again.
        let later = t0 + Duration::from_secs(60);
        assert!(r.admit(0, &ev(4, AlertState::Firing), later));
    }

    #[test]
    fn follow_ups_of_told_alerts_always_pass() {
        let mut r = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        assert!(r.admit(0, &ev(1, AlertState::Firing), t0));
        assert!(!r.admit(0, &ev(2, AlertState::Firing), t0));
        assert!(r.admit(0, &ev(1, AlertState::Escalated), t0));
        assert!(r.admit(0, &ev(1, AlertState::Resolved), t0));
        // Suppressed alert: its end is not news, its escalation is (when there is room).
        assert!(!r.admit(0, &ev(2, AlertState::Resolved), t0));
        let later = t0 + Duration::from_secs(61);
        assert!(r.admit(0, &ev(3, AlertState::Escalated), later));
        assert!(r.admit(0, &ev(3, AlertState::Resolved), later));
    }
}
