//! The bytes of a file send: copied straight from a read-only mapping of the file (the
//! default, `SendOptions::zero_copy(true)`), or read chunk by chunk with `pread` (asked
//! with `zero_copy(false)`, or when the file cannot be mapped: the reason is logged).
//! Either way a file that shrinks during the send fails it with a typed error naming the
//! length, never SIGBUS: the length is read (`fstat`) before every range is touched.

use crate::sys::mmap::FileMap;
use serde::Serialize;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Mapped pages more than this far behind the newest chunk are dropped from the process
/// (the file streams through a bounded resident set; a retransmission faults them back).
const RESIDENT_BEHIND: u64 = 16 << 20;

/// How a file send read its file (`SendReport::file_read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRead {
    /// From a mapping of the file into the frame or pool slot.
    Mmap,
    /// Each chunk read into a buffer first.
    Pread,
}

pub struct FileSource {
    file: File,
    len: u64,
    map: Option<FileMap>,
    /// Mapped bytes below this are released (see [`RESIDENT_BEHIND`]).
    released: AtomicU64,
}

impl FileSource {
    /// `file` of `len` bytes, mapped when `zero_copy` (falling back to `pread`, logged).
    pub fn new(file: File, len: u64, zero_copy: bool, name: &str) -> FileSource {
        let map = zero_copy
            .then(|| map_or_say_why(&file, len, name))
            .flatten();
        FileSource {
            file,
            len,
            map,
            released: AtomicU64::new(0),
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn read_mode(&self) -> FileRead {
        if self.map.is_some() {
            FileRead::Mmap
        } else {
            FileRead::Pread
        }
    }

    /// The whole file as a slice of its mapping (for a copy into a pool slot), if mapped
    /// and still as long as at the start.
    pub fn whole(&self) -> Option<&[u8]> {
        let map = self.map.as_ref()?;
        map.range(0, self.len, self.current_len().ok()?)
    }

    /// `len` bytes at `offset`: a slice of the mapping, or read into `buf`.
    pub fn chunk<'b>(
        &'b self,
        offset: u64,
        len: u64,
        buf: &'b mut Vec<u8>,
    ) -> io::Result<&'b [u8]> {
        let Some(map) = &self.map else {
            buf.resize(len as usize, 0);
            return match self.file.read_exact_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(self.shrunk()),
                r => r.map(|()| &buf[..]),
            };
        };
        let now = self.current_len()?;
        let from = self.released.load(Ordering::Relaxed);
        if offset >= from + 2 * RESIDENT_BEHIND {
            let to = offset - RESIDENT_BEHIND;
            map.release(from, to - from);
            self.released.store(to, Ordering::Relaxed);
        }
        map.range(offset, len, now).ok_or_else(|| self.shrunk())
    }

    fn current_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn shrunk(&self) -> io::Error {
        let now = self
            .current_len()
            .map_or_else(|e| format!("unknown ({e})"), |l| l.to_string());
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the file shrank during the send: {} bytes at the start, {now} now",
                self.len
            ),
        )
    }
}

fn map_or_say_why(file: &File, len: u64, name: &str) -> Option<FileMap> {
    let regular = file.metadata().map(|m| m.file_type().is_file());
    let why = match regular {
        Ok(true) if len == 0 => return None, // nothing to read either way
        Ok(true) => match FileMap::map(file, len) {
            Ok(m) => return Some(m),
            Err(e) => format!("mmap failed: {e}"),
        },
        Ok(false) => "not a regular file".to_owned(),
        Err(e) => format!("cannot stat it: {e}"),
    };
    tracing::info!(
        file = name,
        "file send reads with pread, not from a mapping: {why}"
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize) -> (File, Vec<u8>) {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        f.write_all(&data).unwrap();
        (f, data)
    }

    #[test]
    fn both_modes_read_the_same_bytes() {
        for zero_copy in [true, false] {
            let (f, data) = file_of(3 * 4096 + 17);
            let src = FileSource::new(f, data.len() as u64, zero_copy, "t");
            let want = if zero_copy {
                FileRead::Mmap
            } else {
                FileRead::Pread
            };
            assert_eq!(src.read_mode(), want);
            let mut buf = Vec::new();
            assert_eq!(src.chunk(4000, 5000, &mut buf).unwrap(), &data[4000..9000]);
            assert_eq!(src.whole().is_some(), zero_copy);
        }
    }

    #[test]
    fn a_file_that_shrinks_during_the_send_is_a_typed_error_in_both_modes() {
        for zero_copy in [true, false] {
            let (f, data) = file_of(4 * 4096);
            let clone = f.try_clone().unwrap();
            let src = FileSource::new(f, data.len() as u64, zero_copy, "t");
            clone.set_len(4096).unwrap();
            let mut buf = Vec::new();
            let e = src.chunk(8192, 4096, &mut buf).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            assert!(
                e.to_string().contains("16384 bytes at the start, 4096 now"),
                "{e}"
            );
            assert!(src.whole().is_none());
            assert_eq!(src.chunk(0, 4096, &mut buf).unwrap(), &data[..4096]);
        }
    }
}
