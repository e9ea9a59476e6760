//! Process priority and real-time scheduling of every thread of this process (Linux keeps
//! both per thread; threads started later inherit them from the thread that starts them).

use std::io;

/// The thread ids of this process (`/proc/self/task`).
pub fn threads() -> io::Result<Vec<libc::pid_t>> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    Ok(tids)
}

/// Runs `f` on every thread of the process; a thread that ended meanwhile is skipped.
/// Returns how many threads `f` was applied to.
fn each_thread(f: impl Fn(libc::pid_t) -> io::Result<()>) -> io::Result<usize> {
    let mut count = 0;
    for tid in threads()? {
        match f(tid) {
            Ok(()) => count += 1,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(count)
}

/// Sets the nice value (-20..=19) of every thread. Lowering it needs CAP_SYS_NICE or a
/// high enough RLIMIT_NICE (EACCES otherwise).
pub fn set_process_nice(nice: i32) -> io::Result<usize> {
    each_thread(|tid| {
        // SAFETY: setpriority takes plain integers and touches no memory of ours; an
        // unknown thread id is ESRCH.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })
}

/// The nice value of the calling thread, as the kernel has it.
pub fn current_nice() -> io::Result<i32> {
    // getpriority may legitimately return -1: errno tells an error apart.
    // SAFETY: errno is thread-local; writing it through the pointer libc hands out is sound.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: plain integers in and out.
    let n = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let err = io::Error::last_os_error();
    if n == -1 && err.raw_os_error().is_some_and(|e| e != 0) {
        return Err(err);
    }
    Ok(n)
}

/// Puts every thread under `policy` (`libc::SCHED_FIFO` or `libc::SCHED_RR`) at `priority`
/// (1..=99). Needs CAP_SYS_NICE or RLIMIT_RTPRIO >= priority (EPERM otherwise).
pub fn set_process_scheduler(policy: libc::c_int, priority: i32) -> io::Result<usize> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    each_thread(|tid| {
        // SAFETY: `param` is a valid sched_param that outlives the call; the kernel only
        // reads it.
        let rc = unsafe { libc::sched_setscheduler(tid, policy, &param) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })
}

/// The scheduling policy and real-time priority of the calling thread.
pub fn current_scheduler() -> io::Result<(libc::c_int, i32)> {
    // SAFETY: plain integer in and out.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, writable sched_param.
    let rc = unsafe { libc::sched_getparam(0, &mut param) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((policy, param.sched_priority))
}

/// A resource limit as (soft, hard); `None` stands for unlimited.
pub fn rlimit(resource: libc::__rlimit_resource_t) -> io::Result<(Option<u64>, Option<u64>)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Ok((finite(lim.rlim_cur), finite(lim.rlim_max)))
}

/// Capability numbers from `<linux/capability.h>`.
pub const CAP_IPC_LOCK: u32 = 14;
pub const CAP_SYS_NICE: u32 = 23;

/// Whether this process holds capability `cap` (its `CapEff` in `/proc/self/status`).
pub fn has_capability(cap: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << cap) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_can_raise_its_own_nice_value() {
        let seen = std::thread::spawn(|| {
            let before = current_nice().unwrap();
            let want = (before + 3).min(19);
            // SAFETY: plain integers; 0 is the calling thread.
            let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, want) };
            assert_eq!(rc, 0);
            (want, current_nice().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(seen.0, seen.1);
        assert!(rlimit(libc::RLIMIT_MEMLOCK).is_ok());
        assert!(current_scheduler().is_ok());
    }
}
