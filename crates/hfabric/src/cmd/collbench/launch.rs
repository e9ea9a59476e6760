//! Starts the ranks: a fabric file of `--ranks` nodes on free loopback ports in a temporary
//! directory, then one `hfabric bench allreduce --worker FILE --node rank-I` per rank.

use super::rank::{rank_name, RankRow, PORT_TAKEN};
use super::Args;
use crate::common::{CliError, CliResult};
use clap::ValueEnum;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};

/// Ports free now: bound all at once (so they differ), released for the ranks.
fn free_ports(n: usize) -> CliResult<Vec<u16>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()?)
}

/// The ranks' fabric: `send_timeout_ms` (which bounds a wait for a free shared-memory slot
/// too) follows `--timeout-ms`, so a dead rank fails its peers within that bound.
pub fn fabric_toml(ports: &[u16], timeout_ms: u64) -> String {
    let mut t = format!("[fabric]\nname = \"bench-collective\"\nsend_timeout_ms = {timeout_ms}\n");
    for (i, p) in ports.iter().enumerate() {
        t.push_str(&format!(
            "\n[[nodes]]\nid = \"{}\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:{p}\"\n",
            rank_name(i)
        ));
    }
    t
}

/// The flags every rank gets (the parent's, as parsed).
fn rank_flags(a: &Args) -> Vec<String> {
    let name = |v: Option<clap::builder::PossibleValue>| {
        v.map(|v| v.get_name().to_owned()).unwrap_or_default()
    };
    let mut f = vec![
        "--ranks".into(),
        a.ranks.to_string(),
        "--sizes".into(),
        a.sizes
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        "--op".into(),
        a.op.as_str().into(),
        "--dtype".into(),
        a.dtype.as_str().into(),
        "--collective".into(),
        name(a.collective.to_possible_value()),
        "--iters".into(),
        a.iters.to_string(),
        "--warmup".into(),
        a.warmup.to_string(),
        "--timeout-ms".into(),
        a.timeout_ms.to_string(),
        "--profile".into(),
        a.profile.as_str().into(),
        "--transport".into(),
        name(a.transport.to_possible_value()),
    ];
    for (flag, v) in [
        ("--chunk-bytes", a.chunk_bytes),
        ("--small-bytes", a.small_bytes),
        ("--window", a.window),
        ("--arena-bytes", a.arena_bytes),
    ] {
        if let Some(v) = v {
            f.extend([flag.to_owned(), v.to_string()]);
        }
    }
    if a.no_check {
        f.push("--no-check".into());
    }
    if a.arena {
        f.push("--arena".into());
    }
    f
}

struct Rank {
    child: Child,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// How many times the ranks start again on fresh ports when one finds its port taken.
const PORT_TRIES: usize = 5;

/// Runs the ranks to their end; per rank, its rows (one per size).
pub fn run(a: &Args) -> CliResult<Vec<Vec<RankRow>>> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("ranks.toml");
    for _ in 0..PORT_TRIES {
        // Another process may take a probed port before its rank binds it (CI runs tests
        // in parallel, and outgoing connections draw from the same ephemeral range).
        std::fs::write(&file, fabric_toml(&free_ports(a.ranks)?, a.timeout_ms))?;
        if let Some(rows) = run_once(a, &file)? {
            return Ok(rows);
        }
        tracing::warn!("a rank's port was taken before it bound it; starting the ranks again");
    }
    Err(CliError::failed(format!(
        "the ranks found a port taken {PORT_TRIES} times running; is something on this host \
         taking every free loopback port?"
    )))
}

fn spawn(file: &std::path::Path, flags: &[String], i: usize) -> CliResult<Rank> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(&exe);
    cmd.args(["bench", "allreduce"])
        .args(flags)
        .arg("--worker")
        .arg(file)
        .args(["--node", &rank_name(i)]);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| CliError::failed("no stdout from a rank"))?;
    let err = child
        .stderr
        .take()
        .ok_or_else(|| CliError::failed("no stderr from a rank"))?;
    Ok(Rank {
        child,
        out: drain(out),
        err: drain(err),
    })
}

/// Waits for every rank; `None` (every rank killed) as soon as one says its port was taken.
fn wait_all(ranks: &mut [Rank]) -> CliResult<Option<Vec<ExitStatus>>> {
    let mut done: Vec<Option<ExitStatus>> = vec![None; ranks.len()];
    while done.iter().any(Option::is_none) {
        for (rk, d) in ranks.iter_mut().zip(done.iter_mut()) {
            if d.is_none() {
                *d = rk.child.try_wait()?;
            }
        }
        if done
            .iter()
            .flatten()
            .any(|s| s.code() == Some(i32::from(PORT_TAKEN)))
        {
            for (rk, d) in ranks.iter_mut().zip(&done) {
                if d.is_none() {
                    let _ = rk.child.kill();
                    let _ = rk.child.wait();
                }
            }
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(Some(done.into_iter().flatten().collect()))
}

/// One start of every rank: their rows, or `None` when a rank's port was taken.
fn run_once(a: &Args, file: &std::path::Path) -> CliResult<Option<Vec<Vec<RankRow>>>> {
    let flags = rank_flags(a);
    let mut ranks = Vec::with_capacity(a.ranks);
    for i in 0..a.ranks {
        match spawn(file, &flags, i) {
            Ok(r) => ranks.push(r),
            Err(e) => {
                for r in &mut ranks {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                }
                return Err(e);
            }
        }
    }
    let Some(statuses) = wait_all(&mut ranks)? else {
        return Ok(None);
    };
    let mut failures = Vec::new();
    let mut rows = Vec::with_capacity(a.ranks);
    for (i, (rk, status)) in ranks.into_iter().zip(statuses).enumerate() {
        let out = rk.out.join().unwrap_or_default();
        let err = rk.err.join().unwrap_or_default();
        if !status.success() {
            let said = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("(nothing on stderr)");
            failures.push(format!("rank {i} (pid {}) {status}: {said}", rk.child.id()));
            continue;
        }
        let parsed = out
            .lines()
            .map(serde_json::from_str::<RankRow>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                CliError::failed(format!("rank {i} printed something that is not a row: {e}"))
            })?;
        rows.push(parsed);
    }
    if !failures.is_empty() {
        return Err(CliError::failed(format!(
            "{} of {} ranks failed:\n  {}",
            failures.len(),
            a.ranks,
            failures.join("\n  ")
        )));
    }
    Ok(Some(rows))
}
