//! The header at the front of every collective message.
//!
//! ```text
//!  0      4        8                16               24     26     28     30   31   32   33  34  36
//!  | magic | group  | seq (u64)      | count (u64)    | step | chunk| rank | root|kind|dtype|op|pad|
//! ```
//! All little-endian. `seq` numbers the group's collectives (every rank calls them in the
//! same order), `step`/`chunk` name the message within one, `rank` is the sender's. `kind`,
//! `dtype`, `op`, `count` and `root` describe the collective as the sender called it: a
//! receiver that called something else reports the disagreement instead of mixing data.
//! The payload after the header is the chunk's elements (or, for `Abort`, a reason).

use super::dtype::DType;
use super::op::ReduceOp;
use std::fmt;

pub const MAGIC: u32 = 0x3143_4648; // "HFC1"
pub const HEADER_LEN: usize = 36;

/// Which collective a message belongs to (`Abort` tells the group a rank gave up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AllReduce,
    ReduceScatter,
    AllGather,
    Broadcast,
    Reduce,
    AllToAll,
    Barrier,
    Abort,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::AllReduce,
        Kind::ReduceScatter,
        Kind::AllGather,
        Kind::Broadcast,
        Kind::Reduce,
        Kind::AllToAll,
        Kind::Barrier,
        Kind::Abort,
    ];
    pub const fn code(self) -> u8 {
        match self {
            Kind::AllReduce => 1,
            Kind::ReduceScatter => 2,
            Kind::AllGather => 3,
            Kind::Broadcast => 4,
            Kind::Reduce => 5,
            Kind::AllToAll => 6,
            Kind::Barrier => 7,
            Kind::Abort => 8,
        }
    }
    pub fn from_code(c: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == c)
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::AllReduce => "all_reduce",
            Kind::ReduceScatter => "reduce_scatter",
            Kind::AllGather => "all_gather",
            Kind::Broadcast => "broadcast",
            Kind::Reduce => "reduce",
            Kind::AllToAll => "all_to_all",
            Kind::Barrier => "barrier",
            Kind::Abort => "abort",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a collective is, as every rank must agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub kind: Kind,
    pub dtype: DType,
    /// `None` for the collectives that do not reduce.
    pub op: Option<ReduceOp>,
    /// Elements of the caller's buffer.
    pub count: u64,
    pub root: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub group: u32,
    pub seq: u64,
    pub step: u16,
    pub chunk: u16,
    pub rank: u16,
    pub call: Call,
}

/// Why a message's header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("{0} bytes: shorter than a collective header ({HEADER_LEN})")]
    Short(usize),
    #[error("bad magic {0:#010x}")]
    Magic(u32),
    #[error("unknown {field} code {code}")]
    Code { field: &'static str, code: u8 },
}

impl Header {
    pub fn encode(&self, out: &mut [u8]) {
        let c = &self.call;
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&self.group.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..24].copy_from_slice(&c.count.to_le_bytes());
        out[24..26].copy_from_slice(&self.step.to_le_bytes());
        out[26..28].copy_from_slice(&self.chunk.to_le_bytes());
        out[28..30].copy_from_slice(&self.rank.to_le_bytes());
        out[30..32].copy_from_slice(&c.root.to_le_bytes());
        out[32] = c.kind.code();
        out[33] = c.dtype.code();
        out[34] = c.op.map_or(0, ReduceOp::code);
        out[35] = 0;
    }

    pub fn decode(b: &[u8]) -> Result<Header, HeaderError> {
        if b.len() < HEADER_LEN {
            return Err(HeaderError::Short(b.len()));
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | u64::from(u32_at(i + 4)) << 32;
        if u32_at(0) != MAGIC {
            return Err(HeaderError::Magic(u32_at(0)));
        }
        let code = |field, code| HeaderError::Code { field, code };
        let kind = Kind::from_code(b[32]).ok_or(code("kind", b[32]))?;
        let dtype = DType::from_code(b[33]).ok_or(code("dtype", b[33]))?;
        let op = match b[34] {
            0 => None,
            c => Some(
                ReduceOp::ALL
                    .into_iter()
                    .find(|o| o.code() == c)
                    .ok_or(code("op", c))?,
            ),
        };
        Ok(Header {
            group: u32_at(4),
            seq: u64_at(8),
            step: u16_at(24),
            chunk: u16_at(26),
            rank: u16_at(28),
            call: Call {
                kind,
                dtype,
                op,
                count: u64_at(16),
                root: u16_at(30),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let h = Header {
            group: 0xdead_beef,
            seq: u64::MAX - 3,
            step: 7,
            chunk: 513,
            rank: 5,
            call: Call {
                kind: Kind::Reduce,
                dtype: DType::Bf16,
                op: Some(ReduceOp::Max),
                count: 1 << 40,
                root: 2,
            },
        };
        let mut b = [0u8; HEADER_LEN];
        h.encode(&mut b);
        assert_eq!(Header::decode(&b), Ok(h));
        assert_eq!(Header::decode(&b[..10]), Err(HeaderError::Short(10)));
        let mut bad = b;
        bad[33] = 99;
        assert!(matches!(
            Header::decode(&bad),
            Err(HeaderError::Code { field: "dtype", .. })
        ));
        bad = b;
        bad[0] ^= 1;
        assert!(matches!(Header::decode(&bad), Err(HeaderError::Magic(_))));
    }
}
