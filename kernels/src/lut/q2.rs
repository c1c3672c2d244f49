//! Q2_0 (ternary, blocks of 128 or 64) lookup-table matvec, bit-identical to the scalar reference.
//! The Q1_0 scheme of `lut::q1` with 2-bit codes: one nibble holds the codes of 2 weights.
//! Kernels: `avx2` (x86_64 with AVX2 + F16C) and `neon` (AArch64, in `q2_neon.rs`), on the
//! same packed layout and tables. The NEON kernels were checked bit for bit under qemu only: their
//! speed on real AArch64 hardware has not been measured.
//!
//! # Packed weights ([`PackedQ2`], built once per tensor)
//! Rows are grouped in tiles of [`TILE`] = 32. Per tile and per weight block (`block` = 128 or 64):
//! ```text
//! u16 d[32]                 fp16 scale of each row of the tile
//! u8  qs[block / 4][32]     qs[i][r] = code byte i of row r (a pure byte transpose)
//! ```
//! so one 32-byte load gives one code byte of 32 rows: its low nibble holds the codes of elements
//! `4i, 4i+1`, its high nibble those of `4i+2, 4i+3` (code `c` of element `e` at bits `2 * (e % 4)`).
//!
//! # Tables (built once per activation, shared by every row)
//! For each pair of activation elements `(q0, q1)` and each nibble `p = c0 + 4 * c1`:
//! `U[p] = 512 + (c0 - 1) * q0 + (c1 - 1) * q1`, in `[0, 1020]` for any i8 `q` (code 3, unused by
//! the format, still means `+2` as in the reference), split as `L = U & 31`, `H = U >> 5`. A
//! 32-element activation block has 16 pairs; their parts are summed in bytes 8 pairs at a time
//! (8 * 31 < 256), each half turned into `L + 32 * H` (i16), and the two halves added less the
//! `16 * 512` bias: the exact `isum` of the reference. The float steps are those of `dot::scalar`
//! lane-wise over rows, so the results are the same bits as every other path.

pub use crate::lut::q1::TILE;

/// Table bytes per 32-element activation block (16 pairs x 16 L + 16 H bytes).
pub const TAB_BYTES: usize = 512;

/// A Q2_0 tensor in tile order (see the module docs). Rows past `ne1` in the last tile are zero.
pub struct PackedQ2 {
    data: Vec<u8>,
    /// Weights per block: 128 (Q2_0) or 64 (Q2_0_g64).
    pub block: usize,
    /// Blocks per row.
    pub nb: usize,
    pub tiles: usize,
}

impl PackedQ2 {
    /// Row `r` in the original Q2_0 layout (the inverse of packing).
    pub fn unpack_row(&self, r: usize, out: &mut [u8]) {
        crate::lut::q1::unpack_row(&self.data, self.nb, 2 + self.block / 4, r, out);
    }

    /// Bytes per tile per weight block.
    #[inline]
    pub fn tile_block_bytes(&self) -> usize {
        TILE * (2 + self.block / 4)
    }

    /// Repacks `ne1` rows of `ne0` weights in blocks of `block` (`data` = the rows, `2 + block/4`
    /// bytes per block), in parallel on the pool.
    pub fn pack(data: &[u8], ne0: usize, ne1: usize, block: usize) -> PackedQ2 {
        Self::pack_with(data, ne0, ne1, block, true)
    }

    /// [`PackedQ2::pack`], on the calling thread alone unless `parallel`.
    pub(crate) fn pack_with(data: &[u8], ne0: usize, ne1: usize, block: usize, parallel: bool) -> PackedQ2 {
        assert!((block == 128 || block == 64) && ne0 % block == 0);
        let nb = ne0 / block;
        let data = crate::lut::q1::pack_tiles(data, nb, 2 + block / 4, ne1, parallel);
        PackedQ2 { data, block, nb, tiles: (ne1 + TILE - 1) / TILE }
    }

    /// Bytes of tile `t`.
    #[inline]
    pub fn tile(&self, t: usize) -> &[u8] {
        let n = self.nb * self.tile_block_bytes();
        &self.data[t * n..(t + 1) * n]
    }
}

/// Table bytes for an activation of `ne0` elements.
pub fn tab_len(ne0: usize) -> usize {
    ne0 / 32 * TAB_BYTES
}

/// Scalar table builder (reference for the SIMD one; also documents the layout).
pub fn build_tables_scalar(q: &[i8], ne0: usize, tab: &mut [u8]) {
    for pair in 0..ne0 / 2 {
        let (q0, q1) = (q[2 * pair] as i32, q[2 * pair + 1] as i32);
        let t = &mut tab[32 * pair..32 * pair + 32];
        for p in 0..16 {
            let u = 512 + ((p & 3) as i32 - 1) * q0 + ((p >> 2) as i32 - 1) * q1;
            t[p] = (u & 31) as u8;
            t[16 + p] = (u >> 5) as u8;
        }
    }
}

#[cfg(all(target_arch = "x86_64", bk_f16c))]
pub mod avx2 {
    //! The AVX2 + F16C kernels. Callers must have detected both features.
    use super::{PackedQ2, TAB_BYTES, TILE};
    use crate::lut::q1::avx2::{add_block, parts_sum, row_scales, store_tile};
    use std::arch::x86_64::*;

    /// Builds the tables for the `ne0 / 2` element pairs of `q` into `tab` ([`super::tab_len`] bytes).
    #[target_feature(enable = "avx2")]
    pub unsafe fn build_tables(q: &[i8], ne0: usize, tab: &mut [u8]) {
        assert!(q.len() >= ne0 && ne0 % 32 == 0 && tab.len() >= super::tab_len(ne0));
        let coef = |shift: i16| {
            let c = |p: i16| ((p >> shift) & 3) - 1;
            _mm256_setr_epi16(c(0), c(1), c(2), c(3), c(4), c(5), c(6), c(7), c(8), c(9), c(10), c(11), c(12), c(13), c(14), c(15))
        };
        let (c0, c1) = (coef(0), coef(2));
        let bias = _mm256_set1_epi16(512);
        let m31 = _mm256_set1_epi16(31);
        let qp = q.as_ptr();
        let tp = tab.as_mut_ptr();
        for pair in 0..ne0 / 2 {
            let q0 = _mm256_set1_epi16(*qp.add(2 * pair) as i16);
            let q1 = _mm256_set1_epi16(*qp.add(2 * pair + 1) as i16);
            let u = _mm256_add_epi16(bias, _mm256_add_epi16(_mm256_mullo_epi16(c0, q0), _mm256_mullo_epi16(c1, q1)));
            let lh = _mm256_packus_epi16(_mm256_and_si256(u, m31), _mm256_srli_epi16::<5>(u));
            // [L0-7 H0-7 | L8-15 H8-15] -> [L0-15 | H0-15]
            _mm256_storeu_si256(tp.add(32 * pair) as *mut __m256i, _mm256_permute4x64_epi64::<0xD8>(lh));
        }
    }

    /// `out[r] = row r of tile · act` for the 32 rows of tile `tile` (`tab` = the activation's
    /// tables, `d` = its block scales).
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn tile_dot(p: &PackedQ2, tile: usize, tab: &[u8], d: &[f32], out: &mut [f32; TILE]) {
        let subs = p.block / 32;
        let nj = p.nb * subs;
        let tbb = p.tile_block_bytes();
        let w = p.tile(tile);
        assert!(tab.len() >= nj * TAB_BYTES && d.len() >= nj);
        let (wp, tp, dp) = (w.as_ptr(), tab.as_ptr(), d.as_ptr());
        let bias = _mm256_set1_epi16(16 * 512);
        let mut acc = [[_mm256_setzero_ps(); 4]; 4];
        for b in 0..p.nb {
            let blk = wp.add(b * tbb);
            crate::prefetch::prefetch_lines(blk.wrapping_add(crate::lut::q1::PREFETCH_BLOCKS * tbb), tbb);
            let dw = row_scales(blk);
            for k in 0..subs {
                let j = subs * b + k;
                let bits = blk.add(64 + 32 * 8 * k);
                let t = tp.add(j * TAB_BYTES);
                let (a0, a1) = parts_sum(bits, t);
                let (b0, b1) = parts_sum(bits.add(32 * 4), t.add(TAB_BYTES / 2));
                let s0 = _mm256_sub_epi16(_mm256_add_epi16(a0, b0), bias);
                let s1 = _mm256_sub_epi16(_mm256_add_epi16(a1, b1), bias);
                add_block(&mut acc[j & 3], &dw, *dp.add(j), s0, s1);
            }
        }
        store_tile(&acc, out);
    }
}

#[cfg(target_arch = "aarch64")]
#[path = "q2_neon.rs"]
pub mod neon;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::{act_layout, quantize_act, Act};
    use crate::dispatch::SCALAR;
    use crate::lut::available;
    use crate::formats::Format;
    use crate::testutil::{as_bytes, as_bytes_mut, random_act, random_rows, Rng};
    /// The SIMD kernels of this build, one signature on both ISAs.
    #[cfg(all(target_arch = "x86_64", bk_f16c))]
    use super::avx2 as simd;
    #[cfg(target_arch = "aarch64")]
    use super::neon as simd;

    fn act_of(x: &[f32]) -> Vec<u32> {
        let mut buf = vec![0u32; act_layout(x.len()).total / 4];
        quantize_act(x, as_bytes_mut(&mut buf)).unwrap();
        buf
    }

    #[test]
    fn pack_is_a_byte_transpose() {
        let mut rng = Rng::new(31);
        for &(fmt, block) in [(Format::Q2_0, 128usize), (Format::Q2_0G64, 64)].iter() {
            let (ne0, ne1) = (256, 37);
            let rows = random_rows(&mut rng, fmt, ne0, ne1, false);
            let p = PackedQ2::pack(&rows, ne0, ne1, block);
            let bbytes = 2 + block / 4;
            assert_eq!((p.nb, p.tiles), (ne0 / block, 2));
            for r in 0..64 {
                for b in 0..p.nb {
                    let blk = &p.tile(r / TILE)[b * p.tile_block_bytes()..];
                    let rr = r % TILE;
                    let src: Vec<u8> = if r < ne1 { rows[r * p.nb * bbytes + b * bbytes..][..bbytes].to_vec() } else { vec![0; bbytes] };
                    assert_eq!(&blk[2 * rr..2 * rr + 2], &src[..2]);
                    for i in 0..block / 4 {
                        assert_eq!(blk[64 + 32 * i + rr], src[2 + i], "{} row {} block {} byte {}", fmt.name(), r, b, i);
                    }
                }
            }
        }
    }

    #[cfg(any(all(target_arch = "x86_64", bk_f16c), target_arch = "aarch64"))]
    #[test]
    fn simd_tables_equal_scalar_tables() {
        if !available() {
            eprintln!("skipped: no lookup-table kernels on this CPU");
            return;
        }
        let mut rng = Rng::new(6);
        let mut q: Vec<i8> = (0..512).map(|_| rng.next_u32() as u8 as i8).collect();
        q[0..4].copy_from_slice(&[127, 127, -128, -128]);
        let mut want = vec![0u8; tab_len(512)];
        let mut got = vec![1u8; tab_len(512)];
        build_tables_scalar(&q, 512, &mut want);
        unsafe { simd::build_tables(&q, 512, &mut got) };
        assert_eq!(got, want);
        assert!(want.iter().all(|&b| b < 32), "table parts must stay below 32 so 8 of them sum in a byte");
    }

    /// The packed kernel against the scalar reference for both block sizes, at the extremes of the
    /// accumulators (all codes 0, all codes 3 (the unused code), q = ±127) and on random data.
    #[cfg(any(all(target_arch = "x86_64", bk_f16c), target_arch = "aarch64"))]
    #[test]
    fn tile_dot_equals_scalar_bit_for_bit() {
        if !available() {
            eprintln!("skipped: no lookup-table kernels on this CPU");
            return;
        }
        let mut rng = Rng::new(9);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        for &(fmt, block) in [(Format::Q2_0, 128usize), (Format::Q2_0G64, 64)].iter() {
            let bbytes = 2 + block / 4;
            for &(ne0, ne1) in [(128usize, 1usize), (256, 31), (320, 33), (1024, 64), (2048, 45)].iter() {
                if ne0 % block != 0 {
                    continue;
                }
                let mut rows = random_rows(&mut rng, fmt, ne0, ne1, false);
                let nb = ne0 / block;
                for b in 0..nb {
                    for i in 2..bbytes {
                        rows[b * bbytes + i] = 0xFF; // row 0: every code 3 (+2)
                        if ne1 > 1 {
                            rows[nb * bbytes + b * bbytes + i] = 0; // row 1: every code 0 (-1)
                        }
                    }
                }
                let p = PackedQ2::pack(&rows, ne0, ne1, block);
                for x in [vec![1.0f32; ne0], vec![-1.0; ne0], random_act(&mut rng, ne0).0].iter() {
                    let act = act_of(x);
                    let a = Act::from_bytes(as_bytes(&act), ne0).unwrap();
                    let mut tab = vec![0u8; tab_len(ne0)];
                    unsafe { simd::build_tables(a.q, ne0, &mut tab) };
                    let want: Vec<f32> = (0..ne1).map(|r| (SCALAR.dot_fn(fmt))(&rows[r * nb * bbytes..(r + 1) * nb * bbytes], &a, ne0)).collect();
                    let mut got = Vec::new();
                    for t in 0..p.tiles {
                        let mut o = [0.0f32; TILE];
                        unsafe { simd::tile_dot(&p, t, &tab, a.d, &mut o) };
                        got.extend_from_slice(&o);
                    }
                    assert_eq!(bits(&got[..ne1]), bits(&want), "{} [{} x {}]", fmt.name(), ne0, ne1);
                }
            }
        }
    }

    /// One activation feeding packed Q2_0 (both block sizes), packed Q1_0 and unpacked Q8_0
    /// tensors in one `matvec_multi`: both kinds of tables are built, and every row equals the
    /// scalar reference bit for bit.
    #[test]
    fn mixed_multi_matvec_equals_scalar_bit_for_bit() {
        use crate::matmul;
        use crate::tensor::Tensor;
        let mut rng = Rng::new(17);
        let ne0 = 512;
        let specs = [(Format::Q2_0, 97usize), (Format::Q1_0, 33), (Format::Q2_0G64, 65), (Format::Q8_0, 10), (Format::Q2_0, 1)];
        let rows: Vec<Vec<u8>> = specs.iter().map(|&(f, n)| random_rows(&mut rng, f, ne0, n, false)).collect();
        let ts: Vec<Tensor> =
            specs.iter().zip(&rows).map(|(&(f, n), r)| Tensor::from_bytes(r, f.code(), ne0 as u64, n as u64).unwrap()).collect();
        for (t, &(f, _)) in ts.iter().zip(specs.iter()) {
            let q2 = f == Format::Q2_0 || f == Format::Q2_0G64;
            assert_eq!(t.packed_q2.is_some(), q2 && available(), "{} packing", f.name());
        }
        let (_, act) = random_act(&mut rng, ne0);
        let a = Act::from_bytes(as_bytes(&act), ne0).unwrap();
        let mut outs: Vec<Vec<f32>> = specs.iter().map(|&(_, n)| vec![f32::NAN; n + 1]).collect();
        {
            let refs: Vec<&Tensor> = ts.iter().collect();
            let mut slices: Vec<&mut [f32]> = outs.iter_mut().map(|o| &mut o[..]).collect();
            matmul::matvec_multi(&refs, as_bytes(&act), &mut slices).unwrap();
        }
        for (i, (&(f, n), r)) in specs.iter().zip(&rows).enumerate() {
            let rb = f.row_bytes(ne0);
            for row in 0..n {
                let want = (SCALAR.dot_fn(f))(&r[row * rb..(row + 1) * rb], &a, ne0);
                assert_eq!(outs[i][row].to_bits(), want.to_bits(), "{} row {}", f.name(), row);
            }
            assert!(outs[i][n].is_nan(), "nothing written past the last row");
        }
    }
}
