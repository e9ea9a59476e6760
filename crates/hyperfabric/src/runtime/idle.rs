//! Idle strategies: how a thread waits for something another thread will set.
//! `low_latency` spins (no wake-up cost, one core busy while waiting); `high_throughput`
//! spins briefly then parks on a condition variable (no CPU while idle).

use crate::config::IdleStrategy;
use parking_lot::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Spins before yielding or parking (about a microsecond or two of polling).
const SPIN_ROUNDS: u32 = 2_000;

/// Waits until `ready()` or `deadline`; returns whether it became ready. `gate` is the
/// mutex/condvar pair the setter notifies after making `ready()` true.
pub fn wait_until(
    strategy: IdleStrategy,
    deadline: Instant,
    gate: &(Mutex<()>, Condvar),
    ready: impl Fn() -> bool,
) -> bool {
    let mut spins: u32 = 0;
    loop {
        if ready() {
            return true;
        }
        spins = spins.wrapping_add(1);
        // Reading the clock costs ~20 ns: only do it every 256 rounds.
        if spins.is_multiple_of(256) && Instant::now() >= deadline {
            return ready();
        }
        match strategy {
            IdleStrategy::BusySpin => std::hint::spin_loop(),
            IdleStrategy::SpinYield if spins < SPIN_ROUNDS => std::hint::spin_loop(),
            IdleStrategy::SpinYield => std::thread::yield_now(),
            IdleStrategy::SpinPark if spins < SPIN_ROUNDS / 10 => std::hint::spin_loop(),
            IdleStrategy::SpinPark => {
                let mut guard = gate.0.lock();
                if ready() {
                    return true;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                gate.1
                    .wait_for(&mut guard, left.min(Duration::from_millis(100)));
            }
        }
    }
}

/// Wakes every thread parked on `gate` (call after making the condition true).
pub fn notify(gate: &(Mutex<()>, Condvar)) {
    let _guard = gate.0.lock();
    gate.1.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn every_strategy_sees_a_flag_set_by_another_thread() {
        for strategy in [
            IdleStrategy::BusySpin,
            IdleStrategy::SpinYield,
            IdleStrategy::SpinPark,
        ] {
            let flag = Arc::new(AtomicBool::new(false));
            let gate = Arc::new((Mutex::new(()), Condvar::new()));
            let (f, g) = (Arc::clone(&flag), Arc::clone(&gate));
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                f.store(true, Ordering::Release);
                notify(&g);
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            assert!(
                wait_until(strategy, deadline, &gate, || flag.load(Ordering::Acquire)),
                "{strategy:?}"
            );
            t.join().unwrap();
        }
    }

    #[test]
    fn gives_up_at_the_deadline() {
        let gate = (Mutex::new(()), Condvar::new());
        let deadline = Instant::now() + Duration::from_millis(30);
        assert!(!wait_until(IdleStrategy::SpinPark, deadline, &gate, || {
            false
        }));
        assert!(Instant::now() >= deadline);
    }
}
