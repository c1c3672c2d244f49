//! NEON GEMM kernels with the dot-product extension (`sdot`, by element: 4 rows x 4 weights per
//! instruction against one token's 4 activations), for prompt chunks on AArch64 CPUs that have it
//! (Pi 5, Jetson Orin). Same expanded tiles and exact sums as the x86 kernels (`gemm/mod.rs`);
//! `sdot` is emitted with `.inst` because Rust 1.63 has no intrinsic for it and its inline
//! assembler does not take the mnemonic. Checked bit for bit under qemu only (`-cpu max`): its
//! speed on ARM hardware has not been measured.

use super::{EXP_BLOCK_BYTES, EXP_W};
use crate::act::Act;
use crate::lut::q1::{TILE, TILE_BLOCK_BYTES};
use crate::lut::q2::PackedQ2;
use crate::neon_util::{widen_high, widen_low};
use std::arch::aarch64::*;
use std::arch::asm;

/// Tokens per pass: 8 integer and 8 float accumulators, 4 weight and 4 activation registers.
const GROUP: usize = 2;

/// `idx[m]`: byte `4r + c` of a 16-byte vector takes row `4m + r` of 16 row bytes.
unsafe fn spread_index() -> [uint8x16_t; 4] {
    let mut idx = [vdupq_n_u8(0); 4];
    for m in 0..4 {
        let mut b = [0u8; 16];
        for p in 0..16 {
            b[p] = (4 * m + p / 4) as u8;
        }
        idx[m] = vld1q_u8(b.as_ptr());
    }
    idx
}

/// The 32 fp16 scales at `src` as f32, stored at `dst` (32 floats).
unsafe fn store_scales(src: *const u8, dst: *mut u8) {
    for v in 0..4 {
        let h = vld1q_u16(src.add(16 * v) as *const u16);
        vst1q_f32(dst.add(32 * v) as *mut f32, widen_low(h));
        vst1q_f32(dst.add(32 * v + 16) as *mut f32, widen_high(h));
    }
}

/// Expands `nb` blocks of a packed Q1_0 tile into `out` (a table lookup spreads each row's sign
/// byte over its 4 bytes, `cmtst` picks the bits, AND makes 0 or 2).
pub unsafe fn expand(tile: &[u8], nb: usize, out: &mut [u8]) {
    assert!(tile.len() >= nb * TILE_BLOCK_BYTES && out.len() >= nb * EXP_BLOCK_BYTES);
    let idx = spread_index();
    let pat_lo: [u8; 16] = [1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8];
    let pat = [vld1q_u8(pat_lo.as_ptr()), vshlq_n_u8::<4>(vld1q_u8(pat_lo.as_ptr()))];
    let two = vdupq_n_u8(2);
    for b in 0..nb {
        let src = tile.as_ptr().add(b * TILE_BLOCK_BYTES);
        let dst = out.as_mut_ptr().add(b * EXP_BLOCK_BYTES);
        for k in 0..4 {
            store_scales(src, dst.add(128 * k));
        }
        for i in 0..16 {
            let (k, g0) = (i / 4, 2 * (i % 4));
            for h in 0..2 {
                let x = vld1q_u8(src.add(64 + 32 * i + 16 * h));
                for m in 0..4 {
                    let y = vqtbl1q_u8(x, idx[m]);
                    for nib in 0..2 {
                        let e = vandq_u8(vtstq_u8(y, pat[nib]), two);
                        vst1q_u8(dst.add(EXP_W + 128 * (8 * k + g0 + nib) + 64 * h + 16 * m), e);
                    }
                }
            }
        }
    }
}

/// Expands tile `tile` of a packed Q2_0 tensor (either block size, `ne0 % 128 == 0`) into `out`:
/// each row's code byte spread over its 4 bytes, byte `c` shifted right by `2c`, AND 3.
pub unsafe fn expand_q2(p: &PackedQ2, tile: usize, out: &mut [u8]) {
    let n128 = p.nb * p.block / 128;
    assert!(p.nb * p.block % 128 == 0 && out.len() >= n128 * EXP_BLOCK_BYTES);
    let idx = spread_index();
    let sh: [i8; 16] = [0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6];
    let sh = vld1q_s8(sh.as_ptr());
    let three = vdupq_n_u8(3);
    for s in 0..n128 {
        let dst = out.as_mut_ptr().add(s * EXP_BLOCK_BYTES);
        for k in 0..4 {
            let (src, i0) = super::q2_source(p, tile, s, k);
            let src = src.as_ptr();
            store_scales(src, dst.add(128 * k));
            for g in 0..8 {
                for h in 0..2 {
                    let x = vld1q_u8(src.add(64 + 32 * (i0 + g) + 16 * h));
                    for m in 0..4 {
                        let e = vandq_u8(vshlq_u8(vqtbl1q_u8(x, idx[m]), sh), three);
                        vst1q_u8(dst.add(EXP_W + 128 * (8 * k + g) + 64 * h + 16 * m), e);
                    }
                }
            }
        }
    }
}

/// `out[t][r]` = row r of the expanded tile · `acts[t]` for every token, in passes of [`GROUP`].
/// The CPU must have the dot-product extension.
pub unsafe fn tokens(exp: &[u8], nb: usize, acts: &[Act], out: &mut [[f32; TILE]]) {
    assert!(exp.len() >= nb * EXP_BLOCK_BYTES && out.len() >= acts.len());
    for a in acts.iter() {
        assert!(a.q.len() >= 128 * nb && a.d.len() >= 4 * nb && a.qsum.len() >= 4 * nb);
    }
    let mut t0 = 0;
    while t0 < acts.len() {
        let n = GROUP.min(acts.len() - t0);
        pass(exp.as_ptr(), nb, &acts[t0..t0 + n], &mut out[t0..t0 + n]);
        t0 += n;
    }
}

/// The reference float step for 16 rows (4 vectors) of one token: `acc + (dw * dx) * isum`.
#[inline(always)]
unsafe fn add_block(accf: &mut [float32x4_t; 4], dw: *const u8, dx: f32, qsum: i32, is: [int32x4_t; 4]) {
    let dx = vdupq_n_f32(dx);
    let qs = vdupq_n_s32(qsum);
    for m in 0..4 {
        let w = vld1q_f32(dw.add(16 * m) as *const f32);
        let f = vcvtq_f32_s32(vsubq_s32(is[m], qs));
        accf[m] = vaddq_f32(accf[m], vmulq_f32(vmulq_f32(w, dx), f));
    }
}

/// One pass of 1 or 2 tokens over the expanded tile, 16 rows at a time; each of the reference's
/// four accumulators (`acc[j % 4]`) in its own sweep over the blocks (the caller checked bounds).
unsafe fn pass(exp: *const u8, nb: usize, acts: &[Act], out: &mut [[f32; TILE]]) {
    let two = acts.len() == 2;
    let a1 = &acts[if two { 1 } else { 0 }];
    let a0 = &acts[0];
    let mut part = [[[[vdupq_n_f32(0.0); 4]; 2]; 4]; 2]; // [token][k][half][m]
    for h in 0..2 {
        for k in 0..4 {
            let mut f0 = [vdupq_n_f32(0.0); 4];
            let mut f1 = [vdupq_n_f32(0.0); 4];
            for b in 0..nb {
                let blk = exp.add(b * EXP_BLOCK_BYTES);
                let j = 4 * b + k;
                let w = blk.add(EXP_W + 1024 * k + 64 * h);
                let (qa0, qb0) = (vld1q_s8(a0.q.as_ptr().add(32 * j)), vld1q_s8(a0.q.as_ptr().add(32 * j + 16)));
                let (qa1, qb1) = (vld1q_s8(a1.q.as_ptr().add(32 * j)), vld1q_s8(a1.q.as_ptr().add(32 * j + 16)));
                let z = vdupq_n_s32(0);
                let (mut s0, mut s1, mut s2, mut s3) = (z, z, z, z);
                let (mut u0, mut u1, mut u2, mut u3) = (z, z, z, z);
                if two {
                    asm!(
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4f88e080, 0x4f88e0a1, 0x4f88e0c2, 0x4f88e0e3", // token 0, group 0
                        ".inst 0x4f8ee08a, 0x4f8ee0ab, 0x4f8ee0cc, 0x4f8ee0ed", // token 1, group 0
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4fa8e080, 0x4fa8e0a1, 0x4fa8e0c2, 0x4fa8e0e3", // token 0, group 1
                        ".inst 0x4faee08a, 0x4faee0ab, 0x4faee0cc, 0x4faee0ed", // token 1, group 1
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4f88e880, 0x4f88e8a1, 0x4f88e8c2, 0x4f88e8e3", // token 0, group 2
                        ".inst 0x4f8ee88a, 0x4f8ee8ab, 0x4f8ee8cc, 0x4f8ee8ed", // token 1, group 2
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4fa8e880, 0x4fa8e8a1, 0x4fa8e8c2, 0x4fa8e8e3", // token 0, group 3
                        ".inst 0x4faee88a, 0x4faee8ab, 0x4faee8cc, 0x4faee8ed", // token 1, group 3
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4f89e080, 0x4f89e0a1, 0x4f89e0c2, 0x4f89e0e3", // token 0, group 4
                        ".inst 0x4f8fe08a, 0x4f8fe0ab, 0x4f8fe0cc, 0x4f8fe0ed", // token 1, group 4
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4fa9e080, 0x4fa9e0a1, 0x4fa9e0c2, 0x4fa9e0e3", // token 0, group 5
                        ".inst 0x4fafe08a, 0x4fafe0ab, 0x4fafe0cc, 0x4fafe0ed", // token 1, group 5
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4f89e880, 0x4f89e8a1, 0x4f89e8c2, 0x4f89e8e3", // token 0, group 6
                        ".inst 0x4f8fe88a, 0x4f8fe8ab, 0x4f8fe8cc, 0x4f8fe8ed", // token 1, group 6
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        ".inst 0x4fa9e880, 0x4fa9e8a1, 0x4fa9e8c2, 0x4fa9e8e3", // token 0, group 7
                        ".inst 0x4fafe88a, 0x4fafe8ab, 0x4fafe8cc, 0x4fafe8ed", // token 1, group 7
                        w = inout(reg) w => _,
                        inout("v0") s0, inout("v1") s1, inout("v2") s2, inout("v3") s3,
                        inout("v10") u0, inout("v11") u1, inout("v12") u2, inout("v13") u3,
                        in("v8") qa0, in("v9") qb0, in("v14") qa1, in("v15") qb1,
                        out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                        options(readonly, nostack, preserves_flags),
                    );
                } else {
                    asm!(
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4f88e080, 0x4f88e0a1, 0x4f88e0c2, 0x4f88e0e3", // token 0, group 0
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4fa8e080, 0x4fa8e0a1, 0x4fa8e0c2, 0x4fa8e0e3", // token 0, group 1
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4f88e880, 0x4f88e8a1, 0x4f88e8c2, 0x4f88e8e3", // token 0, group 2
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4fa8e880, 0x4fa8e8a1, 0x4fa8e8c2, 0x4fa8e8e3", // token 0, group 3
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4f89e080, 0x4f89e0a1, 0x4f89e0c2, 0x4f89e0e3", // token 0, group 4
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4fa9e080, 0x4fa9e0a1, 0x4fa9e0c2, 0x4fa9e0e3", // token 0, group 5
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        "add {w}, {w}, #128",
                        ".inst 0x4f89e880, 0x4f89e8a1, 0x4f89e8c2, 0x4f89e8e3", // token 0, group 6
                        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{w}]",
                        ".inst 0x4fa9e880, 0x4fa9e8a1, 0x4fa9e8c2, 0x4fa9e8e3", // token 0, group 7
                        w = inout(reg) w => _,
                        inout("v0") s0, inout("v1") s1, inout("v2") s2, inout("v3") s3,
                        in("v8") qa0, in("v9") qb0,
                        out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                        options(readonly, nostack, preserves_flags),
                    );
                }
                let dw = blk.add(128 * k + 64 * h);
                add_block(&mut f0, dw, *a0.d.get_unchecked(j), *a0.qsum.get_unchecked(j), [s0, s1, s2, s3]);
                if two {
                    add_block(&mut f1, dw, *a1.d.get_unchecked(j), *a1.qsum.get_unchecked(j), [u0, u1, u2, u3]);
                }
            }
            part[0][k][h] = f0;
            part[1][k][h] = f1;
        }
    }
    for t in 0..acts.len() {
        for h in 0..2 {
            for m in 0..4 {
                let p = &part[t];
                let s = vaddq_f32(vaddq_f32(p[0][h][m], p[1][h][m]), vaddq_f32(p[2][h][m], p[3][h][m]));
                vst1q_f32(out[t].as_mut_ptr().add(16 * h + 4 * m), s);
            }
        }
    }
}
