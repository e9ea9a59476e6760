//! Membership in a real etcd (Debian's etcd-server, started by the test on free ports):
//! nodes join through it with no fabric file and no rank-0 store, exchange all-to-all
//! byte for byte, a SIGKILLed node's record expires with its lease, a restarted one is
//! back. Skipped, saying so, when the `etcd` binary is absent.

mod support;

use support::etcd::Etcd;
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
