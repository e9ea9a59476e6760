//! Membership in a real etcd (Debian's etcd-server, started by the test on free ports):
//! nodes join through it with no fabric file and no rank-0 store, exchange all-to-all
//! byte for byte, a SIGKILLed node's record expires with its lease, a restarted one is
//! back; transfers keep flowing while nodes join and leave. Skipped, saying so, when the
//! `etcd` binary is absent.

mod support;

use hyperfabric::membership::Joined;
use hyperfabric::SendOptions;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::etcd::{join_here, Etcd};
use support::launch::*;

fn node(etcd: &Etcd, name: &str, world: &str, extra: &[&str]) -> Member {
    let url = etcd.url("hf/test");
    let mut args = vec!["--membership", &url, "--node", name, "--world-size", world];
    args.extend(["--lease", "2"]);
    args.extend(extra);
    Member::serve(name, &[], &[], &args)
}

#[test]
fn four_nodes_join_through_etcd_and_a_killed_one_expires_then_returns() {
    let Some(etcd) = Etcd::start() else { return };
    let check = ["--check-all-to-all", "300000"];
    let names = ["n0", "n1", "n2", "n3"];
    let mut nodes: Vec<Member> = names.iter().map(|n| node(&etcd, n, "4", &check)).collect();
    for n in &mut nodes {
        let ready = n.all_to_all_with(3);
        let dir = ready["bootstrap"]["directory"].as_str().unwrap_or_default();
        let want = format!("etcd 127.0.0.1:{}/hf/test", etcd.client_port);
        assert_eq!(dir, want, "{ready}");
        assert!(
            ready["bootstrap"]["store"].is_null(),
            "no rank-0 store: {ready}"
        );
    }
    // SIGKILL: no withdrawal; the record goes when its 2 s lease runs out.
    nodes[3].child.kill().expect("SIGKILL n3");
    for n in &mut nodes[..3] {
        n.wait_members(&["n0", "n1", "n2"]);
    }
    // Restarted, it is back in everyone's topology; the others were not restarted.
    let mut again = node(&etcd, "n3", "4", &[]);
    again.wait_members(&names);
    for n in &mut nodes[..3] {
        n.wait_members(&names);
    }
}

#[test]
fn a_clean_leave_withdraws_at_once_and_a_late_joiner_is_seen() {
    let Some(etcd) = Etcd::start() else { return };
    let mut a = node(&etcd, "a", "1", &[]);
    a.wait_members(&["a"]);
    let mut b = node(&etcd, "b", "2", &[]);
    b.wait_members(&["a", "b"]);
    a.wait_members(&["a", "b"]);
    drop(b); // SIGTERM: the lease is revoked, the record deleted
    a.wait_members(&["a"]);
}

/// Joins and leaves come through etcd's watch: the membership thread read the prefix only
/// when the watch said so, never by polling (the reads are counted in `members` events).
#[test]
fn a_join_and_a_leave_arrive_through_the_watch_without_polling() {
    let Some(etcd) = Etcd::start() else { return };
    let mut a = node(&etcd, "a", "1", &[]);
    a.wait_members(&["a"]);
    let mut b = node(&etcd, "b", "2", &[]);
    let joined = a.wait_members(&["a", "b"]);
    b.wait_members(&["a", "b"]);
    drop(b);
    let left = a.wait_members(&["a"]);
    let on_change = |v: &serde_json::Value| v["reads"]["on_change"].as_u64().unwrap_or(0);
    for v in [&joined, &left] {
        assert_eq!(v["reads"]["watching"], true, "{v}");
        assert_eq!(v["reads"]["polls"], 0, "a read by polling: {v}");
    }
    assert!(on_change(&joined) >= 1, "{joined}");
    assert!(on_change(&left) > on_change(&joined), "{joined}\n{left}");
}

/// Waits until `j`'s fabric knows exactly `nodes` (itself included).
fn wait_known(j: &Joined, nodes: &[&str]) {
    let until = Instant::now() + EVENT_WAIT;
    let mut want: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    want.sort();
    loop {
        let mut now = j.fabric.known_nodes();
        now.sort();
        if now == want {
            return;
        }
        assert!(Instant::now() < until, "knows {now:?}, not {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Transfer `seq` of the stream: its number, then bytes that depend on it.
fn transfer(seq: u64) -> Vec<u8> {
    let mut v = seq.to_le_bytes().to_vec();
    v.extend(pattern_of(seq, 64 << 10));
    v
}

fn pattern_of(seq: u64, len: usize) -> impl Iterator<Item = u8> {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    })
}

/// Issue 21: a stream of transfers a -> b (this process), each acknowledged end to end and
/// compared byte for byte at b, goes on without one failure while `c` joins and `d` leaves
/// (processes of their own), and both changes reach a and b meanwhile.
#[test]
fn transfers_flow_without_a_failure_while_one_node_joins_and_another_leaves() {
    let Some(etcd) = Etcd::start() else { return };
    let mut d = node(&etcd, "d", "1", &[]);
    d.wait_members(&["d"]);
    let (a, b) = (
        join_here(&etcd, "hf/test", "a"),
        join_here(&etcd, "hf/test", "b"),
    );
    for j in [&a, &b] {
        wait_known(j, &["a", "b", "d"]);
    }
    let (stop, sent) = (AtomicBool::new(false), AtomicU64::new(0));
    // Set by the sender once its last send returned: `stop` alone can be seen while a send
    // is still on its way, and the receiver would stop one transfer short.
    let done = AtomicBool::new(false);
    let received = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut seq = 0;
            while !stop.load(Ordering::Acquire) {
                let data = transfer(seq);
                if let Err(e) = a.fabric.send("b", &data, SendOptions::new()) {
                    panic!("transfer {seq} failed: {e}");
                }
                seq += 1;
                sent.store(seq, Ordering::Release);
            }
            done.store(true, Ordering::Release);
        });
        let receiver = s.spawn(|| {
            let (mut seq, mut last) = (0, Instant::now());
            while !(done.load(Ordering::Acquire) && seq == sent.load(Ordering::Acquire)) {
                let Ok(msg) = b.fabric.recv_timeout(Duration::from_millis(200)) else {
                    let n = sent.load(Ordering::Acquire);
                    assert!(last.elapsed() < EVENT_WAIT, "b has {seq} of {n} transfers");
                    continue;
                };
                last = Instant::now();
                assert_eq!(msg.source.as_str(), "a");
                assert!(
                    msg.payload[..] == transfer(seq)[..],
                    "transfer {seq} differs"
                );
                seq += 1;
            }
            seq
        });
        let flowing = |more: u64| {
            let at = sent.load(Ordering::Acquire);
            let until = Instant::now() + EVENT_WAIT;
            while sent.load(Ordering::Acquire) < at + more && !sender.is_finished() {
                assert!(Instant::now() < until, "the stream stalled at {at}");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        flowing(20);
        let _c = node(&etcd, "c", "1", &[]);
        for j in [&a, &b] {
            wait_known(j, &["a", "b", "c", "d"]);
        }
        flowing(20);
        drop(d); // SIGTERM: a clean leave, its record withdrawn
        for j in [&a, &b] {
            wait_known(j, &["a", "b", "c"]);
        }
        flowing(20);
        stop.store(true, Ordering::Release);
        sender.join().expect("the sender");
        receiver.join().expect("the receiver")
    });
    assert_eq!(received, sent.load(Ordering::Acquire));
    assert!(received >= 60, "{received}");
}

#[test]
fn a_bad_url_or_an_unreachable_etcd_is_an_error_naming_it() {
    let out = support::hfabric(&["serve", "--membership", "http://h:1/p", "--node", "a"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--membership") && err.contains("expected etcd://"),
        "{err}"
    );
    let url = format!("etcd://127.0.0.1:{}/p", free_port());
    let out = support::hfabric(&[
        "serve",
        "--membership",
        &url,
        "--node",
        "a",
        "--bootstrap-timeout",
        "1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{url}/v3/lease/grant")), "{err}");
    let out = support::hfabric(&["serve", "--lease", "3", "--config", "x.toml", "--node", "a"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--lease applies to a node that joins"),
        "{err}"
    );
}

/// `hfabric serve --json` through `etcd` with `flags` and environment `env`, to completion.
fn serve_once(etcd: &Etcd, name: &str, flags: &[String], env: &[(&str, &str)]) -> Output {
    let url = etcd.url("hf/test");
    let mut cmd = std::process::Command::new(support::BIN);
    cmd.args(["serve", "--json", "--membership", &url, "--node", name])
        .args(["--bootstrap-timeout", "10"])
        .args(flags)
        .env_remove("HF_ETCD_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run hfabric serve")
}

/// A refused start: its exit code and what it said on stderr.
fn refused(out: &Output) -> (Option<i32>, String) {
    assert!(!out.status.success(), "it started");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The join in this `members` event came through etcd's watch (over TLS, with a token),
/// not by polling.
fn assert_watched(members: &serde_json::Value) {
    assert_eq!(members["reads"]["watching"], true, "{members}");
    assert_eq!(members["reads"]["polls"], 0, "a read by polling: {members}");
}

#[test]
fn two_nodes_join_through_etcd_over_tls_and_a_wrong_ca_or_no_certificate_is_refused() {
    let Some(etcd) = Etcd::start_tls() else {
        return;
    };
    let tls = etcd.tls_flags();
    let flags: Vec<&str> = tls.iter().map(String::as_str).collect();
    let mut a = node(&etcd, "a", "1", &flags);
    a.wait_members(&["a"]);
    let mut b = node(&etcd, "b", "2", &flags);
    b.wait_members(&["a", "b"]);
    assert_watched(&a.wait_members(&["a", "b"]));
    let ready = a.wait_event("listening", |v| v["event"] == "listening");
    let summary = &ready["bootstrap"]["etcd"];
    assert_eq!(summary["tls"], true, "{ready}");
    assert_eq!(summary["cacert"], etcd.pki_file("ca").as_str(), "{ready}");
    assert_eq!(summary["cert"], etcd.pki_file("client-cert").as_str());
    let want = format!("etcds 127.0.0.1:{}/hf/test", etcd.client_port);
    assert_eq!(ready["bootstrap"]["directory"], want.as_str(), "{ready}");
    // A CA that did not sign etcd's certificate: refused at once, saying so.
    let other = tempfile::tempdir().expect("a temp dir");
    support::pki::pki(other.path(), "other", &["127.0.0.1"]);
    let mut wrong = tls.clone();
    wrong[1] = other.path().join("other-ca.pem").display().to_string();
    let (code, err) = refused(&serve_once(&etcd, "c", &wrong, &[]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&etcd.url("hf/test")) && err.contains("invalid peer certificate"),
        "{err}"
    );
    assert!(err.contains("--etcd-cacert"), "{err}");
    // etcd asks for a client certificate and gets none.
    let (_, err) = refused(&serve_once(&etcd, "c", &tls[..2], &[]));
    assert!(err.contains(&etcd.url("hf/test")), "{err}");
    // TLS files with a plain etcd:// URL would be ignored: refused.
    let out = support::hfabric(&[
        "serve",
        "--membership",
        "etcd://127.0.0.1:1/p",
        "--node",
        "c",
        "--etcd-cacert",
        "ca.pem",
    ]);
    let (code, err) = refused(&out);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("write etcds://"), "{err}");
}

#[test]
fn with_auth_on_the_right_password_joins_and_a_wrong_one_is_refused_naming_the_user() {
    let Some(etcd) = Etcd::start() else { return };
    etcd.enable_auth("s3cret-pw");
    let file = etcd.write_file("password", "s3cret-pw\n");
    let by_file = ["--etcd-user", "root", "--etcd-password-file", &file];
    let mut a = node(&etcd, "a", "1", &by_file);
    a.wait_members(&["a"]);
    let url = etcd.url("hf/test");
    let by_env = [
        "--membership",
        &url,
        "--node",
        "b",
        "--world-size",
        "2",
        "--lease",
        "2",
    ];
    let env = [("HF_ETCD_PASSWORD", "s3cret-pw".to_owned())];
    let mut b = Member::serve(
        "b",
        &[],
        &env,
        &[&by_env[..], &["--etcd-user", "root"]].concat(),
    );
    b.wait_members(&["a", "b"]);
    assert_watched(&a.wait_members(&["a", "b"]));
    let ready = a.wait_event("listening", |v| v["event"] == "listening");
    assert_eq!(ready["bootstrap"]["etcd"]["user"], "root", "{ready}");
    assert!(!ready.to_string().contains("s3cret"), "{ready}");
    // The user and its password file in the fabric file's [membership] (beside it).
    let fabric = format!(
        "[fabric]\nname = \"job\"\n\n[[nodes]]\nid = \"f\"\nhardware = \"cpu-cluster\"\n\n\
         [membership]\nurl = \"{url}\"\nuser = \"root\"\npassword_file = \"password\"\n"
    );
    let fabric = etcd.write_file("f.toml", &fabric);
    let mut f = Member::serve(
        "f",
        &[],
        &[],
        &["-c", &fabric, "--node", "f", "--lease", "2"],
    );
    f.wait_members(&["a", "b", "f"]);
    let ready = f.wait_event("listening", |v| v["event"] == "listening");
    assert_eq!(ready["bootstrap"]["etcd"]["user"], "root", "{ready}");
    assert_eq!(
        knob(&ready, "membership.password_file")["value"],
        file.as_str()
    );
    assert!(!ready.to_string().contains("s3cret"), "{ready}");
    drop(f);
    let user = ["--etcd-user".to_owned(), "root".to_owned()];
    let (code, err) = refused(&serve_once(
        &etcd,
        "c",
        &user,
        &[("HF_ETCD_PASSWORD", "wrong")],
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&url) && err.contains("user `root`") && err.contains("authentication failed"),
        "{err}"
    );
    // No user against an etcd with authentication on: refused, saying what to give.
    let (_, err) = refused(&serve_once(&etcd, "c", &[], &[]));
    assert!(err.contains("give --etcd-user"), "{err}");
    // No password anywhere, or one on the command line: refused before any request.
    let (code, err) = refused(&serve_once(&etcd, "c", &user, &[]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("HF_ETCD_PASSWORD"), "{err}");
    let inline = ["--etcd-user".to_owned(), "root:s3cret-pw".to_owned()];
    for env in [&[][..], &[("HF_ETCD_PASSWORD", "s3cret-pw")]] {
        let (code, err) = refused(&serve_once(&etcd, "c", &inline, env));
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("without `:`") && !err.contains("s3cret"),
            "{err}"
        );
    }
}

/// etcd forgets an idle token after --auth-token-ttl: the next request is refused with
/// "invalid auth token", and the client buys a new token and sends it once more.
#[test]
fn an_expired_token_is_renewed_and_the_request_sent_again() {
    let Some(etcd) = Etcd::start_with(&["--auth-token-ttl", "1"]) else {
        return;
    };
    etcd.enable_auth("pw");
    let access = hyperfabric::membership::etcd_access::EtcdAccess {
        user: Some("root".into()),
        password: Some("pw".into()),
        ..Default::default()
    };
    let client = etcd.client(&access);
    let first = client.token().expect("a token").expect("a user");
    client.grant(5).expect("a lease with the first token");
    std::thread::sleep(Duration::from_secs(3));
    client.grant(5).expect("a lease after the token expired");
    let second = client.token().expect("a token").expect("a user");
    assert_ne!(first, second, "the expired token was not renewed");
    let wrong = hyperfabric::membership::etcd_access::EtcdAccess {
        password: Some("nope".into()),
        ..access
    };
    let e = etcd.client(&wrong).grant(5).unwrap_err();
    assert!(
        matches!(&e, hyperfabric::Error::Credentials { reason, .. } if reason.contains("user `root`")),
        "{e}"
    );
}

/// The `[membership]` knob of `knobs` (the ready line's effective configuration).
fn knob<'a>(ready: &'a serde_json::Value, field: &str) -> &'a serde_json::Value {
    let knobs = ready["effective_config"]["knobs"].as_array();
    let found = knobs.and_then(|k| k.iter().find(|k| k["field"] == field));
    found.unwrap_or_else(|| panic!("no {field} in {ready}"))
}

/// The fabric file's `[membership]` gets a node into an etcd with TLS; flags override it
/// field by field; the effective configuration says which came from where. (Its user and
/// password file: the auth test below.)
#[test]
fn the_fabric_files_membership_table_joins_and_flags_override_it() {
    let Some(etcd) = Etcd::start_tls() else {
        return;
    };
    let table = |url: &str| {
        let (ca, cert, key) = (
            etcd.pki_file("ca"),
            etcd.pki_file("client-cert"),
            etcd.pki_file("client-key"),
        );
        format!(
            "[fabric]\nname = \"job\"\n\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n\n\
             [membership]\nurl = \"{url}\"\ncacert = \"{ca}\"\ncert = \"{cert}\"\n\
             key = \"{key}\"\n"
        )
    };
    let url = etcd.url("hf/test");
    let file = etcd.write_file("a.toml", &table(&url));
    let args = [
        "-c",
        &file,
        "--node",
        "a",
        "--world-size",
        "1",
        "--lease",
        "2",
    ];
    let mut a = Member::serve("a", &[], &[], &args);
    a.wait_members(&["a"]);
    let ready = a.wait_event("listening", |v| v["event"] == "listening");
    let summary = &ready["bootstrap"]["etcd"];
    assert_eq!(summary["tls"], true, "{ready}");
    assert_eq!(summary["cacert"], etcd.pki_file("ca").as_str(), "{ready}");
    let u = knob(&ready, "membership.url");
    assert_eq!(
        (&u["source"], &u["effect"]),
        (&"file".into(), &"applied".into())
    );
    assert_eq!(knob(&ready, "membership.key")["source"], "file", "{ready}");
    // b's file names an etcd that is not there: --membership overrides it.
    let nowhere = etcd.write_file(
        "b.toml",
        &table("etcds://127.0.0.1:1/nowhere").replace("\"a\"", "\"b\""),
    );
    let args = [
        "-c",
        &nowhere,
        "--node",
        "b",
        "--world-size",
        "2",
        "--lease",
        "2",
    ];
    let mut b = Member::serve(
        "b",
        &[],
        &[],
        &[&args[..], &["--membership", &url]].concat(),
    );
    b.wait_members(&["a", "b"]);
    assert_watched(&a.wait_members(&["a", "b"]));
    let ready = b.wait_event("listening", |v| v["event"] == "listening");
    assert_eq!(knob(&ready, "membership.url")["source"], "api", "{ready}");
    assert_eq!(knob(&ready, "membership.url")["value"], url.as_str());
    // A password written in the file is refused, naming the field.
    let inline = etcd.write_file(
        "c.toml",
        &format!("{}password = \"s3cret-pw\"\n", table(&url)),
    );
    let out = support::hfabric(&["serve", "-c", &inline, "--node", "c"]);
    let (code, err) = refused(&out);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("membership.password") && !err.contains("s3cret"),
        "{err}"
    );
}

/// etcd killed and started again (same port, same data dir) a few seconds later: the
/// node's watch reconnects and its lease is kept (etcd restores leases), so a node that
/// joins afterwards is seen by the old one, and the old one's record is still there for
/// the newcomer. The node logs the reconnect, and retried with back-off meanwhile.
#[test]
fn a_nodes_watch_and_lease_survive_an_etcd_restart() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let mut a = node(&etcd, "a", "1", &[]);
    a.wait_members(&["a"]);
    etcd.restart(Duration::from_secs(3));
    // b waits for 2 nodes: it starts only when a's record is there and lists it.
    let mut b = node(&etcd, "b", "2", &[]);
    b.wait_members(&["a", "b"]);
    let seen = a.wait_members(&["a", "b"]);
    // Polled while etcd was down; watched again now.
    assert_eq!(seen["reads"]["watching"], true, "{seen}");
    let until = Instant::now() + EVENT_WAIT;
    while !a.log().contains("the watch is back") {
        assert!(Instant::now() < until, "no reconnect logged:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = a.log();
    assert!(log.contains("the watch ended"), "{log}");
    // Back-off, not a spin: one warning per failing request kind, the rest at debug.
    let warnings = log.lines().filter(|l| l.contains("WARN")).count();
    assert!(warnings <= 8, "{warnings} warnings in a 3 s outage:\n{log}");
    drop(b);
    a.wait_members(&["a"]);
}

/// TLS and a user together, the user's password in a file. etcd's JSON gateway refuses a
/// client certificate with a CommonName while authentication is on (HTTP 400 in plain
/// text), so these nodes present one without: three join, exchange all-to-all, and a
/// SIGKILLed one leaves the others' topology within its 2 s lease (plus etcd's expiry
/// tick and the watch). A certificate with a CommonName is refused, saying what to give.
#[test]
fn over_tls_with_a_user_nodes_join_and_a_killed_one_expires_within_its_lease() {
    let Some(etcd) = Etcd::start_tls() else {
        return;
    };
    etcd.enable_auth("s3cret-pw");
    let file = etcd.write_file("password", "s3cret-pw\n");
    let login = [
        "--etcd-user".into(),
        "root".into(),
        "--etcd-password-file".into(),
        file,
    ];
    let flags = [etcd.user_tls_flags(), login.to_vec()].concat();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["--check-all-to-all", "65536"]);
    let names = ["a", "b", "c"];
    let mut nodes: Vec<Member> = names.iter().map(|n| node(&etcd, n, "3", &args)).collect();
    for n in &mut nodes {
        n.all_to_all_with(2);
        n.wait_members(&names);
    }
    let ready = nodes[0].wait_event("listening", |v| v["event"] == "listening");
    assert_eq!(ready["bootstrap"]["etcd"]["user"], "root", "{ready}");
    assert_eq!(ready["bootstrap"]["etcd"]["tls"], true, "{ready}");
    let killed = Instant::now();
    nodes[2].child.kill().expect("SIGKILL c");
    for n in &mut nodes[..2] {
        assert_watched(&n.wait_members(&["a", "b"]));
    }
    let gone = killed.elapsed();
    eprintln!("the SIGKILLed node left both topologies {gone:?} after the kill (lease 2 s)");
    assert!(gone < Duration::from_secs(6), "{gone:?} for a 2 s lease");
    // The certificate with a CommonName, the same user: refused, saying what to give.
    let with_cn = [etcd.tls_flags(), login.to_vec()].concat();
    let (code, err) = refused(&serve_once(&etcd, "d", &with_cn, &[]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("user `root`") && err.contains("without a CommonName"),
        "{err}"
    );
}
