//! `hfabric serve --metrics`: a real node scraped over HTTP after real traffic, the body
//! parsed with a Prometheus text-format parser, the values checked against what was sent.

mod support;

use prometheus_parse::{Scrape, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use support::*;

/// Plain HTTP/1.0 GET: (status line, content type, body).
fn get(addr: &str, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("headers end");
    let status = head.lines().next().unwrap_or("").to_owned();
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, ctype, body.to_owned())
}

fn value(v: &Value) -> f64 {
    match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x,
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The samples of `metric` whose labels include all of `labels`.
fn find<'a>(
    scrape: &'a Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Vec<&'a prometheus_parse::Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

fn one(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(scrape, metric, labels);
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    value(&found[0].value)
}

#[test]
fn the_prometheus_endpoint_reports_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let extra = ["--metrics".to_owned(), "127.0.0.1:0".to_owned()];
    let server = Server::start_with(&cfg, "node-b", None, &extra);
    let metrics_addr = server.ready["metrics"]
        .as_str()
        .expect("the ready line names the metrics address")
        .to_owned();
    let peer = server.peer_arg("node-b");
    let cfg_s = cfg.to_str().unwrap();
    const LEN: u64 = 3 << 20;
    let size = LEN.to_string();
    let common = ["--config", cfg_s, "--peer", &peer, "--from", "node-a"];
    let send = [
        &["send", "--json"][..],
        &common,
        &["--to", "node-b", "--size", &size],
    ]
    .concat();
    let out = hfabric(&send);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ping = [&["ping"][..], &common, &["--count", "20", "node-b"]].concat();
    let out = hfabric(&ping);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, ctype, body) = get(&metrics_addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition");
    let node = ("node", "node-b");

    // The transfer: one received, its bytes (with 64-byte frame headers) at the node level.
    assert_eq!(
        one(
            &scrape,
            "hyperfabric_node_transfers_received_total",
            &[node]
        ),
        1.0
    );
    let payload = one(
        &scrape,
        "hyperfabric_node_payload_bytes_received_total",
        &[node],
    );
    assert!(
        payload >= LEN as f64 && payload < LEN as f64 * 1.01,
        "{payload}"
    );
    // Per link: everything node-a sent arrived on the link from node-a, headers included:
    // the data, plus at least the 20 pings.
    let link = [node, ("peer", "node-a")];
    let rx = one(&scrape, "hyperfabric_bytes_received_total", &link);
    assert!(rx >= payload + 20.0 * (64.0 + 64.0), "{rx} vs {payload}");
    let frames_in = one(&scrape, "hyperfabric_frames_received_total", &link);
    let frames_out = one(&scrape, "hyperfabric_frames_sent_total", &link);
    assert!(frames_in >= 3.0 + 20.0, "{frames_in}");
    // Every ping got a pong, every transfer an ack.
    assert!(frames_out >= 20.0 + 1.0, "{frames_out}");
    // Bytes sent back (pongs, acks) are split by priority, five classes that add up.
    let by_prio = find(&scrape, "hyperfabric_bytes_sent_total", &link);
    assert_eq!(by_prio.len(), 5);
    let sent: f64 = by_prio.iter().map(|s| value(&s.value)).sum();
    assert!(sent >= frames_out * 64.0, "{sent}");
    for s in &by_prio {
        assert!(s
            .labels
            .get("transport")
            .is_some_and(|t| ["tcp", "shm", "none"].contains(&t)));
    }
    assert_eq!(one(&scrape, "hyperfabric_drops_total", &link), 0.0);

    // The latency histograms parse as histograms with a +Inf bucket.
    let hist = find(&scrape, "hyperfabric_ping_latency_seconds", &link);
    assert!(
        matches!(hist.first().map(|s| &s.value), Some(Value::Histogram(b)) if b.iter().any(|c| c.less_than.is_infinite())),
        "{hist:?}"
    );

    // The process and its queues.
    let rss = one(
        &scrape,
        "hyperfabric_process_resident_memory_bytes",
        &[node],
    );
    assert!(rss > (1 << 20) as f64, "{rss}");
    assert!(one(&scrape, "hyperfabric_process_cpu_seconds_total", &[node]) >= 0.0);
    let out_q = one(
        &scrape,
        "hyperfabric_queue_depth",
        &[node, ("queue", "outgoing_transfers")],
    );
    assert_eq!(out_q, 0.0);

    // JSON twin and unknown paths.
    let (status, _, json) = get(&metrics_addr, "/metrics.json");
    assert!(status.contains("200"));
    let v: serde_json::Value = serde_json::from_str(&json).expect("json metrics");
    assert_eq!(v["node"], "node-b");
    assert_eq!(v["totals"]["transfers_received"], 1);
    let (status, _, _) = get(&metrics_addr, "/nope");
    assert!(status.contains("404"), "{status}");
}
