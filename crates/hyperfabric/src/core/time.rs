//! Virtual time: the core never reads a clock, the caller passes `now` as a [`Time`].

use crate::proto::Timestamp;
use std::ops::Add;
use std::time::Duration;

/// Nanoseconds since an origin the caller chooses (the engine's start, or the simulator's
/// zero). Only differences and order mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    pub const ZERO: Time = Time(0);

    pub fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    /// `d` after the origin (saturating at about 584 years).
    pub fn from_duration(d: Duration) -> Time {
        Time(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self - earlier`, zero when `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(Time::from_duration(d).0))
    }
}

impl Timestamp for Time {
    fn duration_since_or_zero(self, earlier: Time) -> Duration {
        self.since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_nanos(5) + Duration::from_nanos(10);
        assert_eq!(t.as_nanos(), 15);
        assert_eq!(Time::ZERO.since(t), Duration::ZERO);
        assert_eq!(t.since(Time::from_nanos(5)), Duration::from_nanos(10));
        assert_eq!(
            (Time::from_nanos(u64::MAX) + Duration::MAX).as_nanos(),
            u64::MAX
        );
    }
}
