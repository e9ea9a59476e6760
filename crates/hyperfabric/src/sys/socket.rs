//! Socket options that `socket2` does not offer.

use std::io;
use std::os::fd::AsRawFd;

/// `SO_BUSY_POLL`: a blocking receive on this socket busy-polls the device queue for up to
/// `usec` microseconds before it sleeps (where the driver supports it; loopback has no device
/// queue to poll). Raising it above `net.core.busy_read` needs CAP_NET_ADMIN: the kernel then
/// answers EPERM, which the caller reports.
pub fn set_busy_poll(sock: &impl AsRawFd, usec: u32) -> io::Result<()> {
    let val = libc::c_int::try_from(usec).unwrap_or(libc::c_int::MAX);
    // SAFETY: `val` is a live c_int for the duration of the call and the length passed is its
    // size; the kernel only reads it. A descriptor that is not a socket yields ENOTSOCK.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The `SO_BUSY_POLL` value the kernel holds for this socket, in microseconds (what it
/// granted, read back after a request).
pub fn busy_poll(sock: &impl AsRawFd) -> io::Result<u32> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `val` and `len` are live locals for the duration of the call; `len` holds the
    // size of `val`, so the kernel writes at most that many bytes into it.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(u32::try_from(val).unwrap_or(0))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits until `sock` is readable (data, its end, or an error waits) or `timeout` passes;
/// returns whether it is readable. A kernel wake-up, not a fixed sleep: the waiter runs as
/// soon as a byte arrives. Interrupted waits report "not readable" (the caller polls again).
pub fn poll_readable(sock: &impl AsRawFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is one live pollfd and the count passed is 1; the kernel writes only its
    // `revents` field.
    let rc = unsafe { libc::poll(&mut fd, 1, ms) };
    match rc {
        0 => Ok(false),
        n if n > 0 => Ok(true),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_takes_zero_and_a_file_is_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // Zero never raises the value, so no capability is needed.
        set_busy_poll(&l, 0).unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(set_busy_poll(&f, 10).is_err());
        assert_eq!(busy_poll(&l).unwrap(), 0);
    }

    #[test]
    fn readable_once_a_byte_waits() {
        use std::io::Write;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let short = std::time::Duration::from_millis(1);
        assert!(!poll_readable(&b, short).unwrap());
        a.write_all(b"x").unwrap();
        assert!(poll_readable(&b, std::time::Duration::from_secs(10)).unwrap());
    }
}
