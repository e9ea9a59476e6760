//! TLS for `webhook:https://…` endpoints (Slack's hooks are https): rustls, the server
//! verified against the system's trust store (`SSL_CERT_FILE`, else the Debian/Ubuntu
//! bundle), or against the roots a caller passes.

use crate::error::{Error, Result};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, RootCertStore, StreamOwned};
use std::net::TcpStream;
use std::sync::Arc;

pub use crate::auth::tls::{roots_from_pem, SYSTEM_BUNDLE};

/// The system's trust roots (`SSL_CERT_FILE` or [`SYSTEM_BUNDLE`]).
pub fn system_roots() -> Result<RootCertStore> {
    crate::auth::tls::system_roots("https webhook")
}

/// A TLS client stream to `host` over `tcp`, the server verified against `roots`.
pub fn connect(
    tcp: TcpStream,
    host: &str,
    roots: Arc<RootCertStore>,
) -> Result<StreamOwned<ClientConnection, TcpStream>> {
    let config = crate::auth::tls::client_config(roots, None)
        .map_err(|e| Error::InvalidArgument(format!("https webhook: {e}")))?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| Error::InvalidArgument(format!("https webhook: bad host \"{host}\": {e}")))?;
    let conn = ClientConnection::new(Arc::new(config), name)
        .map_err(|e| Error::InvalidArgument(format!("https webhook: {e}")))?;
    Ok(StreamOwned::new(conn, tcp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::http::post_json_with;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::time::Duration;

    /// A CA, and a server certificate for 127.0.0.1 signed by it.
    fn certificates() -> (
        RootCertStore,
        CertificateDer<'static>,
        PrivateKeyDer<'static>,
    ) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = p.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (roots, leaf.der().clone(), key)
    }

    /// A one-shot TLS endpoint on loopback answering 200; returns the request it read.
    fn tls_endpoint(
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> (String, std::thread::JoinHandle<String>) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}/hook", listener.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let mut r = BufReader::new(StreamOwned::new(conn, tcp));
            let (mut got, mut len) = (String::new(), 0);
            for _ in 0..100 {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                got.push_str(&line);
                if let Some(v) = line.strip_prefix("Content-Length: ") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            got.push_str(&String::from_utf8_lossy(&body));
            let s = r.get_mut();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            s.flush().unwrap();
            s.conn.send_close_notify();
            let _ = s.flush();
            got
        });
        (url, h)
    }

    #[test]
    fn an_https_webhook_reaches_a_local_tls_endpoint() {
        let (roots, cert, key) = certificates();
        let (url, h) = tls_endpoint(cert, key);
        let code = post_json_with(
            &url,
            br#"{"text":"hi"}"#,
            Duration::from_secs(5),
            Some(Arc::new(roots)),
        )
        .unwrap();
        assert_eq!(code, 200);
        let got = h.join().unwrap();
        assert!(
            got.starts_with("POST /hook HTTP/1.1\r\n") && got.ends_with(r#"{"text":"hi"}"#),
            "{got}"
        );
    }

    #[test]
    fn an_untrusted_server_is_refused() {
        let (_, cert, key) = certificates();
        let (other_roots, _, _) = certificates();
        let (url, h) = tls_endpoint(cert, key);
        let err = post_json_with(
            &url,
            b"{}",
            Duration::from_secs(5),
            Some(Arc::new(other_roots)),
        );
        assert!(err.is_err(), "{err:?}");
        let _ = h.join();
        assert!(roots_from_pem(b"not pem").is_err());
    }
}
