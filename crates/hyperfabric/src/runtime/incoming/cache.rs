//! What the destination does for a transfer's transform once it is complete: records it
//! on the message, and resolves a parameter-cache plan into the full bytes.

use super::{Completed, IncomingTable};
use crate::buffer::Payload;
use crate::config::{Transform, PARAM_CACHE_BYTES};
use crate::transform::{cache::decode_plan, ChunkCache, TransformError};
use crate::wire::{Refusal, RefusalCode};

impl IncomingTable {
    /// Applies what the destination does for a transform: records it on the message and
    /// resolves a parameter-cache plan into the full bytes (before the FINAL ack, so a
    /// sender whose chunks are not held learns it from the refusal).
    pub(in crate::runtime) fn finish_transform(
        &self,
        src: u64,
        transform: Transform,
        done: Completed,
    ) -> Result<Completed, Refusal> {
        let Completed::Deliver(mut msg) = done else {
            return Ok(done);
        };
        msg.transform = transform;
        if transform == Transform::Cache {
            msg.payload = Payload::Owned(self.resolve_cached(src, &msg.payload)?);
        }
        Ok(Completed::Deliver(msg))
    }

    /// `payload` = plan length (u32 LE), the encoded plan, the literal chunks in plan order.
    fn resolve_cached(&self, src: u64, payload: &[u8]) -> Result<Vec<u8>, Refusal> {
        let bad = |why: String| Refusal::new(RefusalCode::BadFrame, why);
        let (len, rest) = payload
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("parameter-cache transfer without its plan".into()))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(bad("parameter-cache plan longer than the transfer".into()));
        }
        let (plan, literals) = rest.split_at(len);
        let plan = decode_plan(plan, self.params.max_transfer_bytes as usize)
            .map_err(|e| bad(format!("bad parameter-cache plan: {e}")))?;
        let mut caches = self.caches.lock();
        let cache = caches
            .entry(src)
            .or_insert_with(|| ChunkCache::new(PARAM_CACHE_BYTES));
        cache.resolve(&plan, literals).map_err(|e| match e {
            TransformError::MissingChunks { missing } => Refusal::new(
                RefusalCode::CacheMiss,
                format!(
                    "{}: {} chunk(s) not held",
                    RefusalCode::CacheMiss,
                    missing.len()
                ),
            ),
            e => bad(format!("bad parameter-cache transfer: {e}")),
        })
    }
}
