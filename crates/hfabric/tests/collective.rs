//! `hfabric bench allreduce`: ranks as separate processes, checked results, the JSON
//! report; and a rank killed mid-all_reduce makes every other rank fail instead of hang.

mod support;

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn json_of(args: &[&str]) -> Value {
    let out = hfabric(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

#[test]
fn bench_allreduce_reports_checked_rows_for_three_ranks() {
    let v = json_of(&[
        "bench",
        "allreduce",
        "--ranks",
        "3",
        "--sizes",
        "8,64K,1M",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--json",
    ]);
    assert_eq!(v["ranks"], 3);
    assert_eq!(v["collective"], "all_reduce");
    assert_eq!(v["config"]["dtype"], "f32");
    assert_eq!(v["config"]["checked"], true);
    assert!(!v["machine"]["cpu_model"].as_str().unwrap_or("").is_empty());
    assert_eq!(v["config"]["arena"], false);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3);
    let paths = ["recursive_doubling", "recursive_doubling", "ring"];
    for ((row, size), path) in rows.iter().zip([8u64, 64 << 10, 1 << 20]).zip(paths) {
        assert_eq!(row["path"], path, "{row}");
        assert_eq!(row["size_bytes"], size);
        assert_eq!(row["count"], size / 4);
        assert_eq!(row["wrong"], 0, "{row}");
        let (alg, bus) = (
            row["algbw_gbs"].as_f64().unwrap_or(-1.0),
            row["busbw_gbs"].as_f64().unwrap_or(-1.0),
        );
        assert!(alg > 0.0, "{row}");
        assert!(
            (bus - alg * 4.0 / 3.0).abs() <= 1e-9 * alg.max(1.0),
            "busbw = algbw * 2(n-1)/n: {row}"
        );
        assert!(
            row["time_p99_us"].as_f64() >= row["time_median_us"].as_f64(),
            "{row}"
        );
    }
}

#[test]
fn bench_allreduce_with_arena_reports_which_path_each_size_took() {
    let v = json_of(&[
        "bench",
        "allreduce",
        "--ranks",
        "3",
        "--sizes",
        "0,8,64K,1M",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--arena",
        "--json",
    ]);
    assert_eq!(v["config"]["arena"], true);
    let rows = v["rows"].as_array().expect("rows");
    let paths: Vec<&str> = rows.iter().filter_map(|r| r["path"].as_str()).collect();
    assert_eq!(
        paths,
        ["arena", "arena", "arena", "arena_rs_ag"],
        "{rows:?}"
    );
    assert_eq!(v["config"]["arena_bytes"], 2 << 20);
    assert!(rows.iter().all(|r| r["wrong"] == 0), "{rows:?}");
}

#[test]
fn bench_runs_the_other_collectives_and_refuses_an_op_they_do_not_take() {
    for c in ["all-gather", "reduce-scatter", "broadcast", "all-to-all"] {
        let v = json_of(&[
            "bench",
            "allreduce",
            "--ranks",
            "2",
            "--collective",
            c,
            "--dtype",
            "bf16",
            "--sizes",
            "4K",
            "--iters",
            "2",
            "--warmup",
            "0",
            "--json",
        ]);
        assert_eq!(v["rows"][0]["wrong"], 0, "{c}: {v}");
    }
    let out = hfabric(&[
        "bench",
        "allreduce",
        "--collective",
        "broadcast",
        "--op",
        "max",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let help = hfabric(&["bench", "allreduce", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--ranks",
        "--sizes",
        "--op",
        "--dtype",
        "--collective",
        "--json",
        "--plot",
        "--timeout-ms",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

/// The pids of `pid`'s children (Linux: /proc/PID/task/PID/children).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn killing_one_rank_mid_all_reduce_makes_the_others_return_an_error() {
    kill_one_rank_mid_all_reduce(&["--sizes", "4M", "--iters", "1000000"]);
}

/// The same on the intra-host arena (8 B all_reduce and the barriers between them).
#[test]
fn killing_one_rank_mid_arena_all_reduce_makes_the_others_return_an_error() {
    // 8 B on the arena takes well under 1 µs with the ranks on their own CPUs: fifty
    // million of them outlast the seven seconds before the kill.
    kill_one_rank_mid_all_reduce(&["--sizes", "8", "--arena", "--iters", "50000000"]);
}

/// The two kill tests one at a time: six ranks at once on a loaded 2-core machine were
/// slow enough to start that a rank timed out in its first barrier, before any kill.
static KILL_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn kill_one_rank_mid_all_reduce(extra: &[&str]) {
    let _one_at_a_time = KILL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut bench = Command::new(BIN)
        .args(["bench", "allreduce", "--ranks", "3"])
        .args(extra)
        .args([
            "--warmup",
            "0",
            // Long enough that slow starts on a loaded 2-core machine (9 rank processes of
            // this file's tests at once) are not taken for a dead rank; still a bound.
            "--timeout-ms",
            "5000",
            "--no-check",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the bench");
    let mut ranks = Vec::new();
    for _ in 0..400 {
        ranks = children(bench.id());
        if ranks.len() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(ranks.len(), 3, "the bench started three ranks");
    // Let them connect and get into the loop of all_reduces (enough of them, `--iters`
    // in `extra`, to be still running when the kill comes).
    std::thread::sleep(Duration::from_millis(7000));
    let killed = Command::new("kill")
        .args(["-9", &ranks[1].to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = Instant::now();
    let mut status = None;
    while started.elapsed() < Duration::from_secs(90) {
        if let Some(s) = bench.try_wait().expect("try_wait") {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = status else {
        let _ = bench.kill();
        for r in &ranks {
            let _ = Command::new("kill").args(["-9", &r.to_string()]).status();
        }
        panic!("the surviving ranks hung after one was killed");
    };
    let out = bench.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("3 of 3 ranks failed"), "{err}");
    assert!(
        err.contains(&format!("pid {}) signal: 9", ranks[1])),
        "{err}"
    );
    // The two survivors returned (exit status 1) with a collective's error.
    let survivors: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("exit status: 1"))
        .collect();
    assert_eq!(survivors.len(), 2, "{err}");
    for l in survivors {
        assert!(
            [
                "no message from rank",
                "aborted by rank",
                "unreachable",
                "timed out"
            ]
            .iter()
            .any(|w| l.contains(w)),
            "{l}"
        );
    }
}
