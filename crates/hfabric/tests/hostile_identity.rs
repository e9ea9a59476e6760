//! Impostors against real `hfabric serve` processes (issue 17, identity): with per-node keys
//! a member cannot claim another member's id and a relay cannot forge a final
//! acknowledgement; the shared-secret and open modes say at start what they do not protect;
//! a dialer gives the handshake one deadline. Each case ends with a legitimate transfer
//! verified byte-identical.

mod support;

use hyperfabric::auth::handshake::Acceptor;
use hyperfabric::auth::identity::{FinalAck, NodeKeys, Origin};
use hyperfabric::config::FabricConfig;
use hyperfabric::wire::{self, flags, FrameKind, Header, RefusalCode};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::raw::{extend_fabric, read_frame, send_file};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

/// Per-node key pairs for `ids` in `dir` (through `hfabric keygen`).
fn keygen_nodes(dir: &Path, ids: &[&str]) {
    let mut args = vec!["keygen", "--json", "--dir", dir.to_str().unwrap()];
    for id in ids {
        args.extend(["--node", id]);
    }
    let out = hfabric(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The two-node test fabric plus node-c, with `lines` in `[fabric]`, as `<name>.toml`.
fn three_nodes(dir: &Path, name: &str, lines: &str) -> PathBuf {
    let cfg = fabric_file(dir, "high_throughput");
    extend_fabric(&cfg, lines);
    let path = dir.join(format!("{name}.toml"));
    std::fs::rename(&cfg, &path).unwrap();
    path
}

/// `hfabric send` of `file` from `from` to node-b; returns (success, stderr).
fn try_send(cfg: &Path, peer: &str, from: &str, file: &Path, transport: &str) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["send", "--json", "--config"])
        .arg(cfg)
        .args(["--peer", peer, "--from", from, "--to", "node-b"])
        .args(["--transport", transport, "--file"])
        .arg(file)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run hfabric send");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err)
}

#[test]
fn with_per_node_keys_a_member_cannot_claim_another_members_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen_nodes(&d.join("keys"), &["node-a", "node-b", "node-c"]);
    let cfg = three_nodes(d, "keys", "node_keys = \"keys\"");
    // node-c holds its own key and claims node-a's id with it: its directory lists c's key
    // as node-a's (so it can start as node-a), node-b's real directory does not.
    let borrowed = d.join("borrowed");
    std::fs::create_dir(&borrowed).unwrap();
    for (from, to) in [
        ("node-c.key", "node-a.key"),
        ("node-c.pub", "node-a.pub"),
        ("node-b.pub", "node-b.pub"),
        ("node-c.pub", "node-c.pub"),
    ] {
        std::fs::copy(d.join("keys").join(from), borrowed.join(to)).unwrap();
    }
    let impostor = three_nodes(d, "impostor", "node_keys = \"borrowed\"");
    let store = d.join("store");
    let server = Server::start(&cfg, "node-b", Some(&store));
    assert!(
        server.wait_log("authentication: per-node keys", WAIT),
        "{}",
        server.log_text()
    );
    let evil = d.join("evil.bin");
    random_file(&evil, 4096, 1);
    for transport in ["tcp", "auto"] {
        let (ok, err) = try_send(
            &impostor,
            &server.peer_arg("node-b"),
            "node-a",
            &evil,
            transport,
        );
        assert!(!ok, "the impostor's send succeeded ({transport}): {err}");
        // It fails with the acceptor's reason (Reject PROOF_REFUSED, remembered), not by
        // re-dialing until its deadline.
        assert!(
            err.contains("node-b refused this node") && err.contains("did not sign with"),
            "{transport}: {err}"
        );
    }
    assert!(
        server.wait_log(
            "claims to be node `node-a` but did not sign with `node-a`'s key",
            WAIT
        ),
        "{}",
        server.log_text()
    );
    // A raw hello without any key proof, claiming node-a, is refused by name too.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(&hello_frame("node-a", "test")).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let (h, why) = read_frame(&mut s).expect("a Reject");
    assert_eq!(h.kind, FrameKind::Reject);
    // Refused before any proof was checked: not PROOF_REFUSED.
    assert_eq!(h.aux, hyperfabric::wire::codes::reject::UNSPECIFIED);
    assert!(
        String::from_utf8_lossy(&why).contains("proves no per-node key"),
        "{}",
        String::from_utf8_lossy(&why)
    );
    // The real node-a still gets its transfer through, byte for byte.
    let good = d.join("good.bin");
    random_file(&good, (2 << 20) + 5, 2);
    send_file(&cfg, &server, "node-a", &good);
    assert!(same_contents(&good, &store.join("good.bin")));
    assert!(
        !store.join("evil.bin").exists(),
        "{:?}",
        stored_files(&store)
    );
}

#[test]
fn shared_secret_and_open_fabrics_say_what_they_do_not_protect() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("fabric.key");
    let out = hfabric(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success());
    let secret = three_nodes(d, "secret", "secret_file = \"fabric.key\"");
    let store = d.join("store");
    let server = Server::start(&secret, "node-b", Some(&store));
    assert!(
        server.wait_log(
            "any member holding the secret can claim to be any other member",
            WAIT
        ),
        "{}",
        server.log_text()
    );
    // Without the secret nobody passes as node-a.
    let open = three_nodes(d, "open", "");
    let evil = d.join("evil.bin");
    random_file(&evil, 4096, 3);
    let (ok, err) = try_send(&open, &server.peer_arg("node-b"), "node-a", &evil, "auto");
    assert!(
        !ok && err.contains("sent no proof of the fabric secret"),
        "{err}"
    );
    let good = d.join("good.bin");
    random_file(&good, (1 << 20) + 7, 4);
    send_file(&secret, &server, "node-a", &good);
    assert!(same_contents(&good, &store.join("good.bin")));
    assert!(!store.join("evil.bin").exists());
    drop(server);

    let open_server = Server::start(&open, "node-b", None);
    assert!(
        open_server.wait_log(
            "authentication: NONE (no secret_file, no node_keys): any local process can join as any node",
            WAIT
        ),
        "{}",
        open_server.log_text()
    );
}

/// A hostile relay posing as node-c (with node-c's real key): it completes the handshake,
/// swallows node-a's data for node-b and answers with final acks in node-b's name.
fn forging_relay(listener: TcpListener, cfg: &Path) -> std::thread::JoinHandle<usize> {
    let cfg = FabricConfig::from_file(cfg).unwrap();
    std::thread::spawn(move || {
        let keys = NodeKeys::from_config(&cfg, "node-c", false)
            .unwrap()
            .unwrap();
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let acceptor = Acceptor {
            fabric: "test",
            me: "node-c",
            secret: None,
            keys: Some(&keys),
            challenge: [9; 32],
        };
        let (h, body) = read_frame(&mut s).unwrap();
        let g = acceptor.on_hello(&h, &body, |_, _| true).unwrap();
        let mut w = Header::new(FrameKind::Welcome);
        (w.src, w.dst) = (wire::node_key("node-c"), h.src);
        s.write_all(&wire::encode_frame(&w, &g.welcome).unwrap())
            .unwrap();
        let (h, body) = read_frame(&mut s).unwrap();
        let theirs = g.awaiting_proof.unwrap();
        acceptor
            .on_proof((&g.peer, g.observer), &theirs, &h, &body)
            .unwrap();
        let mut forged = 0;
        while let Ok((h, _)) = read_frame(&mut s) {
            if h.kind != FrameKind::Data || forged > 0 {
                continue;
            }
            let mut ack = Header::new(FrameKind::Ack);
            (ack.src, ack.dst, ack.hops) = (h.dst, h.src, 1);
            (ack.transfer_id, ack.offset, ack.aux) = (h.transfer_id, h.aux, h.aux);
            ack.flags = flags::FINAL;
            // Unsigned; signed with garbage; signed with the relay's own (valid) key.
            let mine = keys.sign_final_ack(&FinalAck {
                transfer_id: h.transfer_id,
                len: h.aux,
                sender: h.src,
                destination: h.dst,
                content_crc: 0,
                stored_as: b"",
            });
            for (extra, payload) in [
                (0, vec![]),
                (flags::SIGNED, vec![7; 68]),
                (flags::SIGNED, [&mine[..], &[0; 4]].concat()),
            ] {
                let mut a = ack;
                a.flags |= extra;
                s.write_all(&wire::encode_frame(&a, &payload).unwrap())
                    .unwrap();
                forged += 1;
            }
        }
        forged
    })
}

/// Per-node keys and a chain node-a - node-c - node-b: everything from a to b crosses c.
fn keyed_chain(d: &Path) -> PathBuf {
    keygen_nodes(&d.join("keys"), &["node-a", "node-b", "node-c"]);
    let cfg = three_nodes(d, "chain", "node_keys = \"keys\"");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let direct = "between = [\"node-a\", \"node-b\"]";
    std::fs::write(
        &cfg,
        text.replace(direct, "between = [\"node-a\", \"node-c\"]"),
    )
    .unwrap();
    cfg
}

#[test]
fn a_relay_cannot_forge_the_final_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = keyed_chain(d);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_peer = format!("node-c={}", listener.local_addr().unwrap());
    let relay = forging_relay(listener, &cfg);
    let file = d.join("never-arrives.bin");
    random_file(&file, 4096, 5);
    let (ok, err) = try_send(&cfg, &relay_peer, "node-a", &file, "tcp");
    assert!(
        !ok,
        "the sender reported success for bytes that never arrived: {err}"
    );
    assert!(!err.contains("acknowledged end to end"), "{err}");
    for why in [
        "it crossed relays unsigned",
        "its signature is not the destination's",
    ] {
        assert!(
            err.contains("forged final acknowledgement of transfer") && err.contains(why),
            "{why}: {err}"
        );
    }
    assert_eq!(relay.join().unwrap(), 3, "the relay forged its three acks");

    // Through an honest relay the destination signs and the sender checks: delivered.
    let store = d.join("store");
    let dst = Server::start(&cfg, "node-b", Some(&store));
    let err = honest_relay_delivers(d, &cfg, &dst, &store, ((3 << 20) + 1, 6), "auto");
    assert!(!err.contains("forged"), "{err}");
}

/// The hostile half of relay node-c: a proxy between it and node-b (at `upstream`) that
/// flips a byte in the first uncompressed data chunk it carries and re-CRCs the frame, so
/// node-b sees a well-formed frame from an authenticated node-c. Counts what it altered.
fn altering_proxy(upstream: std::net::SocketAddr) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("node-b={}", listener.local_addr().unwrap());
    let altered = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&altered);
    std::thread::spawn(move || {
        for from_c in listener.incoming().flatten() {
            let Ok(to_b) = TcpStream::connect(upstream) else {
                continue;
            };
            let (mut back_r, mut back_w) = (to_b.try_clone().unwrap(), from_c.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut back_r, &mut back_w));
            let count = Arc::clone(&count);
            std::thread::spawn(move || {
                let (mut from_c, mut to_b) = (from_c, to_b);
                while let Ok((h, mut body)) = read_frame(&mut from_c) {
                    let plain = flags::compression(h.flags) == 0 && !h.has(flags::LOANED);
                    if h.kind == FrameKind::Data && plain && body.len() > 1 {
                        if count.fetch_add(1, Ordering::SeqCst) == 0 {
                            let mid = body.len() / 2;
                            body[mid] ^= 0xff;
                        } else {
                            count.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    let frame = wire::encode_frame(&h, &body).unwrap();
                    if to_b.write_all(&frame).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, altered)
}

#[test]
fn a_relay_that_alters_relayed_bytes_cannot_have_them_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = keyed_chain(d);
    let store = d.join("store");
    let dst = Server::start(&cfg, "node-b", Some(&store));
    let (proxied_b, altered) = altering_proxy(dst.addr);
    // TCP only: over shared memory node-c's chunks would not cross the proxy.
    let hop = Server::start_with(
        &cfg,
        "node-c",
        None,
        &[
            "--peer".into(),
            proxied_b,
            "--transport".into(),
            "tcp".into(),
        ],
    );
    let file = d.join("altered.bin");
    random_file(&file, (1 << 20) + 3, 8);
    let (ok, err) = try_send(&cfg, &hop.peer_arg("node-c"), "node-a", &file, "tcp");
    assert_eq!(
        altered.load(Ordering::SeqCst),
        1,
        "the proxy altered a chunk"
    );
    assert!(!ok, "the sender reported altered bytes delivered: {err}");
    assert!(!err.contains("acknowledged end to end"), "{err}");
    assert!(
        err.contains("content mismatch") && err.contains("altered or dropped data"),
        "{err}"
    );
    // The proxy alters only once: the next transfer over the same relay arrives intact.
    let good = d.join("good.bin");
    random_file(&good, (1 << 20) + 9, 9);
    let (ok, err) = try_send(&cfg, &hop.peer_arg("node-c"), "node-a", &good, "tcp");
    assert!(ok, "{err}");
    assert!(same_contents(&good, &store.join("good.bin")));
}

/// Dials `addr` (node-b) as node-c with node-c's real key: an authenticated member.
fn dial_as_node_c(addr: std::net::SocketAddr, keys: &NodeKeys) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mine = [5u8; 32];
    let mut h = Header::new(FrameKind::Hello);
    (h.src, h.dst) = (wire::node_key("node-c"), wire::node_key("node-b"));
    let hello = wire::Hello {
        fabric: "test".into(),
        node: "node-c".into(),
        nonce: 3,
        auth: None,
        identity: Some(wire::HelloIdentity {
            challenge: mine,
            signature: None,
        }),
    };
    s.write_all(&wire::encode_frame(&h, &wire::encode_hello(&hello)).unwrap())
        .unwrap();
    let (w, body) = read_frame(&mut s).unwrap();
    assert_eq!(
        w.kind,
        FrameKind::Welcome,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let welcome = wire::decode_hello(FrameKind::Welcome, &body).unwrap();
    let sig = hyperfabric::auth::handshake::dialer_signature(
        keys,
        "test",
        "node-c",
        "node-b",
        &mine,
        welcome.identity.as_ref(),
    )
    .unwrap();
    h.kind = FrameKind::Auth;
    s.write_all(&wire::encode_frame(&h, &sig).unwrap()).unwrap();
    s
}

/// Reads frames until the `Nack FATAL` of transfer `id`: its refusal code and text.
fn refusal_of(s: &mut TcpStream, id: u64) -> (RefusalCode, String) {
    loop {
        let (h, body) = read_frame(s).expect("a refusal");
        if h.kind == FrameKind::Nack && h.transfer_id == id && h.has(flags::FATAL) {
            let why = String::from_utf8_lossy(&body).into_owned();
            return (RefusalCode::from_wire_code(h.aux), why);
        }
    }
}

#[test]
fn a_relay_cannot_forge_a_transfer_from_another_member() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = keyed_chain(d);
    let store = d.join("store");
    let dst = Server::start(&cfg, "node-b", Some(&store));
    let keys = NodeKeys::from_config(&FabricConfig::from_file(&cfg).unwrap(), "node-c", false)
        .unwrap()
        .unwrap();
    let mut s = dial_as_node_c(dst.addr, &keys);
    let bytes = b"forged in node-a's name";
    // Relayed "from node-a": unsigned, with garbage, with the relay's own valid signature.
    let own = keys.sign_origin(&Origin {
        transfer_id: 3,
        len: bytes.len() as u64,
        sender: wire::node_key("node-a"),
        destination: wire::node_key("node-b"),
    });
    for (id, sig) in [(1u64, None), (2, Some([7u8; 64])), (3, Some(own))] {
        let mut h = Header::new(FrameKind::Data);
        (h.src, h.dst, h.hops) = (wire::node_key("node-a"), wire::node_key("node-b"), 1);
        (h.transfer_id, h.aux) = (id, bytes.len() as u64);
        let mut payload = bytes.to_vec();
        if let Some(sig) = sig {
            h.flags |= flags::ORIGIN;
            payload = [&sig[..], bytes].concat();
        }
        s.write_all(&wire::encode_frame(&h, &payload).unwrap())
            .unwrap();
        let (code, why) = refusal_of(&mut s, id);
        assert_eq!(code, RefusalCode::OriginUnproven, "transfer {id}: {why}");
        assert!(why.contains("claims to come from `node-a`"), "{why}");
    }
    // Counted, and readable by any member: the node's metrics reply.
    let mut m = Header::new(FrameKind::MetricsRequest);
    (m.src, m.dst, m.transfer_id) = (wire::node_key("node-c"), wire::node_key("node-b"), 77);
    s.write_all(&wire::encode_frame(&m, &[]).unwrap()).unwrap();
    let totals = loop {
        let (h, body) = read_frame(&mut s).unwrap();
        if h.kind == FrameKind::MetricsReply {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            break v["totals"].clone();
        }
    };
    assert_eq!(totals["origin_refusals"], 3, "{totals}");
    assert!(dst.wait_log("origin unproven", WAIT), "{}", dst.log_text());
    assert!(
        stored_files(&store).is_empty(),
        "{:?}",
        stored_files(&store)
    );

    // node-a's own transfer through an honest node-c carries node-a's signature: stored.
    honest_relay_delivers(d, &cfg, &dst, &store, ((1 << 20) + 11, 10), "tcp");
}

/// node-a sends `good.bin` (`len` random bytes from `seed`) to node-b through an honest
/// node-c started here; it must arrive byte-identical. Returns the send's stderr.
fn honest_relay_delivers(
    d: &Path,
    cfg: &Path,
    dst: &Server,
    store: &Path,
    (len, seed): (u64, u64),
    transport: &str,
) -> String {
    let hop = Server::start_with(
        cfg,
        "node-c",
        None,
        &["--peer".into(), dst.peer_arg("node-b")],
    );
    let good = d.join("good.bin");
    random_file(&good, len, seed);
    let (ok, err) = try_send(cfg, &hop.peer_arg("node-c"), "node-a", &good, transport);
    assert!(ok, "{err}");
    assert!(same_contents(&good, &store.join("good.bin")));
    err
}

#[test]
fn a_dialer_gives_the_handshake_one_deadline_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fabric_file(dir.path(), "high_throughput");
    // A listener that accepts every dial (the sender retries) and drips a byte every 200 ms
    // into each, never a whole answer.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let peer = format!("node-b={}", listener.local_addr().unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = std::sync::Arc::clone(&stop);
    let drip = std::thread::spawn(move || {
        let mut socks = Vec::new();
        // Bounded: at most 300 rounds (60 s) even if the test never stops it.
        for _ in 0..300 {
            if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            while let Ok((s, _)) = listener.accept() {
                socks.push(s);
            }
            for s in &mut socks {
                let _ = s.write_all(&[0x48]);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let file = dir.path().join("x.bin");
    random_file(&file, 1000, 7);
    let (ok, err) = try_send(&cfg, &peer, "node-a", &file, "tcp");
    assert!(!ok);
    assert!(
        err.contains("the handshake did not finish within 1000 ms (handshake_timeout_ms)"),
        "{err}"
    );
    assert!(!err.contains("os error 11"), "{err}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drip.join().unwrap();

    let store = dir.path().join("store");
    let server = Server::start(&cfg, "node-b", Some(&store));
    send_file(&cfg, &server, "node-a", &file);
    assert!(same_contents(&file, &store.join("x.bin")));
}
