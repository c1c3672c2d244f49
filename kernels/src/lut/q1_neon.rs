//! The AArch64 NEON kernels of [`crate::lut::q1`]: the same packed tiles, tables and float order as
//! the AVX2 ones, hence the same bits. NEON is mandatory on AArch64, so these need no detection.
//!
//! Differences from AVX2 forced by the register file (32 x 128 bits):
//! - a tile is computed as two halves of 16 rows, one after the other: four float accumulators for
//!   32 rows would take all 32 registers, for 16 rows they take 16 and leave room for the tables.
//!   Each half reloads the activation tables (256 bytes per block, from L1).
//! - one `tbl` (`vqtbl1q_u8`) looks up 16 rows, so each 4-weight group costs two lookups per half.
//!
//! fp16 row scales are widened with `fcvtl` / `fcvtl2` in `asm!` (Rust 1.63 has no f16 NEON
//! intrinsics). With Linux's default FPCR that is exact for every half, subnormals and infinities
//! included, as `f16_to_f32` is; only a signalling NaN comes out quiet, and NaN stays NaN.
//!
//! Speed: NOT measured on real hardware (the crate is only tested under qemu here). The only
//! evidence is the object code from Debian's rustc 1.63: 88 instructions per 16 rows x 32 weights
//! (176 per 32 x 32 tile-block, no `fmla`), against ~85 per row x 32 weights for the `sdot` row
//! kernel of `dot::neon` built by the same compiler.

use super::{TAB_BYTES, TILE, TILE_BLOCK_BYTES};
use crate::neon_util::{widen_high, widen_low};
use crate::prefetch::prefetch_lines;
use std::arch::aarch64::*;

/// Rows per half tile: one `tbl` lookup's worth.
const HALF: usize = 16;

/// `SIGNS[i][p]` = bit i of p ? +1 : -1 for the table entries p = 0..7 (entries 8-15 only flip
/// the sign of q3, see `group_table`).
const SIGNS: [[i16; 8]; 3] = [
    [-1, 1, -1, 1, -1, 1, -1, 1],
    [-1, -1, 1, 1, -1, -1, 1, 1],
    [-1, -1, -1, -1, 1, 1, 1, 1],
];

/// The 16 entries `512 + sum ±q` of one group whose four q sit in lanes `I0..I3` of `x`, as the
/// 32 table bytes `[L0-15, H0-15]` stored at `dst`.
#[inline(always)]
unsafe fn group_table<const I0: i32, const I1: i32, const I2: i32, const I3: i32>(
    x: int16x8_t,
    signs: &[int16x8_t; 3],
    dst: *mut u8,
) {
    let bias = vdupq_n_s16(512);
    let one = vdupq_n_s16(1);
    let mut v = vmlaq_laneq_s16::<I0>(bias, signs[0], x);
    v = vmlaq_laneq_s16::<I1>(v, signs[1], x);
    v = vmlaq_laneq_s16::<I2>(v, signs[2], x);
    // entries 8-15 differ from 0-7 only in the sign of q3
    let lo = vreinterpretq_u16_s16(vmlsq_laneq_s16::<I3>(v, one, x));
    let hi = vreinterpretq_u16_s16(vmlaq_laneq_s16::<I3>(v, one, x));
    let l = vandq_u8(vmovn_high_u16(vmovn_u16(lo), hi), vdupq_n_u8(31));
    let h = vshrn_high_n_u16::<5>(vshrn_n_u16::<5>(lo), hi);
    vst1q_u8(dst, l);
    vst1q_u8(dst.add(16), h);
}

/// Builds the tables for `ne0/32` activation blocks of `q` into `tab` ([`super::tab_len`] bytes),
/// byte for byte those of [`super::build_tables_scalar`]. Lanes are the 16 table entries: ~14
/// instructions per 4-element group against ~60 for the scalar builder as LLVM compiles it. Worth
/// it because the tables are built on the calling thread alone, before the tiles run on all cores.
pub unsafe fn build_tables(q: &[i8], ne0: usize, tab: &mut [u8]) {
    let nsub = ne0 / 32;
    assert!(q.len() >= nsub * 32 && tab.len() >= nsub * TAB_BYTES);
    let signs = [vld1q_s16(SIGNS[0].as_ptr()), vld1q_s16(SIGNS[1].as_ptr()), vld1q_s16(SIGNS[2].as_ptr())];
    let (qp, tp) = (q.as_ptr(), tab.as_mut_ptr());
    // four groups (16 q) per step: 32 q per block, 8 groups
    for s in 0..nsub * 2 {
        let x = vld1q_s8(qp.add(16 * s));
        let (x01, x23) = (vmovl_s8(vget_low_s8(x)), vmovl_high_s8(x));
        let t = tp.add(128 * s);
        group_table::<0, 1, 2, 3>(x01, &signs, t);
        group_table::<4, 5, 6, 7>(x01, &signs, t.add(32));
        group_table::<0, 1, 2, 3>(x23, &signs, t.add(64));
        group_table::<4, 5, 6, 7>(x23, &signs, t.add(96));
    }
}

/// Exact integer sums of ±q for 16 rows of one tile and one activation block (`bits` = the rows'
/// first sign byte, 32 bytes between consecutive bytes of a row; `t` = the block's tables), as
/// four vectors of rows 0-3, 4-7, 8-11, 12-15.
#[inline(always)]
unsafe fn isum_block(bits: *const u8, t: *const u8) -> [int32x4_t; 4] {
    let m15 = vdupq_n_u8(0x0F);
    let mut la = vdupq_n_u8(0);
    let mut ha = vdupq_n_u8(0);
    for p in 0..4 {
        let w = vld1q_u8(bits.add(32 * p));
        let (lo, hi) = (vandq_u8(w, m15), vshrq_n_u8::<4>(w));
        // L and H of the group in the low nibble, then of the group in the high nibble
        let g = vld1q_u8_x4(t.add(64 * p));
        la = vaddq_u8(la, vaddq_u8(vqtbl1q_u8(g.0, lo), vqtbl1q_u8(g.2, hi)));
        ha = vaddq_u8(ha, vaddq_u8(vqtbl1q_u8(g.1, lo), vqtbl1q_u8(g.3, hi)));
    }
    // L + 32*H - 8*512 = L + 32*(H - 128), and H - 128 is H ^ 0x80 read as i8 (H < 256), which
    // folds the bias into the widening shift; every partial sum fits i16 (|sum| <= 32 * 127).
    let hs = vreinterpretq_s8_u8(veorq_u8(ha, vdupq_n_u8(0x80)));
    let s0 = vreinterpretq_s16_u16(vaddw_u8(vreinterpretq_u16_s16(vshll_n_s8::<5>(vget_low_s8(hs))), vget_low_u8(la)));
    let s1 = vreinterpretq_s16_u16(vaddw_high_u8(vreinterpretq_u16_s16(vshll_high_n_s8::<5>(hs)), la));
    [vmovl_s16(vget_low_s16(s0)), vmovl_high_s16(s0), vmovl_s16(vget_low_s16(s1)), vmovl_high_s16(s1)]
}

unsafe fn half_dot(wp: *const u8, tp: *const u8, dp: *const f32, nb: usize, r0: usize, out: *mut f32) {
    let mut acc = [[vdupq_n_f32(0.0); 4]; 4];
    for b in 0..nb {
        let blk = wp.add(b * TILE_BLOCK_BYTES);
        if r0 == 0 {
            // the first half's pass brings the lines in for the second
            prefetch_lines(blk.wrapping_add(super::PREFETCH_BYTES), TILE_BLOCK_BYTES);
        }
        let (d0, d1) = (vld1q_u16(blk.add(2 * r0) as *const u16), vld1q_u16(blk.add(2 * r0 + 16) as *const u16));
        let dw = [widen_low(d0), widen_high(d0), widen_low(d1), widen_high(d1)];
        // Rolled: LLVM keeps the accumulators on the stack (2 ldp + 2 stp per block). Unrolled by
        // hand they would stay in registers, but LLVM then hoists the tables of all four blocks
        // and spills more than that saves (checked in the object code).
        for (k, acc_k) in acc.iter_mut().enumerate() {
            let j = 4 * b + k;
            let is = isum_block(blk.add(64 + 128 * k + r0), tp.add(j * TAB_BYTES));
            let dx = *dp.add(j);
            // the reference order, multiply and add kept apart (never fmla)
            for v in 0..4 {
                acc_k[v] = vaddq_f32(acc_k[v], vmulq_f32(vmulq_n_f32(dw[v], dx), vcvtq_f32_s32(is[v])));
            }
        }
    }
    for v in 0..4 {
        let s = vaddq_f32(vaddq_f32(acc[0][v], acc[1][v]), vaddq_f32(acc[2][v], acc[3][v]));
        vst1q_f32(out.add(4 * v), s);
    }
}

/// `out[r] = row r of tile · act` for the 32 rows of one tile (`w` = the tile's bytes, `tab` =
/// the activation's tables, `d` = its block scales): the semantics of `avx2::tile_dot`.
pub unsafe fn tile_dot(w: &[u8], tab: &[u8], d: &[f32], nb: usize, out: &mut [f32; TILE]) {
    assert!(w.len() >= nb * TILE_BLOCK_BYTES && tab.len() >= nb * 4 * TAB_BYTES && d.len() >= nb * 4);
    let (wp, tp, dp) = (w.as_ptr(), tab.as_ptr(), d.as_ptr());
    half_dot(wp, tp, dp, nb, 0, out.as_mut_ptr());
    half_dot(wp, tp, dp, nb, HALF, out.as_mut_ptr().add(HALF));
}
