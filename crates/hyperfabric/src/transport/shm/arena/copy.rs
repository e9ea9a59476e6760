//! Copy and CRC32C in one pass: every 8 bytes are loaded once, fed to the CRC and stored,
//! so the checksum covers exactly the bytes that were stored (a peer scribbling on the
//! source meanwhile cannot make the copy differ from what was checked), and the copy costs
//! no second pass over the data.
//!
//! The CRC runs as three independent `crc32` streams over three blocks of a stretch (the
//! instruction's latency is three cycles, its throughput one per cycle), joined by shifting
//! a stream's register over the next block's length: a linear map, tabulated once per block
//! length from the hardware CRC of zero bytes. Without SSE 4.2: a plain copy, then
//! [`crc32c::crc32c_append`] over the copy.

use std::sync::OnceLock;

/// Bytes per stream of a long stretch (three of them: 6 KiB), and of a short one (384 B).
const LONG: usize = 2048;
const SHORT: usize = 128;

/// The register after `len` zero bytes, as four byte-wise lookup tables.
struct Shift([[u32; 256]; 4]);

impl Shift {
    fn new(len: usize) -> Shift {
        let zeros = vec![0u8; len];
        // The raw register after the zeros (crc32c_append inverts on the way in and out).
        let raw = |r: u32| !crc32c::crc32c_append(!r, &zeros);
        let mut t = [[0u32; 256]; 4];
        for (k, row) in t.iter_mut().enumerate() {
            for (b, v) in row.iter_mut().enumerate() {
                *v = raw((b as u32) << (8 * k));
            }
        }
        Shift(t)
    }

    fn apply(&self, r: u32) -> u32 {
        let t = &self.0;
        t[0][(r & 0xff) as usize]
            ^ t[1][((r >> 8) & 0xff) as usize]
            ^ t[2][((r >> 16) & 0xff) as usize]
            ^ t[3][(r >> 24) as usize]
    }
}

fn shifts() -> &'static (Shift, Shift) {
    static S: OnceLock<(Shift, Shift)> = OnceLock::new();
    S.get_or_init(|| (Shift::new(LONG), Shift::new(SHORT)))
}

fn have_sse42() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAVE: OnceLock<bool> = OnceLock::new();
        *HAVE.get_or_init(|| std::is_x86_feature_detected!("sse4.2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Copies `len` bytes from `src` to `dst`; returns `crc32c_append(crc, the bytes copied)`.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes for the duration of
/// the call, not overlapping. Another process may write `src` meanwhile (shared memory):
/// the copy is then some mix of old and new bytes, and the CRC is that of the copy.
pub(super) unsafe fn copy_crc(crc: u32, src: *const u8, dst: *mut u8, len: usize) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if have_sse42() {
        // SAFETY: SSE 4.2 detected above; the caller's contract covers `src` and `dst`.
        return unsafe { x86::copy_crc(crc, src, dst, len) };
    }
    // SAFETY: the caller's contract: both valid for `len` bytes, no overlap. The CRC then
    // reads `dst` back: the caller's own memory or its own region, which peers only read.
    unsafe {
        std::ptr::copy_nonoverlapping(src, dst, len);
        crc32c::crc32c_append(crc, std::slice::from_raw_parts(dst, len))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{shifts, LONG, SHORT};
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};

    /// # Safety
    /// SSE 4.2 present; `src` readable and `dst` writable for `len` bytes, no overlap.
    #[target_feature(enable = "sse4.2")]
    pub(super) unsafe fn copy_crc(crc: u32, src: *const u8, dst: *mut u8, len: usize) -> u32 {
        let (long, short) = shifts();
        let mut r = u64::from(!crc);
        let mut at = 0;
        for (block, shift) in [(LONG, long), (SHORT, short)] {
            while len - at >= 3 * block {
                let (mut r1, mut r2) = (0u64, 0u64);
                for i in (0..block).step_by(8) {
                    let (a, b, c) = (at + i, at + block + i, at + 2 * block + i);
                    // SAFETY: a, b, c + 8 <= at + 3 * block <= len: inside the caller's
                    // `src` and `dst` ranges; unaligned accesses.
                    let (x, y, z) = unsafe {
                        (
                            src.add(a).cast::<u64>().read_unaligned(),
                            src.add(b).cast::<u64>().read_unaligned(),
                            src.add(c).cast::<u64>().read_unaligned(),
                        )
                    };
                    r = _mm_crc32_u64(r, x);
                    r1 = _mm_crc32_u64(r1, y);
                    r2 = _mm_crc32_u64(r2, z);
                    // SAFETY: as above, the same offsets in `dst`.
                    unsafe {
                        dst.add(a).cast::<u64>().write_unaligned(x);
                        dst.add(b).cast::<u64>().write_unaligned(y);
                        dst.add(c).cast::<u64>().write_unaligned(z);
                    }
                }
                r = u64::from(shift.apply(r as u32)) ^ r1;
                r = u64::from(shift.apply(r as u32)) ^ r2;
                at += 3 * block;
            }
        }
        while len - at >= 8 {
            // SAFETY: at + 8 <= len: inside the caller's `src` and `dst` ranges.
            let x = unsafe { src.add(at).cast::<u64>().read_unaligned() };
            r = _mm_crc32_u64(r, x);
            // SAFETY: as above.
            unsafe { dst.add(at).cast::<u64>().write_unaligned(x) };
            at += 8;
        }
        let mut r = r as u32;
        while at < len {
            // SAFETY: at < len: inside the caller's `src` and `dst` ranges.
            let x = unsafe { src.add(at).read() };
            r = _mm_crc32_u8(r, x);
            // SAFETY: as above.
            unsafe { dst.add(at).write(x) };
            at += 1;
        }
        !r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fused_copy_gives_the_bytes_and_the_crc32c_of_a_plain_copy_at_every_seam() {
        let src: Vec<u8> = (0..3 * 3 * LONG + 1000)
            .map(|i| (i * 131 + 7) as u8)
            .collect();
        let lens = [
            0,
            1,
            7,
            8,
            9,
            3 * SHORT - 1,
            3 * SHORT,
            3 * SHORT + 9,
            3 * LONG,
        ];
        let more = [3 * LONG + 3 * SHORT + 5, 2 * 3 * LONG + 17, src.len() - 3];
        for len in lens.into_iter().chain(more) {
            for start in [0, 1, 3] {
                let s = &src[start..start + len];
                let mut dst = vec![0u8; len];
                // SAFETY: `s` is readable and `dst` writable for len bytes, apart.
                let crc = unsafe { copy_crc(0x1234_5678, s.as_ptr(), dst.as_mut_ptr(), len) };
                assert_eq!(dst, s, "len {len} at {start}");
                assert_eq!(crc, crc32c::crc32c_append(0x1234_5678, s), "len {len}");
            }
        }
    }
}
