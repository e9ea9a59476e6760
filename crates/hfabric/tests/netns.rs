//! Nodes in separate network namespaces (hosts without hosts): bootstrapped from torchrun-
//! and Slurm-style variables, all-to-all transfers across namespaces checked byte for byte,
//! nodes joining, leaving and being killed. Skipped, saying so, where namespaces cannot be
//! made (not root).

mod support;

use support::launch::*;
use support::netns::Lan;

const PORT: u16 = 29_500;

fn addr_of(ready: &serde_json::Value) -> String {
    ready["addr"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn torchrun_across_three_namespaces_with_two_nodes_sharing_one() {
    let Some(lan) = Lan::new(3) else { return };
    let master = lan.addr(0);
    // Two ranks share namespace 0 (one host: shared memory); the others are hosts apart.
    let placement = [0, 0, 1, 2];
    let mut nodes: Vec<Member> = placement
        .iter()
        .enumerate()
        .map(|(r, &host)| {
            let env = torchrun_env(r as u32, 4, &master, PORT);
            Member::start(
                &format!("rank-{r}"),
                &lan.exec(host),
                &env,
                &["--check-all-to-all", "2000000"],
            )
        })
        .collect();
    for (r, n) in nodes.iter_mut().enumerate() {
        n.all_to_all_ok();
        let ready = n.wait_event("the ready line", |v| v["event"] == "listening");
        let want = lan.addr(placement[r]);
        assert!(
            addr_of(&ready).starts_with(&format!("{want}:")),
            "rank {r} listens on the namespace's address: {ready}"
        );
    }
}

#[test]
fn slurm_across_three_namespaces() {
    let Some(lan) = Lan::new(3) else { return };
    let list = format!("{}.[1-3]", support::netns::SUBNET);
    let mut nodes: Vec<Member> = (0..3)
        .map(|r| {
            let env = vec![
                ("SLURM_PROCID", r.to_string()),
                ("SLURM_LOCALID", "0".to_string()),
                ("SLURM_NTASKS", "3".to_string()),
                ("SLURM_NODEID", r.to_string()),
                ("SLURM_JOB_NODELIST", list.clone()),
            ];
            Member::start(
                &format!("rank-{r}"),
                &lan.exec(r),
                &env,
                &["--check-all-to-all", "1000000"],
            )
        })
        .collect();
    for n in &mut nodes {
        n.all_to_all_ok();
        let ready = n.wait_event("the ready line", |v| v["event"] == "listening");
        assert_eq!(
            ready["bootstrap"]["launch"]["master_host"],
            lan.addr(0),
            "{ready}"
        );
    }
}

#[test]
fn joining_leaving_and_killed_nodes_across_namespaces() {
    let Some(lan) = Lan::new(4) else { return };
    let master = lan.addr(0);
    let lease = ["--lease", "2"];
    let start = |r: u32, world: u32, host: usize| {
        let env = torchrun_env(r, world, &master, PORT);
        Member::start(&format!("rank-{r}"), &lan.exec(host), &env, &lease)
    };
    let mut a = start(0, 2, 0);
    let mut b = start(1, 2, 1);
    a.wait_members(&["rank-0", "rank-1"]);
    b.wait_members(&["rank-0", "rank-1"]);
    let mut c = start(2, 3, 2);
    let mut d = start(3, 4, 3);
    for n in [&mut a, &mut b, &mut c, &mut d] {
        n.wait_members(&["rank-0", "rank-1", "rank-2", "rank-3"]);
    }
    drop(c);
    a.wait_members(&["rank-0", "rank-1", "rank-3"]);
    d.child.kill().expect("SIGKILL rank-3");
    a.wait_members(&["rank-0", "rank-1"]);
    b.wait_members(&["rank-0", "rank-1"]);
}
