//! A client of the rendezvous store: one connection per request, every step under a deadline.

use super::kvwire::{self, Op, Request};
use crate::auth::{Role, Secret};
use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long one request may take (connect, proofs, answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read (a LIST of a full store).
const MAX_BODY_BYTES: usize = kvwire::MAX_STORE_BYTES + 6 * kvwire::MAX_KEYS;

#[derive(Clone, Debug)]
pub struct StoreClient {
    /// As given (`HOST:PORT`), resolved on every request: the master may come up later.
    target: String,
    secret: Option<Secret>,
}

impl StoreClient {
    pub fn new(host: &str, port: u16, secret: Option<Secret>) -> StoreClient {
        let target = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        StoreClient { target, secret }
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn resolve(&self) -> Result<SocketAddr> {
        self.target
            .to_socket_addrs()
            .map_err(|e| Error::io(format!("resolving the rendezvous store {}", self.target), e))?
            .next()
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{} resolves to no address", self.target))
            })
    }

    pub fn put(&self, key: &str, value: &[u8], ttl_ms: u32) -> Result<()> {
        self.call(Op::Put, key, value, ttl_ms).map(|_| ())
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.call(Op::Get, key, &[], 0)
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        self.call(Op::Delete, key, &[], 0).map(|_| ())
    }

    pub fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let body = self.call(Op::List, prefix, &[], 0)?.unwrap_or_default();
        kvwire::parse_entries(&body).map_err(|e| self.err("reading a LIST answer", e))
    }

    fn err(&self, what: &str, e: std::io::Error) -> Error {
        Error::io(format!("rendezvous store {}: {what}", self.target), e)
    }

    /// One request; `Ok(None)` for "not found".
    fn call(&self, op: Op, key: &str, value: &[u8], ttl_ms: u32) -> Result<Option<Vec<u8>>> {
        if key.len() > kvwire::MAX_KEY_BYTES || value.len() > kvwire::MAX_VALUE_BYTES {
            return Err(Error::InvalidArgument(format!(
                "rendezvous: key `{key}` or its value of {} bytes is over the store's limits",
                value.len()
            )));
        }
        let addr = self.resolve()?;
        let mut s = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)
            .map_err(|e| self.err("connecting", e))?;
        let io = |e| self.err("talking", e);
        s.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
        s.set_write_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
        let magic: [u8; 6] = kvwire::read_array(&mut s).map_err(io)?;
        if &magic != kvwire::MAGIC {
            return Err(Error::Rejected {
                reason: format!("{} is not a HyperFabric rendezvous store", self.target),
            });
        }
        let store: [u8; 32] = kvwire::read_array(&mut s).map_err(io)?;
        let mine = crate::auth::challenge();
        let secret = self.secret.as_ref();
        let mut hello = [0u8; 64];
        hello[..32].copy_from_slice(&mine);
        hello[32..].copy_from_slice(&kvwire::prove(secret, Role::Dialer, &mine, &store));
        s.write_all(&hello).map_err(io)?;
        let proof: [u8; 32] = kvwire::read_array(&mut s).map_err(|e| {
            self.err(
                "reading the store's proof (does it hold the same secret?)",
                e,
            )
        })?;
        if !kvwire::verify(secret, Role::Acceptor, &mine, &store, &proof) {
            return Err(Error::Rejected {
                reason: format!(
                    "the rendezvous store {} does not prove the secret",
                    self.target
                ),
            });
        }
        let req = Request {
            op,
            ttl_ms,
            key: key.as_bytes(),
            value,
        };
        kvwire::write_request(&mut s, &req).map_err(io)?;
        let head: [u8; 5] = kvwire::read_array(&mut s).map_err(io)?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let body = kvwire::read_bounded(&mut s, len, MAX_BODY_BYTES, "answer").map_err(io)?;
        let mut rest = [0u8; 1];
        if s.read(&mut rest).map_err(io)? != 0 {
            return Err(self.err(
                "reading",
                std::io::Error::other("trailing bytes after the answer"),
            ));
        }
        match head[0] {
            kvwire::STATUS_OK => Ok(Some(body)),
            kvwire::STATUS_NOT_FOUND => Ok(None),
            _ => Err(Error::Rejected {
                reason: format!("rendezvous store: {}", String::from_utf8_lossy(&body)),
            }),
        }
    }
}
