//! The least HTTP/1.1 a JSON gateway needs: one POST per connection (`Connection: close`),
//! every step under one deadline, the answer read up to a byte limit, chunked or not.
//! std's TcpStream is enough; a client crate would bring pools and TLS we do not use here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

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
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Io(what, e) => write!(f, "{what}: {e}"),
            HttpError::TooLarge(n) => write!(f, "the answer is over {n} bytes"),
            HttpError::Malformed(m) => write!(f, "not an HTTP answer: {m}"),
            HttpError::Timeout(t) => write!(f, "no complete answer within {t:?}"),
        }
    }
}

/// POSTs `body` (JSON) to `http://authority/path`; the status and the (de-chunked) body.
pub fn post(
    authority: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
    max_bytes: usize,
) -> Result<(u16, Vec<u8>), HttpError> {
    let deadline = Instant::now() + timeout;
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .map_err(|e| HttpError::Io("resolving", e))?
        .next()
        .ok_or_else(|| HttpError::Malformed("the host resolves to no address".into()))?;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| HttpError::Io("connecting", e))?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| HttpError::Io("connecting", e))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| HttpError::Io("sending", e))?;
    let raw = read_until_close(&mut s, deadline, timeout, max_bytes + MAX_HEAD_BYTES)?;
    parse_answer(&raw, max_bytes)
}

/// Reads until the server closes, never past `deadline` nor `limit` bytes.
fn read_until_close(
    s: &mut TcpStream,
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
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(HttpError::Timeout(timeout))
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(HttpError::Timeout(timeout))
            }
            Err(e) => return Err(HttpError::Io("reading", e)),
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
}
