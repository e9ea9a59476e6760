//! [`GroupOptions`]: how a group runs its collectives, validated when the group is built.

use super::error::{CollectiveError, Result};
use super::wire::HEADER_LEN;
use crate::fabric::LOAN_SLOT_BYTES;
use crate::transport::shm::arena::ARENA_SLOT_MAX;
use std::time::Duration;

/// How a group runs its collectives.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOptions {
    /// How long a rank waits without any progress before the collective fails (a rank
    /// died or never called it). Default 5 s.
    pub timeout: Duration,
    /// Payload bytes per message: large buffers are cut into chunks this size, so reducing
    /// one chunk overlaps the transfer of the next. Default 256 KiB, at most one loan slot
    /// less the header.
    pub chunk_bytes: usize,
    /// all_reduce of at most this many bytes takes recursive doubling (fewest steps), larger
    /// ones the ring (least data per rank). Default 64 KiB.
    pub small_bytes: usize,
    /// Messages in flight per collective before the oldest one's acknowledgement is awaited
    /// (1..=24; a shared-memory link lends 32 slots). Default 16.
    pub window: usize,
    /// Mixed into the group id, which otherwise follows from the rank list alone: give two
    /// groups over the same ranks that live at once (or a new group after one failed, whose
    /// leftover messages may still arrive) different contexts. Default 0.
    pub context: u32,
    /// Run all_reduce and barrier through one shared-memory arena per group (every rank on
    /// this host: the intra-host fast path, `collective::arena`) instead of fabric
    /// messages: up to `small_bytes` in one round, larger ones chunk by chunk (reduce-scatter
    /// then all-gather through `arena_bytes` per rank); group set-up fails with a typed error
    /// where a rank cannot map it. The other collectives keep the fabric path. Default off.
    pub arena: bool,
    /// With `arena`: each rank's stage for all_reduce above `small_bytes`, two halves of one
    /// chunk each (a multiple of 4096 up to 64 MiB). Default 2 MiB; refused when set
    /// without `arena`.
    pub arena_bytes: usize,
}

/// [`GroupOptions::arena_bytes`]'s default.
pub const ARENA_BYTES_DEFAULT: usize = 2 << 20;

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            timeout: Duration::from_secs(5),
            chunk_bytes: 256 << 10,
            small_bytes: 64 << 10,
            window: 16,
            context: 0,
            arena: false,
            arena_bytes: ARENA_BYTES_DEFAULT,
        }
    }
}

impl GroupOptions {
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    pub fn chunk_bytes(mut self, b: usize) -> Self {
        self.chunk_bytes = b;
        self
    }
    pub fn small_bytes(mut self, b: usize) -> Self {
        self.small_bytes = b;
        self
    }
    pub fn window(mut self, w: usize) -> Self {
        self.window = w;
        self
    }
    pub fn context(mut self, c: u32) -> Self {
        self.context = c;
        self
    }
    pub fn arena(mut self, on: bool) -> Self {
        self.arena = on;
        self
    }
    pub fn arena_bytes(mut self, b: usize) -> Self {
        self.arena_bytes = b;
        self
    }
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(CollectiveError::InvalidArgument(why));
        if self.timeout.is_zero() {
            return bad("timeout must be above zero".into());
        }
        if self.chunk_bytes < 8 || self.chunk_bytes > LOAN_SLOT_BYTES - HEADER_LEN {
            return bad(format!(
                "chunk_bytes must be 8..={} (got {})",
                LOAN_SLOT_BYTES - HEADER_LEN,
                self.chunk_bytes
            ));
        }
        if !(1..=24).contains(&self.window) {
            return bad(format!("window must be 1..=24 (got {})", self.window));
        }
        if self.arena && self.small_bytes > ARENA_SLOT_MAX {
            return bad(format!(
                "with arena, small_bytes must be at most {ARENA_SLOT_MAX} (got {})",
                self.small_bytes
            ));
        }
        if !self.arena && self.arena_bytes != ARENA_BYTES_DEFAULT {
            return bad("arena_bytes is set but arena is off".into());
        }
        let b = self.arena_bytes;
        if self.arena && (!(4096..=ARENA_SLOT_MAX).contains(&b) || !b.is_multiple_of(4096)) {
            return bad(format!(
                "arena_bytes must be a multiple of 4096 up to {ARENA_SLOT_MAX} (got {b})"
            ));
        }
        Ok(())
    }
}
