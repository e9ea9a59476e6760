//! How a thread waits: the one idle-strategy module every waiter uses (Aeron's idle
//! strategies). The profile chooses an [`IdleStrategy`] (`idle_strategy` in the fabric file:
//! `low_latency` spins, `high_throughput` spins briefly then parks); each kind of wait turns
//! it into a [`Schedule`] (how many polls to spin, then to yield, before parking) and steps a
//! [`Backoff`] through it.
//!
//! | waiter                                  | schedule                                   |
//! |-----------------------------------------|--------------------------------------------|
//! | a caller waiting for a flag (acks, pong)| [`IdleStrategy::flag_wait`], parks on a condvar |
//! | a shared-memory reader thread           | [`IdleStrategy::ring_reader`], parks on the ring's futex |
//! | a caller polling its TCP socket         | [`IdleStrategy::socket_poll`], then waits in `poll(2)` |
//! | a caller-polled TCP reader thread       | [`IdleStrategy::socket_reader`], then blocks in the kernel |
//! | a writer facing a full ring             | [`FULL_RING`], then short sleeps            |
//! | a loan waiting for a free pool slot     | [`FREE_SLOT`], then short sleeps            |
//!
//! Pure std and `parking_lot`: `config` names the strategy and the engine and the transports
//! wait with it, without importing one another.

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How an idle data-plane thread waits for work: the profile's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleStrategy {
    /// Poll continuously: no wake-up cost, a core busy while waiting (`low_latency`).
    BusySpin,
    /// Spin a while, then yield between polls.
    SpinYield,
    /// Spin briefly, then sleep until woken: no CPU while idle (`high_throughput`).
    SpinPark,
}

/// How many polls a wait spins, then yields, before it parks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Poll continuously: one core per waiting side.
    BusySpin,
    /// Spin `spins` polls, then `yield` between polls.
    SpinYield { spins: u32 },
    /// Spin `spins` polls, yield `yields` times, then park (an idle side costs no CPU).
    SpinPark { spins: u32, yields: u32 },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::SpinPark {
            spins: 1000,
            yields: 10,
        }
    }
}

/// A writer whose shared-memory ring is full: the reader frees space without waking it.
pub const FULL_RING: Schedule = Schedule::SpinPark {
    spins: 1000,
    yields: 1000,
};

/// A loan waiting for a free slot of its pool (returns come through a ring nobody wakes it for).
pub const FREE_SLOT: Schedule = Schedule::SpinPark {
    spins: 100,
    yields: 900,
};

/// A high-throughput shared-memory reader: spin a few microseconds, then park (no yields).
const READER_PARK: Schedule = Schedule::SpinPark {
    spins: 1000,
    yields: 0,
};

/// Polls a flag waiter spins (`SpinYield`) before yielding: a microsecond or two.
const FLAG_SPINS: u32 = 2_000;

impl IdleStrategy {
    /// The schedule of a caller waiting for a flag another thread sets ([`wait_until`]).
    pub fn flag_wait(self) -> Schedule {
        match self {
            IdleStrategy::BusySpin => Schedule::BusySpin,
            IdleStrategy::SpinYield => Schedule::SpinYield {
                spins: FLAG_SPINS - 1,
            },
            IdleStrategy::SpinPark => Schedule::SpinPark {
                spins: FLAG_SPINS / 10 - 1,
                yields: 0,
            },
        }
    }

    /// The schedule of a shared-memory reader thread.
    pub fn ring_reader(self) -> Schedule {
        match self {
            // A reader thread never spins without yielding: with the waiting caller spinning
            // too, pure spinners outnumber the cores of small machines and time slices decide.
            IdleStrategy::BusySpin => Schedule::SpinYield { spins: 200 },
            IdleStrategy::SpinYield => Schedule::SpinYield { spins: 1000 },
            // No yields before parking: on a busy host `sched_yield` hands the core to another
            // process for a whole time slice (3-4 ms seen on a loaded 2-core VM), and a record
            // arriving meanwhile waits that long, so an idle loopback ping read ~2 ms one-way.
            // A parked reader is woken by the producer's futex wake, which the scheduler
            // serves at once (a sleeper preempts), not after other processes' slices.
            IdleStrategy::SpinPark => READER_PARK,
        }
    }

    /// The schedule of a caller polling its TCP socket for an answer (`tcp_poll`). Each poll
    /// is a system call; past the spins it yields, so that on a small machine the peer and
    /// the other waiters get the cores (a pure spinner per process would outnumber them),
    /// and an answer that stays away for long is waited for in short sleeps.
    pub fn socket_poll(self) -> Schedule {
        match self {
            IdleStrategy::BusySpin => Schedule::SpinPark {
                spins: 200,
                yields: 20_000,
            },
            IdleStrategy::SpinYield => Schedule::SpinPark {
                spins: 100,
                yields: 2_000,
            },
            IdleStrategy::SpinPark => Schedule::SpinPark {
                spins: 50,
                yields: 10,
            },
        }
    }

    /// The schedule of a caller-polled TCP link's reader thread (`tcp_poll`): between
    /// frames it polls the socket without blocking, so that a frame arriving soon after the
    /// last (the next ping of a run, the next chunk of a stream) costs no kernel wake-up,
    /// then it blocks in the kernel as before. Bounded: an idle link spins for a millisecond
    /// or two at most after its last frame. No yields: on a busy host `sched_yield` hands
    /// the core away for a whole time slice, and a frame arriving meanwhile waits for it,
    /// where a thread blocked in the kernel is woken (and preempts) at once.
    pub fn socket_reader(self) -> Schedule {
        let spins = match self {
            IdleStrategy::BusySpin => 2_000,
            IdleStrategy::SpinYield => 1_000,
            IdleStrategy::SpinPark => 100,
        };
        Schedule::SpinPark { spins, yields: 0 }
    }

    /// How long a shared-memory reader thread stays away after a caller's last poll.
    pub fn reader_lease(self) -> Duration {
        match self {
            // An idle high-throughput node must not spin: its reader sleeps through the lease.
            IdleStrategy::SpinPark => Duration::from_millis(1),
            // Low-latency nodes: frames the caller leaves behind wait for the reader briefly.
            IdleStrategy::SpinYield | IdleStrategy::BusySpin => Duration::from_micros(100),
        }
    }
}

/// What [`Backoff::step`] asks the caller to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Poll again (after a spin hint or a yield, already done).
    Poll,
    /// Park (on a futex, a condvar, or a short sleep: the waiter's business).
    Park,
}

/// The state of one wait: counts idle polls and escalates spin -> yield -> park.
#[derive(Debug, Clone)]
pub struct Backoff {
    schedule: Schedule,
    idle: u32,
}

impl Backoff {
    pub fn new(schedule: Schedule) -> Self {
        Backoff { schedule, idle: 0 }
    }

    /// Work was found: start over with spinning.
    pub fn reset(&mut self) {
        self.idle = 0;
    }

    /// Idle polls since the last reset.
    pub fn polls(&self) -> u32 {
        self.idle
    }

    /// Nothing was found: spin, yield, or tell the caller to park.
    #[inline]
    pub fn step(&mut self) -> Step {
        self.idle = self.idle.saturating_add(1);
        match self.schedule {
            Schedule::BusySpin => {
                std::hint::spin_loop();
                Step::Poll
            }
            Schedule::SpinYield { spins } => {
                if self.idle <= spins {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                Step::Poll
            }
            Schedule::SpinPark { spins, yields } => {
                if self.idle <= spins {
                    std::hint::spin_loop();
                    Step::Poll
                } else if self.idle <= spins.saturating_add(yields) {
                    std::thread::yield_now();
                    Step::Poll
                } else {
                    Step::Park
                }
            }
        }
    }
}

/// Waits until `ready()` or `deadline`; returns whether it became ready. `gate` is the
/// mutex/condvar pair the setter notifies ([`notify`]) after making `ready()` true.
pub fn wait_until(
    strategy: IdleStrategy,
    deadline: Instant,
    gate: &(Mutex<()>, Condvar),
    ready: impl Fn() -> bool,
) -> bool {
    let mut backoff = Backoff::new(strategy.flag_wait());
    loop {
        if ready() {
            return true;
        }
        let step = backoff.step();
        // Reading the clock costs ~20 ns: only do it every 256 rounds.
        if backoff.polls().is_multiple_of(256) && Instant::now() >= deadline {
            return ready();
        }
        if step == Step::Park {
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

    const ALL: [IdleStrategy; 3] = [
        IdleStrategy::BusySpin,
        IdleStrategy::SpinYield,
        IdleStrategy::SpinPark,
    ];

    #[test]
    fn backoff_escalates() {
        let mut b = Backoff::new(Schedule::SpinPark {
            spins: 2,
            yields: 1,
        });
        assert_eq!(b.step(), Step::Poll);
        assert_eq!(b.step(), Step::Poll);
        assert_eq!(b.step(), Step::Poll);
        assert_eq!(b.step(), Step::Park);
        b.reset();
        assert_eq!(b.step(), Step::Poll);
        let mut s = Backoff::new(Schedule::BusySpin);
        for _ in 0..10 {
            assert_eq!(s.step(), Step::Poll);
        }
    }

    /// The flag wait spins as the two former loops did: 1,999 polls before yielding
    /// (`SpinYield`), 199 before parking (`SpinPark`), never parks busy-spinning.
    #[test]
    fn flag_waits_keep_their_spin_counts() {
        let polls_before_park = |s: IdleStrategy| {
            let mut b = Backoff::new(s.flag_wait());
            (1..=100_000).find(|_| b.step() == Step::Park)
        };
        assert_eq!(polls_before_park(IdleStrategy::SpinPark), Some(200));
        assert_eq!(polls_before_park(IdleStrategy::SpinYield), None);
        assert_eq!(polls_before_park(IdleStrategy::BusySpin), None);
        assert_eq!(
            IdleStrategy::SpinYield.flag_wait(),
            Schedule::SpinYield { spins: 1999 }
        );
    }

    #[test]
    fn every_strategy_sees_a_flag_set_by_another_thread() {
        for strategy in ALL {
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
        for strategy in ALL {
            assert!(!wait_until(strategy, deadline, &gate, || false));
            assert!(Instant::now() >= deadline);
        }
    }

    #[test]
    fn the_profile_decides_the_reader() {
        assert_eq!(IdleStrategy::SpinPark.ring_reader(), READER_PARK);
        assert!(IdleStrategy::SpinPark.reader_lease() > IdleStrategy::BusySpin.reader_lease());
    }
}
