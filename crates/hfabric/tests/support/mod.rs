//! Real processes on loopback: `hfabric serve` children on ephemeral ports, temp dirs.
#![allow(dead_code)]

pub mod etcd;
pub mod launch;
pub mod netns;
pub mod pki;
pub mod raw;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hfabric");

/// A two-node fabric file in a temp dir; node-b's real address is learnt when it starts.
pub fn fabric_file(dir: &Path, profile: &str) -> PathBuf {
    let text = format!(
        r#"
[fabric]
name = "test"
profile = "{profile}"
send_timeout_ms = 5000
connect_timeout_ms = 1000
handshake_timeout_ms = 1000

[[nodes]]
id = "node-a"
hardware = "cpu-cluster"
listen = "127.0.0.1:0"

[[nodes]]
id = "node-b"
hardware = "cpu-cluster"
listen = "127.0.0.1:1"

[[links]]
between = ["node-a", "node-b"]
bandwidth_gbps = 100
latency_ns = 1000
"#
    );
    let path = dir.join("fabric.toml");
    std::fs::write(&path, text).expect("write fabric file");
    path
}

/// The two-node test fabric with `extra` lines under `[fabric]`, written as `<name>.toml`.
#[allow(dead_code)] // not every test binary that includes support uses it
pub fn fabric_with(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let base = std::fs::read_to_string(fabric_file(dir, "high_throughput")).unwrap();
    let text = base.replacen("name = \"test\"", &format!("name = \"test\"\n{extra}"), 1);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `hfabric serve`; killed on drop. Its stderr (the log) goes to a file.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    /// The ready line (`{"event":"listening",...}`), e.g. for the `metrics` address.
    pub ready: serde_json::Value,
}

impl Server {
    pub fn start(config: &Path, node: &str, store: Option<&Path>) -> Server {
        Server::start_with(config, node, store, &[])
    }

    /// Like [`Server::start`], with extra arguments (e.g. `--peer dst=ADDR` for relays).
    pub fn start_with(config: &Path, node: &str, store: Option<&Path>, extra: &[String]) -> Server {
        Server::start_in(Command::new(BIN), config, node, store, extra)
    }

    /// Like [`Server::start_with`], with environment variables for the child only.
    pub fn start_env(
        config: &Path,
        node: &str,
        store: Option<&Path>,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.envs(env.iter().copied());
        Server::start_in(cmd, config, node, store, extra)
    }

    /// Like [`Server::start_with`], with files the process writes capped at `max_bytes`
    /// (`ulimit -f`, SIGXFSZ ignored): writes past it fail with EFBIG, as on a full disk.
    pub fn start_with_file_limit(
        config: &Path,
        node: &str,
        store: Option<&Path>,
        max_bytes: u64,
    ) -> Server {
        let mut cmd = Command::new("bash");
        let script = format!(
            "trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"",
            max_bytes / 1024
        );
        cmd.args(["-c", &script, BIN]);
        Server::start_in(cmd, config, node, store, &[])
    }

    /// Like [`Server::start`], without CAP_IPC_LOCK and CAP_SYS_NICE (dropped by `setpriv`
    /// when this test runs as root) and with RLIMIT_MEMLOCK = 64 KiB, RLIMIT_RTPRIO = 0 and
    /// RLIMIT_NICE = 0: what an ordinary user gets.
    pub fn start_unprivileged(config: &Path, node: &str) -> Server {
        let drop = "setpriv --bounding-set=-ipc_lock,-sys_nice";
        let script = format!(
            "ulimit -l 64 && ulimit -r 0 && ulimit -e 0 || exit 97; \
             if {drop} true 2>/dev/null; then exec {drop} \"$0\" \"$@\"; fi; exec \"$0\" \"$@\""
        );
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script, BIN]);
        Server::start_in(cmd, config, node, None, &[])
    }

    /// Starts `cmd` (which runs `hfabric` with the arguments added here) as a serving node.
    fn start_in(
        mut cmd: Command,
        config: &Path,
        node: &str,
        store: Option<&Path>,
        extra: &[String],
    ) -> Server {
        let log = config.with_file_name(format!("{node}-{}.log", std::process::id()));
        cmd.args([
            "serve",
            "--json",
            "--node",
            node,
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(config);
        if let Some(dir) = store {
            cmd.arg("--store").arg(dir);
        }
        cmd.args(extra);
        cmd.env("RUST_LOG", "info");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn hfabric serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("ready line {line:?}: {e}"));
        let addr = v["addr"]
            .as_str()
            .expect("addr")
            .parse()
            .expect("socket address");
        Server {
            child,
            addr,
            log,
            ready: v,
        }
    }

    pub fn peer_arg(&self, node: &str) -> String {
        format!("{node}={}", self.addr)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (the server logs asynchronously).
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Peak resident memory (VmHWM) of the server process.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .expect("VmHWM");
        kb * 1024
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stops a served node: SIGTERM first (the node closes its links and removes its
/// shared-memory segments), SIGKILL if it is still there after 3 s.
pub fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A plain (no secret) hello frame from `node` of `fabric` to node-b, as a raw client sends it.
pub fn hello_frame(node: &str, fabric: &str) -> Vec<u8> {
    use hyperfabric::wire::{self, FrameKind, Header, Hello};
    let mut h = Header::new(FrameKind::Hello);
    h.src = wire::node_key(node);
    h.dst = wire::node_key("node-b");
    let hello = Hello {
        fabric: fabric.into(),
        node: node.into(),
        nonce: 1,
        auth: None,
        identity: None,
    };
    wire::encode_frame(&h, &wire::encode_hello(&hello)).expect("a hello fits in a frame")
}

/// The JSON report on stdout of an hfabric run that must have succeeded (its log, stderr,
/// in the panic when it did not).
pub fn report_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "hfabric failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report on stdout")
}

/// `hfabric CMD --config CFG --peer PEER --from FROM REST…`: a command of node `from`
/// (not served) against the node that `peer` (`Server::peer_arg`) names.
pub fn hfabric_from(cmd: &str, cfg: &Path, peer: &str, from: &str, rest: &[&str]) -> Output {
    let cfg = cfg.to_str().expect("a UTF-8 path");
    let mut args = vec![cmd, "--config", cfg, "--peer", peer, "--from", from];
    args.extend(rest);
    hfabric(&args)
}

pub fn hfabric(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hfabric")
}

/// Writes `len` pseudo-random bytes (seeded) to `path` without holding them all in memory.
pub fn random_file(path: &Path, len: u64, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut left = len;
    let mut block = vec![0u8; 1 << 16];
    while left > 0 {
        for b in block.chunks_mut(8) {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let v = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            b.copy_from_slice(&v[..b.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).expect("write");
        left -= n as u64;
    }
    f.flush().expect("flush");
}

/// Byte-for-byte comparison of two files, streamed.
pub fn same_contents(a: &Path, b: &Path) -> bool {
    let (Ok(fa), Ok(fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut ra, mut rb) = (
        BufReader::with_capacity(1 << 20, fa),
        BufReader::with_capacity(1 << 20, fb),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut ra, &mut ba);
        let nb = read_full(&mut rb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => panic!("read: {e}"),
        }
    }
    n
}

/// A fabric file of four cpu-cluster nodes with placeholder addresses (real ones are given with
/// --peer when the nodes start) and the given links.
fn four_node_file(dir: &Path, name: &str, header: &str, links: &[(&str, &str)]) -> PathBuf {
    let mut text = format!(
        "[fabric]\nname = \"{name}\"\n{header}send_timeout_ms = 10000\nconnect_timeout_ms = 1000\n"
    );
    for (i, id) in ["src", "relay-1", "relay-2", "dst"].iter().enumerate() {
        text += &format!(
            "\n[[nodes]]\nid = \"{id}\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:{}\"\n",
            i + 1
        );
    }
    for (a, b) in links {
        text += &format!(
            "\n[[links]]\nbetween = [\"{a}\", \"{b}\"]\nbandwidth_gbps = 100\nlatency_ns = 1000\n"
        );
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write fabric file");
    path
}

/// A four-node diamond: src -> {relay-1, relay-2} -> dst, plus a chain relay-1 -> relay-2
/// for two-relay routes.
pub fn diamond_file(dir: &Path) -> PathBuf {
    let links = [
        ("src", "relay-1"),
        ("src", "relay-2"),
        ("relay-1", "dst"),
        ("relay-2", "dst"),
        ("relay-1", "relay-2"),
    ];
    four_node_file(dir, "diamond", "profile = \"high_throughput\"\n", &links)
}

/// The files of a store directory, sorted, without its journal of completed transfers
/// (`.hf-done`); empty when the directory does not exist.
pub fn stored_files(store: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".hf-done")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Bytes in the temporary (.part) files of a store directory: how far a transfer got.
pub fn partial_bytes(store: &Path) -> u64 {
    std::fs::read_dir(store)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A chain src - relay-1 - relay-2 - dst: the only route crosses both relays.
pub fn chain_file(dir: &Path) -> PathBuf {
    four_node_file(
        dir,
        "chain",
        "",
        &[
            ("src", "relay-1"),
            ("relay-1", "relay-2"),
            ("relay-2", "dst"),
        ],
    )
}

/// Adds `lines` (TOML `key = value` lines) to node-b of a [`fabric_file`].
pub fn with_node_b_lines(path: &Path, lines: &str) {
    let text = std::fs::read_to_string(path).expect("read fabric file");
    let anchor = "listen = \"127.0.0.1:1\"";
    assert!(text.contains(anchor), "not a fabric_file: {text}");
    let text = text.replacen(anchor, &format!("{anchor}\n{lines}"), 1);
    std::fs::write(path, text).expect("write fabric file");
}

/// `Cpus_allowed_list` of every thread of process `pid`, as `(thread name, list)`.
pub fn thread_cpus(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let Ok(status) = std::fs::read_to_string(entry.expect("task").path().join("status")) else {
            continue; // a thread that ended meanwhile
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        out.push((field("Name:"), field("Cpus_allowed_list:")));
    }
    out
}

/// The entry for `field` in a ready line's `effective_config` (panics if absent).
pub fn knob<'a>(ready: &'a serde_json::Value, field: &str) -> &'a serde_json::Value {
    ready["effective_config"]["knobs"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["field"] == field))
        .unwrap_or_else(|| panic!("no {field} in {ready}"))
}

/// The fields of `/proc/PID/task/TID/stat` of every thread of `pid`, numbered as in
/// proc(5): `fields[0]` is field 3 (state), so field N is `fields[N - 3]`.
pub fn thread_stats(pid: u32) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let Ok(stat) = std::fs::read_to_string(entry.expect("task").path().join("stat")) else {
            continue; // a thread that ended meanwhile
        };
        // The name (field 2) is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
        out.push(rest.split_whitespace().map(String::from).collect());
    }
    out
}

/// A `kB` line of `/proc/PID/status` (`VmLck`), in kB.
pub fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| {
            v.trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

/// GET `path` from a node's `--metrics` endpoint (HTTP/1.0) and parse the body as JSON.
pub fn metrics_json(addr: &str, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("response");
    let (_, body) = raw.split_once("\r\n\r\n").expect("headers end");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}
