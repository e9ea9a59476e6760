//! A process-shared futex, where shared-memory waits park (how they spin and yield first is
//! [`crate::idle`]'s, re-exported here).
//!
//! The consumer idles with a [`Schedule`]; when it parks it first raises a `parked` flag in
//! the ring header, so the producer only makes a `FUTEX_WAKE` syscall when somebody actually
//! sleeps: the hot path stays syscall-free.

pub use crate::idle::{Backoff, Schedule, Step};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, at most `timeout`. Spurious wake-ups are possible; the
/// caller re-checks its condition. Process-shared (no `FUTEX_PRIVATE_FLAG`).
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word` (valid for the call's duration,
    // possibly in a shared mapping, hence no PRIVATE flag) and the timespec on our stack;
    // it writes nothing. Errors (EAGAIN, EINTR, ETIMEDOUT) all mean "re-check".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// The CPU the calling thread runs on (`sched_getcpu`, a vDSO call: a few ns), `None` where
/// the kernel cannot say. A hint: the thread may move right after.
pub fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// Wakes up to `n` sleepers on `word`.
pub fn futex_wake(word: &AtomicU32, n: u32) {
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key; it reads and writes no
    // memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n.min(i32::MAX as u32),
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn futex_wait_returns_on_mismatch_timeout_and_wake() {
        let w = Arc::new(AtomicU32::new(5));
        let t = Instant::now();
        futex_wait(&w, 4, Duration::from_secs(5)); // value differs: immediate
        futex_wait(&w, 5, Duration::from_millis(10)); // times out
        assert!(t.elapsed() < Duration::from_secs(5));
        let w2 = w.clone();
        let h = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 5 {
                futex_wait(&w2, 5, Duration::from_secs(10));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        w.store(6, Ordering::Release);
        futex_wake(&w, 1);
        h.join().unwrap();
    }
}
