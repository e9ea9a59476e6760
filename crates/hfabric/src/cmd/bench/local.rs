//! The local fabric `bench` starts by itself: `hfabric serve --node node-b` as a child on a
//! free loopback port, killed when dropped.

use super::LOCAL_FABRIC;
use crate::common::{CliError, CliResult};
use hyperfabric::config::ProfileName;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

pub struct LocalServer {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// The key file the bundled fabric names in `secret_file`.
const LOCAL_KEY: &str = "local.key";

impl LocalServer {
    /// The ephemeral secret of this local fabric (for the bench's own node).
    pub fn secret_path(&self) -> std::path::PathBuf {
        self._dir.path().join(LOCAL_KEY)
    }

    /// Starts the server and waits for its JSON ready line.
    pub fn start(
        profile: Option<ProfileName>,
        pin: Option<usize>,
        transport: crate::common::TransportArg,
    ) -> CliResult<LocalServer> {
        let dir = tempfile::tempdir()?;
        let cfg_path = dir.path().join("local.toml");
        std::fs::write(&cfg_path, LOCAL_FABRIC)?;
        // An ephemeral fabric secret for this run only (the file names it `local.key`).
        crate::cmd::keygen::write_key(&dir.path().join(LOCAL_KEY))?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args([
            "serve",
            "--json",
            "--node",
            "node-b",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&cfg_path);
        if let Some(p) = profile {
            cmd.args(["--profile", p.as_str()]);
        }
        let transport = match transport {
            crate::common::TransportArg::Auto => "auto",
            crate::common::TransportArg::Tcp => "tcp",
            crate::common::TransportArg::Shm => "shm",
        };
        cmd.args(["--transport", transport]);
        // The receiving application reads every byte it gets: a receiver that never touched
        // them would let a shared-memory copy stay in the sender's cache (nothing would cross
        // between the cores), which no real consumer does.
        cmd.arg("--read-all");
        if let Some(cpu) = pin {
            cmd.args(["--pin", &cpu.to_string()]);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd.stdout(Stdio::piped()).stdin(Stdio::null()).spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| CliError::failed("no stdout from the local server"))?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let addr = read
            .ok()
            .and_then(|_| serde_json::from_str::<serde_json::Value>(&line).ok())
            .and_then(|v| v["addr"].as_str()?.parse().ok());
        match addr {
            Some(addr) => Ok(LocalServer {
                child,
                addr,
                _dir: dir,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(CliError::failed(format!(
                    "the local server did not start (it said: {:?})",
                    line.trim()
                )))
            }
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
