//! A TCP proxy that delays the bytes flowing from its clients to the upstream address: a slow
//! hop between two real processes (pure added latency, no loss, no bandwidth cap). The delay
//! can be changed while connections are open, so a fault can start and end in a running node.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub struct DelayProxy {
    pub addr: SocketAddr,
    delay_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    pub fn start(upstream: SocketAddr, delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let delay_us = Arc::new(AtomicU64::new(delay.as_micros() as u64));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (Arc::clone(&delay_us), Arc::clone(&stop));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                pump(&client, &server, Some(Arc::clone(&d)));
                pump(&server, &client, None);
            }
        });
        DelayProxy {
            addr,
            delay_us,
            stop,
        }
    }

    pub fn set_delay(&self, d: Duration) {
        self.delay_us.store(d.as_micros() as u64, Ordering::Release);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies `from` to `to`; with a delay, every chunk leaves `delay` after it arrived.
fn pump(from: &TcpStream, to: &TcpStream, delay: Option<Arc<AtomicU64>>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for (at, bytes) in rx {
            if let Some(d) = &delay {
                let due = at + Duration::from_micros(d.load(Ordering::Acquire));
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Like `Server::start_with`, with environment variables for the child (e.g. `HF_FAULTS`).
pub fn serve_env(
    config: &std::path::Path,
    node: &str,
    extra: &[String],
    env: &[(&str, String)],
) -> crate::support::Server {
    use std::io::BufRead;
    let log = config.with_file_name(format!("{node}-{}-env.log", std::process::id()));
    let mut cmd = std::process::Command::new(crate::support::BIN);
    cmd.args([
        "serve",
        "--json",
        "--node",
        node,
        "--listen",
        "127.0.0.1:0",
        "--config",
    ])
    .arg(config)
    .args(extra)
    .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn hfabric serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("ready line {line:?}: {e}"));
    let addr = v["addr"].as_str().expect("addr").parse().expect("address");
    crate::support::Server {
        child,
        addr,
        log,
        ready: v,
    }
}
