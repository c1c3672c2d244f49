//! The prompt-chunk GEMM family: Q1_0 and Q2_0 tiles of 32 rows times a chunk of tokens with VNNI
//! (`vpdpbusd`: 4 u8 x i8 products summed into each i32 lane per instruction), bit-identical to the
//! scalar reference. Kernels: `avx512` (AVX-512 VNNI, zmm: 64 products per instruction),
//! `avxvnni` (AVX-VNNI, ymm: 32; the Alder Lake-N / N100 class, which has no AVX-512), and `neon`
//! (AArch64 with the dot-product extension: `sdot` by element, 16 per instruction).
//!
//! A token of a prompt chunk alone has no weight reuse, so the lookup-table kernels of `lut` run
//! it row tile by row tile; here each packed tile (`lut::q1::PackedQ1`, `lut::q2::PackedQ2`) is
//! expanded once per call into bytes in cache ([`expand_scalar`] defines the layout) and then
//! reused for every token of the chunk.
//!
//! # Expanded tile ([`Expanded`], per 128 weights of a 32-row tile, [`EXP_BLOCK_BYTES`])
//! ```text
//! f32 dw[4][32]         dw[k][r]: row r's scale for activation block k (the fp16 value, exact;
//!                       the same for all k in Q1_0 and Q2_0, pairs in Q2_0_g64)
//! u8  w[4][8][32][4]    w[k][g][r][c] = weight (32k + 4g + c) of row r as an unsigned byte u:
//!                       Q1_0: 2 * its bit (0 or 2); Q2_0: its code (0..3)
//! ```
//! so 64 bytes hold 4 consecutive weights of 16 rows, the unsigned operand of one zmm `vpdpbusd`
//! whose signed operand is the token's 4 activations broadcast to every lane.
//!
//! # Exact integer sums (the sign trick)
//! Every weight is `u - 1` (Q1_0: `2b - 1` with `b` its bit; Q2_0: `code - 1`), so
//! `isum = sum (u - 1) q = sum u q - qsum`: the `vpdpbusd` sums of `u * q` over the 8 groups of an
//! activation block, less the block's `qsum` from the act buffer, are the exact integer sums of the
//! reference. The float steps then follow
//! `dot::scalar` exactly, lane-wise over rows: `acc[j % 4] = acc[j % 4] + (dw * dx[j]) * isum`,
//! then `(acc0 + acc1) + (acc2 + acc3)`. Hence the same bits as every other path.

#[cfg(all(target_arch = "x86_64", bk_avx512))]
pub mod avx512;
#[cfg(all(target_arch = "x86_64", bk_avx512))]
pub mod avxvnni;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use crate::act::Act;
use crate::f16::f16_to_f32;
use crate::lut::q1::TILE;
use crate::lut::q2::PackedQ2;

/// Bytes of 128 weights of an expanded 32-row tile: 4 x 32 f32 scales and 32 x 128 bytes.
pub const EXP_BLOCK_BYTES: usize = 16 * TILE + 128 * TILE;
/// Offset of the weight bytes in an expanded block (after the scales).
pub const EXP_W: usize = 16 * TILE;

/// Fewest tokens in a matmul for which the GEMM runs instead of the lookup-table kernels: below
/// it, expanding the tiles costs more than it saves (measured with `examples/bench_matvec`).
pub const MIN_TOKENS: usize = 4;

/// One cache line; expanded tiles are made of them so every 64-byte load is aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Line(pub [u8; 64]);

/// Cache-line aligned buffer for one expanded tile (grown on demand, reused).
#[derive(Default)]
pub struct Expanded {
    lines: Vec<Line>,
    /// 128-weight blocks per row of the tile expanded last.
    pub nb: usize,
}

impl Expanded {
    /// The expanded bytes of `nb` blocks (resizing the buffer).
    pub fn bytes_mut(&mut self, nb: usize) -> &mut [u8] {
        let lines = nb * EXP_BLOCK_BYTES / 64;
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0; 64]));
        }
        self.nb = nb;
        // SAFETY: `lines` Lines are `lines * 64` initialised bytes.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut u8, lines * 64) }
    }

    /// The bytes expanded last.
    pub fn bytes(&self) -> &[u8] {
        let n = self.nb * EXP_BLOCK_BYTES;
        // SAFETY: `bytes_mut(nb)` made at least `n` bytes.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const u8, n) }
    }
}

/// The GEMM kernels of one ISA. Safe to call only when the CPU has `isa` (see `dispatch`).
pub struct GemmKernels {
    pub name: &'static str,
    /// Code of the C ABI (`bk_gemm_path`): 1 AVX-512 VNNI, 2 AVX-VNNI, 3 NEON dotprod.
    pub id: u32,
    /// ISA bits (`dispatch::ISA_*`) the kernels need in the active mask.
    pub isa: u32,
    /// Expands `nb` blocks of a packed Q1_0 tile (its bytes) into `out` (`nb * EXP_BLOCK_BYTES`).
    pub q1_expand: fn(&[u8], usize, &mut [u8]),
    /// Expands tile `t` of a packed Q2_0 tensor (either block size; `ne0 % 128 == 0`) into `out`
    /// (`ne0 / 128 * EXP_BLOCK_BYTES`).
    pub q2_expand: fn(&PackedQ2, usize, &mut [u8]),
    /// `out[t][r]` = row r of the expanded tile · `acts[t]`, for every token of `acts`.
    pub tokens: fn(&[u8], usize, &[Act], &mut [[f32; TILE]]),
}

/// Scalar expansion: the reference for the SIMD ones (and the layout's definition).
pub fn expand_scalar(tile: &[u8], nb: usize, out: &mut [u8]) {
    let tb = crate::lut::q1::TILE_BLOCK_BYTES;
    for b in 0..nb {
        let src = &tile[b * tb..(b + 1) * tb];
        let dst = &mut out[b * EXP_BLOCK_BYTES..(b + 1) * EXP_BLOCK_BYTES];
        for k in 0..4 {
            for r in 0..TILE {
                let d = f16_to_f32(u16::from_le_bytes([src[2 * r], src[2 * r + 1]]));
                dst[128 * k + 4 * r..128 * k + 4 * r + 4].copy_from_slice(&d.to_ne_bytes());
            }
        }
        for e in 0..128 {
            let (k, g, c) = (e / 32, (e % 32) / 4, e % 4);
            for r in 0..TILE {
                let bit = (src[64 + 32 * (e / 8) + r] >> (e % 8)) & 1;
                dst[EXP_W + 128 * (8 * k + g) + 4 * r + c] = 2 * bit;
            }
        }
    }
}

/// Where 128 weights of a packed Q2_0 tile start: for each of the 4 activation blocks `k`, the
/// packed block holding it and the index of its first code byte there.
pub fn q2_source(p: &PackedQ2, tile: usize, s: usize, k: usize) -> (&[u8], usize) {
    let tb = p.tile_block_bytes();
    let per = p.block / 32; // activation blocks per packed block
    let b = (4 * s + k) / per;
    (&p.tile(tile)[b * tb..(b + 1) * tb], 8 * ((4 * s + k) % per))
}

/// Scalar Q2_0 expansion (the reference; both block sizes).
pub fn expand_q2_scalar(p: &PackedQ2, tile: usize, out: &mut [u8]) {
    assert!(p.nb * p.block % 128 == 0);
    for s in 0..p.nb * p.block / 128 {
        let dst = &mut out[s * EXP_BLOCK_BYTES..(s + 1) * EXP_BLOCK_BYTES];
        for k in 0..4 {
            let (src, i0) = q2_source(p, tile, s, k);
            for r in 0..TILE {
                let d = f16_to_f32(u16::from_le_bytes([src[2 * r], src[2 * r + 1]]));
                dst[128 * k + 4 * r..128 * k + 4 * r + 4].copy_from_slice(&d.to_ne_bytes());
            }
            for g in 0..8 {
                for r in 0..TILE {
                    let byte = src[64 + 32 * (i0 + g) + r];
                    for c in 0..4 {
                        dst[EXP_W + 128 * (8 * k + g) + 4 * r + c] = (byte >> (2 * c)) & 3;
                    }
                }
            }
        }
    }
}

/// Environment variable that turns the GEMM off (any value but empty or "0"): prompt chunks then
/// run on the lookup-table kernels, for A/B runs on the same machine.
pub const DISABLE_ENV: &str = "BONSAI_NO_GEMM";
/// Environment variable that picks a lower GEMM variant than the best one: `avx_vnni` runs the
/// ymm kernels on an AVX-512 VNNI CPU that also has AVX-VNNI (A/B runs of the N100 class path).
pub const VARIANT_ENV: &str = "BONSAI_GEMM";

use std::sync::atomic::{AtomicU32, Ordering};
static ENV_ONCE: std::sync::Once = std::sync::Once::new();
static CHOICE: AtomicU32 = AtomicU32::new(0);

/// Overrides the environment's choice (same codes as [`env_choice`]); for benchmarks and tests
/// that compare the paths in one process.
pub fn set_choice(c: u32) {
    env_choice();
    CHOICE.store(c, Ordering::SeqCst);
}

/// What the environment asks for, read once: 0 = the best variant, 1 = off, 2 = AVX-VNNI.
pub fn env_choice() -> u32 {
    ENV_ONCE.call_once(|| {
        let set = |name: &str| std::env::var_os(name).map_or(false, |v| !v.is_empty() && v != "0");
        let c = if set(DISABLE_ENV) {
            1
        } else {
            match std::env::var(VARIANT_ENV).as_ref().map(|s| s.as_str()) {
                Ok("off") => 1,
                Ok("avx_vnni") => 2,
                _ => 0,
            }
        };
        CHOICE.store(c, Ordering::SeqCst);
    });
    CHOICE.load(Ordering::Relaxed)
}

#[cfg(all(target_arch = "x86_64", bk_avx512))]
mod entry {
    //! Safe wrappers: only reachable through `dispatch`, which hands out a kernel set only when
    //! the active ISA mask holds its bits.
    use super::{avx512, avxvnni, PackedQ2, TILE};
    use crate::act::Act;
    pub fn expand_q2(p: &PackedQ2, t: usize, o: &mut [u8]) { unsafe { avxvnni::expand_q2(p, t, o) } }
    pub fn expand_avx2(t: &[u8], nb: usize, o: &mut [u8]) { unsafe { avxvnni::expand(t, nb, o) } }
    pub fn expand_512(t: &[u8], nb: usize, o: &mut [u8]) { unsafe { avx512::expand(t, nb, o) } }
    pub fn tokens_512(e: &[u8], nb: usize, a: &[Act], o: &mut [[f32; TILE]]) { unsafe { avx512::tokens(e, nb, a, o) } }
    pub fn tokens_256(e: &[u8], nb: usize, a: &[Act], o: &mut [[f32; TILE]]) { unsafe { avxvnni::tokens(e, nb, a, o) } }
}

#[cfg(target_arch = "aarch64")]
mod neon_entry {
    //! Safe wrappers: only reachable through the NEON+dotprod dispatch table.
    use super::{neon, PackedQ2, TILE};
    use crate::act::Act;
    pub fn expand(t: &[u8], nb: usize, o: &mut [u8]) { unsafe { neon::expand(t, nb, o) } }
    pub fn expand_q2(p: &PackedQ2, t: usize, o: &mut [u8]) { unsafe { neon::expand_q2(p, t, o) } }
    pub fn tokens(e: &[u8], nb: usize, a: &[Act], o: &mut [[f32; TILE]]) { unsafe { neon::tokens(e, nb, a, o) } }
}

/// NEON with the dot-product extension (`sdot` by element).
#[cfg(target_arch = "aarch64")]
pub const NEON_DOTPROD: GemmKernels = GemmKernels {
    name: "neon_dotprod",
    id: 3,
    isa: crate::dispatch::ISA_NEON | crate::dispatch::ISA_NEON_DOTPROD,
    q1_expand: neon_entry::expand,
    q2_expand: neon_entry::expand_q2,
    tokens: neon_entry::tokens,
};

/// AVX-512 VNNI (zmm).
#[cfg(all(target_arch = "x86_64", bk_avx512))]
pub const AVX512_VNNI: GemmKernels = GemmKernels {
    name: "avx512_vnni",
    id: 1,
    isa: crate::dispatch::ISA_AVX512 | crate::dispatch::ISA_AVX512_VNNI | crate::dispatch::ISA_F16C,
    q1_expand: entry::expand_512,
    q2_expand: entry::expand_q2,
    tokens: entry::tokens_512,
};

/// AVX-VNNI (ymm, VEX encoded: no AVX-512 needed).
#[cfg(all(target_arch = "x86_64", bk_avx512))]
pub const AVX_VNNI: GemmKernels = GemmKernels {
    name: "avx_vnni",
    id: 2,
    isa: crate::dispatch::ISA_AVX2 | crate::dispatch::ISA_AVX_VNNI | crate::dispatch::ISA_F16C,
    q1_expand: entry::expand_avx2,
    q2_expand: entry::expand_q2,
    tokens: entry::tokens_256,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::SCALAR;
    use crate::formats::Format;
    use crate::lut::q1::PackedQ1;
    use crate::lut::q2::PackedQ2;
    use crate::testutil::{as_bytes, random_act, random_rows, Rng};

    /// Every GEMM variant this CPU runs, with its name (none prints why the test is skipped).
    fn variants() -> Vec<&'static GemmKernels> {
        #[allow(unused_mut)]
        let mut v: Vec<&'static GemmKernels> = Vec::new();
        let avail = crate::dispatch::available();
        for k in crate::dispatch::gemm_variants() {
            if avail & k.isa == k.isa {
                v.push(k);
            } else {
                eprintln!("skipped: no {} (GEMM variant)", k.name);
            }
        }
        if crate::dispatch::gemm_variants().is_empty() {
            eprintln!("skipped: no GEMM kernels for this target");
        }
        let _ = avail;
        v
    }

    /// Each variant's expansions (Q1_0, Q2_0 with both block sizes) equal the scalar ones byte
    /// for byte.
    #[test]
    fn expansion_equals_scalar() {
        let mut rng = Rng::new(61);
        let (ne0, ne1) = (384, 40);
        let rows = random_rows(&mut rng, Format::Q1_0, ne0, ne1, false);
        let p = PackedQ1::pack(&rows, ne0, ne1);
        for fmt in [Format::Q2_0, Format::Q2_0G64].iter() {
            let rows2 = random_rows(&mut rng, *fmt, ne0, ne1, true);
            let p2 = PackedQ2::pack(&rows2, ne0, ne1, fmt.block_len());
            for k in variants() {
                for t in 0..p2.tiles {
                    let mut want = vec![0u8; ne0 / 128 * EXP_BLOCK_BYTES];
                    let mut got = vec![7u8; ne0 / 128 * EXP_BLOCK_BYTES];
                    expand_q2_scalar(&p2, t, &mut want);
                    (k.q2_expand)(&p2, t, &mut got);
                    assert!(got == want, "{} {} expansion of tile {}", k.name, fmt.name(), t);
                }
            }
        }
        for k in variants() {
            for t in 0..p.tiles {
                let mut want = vec![0u8; p.nb * EXP_BLOCK_BYTES];
                let mut got = vec![7u8; p.nb * EXP_BLOCK_BYTES];
                expand_scalar(p.tile(t), p.nb, &mut want);
                (k.q1_expand)(p.tile(t), p.nb, &mut got);
                assert!(got == want, "{} expansion of tile {}", k.name, t);
            }
        }
    }

    /// Each variant against the scalar row dots bit for bit, Q1_0 and Q2_0 (both block sizes,
    /// code 3 included): 1..=19 tokens (every remainder of the token passes), extreme rows (all
    /// bits / codes set, all clear) and activations (all ±127).
    #[test]
    fn tokens_equal_scalar_bit_for_bit() {
        let mut rng = Rng::new(62);
        for fmt in [Format::Q1_0, Format::Q2_0, Format::Q2_0G64].iter().cloned() {
            for &(ne0, ne1) in [(128usize, 32usize), (512, 45)].iter() {
                let mut rows = random_rows(&mut rng, fmt, ne0, ne1, true);
                let rb = fmt.row_bytes(ne0);
                let (block, bbytes) = (fmt.block_len(), fmt.block_bytes());
                for b in 0..ne0 / block {
                    for i in 2..bbytes {
                        rows[bbytes * b + i] = 0xFF;
                        rows[rb + bbytes * b + i] = 0;
                    }
                }
                let p1 = if fmt == Format::Q1_0 { Some(PackedQ1::pack(&rows, ne0, ne1)) } else { None };
                let p2 = if fmt != Format::Q1_0 { Some(PackedQ2::pack(&rows, ne0, ne1, block)) } else { None };
                let tiles = (ne1 + TILE - 1) / TILE;
                let mut bufs: Vec<Vec<u32>> = (0..19).map(|_| random_act(&mut rng, ne0).1).collect();
                let mut x = vec![1.0f32; ne0];
                x[5] = -1.0;
                let mut b0 = vec![0u32; crate::act::act_layout(ne0).total / 4];
                crate::act::quantize_act(&x, crate::testutil::as_bytes_mut(&mut b0)).unwrap();
                bufs[0] = b0;
                let acts: Vec<Act> = bufs.iter().map(|b| Act::from_bytes(as_bytes(b), ne0).unwrap()).collect();
                for k in variants() {
                    for t in 0..tiles {
                        let mut exp = Expanded::default();
                        match (&p1, &p2) {
                            (Some(p), _) => (k.q1_expand)(p.tile(t), p.nb, exp.bytes_mut(ne0 / 128)),
                            (_, Some(p)) => (k.q2_expand)(p, t, exp.bytes_mut(ne0 / 128)),
                            _ => unreachable!(),
                        }
                        for n in 1..=acts.len() {
                            let mut out = vec![[f32::NAN; TILE]; n];
                            (k.tokens)(exp.bytes(), ne0 / 128, &acts[..n], &mut out);
                            for (i, a) in acts[..n].iter().enumerate() {
                                for r in 0..TILE.min(ne1 - t * TILE) {
                                    let row = t * TILE + r;
                                    let want = (SCALAR.dot_fn(fmt))(&rows[row * rb..(row + 1) * rb], a, ne0);
                                    assert_eq!(out[i][r].to_bits(), want.to_bits(), "{} {} n={} token {} row {} ({} vs {})", k.name, fmt.name(), n, i, row, out[i][r], want);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
