//! The frame checksum (CRC32C, Castagnoli), with a fast path for small frames.
//!
//! The `crc32c` crate interleaves three streams, which pays off for bulk data but costs setup
//! on every call: a 64-byte header plus a 64-byte payload (three calls) took ~68 ns here, and
//! a frame is checksummed twice per hop (sender and receiver), on the latency path. Up to
//! [`SMALL`] bytes of payload, one SSE4.2 loop of `crc32` instructions does the whole frame in
//! ~8 ns; larger payloads, or CPUs without SSE4.2, use the crate. Both give the same value
//! (tested against each other below).

use super::HEADER_LEN;

/// Largest payload the inline loop takes (beyond it the crate's interleaving wins).
const SMALL: usize = 512;

/// CRC32C over the header without its checksum field (bytes 56..60), then the payload.
pub fn frame(raw_header: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if payload.len() <= SMALL && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: `frame_sse42` needs SSE4.2 and nothing else; the CPU was just checked for it.
        #[allow(unsafe_code)]
        return unsafe { frame_sse42(raw_header, payload) };
    }
    let crc = crc32c::crc32c(&raw_header[..56]);
    let crc = crc32c::crc32c_append(crc, &raw_header[60..]);
    append(crc, payload)
}

/// Payloads from this size on are folded with carry-less multiplies where the CPU has
/// VPCLMULQDQ on 512-bit registers (below it the crate's three `crc32` streams win).
const FOLD_MIN: usize = 4096;

/// `crc32c::crc32c_append`, with large inputs folded 256 bytes at a time on CPUs with
/// AVX-512 VPCLMULQDQ: the crate's `crc32` instructions move at most 8 bytes a cycle, the
/// folding about four times that, and a frame's payload is checksummed on both ends.
pub fn append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= FOLD_MIN && fold::available() {
        return fold::append(crc, data);
    }
    crc32c::crc32c_append(crc, data)
}

/// CRC32C by folding (Intel, "Fast CRC Computation for Generic Polynomials Using
/// PCLMULQDQ", 2009), for the reflected polynomial, on 512-bit registers.
///
/// A 128-bit lane `r` loaded little-endian holds 128 message bits, its bit j the coefficient
/// of x^(127-j): the first 8 bytes are the upper half H1 (times x^64), the next 8 the lower
/// H0. Moving a lane D bits further on multiplies it by x^D mod P: H1·(x^(D+64) mod P) +
/// H0·(x^D mod P). A carry-less multiply of two such reflected halves yields their product
/// times x, so the constants are x^(D+63) and x^(D-1) mod P. The state then left, 128 bits
/// congruent to everything before them, goes through the `crc32` instruction with the tail.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod fold {
    use std::arch::x86_64::*;

    /// The Castagnoli polynomial with its x^32 term.
    const P: u64 = 0x1_1EDC_6F41;

    /// x^n mod P (bit i: the coefficient of x^i).
    const fn xpow(n: u32) -> u32 {
        let mut v: u64 = 1;
        let mut i = 0;
        while i < n {
            v <<= 1;
            if v & (1 << 32) != 0 {
                v ^= P;
            }
            i += 1;
        }
        v as u32
    }

    /// x^n mod P as a reflected 64-bit half (coefficient of x^i at bit 63 - i).
    const fn half(n: u32) -> i64 {
        ((xpow(n).reverse_bits() as u64) << 32) as i64
    }

    /// The constants that move a lane `bits` further on: (for its first half, its second).
    const fn by(bits: u32) -> (i64, i64) {
        (half(bits + 63), half(bits - 1))
    }

    /// Four 512-bit accumulators: each lane moves 256 bytes at a time.
    const BY_256B: (i64, i64) = by(2048);
    const BY_64B: (i64, i64) = by(512);
    const BY_16B: (i64, i64) = by(128);

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("vpclmulqdq")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("sse4.2")
    }

    /// `crc32c_append` for `data` of at least 256 bytes; callers check [`available`].
    pub fn append(crc: u32, data: &[u8]) -> u32 {
        debug_assert!(data.len() >= 256 && available());
        // SAFETY: `fold` needs AVX-512F, VPCLMULQDQ, PCLMULQDQ and SSE4.2, which `available`
        // found on this CPU (every caller checks it first; asserted above in debug builds),
        // and reads only within `data`.
        unsafe { fold(!crc, data) }
    }

    #[target_feature(enable = "avx512f,vpclmulqdq,pclmulqdq,sse4.2")]
    unsafe fn fold(state: u32, data: &[u8]) -> u32 {
        let (blocks, tail) = data.split_at(data.len() / 256 * 256);
        let mut chunks = blocks.chunks_exact(64);
        let mut load = || {
            let c = chunks.next().unwrap_or(&[0; 64]);
            // SAFETY: `c` is 64 readable bytes; the load is unaligned.
            unsafe { _mm512_loadu_si512(c.as_ptr().cast()) }
        };
        // The running CRC goes into the message's first 32 bits.
        let seed = _mm512_zextsi128_si512(_mm_cvtsi32_si128(state as i32));
        let mut x = [_mm512_xor_si512(load(), seed), load(), load(), load()];
        let k = wide(BY_256B);
        for _ in 1..blocks.len() / 256 {
            for acc in x.iter_mut() {
                *acc = _mm512_xor_si512(step512(*acc, k), load());
            }
        }
        let k = wide(BY_64B);
        let [x0, x1, x2, x3] = x;
        let x = _mm512_xor_si512(step512(x0, k), x1);
        let x = _mm512_xor_si512(step512(x, k), x2);
        let x = _mm512_xor_si512(step512(x, k), x3);
        let k = _mm_set_epi64x(BY_16B.1, BY_16B.0);
        let mut r = _mm512_extracti32x4_epi32::<0>(x);
        r = _mm_xor_si128(step128(r, k), _mm512_extracti32x4_epi32::<1>(x));
        r = _mm_xor_si128(step128(r, k), _mm512_extracti32x4_epi32::<2>(x));
        r = _mm_xor_si128(step128(r, k), _mm512_extracti32x4_epi32::<3>(x));
        let mut c = _mm_crc32_u64(0, _mm_cvtsi128_si64(r) as u64);
        c = _mm_crc32_u64(c, _mm_extract_epi64::<1>(r) as u64);
        let mut words = tail.chunks_exact(8);
        for w in &mut words {
            c = _mm_crc32_u64(c, u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        let mut c = c as u32;
        for &b in words.remainder() {
            c = _mm_crc32_u8(c, b);
        }
        !c
    }

    #[target_feature(enable = "avx512f,vpclmulqdq")]
    fn wide((first, second): (i64, i64)) -> __m512i {
        _mm512_broadcast_i32x4(_mm_set_epi64x(second, first))
    }

    /// Each 128-bit lane of `x` moved on by the distance of `k`.
    #[target_feature(enable = "avx512f,vpclmulqdq")]
    fn step512(x: __m512i, k: __m512i) -> __m512i {
        _mm512_xor_si512(
            _mm512_clmulepi64_epi128::<0x00>(x, k),
            _mm512_clmulepi64_epi128::<0x11>(x, k),
        )
    }

    #[target_feature(enable = "pclmulqdq")]
    fn step128(x: __m128i, k: __m128i) -> __m128i {
        _mm_xor_si128(
            _mm_clmulepi64_si128::<0x00>(x, k),
            _mm_clmulepi64_si128::<0x11>(x, k),
        )
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[allow(unsafe_code)]
unsafe fn frame_sse42(raw_header: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    let mut c = u64::from(u32::MAX);
    for chunk in raw_header[..56].chunks_exact(8) {
        c = _mm_crc32_u64(c, word(chunk));
    }
    let tail = [
        raw_header[60],
        raw_header[61],
        raw_header[62],
        raw_header[63],
    ];
    c = u64::from(_mm_crc32_u32(c as u32, u32::from_le_bytes(tail)));
    let mut words = payload.chunks_exact(8);
    for chunk in &mut words {
        c = _mm_crc32_u64(c, word(chunk));
    }
    let mut c = c as u32;
    for &b in words.remainder() {
        c = _mm_crc32_u8(c, b);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(raw: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
        let crc = crc32c::crc32c(&raw[..56]);
        let crc = crc32c::crc32c_append(crc, &raw[60..]);
        crc32c::crc32c_append(crc, payload)
    }

    #[test]
    fn known_value_and_every_small_length() {
        let raw = [0u8; HEADER_LEN];
        // CRC32C of 60 zero bytes, as the crate computes it.
        assert_eq!(frame(&raw, &[]), crc32c::crc32c(&[0u8; 60]));
        let mut raw = [0u8; HEADER_LEN];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0x5a;
        }
        let payload: Vec<u8> = (0..SMALL + 64).map(|i| (i * 131 + 7) as u8).collect();
        for len in 0..payload.len() {
            assert_eq!(
                frame(&raw, &payload[..len]),
                reference(&raw, &payload[..len]),
                "{len}"
            );
        }
    }

    #[test]
    fn folding_matches_the_crate_at_every_length_around_its_blocks() {
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in (FOLD_MIN - 300..FOLD_MIN + 600).chain([8192, 65_536, 65_537, 69_999]) {
            for crc in [0, 0xdead_beef] {
                let want = crc32c::crc32c_append(crc, &data[..len]);
                assert_eq!(append(crc, &data[..len]), want, "len {len}");
            }
        }
        #[cfg(target_arch = "x86_64")]
        if fold::available() {
            for len in [256, 257, 511, 512, 1000, 4095] {
                let want = crc32c::crc32c_append(7, &data[..len]);
                assert_eq!(fold::append(7, &data[..len]), want, "fold at {len}");
            }
        }
    }

    proptest! {
        #[test]
        fn matches_the_crate(head in proptest::collection::vec(any::<u8>(), HEADER_LEN),
                             payload in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let raw: [u8; HEADER_LEN] = head.try_into().unwrap();
            prop_assert_eq!(frame(&raw, &payload), reference(&raw, &payload));
        }
    }
}
