//! The etcd a node joins through: what its caller gave (`hfabric serve --membership` and
//! the `--etcd-*` flags, Python's keywords) over the fabric file's `[membership]`, field by
//! field; the password from the caller, else the file's `password_file`, else the
//! environment variable [`PASSWORD_ENV`]. Also what the effective-configuration report
//! says of each field (never the password).

use super::etcd::EtcdUrl;
use super::etcd_access::{EtcdAccess, EtcdSummary};
use crate::config::effective::{Effect, Knob, Source};
use crate::config::FabricConfig;
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where an etcd user's password is read when neither the caller nor the file names a file.
pub const PASSWORD_ENV: &str = "HF_ETCD_PASSWORD";

/// The etcd settings in force.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub url: EtcdUrl,
    pub access: EtcdAccess,
    pub knobs: Vec<Knob>,
}

impl Resolved {
    /// What a report may show: files, user, never the password.
    pub fn summary(&self) -> EtcdSummary {
        self.access.summary(&self.url)
    }
}

/// A path of the file, relative to the file's directory.
fn beside(source: &str, written: &str) -> PathBuf {
    let p = PathBuf::from(written);
    match (p.is_absolute(), Path::new(source).parent()) {
        (false, Some(dir)) => dir.join(p),
        _ => p,
    }
}

/// The caller's `url` and `caller` access over `file`'s `[membership]`; `None` when
/// neither names an etcd (then the caller may not give TLS files or a user either).
/// `env` reads [`PASSWORD_ENV`].
pub fn resolve(
    url: Option<&EtcdUrl>,
    caller: &EtcdAccess,
    file: Option<&FabricConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Resolved>> {
    let m = file.map(|f| &f.membership).cloned().unwrap_or_default();
    let source = file.map_or("", |f| f.source.as_str());
    let url_given = url;
    let Some(url) = url.or(m.url.as_ref()).cloned() else {
        let given = caller.cacert.is_some() || caller.cert.is_some() || caller.key.is_some();
        if given || caller.user.is_some() || caller.password.is_some() {
            return Err(Error::InvalidArgument(
                "etcd TLS files or a user without an etcd to use them with: give \
                 --membership URL (or membership.url in the fabric file)"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let mut knobs = Vec::new();
    let mut pick = |field: &str, ours: Option<String>, theirs: Option<String>| {
        let (value, source) = match (ours, theirs) {
            (Some(v), _) => (v, Source::Api),
            (None, Some(v)) => (v, Source::File),
            (None, None) => return None,
        };
        knobs.push(knob(field, Value::from(value.as_str()), source));
        Some(value)
    };
    let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let file_path =
        |p: &Option<String>| p.as_ref().map(|w| beside(source, w).display().to_string());
    pick(
        "membership.url",
        url_given.map(ToString::to_string),
        m.url.as_ref().map(ToString::to_string),
    );
    let cacert = pick(
        "membership.cacert",
        shown(&caller.cacert),
        file_path(&m.cacert),
    );
    let cert = pick("membership.cert", shown(&caller.cert), file_path(&m.cert));
    let key = pick("membership.key", shown(&caller.key), file_path(&m.key));
    let user = pick("membership.user", caller.user.clone(), m.user.clone());
    let password = match (&user, &caller.password) {
        (None, _) => None,
        (Some(_), Some(p)) => Some(p.clone()),
        (Some(u), None) => Some(password_of(u, &m.password_file, source, env, &mut knobs)?),
    };
    let path = |v: Option<String>| v.map(PathBuf::from);
    let access = EtcdAccess {
        cacert: path(cacert),
        cert: path(cert),
        key: path(key),
        user,
        password,
    };
    detail(&mut knobs, &url);
    Ok(Some(Resolved { url, access, knobs }))
}

/// The password of `user` from the file's `password_file`, else the environment.
fn password_of(
    user: &str,
    file: &Option<String>,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    knobs: &mut Vec<Knob>,
) -> Result<String> {
    if let Some(written) = file {
        let path = beside(source, written);
        let pw = EtcdAccess::read_password_file(&path)?;
        let shown = Value::from(path.display().to_string());
        knobs.push(knob("membership.password_file", shown, Source::File));
        return Ok(pw);
    }
    let Some(pw) = env(PASSWORD_ENV) else {
        return Err(Error::InvalidArgument(format!(
            "etcd user `{user}` has no password: give it in a file (--etcd-password-file FILE, \
             or membership.password_file in the fabric file) or the environment variable \
             {PASSWORD_ENV}"
        )));
    };
    knobs.push(knob(
        "membership.password_env",
        Value::from(PASSWORD_ENV),
        Source::Api,
    ));
    Ok(pw)
}

fn knob(field: &str, value: Value, source: Source) -> Knob {
    Knob {
        field: field.to_owned(),
        value,
        source,
        effect: Effect::Applied,
        detail: String::new(),
    }
}

/// What each field does, for the report.
fn detail(knobs: &mut [Knob], url: &EtcdUrl) {
    for k in knobs {
        let what = match k.field.as_str() {
            "membership.url" => format!(
                "node records in {url}, each under its node's lease; joins and leaves through \
                 etcd's watch"
            ),
            "membership.cacert" => "the CA etcd's certificate must chain to".into(),
            "membership.cert" | "membership.key" => {
                "the client certificate shown to etcd, and its key".into()
            }
            "membership.user" => "the etcd user whose password buys each request's token".into(),
            "membership.password_file" => "the user's password was read from it".into(),
            _ => format!("the user's password was read from the environment ({PASSWORD_ENV})"),
        };
        let by = match k.source {
            Source::Api => "set by the caller (flag or keyword) over the fabric file",
            _ => "from the fabric file",
        };
        k.detail = format!("{what}; {by}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(table: &str) -> FabricConfig {
        let text = format!(
            "[fabric]\nname = \"t\"\n[[nodes]]\nid = \"a\"\nhardware = \"cpu-cluster\"\n\
             [membership]\n{table}"
        );
        FabricConfig::from_toml_str(&text, "/etc/hf/fabric.toml").unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_caller_overrides_the_file_field_by_field() {
        let f = file("url = \"etcds://h:1/hf\"\ncacert = \"ca.pem\"\nuser = \"u\"\n");
        let caller = EtcdAccess {
            cacert: Some("/mine/ca.pem".into()),
            ..Default::default()
        };
        let env = |k: &str| (k == PASSWORD_ENV).then(|| "pw".to_owned());
        let r = resolve(None, &caller, Some(&f), &env).unwrap().unwrap();
        assert_eq!(r.url.to_string(), "etcds://h:1/hf");
        assert_eq!(r.access.cacert, Some("/mine/ca.pem".into()));
        assert_eq!(r.access.user.as_deref(), Some("u"));
        assert_eq!(r.access.password.as_deref(), Some("pw"));
        let source = |f: &str| r.knobs.iter().find(|k| k.field == f).map(|k| k.source);
        assert_eq!(source("membership.url"), Some(Source::File));
        assert_eq!(source("membership.cacert"), Some(Source::Api));
        assert_eq!(source("membership.user"), Some(Source::File));
        assert_eq!(source("membership.password_env"), Some(Source::Api));
        let shown = format!("{:?} {:?}", r.knobs, r.summary());
        assert!(!shown.contains("\"pw\""), "{shown}");
        let other: EtcdUrl = "etcds://other:2/x".parse().unwrap();
        let r = resolve(Some(&other), &caller, Some(&f), &env)
            .unwrap()
            .unwrap();
        let url = r
            .knobs
            .iter()
            .find(|k| k.field == "membership.url")
            .unwrap();
        assert_eq!((&r.url, url.source), (&other, Source::Api));
    }

    #[test]
    fn file_paths_are_beside_the_file_and_a_missing_password_is_refused() {
        let f = file("url = \"etcds://h:1/hf\"\ncert = \"c.pem\"\nkey = \"/abs/c.key\"\n");
        let r = resolve(None, &EtcdAccess::default(), Some(&f), &no_env)
            .unwrap()
            .unwrap();
        assert_eq!(r.access.cert, Some("/etc/hf/c.pem".into()));
        assert_eq!(r.access.key, Some("/abs/c.key".into()));
        let f = file("url = \"etcd://h:1/hf\"\nuser = \"u\"\n");
        let e = resolve(None, &EtcdAccess::default(), Some(&f), &no_env).unwrap_err();
        assert!(e.to_string().contains(PASSWORD_ENV), "{e}");
        let f =
            file("url = \"etcd://h:1/hf\"\nuser = \"u\"\npassword_file = \"/nonexistent/pw\"\n");
        let e = resolve(None, &EtcdAccess::default(), Some(&f), &no_env).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/pw"), "{e}");
    }

    #[test]
    fn no_etcd_anywhere_is_none_and_settings_without_one_are_refused() {
        assert!(resolve(None, &EtcdAccess::default(), None, &no_env)
            .unwrap()
            .is_none());
        let caller = EtcdAccess {
            user: Some("u".into()),
            ..Default::default()
        };
        let e = resolve(None, &caller, None, &no_env).unwrap_err();
        assert!(e.to_string().contains("--membership"), "{e}");
    }
}
