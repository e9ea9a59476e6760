//! The link over a byte stream: TCP, plain or TLS. Frames follow one another on the stream;
//! the reader takes a header, refuses it before reading on if it does not decode (no
//! allocation for a lying length), then its payload, then checks the CRC32C.

use super::link::{Frame, LinkRx, LinkTx, RecvError, Sent};
use super::tcp;
use super::tls::{LinkReader, LinkWriter};
use super::TransportKind;
use crate::wire::{self, DecodeError, FrameKind, Header, HEADER_LEN};
use std::io::{self, BufReader, IoSlice, Read};

/// Read buffer of a stream link: small frames (acks, pings) come out of it without syscalls.
/// What it holds of a large payload is copied out of it (the rest is read straight where
/// the payload goes), so it stays small: 64 KiB is a thousand acks per read and at most
/// 6 % of a 1 MiB frame copied twice (256 KiB was a quarter: 3 % of a stream's samples).
pub const READ_BUFFER_BYTES: usize = 64 << 10;

/// The sending half: one `writev` per frame (TLS: one run of records).
pub struct StreamTx {
    w: LinkWriter,
}

impl StreamTx {
    pub fn new(w: LinkWriter) -> StreamTx {
        StreamTx { w }
    }
}

impl LinkTx for StreamTx {
    fn kind(&self) -> TransportKind {
        TransportKind::Tcp
    }

    fn send(&mut self, raw: &[u8; HEADER_LEN], payload: &[u8]) -> io::Result<Sent> {
        if super::link::frame_kind(raw) == Some(FrameKind::Data) {
            // Transfer bytes over TCP: now a capped socket buffer matters (warned once).
            tcp::note_payload_over_tcp();
        }
        tcp::write_all_vectored(&mut self.w, &mut [IoSlice::new(raw), IoSlice::new(payload)])?;
        Ok(Sent::Written)
    }

    fn close(&mut self, goodbye: Option<(&[u8; HEADER_LEN], &[u8])>) {
        if let Some((raw, reason)) = goodbye {
            let bufs = &mut [IoSlice::new(raw), IoSlice::new(reason)];
            let _ = tcp::write_all_vectored(&mut self.w, bufs);
        }
        self.w.shutdown();
    }
}

/// The receiving half: a buffered reader and the payload buffer, which only grows (to the
/// largest frame seen), so steady state neither allocates nor clears memory. The buffer can
/// be given away with its frame's payload ([`LinkRx::give_payload`]) for a spare.
pub struct StreamRx {
    reader: BufReader<LinkReader>,
    limits: wire::Limits,
    payload: Vec<u8>,
    /// The last frame failed its checksum: if this one does too, the stream is out of step
    /// (a header corrupted into another sane header, e.g. a wrong length).
    after_corrupt: bool,
}

impl StreamRx {
    pub fn new(reader: BufReader<LinkReader>, limits: wire::Limits) -> StreamRx {
        StreamRx {
            reader,
            limits,
            payload: Vec::new(),
            after_corrupt: false,
        }
    }

    /// Whether bytes of the next frame already sit in the read buffer.
    pub fn buffered(&self) -> bool {
        !self.reader.buffer().is_empty()
    }
}

impl LinkRx for StreamRx {
    fn kind(&self) -> TransportKind {
        TransportKind::Tcp
    }

    /// Blocks until a whole frame is read (never `Ok(None)`).
    fn poll_recv<R>(
        &mut self,
        on_frame: impl FnOnce(Frame<'_>) -> R,
    ) -> Result<Option<R>, RecvError> {
        match read_frame(&mut self.reader, self.limits, &mut self.payload) {
            Ok(header) => {
                self.after_corrupt = false;
                let payload = body(&self.payload, &header);
                Ok(Some(on_frame(Frame { header, payload })))
            }
            Err(FrameError::Eof) => Err(RecvError::Closed),
            Err(FrameError::Io(e)) => Err(RecvError::Io(e)),
            Err(FrameError::Corrupt(e)) if !self.after_corrupt => {
                self.after_corrupt = true;
                Err(RecvError::Corrupt(e))
            }
            Err(FrameError::Decode(e) | FrameError::Corrupt(e)) => {
                Err(RecvError::Protocol(format!("protocol violation: {e}")))
            }
        }
    }

    const GIVES_PAYLOAD: bool = true;

    fn give_payload(&mut self, spare: Vec<u8>) -> Vec<u8> {
        std::mem::replace(&mut self.payload, spare)
    }
}

pub enum FrameError {
    Eof,
    Io(io::Error),
    Decode(DecodeError),
    /// The header decoded and the payload was read, but the checksum does not match.
    Corrupt(DecodeError),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Eof => f.write_str("connection closed"),
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::Decode(e) | FrameError::Corrupt(e) => write!(f, "{e}"),
        }
    }
}

/// Reads one whole frame: header, then (only if the header is valid) its payload into
/// `payload[..payload_len]`, then checks the CRC. The buffer only grows.
pub fn read_frame(
    r: &mut impl Read,
    limits: wire::Limits,
    payload: &mut Vec<u8>,
) -> Result<Header, FrameError> {
    let mut raw = [0u8; HEADER_LEN];
    if let Err(e) = r.read_exact(&mut raw) {
        return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Eof
        } else {
            FrameError::Io(e)
        });
    }
    let header = Header::decode(&raw, limits).map_err(FrameError::Decode)?;
    let len = header.payload_len as usize;
    if payload.len() < len {
        payload.resize(len, 0);
    }
    let body = &mut payload[..len];
    r.read_exact(body).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the middle of a frame",
            ))
        } else {
            FrameError::Io(e)
        }
    })?;
    wire::verify(&raw, body).map_err(FrameError::Corrupt)?;
    Ok(header)
}

/// The payload of the frame `header` that [`read_frame`] just read into `buf`.
pub fn body<'a>(buf: &'a [u8], header: &Header) -> &'a [u8] {
    &buf[..header.payload_len as usize]
}
