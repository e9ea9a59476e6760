//! One total deadline for a socket exchange (the handshake), not a timeout per read: before
//! every read the socket's timeout is set to what is left, so a peer dripping one byte at a
//! time is cut when the deadline passes, however often it sends.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// When a handshake must be over, and how long it was given.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub until: Instant,
    pub total: Duration,
    /// What set `total` (named in the error): the knob, or the caller's bound.
    pub limit: &'static str,
}

impl Budget {
    pub fn starting_now(total: Duration) -> Budget {
        Budget {
            until: Instant::now() + total,
            total,
            limit: "handshake_timeout_ms",
        }
    }

    /// The same deadline, named after the bound that set it.
    pub fn limited_by(self, limit: &'static str) -> Budget {
        Budget { limit, ..self }
    }

    /// Time left (zero once passed).
    pub fn left(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }

    /// The error an exchange past the deadline returns.
    pub fn expired(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the handshake did not finish within {} ms ({})",
                self.total.as_millis(),
                self.limit
            ),
        )
    }
}

/// Reads through `inner` (which reads `sock`, perhaps through a TLS session) until the
/// budget's deadline.
pub struct Deadline<'a, R> {
    pub inner: R,
    sock: &'a TcpStream,
    budget: Budget,
}

impl<'a, R> Deadline<'a, R> {
    /// Writes on `sock` are bounded by the time left too.
    pub fn new(inner: R, sock: &'a TcpStream, budget: Budget) -> Self {
        let _ = sock.set_write_timeout(Some(budget.left().max(Duration::from_millis(1))));
        Deadline {
            inner,
            sock,
            budget,
        }
    }

    fn arm(&self) -> io::Result<()> {
        let left = self.budget.left();
        if left.is_zero() {
            return Err(self.budget.expired());
        }
        self.sock.set_read_timeout(Some(left))
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl<R: Read> Read for Deadline<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        match self.inner.read(buf) {
            Err(e) if timed_out(&e) => Err(self.budget.expired()),
            r => r,
        }
    }
}

impl<W: Write> Write for Deadline<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.write(buf) {
            Err(e) if timed_out(&e) => Err(self.budget.expired()),
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_drip_feeding_peer_is_cut_at_the_deadline_not_per_read() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let budget = Budget::starting_now(Duration::from_millis(300));
        let mut d = Deadline::new(&server, &server, budget);
        // Bounded drip: a byte each read, until the deadline refuses (at most 10,000 rounds).
        let mut got = 0;
        let err = loop {
            client.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            match d.read(&mut b) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
            std::thread::sleep(Duration::from_millis(1));
            assert!(got < 10_000, "never cut");
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("300 ms"), "{err}");
    }
}
