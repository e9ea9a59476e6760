//! Where the bytes of an outgoing transfer come from, read chunk by chunk.

use super::file::FileSource;

/// Where the bytes of a transfer come from.
pub enum SendSource<'a> {
    Bytes(&'a [u8]),
    /// Copied from a mapping or read chunk by chunk (and again on retransmission): never
    /// held whole in memory.
    File(FileSource),
    /// A loaned buffer: over its own link it travels by pool descriptor, otherwise by copy.
    Loaned(crate::buffer::LoanedBuf),
}

impl SendSource<'_> {
    pub(super) fn len(&self) -> u64 {
        match self {
            SendSource::Bytes(b) => b.len() as u64,
            SendSource::File(f) => f.len(),
            SendSource::Loaned(b) => b.len() as u64,
        }
    }

    pub(super) fn chunk<'b>(
        &'b self,
        offset: u64,
        len: u64,
        buf: &'b mut Vec<u8>,
    ) -> std::io::Result<&'b [u8]> {
        match self {
            SendSource::Bytes(b) => {
                // poll_chunk only hands out ranges inside the transfer.
                Ok(&b[offset as usize..(offset + len) as usize])
            }
            SendSource::Loaned(b) => Ok(&b[offset as usize..(offset + len) as usize]),
            SendSource::File(f) => f.chunk(offset, len, buf),
        }
    }
}
