//! Host CPU and memory use from `/proc` (Linux). The ratios are host-wide: a node daemon's
//! alarm is about the machine it runs on, and a process share needs a denominator anyway.

/// Jiffies from the first (`cpu`) line of `/proc/stat`: (busy, total).
pub fn parse_cpu_line(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Share of memory in use: 1 − MemAvailable / MemTotal, from `/proc/meminfo`.
pub fn parse_memory_ratio(meminfo: &str) -> Option<f64> {
    let field = |name: &str| crate::metrics::kb_field(meminfo, name).map(|b| b as f64);
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    (total > 0.0).then(|| (1.0 - available / total).clamp(0.0, 1.0))
}

/// CPU busy share between two `/proc/stat` readings.
pub fn cpu_ratio(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let busy = after.0.checked_sub(before.0)?;
    let total = after.1.checked_sub(before.1)?;
    (total > 0).then(|| (busy as f64 / total as f64).clamp(0.0, 1.0))
}

pub fn read_cpu() -> Option<(u64, u64)> {
    parse_cpu_line(&std::fs::read_to_string("/proc/stat").ok()?)
}

pub fn read_memory_ratio() -> Option<f64> {
    parse_memory_ratio(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_text() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_cpu_line(stat), Some((150, 1000)));
        assert_eq!(cpu_ratio((150, 1000), (240, 1100)), Some(0.9));
        assert_eq!(cpu_ratio((150, 1000), (150, 1000)), None);
        assert_eq!(parse_cpu_line("cpu  x\n"), None);
        let mem = "MemTotal:       1000 kB\nMemFree:        100 kB\nMemAvailable:   250 kB\n";
        assert_eq!(parse_memory_ratio(mem), Some(0.75));
        assert_eq!(
            parse_memory_ratio("MemTotal: 0 kB\nMemAvailable: 0 kB\n"),
            None
        );
    }

    #[test]
    fn this_host_reads() {
        if std::path::Path::new("/proc/stat").exists() {
            assert!(read_cpu().is_some());
            let m = read_memory_ratio().unwrap();
            assert!((0.0..=1.0).contains(&m));
        }
    }
}
