//! `email:` alert endpoints: one message per event over plain SMTP (RFC 5321: EHLO, MAIL,
//! RCPT, DATA, QUIT) to a relay, typically the host's own MTA on port 25.
//!
//! Endpoint form: `email:TO[,TO…][?via=HOST:PORT]` (default relay `127.0.0.1:25`). No
//! authentication or STARTTLS: point it at a local relay that forwards.

use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub use crate::config::{EmailTarget, DEFAULT_RELAY, RECIPIENTS_MAX};
/// Longest reply line we read, and most lines in one (multi-line) reply.
const REPLY_LINE_MAX: usize = 1024;
const REPLY_LINES_MAX: usize = 64;

/// Sends one message with `subject` and `body` (plain text) to every recipient of `t`.
pub fn send(t: &EmailTarget, subject: &str, body: &str, timeout: Duration) -> Result<()> {
    let ctx = |what: &str| format!("email via {}: {what}", t.relay);
    let addr = t
        .relay
        .to_socket_addrs()
        .map_err(|e| Error::io(ctx("resolving"), e))?
        .next()
        .ok_or_else(|| Error::Unreachable {
            node: t.relay.clone(),
            reason: "the relay has no address".into(),
        })?;
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| Error::io(ctx("connecting"), e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| Error::io(ctx("setting timeouts"), e))?;
    let mut session = Session {
        reader: BufReader::new(
            stream
                .try_clone()
                .map_err(|e| Error::io(ctx("cloning"), e))?,
        ),
        writer: stream,
        relay: &t.relay,
    };
    session.expect(None, 220)?;
    session.expect(Some("EHLO hyperfabric"), 250)?;
    session.expect(Some("MAIL FROM:<hyperfabric-alerts@localhost>"), 250)?;
    for to in &t.to {
        session.expect(Some(&format!("RCPT TO:<{to}>")), 250)?;
    }
    session.expect(Some("DATA"), 354)?;
    let message = format!(
        "From: hyperfabric-alerts@localhost\r\nTo: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n.",
        t.to.join(", "),
        one_line(subject),
        dot_stuffed(body)
    );
    session.expect(Some(&message), 250)?;
    let _ = session.expect(Some("QUIT"), 221);
    Ok(())
}

struct Session<'a> {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    relay: &'a str,
}

impl Session<'_> {
    /// Sends `line` (if any) and reads a reply whose code must be `want` (251 counts as 250).
    fn expect(&mut self, line: Option<&str>, want: u16) -> Result<()> {
        if let Some(l) = line {
            let out = format!("{l}\r\n");
            self.writer
                .write_all(out.as_bytes())
                .map_err(|e| Error::io(format!("email via {}: sending", self.relay), e))?;
        }
        let (code, text) = self.reply()?;
        if code == want || (want == 250 && code == 251) {
            return Ok(());
        }
        let asked = line.map_or("the greeting", |l| l.split("\r\n").next().unwrap_or(l));
        Err(Error::Rejected {
            reason: format!("email via {}: `{asked}` answered {code} {text}", self.relay),
        })
    }

    /// One reply (`250-…` lines continue it), bounded in line length and count.
    fn reply(&mut self) -> Result<(u16, String)> {
        let mut text = String::new();
        for _ in 0..REPLY_LINES_MAX {
            let mut line = String::new();
            let n = (&mut self.reader)
                .take(REPLY_LINE_MAX as u64)
                .read_line(&mut line)
                .map_err(|e| Error::io(format!("email via {}: reading a reply", self.relay), e))?;
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code.filter(|_| n >= 4 || line.trim_end().len() == 3) else {
                return Err(Error::Rejected {
                    reason: format!(
                        "email via {}: not an SMTP reply: {:?}",
                        self.relay,
                        line.trim_end()
                    ),
                });
            };
            text = line.get(4..).unwrap_or("").trim_end().to_string();
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
        Err(Error::Rejected {
            reason: format!(
                "email via {}: reply longer than {REPLY_LINES_MAX} lines ({text})",
                self.relay
            ),
        })
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// CRLF line ends, and a leading `.` doubled (RFC 5321 §4.5.2).
fn dot_stuffed(body: &str) -> String {
    body.lines()
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A one-message SMTP sink on loopback: the DATA it got (or the error) on the channel.
    pub(crate) fn sink(reject_rcpt: bool) -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            let mut say = |t: &str| w.write_all(format!("{t}\r\n").as_bytes());
            let _ = say("220 sink ready");
            let (mut data, mut in_data) = (String::new(), false);
            for _ in 0..200 {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        let _ = say("250 queued");
                    } else {
                        data.push_str(&line);
                    }
                    continue;
                }
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let _ = match verb.as_str() {
                    "EHLO" => say("250-sink\r\n250 8BITMIME"),
                    "RCPT" if reject_rcpt => say("550 no such user"),
                    "DATA" => {
                        in_data = true;
                        say("354 go on")
                    }
                    "QUIT" => {
                        let _ = say("221 bye");
                        break;
                    }
                    _ => say("250 ok"),
                };
            }
            let _ = tx.send(data);
        });
        (addr, rx)
    }

    #[test]
    fn a_message_arrives_at_a_local_sink() {
        let (relay, rx) = sink(false);
        let t = EmailTarget::parse(&format!("ops@example.com?via={relay}")).unwrap();
        send(
            &t,
            "latency high",
            "line one\n.dot line",
            Duration::from_secs(5),
        )
        .unwrap();
        let data = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(data.contains("Subject: latency high\r\n"), "{data}");
        assert!(data.contains("To: ops@example.com"), "{data}");
        assert!(data.contains("line one\r\n..dot line"), "{data}");
    }

    #[test]
    fn a_refused_recipient_is_a_typed_error() {
        let (relay, _rx) = sink(true);
        let t = EmailTarget::parse(&format!("ops@example.com?via={relay}")).unwrap();
        let err = send(&t, "s", "b", Duration::from_secs(5)).unwrap_err();
        assert!(
            matches!(&err, Error::Rejected { reason } if reason.contains("550")),
            "{err}"
        );
    }

    #[test]
    fn endpoints_are_checked() {
        assert_eq!(EmailTarget::parse("a@b").unwrap().relay, DEFAULT_RELAY);
        assert_eq!(
            EmailTarget::parse("a@b,c@d?via=h:2525").unwrap().to.len(),
            2
        );
        for bad in ["", "nobody", "a@b?via=h", "a@b>x@y", "a@@b"] {
            assert!(EmailTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
