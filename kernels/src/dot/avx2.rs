//! AVX2 (+F16C) dot products. Integer sums come from SIMD; the float accumulation follows the exact
//! order documented in `dot::scalar`, with the four accumulators held in one 128-bit register, so
//! every result is bit-identical to the scalar reference.
//!
//! Callers must only use these after detecting `avx2` and `f16c` (the dispatch table does).

use crate::act::{Act, QK};
use crate::dot::scalar as dot_scalar;
use std::arch::x86_64::*;

// ---- shared helpers ----

/// [sum(v0), sum(v1), sum(v2), sum(v3)] of the eight i32 lanes of each vector.
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn hsum4_epi32(v0: __m256i, v1: __m256i, v2: __m256i, v3: __m256i) -> __m128i {
    let h01 = _mm256_hadd_epi32(v0, v1);
    let h23 = _mm256_hadd_epi32(v2, v3);
    let h = _mm256_hadd_epi32(h01, h23);
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// Sums adjacent bytes of `u` (unsigned, < 128 here or 0..3 codes) times `s` (signed) into eight i32 lanes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn dot_u8i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// Converts the low four halves of `v` to f32 (F16C when the compiler supports it, else software;
/// both exact, so results do not depend on which).
#[cfg(bk_f16c)]
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub unsafe fn cvt_ph4(v: __m128i) -> __m128 {
    _mm_cvtph_ps(v)
}

/// Converts the eight halves of `v` to f32.
#[cfg(bk_f16c)]
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub unsafe fn cvt_ph8(v: __m128i) -> __m256 {
    _mm256_cvtph_ps(v)
}

#[cfg(not(bk_f16c))]
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn cvt_ph4(v: __m128i) -> __m128 {
    let mut h = [0u16; 8];
    _mm_storeu_si128(h.as_mut_ptr() as *mut __m128i, v);
    let f = crate::f16::f16_to_f32;
    _mm_setr_ps(f(h[0]), f(h[1]), f(h[2]), f(h[3]))
}

#[cfg(not(bk_f16c))]
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn cvt_ph8(v: __m128i) -> __m256 {
    let mut h = [0u16; 8];
    _mm_storeu_si128(h.as_mut_ptr() as *mut __m128i, v);
    let f = crate::f16::f16_to_f32;
    _mm256_setr_ps(f(h[0]), f(h[1]), f(h[2]), f(h[3]), f(h[4]), f(h[5]), f(h[6]), f(h[7]))
}

/// Broadcasts the fp16 at `p` (unaligned) as f32 to four lanes.
#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
#[inline]
unsafe fn half_bcast(p: *const u8) -> __m128 {
    let h = (p as *const u16).read_unaligned();
    cvt_ph4(_mm_set1_epi16(h as i16))
}

/// `acc + (dw * dx) * isum` lane-wise: one step of the shared accumulation order for 4 blocks.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn acc_step(acc: __m128, dw: __m128, dx: __m128, isum: __m128i) -> __m128 {
    _mm_add_ps(acc, _mm_mul_ps(_mm_mul_ps(dw, dx), _mm_cvtepi32_ps(isum)))
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn to_array(acc: __m128) -> [f32; 4] {
    let mut a = [0.0f32; 4];
    _mm_storeu_ps(a.as_mut_ptr(), acc);
    a
}

// ---- Q1_0 ----

/// [sum(v0), sum(v1), sum(v2), sum(v3)] of the sixteen i16 lanes of each vector (exact while every
/// partial fits in i16: here pairs of bytes summed by maddubs, at most 32 * 127 per vector).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hsum4_epi16(v0: __m256i, v1: __m256i, v2: __m256i, v3: __m256i) -> __m128i {
    let h01 = _mm256_hadd_epi16(v0, v1);
    let h23 = _mm256_hadd_epi16(v2, v3);
    let h = _mm256_madd_epi16(_mm256_hadd_epi16(h01, h23), _mm256_set1_epi16(1));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// Sum of the 32 q bytes whose bit is set in `bits`, as sixteen i16 lanes. `q` points at the
/// block in `q1p` order (position 4a+c holds element 8c+a), so a broadcast of `bits` ANDed with
/// 1<<a in dword a isolates each element's bit without a byte shuffle.
/// Dword a holds the byte 1<<a four times: ANDed with a broadcast 32-bit weight word in q1p
/// order, it isolates each element's sign bit.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn bit_lanes() -> __m256i {
    _mm256_setr_epi32(
        0x0101_0101,
        0x0202_0202,
        0x0404_0404,
        0x0808_0808,
        0x1010_1010,
        0x2020_2020,
        0x4040_4040,
        0x8080_8080u32 as i32,
    )
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q1_on_sub(bits: u32, q: *const i8) -> __m256i {
    let bit = bit_lanes();
    let mask = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_set1_epi32(bits as i32), bit), bit);
    let sel = _mm256_and_si256(mask, _mm256_loadu_si256(q as *const __m256i));
    _mm256_maddubs_epi16(_mm256_set1_epi8(1), sel)
}

/// Integer sums of ±q for the four activation blocks met by one Q1_0 block (`blk` -> 18 bytes).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q1_isum4(blk: *const u8, q: *const i8, qsum: *const i32) -> __m128i {
    let w = blk.add(2) as *const u32;
    let on = hsum4_epi16(
        q1_on_sub(w.read_unaligned(), q),
        q1_on_sub(w.add(1).read_unaligned(), q.add(32)),
        q1_on_sub(w.add(2).read_unaligned(), q.add(64)),
        q1_on_sub(w.add(3).read_unaligned(), q.add(96)),
    );
    // sum(±q) = 2 * sum(q where bit = 1) - sum(q)
    _mm_sub_epi32(_mm_slli_epi32::<1>(on), _mm_loadu_si128(qsum as *const __m128i))
}

fn check(row: &[u8], act: &Act, row_bytes: usize, nb: usize) {
    assert!(row.len() >= row_bytes && act.d.len() >= nb && act.q.len() >= nb * QK && act.qsum.len() >= nb);
}

#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn dot_q1_0(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let nw = ne0 / 128;
    check(row, act, nw * 18, nw * 4);
    assert!(act.q1p.len() >= nw * 128);
    let (rp, qp, dp, sp) = (row.as_ptr(), act.q1p.as_ptr(), act.d.as_ptr(), act.qsum.as_ptr());
    let mut acc = _mm_setzero_ps();
    for b in 0..nw {
        let blk = rp.add(18 * b);
        let isum = q1_isum4(blk, qp.add(128 * b), sp.add(4 * b));
        acc = acc_step(acc, half_bcast(blk), _mm_loadu_ps(dp.add(4 * b)), isum);
    }
    dot_scalar::finish(to_array(acc))
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q1_mask(w: *const u32, bit: __m256i) -> __m256i {
    let v = _mm256_set1_epi32(w.read_unaligned() as i32);
    _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit)
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q1_sel(mask: __m256i, q: *const i8, ones: __m256i) -> __m256i {
    _mm256_maddubs_epi16(ones, _mm256_and_si256(mask, ld(q)))
}

/// One Q1_0 row against up to 8 activations (prefill): the bit masks of each block are built once
/// and reused for every token. Each result is bit-identical to [`dot_q1_0`] on that activation
/// (same integer sums, same float steps in the same order).
#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn dot_q1_0_multi(row: &[u8], acts: &[Act], ne0: usize, out: &mut [f32]) {
    let nw = ne0 / 128;
    let nt = acts.len();
    assert!(nt <= 8 && out.len() >= nt);
    for a in acts {
        check(row, a, nw * 18, nw * 4);
        assert!(a.q1p.len() >= nw * 128);
    }
    let bit = bit_lanes();
    let ones = _mm256_set1_epi8(1);
    let rp = row.as_ptr();
    let mut acc = [_mm_setzero_ps(); 8];
    for b in 0..nw {
        let blk = rp.add(18 * b);
        let w = blk.add(2) as *const u32;
        let (m0, m1, m2, m3) = (q1_mask(w, bit), q1_mask(w.add(1), bit), q1_mask(w.add(2), bit), q1_mask(w.add(3), bit));
        let dw = half_bcast(blk);
        for t in 0..nt {
            let a = &acts[t];
            let q = a.q1p.as_ptr().add(128 * b);
            let on = hsum4_epi16(q1_sel(m0, q, ones), q1_sel(m1, q.add(32), ones), q1_sel(m2, q.add(64), ones), q1_sel(m3, q.add(96), ones));
            let isum = _mm_sub_epi32(_mm_slli_epi32::<1>(on), _mm_loadu_si128(a.qsum.as_ptr().add(4 * b) as *const __m128i));
            acc[t] = acc_step(acc[t], dw, _mm_loadu_ps(a.d.as_ptr().add(4 * b)), isum);
        }
    }
    for t in 0..nt {
        out[t] = dot_scalar::finish(to_array(acc[t]));
    }
}

#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn isums_q1_0(row: &[u8], act: &Act, ne0: usize, out: &mut [i32]) {
    let nw = ne0 / 128;
    check(row, act, nw * 18, nw * 4);
    assert!(out.len() >= nw * 4 && act.q1p.len() >= nw * 128);
    for b in 0..nw {
        let v = q1_isum4(row.as_ptr().add(18 * b), act.q1p.as_ptr().add(128 * b), act.qsum.as_ptr().add(4 * b));
        _mm_storeu_si128(out.as_mut_ptr().add(4 * b) as *mut __m128i, v);
    }
}

// ---- Q2_0 (block 128 and block 64) ----

/// Expands 2-bit codes: each 128-bit lane of `v` holds 16 code bytes (64 weights). Returns the codes
/// as bytes for weights 0..32 and 32..64 of lane 0, then 0..32 and 32..64 of lane 1.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q2_expand(v: __m256i) -> (__m256i, __m256i, __m256i, __m256i) {
    let m3 = _mm256_set1_epi8(3);
    // s_m byte p = code of weight 4p+m (16-bit shifts leak bits only above the 2 kept ones)
    let s0 = _mm256_and_si256(v, m3);
    let s1 = _mm256_and_si256(_mm256_srli_epi16::<2>(v), m3);
    let s2 = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m3);
    let s3 = _mm256_and_si256(_mm256_srli_epi16::<6>(v), m3);
    let l01 = _mm256_unpacklo_epi8(s0, s1);
    let l23 = _mm256_unpacklo_epi8(s2, s3);
    let h01 = _mm256_unpackhi_epi8(s0, s1);
    let h23 = _mm256_unpackhi_epi8(s2, s3);
    let a = _mm256_unpacklo_epi16(l01, l23); // weights 0..16 of each lane
    let b = _mm256_unpackhi_epi16(l01, l23); // 16..32
    let c = _mm256_unpacklo_epi16(h01, h23); // 32..48
    let d = _mm256_unpackhi_epi16(h01, h23); // 48..64
    (
        _mm256_permute2x128_si256::<0x20>(a, b),
        _mm256_permute2x128_si256::<0x20>(c, d),
        _mm256_permute2x128_si256::<0x31>(a, b),
        _mm256_permute2x128_si256::<0x31>(c, d),
    )
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn ld(q: *const i8) -> __m256i {
    _mm256_loadu_si256(q as *const __m256i)
}

/// Integer sums of (code-1)*q for 128 weights whose code bytes are in `v` (lane 0: first 64).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q2_isum4(v: __m256i, q: *const i8, qsum: *const i32) -> __m128i {
    let (c0, c1, c2, c3) = q2_expand(v);
    let s = hsum4_epi32(dot_u8i8(c0, ld(q)), dot_u8i8(c1, ld(q.add(32))), dot_u8i8(c2, ld(q.add(64))), dot_u8i8(c3, ld(q.add(96))));
    // sum((code-1)*q) = sum(code*q) - sum(q)
    _mm_sub_epi32(s, _mm_loadu_si128(qsum as *const __m128i))
}

/// Integer sums for the two activation blocks of one 64-weight block (lanes 0, 1 of the result).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q2_isum2(qs: *const u8, q: *const i8, qsum: *const i32) -> __m128i {
    let h = _mm_loadu_si128(qs as *const __m128i);
    let (c0, c1, _, _) = q2_expand(_mm256_inserti128_si256::<1>(_mm256_castsi128_si256(h), h));
    let z = _mm256_setzero_si256();
    let s = hsum4_epi32(dot_u8i8(c0, ld(q)), dot_u8i8(c1, ld(q.add(32))), z, z);
    _mm_sub_epi32(s, _mm_setr_epi32(*qsum, *qsum.add(1), 0, 0))
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load_pair_g64(blk: *const u8) -> __m256i {
    let lo = _mm_loadu_si128(blk.add(2) as *const __m128i);
    let hi = _mm_loadu_si128(blk.add(20) as *const __m128i);
    _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi)
}

#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn dot_q2_0(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let nw = ne0 / 128;
    check(row, act, nw * 34, nw * 4);
    let (rp, qp, dp, sp) = (row.as_ptr(), act.q.as_ptr(), act.d.as_ptr(), act.qsum.as_ptr());
    let mut acc = _mm_setzero_ps();
    for b in 0..nw {
        let blk = rp.add(34 * b);
        let isum = q2_isum4(_mm256_loadu_si256(blk.add(2) as *const __m256i), qp.add(128 * b), sp.add(4 * b));
        acc = acc_step(acc, half_bcast(blk), _mm_loadu_ps(dp.add(4 * b)), isum);
    }
    dot_scalar::finish(to_array(acc))
}

#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn dot_q2_0_g64(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let nw = ne0 / 64;
    check(row, act, nw * 18, nw * 2);
    let (rp, qp, dp, sp) = (row.as_ptr(), act.q.as_ptr(), act.d.as_ptr(), act.qsum.as_ptr());
    let mut acc = _mm_setzero_ps();
    let pairs = nw / 2;
    for p in 0..pairs {
        let blk = rp.add(36 * p);
        let isum = q2_isum4(load_pair_g64(blk), qp.add(128 * p), sp.add(4 * p));
        let ha = (blk as *const u16).read_unaligned() as i16;
        let hb = (blk.add(18) as *const u16).read_unaligned() as i16;
        let dw = cvt_ph4(_mm_setr_epi16(ha, ha, hb, hb, 0, 0, 0, 0));
        acc = acc_step(acc, dw, _mm_loadu_ps(dp.add(4 * p)), isum);
    }
    let mut a = to_array(acc);
    if nw % 2 == 1 {
        // last block alone: activation blocks 4*pairs (lane 0) and 4*pairs+1 (lane 1)
        let blk = rp.add(36 * pairs);
        let j = 4 * pairs;
        let mut is = [0i32; 4];
        _mm_storeu_si128(is.as_mut_ptr() as *mut __m128i, q2_isum2(blk.add(2), qp.add(QK * j), sp.add(j)));
        let dw = crate::f16::f16_to_f32((blk as *const u16).read_unaligned());
        dot_scalar::acc_q(&mut a, j, dw, *dp.add(j), is[0]);
        dot_scalar::acc_q(&mut a, j + 1, dw, *dp.add(j + 1), is[1]);
    }
    dot_scalar::finish(a)
}

/// Integer sums for Q2_0 rows of either block size (`block` 128 or 64).
#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn isums_q2(row: &[u8], act: &Act, ne0: usize, block: usize, out: &mut [i32]) {
    let nb = ne0 / QK;
    check(row, act, ne0 / block * (2 + block / 4), nb);
    assert!(out.len() >= nb);
    let (rp, qp, sp) = (row.as_ptr(), act.q.as_ptr(), act.qsum.as_ptr());
    let mut j = 0;
    while j + 4 <= nb {
        let v = if block == 128 {
            _mm256_loadu_si256(rp.add(34 * (j / 4) + 2) as *const __m256i)
        } else {
            load_pair_g64(rp.add(18 * (j / 2)))
        };
        _mm_storeu_si128(out.as_mut_ptr().add(j) as *mut __m128i, q2_isum4(v, qp.add(QK * j), sp.add(j)));
        j += 4;
    }
    if j < nb {
        let mut is = [0i32; 4];
        _mm_storeu_si128(is.as_mut_ptr() as *mut __m128i, q2_isum2(rp.add(18 * (j / 2) + 2), qp.add(QK * j), sp.add(j)));
        out[j] = is[0];
        out[j + 1] = is[1];
    }
}

// ---- Q8_0 ----

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q8_block(w: *const u8, q: *const i8) -> __m256i {
    let wv = _mm256_loadu_si256(w as *const __m256i);
    let qv = _mm256_loadu_si256(q as *const __m256i);
    // |w| (as unsigned: -128 -> 128) times q*sign(w): exact, no i16 saturation since |q| <= 127
    dot_u8i8(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(qv, wv))
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q8_isum4(rp: *const u8, qp: *const i8, j: usize) -> __m128i {
    hsum4_epi32(
        q8_block(rp.add(34 * j + 2), qp.add(QK * j)),
        q8_block(rp.add(34 * (j + 1) + 2), qp.add(QK * (j + 1))),
        q8_block(rp.add(34 * (j + 2) + 2), qp.add(QK * (j + 2))),
        q8_block(rp.add(34 * (j + 3) + 2), qp.add(QK * (j + 3))),
    )
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q8_one(rp: *const u8, qp: *const i8, j: usize) -> i32 {
    let z = _mm256_setzero_si256();
    _mm_cvtsi128_si32(hsum4_epi32(q8_block(rp.add(34 * j + 2), qp.add(QK * j)), z, z, z))
}

#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn dot_q8_0(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let nb = ne0 / QK;
    check(row, act, nb * 34, nb);
    let (rp, qp, dp) = (row.as_ptr(), act.q.as_ptr(), act.d.as_ptr());
    let mut acc = _mm_setzero_ps();
    let mut j = 0;
    while j + 4 <= nb {
        let h = |k: usize| (rp.add(34 * (j + k)) as *const u16).read_unaligned() as i16;
        let dw = cvt_ph4(_mm_setr_epi16(h(0), h(1), h(2), h(3), 0, 0, 0, 0));
        acc = acc_step(acc, dw, _mm_loadu_ps(dp.add(j)), q8_isum4(rp, qp, j));
        j += 4;
    }
    let mut a = to_array(acc);
    while j < nb {
        let dw = crate::f16::f16_to_f32((rp.add(34 * j) as *const u16).read_unaligned());
        dot_scalar::acc_q(&mut a, j, dw, *dp.add(j), q8_one(rp, qp, j));
        j += 1;
    }
    dot_scalar::finish(a)
}

#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn isums_q8_0(row: &[u8], act: &Act, ne0: usize, out: &mut [i32]) {
    let nb = ne0 / QK;
    check(row, act, nb * 34, nb);
    assert!(out.len() >= nb);
    for j in 0..nb {
        out[j] = q8_one(row.as_ptr(), act.q.as_ptr(), j);
    }
}

// ---- F32 / F16 weights ----

/// `fsum` of one full block: eight lanes over four steps, then the fixed reduction tree.
#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
#[inline]
unsafe fn fsum_full(w: [__m256; 4], q: *const i8) -> f32 {
    let mut lanes = _mm256_setzero_ps();
    for c in 0..4 {
        let x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(q.add(8 * c) as *const __m128i)));
        lanes = _mm256_add_ps(lanes, _mm256_mul_ps(w[c], x));
    }
    let t = _mm_add_ps(_mm256_castps256_ps128(lanes), _mm256_extractf128_ps::<1>(lanes));
    let u = _mm_add_ps(t, _mm_movehl_ps(t, t));
    _mm_cvtss_f32(_mm_add_ss(u, _mm_shuffle_ps::<1>(u, u)))
}

#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn dot_f32(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let nb = (ne0 + QK - 1) / QK;
    check(row, act, ne0 * 4, nb);
    let rp = row.as_ptr() as *const f32; // unaligned loads only
    let mut acc = [0.0f32; 4];
    for j in 0..nb {
        let s = if (j + 1) * QK <= ne0 {
            let p = rp.add(QK * j);
            let w = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))];
            fsum_full(w, act.q.as_ptr().add(QK * j))
        } else {
            let w = |i: usize| (rp.add(QK * j + i)).read_unaligned();
            dot_scalar::fsum_block(w, &act.q[QK * j..QK * j + QK], ne0 - QK * j)
        };
        acc[j & 3] = acc[j & 3] + act.d[j] * s;
    }
    dot_scalar::finish(acc)
}

#[cfg_attr(bk_f16c, target_feature(enable = "avx2,f16c"))]
#[cfg_attr(not(bk_f16c), target_feature(enable = "avx2"))]
pub unsafe fn dot_f16(row: &[u8], act: &Act, ne0: usize) -> f32 {
    let nb = (ne0 + QK - 1) / QK;
    check(row, act, ne0 * 2, nb);
    let rp = row.as_ptr() as *const u16;
    let mut acc = [0.0f32; 4];
    for j in 0..nb {
        let s = if (j + 1) * QK <= ne0 {
            let p = rp.add(QK * j);
            let h = |c: usize| _mm_loadu_si128(p.add(8 * c) as *const __m128i);
            let w = [cvt_ph8(h(0)), cvt_ph8(h(1)), cvt_ph8(h(2)), cvt_ph8(h(3))];
            fsum_full(w, act.q.as_ptr().add(QK * j))
        } else {
            let w = |i: usize| crate::f16::f16_to_f32(rp.add(QK * j + i).read_unaligned());
            dot_scalar::fsum_block(w, &act.q[QK * j..QK * j + QK], ne0 - QK * j)
        };
        acc[j & 3] = acc[j & 3] + act.d[j] * s;
    }
    dot_scalar::finish(acc)
}
