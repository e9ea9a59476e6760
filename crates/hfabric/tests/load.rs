//! Load through a relay: 64 concurrent senders × 200 transfers of random sizes (1 B – 8 MiB,
//! log-uniform) from `src` through a real `hfabric serve` relay process to `dst`, every payload
//! verified byte for byte at the destination, each delivered exactly once, and the peak memory
//! of every process reported.
//!
//! `src` and `dst` are nodes inside this test process (the library API); the relay is its own
//! process. Over TCP by default (`HF_LOAD_TRANSPORT=auto` lets same-host links pick shared
//! memory). `HF_LOAD_SENDERS` and `HF_LOAD_TRANSFERS` scale it for longer runs.

mod support;

use hyperfabric::config::FabricConfig;
use hyperfabric::metrics::ProcessMetrics;
use hyperfabric::transport::TransportChoice;
use hyperfabric::{Fabric, SendOptions};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const SIZE_MAX_BITS: u32 = 23; // 8 MiB
const PREFIX: usize = 16; // sender (u32), sequence (u32), length (u64)

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn transport() -> (TransportChoice, &'static str) {
    match std::env::var("HF_LOAD_TRANSPORT").as_deref() {
        Ok("auto") => (TransportChoice::Auto, "auto"),
        Ok("shm") => (TransportChoice::Shm, "shm"),
        _ => (TransportChoice::Tcp, "tcp"),
    }
}

/// A splitmix64 stream: cheap, seeded, reproducible on both ends.
fn fill(seed: u64, out: &mut [u8]) {
    let mut s = seed;
    for chunk in out.chunks_mut(8) {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

fn seed_of(sender: u32, seq: u32) -> u64 {
    (u64::from(sender) << 32) | u64::from(seq)
}

/// The payload of transfer `seq` of `sender`: its identity (when it fits), then the stream.
fn payload(sender: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    fill(seed_of(sender, seq), &mut p);
    if len >= PREFIX {
        p[..4].copy_from_slice(&sender.to_le_bytes());
        p[4..8].copy_from_slice(&seq.to_le_bytes());
        p[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    }
    p
}

/// Log-uniform in [1, 8 MiB]: every order of magnitude gets its share.
fn random_len(rng: &mut u64) -> usize {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let bits = (*rng % u64::from(SIZE_MAX_BITS + 1)) as u32;
    let lo = 1u64 << bits.saturating_sub(1);
    let hi = 1u64 << bits;
    let span = (hi - lo).max(1);
    ((lo + (*rng >> 8) % span) as usize).clamp(1, 1 << SIZE_MAX_BITS)
}

fn chain_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = String::from(
        "[fabric]\nname = \"load\"\nprofile = \"high_throughput\"\nsend_timeout_ms = 120000\n\
         connect_timeout_ms = 2000\n",
    );
    for (i, id) in ["src", "relay", "dst"].iter().enumerate() {
        text += &format!(
            "\n[[nodes]]\nid = \"{id}\"\nhardware = \"cpu-cluster\"\nlisten = \"127.0.0.1:{}\"\n",
            i + 1
        );
    }
    for (a, b) in [("src", "relay"), ("relay", "dst")] {
        text += &format!(
            "\n[[links]]\nbetween = [\"{a}\", \"{b}\"]\nbandwidth_gbps = 100\nlatency_ns = 1000\n"
        );
    }
    let path = dir.join("load.toml");
    std::fs::write(&path, text).expect("write fabric file");
    path
}

/// What the destination saw: each (sender, seq) once, every byte as sent.
#[derive(Default)]
struct Received {
    seen: HashSet<(u32, u32)>,
    bytes: u64,
    delivered: usize,
    duplicates: u64,
    corrupt: Vec<String>,
}

fn verify(msg: &[u8], got: &mut Received, short: &Mutex<Vec<Vec<u8>>>) {
    if msg.len() < PREFIX {
        // Too small to carry its identity: matched against the short payloads sent.
        let mut pending = short.lock().expect("short list");
        match pending.iter().position(|p| p == msg) {
            Some(i) => {
                pending.swap_remove(i);
                got.bytes += msg.len() as u64;
                got.delivered += 1;
            }
            None => got
                .corrupt
                .push(format!("unexpected short payload {msg:?}")),
        }
        return;
    }
    let word = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&msg[r]);
        u64::from_le_bytes(b)
    };
    let (sender, seq, len) = (word(0..4) as u32, word(4..8) as u32, word(8..16));
    if len != msg.len() as u64 {
        got.corrupt.push(format!(
            "{sender}/{seq}: {} bytes, prefix says {len}",
            msg.len()
        ));
        return;
    }
    if msg != payload(sender, seq, msg.len()).as_slice() {
        got.corrupt
            .push(format!("{sender}/{seq}: bytes differ ({len} B)"));
        return;
    }
    if !got.seen.insert((sender, seq)) {
        got.duplicates += 1;
        return;
    }
    got.bytes += len;
    got.delivered += 1;
}

#[test]
fn sixty_four_senders_through_a_relay_lose_nothing() {
    let senders = env_or("HF_LOAD_SENDERS", 64);
    let per_sender = env_or("HF_LOAD_TRANSFERS", 200);
    let (choice, transport_name) = transport();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = chain_file(dir.path());
    let config = FabricConfig::from_file(&cfg_path).expect("fabric file");

    let mut dst_cfg = config.clone();
    dst_cfg
        .set_listen("dst", "127.0.0.1:0".parse().expect("addr"))
        .expect("listen");
    let dst = Arc::new(
        Fabric::from_config(dst_cfg)
            .node("dst")
            .transport(choice)
            .start()
            .expect("dst starts"),
    );
    let relay = Server::start_with(
        &cfg_path,
        "relay",
        None,
        &[
            "--transport".into(),
            transport_name.into(),
            "--peer".into(),
            format!("dst={}", dst.local_addr()),
        ],
    );
    let mut src_cfg = config.clone();
    src_cfg.set_listen("relay", relay.addr).expect("relay addr");
    src_cfg
        .set_listen("src", "127.0.0.1:0".parse().expect("addr"))
        .expect("listen");
    let src = Arc::new(
        Fabric::from_config(src_cfg)
            .node("src")
            .transport(choice)
            .start()
            .expect("src starts"),
    );

    // The short payloads (under PREFIX bytes) cannot say who they are: keep them for matching.
    let short = Arc::new(Mutex::new(Vec::new()));
    let expected = senders * per_sender;
    let receiver = {
        let (dst, short) = (Arc::clone(&dst), Arc::clone(&short));
        std::thread::spawn(move || {
            let mut got = Received::default();
            let mut count = 0;
            while count < expected {
                match dst.recv_timeout(Duration::from_secs(120)) {
                    Ok(msg) => {
                        verify(&msg.payload, &mut got, &short);
                        count += 1;
                    }
                    Err(e) => {
                        got.corrupt.push(format!("recv after {count}: {e}"));
                        break;
                    }
                }
            }
            got
        })
    };

    let sent_bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..senders as u32)
        .map(|sender| {
            let (src, short, sent_bytes) = (
                Arc::clone(&src),
                Arc::clone(&short),
                Arc::clone(&sent_bytes),
            );
            std::thread::spawn(move || -> Vec<String> {
                let mut rng = 0x2545_f491_4f6c_dd1d ^ (u64::from(sender) + 1).wrapping_mul(7919);
                let mut errors = Vec::new();
                for seq in 0..per_sender as u32 {
                    let len = random_len(&mut rng);
                    let data = payload(sender, seq, len);
                    if len < PREFIX {
                        short.lock().expect("short list").push(data.clone());
                    }
                    match src.send("dst", &data, SendOptions::new()) {
                        Ok(r) if r.bytes == len as u64 => {
                            sent_bytes.fetch_add(len as u64, Ordering::Relaxed);
                        }
                        Ok(r) => errors.push(format!("{sender}/{seq}: report says {}", r.bytes)),
                        Err(e) => errors.push(format!("{sender}/{seq} ({len} B): {e}")),
                    }
                }
                errors
            })
        })
        .collect();
    let send_errors: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("sender thread"))
        .collect();
    let got = receiver.join().expect("receiver thread");
    let elapsed = started.elapsed();

    let relay_stats = relay.peak_rss_bytes();
    let sent = sent_bytes.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "transport": transport_name,
        "senders": senders,
        "transfers": expected,
        "bytes": sent,
        "seconds": elapsed.as_secs_f64(),
        "gbit_per_s": sent as f64 * 8.0 / elapsed.as_secs_f64() / 1e9,
        "relay_peak_rss_bytes": relay_stats,
        "test_process_peak_rss_bytes": ProcessMetrics::read().peak_resident_memory_bytes,
        "src_retransmitted_bytes": src.stats().retransmitted_bytes,
    });
    // The figures for docs/operations.md: `cargo test --release --test load -- --nocapture`.
    println!("load report: {report}");

    assert!(send_errors.is_empty(), "send errors: {send_errors:?}");
    assert!(got.corrupt.is_empty(), "bad deliveries: {:?}", got.corrupt);
    assert_eq!(got.duplicates, 0, "duplicates delivered");
    let unmatched_short = short.lock().expect("short list").len();
    assert_eq!(unmatched_short, 0, "short payloads never delivered");
    assert_eq!(got.delivered, expected, "transfers delivered");
    assert!(sent > 0);
    assert_eq!(got.bytes, sent, "bytes delivered vs sent");
}
