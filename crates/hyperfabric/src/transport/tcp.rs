//! TCP sockets tuned from the profile. Every option is applied for real; when the kernel
//! refuses or caps one, we log what we asked, what we got and why, once per process.

use crate::config::Tuning;
use serde::Serialize;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the kernel actually granted on a socket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SocketReport {
    pub nodelay: bool,
    pub send_buffer_bytes: usize,
    pub recv_buffer_bytes: usize,
    pub congestion_control: Option<String>,
}

static WARNED_BUFFERS: AtomicBool = AtomicBool::new(false);
static WARNED_CC: AtomicBool = AtomicBool::new(false);
/// What the kernel made of SO_BUSY_POLL: said once per process.
static WARNED_BUSY_POLL: AtomicBool = AtomicBool::new(false);
/// How long a blocking receive busy-polls the device queue (`busy_poll`), in microseconds.
const BUSY_POLL_US: u32 = 50;

/// Binds a listening socket (SO_REUSEADDR so a restarted node can take its port back).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Connects with a timeout and applies the profile's options before any byte is sent.
pub fn connect(
    addr: SocketAddr,
    timeout: Duration,
    tuning: &Tuning,
    mss: Option<u32>,
) -> io::Result<(TcpStream, SocketReport)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Before connect, so the SYN announces it.
    set_mss(&SockRef::from(&socket), mss);
    // Buffer sizes must be set before connect for the window scale to take them into account.
    request_buffers(&SockRef::from(&socket), tuning);
    socket.connect_timeout(&addr.into(), timeout)?;
    let stream: TcpStream = socket.into();
    let report = apply(&stream, tuning);
    Ok((stream, report))
}

/// Applies the profile's options to an accepted or connected stream.
pub fn apply(stream: &TcpStream, tuning: &Tuning) -> SocketReport {
    let sock = SockRef::from(stream);
    if let Err(e) = sock.set_nodelay(tuning.tcp_nodelay) {
        tracing::warn!("TCP_NODELAY={} could not be set: {e}", tuning.tcp_nodelay);
    }
    request_buffers(&sock, tuning);
    if tuning.busy_poll {
        // Ask for immediate ACKs: delayed ACKs add latency to request/response traffic.
        if let Err(e) = sock.set_quickack(true) {
            tracing::debug!("TCP_QUICKACK could not be set: {e}");
        }
        // Blocking receives poll the device queue before sleeping (callers poll the socket
        // themselves either way: runtime::tcp_poll).
        let asked = crate::sys::socket::set_busy_poll(stream, BUSY_POLL_US);
        if !WARNED_BUSY_POLL.swap(true, Ordering::Relaxed) {
            match asked {
                Err(e) => tracing::info!(
                    "SO_BUSY_POLL={BUSY_POLL_US} µs refused ({e}; above net.core.busy_read it needs CAP_NET_ADMIN): receives sleep in the kernel as usual, waiting callers and reader threads still poll the socket"
                ),
                Ok(()) => {
                    let got = crate::sys::socket::busy_poll(stream).unwrap_or(0);
                    tracing::info!(
                        "SO_BUSY_POLL asked {BUSY_POLL_US} µs, kernel holds {got} µs (it polls only device queues: none on loopback)"
                    );
                }
            }
        }
    }
    let congestion_control = tuning.congestion_control.as_deref().and_then(|cc| {
        match sock.set_tcp_congestion(cc.as_bytes()) {
            Ok(()) => Some(cc.to_owned()),
            Err(e) => {
                if !WARNED_CC.swap(true, Ordering::Relaxed) {
                    let available = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
                        .unwrap_or_default();
                    tracing::warn!(
                        "congestion control `{cc}` not available ({e}); kernel offers: {}; keeping the default",
                        available.trim()
                    );
                }
                None
            }
        }
    });
    let congestion_control = congestion_control.or_else(|| {
        sock.tcp_congestion().ok().map(|v| {
            String::from_utf8_lossy(&v)
                .trim_end_matches('\0')
                .to_owned()
        })
    });
    SocketReport {
        nodelay: sock.nodelay().unwrap_or(false),
        send_buffer_bytes: sock.send_buffer_size().unwrap_or(0),
        recv_buffer_bytes: sock.recv_buffer_size().unwrap_or(0),
        congestion_control,
    }
}

/// TCP_MAXSEG (`metadata.mtu_size` - 40); the kernel clamps it to the path's MTU.
pub fn set_mss(sock: &SockRef<'_>, mss: Option<u32>) {
    if let Some(mss) = mss {
        if let Err(e) = sock.set_mss(mss) {
            tracing::debug!("TCP_MAXSEG={mss} could not be set: {e}");
        }
    }
}

fn request_buffers(sock: &SockRef<'_>, tuning: &Tuning) {
    let want = tuning.socket_buffer_bytes;
    let (send, recv) = size_buffers(sock, want);
    if !send.in_full(want) || !recv.in_full(want) {
        let text = format!(
            "TCP socket buffers: asked for {}: send {}, receive {} \
             (net.core.wmem_max / rmem_max = {} / {}; Linux reports twice the capped value); \
             raise both to at least {want} for full TCP throughput",
            human_bytes(want as u64),
            send.shown(),
            recv.shown(),
            sysctl_bytes("net/core/wmem_max"),
            sysctl_bytes("net/core/rmem_max"),
        );
        tracing::debug!("{text}");
        let _ = CAPPED_BUFFERS.set(text);
    }
}

/// How one direction of a socket's buffer is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferPlan {
    /// `SO_SNDBUF`/`SO_RCVBUF` = the request: the kernel grants at most its `net.core` max
    /// and stops autotuning that direction.
    Set,
    /// Not set: the kernel's `net.core` max would cap the request below what its own
    /// autotuning reaches (`net.ipv4.tcp_wmem` / `tcp_rmem`'s third value), so a fixed buffer
    /// would be the smaller one.
    Autotune,
}

/// Whether to set a buffer of `want` bytes, given the explicit cap `core_max`
/// (`net.core.wmem_max`/`rmem_max`) and the autotuning ceiling `tcp_max`. A request granted in
/// full is always set; a capped one only when the capped buffer (which Linux doubles for its
/// bookkeeping) is at least what autotuning would reach.
pub fn plan_buffer(want: usize, core_max: usize, tcp_max: usize) -> BufferPlan {
    let capped = want.min(core_max).saturating_mul(2);
    if want > core_max && tcp_max > capped {
        BufferPlan::Autotune
    } else {
        BufferPlan::Set
    }
}

/// The kernel's socket-buffer limits, read once per process (unreadable: no cap assumed, so
/// every buffer is set as asked, as before the autotuning rule).
struct BufferLimits {
    wmem_max: usize,
    rmem_max: usize,
    tcp_wmem_max: usize,
    tcp_rmem_max: usize,
}

impl BufferLimits {
    fn get() -> &'static BufferLimits {
        static LIMITS: std::sync::OnceLock<BufferLimits> = std::sync::OnceLock::new();
        LIMITS.get_or_init(|| {
            let core = |name| read_sysctl(name).parse().unwrap_or(usize::MAX);
            // "min default max": the third value is autotuning's ceiling.
            let tcp = |name| {
                let raw = read_sysctl(name);
                raw.split_whitespace()
                    .nth(2)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            BufferLimits {
                wmem_max: core("net/core/wmem_max"),
                rmem_max: core("net/core/rmem_max"),
                tcp_wmem_max: tcp("net/ipv4/tcp_wmem"),
                tcp_rmem_max: tcp("net/ipv4/tcp_rmem"),
            }
        })
    }
}

/// What one direction of a socket's buffer came to.
#[derive(Debug)]
pub enum Grant {
    /// Set; the kernel reports this many bytes (twice the usable size).
    Fixed(usize),
    /// Left to autotuning, which grows it up to this many bytes.
    Autotuned(usize),
    /// Setting or reading it failed.
    Failed(io::Error),
}

impl Grant {
    fn read(got: io::Result<usize>) -> Grant {
        got.map_or_else(Grant::Failed, Grant::Fixed)
    }

    /// Whether it holds the `want` bytes asked for.
    pub fn in_full(&self, want: usize) -> bool {
        match self {
            Grant::Fixed(n) | Grant::Autotuned(n) => granted_in_full(*n, want),
            Grant::Failed(_) => false,
        }
    }

    /// "8 MiB granted", "left to autotuning (up to 32 MiB)", "none (why)".
    pub fn shown(&self) -> String {
        match self {
            Grant::Fixed(n) => format!("{} granted", human_bytes(*n as u64)),
            Grant::Autotuned(n) => format!(
                "left to the kernel's autotuning, up to {} (net.ipv4.tcp_*mem max; a fixed \
                 buffer would be capped lower)",
                human_bytes(*n as u64)
            ),
            Grant::Failed(e) => format!("none ({e})"),
        }
    }
}

/// What a fresh socket gets when `want` bytes of send and receive buffer are asked for by
/// the rules every TCP link follows (for the configuration report).
pub fn probe_buffers(want: usize) -> io::Result<(Grant, Grant)> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    Ok(size_buffers(&SockRef::from(&socket), want))
}

/// Sizes both buffers of `sock` for a request of `want` bytes ([`plan_buffer`]).
fn size_buffers(sock: &SockRef<'_>, want: usize) -> (Grant, Grant) {
    let limits = BufferLimits::get();
    let send = match plan_buffer(want, limits.wmem_max, limits.tcp_wmem_max) {
        BufferPlan::Set => Grant::read(
            sock.set_send_buffer_size(want)
                .and_then(|_| sock.send_buffer_size()),
        ),
        BufferPlan::Autotune => Grant::Autotuned(limits.tcp_wmem_max),
    };
    let recv = match plan_buffer(want, limits.rmem_max, limits.tcp_rmem_max) {
        BufferPlan::Set => Grant::read(
            sock.set_recv_buffer_size(want)
                .and_then(|_| sock.recv_buffer_size()),
        ),
        BufferPlan::Autotune => Grant::Autotuned(limits.tcp_rmem_max),
    };
    (send, recv)
}

/// Whether a socket buffer the kernel reports as `reported` bytes holds the `want` asked for.
/// Linux reports twice what it granted (bookkeeping overhead), so a request capped at half of
/// `want` reads back as `want` and must still count as capped.
pub fn granted_in_full(reported: usize, want: usize) -> bool {
    reported >= want.saturating_mul(2)
}

/// The socket-buffer cap seen when sockets were set up, logged once and only when bytes go
/// over TCP: a link that moved to shared memory does not care about socket buffers.
static CAPPED_BUFFERS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Called when a frame with a payload is written to a TCP socket: warns (once per process)
/// if the kernel capped the socket buffers.
#[inline]
pub fn note_payload_over_tcp() {
    if WARNED_BUFFERS.load(Ordering::Relaxed) {
        return;
    }
    if let Some(text) = CAPPED_BUFFERS.get() {
        if !WARNED_BUFFERS.swap(true, Ordering::Relaxed) {
            tracing::warn!("{text}");
        }
    }
}

/// 67108864 -> "64 MiB"; 1536 -> "1.5 KiB".
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn sysctl_bytes(name: &str) -> String {
    let raw = read_sysctl(name);
    raw.parse::<u64>().map_or(raw, human_bytes)
}

fn read_sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{name}"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

/// Writes every byte of `bufs` (writev), retrying on short writes and interrupts.
pub fn write_all_vectored(w: &mut impl Write, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "connection accepted no more bytes",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_sizes_read_as_units() {
        assert_eq!(human_bytes(67_108_864), "64 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100), "100 B");
    }

    #[test]
    fn a_buffer_capped_at_half_the_request_counts_as_capped() {
        // Asked 8 MiB, granted 8 MiB: Linux reports 16 MiB.
        assert!(granted_in_full(16 << 20, 8 << 20));
        // Asked 8 MiB, capped at 4 MiB (rmem_max): reported 8 MiB, which is not the request.
        assert!(!granted_in_full(8 << 20, 8 << 20));
        assert!(!granted_in_full(0, 1));
    }

    #[test]
    fn a_buffer_the_kernel_would_cap_below_autotuning_is_left_to_autotuning() {
        const MIB: usize = 1 << 20;
        // This VM: rmem_max 4 MiB, tcp_rmem max 32 MiB; 64 MiB asked -> a set buffer would
        // be 8 MiB (reported), autotuning reaches 32 MiB.
        assert_eq!(
            plan_buffer(64 * MIB, 4 * MIB, 32 * MIB),
            BufferPlan::Autotune
        );
        // wmem_max 4 MiB, tcp_wmem max 4 MiB: the set (doubled) 8 MiB is the larger one.
        assert_eq!(plan_buffer(64 * MIB, 4 * MIB, 4 * MIB), BufferPlan::Set);
        // Granted in full: always set, whatever autotuning could reach.
        assert_eq!(plan_buffer(4 * MIB, 4 * MIB, 32 * MIB), BufferPlan::Set);
        // Limits unreadable (usize::MAX / 0): set, as before the rule.
        assert_eq!(plan_buffer(64 * MIB, usize::MAX, 0), BufferPlan::Set);
        assert!(Grant::Autotuned(32 * MIB).in_full(16 * MIB));
        assert!(!Grant::Autotuned(32 * MIB).in_full(64 * MIB));
        assert!(Grant::Autotuned(32 * MIB)
            .shown()
            .contains("autotuning, up to 32 MiB"));
    }

    #[test]
    fn vectored_write_survives_short_writes() {
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let n = b.len().min(3);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = Trickle(Vec::new());
        let (a, b) = (b"header".as_slice(), b"payload!".as_slice());
        write_all_vectored(&mut w, &mut [IoSlice::new(a), IoSlice::new(b)]).unwrap();
        assert_eq!(w.0, b"headerpayload!");
    }
}
