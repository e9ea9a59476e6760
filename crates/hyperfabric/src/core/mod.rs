//! The node core: one node's protocol as a sans-IO state machine, in the manner of
//! quinn-proto and smoltcp.
//!
//! ```text
//!   commands: send, ping, link_up/down ──┐
//!   handle_frame(now, link, header, payload) ──►  Node  ──► poll_transmit() -> (link, frame)
//!   handle_timeout(now) ─────────────────┘        │    ──► poll_timeout()  -> Time
//!                                                 └──────► poll_event()    -> Event
//! ```
//!
//! Inputs are decoded frames (the engine checked their CRC32C), the time as a value and the
//! application's commands; outputs are frames to encode and send, the next time the core
//! wants [`Node::handle_timeout`], and events (a delivered transfer, a send's report or
//! typed error, a pong). The core owns the outgoing transfers (chunking, window, acks,
//! retransmission with bounded retries, spreading over disjoint paths and failover when a
//! link goes down), the incoming transfers (reassembly, the whole transfer's CRC32C,
//! exactly-once delivery, the final ack), relaying along the router's next hop with a hop
//! limit, refusals as wire [`RefusalCode`](crate::wire::RefusalCode)s, ping/pong, and the
//! node's one router. Every table has a limit ([`Limits`]).
//!
//! No sockets, threads, clock reads or randomness here: `tests/node_sim.rs` runs meshes of
//! these cores in virtual time. The runtime does not drive it yet, but it calls the
//! decisions both take from here ([`relay`], [`admission`], [`answer`], [`pack`],
//! [`zones`]); see `docs/architecture.md` for what production still does outside it.
#![forbid(unsafe_code)]

pub mod admission;
pub mod answer;
mod dispatch;
pub mod ended;
mod event;
mod incoming;
mod node;
mod outgoing;
pub mod pack;
mod paths;
pub mod relay;
pub mod source;
mod time;
pub mod zones;

pub use event::{CommandError, Event, SendError, SendReport, TransferId, Transmit};
pub use node::{Node, Stats};
pub use paths::{LinkId, LINKS_MAX};
pub use time::Time;

use crate::compress::Algorithm;
use crate::proto::{RecvParams, SendParams};
use std::time::Duration;

/// Limits on every table and queue of one node.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Outgoing transfers open at once.
    pub outgoing_max: usize,
    /// Incoming transfers in reassembly from one source.
    pub incoming_per_peer_max: usize,
    /// Incoming transfers in reassembly in all.
    pub incoming_max: usize,
    /// Bytes of all reassembly buffers together.
    pub reassembly_bytes_max: u64,
    /// Finished transfers remembered for dedupe, in all and per source (a table full of
    /// transfers younger than `CoreConfig::finished_linger` refuses new transfers; see
    /// [`ended`]).
    pub finished_max: usize,
    /// Finished transfers remembered per source (one source cannot fill the node's table).
    pub finished_per_peer_max: usize,
    /// Frames waiting for `poll_transmit` (a full queue drops; retransmission recovers).
    pub transmit_queue_max: usize,
    /// Events waiting for `poll_event` (a full queue refuses new incoming transfers).
    pub events_max: usize,
    /// Pings awaiting their pong.
    pub pings_max: usize,
    /// Relays a frame may cross.
    pub hops_max: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            outgoing_max: 256,
            incoming_per_peer_max: 64,
            incoming_max: 1024,
            reassembly_bytes_max: 1 << 30,
            finished_max: 65_536,
            finished_per_peer_max: 16_384,
            transmit_queue_max: 4096,
            events_max: 4096,
            pings_max: 256,
            hops_max: relay::HOPS_MAX,
        }
    }
}

/// A node core's configuration.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// This node's id in the topology.
    pub name: String,
    /// Distinguishes this run of the node from earlier ones (transfer ids carry it); the
    /// engine draws it at start, the simulator from its seed.
    pub incarnation: u32,
    pub send: SendParams,
    pub recv: RecvParams,
    pub limits: Limits,
    /// Compression of each data chunk (`None`: never). A chunk that does not shrink goes
    /// as it is, without the compression flag.
    pub compression: Algorithm,
    /// Disjoint paths a transfer's chunks are spread over (1 = a single path).
    pub paths_max: usize,
    /// A ping without pong for this long is reported lost.
    pub ping_timeout: Duration,
    /// Zone isolation, checked at the source, at every relay and at the destination
    /// (empty: no node in a zone, nothing denied).
    pub zones: zones::Zones,
    /// A reassembly without a frame for this long is dropped.
    pub incoming_idle: Duration,
    /// How long a finished transfer is remembered at least. Must exceed the senders' stall timeout
    /// plus the longest a frame can be delayed, or a late duplicate is delivered again.
    pub finished_linger: Duration,
}

impl CoreConfig {
    /// Defaults for `name`: 64 KiB chunks, a 1 MiB window, two paths.
    pub fn new(name: &str, incarnation: u32) -> CoreConfig {
        CoreConfig {
            name: name.to_string(),
            incarnation,
            send: SendParams {
                chunk_len: 64 << 10,
                window_bytes: 1 << 20,
                retransmit_timeout: Duration::from_millis(200),
                max_retransmits: 8,
                stall_timeout: Duration::from_secs(10),
            },
            recv: RecvParams {
                max_transfer_bytes: 256 << 20,
                ack_every_bytes: 256 << 10,
                max_ranges: 4096,
            },
            limits: Limits::default(),
            compression: Algorithm::None,
            paths_max: 2,
            ping_timeout: Duration::from_secs(5),
            zones: zones::Zones::default(),
            incoming_idle: Duration::from_secs(10),
            finished_linger: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests;
