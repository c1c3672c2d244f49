//! AVX-512 (F + BW, optional VNNI) Q1_0 kernel; the other formats reuse the AVX2 kernels. Compiled
//! only with Rust >= 1.89 (see build.rs) and used only when detected AND the start-up self-check
//! matches the scalar reference bit for bit. Checked against scalar by the tests on an AVX-512 VNNI
//! machine (not timed); the self-check guards them on CPUs the tests never ran on.

use crate::act::{Act, QK};
use crate::dot::avx2::hsum4_epi32;
use crate::dot::scalar as dot_scalar;
use std::arch::x86_64::*;

/// Byte sums of `s` (signed) per 4-byte group, plain AVX-512BW version.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn sum4_bw(s: __m512i) -> __m512i {
    _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_set1_epi8(1), s), _mm512_set1_epi16(1))
}

/// Same sums with one VNNI instruction.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn sum4_vnni(s: __m512i) -> __m512i {
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), s)
}

macro_rules! q1_kernels {
    ($features:literal, $sum4:ident, $isum4:ident, $dot:ident, $isums:ident) => {
        /// Integer sums of ±q for the 4 activation blocks of one Q1_0 block: the 128 bits are byte masks.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn $isum4(blk: *const u8, q: *const i8, qsum: *const i32) -> __m128i {
            let m0 = (blk.add(2) as *const u64).read_unaligned();
            let m1 = (blk.add(10) as *const u64).read_unaligned();
            let v0 = $sum4(_mm512_maskz_mov_epi8(m0, _mm512_loadu_epi8(q)));
            let v1 = $sum4(_mm512_maskz_mov_epi8(m1, _mm512_loadu_epi8(q.add(64))));
            let on = hsum4_epi32(
                _mm512_castsi512_si256(v0),
                _mm512_extracti64x4_epi64::<1>(v0),
                _mm512_castsi512_si256(v1),
                _mm512_extracti64x4_epi64::<1>(v1),
            );
            // sum(±q) = 2 * sum(q where bit = 1) - sum(q)
            _mm_sub_epi32(_mm_slli_epi32::<1>(on), _mm_loadu_si128(qsum as *const __m128i))
        }

        #[target_feature(enable = $features)]
        unsafe fn $dot(row: &[u8], act: &Act, ne0: usize) -> f32 {
            let nw = ne0 / 128;
            assert!(row.len() >= nw * 18 && act.d.len() >= 4 * nw && act.q.len() >= nw * 4 * QK && act.qsum.len() >= 4 * nw);
            let (rp, qp, dp, sp) = (row.as_ptr(), act.q.as_ptr(), act.d.as_ptr(), act.qsum.as_ptr());
            let mut acc = _mm_setzero_ps();
            for b in 0..nw {
                let blk = rp.add(18 * b);
                let isum = $isum4(blk, qp.add(128 * b), sp.add(4 * b));
                let dw = _mm_cvtph_ps(_mm_set1_epi16((blk as *const u16).read_unaligned() as i16));
                // same order as dot_scalar: acc[k] + (dw * dx[k]) * isum[k]
                acc = _mm_add_ps(acc, _mm_mul_ps(_mm_mul_ps(dw, _mm_loadu_ps(dp.add(4 * b))), _mm_cvtepi32_ps(isum)));
            }
            let mut a = [0.0f32; 4];
            _mm_storeu_ps(a.as_mut_ptr(), acc);
            dot_scalar::finish(a)
        }

        #[target_feature(enable = $features)]
        unsafe fn $isums(row: &[u8], act: &Act, ne0: usize, out: &mut [i32]) {
            let nw = ne0 / 128;
            assert!(row.len() >= nw * 18 && act.q.len() >= nw * 4 * QK && act.qsum.len() >= 4 * nw && out.len() >= 4 * nw);
            for b in 0..nw {
                let v = $isum4(row.as_ptr().add(18 * b), act.q.as_ptr().add(128 * b), act.qsum.as_ptr().add(4 * b));
                _mm_storeu_si128(out.as_mut_ptr().add(4 * b) as *mut __m128i, v);
            }
        }
    };
}

q1_kernels!("avx512f,avx512bw,avx2,f16c", sum4_bw, q1_isum4_bw, dot_q1_0_bw, isums_q1_0_bw);
q1_kernels!("avx512f,avx512bw,avx512vnni,avx2,f16c", sum4_vnni, q1_isum4_vnni, dot_q1_0_vnni_impl, isums_q1_0_vnni_impl);

// Safe wrappers: only reachable through the AVX-512 tables of `dispatch`, selected only when the
// CPU has their features.
pub fn dot_q1_0(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { dot_q1_0_bw(r, a, n) }
}
pub fn dot_q1_0_vnni(r: &[u8], a: &Act, n: usize) -> f32 {
    unsafe { dot_q1_0_vnni_impl(r, a, n) }
}
pub fn isums_q1_0(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { isums_q1_0_bw(r, a, n, o) }
}
pub fn isums_q1_0_vnni(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    unsafe { isums_q1_0_vnni_impl(r, a, n, o) }
}
