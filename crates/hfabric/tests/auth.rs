//! Membership and encryption between real processes: the fabric secret (HMAC challenge-
//! response in the handshake) and TLS on TCP links. Every refusal is checked on both sides:
//! the dialer's error and the acceptor's log say why, and nothing is delivered.

mod support;

use hyperfabric::wire::{self, FrameKind, Header, Hello, HelloAuth};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::pki::{pki, tls_lines};
use support::*;

const WAIT: Duration = Duration::from_secs(5);

fn keygen(path: &Path) {
    let out = hfabric(&["keygen", "--json", "--out", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["bytes"], 32);
    let meta = std::fs::metadata(path).unwrap();
    assert_eq!(meta.len(), 32);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // An existing key is never overwritten.
    assert!(!hfabric(&["keygen", "--out", path.to_str().unwrap()])
        .status
        .success());
}

/// `hfabric send` of `file` from node-a to the server; returns (success, stderr).
fn send(cfg: &Path, server: &Server, file: &Path, transport: &str) -> (bool, String) {
    let out = hfabric(&[
        "send",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--peer",
        &server.peer_arg("node-b"),
        "--transport",
        transport,
        "--from",
        "node-a",
        "--to",
        "node-b",
        "--file",
        file.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err)
}

/// Sends from a misconfigured node-a and checks both sides name `why`.
fn refused(cfg: &Path, server: &Server, file: &Path, transport: &str, client: &str, log: &str) {
    let (ok, err) = send(cfg, server, file, transport);
    assert!(!ok, "send with {} succeeded", cfg.display());
    assert!(err.contains(client), "client said: {err}");
    assert!(
        server.wait_log(log, WAIT),
        "server log lacks {log:?}:\n{}",
        server.log_text()
    );
}

#[test]
fn right_secret_transfers_and_wrong_or_missing_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("fabric.key"));
    keygen(&dir.path().join("other.key"));
    let good = fabric_with(dir.path(), "good", "secret_file = \"fabric.key\"");
    let wrong = fabric_with(dir.path(), "wrong", "secret_file = \"other.key\"");
    let none = fabric_with(dir.path(), "none", "");
    let missing = fabric_with(dir.path(), "missing", "secret_file = \"nowhere.key\"");
    let store = dir.path().join("store");
    let server = Server::start(&good, "node-b", Some(&store));
    let src = dir.path().join("payload.bin");
    random_file(&src, (1 << 20) + 3, 7);
    let (ok, err) = send(&good, &server, &src, "auto");
    assert!(ok, "{err}");
    assert!(same_contents(&src, &store.join("payload.bin")));
    std::fs::remove_file(store.join("payload.bin")).unwrap();

    refused(
        &wrong,
        &server,
        &src,
        "auto",
        "wrong proof of the fabric secret",
        "refused our proof",
    );
    refused(
        &none,
        &server,
        &src,
        "auto",
        "sent no proof of the fabric secret",
        "sent no proof",
    );
    // A node without the file does not start at all, and says which field and file.
    let (ok, err) = send(&missing, &server, &src, "auto");
    assert!(!ok);
    assert!(
        err.contains("fabric.secret_file") && err.contains("nowhere.key"),
        "{err}"
    );

    // A server without a secret refuses a dialer that has one, and says so.
    let open_store = dir.path().join("open-store");
    let open = Server::start(&none, "node-b", Some(&open_store));
    refused(
        &good,
        &open,
        &src,
        "auto",
        "this node has none",
        "this node has none",
    );
    assert!(stored_files(&store).is_empty() && stored_files(&open_store).is_empty());
}

/// Captures the hello a real node-a sends, by posing as node-b.
fn capture_hello(cfg: &Path) -> Vec<u8> {
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = format!("node-b={}", fake.local_addr().unwrap());
    let mut child = Command::new(BIN)
        .args(["ping", "--count", "1", "--config", cfg.to_str().unwrap()])
        .args(["--peer", &peer, "--from", "node-a", "node-b"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Never wait forever: a child that fails to start would leave accept() blocked.
    fake.set_nonblocking(true).unwrap();
    let until = std::time::Instant::now() + WAIT;
    let mut s = loop {
        match fake.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(std::time::Instant::now() < until, "node-a never dialed");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut frame = vec![0u8; wire::HEADER_LEN];
    s.read_exact(&mut frame).unwrap();
    let h = Header::decode(frame[..].try_into().unwrap(), wire::Limits::default()).unwrap();
    frame.resize(wire::HEADER_LEN + h.payload_len as usize, 0);
    s.read_exact(&mut frame[wire::HEADER_LEN..]).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    frame
}

/// Reads frames until the server closes; returns them.
fn frames_until_closed(s: &mut TcpStream) -> Vec<(Header, Vec<u8>)> {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while let Ok((h, body, used)) = wire::decode_frame(rest, wire::Limits::default()) {
        out.push((h, body.to_vec()));
        rest = &rest[used..];
    }
    out
}

#[test]
fn a_replayed_hello_without_the_key_gets_nothing_through() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("fabric.key"));
    let cfg = fabric_with(dir.path(), "good", "secret_file = \"fabric.key\"");
    let hello = capture_hello(&cfg);
    let (h, body, _) = wire::decode_frame(&hello, wire::Limits::default()).unwrap();
    assert_eq!(h.kind, FrameKind::Hello);
    let parsed = wire::decode_hello(FrameKind::Hello, body).unwrap();
    assert!(parsed.auth.is_some(), "the hello carries a challenge");
    let raw = std::fs::read(dir.path().join("fabric.key")).unwrap();
    assert!(
        !hello.windows(raw.len()).any(|w| w == raw),
        "the secret is on the wire"
    );

    let server = Server::start(&cfg, "node-b", None);
    // Replay, then reflect the server's own proof back as ours.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(&hello).unwrap();
    let mut head = [0u8; wire::HEADER_LEN];
    s.read_exact(&mut head).unwrap();
    let wh = Header::decode(&head, wire::Limits::default()).unwrap();
    let mut wb = vec![0u8; wh.payload_len as usize];
    s.read_exact(&mut wb).unwrap();
    let welcome = wire::decode_hello(FrameKind::Welcome, &wb).unwrap();
    let Some(HelloAuth {
        proof: Some(theirs),
        ..
    }) = welcome.auth
    else {
        panic!("welcome without a proof: {welcome:?}");
    };
    let mut auth = Header::new(FrameKind::Auth);
    auth.src = h.src;
    s.write_all(&wire::encode_frame(&auth, &theirs).unwrap())
        .unwrap();
    let rest = frames_until_closed(&mut s);
    assert!(
        matches!(rest.first(), Some((h, _)) if h.kind == FrameKind::Reject),
        "{rest:?}"
    );
    assert!(
        server.wait_log("wrong proof of the fabric secret", WAIT),
        "{}",
        server.log_text()
    );

    // Replay, then skip the proof and send data straight away.
    let mut s = TcpStream::connect(server.addr).unwrap();
    let mut data = Header::new(FrameKind::Data);
    (data.src, data.dst, data.aux) = (h.src, h.dst, 4);
    let mut bytes = hello.clone();
    bytes.extend(wire::encode_frame(&data, b"evil").unwrap());
    s.write_all(&bytes).unwrap();
    let got = frames_until_closed(&mut s);
    assert!(
        got.iter().any(|(h, _)| h.kind == FrameKind::Reject),
        "{got:?}"
    );
    assert!(
        server.wait_log("expected Auth from `node-a`, got Data", WAIT),
        "{}",
        server.log_text()
    );
}

#[test]
fn tls_carries_transfers_and_refuses_plain_peers_and_foreign_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("fabric.key"));
    let ours = pki(d, "ours", &["node-a", "node-b"]);
    let foreign = pki(d, "foreign", &["node-a", "node-b"]);
    let good = fabric_with(d, "good", &tls_lines(&ours, &ours));
    let store = d.join("store");
    let server = Server::start(&good, "node-b", Some(&store));
    let src = d.join("payload.bin");
    random_file(&src, (3 << 20) + 11, 3);
    let (ok, err) = send(&good, &server, &src, "tcp");
    assert!(ok, "{err}");
    assert!(same_contents(&src, &store.join("payload.bin")));
    std::fs::remove_file(store.join("payload.bin")).unwrap();

    // A raw plain-TCP hello gets a plain Reject that says why.
    let mut s = TcpStream::connect(server.addr).unwrap();
    let mut h = Header::new(FrameKind::Hello);
    h.src = wire::node_key("node-a");
    let hello = Hello {
        fabric: "test".into(),
        node: "node-a".into(),
        nonce: 1,
        auth: None,
        identity: None,
    };
    s.write_all(&wire::encode_frame(&h, &wire::encode_hello(&hello)).unwrap())
        .unwrap();
    let got = frames_until_closed(&mut s);
    assert!(
        matches!(got.first(), Some((h, b)) if h.kind == FrameKind::Reject && String::from_utf8_lossy(b).contains("requires TLS")),
        "{got:?}"
    );
    // The same through hfabric (a node without encryption_enabled).
    let plain = fabric_with(d, "plain", "secret_file = \"fabric.key\"");
    refused(&plain, &server, &src, "tcp", "requires TLS", "plain TCP");
    // A client whose certificate another CA signed (it trusts ours, so only the server objects).
    let theirs = fabric_with(d, "theirs", &tls_lines(&foreign, &ours));
    refused(
        &theirs,
        &server,
        &src,
        "tcp",
        "refused the TLS session",
        "TLS handshake failed",
    );
    // A client that trusts only another CA refuses the server itself.
    let distrust = fabric_with(d, "distrust", &tls_lines(&ours, &foreign));
    let (ok, err) = send(&distrust, &server, &src, "tcp");
    assert!(!ok && err.contains("invalid peer certificate"), "{err}");
    assert!(stored_files(&store).is_empty());
}
