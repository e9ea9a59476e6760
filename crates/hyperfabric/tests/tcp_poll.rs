//! Caller-driven progress over plain TCP (`busy_poll`, on in `low_latency`): a pinger reads
//! the socket itself (counted in `frames_polled`) while the link's reader thread sleeps, and
//! the reader thread reads again once the pinger is done; the answering side's reader thread
//! spins on the socket between frames for a bounded while, then blocks. Without `busy_poll` nothing changes:
//! the reader thread reads every frame. No timing is asserted.

use hyperfabric::transport::{TransportChoice, TransportKind};
use hyperfabric::{Fabric, PingOptions, SendOptions};
use std::time::Duration;

mod common;
use common::{pattern, start_pair, two_node_config};

const PINGS: u64 = 300;
const RECV: Duration = Duration::from_secs(10);

fn pair(name: &str, fabric_lines: &str) -> (Fabric, Fabric) {
    start_pair(two_node_config(name, fabric_lines), TransportChoice::Tcp)
}

fn ping(a: &Fabric) -> hyperfabric::PingStats {
    let opts = PingOptions::new()
        .size(64)
        .count(PINGS)
        .timeout(Duration::from_secs(5));
    a.ping("b", opts).expect("pings answered")
}

/// Connects `a` to `b` with one ping: on a connection just made the reader thread may not
/// have handed the stream over yet, and answers that ping itself.
fn connected(a: &Fabric) -> u64 {
    let opts = PingOptions::new().count(1).timeout(Duration::from_secs(5));
    assert_eq!(a.ping("b", opts).expect("first ping").received, 1);
    a.stats().frames_polled
}

/// A send from `a` to `b` arrives byte-identical and its end-to-end ack comes back.
fn send_arrives(a: &Fabric, b: &Fabric, len: usize, seed: u8) {
    let data = pattern(len, seed);
    a.send("b", &data, SendOptions::new())
        .expect("send acknowledged");
    let msg = b.recv_timeout(RECV).expect("message arrives");
    assert_eq!(&msg.payload[..], &data[..], "bytes changed on the way");
}

#[test]
fn low_latency_pings_read_the_socket_on_the_calling_thread() {
    let (a, b) = pair("tcp-poll", "profile = \"low_latency\"");
    assert!(
        a.config().tuning.busy_poll,
        "low_latency turns busy_poll on"
    );
    let before = connected(&a);
    let stats = ping(&a);
    assert_eq!(stats.transport, TransportKind::Tcp);
    assert_eq!((stats.sent, stats.received), (PINGS, PINGS));
    // Every pong (at least) was read by the pinging thread itself.
    let polled = a.stats().frames_polled;
    assert!(
        polled >= before + PINGS,
        "only {} frames read by the caller",
        polled - before
    );
    // The pinger is gone. A sender waits for its ack reading the socket itself when it can
    // take it (counted too), else the reader thread reads it: either way it arrives.
    send_arrives(&a, &b, 64, 1);
    send_arrives(&a, &b, 3 << 20, 2);
    let polled = a.stats().frames_polled;
    assert_eq!(
        ping(&a).received,
        PINGS,
        "a second run takes the socket again"
    );
    assert!(a.stats().frames_polled >= polled + PINGS);
}

#[test]
fn without_busy_poll_the_reader_thread_reads_everything() {
    let (a, b) = pair("tcp-threaded", "profile = \"high_throughput\"");
    assert!(!a.config().tuning.busy_poll);
    connected(&a);
    let stats = ping(&a);
    assert_eq!((stats.sent, stats.received), (PINGS, PINGS));
    send_arrives(&a, &b, 100 << 10, 3);
    assert_eq!(a.stats().frames_polled, 0);
    assert_eq!(b.stats().frames_polled, 0);
}

/// Two polling pingers and their two peers: four busy threads on what may be two cores.
/// The pollers yield after a short spin, so every ping is answered (no livelock).
#[test]
fn two_polling_pairs_at_once_all_get_their_answers() {
    let pairs = [
        pair("tcp-poll-1", "profile = \"low_latency\""),
        pair("tcp-poll-2", "profile = \"low_latency\""),
    ];
    let before: Vec<u64> = pairs.iter().map(|(a, _)| connected(a)).collect();
    std::thread::scope(|s| {
        for (a, _) in &pairs {
            s.spawn(move || {
                let stats = ping(a);
                assert_eq!((stats.sent, stats.received), (PINGS, PINGS));
            });
        }
    });
    for ((a, b), before) in pairs.iter().zip(before) {
        assert!(a.stats().frames_polled >= before + PINGS);
        send_arrives(a, b, 4096, 4);
    }
}

/// Back-to-back sends in `low_latency`: the sender reads its acks itself when it can take
/// the socket, the answering reader thread spins between frames. Everything arrives intact.
#[test]
fn low_latency_sends_arrive_intact() {
    let (a, b) = pair("tcp-poll-sends", "profile = \"low_latency\"");
    connected(&a);
    for i in 0..80u8 {
        let len = [1usize, 64, 4096, 200 << 10][usize::from(i % 4)];
        send_arrives(&a, &b, len, i);
    }
}

/// Process CPU time (user + system) in clock ticks, from /proc/self/stat.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which ends at the last ')'): utime is the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// The reader threads' spin is bounded: once a low_latency pair has been quiet for a while,
/// both nodes (in this process) are blocked in the kernel, not polling. Not a timing test:
/// an unbounded spin would burn the whole quiet second, a bounded one almost none of it.
#[test]
fn quiet_low_latency_links_stop_spinning() {
    let (a, b) = pair("tcp-poll-quiet", "profile = \"low_latency\"");
    connected(&a);
    send_arrives(&a, &b, 64, 7);
    send_arrives(&a, &b, 4096, 8);
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks() - before;
    // clock ticks are 10 ms: a spinning reader thread alone would use about 100 of them.
    assert!(used < 50, "{used} ticks of CPU in a quiet second");
}
