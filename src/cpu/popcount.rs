//! The XNOR/popcount micro-kernels: `P` patches (receptive fields, `k` u64 words each) against
//! one block of [`LANES`] output channels, register-blocked so each weight word loaded serves
//! `P` pixels and each patch word broadcast serves [`LANES`] channels. The result is the mismatch
//! count `Σ popcount(patch XOR weight)` per (pixel, channel); the dot product follows from it
//! (`crate::bits`). One kernel per [`Isa`](super::Isa) level, all computing the same integers:
//!
//! * portable: `u64::count_ones` on arrays (scalar `popcnt` when compiled with it, NEON `cnt` on
//!   aarch64);
//! * AVX2: XOR, then popcount per byte by two 16-entry nibble lookups (`vpshufb`), bytes summed
//!   for up to 31 words (31·8 < 256) before `vpsadbw` widens them to u64;
//! * AVX-512: XOR and `vpopcntq` on 8 words at a time.

/// Output channels per weight block: one 512-bit register of u64 per 8 channels, two of them.
pub const LANES: usize = 16;

/// Mismatch counts `out[p][i] = Σ_kk popcount(patches[p·k + kk] XOR w[kk·LANES + i])`.
#[inline(always)]
pub fn block_portable<const P: usize>(
    patches: &[u64],
    k: usize,
    w: &[u64],
    out: &mut [[u32; LANES]; P],
) {
    let patches = &patches[..P * k];
    let w = &w[..k * LANES];
    let mut acc = [[0u32; LANES]; P];
    for kk in 0..k {
        let row: &[u64; LANES] = w[kk * LANES..(kk + 1) * LANES]
            .try_into()
            .expect("LANES words");
        for (p, a) in acc.iter_mut().enumerate() {
            let x = patches[p * k + kk];
            for (a, wv) in a.iter_mut().zip(row) {
                *a += (x ^ wv).count_ones();
            }
        }
    }
    *out = acc;
}

#[cfg(target_arch = "x86_64")]
pub use x86::{block_avx2, block_avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::LANES;

    /// Byte-wise popcount of `v` (each byte 0..=8) by nibble lookup.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn popcount_bytes(v: __m256i, table: __m256i, low: __m256i) -> __m256i {
        let lo = _mm256_and_si256(v, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
        _mm256_add_epi8(
            _mm256_shuffle_epi8(table, lo),
            _mm256_shuffle_epi8(table, hi),
        )
    }

    /// AVX2 kernel: 4 registers of 4 u64 per channel block; byte sums flushed every 31 words.
    ///
    /// # Safety
    /// The CPU must have AVX2; `patches` holds `P·k` and `w` holds `k·LANES` words.
    #[inline]
    #[target_feature(enable = "avx2,popcnt")]
    pub unsafe fn block_avx2<const P: usize>(
        patches: &[u64],
        k: usize,
        w: &[u64],
        out: &mut [[u32; LANES]; P],
    ) {
        assert!(patches.len() >= P * k && w.len() >= k * LANES);
        let table = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
            3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0f);
        let zero = _mm256_setzero_si256();
        // Two halves of 8 channels each keep the live registers at 2·P byte sums.
        for half in 0..2 {
            let mut total = [[zero; 2]; P];
            let mut start = 0;
            while start < k {
                let end = (start + 31).min(k);
                let mut bytes = [[zero; 2]; P];
                for kk in start..end {
                    // SAFETY: kk < k and the lengths were checked above.
                    let (w0, w1) = unsafe {
                        let base = w.as_ptr().add(kk * LANES + half * 8);
                        (
                            _mm256_loadu_si256(base.cast()),
                            _mm256_loadu_si256(base.add(4).cast()),
                        )
                    };
                    for (p, b) in bytes.iter_mut().enumerate() {
                        // SAFETY: p·k + kk < P·k.
                        let x = _mm256_set1_epi64x(
                            unsafe { *patches.get_unchecked(p * k + kk) } as i64
                        );
                        b[0] = _mm256_add_epi8(
                            b[0],
                            popcount_bytes(_mm256_xor_si256(x, w0), table, low),
                        );
                        b[1] = _mm256_add_epi8(
                            b[1],
                            popcount_bytes(_mm256_xor_si256(x, w1), table, low),
                        );
                    }
                }
                for (t, b) in total.iter_mut().zip(&bytes) {
                    for (t, b) in t.iter_mut().zip(b) {
                        *t = _mm256_add_epi64(*t, _mm256_sad_epu8(*b, zero));
                    }
                }
                start = end;
            }
            for (o, t) in out.iter_mut().zip(&total) {
                for (j, t) in t.iter().enumerate() {
                    let mut lanes = [0u64; 4];
                    // SAFETY: `lanes` holds 32 bytes.
                    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), *t) };
                    for (i, v) in lanes.iter().enumerate() {
                        o[half * 8 + j * 4 + i] = *v as u32;
                    }
                }
            }
        }
    }

    /// AVX-512 kernel: 2 registers of 8 u64 per channel block, `vpopcntq` per word.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and VPOPCNTDQ; `patches` holds `P·k` and `w` holds `k·LANES`
    /// words.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub unsafe fn block_avx512<const P: usize>(
        patches: &[u64],
        k: usize,
        w: &[u64],
        out: &mut [[u32; LANES]; P],
    ) {
        assert!(patches.len() >= P * k && w.len() >= k * LANES);
        let mut acc = [[_mm512_setzero_si512(); 2]; P];
        for kk in 0..k {
            // SAFETY: kk < k and the lengths were checked above.
            let (w0, w1) = unsafe {
                let base = w.as_ptr().add(kk * LANES);
                (
                    _mm512_loadu_si512(base.cast()),
                    _mm512_loadu_si512(base.add(8).cast()),
                )
            };
            for (p, a) in acc.iter_mut().enumerate() {
                // SAFETY: p·k + kk < P·k.
                let x = _mm512_set1_epi64(unsafe { *patches.get_unchecked(p * k + kk) } as i64);
                a[0] = _mm512_add_epi64(a[0], _mm512_popcnt_epi64(_mm512_xor_si512(x, w0)));
                a[1] = _mm512_add_epi64(a[1], _mm512_popcnt_epi64(_mm512_xor_si512(x, w1)));
            }
        }
        for (o, a) in out.iter_mut().zip(&acc) {
            for (j, v) in a.iter().enumerate() {
                // SAFETY: 8 u32 = 32 bytes at o[j·8..].
                unsafe {
                    _mm256_storeu_si256(o.as_mut_ptr().add(j * 8).cast(), _mm512_cvtepi64_epi32(*v))
                };
            }
        }
    }
}
