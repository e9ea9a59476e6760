//! Issue 19, a newcomer's first hour: one test (or more) per numbered item, on real
//! processes. The README's own commands run in `readme_commands.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> String {
    repo().join("examples").join(name).display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// A two-node fabric file and a running node-b (optionally storing into `store`).
fn pair(dir: &Path, store: Option<&Path>) -> (PathBuf, Server) {
    let f = fabric_file(dir, "high_throughput");
    let server = Server::start(&f, "node-b", store);
    (f, server)
}

/// `CMD --config F --peer PEER --from node-a --to node-b`: a command of node-a (not served)
/// about the served node-b.
fn a_to_b<'a>(cmd: &'a str, f: &'a str, peer: &'a str) -> Vec<&'a str> {
    let mut v = vec![cmd];
    v.extend(args_with_peer(
        f,
        peer,
        &["--from", "node-a", "--to", "node-b"],
    ));
    v
}

fn args_with_peer<'a>(f: &'a str, peer: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--config", f, "--peer", peer];
    v.extend_from_slice(rest);
    v
}

#[test]
fn item1_readme_says_how_to_put_hfabric_on_path() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    assert!(readme.contains("cargo install --path crates/hfabric"));
    assert!(readme.contains("target/release/hfabric"));
}

#[test]
fn item2_bench_refuses_a_node_that_stores_and_writes_nothing_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("inbox");
    let (f, server) = pair(dir.path(), Some(&store));
    let (f, peer) = (f.display().to_string(), server.peer_arg("node-b"));
    let mut args = a_to_b("bench", &f, &peer);
    args.extend(["throughput", "--sizes", "1024", "--seconds-per-size", "0.5"]);
    let o = hfabric(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--store"), "{}", stderr(&o));
    assert!(
        stored_files(&store).is_empty(),
        "{:?}",
        stored_files(&store)
    );
}

#[test]
fn item3_monitor_joins_as_an_observer_and_reads_in_gbit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (f, server) = pair(dir.path(), None);
    let (f, peer) = (f.display().to_string(), server.peer_arg("node-b"));
    let mut args = vec!["monitor"];
    args.extend(args_with_peer(&f, &peer, &["--once", "--screen", "160x30"]));
    let o = hfabric(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("no node `monitor`"), "{}", stderr(&o));
    assert!(stderr(&o).contains("as an observer"), "{}", stderr(&o));
    let text = stdout(&o);
    // No node stood in for: both are in the table (node-a is not served here).
    assert!(text.contains("node-a") && text.contains("node-b"), "{text}");
    assert!(text.contains("Gbit/s") && !text.contains("MiB/s"), "{text}");
    assert!(
        !text.contains('→'),
        "links read a↔b, not as a direction: {text}"
    );
}

#[test]
fn item4_logs_are_plain_text_off_a_terminal_and_quiet_over_shared_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (f, server) = pair(dir.path(), None);
    let (f, peer) = (f.display().to_string(), server.peer_arg("node-b"));
    let mut args = a_to_b("send", &f, &peer);
    args.extend(["--size", "65536", "--json"]);
    let o = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["hops"][0]["transport"], "shm");
    let err = stderr(&o);
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in a redirected log: {err:?}"
    );
    assert!(
        !err.contains("socket buffers"),
        "TCP buffer warning over shm: {err}"
    );
    assert!(
        !server.log_text().contains('\u{1b}'),
        "server log has colour codes"
    );
}

#[test]
fn item6_route_names_the_transport_ping_uses_and_ping_needs_a_link() {
    let local = example("local.toml");
    let o = hfabric(&[
        "route", "-c", &local, "--from", "node-a", "--to", "node-b", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["hops"][0]["transport"], "shm");
    // gpu-03 and qpu-01 share no link in lab.toml: refused before anything is dialled.
    let lab = example("lab.toml");
    let o = hfabric(&[
        "ping", "-c", &lab, "--from", "gpu-03", "qpu-01", "--count", "1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no link"), "{}", stderr(&o));
}

#[test]
fn item6_and_10_topo_draws_real_png_and_refuses_other_extensions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = example("lab.toml");
    let png = dir.path().join("lab.png");
    let o = hfabric(&[
        "topo",
        "-c",
        &lab,
        "--visualize",
        &png.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&png).expect("png written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not PNG bytes");
    let svg = dir.path().join("lab.svg");
    let o = hfabric(&[
        "topo",
        "-c",
        &lab,
        "--visualize",
        &svg.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&svg).expect("svg");
    for needle in ["Legend", "zone compute", "400 Gbit/s · 100 ns", "switch-1"] {
        assert!(text.contains(needle), "{needle} missing");
    }
    let jpg = dir.path().join("lab.jpg");
    let o = hfabric(&[
        "topo",
        "-c",
        &lab,
        "--visualize",
        &jpg.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!jpg.exists());
}

#[test]
fn item7_usage_and_configuration_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = example("local.toml");
    let missing = dir.path().join("no-such-file.bin").display().to_string();
    let o = hfabric(&[
        "send", "-c", &local, "--from", "node-a", "--to", "node-b", "--file", &missing,
    ]);
    assert_eq!(o.status.code(), Some(2), "missing input: {}", stderr(&o));
    let key = dir.path().join("fabric.key").display().to_string();
    assert!(hfabric(&["keygen", "--out", &key]).status.success());
    let o = hfabric(&["keygen", "--out", &key]);
    assert_eq!(o.status.code(), Some(2), "existing key: {}", stderr(&o));
    let o = hfabric(&["bench", "latency", "--plot", "x.gif"]);
    assert_eq!(o.status.code(), Some(2), "plot extension: {}", stderr(&o));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let o = hfabric(&["serve", "-c", &local, "--node", "node-b", "--listen", &addr]);
    assert_eq!(o.status.code(), Some(2), "port in use: {}", stderr(&o));
}

/// Options of `hfabric SUB -h` whose line carries no description (only a default, or nothing).
fn undocumented(sub: &str) -> Vec<String> {
    let o = hfabric(&[sub, "-h"]);
    assert!(o.status.success(), "{sub} -h: {}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    let mut bare = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if !t.starts_with('-') {
            continue;
        }
        // "--flag <V>  Description [default: x]", or the description on the next line.
        let same_line = t.split_once("  ").map_or("", |(_, d)| d.trim());
        let next = lines.get(i + 1).map_or("", |n| n.trim());
        let desc = if !same_line.is_empty() {
            same_line
        } else if !next.starts_with('-') {
            next
        } else {
            ""
        };
        if desc.is_empty() || desc.starts_with('[') {
            bare.push(format!("{sub}: {}", t));
        }
    }
    bare
}

#[test]
fn item7_every_flag_of_every_command_has_help() {
    let subs = [
        "serve", "send", "ping", "nodes", "bench", "route", "topo", "diagnose", "monitor", "keygen",
    ];
    let bare: Vec<String> = subs.iter().flat_map(|s| undocumented(s)).collect();
    assert!(bare.is_empty(), "flags without help:\n{}", bare.join("\n"));
    let o = hfabric(&["bench", "-h"]);
    assert!(
        stdout(&o).contains("1024,10240,102400,1048576"),
        "{}",
        stdout(&o)
    );
    let o = hfabric(&["send", "-h"]);
    assert!(
        stdout(&o).contains("tensor, gradient"),
        "--data-type lists its values"
    );
}

#[test]
fn item8_readme_and_examples_agree_with_the_code() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    assert!(readme.contains("1024, 10240, 102400 and 1048576"));
    assert!(readme.contains("concurrent streams"));
    assert!(
        !readme.contains("--config lab.toml"),
        "example paths need examples/"
    );
    assert!(readme.contains("diagnose, monitor"));
    assert!(!readme.contains("../shared/DESIGN.md"));
    let addrs = |name: &str| -> Vec<String> {
        let cfg = hyperfabric::config::FabricConfig::from_file(&repo().join("examples").join(name))
            .expect("example");
        cfg.nodes
            .iter()
            .filter_map(|n| n.listen.map(|a| a.to_string()))
            .collect()
    };
    let secure = addrs("secure.toml");
    for other in ["lab.toml", "diamond.toml", "local.toml"] {
        let theirs = addrs(other);
        assert!(
            secure.iter().all(|a| !theirs.contains(a)),
            "secure.toml shares a port with {other}"
        );
    }
}

#[test]
fn item9_send_times_connection_setup_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (f, server) = pair(dir.path(), None);
    let (f, peer) = (f.display().to_string(), server.peer_arg("node-b"));
    let mut args = a_to_b("send", &f, &peer);
    args.extend(["--size", "1048576", "--json"]);
    let o = hfabric(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert!(v["setup_ns"].as_u64().is_some_and(|ns| ns > 0), "{v}");
    assert!(v["throughput_gib_per_s"].as_f64().is_some());
    for key in ["config", "machine"] {
        assert!(v[key].is_object(), "--json carries {key}");
    }
    assert!(v["machine"]["kernel"].is_string());
}

#[test]
fn item9_diagnose_full_leaves_no_probe_in_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("inbox");
    let (f, server) = pair(dir.path(), Some(&store));
    let (f, peer) = (f.display().to_string(), server.peer_arg("node-b"));
    let mut args = a_to_b("diagnose", &f, &peer);
    args.extend(["--full"]);
    let o = hfabric(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stored_files(&store).is_empty(),
        "{:?}",
        stored_files(&store)
    );
}
