//! AArch64 NEON kernels for Q2_0 (ternary: 2-bit codes, weight = (code - 1) * d), for 128-weight
//! blocks and for 64-weight blocks (`_g64`), on base NEON and with `sdot`. Integer sums are exact
//! and the float accumulation follows `dot::scalar`, so results are bit-identical to the reference.
//!
//! Code byte p holds the codes of weights 4p..4p+4. Instead of shuffling codes into weight order,
//! the activations are loaded with `vld4q_s8`, which splits 64 of them the same way the four 2-bit
//! shifts split 16 code bytes: byte p of register m is weight 4p+m in both.

use crate::act::{Act, QK};
use crate::dot::neon::{acc_step, check, scale, sdot, to_array};
use crate::dot::scalar::{acc_q, finish};
use std::arch::aarch64::*;

/// The codes (0..3) of the 64 weights whose 16 code bytes start at `qs`, split as by `vld4q_s8`.
#[inline(always)]
unsafe fn codes(qs: *const u8) -> [int8x16_t; 4] {
    let v = vld1q_u8(qs);
    let three = vdupq_n_u8(3);
    [
        vreinterpretq_s8_u8(vandq_u8(v, three)),
        vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8::<2>(v), three)),
        vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8::<4>(v), three)),
        vreinterpretq_s8_u8(vshrq_n_u8::<6>(v)),
    ]
}

/// sum(code * q) over 64 weights as four i32 lanes: lanes 0 + 1 are the first activation block
/// (register bytes 0..8 are weights 0..32), lanes 2 + 3 the second.
#[inline(always)]
unsafe fn half_sums<const DOT: bool>(qs: *const u8, q: *const i8) -> int32x4_t {
    let c = codes(qs);
    let x = vld4q_s8(q);
    if DOT {
        sdot(sdot(sdot(sdot(vdupq_n_s32(0), c[0], x.0), c[1], x.1), c[2], x.2), c[3], x.3)
    } else {
        // i16 lanes: four products of at most 3 * 127, twice that after the pairwise add
        let lo = vmull_s8(vget_low_s8(c[0]), vget_low_s8(x.0));
        let lo = vmlal_s8(lo, vget_low_s8(c[1]), vget_low_s8(x.1));
        let lo = vmlal_s8(lo, vget_low_s8(c[2]), vget_low_s8(x.2));
        let lo = vmlal_s8(lo, vget_low_s8(c[3]), vget_low_s8(x.3));
        let hi = vmull_high_s8(c[0], x.0);
        let hi = vmlal_high_s8(hi, c[1], x.1);
        let hi = vmlal_high_s8(hi, c[2], x.2);
        let hi = vmlal_high_s8(hi, c[3], x.3);
        vpaddlq_s16(vpaddq_s16(lo, hi))
    }
}

/// sum((code - 1) * q) for four activation blocks: 128 weights whose code bytes are the 16 at
/// `qs_lo` then the 16 at `qs_hi`; `q` -> their 128 activations, `qsum` -> their four sums of q.
#[inline(always)]
unsafe fn isum4<const DOT: bool>(qs_lo: *const u8, qs_hi: *const u8, q: *const i8, qsum: *const i32) -> int32x4_t {
    let s = vpaddq_s32(half_sums::<DOT>(qs_lo, q), half_sums::<DOT>(qs_hi, q.add(64)));
    // sum((code - 1) * q) = sum(code * q) - sum(q)
    vsubq_s32(s, vld1q_s32(qsum))
}

/// The same for the two activation blocks of one lone 64-weight block.
#[inline(always)]
unsafe fn isum2<const DOT: bool>(qs: *const u8, q: *const i8, qsum: *const i32) -> [i32; 2] {
    let h = half_sums::<DOT>(qs, q);
    [vgetq_lane_s32::<0>(h) + vgetq_lane_s32::<1>(h) - *qsum, vgetq_lane_s32::<2>(h) + vgetq_lane_s32::<3>(h) - *qsum.add(1)]
}

/// Walks a Q2_0 row of `block`-weight blocks (128 or 64) four activation blocks at a time (one
/// 128-block or two 64-blocks): `quad(j, isums of blocks j..j+4, offsets of the block scales for
/// lanes 0-1 and 2-3)`, then `pair(j, isums of j and j+1, scale offset)` for the lone last block of
/// a g64 row with an odd block count.
#[inline(always)]
unsafe fn walk<const DOT: bool>(
    row: &[u8],
    act: &Act,
    ne0: usize,
    block: usize,
    mut quad: impl FnMut(usize, int32x4_t, usize, usize),
    pair: impl FnOnce(usize, [i32; 2], usize),
) {
    let bbytes = 2 + block / 4;
    let nb = ne0 / QK;
    check(row, act, ne0 / block * bbytes, nb);
    let (rp, qp, sp) = (row.as_ptr(), act.q.as_ptr(), act.qsum.as_ptr());
    let mut j = 0;
    while j + 4 <= nb {
        let first = bbytes * (j * QK / block);
        // the second 64 weights: same block (128), or the next block (64)
        let (hi, second) = if block == 128 { (first + 18, first) } else { (first + bbytes + 2, first + bbytes) };
        quad(j, isum4::<DOT>(rp.add(first + 2), rp.add(hi), qp.add(QK * j), sp.add(j)), first, second);
        j += 4;
    }
    if j < nb {
        let first = bbytes * (j * QK / block);
        pair(j, isum2::<DOT>(rp.add(first + 2), qp.add(QK * j), sp.add(j)), first);
    }
}

unsafe fn dot<const DOT: bool>(row: &[u8], act: &Act, ne0: usize, block: usize) -> f32 {
    let mut acc = vdupq_n_f32(0.0);
    let mut tail = None;
    walk::<DOT>(
        row,
        act,
        ne0,
        block,
        |j, isum, first, second| {
            let da = scale(row, first);
            let db = if second == first { da } else { scale(row, second) };
            let dw = [da, da, db, db];
            acc = acc_step(acc, vld1q_f32(dw.as_ptr()), act.d.as_ptr().add(j), isum);
        },
        |j, is, off| tail = Some((j, is, off)),
    );
    let mut a = to_array(acc);
    if let Some((j, is, off)) = tail {
        let dw = scale(row, off);
        acc_q(&mut a, j, dw, act.d[j], is[0]);
        acc_q(&mut a, j + 1, dw, act.d[j + 1], is[1]);
    }
    finish(a)
}

unsafe fn isums<const DOT: bool>(row: &[u8], act: &Act, ne0: usize, block: usize, out: &mut [i32]) {
    assert!(out.len() >= ne0 / QK);
    let o = out.as_mut_ptr();
    walk::<DOT>(row, act, ne0, block, |j, isum, _, _| vst1q_s32(o.add(j), isum), |j, is, _| {
        *o.add(j) = is[0];
        *o.add(j + 1) = is[1];
    });
}

// Safe entry points for the dispatch tables (see dot::neon): base NEON always exists on aarch64;
// the `_dot` ones are only reachable through the table chosen when the CPU has `sdot`.
pub fn dot_q2_0(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { dot::<false>(r, a, n, 128) }
}
pub fn dot_q2_0_dot(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { dot::<true>(r, a, n, 128) }
}
pub fn dot_q2_0_g64(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { dot::<false>(r, a, n, 64) }
}
pub fn dot_q2_0_g64_dot(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { dot::<true>(r, a, n, 64) }
}
pub fn isums_q2_0(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { isums::<false>(r, a, n, 128, o) }
}
pub fn isums_q2_0_dot(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { isums::<true>(r, a, n, 128, o) }
}
pub fn isums_q2_g64(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { isums::<false>(r, a, n, 64, o) }
}
pub fn isums_q2_g64_dot(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { isums::<true>(r, a, n, 64, o) }
}
