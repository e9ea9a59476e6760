//! `[membership]`: where this fabric's node records live (etcd) and how a node gets in —
//! the fabric-file form of `hfabric serve --membership` and its `--etcd-*` flags, which
//! override it field by field.
//!
//! ```toml
//! [membership]
//! url = "etcds://10.0.0.2:2379/hf/lab"   # etcd://HOST:PORT/prefix, etcds:// for TLS
//! cacert = "etcd-ca.pem"                 # etcds:// only: the CA etcd's certificate chains to
//! cert = "etcd-client.pem"               # etcds:// only: a client certificate, with `key`
//! key = "etcd-client.key"
//! user = "hf-node"                       # an etcd user (RBAC) ...
//! password_file = "etcd-password"        # ... whose password is in this file (else HF_ETCD_PASSWORD)
//! ```
//!
//! Paths are relative to the fabric file's directory. A password itself is never accepted
//! in the file (`password` is refused, saying where it goes).

use serde::{Deserialize, Serialize};

/// Longest key prefix accepted in a URL.
const MAX_PREFIX_BYTES: usize = 256;
/// Longest etcd user name.
pub const MAX_USER_BYTES: usize = 256;

/// `etcd://HOST:PORT/prefix` (plain HTTP) or `etcds://HOST:PORT/prefix` (TLS), checked once.
#[derive(Clone, Debug, PartialEq)]
pub struct EtcdUrl {
    /// `etcds://`: requests go over TLS.
    pub tls: bool,
    /// `HOST:PORT` as given.
    pub authority: String,
    /// The key prefix, `/prefix` without a trailing slash.
    pub prefix: String,
}

impl std::fmt::Display for EtcdUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "etcds" } else { "etcd" };
        write!(f, "{scheme}://{}{}", self.authority, self.prefix)
    }
}

impl Serialize for EtcdUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for EtcdUrl {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<EtcdUrl, String> {
        let (tls, rest) = match (s.strip_prefix("etcd://"), s.strip_prefix("etcds://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => {
                return Err(format!(
                    "`{s}`: expected etcd://HOST:PORT/prefix (etcds:// for TLS)"
                ))
            }
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: no /prefix after HOST:PORT"))?;
        let port = authority
            .rsplit_once(':')
            .map(|(h, p)| (h, p.parse::<u16>()))
            .filter(|(h, p)| !h.is_empty() && matches!(p, Ok(n) if *n > 0));
        if port.is_none() {
            return Err(format!(
                "`{s}`: `{authority}` is not HOST:PORT with a port above 0"
            ));
        }
        let prefix = path.trim_end_matches('/');
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES {
            return Err(format!(
                "`{s}`: the prefix must be 1..={MAX_PREFIX_BYTES} bytes"
            ));
        }
        if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "`{s}`: the prefix has blanks or control characters"
            ));
        }
        Ok(EtcdUrl {
            tls,
            authority: authority.to_owned(),
            prefix: format!("/{prefix}"),
        })
    }
}

/// Why `password` is refused in the file.
pub const PASSWORD_REFUSED: &str = "a password is never written in the fabric file: put it in \
     a file named by membership.password_file (or --etcd-password-file), or in the \
     environment variable HF_ETCD_PASSWORD";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMembership {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cacert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// Refused with [`PASSWORD_REFUSED`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<toml::Value>,
}

/// The checked `[membership]` table (all absent: no etcd unless a caller names one).
/// Paths as written (relative to the file's directory, see
/// [`super::SecurityConfig::resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MembershipConfig {
    pub url: Option<EtcdUrl>,
    pub cacert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub user: Option<String>,
    pub password_file: Option<String>,
}

type Problem = (String, String);

fn at(f: &str) -> String {
    format!("membership.{f}")
}

/// Checks the file's `[membership]`: what cannot work or would be ignored is refused here.
pub(crate) fn build(raw: Option<&RawMembership>) -> Result<MembershipConfig, Problem> {
    let Some(r) = raw else {
        return Ok(MembershipConfig::default());
    };
    if r.password.is_some() {
        return Err((at("password"), PASSWORD_REFUSED.into()));
    }
    let path = |field: &str, v: &Option<String>| match v {
        Some(p) if p.trim().is_empty() => Err((at(field), "the path must not be empty".into())),
        other => Ok(other.clone()),
    };
    let url = match &r.url {
        Some(u) => Some(u.parse::<EtcdUrl>().map_err(|why| (at("url"), why))?),
        None => None,
    };
    let m = MembershipConfig {
        url,
        cacert: path("cacert", &r.cacert)?,
        cert: path("cert", &r.cert)?,
        key: path("key", &r.key)?,
        user: r.user.clone(),
        password_file: path("password_file", &r.password_file)?,
    };
    check(&m)?;
    Ok(m)
}

fn check(m: &MembershipConfig) -> Result<(), Problem> {
    let tls_files = [("cacert", &m.cacert), ("cert", &m.cert), ("key", &m.key)];
    let needs_url = [
        ("cacert", &m.cacert),
        ("cert", &m.cert),
        ("key", &m.key),
        ("user", &m.user),
    ];
    let set = needs_url.iter().find(|(_, v)| v.is_some());
    let Some(url) = &m.url else {
        return match (set, &m.password_file) {
            (Some((f, _)), _) => Err((
                at(f),
                "needs membership.url: without it no node uses etcd".into(),
            )),
            (None, Some(_)) => Err((
                at("password_file"),
                "needs membership.url and membership.user".into(),
            )),
            (None, None) => Ok(()),
        };
    };
    if let (false, Some((f, _))) = (url.tls, tls_files.iter().find(|(_, v)| v.is_some())) {
        return Err((
            at(f),
            format!("a CA, certificate or key applies to TLS: write etcds://, not {url}"),
        ));
    }
    if m.cert.is_some() != m.key.is_some() {
        let f = if m.cert.is_some() { "key" } else { "cert" };
        return Err((
            at(f),
            "a client certificate needs its key, and a key its certificate".into(),
        ));
    }
    if let Some(u) = &m.user {
        if u.is_empty() || u.contains(':') || u.len() > MAX_USER_BYTES {
            return Err((
                at("user"),
                format!(
                    "must be 1..={MAX_USER_BYTES} bytes with no `:` (the password goes in \
                     membership.password_file or HF_ETCD_PASSWORD)"
                ),
            ));
        }
    }
    if m.password_file.is_some() && m.user.is_none() {
        return Err((
            at("password_file"),
            "a password file without membership.user".into(),
        ));
    }
    Ok(())
}

/// Writes `[membership]` back (nothing when no field is set).
pub(crate) fn render(out: &mut String, m: &MembershipConfig) {
    use std::fmt::Write;
    if *m == MembershipConfig::default() {
        return;
    }
    out.push_str("\n[membership]\n");
    let url = m.url.as_ref().map(ToString::to_string);
    let fields = [
        ("url", &url),
        ("cacert", &m.cacert),
        ("cert", &m.cert),
        ("key", &m.key),
        ("user", &m.user),
        ("password_file", &m.password_file),
    ];
    for (key, v) in fields {
        if let Some(v) = v {
            let _ = writeln!(out, "{key} = {}", toml::Value::from(v.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_say_why() {
        let u: EtcdUrl = "etcd://10.0.0.2:2379/hf/lab/".parse().unwrap();
        assert_eq!(u.authority, "10.0.0.2:2379");
        assert_eq!(u.prefix, "/hf/lab");
        assert_eq!(u.to_string(), "etcd://10.0.0.2:2379/hf/lab");
        assert!(!u.tls);
        let s: EtcdUrl = "etcds://etcd.example:2379/hf".parse().unwrap();
        assert!(s.tls);
        assert_eq!(s.to_string(), "etcds://etcd.example:2379/hf");
        for (bad, says) in [
            ("http://h:1/p", "expected etcd://"),
            ("etcd://h:1", "no /prefix"),
            ("etcd://h/p", "not HOST:PORT"),
            ("etcd://h:0/p", "not HOST:PORT"),
            ("etcd://h:1/", "prefix must be"),
            ("etcd://h:1/a b", "blanks"),
        ] {
            let e = bad.parse::<EtcdUrl>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    fn load(table: &str) -> Result<crate::config::FabricConfig, crate::Error> {
        let text = format!(
            "[fabric]\nname = \"t\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n\
             [membership]\n{table}"
        );
        crate::config::FabricConfig::from_toml_str(&text, "f.toml")
    }

    #[test]
    fn the_table_loads_and_renders_back() {
        let cfg = load(
            "url = \"etcds://h:2379/hf\"\ncacert = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n\
             user = \"u\"\npassword_file = \"pw\"\n",
        )
        .unwrap();
        let m = &cfg.membership;
        assert_eq!(m.url.as_ref().map(|u| u.tls), Some(true));
        assert_eq!(m.password_file.as_deref(), Some("pw"));
        let back =
            crate::config::FabricConfig::from_toml_str(&cfg.to_toml_string(), "f.toml").unwrap();
        assert_eq!(back.membership, cfg.membership);
    }

    #[test]
    fn what_cannot_work_is_refused_naming_the_field() {
        for (table, field, says) in [
            (
                "url = \"http://h:1/p\"\n",
                "membership.url",
                "expected etcd://",
            ),
            (
                "url = \"etcd://h:1/p\"\npassword = \"x\"\n",
                "membership.password",
                "never written",
            ),
            (
                "url = \"etcd://h:1/p\"\ncacert = \"ca\"\n",
                "membership.cacert",
                "write etcds://",
            ),
            (
                "url = \"etcds://h:1/p\"\ncert = \"c\"\n",
                "membership.key",
                "needs its key",
            ),
            (
                "url = \"etcd://h:1/p\"\nuser = \"u:pw\"\n",
                "membership.user",
                "no `:`",
            ),
            (
                "url = \"etcd://h:1/p\"\npassword_file = \"f\"\n",
                "membership.password_file",
                "without membership.user",
            ),
            ("user = \"u\"\n", "membership.user", "needs membership.url"),
            (
                "url = \"etcds://h:1/p\"\ncacert = \" \"\n",
                "membership.cacert",
                "empty",
            ),
        ] {
            match load(table) {
                Err(crate::Error::Config {
                    file,
                    field: f,
                    reason,
                }) => {
                    assert_eq!((file.as_str(), f.as_str()), ("f.toml", field), "{reason}");
                    assert!(reason.contains(says), "{field}: {reason}");
                }
                other => panic!("{table}: {other:?}"),
            }
        }
    }
}
