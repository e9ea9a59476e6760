//! Deterministic simulation of the transfer protocol (`hyperfabric::proto`), in the manner of
//! TigerBeetle's packet simulator and quinn-proto's simulated `Pair`.
//!
//! One [`OutgoingTransfer`] and one [`IncomingTransfer`] talk over two simulated one-way links
//! (data forward, acks back). Everything is driven by one seeded `StdRng` and a virtual clock
//! (`base + Duration`) that only this harness advances, so a seed reproduces a run exactly.
//!
//! Each link can drop, duplicate, corrupt (a corrupted frame fails its CRC in the real system,
//! so it is a drop counted separately) and delay frames by a random amount (which reorders
//! them, including rare stragglers that arrive after a retransmission). A scenario may add a
//! partition window (every frame sent or arriving in `[t1, t2)` is lost) and connection losses
//! (in-flight frames vanish, the link is down for a reconnect delay and the sender is told
//! `on_connection_lost`).
//!
//! The event loop always takes the earliest of: the next frame arrival, the sender's
//! `poll_timeout`, the next connection loss. After each event it pumps `poll_chunk` until
//! `None` and `poll_ack(true)`. The receiver behaves like the runtime: it writes real bytes at
//! the chunk's offset on `Verdict::Store`, and once complete it answers every later data frame
//! with `IncomingTransfer::final_ack(total)`. After the sender finishes, frames still in
//! flight are delivered, so late duplicates reach the receiver too.
//!
//! Checked on every run: the receiver completes at most once and only with bytes identical to
//! the source; the sender never reports `Complete` before the receiver holds everything; chunks
//! stay inside the transfer and the window; every loop and queue has a limit (events, virtual
//! time, chunks per pump, frames in flight), so a livelock is a failure, not a hang.
//!
//! Replay one seed with its event trace: `HF_SIM_SEED=<n> cargo test --release -p hyperfabric
//! --test proto_sim -- <test name> --nocapture`. Failures print that command.

use hyperfabric::proto::{RecvParams, SendFailure, SendParams, SendState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

#[path = "proto_sim/sim.rs"]
mod sim;
use sim::*;

fn send_params(chunk_len: u64, window_bytes: u64, stall: Duration) -> SendParams {
    SendParams {
        chunk_len,
        window_bytes,
        retransmit_timeout: Duration::from_millis(50),
        max_retransmits: 50,
        stall_timeout: stall,
    }
}

/// Receiver limits as the runtime sets them (`runtime/incoming.rs`).
fn recv_params(send: &SendParams) -> RecvParams {
    RecvParams {
        max_transfer_bytes: TOTAL_MAX,
        ack_every_bytes: (send.window_bytes / 4).max(send.chunk_len),
        max_ranges: MAX_RANGES,
    }
}

/// Moderate faults: drop <= 20%, duplicate <= 10%, corrupt <= 5%, jitter <= 20 ms.
fn moderate_link(rng: &mut StdRng) -> LinkFaults {
    LinkFaults {
        drop: rng.gen_range(0.0..=0.20),
        duplicate: rng.gen_range(0.0..=0.10),
        corrupt: rng.gen_range(0.0..=0.05),
        latency: Duration::from_micros(rng.gen_range(100..=2_000)),
        jitter: Duration::from_micros(rng.gen_range(0..=20_000)),
        straggle: rng.gen_range(0.0..=0.02),
    }
}

/// Sizes 0..=2 MiB, with tiny sizes and exact multiples of the chunk over-represented.
fn random_total(rng: &mut StdRng, chunk: u64) -> u64 {
    match rng.gen_range(0..10) {
        0 => rng.gen_range(0..=3),
        1 => (chunk * rng.gen_range(1..=64)).min(TOTAL_MAX),
        _ => rng.gen_range(0..=TOTAL_MAX),
    }
}

/// A scenario for the thousands of seeds: 64 KiB chunks, or 4 KiB chunks with a small window.
fn moderate_scenario(rng: &mut StdRng) -> Scenario {
    let small = rng.gen_bool(0.25);
    let (chunk, window) = if small {
        (4 * KIB, 4 * KIB * rng.gen_range(2..=16))
    } else {
        (64 * KIB, 64 * KIB * [1, 2, 4, 16, 64][rng.gen_range(0..5)])
    };
    let send = send_params(chunk, window, Duration::from_secs(30));
    let mut recv = recv_params(&send);
    if rng.gen_bool(0.2) {
        recv.ack_every_bytes = rng.gen_range(1..=window);
    }
    let partition = rng.gen_bool(0.1).then(|| {
        let t1 = Duration::from_millis(rng.gen_range(0..500));
        (t1, t1 + Duration::from_millis(rng.gen_range(1..=5_000)))
    });
    let losses = if rng.gen_bool(0.1) {
        rng.gen_range(1..=2)
    } else {
        0
    };
    let (mut forward, back) = (moderate_link(rng), moderate_link(rng));
    if rng.gen_bool(0.05) {
        // A round trip longer than the retransmission timeout: spurious resends every window.
        forward.latency = Duration::from_millis(rng.gen_range(30..=150));
    }
    Scenario {
        total: random_total(rng, chunk),
        send,
        recv,
        forward,
        back,
        partition,
        connection_losses: loss_times(rng, losses, 500),
        reconnect: Duration::from_millis(rng.gen_range(0..=100)),
        receiver_crash: None,
        durable_done: false,
    }
}

fn loss_times(rng: &mut StdRng, n: usize, within_ms: u64) -> Vec<Duration> {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| Duration::from_micros(rng.gen_range(0..within_ms * 1_000)))
        .collect();
    v.sort();
    v
}

/// Runs `make` for each seed (or only `HF_SIM_SEED`, traced) and checks `check` on the
/// outcome; a failure panics with the command that replays it.
fn for_seeds(
    test: &str,
    seeds: std::ops::Range<u64>,
    make: impl Fn(&mut StdRng) -> Scenario,
    check: impl Fn(&Scenario, &Outcome) -> Result<(), String>,
) -> Vec<Outcome> {
    let single = std::env::var("HF_SIM_SEED").ok().map(|s| {
        s.parse::<u64>()
            .unwrap_or_else(|_| panic!("HF_SIM_SEED={s}: not a number"))
    });
    let trace = single.is_some();
    let seeds: Vec<u64> = match single {
        Some(s) => vec![s],
        None => seeds.collect(),
    };
    let mut outcomes = Vec::with_capacity(seeds.len());
    for seed in seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let sc = make(&mut rng);
        if trace {
            println!("seed {seed}: {sc:#?}");
        }
        let result = Sim::new(&sc, rng, trace)
            .run()
            .and_then(|out| check(&sc, &out).map(|()| out));
        match result {
            Ok(out) => outcomes.push(out),
            Err(e) => panic!(
                "seed {seed} failed: {e}\n  scenario: {sc:?}\n  replay with: HF_SIM_SEED={seed} \
                 cargo test --release -p hyperfabric --test proto_sim -- {test} --nocapture"
            ),
        }
    }
    outcomes
}

/// Delivered: sender complete, receiver complete exactly once with every byte.
fn must_complete(sc: &Scenario, out: &Outcome) -> Result<(), String> {
    if out.state != SendState::Complete {
        return Err(format!(
            "sender ended {:?} at {:?}; {:?}",
            out.state, out.end, out.counters
        ));
    }
    if out.completions != 1 || out.held != sc.total {
        return Err(format!(
            "receiver completed {} times, holds {}",
            out.completions, out.held
        ));
    }
    Ok(())
}

fn is_timed_out(state: &SendState) -> bool {
    matches!(state, SendState::Failed(SendFailure::TimedOut { .. }))
}

#[test]
fn thousands_of_seeds_deliver_exactly_once() {
    let started = std::time::Instant::now();
    let outs = for_seeds(
        "thousands_of_seeds",
        0..2_000,
        moderate_scenario,
        must_complete,
    );
    let sum = |f: fn(&Counters) -> u64| outs.iter().map(|o| f(&o.counters)).sum::<u64>();
    let lost = sum(|c| c.dropped + c.corrupted + c.partitioned + c.severed);
    let (events, sent) = (sum(|c| c.events), sum(|c| c.sent));
    println!(
        "{} seeds in {:?}: {events} events, {sent} frames, {lost} lost",
        outs.len(),
        started.elapsed()
    );
}

/// A transfer over links with drop and duplicate <= 2% and a little reordering.
fn light_scenario(rng: &mut StdRng, total: u64, chunk: u64, stall: Duration) -> Scenario {
    let send = send_params(chunk, chunk * 4, stall);
    let mut light = || LinkFaults {
        drop: rng.gen_range(0.0..=0.02),
        duplicate: rng.gen_range(0.0..=0.02),
        latency: Duration::from_millis(1),
        jitter: Duration::from_micros(rng.gen_range(0..=5_000)),
        ..LinkFaults::default()
    };
    Scenario {
        total,
        recv: recv_params(&send),
        send,
        forward: light(),
        back: light(),
        partition: None,
        connection_losses: Vec::new(),
        reconnect: Duration::ZERO,
        receiver_crash: None,
        durable_done: false,
    }
}

#[test]
fn partition_longer_than_stall_timeout_fails_cleanly() {
    let make = |rng: &mut StdRng| {
        // Half the seeds partition from the start, the rest a few ms in (mid-transfer).
        let t1 = match rng.gen_bool(0.5) {
            true => Duration::ZERO,
            false => Duration::from_micros(rng.gen_range(1..=5_000)),
        };
        let sc = light_scenario(rng, TOTAL_MAX, 64 * KIB, Duration::from_secs(2));
        Scenario {
            partition: Some((t1, t1 + Duration::from_secs(60))),
            ..sc
        }
    };
    let check = |sc: &Scenario, out: &Outcome| {
        let (t1, _) = sc.partition.expect("partitioned");
        if !is_timed_out(&out.state) || out.completions != 0 || out.held >= sc.total {
            return Err(format!("expected a clean timeout, got {out:?}"));
        }
        if t1 == Duration::ZERO && out.held != 0 {
            return Err(format!("{} bytes crossed a partition from t=0", out.held));
        }
        // The sender gives up within the stall timeout of its last progress (before t1).
        let bound = t1 + sc.send.stall_timeout + Duration::from_millis(100);
        match out.end <= bound {
            true => Ok(()),
            false => Err(format!("failed only at {:?}, bound {bound:?}", out.end)),
        }
    };
    let outs = for_seeds("partition_longer", 0..100, make, check);
    assert!(outs.iter().all(|o| o.counters.partitioned > 0));
}

#[test]
fn partition_shorter_than_stall_timeout_recovers() {
    // Recovery needs a retransmission after the partition heals and before the stall timeout:
    // with backoff capped at 64 x 50 ms = 3.2 s, a 10 s stall survives partitions up to 5 s.
    let make = |rng: &mut StdRng| {
        let t1 = Duration::from_micros(rng.gen_range(0..=10_000));
        let len = Duration::from_millis(rng.gen_range(200..=5_000));
        let sc = light_scenario(rng, TOTAL_MAX, 64 * KIB, Duration::from_secs(10));
        Scenario {
            partition: Some((t1, t1 + len)),
            ..sc
        }
    };
    let check = |sc: &Scenario, out: &Outcome| {
        must_complete(sc, out)?;
        let (_, t2) = sc.partition.expect("partitioned");
        match out.end >= t2 || out.counters.partitioned == 0 {
            true => Ok(()),
            false => Err(format!("completed at {:?} inside the partition", out.end)),
        }
    };
    for_seeds("partition_shorter", 0..200, make, check);
}

#[test]
fn connection_loss_mid_transfer_recovers() {
    let make = |rng: &mut StdRng| {
        let chunk = [4 * KIB, 64 * KIB][rng.gen_range(0..2)];
        let total = random_total(rng, chunk);
        let sc = light_scenario(rng, total, chunk, Duration::from_secs(30));
        let n = rng.gen_range(1..=3);
        Scenario {
            connection_losses: loss_times(rng, n, 100),
            reconnect: Duration::from_millis(rng.gen_range(0..=100)),
            ..sc
        }
    };
    let outs = for_seeds("connection_loss", 0..300, make, must_complete);
    assert!(
        outs.iter().any(|o| o.counters.severed > 0),
        "no loss hit a frame"
    );
}

#[test]
fn extreme_faults_time_out_or_deliver_never_corrupt() {
    let make = |rng: &mut StdRng| {
        let total = rng.gen_range(0..=256 * KIB);
        let mut sc = light_scenario(rng, total, 4 * KIB, Duration::from_secs(2));
        sc.send.max_retransmits = 6;
        (sc.forward, sc.back) = (moderate_link(rng), moderate_link(rng));
        sc.forward.drop = rng.gen_range(0.4..=0.9);
        sc.back.drop = rng.gen_range(0.4..=0.9);
        sc.connection_losses = loss_times(rng, 2, 1_000);
        sc.reconnect = Duration::from_millis(50);
        sc
    };
    let check = |sc: &Scenario, out: &Outcome| match &out.state {
        SendState::Complete => must_complete(sc, out),
        s if is_timed_out(s) && out.completions <= 1 => Ok(()),
        s => Err(format!("ended {s:?} with {} completions", out.completions)),
    };
    let outs = for_seeds("extreme_faults", 0..300, make, check);
    if std::env::var("HF_SIM_SEED").is_err() {
        assert!(
            outs.iter().any(|o| is_timed_out(&o.state)),
            "no seed timed out"
        );
        assert!(
            outs.iter().any(|o| o.state == SendState::Complete),
            "no seed delivered"
        );
    }
}

#[test]
fn receiver_crash_and_restart_never_delivers_twice_or_corrupt() {
    // A crash loses what the receiver held but not what it acknowledged to the sender, which
    // only resends past its contiguous acknowledgement: the transfer completes (when the crash
    // came before any acknowledgement) or the sender gets a clean timeout. Never wrong bytes,
    // never two deliveries to one receiver process; with a store directory (durable journal of
    // completed transfers) never two deliveries at all.
    let make = |rng: &mut StdRng| {
        let chunk = [4 * KIB, 64 * KIB][rng.gen_range(0..2)];
        let total = random_total(rng, chunk);
        let mut sc = light_scenario(rng, total, chunk, Duration::from_secs(3));
        let at = Duration::from_micros(rng.gen_range(0..=20_000));
        let down = Duration::from_millis(rng.gen_range(1..=2_000));
        sc.receiver_crash = Some((at, down));
        sc.durable_done = rng.gen_bool(0.5);
        sc
    };
    let check = |sc: &Scenario, out: &Outcome| match &out.state {
        SendState::Complete if out.completions == 1 => Ok(()),
        s if is_timed_out(s) && out.completions <= 1 => Ok(()),
        s => Err(format!(
            "ended {s:?} with {} completions, holds {} of {}",
            out.completions, out.held, sc.total
        )),
    };
    let outs = for_seeds("receiver_crash", 0..300, make, check);
    if std::env::var("HF_SIM_SEED").is_err() {
        let crashed = outs.iter().filter(|o| o.counters.crashes > 0).count();
        let recovered = outs
            .iter()
            .filter(|o| o.counters.crashes > 0 && o.state == SendState::Complete)
            .count();
        let failed = outs.iter().filter(|o| is_timed_out(&o.state)).count();
        let lost: u64 = outs.iter().map(|o| o.counters.completions_lost).sum();
        println!(
            "{crashed} crashed mid-transfer: {recovered} completed, {failed} timed out; \
             {lost} deliveries went down with a memory-only receiver"
        );
        assert!(crashed > 50, "only {crashed} crashes hit a transfer");
        assert!(failed > 0, "no crash made the sender fail");
    }
}
