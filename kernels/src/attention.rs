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

    #[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
    #[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
    pub unsafe fn dot(q: &[f32], row: &[u8], kv_type: u32) -> f32 {
        let n = q.len();
        let full = n / 8 * 8;
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i < full {
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(q.as_ptr().add(i)), load8(row.as_ptr(), kv_type, i)));
            i += 8;
        }
        let mut lane = [0.0f32; 8];
        _mm256_storeu_ps(lane.as_mut_ptr(), acc);
        for i in full..n {
            lane[i % 8] = lane[i % 8] + q[i] * super::kv_elem(row, kv_type, i);
        }
        super::reduce8(&lane)
    }

    #[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
    #[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
    pub unsafe fn axpy(out: &mut [f32], w: f32, row: &[u8], kv_type: u32) {
        let n = out.len();
        let full = n / 8 * 8;
        let wv = _mm256_set1_ps(w);
        let mut i = 0;
        while i < full {
            let o = out.as_mut_ptr().add(i);
            _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), _mm256_mul_ps(wv, load8(row.as_ptr(), kv_type, i))));
            i += 8;
        }
        for i in full..n {
            out[i] = out[i] + w * super::kv_elem(row, kv_type, i);
        }
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

fn one_head(h: usize, sh: AttnShape, q: &[f32], k: KvView, v: KvView, out: &mut [f32], scores: &mut [f32], simd: bool) {
    let hd = sh.head_dim;
    let g = h / (sh.n_head / sh.n_head_kv);
    let qh = &q[h * hd..(h + 1) * hd];
    let scale = 1.0 / (hd as f32).sqrt();
    for p in 0..sh.n_kv {
        let row = k.row(p, g * hd, hd);
        let d = if simd { simd_dot(qh, row, k.kv_type) } else { dot_scalar(qh, row, k.kv_type) };
        scores[p] = d * scale;
    }
    softmax(&mut scores[..sh.n_kv]);
    for o in out.iter_mut() {
        *o = 0.0;
    }
    for p in 0..sh.n_kv {
        let row = v.row(p, g * hd, hd);
        if simd {
            simd_axpy(out, scores[p], row, v.kv_type)
        } else {
            axpy_scalar(out, scores[p], row, v.kv_type)
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn simd_dot(q: &[f32], row: &[u8], kv_type: u32) -> f32 {
    unsafe { avx2::dot(q, row, kv_type) } // only called when avx2+f16c are active
}
#[cfg(target_arch = "x86_64")]
fn simd_axpy(out: &mut [f32], w: f32, row: &[u8], kv_type: u32) {
    unsafe { avx2::axpy(out, w, row, kv_type) }
}
#[cfg(not(target_arch = "x86_64"))]
fn simd_dot(q: &[f32], row: &[u8], kv_type: u32) -> f32 {
    dot_scalar(q, row, kv_type)
}
#[cfg(not(target_arch = "x86_64"))]
fn simd_axpy(out: &mut [f32], w: f32, row: &[u8], kv_type: u32) {
    axpy_scalar(out, w, row, kv_type)
}

/// `out[h] = softmax(q_h · k_p / sqrt(head_dim)) · v_p` over p < n_kv, kv head h / (n_head / n_head_kv).
/// `scratch` (n_kv floats) holds the scores when running on one thread; long contexts are split
/// over the pool by head (each task with its own scores buffer).
pub fn attention(sh: AttnShape, q: &[f32], k: KvView, v: KvView, out: &mut [f32], scratch: &mut [f32], force_scalar: bool) -> Result<(), String> {
    let need = ISA_AVX2 | ISA_F16C;
    let simd = !force_scalar && cfg!(target_arch = "x86_64") && dispatch::active() & need == need;
    let hd = sh.head_dim;
    let work = sh.n_head * sh.n_kv * hd;
    if work < 1 << 18 {
        for h in 0..sh.n_head {
            one_head(h, sh, q, k, v, &mut out[h * hd..(h + 1) * hd], scratch, simd);
        }
        return Ok(());
    }
    let o = OutPtr(out.as_mut_ptr());
    pool::parallel_for(sh.n_head, 2, &|heads: std::ops::Range<usize>| {
        let o = o;
        let mut scores = vec![0.0f32; sh.n_kv];
        for h in heads {
            // SAFETY: heads are disjoint between tasks; out holds n_head * head_dim floats.
            let oh = unsafe { std::slice::from_raw_parts_mut(o.0.add(h * hd), hd) };
            one_head(h, sh, q, k, v, oh, &mut scores, simd);
        }
    })
}
