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
    }
}
