//! Scalar reference dot products (row of weights · quantised activation). Always available; every
//! SIMD path must return exactly the same bits.
//!
//! # Accumulation order (shared by ALL paths: scalar, AVX2, AVX-512, later NEON)
//! Let `j` be the index of a 32-element activation block and `isum[j]` the exact integer sum of
//! `w_int * q` over that block (`w_int` = ±1 for Q1_0, code-1 for Q2_0, the i8 for Q8_0).
//! Four float accumulators, selected by `j % 4`, all start at +0.0:
//! ```text
//! quantised weights:  acc[j % 4] = acc[j % 4] + (dw(j) * dx[j]) * (isum[j] as f32)
//! F32 / F16 weights:  acc[j % 4] = acc[j % 4] + dx[j] * fsum[j]
//! result = (acc[0] + acc[1]) + (acc[2] + acc[3])
//! ```
//! with separate multiply and add (never FMA). `fsum[j]` (float weights) uses 8 lanes:
//! `lane[l] = (((0 + w[l]*x[l]) + w[8+l]*x[8+l]) + w[16+l]*x[16+l]) + w[24+l]*x[24+l]` with
//! `x = q as f32` (elements past the row end are skipped), then
//! `t[l] = lane[l] + lane[l+4]`, `fsum = (t[0] + t[2]) + (t[1] + t[3])`.
//! Four accumulators map onto one 128-bit register, so SIMD paths keep the float work in order.

use crate::act::{Act, QK};
use crate::f16::f16_to_f32;
use crate::formats::read_u16;

/// One step of the shared accumulation order for quantised weights.
#[inline(always)]
pub fn acc_q(acc: &mut [f32; 4], j: usize, dw: f32, dx: f32, isum: i32) {
    acc[j & 3] = acc[j & 3] + (dw * dx) * (isum as f32);
}

/// Final reduction of the four accumulators.
#[inline(always)]
pub fn finish(acc: [f32; 4]) -> f32 {
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

// ---- integer sums per activation block (used by the scalar dots and by tests of the SIMD paths) ----

/// Integer sums of ±q for each activation block of a Q1_0 row: `out[j]`, `j < ne0/32`.
pub fn isums_q1_0(row: &[u8], act: &Act, ne0: usize, out: &mut [i32]) {
    for b in 0..ne0 / 128 {
        let qs = &row[b * 18 + 2..b * 18 + 18];
        for k in 0..4 {
            let j = 4 * b + k;
            let q = &act.q[j * QK..(j + 1) * QK];
            // bit i of `bits` <-> element 32k+i; branch-free so compilers vectorise it (NEON too)
            let bits = u32::from_le_bytes([qs[4 * k], qs[4 * k + 1], qs[4 * k + 2], qs[4 * k + 3]]);
            let mut on = 0i32; // sum of q where the bit is set
            for i in 0..QK {
                on += (q[i] as i32) & -(((bits >> i) & 1) as i32);
            }
            out[j] = 2 * on - act.qsum[j];
        }
    }
}

#[inline(always)]
fn q2_code(qs: &[u8], e: usize) -> i32 {
    ((qs[e / 4] >> (2 * (e % 4))) & 3) as i32
}

/// Integer sums of (code-1)*q for Q2_0 rows with `block` = 128 or 64 weights per block.
pub fn isums_q2(row: &[u8], act: &Act, ne0: usize, block: usize, out: &mut [i32]) {
    let bbytes = 2 + block / 4;
    let subs = block / QK;
    for b in 0..ne0 / block {
        let qs = &row[b * bbytes + 2..(b + 1) * bbytes];
        for k in 0..subs {
            let j = subs * b + k;
            let q = &act.q[j * QK..(j + 1) * QK];
            let mut s = 0i32;
            for i in 0..QK {
                s += (q2_code(qs, QK * k + i) - 1) * q[i] as i32;
            }
            out[j] = s;
        }
    }
}

/// Integer sums of w*q for Q8_0 rows.
pub fn isums_q8_0(row: &[u8], act: &Act, ne0: usize, out: &mut [i32]) {
    for j in 0..ne0 / QK {
        let w = &row[j * 34 + 2..j * 34 + 34];
        let q = &act.q[j * QK..(j + 1) * QK];
        out[j] = (0..QK).map(|i| (w[i] as i8) as i32 * q[i] as i32).sum();
    }
}

// ---- dots ----

pub fn dot_q1_0(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let mut acc = [0.0f32; 4];
    let mut is = [0i32; 4];
    for b in 0..ne0 / 128 {
        let blk = &row[b * 18..b * 18 + 18];
        let sub = Act { d: &act.d[4 * b..4 * b + 4], q: &act.q[128 * b..128 * b + 128], qsum: &act.qsum[4 * b..4 * b + 4], q1p: &[] };
        isums_q1_0(blk, &sub, 128, &mut is);
        let dw = f16_to_f32(read_u16(blk, 0));
        for k in 0..4 {
            acc_q(&mut acc, 4 * b + k, dw, act.d[4 * b + k], is[k]);
        }
    }
    finish(acc)
}

fn dot_q2(row: &[u8], act: &Act, ne0: usize, block: usize) -> f32 {
    let bbytes = 2 + block / 4;
    let subs = block / QK;
    let mut acc = [0.0f32; 4];
    let mut is = [0i32; 4];
    for b in 0..ne0 / block {
        let blk = &row[b * bbytes..(b + 1) * bbytes];
        let j0 = subs * b;
        let sub = Act { d: &act.d[j0..j0 + subs], q: &act.q[QK * j0..QK * (j0 + subs)], qsum: &act.qsum[j0..j0 + subs], q1p: &[] };
        isums_q2(blk, &sub, block, block, &mut is);
        let dw = f16_to_f32(read_u16(blk, 0));
        for k in 0..subs {
            acc_q(&mut acc, j0 + k, dw, act.d[j0 + k], is[k]);
        }
    }
    finish(acc)
}

pub fn dot_q2_0(row: &[u8], act: &Act, ne0: usize) -> f32 {
    dot_q2(row, act, ne0, 128)
}

pub fn dot_q2_0_g64(row: &[u8], act: &Act, ne0: usize) -> f32 {
    dot_q2(row, act, ne0, 64)
}

pub fn dot_q8_0(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let mut acc = [0.0f32; 4];
    let mut is = [0i32; 1];
    for j in 0..ne0 / QK {
        let blk = &row[j * 34..j * 34 + 34];
        let sub = Act { d: &act.d[j..j + 1], q: &act.q[QK * j..QK * j + QK], qsum: &act.qsum[j..j + 1], q1p: &[] };
        isums_q8_0(blk, &sub, QK, &mut is);
        acc_q(&mut acc, j, f16_to_f32(read_u16(blk, 0)), act.d[j], is[0]);
    }
    finish(acc)
}

/// `fsum` of one activation block for float weights (see the module docs); `w(i)` gives weight i
/// of the block, `len` <= 32 is how many weights the block has.
#[inline(always)]
pub fn fsum_block<W: Fn(usize) -> f32>(w: W, q: &[i8], len: usize) -> f32 {
    let mut lane = [0.0f32; 8];
    for c in 0..4 {
        for l in 0..8 {
            let i = 8 * c + l;
            if i < len {
                lane[l] = lane[l] + w(i) * (q[i] as f32);
            }
        }
    }
    let t = [lane[0] + lane[4], lane[1] + lane[5], lane[2] + lane[6], lane[3] + lane[7]];
    (t[0] + t[2]) + (t[1] + t[3])
}

pub fn dot_f32(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let mut acc = [0.0f32; 4];
    let nb = (ne0 + QK - 1) / QK;
    for j in 0..nb {
        let len = (ne0 - j * QK).min(QK);
        let base = j * QK * 4;
        let w = |i: usize| {
            let o = base + 4 * i;
            f32::from_le_bytes([row[o], row[o + 1], row[o + 2], row[o + 3]])
        };
        let s = fsum_block(w, &act.q[j * QK..j * QK + QK], len);
        acc[j & 3] = acc[j & 3] + act.d[j] * s;
    }
    finish(acc)
}

pub fn dot_f16(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let mut acc = [0.0f32; 4];
    let nb = (ne0 + QK - 1) / QK;
    for j in 0..nb {
        let len = (ne0 - j * QK).min(QK);
        let base = j * QK * 2;
        let w = |i: usize| f16_to_f32(read_u16(row, base + 2 * i));
        let s = fsum_block(w, &act.q[j * QK..j * QK + QK], len);
        acc[j & 3] = acc[j & 3] + act.d[j] * s;
    }
    finish(acc)
}

/// Dequantises one row into `out` (`ne0` floats). Used for embeddings and as the test reference.
pub fn dequant_row(fmt: crate::formats::Format, row: &[u8], ne0: usize, out: &mut [f32]) {
    use crate::formats::Format::*;
    match fmt {
        F32 => {
            for i in 0..ne0 {
                out[i] = f32::from_le_bytes([row[4 * i], row[4 * i + 1], row[4 * i + 2], row[4 * i + 3]]);
            }
        }
        F16 => {
            for i in 0..ne0 {
                out[i] = f16_to_f32(read_u16(row, 2 * i));
            }
        }
        Q8_0 => {
            for b in 0..ne0 / 32 {
                let d = f16_to_f32(read_u16(row, b * 34));
                for i in 0..32 {
                    out[32 * b + i] = d * (row[b * 34 + 2 + i] as i8) as f32;
                }
            }
        }
        Q1_0 => {
            for b in 0..ne0 / 128 {
                let d = f16_to_f32(read_u16(row, b * 18));
                let qs = &row[b * 18 + 2..b * 18 + 18];
                for i in 0..128 {
                    out[128 * b + i] = if (qs[i / 8] >> (i % 8)) & 1 == 1 { d } else { -d };
                }
            }
        }
        Q2_0 | Q2_0G64 => {
            let block = fmt.block_len();
            let bbytes = fmt.block_bytes();
            for b in 0..ne0 / block {
                let d = f16_to_f32(read_u16(row, b * bbytes));
                let qs = &row[b * bbytes + 2..(b + 1) * bbytes];
                for i in 0..block {
                    out[block * b + i] = (q2_code(qs, i) - 1) as f32 * d;
                }
            }
        }
    }
}
