//! Node records in etcd, through its v3 JSON gateway (`POST /v3/kv/put`, `/v3/kv/range`,
//! `/v3/lease/grant|keepalive|revoke`; keys and values base64). Each record lives under
//! the node's own lease: a node that dies stops renewing it and etcd deletes the record.
//! Joins and leaves are seen through etcd's watch on the prefix (`watch.rs`), which wakes
//! the membership thread to read it (one bounded range request); polled while it is down.

use super::etcd_access::{self, Credentials, EtcdAccess};
use super::http::{self, Endpoint, HttpError};
use super::sync::Directory;
use super::RECORD_PREFIX;
use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How long one request to etcd may take (connect, send, whole answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read from etcd.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;
/// Most records one read returns (a larger fabric is refused by the range limit).
pub const MAX_RECORDS: usize = 4096;

pub use crate::config::membership::EtcdUrl;

/// The first key after every key starting with `prefix` (etcd's `range_end`).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

/// A thin client: one request per call, each under [`REQUEST_TIMEOUT`]; with a user, a
/// token bought once and renewed once per request when etcd refuses it.
#[derive(Clone, Debug)]
pub struct EtcdClient {
    pub url: EtcdUrl,
    endpoint: Endpoint,
    credentials: Option<Arc<Credentials>>,
}

impl EtcdClient {
    /// A client of `url` with `access` (TLS files, a user); bad settings are refused here.
    pub fn new(url: EtcdUrl, access: &EtcdAccess) -> Result<EtcdClient> {
        Ok(EtcdClient {
            endpoint: access.endpoint(&url)?,
            credentials: access.credentials(),
            url,
        })
    }

    pub(super) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn io(&self, path: &str, what: String) -> Error {
        Error::io(
            format!("etcd {}{path}", self.url),
            std::io::Error::other(what),
        )
    }

    /// One POST: the status and the answer as JSON.
    fn send(&self, path: &str, body: &[u8], token: Option<&str>) -> Result<(u16, Value)> {
        let req = http::Request {
            path,
            body,
            authorization: token,
        };
        let (status, bytes) = http::post(&self.endpoint, &req, REQUEST_TIMEOUT, MAX_RESPONSE_BYTES)
            .map_err(|e| self.http_error(path, e))?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok((status, v)),
            // etcd's HTTP layer refuses some requests in plain text, before the gateway
            // (a client certificate with a CommonName while authentication is on).
            Err(_) if status != 200 => Ok((status, json!({ "message": plain_text(&bytes) }))),
            Err(e) => Err(self.io(path, format!("HTTP {status}, not JSON: {e}"))),
        }
    }

    fn http_error(&self, path: &str, e: HttpError) -> Error {
        match e {
            HttpError::Tls(why) => Error::Credentials {
                service: format!("etcd {}", self.url),
                reason: format!(
                    "TLS: {why} (is etcd's certificate signed by the CA of --etcd-cacert, or \
                     by one of the system's without it; are --etcd-cert/--etcd-key signed by \
                     a CA etcd trusts?)"
                ),
            },
            e => self.io(path, e.to_string()),
        }
    }

    /// The token to send: the one held, else one bought with the password; `None`
    /// without a user.
    pub fn token(&self) -> Result<Option<String>> {
        let Some(c) = &self.credentials else {
            return Ok(None);
        };
        if let Some(t) = c.token() {
            return Ok(Some(t));
        }
        let path = "/v3/auth/authenticate";
        let (status, v) = self.send(path, c.authenticate_body().to_string().as_bytes(), None)?;
        let refused = |why: String| Error::Credentials {
            service: format!("etcd {}", self.url),
            reason: format!("user `{}`: {why}", c.user),
        };
        match status {
            200 => {}
            400..=499 => {
                let m = message(&v);
                let hint = etcd_access::common_name_hint(&m);
                return Err(refused(format!("HTTP {status}: {m}{hint}")));
            }
            _ => return Err(self.io(path, format!("HTTP {status}: {}", message(&v)))),
        }
        let token = v["token"].as_str().unwrap_or_default();
        etcd_access::check_token(token).map_err(|why| refused(format!("etcd answered {why}")))?;
        c.set(token.to_owned());
        Ok(Some(token.to_owned()))
    }

    /// Forgets a token etcd refused (the next request buys a new one).
    pub(super) fn forget_token(&self, stale: &str) {
        if let Some(c) = &self.credentials {
            c.forget(stale);
        }
    }

    /// One request to the JSON gateway: its answer when HTTP 200. A token etcd refuses is
    /// renewed and the request sent once more; nothing is retried beyond that.
    pub fn request(&self, path: &str, body: Value) -> Result<Value> {
        let body = body.to_string();
        let mut renewed = false;
        loop {
            let token = self.token()?;
            let (status, v) = self.send(path, body.as_bytes(), token.as_deref())?;
            let refused = etcd_access::token_refused(status, &message(&v));
            if let (true, Some(stale), false) = (refused, &token, renewed) {
                tracing::debug!(
                    "etcd {}: the token was refused; authenticating again",
                    self.url
                );
                self.forget_token(stale);
                renewed = true;
                continue;
            }
            return self.judge(path, status, v);
        }
    }

    fn judge(&self, path: &str, status: u16, v: Value) -> Result<Value> {
        let m = message(&v);
        match status {
            200 => Ok(v),
            401 => Err(Error::Credentials {
                service: format!("etcd {}", self.url),
                reason: format!("{path}: HTTP 401: {m}"),
            }),
            // 4xx: etcd refused this request as given; a retry would not change that.
            400..=499 if !etcd_access::common_name_hint(&m).is_empty() => Err(Error::Credentials {
                service: format!("etcd {}", self.url),
                reason: format!(
                    "{path}: HTTP {status}: {m}{}",
                    etcd_access::common_name_hint(&m)
                ),
            }),
            400..=499 => {
                let hint = match m.contains("user name is empty") {
                    true => " (etcd has authentication on: give --etcd-user)",
                    false => "",
                };
                Err(Error::Rejected {
                    reason: format!("etcd {}{path}: HTTP {status}: {m}{hint}", self.url),
                })
            }
            _ => Err(self.io(path, format!("HTTP {status}: {m}"))),
        }
    }

    /// A new lease of `ttl_secs`; its id.
    pub fn grant(&self, ttl_secs: u64) -> Result<i64> {
        let v = self.request("/v3/lease/grant", json!({ "TTL": ttl_secs }))?;
        int(&v["ID"]).ok_or_else(|| self.odd("/v3/lease/grant", "no lease ID"))
    }

    /// Renews `lease`; `false` when etcd no longer has it (it expired).
    pub fn keepalive(&self, lease: i64) -> Result<bool> {
        let v = self.request("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))?;
        Ok(int(&v["result"]["TTL"]).unwrap_or(0) > 0)
    }

    /// Ends `lease`: etcd deletes every key under it.
    pub fn revoke(&self, lease: i64) -> Result<()> {
        self.request("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
            .map(|_| ())
    }

    pub fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<()> {
        let body = json!({
            "key": B64.encode(key), "value": B64.encode(value), "lease": lease.to_string(),
        });
        self.request("/v3/kv/put", body).map(|_| ())
    }

    /// Every value under `prefix` (at most [`MAX_RECORDS`]).
    pub fn values(&self, prefix: &str) -> Result<Vec<Vec<u8>>> {
        let body = json!({
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_end(prefix.as_bytes())),
            "limit": MAX_RECORDS,
        });
        let v = self.request("/v3/kv/range", body)?;
        if v["more"] == true {
            tracing::warn!(
                "etcd {}: over {MAX_RECORDS} records; the rest are not read",
                self.url
            );
        }
        let kvs = v["kvs"].as_array().map(Vec::as_slice).unwrap_or_default();
        kvs.iter()
            .take(MAX_RECORDS)
            .map(|kv| {
                let text = kv["value"].as_str().unwrap_or_default();
                B64.decode(text)
                    .map_err(|e| self.odd("/v3/kv/range", &format!("a value not base64: {e}")))
            })
            .collect()
    }

    fn odd(&self, path: &str, what: &str) -> Error {
        Error::io(
            format!("etcd {}{path}", self.url),
            std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned()),
        )
    }
}

/// etcd's int64s arrive as JSON strings.
fn int(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_i64())
}

/// A plain-text answer as a message: its first line, at most 256 bytes, lossy UTF-8.
fn plain_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]);
    text.lines().next().unwrap_or_default().trim().to_owned()
}

fn message(v: &Value) -> String {
    let m = v["message"].as_str().or(v["error"].as_str());
    m.unwrap_or("(no message)").to_owned()
}

/// etcd as a [`Directory`]: the record under this node's lease, renewed by keep-alives;
/// a lease that expired anyway (a long stall) is granted anew and the record put again.
pub struct EtcdDirectory {
    client: EtcdClient,
    ttl_secs: u64,
    lease: Option<i64>,
    last: Option<(String, Vec<u8>)>,
}

impl EtcdDirectory {
    pub fn new(client: EtcdClient, ttl_secs: u64) -> EtcdDirectory {
        EtcdDirectory {
            client,
            ttl_secs,
            lease: None,
            last: None,
        }
    }

    fn key(&self, id: &str) -> String {
        format!("{}/{RECORD_PREFIX}{id}", self.client.url.prefix)
    }

    fn lease(&mut self) -> Result<i64> {
        match self.lease {
            Some(l) => Ok(l),
            None => {
                let l = self.client.grant(self.ttl_secs)?;
                self.lease = Some(l);
                Ok(l)
            }
        }
    }
}

impl Directory for EtcdDirectory {
    fn publish(&mut self, id: &str, record: &[u8]) -> Result<()> {
        let key = self.key(id);
        let lease = self.lease()?;
        if let Err(e) = self.client.put(&key, record, lease) {
            // Most likely our lease expired (HTTP 404): once more under a fresh one.
            tracing::debug!("etcd: put under lease {lease} failed ({e}); granting a new lease");
            self.lease = None;
            let lease = self.lease()?;
            self.client.put(&key, record, lease)?;
        }
        self.last = Some((id.to_owned(), record.to_vec()));
        Ok(())
    }

    fn withdraw(&mut self, _id: &str) -> Result<()> {
        self.last = None;
        match self.lease.take() {
            Some(l) => self.client.revoke(l),
            None => Ok(()),
        }
    }

    fn records(&mut self) -> Result<Vec<Vec<u8>>> {
        let prefix = format!("{}/{RECORD_PREFIX}", self.client.url.prefix);
        self.client.values(&prefix)
    }

    fn keepalive(&mut self) -> Result<()> {
        let Some(lease) = self.lease else {
            return Ok(());
        };
        if self.client.keepalive(lease)? {
            return Ok(());
        }
        tracing::warn!("etcd: our lease {lease} expired; publishing our record again");
        self.lease = None;
        match self.last.clone() {
            Some((id, record)) => self.publish(&id, &record),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        let scheme = if self.client.url.tls { "etcds" } else { "etcd" };
        let u = &self.client.url;
        format!("{scheme} {}{}", u.authority, u.prefix)
    }

    fn watch(
        &self,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Option<(super::watch::Feed, std::thread::JoinHandle<()>)> {
        let key = format!("{}/{RECORD_PREFIX}", self.client.url.prefix).into_bytes();
        let end = prefix_end(&key);
        let (client, what) = (self.client.clone(), self.describe());
        match super::watch::spawn(client, what, key, end, stop) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("membership: cannot start the etcd watch thread ({e}); polling");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_end_covers_exactly_the_prefix() {
        assert_eq!(prefix_end(b"/hf/node/"), b"/hf/node0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn an_unreachable_etcd_is_an_error_naming_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let url: EtcdUrl = format!("etcd://127.0.0.1:{port}/t").parse().unwrap();
        let client = EtcdClient::new(url, &EtcdAccess::default()).unwrap();
        let e = client.grant(5).unwrap_err().to_string();
        assert!(
            e.contains(&format!("etcd://127.0.0.1:{port}/t/v3/lease/grant")),
            "{e}"
        );
    }

    /// A gateway that gives tokens and refuses every one: the client renews once, then stops.
    #[test]
    fn a_refused_token_is_renewed_once_and_no_more() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = std::thread::spawn(move || {
            let mut paths = Vec::new();
            l.set_nonblocking(true).unwrap();
            let until = std::time::Instant::now() + Duration::from_secs(20);
            while paths.len() < 4 && std::time::Instant::now() < until {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 4096];
                let n = c.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                let (status, body) = match path.as_str() {
                    "/v3/auth/authenticate" => ("200 OK", r#"{"token":"tok"}"#),
                    _ => (
                        "401 Unauthorized",
                        r#"{"message":"etcdserver: invalid auth token"}"#,
                    ),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(answer.as_bytes());
                paths.push((path, head.contains("Authorization: tok")));
            }
            paths
        });
        let url: EtcdUrl = format!("etcd://{addr}/t").parse().unwrap();
        let access = EtcdAccess {
            user: Some("root".into()),
            password: Some("pw".into()),
            ..Default::default()
        };
        let e = EtcdClient::new(url, &access).unwrap().grant(5).unwrap_err();
        assert!(matches!(e, Error::Credentials { .. }), "{e}");
        let paths = seen.join().unwrap();
        let grant = ("/v3/lease/grant".to_owned(), true);
        let auth = ("/v3/auth/authenticate".to_owned(), false);
        assert_eq!(paths, [auth.clone(), grant.clone(), auth, grant]);
    }
}
