//! SIGHUP as a request, not an end: `hfabric serve` re-reads what it can re-read (the
//! predictor's history) when told to. The handler only sets a flag (async-signal-safe);
//! the serving loop takes it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static HANGUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_hangup(_: libc::c_int) {
    HANGUP.store(true, Ordering::Release);
}

/// From now on SIGHUP sets the flag [`take_hangup`] reads (instead of what it did before,
/// e.g. ending the process).
pub fn catch_hangup() -> io::Result<()> {
    // SAFETY: sigaction is plain data; all-zero is a valid empty action.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_hangup as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa_mask` is a sigset_t we own; sigemptyset only writes it.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: installs a handler that only stores to an atomic (async-signal-safe) for a
    // valid signal number; the old action is not asked for (null).
    let rc = unsafe { libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True once per SIGHUP received since the last call (several in between count once).
pub fn take_hangup() -> bool {
    HANGUP.swap(false, Ordering::AcqRel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hangup_sets_the_flag_once() {
        catch_hangup().unwrap();
        assert!(!take_hangup());
        // SAFETY: raise delivers SIGHUP to this thread; the handler above only sets a flag.
        assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
        assert!(take_hangup());
        assert!(!take_hangup());
    }
}
