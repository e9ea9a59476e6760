//! A named shared mapping: a file under `/dev/shm`, mode 0600, with a validated header.
//!
//! ```text
//!  offset  0        8        12       16                24       28       32                40      64
//!         +--------+--------+--------+-----------------+--------+--------+-----------------+-------+
//!         | magic  |version |hdr_len | total_len (u64) |  pid   | (pad)  | heartbeat (u64) | (0)   |
//!         +--------+--------+--------+-----------------+--------+--------+-----------------+-------+
//!  4096   data region: total_len - 4096 bytes, page aligned (a ring, a pool, ...)
//! ```
//!
//! The creator writes every field, then publishes `magic` with a Release store; an opener
//! loads `magic` with Acquire and refuses anything it does not recognise with a typed
//! [`SegmentError`]. The file size must equal `total_len`.
//!
//! Truncation: the memory is a sealed memfd (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`,
//! mode 0600), and `/dev/shm/<name>` is a symlink to the creator's `/proc/<pid>/fd/<n>`, so an
//! opener gets the very same sealed file by name, with no fd passing. Nobody, creator or peer,
//! can shrink it, so no mapping can SIGBUS; an opener refuses a segment without the seals
//! ([`SegmentError::NotSealed`]). The name resolves while the creator lives (it holds the fd).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `b"HFSHMSEG"` read as a little-endian u64.
pub const SEGMENT_MAGIC: u64 = u64::from_le_bytes(*b"HFSHMSEG");
/// Layout version; bump on any change to the header or to what lives in the data region.
pub const SEGMENT_VERSION: u32 = 1;
/// Bytes reserved for the header; the data region starts here (page aligned).
pub const SEGMENT_HEADER_LEN: usize = 4096;
/// Largest segment we create or accept (1 GiB); a limit, not a hope.
pub const SEGMENT_LEN_MAX: usize = 1 << 30;
/// Longest segment name (a file name under `/dev/shm`).
pub const SEGMENT_NAME_LEN_MAX: usize = 200;
/// Where segments live.
pub const SHM_DIR: &str = "/dev/shm";

/// The fixed header at offset 0 of every segment.
#[repr(C, align(64))]
pub struct SegmentHeader {
    magic: AtomicU64,
    version: AtomicU32,
    header_len: AtomicU32,
    total_len: AtomicU64,
    creator_pid: AtomicU32,
    _pad: u32,
    heartbeat: AtomicU64,
    _reserved: [u64; 3],
}

const _: () = {
    assert!(std::mem::size_of::<SegmentHeader>() == 64);
    assert!(std::mem::align_of::<SegmentHeader>() == 64);
    assert!(std::mem::offset_of!(SegmentHeader, magic) == 0);
    assert!(std::mem::offset_of!(SegmentHeader, version) == 8);
    assert!(std::mem::offset_of!(SegmentHeader, header_len) == 12);
    assert!(std::mem::offset_of!(SegmentHeader, total_len) == 16);
    assert!(std::mem::offset_of!(SegmentHeader, creator_pid) == 24);
    assert!(std::mem::offset_of!(SegmentHeader, heartbeat) == 32);
    assert!(SEGMENT_HEADER_LEN & 4095 == 0);
};

/// Why a segment could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    #[error("invalid segment name {name:?}: use 1..=200 of [A-Za-z0-9._-]")]
    InvalidName { name: String },
    #[error("segment size {len} out of range (data region 1..={max} bytes)")]
    InvalidSize { len: usize, max: usize },
    #[error("segment {name}: bad magic {found:#018x}")]
    BadMagic { name: String, found: u64 },
    #[error("segment {name}: version {found}, we speak {SEGMENT_VERSION}")]
    BadVersion { name: String, found: u32 },
    #[error("segment {name}: header says {header_len}/{total_len} bytes, file has {file_len}")]
    BadLayout {
        name: String,
        header_len: u32,
        total_len: u64,
        file_len: u64,
    },
    #[error("segment {name} is not sealed against shrinking (a peer could truncate it)")]
    NotSealed { name: String },
    #[error("segment {name}: {source}")]
    Io { name: String, source: io::Error },
}

/// A mapped shared-memory segment. The creator unlinks the file when dropped (or earlier
/// with [`Segment::unlink`]); the mapping itself lives until the last handle is dropped.
pub struct Segment {
    base: NonNull<u8>,
    len: usize,
    name: String,
    path: PathBuf,
    owner: bool,
    unlinked: std::sync::atomic::AtomicBool,
    /// The creator's memfd: keeps `/proc/<pid>/fd/<n>` (what the name links to) open.
    _file: Option<File>,
}

// SAFETY: the mapping is plain shared memory owned by this value until Drop; all access to it
// from safe code goes through atomics (header) or through the ring/pool types, whose own
// protocols (one producer, one consumer) make concurrent use sound.
unsafe impl Send for Segment {}
// SAFETY: as above; `&Segment` only exposes atomics and raw pointers.
unsafe impl Sync for Segment {}

fn io_err(name: &str) -> impl FnOnce(io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        name: name.to_owned(),
        source,
    }
}

fn check_name(name: &str) -> Result<(), SegmentError> {
    let ok = !name.is_empty()
        && name.len() <= SEGMENT_NAME_LEN_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SegmentError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// The conventional name of the segment carrying `from -> to` in `fabric`, created by `pid`.
/// Characters outside `[A-Za-z0-9._-]` are replaced by `_`.
pub fn segment_name(fabric: &str, from: &str, to: &str, pid: u32) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("hf-{}-{}-{}-{}", clean(fabric), clean(from), clean(to), pid)
}

/// Seals every segment carries: its size can never change.
const REQUIRED_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// A memfd of `len` bytes, mode 0600, sealed against any change of size.
fn sealed_memfd(name: &str, len: usize) -> io::Result<File> {
    use std::os::unix::io::FromRawFd;
    let cname = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated name and flags; the result is checked below.
    let fd =
        unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.set_len(len as u64)?;
    // SAFETY: fcntl on an fd we own, with an integer argument.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, REQUIRED_SEALS) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// The seals of an open file (an error for files that cannot be sealed, e.g. plain tmpfs).
fn seals(file: &File) -> io::Result<libc::c_int> {
    // SAFETY: fcntl(F_GET_SEALS) on an fd we own; no pointer arguments.
    let s = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
    if s < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(s)
    }
}

fn map_file(file: &File, len: usize, name: &str) -> Result<NonNull<u8>, SegmentError> {
    // SAFETY: a fresh shared read/write mapping of `len` bytes of an open file descriptor;
    // the kernel chooses the address, so no existing memory is affected.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io_err(name)(io::Error::last_os_error()));
    }
    NonNull::new(ptr.cast::<u8>())
        .ok_or_else(|| io_err(name)(io::Error::other("mmap returned null")))
}

impl Segment {
    /// Faults every page of the mapping in now (allocating it when we are the first), so
    /// that the first lap of a ring does not take a page fault every few dozen records in
    /// the middle of the latency path (`MADV_POPULATE_WRITE`, Linux 5.14+). An error leaves
    /// the pages to be faulted in on first use; the caller says so.
    pub fn populate(&self) -> io::Result<()> {
        // SAFETY: advice on exactly our own mapping [base, base + len); POPULATE_WRITE only
        // faults pages in (as writes would), it changes no contents.
        let rc = unsafe {
            libc::madvise(
                self.base.as_ptr().cast(),
                self.len,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Creates a sealed memfd of `data_len` data bytes (mode 0600), maps it, writes the header
    /// and links `/dev/shm/<name>` (must not exist) to it.
    pub fn create(name: &str, data_len: usize) -> Result<Segment, SegmentError> {
        check_name(name)?;
        let max = SEGMENT_LEN_MAX - SEGMENT_HEADER_LEN;
        if data_len == 0 || data_len > max {
            return Err(SegmentError::InvalidSize { len: data_len, max });
        }
        let len = SEGMENT_HEADER_LEN + data_len;
        let file = sealed_memfd(name, len).map_err(io_err(name))?;
        let base = map_file(&file, len, name)?;
        let path = Path::new(SHM_DIR).join(name);
        let target = format!("/proc/{}/fd/{}", std::process::id(), file.as_raw_fd());
        let seg = Segment {
            base,
            len,
            name: name.to_owned(),
            path,
            owner: true,
            // Not linked yet: nothing to remove if linking fails.
            unlinked: true.into(),
            _file: Some(file),
        };
        std::os::unix::fs::symlink(&target, &seg.path).map_err(io_err(name))?;
        seg.unlinked.store(false, Ordering::Release);
        let h = seg.header();
        h.version.store(SEGMENT_VERSION, Ordering::Relaxed);
        h.header_len
            .store(SEGMENT_HEADER_LEN as u32, Ordering::Relaxed);
        h.total_len.store(len as u64, Ordering::Relaxed);
        h.creator_pid.store(std::process::id(), Ordering::Relaxed);
        h.heartbeat.store(0, Ordering::Relaxed);
        h.magic.store(SEGMENT_MAGIC, Ordering::Release);
        Ok(seg)
    }

    /// Opens and maps an existing segment, validating magic, version and layout.
    pub fn open(name: &str) -> Result<Segment, SegmentError> {
        check_name(name)?;
        let path = Path::new(SHM_DIR).join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(name))?;
        let file_len = file.metadata().map_err(io_err(name))?.len();
        if file_len < (SEGMENT_HEADER_LEN + 8) as u64 || file_len > SEGMENT_LEN_MAX as u64 {
            return Err(SegmentError::BadLayout {
                name: name.to_owned(),
                header_len: 0,
                total_len: 0,
                file_len,
            });
        }
        let len = file_len as usize;
        let base = map_file(&file, len, name)?;
        let sealed = seals(&file).is_ok_and(|s| s & REQUIRED_SEALS == REQUIRED_SEALS);
        let seg = Segment {
            base,
            len,
            name: name.to_owned(),
            path,
            owner: false,
            unlinked: false.into(),
            _file: None,
        };
        let h = seg.header();
        let magic = h.magic.load(Ordering::Acquire);
        if magic != SEGMENT_MAGIC {
            return Err(SegmentError::BadMagic {
                name: name.to_owned(),
                found: magic,
            });
        }
        let version = h.version.load(Ordering::Relaxed);
        if version != SEGMENT_VERSION {
            return Err(SegmentError::BadVersion {
                name: name.to_owned(),
                found: version,
            });
        }
        let header_len = h.header_len.load(Ordering::Relaxed);
        let total_len = h.total_len.load(Ordering::Relaxed);
        if header_len as usize != SEGMENT_HEADER_LEN || total_len != file_len {
            return Err(SegmentError::BadLayout {
                name: name.to_owned(),
                header_len,
                total_len,
                file_len,
            });
        }
        if !sealed {
            return Err(SegmentError::NotSealed {
                name: name.to_owned(),
            });
        }
        Ok(seg)
    }

    fn header(&self) -> &SegmentHeader {
        // SAFETY: `base` is page aligned, the mapping is at least SEGMENT_HEADER_LEN bytes and
        // lives as long as `self`; every field is an atomic (or padding), so shared access
        // from several processes is data-race free.
        unsafe { &*self.base.as_ptr().cast::<SegmentHeader>() }
    }

    /// The segment's name (file name under `/dev/shm`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this handle created the segment.
    pub fn is_owner(&self) -> bool {
        self.owner
    }

    /// The pid recorded by the creator.
    pub fn creator_pid(&self) -> u32 {
        self.header().creator_pid.load(Ordering::Relaxed)
    }

    /// Bumps the heartbeat counter (the creator calls this from its progress loop).
    pub fn beat(&self) {
        self.header().heartbeat.fetch_add(1, Ordering::Relaxed);
    }

    /// The heartbeat counter; a peer that sees it stand still for long is presumed dead.
    pub fn heartbeat(&self) -> u64 {
        self.header().heartbeat.load(Ordering::Relaxed)
    }

    /// Start of the data region (page aligned).
    pub fn data_ptr(&self) -> NonNull<u8> {
        // SAFETY: SEGMENT_HEADER_LEN < len (checked in create/open), so the result stays
        // inside the mapping and is non-null.
        unsafe { NonNull::new_unchecked(self.base.as_ptr().add(SEGMENT_HEADER_LEN)) }
    }

    /// Length of the data region in bytes.
    pub fn data_len(&self) -> usize {
        self.len - SEGMENT_HEADER_LEN
    }

    /// Removes the file (idempotent); mapped handles keep working.
    pub fn unlink(&self) -> io::Result<()> {
        if self.unlinked.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.owner {
            let _ = self.unlink();
        }
        // SAFETY: `base`/`len` describe exactly the mapping created in `map_file`; no
        // reference derived from it outlives `self` (handles hold an `Arc<Segment>`).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("len", &self.len)
            .field("owner", &self.owner)
            .finish()
    }
}

/// Reads the creator pid of a segment file without mapping it; `None` if it is not ours.
fn creator_pid_of(path: &Path) -> Option<u32> {
    let mut buf = [0u8; 64];
    File::open(path).ok()?.read_exact(&mut buf).ok()?;
    let magic = u64::from_le_bytes(buf[0..8].try_into().ok()?);
    if magic != SEGMENT_MAGIC {
        return None;
    }
    Some(u32::from_le_bytes(buf[24..28].try_into().ok()?))
}

fn dangling_proc_link(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|t| t.starts_with("/proc/")) && fs::metadata(path).is_err()
}

fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

/// Deletes segments under `/dev/shm` whose name starts with `prefix` and whose creator
/// process is gone (no `/proc/<pid>`). Returns the names removed. Files that are not
/// HyperFabric segments are left alone. (A recycled pid keeps a stale segment alive until
/// that process exits too; harmless, and the next sweep gets it.)
pub fn remove_stale(prefix: &str) -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(SHM_DIR)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with(prefix) || check_name(&name).is_err() {
            continue;
        }
        let path = entry.path();
        let dead = match creator_pid_of(&path) {
            Some(pid) => !pid_alive(pid),
            // A link into a process's fd table that no longer resolves: its creator is gone.
            None => dangling_proc_link(&path),
        };
        if dead && fs::remove_file(&path).is_ok() {
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn unique(tag: &str) -> String {
        use std::sync::atomic::AtomicUsize;
        static N: AtomicUsize = AtomicUsize::new(0);
        format!(
            "hf-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    #[test]
    fn create_open_roundtrip_and_mode() {
        let name = unique("seg");
        let a = Segment::create(&name, 8192).unwrap();
        let mode = fs::metadata(Path::new(SHM_DIR).join(&name))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
        let b = Segment::open(&name).unwrap();
        assert_eq!(b.data_len(), 8192);
        assert_eq!(b.creator_pid(), std::process::id());
        a.beat();
        a.beat();
        assert_eq!(b.heartbeat(), 2);
        drop(a);
        assert!(!Path::new(SHM_DIR).join(&name).exists());
        assert!(matches!(Segment::open(&name), Err(SegmentError::Io { .. })));
    }

    #[test]
    fn open_refuses_bad_magic_version_size() {
        let name = unique("bad");
        let path = Path::new(SHM_DIR).join(&name);
        fs::write(&path, vec![0u8; 8192]).unwrap();
        assert!(matches!(
            Segment::open(&name),
            Err(SegmentError::BadMagic { .. })
        ));
        let mut bytes = vec![0u8; 8192];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Segment::open(&name),
            Err(SegmentError::BadVersion { found: 99, .. })
        ));
        bytes[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        bytes[16..24].copy_from_slice(&1_000_000u64.to_le_bytes());
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Segment::open(&name),
            Err(SegmentError::BadLayout { .. })
        ));
        fs::write(&path, [1u8; 16]).unwrap();
        assert!(matches!(
            Segment::open(&name),
            Err(SegmentError::BadLayout { .. })
        ));
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn segments_cannot_be_truncated_and_unsealed_ones_are_refused() {
        let name = unique("seal");
        let a = Segment::create(&name, 8192).unwrap();
        let peer = OpenOptions::new()
            .read(true)
            .write(true)
            .open(Path::new(SHM_DIR).join(&name))
            .unwrap();
        assert!(
            peer.set_len(0).is_err(),
            "a peer must not shrink the segment"
        );
        assert!(peer.set_len(1 << 20).is_err(), "nor grow it");
        a.beat();
        assert_eq!(Segment::open(&name).unwrap().heartbeat(), 1);
        // A plain file with a perfect header is still refused: it could be truncated.
        let plain = unique("plain");
        let mut bytes = vec![0u8; SEGMENT_HEADER_LEN + 8192];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        bytes[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        let total = bytes.len() as u64;
        bytes[16..24].copy_from_slice(&total.to_le_bytes());
        let path = Path::new(SHM_DIR).join(&plain);
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Segment::open(&plain),
            Err(SegmentError::NotSealed { .. })
        ));
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn names_are_checked() {
        assert!(matches!(
            Segment::create("../etc", 64),
            Err(SegmentError::InvalidName { .. })
        ));
        assert!(matches!(
            Segment::open("a/b"),
            Err(SegmentError::InvalidName { .. })
        ));
        assert!(matches!(
            Segment::create("x", 0),
            Err(SegmentError::InvalidSize { .. })
        ));
        assert_eq!(
            segment_name("lab", "gpu 1", "gpu/2", 7),
            "hf-lab-gpu_1-gpu_2-7"
        );
    }

    #[test]
    fn remove_stale_deletes_dead_creators_only() {
        let prefix = unique("stale");
        let live = Segment::create(&format!("{prefix}-live"), 4096).unwrap();
        let dead_name = format!("{prefix}-dead");
        let dead = Segment::create(&dead_name, 4096).unwrap();
        // Pretend the creator died: pid_max is at most 2^22, so this pid cannot exist.
        dead.header()
            .creator_pid
            .store(u32::MAX - 1, Ordering::Relaxed);
        // The name of a segment whose creator died: its link into /proc no longer resolves.
        let gone = format!("{prefix}-gone");
        std::os::unix::fs::symlink("/proc/4294967294/fd/3", Path::new(SHM_DIR).join(&gone))
            .unwrap();
        let mut removed = remove_stale(&prefix).unwrap();
        removed.sort();
        assert_eq!(removed, vec![dead_name, gone]);
        assert!(Path::new(SHM_DIR).join(live.name()).exists());
    }
}
