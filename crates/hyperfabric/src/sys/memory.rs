//! Memory placement of this process: locking its pages in RAM (`mlockall`) and asking for
//! transparent huge pages on its large buffers (`MADV_HUGEPAGE`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Page size assumed for aligning advice (x86-64 and aarch64 Linux default).
const PAGE_BYTES: usize = 4096;
/// One transparent huge page (x86-64): buffers smaller than this gain nothing from advice.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Locks every page mapped now, and with `future` every page mapped later, once it is
/// touched (`MCL_ONFAULT`: a reserved but unused region costs no RAM).
pub fn lock_all(future: bool) -> io::Result<()> {
    let mut flags = libc::MCL_CURRENT | libc::MCL_ONFAULT;
    if future {
        flags |= libc::MCL_FUTURE;
    }
    // SAFETY: mlockall takes flags only and changes no memory contents.
    let rc = unsafe { libc::mlockall(flags) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A `kB` line of `/proc/self/status` (`VmLck`, `VmSize`), in bytes.
pub fn status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    let kb: u64 = line
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Whether large buffers of this process are advised `MADV_HUGEPAGE` (set once at start
/// by the node's placement).
static HUGE_PAGES: AtomicBool = AtomicBool::new(false);

pub fn set_huge_pages(on: bool) {
    HUGE_PAGES.store(on, Ordering::Relaxed);
}

pub fn huge_pages() -> bool {
    HUGE_PAGES.load(Ordering::Relaxed)
}

/// Advises the whole pages inside `buf`'s allocation (`capacity` bytes) `MADV_HUGEPAGE`,
/// before they are touched, so the kernel backs them with huge pages where it can.
pub fn advise_huge(buf: &mut Vec<u8>) -> io::Result<()> {
    let start = buf.as_mut_ptr() as usize;
    let end = start + buf.capacity();
    let first = start.div_ceil(PAGE_BYTES) * PAGE_BYTES;
    let last = end / PAGE_BYTES * PAGE_BYTES;
    if last <= first {
        return Ok(());
    }
    // SAFETY: [first, last) lies inside the live allocation of `buf`, which we borrow
    // mutably for the call; MADV_HUGEPAGE is advice only and changes no contents.
    let rc = unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The transparent-huge-page mode of `/sys/kernel/mm/transparent_hugepage/<file>` (the
/// bracketed word of e.g. `always [madvise] never`); `None` when the kernel has no THP.
pub fn thp_mode(file: &str) -> Option<String> {
    let text =
        std::fs::read_to_string(format!("/sys/kernel/mm/transparent_hugepage/{file}")).ok()?;
    let open = text.find('[')?;
    let close = text[open..].find(']')? + open;
    Some(text[open + 1..close].to_string())
}

/// A line of `/proc/meminfo` as a number (`HugePages_Total`).
pub fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix(key))?;
    line.trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `VmFlags` of the mapping that holds `addr` in `/proc/self/smaps`.
    fn vm_flags_at(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or("");
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = (a..b).contains(&addr);
                    continue;
                }
            }
            if inside {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return flags.to_string();
                }
            }
        }
        String::new()
    }

    #[test]
    fn advice_marks_the_buffers_mapping() {
        let mut buf: Vec<u8> = Vec::with_capacity(3 * HUGE_PAGE_BYTES);
        advise_huge(&mut buf).unwrap();
        let mid = buf.as_ptr() as usize + HUGE_PAGE_BYTES;
        if thp_mode("enabled").is_some() {
            assert!(vm_flags_at(mid).contains(" hg"), "{}", vm_flags_at(mid));
        }
        assert!(status_bytes("VmSize").is_some_and(|b| b > 0));
        assert!(meminfo("MemTotal").is_some_and(|kb| kb > 0));
    }
}
