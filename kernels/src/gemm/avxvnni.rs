//! AVX-VNNI GEMM kernels (ymm, VEX encoded: CPUs with AVX-VNNI but no AVX-512, such as the Intel
//! N100 / Alder Lake-N class): 8 rows x 4 weights per `vpdpbusd`, 2 tokens per pass (16 ymm
//! registers). Also the AVX2 tile expansion. See `gemm/mod.rs` for the layout and the exact sums.

use super::{EXP_BLOCK_BYTES, EXP_W};
use crate::lut::q2::PackedQ2;
use crate::act::Act;
use crate::lut::q1::{TILE, TILE_BLOCK_BYTES};
use std::arch::x86_64::*;

/// Tokens per pass: 8 i32 accumulators (4 per token) and 4 weight vectors in registers.
const GROUP: usize = 2;

/// Expands `nb` blocks of a packed Q1_0 tile into `out` (AVX2: a `vpshufb` spreads each row's
/// sign byte over its 4 bytes, AND + compare pick the bits, AND makes 0 or 2).
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn expand(tile: &[u8], nb: usize, out: &mut [u8]) {
    assert!(tile.len() >= nb * TILE_BLOCK_BYTES && out.len() >= nb * EXP_BLOCK_BYTES);
    // byte 4r'+c of lane L takes row 4L+r' of the 8 broadcast row bytes
    let idx = _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
    let pat = [_mm256_set1_epi32(0x0804_0201), _mm256_set1_epi32(0x8040_2010u32 as i32)];
    let two = _mm256_set1_epi8(2);
    for b in 0..nb {
        let src = tile.as_ptr().add(b * TILE_BLOCK_BYTES);
        let dst = out.as_mut_ptr().add(b * EXP_BLOCK_BYTES);
        for v in 0..4 {
            let d = _mm256_cvtph_ps(_mm_loadu_si128(src.add(16 * v) as *const __m128i));
            for k in 0..4 {
                _mm256_storeu_ps(dst.add(128 * k + 32 * v) as *mut f32, d);
            }
        }
        for i in 0..16 {
            let (k, g0) = (i / 4, 2 * (i % 4));
            for v in 0..4 {
                // rows 8v..8v+7
                let x = _mm256_set1_epi64x((src.add(64 + 32 * i + 8 * v) as *const i64).read_unaligned());
                let s = _mm256_shuffle_epi8(x, idx);
                for nib in 0..2 {
                    let bits = _mm256_and_si256(s, pat[nib]);
                    let e = _mm256_and_si256(_mm256_cmpeq_epi8(bits, pat[nib]), two);
                    let o = dst.add(EXP_W + 128 * (8 * k + g0 + nib) + 32 * v);
                    _mm256_storeu_si256(o as *mut __m256i, e);
                }
            }
        }
    }
}

/// Expands tile `tile` of a packed Q2_0 tensor (either block size, `ne0 % 128 == 0`) into `out`:
/// each row's code byte spread over its 4 bytes, then byte `c` keeps code `c` (`>> 2c & 3`).
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn expand_q2(p: &PackedQ2, tile: usize, out: &mut [u8]) {
    let n128 = p.nb * p.block / 128;
    assert!(p.nb * p.block % 128 == 0 && out.len() >= n128 * EXP_BLOCK_BYTES);
    let idx = _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
    let pos = |c: i32| _mm256_set1_epi32(3 << (8 * c));
    let (p0, p1, p2, p3) = (pos(0), pos(1), pos(2), pos(3));
    for s in 0..n128 {
        let dst = out.as_mut_ptr().add(s * EXP_BLOCK_BYTES);
        for k in 0..4 {
            let (src, i0) = super::q2_source(p, tile, s, k);
            let src = src.as_ptr();
            for v in 0..4 {
                let d = _mm256_cvtph_ps(_mm_loadu_si128(src.add(16 * v) as *const __m128i));
                _mm256_storeu_ps(dst.add(128 * k + 32 * v) as *mut f32, d);
            }
            for g in 0..8 {
                for v in 0..4 {
                    let x = _mm256_set1_epi64x((src.add(64 + 32 * (i0 + g) + 8 * v) as *const i64).read_unaligned());
                    let y = _mm256_shuffle_epi8(x, idx);
                    // byte c of each 4 keeps bits 2c..2c+1 (16-bit shifts: the masks drop what
                    // crosses from the neighbouring byte)
                    let e = _mm256_or_si256(
                        _mm256_or_si256(_mm256_and_si256(y, p0), _mm256_and_si256(_mm256_srli_epi16::<2>(y), p1)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(y), p2), _mm256_and_si256(_mm256_srli_epi16::<6>(y), p3)),
                    );
                    _mm256_storeu_si256(dst.add(EXP_W + 128 * (8 * k + g) + 32 * v) as *mut __m256i, e);
                }
            }
        }
    }
}

/// `out[t][r]` = row r of the expanded tile · `acts[t]` for every token, in passes of [`GROUP`].
#[target_feature(enable = "avx2,avxvnni")]
pub unsafe fn tokens(exp: &[u8], nb: usize, acts: &[Act], out: &mut [[f32; TILE]]) {
    assert!(exp.len() >= nb * EXP_BLOCK_BYTES && out.len() >= acts.len());
    for a in acts.iter() {
        assert!(a.q.len() >= 128 * nb && a.d.len() >= 4 * nb && a.qsum.len() >= 4 * nb);
    }
    let mut t0 = 0;
    while t0 < acts.len() {
        let n = GROUP.min(acts.len() - t0);
        let (a, o) = (&acts[t0..t0 + n], &mut out[t0..t0 + n]);
        if n == 2 {
            pass::<2>(exp.as_ptr(), nb, a, o);
        } else {
            pass::<1>(exp.as_ptr(), nb, a, o);
        }
        t0 += n;
    }
}

/// One pass of `N` tokens over the expanded tile (the caller checked every bound).
#[target_feature(enable = "avx2,avxvnni")]
#[inline]
unsafe fn pass<const N: usize>(exp: *const u8, nb: usize, acts: &[Act], out: &mut [[f32; TILE]]) {
    let mut q = [std::ptr::null::<i8>(); N];
    for t in 0..N {
        q[t] = acts[t].q.as_ptr();
    }
    let mut accf = [[[_mm256_setzero_ps(); 4]; 4]; N];
    for b in 0..nb {
        let blk = exp.add(b * EXP_BLOCK_BYTES);
        for k in 0..4 {
            let mut dw = [_mm256_setzero_ps(); 4];
            for v in 0..4 {
                dw[v] = _mm256_load_ps(blk.add(128 * k + 32 * v) as *const f32);
            }
            let j = 4 * b + k;
            let w = blk.add(EXP_W + 1024 * k);
            let mut acc = [[_mm256_setzero_si256(); 4]; N];
            for g in 0..8 {
                let mut wv = [_mm256_setzero_si256(); 4];
                for v in 0..4 {
                    wv[v] = _mm256_load_si256(w.add(128 * g + 32 * v) as *const __m256i);
                }
                for t in 0..N {
                    let x = _mm256_set1_epi32((q[t].add(32 * j + 4 * g) as *const i32).read_unaligned());
                    for v in 0..4 {
                        acc[t][v] = _mm256_dpbusd_avx_epi32(acc[t][v], wv[v], x);
                    }
                }
            }
            for t in 0..N {
                let qs = _mm256_set1_epi32(*acts[t].qsum.get_unchecked(j));
                let dx = _mm256_set1_ps(*acts[t].d.get_unchecked(j));
                for v in 0..4 {
                    let isum = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[t][v], qs));
                    accf[t][k][v] = _mm256_add_ps(accf[t][k][v], _mm256_mul_ps(_mm256_mul_ps(dw[v], dx), isum));
                }
            }
        }
    }
    for t in 0..N {
        for v in 0..4 {
            let a = &accf[t];
            let s = _mm256_add_ps(_mm256_add_ps(a[0][v], a[1][v]), _mm256_add_ps(a[2][v], a[3][v]));
            _mm256_storeu_ps(out[t].as_mut_ptr().add(8 * v), s);
        }
    }
}
