//! Shared-memory primitives for links inside one host: a named [`Segment`], an SPSC
//! [`Ring`] of variable-length records with safe [`Producer`]/[`Consumer`] handles, and
//! idle strategies with a process-shared futex ([`wait`]).
//!
//! This is the only module of the crate allowed `unsafe`; every unsafe block carries a
//! `// SAFETY:` comment (enforced below). The peer process is not trusted: whatever it
//! writes into the shared memory can make a link fail with a typed error, never make us
//! read or write outside the mapping.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod arena;
pub mod index;
pub mod pool;
pub mod ring;
pub mod segment;
pub mod wait;

pub use pool::{LinkPools, Pool, PoolError, PoolReceiver, PoolSender, SlotMut, SlotView};
pub use ring::{
    Consumer, Producer, ReadSlot, Ring, RingError, Waiter, WriteSlot, RECORD_HEADER_LEN,
};
pub use segment::{remove_stale, segment_name, Segment, SegmentError};
pub use wait::Schedule;
/// The former name of [`Schedule`] (how a shared-memory wait spins, yields and parks), kept
/// for users of this module; the one idle-strategy module is [`crate::idle`].
pub use wait::Schedule as IdleStrategy;
