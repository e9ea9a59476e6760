//! A read-only mapping of a file, for sends that copy straight from the page cache into a
//! frame or a pool slot instead of reading each chunk into a buffer first.
//!
//! Pages past the end of a file that shrank after it was mapped raise SIGBUS when touched:
//! callers check the file's length before they touch a range ([`FileMap::range`] takes
//! the length they just read).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// `len` bytes of a file mapped read-only (`MAP_SHARED`, advised sequential).
pub struct FileMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone; reading it from several
// threads is as sound as reading any shared byte slice.
unsafe impl Send for FileMap {}
// SAFETY: as above: `&FileMap` only ever reads.
unsafe impl Sync for FileMap {}

impl FileMap {
    /// Maps the first `len` bytes of `file` (a regular file, `len > 0`).
    pub fn map(file: &File, len: u64) -> io::Result<FileMap> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "nothing to map"))?;
        // SAFETY: a fresh read-only shared mapping chosen by the kernel (no fixed address),
        // of a descriptor we hold open for the call; failure is MAP_FAILED, checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `ptr..ptr+len` is the mapping just made; advice never changes its
        // contents, and a failure only means no read-ahead hint (ignored).
        unsafe { libc::madvise(ptr, len, libc::MADV_SEQUENTIAL) };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(FileMap { ptr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `offset..offset+len` of the mapping, if it lies inside both the mapping and
    /// `file_len` (the file's length as the caller just read it): a range past the end of
    /// a file that shrank is refused instead of faulting.
    pub fn range(&self, offset: u64, len: u64, file_len: u64) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > file_len || end > self.len as u64 {
            return None;
        }
        // SAFETY: `offset..end` lies inside the mapping (checked above), which lives as
        // long as `self`; the pages are backed by the file up to `file_len`. The mapping
        // is shared: another process writing the file changes these bytes (the transfer
        // then carries what was read; every frame has its CRC32C of what was sent).
        Some(unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().add(offset as usize), len as usize)
        })
    }
}

impl FileMap {
    /// Drops this process's pages of `offset..offset+len` (whole pages inside it): a
    /// streamed file then does not stay resident behind the send. The bytes are the file's:
    /// a later read faults them in again from the page cache or the disk.
    pub fn release(&self, offset: u64, len: u64) {
        const PAGE: u64 = 4096;
        let start = offset.div_ceil(PAGE) * PAGE;
        let end = (offset.saturating_add(len) / PAGE * PAGE).min(self.len as u64 / PAGE * PAGE);
        if end <= start {
            return;
        }
        // SAFETY: `start..end` lies inside the mapping (clamped above) and is page aligned;
        // MADV_DONTNEED on a shared file mapping only drops our page-table entries: any
        // slice still borrowed reads the same file bytes again on its next access.
        unsafe {
            libc::madvise(
                self.ptr.as_ptr().add(start as usize).cast(),
                (end - start) as usize,
                libc::MADV_DONTNEED,
            )
        };
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` made; no slice of it outlives `self`
        // (they borrow it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_mapped_file_reads_back_and_a_shrunk_file_is_refused_not_faulted() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let map = FileMap::map(&f, data.len() as u64).unwrap();
        assert_eq!(
            map.range(0, data.len() as u64, data.len() as u64).unwrap(),
            &data[..]
        );
        assert_eq!(
            map.range(4096, 10, data.len() as u64).unwrap(),
            &data[4096..4106]
        );
        f.set_len(4096).unwrap();
        assert!(map.range(4096, 10, 4096).is_none());
        assert!(map.range(0, 4096, 4096).is_some());
        assert!(map.range(u64::MAX, 2, u64::MAX).is_none());
        assert!(FileMap::map(&f, 0).is_err());
    }
}
