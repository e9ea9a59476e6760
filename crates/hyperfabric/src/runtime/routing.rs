//! A node's router as the fabric file's `[routing]` asks: strategy, predictor knobs, the
//! fidelity threshold, and the predictor trained on `routing.history` before the node starts.

use super::{NodeInner, Peer};
use crate::config::{routing::HISTORY_BYTES_MAX, FabricConfig, SecurityConfig};
use crate::error::{Error, Result};
use crate::route::{RouteError, Router, Strategy, Topology};
use serde::Serialize;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// After a sample found no route to its destination, the next try waits this long.
const NO_ROUTE_RETRY_MS: u64 = 10_000;

/// Default shortest time between two live latency samples taught to the predictor.
pub(crate) const LEARN_INTERVAL_MS_DEFAULT: u64 = 100;

/// The router of node `me` and how far it learned from `routing.history`; a history that
/// cannot be read or has a bad line is an error naming `routing.history`.
pub(crate) fn configured_router(
    cfg: &FabricConfig,
    me: &str,
) -> Result<(Router, Option<HistoryMark>)> {
    let mut router = Router::new(Topology::from_config(cfg));
    router.configure(&cfg.routing);
    let mut mark = None;
    if let Some(read) = read_history(cfg, me, None)? {
        train_on(&mut router, cfg, me, &read.path, &read.text)?;
        mark = Some(read.mark);
    }
    Ok((router, mark))
}

/// How far a node has learned from its history file: which file (device and inode) and how
/// many of its bytes. A retraining reads only what was appended since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryMark {
    dev: u64,
    ino: u64,
    offset: u64,
}

/// What one read of `routing.history` found.
pub(crate) struct HistoryRead {
    pub path: PathBuf,
    /// Whole lines from `from` on.
    pub text: String,
    pub from: u64,
    /// The file was truncated below the mark or replaced: read from its start again.
    pub started_over: bool,
    /// Where the next read starts (after the text's last whole line).
    pub mark: HistoryMark,
}

/// What a node's predictor holds (`Fabric::predictor_model`, `hfabric serve --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictorModel {
    /// Samples learned (history and live ones).
    pub samples: u64,
    /// Enough samples for its predictions to be used (`routing.training_samples`).
    pub trained: bool,
    pub min_samples: u64,
    pub learning_rate: f64,
    /// One weight per feature of the latency model (docs/routing.md).
    pub weights: Vec<f64>,
}

impl PredictorModel {
    pub(crate) fn of(router: &Router) -> PredictorModel {
        let p = router.predictor();
        PredictorModel {
            samples: p.samples(),
            trained: p.is_trained(),
            min_samples: p.min_samples(),
            learning_rate: p.learning_rate(),
            weights: p.weights().to_vec(),
        }
    }
}

/// One training of a running node from its history file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryTraining {
    pub history: PathBuf,
    /// Samples read from the file this time (added to what the predictor had learned):
    /// the lines appended since the last training.
    pub lines: usize,
    /// Byte offset the read started at (what was learned before is not learned again).
    pub from_byte: u64,
    /// The file was shorter than what was learned, or another file (rotated): it was
    /// read from its start again.
    pub started_over: bool,
    pub predictor: PredictorModel,
}

/// `routing.history` from `since` on (None without the field): from its start without a
/// mark, or when the file is shorter than the mark or another file. With a mark only whole
/// lines are taken (a line being appended waits for the next read). Errors name the field.
pub(crate) fn read_history(
    cfg: &FabricConfig,
    me: &str,
    since: Option<HistoryMark>,
) -> Result<Option<HistoryRead>> {
    let Some(written) = &cfg.routing.history else {
        return Ok(None);
    };
    let path = SecurityConfig::resolve(&cfg.source, written, me);
    let why = |reason: String| Error::config(cfg.source.clone(), "routing.history", reason);
    let io = |e: std::io::Error| why(format!("reading {}: {e}", path.display()));
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let (dev, ino, len) = (meta.dev(), meta.ino(), meta.len());
    let (from, started_over) = match since {
        None => (0, false),
        Some(m) if m.dev == dev && m.ino == ino && len >= m.offset => (m.offset, false),
        Some(_) => (0, true),
    };
    file.seek(SeekFrom::Start(from)).map_err(io)?;
    let mut text = String::new();
    // One byte over the limit tells a file that is too long from one that fits.
    file.take(HISTORY_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > HISTORY_BYTES_MAX {
        let limit = HISTORY_BYTES_MAX;
        return Err(why(format!(
            "{} has over {limit} bytes to learn from byte {from}",
            path.display()
        )));
    }
    if since.is_some() {
        text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
    }
    let offset = from + text.len() as u64;
    Ok(Some(HistoryRead {
        path,
        text,
        from,
        started_over,
        mark: HistoryMark { dev, ino, offset },
    }))
}

/// Trains `router` on a history's text. Every line is checked before any is learned, so
/// a bad line leaves the predictor as it was.
pub(crate) fn train_on(
    router: &mut Router,
    cfg: &FabricConfig,
    me: &str,
    path: &Path,
    text: &str,
) -> Result<usize> {
    let why = |e: String| Error::config(cfg.source.clone(), "routing.history", e);
    let mut trial = router.predictor().clone();
    trial
        .train_from_jsonl(text)
        .map_err(|e| why(format!("{}: {e}", path.display())))?;
    let n = router
        .train_from_jsonl(text)
        .map_err(|e| why(format!("{}: {e}", path.display())))?;
    tracing::info!(
        node = me,
        samples = n,
        trained = router.predictor().is_trained(),
        "predictor trained from {}",
        path.display()
    );
    Ok(n)
}

/// `routing.model_update_interval_s` in ms (the default without it).
pub(crate) fn learn_interval_ms(cfg: &FabricConfig) -> u64 {
    cfg.routing
        .model_update_interval_s
        .map_or(LEARN_INTERVAL_MS_DEFAULT, |s| (s * 1000.0) as u64)
}

/// The node's routing: routes, next hops and what the predictor learns.
impl NodeInner {
    /// Trains the predictor on the lines appended to `routing.history` since the last
    /// training (the whole file when it was truncated or replaced, which is logged). None
    /// without the field; a bad line leaves the predictor and the mark as they were.
    pub(crate) fn train_from_history(&self, cfg: &FabricConfig) -> Result<Option<HistoryTraining>> {
        let mut mark = self.history_mark.lock();
        let Some(read) = read_history(cfg, &self.me, *mark)? else {
            return Ok(None);
        };
        if read.started_over {
            tracing::info!(
                node = %self.me,
                "{} is shorter than what was learned from it, or another file: learning it \
                 from the start",
                read.path.display()
            );
        }
        let context = format!("{} from byte {}", read.path.display(), read.from);
        let training = self.with_router(|r| {
            let lines = train_on(r, cfg, &self.me, Path::new(&context), &read.text)?;
            Ok::<_, Error>(HistoryTraining {
                history: read.path.clone(),
                lines,
                from_byte: read.from,
                started_over: read.started_over,
                predictor: PredictorModel::of(r),
            })
        })?;
        *mark = Some(read.mark);
        Ok(Some(training))
    }

    /// The first hop towards `dst` and the nodes of the whole route (source first), by
    /// `strategy` over the fabric file's links. Without a route in the file (no links, or a
    /// node added at run time) a node with an address is reached directly.
    pub fn first_hop(
        &self,
        dst: &Peer,
        strategy: Option<Strategy>,
        now: Instant,
    ) -> Result<(Peer, Vec<String>)> {
        let direct = || Ok((dst.clone(), vec![self.me.clone(), dst.id.clone()]));
        if dst.key == self.my_key {
            return direct();
        }
        let route = {
            let mut router = self.router.lock();
            let strategy = strategy.unwrap_or_else(|| router.default_strategy());
            router.route_shared(&self.me, &dst.id, strategy, now)
        };
        match route {
            Ok(r) => match r.nodes.get(1) {
                Some(hop) if *hop != dst.id => Ok((self.peer_by_id(hop)?, r.nodes.clone())),
                _ => direct(),
            },
            Err(RouteError::NoRoute { .. } | RouteError::UnknownNode(_)) if dst.addr.is_some() => {
                direct()
            }
            Err(e @ RouteError::Isolated { .. }) => Err(Error::Rejected {
                reason: e.to_string(),
            }),
            Err(e) => Err(Error::Unreachable {
                node: dst.id.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// The neighbour to forward a frame for `dst` to (relays), by the sender's `strategy`
    /// when the frame carries one, else by this node's default.
    pub fn next_hop(&self, dst_key: u64, strategy: Option<Strategy>, now: Instant) -> Result<Peer> {
        let dst = self
            .peer_by_key(dst_key)
            .ok_or_else(|| Error::NodeNotFound {
                node: format!("{dst_key:#x}"),
            })?;
        self.first_hop(&dst, strategy, now).map(|(hop, _)| hop)
    }

    /// Teaches the predictive strategy what the direct link to `dst` really took
    /// (`observed_ns`: one-way latency of a ping, or of a small single-hop transfer).
    pub fn observe_link(&self, dst: &str, observed_ns: f64, now: Instant) {
        // At most one sample per interval: training allocates and locks the router.
        let since_start = now.saturating_duration_since(self.started).as_millis() as u64;
        let last = self.last_learn_ms.load(Ordering::Relaxed);
        if last != 0 && since_start < last + self.learn_interval_ms {
            return;
        }
        self.last_learn_ms
            .store(since_start.max(1), Ordering::Relaxed);
        let hour = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(12.0, |d| (d.as_secs() % 86_400) as f64 / 3600.0);
        let mut router = self.router.lock();
        let Ok(route) = router.route_shared(&self.me, dst, Strategy::LowestLatency, now) else {
            // No link to learn about (a fabric file without links): ask again much later
            // rather than build the same error every interval.
            self.last_learn_ms
                .store(since_start + NO_ROUTE_RETRY_MS, Ordering::Relaxed);
            return;
        };
        let [hop] = route.hops.as_slice() else { return };
        let sample = crate::route::PredictorSample {
            from: hop.from.clone(),
            to: hop.to.clone(),
            latency_ns: hop.latency_ns as f64,
            bandwidth_gbps: hop.bandwidth_gbps,
            utilisation: hop.utilisation,
            loss: 0.0,
            hour,
            observed_latency_ns: observed_ns,
        };
        router.set_hour(hour);
        router.train(sample);
    }

    /// Samples the node's predictor has learned (history and live ones).
    pub fn default_strategy(&self) -> Strategy {
        self.router.lock().default_strategy()
    }

    /// The node's one router (topology, strategies, predictor), for a moment.
    pub(crate) fn with_router<R>(&self, f: impl FnOnce(&mut Router) -> R) -> R {
        f(&mut self.router.lock())
    }

    pub fn predictor_samples(&self) -> u64 {
        self.router.lock().predictor().samples()
    }
}
