//! AVX2 attention kernels (x86_64; F16C converts f16 rows when the compiler has it). Several
//! positions (dot) or output registers (weighted sum) are in flight at once so the adds do not wait
//! on one another; each lane still sees the scalar order of `attention`'s module doc.

use crate::attention::{kv_row_bytes, reduce8, KvView, ValueColumns, PREFETCH};
use crate::prefetch::prefetch_row;
use std::arch::x86_64::*;

#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
#[inline]
unsafe fn load8(row: *const u8, kv_type: u32, i: usize) -> __m256 {
    match kv_type {
        0 => _mm256_loadu_ps((row as *const f32).add(i)),
        1 => crate::dot::avx2::cvt_ph8(_mm_loadu_si128((row as *const u16).add(i) as *const __m128i)),
        _ => {
            // i is a multiple of 8: eight i8 of one 32-block, times its scale (exact products)
            let b = row.add(34 * (i / 32));
            let d = crate::f16::f16_to_f32((b as *const u16).read_unaligned());
            let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(b.add(2 + i % 32) as *const __m128i));
            _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(q))
        }
    }
}

/// `[l0+l4, l1+l5, l2+l6, l3+l7]`: the first step of `reduce8`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn fold_halves(v: __m256) -> __m128 {
    _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v))
}

/// Scores of `R` query heads sharing one KV head: `out[j * n_kv + p] = (q_j · k_p) * scale`,
/// with `q_j = q[j * hd..]`, four positions at a time so each key is loaded once for the `R`
/// heads. Requires `hd` a multiple of 8.
#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn scores<const R: usize>(q: &[f32], hd: usize, k: KvView, offset: usize, scale: f32, out: &mut [f32]) {
    debug_assert!(hd % 8 == 0 && q.len() >= R * hd && out.len() % R == 0);
    let n_kv = out.len() / R;
    let qp = q.as_ptr();
    let sv = _mm_set1_ps(scale);
    let mut p = 0;
    while p + 4 <= n_kv {
        let r = [k.row(p, offset, hd).as_ptr(), k.row(p + 1, offset, hd).as_ptr(), k.row(p + 2, offset, hd).as_ptr(), k.row(p + 3, offset, hd).as_ptr()];
        if p + PREFETCH + 4 <= n_kv {
            for x in 0..4 {
                prefetch_row(k.row(p + PREFETCH + x, offset, hd));
            }
        }
        let mut acc = [[_mm256_setzero_ps(); 4]; R];
        let mut i = 0;
        while i < hd {
            let kv = [load8(r[0], k.kv_type, i), load8(r[1], k.kv_type, i), load8(r[2], k.kv_type, i), load8(r[3], k.kv_type, i)];
            for j in 0..R {
                let qv = _mm256_loadu_ps(qp.add(j * hd + i));
                for x in 0..4 {
                    acc[j][x] = _mm256_add_ps(acc[j][x], _mm256_mul_ps(qv, kv[x]));
                }
            }
            i += 8;
        }
        for j in 0..R {
            _mm_storeu_ps(out.as_mut_ptr().add(j * n_kv + p), _mm_mul_ps(reduce8_x4(acc[j]), sv));
        }
        p += 4;
    }
    for p in p..n_kv {
        for j in 0..R {
            out[j * n_kv + p] = dot(&q[j * hd..(j + 1) * hd], k.row(p, offset, hd), k.kv_type) * scale;
        }
    }
}

/// `reduce8` of four accumulators at once: fold halves, transpose, then `(t0+t2)+(t1+t3)`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn reduce8_x4(acc: [__m256; 4]) -> __m128 {
    let (t0, t1, t2, t3) = (fold_halves(acc[0]), fold_halves(acc[1]), fold_halves(acc[2]), fold_halves(acc[3]));
    let (a, b) = (_mm_unpacklo_ps(t0, t1), _mm_unpackhi_ps(t0, t1));
    let (c, d) = (_mm_unpacklo_ps(t2, t3), _mm_unpackhi_ps(t2, t3));
    let (c0, c1) = (_mm_movelh_ps(a, c), _mm_movehl_ps(c, a));
    let (c2, c3) = (_mm_movelh_ps(b, d), _mm_movehl_ps(d, b));
    _mm_add_ps(_mm_add_ps(c0, c2), _mm_add_ps(c1, c3))
}

#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
unsafe fn dot(q: &[f32], row: &[u8], kv_type: u32) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < q.len() {
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(q.as_ptr().add(i)), load8(row.as_ptr(), kv_type, i)));
        i += 8;
    }
    let mut lane = [0.0f32; 8];
    _mm256_storeu_ps(lane.as_mut_ptr(), acc);
    reduce8(&lane)
}

/// This ISA's part of `attention::weighted_sum`.
pub struct Columns;

impl ValueColumns for Columns {
    unsafe fn columns<const W: usize, const R: usize>(
        out: &mut [f32],
        hd: usize,
        w: &[f32],
        n_kv: usize,
        ps: std::ops::Range<usize>,
        v: KvView,
        offset: usize,
        c: usize,
    ) -> usize {
        columns::<W, R>(out, hd, w, n_kv, ps, v, offset, c)
    }
}

/// Adds positions `ps` to columns `c..c + 8 * W` of each head's output; returns `8 * W`.
#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
#[inline]
unsafe fn columns<const W: usize, const R: usize>(
    out: &mut [f32],
    hd: usize,
    w: &[f32],
    n_kv: usize,
    ps: std::ops::Range<usize>,
    v: KvView,
    offset: usize,
    c: usize,
) -> usize {
    let base = v.bytes.as_ptr();
    // q8 rows are whole 32-element blocks: address from the block start, index within it
    let at = offset + c;
    let (first, skip) = if v.kv_type == 2 { (at / 32 * 32, at % 32) } else { (at, 0) };
    let op = out.as_mut_ptr();
    let mut acc = [[_mm256_setzero_ps(); W]; R];
    for j in 0..R {
        for x in 0..W {
            acc[j][x] = _mm256_loadu_ps(op.add(j * hd + c + 8 * x));
        }
    }
    for p in ps {
        let row = base.add(kv_row_bytes(v.kv_type, p * v.stride + first));
        let mut vals = [_mm256_setzero_ps(); W];
        for x in 0..W {
            vals[x] = load8(row, v.kv_type, skip + 8 * x);
        }
        for j in 0..R {
            let wv = _mm256_set1_ps(*w.get_unchecked(j * n_kv + p));
            for x in 0..W {
                acc[j][x] = _mm256_add_ps(acc[j][x], _mm256_mul_ps(wv, vals[x]));
            }
        }
    }
    for j in 0..R {
        for x in 0..W {
            _mm256_storeu_ps(op.add(j * hd + c + 8 * x), acc[j][x]);
        }
    }
    8 * W
}
