//! The Q1_0 lookup-table kernels in AVX-512BW (zmm): the same packed tiles and table contents as
//! the AVX2 kernels (`lut::q1`), twice the width per lookup. One zmm load holds two sign bytes of
//! the tile's 32 rows; a lane permute puts them as [byte p rows 0-15, byte p+1 rows 0-15, byte p
//! rows 16-31, byte p+1 rows 16-31] so that one 32-byte table pair broadcast to both halves
//! serves all four lanes. The tables are therefore stored per 4 groups as
//! `[L(4m) | L(4m+2)], [H(4m) | H(4m+2)], [L(4m+1) | L(4m+3)], [H(4m+1) | H(4m+3)]` (same bytes
//! as the AVX2 tables, reordered; same size). The integer sums are the AVX2 kernel's exactly and
//! the float steps are the reference's, lane-wise over rows: the same bits as every other path.

use super::q1::{TAB_BYTES, TILE, TILE_BLOCK_BYTES};
use std::arch::x86_64::*;

/// Builds the tables for `ne0/32` activation blocks of `q` into `tab` ([`super::q1::tab_len`]
/// bytes), in this kernel's order.
#[target_feature(enable = "avx2")]
pub unsafe fn build_tables(q: &[i8], ne0: usize, tab: &mut [u8]) {
    let nsub = ne0 / 32;
    assert!(tab.len() >= nsub * TAB_BYTES);
    super::q1::avx2::build_tables(q, ne0, tab);
    // per 4 groups: [L0 H0] [L1 H1] [L2 H2] [L3 H3] -> [L0 L2] [H0 H2] [L1 L3] [H1 H3]
    let tp = tab.as_mut_ptr();
    for s in 0..nsub * 2 {
        let p = tp.add(128 * s);
        let a: [__m256i; 4] = [
            _mm256_loadu_si256(p as *const __m256i),
            _mm256_loadu_si256(p.add(32) as *const __m256i),
            _mm256_loadu_si256(p.add(64) as *const __m256i),
            _mm256_loadu_si256(p.add(96) as *const __m256i),
        ];
        _mm256_storeu_si256(p as *mut __m256i, _mm256_permute2x128_si256::<0x20>(a[0], a[2]));
        _mm256_storeu_si256(p.add(32) as *mut __m256i, _mm256_permute2x128_si256::<0x31>(a[0], a[2]));
        _mm256_storeu_si256(p.add(64) as *mut __m256i, _mm256_permute2x128_si256::<0x20>(a[1], a[3]));
        _mm256_storeu_si256(p.add(96) as *mut __m256i, _mm256_permute2x128_si256::<0x31>(a[1], a[3]));
    }
}

/// `L + 32 * H - 8 * 512` (the exact integer sums of ±q) for the 32 rows of one tile and one
/// activation block, as i16: rows 0-7 and 16-23 in the first vector, 8-15 and 24-31 in the second
/// (the AVX2 kernel's order).
#[target_feature(enable = "avx512f,avx512bw,avx2")]
#[inline]
unsafe fn isum_block(bits: *const u8, t: *const u8) -> (__m256i, __m256i) {
    let m15 = _mm512_set1_epi8(0x0F);
    let mut la = _mm512_setzero_si512();
    let mut ha = _mm512_setzero_si512();
    for m in 0..2 {
        let w = _mm512_loadu_si512(bits.add(64 * m) as *const _);
        // [p r0-15, p r16-31, p+1 r0-15, p+1 r16-31] -> [p r0-15, p+1 r0-15, p r16-31, p+1 r16-31]
        let w = _mm512_shuffle_i64x2::<0xD8>(w, w);
        let lo = _mm512_and_si512(w, m15);
        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(w), m15);
        let e = t.add(128 * m);
        let tab = |o: usize| _mm512_broadcast_i64x4(_mm256_loadu_si256(e.add(o) as *const __m256i));
        la = _mm512_add_epi8(la, _mm512_shuffle_epi8(tab(0), lo));
        ha = _mm512_add_epi8(ha, _mm512_shuffle_epi8(tab(32), lo));
        la = _mm512_add_epi8(la, _mm512_shuffle_epi8(tab(64), hi));
        ha = _mm512_add_epi8(ha, _mm512_shuffle_epi8(tab(96), hi));
    }
    // lanes [even p rows 0-15, odd p rows 0-15, even p rows 16-31, odd p rows 16-31]: add the
    // pairs (8 lookups per row in all, each < 32: the byte sums stay below 256)
    let fold = |v: __m512i| {
        let (a, b) = (_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
        _mm256_add_epi8(_mm256_permute2x128_si256::<0x20>(a, b), _mm256_permute2x128_si256::<0x31>(a, b))
    };
    let (l, h) = (fold(la), fold(ha));
    let c = _mm256_set1_epi16(0x2001);
    let bias = _mm256_set1_epi16(8 * 512);
    (
        _mm256_sub_epi16(_mm256_maddubs_epi16(_mm256_unpacklo_epi8(l, h), c), bias),
        _mm256_sub_epi16(_mm256_maddubs_epi16(_mm256_unpackhi_epi8(l, h), c), bias),
    )
}

/// `out[r] = row r of tile · act` for the 32 rows of one tile (`w` = the tile's bytes, `tab` =
/// the activation's tables from [`build_tables`], `d` = its block scales).
#[target_feature(enable = "avx512f,avx512bw,avx2,f16c")]
pub unsafe fn tile_dot(w: &[u8], tab: &[u8], d: &[f32], nb: usize, out: &mut [f32; TILE]) {
    assert!(w.len() >= nb * TILE_BLOCK_BYTES && tab.len() >= nb * 4 * TAB_BYTES && d.len() >= nb * 4);
    let (wp, tp, dp) = (w.as_ptr(), tab.as_ptr(), d.as_ptr());
    // acc[k][0]: rows 0-7 and 16-23, acc[k][1]: rows 8-15 and 24-31 (the isum order)
    let mut acc = [[_mm512_setzero_ps(); 2]; 4];
    for b in 0..nb {
        let blk = wp.add(b * TILE_BLOCK_BYTES);
        crate::prefetch::prefetch_lines(blk.wrapping_add(super::q1::PREFETCH_BYTES), TILE_BLOCK_BYTES);
        let half = |v: usize| _mm_loadu_si128(blk.add(16 * v) as *const __m128i);
        let dw = [
            _mm512_cvtph_ps(_mm256_set_m128i(half(2), half(0))),
            _mm512_cvtph_ps(_mm256_set_m128i(half(3), half(1))),
        ];
        for k in 0..4 {
            let j = 4 * b + k;
            let (s0, s1) = isum_block(blk.add(64 + 128 * k), tp.add(j * TAB_BYTES));
            let dx = _mm512_set1_ps(*dp.add(j));
            let is = [_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(s0)), _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(s1))];
            for v in 0..2 {
                acc[k][v] = _mm512_add_ps(acc[k][v], _mm512_mul_ps(_mm512_mul_ps(dw[v], dx), is[v]));
            }
        }
    }
    let o = out.as_mut_ptr();
    for v in 0..2 {
        let s = _mm512_add_ps(_mm512_add_ps(acc[0][v], acc[1][v]), _mm512_add_ps(acc[2][v], acc[3][v]));
        _mm256_storeu_ps(o.add(8 * v), _mm512_castps512_ps256(s));
        _mm256_storeu_ps(o.add(16 + 8 * v), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(s))));
    }
}

#[cfg(test)]
mod tests {
    use crate::act::Act;
    use crate::dispatch::SCALAR;
    use crate::formats::Format;
    use crate::lut::q1::{tab_len, PackedQ1, TILE};
    use crate::testutil::{as_bytes, random_act, random_rows, Rng};

    /// The zmm kernel against the scalar row dots bit for bit (tail tiles, all-set and all-clear
    /// rows, every q = ±127), where the CPU has AVX-512BW.
    #[test]
    fn tile_dot_equals_scalar_bit_for_bit() {
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("f16c")) {
            eprintln!("skipped: no avx512bw");
            return;
        }
        let mut rng = Rng::new(77);
        for &(ne0, ne1) in [(128usize, 5usize), (512, 40), (2048, 64)].iter() {
            let mut rows = random_rows(&mut rng, Format::Q1_0, ne0, ne1, false);
            let rb = Format::Q1_0.row_bytes(ne0);
            for b in 0..ne0 / 128 {
                for i in 2..18 {
                    rows[18 * b + i] = 0xFF;
                    rows[rb + 18 * b + i] = 0;
                }
            }
            let p = PackedQ1::pack(&rows, ne0, ne1);
            let mut bufs: Vec<Vec<u32>> = (0..3).map(|_| random_act(&mut rng, ne0).1).collect();
            let mut x = vec![1.0f32; ne0];
            x[1] = -1.0;
            let mut b0 = vec![0u32; crate::act::act_layout(ne0).total / 4];
            crate::act::quantize_act(&x, crate::testutil::as_bytes_mut(&mut b0)).unwrap();
            bufs.push(b0);
            for buf in bufs.iter() {
                let a = Act::from_bytes(as_bytes(buf), ne0).unwrap();
                let mut tab = vec![0u8; tab_len(ne0)];
                unsafe { super::build_tables(a.q, ne0, &mut tab) };
                for t in 0..p.tiles {
                    let mut out = [f32::NAN; TILE];
                    unsafe { super::tile_dot(p.tile(t), &tab, a.d, p.nb, &mut out) };
                    for r in 0..TILE.min(ne1 - t * TILE) {
                        let row = t * TILE + r;
                        let want = (SCALAR.dot_fn(Format::Q1_0))(&rows[row * rb..(row + 1) * rb], &a, ne0);
                        assert_eq!(out[r].to_bits(), want.to_bits(), "[{} x {}] row {}", ne0, ne1, row);
                    }
                }
            }
        }
    }
}
