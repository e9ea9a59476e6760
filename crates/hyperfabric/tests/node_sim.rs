//! Seeded simulation of meshes of real node cores (`hyperfabric::core::Node`), in the
//! manner of TigerBeetle's simulator: 2 to 16 nodes in a line (relays), a ring (two
//! disjoint paths: multipath and failover) or a random mesh, joined by in-memory links that
//! carry real encoded frames (CRC32C written on send, checked by the decoder on every hop)
//! with drop, duplicate, corrupt, delay and reorder, partitions (declared to both ends or
//! silent) and crash/restart, in virtual time only; chunks compressed (lz4, zstd, snappy) or
//! not, per scenario. See `node_sim/{scenario,mesh}.rs`.
//!
//! Checked on every seed:
//! - every delivery is of a transfer that was sent to that node, byte-identical, with the
//!   right CRC32C, and happens at most once;
//! - every transfer whose sender did not crash gets exactly one outcome: sent, failed, or
//!   refused locally at the send command;
//! - "sent" means delivered exactly once; a failure that says the transfer was not
//!   delivered (a refusal by the destination itself, or a local refusal) means it was not.
//!   A timeout or a relay's refusal may hide a delivery whose final ack was lost: the core
//!   reports it with `SendError::may_have_been_delivered() == true`, and the check then
//!   only asks for at most one delivery;
//! - every ping gets one pong or one timeout (unless its sender crashed);
//! - with no fault at all, every transfer is sent and every ping answered;
//! - nothing hangs: a run is bounded in steps, virtual time and frames in flight.
//!
//! `HF_SIM_SEEDS` sets the seed count (default 200); `HF_SIM_SEED=<n>` runs one seed and
//! prints its scenario. A failing seed prints the command that replays it.

#[path = "node_sim/mesh.rs"]
mod mesh;
#[path = "node_sim/scenario.rs"]
mod scenario;

use hyperfabric::core::{Event, Time, TransferId};
use mesh::{ActOutcome, Mesh, Seen, STEPS_MAX, VIRTUAL_TIME_MAX};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use scenario::Scenario;
use std::collections::{HashMap, HashSet};

const SEEDS_DEFAULT: u64 = 200;

/// What the harness expects of one transfer.
struct Expect {
    dst: usize,
    data: Vec<u8>,
    sender_crashed: bool,
    outcomes: Vec<Result<u32, bool>>,
    deliveries: u32,
}

#[derive(Default)]
struct Ledger {
    transfers: HashMap<(usize, TransferId), Expect>,
    /// Pings: (src, seq) -> (answers, sender crashed).
    pings: HashMap<(usize, u64), (u32, bool)>,
    local_refusals: u32,
    multipath: u64,
    failed_over: u64,
}

/// Totals over the seeds of a run (printed, and checked for plausibility).
#[derive(Debug, Default)]
struct Totals {
    transfers: u64,
    sent: u64,
    failed: u64,
    delivered: u64,
    frames: u64,
    corrupted: u64,
    /// Transfers sent over two first hops, and those that failed over.
    multipath: u64,
    failed_over: u64,
    relayed: u64,
    compressed: u64,
}

/// Runs one seed to the end; `Err` describes the first broken invariant.
fn run(seed: u64, verbose: bool, totals: &mut Totals) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sc = Scenario::generate(&mut rng);
    if verbose {
        eprintln!("scenario: {sc:#?}");
    }
    let clean = sc.is_clean();
    let script = sc.script.clone();
    let mut mesh = Mesh::new(sc, rng);
    let mut ledger = Ledger::default();
    let mut seen: Vec<Seen> = Vec::new();
    let mut next_action = 0;
    let mut data_rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    // Half the transfers are random bytes, half compress well.
    let mut data = |len: usize| {
        let mut v = vec![0u8; len];
        data_rng.fill_bytes(&mut v);
        if data_rng.next_u32() % 2 == 0 {
            // Runs of 16 equal bytes: every algorithm shrinks them.
            for i in 0..len {
                v[i] = v[i - i % 16] % 8;
            }
        }
        v
    };
    for step in 0.. {
        if step >= STEPS_MAX {
            return Err(format!("livelock: over {STEPS_MAX} steps"));
        }
        mesh.flush(&mut seen)?;
        for (node, e) in seen.drain(..) {
            record(&mut ledger, &mesh, node, e)?;
        }
        let action_at = script
            .get(next_action)
            .map(|(t, _)| Time::from_duration(*t));
        let next = [action_at, mesh.next_arrival(), mesh.next_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        if next > Time::from_duration(VIRTUAL_TIME_MAX) {
            return Err(format!(
                "hang: still busy after {VIRTUAL_TIME_MAX:?} virtual"
            ));
        }
        mesh.now = mesh.now.max(next);
        while let Some((_, a)) = script
            .get(next_action)
            .filter(|(t, _)| Time::from_duration(*t) <= mesh.now)
        {
            next_action += 1;
            let outcome = mesh.act(*a, &mut data);
            note(&mut ledger, outcome);
        }
        mesh.arrive_due()?;
        mesh.fire_timeouts();
    }
    tally(&ledger, &mesh, totals, verbose);
    check(&ledger, clean)
}

/// Adds a finished run to the totals.
fn tally(ledger: &Ledger, mesh: &Mesh, totals: &mut Totals, verbose: bool) {
    if verbose {
        eprintln!("counts: {:?}, ended at {:?}", mesh.counts, mesh.now);
        for n in &mesh.nodes {
            eprintln!("{}: {:?}", n.name(), n.stats());
        }
    }
    for e in ledger.transfers.values() {
        totals.transfers += 1;
        totals.sent += u64::from(e.outcomes == [Ok(0)]);
        totals.failed += u64::from(matches!(e.outcomes.as_slice(), [Err(_)]));
        totals.delivered += u64::from(e.deliveries);
    }
    totals.frames += mesh.counts.frames;
    for n in &mesh.nodes {
        totals.relayed += n.stats().frames_relayed;
        totals.compressed += n.stats().chunks_compressed;
    }
    totals.multipath += ledger.multipath;
    totals.failed_over += ledger.failed_over;
    totals.corrupted += mesh.counts.corrupted;
}

/// Books what a script action started.
fn note(ledger: &mut Ledger, outcome: ActOutcome) {
    match outcome {
        ActOutcome::Sent {
            src,
            dst,
            bytes,
            result: Ok(id),
        } => {
            let e = Expect {
                dst,
                data: bytes,
                sender_crashed: false,
                outcomes: Vec::new(),
                deliveries: 0,
            };
            ledger.transfers.insert((src, id), e);
        }
        ActOutcome::Sent { result: Err(_), .. } => ledger.local_refusals += 1,
        ActOutcome::Pinged {
            src,
            result: Some(seq),
        } => {
            ledger.pings.insert((src, seq), (0, false));
        }
        ActOutcome::Crashed { node } => {
            for ((src, _), e) in ledger.transfers.iter_mut() {
                e.sender_crashed |= *src == node && e.outcomes.is_empty();
            }
            for ((src, _), p) in ledger.pings.iter_mut() {
                p.1 |= *src == node && p.0 == 0;
            }
        }
        _ => {}
    }
}

/// Books one event and checks what can be checked at once.
fn record(ledger: &mut Ledger, mesh: &Mesh, node: usize, e: Event) -> Result<(), String> {
    match e {
        Event::Delivered {
            src,
            id,
            data,
            crc32c,
            ..
        } => {
            let s = mesh
                .names
                .iter()
                .position(|n| *n == src)
                .ok_or(format!("delivery from unknown {src}"))?;
            let exp = ledger
                .transfers
                .get_mut(&(s, id))
                .ok_or(format!("delivery of unknown transfer {id:?} from {src}"))?;
            if exp.dst != node {
                return Err(format!(
                    "{id:?} delivered at n{node:02}, sent to n{:02}",
                    exp.dst
                ));
            }
            if data != exp.data || crc32c != crc32c::crc32c(&exp.data) {
                return Err(format!("{id:?} from {src} delivered with different bytes"));
            }
            exp.deliveries += 1;
            if exp.deliveries > 1 {
                return Err(format!(
                    "{id:?} from {src} delivered {} times",
                    exp.deliveries
                ));
            }
        }
        Event::Sent { id, report, .. } => {
            let exp = ledger
                .transfers
                .get_mut(&(node, id))
                .ok_or(format!("report for unknown {id:?}"))?;
            if report.bytes != exp.data.len() as u64 || report.crc32c != crc32c::crc32c(&exp.data) {
                return Err(format!("{id:?}: report {report:?} does not match the data"));
            }
            exp.outcomes.push(Ok(0));
            ledger.multipath += u64::from(report.first_hops.len() > 1);
            ledger.failed_over += u64::from(report.failovers > 0);
        }
        Event::Failed { id, error, .. } => {
            let exp = ledger
                .transfers
                .get_mut(&(node, id))
                .ok_or(format!("failure of unknown {id:?}"))?;
            exp.outcomes.push(Err(error.may_have_been_delivered()));
        }
        Event::Pong { seq, .. } | Event::PingTimedOut { seq, .. } => {
            let p = ledger
                .pings
                .get_mut(&(node, seq))
                .ok_or(format!("answer to unknown ping {seq}"))?;
            p.0 += 1;
        }
    }
    Ok(())
}

/// The end-of-run invariants.
fn check(ledger: &Ledger, clean: bool) -> Result<(), String> {
    for ((src, id), e) in &ledger.transfers {
        let name = format!("{id:?} n{src:02}->n{:02} ({} bytes)", e.dst, e.data.len());
        match (e.outcomes.as_slice(), e.sender_crashed) {
            ([], true) => {}
            ([Ok(_)], _) if e.deliveries != 1 => {
                return Err(format!(
                    "{name}: reported sent, delivered {} times",
                    e.deliveries
                ))
            }
            ([Err(false)], _) if e.deliveries != 0 => {
                return Err(format!(
                    "{name}: failed as not delivered, but was delivered"
                ))
            }
            ([_], _) => {}
            (o, _) => return Err(format!("{name}: {} outcomes, expected one", o.len())),
        }
        if clean && e.outcomes != [Ok(0)] {
            return Err(format!("{name}: not sent although no fault was injected"));
        }
    }
    for ((src, seq), (answers, crashed)) in &ledger.pings {
        if *answers > 1 || (*answers == 0 && !crashed) {
            return Err(format!("ping {seq} from n{src:02}: {answers} answers"));
        }
    }
    if clean && ledger.local_refusals > 0 {
        return Err(format!(
            "{} sends refused locally without a fault",
            ledger.local_refusals
        ));
    }
    Ok(())
}

fn seeds() -> (Vec<u64>, bool) {
    if let Ok(s) = std::env::var("HF_SIM_SEED") {
        let seed = s
            .parse()
            .unwrap_or_else(|_| panic!("HF_SIM_SEED={s}: not a number"));
        return (vec![seed], true);
    }
    let n = std::env::var("HF_SIM_SEEDS")
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("HF_SIM_SEEDS={s}: not a number"))
        })
        .unwrap_or(SEEDS_DEFAULT);
    ((0..n).collect(), false)
}

#[test]
fn meshes_deliver_exactly_once_or_report_an_error() {
    let (seeds, verbose) = seeds();
    let mut failures = Vec::new();
    let mut totals = Totals::default();
    for &seed in &seeds {
        if let Err(e) = run(seed, verbose, &mut totals) {
            failures.push(format!(
                "seed {seed}: {e}\n  replay: HF_SIM_SEED={seed} cargo test --release -p hyperfabric --test node_sim -- --nocapture"
            ));
        }
    }
    eprintln!("{} seeds: {totals:?}", seeds.len());
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
    // Faults are mild: most transfers must get through, or the core is broken.
    assert!(
        seeds.len() < 20 || totals.sent * 10 >= totals.transfers * 7,
        "only {} of {} transfers sent",
        totals.sent,
        totals.transfers
    );
    // The seeds are fixed (0..n), so these hold or fail the same way on every run.
    let busy = [
        totals.corrupted,
        totals.multipath,
        totals.relayed,
        totals.compressed,
    ];
    assert!(
        seeds.len() < 20 || busy.iter().all(|n| *n > 0),
        "a run without corruption, multipath, relaying or compression: {totals:?}"
    );
    assert!(
        seeds.len() < 200 || totals.failed_over > 0,
        "no transfer failed over and completed: {totals:?}"
    );
}

/// The scenarios cover what they claim: relays, two paths, faults, crashes, cuts.
#[test]
fn scenarios_cover_every_shape_and_fault() {
    let mut shapes = HashSet::new();
    let (mut crash, mut cut, mut clean, mut big) = (0, 0, 0, 0);
    for seed in 0..200 {
        let sc = Scenario::generate(&mut StdRng::seed_from_u64(seed));
        shapes.insert(format!("{:?}", sc.shape));
        big += u32::from(sc.nodes >= 12);
        clean += u32::from(sc.is_clean());
        for (_, a) in &sc.script {
            crash += u32::from(matches!(a, scenario::Action::Crash { .. }));
            cut += u32::from(matches!(a, scenario::Action::Cut { .. }));
        }
    }
    assert_eq!(shapes.len(), 3, "{shapes:?}");
    assert!(
        crash > 0 && cut > 0 && clean > 0 && big > 0,
        "{crash} {cut} {clean} {big}"
    );
}
