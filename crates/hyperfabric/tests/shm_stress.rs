//! Two-process stress test of the shared-memory ring: this test binary re-executes itself
//! as the consumer process (env `HF_SHM_STRESS_ROLE=consumer`), the parent produces 2M
//! records of random sizes 0..=4096 (plus a 12-byte seq/crc32c prefix), the child checks
//! order, length and checksum of every one. A watchdog kills the child on timeout; no
//! maximum runtime is asserted.

use hyperfabric::transport::shm::{IdleStrategy, Ring, Segment};
use rand::{Rng, SeedableRng};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLE: &str = "HF_SHM_STRESS_ROLE";
const RECORDS: u64 = 2_000_000;
const BODY_MAX: usize = 4096;
const PREFIX: usize = 12;
const SEED: u64 = 0x4846_5348;
const WATCHDOG: Duration = Duration::from_secs(600);
const POOL: usize = 1 << 20;

fn pool() -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED ^ 1);
    let mut v = vec![0u8; POOL + BODY_MAX];
    rng.fill(&mut v[..]);
    v
}

fn pid_alive(pid: &str) -> bool {
    std::path::Path::new("/proc").join(pid).exists()
}

/// The consumer side; does nothing unless started by `two_process_stress`.
#[test]
fn stress_child_consumer() {
    if std::env::var(ROLE).as_deref() != Ok("consumer") {
        return;
    }
    let name = std::env::var("HF_SHM_STRESS_SEG").unwrap();
    let parent = std::env::var("HF_SHM_STRESS_PARENT").unwrap();
    let seg = Arc::new(Segment::open(&name).unwrap());
    let mut c = Ring::attach(seg).unwrap().consumer().unwrap();
    let mut lens = rand::rngs::StdRng::seed_from_u64(SEED);
    let deadline = Instant::now() + WATCHDOG;
    let strategy = IdleStrategy::SpinPark {
        spins: 200,
        yields: 20,
    };
    let mut seq = 0u64;
    let mut bytes = 0u64;
    while seq < RECORDS {
        let slot = c
            .read_wait(strategy, Some(Duration::from_millis(200)))
            .unwrap();
        let Some(s) = slot else {
            assert!(pid_alive(&parent), "producer died at record {seq}");
            assert!(Instant::now() < deadline, "watchdog: stuck at record {seq}");
            continue;
        };
        let want_len = lens.gen_range(0..=BODY_MAX);
        assert_eq!(s.len(), PREFIX + want_len, "length of record {seq}");
        assert_eq!(u64::from_le_bytes(s[..8].try_into().unwrap()), seq, "order");
        let crc = u32::from_le_bytes(s[8..12].try_into().unwrap());
        assert_eq!(
            crc32c::crc32c(&s[PREFIX..]),
            crc,
            "checksum of record {seq}"
        );
        bytes += s.len() as u64;
        seq += 1;
    }
    assert!(c.try_read().unwrap().is_none(), "no record beyond the last");
    println!("child: verified {seq} records, {bytes} bytes");
}

#[test]
fn two_process_stress() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let _ = hyperfabric::transport::shm::remove_stale("hf-test-stress-");
    let name = format!("hf-test-stress-{}", std::process::id());
    let seg = Arc::new(Segment::create(&name, Ring::segment_len_for(256 * 1024)).unwrap());
    let mut p = Ring::init(seg).unwrap().producer().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stress_child_consumer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "consumer")
        .env("HF_SHM_STRESS_SEG", &name)
        .env("HF_SHM_STRESS_PARENT", std::process::id().to_string())
        .stdout(Stdio::inherit())
        .spawn()
        .unwrap();
    let data = pool();
    let mut lens = rand::rngs::StdRng::seed_from_u64(SEED);
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED ^ 2);
    let deadline = Instant::now() + WATCHDOG;
    let started = Instant::now();
    let mut batch = 0u32;
    for seq in 0..RECORDS {
        let len = lens.gen_range(0..=BODY_MAX);
        let off = rng.gen_range(0..POOL);
        let body = &data[off..off + len];
        let mut spins = 0u64;
        loop {
            if let Some(mut s) = p.try_reserve(PREFIX + len).unwrap() {
                s[..8].copy_from_slice(&seq.to_le_bytes());
                s[8..12].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
                s[PREFIX..].copy_from_slice(body);
                s.commit();
                break;
            }
            spins += 1;
            if spins & 0xFFFF == 0 {
                if let Some(st) = child.try_wait().unwrap() {
                    panic!("consumer exited early at record {seq}: {st}");
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("watchdog: producer stuck at record {seq}");
                }
                std::thread::yield_now();
            }
        }
        batch += 1;
        if batch >= rng.gen_range(1..16) {
            p.publish();
            batch = 0;
        }
    }
    p.publish();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "consumer failed: {st}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: consumer did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "two_process_stress: {RECORDS} records in {:?}",
        started.elapsed()
    );
}
