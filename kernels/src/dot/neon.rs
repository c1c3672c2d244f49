//! AArch64 NEON dot products (base NEON, and the dot-product extension for the `sdot` variants).
//! Integer block sums come from SIMD; the float accumulation is the scalar order of `dot::scalar`
//! (`acc_q`, no FMA) with the four accumulators in one register, so every result is bit-identical
//! to the scalar reference. Q1_0 and Q8_0 live here, Q2_0 in `dot::neon_q2`.
//!
//! Q1_0 tensors are repacked at load for the lookup-table kernels (`lut::q1::neon`), which then do
//! their matvecs and matmuls; the Q1_0 row kernels here serve rows that are not packed (the
//! start-up self-check, tests, the bench's row-kernel comparison).
//!
//! Rust 1.63 (Debian's aarch64 toolchain) has the base NEON intrinsics but not `vdotq_s32`, so
//! `sdot` is emitted with `asm!`.

use crate::act::{Act, QK};
use crate::dot::scalar::{acc_q, finish};
use crate::f16::f16_to_f32;
use crate::formats::read_u16;
use std::arch::aarch64::*;

/// Most activations one `dot_multi` call takes (the dispatch contract).
const MAX_TOKENS: usize = 8;

const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

// ---- helpers shared with dot::neon_q2 ----

/// `acc + a . b` per group of four bytes: `sdot v0.4s, v1.16b, v2.16b` of the dot-product
/// extension, emitted as its encoding (Rust 1.63's assembler rejects the mnemonic and the
/// `dotprod` extension directive), hence the fixed registers.
#[inline(always)]
pub(crate) unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut r = acc;
    std::arch::asm!(".inst 0x4e829420", inout("v0") r, in("v1") a, in("v2") b, options(pure, nomem, nostack));
    r
}

/// One step of the shared accumulation order for four consecutive activation blocks starting at a
/// multiple of 4 (lane k is accumulator k): `acc + (dw * dx) * isum`, multiply and add kept apart.
#[inline(always)]
pub(crate) unsafe fn acc_step(acc: float32x4_t, dw: float32x4_t, dx: *const f32, isum: int32x4_t) -> float32x4_t {
    vaddq_f32(acc, vmulq_f32(vmulq_f32(dw, vld1q_f32(dx)), vcvtq_f32_s32(isum)))
}

#[inline(always)]
pub(crate) unsafe fn to_array(acc: float32x4_t) -> [f32; 4] {
    let mut a = [0.0f32; 4];
    vst1q_f32(a.as_mut_ptr(), acc);
    a
}

/// The fp16 block scale at `row[off..off + 2]` as f32.
#[inline(always)]
pub(crate) fn scale(row: &[u8], off: usize) -> f32 {
    f16_to_f32(read_u16(row, off))
}

pub(crate) fn check(row: &[u8], act: &Act, row_bytes: usize, nb: usize) {
    assert!(row.len() >= row_bytes && act.d.len() >= nb && act.q.len() >= nb * QK && act.qsum.len() >= nb);
}

// ---- Q1_0 ----

/// 0xFF where element i of the 16 starting at byte `b` of `qs` has its bit set.
#[inline(always)]
unsafe fn mask16(qs: *const u8, bits: uint8x16_t) -> uint8x16_t {
    let v = vcombine_u8(vdup_n_u8(*qs), vdup_n_u8(*qs.add(1)));
    vtstq_u8(v, bits)
}

/// The weights of one Q1_0 block (16 bytes of bits at `qs`) in the form the integer sums use, built
/// once per block and applied to every activation: with `sdot` the ±1 weights themselves, on base
/// NEON 0xFF where the weight is +1 (then sum(±q) = 2 * sum(q where set) - sum(q)).
#[inline(always)]
unsafe fn q1_weights<const DOT: bool>(qs: *const u8, bits: uint8x16_t) -> [int8x16_t; 8] {
    let (one, neg) = (vdupq_n_s8(1), vdupq_n_s8(-1));
    let mut w = [one; 8];
    for (i, wi) in w.iter_mut().enumerate() {
        let m = mask16(qs.add(2 * i), bits);
        *wi = if DOT { vbslq_s8(m, one, neg) } else { vreinterpretq_s8_u8(m) };
    }
    w
}

/// sum(q where set) for one activation block as eight i16 lanes (at most 4 * 127 each).
#[inline(always)]
unsafe fn q1_on_base(m0: int8x16_t, m1: int8x16_t, q: *const i8) -> int16x8_t {
    vaddq_s16(vpaddlq_s8(vandq_s8(m0, vld1q_s8(q))), vpaddlq_s8(vandq_s8(m1, vld1q_s8(q.add(16)))))
}

/// sum(±q) for one activation block as four i32 lanes.
#[inline(always)]
unsafe fn q1_sum_dot(w0: int8x16_t, w1: int8x16_t, q: *const i8) -> int32x4_t {
    sdot(sdot(vdupq_n_s32(0), w0, vld1q_s8(q)), w1, vld1q_s8(q.add(16)))
}

/// Integer sums of ±q for the four activation blocks of one Q1_0 block (`q` -> 128 activations).
#[inline(always)]
unsafe fn q1_isum4<const DOT: bool>(w: &[int8x16_t; 8], q: *const i8, qsum: *const i32) -> int32x4_t {
    if DOT {
        let s: [int32x4_t; 4] = [0, 1, 2, 3].map(|k| q1_sum_dot(w[2 * k], w[2 * k + 1], q.add(QK * k)));
        vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]))
    } else {
        let on: [int16x8_t; 4] = [0, 1, 2, 3].map(|k| q1_on_base(w[2 * k], w[2 * k + 1], q.add(QK * k)));
        // pairwise adds keep each block's lanes apart; every partial stays below 32 * 127
        let on4 = vpaddlq_s16(vpaddq_s16(vpaddq_s16(on[0], on[1]), vpaddq_s16(on[2], on[3])));
        vsubq_s32(vaddq_s32(on4, on4), vld1q_s32(qsum))
    }
}

/// One Q1_0 row against up to 8 activations; the weights of each block are expanded once for all.
/// The single-activation `dot` is this with one activation, so the two agree by construction.
#[inline(always)]
unsafe fn q1_multi<const DOT: bool>(row: &[u8], acts: &[Act], ne0: usize, out: &mut [f32]) {
    let nw = ne0 / 128;
    assert!(acts.len() <= MAX_TOKENS && out.len() >= acts.len());
    for a in acts {
        check(row, a, nw * 18, nw * 4);
    }
    let bits = vld1q_u8(BITS.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); MAX_TOKENS];
    for b in 0..nw {
        let w = q1_weights::<DOT>(row.as_ptr().add(18 * b + 2), bits);
        let dw = vdupq_n_f32(scale(row, 18 * b));
        for (acc_t, a) in acc.iter_mut().zip(acts) {
            let isum = q1_isum4::<DOT>(&w, a.q.as_ptr().add(128 * b), a.qsum.as_ptr().add(4 * b));
            *acc_t = acc_step(*acc_t, dw, a.d.as_ptr().add(4 * b), isum);
        }
    }
    for (o, acc_t) in out.iter_mut().zip(&acc[..acts.len()]) {
        *o = finish(to_array(*acc_t));
    }
}

unsafe fn q1_dot<const DOT: bool>(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let mut out = [0.0f32; 1];
    q1_multi::<DOT>(row, std::slice::from_ref(act), ne0, &mut out);
    out[0]
}

unsafe fn q1_isums<const DOT: bool>(row: &[u8], act: &Act, ne0: usize, out: &mut [i32]) {
    let nw = ne0 / 128;
    check(row, act, nw * 18, nw * 4);
    assert!(out.len() >= nw * 4);
    let bits = vld1q_u8(BITS.as_ptr());
    for b in 0..nw {
        let w = q1_weights::<DOT>(row.as_ptr().add(18 * b + 2), bits);
        let isum = q1_isum4::<DOT>(&w, act.q.as_ptr().add(128 * b), act.qsum.as_ptr().add(4 * b));
        vst1q_s32(out.as_mut_ptr().add(4 * b), isum);
    }
}

// ---- Q8_0 ----

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
    q8_isums::<DOT>(row, act, ne0, |j, s| acc_q(&mut acc, j, scale(row, 34 * j), act.d[j], s));
    finish(acc)
}

// Safe entry points for the dispatch tables: the NEON ones are always valid on aarch64 (NEON is
// mandatory there); the `_dot` ones are only reachable through the table selected when the CPU
// reports the dot-product extension.
pub fn dot_q1_0(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { q1_dot::<false>(r, a, n) }
}
pub fn dot_q1_0_dot(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { q1_dot::<true>(r, a, n) }
}
pub fn dot_q1_0_multi(r: &[u8], a: &[Act], n: usize, o: &mut [f32]) {
    unsafe { q1_multi::<false>(r, a, n, o) }
}
pub fn dot_q1_0_multi_dot(r: &[u8], a: &[Act], n: usize, o: &mut [f32]) {
    unsafe { q1_multi::<true>(r, a, n, o) }
}
pub fn isums_q1_0(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { q1_isums::<false>(r, a, n, o) }
}
pub fn isums_q1_0_dot(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { q1_isums::<true>(r, a, n, o) }
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
