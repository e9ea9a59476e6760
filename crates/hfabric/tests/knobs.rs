//! Knobs seen from outside a served node: its threads' CPU sets in /proc, and the
//! effective-configuration report of its ready line (`serve --json`).

mod support;
use support::launch::Member;
use support::{
    fabric_file, hfabric, knob, random_file, same_contents, status_kb, thread_cpus, thread_stats,
    with_node_b_lines, Server,
};

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
    send_file(cfg, server, &src);
}

/// Sends `src` from node-a to `server` (node-b).
fn send_file(cfg: &std::path::Path, server: &Server, src: &std::path::Path) {
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

/// The transparent-huge-page mode of this machine (`madvise` of `always [madvise] never`).
fn thp_mode() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let open = text.find('[')?;
    let close = text[open..].find(']')? + open;
    Some(text[open + 1..close].to_string())
}

/// Whether any mapping of `pid` carries the `hg` (MADV_HUGEPAGE) flag in its smaps.
fn has_huge_page_advice(pid: u32) -> bool {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    smaps
        .lines()
        .filter_map(|l| l.strip_prefix("VmFlags:"))
        .any(|flags| flags.split_whitespace().any(|f| f == "hg"))
}

/// Checks the node's threads against the realtime knob's outcome (stat field 40 is the
/// real-time priority, 41 the policy: 2 = SCHED_RR).
fn check_realtime(server: &Server) {
    let rt = knob(&server.ready, "nodes[1].metadata.realtime");
    let detail = rt["detail"].as_str().unwrap();
    match rt["effect"].as_str() {
        Some("applied") => {
            assert!(detail.contains("SCHED_RR priority 1"), "{detail}");
            for fields in thread_stats(server.child.id()) {
                assert_eq!((fields[37].as_str(), fields[38].as_str()), ("1", "2"));
            }
        }
        Some("fallback") => assert!(detail.contains("CAP_SYS_NICE"), "{detail}"),
        other => panic!("realtime: {other:?} {rt}"),
    }
    let prio = knob(&server.ready, "nodes[1].metadata.realtime_priority");
    assert_eq!(prio["effect"], rt["effect"]);
}

#[test]
fn priority_scheduling_locking_and_huge_pages_act_on_the_served_node() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    with_node_b_lines(
        &cfg,
        "metadata = { nice = 7, realtime = \"rr\", realtime_priority = 1, mlock = true, \
         huge_pages = true }",
    );
    let server = Server::start_with(&cfg, "node-b", None, &["--read-all".into()]);
    // 3 MB: assembled in a receive-pool buffer (over 2 MiB: advised huge pages), kept.
    let src = dir.path().join("three.bin");
    random_file(&src, 3_000_000, 2);
    send_file(&cfg, &server, &src);
    let pid = server.child.id();
    let nice = knob(&server.ready, "nodes[1].metadata.nice");
    assert_eq!(nice["effect"], "applied", "{nice}");
    for fields in thread_stats(pid) {
        assert_eq!(fields[16], "7", "stat field 19 (nice) of every thread");
    }
    check_realtime(&server);
    let lock = knob(&server.ready, "nodes[1].metadata.mlock");
    match lock["effect"].as_str() {
        Some("applied") => assert!(status_kb(pid, "VmLck") > 0, "{lock}"),
        Some("fallback") => assert!(lock["detail"].as_str().unwrap().contains("RLIMIT_MEMLOCK")),
        other => panic!("mlock: {other:?} {lock}"),
    }
    let huge = knob(&server.ready, "nodes[1].metadata.huge_pages");
    match thp_mode().as_deref() {
        None | Some("never") => assert_eq!(huge["effect"], "refused", "{huge}"),
        Some(_) => {
            assert_eq!(huge["effect"], "applied", "{huge}");
            assert!(
                has_huge_page_advice(pid),
                "no MADV_HUGEPAGE mapping after a 3 MB receive"
            );
        }
    }
}

#[test]
fn without_the_privileges_priority_scheduling_and_locking_fall_back_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    with_node_b_lines(
        &cfg,
        "metadata = { nice = -5, realtime = \"fifo\", mlock = true }",
    );
    let server = Server::start_unprivileged(&cfg, "node-b");
    let pid = server.child.id();
    let own_nice = std::fs::read_to_string("/proc/self/stat").unwrap();
    let own_nice = own_nice
        .rsplit_once(") ")
        .unwrap()
        .1
        .split_whitespace()
        .nth(16)
        .unwrap()
        .to_string();
    let cases = [
        ("nice", "RLIMIT_NICE = 0"),
        ("realtime", "RLIMIT_RTPRIO = 0"),
        ("mlock", "RLIMIT_MEMLOCK = 65536 bytes"),
    ];
    for (key, numbers) in cases {
        let k = knob(&server.ready, &format!("nodes[1].metadata.{key}"));
        assert_eq!(k["effect"], "fallback", "{k}");
        let detail = k["detail"].as_str().unwrap();
        assert!(detail.contains(numbers), "{key}: {detail}");
    }
    for fields in thread_stats(pid) {
        assert_eq!(fields[16], own_nice, "nice unchanged");
        assert_eq!(fields[38], "0", "policy SCHED_OTHER");
    }
    assert_eq!(status_kb(pid, "VmLck"), 0);
    assert!(
        server.log_text().contains("RLIMIT_MEMLOCK"),
        "{}",
        server.log_text()
    );
}

/// `send --zero-copy` selects how a file is read: copied from a mapping (the default) or
/// chunk by chunk with pread; the report says which, and the bytes arrive the same. A file
/// of one chunk goes from its mapping into a shared-memory slot.
#[test]
fn zero_copy_selects_a_mapping_or_pread_and_the_report_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let store = dir.path().join("store");
    let server = Server::start(&cfg, "node-b", Some(&store));
    let cases = [
        ("mapped.bin", (5 << 20) + 3, None, "mmap"),
        ("slot.bin", 256 << 10, None, "mmap"),
        ("read.bin", (5 << 20) + 3, Some("false"), "pread"),
        ("mapped2.bin", 70_000, Some("true"), "mmap"),
    ];
    for (name, len, flag, want) in cases {
        let src = dir.path().join(name);
        random_file(&src, len, 7);
        let peer = server.peer_arg("node-b");
        let mut args = vec!["send", "--json", "--config", cfg.to_str().unwrap()];
        args.extend(["--peer", &peer, "--from", "node-a", "--to", "node-b"]);
        args.extend(["--file", src.to_str().unwrap()]);
        if let Some(f) = flag {
            args.extend(["--zero-copy", f]);
        }
        let out = hfabric(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["file_read"], want, "{name}: {r}");
        assert!(same_contents(&src, &store.join(name)), "{name} differs");
    }
}

/// `history` lines of predictor samples for node-a -> node-b (`n` of them).
fn history_lines(n: usize) -> String {
    (0..n)
        .map(|i| {
            let bw = [1.0, 10.0, 100.0][i % 3];
            let lat = 500.0 + 100.0 * i as f64;
            let observed = lat + 2e6 / bw;
            format!("{{\"from\":\"node-a\",\"to\":\"node-b\",\"latency_ns\":{lat},\"bandwidth_gbps\":{bw},\"utilisation\":0.1,\"loss\":0.0,\"hour\":{},\"observed_latency_ns\":{observed}}}\n", i % 24)
        })
        .collect()
}

/// A running node is trained from `[routing] history` at start and again at each SIGHUP,
/// and says what its predictor holds (ready line, `predictor_trained` event); a bad line
/// at SIGHUP is reported, leaves the model as it was, and the node keeps serving.
#[test]
fn sighup_trains_a_running_node_from_its_history_and_reports_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += "\n[routing]\nhistory = \"history.jsonl\"\n";
    std::fs::write(&cfg, text).unwrap();
    let history = dir.path().join("history.jsonl");
    std::fs::write(&history, history_lines(20)).unwrap();
    let c = cfg.to_str().unwrap();
    let args = ["--config", c, "--node", "node-b", "--listen", "127.0.0.1:0"];
    let mut node = Member::serve("node-b", &[], &[], &args);
    let ready = node.wait_event("the ready line", |v| v["event"] == "listening");
    assert_eq!(ready["predictor"]["samples"], 20, "{ready}");
    assert_eq!(ready["predictor"]["trained"], true, "{ready}");
    let hup = |node: &Member| {
        let pid = node.child.id().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status();
        assert!(ok.unwrap().success());
    };
    // Ten lines appended: only they are learned (the first 20 are not learned twice).
    std::fs::write(&history, history_lines(30)).unwrap();
    hup(&node);
    let ev = node.wait_event("predictor_trained", |v| v["event"] == "predictor_trained");
    assert_eq!(ev["lines"], 10, "{ev}");
    assert_eq!(ev["from_byte"], history_lines(20).len(), "{ev}");
    assert_eq!(ev["started_over"], false, "{ev}");
    assert_eq!(ev["predictor"]["samples"], 30, "{ev}");
    let weights = ev["predictor"]["weights"].as_array().expect("weights");
    assert_eq!(weights.len(), 9, "{ev}");
    assert_ne!(
        ev["predictor"]["weights"], ready["predictor"]["weights"],
        "{ev}"
    );
    std::fs::write(&history, history_lines(5) + "{\"from\": 1}\n").unwrap();
    hup(&node);
    let failed = node.wait_event("predictor_training_failed", |v| {
        v["event"] == "predictor_training_failed"
    });
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("routing.history") && error.contains("line 6"),
        "{failed}"
    );
    assert_eq!(failed["predictor"]["samples"], 30, "{failed}");
    // Rotated (shorter than what was learned): learned from its start, and said so; a
    // SIGHUP with nothing appended learns nothing.
    std::fs::write(&history, history_lines(3)).unwrap();
    // (wait_event finds the first event that matches: each one is told by its figures.)
    let three = history_lines(3).len();
    for (lines, from, again) in [(3, 0, true), (0, three, false)] {
        hup(&node);
        let what = format!("predictor_trained with {lines} lines and 33 samples");
        let ev = node.wait_event(&what, |v| {
            v["event"] == "predictor_trained"
                && v["lines"] == lines
                && v["predictor"]["samples"] == 33
        });
        assert_eq!(ev["started_over"], again, "{ev}");
        assert_eq!(ev["from_byte"], from, "{ev}");
    }
    assert!(
        matches!(node.child.try_wait(), Ok(None)),
        "the node stopped"
    );
}
