//! A real etcd server for a test: its own temp data dir and free loopback ports, stopped
//! (and its dir removed) on drop. `None`, saying why, when the `etcd` binary is absent.

use super::launch::free_port;
use hyperfabric::membership::etcd::EtcdClient;
use hyperfabric::membership::etcd_access::EtcdAccess;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to answer its first request.
const START_WAIT: Duration = Duration::from_secs(30);

pub struct Etcd {
    child: Child,
    pub client_port: u16,
    /// `etcd` or `etcds` (started with TLS).
    pub scheme: &'static str,
    /// With TLS: the test PKI's directory (`etcd-ca.pem`, `etcd-cert.pem` for the server,
    /// `etcd-client-cert.pem` / `-key.pem` for nodes, `etcd-user-cert.pem` / `-key.pem`
    /// for nodes that also log in as a user: no CommonName, as etcd's gateway wants then).
    pub pki: Option<std::path::PathBuf>,
    /// How it was started (for [`Etcd::restart`]).
    args: Vec<std::ffi::OsString>,
    dir: tempfile::TempDir,
}

/// The PKI's tag: its files are `etcd-*.pem`.
pub const PKI: &str = "etcd";

impl Etcd {
    /// Starts `etcd` (Debian's etcd-server), or says why not and returns `None`.
    pub fn start() -> Option<Etcd> {
        Etcd::launch(false, &[])
    }

    /// [`Etcd::start`] with more flags for etcd (`--auth-token-ttl 1`).
    pub fn start_with(flags: &[&str]) -> Option<Etcd> {
        Etcd::launch(false, flags)
    }

    /// Starts `etcd` serving clients over TLS with a CA made here, requiring a client
    /// certificate signed by it (`--client-cert-auth`).
    pub fn start_tls() -> Option<Etcd> {
        Etcd::launch(true, &[])
    }

    fn launch(tls: bool, flags: &[&str]) -> Option<Etcd> {
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
        let scheme = if tls { "etcds" } else { "etcd" };
        let client = match tls {
            true => format!("https://127.0.0.1:{client_port}"),
            false => format!("http://127.0.0.1:{client_port}"),
        };
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", "hf-test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("hf-test={peer}")])
            .args(flags);
        let pki = tls.then(|| {
            let p = dir.path().to_path_buf();
            let leaves: [(&str, &[&str]); 3] = [
                ("", &["127.0.0.1"]),
                ("client", &["client"]),
                ("user", &["client"]),
            ];
            super::pki::pki_leaves_with(&p, PKI, &leaves, &["user"]);
            cmd.arg("--cert-file").arg(p.join("etcd-cert.pem"));
            cmd.arg("--key-file").arg(p.join("etcd-key.pem"));
            cmd.arg("--trusted-ca-file").arg(p.join("etcd-ca.pem"));
            cmd.arg("--client-cert-auth");
            p
        });
        let args: Vec<std::ffi::OsString> = cmd.get_args().map(Into::into).collect();
        let child = spawn(&args, &dir);
        let etcd = Etcd {
            child,
            client_port,
            scheme,
            pki,
            args,
            dir,
        };
        etcd.wait_ready();
        Some(etcd)
    }

    /// `etcd://127.0.0.1:PORT/PREFIX` (`etcds://` with TLS).
    pub fn url(&self, prefix: &str) -> String {
        format!("{}://127.0.0.1:{}/{prefix}", self.scheme, self.client_port)
    }

    /// A file of the test PKI (TLS only).
    pub fn pki_file(&self, name: &str) -> String {
        let dir = self.pki.as_ref().expect("etcd started with TLS");
        dir.join(format!("{PKI}-{name}.pem")).display().to_string()
    }

    /// What a node needs to get in: the CA and the client certificate (TLS only).
    pub fn access(&self) -> EtcdAccess {
        match self.pki {
            Some(_) => EtcdAccess {
                cacert: Some(self.pki_file("ca").into()),
                cert: Some(self.pki_file("client-cert").into()),
                key: Some(self.pki_file("client-key").into()),
                ..Default::default()
            },
            None => EtcdAccess::default(),
        }
    }

    /// The same, as `hfabric serve` flags.
    pub fn tls_flags(&self) -> Vec<String> {
        match self.pki {
            Some(_) => vec![
                "--etcd-cacert".into(),
                self.pki_file("ca"),
                "--etcd-cert".into(),
                self.pki_file("client-cert"),
                "--etcd-key".into(),
                self.pki_file("client-key"),
            ],
            None => Vec::new(),
        }
    }

    /// `hfabric serve` flags for a node that also logs in as a user: the CA and the client
    /// certificate without a CommonName (TLS only).
    pub fn user_tls_flags(&self) -> Vec<String> {
        let mut flags = self.tls_flags();
        flags[3] = self.pki_file("user-cert");
        flags[5] = self.pki_file("user-key");
        flags
    }

    /// A client of this etcd with `access` (the library's own).
    pub fn client(&self, access: &EtcdAccess) -> EtcdClient {
        let url = self.url("hf").parse().expect("an etcd URL");
        EtcdClient::new(url, access).expect("an etcd client")
    }

    /// A file in etcd's temp dir holding `text`.
    pub fn write_file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("a file for etcd's test");
        path.display().to_string()
    }

    /// Turns on etcd's authentication with the user `root` (role root) and `password`.
    pub fn enable_auth(&self, password: &str) {
        let c = self.client(&self.access());
        let steps = [
            (
                "/v3/auth/user/add",
                json!({"name": "root", "password": password}),
            ),
            (
                "/v3/auth/user/grant",
                json!({"user": "root", "role": "root"}),
            ),
            ("/v3/auth/enable", json!({})),
        ];
        for (path, body) in steps {
            if let Err(e) = c.request(path, body) {
                panic!("etcd {path}: {e}");
            }
        }
    }

    /// Kills etcd (SIGKILL), waits `down`, and starts it again on the same ports and data
    /// directory; returns once it grants leases again.
    pub fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = spawn(&self.args, &self.dir);
        self.wait_ready();
    }

    /// Until a lease can be granted (etcd has elected itself leader).
    fn wait_ready(&self) {
        let until = Instant::now() + START_WAIT;
        let client = self.client(&self.access());
        while Instant::now() < until {
            if client.grant(5).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "etcd on port {} not healthy within {START_WAIT:?}",
            self.client_port
        );
    }
}

/// `etcd ARGS`, its stderr appended to `etcd.log` in `dir`.
fn spawn(args: &[std::ffi::OsString], dir: &tempfile::TempDir) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("etcd.log"))
        .expect("etcd log");
    Command::new("etcd")
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn etcd")
}

/// Joins node `id` through `etcd` (prefix `prefix`, a 2 s lease) in this process: for tests
/// that drive the library's API while other members are processes.
pub fn join_here(etcd: &Etcd, prefix: &str, id: &str) -> hyperfabric::membership::Joined {
    join_with(etcd, prefix, id, etcd.access()).unwrap_or_else(|e| panic!("{id} joins: {e}"))
}

/// [`join_here`] with `access`: the join's result.
pub fn join_with(
    etcd: &Etcd,
    prefix: &str,
    id: &str,
    access: EtcdAccess,
) -> hyperfabric::Result<hyperfabric::membership::Joined> {
    use hyperfabric::bootstrap::Launch;
    let launch = Launch::explicit(1);
    let opts = hyperfabric::membership::JoinOptions {
        launch,
        file: None,
        node_id: Some(id.to_owned()),
        listen: None,
        timeout: Duration::from_secs(60),
        lease: Duration::from_secs(2),
        etcd: Some(etcd.url(prefix).parse().expect("an etcd URL")),
        etcd_access: access,
    };
    hyperfabric::membership::join(opts, |b| b)
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
