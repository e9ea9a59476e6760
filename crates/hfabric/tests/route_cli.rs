//! `hfabric route` and `hfabric topo` on the example fabric files.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn example(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    root.join(name).display().to_string()
}

fn hfabric(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hfabric"))
        .args(args)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("hfabric runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn route_json(file: &str, from: &str, to: &str, strategy: &str) -> Value {
    let c = example(file);
    let o = hfabric(&[
        "route", "-c", &c, "--from", from, "--to", to, "-s", strategy, "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("json")
}

fn nodes(v: &Value) -> Vec<String> {
    v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(String::from))
        .collect()
}

#[test]
fn diamond_strategies() {
    let fast = route_json("diamond.toml", "src", "dst", "lowest_latency");
    assert_eq!(nodes(&fast), ["src", "relay-1", "dst"]);
    // Loopback addresses: `--transport auto` takes shared memory, and route says so (as ping).
    assert_eq!(fast["latency_ns"], 2000);
    assert_eq!(fast["hops"][0]["transport"], "shm");
    assert_eq!(fast["hops"].as_array().map(Vec::len), Some(2));
    let wide = route_json("diamond.toml", "src", "dst", "highest_bandwidth");
    assert_eq!(nodes(&wide), ["src", "relay-2", "dst"]);
    assert_eq!(wide["bandwidth_gbps"], 400.0);
}

#[test]
fn lab_text_output() {
    let c = example("lab.toml");
    let o = hfabric(&[
        "route",
        "-c",
        &c,
        "--from",
        "gpu-02",
        "--to",
        "storage-01",
        "-s",
        "shortest_path",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("Route gpu-02 -> storage-01 (shortest_path): 2 hops"),
        "{out}"
    );
    assert!(
        out.contains("switch-1") && out.contains("shm") && out.contains("Total: latency"),
        "{out}"
    );
}

#[test]
fn route_errors_have_exit_codes() {
    let c = example("lab.toml");
    let o = hfabric(&["route", "-c", &c, "--from", "gpu-01", "--to", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown node \"nope\""),
        "{}",
        stderr(&o)
    );
    let o = hfabric(&["route", "-c", &c, "--from", "gpu-01", "--to", "qpu-01"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("hard isolation"), "{}", stderr(&o));
    let o = hfabric(&[
        "route", "-c", &c, "--from", "gpu-01", "--to", "gpu-02", "-s", "fastest",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn hard_zone_refused_across_allowed_within() {
    let c = example("zones.toml");
    let o = hfabric(&["route", "-c", &c, "--from", "secure-a", "--to", "shared-a"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("zone \"secure\"") && err.contains("refused"),
        "{err}"
    );
    // Within the zone the route stays inside it: the direct link, not via the switch.
    let inside = route_json("zones.toml", "secure-a", "secure-b", "shortest_path");
    assert_eq!(nodes(&inside), ["secure-a", "secure-b"]);
    let inside = route_json("zones.toml", "secure-a", "secure-b", "highest_bandwidth");
    assert_eq!(nodes(&inside), ["secure-a", "secure-b"]);
}

#[test]
fn topo_formats() {
    let c = example("lab.toml");
    for (format, needle) in [
        ("table", "7 nodes, 7 links"),
        ("tree", "└─ switch-1"),
        ("dot", "graph \"lab\" {"),
        ("graphml", "<graphml"),
        ("gml", "graph ["),
    ] {
        let o = hfabric(&["topo", "-c", &c, "--format", format]);
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        assert!(stdout(&o).contains(needle), "{format}: {}", stdout(&o));
    }
    let o = hfabric(&["topo", "-c", &c, "--format", "tree", "--root", "switch-1"]);
    assert!(stdout(&o).starts_with("switch-1\n"));
}

#[test]
fn topo_import_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = example("diamond.toml");
    for format in ["json", "graphml"] {
        let o = hfabric(&["topo", "-c", &c, "--format", format]);
        assert!(o.status.success());
        let file = dir.path().join(format!("diamond.{format}"));
        std::fs::write(&file, &o.stdout).expect("write");
        let f = file.display().to_string();
        let back = hfabric(&["topo", "--import", &f, "--format", "table"]);
        assert!(back.status.success(), "{format}: {}", stderr(&back));
        let table = stdout(&back);
        assert!(
            table.contains("relay-2") && table.contains("4 nodes, 4 links"),
            "{table}"
        );
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"nodes\": 3}").expect("write");
    let o = hfabric(&["topo", "--import", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn topo_visualize_builtin_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("lab.svg");
    let c = example("lab.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_hfabric"))
        .args(["topo", "-c", &c, "--visualize", &svg.display().to_string()])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("built-in"), "{}", stderr(&o));
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(text.contains("<svg") && text.contains("qpu-01"));
    assert!(stdout(&o).is_empty(), "no format asked, nothing printed");
}
