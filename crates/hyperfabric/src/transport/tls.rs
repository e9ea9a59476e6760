//! One TLS session over a blocking TCP socket, split so that many writer threads and one
//! reader thread can use it at once (rustls' `Connection` is a single object).
//!
//! - Writers take `out` (which orders records on the socket), seal their plaintext under the
//!   short `conn` lock, release it, and only then write the records to the socket. The reader
//!   never waits for a writer stuck on a full socket, so two nodes writing to each other
//!   cannot deadlock.
//! - The reader reads raw bytes from its own socket handle without any lock, then feeds them
//!   to rustls under `conn` and drains plaintext. Records rustls wants to send after reading
//!   (alerts, key updates) are left in the session and `pending` is raised; whoever holds
//!   `out`, or takes it next, flushes them (a writer always re-checks `pending` after
//!   releasing `out`, so nothing stays behind).

use parking_lot::Mutex;
use rustls::pki_types::CertificateDer;
use rustls::Connection;
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Raw bytes the reader takes from the socket per read (a few TLS records).
const RAW_READ_BYTES: usize = 64 << 10;

pub struct TlsSession {
    conn: Mutex<Connection>,
    /// Held while records go to the socket; the buffer sealed records are staged in.
    out: Mutex<Vec<u8>>,
    sock: TcpStream,
    pending: AtomicBool,
}

fn drive_handshake(conn: &mut Connection, io: &mut (impl Read + Write)) -> io::Result<()> {
    while conn.is_handshaking() {
        conn.complete_io(io)?;
    }
    while conn.wants_write() {
        conn.write_tls(io)?;
    }
    Ok(())
}

impl TlsSession {
    /// Runs the TLS handshake on `sock` (blocking; the caller sets the socket's timeouts)
    /// and returns the session and its reader.
    /// With `budget`, the whole handshake must finish within it (one deadline, not one
    /// timeout per read: see [`super::deadline`]).
    pub fn handshake(
        sock: &TcpStream,
        mut conn: Connection,
        budget: Option<super::deadline::Budget>,
    ) -> io::Result<(Arc<Self>, TlsReader)> {
        // Writers drain the session at once, so its buffers need no cap of their own.
        conn.set_buffer_limit(None);
        match budget {
            Some(b) => drive_handshake(
                &mut conn,
                &mut super::deadline::Deadline::new(sock, sock, b),
            )?,
            None => drive_handshake(&mut conn, &mut { sock })?,
        }
        let session = Arc::new(TlsSession {
            conn: Mutex::new(conn),
            out: Mutex::new(Vec::new()),
            sock: sock.try_clone()?,
            pending: AtomicBool::new(false),
        });
        let reader = TlsReader {
            session: Arc::clone(&session),
            sock: sock.try_clone()?,
            raw: vec![0; RAW_READ_BYTES].into_boxed_slice(),
            pos: 0,
            end: 0,
        };
        Ok((session, reader))
    }

    /// The certificate chain the peer presented (end entity first).
    pub fn peer_certificates(&self) -> Vec<CertificateDer<'static>> {
        self.conn
            .lock()
            .peer_certificates()
            .map(|c| c.to_vec())
            .unwrap_or_default()
    }

    /// Encrypts `bufs` as one run of records and writes them.
    pub fn write_all(&self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        let mut out = self.out.lock();
        let sealed = {
            let mut conn = self.conn.lock();
            bufs.iter()
                .try_for_each(|b| conn.writer().write_all(&b[..]))
                .and_then(|()| seal(&mut conn, &mut out))
        };
        let res = sealed.and_then(|()| (&self.sock).write_all(&out));
        out.clear();
        drop(out);
        self.flush_pending();
        res
    }

    /// Writes records the reader left behind, unless someone else holds `out` (they will).
    fn flush_pending(&self) {
        while self.pending.load(Ordering::SeqCst) {
            let Some(mut out) = self.out.try_lock() else {
                return;
            };
            self.pending.store(false, Ordering::SeqCst);
            let sealed = seal(&mut self.conn.lock(), &mut out);
            if sealed.is_ok() && !out.is_empty() {
                // A failure here shows up on the next read or write of the connection.
                let _ = (&self.sock).write_all(&out);
            }
            out.clear();
        }
    }
}

/// Moves every record rustls has ready into `out`.
fn seal(conn: &mut Connection, out: &mut Vec<u8>) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

/// The reading half: plaintext out of the session, raw bytes from its own socket handle.
pub struct TlsReader {
    session: Arc<TlsSession>,
    sock: TcpStream,
    raw: Box<[u8]>,
    /// Raw bytes `raw[pos..end]` are read from the socket but not yet given to rustls.
    pos: usize,
    end: usize,
}

impl Read for TlsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut conn = self.session.conn.lock();
                match conn.reader().read(buf) {
                    // 0: the peer closed the session cleanly (close_notify).
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if self.pos < self.end {
                    // Plaintext is empty here, so rustls has room for these bytes.
                    let mut src = &self.raw[self.pos..self.end];
                    let n = conn.read_tls(&mut src)?;
                    self.pos += n;
                    let processed = conn.process_new_packets();
                    let wants_write = conn.wants_write();
                    drop(conn);
                    if wants_write {
                        self.session.pending.store(true, Ordering::SeqCst);
                        self.session.flush_pending();
                    }
                    processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    continue;
                }
            }
            let n = (&self.sock).read(&mut self.raw)?;
            if n == 0 {
                return Ok(0);
            }
            (self.pos, self.end) = (0, n);
        }
    }
}

/// The reading end of a link: a plain socket or a TLS session.
pub enum LinkReader {
    Plain(TcpStream),
    Tls(TlsReader),
}

impl Read for LinkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            LinkReader::Plain(s) => s.read(buf),
            LinkReader::Tls(r) => r.read(buf),
        }
    }
}

/// The writing end of a link. With TLS a vectored write is sealed as one run of records.
pub enum LinkWriter {
    Plain(TcpStream),
    Tls(Arc<TlsSession>),
}

impl LinkWriter {
    pub fn is_tls(&self) -> bool {
        matches!(self, LinkWriter::Tls(_))
    }

    /// Shuts the socket down both ways (its reader, ours and the peer's, sees the end).
    pub fn shutdown(&self) {
        let sock = match self {
            LinkWriter::Plain(s) => s,
            LinkWriter::Tls(t) => &t.sock,
        };
        let _ = sock.shutdown(std::net::Shutdown::Both);
    }
}

impl Write for LinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LinkWriter::Plain(s) => s.write(buf),
            LinkWriter::Tls(t) => t.write_all(&[IoSlice::new(buf)]).map(|()| buf.len()),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            LinkWriter::Plain(s) => s.write_vectored(bufs),
            // Sealed straight from the caller's slices: no list is built per frame.
            LinkWriter::Tls(t) => t
                .write_all(bufs)
                .map(|()| bufs.iter().map(|b| b.len()).sum()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// Tested in tests/link_conformance.rs (the TLS link, and concurrent writers both ways).
