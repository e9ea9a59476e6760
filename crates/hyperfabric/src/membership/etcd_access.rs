//! How a node gets into a production etcd, as etcdctl does: TLS for `etcds://` URLs (the
//! server verified against `cacert`, else the system's trust store; `cert`/`key` shown
//! when etcd asks for a client certificate) and a user whose password buys a token
//! (`POST /v3/auth/authenticate`), sent as `Authorization` on every request and bought
//! anew, once per request, when etcd says it expired. With both, the client certificate
//! must have no CommonName: etcd's JSON gateway refuses one while authentication is on
//! (the user comes from the token instead).

use super::etcd::EtcdUrl;
use super::http::Endpoint;
use crate::error::{Error, Result};
use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use std::path::PathBuf;
use std::sync::Arc;

/// Longest password or password file accepted.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest token accepted from etcd (a simple token is ~20 bytes, a JWT under 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Largest certificate or key file read.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// TLS files and a user for etcd; all optional. `Debug` never shows the password.
#[derive(Clone, Default)]
pub struct EtcdAccess {
    /// CA bundle etcd's server certificate must chain to (etcdctl `--cacert`).
    pub cacert: Option<PathBuf>,
    /// Client certificate chain and its key (etcdctl `--cert`, `--key`).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// etcd user (etcdctl `--user`) and its password.
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for EtcdAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAccess")
            .field("cacert", &self.cacert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// What a report may say about etcd access: the files and the user, never the password.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EtcdSummary {
    pub url: String,
    pub tls: bool,
    /// The CA file, `system` for the system's trust store, null without TLS.
    pub cacert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub user: Option<String>,
}

impl EtcdAccess {
    /// The password of a file (one line; a trailing newline is dropped), bounded.
    pub fn read_password_file(path: &std::path::Path) -> Result<String> {
        let ctx = || format!("reading the etcd password file {}", path.display());
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(ctx(), e))?
            .len();
        if len > MAX_PASSWORD_BYTES as u64 {
            return Err(Error::InvalidArgument(format!(
                "{}: {len} bytes; an etcd password file holds at most {MAX_PASSWORD_BYTES}",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(ctx(), e))?;
        Ok(text.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Refuses settings that would be ignored or cannot work, saying why.
    fn check(&self, url: &EtcdUrl) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("etcd {url}: {m}")));
        if !url.tls && (self.cacert.is_some() || self.cert.is_some() || self.key.is_some()) {
            return bad(
                "a CA, certificate or key applies to TLS: write etcds://, not etcd://".into(),
            );
        }
        if self.cert.is_some() != self.key.is_some() {
            return bad("a client certificate needs its key, and a key its certificate".into());
        }
        match (&self.user, &self.password) {
            // Not echoed: `name:password` would put the password in the logs.
            (Some(u), _) if u.is_empty() || u.contains(':') || u.len() > 256 => bad(
                "the user must be 1..=256 bytes with no `:` (the password comes from a file \
                 or HF_ETCD_PASSWORD, never the command line)"
                    .into(),
            ),
            (Some(u), None) => bad(format!("user `{u}` has no password")),
            (None, Some(_)) => bad("a password without a user".into()),
            (_, Some(p)) if p.len() > MAX_PASSWORD_BYTES => {
                bad(format!("the password is over {MAX_PASSWORD_BYTES} bytes"))
            }
            _ => Ok(()),
        }
    }

    /// The endpoint for `url`: TLS configured from the files when it is `etcds://`.
    pub fn endpoint(&self, url: &EtcdUrl) -> Result<Endpoint> {
        self.check(url)?;
        if self.user.is_some() && !url.tls {
            tracing::warn!("etcd {url}: the password of `--etcd-user` goes in clear over etcd://");
        }
        let tls = match url.tls {
            true => Some(Arc::new(self.tls_config(url)?)),
            false => None,
        };
        Ok(Endpoint {
            authority: url.authority.clone(),
            tls,
        })
    }

    fn tls_config(&self, url: &EtcdUrl) -> Result<rustls::ClientConfig> {
        use crate::auth::tls;
        let who = format!("etcd {url}");
        let roots = match &self.cacert {
            Some(path) => tls::roots_from_file(&who, path)?,
            None => tls::system_roots(&who)?,
        };
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain =
                    tls::certs(&read_pem(&who, cert)?).map_err(|r| file_err(&who, cert, r))?;
                let k = PrivateKeyDer::from_pem_slice(&read_pem(&who, key)?)
                    .map_err(|e| file_err(&who, key, format!("no usable private key: {e}")))?;
                Some((chain, k))
            }
            _ => None,
        };
        tls::client_config(Arc::new(roots), identity)
            .map_err(|r| Error::InvalidArgument(format!("{who}: {r}")))
    }

    /// The report of these settings for `url` (no password).
    pub fn summary(&self, url: &EtcdUrl) -> EtcdSummary {
        let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let cacert = match url.tls {
            true => shown(&self.cacert).or(Some("system".into())),
            false => None,
        };
        EtcdSummary {
            url: url.to_string(),
            tls: url.tls,
            cacert,
            cert: shown(&self.cert),
            key: shown(&self.key),
            user: self.user.clone(),
        }
    }

    /// The user and password that buy tokens, when a user is set.
    pub fn credentials(&self) -> Option<Arc<Credentials>> {
        let (user, password) = (self.user.clone()?, self.password.clone()?);
        Some(Arc::new(Credentials {
            user,
            password,
            token: Mutex::new(None),
        }))
    }
}

fn read_pem(who: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    let ctx = || format!("{who}: reading {}", path.display());
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(ctx(), e))?
        .len();
    if len > MAX_PEM_BYTES {
        return Err(file_err(
            who,
            path,
            format!("{len} bytes, over {MAX_PEM_BYTES}"),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io(ctx(), e))
}

fn file_err(who: &str, path: &std::path::Path, reason: String) -> Error {
    Error::InvalidArgument(format!("{who}: {}: {reason}", path.display()))
}

/// A user, its password, and the token etcd gave for them (shared by the membership
/// thread and the watch thread).
pub struct Credentials {
    pub user: String,
    password: String,
    token: Mutex<Option<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.user)
    }
}

impl Credentials {
    pub fn token(&self) -> Option<String> {
        self.token.lock().clone()
    }

    /// Forgets `stale` (etcd refused it): the next request authenticates again.
    pub fn forget(&self, stale: &str) {
        let mut t = self.token.lock();
        if t.as_deref() == Some(stale) {
            *t = None;
        }
    }

    pub(super) fn set(&self, token: String) {
        *self.token.lock() = Some(token);
    }

    /// The body of `POST /v3/auth/authenticate`.
    pub(super) fn authenticate_body(&self) -> serde_json::Value {
        serde_json::json!({ "name": self.user, "password": self.password })
    }
}

/// A token from etcd as a header value: bounded, visible ASCII only (no header injection).
pub(super) fn check_token(token: &str) -> std::result::Result<(), String> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(format!(
            "a token of {} bytes (1..={MAX_TOKEN_BYTES})",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a token with blanks or control characters".into());
    }
    Ok(())
}

/// etcd (3.4 and later) answers `400 CommonName of client sending a request against gateway
/// will be ignored ...` to every JSON-gateway request whose client certificate has a
/// CommonName while authentication is on: the gateway would otherwise pass the CN on as
/// the user. What to do about it, or "" for any other message.
pub(super) fn common_name_hint(message: &str) -> &'static str {
    match message.contains("CommonName of client") {
        true => {
            " (etcd's JSON gateway refuses a client certificate with a CommonName while \
             authentication is on: give --etcd-cert a certificate without a CommonName, its \
             names in subjectAltName only; the user comes from --etcd-user)"
        }
        false => "",
    }
}

/// Does etcd's answer say the token is no longer good (expired, or etcd restarted)?
pub(super) fn token_refused(status: u16, message: &str) -> bool {
    status == 401 || message.contains("invalid auth token")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> EtcdUrl {
        s.parse().unwrap()
    }

    #[test]
    fn settings_that_cannot_work_are_refused_saying_why() {
        let plain = url("etcd://h:1/p");
        let a = EtcdAccess {
            cacert: Some("ca.pem".into()),
            ..Default::default()
        };
        let e = a.endpoint(&plain).unwrap_err().to_string();
        assert!(e.contains("write etcds://"), "{e}");
        let a = EtcdAccess {
            cert: Some("c.pem".into()),
            ..Default::default()
        };
        let e = a.endpoint(&url("etcds://h:1/p")).unwrap_err().to_string();
        assert!(e.contains("needs its key"), "{e}");
        for (user, pw, says) in [
            (Some("u:pw"), Some("x"), "no `:`"),
            (Some("u"), None, "has no password"),
            (None, Some("x"), "without a user"),
        ] {
            let a = EtcdAccess {
                user: user.map(Into::into),
                password: pw.map(Into::into),
                ..Default::default()
            };
            let e = a.endpoint(&plain).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn the_summary_and_debug_never_show_the_password() {
        let a = EtcdAccess {
            cacert: Some("ca.pem".into()),
            user: Some("root".into()),
            password: Some("hunter2".into()),
            ..Default::default()
        };
        let s = a.summary(&url("etcds://h:1/p"));
        assert_eq!(s.cacert.as_deref(), Some("ca.pem"));
        assert_eq!(s.user.as_deref(), Some("root"));
        let shown = format!("{a:?} {}", serde_json::to_string(&s).unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        let system = EtcdAccess::default().summary(&url("etcds://h:1/p"));
        assert_eq!(system.cacert.as_deref(), Some("system"));
    }

    #[test]
    fn tokens_are_checked_and_a_refusal_recognised() {
        assert!(check_token("abcDEF.12").is_ok());
        assert!(check_token("a\r\nX-Evil: 1").is_err());
        assert!(check_token("").is_err());
        assert!(check_token(&"a".repeat(MAX_TOKEN_BYTES + 1)).is_err());
        assert!(token_refused(401, ""));
        assert!(token_refused(400, "etcdserver: invalid auth token"));
        assert!(!token_refused(400, "etcdserver: user name is empty"));
        let cn = "CommonName of client sending a request against gateway will be ignored";
        assert!(common_name_hint(cn).contains("without a CommonName"));
        assert_eq!(common_name_hint("etcdserver: authentication failed"), "");
    }
}
