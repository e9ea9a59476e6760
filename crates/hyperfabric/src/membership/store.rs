//! The rendezvous store rank 0 serves (like torch's TCPStore): a small authenticated
//! key-value table with time-to-live, bounded in keys, bytes and connections. A peer that
//! sends too much, too slowly or the wrong proof is cut off; the store never waits on one.

use super::kvwire::{self, Op, MAX_KEYS, MAX_STORE_BYTES, MAX_TTL_MS};
use crate::auth::{Role, Secret};
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most connections served at once (each has a thread).
pub const MAX_CONNECTIONS: usize = 64;
/// A connection must finish its request within this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

#[derive(Default)]
struct Table {
    entries: BTreeMap<String, Entry>,
    bytes: usize,
}

impl Table {
    fn expire(&mut self, now: Instant) {
        let bytes = &mut self.bytes;
        self.entries.retain(|k, e| {
            let live = e.expires.is_none_or(|t| t > now);
            if !live {
                *bytes -= k.len() + e.value.len();
            }
            live
        });
    }

    fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: u32,
        now: Instant,
    ) -> std::result::Result<(), String> {
        if ttl_ms > MAX_TTL_MS {
            return Err(format!("ttl {ttl_ms} ms is over {MAX_TTL_MS}"));
        }
        let old = self
            .entries
            .get(&key)
            .map_or(0, |e| key.len() + e.value.len());
        if old == 0 && self.entries.len() >= MAX_KEYS {
            return Err(format!("the store holds its limit of {MAX_KEYS} keys"));
        }
        let bytes = self.bytes - old + key.len() + value.len();
        if bytes > MAX_STORE_BYTES {
            return Err(format!(
                "the store holds its limit of {MAX_STORE_BYTES} bytes"
            ));
        }
        self.bytes = bytes;
        let expires = (ttl_ms > 0).then(|| now + Duration::from_millis(u64::from(ttl_ms)));
        self.entries.insert(key, Entry { value, expires });
        Ok(())
    }

    fn delete(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some(e) => {
                self.bytes -= key.len() + e.value.len();
                true
            }
            None => false,
        }
    }

    fn list(&self, prefix: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, e) in self.entries.range(prefix.to_owned()..) {
            if !k.starts_with(prefix) {
                break;
            }
            kvwire::write_entry(&mut body, k.as_bytes(), &e.value);
        }
        body
    }
}

struct Shared {
    table: Mutex<Table>,
    secret: Option<Secret>,
    open: AtomicUsize,
    stop: AtomicBool,
}

/// A running store; stops (and joins its accept thread) on drop.
pub struct Store {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Store {
    /// Serves on `addr`; clients must prove `secret` when one is given.
    pub fn start(addr: SocketAddr, secret: Option<Secret>) -> Result<Store> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| Error::io(format!("rendezvous store: binding {addr}"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("rendezvous store: reading the bound address", e))?;
        let shared = Arc::new(Shared {
            table: Mutex::new(Table::default()),
            secret,
            open: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("hf-rendezvous".into())
            .spawn(move || accept_loop(&s, &listener))
            .map_err(|e| Error::io("spawning the rendezvous store thread", e))?;
        tracing::info!(%addr, "rendezvous store serving");
        Ok(Store {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if shared.open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("rendezvous store: {MAX_CONNECTIONS} connections open, refusing one");
            continue;
        }
        let s = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("hf-rendezvous-conn".into())
            .spawn(move || {
                if let Err(e) = serve(&s, stream) {
                    tracing::debug!("rendezvous store: connection ended: {e}");
                }
                s.open.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            shared.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn serve(shared: &Shared, mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let deadline = Instant::now() + IO_TIMEOUT;
    let mine = crate::auth::challenge();
    stream.write_all(kvwire::MAGIC)?;
    stream.write_all(&mine)?;
    let theirs: [u8; 32] = kvwire::read_array(&mut stream)?;
    let proof: [u8; 32] = kvwire::read_array(&mut stream)?;
    let secret = shared.secret.as_ref();
    if !kvwire::verify(secret, Role::Dialer, &theirs, &mine, &proof) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "wrong proof of the secret",
        ));
    }
    stream.write_all(&kvwire::prove(secret, Role::Acceptor, &theirs, &mine))?;
    let (op, ttl_ms, key, value) = kvwire::read_request(&mut stream)?;
    if Instant::now() > deadline {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "request too slow"));
    }
    let (status, body) = answer(shared, op, ttl_ms, key, value);
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(status);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    stream.write_all(&out)
}

fn answer(shared: &Shared, op: u8, ttl_ms: u32, key: Vec<u8>, value: Vec<u8>) -> (u8, Vec<u8>) {
    let refuse = |why: String| (kvwire::STATUS_REFUSED, why.into_bytes());
    let Ok(key) = String::from_utf8(key) else {
        return refuse("the key is not UTF-8".into());
    };
    let now = Instant::now();
    let mut table = shared.table.lock();
    table.expire(now);
    match Op::from_u8(op) {
        Some(Op::Put) => match table.put(key, value, ttl_ms, now) {
            Ok(()) => (kvwire::STATUS_OK, Vec::new()),
            Err(why) => refuse(why),
        },
        Some(Op::Get) => match table.entries.get(&key) {
            Some(e) => (kvwire::STATUS_OK, e.value.clone()),
            None => (kvwire::STATUS_NOT_FOUND, Vec::new()),
        },
        Some(Op::Delete) => match table.delete(&key) {
            true => (kvwire::STATUS_OK, Vec::new()),
            false => (kvwire::STATUS_NOT_FOUND, Vec::new()),
        },
        Some(Op::List) => (kvwire::STATUS_OK, table.list(&key)),
        None => refuse(format!("unknown operation {op}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_keys_bytes_and_ttl() {
        let now = Instant::now();
        let mut t = Table::default();
        assert!(t.put("a".into(), vec![0; 10], MAX_TTL_MS + 1, now).is_err());
        t.put("a".into(), vec![0; 10], 1, now).unwrap();
        t.put("b".into(), vec![0; 10], 0, now).unwrap();
        t.expire(now + Duration::from_millis(2));
        assert!(!t.entries.contains_key("a"));
        assert_eq!(t.bytes, 11);
        let big = vec![0; kvwire::MAX_VALUE_BYTES];
        let mut err = None;
        for i in 0..MAX_KEYS + 1 {
            if let Err(e) = t.put(format!("k{i}"), big.clone(), 0, now) {
                err = Some(e);
                break;
            }
        }
        assert!(err.is_some_and(|e| e.contains("limit")));
        assert!(t.bytes <= MAX_STORE_BYTES);
        assert!(t.delete("b") && !t.delete("b"));
    }
}
