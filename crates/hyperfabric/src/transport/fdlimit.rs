//! The process's file-descriptor limit: each connection costs descriptors, and a common soft
//! limit of 1,024 would let a flood of strangers leave members unable to connect. A node
//! raises its soft `RLIMIT_NOFILE` to the hard limit (capped at [`WANTED_FDS`]) once per
//! process and logs what it got.

use std::sync::OnceLock;

/// The soft limit a node asks for (more would only hide a leak).
pub const WANTED_FDS: u64 = 1 << 20;

/// (soft limit before, soft limit now), computed once per process.
pub fn raise() -> (u64, u64) {
    static DONE: OnceLock<(u64, u64)> = OnceLock::new();
    *DONE.get_or_init(|| {
        let got = raise_once();
        match &got {
            Ok((before, now)) if now > before => {
                tracing::info!("raised the file-descriptor limit from {before} to {now}")
            }
            Ok((_, now)) => tracing::info!("file-descriptor limit: {now}"),
            Err(e) => tracing::warn!("cannot read or raise the file-descriptor limit: {e}"),
        }
        got.unwrap_or((0, 0))
    })
}

// `rlim_t` is u64 on Linux but not everywhere: the casts are for the others.
#[allow(clippy::unnecessary_cast)]
fn raise_once() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur as u64;
    let want = (lim.rlim_max as u64).min(WANTED_FDS);
    if want <= before {
        return Ok((before, before));
    }
    let raised = libc::rlimit {
        rlim_cur: want as libc::rlim_t,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit read by the call; the hard limit is unchanged.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((before, want))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_never_goes_down() {
        let (before, now) = super::raise();
        assert!(now >= before && now > 0, "{before} -> {now}");
    }
}
