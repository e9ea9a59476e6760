//! The flags that get a node into a production etcd, named after etcdctl's: TLS files for
//! an `etcds://` --membership and an RBAC user whose password never is on the command line.

use crate::common::{CliError, CliResult};
use hyperfabric::membership::etcd_access::EtcdAccess;
use hyperfabric::membership::etcd_settings::PASSWORD_ENV;

#[derive(clap::Args, Clone, Debug)]
pub struct EtcdArgs {
    /// With an etcds:// membership URL: the CA bundle (PEM) etcd's server certificate must
    /// chain to, as etcdctl's --cacert [default: the fabric file's membership.cacert, else
    /// the system's trust store, SSL_CERT_FILE or /etc/ssl/certs/ca-certificates.crt].
    /// Refused with etcd://.
    #[arg(long, value_name = "FILE")]
    pub etcd_cacert: Option<std::path::PathBuf>,
    /// With an etcds:// membership URL: the client certificate (PEM chain) shown to an etcd
    /// that asks for one (--client-cert-auth), as etcdctl's --cert. Needs --etcd-key (here
    /// or as the file's membership.key). Over the file's membership.cert.
    #[arg(long, value_name = "FILE")]
    pub etcd_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --etcd-cert, as etcdctl's --key. Over the file's
    /// membership.key.
    #[arg(long, value_name = "FILE")]
    pub etcd_key: Option<std::path::PathBuf>,
    /// The etcd user (etcd's RBAC, as etcdctl's --user but without the password), over the
    /// file's membership.user: its password comes from --etcd-password-file, else the
    /// file's membership.password_file, else the environment variable HF_ETCD_PASSWORD,
    /// never from the command line. The token etcd gives for it goes with every request
    /// and is renewed when etcd says it expired. A wrong user or password is an error
    /// naming etcd and the user (exit code 2).
    #[arg(long, value_name = "NAME")]
    pub etcd_user: Option<String>,
    /// A file holding the etcd user's password (one line; a trailing newline is dropped).
    #[arg(long, value_name = "FILE")]
    pub etcd_password_file: Option<std::path::PathBuf>,
}

impl EtcdArgs {
    /// --etcd-cacert, --etcd-cert, --etcd-key, --etcd-user and --etcd-password-file's
    /// password; the library fills in the rest from the fabric file and the environment.
    pub fn access(&self) -> CliResult<EtcdAccess> {
        // etcdctl's `--user name:password`: refused without echoing it.
        if self.etcd_user.as_ref().is_some_and(|u| u.contains(':')) {
            return Err(CliError::usage(format!(
                "--etcd-user: a name without `:`; the password goes in \
                 --etcd-password-file FILE or the environment variable {PASSWORD_ENV}, \
                 never on the command line"
            )));
        }
        let password = match (&self.etcd_user, &self.etcd_password_file) {
            (Some(_), Some(file)) => Some(EtcdAccess::read_password_file(file)?),
            (None, Some(_)) => {
                return Err(CliError::usage(
                    "--etcd-password-file is the password of --etcd-user: give --etcd-user",
                ))
            }
            _ => None,
        };
        Ok(EtcdAccess {
            cacert: self.etcd_cacert.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
            user: self.etcd_user.clone(),
            password,
        })
    }
}
