//! The `[routing]` knobs change what a running node does, seen from outside: the path a
//! send takes (`SendReport::path`), a route refused, the predictor's sample count.
//!
//! The fabric is a diamond over real loopback TCP, every node in this process:
//! `src - narrow - dst` is fast but thin (100 ns, 1 Gbit/s per link), `src - wide - dst` is
//! slow but wide (5 µs, 400 Gbit/s). `lowest_latency` (the router's default) takes `narrow`.

use hyperfabric::config::FabricConfig;
use hyperfabric::{Error, Fabric, PingOptions, SendOptions, Strategy};
use std::path::Path;
use std::time::Duration;

const NODES: [&str; 4] = ["dst", "narrow", "wide", "src"];

fn diamond(routing: &str, fidelity: f64) -> String {
    let mut text = String::from(
        "[fabric]\nname = \"routing\"\nsend_timeout_ms = 5000\nconnect_timeout_ms = 1000\n",
    );
    for (i, id) in NODES.iter().enumerate() {
        text += &format!(
            "\n[[nodes]]\nid = \"{id}\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:{}\"\n",
            i + 1
        );
    }
    let links = [
        ("src", "narrow", 100, 1),
        ("narrow", "dst", 100, 1),
        ("src", "wide", 5000, 400),
        ("wide", "dst", 5000, 400),
    ];
    for (a, b, lat, bw) in links {
        text += &format!(
            "\n[[links]]\nbetween = [\"{a}\", \"{b}\"]\nlatency_ns = {lat}\nbandwidth_gbps = {bw}\nfidelity = {fidelity}\n"
        );
    }
    format!("{text}\n[routing]\n{routing}\n")
}

/// Starts every node on a free port, each knowing the addresses of those started before.
fn start(text: &str) -> Result<Vec<Fabric>, Error> {
    let base = FabricConfig::from_toml_str(text, "<routing>")?;
    let mut addrs: Vec<(&str, std::net::SocketAddr)> = Vec::new();
    let mut nodes = Vec::new();
    for id in NODES {
        let mut cfg = base.clone();
        for (other, addr) in &addrs {
            cfg.set_listen(other, *addr)?;
        }
        let f = Fabric::from_config(cfg)
            .node(id)
            .listen("127.0.0.1:0".parse().expect("an address"))
            .start()?;
        addrs.push((id, f.local_addr()));
        nodes.push(f);
    }
    Ok(nodes)
}

/// The path of one small send from src to dst (checked to arrive).
fn path_of(nodes: &[Fabric], opts: SendOptions) -> Result<Vec<String>, Error> {
    let report = nodes[3].send("dst", b"which way", opts)?;
    let msg = nodes[0].recv_timeout(Duration::from_secs(5))?;
    assert_eq!(msg.payload, b"which way");
    Ok(report.path)
}

fn names(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

#[test]
fn default_strategy_sets_the_path_of_sends_that_name_none() {
    let plain = start(&diamond("", 1.0)).unwrap();
    let by_narrow = names(&["src", "narrow", "dst"]);
    assert_eq!(path_of(&plain, SendOptions::new()).unwrap(), by_narrow);
    drop(plain);
    let wide = start(&diamond("default_strategy = \"highest_bandwidth\"", 1.0)).unwrap();
    assert_eq!(
        path_of(&wide, SendOptions::new()).unwrap(),
        names(&["src", "wide", "dst"])
    );
    // A send that names its strategy still gets it.
    let named = SendOptions::new().strategy(Strategy::LowestLatency);
    assert_eq!(path_of(&wide, named).unwrap(), by_narrow);
}

/// A history in which a link's latency is its nominal one plus 20 µs per 1/(Gbit/s):
/// thin links are slow whatever their nominal latency says.
fn write_history(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from("# observed = latency + 2e6 ns / bandwidth_gbps\n");
    for (i, bw) in [1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 200.0, 400.0]
        .iter()
        .enumerate()
    {
        for lat in [100.0, 1000.0, 5000.0, 20000.0, 300.0] {
            let observed = lat + 2e6 / bw;
            let hour = (i % 24) as f64;
            text += &format!(
                "{{\"from\":\"x\",\"to\":\"y\",\"latency_ns\":{lat},\"bandwidth_gbps\":{bw},\"utilisation\":0.0,\"loss\":0.0,\"hour\":{hour},\"observed_latency_ns\":{observed}}}\n"
            );
        }
    }
    let path = dir.join("history.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn ml_routing_and_a_history_steer_sends_by_the_predictor() {
    let dir = tempfile::tempdir().unwrap();
    let history = write_history(dir.path());
    let ml = format!(
        "enable_ml_routing = true\nhistory = {:?}",
        history.display().to_string()
    );
    let nodes = start(&diamond(&ml, 1.0)).unwrap();
    assert!(nodes[3].predictor_samples() >= 40);
    assert_eq!(
        path_of(&nodes, SendOptions::new()).unwrap(),
        names(&["src", "wide", "dst"])
    );
    drop(nodes);
    // The same history is too short for a predictor that needs 1000 samples: it falls back
    // to lowest-latency weights.
    let patient = format!("{ml}\ntraining_samples = 1000");
    let nodes = start(&diamond(&patient, 1.0)).unwrap();
    assert_eq!(
        path_of(&nodes, SendOptions::new()).unwrap(),
        names(&["src", "narrow", "dst"])
    );
}

#[test]
fn a_bad_history_stops_the_node_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"from\":\"a\"}\n").unwrap();
    for path in [bad, dir.path().join("missing.jsonl")] {
        let text = diamond(&format!("history = {:?}", path.display().to_string()), 1.0);
        let err = start(&text).err().expect("the node refuses to start");
        assert!(
            matches!(&err, Error::Config { field, .. } if field == "routing.history"),
            "{err}"
        );
    }
}

#[test]
fn fidelity_threshold_refuses_quantum_routes_below_it() {
    // Two hops of fidelity 0.97: the route's fidelity is about 0.94.
    let quantum = || SendOptions::new().strategy(Strategy::QuantumOptimized);
    let nodes = start(&diamond("", 0.97)).unwrap();
    assert_eq!(path_of(&nodes, quantum()).unwrap().len(), 3);
    drop(nodes);
    let strict = start(&diamond("fidelity_threshold = 0.95", 0.97)).unwrap();
    let err = strict[3].send("dst", b"x", quantum()).unwrap_err();
    assert!(err.to_string().contains("fidelity"), "{err}");
    // Other strategies do not look at fidelity.
    assert_eq!(path_of(&strict, SendOptions::new()).unwrap().len(), 3);
}

#[test]
fn model_update_interval_sets_how_often_live_samples_are_learned() {
    let samples_after_pings = |routing: &str| {
        let nodes = start(&diamond(routing, 1.0)).unwrap();
        for _ in 0..5 {
            nodes[3]
                .ping("narrow", PingOptions::new().count(1))
                .unwrap();
        }
        nodes[3].predictor_samples()
    };
    assert_eq!(samples_after_pings("model_update_interval_s = 0"), 5);
    assert_eq!(samples_after_pings("model_update_interval_s = 3600"), 1);
}

/// `src - relay`, then from the relay a fast thin way (`narrow`) and a slow wide one (`wide`)
/// to `dst`. Every node knows every address (ports reserved before any node starts).
fn relay_fabric() -> (String, Vec<&'static str>) {
    let ids = vec!["dst", "narrow", "wide", "relay", "src"];
    let mut text = String::from(
        "[fabric]\nname = \"relayed\"\nsend_timeout_ms = 5000\nconnect_timeout_ms = 1000\n",
    );
    for id in &ids {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        text += &format!(
            "\n[[nodes]]\nid = \"{id}\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:{port}\"\n"
        );
    }
    let links = [
        ("src", "relay", 100, 100),
        ("relay", "narrow", 100, 1),
        ("narrow", "dst", 100, 1),
        ("relay", "wide", 5000, 400),
        ("wide", "dst", 5000, 400),
    ];
    for (a, b, lat, bw) in links {
        text += &format!(
            "\n[[links]]\nbetween = [\"{a}\", \"{b}\"]\nlatency_ns = {lat}\nbandwidth_gbps = {bw}\n"
        );
    }
    (text, ids)
}

#[test]
fn relays_forward_by_the_senders_strategy() {
    let (text, ids) = relay_fabric();
    let cfg = FabricConfig::from_toml_str(&text, "<relayed>").unwrap();
    let nodes: Vec<Fabric> = ids
        .iter()
        .map(|id| Fabric::from_config(cfg.clone()).node(*id).start().unwrap())
        .collect();
    let (dst, narrow, wide, src) = (&nodes[0], &nodes[1], &nodes[2], &nodes[4]);
    // Payload bytes forwarded: the 64 KiB of data (acks carry at most a name).
    let forwarded = |n: &Fabric| n.stats().bytes_forwarded;
    const LEN: u64 = 64 << 10;
    let send = |strategy: Strategy| {
        let opts = SendOptions::new().strategy(strategy);
        let report = src.send("dst", &vec![7u8; LEN as usize], opts).unwrap();
        let msg = dst.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(msg.payload.len() as u64, LEN);
        report.path
    };
    // The relay's own default (lowest_latency) would take narrow; the sender asks for
    // bandwidth, and the data goes through wide.
    let path = send(Strategy::HighestBandwidth);
    assert_eq!(path, names(&["src", "relay", "wide", "dst"]));
    assert!(forwarded(wide) >= LEN, "wide forwarded {}", forwarded(wide));
    assert!(
        forwarded(narrow) < LEN,
        "narrow forwarded {}",
        forwarded(narrow)
    );
    let (wide_before, narrow_before) = (forwarded(wide), forwarded(narrow));
    send(Strategy::LowestLatency);
    assert!(
        forwarded(narrow) - narrow_before >= LEN,
        "narrow forwarded too little"
    );
    assert!(
        forwarded(wide) - wide_before < LEN,
        "wide forwarded the low-latency data"
    );
}
