//! IEEE 754 binary16 <-> binary32 conversion in software: exact for every half (subnormals, infinities,
//! NaN payloads), round-to-nearest-even on the way down. The SIMD paths use F16C, which gives the same
//! bits for every non-NaN value, so scalar and SIMD kernels agree bit for bit.

/// Converts the half with bit pattern `h` to f32 (exact: every half is representable as an f32).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if mant == 0 {
            sign
        } else {
            // Subnormal half: value = mant * 2^-24. Normalise it into an f32 exponent.
            let shift = mant.leading_zeros() - 21; // brings the top set bit to bit 10
            let m = (mant << shift) & 0x3ff;
            let e = 127 - 15 + 1 - shift;
            sign | (e << 23) | (m << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (mant << 13) // inf or NaN (payload kept)
    } else {
        sign | ((exp + 127 - 15) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

/// Converts `x` to the nearest half (ties to even); overflow gives infinity, NaN stays NaN with its top
/// payload bits (a payload that would vanish becomes a quiet NaN).
#[inline]
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        if mant == 0 {
            return sign | 0x7c00;
        }
        let m = (mant >> 13) as u16;
        return sign | 0x7c00 | if m == 0 { 0x200 } else { m };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Result is subnormal (or zero): shift the full significand right and round to nearest even.
        if e < -10 {
            return sign; // below half of the smallest subnormal
        }
        let full = mant | 0x80_0000;
        let shift = (14 - e) as u32; // 24-bit significand -> 10-bit subnormal mantissa
        let half_bits = full >> shift;
        let rem = full & ((1u32 << shift) - 1);
        let halfway = 1u32 << (shift - 1);
        let round_up = rem > halfway || (rem == halfway && (half_bits & 1) == 1);
        return sign | (half_bits + round_up as u32) as u16; // a carry into bit 10 makes the smallest normal: correct
    }
    let half_mant = mant >> 13;
    let rem = mant & 0x1fff;
    let mut h = ((e as u32) << 10) | half_mant;
    if rem > 0x1000 || (rem == 0x1000 && (half_mant & 1) == 1) {
        h += 1; // may carry into the exponent, up to infinity: both correct
    }
    sign | h as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_halves_round_trip() {
        for h in 0..=0xffffu32 {
            let h = h as u16;
            let f = f16_to_f32(h);
            assert_eq!(f32_to_f16(f), h, "half {:#06x} -> {:e}", h, f);
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // rounds to infinity
        assert_eq!(f32_to_f16(65519.0), 0x7bff);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0); // tie -> even (zero)
        assert_eq!(f32_to_f16(2f32.powi(-25) * 1.5), 1);
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00); // tie -> even
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
    }

    /// Rounding matches an f64 reference (nearest, ties to even) on many random floats.
    #[test]
    fn rounding_matches_reference() {
        let mut rng = crate::testutil::Rng::new(7);
        for _ in 0..200_000 {
            let x = f32::from_bits(rng.next_u32());
            if x.is_nan() || x.abs() >= 65504.0 {
                continue;
            }
            let h = f32_to_f16(x);
            let got = f16_to_f32(h) as f64;
            // neighbours of the chosen half must not be closer
            for n in [h.wrapping_sub(1), h.wrapping_add(1)].iter() {
                let v = f16_to_f32(*n);
                if v.is_finite() && (n & 0x7fff) <= 0x7bff && (n >> 15) == (h >> 15) {
                    let dn = (v as f64 - x as f64).abs();
                    let dg = (got - x as f64).abs();
                    assert!(dg < dn || (dg == dn && h & 1 == 0), "x={:e} h={:#x} n={:#x}", x, h, n);
                }
            }
        }
    }
}
