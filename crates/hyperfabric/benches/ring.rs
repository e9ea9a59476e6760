//! Two-process benchmark of the shared-memory ring (harness = false; prints figures and one
//! JSON line). The binary re-executes itself as the peer process.
//!
//!   cargo bench -p hyperfabric --bench ring            # all
//!   cargo bench -p hyperfabric --bench ring -- lat     # or: bw
//!
//! lat:  64-byte ping-pong over two rings of 64 KiB (env LAT_MSG, LAT_RING change both),
//!       busy-spin on both sides; one-way latency = half
//!       the round trip, median / p99 over 1M round trips (each timed with `Instant`), and
//!       the mean from the total time (no per-sample clock reads).
//! bw:   1 MiB records, producer copies 1 MiB from its buffer into the ring, consumer copies
//!       it out into its own buffer (copy API); GB/s = 1e9 bytes/s. `bw_inplace`: the
//!       producer writes every byte in the ring, the consumer reads every byte in place
//!       (what a loan API does). `bw_copy_read`: the producer copies 1 MiB from its own
//!       buffer into the ring, the consumer reads every byte in place: what `hfabric bench
//!       throughput` does over shared memory with either API (a copy into a pool slot, the
//!       receiving application reading the slot), without the fabric, so the ceiling of
//!       that figure on this machine. Each mode also prints the producer's write and the
//!       consumer's read alone (GB/s of the median message, waits excluded): a stream of
//!       both sides in parallel cannot beat the slower of the two.
//! Environment: PIN=1 (default) pins parent to CPU 0 and child to CPU 1; REPS=5; CHUNK and
//! RING (bytes) set the record size and the ring's capacity of the bw test.
#![allow(clippy::print_stdout)]

use hyperfabric::transport::shm::{Consumer, Producer, Ring, Segment};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLE: &str = "HF_RING_BENCH_ROLE";
const LAT_ITERS: u64 = 1_000_000;
const LAT_WARMUP: u64 = 100_000;
const MSG: usize = 1 << 20;
const BW_MSGS: u64 = 2_000;
const BW_RING: usize = 4 << 20;

/// Record size used to carry a 1 MiB message (env CHUNK, bytes; default 1 MiB = one record).
fn chunk() -> usize {
    std::env::var("CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MSG)
        .clamp(64, MSG)
}

/// Ring capacity for the bandwidth test (env RING, bytes, power of two).
fn bw_ring() -> usize {
    let min = (2 * chunk() + 16).next_power_of_two();
    std::env::var("RING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BW_RING)
        .max(min)
}

fn pin(cpu: usize) {
    if std::env::var("PIN").map(|v| v == "0").unwrap_or(false) {
        return;
    }
    // SAFETY: cpu_set_t is plain data, zeroed is a valid empty set; CPU_SET writes within it;
    // sched_setaffinity(0, ..) reads it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn segs(tag: &str, len: usize) -> (Arc<Segment>, Arc<Segment>) {
    let pid = std::process::id();
    let a = Arc::new(Segment::create(&format!("hf-bench-{tag}-a-{pid}"), len).unwrap());
    let b = Arc::new(Segment::create(&format!("hf-bench-{tag}-b-{pid}"), len).unwrap());
    Ring::init(a.clone()).unwrap();
    Ring::init(b.clone()).unwrap();
    (a, b)
}

fn spawn(role: &str, a: &Segment, b: &Segment, n: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .env("HF_SEG_A", a.name())
        .env("HF_SEG_B", b.name())
        .env("HF_N", n.to_string())
        .spawn()
        .unwrap()
}

fn open_rings() -> (Consumer, Producer, u64) {
    let a = Arc::new(Segment::open(&std::env::var("HF_SEG_A").unwrap()).unwrap());
    let b = Arc::new(Segment::open(&std::env::var("HF_SEG_B").unwrap()).unwrap());
    let n = std::env::var("HF_N").unwrap().parse().unwrap();
    let c = Ring::attach(a).unwrap().consumer().unwrap();
    let p = Ring::attach(b).unwrap().producer().unwrap();
    (c, p, n)
}

fn spin_read(c: &mut Consumer, out: &mut [u8]) -> usize {
    loop {
        if let Some(s) = c.try_read().unwrap() {
            let n = s.len().min(out.len());
            out[..n].copy_from_slice(&s[..n]);
            return s.len();
        }
        std::hint::spin_loop();
    }
}

fn spin_push(p: &mut Producer, data: &[u8]) {
    loop {
        if let Some(mut s) = p.try_reserve(data.len()).unwrap() {
            s.copy_from_slice(data);
            s.commit();
            p.publish();
            return;
        }
        std::hint::spin_loop();
    }
}

fn child_echo() {
    pin(1);
    let (mut c, mut p, n) = open_rings();
    let mut buf = [0u8; 1024];
    for _ in 0..n {
        let len = spin_read(&mut c, &mut buf);
        spin_push(&mut p, &buf[..len]);
    }
}

fn child_sink(inplace: bool) {
    pin(1);
    let (mut c, mut p, n) = open_rings();
    let mut dst = vec![0u8; MSG];
    let mut sum = 0u64;
    let per_msg = MSG.div_ceil(chunk());
    let mut read_ns = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let mut off = 0;
        let mut busy = Duration::ZERO;
        for _ in 0..per_msg {
            loop {
                if let Some(s) = c.try_read().unwrap() {
                    let t = Instant::now();
                    if inplace {
                        sum = sum.wrapping_add(read_all(&s));
                    } else {
                        dst[off..off + s.len()].copy_from_slice(&s);
                    }
                    busy += t.elapsed();
                    off += s.len();
                    break;
                }
                std::hint::spin_loop();
            }
        }
        read_ns.push(busy.as_nanos() as u64);
        sum = sum.wrapping_add(u64::from(dst[MSG - 1]));
    }
    read_ns.sort_unstable();
    let mut ack = [0u8; 16];
    ack[..8].copy_from_slice(&sum.to_le_bytes());
    ack[8..].copy_from_slice(&percentile(&read_ns, 0.5).to_le_bytes());
    spin_push(&mut p, &ack);
}

/// Reads every byte (8 at a time) so the compiler cannot skip it.
fn read_all(s: &[u8]) -> u64 {
    let mut acc = 0u64;
    for ch in s.chunks_exact(8) {
        acc ^= u64::from_le_bytes(ch.try_into().unwrap_or([0; 8]));
    }
    std::hint::black_box(acc)
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

struct Lat {
    median_ns: f64,
    p99_ns: f64,
    mean_ns: f64,
}

/// Ring capacity for the latency test (env LAT_RING, bytes, power of two; default 64 KiB).
fn lat_ring() -> usize {
    env_usize("LAT_RING", 64 * 1024).next_power_of_two()
}

/// Record payload of the latency test (env LAT_MSG, bytes; default 64; at most 1024).
fn lat_msg() -> usize {
    env_usize("LAT_MSG", 64).clamp(1, 1024)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_lat() -> Lat {
    pin(0);
    let (a, b) = segs("lat", Ring::segment_len_for(lat_ring()));
    let mut child = spawn("echo", &a, &b, LAT_WARMUP + LAT_ITERS);
    let mut p = Ring::attach(a.clone()).unwrap().producer().unwrap();
    let mut c = Ring::attach(b.clone()).unwrap().consumer().unwrap();
    let msg = vec![7u8; lat_msg()];
    let mut buf = vec![0u8; lat_msg()];
    for _ in 0..LAT_WARMUP {
        spin_push(&mut p, &msg);
        spin_read(&mut c, &mut buf);
    }
    let mut rtt = Vec::with_capacity(LAT_ITERS as usize);
    let start = Instant::now();
    for _ in 0..LAT_ITERS {
        let t = Instant::now();
        spin_push(&mut p, &msg);
        spin_read(&mut c, &mut buf);
        rtt.push(t.elapsed().as_nanos() as u64);
    }
    let total = start.elapsed();
    assert!(child.wait().unwrap().success());
    rtt.sort_unstable();
    Lat {
        median_ns: percentile(&rtt, 0.5) as f64 / 2.0,
        p99_ns: percentile(&rtt, 0.99) as f64 / 2.0,
        mean_ns: total.as_nanos() as f64 / LAT_ITERS as f64 / 2.0,
    }
}

/// What the bandwidth test's two sides do with each message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BwMode {
    /// Copy from a private buffer into the ring; copy out into a private buffer.
    Copy,
    /// Write every byte in the ring (a fill); read every byte in place.
    InPlace,
    /// Copy from a private buffer into the ring; read every byte in place.
    CopyRead,
}

impl BwMode {
    const ALL: [BwMode; 3] = [BwMode::Copy, BwMode::InPlace, BwMode::CopyRead];

    fn key(self) -> &'static str {
        match self {
            BwMode::Copy => "hf_shm_bw1m_copy",
            BwMode::InPlace => "hf_shm_bw1m_inplace",
            BwMode::CopyRead => "hf_shm_bw1m_copy_read",
        }
    }
}

/// One run of the bandwidth test: the stream, and each side alone (GB/s of its median
/// message, time spent waiting for the other side excluded).
struct Bw {
    gbs: f64,
    write_gbs: f64,
    read_gbs: f64,
}

fn gbs_of_ns(ns: u64) -> f64 {
    MSG as f64 / ns.max(1) as f64
}

fn bench_bw(mode: BwMode) -> Bw {
    pin(0);
    let (a, b) = segs("bw", Ring::segment_len_for(bw_ring()));
    let warm = BW_MSGS / 10;
    let role = if mode == BwMode::Copy {
        "sink"
    } else {
        "sink_inplace"
    };
    let mut child = spawn(role, &a, &b, warm + BW_MSGS);
    let mut p = Ring::attach(a.clone()).unwrap().producer().unwrap();
    let mut c = Ring::attach(b.clone()).unwrap().consumer().unwrap();
    let src: Vec<u8> = (0..MSG).map(|i| i as u8).collect();
    let chunk = chunk();
    let send = |p: &mut Producer, i: u64| {
        let mut busy = Duration::ZERO;
        for part in src.chunks(chunk) {
            loop {
                if let Some(mut s) = p.try_reserve(part.len()).unwrap() {
                    let t = Instant::now();
                    match mode {
                        BwMode::InPlace => s.fill(i as u8),
                        BwMode::Copy | BwMode::CopyRead => s.copy_from_slice(part),
                    }
                    busy += t.elapsed();
                    s.commit();
                    p.publish();
                    break;
                }
                std::hint::spin_loop();
            }
        }
        busy.as_nanos() as u64
    };
    for i in 0..warm {
        send(&mut p, i);
    }
    let mut write_ns = Vec::with_capacity(BW_MSGS as usize);
    let start = Instant::now();
    for i in 0..BW_MSGS {
        write_ns.push(send(&mut p, i));
    }
    let mut ack = [0u8; 16];
    spin_read(&mut c, &mut ack);
    // The ack covers the warm-up records too; they were consumed before `start` unless the
    // ring held them (≤ 3 MiB), a bias of < 0.2% on 2000 MiB.
    let secs = start.elapsed().as_secs_f64();
    assert!(child.wait().unwrap().success());
    write_ns.sort_unstable();
    let read_ns = u64::from_le_bytes(ack[8..].try_into().unwrap());
    Bw {
        gbs: (BW_MSGS as f64 * MSG as f64) / secs / 1e9,
        write_gbs: gbs_of_ns(percentile(&write_ns, 0.5)),
        read_gbs: gbs_of_ns(read_ns),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("echo") => return child_echo(),
        Ok("sink") => return child_sink(false),
        Ok("sink_inplace") => return child_sink(true),
        _ => {}
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |t: &str| args.is_empty() || args.iter().any(|a| t.starts_with(a.as_str()));
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let _ = hyperfabric::transport::shm::remove_stale("hf-bench-");
    let mut json = Vec::new();
    if want("lat") {
        let runs: Vec<Lat> = (0..reps).map(|_| bench_lat()).collect();
        for r in &runs {
            println!(
                "lat64 one-way: median {:.1} ns  p99 {:.1} ns  mean(total/iters) {:.1} ns",
                r.median_ns, r.p99_ns, r.mean_ns
            );
        }
        let med = median(runs.iter().map(|r| r.median_ns).collect());
        let p99 = median(runs.iter().map(|r| r.p99_ns).collect());
        let mean = median(runs.iter().map(|r| r.mean_ns).collect());
        json.push(format!("\"hf_shm_lat64_ns\":{med:.1},\"hf_shm_lat64_p99_ns\":{p99:.1},\"hf_shm_lat64_mean_ns\":{mean:.1}"));
    }
    if want("bw") {
        println!(
            "bw: 1 MiB messages as records of {} bytes, ring {} bytes",
            chunk(),
            bw_ring()
        );
        for mode in BwMode::ALL {
            let key = mode.key();
            let runs: Vec<Bw> = (0..reps).map(|_| bench_bw(mode)).collect();
            let col = |f: fn(&Bw) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
            let (gbs, write, read) = (col(|r| r.gbs), col(|r| r.write_gbs), col(|r| r.read_gbs));
            println!("{key}_gbs: {gbs:.2?}  (alone: producer {write:.2?}, consumer {read:.2?})");
            json.push(format!(
                "\"{key}_gbs\":{:.2},\"{key}_write_gbs\":{:.2},\"{key}_read_gbs\":{:.2}",
                median(gbs),
                median(write),
                median(read)
            ));
        }
    }
    std::thread::sleep(Duration::from_millis(1));
    println!("{{{}}}", json.join(","));
}
