//! The AArch64 NEON kernels of [`crate::lut::q2`]: the same packed tiles, tables and float order as
//! the AVX2 ones, hence the same bits. NEON is mandatory on AArch64, so these need no detection.
//! Built like `lut::q1::neon` (see `q1_neon.rs`), for the same register-file reasons:
//! - a tile is computed as two halves of 16 rows (one `tbl` lookup's worth); four float
//!   accumulator sets for 32 rows would take all 32 registers. Each half reloads the activation
//!   tables (512 bytes per activation block, from L1).
//! - fp16 row scales are widened with `fcvtl` / `fcvtl2` in `asm!` (Rust 1.63 has no f16 NEON
//!   intrinsics); exact for every half as `f16_to_f32` is (a signalling NaN comes out quiet).
//! - floats are multiplied and added apart, never fused (`fmla` would change the bits).
//!
//! Speed: NOT measured on real hardware (the crate is only tested under qemu here). The only
//! evidence is the object code from Debian's rustc 1.63: 144 instructions per 16 rows x 32 weights
//! (288 per 32 x 32 tile-block: 64 `tbl`, no `fmla`), against ~85 (base NEON) and ~91 (`sdot`)
//! per row x 128 weights, i.e. ~680 and ~730 per 32 x 32, for the row kernels of `dot::neon_q2`
//! built by the same compiler. Fewer instructions need not mean faster: `tbl` throughput and the
//! table reloads (1 KiB per activation block per tile) are not modelled by that count.

use super::{PackedQ2, TAB_BYTES, TILE};
use crate::neon_util::{widen_high, widen_low};
use crate::prefetch::prefetch_lines;
use std::arch::aarch64::*;

/// Rows per half tile: one `tbl` lookup's worth.
const HALF: usize = 16;

/// Code coefficients `c - 1` of the table entries p = 0..7: of q0 (`c0 = p & 3`) and of q1
/// (`c1 = p >> 2`, 0 or 1 here). Entries 8-15 are entries 0-7 plus `2 * q1` (c1 is 2 or 3).
const COEF_Q0: [i16; 8] = [-1, 0, 1, 2, -1, 0, 1, 2];
const COEF_Q1: [i16; 8] = [-1, -1, -1, -1, 0, 0, 0, 0];

/// The 16 entries `U[p]` of the pair whose q sit in lanes `I0`, `I1` of `x`, as the 32 table bytes
/// `[L0-15, H0-15]` stored at `dst`.
#[inline(always)]
unsafe fn pair_table<const I0: i32, const I1: i32>(x: int16x8_t, c0: int16x8_t, c1: int16x8_t, dst: *mut u8) {
    let lo = vmlaq_laneq_s16::<I1>(vmlaq_laneq_s16::<I0>(vdupq_n_s16(512), c0, x), c1, x);
    let hi = vmlaq_laneq_s16::<I1>(lo, vdupq_n_s16(2), x);
    // U is in [0, 1020] for every i8 q, so its u16 bits narrow to L (low byte & 31) and H (>> 5)
    let (lo, hi) = (vreinterpretq_u16_s16(lo), vreinterpretq_u16_s16(hi));
    let l = vandq_u8(vmovn_high_u16(vmovn_u16(lo), hi), vdupq_n_u8(31));
    let h = vshrn_high_n_u16::<5>(vshrn_n_u16::<5>(lo), hi);
    vst1q_u8(dst, l);
    vst1q_u8(dst.add(16), h);
}

/// Builds the tables for the `ne0 / 2` element pairs of `q` into `tab` ([`super::tab_len`] bytes),
/// byte for byte those of [`super::build_tables_scalar`]. Lanes are the table entries, as in
/// `lut::q1::neon::build_tables`: the tables are built on the calling thread alone, before the
/// tiles run on all cores, so the scalar builder would be a serial cost.
pub unsafe fn build_tables(q: &[i8], ne0: usize, tab: &mut [u8]) {
    assert!(q.len() >= ne0 && ne0 % 32 == 0 && tab.len() >= super::tab_len(ne0));
    let (c0, c1) = (vld1q_s16(COEF_Q0.as_ptr()), vld1q_s16(COEF_Q1.as_ptr()));
    let (qp, tp) = (q.as_ptr(), tab.as_mut_ptr());
    // 16 q (8 pairs, 256 table bytes) per step
    for s in 0..ne0 / 16 {
        let x = vld1q_s8(qp.add(16 * s));
        let (x0, x1) = (vmovl_s8(vget_low_s8(x)), vmovl_high_s8(x));
        let t = tp.add(256 * s);
        pair_table::<0, 1>(x0, c0, c1, t);
        pair_table::<2, 3>(x0, c0, c1, t.add(32));
        pair_table::<4, 5>(x0, c0, c1, t.add(64));
        pair_table::<6, 7>(x0, c0, c1, t.add(96));
        pair_table::<0, 1>(x1, c0, c1, t.add(128));
        pair_table::<2, 3>(x1, c0, c1, t.add(160));
        pair_table::<4, 5>(x1, c0, c1, t.add(192));
        pair_table::<6, 7>(x1, c0, c1, t.add(224));
    }
}

/// Byte sums of the L and H parts of 8 pairs for 16 rows: the 4 code bytes at `bits` (32 bytes
/// between consecutive bytes of a row) against the tables of pairs `t[0..8]`. Each sum is at most
/// 8 * 31, so bytes cannot overflow.
#[inline(always)]
unsafe fn half_parts(bits: *const u8, t: *const u8) -> (uint8x16_t, uint8x16_t) {
    let m15 = vdupq_n_u8(0x0F);
    let mut la = vdupq_n_u8(0);
    let mut ha = vdupq_n_u8(0);
    for i in 0..4 {
        let w = vld1q_u8(bits.add(32 * i));
        let (lo, hi) = (vandq_u8(w, m15), vshrq_n_u8::<4>(w));
        // L and H of the pair in the low nibble, then of the pair in the high nibble
        let g = vld1q_u8_x4(t.add(64 * i));
        la = vaddq_u8(la, vaddq_u8(vqtbl1q_u8(g.0, lo), vqtbl1q_u8(g.2, hi)));
        ha = vaddq_u8(ha, vaddq_u8(vqtbl1q_u8(g.1, lo), vqtbl1q_u8(g.3, hi)));
    }
    (la, ha)
}

/// Exact integer sums `sum((code - 1) * q)` for 16 rows of one tile and one 32-element activation
/// block (`bits` = the rows' first code byte of the block, `t` = the block's tables), as four
/// vectors of rows 0-3, 4-7, 8-11, 12-15.
#[inline(always)]
unsafe fn isum_block(bits: *const u8, t: *const u8) -> [int32x4_t; 4] {
    let (la0, ha0) = half_parts(bits, t);
    let (la1, ha1) = half_parts(bits.add(32 * 4), t.add(TAB_BYTES / 2));
    // The halves added while widening: L + 32 * H of 16 pairs is at most 16 * 1020, a u16.
    let s0 = vmlaq_n_u16(vaddl_u8(vget_low_u8(la0), vget_low_u8(la1)), vaddl_u8(vget_low_u8(ha0), vget_low_u8(ha1)), 32);
    let s1 = vmlaq_n_u16(vaddl_high_u8(la0, la1), vaddl_high_u8(ha0, ha1), 32);
    // Less the 16 * 512 bias while widening to 32 bits: the u32 wraps to the i32 two's complement.
    let bias = vdupq_n_u16(16 * 512);
    let is = [
        vsubl_u16(vget_low_u16(s0), vget_low_u16(bias)),
        vsubl_high_u16(s0, bias),
        vsubl_u16(vget_low_u16(s1), vget_low_u16(bias)),
        vsubl_high_u16(s1, bias),
    ];
    [vreinterpretq_s32_u32(is[0]), vreinterpretq_s32_u32(is[1]), vreinterpretq_s32_u32(is[2]), vreinterpretq_s32_u32(is[3])]
}

/// Rows `r0..r0 + 16` of one tile (`wp` = the tile's bytes): `out[i]` = row `r0 + i` · act.
#[inline(always)]
unsafe fn half_dot(p: &PackedQ2, wp: *const u8, tp: *const u8, dp: *const f32, r0: usize, out: *mut f32) {
    let subs = p.block / 32;
    let tbb = p.tile_block_bytes();
    let mut acc = [[vdupq_n_f32(0.0); 4]; 4];
    for b in 0..p.nb {
        let blk = wp.add(b * tbb);
        if r0 == 0 {
            // the first half's pass brings the lines in for the second
            prefetch_lines(blk.wrapping_add(crate::lut::q1::PREFETCH_BLOCKS * tbb), tbb);
        }
        let (d0, d1) = (vld1q_u16(blk.add(2 * r0) as *const u16), vld1q_u16(blk.add(2 * r0 + 16) as *const u16));
        let dw = [widen_low(d0), widen_high(d0), widen_low(d1), widen_high(d1)];
        for k in 0..subs {
            let j = subs * b + k;
            // block k of 32 weights: code bytes 8k..8k+8 of each row
            let is = isum_block(blk.add(64 + 32 * 8 * k + r0), tp.add(j * TAB_BYTES));
            let dx = *dp.add(j);
            let a = &mut acc[j & 3];
            // the reference order, multiply and add kept apart (never fmla)
            for v in 0..4 {
                a[v] = vaddq_f32(a[v], vmulq_f32(vmulq_n_f32(dw[v], dx), vcvtq_f32_s32(is[v])));
            }
        }
    }
    for v in 0..4 {
        let s = vaddq_f32(vaddq_f32(acc[0][v], acc[1][v]), vaddq_f32(acc[2][v], acc[3][v]));
        vst1q_f32(out.add(4 * v), s);
    }
}

/// `out[r] = row r of tile · act` for the 32 rows of tile `tile` (`tab` = the activation's
/// tables, `d` = its block scales): the semantics of `avx2::tile_dot`.
pub unsafe fn tile_dot(p: &PackedQ2, tile: usize, tab: &[u8], d: &[f32], out: &mut [f32; TILE]) {
    let nj = p.nb * (p.block / 32);
    let w = p.tile(tile);
    assert!(tab.len() >= nj * TAB_BYTES && d.len() >= nj);
    let (wp, tp, dp) = (w.as_ptr(), tab.as_ptr(), d.as_ptr());
    half_dot(p, wp, tp, dp, 0, out.as_mut_ptr());
    half_dot(p, wp, tp, dp, HALF, out.as_mut_ptr().add(HALF));
}
