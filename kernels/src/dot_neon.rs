//! AArch64 NEON dot products (base NEON, and the dot-product extension for the `sdot` variants).
//! Integer block sums come from SIMD; the float accumulation is the scalar order of `dot_scalar`
//! (`acc_q`, no FMA), so every result is bit-identical to the scalar reference.
//!
//! Rust 1.63 (Debian's aarch64 toolchain) has the base NEON intrinsics but not `vdotq_s32`, so
//! `sdot` is emitted with `asm!`. Q2_0 uses the scalar kernels on NEON for now.

use crate::act::{Act, QK};
use crate::dot_scalar::{acc_q, finish};
use crate::f16::f16_to_f32;
use std::arch::aarch64::*;

const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

/// 0xFF where element i of the 16 starting at byte `b` of `qs` has its bit set.
#[inline(always)]
unsafe fn mask16(qs: *const u8, bits: uint8x16_t) -> uint8x16_t {
    let v = vcombine_u8(vdup_n_u8(*qs), vdup_n_u8(*qs.add(1)));
    vtstq_u8(v, bits)
}

/// Sum of ±q over one 32-element activation block whose bits are the 4 bytes at `qs`.
#[inline(always)]
unsafe fn q1_isum_base(qs: *const u8, q: *const i8, qsum: i32, bits: uint8x16_t) -> i32 {
    let m0 = vreinterpretq_s8_u8(mask16(qs, bits));
    let m1 = vreinterpretq_s8_u8(mask16(qs.add(2), bits));
    let s0 = vandq_s8(m0, vld1q_s8(q));
    let s1 = vandq_s8(m1, vld1q_s8(q.add(16)));
    let on = vaddlvq_s16(vaddq_s16(vpaddlq_s8(s0), vpaddlq_s8(s1)));
    2 * on - qsum
}

/// `acc + a . b` per group of four bytes: `sdot v0.4s, v1.16b, v2.16b` of the dot-product
/// extension, emitted as its encoding (Rust 1.63's assembler rejects the mnemonic and the
/// `dotprod` extension directive), hence the fixed registers.
#[inline(always)]
unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut r = acc;
    std::arch::asm!(".inst 0x4e829420", inout("v0") r, in("v1") a, in("v2") b, options(pure, nomem, nostack));
    r
}

/// Sum of ±q with `sdot`: the bit masks become ±1 bytes (no qsum needed).
#[inline(always)]
unsafe fn q1_isum_dot(qs: *const u8, q: *const i8, bits: uint8x16_t) -> i32 {
    let one = vdupq_n_s8(1);
    let neg = vdupq_n_s8(-1);
    let w0 = vbslq_s8(mask16(qs, bits), one, neg);
    let w1 = vbslq_s8(mask16(qs.add(2), bits), one, neg);
    let acc = sdot(sdot(vdupq_n_s32(0), w0, vld1q_s8(q)), w1, vld1q_s8(q.add(16)));
    vaddvq_s32(acc)
}

fn check(row: &[u8], act: &Act, row_bytes: usize, nb: usize) {
    assert!(row.len() >= row_bytes && act.d.len() >= nb && act.q.len() >= nb * QK && act.qsum.len() >= nb);
}

#[inline(always)]
unsafe fn q1_isums<const DOT: bool>(row: &[u8], act: &Act, ne0: usize, mut each: impl FnMut(usize, usize, i32)) {
    let nw = ne0 / 128;
    check(row, act, nw * 18, nw * 4);
    let bits = vld1q_u8(BITS.as_ptr());
    let (rp, qp) = (row.as_ptr(), act.q.as_ptr());
    for b in 0..nw {
        let qs = rp.add(18 * b + 2);
        for k in 0..4 {
            let j = 4 * b + k;
            let s = if DOT {
                q1_isum_dot(qs.add(4 * k), qp.add(QK * j), bits)
            } else {
                q1_isum_base(qs.add(4 * k), qp.add(QK * j), *act.qsum.get_unchecked(j), bits)
            };
            each(b, j, s);
        }
    }
}

unsafe fn dot_q1_0_impl<const DOT: bool>(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let mut acc = [0.0f32; 4];
    let mut dw = 0.0f32;
    let mut last = usize::MAX;
    q1_isums::<DOT>(row, act, ne0, |b, j, s| {
        if b != last {
            dw = f16_to_f32(u16::from_le_bytes([row[18 * b], row[18 * b + 1]]));
            last = b;
        }
        acc_q(&mut acc, j, dw, act.d[j], s);
    });
    finish(acc)
}

/// Integer sums of w*q for one Q8_0 block (base NEON: widening multiplies).
#[inline(always)]
unsafe fn q8_isum_base(w: *const i8, q: *const i8) -> i32 {
    let (w0, w1) = (vld1q_s8(w), vld1q_s8(w.add(16)));
    let (q0, q1) = (vld1q_s8(q), vld1q_s8(q.add(16)));
    let p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(q0));
    let p1 = vmull_high_s8(w0, q0);
    let p2 = vmull_s8(vget_low_s8(w1), vget_low_s8(q1));
    let p3 = vmull_high_s8(w1, q1);
    let s = vaddq_s32(vaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)), vaddq_s32(vpaddlq_s16(p2), vpaddlq_s16(p3)));
    vaddvq_s32(s)
}

#[inline(always)]
unsafe fn q8_isum_dot(w: *const i8, q: *const i8) -> i32 {
    let acc = sdot(vdupq_n_s32(0), vld1q_s8(w), vld1q_s8(q));
    vaddvq_s32(sdot(acc, vld1q_s8(w.add(16)), vld1q_s8(q.add(16))))
}

unsafe fn q8_isums<const DOT: bool>(row: &[u8], act: &Act, ne0: usize, mut each: impl FnMut(usize, i32)) {
    let nb = ne0 / QK;
    check(row, act, nb * 34, nb);
    let (rp, qp) = (row.as_ptr(), act.q.as_ptr());
    for j in 0..nb {
        let w = rp.add(34 * j + 2) as *const i8;
        let s = if DOT { q8_isum_dot(w, qp.add(QK * j)) } else { q8_isum_base(w, qp.add(QK * j)) };
        each(j, s);
    }
}

unsafe fn dot_q8_0_impl<const DOT: bool>(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let mut acc = [0.0f32; 4];
    q8_isums::<DOT>(row, act, ne0, |j, s| {
        let dw = f16_to_f32(u16::from_le_bytes([row[34 * j], row[34 * j + 1]]));
        acc_q(&mut acc, j, dw, act.d[j], s);
    });
    finish(acc)
}

// Safe entry points for the dispatch tables: the NEON ones are always valid on aarch64 (NEON is
// mandatory there); the `_dot` ones are only reachable through the table selected when the CPU
// reports the dot-product extension.
pub fn dot_q1_0(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { dot_q1_0_impl::<false>(r, a, n) }
}
pub fn dot_q1_0_dot(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { dot_q1_0_impl::<true>(r, a, n) }
}
pub fn isums_q1_0(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { q1_isums::<false>(r, a, n, |_, j, s| o[j] = s) }
}
pub fn isums_q1_0_dot(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { q1_isums::<true>(r, a, n, |_, j, s| o[j] = s) }
}
pub fn dot_q8_0(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { dot_q8_0_impl::<false>(r, a, n) }
}
pub fn dot_q8_0_dot(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { dot_q8_0_impl::<true>(r, a, n) }
}
pub fn isums_q8_0(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { q8_isums::<false>(r, a, n, |j, s| o[j] = s) }
}
pub fn isums_q8_0_dot(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { q8_isums::<true>(r, a, n, |j, s| o[j] = s) }
}
