//! The process's own CPU time and memory, read from Linux `/proc` (no unsafe, no deps).
//! Elsewhere the figures are absent (`None`) rather than made up.

use serde::{Deserialize, Serialize};

/// `/proc` reports CPU time in USER_HZ ticks, which the kernel ABI fixes at 100 on every
/// architecture Linux runs this on (it is not the kernel's internal HZ).
const USER_HZ: f64 = 100.0;

/// What the process uses now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessMetrics {
    /// User + system CPU time since the process started.
    pub cpu_seconds_total: Option<f64>,
    /// CPU used over the last rate window, in percent of one core (200 = two cores busy).
    pub cpu_percent: Option<f64>,
    pub resident_memory_bytes: Option<u64>,
    pub peak_resident_memory_bytes: Option<u64>,
    /// Physical memory of the machine.
    pub memory_total_bytes: Option<u64>,
    /// Resident memory in percent of the machine's.
    pub memory_percent: Option<f64>,
    pub threads: Option<u64>,
}

impl ProcessMetrics {
    /// Reads the figures now; `cpu_percent` is left for the caller's rate window.
    pub fn read() -> ProcessMetrics {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
        let (cpu, threads) = stat.as_deref().map_or((None, None), parse_stat);
        let kb = |text: &Option<String>, key: &str| text.as_deref().and_then(|t| kb_field(t, key));
        let rss = kb(&status, "VmRSS:");
        let total = kb(&meminfo, "MemTotal:");
        ProcessMetrics {
            cpu_seconds_total: cpu,
            cpu_percent: None,
            resident_memory_bytes: rss,
            peak_resident_memory_bytes: kb(&status, "VmHWM:"),
            memory_total_bytes: total,
            memory_percent: match (rss, total) {
                (Some(r), Some(t)) if t > 0 => Some(r as f64 * 100.0 / t as f64),
                _ => None,
            },
            threads,
        }
    }
}

/// CPU seconds (utime + stime) and thread count from the text of `/proc/<pid>/stat`.
pub fn parse_stat(text: &str) -> (Option<f64>, Option<u64>) {
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
        return (None, None);
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime 15, num_threads 20.
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let cpu = match (num(11), num(12)) {
        (Some(u), Some(s)) => Some((u + s) as f64 / USER_HZ),
        _ => None,
    };
    (cpu, num(17))
}

/// A `Key:   1234 kB` line of `/proc/self/status` or `/proc/meminfo`, in bytes.
pub fn kb_field(text: &str, key: &str) -> Option<u64> {
    let kb = text
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_command_name() {
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 7 0 \
                    100 1000000 300 18446744073709551615";
        let (cpu, threads) = parse_stat(line);
        assert_eq!(cpu, Some(3.0));
        assert_eq!(threads, Some(7));
        assert_eq!(parse_stat("garbage"), (None, None));
        assert_eq!(parse_stat("1 (x) S"), (None, None));
    }

    #[test]
    fn kb_fields() {
        let t = "Name:\thf\nVmRSS:\t   2048 kB\nVmHWM: 4096 kB\n";
        assert_eq!(kb_field(t, "VmRSS:"), Some(2 << 20));
        assert_eq!(kb_field(t, "VmSwap:"), None);
        assert_eq!(kb_field("VmRSS: lots kB", "VmRSS:"), None);
    }

    #[test]
    fn this_process_is_measured() {
        let p = ProcessMetrics::read();
        if cfg!(target_os = "linux") {
            assert!(p.resident_memory_bytes.unwrap_or(0) > 0);
            assert!(p.threads.unwrap_or(0) >= 1);
            assert!(p.cpu_seconds_total.is_some());
        }
    }
}
