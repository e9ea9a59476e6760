//! What a node asks of the kernel for its whole process: priority (nice), real-time
//! scheduling, pages locked in RAM, huge pages for its large buffers. Each is tried when
//! the fabric file asks for it, before the node's threads start (they inherit priority and
//! policy), and the report says what the kernel granted, with the numbers when it did not.

use crate::config::effective::{Effect, EffectiveConfig};
use crate::node::{NodeMetadata, SchedPolicy};
use crate::sys::{memory, sched};
use serde_json::Value;
use std::io;

/// Applies `metadata.nice`, `realtime` (+ `realtime_priority`), `mlock` and `huge_pages`.
pub fn apply(meta: &NodeMetadata, index: usize, report: &mut EffectiveConfig) {
    let field = |k: &str| format!("nodes[{index}].metadata.{k}");
    if let Some(n) = meta.nice {
        let (effect, detail) = nice(n);
        report.record(&field("nice"), Value::from(n), effect, detail);
    }
    if let Some(policy) = meta.realtime {
        let priority = meta.realtime_priority.unwrap_or(1);
        let (effect, detail) = realtime(policy, priority);
        report.record(
            &field("realtime"),
            Value::from(policy.name()),
            effect,
            detail.clone(),
        );
        if meta.realtime_priority.is_some() {
            report.record(
                &field("realtime_priority"),
                Value::from(priority),
                effect,
                detail,
            );
        }
    }
    if let Some(on) = meta.mlock {
        let (effect, detail) = if on {
            mlock()
        } else {
            (Effect::Applied, "off: pages may be swapped out".into())
        };
        report.record(&field("mlock"), Value::from(on), effect, detail);
    }
    if let Some(on) = meta.huge_pages {
        let (effect, detail) = if on {
            huge_pages()
        } else {
            (Effect::Applied, "off: buffers on 4 KiB pages".into())
        };
        report.record(&field("huge_pages"), Value::from(on), effect, detail);
    }
}

fn denied(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))
}

fn limit_text(resource: libc::__rlimit_resource_t) -> String {
    match sched::rlimit(resource) {
        Ok((Some(soft), _)) => soft.to_string(),
        Ok((None, _)) => "unlimited".into(),
        Err(e) => format!("unknown ({e})"),
    }
}

fn nice(n: i32) -> (Effect, String) {
    let before = sched::current_nice().unwrap_or(0);
    match sched::set_process_nice(n) {
        Ok(threads) => match sched::current_nice() {
            Ok(got) if got == n => (
                Effect::Applied,
                format!("nice {n} on every thread ({threads} now, and every later one)"),
            ),
            Ok(got) => (
                Effect::Fallback,
                format!("asked nice {n}, the kernel has {got}"),
            ),
            Err(e) => (
                Effect::Fallback,
                format!("nice {n} set on {threads} threads, but reading it back failed: {e}"),
            ),
        },
        Err(e) if denied(&e) => (
            Effect::Fallback,
            format!(
                "nice {n} needs CAP_SYS_NICE or RLIMIT_NICE >= {} (RLIMIT_NICE = {}): {e}; \
                 threads keep nice {before}",
                20 - n,
                limit_text(libc::RLIMIT_NICE)
            ),
        ),
        Err(e) => (
            Effect::Fallback,
            format!("setpriority(nice {n}) failed: {e}; threads keep nice {before}"),
        ),
    }
}

fn realtime(policy: SchedPolicy, priority: u32) -> (Effect, String) {
    let (code, name) = match policy {
        SchedPolicy::Fifo => (libc::SCHED_FIFO, "SCHED_FIFO"),
        SchedPolicy::Rr => (libc::SCHED_RR, "SCHED_RR"),
    };
    let prio = priority as i32;
    match sched::set_process_scheduler(code, prio) {
        Ok(threads) => match sched::current_scheduler() {
            Ok((p, got)) if p == code && got == prio => (
                Effect::Applied,
                format!(
                    "{name} priority {priority} on every thread ({threads} now, and every later one)"
                ),
            ),
            Ok((p, got)) => (
                Effect::Fallback,
                format!("asked {name} priority {priority}, the kernel has policy {p} priority {got}"),
            ),
            Err(e) => (
                Effect::Fallback,
                format!("{name} set on {threads} threads, but reading it back failed: {e}"),
            ),
        },
        Err(e) if denied(&e) => (
            Effect::Fallback,
            format!(
                "{name} priority {priority} needs CAP_SYS_NICE (held: {}) or RLIMIT_RTPRIO >= \
                 {priority} (RLIMIT_RTPRIO = {}), and in a container a real-time budget in \
                 the cgroup: {e}; threads stay SCHED_OTHER",
                sched::has_capability(sched::CAP_SYS_NICE),
                limit_text(libc::RLIMIT_RTPRIO)
            ),
        ),
        Err(e) => (
            Effect::Fallback,
            format!("sched_setscheduler({name}, {priority}) failed: {e}; threads stay SCHED_OTHER"),
        ),
    }
}

fn kib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "?".into(), |b| format!("{} kB", b / 1024))
}

fn mlock() -> (Effect, String) {
    let cap = sched::has_capability(sched::CAP_IPC_LOCK);
    let limit = sched::rlimit(libc::RLIMIT_MEMLOCK).map_or(Some(0), |(soft, _)| soft);
    let mapped = kib(memory::status_bytes("VmSize"));
    let why = if cap {
        "CAP_IPC_LOCK held".to_string()
    } else {
        "RLIMIT_MEMLOCK unlimited".to_string()
    };
    match limit {
        Some(limit) if !cap => match memory::lock_all(false) {
            // MCL_FUTURE under a finite limit would make every later buffer past it fail.
            Ok(()) => (
                Effect::Fallback,
                format!(
                    "RLIMIT_MEMLOCK = {limit} bytes and no CAP_IPC_LOCK: the pages mapped now \
                     are locked (VmLck = {}), buffers mapped later are not; raise `ulimit -l` \
                     to unlimited or grant CAP_IPC_LOCK",
                    kib(memory::status_bytes("VmLck"))
                ),
            ),
            Err(e) => (
                Effect::Fallback,
                format!(
                    "RLIMIT_MEMLOCK = {limit} bytes < the {mapped} this process maps (VmSize) \
                     and no CAP_IPC_LOCK: nothing locked ({e}); raise `ulimit -l` or grant \
                     CAP_IPC_LOCK"
                ),
            ),
        },
        _ => match memory::lock_all(true) {
            Ok(()) => (
                Effect::Applied,
                format!(
                    "every page of the node, now and later, is locked in RAM once touched \
                     (mlockall MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT; {why}): VmLck = {}",
                    kib(memory::status_bytes("VmLck"))
                ),
            ),
            Err(e) => (
                Effect::Fallback,
                format!("mlockall failed ({why}): {e}; pages may be swapped out"),
            ),
        },
    }
}

fn huge_pages() -> (Effect, String) {
    let shmem = memory::thp_mode("shmem_enabled").unwrap_or_else(|| "?".into());
    let reserved = memory::meminfo("HugePages_Total").unwrap_or(0);
    match memory::thp_mode("enabled").as_deref() {
        None => (
            Effect::Refused,
            "this kernel has no transparent huge pages (no /sys/kernel/mm/transparent_hugepage): \
             buffers stay on 4 KiB pages"
                .into(),
        ),
        Some("never") => (
            Effect::Refused,
            "transparent huge pages are off (transparent_hugepage/enabled = never): buffers \
             stay on 4 KiB pages; `madvise` or `always` there allows them"
                .into(),
        ),
        Some(mode) => {
            memory::set_huge_pages(true);
            (
                Effect::Applied,
                format!(
                    "receive buffers of 2 MiB and more are advised MADV_HUGEPAGE before first \
                     use (THP enabled = {mode}); the shared-memory pools are not (shmem THP = \
                     {shmem}; hugetlb pages reserved: {reserved}, MFD_HUGETLB not used)"
                ),
            )
        }
    }
}
