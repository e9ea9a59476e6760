//! Element types of collectives and how their bytes travel (little-endian, packed).
//!
//! [`Element`] is what a collective's buffer may hold. Values are written into a send buffer
//! with [`Element::write`] and read back out of a received payload with [`Element::read`],
//! so a received shared-memory slot is reduced in place, without a copy to an aligned buffer
//! first.

pub use half::{bf16, f16};
use std::fmt;

/// The element type a collective carries (its code travels in every message header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    F16,
    Bf16,
    I32,
    I64,
    U8,
}

impl DType {
    pub const ALL: [DType; 7] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::Bf16,
        DType::I32,
        DType::I64,
        DType::U8,
    ];

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::F16 | DType::Bf16 => 2,
            DType::U8 => 1,
        }
    }

    pub const fn code(self) -> u8 {
        match self {
            DType::F32 => 1,
            DType::F64 => 2,
            DType::F16 => 3,
            DType::Bf16 => 4,
            DType::I32 => 5,
            DType::I64 => 6,
            DType::U8 => 7,
        }
    }

    pub fn from_code(code: u8) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.code() == code)
    }

    /// The name nccl-tests and the CLI use (`float`, `half`, ... are accepted by `parse`).
    pub const fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
        }
    }

    /// Parses `f32`, `f64`, `f16`, `bf16`, `i32`, `i64`, `u8` (and `float`, `double`,
    /// `half`, `int32`, `int64`, `uint8`).
    pub fn parse(s: &str) -> Option<DType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "f32" | "float" | "float32" => DType::F32,
            "f64" | "double" | "float64" => DType::F64,
            "f16" | "half" | "float16" => DType::F16,
            "bf16" | "bfloat16" => DType::Bf16,
            "i32" | "int" | "int32" => DType::I32,
            "i64" | "int64" => DType::I64,
            "u8" | "uint8" => DType::U8,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A type a collective's buffer may hold. Integer arithmetic wraps (as MPI's does in
/// practice); `f16` and `bf16` are reduced in f32 and rounded back once per step.
pub trait Element:
    Copy
    + Send
    + Sync
    + PartialEq
    + fmt::Debug
    + zerocopy::IntoBytes
    + zerocopy::FromBytes
    + zerocopy::Immutable
    + 'static
{
    const DTYPE: DType;
    /// Reads one element from exactly `DTYPE.size()` little-endian bytes.
    fn read(b: &[u8]) -> Self;
    /// Writes this element into exactly `DTYPE.size()` bytes, little-endian.
    fn write(self, b: &mut [u8]);
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
    fn max(self, o: Self) -> Self;
    /// This value divided by `n` (the `avg` of a sum over `n` ranks; integers truncate).
    fn div_count(self, n: usize) -> Self;
    /// `v` as this type (test patterns, references, the bench's fill).
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

macro_rules! int_element {
    ($t:ty, $d:expr, $n:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            #[inline(always)]
            fn read(b: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                <$t>::from_le_bytes(a)
            }
            #[inline(always)]
            fn write(self, b: &mut [u8]) {
                b[..$n].copy_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn min(self, o: Self) -> Self {
                Ord::min(self, o)
            }
            #[inline(always)]
            fn max(self, o: Self) -> Self {
                Ord::max(self, o)
            }
            fn div_count(self, n: usize) -> Self {
                self / (n.max(1) as $t)
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

macro_rules! float_element {
    ($t:ty, $d:expr, $n:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            #[inline(always)]
            fn read(b: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                <$t>::from_le_bytes(a)
            }
            #[inline(always)]
            fn write(self, b: &mut [u8]) {
                b[..$n].copy_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline(always)]
            fn min(self, o: Self) -> Self {
                <$t>::min(self, o)
            }
            #[inline(always)]
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            fn div_count(self, n: usize) -> Self {
                self / (n.max(1) as $t)
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

macro_rules! half_element {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            #[inline(always)]
            fn read(b: &[u8]) -> Self {
                <$t>::from_le_bytes([b[0], b[1]])
            }
            #[inline(always)]
            fn write(self, b: &mut [u8]) {
                b[..2].copy_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                <$t>::from_f32(self.to_f32() + o.to_f32())
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                <$t>::from_f32(self.to_f32() * o.to_f32())
            }
            #[inline(always)]
            fn min(self, o: Self) -> Self {
                <$t>::from_f32(self.to_f32().min(o.to_f32()))
            }
            #[inline(always)]
            fn max(self, o: Self) -> Self {
                <$t>::from_f32(self.to_f32().max(o.to_f32()))
            }
            fn div_count(self, n: usize) -> Self {
                <$t>::from_f32(self.to_f32() / n.max(1) as f32)
            }
            fn from_f64(v: f64) -> Self {
                <$t>::from_f64(v)
            }
            fn to_f64(self) -> f64 {
                <$t>::to_f64(self)
            }
        }
    };
}

float_element!(f32, DType::F32, 4);
float_element!(f64, DType::F64, 8);
half_element!(f16, DType::F16);
half_element!(bf16, DType::Bf16);
int_element!(i32, DType::I32, 4);
int_element!(i64, DType::I64, 8);
int_element!(u8, DType::U8, 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_names_parse() {
        for d in DType::ALL {
            assert_eq!(DType::from_code(d.code()), Some(d));
            assert_eq!(DType::parse(d.as_str()), Some(d));
        }
        assert_eq!(DType::from_code(0), None);
        assert_eq!(DType::parse("float"), Some(DType::F32));
        assert_eq!(DType::parse("f8"), None);
    }

    #[test]
    fn elements_round_trip_their_bytes() {
        fn check<T: Element>(v: T) {
            let mut b = vec![0u8; T::DTYPE.size()];
            v.write(&mut b);
            assert_eq!(T::read(&b), v);
        }
        check(1.5f32);
        check(-2.25f64);
        check(f16::from_f32(3.5));
        check(bf16::from_f32(-7.0));
        check(-5i32);
        check(i64::MIN);
        check(200u8);
        assert_eq!(250u8.add(10), 4, "integers wrap");
    }
}
