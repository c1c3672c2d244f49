//! Start-up check that a SIMD kernel table agrees bit for bit with the scalar reference on a few
//! random rows of every format (microseconds; protects against kernels that could not be tested
//! on the build machine).

use crate::act::Act;
use crate::dispatch::{Table, SCALAR};
use crate::formats::ALL_FORMATS;
use crate::testutil::{as_bytes, random_act, random_rows, Rng};

pub fn check_table(t: &Table) -> Result<(), String> {
    let mut rng = Rng::new(0x5eed);
    for &fmt in ALL_FORMATS.iter() {
        for &ne0 in [128usize, 384, 640].iter() {
            let rows = random_rows(&mut rng, fmt, ne0, 3, true);
            let (_, act) = random_act(&mut rng, ne0);
            let a = Act::from_bytes(as_bytes(&act), ne0)?;
            let rb = fmt.row_bytes(ne0);
            for r in 0..3 {
                let row = &rows[r * rb..(r + 1) * rb];
                let want = (SCALAR.dot_fn(fmt))(row, &a, ne0);
                let got = (t.dot_fn(fmt))(row, &a, ne0);
                if want.to_bits() != got.to_bits() {
                    return Err(format!("{} dot differs from scalar for ne0={} ({} vs {})", fmt.name(), ne0, got, want));
                }
            }
        }
    }
    Ok(())
}
