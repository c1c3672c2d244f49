//! Quantised activations ("act" buffers): the input vector of a matvec quantised once to 8 bits, in
//! blocks of 32 with `d = amax/127` and `q = round(x/d)` (Q8_0 style, our own layout).
//!
//! Layout of the byte buffer for `n` elements (`n` rounded up to a multiple of 32, padding zeros;
//! every region starts 32-byte aligned relative to the buffer):
//! ```text
//! f32 d[nb]      (padded to 32 bytes)
//! i8  q[nb*32]
//! i32 qsum[nb]   (padded to 32 bytes)  sum of q per block: sum(±q) = 2*sum(q where bit=1) - qsum
//! i8  q1p[nb*32] the same q, reordered per block for the AVX2 Q1_0 kernel: position 4a+c holds
//!                q[8c+a]; then byte 4a+c of a broadcast 32-bit weight word, ANDed with 1<<a, tests
//!                exactly that element's bit, so expanding bits needs no byte shuffle.
//! ```

/// Elements per activation block.
pub const QK: usize = 32;

/// Where each region of an act buffer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActLayout {
    pub n: usize,
    pub nb: usize,
    pub off_q: usize,
    pub off_qsum: usize,
    pub off_q1p: usize,
    pub total: usize,
}

#[inline]
fn align32(x: usize) -> usize {
    (x + 31) & !31
}

/// Layout of the act buffer for `n` elements.
pub fn act_layout(n: usize) -> ActLayout {
    let nb = (n + QK - 1) / QK;
    let off_q = align32(nb * 4);
    let off_qsum = off_q + nb * QK;
    let off_q1p = off_qsum + align32(nb * 4);
    let total = off_q1p + nb * QK;
    ActLayout { n, nb, off_q, off_qsum, off_q1p, total }
}

/// Borrowed view of a quantised activation.
#[derive(Clone, Copy)]
pub struct Act<'a> {
    pub d: &'a [f32],
    pub q: &'a [i8],
    pub qsum: &'a [i32],
    /// `q` in the Q1_0 shuffle-free order (see the module docs).
    pub q1p: &'a [i8],
}

impl<'a> Act<'a> {
    /// Views `buf` (which must be 4-byte aligned and at least `act_layout(n).total` bytes) as an act.
    pub fn from_bytes(buf: &'a [u8], n: usize) -> Result<Act<'a>, String> {
        let l = act_layout(n);
        if buf.len() < l.total {
            return Err(format!("act buffer has {} bytes, {} elements need {}", buf.len(), n, l.total));
        }
        if (buf.as_ptr() as usize) % 4 != 0 {
            return Err("act buffer must be 4-byte aligned".to_string());
        }
        // SAFETY: bounds and alignment checked above; f32/i8/i32 accept every bit pattern.
        unsafe { Ok(Act::from_ptr(buf.as_ptr(), n)) }
    }

    /// # Safety
    /// `p` must be 4-byte aligned and point to `act_layout(n).total` readable bytes living for `'a`.
    pub unsafe fn from_ptr(p: *const u8, n: usize) -> Act<'a> {
        let l = act_layout(n);
        Act {
            d: std::slice::from_raw_parts(p as *const f32, l.nb),
            q: std::slice::from_raw_parts(p.add(l.off_q) as *const i8, l.nb * QK),
            qsum: std::slice::from_raw_parts(p.add(l.off_qsum) as *const i32, l.nb),
            q1p: std::slice::from_raw_parts(p.add(l.off_q1p) as *const i8, l.nb * QK),
        }
    }
}

/// Quantises `x` into `out` (at least `act_layout(x.len()).total` bytes, 4-byte aligned).
pub fn quantize_act(x: &[f32], out: &mut [u8]) -> Result<(), String> {
    let l = act_layout(x.len());
    if out.len() < l.total {
        return Err(format!("act buffer has {} bytes, {} elements need {}", out.len(), x.len(), l.total));
    }
    if (out.as_ptr() as usize) % 4 != 0 {
        return Err("act buffer must be 4-byte aligned".to_string());
    }
    for v in out[..l.total].iter_mut() {
        *v = 0;
    }
    // Detected directly, not through `dispatch` (whose start-up self-check quantises activations);
    // both paths give the same bytes, so the choice never changes results.
    #[cfg(target_arch = "x86_64")]
    let simd = is_x86_feature_detected!("avx2");
    for b in 0..l.nb {
        let xs = &x[b * QK..x.len().min((b + 1) * QK)];
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: AVX2 is in the active table; the block is full and `out` was checked above.
            if simd && xs.len() == QK && unsafe { avx2::quantize_block(xs, out.as_mut_ptr(), &l, b) } {
                continue;
            }
        }
        quantize_block(xs, out, &l, b);
    }
    Ok(())
}

/// Quantises block `b` (`xs`, at most 32 values) into `out` (already zeroed): the reference.
fn quantize_block(xs: &[f32], out: &mut [u8], l: &ActLayout, b: usize) {
    let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let mut sum = 0i32;
    for (i, &v) in xs.iter().enumerate() {
        let q = if d == 0.0 { 0.0 } else { (v / d).round() };
        let q = q.max(-127.0).min(127.0) as i8;
        out[l.off_q + b * QK + i] = q as u8;
        out[l.off_q1p + b * QK + 4 * (i % 8) + i / 8] = q as u8;
        sum += q as i32;
    }
    out[b * 4..b * 4 + 4].copy_from_slice(&d.to_ne_bytes());
    out[l.off_qsum + b * 4..l.off_qsum + b * 4 + 4].copy_from_slice(&sum.to_ne_bytes());
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The same quantisation in AVX2, bit-identical to [`super::quantize_block`] on finite input.
    use super::{ActLayout, QK};
    use std::arch::x86_64::*;

    /// Quantises one full block of finite values; returns false (writing nothing) when the block
    /// holds a NaN or an infinity, which the scalar reference handles.
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_block(xs: &[f32], out: *mut u8, l: &ActLayout, b: usize) -> bool {
        assert!(xs.len() >= QK);
        let p = xs.as_ptr();
        let v = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))];
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
        let a = [_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask), _mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)];
        let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps::<1>(m2, m2)));
        if !amax.is_finite() {
            return false; // NaN or infinity somewhere (max of finite values is finite)
        }
        let d = amax / 127.0;
        let mut qi = [_mm256_setzero_si256(); 4];
        if d != 0.0 {
            let dv = _mm256_set1_ps(d);
            let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
            let half = _mm256_set1_ps(0.5);
            let one = _mm256_set1_ps(1.0);
            let lim = _mm256_set1_ps(127.0);
            for c in 0..4 {
                let x = _mm256_div_ps(v[c], dv);
                // round half away from zero (f32::round): trunc, then one step out when |frac| >= 0.5
                let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(x);
                let frac = _mm256_and_ps(_mm256_sub_ps(x, t), abs_mask);
                let step = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, half), _mm256_or_ps(one, _mm256_and_ps(x, sign)));
                let r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(t, step), _mm256_sub_ps(_mm256_setzero_ps(), lim)), lim);
                qi[c] = _mm256_cvtps_epi32(r);
            }
        }
        // natural order: packs interleave 128-bit lanes, the permute restores element order
        let ab = _mm256_packs_epi32(qi[0], qi[1]);
        let cd = _mm256_packs_epi32(qi[2], qi[3]);
        let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(out.add(l.off_q + b * QK) as *mut __m256i, bytes);
        // q1p: dword a = bytes q[a], q[8+a], q[16+a], q[24+a] = lane a of qi[0..4]
        let ff = _mm256_set1_epi32(0xFF);
        let q1p = _mm256_or_si256(
            _mm256_or_si256(_mm256_and_si256(qi[0], ff), _mm256_slli_epi32::<8>(_mm256_and_si256(qi[1], ff))),
            _mm256_or_si256(_mm256_slli_epi32::<16>(_mm256_and_si256(qi[2], ff)), _mm256_slli_epi32::<24>(qi[3])),
        );
        _mm256_storeu_si256(out.add(l.off_q1p + b * QK) as *mut __m256i, q1p);
        let s8 = _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
        let s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256::<1>(s8));
        let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32::<1>(s2)));
        (out.add(b * 4) as *mut f32).write_unaligned(d);
        (out.add(l.off_qsum + b * 4) as *mut i32).write_unaligned(sum);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_aligned_and_padded() {
        for n in [1usize, 31, 32, 33, 128, 2048, 2560, 12288].iter() {
            let l = act_layout(*n);
            assert_eq!(l.nb * QK >= *n, true);
            assert_eq!(l.off_q % 32, 0);
            assert_eq!(l.off_qsum % 32, 0);
            assert_eq!(l.total % 32, 0);
            assert!(l.off_q >= l.nb * 4 && l.off_q1p >= l.off_qsum + l.nb * 4 && l.total == l.off_q1p + l.nb * QK);
        }
    }

    #[test]
    fn quantize_round_trips_within_half_step() {
        let mut rng = crate::testutil::Rng::new(3);
        let x: Vec<f32> = (0..100).map(|_| rng.normal()).collect();
        let mut buf = vec![0u32; act_layout(100).total / 4];
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, buf.len() * 4) };
        quantize_act(&x, bytes).unwrap();
        let a = Act::from_bytes(bytes, 100).unwrap();
        for b in 0..a.d.len() {
            let mut s = 0;
            for i in 0..QK {
                let j = b * QK + i;
                let q = a.q[j] as i32;
                s += q;
                if j < 100 {
                    assert!((a.d[b] * q as f32 - x[j]).abs() <= a.d[b] * 0.5 + 1e-6);
                } else {
                    assert_eq!(q, 0, "padding must be zero");
                }
            }
            assert_eq!(s, a.qsum[b]);
            for p in 0..QK {
                assert_eq!(a.q1p[b * QK + p], a.q[b * QK + 8 * (p % 4) + p / 4]);
            }
            assert!(a.q[b * QK..(b + 1) * QK].iter().any(|q| q.abs() == 127) || a.d[b] == 0.0);
        }
    }

    /// The AVX2 quantiser (used when AVX2 is active) equals the scalar reference byte for byte,
    /// including exact halves (round away from zero), values just below a half, and zero blocks.
    #[test]
    fn simd_quantiser_equals_scalar() {
        let mut rng = crate::testutil::Rng::new(9);
        let mut x: Vec<f32> = (0..32 * 40).map(|_| rng.normal() * 3.0).collect();
        // block 0: amax 127 so d = 1 and the quotients are the values themselves
        let halves = [127.0f32, -127.0, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 0.49999997, -0.49999997, 126.5, -126.5, 3.4999998];
        x[..halves.len()].copy_from_slice(&halves);
        for v in x[32..64].iter_mut() {
            *v = 0.0;
        }
        x[64] = f32::NAN; // block 2 takes the scalar path
        x[96 + 5] = f32::INFINITY;
        let n = x.len() - 7; // a partial last block
        let x = &x[..n];
        let l = act_layout(n);
        let mut want = vec![0u8; l.total];
        for b in 0..l.nb {
            let xs = &x[b * QK..n.min((b + 1) * QK)];
            quantize_block(xs, &mut want, &l, b);
        }
        let mut buf = vec![0u32; l.total / 4];
        let got = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, l.total) };
        quantize_act(x, got).unwrap();
        assert_eq!(&got[..], &want[..]);
        assert_eq!(want[l.off_q] as i8, 127);
        assert_eq!(want[l.off_q + 2] as i8, 3, "2.5 rounds away from zero");
        assert_eq!(want[l.off_q + 9] as i8, 0, "just below -0.5 rounds to zero");
    }

    #[test]
    fn zero_block_has_zero_scale() {
        let x = [0.0f32; 40];
        let mut buf = vec![0u32; act_layout(40).total / 4];
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, buf.len() * 4) };
        quantize_act(&x, bytes).unwrap();
        let a = Act::from_bytes(bytes, 40).unwrap();
        assert_eq!(a.d[0], 0.0);
        assert!(a.q.iter().all(|&q| q == 0));
    }
}
