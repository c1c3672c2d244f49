//! AArch64 NEON attention kernels (base NEON, which every aarch64 CPU has): the passes of
//! `attention::avx2` (four positions per scores pass, query-head pairs sharing each K/V load, values
//! summed in registers per block of positions, rows prefetched). The eight lanes of the reference
//! order are two `float32x4_t`: elements i..i+4 in the first, i+4..i+8 in the second. Products and
//! sums stay separate instructions (`vmulq_f32`, `vaddq_f32`): a fused `fmla` rounds once instead
//! of twice and would change the bits.
//!
//! Rust 1.63 has no stable f16 NEON intrinsics, so halves are widened with `fcvtl` / `fcvtl2` in
//! `asm!`. With Linux's default FPCR (no flush-to-zero, IEEE half format) that conversion is exact
//! for every half, subnormals and infinities included, as `f16_to_f32` is; only a signalling NaN
//! differs (it comes out quiet, `f16_to_f32` keeps it signalling), and NaN stays NaN either way.

use crate::attention::{kv_row_bytes, reduce8, KvView, ValueColumns, PREFETCH};
use crate::neon_util::{widen_high, widen_low};
use crate::prefetch::prefetch_row;
use std::arch::aarch64::*;

/// Eight consecutive elements: lanes 0-3 and 4-7 of the reference order.
type Lanes8 = [float32x4_t; 2];

/// Elements `i..i + 8` of a KV row starting at `row` (`i` a multiple of 8). Loads go through byte
/// pointers: rows of an f16 or q8 cache need not be aligned for their element type.
#[inline(always)]
unsafe fn load8(row: *const u8, kv_type: u32, i: usize) -> Lanes8 {
    match kv_type {
        0 => {
            let p = row.add(4 * i);
            [vreinterpretq_f32_u8(vld1q_u8(p)), vreinterpretq_f32_u8(vld1q_u8(p.add(16)))]
        }
        1 => {
            let h = vreinterpretq_u16_u8(vld1q_u8(row.add(2 * i)));
            [widen_low(h), widen_high(h)]
        }
        _ => {
            // eight i8 of one 32-block times its scale (exact products, as in `kv_elem`)
            let b = row.add(34 * (i / 32));
            let d = widen_low(vdupq_n_u16((b as *const u16).read_unaligned()));
            let q = vmovl_s8(vld1_s8(b.add(2 + i % 32) as *const i8));
            [vmulq_f32(d, vcvtq_f32_s32(vmovl_s16(vget_low_s16(q)))), vmulq_f32(d, vcvtq_f32_s32(vmovl_high_s16(q)))]
        }
    }
}

/// `acc + a * b` lane by lane, rounded after the product and after the sum (never `fmla`).
#[inline(always)]
unsafe fn add_product(acc: float32x4_t, a: float32x4_t, b: float32x4_t) -> float32x4_t {
    vaddq_f32(acc, vmulq_f32(a, b))
}

/// Scores of `R` query heads sharing one KV head: `out[j * n_kv + p] = (q_j · k_p) * scale`,
/// with `q_j = q[j * hd..]`, four positions at a time so each key is loaded once for the `R`
/// heads. Requires `hd` a multiple of 8.
pub unsafe fn scores<const R: usize>(q: &[f32], hd: usize, k: KvView, offset: usize, scale: f32, out: &mut [f32]) {
    debug_assert!(hd % 8 == 0 && q.len() >= R * hd && out.len() % R == 0);
    let n_kv = out.len() / R;
    let qp = q.as_ptr();
    let sv = vdupq_n_f32(scale);
    let mut p = 0;
    while p + 4 <= n_kv {
        let r = [k.row(p, offset, hd).as_ptr(), k.row(p + 1, offset, hd).as_ptr(), k.row(p + 2, offset, hd).as_ptr(), k.row(p + 3, offset, hd).as_ptr()];
        if p + PREFETCH + 4 <= n_kv {
            for x in 0..4 {
                prefetch_row(k.row(p + PREFETCH + x, offset, hd));
            }
        }
        let zero = vdupq_n_f32(0.0);
        let mut acc = [[[zero; 2]; 4]; R];
        let mut i = 0;
        while i < hd {
            let kv = [load8(r[0], k.kv_type, i), load8(r[1], k.kv_type, i), load8(r[2], k.kv_type, i), load8(r[3], k.kv_type, i)];
            for j in 0..R {
                let qv = [vld1q_f32(qp.add(j * hd + i)), vld1q_f32(qp.add(j * hd + i + 4))];
                for x in 0..4 {
                    for h in 0..2 {
                        acc[j][x][h] = add_product(acc[j][x][h], qv[h], kv[x][h]);
                    }
                }
            }
            i += 8;
        }
        for j in 0..R {
            vst1q_f32(out.as_mut_ptr().add(j * n_kv + p), vmulq_f32(reduce8_x4(&acc[j]), sv));
        }
        p += 4;
    }
    for p in p..n_kv {
        for j in 0..R {
            out[j * n_kv + p] = dot(&q[j * hd..(j + 1) * hd], k.row(p, offset, hd), k.kv_type) * scale;
        }
    }
}

/// `reduce8` of four positions at once: `t = lanes 0-3 + lanes 4-7`, transpose so that register
/// `c[l]` holds `t[l]` of each position, then `(c0 + c2) + (c1 + c3)`.
#[inline(always)]
unsafe fn reduce8_x4(acc: &[Lanes8; 4]) -> float32x4_t {
    let t = [vaddq_f32(acc[0][0], acc[0][1]), vaddq_f32(acc[1][0], acc[1][1]), vaddq_f32(acc[2][0], acc[2][1]), vaddq_f32(acc[3][0], acc[3][1])];
    // even / odd lanes of positions 0,1 and 2,3 interleaved: [t0[0], t1[0], t0[2], t1[2]], ...
    let (even01, odd01) = (vtrn1q_f32(t[0], t[1]), vtrn2q_f32(t[0], t[1]));
    let (even23, odd23) = (vtrn1q_f32(t[2], t[3]), vtrn2q_f32(t[2], t[3]));
    // then the 64-bit halves: low halves give lanes 0 / 1 of all four positions, high halves 2 / 3
    let halves = |a: float32x4_t, b: float32x4_t| {
        let (a, b) = (vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(b));
        (vreinterpretq_f32_f64(vtrn1q_f64(a, b)), vreinterpretq_f32_f64(vtrn2q_f64(a, b)))
    };
    let (c0, c2) = halves(even01, even23);
    let (c1, c3) = halves(odd01, odd23);
    vaddq_f32(vaddq_f32(c0, c2), vaddq_f32(c1, c3))
}

unsafe fn dot(q: &[f32], row: &[u8], kv_type: u32) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut i = 0;
    while i < q.len() {
        let kv = load8(row.as_ptr(), kv_type, i);
        for h in 0..2 {
            acc[h] = add_product(acc[h], vld1q_f32(q.as_ptr().add(i + 4 * h)), kv[h]);
        }
        i += 8;
    }
    let mut lane = [0.0f32; 8];
    vst1q_f32(lane.as_mut_ptr(), acc[0]);
    vst1q_f32(lane.as_mut_ptr().add(4), acc[1]);
    reduce8(&lane)
}

/// This ISA's part of `attention::weighted_sum`.
pub struct Columns;

impl ValueColumns for Columns {
    /// Adds positions `ps` to columns `c..c + 8 * W` of each head's output; returns `8 * W`.
    #[inline(always)]
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
        let zero = vdupq_n_f32(0.0);
        let mut acc = [[[zero; 2]; W]; R];
        for j in 0..R {
            for x in 0..W {
                for h in 0..2 {
                    acc[j][x][h] = vld1q_f32(op.add(j * hd + c + 8 * x + 4 * h));
                }
            }
        }
        for p in ps {
            let row = base.add(kv_row_bytes(v.kv_type, p * v.stride + first));
            let mut vals = [[zero; 2]; W];
            for x in 0..W {
                vals[x] = load8(row, v.kv_type, skip + 8 * x);
            }
            for j in 0..R {
                let wv = vdupq_n_f32(*w.get_unchecked(j * n_kv + p));
                for x in 0..W {
                    for h in 0..2 {
                        acc[j][x][h] = add_product(acc[j][x][h], wv, vals[x][h]);
                    }
                }
            }
        }
        for j in 0..R {
            for x in 0..W {
                for h in 0..2 {
                    vst1q_f32(op.add(j * hd + c + 8 * x + 4 * h), acc[j][x][h]);
                }
            }
        }
        8 * W
    }
}
