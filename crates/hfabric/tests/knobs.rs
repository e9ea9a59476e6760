//! Knobs seen from outside a served node: its threads' CPU sets in /proc, and the
//! effective-configuration report of its ready line (`serve --json`).

mod support;
use support::{fabric_file, hfabric, knob, random_file, thread_cpus, with_node_b_lines, Server};

/// The CPUs this test may use (`Cpus_allowed_list` of this process), e.g. "0-1".
fn own_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    hyperfabric::node::parse_cpu_list(list.trim()).expect("a CPU list")
}

/// Sends one small file to `server` so that connection threads exist too.
fn send_one(cfg: &std::path::Path, server: &Server, dir: &std::path::Path) {
    let src = dir.join("one.bin");
    random_file(&src, 100_000, 1);
    let peer = server.peer_arg("node-b");
    let args = ["send", "--config", cfg.to_str().unwrap(), "--peer", &peer];
    let tail = [
        "--from",
        "node-a",
        "--to",
        "node-b",
        "--file",
        src.to_str().unwrap(),
    ];
    let out = hfabric(&[&args[..], &tail[..]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_files_cpu_affinity_and_metadata_act_on_the_served_node() {
    let cpu = *own_cpus().last().expect("one CPU at least");
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let meta = format!(
        "metadata = {{ cpu_affinity = [{cpu}], tcp_window_size = 16777216, \
         interrupt_coalescing = true, mtu_size = 1500, interface_type = \"ethernet\" }}"
    );
    with_node_b_lines(&cfg, &meta);
    let server = Server::start(&cfg, "node-b", None);
    send_one(&cfg, &server, dir.path());
    let threads = thread_cpus(server.child.id());
    assert!(threads.len() >= 3, "{threads:?}");
    for (name, cpus) in &threads {
        assert_eq!(cpus, &cpu.to_string(), "thread {name}");
    }
    let affinity = knob(&server.ready, "nodes[1].metadata.cpu_affinity");
    assert_eq!(affinity["effect"], "applied", "{affinity}");
    let window = knob(&server.ready, "nodes[1].metadata.tcp_window_size");
    assert_eq!(window["value"], 16777216);
    let granted = window["detail"].as_str().unwrap();
    match window["effect"].as_str() {
        Some("applied") => assert!(
            granted.contains("SO_SNDBUF/SO_RCVBUF = 16777216"),
            "{granted}"
        ),
        Some("fallback") => assert!(granted.contains("wmem_max"), "{granted}"),
        other => panic!("tcp_window_size: {other:?} {window}"),
    }
    let coalescing = knob(&server.ready, "nodes[1].metadata.interrupt_coalescing");
    assert_eq!(coalescing["effect"], "refused");
    assert!(coalescing["detail"].as_str().unwrap().contains("ethtool"));
    let mtu = knob(&server.ready, "nodes[1].metadata.mtu_size");
    assert!(
        mtu["detail"]
            .as_str()
            .unwrap()
            .contains("TCP_MAXSEG = 1460"),
        "{mtu}"
    );
    assert_eq!(
        knob(&server.ready, "nodes[1].metadata.interface_type")["effect"],
        "describes"
    );
    assert_eq!(knob(&server.ready, "fabric.name")["source"], "file");
    assert_eq!(
        knob(&server.ready, "fabric.buffer_pool_buffers")["source"],
        "profile"
    );
    assert!(
        server.log_text().contains("interrupt_coalescing"),
        "{}",
        server.log_text()
    );
}

#[test]
fn pin_takes_a_set_and_wins_over_the_file() {
    let cpus = own_cpus();
    let list = cpus
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    with_node_b_lines(
        &cfg,
        &format!("metadata = {{ cpu_affinity = [{}] }}", cpus[0]),
    );
    let server = Server::start_with(&cfg, "node-b", None, &["--pin".into(), list]);
    send_one(&cfg, &server, dir.path());
    let expected = match cpus.as_slice() {
        [one] => one.to_string(),
        [first, .., last] if last - first + 1 == cpus.len() => format!("{first}-{last}"),
        _ => cpus
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
    };
    for (name, got) in thread_cpus(server.child.id()) {
        assert_eq!(got, expected, "thread {name}");
    }
    let affinity = knob(&server.ready, "nodes[1].metadata.cpu_affinity");
    assert_eq!(affinity["source"], "api");
    assert_eq!(affinity["value"], serde_json::json!(cpus));
}

#[test]
fn an_unavailable_cpu_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    with_node_b_lines(&cfg, "metadata = { cpu_affinity = [1000] }");
    let server = Server::start(&cfg, "node-b", None);
    let affinity = knob(&server.ready, "nodes[1].metadata.cpu_affinity");
    assert_eq!(affinity["effect"], "refused");
    assert!(
        affinity["detail"]
            .as_str()
            .unwrap()
            .contains("is available to this process"),
        "{affinity}"
    );
    let out = hfabric(&[
        "serve",
        "--node",
        "node-b",
        "--config",
        cfg.to_str().unwrap(),
        "--pin",
        "3-1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pin"));
}
