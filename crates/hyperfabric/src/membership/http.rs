//! The least HTTP/1.1 a JSON gateway needs: one POST per connection (`Connection: close`),
//! every step under one deadline, the answer read up to a byte limit, chunked or not.
//! std's TcpStream, or rustls over it for `etcds://` ([`Endpoint::tls`]); a client crate
//! would bring pools we do not use here.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where requests go: `HOST:PORT`, over TLS when `tls` is set.
#[derive(Clone)]
pub struct Endpoint {
    pub authority: String,
    pub tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (tls: {})", self.authority, self.tls.is_some())
    }
}

/// One connection: plain, or TLS (the handshake done before the request is sent).
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.set_read_timeout(d),
            Conn::Tls(s) => s.sock.set_read_timeout(d),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Largest header block of an answer.
const MAX_HEAD_BYTES: usize = 16 << 10;

/// Why a request got no usable answer (the caller names the URL).
#[derive(Debug)]
pub enum HttpError {
    Io(&'static str, std::io::Error),
    /// The answer is longer than the caller's limit.
    TooLarge(usize),
    /// Not HTTP/1.x, or a broken chunk.
    Malformed(String),
    Timeout(Duration),
    /// The TLS handshake failed: rustls' verdict (an untrusted certificate, a refused one).
    Tls(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Io(what, e) => write!(f, "{what}: {e}"),
            HttpError::TooLarge(n) => write!(f, "the answer is over {n} bytes"),
            HttpError::Malformed(m) => write!(f, "not an HTTP answer: {m}"),
            HttpError::Timeout(t) => write!(f, "no complete answer within {t:?}"),
            HttpError::Tls(m) => write!(f, "TLS handshake: {m}"),
        }
    }
}

/// One request: the path, the JSON body and the `Authorization` header if any.
pub struct Request<'a> {
    pub path: &'a str,
    pub body: &'a [u8],
    pub authorization: Option<&'a str>,
}

/// POSTs the request to `endpoint`; the status and the (de-chunked) body.
pub fn post(
    endpoint: &Endpoint,
    req: &Request<'_>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<(u16, Vec<u8>), HttpError> {
    let deadline = Instant::now() + timeout;
    let mut s = connect_and_send(endpoint, req, timeout)?;
    let raw = read_until_close(&mut s, deadline, timeout, max_bytes + MAX_HEAD_BYTES)?;
    parse_answer(&raw, max_bytes)
}

/// How often a streaming read wakes to look at its stop flag.
const STREAM_TICK: Duration = Duration::from_millis(200);
/// Longest chunk-size line of a chunked stream.
const MAX_CHUNK_LINE: usize = 64;

/// POSTs `body` and hands every newline-terminated line of the (chunked or plain) answer to
/// `on_line` as it arrives, until the server closes, `stop()` holds, `on_line` refuses a
/// line (its reason) or a line exceeds `max_line` bytes. Connecting, sending and the header
/// block are under `timeout`; the stream itself may stay quiet as long as the server likes.
pub fn post_stream(
    endpoint: &Endpoint,
    req: &Request<'_>,
    timeout: Duration,
    max_line: usize,
    stop: &dyn Fn() -> bool,
    on_line: &mut dyn FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), HttpError> {
    let mut s = connect_and_send(endpoint, req, timeout)?;
    let (chunked, mut rest) = read_stream_head(&mut s, timeout)?;
    let mut lines = Lines {
        line: Vec::new(),
        max_line,
    };
    let mut chunks = Dechunk::Size;
    let mut buf = [0u8; 8192];
    s.set_read_timeout(Some(STREAM_TICK))
        .map_err(|e| HttpError::Io("reading", e))?;
    loop {
        let done = match chunked {
            true => chunks.feed(&mut rest, &mut |d| lines.feed(d, on_line))?,
            false => lines
                .feed(&std::mem::take(&mut rest), on_line)
                .map(|()| false)?,
        };
        if done || stop() {
            return Ok(());
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e) if is_quiet(&e) => {}
            Err(e) if is_closed(&e) => return Ok(()),
            Err(e) => return Err(io_or_tls("reading", e)),
        }
    }
}

/// An I/O error, or rustls' verdict when one is inside (etcd refused our certificate
/// after the handshake: TLS 1.3 says so on the first read).
fn io_or_tls(what: &'static str, e: std::io::Error) -> HttpError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(verdict) => HttpError::Tls(verdict.to_string()),
        None => HttpError::Io(what, e),
    }
}

/// A TLS peer that closed without close_notify: the end of its answer (whose length the
/// parser still checks against Content-Length or the last chunk).
fn is_closed(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::UnexpectedEof
}

fn is_quiet(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
    matches!(e.kind(), Interrupted | TimedOut | WouldBlock)
}

fn connect_and_send(
    endpoint: &Endpoint,
    req: &Request<'_>,
    timeout: Duration,
) -> Result<Conn, HttpError> {
    let authority = endpoint.authority.as_str();
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .map_err(|e| HttpError::Io("resolving", e))?
        .next()
        .ok_or_else(|| HttpError::Malformed("the host resolves to no address".into()))?;
    let tcp =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| HttpError::Io("connecting", e))?;
    tcp.set_write_timeout(Some(timeout))
        .and_then(|()| tcp.set_read_timeout(Some(timeout)))
        .map_err(|e| HttpError::Io("connecting", e))?;
    let mut s = match &endpoint.tls {
        None => Conn::Plain(tcp),
        Some(config) => Conn::Tls(Box::new(handshake(authority, config, tcp, timeout)?)),
    };
    let auth = match req.authorization {
        Some(token) => format!("Authorization: {token}\r\n"),
        None => String::new(),
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n{auth}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        req.path,
        req.body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(req.body))
        .and_then(|()| s.flush())
        .map_err(|e| io_or_tls("sending", e))?;
    Ok(s)
}

/// The TLS handshake with the server `authority` names (a DNS name or an IP address),
/// each step under `timeout` (the socket's); a verdict of rustls (a certificate not trusted, ours
/// refused) is [`HttpError::Tls`].
fn handshake(
    authority: &str,
    config: &Arc<ClientConfig>,
    mut tcp: TcpStream,
    timeout: Duration,
) -> Result<StreamOwned<ClientConnection, TcpStream>, HttpError> {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .trim_matches(['[', ']']);
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| HttpError::Tls(format!("`{host}` is not a TLS server name: {e}")))?;
    let mut conn = ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| HttpError::Tls(e.to_string()))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Err(match is_quiet(&e) {
                true => HttpError::Timeout(timeout),
                false => io_or_tls("TLS handshake", e),
            });
        }
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// Reads a streaming answer's header block (under `timeout`): whether the body is chunked,
/// and the body bytes read with it. A status other than 200 is an error.
fn read_stream_head(s: &mut Conn, timeout: Duration) -> Result<(bool, Vec<u8>), HttpError> {
    let deadline = Instant::now() + timeout;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if raw.len() > MAX_HEAD_BYTES {
            return Err(HttpError::TooLarge(MAX_HEAD_BYTES));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::Timeout(timeout));
        }
        s.set_read_timeout(Some(left))
            .map_err(|e| HttpError::Io("reading", e))?;
        match s.read(&mut buf) {
            Ok(0) => {
                return Err(HttpError::Malformed(
                    "closed before the headers ended".into(),
                ))
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if is_quiet(&e) => {}
            Err(e) => return Err(io_or_tls("reading", e)),
        }
    };
    let text = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let chunked = text.contains("transfer-encoding: chunked");
    let status_line = text.lines().next().unwrap_or_default();
    let status = match status_line.split(' ').collect::<Vec<_>>()[..] {
        [v, code, ..] if v.starts_with("http/1.") => code.parse::<u16>().ok(),
        _ => None,
    };
    let status = status.ok_or_else(|| HttpError::Malformed(status_line.to_owned()))?;
    if status != 200 {
        return Err(HttpError::Malformed(format!("HTTP {status}")));
    }
    Ok((chunked, raw[end + 4..].to_vec()))
}

/// Splits a byte stream into lines of at most `max_line` bytes.
struct Lines {
    line: Vec<u8>,
    max_line: usize,
}

impl Lines {
    fn feed(
        &mut self,
        data: &[u8],
        on_line: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), HttpError> {
        for part in data.split_inclusive(|b| *b == b'\n') {
            if self.line.len() + part.len() > self.max_line {
                return Err(HttpError::TooLarge(self.max_line));
            }
            self.line.extend_from_slice(part);
            if self.line.ends_with(b"\n") {
                let r = on_line(self.line.trim_ascii_end());
                self.line.clear();
                r.map_err(HttpError::Malformed)?;
            }
        }
        Ok(())
    }
}

/// Where a chunked stream's decoder stands.
enum Dechunk {
    Size,
    Data(usize),
    DataEnd,
}

impl Dechunk {
    /// Decodes what `raw` holds (leaving an incomplete size line in it); true at the last chunk.
    fn feed(
        &mut self,
        raw: &mut Vec<u8>,
        out: &mut dyn FnMut(&[u8]) -> Result<(), HttpError>,
    ) -> Result<bool, HttpError> {
        let bad = |m: &str| HttpError::Malformed(m.to_owned());
        let mut at = 0;
        let done = loop {
            let rest = &raw[at..];
            match *self {
                Dechunk::Size => {
                    let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                        if rest.len() > MAX_CHUNK_LINE {
                            return Err(bad("chunk size line too long"));
                        }
                        break false;
                    };
                    let text = std::str::from_utf8(&rest[..eol]).map_err(|_| bad("chunk size"))?;
                    let text = text.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(text, 16).map_err(|_| bad("chunk size"))?;
                    at += eol + 2;
                    if size == 0 {
                        break true;
                    }
                    *self = Dechunk::Data(size);
                }
                Dechunk::Data(n) if rest.is_empty() => {
                    *self = Dechunk::Data(n);
                    break false;
                }
                Dechunk::Data(n) => {
                    let take = n.min(rest.len());
                    out(&rest[..take])?;
                    at += take;
                    *self = if take == n {
                        Dechunk::DataEnd
                    } else {
                        Dechunk::Data(n - take)
                    };
                }
                Dechunk::DataEnd if rest.len() < 2 => break false,
                Dechunk::DataEnd if rest.starts_with(b"\r\n") => {
                    at += 2;
                    *self = Dechunk::Size;
                }
                Dechunk::DataEnd => return Err(bad("a chunk not ended by CRLF")),
            }
        };
        raw.drain(..at);
        Ok(done)
    }
}

/// Reads until the server closes, never past `deadline` nor `limit` bytes.
fn read_until_close(
    s: &mut Conn,
    deadline: Instant,
    timeout: Duration,
    limit: usize,
) -> Result<Vec<u8>, HttpError> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::Timeout(timeout));
        }
        s.set_read_timeout(Some(left))
            .map_err(|e| HttpError::Io("reading", e))?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(raw),
            Ok(n) if raw.len() + n > limit => return Err(HttpError::TooLarge(limit)),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_closed(&e) => return Ok(raw),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(HttpError::Timeout(timeout))
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(HttpError::Timeout(timeout))
            }
            Err(e) => return Err(io_or_tls("reading", e)),
        }
    }
}

/// Status line, headers, then the body as Content-Length, chunks or the rest.
pub fn parse_answer(raw: &[u8], max_bytes: usize) -> Result<(u16, Vec<u8>), HttpError> {
    let bad = |m: &str| HttpError::Malformed(m.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of the header block"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = match status_line.split(' ').collect::<Vec<_>>()[..] {
        [v, code, ..] if v.starts_with("HTTP/1.") => code.parse().map_err(|_| bad(status_line))?,
        _ => return Err(bad(status_line)),
    };
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k == "content-length" {
            length = Some(v.parse::<usize>().map_err(|_| bad("bad Content-Length"))?);
        }
    }
    let body = match (chunked, length) {
        (true, _) => dechunk(rest, max_bytes)?,
        (false, Some(n)) if n > max_bytes => return Err(HttpError::TooLarge(max_bytes)),
        (false, Some(n)) => rest
            .get(..n)
            .ok_or_else(|| bad("body shorter than Content-Length"))?
            .to_vec(),
        (false, None) => rest.to_vec(),
    };
    Ok((status, body))
}

/// Joins the chunks of a chunked body; trailers after the last chunk are skipped.
fn dechunk(mut rest: &[u8], max_bytes: usize) -> Result<Vec<u8>, HttpError> {
    let bad = |m: &str| HttpError::Malformed(m.to_owned());
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("a chunk without its size line"))?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| bad("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("chunk size"))?;
        if size == 0 {
            return Ok(body);
        }
        if body.len().saturating_add(size) > max_bytes {
            return Err(HttpError::TooLarge(max_bytes));
        }
        let data = rest
            .get(eol + 2..eol + 2 + size)
            .ok_or_else(|| bad("a chunk cut short"))?;
        body.extend_from_slice(data);
        rest = rest.get(eol + 4 + size..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_sized_answers_parse_and_limits_hold() {
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\"}\r\n0\r\nTrailer: x\r\n\r\n";
        let (status, body) = parse_answer(chunked, 100).unwrap();
        assert_eq!((status, &body[..]), (404, &b"{\"a\"}"[..]));
        assert!(matches!(
            parse_answer(chunked, 4),
            Err(HttpError::TooLarge(4))
        ));
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_answer(sized, 10).unwrap(), (200, b"{}".to_vec()));
        assert!(parse_answer(b"SSH-2.0\r\n\r\n", 10).is_err());
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab";
        assert!(matches!(
            parse_answer(cut, 1000),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn a_chunked_stream_decodes_across_any_split_into_lines() {
        let wire = b"5\r\n{\"a\":\r\n4\r\n1}\n{\r\n6\r\n\"b\":2}\r\n1\r\n\n\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let (mut got, mut state, mut raw) = (Vec::new(), Dechunk::Size, Vec::new());
            let mut lines = Lines {
                line: Vec::new(),
                max_line: 64,
            };
            let mut done = false;
            for part in [&wire[..split], &wire[split..]] {
                if done {
                    break; // the last chunk came: the stream's reader stops here
                }
                raw.extend_from_slice(part);
                let mut keep = |l: &[u8]| {
                    got.push(String::from_utf8_lossy(l).into_owned());
                    Ok(())
                };
                done = state
                    .feed(&mut raw, &mut |d| lines.feed(d, &mut keep))
                    .unwrap();
            }
            assert!(done, "split at {split}");
            assert_eq!(got, ["{\"a\":1}", "{\"b\":2}"], "split at {split}");
        }
        let mut lines = Lines {
            line: Vec::new(),
            max_line: 4,
        };
        let r = lines.feed(b"12345\n", &mut |_| Ok(()));
        assert!(matches!(r, Err(HttpError::TooLarge(4))));
        let mut raw = b"zz\r\n".to_vec();
        assert!(Dechunk::Size.feed(&mut raw, &mut |_| Ok(())).is_err());
    }
}
