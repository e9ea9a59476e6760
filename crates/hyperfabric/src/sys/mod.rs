//! The few OS calls node placement needs (CPU affinity, NUMA memory policy, priority and
//! scheduling in [`sched`], page locking and huge pages in [`memory`]) and a socket option
//! `socket2` lacks ([`socket`]), behind a safe API. The only `unsafe` outside the transports; every block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;

pub mod memory;
pub mod mmap;
pub mod sched;
pub mod signal;
pub mod socket;

pub use crate::node::CPU_MAX;

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t and the size passed is its size.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET reads the set we own, at an index below CPU_SETSIZE.
    Ok((0..=CPU_MAX)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Restricts thread `tid` (0: the caller) to `cpus` (each at most [`CPU_MAX`]).
pub fn set_thread_affinity(tid: libc::pid_t, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c <= CPU_MAX) {
        // SAFETY: CPU_SET writes the set we own, at an index below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t and the size passed is its size; the kernel only
    // reads it. A `tid` that is gone yields ESRCH, not undefined behaviour.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Restricts every thread of this process to `cpus` (threads started later inherit the set
/// of the thread that starts them). Returns how many threads were set.
pub fn set_process_affinity(cpus: &[usize]) -> io::Result<usize> {
    let mut count = 0;
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        match set_thread_affinity(tid, cpus) {
            Ok(()) => count += 1,
            // A thread that ended between the listing and the call.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(count)
}

/// The NUMA nodes online (`/sys/devices/system/node/online`, e.g. `0` or `0-1`); `[0]`
/// when the kernel does not say (no NUMA support: one node).
pub fn numa_nodes_online() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/node/online")
        .ok()
        .and_then(|s| crate::node::parse_cpu_list(s.trim()).ok())
        .unwrap_or_else(|| vec![0])
}

/// `MPOL_PREFERRED` from `<linux/mempolicy.h>`.
const MPOL_PREFERRED: libc::c_int = 1;

/// Makes `node` the preferred NUMA node of this thread's future allocations (pages are
/// taken from it while it has free memory, then from the others).
pub fn prefer_numa_node(node: usize) -> io::Result<()> {
    if node >= 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NUMA nodes above 63 are not supported",
        ));
    }
    let mask: libc::c_ulong = 1 << node;
    // SAFETY: set_mempolicy reads `maxnode` bits from `mask`, which points to one c_ulong
    // (64 bits) that lives across the call; it writes nothing of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            MPOL_PREFERRED,
            &mask as *const libc::c_ulong,
            64 as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_can_narrow_its_own_set() {
        let before = allowed_cpus().unwrap();
        assert!(!before.is_empty());
        let first = before[0];
        let seen = std::thread::spawn(move || {
            set_thread_affinity(0, &[first]).unwrap();
            allowed_cpus().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(seen, vec![first]);
        assert_eq!(
            allowed_cpus().unwrap(),
            before,
            "only the spawned thread changed"
        );
    }

    #[test]
    fn an_impossible_set_is_an_error() {
        let err = std::thread::spawn(|| set_thread_affinity(0, &[]))
            .join()
            .unwrap();
        assert!(err.is_err());
        assert!(!numa_nodes_online().is_empty());
    }
}
