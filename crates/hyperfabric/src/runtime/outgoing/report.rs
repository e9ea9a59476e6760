//! What a finished send reports: the `SendReport` of a delivered transfer (paths, hops,
//! throughput, what the route learned) or its bare [`Completion`], or the error of a failed
//! one, with the node's counters.

use super::{PendingSend, LEARN_MAX_BYTES};
use crate::compress::Algorithm;
use crate::error::Error;
use crate::proto::SendFailure;
use crate::runtime::options::{Hop, SendReport};
use crate::transport::TransportKind;
use crate::wire::RefusalCode;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl PendingSend<'_> {
    pub(super) fn failure(&self, f: SendFailure) -> SendFailed {
        self.node
            .stats
            .transfers_failed
            .fetch_add(1, Ordering::Relaxed);
        self.node
            .metrics
            .link(self.peer.key, &self.peer.id)
            .on_transfer_failed();
        let error = match f {
            SendFailure::Refused(refusal) => {
                return SendFailed {
                    error: Error::Rejected {
                        reason: format!("{}: {refusal}", self.peer.id),
                    },
                    refusal: Some(refusal.code),
                }
            }
            SendFailure::TimedOut {
                retransmits,
                stalled_for,
            } => Error::Timeout {
                what: format!(
                    "transfer {:#x} to `{}` ({retransmits} retransmission rounds)",
                    self.id, self.peer.id
                ),
                after: stalled_for,
            },
        };
        error.into()
    }

    /// Counts a delivered transfer (node and link counters, the predictor) and returns its
    /// figures.
    pub(super) fn complete(&self, retransmitted_bytes: u64) -> Completion {
        let stats = &self.node.stats;
        stats.transfers_sent.fetch_add(1, Ordering::Relaxed);
        stats
            .retransmitted_bytes
            .fetch_add(retransmitted_bytes, Ordering::Relaxed);
        let bytes = self.source.len();
        let latency = self.started.elapsed();
        self.node
            .metrics
            .link(self.peer.key, &self.peer.id)
            .on_transfer_done(latency, retransmitted_bytes);
        // Small single-hop transfers measure the link itself: teach the predictor.
        let direct = self.paths.main_path().is_none_or(|p| p.via.len() == 2);
        if direct && bytes <= LEARN_MAX_BYTES {
            self.node.observe_link(
                &self.peer.id,
                latency.as_nanos() as f64 / 2.0,
                Instant::now(),
            );
        }
        Completion {
            transfer_id: self.id,
            bytes,
            latency,
            retransmitted_bytes,
        }
    }

    pub(super) fn report(&self, retransmitted_bytes: u64) -> SendReport {
        let Completion {
            transfer_id,
            bytes,
            latency,
            retransmitted_bytes,
        } = self.complete(retransmitted_bytes);
        let path = self
            .paths
            .main_path()
            .map(|p| p.via.to_vec())
            .unwrap_or_else(|| vec![self.node.me.clone(), self.peer.id.clone()]);
        let first = self.paths.first_hop_transport();
        let hops = path
            .windows(2)
            .enumerate()
            .map(|(i, w)| Hop {
                from: w[0].clone(),
                to: w[1].clone(),
                transport: if i == 0 {
                    first
                } else {
                    TransportKind::Relayed
                },
            })
            .collect();
        SendReport {
            transfer_id,
            bytes,
            latency,
            throughput_gbps: bytes as f64 * 8.0 / latency.as_secs_f64().max(1e-9) / 1e9,
            path,
            hops,
            paths: self.paths.report(),
            failovers: self.paths.failovers,
            compression_ratio: if self.wire_payload_bytes == 0 {
                1.0
            } else {
                bytes as f64 / self.wire_payload_bytes as f64
            },
            compression: self.algorithm.unwrap_or(Algorithm::None),
            transform: self.opts.transform,
            bytes_saved: self.opts.bytes_saved,
            retransmitted_bytes,
            data_type: self.opts.data_type,
            priority: self.opts.priority,
            stored_as: self.slot.stored_as.lock().clone(),
            file_read: match &self.source {
                super::SendSource::File(f) => Some(f.read_mode()),
                _ => None,
            },
        }
    }
}

/// What [`PendingSend::finish`] returns for a delivered transfer: its figures without the
/// names ([`SendReport`] has those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub transfer_id: u64,
    pub bytes: u64,
    /// From the start of the send to the destination's last acknowledgement.
    pub latency: std::time::Duration,
    /// Bytes sent again after a loss.
    pub retransmitted_bytes: u64,
}

/// A failed send: the error its caller gets and, when the destination refused it, the
/// refusal code (decisions match on the code, never on the text).
#[derive(Debug)]
pub(crate) struct SendFailed {
    pub error: Error,
    pub refusal: Option<RefusalCode>,
}

impl From<Error> for SendFailed {
    fn from(error: Error) -> SendFailed {
        SendFailed {
            error,
            refusal: None,
        }
    }
}
