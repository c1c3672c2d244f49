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
    for b in 0..l.nb {
        let xs = &x[b * QK..x.len().min((b + 1) * QK)];
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
    Ok(())
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
