//! AVX-512 VNNI GEMM kernels (zmm): 16 rows x 4 weights per `vpdpbusd`, up to 8 tokens per pass
//! over an expanded tile. See the family docs in `gemm/mod.rs` for the layout and the exact sums.

use super::{EXP_BLOCK_BYTES, EXP_W};
use crate::act::Act;
use crate::lut::q1::{TILE, TILE_BLOCK_BYTES};
use std::arch::x86_64::*;

/// Tokens per pass: 2 i32 and 2 float accumulators per token, 2 weight vectors and the two
/// rows' scales fit the 32 zmm registers.
const GROUP: usize = 6;

/// Expands `nb` blocks of a packed Q1_0 tile into `out` (AVX-512BW: one `vpshufb` spreads each
/// row's sign byte over its 4 lanes, `vptestmb` picks the bits, a zero-masked move makes 0 or 2).
#[target_feature(enable = "avx512f,avx512bw,f16c")]
pub unsafe fn expand(tile: &[u8], nb: usize, out: &mut [u8]) {
    assert!(tile.len() >= nb * TILE_BLOCK_BYTES && out.len() >= nb * EXP_BLOCK_BYTES);
    // lane L of byte 4r'+c takes row 4L+r' of the 16 broadcast row bytes
    let mut idx = [0u8; 64];
    let mut pat = [[0u8; 64]; 2];
    for p in 0..64 {
        idx[p] = (4 * (p / 16) + (p % 16) / 4) as u8;
        pat[0][p] = 1 << (p % 4);
        pat[1][p] = 16 << (p % 4);
    }
    let idx = _mm512_loadu_si512(idx.as_ptr() as *const _);
    let pat = [_mm512_loadu_si512(pat[0].as_ptr() as *const _), _mm512_loadu_si512(pat[1].as_ptr() as *const _)];
    let two = _mm512_set1_epi8(2);
    for b in 0..nb {
        let src = tile.as_ptr().add(b * TILE_BLOCK_BYTES);
        let dst = out.as_mut_ptr().add(b * EXP_BLOCK_BYTES);
        for h in 0..2 {
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(src.add(32 * h) as *const __m256i));
            for k in 0..4 {
                _mm512_storeu_ps(dst.add(128 * k + 64 * h) as *mut f32, d);
            }
        }
        for i in 0..16 {
            // weights 8i..8i+7 of the block: activation block k = i/4, groups g = 2(i%4) + nibble
            let (k, g0) = (i / 4, 2 * (i % 4));
            for h in 0..2 {
                let x = _mm512_broadcast_i32x4(_mm_loadu_si128(src.add(64 + 32 * i + 16 * h) as *const __m128i));
                let s = _mm512_shuffle_epi8(x, idx);
                for nib in 0..2 {
                    let m = _mm512_test_epi8_mask(s, pat[nib]);
                    let o = dst.add(EXP_W + 128 * (8 * k + g0 + nib) + 64 * h);
                    _mm512_storeu_si512(o as *mut _, _mm512_maskz_mov_epi8(m, two));
                }
            }
        }
    }
}

/// `out[t][r]` = row r of the expanded tile · `acts[t]` for every token, in passes of [`GROUP`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn tokens(exp: &[u8], nb: usize, acts: &[Act], out: &mut [[f32; TILE]]) {
    assert!(exp.len() >= nb * EXP_BLOCK_BYTES && out.len() >= acts.len());
    for a in acts.iter() {
        assert!(a.q.len() >= 128 * nb && a.d.len() >= 4 * nb && a.qsum.len() >= 4 * nb);
    }
    let mut t0 = 0;
    while t0 < acts.len() {
        let n = GROUP.min(acts.len() - t0);
        let (a, o) = (&acts[t0..t0 + n], &mut out[t0..t0 + n]);
        match n {
            6 => pass::<6>(exp.as_ptr(), nb, a, o),
            5 => pass::<5>(exp.as_ptr(), nb, a, o),
            4 => pass::<4>(exp.as_ptr(), nb, a, o),
            3 => pass::<3>(exp.as_ptr(), nb, a, o),
            2 => pass::<2>(exp.as_ptr(), nb, a, o),
            _ => pass::<1>(exp.as_ptr(), nb, a, o),
        }
        t0 += n;
    }
}

/// One pass of `N` tokens over the expanded tile (the caller checked every bound). The four float
/// accumulators of the reference (`acc[j % 4]`) are independent, so each is computed in its own
/// sweep over the blocks (`j = 4b + k`, `b` ascending: the reference order) with only `2N` float
/// and `2N` integer accumulators live, all in registers.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn pass<const N: usize>(exp: *const u8, nb: usize, acts: &[Act], out: &mut [[f32; TILE]]) {
    let mut q = [std::ptr::null::<i8>(); N];
    let mut qsum = [std::ptr::null::<i32>(); N];
    let mut d = [std::ptr::null::<f32>(); N];
    for t in 0..N {
        q[t] = acts[t].q.as_ptr();
        qsum[t] = acts[t].qsum.as_ptr();
        d[t] = acts[t].d.as_ptr();
    }
    let mut part = [[[_mm512_setzero_ps(); 2]; 4]; N];
    for k in 0..4 {
        let mut accf = [[_mm512_setzero_ps(); 2]; N];
        for b in 0..nb {
            let blk = exp.add(b * EXP_BLOCK_BYTES);
            let j = 4 * b + k;
            let w = blk.add(EXP_W + 1024 * k);
            let mut acc = [[_mm512_setzero_si512(); 2]; N];
            for g in 0..8 {
                let w0 = _mm512_load_si512(w.add(128 * g) as *const _);
                let w1 = _mm512_load_si512(w.add(128 * g + 64) as *const _);
                for t in 0..N {
                    let x = _mm512_set1_epi32((q[t].add(32 * j + 4 * g) as *const i32).read_unaligned());
                    acc[t][0] = _mm512_dpbusd_epi32(acc[t][0], w0, x);
                    acc[t][1] = _mm512_dpbusd_epi32(acc[t][1], w1, x);
                }
            }
            let dw = [_mm512_load_ps(blk.add(128 * k) as *const f32), _mm512_load_ps(blk.add(128 * k + 64) as *const f32)];
            for t in 0..N {
                // isum = sum(2b * q) - qsum; then the reference float step
                let qs = _mm512_set1_epi32(*qsum[t].add(j));
                let dx = _mm512_set1_ps(*d[t].add(j));
                for h in 0..2 {
                    let isum = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[t][h], qs));
                    accf[t][h] = _mm512_add_ps(accf[t][h], _mm512_mul_ps(_mm512_mul_ps(dw[h], dx), isum));
                }
            }
        }
        for t in 0..N {
            part[t][k] = accf[t];
        }
    }
    for t in 0..N {
        for h in 0..2 {
            let a = &part[t];
            let s = _mm512_add_ps(_mm512_add_ps(a[0][h], a[1][h]), _mm512_add_ps(a[2][h], a[3][h]));
            _mm512_storeu_ps(out[t].as_mut_ptr().add(16 * h), s);
        }
    }
}
