//! A real etcd server for a test: its own temp data dir and free loopback ports, stopped
//! (and its dir removed) on drop. `None`, saying why, when the `etcd` binary is absent.

use super::launch::free_port;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to answer its first request.
const START_WAIT: Duration = Duration::from_secs(30);

pub struct Etcd {
    child: Child,
    pub client_port: u16,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts `etcd` (Debian's etcd-server), or says why not and returns `None`.
    pub fn start() -> Option<Etcd> {
        let found = Command::new("etcd")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            eprintln!("SKIPPED: no `etcd` binary on PATH (apt-get install etcd-server)");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temp dir for etcd");
        let (client_port, peer_port) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new("etcd")
            .args(["--name", "hf-test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("hf-test={peer}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log"))
            .spawn()
            .expect("spawn etcd");
        let etcd = Etcd {
            child,
            client_port,
            _dir: dir,
        };
        etcd.wait_ready();
        Some(etcd)
    }

    /// `etcd://127.0.0.1:PORT/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://127.0.0.1:{}/{prefix}", self.client_port)
    }

    /// Until a lease can be granted (etcd has elected itself leader).
    fn wait_ready(&self) {
        let until = Instant::now() + START_WAIT;
        while Instant::now() < until {
            if self.answers_http() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "etcd on port {} not healthy within {START_WAIT:?}",
            self.client_port
        );
    }

    /// A lease grant over the JSON gateway answers 200 (no etcdctl needed).
    fn answers_http(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let body = r#"{"TTL":5}"#;
        let req = format!(
            "POST /v3/lease/grant HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut answer = String::new();
        s.write_all(req.as_bytes()).is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
            && answer.contains("\"ID\"")
    }
}

/// Joins node `id` through `etcd` (prefix `prefix`, a 2 s lease) in this process: for tests
/// that drive the library's API while other members are processes.
pub fn join_here(etcd: &Etcd, prefix: &str, id: &str) -> hyperfabric::membership::Joined {
    use hyperfabric::bootstrap::{Launch, Mode};
    let launch = Launch {
        source: Mode::Explicit,
        rank: 0,
        world_size: 1,
        local_rank: None,
        local_world_size: None,
        node_index: None,
        hosts: Vec::new(),
        master_host: String::new(),
        master_port: 0,
    };
    let opts = hyperfabric::membership::JoinOptions {
        launch,
        file: None,
        node_id: Some(id.to_owned()),
        listen: None,
        timeout: Duration::from_secs(60),
        lease: Duration::from_secs(2),
        etcd: Some(etcd.url(prefix).parse().expect("an etcd URL")),
    };
    hyperfabric::membership::join(opts, |b| b).unwrap_or_else(|e| panic!("{id} joins: {e}"))
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
