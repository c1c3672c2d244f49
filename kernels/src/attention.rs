//! Causal attention of one query vector (all heads) over cached K/V (f32, f16 or q8), grouped-query.
//! q8 (kv_type 2) rows are blocks of 32 elements: an f16 scale `d` then 32 i8 (34 bytes per 32
//! elements); element value `f32(d) * q`, exact in f32, so every path reads the same values.
//!
//! Paths: the scalar reference here (any CPU; `force_scalar` or the scalar table of
//! `dispatch::force_isa(0)`), `attention_avx2` (x86_64 with AVX2 + F16C) and `attention_neon`
//! (aarch64, base NEON). The SIMD paths need `head_dim` a multiple of 8 and fall back to the
//! reference otherwise. Every path uses the order below, without fused multiply-add, so the result
//! is the same bits whichever runs (NaN inputs give NaN on every path, payloads aside):
//! `lane[i % 8] = lane[i % 8] + q[i] * k[i]` for i in order, then `t[l] = lane[l] + lane[l+4]`,
//! `dot = (t[0] + t[2]) + (t[1] + t[3])`; the V sum is `out[i] = out[i] + w[p] * v[p][i]` for p in order.

use crate::dispatch::{self, ISA_AVX2, ISA_F16C, ISA_NEON};
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
    /// The same cache seen from position `p0` on (its row 0 is position `p0`).
    #[inline]
    fn from_position(&self, p0: usize) -> KvView<'a> {
        KvView { bytes: &self.bytes[kv_row_bytes(self.kv_type, p0 * self.stride)..], ..*self }
    }

    #[inline]
    pub(crate) fn row(&self, pos: usize, offset: usize, len: usize) -> &'a [u8] {
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
pub(crate) fn reduce8(lane: &[f32; 8]) -> f32 {
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

/// Positions ahead of the current one whose rows the SIMD paths request early: the rows of one KV
/// head are 256 bytes out of every `stride`, a pattern hardware prefetchers follow late.
pub(crate) const PREFETCH: usize = 8;

/// Positions per pass of the SIMD weighted sums: their value rows (4 KB of f16 at head_dim 128)
/// stay in L1 while every column chunk walks them.
pub(crate) const POS_BLOCK: usize = 16;

/// The ISA part of [`weighted_sum`] (`attention_avx2::Columns`, `attention_neon::Columns`).
pub(crate) trait ValueColumns {
    /// Adds positions `ps` (weights `w[j * n_kv + p]`) to columns `c..c + 8 * W` of each of the
    /// `R` heads' outputs, position by position; returns `8 * W`.
    ///
    /// # Safety
    /// The ISA of the implementation must be present; `v` must hold rows `ps` from `offset + c`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn columns<const W: usize, const R: usize>(
        out: &mut [f32],
        hd: usize,
        w: &[f32],
        n_kv: usize,
        ps: std::ops::Range<usize>,
        v: KvView,
        offset: usize,
        c: usize,
    ) -> usize;
}

/// Outputs of `R` heads sharing one KV head: `out[j * hd + i] += sum_p w[j * n_kv + p] * v_p[i]`,
/// added position by position onto what `out` holds (the scalar order per element; partial sums
/// pass through `out` between blocks of positions, exactly, so callers may also split the
/// positions over several calls), loading each value once for the `R` heads. Callers zero `out`
/// first. Requires `hd` a multiple of 8.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
unsafe fn weighted_sum<C: ValueColumns, const R: usize>(out: &mut [f32], hd: usize, w: &[f32], v: KvView, offset: usize) {
    debug_assert!(hd % 8 == 0 && out.len() >= R * hd && w.len() % R == 0);
    let n_kv = w.len() / R;
    if n_kv == 0 {
        return;
    }
    v.row(n_kv - 1, offset, hd); // bounds of the furthest row, checked once
    let mut p0 = 0;
    while p0 < n_kv {
        let ps = p0..(p0 + POS_BLOCK).min(n_kv);
        for p in ps.end..(ps.end + POS_BLOCK).min(n_kv) {
            crate::prefetch::prefetch_row(v.row(p, offset, hd));
        }
        // 64 columns of one head or 32 of each of two in accumulators per pass
        let mut c = 0;
        while c < hd {
            c += match ((hd - c) / 8, R) {
                (8.., 1) => C::columns::<8, R>(out, hd, w, n_kv, ps.clone(), v, offset, c),
                (4.., _) => C::columns::<4, R>(out, hd, w, n_kv, ps.clone(), v, offset, c),
                (2..=3, _) => C::columns::<2, R>(out, hd, w, n_kv, ps.clone(), v, offset, c),
                _ => C::columns::<1, R>(out, hd, w, n_kv, ps.clone(), v, offset, c),
            };
        }
        p0 = ps.end;
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
    out.iter_mut().for_each(|o| *o = 0.0);
    if simd && hd % 8 == 0 {
        simd_weighted_sum(n, out, hd, scores, v, g * hd);
    } else {
        for (j, oh) in out.chunks_mut(hd).enumerate() {
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

/// The SIMD kernels of this architecture (used only when [`simd_active`]).
#[cfg(target_arch = "x86_64")]
use crate::attention_avx2 as simd;
#[cfg(target_arch = "aarch64")]
use crate::attention_neon as simd;

/// Whether the active kernel table allows the SIMD kernels: AVX2 + F16C on x86_64 (what they are
/// compiled for), NEON on aarch64. The scalar table (`force_isa(0)`) keeps the scalar reference.
fn simd_active() -> bool {
    let active = dispatch::active();
    if cfg!(target_arch = "x86_64") {
        active & (ISA_AVX2 | ISA_F16C) == ISA_AVX2 | ISA_F16C
    } else {
        cfg!(target_arch = "aarch64") && active & ISA_NEON != 0
    }
}

// SAFETY of both: reached only when `simd_active()` and `hd % 8 == 0` (see `head_run`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn simd_scores(n: usize, q: &[f32], hd: usize, k: KvView, offset: usize, scale: f32, out: &mut [f32]) {
    unsafe {
        if n == 2 {
            simd::scores::<2>(q, hd, k, offset, scale, out)
        } else {
            simd::scores::<1>(q, hd, k, offset, scale, out)
        }
    }
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn simd_weighted_sum(n: usize, out: &mut [f32], hd: usize, w: &[f32], v: KvView, offset: usize) {
    unsafe {
        if n == 2 {
            weighted_sum::<simd::Columns, 2>(out, hd, w, v, offset)
        } else {
            weighted_sum::<simd::Columns, 1>(out, hd, w, v, offset)
        }
    }
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd_scores(_: usize, _: &[f32], _: usize, _: KvView, _: usize, _: f32, _: &mut [f32]) {
    unreachable!("no SIMD attention on this architecture")
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd_weighted_sum(_: usize, _: &mut [f32], _: usize, _: &[f32], _: KvView, _: usize) {
    unreachable!("no SIMD attention on this architecture")
}

/// `out[h] = softmax(q_h · k_p / sqrt(head_dim)) · v_p` over p < n_kv, kv head h / (n_head / n_head_kv).
/// `scratch` (2 * n_kv floats) holds the scores when running on one thread; long contexts are
/// split over the pool by KV head (each task with its own scores buffer).
pub fn attention(sh: AttnShape, q: &[f32], k: KvView, v: KvView, out: &mut [f32], scratch: &mut [f32], force_scalar: bool) -> Result<(), String> {
    let simd = !force_scalar && simd_active();
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

#[path = "attention_rows.rs"]
mod rows;
pub use rows::attention_rows;
