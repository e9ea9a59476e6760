//! TLS 1.3 for TCP links (rustls with the `ring` provider): a node's client and server
//! configurations from the PEM files named in `[fabric]`.
//!
//! Verification: every certificate must chain to `tls_ca`, and must name its node: the dialer
//! asks for the peer's node id as the server name (a DNS subject alternative name), and the
//! acceptor checks the client certificate against the node id its hello claims. A node's
//! certificate therefore proves which node it is, not only that it belongs to the fabric; one
//! certificate may still serve several nodes by listing all their ids.

use crate::config::{FabricConfig, SecurityConfig};
use crate::error::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;

/// A node's TLS settings, ready to open connections.
#[derive(Clone)]
pub struct TlsConfig {
    pub client: Arc<ClientConfig>,
    pub server: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig")
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfig {
    /// Reads `tls_cert`, `tls_key` and `tls_ca` for node `me` when `encryption_enabled`.
    pub fn from_config(cfg: &FabricConfig, me: &str) -> Result<Option<TlsConfig>> {
        let sec = &cfg.security;
        if !sec.encryption_enabled {
            return Ok(None);
        }
        let load = |field: &str, written: &Option<String>| -> Result<Vec<u8>> {
            let err = |reason: String| Error::config(cfg.source.clone(), field, reason);
            let written = written
                .as_deref()
                .ok_or_else(|| err("encryption_enabled = true needs this PEM file".into()))?;
            let path = SecurityConfig::resolve(&cfg.source, written, me);
            std::fs::read(&path).map_err(|e| err(format!("{}: cannot read: {e}", path.display())))
        };
        let field_err =
            |field: &str, reason: String| Error::config(cfg.source.clone(), field, reason);
        let chain = load("fabric.tls_cert", &sec.tls_cert)?;
        let key = load("fabric.tls_key", &sec.tls_key)?;
        let ca = load("fabric.tls_ca", &sec.tls_ca)?;
        let chain = certs(&chain).map_err(|r| field_err("fabric.tls_cert", r))?;
        let key = PrivateKeyDer::from_pem_slice(&key)
            .map_err(|e| field_err("fabric.tls_key", format!("no usable private key: {e}")))?;
        let roots = roots(&ca).map_err(|r| field_err("fabric.tls_ca", r))?;
        TlsConfig::new(chain, key, roots)
            .map(Some)
            .map_err(|r| field_err("fabric.tls_cert", r))
    }

    /// Client and server configurations from a certificate chain, its key and trust roots.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: RootCertStore,
    ) -> std::result::Result<TlsConfig, String> {
        let roots = Arc::new(roots);
        let tls13 = &[&rustls::version::TLS13];
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider())
            .build()
            .map_err(|e| format!("client verifier: {e}"))?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(tls13)
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| format!("certificate and key do not fit together: {e}"))?;
        // No resumption: every connection is a full handshake, so no tickets to send.
        server.send_tls13_tickets = 0;
        let client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(tls13)
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("certificate and key do not fit together: {e}"))?;
        Ok(TlsConfig {
            client: Arc::new(client),
            server: Arc::new(server),
        })
    }
}

/// The server name a dialer asks for: the peer's node id.
pub fn server_name(node: &str) -> std::result::Result<ServerName<'static>, String> {
    ServerName::try_from(node.to_owned())
        .map_err(|e| format!("node id `{node}` is not usable as a TLS name: {e}"))
}

/// Does the client's end-entity certificate name `node`?
pub fn cert_names(cert: &CertificateDer<'_>, node: &str) -> std::result::Result<(), String> {
    let parsed =
        ParsedCertificate::try_from(cert).map_err(|e| format!("unreadable certificate: {e}"))?;
    rustls::client::verify_server_name(&parsed, &server_name(node)?)
        .map_err(|e| format!("its certificate is not for node `{node}`: {e}"))
}

/// Every certificate of a PEM file (at least one).
pub fn certs(pem: &[u8]) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE in the file".into());
    }
    Ok(certs)
}

fn roots(pem: &[u8]) -> std::result::Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in certs(pem)? {
        store
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    Ok(store)
}

/// Where the trust store is looked for when `SSL_CERT_FILE` is not set.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Largest trust store file read.
const BUNDLE_MAX_BYTES: u64 = 16 << 20;

/// The system's trust roots (`SSL_CERT_FILE` or [`SYSTEM_BUNDLE`]); `who` (an https
/// webhook, etcd) names the user of them in errors.
pub fn system_roots(who: &str) -> Result<RootCertStore> {
    let path = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| SYSTEM_BUNDLE.to_string());
    roots_from_file(who, std::path::Path::new(&path))
}

/// The trust roots of a PEM bundle file, read up to [`BUNDLE_MAX_BYTES`].
pub fn roots_from_file(who: &str, path: &std::path::Path) -> Result<RootCertStore> {
    let shown = path.display();
    let ctx = || format!("{who}: reading the trust store {shown}");
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(ctx(), e))?
        .len();
    if len > BUNDLE_MAX_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{who}: trust store {shown} is {len} bytes (at most {BUNDLE_MAX_BYTES})"
        )));
    }
    let pem = std::fs::read(path).map_err(|e| Error::io(ctx(), e))?;
    roots_from_pem(&pem)
        .map_err(|reason| Error::InvalidArgument(format!("{who}: {shown}: {reason}")))
}

/// Every certificate of a PEM bundle as a trust root (unusable ones are skipped).
pub fn roots_from_pem(pem: &[u8]) -> std::result::Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("bad PEM: {e}"))?;
        let _ = store.add(cert);
    }
    if store.is_empty() {
        return Err("no usable CA certificate".into());
    }
    Ok(store)
}

/// A client configuration for a service outside the fabric (a webhook, etcd): TLS 1.2 or
/// 1.3, the server verified against `roots`, and `identity` (a chain and its key) shown
/// when the server asks for a client certificate.
pub fn client_config(
    roots: Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> std::result::Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("certificate and key do not fit together: {e}")),
    }
}
