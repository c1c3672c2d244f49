//! Q1_0 lookup-table matvec (T-MAC style), bit-identical to the scalar reference. Kernels: `avx2`
//! (x86_64 with AVX2 + F16C) and `neon` (AArch64, in `q1_neon.rs`), on the same packed layout
//! and tables. The NEON kernels were checked bit for bit under qemu only: their speed on real
//! AArch64 hardware has not been measured.
//!
//! # Packed weights ([`PackedQ1`], built once per tensor)
//! Rows are grouped in tiles of [`TILE`] = 32. Per tile and per 128-weight block, 576 bytes:
//! ```text
//! u16 d[32]          fp16 scale of each row of the tile
//! u8  bits[16][32]   bits[i][r] = byte i of row r's 16 sign bytes (a pure byte transpose)
//! ```
//! so one 32-byte load gives one sign byte of 32 rows (16 rows per 16-byte NEON load): its low
//! nibble holds 4 weights of one 4-element group, its high nibble the next group's 4.
//!
//! # Tables (built once per activation, shared by every row)
//! For each 32-element activation block and each of its 8 groups of 4 elements, 16 entries
//! `U[p] = 512 + sum_i (bit i of p ? q[i] : -q[i])` (in `[4, 1020]`), split as `L = U & 31`
//! and `H = U >> 5` (both `< 32`) into two 16-byte tables: one `vpshufb` looks up 32 rows at once
//! (one NEON `tbl` 16 rows).
//! Over the 8 groups of a block the byte sums stay below 256 (8 * 31), so they accumulate in
//! bytes; `Lsum + 32*Hsum - 8*512` is then the exact integer sum of ±q for each row, and the float
//! steps follow `dot::scalar` exactly (`acc[j%4] += (dw*dx[j]) * isum[j]`, then
//! `(acc0+acc1)+(acc2+acc3)`), lane-wise over rows. Hence the same bits as every other path.

use crate::pool;

/// Rows per tile.
pub const TILE: usize = 32;
/// Bytes per tile per 128-weight block.
pub const TILE_BLOCK_BYTES: usize = TILE * 18;
/// Weight blocks ahead of the one being computed that the kernels request from memory (here and in
/// `lut::q2`): decode streams
/// the weights once per token, and without the hint the loads wait on DRAM instead of overlapping
/// with the table lookups (x86: decode step -15 to -20%). Tiles are contiguous, so this runs on
/// into the next tile; prefetches never fault, even past the end.
pub const PREFETCH_BLOCKS: usize = 8;
/// [`PREFETCH_BLOCKS`] in bytes of Q1_0 tiles.
pub const PREFETCH_BYTES: usize = PREFETCH_BLOCKS * TILE_BLOCK_BYTES;
/// Table bytes per 32-element activation block (8 groups x 16 L + 16 H bytes).
pub const TAB_BYTES: usize = 256;

/// A Q1_0 tensor in tile order (see the module docs). Rows past `ne1` in the last tile are zero.
pub struct PackedQ1 {
    data: Vec<u8>,
    /// 128-weight blocks per row.
    pub nb: usize,
    pub tiles: usize,
}

#[derive(Clone, Copy)]
struct SendPtr(*mut u8);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// The tile layout shared by the lookup-table formats: `ne1` rows of `nb` blocks of `block_bytes`
/// (an fp16 scale, then the block's payload) become tiles of [`TILE`] rows in which, per block,
/// the 32 scales come first and then each payload byte of the 32 rows side by side (a pure byte
/// transpose; rows past `ne1` are zero). Runs in parallel on the pool when `parallel`.
pub(crate) fn pack_tiles(data: &[u8], nb: usize, block_bytes: usize, ne1: usize, parallel: bool) -> Vec<u8> {
    let row_bytes = nb * block_bytes;
    assert!(data.len() >= row_bytes * ne1);
    let tiles = (ne1 + TILE - 1) / TILE;
    let tile_block = TILE * block_bytes;
    let tile_bytes = nb * tile_block;
    let mut out = vec![0u8; tiles * tile_bytes];
    let dst = SendPtr(out.as_mut_ptr());
    let body = |ts: std::ops::Range<usize>| {
        let dst = dst;
        for t in ts {
            // SAFETY: tile t owns bytes [t*tile_bytes, (t+1)*tile_bytes) of `out`.
            let o = unsafe { std::slice::from_raw_parts_mut(dst.0.add(t * tile_bytes), tile_bytes) };
            for r in 0..TILE.min(ne1 - t * TILE) {
                let src = &data[(t * TILE + r) * row_bytes..(t * TILE + r + 1) * row_bytes];
                for b in 0..nb {
                    let s = &src[block_bytes * b..block_bytes * (b + 1)];
                    let ob = &mut o[b * tile_block..(b + 1) * tile_block];
                    ob[2 * r] = s[0];
                    ob[2 * r + 1] = s[1];
                    for i in 0..block_bytes - 2 {
                        ob[64 + 32 * i + r] = s[2 + i];
                    }
                }
            }
        }
    };
    // The pool is only used when packing runs on a thread outside it (always, from the C ABI).
    if !parallel || pool::parallel_for(tiles, 8, &body).is_err() {
        body(0..tiles);
    }
    out
}

/// Row `r` of a [`pack_tiles`] layout back in the original layout (`out` = `nb * block_bytes`).
pub(crate) fn unpack_row(data: &[u8], nb: usize, block_bytes: usize, r: usize, out: &mut [u8]) {
    let tile_block = TILE * block_bytes;
    let tile = &data[(r / TILE) * nb * tile_block..(r / TILE + 1) * nb * tile_block];
    let rr = r % TILE;
    for b in 0..nb {
        let ob = &tile[b * tile_block..(b + 1) * tile_block];
        let s = &mut out[block_bytes * b..block_bytes * (b + 1)];
        s[0] = ob[2 * rr];
        s[1] = ob[2 * rr + 1];
        for i in 0..block_bytes - 2 {
            s[2 + i] = ob[64 + 32 * i + rr];
        }
    }
}

impl PackedQ1 {
    /// Row `r` in the original Q1_0 layout (the inverse of packing).
    pub fn unpack_row(&self, r: usize, out: &mut [u8]) {
        unpack_row(&self.data, self.nb, 18, r, out);
    }

    /// Repacks `ne1` Q1_0 rows of `ne0` weights (`data` = `ne1 * ne0/128 * 18` bytes), in parallel
    /// on the pool.
    pub fn pack(data: &[u8], ne0: usize, ne1: usize) -> PackedQ1 {
        Self::pack_with(data, ne0, ne1, true)
    }

    /// [`PackedQ1::pack`], on the calling thread alone unless `parallel` (the start-up self-check
    /// must not start the pool).
    pub(crate) fn pack_with(data: &[u8], ne0: usize, ne1: usize, parallel: bool) -> PackedQ1 {
        assert!(ne0 % 128 == 0);
        let nb = ne0 / 128;
        PackedQ1 { data: pack_tiles(data, nb, 18, ne1, parallel), nb, tiles: (ne1 + TILE - 1) / TILE }
    }

    /// Bytes of tile `t`.
    #[inline]
    pub fn tile(&self, t: usize) -> &[u8] {
        let n = self.nb * TILE_BLOCK_BYTES;
        &self.data[t * n..(t + 1) * n]
    }
}

/// Table bytes for an activation of `ne0` elements.
pub fn tab_len(ne0: usize) -> usize {
    ne0 / 32 * TAB_BYTES
}

/// Scalar table builder (reference for the SIMD one; also documents the layout).
pub fn build_tables_scalar(q: &[i8], ne0: usize, tab: &mut [u8]) {
    for j in 0..ne0 / 32 {
        for g in 0..8 {
            let e = &q[32 * j + 4 * g..32 * j + 4 * g + 4];
            let t = &mut tab[j * TAB_BYTES + g * 32..j * TAB_BYTES + g * 32 + 32];
            for p in 0..16 {
                let mut u = 512i32;
                for (i, &x) in e.iter().enumerate() {
                    u += if (p >> i) & 1 == 1 { x as i32 } else { -(x as i32) };
                }
                t[p] = (u & 31) as u8;
                t[16 + p] = (u >> 5) as u8;
            }
        }
    }
}

#[cfg(all(target_arch = "x86_64", bk_f16c))]
pub mod avx2 {
    //! The AVX2 + F16C kernels. Callers must have detected both features.
    use super::{TAB_BYTES, TILE, TILE_BLOCK_BYTES};
    use std::arch::x86_64::*;

    /// Builds the tables for `ne0/32` activation blocks of `q` into `tab` ([`super::tab_len`] bytes).
    #[target_feature(enable = "avx2")]
    pub unsafe fn build_tables(q: &[i8], ne0: usize, tab: &mut [u8]) {
        let nsub = ne0 / 32;
        assert!(q.len() >= nsub * 32 && tab.len() >= nsub * TAB_BYTES);
        // pick i16 word i of each qword; sign_i[p] = bit i of p ? +1 : -1 (p = i16 lane 0..15)
        let pick = |i: i8| _mm256_setr_epi8(
            2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1,
            2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1,
            2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1,
            2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1,
        );
        let sign = |i: i16| {
            let s = |p: i16| if (p >> i) & 1 == 1 { 1 } else { -1 };
            _mm256_setr_epi16(s(0), s(1), s(2), s(3), s(4), s(5), s(6), s(7), s(8), s(9), s(10), s(11), s(12), s(13), s(14), s(15))
        };
        let (p0, p1, p2, p3) = (pick(0), pick(1), pick(2), pick(3));
        let (s0, s1, s2, s3) = (sign(0), sign(1), sign(2), sign(3));
        let bias = _mm256_set1_epi16(512);
        let m31 = _mm256_set1_epi16(31);
        let qp = q.as_ptr();
        let tp = tab.as_mut_ptr();
        for g in 0..nsub * 8 {
            let four = (qp.add(4 * g) as *const i32).read_unaligned();
            let x = _mm256_broadcastq_epi64(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(four)));
            let mut u = _mm256_add_epi16(bias, _mm256_sign_epi16(_mm256_shuffle_epi8(x, p0), s0));
            u = _mm256_add_epi16(u, _mm256_sign_epi16(_mm256_shuffle_epi8(x, p1), s1));
            u = _mm256_add_epi16(u, _mm256_sign_epi16(_mm256_shuffle_epi8(x, p2), s2));
            u = _mm256_add_epi16(u, _mm256_sign_epi16(_mm256_shuffle_epi8(x, p3), s3));
            let lh = _mm256_packus_epi16(_mm256_and_si256(u, m31), _mm256_srli_epi16::<5>(u));
            // [L0-7 H0-7 | L8-15 H8-15] -> [L0-15 | H0-15]
            _mm256_storeu_si256(tp.add(32 * g) as *mut __m256i, _mm256_permute4x64_epi64::<0xD8>(lh));
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn bcast(p: *const u8) -> __m256i {
        _mm256_broadcastsi128_si256(_mm_loadu_si128(p as *const __m128i))
    }

    /// `L + 32 * H` per row for 32 rows (i16 lanes: rows 0-7 and 16-23 in the first vector,
    /// 8-15 and 24-31 in the second) of 8 table lookups: the 4 bytes at `bits` (32 rows each; low
    /// nibble, then high nibble) index the 8 consecutive 32-byte `[L | H]` tables at `t`. Shared
    /// with `lut::q2`, whose nibbles hold 2 codes instead of 4 signs.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) unsafe fn parts_sum(bits: *const u8, t: *const u8) -> (__m256i, __m256i) {
        let m15 = _mm256_set1_epi8(0x0F);
        let mut la = _mm256_setzero_si256();
        let mut ha = _mm256_setzero_si256();
        for p in 0..4 {
            let w = _mm256_loadu_si256(bits.add(32 * p) as *const __m256i);
            let lo = _mm256_and_si256(w, m15);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(w), m15);
            let g0 = t.add(64 * p);
            let g1 = g0.add(32);
            la = _mm256_add_epi8(la, _mm256_shuffle_epi8(bcast(g0), lo));
            ha = _mm256_add_epi8(ha, _mm256_shuffle_epi8(bcast(g0.add(16)), lo));
            la = _mm256_add_epi8(la, _mm256_shuffle_epi8(bcast(g1), hi));
            ha = _mm256_add_epi8(ha, _mm256_shuffle_epi8(bcast(g1.add(16)), hi));
        }
        // bytes [L, H] per row -> L + 32*H
        let c = _mm256_set1_epi16(0x2001);
        (_mm256_maddubs_epi16(_mm256_unpacklo_epi8(la, ha), c), _mm256_maddubs_epi16(_mm256_unpackhi_epi8(la, ha), c))
    }

    /// Exact integer sums of ±q for the 32 rows of one tile and one activation block (row order
    /// of [`parts_sum`]): its parts less the 8 * 512 bias of the tables.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn isum_block(bits: *const u8, t: *const u8) -> (__m256i, __m256i) {
        let (s0, s1) = parts_sum(bits, t);
        let bias = _mm256_set1_epi16(8 * 512);
        (_mm256_sub_epi16(s0, bias), _mm256_sub_epi16(s1, bias))
    }

    /// `out[r] = row r of tile · act` for the 32 rows of one tile (`w` = the tile's bytes, `tab` =
    /// the activation's tables, `d` = its block scales).
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn tile_dot(w: &[u8], tab: &[u8], d: &[f32], nb: usize, out: &mut [f32; TILE]) {
        assert!(w.len() >= nb * TILE_BLOCK_BYTES && tab.len() >= nb * 4 * TAB_BYTES && d.len() >= nb * 4);
        let (wp, tp, dp) = (w.as_ptr(), tab.as_ptr(), d.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); 4]; 4];
        for b in 0..nb {
            let blk = wp.add(b * TILE_BLOCK_BYTES);
            crate::prefetch::prefetch_lines(blk.wrapping_add(super::PREFETCH_BYTES), TILE_BLOCK_BYTES);
            let dw = row_scales(blk);
            for k in 0..4 {
                let j = 4 * b + k;
                let (s0, s1) = isum_block(blk.add(64 + 128 * k), tp.add(j * TAB_BYTES));
                add_block(&mut acc[k], &dw, *dp.add(j), s0, s1);
            }
        }
        store_tile(&acc, out);
    }

    /// The fp16 scales of a tile block's 32 rows (its first 64 bytes), rows 0-7, 8-15, 16-23, 24-31.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    pub(crate) unsafe fn row_scales(blk: *const u8) -> [__m256; 4] {
        let half = |v: usize| _mm256_cvtph_ps(_mm_loadu_si128(blk.add(16 * v) as *const __m128i));
        [half(0), half(1), half(2), half(3)]
    }

    /// The reference float step of one activation block, lane-wise over the 32 rows:
    /// `acc[v] = acc[v] + (dw[v] * dx) * isum` with the integer sums in [`parts_sum`] row order.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    pub(crate) unsafe fn add_block(acc: &mut [__m256; 4], dw: &[__m256; 4], dx: f32, s0: __m256i, s1: __m256i) {
        let is = [
            _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s0)),
            _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s1)),
            _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(s0)),
            _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(s1)),
        ];
        let dx = _mm256_set1_ps(dx);
        for v in 0..4 {
            acc[v] = _mm256_add_ps(acc[v], _mm256_mul_ps(_mm256_mul_ps(dw[v], dx), _mm256_cvtepi32_ps(is[v])));
        }
    }

    /// `(acc0 + acc1) + (acc2 + acc3)` (the accumulators of blocks `j % 4`) for the 32 rows.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) unsafe fn store_tile(acc: &[[__m256; 4]; 4], out: &mut [f32; TILE]) {
        for v in 0..4 {
            let s = _mm256_add_ps(_mm256_add_ps(acc[0][v], acc[1][v]), _mm256_add_ps(acc[2][v], acc[3][v]));
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), s);
        }
    }
}

#[cfg(target_arch = "aarch64")]
#[path = "q1_neon.rs"]
pub mod neon;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::{act_layout, quantize_act, Act};
    use crate::dispatch::SCALAR;
    use crate::lut::available;
    use crate::formats::Format;
    use crate::matmul;
    use crate::tensor::Tensor;
    use crate::testutil::{as_bytes, as_bytes_mut, random_act, random_rows, Rng};

    fn act_of(x: &[f32]) -> Vec<u32> {
        let mut buf = vec![0u32; act_layout(x.len()).total / 4];
        quantize_act(x, as_bytes_mut(&mut buf)).unwrap();
        buf
    }

    #[test]
    fn pack_is_a_byte_transpose() {
        let mut rng = Rng::new(21);
        let (ne0, ne1) = (256, 37);
        let rows = random_rows(&mut rng, Format::Q1_0, ne0, ne1, false);
        let p = PackedQ1::pack(&rows, ne0, ne1);
        assert_eq!((p.nb, p.tiles), (2, 2));
        for r in 0..64 {
            for b in 0..2 {
                let blk = &p.tile(r / TILE)[b * TILE_BLOCK_BYTES..];
                let rr = r % TILE;
                let (d, bits): (Vec<u8>, Vec<u8>) = if r < ne1 {
                    let s = &rows[r * 36 + 18 * b..r * 36 + 18 * b + 18];
                    (s[..2].to_vec(), s[2..].to_vec())
                } else {
                    (vec![0; 2], vec![0; 16]) // padding rows are zero
                };
                assert_eq!(&blk[2 * rr..2 * rr + 2], &d[..]);
                for i in 0..16 {
                    assert_eq!(blk[64 + 32 * i + rr], bits[i], "row {} block {} byte {}", r, b, i);
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
        let mut rng = Rng::new(5);
        let mut q: Vec<i8> = (0..512).map(|_| (rng.next_u32() % 255) as i32 as i8).collect();
        q[0..4].copy_from_slice(&[127, 127, 127, 127]);
        q[4..8].copy_from_slice(&[-127, -127, -127, -127]);
        let mut want = vec![0u8; tab_len(512)];
        let mut got = vec![1u8; tab_len(512)];
        build_tables_scalar(&q, 512, &mut want);
        #[cfg(target_arch = "x86_64")]
        unsafe { avx2::build_tables(&q, 512, &mut got) };
        #[cfg(target_arch = "aarch64")]
        unsafe { neon::build_tables(&q, 512, &mut got) };
        assert_eq!(got, want);
        assert!(want.iter().all(|&b| b < 32), "table entries must stay below 32 so 8 of them sum in a byte");
    }

    /// matvec_multi and matmul on the packed path (wherever the lookup-table kernels run) against
    /// the scalar reference bit for bit: 1..20 tokens (full and partial groups of 8), odd row
    /// counts with tail tiles, padded strides, and a Q8_0 tensor sharing the activation.
    #[test]
    fn packed_multi_and_matmul_equal_scalar_bit_for_bit() {
        let mut rng = Rng::new(34);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let ne0 = 384;
        let mut ts: Vec<Tensor> = Vec::new();
        for &(fmt, ne1) in [(Format::Q1_0, 97usize), (Format::Q8_0, 65), (Format::Q1_0, 1), (Format::Q1_0, 33)].iter() {
            let mut rows = random_rows(&mut rng, fmt, ne0, ne1, false);
            if fmt == Format::Q1_0 {
                // row 0 all +d: the largest byte sums
                for b in 0..ne0 / 128 {
                    for i in 2..18 {
                        rows[18 * b + i] = 0xFF;
                    }
                }
            }
            let t = Tensor::from_bytes(&rows, fmt.code(), ne0 as u64, ne1 as u64).unwrap();
            assert_eq!(t.packed.is_some(), fmt == Format::Q1_0 && available());
            ts.push(t);
        }
        let n_max = 20;
        let acts: Vec<Vec<u32>> = (0..n_max).map(|k| if k == 0 { act_of(&vec![-1.0; ne0]) } else { random_act(&mut rng, ne0).1 }).collect();
        // want[t][k] = scalar rows of tensor t against activation k
        let want: Vec<Vec<Vec<f32>>> = ts
            .iter()
            .map(|t| {
                acts.iter()
                    .map(|act| {
                        let a = Act::from_bytes(as_bytes(act), ne0).unwrap();
                        (0..t.ne1).map(|r| (SCALAR.dot_fn(t.fmt))(t.row(r), &a, ne0)).collect()
                    })
                    .collect()
            })
            .collect();

        for (k, act) in acts.iter().take(3).enumerate() {
            let mut outs: Vec<Vec<f32>> = ts.iter().map(|t| vec![f32::NAN; t.ne1 + 1]).collect();
            {
                let refs: Vec<&Tensor> = ts.iter().collect();
                let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| &mut v[..]).collect();
                matmul::matvec_multi(&refs, as_bytes(act), &mut o).unwrap();
            }
            for (i, t) in ts.iter().enumerate() {
                assert_eq!(bits(&outs[i][..t.ne1]), bits(&want[i][k]), "matvec_multi tensor {} act {}", i, k);
                assert!(outs[i][t.ne1].is_nan(), "nothing written past the last row");
            }
        }

        let one = act_layout(ne0).total;
        for n_tok in 1..=n_max {
            let stride = one + 4 * (n_tok % 3);
            let mut buf = vec![0u32; (stride * n_tok + 3) / 4];
            for (k, act) in acts.iter().take(n_tok).enumerate() {
                as_bytes_mut(&mut buf)[k * stride..k * stride + one].copy_from_slice(&as_bytes(act)[..one]);
            }
            for (i, t) in ts.iter().enumerate() {
                let out_stride = t.ne1 + 3;
                let mut out = vec![f32::NAN; out_stride * n_tok];
                matmul::matmul(t, as_bytes(&buf), n_tok, stride, &mut out, out_stride).unwrap();
                for k in 0..n_tok {
                    let row = &out[k * out_stride..(k + 1) * out_stride];
                    assert_eq!(bits(&row[..t.ne1]), bits(&want[i][k]), "matmul tensor {} tokens {} token {}", i, n_tok, k);
                    assert!(row[t.ne1..].iter().all(|x| x.is_nan()), "matmul wrote into the stride padding");
                }
            }
        }
    }

    /// The packed path against the scalar reference at the extremes of the byte accumulators
    /// (every q = ±127, all bits set or clear), on random data, with tail tiles.
    #[test]
    fn packed_matvec_equals_scalar_bit_for_bit() {
        let mut rng = Rng::new(8);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        for &(ne0, ne1) in [(128usize, 1usize), (256, 31), (512, 33), (1024, 64), (2048, 97)].iter() {
            let mut rows = random_rows(&mut rng, Format::Q1_0, ne0, ne1, false);
            // row 0 all +d, row 1 (if any) all -d: the largest and smallest sums
            for b in 0..ne0 / 128 {
                for i in 2..18 {
                    rows[18 * b + i] = 0xFF;
                    if ne1 > 1 {
                        rows[ne0 / 128 * 18 + 18 * b + i] = 0;
                    }
                }
            }
            let t = Tensor::from_bytes(&rows, Format::Q1_0.code(), ne0 as u64, ne1 as u64).unwrap();
            if available() {
                assert!(t.packed.is_some(), "Q1_0 tensors are packed where the LUT kernel runs");
            }
            let xs: Vec<Vec<f32>> = vec![
                vec![1.0; ne0],
                vec![-1.0; ne0],
                (0..ne0).map(|i| if i % 3 == 0 { -2.0 } else { 1.5 }).collect(),
                random_act(&mut rng, ne0).0,
            ];
            for x in xs.iter() {
                let act = act_of(x);
                let a = Act::from_bytes(as_bytes(&act), ne0).unwrap();
                let want: Vec<f32> = (0..ne1).map(|r| (SCALAR.dot_fn(Format::Q1_0))(t.row(r), &a, ne0)).collect();
                let mut got = vec![f32::NAN; ne1 + 1];
                matmul::matvec(&t, as_bytes(&act), &mut got).unwrap();
                assert_eq!(bits(&got[..ne1]), bits(&want), "[{} x {}]", ne0, ne1);
                assert!(got[ne1].is_nan(), "nothing written past the last row");
            }
        }
    }
}
