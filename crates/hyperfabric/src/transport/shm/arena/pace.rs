//! How a rank waits for a peer's word in the arena: spin while the peer can run at the same
//! time, hand the CPU over at once when the peer needs it, park when nothing comes.
//!
//! Costs measured on the 2-core VM this was tuned on: a `pause` is ~32 ns, a `sched_yield`
//! with nobody else runnable ~0.5 µs, a cache line between cores ~0.1-0.2 µs. A rank that
//! spins while its peer waits for the same CPU burns its whole spin budget per step (with
//! the former 200 polls, 6.4 µs per all_reduce), so the wait looks where the peer runs:
//!
//! - every rank keeps the CPU it last ran on in its block's `cpu` word (a hint: a peer may
//!   lie there, which only changes how we wait, never what we accept);
//! - a wait whose peer last ran on our own CPU yields at once (the peer cannot run before
//!   we give the CPU up);
//! - otherwise it spins up to [`Pace::spin`] (long when the group's ranks fit the CPUs we may
//!   run on, so both stay runnable and the scheduler keeps them apart; short when they
//!   oversubscribe them), then yields up to [`Pace::yields`] times, then parks on the
//!   word's futex in slices of at most [`PARK_SLICE`] until the deadline.

use super::super::wait::{current_cpu, futex_wait, futex_wake};
use super::{Word, PARK_SLICE};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Polls between two looks at the clock and at the peer's CPU while spinning (~1 µs).
const POLLS_PER_CHECK: u32 = 32;
/// How long a wait spins when the group's ranks fit the CPUs: long enough to cover a
/// peer's reduction of a slot and a few cache-line round trips many times over.
const SPIN_DEDICATED: Duration = Duration::from_micros(50);
/// How long a wait spins when the ranks oversubscribe the CPUs: a cache-line round trip
/// or two, then the CPU goes to whoever else may need it.
const SPIN_SHARED: Duration = Duration::from_micros(2);
/// Yields before parking: with ranks fitting the CPUs a yield finds nobody else to run
/// and parking is cheaper than burning the CPU; oversubscribed, a yield runs a peer.
const YIELDS_DEDICATED: u32 = 100;
const YIELDS_SHARED: u32 = 2000;
/// The `cpu` word of a rank that does not know its CPU (never equal to ours).
pub(super) const CPU_UNKNOWN: u32 = u32::MAX;

/// How this process waits in one arena, fixed when it maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Longest spin before yielding (0: yield at once).
    pub spin: Duration,
    /// Yields before parking.
    pub yields: u32,
}

impl Pace {
    /// The pace for a group of `ranks` on a process that may run on `cpus` CPUs.
    pub fn new(ranks: usize, cpus: usize) -> Pace {
        if ranks <= cpus {
            Pace {
                spin: SPIN_DEDICATED,
                yields: YIELDS_DEDICATED,
            }
        } else {
            Pace {
                spin: SPIN_SHARED,
                yields: YIELDS_SHARED,
            }
        }
    }

    /// The pace for `ranks` on the CPUs this process may run on (its affinity mask).
    pub fn for_ranks(ranks: usize) -> Pace {
        Pace::new(
            ranks,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        )
    }
}

/// The CPU this thread runs on, as a `cpu` word.
pub(super) fn cpu_word() -> u32 {
    current_cpu().unwrap_or(CPU_UNKNOWN)
}

/// Wrapping sequence comparison: `v` is at least `target`.
fn reached(v: u32, target: u32) -> bool {
    v.wrapping_sub(target) as i32 >= 0
}

impl Word {
    /// Stores `v` and wakes the sleepers. SeqCst: the store must not pass the sleepers
    /// load (a lost wake-up).
    pub(super) fn set(&self, v: u32) {
        self.value.store(v, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            futex_wake(&self.value, u32::MAX);
        }
    }

    /// Waits until the word is at least `target` (wrapping) or `deadline`; returns it.
    /// `peer_cpu` is the `cpu` word of the rank that writes this word.
    pub(super) fn wait(
        &self,
        pace: Pace,
        peer_cpu: &AtomicU32,
        target: u32,
        deadline: Instant,
    ) -> Result<u32, ()> {
        let v = self.value.load(Ordering::Acquire);
        if reached(v, target) {
            return Ok(v);
        }
        if let Some(v) = self.spin(pace, peer_cpu, target) {
            return Ok(v);
        }
        for _ in 0..pace.yields {
            std::thread::yield_now();
            let v = self.value.load(Ordering::Acquire);
            if reached(v, target) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(());
            }
        }
        self.park(target, deadline)
    }

    /// Spins while the peer may be running on another CPU, at most `pace.spin`.
    fn spin(&self, pace: Pace, peer_cpu: &AtomicU32, target: u32) -> Option<u32> {
        if pace.spin.is_zero() {
            return None;
        }
        let until = Instant::now() + pace.spin;
        loop {
            // The peer last ran here: it cannot run until we give the CPU up.
            if peer_cpu.load(Ordering::Relaxed) == cpu_word() {
                return None;
            }
            for _ in 0..POLLS_PER_CHECK {
                let v = self.value.load(Ordering::Acquire);
                if reached(v, target) {
                    return Some(v);
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                return None;
            }
        }
    }

    /// Sleeps on the word's futex in slices of at most [`PARK_SLICE`] until it reaches
    /// `target` or `deadline` passes.
    fn park(&self, target: u32, deadline: Instant) -> Result<u32, ()> {
        loop {
            let v = self.value.load(Ordering::Acquire);
            if reached(v, target) {
                return Ok(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(());
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            // Re-check after announcing ourselves: a writer that stored before it saw the
            // count changed the word, so the futex returns at once.
            futex_wait(&self.value, v, (deadline - now).min(PARK_SLICE));
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_that_fit_the_cpus_spin_long_and_oversubscribed_ones_yield_early() {
        let fit = Pace::new(2, 2);
        let over = Pace::new(4, 2);
        assert!(fit.spin > over.spin);
        assert!(over.yields > fit.yields);
        assert_eq!(Pace::new(1, 1), fit);
    }

    #[test]
    fn a_wait_on_a_peer_of_our_own_cpu_does_not_spin_and_still_sees_the_word() {
        let w = Word::default();
        let me = AtomicU32::new(cpu_word());
        let pace = Pace::new(2, 64);
        // A word never set, its writer on our CPU: the deadline ends the wait.
        let t = Instant::now();
        assert!(w
            .wait(pace, &me, 1, Instant::now() + Duration::from_millis(5))
            .is_err());
        assert!(t.elapsed() >= Duration::from_millis(5));
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(10));
                w.set(3);
            });
            let far = Instant::now() + Duration::from_secs(10);
            assert_eq!(w.wait(pace, &AtomicU32::new(CPU_UNKNOWN), 2, far), Ok(3));
        });
        assert_eq!(w.wait(pace, &me, 3, Instant::now()), Ok(3));
    }
}
