//! The flags that get a node into a production etcd, named after etcdctl's: TLS files for
//! an `etcds://` --membership and an RBAC user whose password never is on the command line.

use crate::common::{CliError, CliResult};
use hyperfabric::membership::etcd::EtcdUrl;
use hyperfabric::membership::etcd_access::EtcdAccess;

#[derive(clap::Args, Clone, Debug)]
pub struct EtcdArgs {
    /// With an etcds:// --membership: the CA bundle (PEM) etcd's server certificate must
    /// chain to, as etcdctl's --cacert [default: the system's trust store, SSL_CERT_FILE
    /// or /etc/ssl/certs/ca-certificates.crt]. Refused with etcd://.
    #[arg(long, value_name = "FILE", requires = "membership")]
    pub etcd_cacert: Option<std::path::PathBuf>,
    /// With an etcds:// --membership: the client certificate (PEM chain) shown to an etcd
    /// that asks for one (--client-cert-auth), as etcdctl's --cert. Needs --etcd-key.
    #[arg(long, value_name = "FILE", requires_all = ["membership", "etcd_key"])]
    pub etcd_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --etcd-cert, as etcdctl's --key. Needs --etcd-cert.
    #[arg(long, value_name = "FILE", requires_all = ["membership", "etcd_cert"])]
    pub etcd_key: Option<std::path::PathBuf>,
    /// The etcd user (etcd's RBAC, as etcdctl's --user but without the password): its
    /// password comes from --etcd-password-file, else the environment variable
    /// HF_ETCD_PASSWORD, never from the command line. The token etcd gives for it goes
    /// with every request and is renewed when etcd says it expired. A wrong user or
    /// password is an error naming etcd and the user (exit code 2).
    #[arg(long, value_name = "NAME", requires = "membership")]
    pub etcd_user: Option<String>,
    /// A file holding --etcd-user's password (one line; a trailing newline is dropped).
    #[arg(long, value_name = "FILE", requires = "etcd_user")]
    pub etcd_password_file: Option<std::path::PathBuf>,
}

impl EtcdArgs {
    /// --etcd-cacert, --etcd-cert, --etcd-key, --etcd-user and its password.
    pub fn access(&self) -> CliResult<EtcdAccess> {
        let password = match (&self.etcd_user, &self.etcd_password_file) {
            (None, _) => None,
            // etcdctl's `--user name:password`: refused without echoing it.
            (Some(user), _) if user.contains(':') => {
                return Err(CliError::usage(format!(
                    "--etcd-user: a name without `:`; the password goes in \
                     --etcd-password-file FILE or the environment variable {PASSWORD_ENV}, \
                     never on the command line"
                )))
            }
            (Some(_), Some(file)) => Some(EtcdAccess::read_password_file(file)?),
            (Some(user), None) => Some(std::env::var(PASSWORD_ENV).map_err(|_| {
                CliError::usage(format!(
                    "--etcd-user {user}: give its password in --etcd-password-file FILE or \
                     the environment variable {PASSWORD_ENV}"
                ))
            })?),
        };
        Ok(EtcdAccess {
            cacert: self.etcd_cacert.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
            user: self.etcd_user.clone(),
            password,
        })
    }

    /// What `--json` says of the etcd settings (never the password); null without etcd.
    pub fn summary(&self, membership: Option<&EtcdUrl>) -> serde_json::Value {
        let Some(url) = membership else {
            return serde_json::Value::Null;
        };
        // The files and the user as given; the password is not read again (nor shown).
        let access = EtcdAccess {
            cacert: self.etcd_cacert.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
            user: self.etcd_user.clone(),
            password: None,
        };
        serde_json::to_value(access.summary(url)).unwrap_or_default()
    }
}

/// Where --etcd-user's password is read when no --etcd-password-file is given.
pub const PASSWORD_ENV: &str = "HF_ETCD_PASSWORD";
