//! Hosts without hosts: network namespaces, each joined by a veth pair to a bridge that
//! lives in a hub namespace of its own, so no address ever appears outside the namespaces
//! a test made. Needs root (as CI is); `Lan::new` returns `None`, saying why, elsewhere.
//! Everything is deleted on drop, also when the test fails.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Subnet every test LAN uses (private to its namespaces).
pub const SUBNET: &str = "10.99.0";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Namespaces `hosts[i]` at `10.99.0.(i+1)`, bridged in `hub`.
pub struct Lan {
    pub hub: String,
    pub hosts: Vec<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

impl Lan {
    /// `n` namespaces on one bridge, or `None` (printed) where namespaces cannot be made.
    pub fn new(n: usize) -> Option<Lan> {
        let tag = format!(
            "hf{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut lan = Lan {
            hub: format!("{tag}hub"),
            hosts: Vec::new(),
        };
        if let Err(e) = ip(&["netns", "add", &lan.hub]) {
            eprintln!("skipping: network namespaces are not permitted here (needs root): {e}");
            return None;
        }
        let setup = || -> Result<(), String> {
            let hub = lan.hub.clone();
            ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
            ip(&["-n", &hub, "link", "set", "br0", "up"])?;
            Ok(())
        };
        if let Err(e) = setup() {
            panic!("creating the bridge: {e}");
        }
        for i in 0..n {
            if let Err(e) = lan.add_host(&tag, i) {
                panic!("creating namespace {i}: {e}");
            }
        }
        Some(lan)
    }

    fn add_host(&mut self, tag: &str, i: usize) -> Result<(), String> {
        let ns = format!("{tag}h{i}");
        ip(&["netns", "add", &ns])?;
        self.hosts.push(ns.clone());
        let (inner, outer) = (format!("eth{i}"), format!("port{i}"));
        ip(&[
            "-n", &self.hub, "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            "netns", &ns,
        ])?;
        ip(&[
            "-n", &self.hub, "link", "set", &outer, "master", "br0", "up",
        ])?;
        let addr = format!("{}/24", self.addr(i));
        ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
        ip(&["-n", &ns, "link", "set", &inner, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])
    }

    /// The address of host `i`.
    pub fn addr(&self, i: usize) -> String {
        format!("{SUBNET}.{}", i + 1)
    }

    /// The command prefix that runs a program in host `i`.
    pub fn exec(&self, i: usize) -> Vec<&str> {
        vec!["ip", "netns", "exec", &self.hosts[i]]
    }

    /// Host `i` and host `j` can no longer reach each other directly (a `prohibit` route
    /// each way): what they exchange must cross a third host.
    pub fn block(&self, i: usize, j: usize) {
        for (from, to) in [(i, j), (j, i)] {
            let dst = format!("{}/32", self.addr(to));
            ip(&["-n", &self.hosts[from], "route", "add", "prohibit", &dst]).expect("ip route add");
        }
    }

    /// Takes host `i`'s link to the bridge down (`up`: back up).
    pub fn set_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.hub, "link", "set", &format!("port{i}"), state]).expect("ip link set");
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain([&self.hub]) {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}
