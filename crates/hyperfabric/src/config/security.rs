//! `[fabric]` security settings: the membership secret and TLS. Paths are kept as written
//! (relative to the fabric file's directory) so a file renders back unchanged; the files
//! themselves are read when a node starts (see `crate::auth`), not when the file is parsed.

use super::raw::RawFabric;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The part of a fabric file that says how nodes prove membership and protect TCP links.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecurityConfig {
    /// `secret_file`: a key (at least 32 bytes) every member holds; proves membership in the
    /// handshake by HMAC challenge-response.
    pub secret_file: Option<String>,
    /// `node_keys`: a directory of per-node Ed25519 keys (`<id>.pub` for every node, this
    /// node's `<id>.key`); each node proves its own id in the handshake (`auth::identity`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_keys: Option<String>,
    /// `observer_keys` (with `node_keys` only): a directory of the public keys (`<id>.pub`)
    /// of monitors that may join as observers without a node entry; on a monitor's host
    /// also its `<id>.key`. An observer proves the key listed for the id it claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observer_keys: Option<String>,
    /// `encryption_enabled`: TCP links carry TLS 1.3.
    pub encryption_enabled: bool,
    /// `tls_cert`, `tls_key`: this node's certificate chain and private key (PEM). `{node}`
    /// in a path is replaced by the node id (one certificate per node).
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// `tls_ca`: the certificates (PEM) that sign every member's certificate.
    pub tls_ca: Option<String>,
}

impl SecurityConfig {
    /// A path from the fabric file, relative to the directory of `source` (the file path),
    /// with `{node}` replaced by `node`.
    pub fn resolve(source: &str, written: &str, node: &str) -> PathBuf {
        let path = PathBuf::from(written.replace("{node}", node));
        if path.is_absolute() {
            return path;
        }
        match Path::new(source).parent() {
            Some(dir) => dir.join(path),
            None => path,
        }
    }
}

/// Reads and checks the security fields of `[fabric]`. Errors are (field, reason).
pub(crate) fn build(f: &RawFabric) -> Result<SecurityConfig, (String, String)> {
    let path = |field: &str, v: &Option<String>| -> Result<Option<String>, (String, String)> {
        match v {
            Some(p) if p.trim().is_empty() => Err((
                format!("fabric.{field}"),
                "the path must not be empty".into(),
            )),
            other => Ok(other.clone()),
        }
    };
    let sec = SecurityConfig {
        secret_file: path("secret_file", &f.secret_file)?,
        node_keys: path("node_keys", &f.node_keys)?,
        observer_keys: path("observer_keys", &f.observer_keys)?,
        encryption_enabled: f.encryption_enabled.unwrap_or(false),
        tls_cert: path("tls_cert", &f.tls_cert)?,
        tls_key: path("tls_key", &f.tls_key)?,
        tls_ca: path("tls_ca", &f.tls_ca)?,
    };
    if sec.node_keys.is_some() && sec.secret_file.is_some() {
        return Err((
            "fabric.node_keys".into(),
            "set node_keys or secret_file, not both: per-node keys prove membership and each \
             node's own id, a shared secret would add nothing to them"
                .into(),
        ));
    }
    if sec.observer_keys.is_some() && sec.node_keys.is_none() {
        return Err((
            "fabric.observer_keys".into(),
            "observer_keys lists observers' per-node keys and needs node_keys; with a \
             secret_file (or no credentials) an observer proves what a member proves"
                .into(),
        ));
    }
    if sec.encryption_enabled {
        for (field, v) in [
            ("tls_cert", &sec.tls_cert),
            ("tls_key", &sec.tls_key),
            ("tls_ca", &sec.tls_ca),
        ] {
            if v.is_none() {
                return Err((
                    format!("fabric.{field}"),
                    "encryption_enabled = true needs tls_cert, tls_key and tls_ca (PEM files)"
                        .into(),
                ));
            }
        }
    }
    Ok(sec)
}

/// Writes the security fields back as `[fabric]` lines.
pub(crate) fn render(out: &mut String, s: &SecurityConfig) {
    use std::fmt::Write;
    let quoted = |v: &str| toml::Value::from(v).to_string();
    if let Some(p) = &s.secret_file {
        let _ = writeln!(out, "secret_file = {}", quoted(p));
    }
    if let Some(p) = &s.node_keys {
        let _ = writeln!(out, "node_keys = {}", quoted(p));
    }
    if let Some(p) = &s.observer_keys {
        let _ = writeln!(out, "observer_keys = {}", quoted(p));
    }
    if s.encryption_enabled {
        let _ = writeln!(out, "encryption_enabled = true");
    }
    for (key, v) in [
        ("tls_cert", &s.tls_cert),
        ("tls_key", &s.tls_key),
        ("tls_ca", &s.tls_ca),
    ] {
        if let Some(p) = v {
            let _ = writeln!(out, "{key} = {}", quoted(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_next_to_the_fabric_file() {
        let p = SecurityConfig::resolve("/etc/hf/fabric.toml", "keys/{node}.pem", "gpu-01");
        assert_eq!(p, PathBuf::from("/etc/hf/keys/gpu-01.pem"));
        let p = SecurityConfig::resolve("fabric.toml", "fabric.key", "a");
        assert_eq!(p, PathBuf::from("fabric.key"));
        let p = SecurityConfig::resolve("/x/fabric.toml", "/abs/k", "a");
        assert_eq!(p, PathBuf::from("/abs/k"));
    }

    #[test]
    fn observer_keys_need_node_keys() {
        let text = "[fabric]\nname = \"t\"\nsecret_file = \"k\"\nobserver_keys = \"obs\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n";
        let err = crate::config::FabricConfig::from_toml_str(text, "t.toml").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("fabric.observer_keys") && text.contains("needs node_keys"),
            "{text}"
        );
    }

    #[test]
    fn node_keys_and_a_shared_secret_exclude_each_other() {
        let text = "[fabric]\nname = \"t\"\nsecret_file = \"k\"\nnode_keys = \"keys\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n";
        let err = crate::config::FabricConfig::from_toml_str(text, "t.toml").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("fabric.node_keys") && text.contains("not both"),
            "{text}"
        );
    }
}
