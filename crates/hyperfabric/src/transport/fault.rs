//! Fault injection in real processes: frames written by this node are dropped, corrupted,
//! duplicated, delayed or their connection cut, at given rates, so multi-process tests can check that
//! nothing is lost or delivered corrupt (see README, "Fault injection").
//!
//! Rules come from three places, merged: the fabric file's `[[faults]]`, the environment
//! variable `HF_FAULTS` (inline rules) and `HF_FAULTS_FILE` (a TOML file with only
//! `[[faults]]`, re-read when its modification time changes, so a test can switch faults on
//! and off in a running process). Parsing and validation live in `config/faults.rs`.
//!
//! The injector sits on the write side of a link, as the wrapper [`super::wrap::Faulty`]: a
//! rule applies to frames written by node `from` (any node if absent) to its neighbour `to`
//! (any if absent). Only end-to-end
//! frames (data, meta, acks, nacks, pings, pongs) are touched; the handshake and per-link
//! control frames are not, since they are not what the tests are about.

use crate::wire::{FrameKind, HEADER_LEN};
use parking_lot::RwLock;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Environment variable with inline rules: `from=a,to=b,drop=0.01;from=b,delay_us=2000`.
pub const ENV_RULES: &str = "HF_FAULTS";
/// Environment variable naming a TOML file of `[[faults]]`, re-read when it changes.
pub const ENV_FILE: &str = "HF_FAULTS_FILE";
/// Shortest time between two looks at `HF_FAULTS_FILE`'s modification time.
const FILE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// One fault rule. Probabilities are per frame, in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultRule {
    /// The writing node (None: any node).
    pub from: Option<String>,
    /// The neighbour written to (None: any).
    pub to: Option<String>,
    /// Do not write the frame (the caller is told it was written, as on a lossy wire).
    pub drop: f64,
    /// Flip one random byte (header or payload) of a copy of the frame.
    pub corrupt: f64,
    /// Write the frame twice, the copy right behind it (a frame that lends a shared-memory
    /// slot, `LOANED`, is written once: its slot is lent once).
    pub duplicate: f64,
    /// Sleep this long before writing each frame.
    pub delay_us: u64,
    /// Shut the connection down (both directions) instead of writing.
    pub cut: f64,
    /// Seed of the rule's random numbers (None: random, logged).
    pub seed: Option<u64>,
}

impl FaultRule {
    /// The first field that is out of range, and why (probabilities in `[0, 1]`).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, p) in [
            ("drop", self.drop),
            ("corrupt", self.corrupt),
            ("duplicate", self.duplicate),
            ("cut", self.cut),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err((field, format!("must be a probability in [0, 1] (got {p})")));
            }
        }
        Ok(())
    }

    fn matches(&self, from: &str, to: &str) -> bool {
        self.from.as_deref().is_none_or(|f| f == from) && self.to.as_deref().is_none_or(|t| t == to)
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let any = |s: &Option<String>| s.clone().unwrap_or_else(|| "*".into());
        write!(
            f,
            "from={} to={} drop={} corrupt={} duplicate={} delay_us={} cut={}",
            any(&self.from),
            any(&self.to),
            self.drop,
            self.corrupt,
            self.duplicate,
            self.delay_us,
            self.cut
        )
    }
}

/// What the injector did, for the node's stats snapshot.
#[derive(Debug, Default)]
pub struct FaultCounters {
    pub dropped: AtomicU64,
    pub corrupted: AtomicU64,
    pub duplicated: AtomicU64,
    pub cut: AtomicU64,
    pub delayed: AtomicU64,
}

/// A rule with its random-number state (splitmix64: lock-free, one add per draw).
#[derive(Debug)]
struct Armed {
    rule: FaultRule,
    state: AtomicU64,
}

impl Armed {
    fn new(rule: FaultRule, origin: &str) -> Armed {
        let seed = rule.seed.unwrap_or_else(rand::random);
        tracing::warn!("fault injection active ({origin}): {rule} seed={seed}");
        Armed {
            rule,
            state: AtomicU64::new(seed),
        }
    }

    fn next(&self) -> u64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn roll(&self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// What happens to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Write,
    Drop,
    Cut,
    /// Write it, then write it again.
    Duplicate,
    /// XOR the byte at this index of the frame (header first, then payload) with the mask.
    Corrupt {
        at: usize,
        mask: u8,
    },
}

/// Turns the text of `HF_FAULTS_FILE` into rules (an error is logged, the rules kept).
pub type FileLoader = Box<dyn Fn(&str) -> Result<Vec<FaultRule>, String> + Send + Sync>;

/// `HF_FAULTS_FILE`: its rules, and when it was last looked at.
struct WatchedFile {
    path: PathBuf,
    load: FileLoader,
    started: Instant,
    /// Milliseconds since `started` of the next look at the file's modification time.
    next_check_ms: AtomicU64,
    current: RwLock<FileState>,
}

#[derive(Default)]
struct FileState {
    stamp: Option<(SystemTime, u64)>,
    rules: Arc<Vec<Armed>>,
}

/// The faults one node applies to the frames it writes.
pub struct FaultInjector {
    me: String,
    fixed: Vec<Armed>,
    file: Option<WatchedFile>,
    pub counters: FaultCounters,
}

impl FaultInjector {
    /// An injector for node `me` with `rules` (those for other writers are left out) and
    /// an optional watched file whose text `load` turns into rules. `None` when nothing
    /// could ever apply.
    pub fn new(
        me: &str,
        rules: Vec<(FaultRule, String)>,
        file: Option<(PathBuf, FileLoader)>,
    ) -> Option<Arc<FaultInjector>> {
        let fixed: Vec<Armed> = rules
            .into_iter()
            .filter(|(r, _)| r.from.as_deref().is_none_or(|f| f == me))
            .map(|(r, origin)| Armed::new(r, &origin))
            .collect();
        if fixed.is_empty() && file.is_none() {
            return None;
        }
        let file = file.map(|(path, load)| {
            tracing::warn!("fault injection: watching {} for rules", path.display());
            WatchedFile {
                path,
                load,
                started: Instant::now(),
                next_check_ms: AtomicU64::new(0),
                current: RwLock::new(FileState::default()),
            }
        });
        let injector = FaultInjector {
            me: me.to_owned(),
            fixed,
            file,
            counters: FaultCounters::default(),
        };
        injector.refresh();
        Some(Arc::new(injector))
    }

    /// Could a rule ever apply to frames written to `peer`? (A watched file may change.)
    pub fn may_apply_to(&self, peer: &str) -> bool {
        self.file.is_some() || self.fixed.iter().any(|a| a.rule.matches(&self.me, peer))
    }

    /// Decides the fate of one frame of `kind` and `len` bytes written to `peer`, after
    /// sleeping the rules' delay if the frame is to be written.
    pub fn decide(&self, peer: &str, kind: FrameKind, len: usize) -> Fate {
        if !kind.is_routed() {
            return Fate::Write;
        }
        self.refresh();
        let from_file = self
            .file
            .as_ref()
            .map(|f| Arc::clone(&f.current.read().rules));
        let rules = self
            .fixed
            .iter()
            .chain(from_file.iter().flat_map(|r| r.iter()));
        let (mut fate, mut delay_us) = (Fate::Write, 0u64);
        for a in rules.filter(|a| a.rule.matches(&self.me, peer)) {
            let r = &a.rule;
            if a.roll(r.cut) {
                self.counters.cut.fetch_add(1, Ordering::Relaxed);
                return Fate::Cut;
            }
            if a.roll(r.drop) {
                fate = Fate::Drop;
            } else if fate == Fate::Write && len > 0 && a.roll(r.corrupt) {
                let at = (a.next() % len as u64) as usize;
                let mask = (a.next() % 255) as u8 + 1;
                fate = Fate::Corrupt { at, mask };
            } else if fate == Fate::Write && a.roll(r.duplicate) {
                fate = Fate::Duplicate;
            }
            delay_us = delay_us.saturating_add(r.delay_us);
        }
        match fate {
            Fate::Drop => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return fate;
            }
            Fate::Corrupt { .. } => {
                self.counters.corrupted.fetch_add(1, Ordering::Relaxed);
            }
            Fate::Duplicate => {
                self.counters.duplicated.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if delay_us > 0 {
            self.counters.delayed.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(delay_us));
        }
        fate
    }

    /// Writes one frame through the faults: `write` puts a (possibly corrupted) frame on the
    /// wire, `cut` shuts the connection down.
    pub fn write_through(
        &self,
        peer: &str,
        kind: FrameKind,
        raw: [u8; HEADER_LEN],
        payload: &[u8],
        cut: impl FnOnce(),
        mut write: impl FnMut(&[u8; HEADER_LEN], &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        match self.decide(peer, kind, HEADER_LEN + payload.len()) {
            Fate::Write => write(&raw, payload),
            Fate::Duplicate if lends_a_slot(&raw) => write(&raw, payload),
            Fate::Duplicate => {
                write(&raw, payload)?;
                write(&raw, payload)
            }
            Fate::Drop => Ok(()),
            Fate::Cut => {
                cut();
                Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "connection cut by fault injection",
                ))
            }
            Fate::Corrupt { at, mask } => {
                let (raw, payload) = corrupt(raw, payload, at, mask);
                write(&raw, &payload)
            }
        }
    }

    /// Re-reads the watched file when its modification time or size changed (looked at
    /// most every 100 ms; between looks this is one clock read and one atomic load).
    fn refresh(&self) {
        let Some(f) = &self.file else { return };
        let now_ms = f.started.elapsed().as_millis() as u64;
        let due = f.next_check_ms.load(Ordering::Relaxed);
        let next = now_ms + FILE_CHECK_INTERVAL.as_millis() as u64;
        if now_ms < due
            || f.next_check_ms
                .compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let stamp = std::fs::metadata(&f.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if f.current.read().stamp == stamp {
            return;
        }
        let origin = f.path.display().to_string();
        let rules = match stamp {
            None => Ok(Vec::new()),
            Some(_) => match std::fs::read_to_string(&f.path) {
                Ok(text) => (f.load)(&text),
                Err(e) => Err(format!("{origin}: cannot read: {e}")),
            },
        };
        let mut cur = f.current.write();
        cur.stamp = stamp;
        match rules {
            Ok(rules) => {
                let armed: Vec<Armed> = rules
                    .into_iter()
                    .filter(|r| r.from.as_deref().is_none_or(|x| x == self.me))
                    .map(|r| Armed::new(r, &origin))
                    .collect();
                tracing::warn!(
                    "fault rules reloaded from {origin}: {} rule(s) for this node",
                    armed.len()
                );
                cur.rules = Arc::new(armed);
            }
            Err(e) => tracing::error!("bad fault file, keeping the previous rules: {e}"),
        }
    }
}

/// Whether the frame lends a shared-memory slot (`flags::LOANED`, flags at bytes 6..8).
fn lends_a_slot(raw: &[u8; HEADER_LEN]) -> bool {
    u16::from_le_bytes([raw[6], raw[7]]) & crate::wire::flags::LOANED != 0
}

/// A copy of the frame with the byte at `at` (header first, then payload) XORed by `mask`;
/// only the part that changes is copied.
fn corrupt(
    mut raw: [u8; HEADER_LEN],
    payload: &[u8],
    at: usize,
    mask: u8,
) -> ([u8; HEADER_LEN], Cow<'_, [u8]>) {
    if at < HEADER_LEN {
        raw[at] ^= mask;
        return (raw, Cow::Borrowed(payload));
    }
    let mut copy = payload.to_vec();
    if let Some(b) = copy.get_mut(at - HEADER_LEN) {
        *b ^= mask;
    }
    (raw, Cow::Owned(copy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(drop: f64, corrupt: f64, cut: f64) -> FaultRule {
        FaultRule {
            drop,
            corrupt,
            cut,
            seed: Some(7),
            ..FaultRule::default()
        }
    }

    fn injector(rules: Vec<FaultRule>) -> Arc<FaultInjector> {
        let rules = rules.into_iter().map(|r| (r, "test".to_owned())).collect();
        FaultInjector::new("a", rules, None).unwrap()
    }

    #[test]
    fn rates_are_close_to_the_rules() {
        let f = injector(vec![rule(0.1, 0.05, 0.0)]);
        let n = 100_000;
        for _ in 0..n {
            f.decide("b", FrameKind::Data, 1000);
        }
        let dropped = f.counters.dropped.load(Ordering::Relaxed) as f64 / n as f64;
        let corrupted = f.counters.corrupted.load(Ordering::Relaxed) as f64 / n as f64;
        assert!((dropped - 0.1).abs() < 0.01, "{dropped}");
        // Corruption only among the frames not dropped.
        assert!((corrupted - 0.045).abs() < 0.01, "{corrupted}");
    }

    #[test]
    fn rules_match_their_writer_and_neighbour_only() {
        let to_c = FaultRule {
            to: Some("c".into()),
            ..rule(1.0, 0.0, 0.0)
        };
        let from_b = FaultRule {
            from: Some("b".into()),
            ..rule(1.0, 0.0, 0.0)
        };
        let f = injector(vec![to_c, from_b.clone()]);
        assert_eq!(f.decide("c", FrameKind::Data, 10), Fate::Drop);
        assert_eq!(f.decide("b", FrameKind::Data, 10), Fate::Write);
        assert!(f.may_apply_to("c") && !f.may_apply_to("b"));
        // Handshake and link-control frames are never touched.
        assert_eq!(f.decide("c", FrameKind::ShmAccept, 10), Fate::Write);
        assert!(FaultInjector::new("a", vec![(from_b, "t".into())], None).is_none());
    }

    #[test]
    fn corruption_flips_exactly_one_byte_and_cut_wins() {
        let f = injector(vec![rule(0.0, 1.0, 0.0)]);
        let payload = vec![0x55u8; 100];
        for _ in 0..200 {
            let mut frames = Vec::new();
            let res = f.write_through(
                "b",
                FrameKind::Data,
                [0u8; HEADER_LEN],
                &payload,
                || {},
                |r, p| {
                    frames.push([&r[..], p].concat());
                    Ok(())
                },
            );
            assert!(res.is_ok());
            let original = [&[0u8; HEADER_LEN][..], &payload].concat();
            let diff = frames[0]
                .iter()
                .zip(&original)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(diff, 1);
        }
        let f = injector(vec![rule(1.0, 1.0, 1.0)]);
        let mut was_cut = false;
        let res = f.write_through(
            "b",
            FrameKind::Ack,
            [0u8; HEADER_LEN],
            &[],
            || was_cut = true,
            |_, _| Ok(()),
        );
        assert!(was_cut && res.is_err());
        assert_eq!(f.counters.cut.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_duplicated_frame_is_written_twice_unless_it_lends_a_slot() {
        let f = injector(vec![FaultRule {
            duplicate: 1.0,
            ..rule(0.0, 0.0, 0.0)
        }]);
        let writes = |raw: [u8; HEADER_LEN]| {
            let mut n = 0;
            let res = f.write_through(
                "b",
                FrameKind::Data,
                raw,
                b"x",
                || {},
                |_, p| {
                    assert_eq!(p, b"x");
                    n += 1;
                    Ok(())
                },
            );
            assert!(res.is_ok());
            n
        };
        assert_eq!(writes([0u8; HEADER_LEN]), 2);
        let mut loaned = [0u8; HEADER_LEN];
        loaned[6..8].copy_from_slice(&crate::wire::flags::LOANED.to_le_bytes());
        assert_eq!(writes(loaned), 1);
        assert_eq!(f.counters.duplicated.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn same_seed_same_decisions() {
        let run = || {
            let f = injector(vec![rule(0.3, 0.3, 0.0)]);
            (0..500)
                .map(|_| f.decide("b", FrameKind::Data, 64))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn watched_file_is_reloaded_and_a_bad_file_keeps_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faults.toml");
        let load: FileLoader = Box::new(|text: &str| match text.trim() {
            "drop" => Ok(vec![rule(1.0, 0.0, 0.0)]),
            "none" => Ok(Vec::new()),
            other => Err(format!("cannot parse {other:?}")),
        });
        let f = FaultInjector::new("a", Vec::new(), Some((path.clone(), load))).unwrap();
        assert_eq!(f.decide("b", FrameKind::Data, 10), Fate::Write, "no file");
        let write_and_wait = |text: &str| {
            std::fs::write(&path, text).unwrap();
            // The next look at the file is at most 100 ms away; make it due now.
            f.file
                .as_ref()
                .unwrap()
                .next_check_ms
                .store(0, Ordering::Relaxed);
        };
        write_and_wait("drop");
        assert_eq!(f.decide("b", FrameKind::Data, 10), Fate::Drop);
        write_and_wait("garbage!");
        assert_eq!(f.decide("b", FrameKind::Data, 10), Fate::Drop, "kept");
        std::fs::remove_file(&path).unwrap();
        f.file
            .as_ref()
            .unwrap()
            .next_check_ms
            .store(0, Ordering::Relaxed);
        assert_eq!(f.decide("b", FrameKind::Data, 10), Fate::Write, "removed");
    }
}
