//! Bootstrapped nodes (`hfabric serve --bootstrap`) as child processes whose `--json` lines
//! are collected, so a test can wait for "all_to_all" or "members" events.

use super::{stop, BIN};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for any one event.
pub const EVENT_WAIT: Duration = Duration::from_secs(60);

/// A free TCP port on loopback (the kernel's choice; released before use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A bootstrapped node; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Member {
    pub child: Child,
    pub name: String,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl Member {
    /// Runs `hfabric serve --bootstrap auto --json ARGS` with only `env` set (prefixed by
    /// `prefix`, e.g. `ip netns exec NS`, when given).
    pub fn start(name: &str, prefix: &[&str], env: &[(&str, String)], args: &[&str]) -> Member {
        let mut all = vec!["--bootstrap", "auto"];
        all.extend(args);
        Member::serve(name, prefix, env, &all)
    }

    /// Runs `hfabric serve --json ARGS` (joining however ARGS say) with only `env` set.
    pub fn serve(name: &str, prefix: &[&str], env: &[(&str, String)], args: &[&str]) -> Member {
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.push(BIN);
        argv.extend(["serve", "--json"]);
        argv.extend(args);
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]).env_clear();
        cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
        cmd.env("RUST_LOG", "hyperfabric=info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hfabric serve --bootstrap");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let ev = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in BufReader::new(out.expect("stdout"))
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    ev.lock().unwrap().push(v);
                }
            }
        });
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err.expect("stderr"))
                .lines()
                .map_while(Result::ok)
            {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Member {
            child,
            name: name.to_owned(),
            events,
            stderr,
        }
    }

    /// The first event `pred` accepts, waiting at most [`EVENT_WAIT`]; panics with the
    /// node's log otherwise.
    pub fn wait_event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + EVENT_WAIT;
        while Instant::now() < until {
            if let Some(v) = self.events.lock().unwrap().iter().find(|v| pred(v)) {
                return v.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                if let Some(v) = self.events.lock().unwrap().iter().find(|v| pred(v)) {
                    return v.clone();
                }
                panic!(
                    "{}: exited ({status}) before {what}:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{}: no {what} within {EVENT_WAIT:?}:\n{}",
            self.name,
            self.log()
        );
    }

    /// Waits until the node's last "members" event names exactly `nodes`.
    pub fn wait_members(&mut self, nodes: &[&str]) -> Value {
        let want: Vec<Value> = nodes.iter().map(|n| Value::from(*n)).collect();
        let what = format!("members {nodes:?}");
        let until = Instant::now() + EVENT_WAIT;
        while Instant::now() < until {
            let last = {
                let evs = self.events.lock().unwrap();
                evs.iter().rev().find(|v| v["event"] == "members").cloned()
            };
            if let Some(v) = last.filter(|v| v["nodes"].as_array() == Some(&want)) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{}: no {what} within {EVENT_WAIT:?}:\n{}",
            self.name,
            self.log()
        );
    }

    /// The node's all-to-all report (asserting it passed).
    pub fn all_to_all_ok(&mut self) -> Value {
        let v = self.wait_event("all_to_all", |v| v["event"] == "all_to_all");
        assert_eq!(v["ok"], true, "{}: {v}\n{}", self.name, self.log());
        v
    }

    /// The all-to-all check passed against `peers` peers; returns the node's ready line.
    pub fn all_to_all_with(&mut self, peers: usize) -> Value {
        let report = self.all_to_all_ok();
        let got = report["peers"].as_array().map(Vec::len);
        assert_eq!(got, Some(peers), "{report}");
        self.wait_event("the ready line", |v| v["event"] == "listening")
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// torchrun's four variables for `rank` of `world` with the store at `master`.
pub fn torchrun_env(rank: u32, world: u32, addr: &str, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("RANK", rank.to_string()),
        ("WORLD_SIZE", world.to_string()),
        ("MASTER_ADDR", addr.to_owned()),
        ("MASTER_PORT", port.to_string()),
    ]
}
