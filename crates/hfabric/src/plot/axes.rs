//! Axis arithmetic and labels: the percentile helper and "nines" axis, nice linear ticks,
//! log ticks, and number/size/latency formatting.

/// Nearest-rank percentile of already sorted samples; `p` in [0, 1].
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (p.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Position on the "nines" axis: 0 -> 0, 0.9 -> 1, 0.99 -> 2, 0.999 -> 3, ...
pub(super) fn nines(p: f64) -> f64 {
    -(1.0 - p).log10()
}

pub(super) fn nines_label(k: u32) -> String {
    match k {
        0 => "0".to_string(),
        1 => "90".to_string(),
        2 => "99".to_string(),
        _ => format!("99.{}", "9".repeat(k as usize - 2)),
    }
}
/// A "nice" step (1, 2 or 5 times a power of ten) near `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let exp = raw.log10().floor();
    let base = 10f64.powf(exp);
    let frac = raw / base;
    let m = if frac < 1.5 {
        1.0
    } else if frac < 3.0 {
        2.0
    } else if frac < 7.0 {
        5.0
    } else {
        10.0
    };
    m * base
}

/// Round tick values covering [lo, hi] with about `target` ticks; first <= lo, last >= hi.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo.min(hi), lo.max(hi))
    } else {
        (0.0, 1.0)
    };
    let (lo, hi) = if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let step = nice_step((hi - lo) / target.saturating_sub(1).max(1) as f64);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    // k * step, then snapped to the step's decimal precision to drop float noise.
    let decimals = (-step.log10().floor()).max(0.0) as i32;
    let snap = 10f64.powi(decimals);
    (first..=last)
        .map(|k| (k as f64 * step * snap).round() / snap)
        .collect()
}

/// Log-axis ticks for [lo, hi] (both >= 1) in a 1-2-5 sequence, flagged `true` when labelled.
/// Within three decades every tick is labelled and the list is trimmed to the data; wider
/// ranges label only the decades and extend to whole decades.
pub(super) fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, bool)> {
    let few = hi / lo < 1000.0;
    let d0 = lo.log10().floor() as i32;
    let d1 = hi.log10().ceil() as i32;
    let mut all = Vec::new();
    for d in d0..=d1 {
        let base = 10f64.powi(d);
        all.push((base, true));
        if d < d1 {
            for m in [2.0, 5.0] {
                all.push((m * base, few));
            }
        }
    }
    if few {
        let first = all.iter().rposition(|t| t.0 <= lo).unwrap_or(0);
        let last = all.iter().position(|t| t.0 >= hi).unwrap_or(all.len() - 1);
        all = all[first..=last].to_vec();
    }
    all
}

/// Tick label for a value on an axis with the given step: no more decimals than the step needs.
pub(super) fn format_tick(v: f64, step: f64) -> String {
    let decimals = if step > 0.0 {
        (-step.log10().floor()).max(0.0) as usize
    } else {
        0
    };
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    format!("{v:.decimals$}")
}

/// Up to three significant digits, trailing zeros removed: 1.5, 12.3, 250.
fn short_number(v: f64) -> String {
    let decimals = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A latency in nanoseconds with a readable unit: "850 ns", "1.5 µs", "12 ms", "2 s".
pub fn format_ns(ns: f64) -> String {
    let a = ns.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a < 1e3 {
        format!("{} ns", short_number(ns))
    } else if a < 1e6 {
        format!("{} µs", short_number(ns / 1e3))
    } else if a < 1e9 {
        format!("{} ms", short_number(ns / 1e6))
    } else {
        format!("{} s", short_number(ns / 1e9))
    }
}

pub(super) fn format_gbit(g: f64) -> String {
    format!("{} Gbit/s", short_number(g))
}

/// 2^e bytes as "512", "1K", "64K", "1M", "4G".
pub(super) fn format_pow2(e: u32) -> String {
    match e {
        0..=9 => format!("{}", 1u64 << e),
        10..=19 => format!("{}K", 1u64 << (e - 10)),
        20..=29 => format!("{}M", 1u64 << (e - 20)),
        30..=39 => format!("{}G", 1u64 << (e - 30)),
        _ => format!("2^{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_are_round() {
        for (lo, hi, target) in [
            (0.0, 27.3, 6),
            (0.0, 1.0, 5),
            (3.7, 9.1, 6),
            (0.0, 0.037, 6),
            (1234.0, 98765.0, 6),
            (0.0, 33.0, 6),
            (-4.0, 17.0, 5),
        ] {
            let t = nice_ticks(lo, hi, target);
            assert!(t[0] <= lo && *t.last().unwrap() >= hi, "{lo}..{hi}: {t:?}");
            assert!(t.len() >= 3 && t.len() <= 2 * target, "{lo}..{hi}: {t:?}");
            let step = t[1] - t[0];
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!(
                [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9),
                "step {step} in {t:?}"
            );
            for v in &t {
                let k = v / step;
                assert!((k - k.round()).abs() < 1e-9, "{v} not a multiple of {step}");
                // No float noise like 0.30000000000000004 in the values themselves.
                assert!(format!("{v}").len() <= 8, "{v}");
            }
        }
        assert_eq!(
            nice_ticks(0.0, 27.3, 6),
            vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
        );
        assert_eq!(nice_ticks(0.0, 1.0, 6), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_step(0.4), 0.5);
        assert_eq!(nice_step(0.27), 0.2);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(1.0), 1.0);
    }

    #[test]
    fn log_ticks_are_decades() {
        let t = log_ticks(800.0, 2_000_000.0);
        let majors: Vec<f64> = t.iter().filter(|x| x.1).map(|x| x.0).collect();
        assert_eq!(majors, vec![100.0, 1e3, 1e4, 1e5, 1e6, 1e7]);
        let t = log_ticks(800.0, 30_000.0);
        assert!(t.iter().all(|x| x.1));
        let values: Vec<f64> = t.iter().map(|x| x.0).collect();
        assert_eq!(values, vec![500.0, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4]);
    }

    #[test]
    fn percentiles_on_known_samples() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        v.sort_unstable();
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.9), Some(90));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 0.999), Some(100));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.99), Some(7));
        let v: Vec<u64> = (0..10_000).collect();
        assert_eq!(percentile(&v, 0.9999), Some(9_998));
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines_label(0), "0");
        assert_eq!(nines_label(1), "90");
        assert_eq!(nines_label(4), "99.99");
    }

    #[test]
    fn formatting() {
        assert_eq!(format_ns(850.0), "850 ns");
        assert_eq!(format_ns(1500.0), "1.5 µs");
        assert_eq!(format_ns(12_345.0), "12.3 µs");
        assert_eq!(format_ns(2e6), "2 ms");
        assert_eq!(format_ns(0.0), "0");
        assert_eq!(format_pow2(0), "1");
        assert_eq!(format_pow2(10), "1K");
        assert_eq!(format_pow2(16), "64K");
        assert_eq!(format_pow2(20), "1M");
        assert_eq!(format_tick(2.5, 0.5), "2.5");
        assert_eq!(format_tick(10.0, 5.0), "10");
    }
}
