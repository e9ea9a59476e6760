//! Pacing a link to a rate (the fabric file's `throttle_gbps`): each write is given the time
//! it would take on a link of that speed, and the writer sleeps when it runs ahead.

use std::time::{Duration, Instant};

/// Bytes a writer may run ahead of the rate before it sleeps (keeps sleeps coarse).
const BURST: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub struct Pacer {
    ns_per_byte: f64,
    /// When the link is free again at the configured rate.
    next_free: Instant,
}

impl Pacer {
    /// A pacer for `gbps` (None when 0: no pacing).
    pub fn new(gbps: f64, now: Instant) -> Option<Pacer> {
        (gbps > 0.0 && gbps.is_finite()).then(|| Pacer {
            ns_per_byte: 8.0 / gbps,
            next_free: now,
        })
    }

    /// Accounts for `bytes` written at `now`; returns how long to sleep to stay at the rate.
    pub fn delay(&mut self, bytes: usize, now: Instant) -> Duration {
        let cost = Duration::from_nanos((bytes as f64 * self.ns_per_byte) as u64);
        self.next_free = self.next_free.max(now) + cost;
        self.next_free
            .saturating_duration_since(now)
            .saturating_sub(BURST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_rate_over_time() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1.0, t0).unwrap();
        // 1 Gbit/s: 125 MB take one second; writing them at t0 leaves ~1 s to sleep.
        let mut slept = Duration::ZERO;
        for _ in 0..125 {
            slept += p.delay(1_000_000, t0 + slept);
        }
        let total = slept.as_secs_f64();
        assert!((total - 1.0).abs() < 0.01, "slept {total}");
        assert!(Pacer::new(0.0, t0).is_none());
    }

    #[test]
    fn idle_time_is_not_banked() {
        let t0 = Instant::now();
        let mut p = Pacer::new(8.0, t0).unwrap();
        assert_eq!(p.delay(1000, t0), Duration::ZERO);
        // After a long pause the link starts fresh: no burst of saved-up credit.
        let later = t0 + Duration::from_secs(10);
        let d = p.delay(100_000_000, later);
        assert!(d > Duration::from_millis(90), "{d:?}");
    }
}
