//! A minimal HTTP/1.1 client for webhooks: `http://`, or `https://` over rustls (see
//! [`super::https`]), one POST per connection, timeouts on connect, write and read.
//! Hand-written to keep the node free of an HTTP stack for a handful of POSTs a minute.

use crate::error::{Error, Result};
use rustls::RootCertStore;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Longest response head we read (status line and headers).
const HEAD_MAX: usize = 16 * 1024;

pub use crate::config::HttpUrl;

/// POSTs `body` as JSON; returns the status code (2xx) or an error naming the failure.
pub fn post_json(url: &str, body: &[u8], timeout: Duration) -> Result<u16> {
    post_json_with(url, body, timeout, None)
}

/// [`post_json`]; an `https://` server is verified against `roots` (None: the system's).
pub fn post_json_with(
    url: &str,
    body: &[u8],
    timeout: Duration,
    roots: Option<Arc<RootCertStore>>,
) -> Result<u16> {
    let u = HttpUrl::parse(url).map_err(Error::InvalidArgument)?;
    let ctx = |what: &str| format!("webhook {url}: {what}");
    let addr = (u.host.as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| Error::io(ctx("resolving"), e))?
        .next()
        .ok_or_else(|| Error::Unreachable {
            node: url.to_owned(),
            reason: "the host has no address".into(),
        })?;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| Error::io(ctx("connecting"), e))?;
    s.set_write_timeout(Some(timeout))
        .and_then(|()| s.set_read_timeout(Some(timeout)))
        .map_err(|e| Error::io(ctx("setting timeouts"), e))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: hyperfabric-alerts\r\n\r\n",
        u.path,
        if u.host.contains(':') {
            format!("[{}]", u.host)
        } else {
            u.host.clone()
        },
        u.port,
        body.len()
    );
    let status = if u.tls {
        let roots = match roots {
            Some(r) => r,
            None => Arc::new(super::https::system_roots()?),
        };
        let mut tls = super::https::connect(s, &u.host, roots)?;
        exchange(&mut tls, head.as_bytes(), body).map_err(|e| Error::io(ctx("over TLS"), e))?
    } else {
        exchange(&mut s, head.as_bytes(), body).map_err(|e| Error::io(ctx("sending"), e))?
    };
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(Error::Rejected {
            reason: ctx(&format!("answered HTTP {status}")),
        })
    }
}

/// Writes the request and reads the response's status code.
fn exchange(s: &mut (impl Read + Write), head: &[u8], body: &[u8]) -> std::io::Result<u16> {
    s.write_all(head)?;
    s.write_all(body)?;
    s.flush()?;
    read_status(s)
}

/// Reads up to the end of the status line and parses the code.
fn read_status(s: &mut impl Read) -> std::io::Result<u16> {
    let mut head = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < HEAD_MAX {
        if s.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    parse_status(&head).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not an HTTP status line: {:?}",
                String::from_utf8_lossy(&head[..head.len().min(80)])
            ),
        )
    })
}

fn parse_status(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:9999/hook").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9999, "/hook")
        );
        let u = HttpUrl::parse("http://example.org").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let tls = HttpUrl::parse("https://hooks.example.com/x").unwrap();
        assert_eq!((tls.tls, tls.port), (true, 443));
        assert!(HttpUrl::parse("ftp://x/").unwrap_err().contains("https://"));
        assert!(HttpUrl::parse("http://x:port/").is_err());
        assert!(HttpUrl::parse("http:///p").is_err());
        let v6 = HttpUrl::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8080));
        assert_eq!(HttpUrl::parse("http://[::1]/x").unwrap().port, 80);
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status(b"SSH-2.0\r\n"), None);
    }

    /// A one-shot server answering `status`; returns what it received.
    fn serve_once(status: &'static str) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = std::io::BufReader::new(s);
            let mut len = 0;
            let mut line = String::new();
            let mut got = Vec::new();
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                got.extend_from_slice(line.as_bytes());
                if let Some(v) = line.strip_prefix("Content-Length: ") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            got.extend_from_slice(&body);
            r.get_mut()
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .unwrap();
            got
        });
        (url, h)
    }

    #[test]
    fn posts_json_and_reads_the_status() {
        let (url, h) = serve_once("200 OK");
        let code = post_json(&url, br#"{"text":"hi"}"#, Duration::from_secs(5)).unwrap();
        assert_eq!(code, 200);
        let got = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(got.starts_with("POST /hook HTTP/1.1\r\n"), "{got}");
        assert!(
            got.contains("Content-Type: application/json") && got.ends_with(r#"{"text":"hi"}"#)
        );
        let (url, h) = serve_once("500 Internal Server Error");
        let err = post_json(&url, b"{}", Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("HTTP 500"), "{err}");
        h.join().unwrap();
    }

    #[test]
    fn a_closed_port_is_an_error_not_a_panic() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        assert!(post_json(&url, b"{}", Duration::from_secs(2)).is_err());
    }
}
