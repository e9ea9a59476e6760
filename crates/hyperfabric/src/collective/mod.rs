//! Collectives over the public fabric API: a [`Group`] (communicator) of nodes, and
//! all_reduce (sum, avg, min, max, prod), reduce_scatter, all_gather, broadcast, reduce,
//! all_to_all and barrier on f32, f64, f16, bf16, i32, i64 and u8, in place on the
//! caller's buffer, blocking or through a [`Pending`] handle.
//!
//! ```no_run
//! use hyperfabric::collective::{Group, ReduceOp};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fabric = hyperfabric::Fabric::from_config_file("fabric.toml")?.node("rank-0").start()?;
//! let mut group = Group::new(&fabric, &["rank-0", "rank-1", "rank-2"])?;
//! let mut grads = vec![1.0f32; 1 << 20];
//! group.all_reduce(&mut grads, ReduceOp::Avg)?;
//! # Ok(()) }
//! ```
//!
//! - **Algorithms** ([`algo`]): all_reduce of up to [`GroupOptions::small_bytes`] takes
//!   recursive doubling (`log2 n` exchanges; non-powers of two fold the extra ranks in
//!   first), larger ones the ring (reduce-scatter then all-gather, `2(n-1)/n` of the data
//!   per rank). Broadcast and reduce are binomial trees, all_to_all is pairwise, barrier a
//!   dissemination. Buffers are cut into chunks ([`GroupOptions::chunk_bytes`]) with up to
//!   [`GroupOptions::window`] in flight, so a chunk is reduced while the next one travels.
//! - **Data path**: every message is a fabric loan (a slot of the shared-memory pool
//!   between processes of one host, a heap buffer sent by copy over TCP); the receiver
//!   reduces straight out of the received payload, which over shared memory is the
//!   sender's slot. The fabric's own idle strategy (spin, then yield or park) applies to
//!   every wait, so ranks that oversubscribe the cores make progress.
//! - **Tags** ([`wire`]): each message is named `hf.coll/<group id>` and starts with a
//!   header carrying group, collective sequence number, step, chunk, sender rank, and the
//!   collective as the sender called it (operation, element type, reduction, count, root).
//! - **Failures**: no progress within [`GroupOptions::timeout`] fails the collective with
//!   [`CollectiveError::Timeout`] naming the rank waited for; a rank that called something
//!   else gets [`CollectiveError::Mismatch`] naming the field; a rank that fails tells the
//!   others ([`CollectiveError::Aborted`]). A failed group refuses further collectives.
//!   A send also waits for a free shared-memory slot up to the fabric's `send_timeout_ms`:
//!   keep that near the group's timeout for the bound to hold (`hfabric bench allreduce`
//!   does).
//! - **Compressed gradients** ([`Group::all_reduce_compressed`]): fp16, bf16, int8 and top-k
//!   with error feedback; errors measured in `docs/collectives.md`.

pub mod algo;
mod api;
mod arena;
mod arena_stage;
mod compress;
pub mod dtype;
pub mod error;
mod exec;
mod group;
pub mod op;
mod options;
pub mod reference;
pub mod wire;

pub use api::Pending;
pub use compress::{Compressor, GradientCompression};
pub use dtype::{bf16, f16, DType, Element};
pub use error::CollectiveError;
pub use group::{Group, GroupOptions, ARENA_BYTES_DEFAULT, FOREIGN_MAX, MAILBOX_MAX, TAG_PREFIX};
pub use op::ReduceOp;
