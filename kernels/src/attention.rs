//! Causal attention of one query vector (all heads) over cached K/V (f32, f16 or q8), grouped-query.
//! q8 (kv_type 2) rows are blocks of 32 elements: an f16 scale `d` then 32 i8 (34 bytes per 32
//! elements); element value `f32(d) * q`, exact in f32, so every path reads the same values.
//! The per-position dot products use the 8-lane order below on every path (scalar and AVX2), so the
//! result is the same bits whichever path runs:
//! `lane[i % 8] = lane[i % 8] + q[i] * k[i]` for i in order, then `t[l] = lane[l] + lane[l+4]`,
//! `dot = (t[0] + t[2]) + (t[1] + t[3])`; the V sum is `out[i] = out[i] + w[p] * v[p][i]` for p in order.

use crate::dispatch::{self, ISA_AVX2, ISA_F16C};
use crate::f16::f16_to_f32;
use crate::ops::softmax;
use crate::pool;

/// Cached K or V of one layer: `n_kv` positions, `stride` elements apart, f32 (0), f16 (1) or
/// q8 (2; `stride` and every row offset and length a multiple of 32).
#[derive(Clone, Copy)]
pub struct KvView<'a> {
    pub bytes: &'a [u8],
    pub kv_type: u32,
    pub stride: usize,
}

impl<'a> KvView<'a> {
    #[inline]
    fn row(&self, pos: usize, offset: usize, len: usize) -> &'a [u8] {
        let start = kv_row_bytes(self.kv_type, pos * self.stride + offset);
        &self.bytes[start..start + kv_row_bytes(self.kv_type, len)]
    }
}

/// Bytes taken by `n` elements of a KV row (q8: `n` a multiple of 32, 34 bytes per 32).
#[inline]
pub fn kv_row_bytes(kv_type: u32, n: usize) -> usize {
    match kv_type {
        0 => 4 * n,
        1 => 2 * n,
        _ => n / 32 * 34,
    }
}

#[inline]
fn kv_elem(row: &[u8], kv_type: u32, i: usize) -> f32 {
    match kv_type {
        0 => f32::from_le_bytes([row[4 * i], row[4 * i + 1], row[4 * i + 2], row[4 * i + 3]]),
        1 => f16_to_f32(u16::from_le_bytes([row[2 * i], row[2 * i + 1]])),
        _ => {
            let b = 34 * (i / 32);
            f16_to_f32(u16::from_le_bytes([row[b], row[b + 1]])) * (row[b + 2 + i % 32] as i8) as f32
        }
    }
}

#[inline]
fn reduce8(lane: &[f32; 8]) -> f32 {
    let t = [lane[0] + lane[4], lane[1] + lane[5], lane[2] + lane[6], lane[3] + lane[7]];
    (t[0] + t[2]) + (t[1] + t[3])
}

fn dot_scalar(q: &[f32], row: &[u8], kv_type: u32) -> f32 {
    let mut lane = [0.0f32; 8];
    for i in 0..q.len() {
        lane[i % 8] = lane[i % 8] + q[i] * kv_elem(row, kv_type, i);
    }
    reduce8(&lane)
}

fn axpy_scalar(out: &mut [f32], w: f32, row: &[u8], kv_type: u32) {
    for i in 0..out.len() {
        out[i] = out[i] + w * kv_elem(row, kv_type, i);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 paths. Several positions (dot) or output registers (weighted sum) are in flight at
    //! once so the adds do not wait on one another; each lane still sees the scalar order.
    use super::KvView;
    use std::arch::x86_64::*;

    #[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
    #[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
    #[inline]
    unsafe fn load8(row: *const u8, kv_type: u32, i: usize) -> __m256 {
        match kv_type {
            0 => _mm256_loadu_ps((row as *const f32).add(i)),
            1 => crate::dot_avx2::cvt_ph8(_mm_loadu_si128((row as *const u16).add(i) as *const __m128i)),
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

    /// Positions ahead of the current one whose rows are requested early: the rows of one KV head
    /// are 256 bytes out of every `stride`, a pattern the hardware prefetcher follows late.
    const PREFETCH: usize = 8;

    #[inline(always)]
    unsafe fn prefetch_row(row: &[u8]) {
        let mut at = 0;
        while at < row.len() {
            _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().add(at) as *const i8);
            at += 64;
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
        super::reduce8(&lane)
    }

    /// Positions per pass of [`weighted_sum`]: their value rows (4 KB of f16 at head_dim 128)
    /// stay in L1 while every column chunk walks them.
    const POS_BLOCK: usize = 16;

    /// Outputs of `R` heads sharing one KV head: `out[j * hd + i] = sum_p w[j * n_kv + p] * v_p[i]`,
    /// accumulated position by position (the scalar order per element; partial sums pass through
    /// `out` between blocks of positions, exactly), loading each value once for the `R` heads.
    /// Requires `hd` a multiple of 8.
    #[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
    #[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
    pub unsafe fn weighted_sum<const R: usize>(out: &mut [f32], hd: usize, w: &[f32], v: KvView, offset: usize) {
        debug_assert!(hd % 8 == 0 && out.len() >= R * hd && w.len() % R == 0);
        let n_kv = w.len() / R;
        out[..R * hd].iter_mut().for_each(|o| *o = 0.0);
        if n_kv == 0 {
            return;
        }
        v.row(n_kv - 1, offset, hd); // bounds of the furthest row, checked once
        let mut p0 = 0;
        while p0 < n_kv {
            let ps = p0..(p0 + POS_BLOCK).min(n_kv);
            for p in ps.end..(ps.end + POS_BLOCK).min(n_kv) {
                prefetch_row(v.row(p, offset, hd));
            }
            // 8 accumulators in flight: 8 columns of one head or 4 of each of two
            let mut c = 0;
            while c < hd {
                c += match ((hd - c) / 8, R) {
                    (8.., 1) => columns::<8, R>(out, hd, w, n_kv, ps.clone(), v, offset, c),
                    (4.., _) => columns::<4, R>(out, hd, w, n_kv, ps.clone(), v, offset, c),
                    (2..=3, _) => columns::<2, R>(out, hd, w, n_kv, ps.clone(), v, offset, c),
                    _ => columns::<1, R>(out, hd, w, n_kv, ps.clone(), v, offset, c),
                };
            }
            p0 = ps.end;
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
            let row = base.add(super::kv_row_bytes(v.kv_type, p * v.stride + first));
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
}

/// Shape of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_kv: usize,
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Query heads `h0..h0 + n` (all of KV head `g`): scores, softmax, weighted sum of values into
/// `out` (`n * head_dim` floats). `scores` holds `n * n_kv` floats.
fn head_run(h0: usize, n: usize, g: usize, sh: AttnShape, q: &[f32], k: KvView, v: KvView, out: &mut [f32], scores: &mut [f32], simd: bool) {
    let hd = sh.head_dim;
    let n_kv = sh.n_kv;
    let qs = &q[h0 * hd..(h0 + n) * hd];
    let scores = &mut scores[..n * n_kv];
    let scale = 1.0 / (hd as f32).sqrt();
    if simd && hd % 8 == 0 {
        simd_scores(n, qs, hd, k, g * hd, scale, scores);
    } else {
        for j in 0..n {
            for p in 0..n_kv {
                scores[j * n_kv + p] = dot_scalar(&qs[j * hd..(j + 1) * hd], k.row(p, g * hd, hd), k.kv_type) * scale;
            }
        }
    }
    for s in scores.chunks_mut(n_kv) {
        softmax(s);
    }
    if simd && hd % 8 == 0 {
        simd_weighted_sum(n, out, hd, scores, v, g * hd);
    } else {
        for (j, oh) in out.chunks_mut(hd).enumerate() {
            oh.iter_mut().for_each(|o| *o = 0.0);
            for p in 0..n_kv {
                axpy_scalar(oh, scores[j * n_kv + p], v.row(p, g * hd, hd), v.kv_type);
            }
        }
    }
}

/// The query heads of KV head `g` into `out` (their `rep * head_dim` floats), two at a time so the
/// SIMD kernels load each cached key and value once per pair.
fn one_group(g: usize, sh: AttnShape, q: &[f32], k: KvView, v: KvView, out: &mut [f32], scores: &mut [f32], simd: bool) {
    let rep = sh.n_head / sh.n_head_kv;
    let hd = sh.head_dim;
    for (pair, o) in out.chunks_mut(2 * hd).enumerate() {
        head_run(g * rep + 2 * pair, o.len() / hd, g, sh, q, k, v, o, scores, simd);
    }
}

// Only called when AVX2 + F16C are active.
#[cfg(target_arch = "x86_64")]
fn simd_scores(n: usize, q: &[f32], hd: usize, k: KvView, offset: usize, scale: f32, out: &mut [f32]) {
    unsafe {
        if n == 2 {
            avx2::scores::<2>(q, hd, k, offset, scale, out)
        } else {
            avx2::scores::<1>(q, hd, k, offset, scale, out)
        }
    }
}
#[cfg(target_arch = "x86_64")]
fn simd_weighted_sum(n: usize, out: &mut [f32], hd: usize, w: &[f32], v: KvView, offset: usize) {
    unsafe {
        if n == 2 {
            avx2::weighted_sum::<2>(out, hd, w, v, offset)
        } else {
            avx2::weighted_sum::<1>(out, hd, w, v, offset)
        }
    }
}
#[cfg(not(target_arch = "x86_64"))]
fn simd_scores(_: usize, _: &[f32], _: usize, _: KvView, _: usize, _: f32, _: &mut [f32]) {
    unreachable!("no SIMD attention on this architecture")
}
#[cfg(not(target_arch = "x86_64"))]
fn simd_weighted_sum(_: usize, _: &mut [f32], _: usize, _: &[f32], _: KvView, _: usize) {
    unreachable!("no SIMD attention on this architecture")
}

/// `out[h] = softmax(q_h · k_p / sqrt(head_dim)) · v_p` over p < n_kv, kv head h / (n_head / n_head_kv).
/// `scratch` (2 * n_kv floats) holds the scores when running on one thread; long contexts are
/// split over the pool by KV head (each task with its own scores buffer).
pub fn attention(sh: AttnShape, q: &[f32], k: KvView, v: KvView, out: &mut [f32], scratch: &mut [f32], force_scalar: bool) -> Result<(), String> {
    let need = ISA_AVX2 | ISA_F16C;
    let simd = !force_scalar && cfg!(target_arch = "x86_64") && dispatch::active() & need == need;
    let group_len = sh.n_head / sh.n_head_kv * sh.head_dim;
    if sh.n_head * sh.n_kv * sh.head_dim < 1 << 18 {
        for (g, o) in out[..sh.n_head * sh.head_dim].chunks_mut(group_len).enumerate() {
            one_group(g, sh, q, k, v, o, scratch, simd);
        }
        return Ok(());
    }
    let o = OutPtr(out.as_mut_ptr());
    pool::parallel_for(sh.n_head_kv, 1, &|groups: std::ops::Range<usize>| {
        let o = o;
        let mut scores = vec![0.0f32; 2 * sh.n_kv];
        for g in groups {
            // SAFETY: groups are disjoint between tasks; out holds n_head * head_dim floats.
            let og = unsafe { std::slice::from_raw_parts_mut(o.0.add(g * group_len), group_len) };
            one_group(g, sh, q, k, v, og, &mut scores, simd);
        }
    })
}
