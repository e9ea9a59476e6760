//! A raw client speaking the wire protocol by hand: what an attacker (or a broken peer)
//! sends, frame by frame, to a real `hfabric serve`.
#![allow(dead_code)]

use hyperfabric::wire::{self, FrameKind, Header};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A connection that passed the plain (no secret) handshake as `node`.
pub struct RawMember {
    pub stream: TcpStream,
    pub me: String,
}

impl RawMember {
    /// Connects, says hello as `node` of fabric `test` and reads the Welcome.
    pub fn join(addr: SocketAddr, node: &str) -> RawMember {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .write_all(&super::hello_frame(node, "test"))
            .expect("hello");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let h = read_frame(&mut stream).expect("an answer to the hello");
        assert_eq!(
            h.0.kind,
            FrameKind::Welcome,
            "{:?}",
            String::from_utf8_lossy(&h.1)
        );
        RawMember {
            stream,
            me: node.to_owned(),
        }
    }

    /// Sends one chunk of transfer `id` (of `total` bytes) to node-b.
    pub fn data(&mut self, id: u64, total: u64, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        let mut d = Header::new(FrameKind::Data);
        d.src = wire::node_key(&self.me);
        d.dst = wire::node_key("node-b");
        d.transfer_id = id;
        d.offset = offset;
        d.aux = total;
        self.stream
            .write_all(&wire::encode_frame(&d, bytes).expect("a chunk fits"))
    }
}

/// Reads one whole frame (header and payload) from a raw socket.
pub fn read_frame(s: &mut TcpStream) -> std::io::Result<(Header, Vec<u8>)> {
    let mut raw = [0u8; wire::HEADER_LEN];
    s.read_exact(&mut raw)?;
    let h = Header::decode(&raw, wire::Limits::default())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut body = vec![0u8; h.payload_len as usize];
    s.read_exact(&mut body)?;
    Ok((h, body))
}

/// Current resident memory (VmRSS) of process `pid`.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Adds lines to the `[fabric]` table and a third node `node-c` (linked to node-b) to a
/// fabric file made by [`super::fabric_file`].
pub fn extend_fabric(cfg: &std::path::Path, fabric_lines: &str) {
    let text = std::fs::read_to_string(cfg).expect("fabric file");
    let mut text = text.replacen("[fabric]\n", &format!("[fabric]\n{fabric_lines}\n"), 1);
    text += "\n[[nodes]]\nid = \"node-c\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:2\"\n\
             \n[[links]]\nbetween = [\"node-c\", \"node-b\"]\nbandwidth_gbps = 100\nlatency_ns = 1000\n";
    std::fs::write(cfg, text).expect("write fabric file");
}

/// `hfabric send --json` of `file` from `from` to node-b at `server`; panics unless it
/// succeeds. Returns the JSON report.
pub fn send_file(
    cfg: &std::path::Path,
    server: &super::Server,
    from: &str,
    file: &std::path::Path,
) -> serde_json::Value {
    let peer = server.peer_arg("node-b");
    let out = std::process::Command::new(super::BIN)
        .args(["send", "--json", "--config"])
        .arg(cfg)
        .args(["--peer", &peer, "--from", from, "--to", "node-b", "--file"])
        .arg(file)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run hfabric send");
    assert!(
        out.status.success(),
        "send from {from} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}
