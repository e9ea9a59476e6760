//! Fabrics that assemble themselves from launcher variables through rank 0's rendezvous
//! store: no fabric file, real processes, all-to-all transfers checked byte for byte.

mod support;

use support::launch::*;

const CHECK_BYTES: &str = "300000";

#[test]
fn four_torchrun_processes_form_a_fabric_and_exchange_all_to_all() {
    let port = free_port();
    let mut nodes: Vec<Member> = (0..4)
        .map(|r| {
            let env = torchrun_env(r, 4, "127.0.0.1", port);
            Member::start(
                &format!("rank-{r}"),
                &[],
                &env,
                &["--check-all-to-all", CHECK_BYTES],
            )
        })
        .collect();
    for n in &mut nodes {
        let ready = n.all_to_all_with(3);
        assert_eq!(
            ready["bootstrap"]["launch"]["source"], "torchrun",
            "{ready}"
        );
    }
}

#[test]
fn slurm_variables_with_an_expanded_nodelist_form_a_fabric() {
    let port = free_port();
    let mut nodes: Vec<Member> = (0..3)
        .map(|r| {
            // No MASTER_ADDR: the store is on the first host of the node list.
            let env = vec![
                ("SLURM_PROCID", r.to_string()),
                ("SLURM_LOCALID", r.to_string()),
                ("SLURM_NTASKS", "3".to_string()),
                ("SLURM_NODEID", "0".to_string()),
                ("SLURM_JOB_NODELIST", "127.0.0.[1-1],127.0.0.2".to_string()),
                ("MASTER_PORT", port.to_string()),
            ];
            Member::start(
                &format!("rank-{r}"),
                &[],
                &env,
                &["--check-all-to-all", CHECK_BYTES],
            )
        })
        .collect();
    for n in &mut nodes {
        n.all_to_all_ok();
        let ready = n.wait_event("the ready line", |v| v["event"] == "listening");
        let launch = &ready["bootstrap"]["launch"];
        assert_eq!(launch["source"], "slurm", "{ready}");
        assert_eq!(
            launch["hosts"],
            serde_json::json!(["127.0.0.1", "127.0.0.2"])
        );
    }
}

#[test]
fn a_joining_node_and_a_leaving_one_update_everyone_and_a_killed_one_expires() {
    let port = free_port();
    let lease = ["--lease", "2"];
    let mut a = Member::start(
        "rank-0",
        &[],
        &torchrun_env(0, 2, "127.0.0.1", port),
        &lease,
    );
    let mut b = Member::start(
        "rank-1",
        &[],
        &torchrun_env(1, 2, "127.0.0.1", port),
        &lease,
    );
    for n in [&mut a, &mut b] {
        n.wait_event("the ready line", |v| v["event"] == "listening");
    }
    // A third node joins later: everyone learns it without a restart.
    let mut c = Member::start(
        "rank-2",
        &[],
        &torchrun_env(2, 3, "127.0.0.1", port),
        &lease,
    );
    c.wait_members(&["rank-0", "rank-1", "rank-2"]);
    a.wait_members(&["rank-0", "rank-1", "rank-2"]);
    b.wait_members(&["rank-0", "rank-1", "rank-2"]);
    // A clean leave (SIGTERM) withdraws the record at once.
    drop(c);
    a.wait_members(&["rank-0", "rank-1"]);
    // A killed node stops renewing its lease and expires.
    b.child.kill().expect("SIGKILL rank-1");
    a.wait_members(&["rank-0"]);
}

#[test]
fn a_bad_launcher_variable_is_refused_naming_it() {
    let out = std::process::Command::new(support::BIN)
        .args(["serve", "--bootstrap", "auto"])
        .env_clear()
        .envs([
            ("RANK", "zero"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "1"),
        ])
        .output()
        .expect("run hfabric");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RANK=`zero`"), "{err}");
    let out = std::process::Command::new(support::BIN)
        .args(["serve", "--bootstrap", "auto"])
        .env_clear()
        .output()
        .expect("run hfabric");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no launcher found"));
}
