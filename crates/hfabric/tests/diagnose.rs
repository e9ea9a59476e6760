//! `hfabric diagnose` against real processes on loopback, one hop slowed by a delaying proxy
//! between two relays: the report names that hop and recommends something that fits.

#[path = "support/proxy.rs"]
mod proxy;
mod support;

use proxy::DelayProxy;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::*;

const DELAY: Duration = Duration::from_millis(20);

fn tcp(extra: &[String]) -> Vec<String> {
    let mut v = vec!["--transport".to_owned(), "tcp".to_owned()];
    v.extend_from_slice(extra);
    v
}

fn peer(id: &str, addr: std::net::SocketAddr) -> [String; 2] {
    ["--peer".to_owned(), format!("{id}={addr}")]
}

fn diagnose(cfg: &Path, peers: &[String], out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "diagnose",
        "--json",
        "--transport",
        "tcp",
        "--from",
        "src",
        "--to",
        "dst",
        "--probes",
        "9",
        "--output",
    ];
    args.push(out.to_str().unwrap());
    args.push("--config");
    args.push(cfg.to_str().unwrap());
    args.extend(peers.iter().map(String::as_str));
    args.extend(extra);
    let o = hfabric(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(printed, written, "--output writes the report --json prints");
    printed
}

fn latency_bottleneck(r: &Value) -> (String, String) {
    let b = r["bottlenecks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "latency")
        .expect("a latency bottleneck");
    (
        b["from"].as_str().unwrap().into(),
        b["to"].as_str().unwrap().into(),
    )
}

fn latency_advice(r: &Value) -> Vec<&Value> {
    r["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["category"] == "latency")
        .collect()
}

/// The report on a chain whose relay-1 -> relay-2 hop was slowed by at least [`DELAY`].
fn check_chain_report(r: &Value) {
    assert_eq!(
        r["route"],
        serde_json::json!(["src", "relay-1", "relay-2", "dst"])
    );
    assert_eq!(r["size_sweep"].as_array().unwrap().len(), 5);
    let hops = r["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 3);
    let adds = |i: usize| hops[i]["latency_ns"].as_i64().unwrap();
    assert!(adds(1) >= DELAY.as_nanos() as i64, "{hops:#?}");
    assert_eq!(hops[1]["health"], "degraded");
    assert_eq!(latency_bottleneck(r), ("relay-1".into(), "relay-2".into()));
    let advice = latency_advice(r);
    assert!(
        advice.iter().any(|x| {
            x["issue"].as_str().unwrap().contains("relay-1 -> relay-2")
                && x["recommendation"]
                    .as_str()
                    .unwrap()
                    .contains("no other route")
                && x["priority"] == "high"
        }),
        "{:#?}",
        r["recommendations"]
    );
    assert!(r["bdp"]["rtt_ns"].as_u64().unwrap() >= DELAY.as_nanos() as u64);
}

/// Starts the chain with relay-1 reaching relay-2 at `r2_addr(relay-2)` and relay-1's
/// environment `env`; returns the report.
fn chain_report(
    dir: &Path,
    r2_addr: impl Fn(std::net::SocketAddr) -> std::net::SocketAddr,
    env: &[(&str, String)],
) -> Value {
    let cfg = chain_file(dir);
    let dst = Server::start_with(&cfg, "dst", None, &tcp(&[]));
    let r2 = Server::start_with(&cfg, "relay-2", None, &tcp(&peer("dst", dst.addr)));
    let r1 = proxy::serve_env(
        &cfg,
        "relay-1",
        &tcp(&peer("relay-2", r2_addr(r2.addr))),
        env,
    );
    let mut peers = Vec::new();
    for (id, s) in [("relay-1", &r1), ("relay-2", &r2), ("dst", &dst)] {
        peers.extend(peer(id, s.addr));
    }
    diagnose(&cfg, &peers, &dir.join("report.json"), &[])
}

#[test]
fn slow_middle_hop_of_a_chain_is_named_with_no_detour() {
    let dir = tempfile::tempdir().unwrap();
    let slow = std::sync::OnceLock::new();
    let r = chain_report(
        dir.path(),
        |r2| slow.get_or_init(|| DelayProxy::start(r2, DELAY)).addr,
        &[],
    );
    check_chain_report(&r);
}

#[test]
fn hop_slowed_by_injected_delay_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let rule = format!("from=relay-1,to=relay-2,delay_us={}", DELAY.as_micros());
    let r = chain_report(dir.path(), |r2| r2, &[("HF_FAULTS", rule)]);
    check_chain_report(&r);
}

#[test]
fn slow_hop_of_a_diamond_gets_the_other_relay_as_detour() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = diamond_file(dir.path());
    let route = hfabric(&[
        "route",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        "src",
        "--to",
        "dst",
    ]);
    let route: Value = serde_json::from_slice(&route.stdout).unwrap();
    let relay = route["nodes"][1].as_str().unwrap().to_owned();
    let other = if relay == "relay-1" {
        "relay-2"
    } else {
        "relay-1"
    };
    let dst = Server::start_with(&cfg, "dst", None, &tcp(&[]));
    let slow = DelayProxy::start(dst.addr, DELAY);
    let on_route = Server::start_with(&cfg, &relay, None, &tcp(&peer("dst", slow.addr)));
    let spare = Server::start_with(&cfg, other, None, &tcp(&peer("dst", dst.addr)));
    let mut peers = Vec::new();
    for (id, s) in [(relay.as_str(), &on_route), (other, &spare), ("dst", &dst)] {
        peers.extend(peer(id, s.addr));
    }
    let full = ["--full", "--full-bytes", "1048576"];
    let r = diagnose(&cfg, &peers, &dir.path().join("report.json"), &full);
    assert_eq!(latency_bottleneck(&r), (relay.clone(), "dst".into()));
    // --full: a throughput and a utilisation per hop, end to end, and a bandwidth bottleneck.
    for h in r["hops"].as_array().unwrap() {
        assert!(h["throughput_gbps"].as_f64().unwrap() > 0.0, "{h:#}");
        assert!(h["utilisation"].as_f64().unwrap() > 0.0, "{h:#}");
    }
    assert!(r["throughput_gbps"].as_f64().unwrap() > 0.0);
    assert!(r["bottlenecks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["kind"] == "bandwidth"));
    let advice = latency_advice(&r);
    let detour = format!("src -> {other} -> dst");
    assert!(
        advice.iter().any(|x| {
            let rec = x["recommendation"].as_str().unwrap();
            rec.contains(&detour) && rec.contains(&format!("--via {other}=1"))
        }),
        "{:#?}",
        r["recommendations"]
    );
}

#[test]
fn unknown_nodes_and_bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = chain_file(dir.path());
    let cfg = cfg.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["diagnose", "--config", cfg, "--from", "src"];
        args.extend(extra);
        hfabric(&args)
    };
    let o = run(&["--to", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nowhere"));
    let o = run(&["--to", "dst", "--probes", "0"]);
    assert_eq!(o.status.code(), Some(2));
    // No relay runs: the first hop is down, the report says so, and the exit code is 1.
    let o = run(&["--to", "dst", "--probes", "1", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["hops"][0]["health"], "down");
    assert_eq!(r["hops"][1]["health"], "unmeasured");
    assert!(r["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["category"] == "reachability"));
}
