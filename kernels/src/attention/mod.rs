//! Causal attention of one query vector (all heads) over cached K/V (f32, f16 or q8), grouped-query.
//! q8 (kv_type 2) rows are blocks of 32 elements: an f16 scale `d` then 32 i8 (34 bytes per 32
//! elements); element value `f32(d) * q`, exact in f32, so every path reads the same values.
//!
//! Paths: the scalar reference here (any CPU; `force_scalar` or the scalar table of
//! `dispatch::force_isa(0)`), `attention::avx2` (x86_64 with AVX2 + F16C) and `attention::neon`
//! (aarch64, base NEON). The SIMD paths need `head_dim` a multiple of 8 and fall back to the
//! reference otherwise. Every path uses the order below, without fused multiply-add, so the result
//! is the same bits whichever runs (NaN inputs give NaN on every path, payloads aside):
//! `lane[i % 8] = lane[i % 8] + q[i] * k[i]` for i in order, then `t[l] = lane[l] + lane[l+4]`,
//! `dot = (t[0] + t[2]) + (t[1] + t[3])`; the V sum is `out[i] = out[i] + w[p] * v[p][i]` for p in order.

use crate::dispatch;
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

/// Decodes a whole KV row (`out.len()` elements) to f32: the values every attention path reads.
pub(crate) fn load_kv_row(row: &[u8], kv_type: u32, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = kv_elem(row, kv_type, i);
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

/// The ISA part of [`weighted_sum`] (`avx2::Columns`, `neon::Columns`).
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
fn head_run(h0: usize, n: usize, g: usize, sh: AttnShape, q: &[f32], k: KvView, v: KvView, out: &mut [f32], scores: &mut [f32], simd: Option<&AttnKernels>) {
    let hd = sh.head_dim;
    let n_kv = sh.n_kv;
    let qs = &q[h0 * hd..(h0 + n) * hd];
    let scores = &mut scores[..n * n_kv];
    let scale = 1.0 / (hd as f32).sqrt();
    let simd = simd.filter(|_| hd % 8 == 0);
    if let Some(kern) = simd {
        (kern.scores)(n, qs, hd, k, g * hd, scale, scores);
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
    if let Some(kern) = simd {
        (kern.weighted_sum)(n, out, hd, scores, v, g * hd);
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
fn one_group(g: usize, sh: AttnShape, q: &[f32], k: KvView, v: KvView, out: &mut [f32], scores: &mut [f32], simd: Option<&AttnKernels>) {
    let rep = sh.n_head / sh.n_head_kv;
    let hd = sh.head_dim;
    for (pair, o) in out.chunks_mut(2 * hd).enumerate() {
        head_run(g * rep + 2 * pair, o.len() / hd, g, sh, q, k, v, o, scores, simd);
    }
}

/// The attention kernels of one ISA, as held by its dispatch table: the scores of one or two
/// query heads (`n`) against one KV head's keys (`offset` = its first element) and their weighted
/// sums of values, in the order of the module docs. They need `head_dim` a multiple of 8 (callers
/// use the scalar reference otherwise) and are safe to call only through a table whose ISA bits
/// the CPU has.
pub struct AttnKernels {
    pub name: &'static str,
    /// `(n, q, head_dim, k, offset, scale, out)`: `out[j * n_kv + p] = q_j · k_p * scale`.
    pub scores: fn(usize, &[f32], usize, KvView, usize, f32, &mut [f32]),
    /// `(n, out, head_dim, w, v, offset)`: [`weighted_sum`] of `n` heads.
    pub weighted_sum: fn(usize, &mut [f32], usize, &[f32], KvView, usize),
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd_entry {
    //! Safe wrappers over this architecture's kernels: only reachable through tables that require
    //! their ISA (AVX2 + F16C on x86_64, NEON on aarch64), with `hd % 8 == 0` (see `head_run`).
    #[cfg(target_arch = "x86_64")]
    use super::avx2 as simd;
    #[cfg(target_arch = "aarch64")]
    use super::neon as simd;
    use super::{weighted_sum, KvView};

    pub fn scores(n: usize, q: &[f32], hd: usize, k: KvView, offset: usize, scale: f32, out: &mut [f32]) {
        unsafe {
            if n == 2 {
                simd::scores::<2>(q, hd, k, offset, scale, out)
            } else {
                simd::scores::<1>(q, hd, k, offset, scale, out)
            }
        }
    }

    pub fn weighted_sums(n: usize, out: &mut [f32], hd: usize, w: &[f32], v: KvView, offset: usize) {
        unsafe {
            if n == 2 {
                weighted_sum::<simd::Columns, 2>(out, hd, w, v, offset)
            } else {
                weighted_sum::<simd::Columns, 1>(out, hd, w, v, offset)
            }
        }
    }
}

/// The x86_64 kernels (`avx2.rs`; AVX2, with F16C when the compiler has it).
#[cfg(target_arch = "x86_64")]
pub const AVX2: AttnKernels = AttnKernels { name: "avx2", scores: simd_entry::scores, weighted_sum: simd_entry::weighted_sums };

/// The AArch64 kernels (`neon.rs`).
#[cfg(target_arch = "aarch64")]
pub const NEON: AttnKernels = AttnKernels { name: "neon", scores: simd_entry::scores, weighted_sum: simd_entry::weighted_sums };

/// The kernels to use: the active table's, or none (the scalar reference) when `force_scalar`.
fn kernels(force_scalar: bool) -> Option<&'static AttnKernels> {
    if force_scalar {
        None
    } else {
        dispatch::table().attention()
    }
}

/// `out[h] = softmax(q_h · k_p / sqrt(head_dim)) · v_p` over p < n_kv, kv head h / (n_head / n_head_kv).
/// `scratch` (2 * n_kv floats) holds the scores when running on one thread; long contexts are
/// split over the pool by KV head (each task with its own scores buffer).
pub fn attention(sh: AttnShape, q: &[f32], k: KvView, v: KvView, out: &mut [f32], scratch: &mut [f32], force_scalar: bool) -> Result<(), String> {
    attention_with(kernels(force_scalar), sh, q, k, v, out, scratch)
}

/// [`attention`] with the given kernels (`None`: the scalar reference); for the start-up
/// self-check, which runs before any table is active.
pub fn attention_with(
    simd: Option<&AttnKernels>,
    sh: AttnShape,
    q: &[f32],
    k: KvView,
    v: KvView,
    out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), String> {
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

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;
mod rows;
pub use rows::attention_rows;
