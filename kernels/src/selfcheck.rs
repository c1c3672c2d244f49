//! Start-up check that every kernel family of the chosen SIMD table agrees bit for bit with the
//! scalar reference on small fixed inputs (well under a millisecond; protects against kernels that
//! could not be tested on the build machine): the row dots of every format, the lookup-table
//! tiles of Q1_0 and both Q2_0 block sizes, and attention over each KV type.
//!
//! Runs inside `dispatch`'s one-time initialisation, so nothing here may ask `dispatch` for the
//! active table: kernels are called directly, and packed tensors are built without `Tensor` and
//! without the thread pool.

use crate::act::Act;
use crate::attention::{attention_with, AttnKernels, AttnShape, KvView};
use crate::dispatch::{Table, SCALAR};
use crate::formats::{Format, ALL_FORMATS};
use crate::gemm::{Expanded, GemmKernels};
use crate::lut::q1::{PackedQ1, TILE};
use crate::lut::q2::PackedQ2;
use crate::lut::{q1, q2, LutKernels};
use crate::ops::store_kv;
use crate::testutil::{as_bytes, random_act, random_rows, Rng};

/// Row dot products of every format.
pub fn check_dots(t: &Table) -> Result<(), String> {
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

/// Lookup-table tiles (two tiles, the second partial) against the scalar row dots, for Q1_0 and
/// both Q2_0 block sizes; row 0 has every weight bit set (the largest table sums).
pub fn check_lut(k: &LutKernels) -> Result<(), String> {
    let mut rng = Rng::new(0x1a7);
    let ne1 = TILE + 5;
    for &fmt in [Format::Q1_0, Format::Q2_0, Format::Q2_0G64].iter() {
        for &ne0 in [128usize, 384].iter() {
            let mut rows = random_rows(&mut rng, fmt, ne0, ne1, true);
            let (block, bbytes) = (fmt.block_len(), fmt.block_bytes());
            for b in 0..ne0 / block {
                for byte in rows[b * bbytes + 2..(b + 1) * bbytes].iter_mut() {
                    *byte = 0xFF;
                }
            }
            let (_, act) = random_act(&mut rng, ne0);
            let a = Act::from_bytes(as_bytes(&act), ne0)?;
            let mut got = vec![0.0f32; 2 * TILE];
            if fmt == Format::Q1_0 {
                let p = PackedQ1::pack_with(&rows, ne0, ne1, false);
                let mut tab = vec![0u8; q1::tab_len(ne0)];
                (k.q1_tables)(a.q, ne0, &mut tab);
                for tile in 0..p.tiles {
                    let mut out = [0.0f32; TILE];
                    (k.q1_tile)(p.tile(tile), &tab, a.d, p.nb, &mut out);
                    got[tile * TILE..(tile + 1) * TILE].copy_from_slice(&out);
                }
            } else {
                let p = PackedQ2::pack_with(&rows, ne0, ne1, block, false);
                let mut tab = vec![0u8; q2::tab_len(ne0)];
                (k.q2_tables)(a.q, ne0, &mut tab);
                for tile in 0..p.tiles {
                    let mut out = [0.0f32; TILE];
                    (k.q2_tile)(&p, tile, &tab, a.d, &mut out);
                    got[tile * TILE..(tile + 1) * TILE].copy_from_slice(&out);
                }
            }
            let rb = fmt.row_bytes(ne0);
            for r in 0..ne1 {
                let want = (SCALAR.dot_fn(fmt))(&rows[r * rb..(r + 1) * rb], &a, ne0);
                if want.to_bits() != got[r].to_bits() {
                    return Err(format!("{} tile differs from scalar for ne0={} row {} ({} vs {})", fmt.name(), ne0, r, got[r], want));
                }
            }
        }
    }
    Ok(())
}

/// The GEMM of one variant (its expansions, then 11 tokens: a full pass and a partial one) against
/// the scalar row dots for Q1_0 and both Q2_0 block sizes, two tiles (the second partial); row 0
/// has every bit or code set, row 1 none.
pub fn check_gemm(k: &GemmKernels) -> Result<(), String> {
    let mut rng = Rng::new(0x6e33);
    let (ne0, ne1) = (256usize, TILE + 7);
    let bufs: Vec<Vec<u32>> = (0..11).map(|_| random_act(&mut rng, ne0).1).collect();
    let acts: Vec<Act> = bufs.iter().map(|b| Act::from_bytes(as_bytes(b), ne0)).collect::<Result<_, _>>()?;
    for &fmt in [Format::Q1_0, Format::Q2_0, Format::Q2_0G64].iter() {
        let rb = fmt.row_bytes(ne0);
        let (block, bbytes) = (fmt.block_len(), fmt.block_bytes());
        let mut rows = random_rows(&mut rng, fmt, ne0, ne1, true);
        for b in 0..ne0 / block {
            for i in 2..bbytes {
                rows[bbytes * b + i] = 0xFF;
                rows[rb + bbytes * b + i] = 0;
            }
        }
        let p1 = if fmt == Format::Q1_0 { Some(PackedQ1::pack(&rows, ne0, ne1)) } else { None };
        let p2 = if fmt == Format::Q1_0 { None } else { Some(PackedQ2::pack(&rows, ne0, ne1, block)) };
        let mut exp = Expanded::default();
        for tile in 0..(ne1 + TILE - 1) / TILE {
            match (&p1, &p2) {
                (Some(p), _) => (k.q1_expand)(p.tile(tile), p.nb, exp.bytes_mut(ne0 / 128)),
                (_, Some(p)) => (k.q2_expand)(p, tile, exp.bytes_mut(ne0 / 128)),
                _ => return Err("no packed tensor".to_string()),
            }
            let mut out = vec![[0.0f32; TILE]; acts.len()];
            (k.tokens)(exp.bytes(), ne0 / 128, &acts, &mut out);
            for (t, a) in acts.iter().enumerate() {
                for r in 0..TILE.min(ne1 - tile * TILE) {
                    let row = tile * TILE + r;
                    let want = (SCALAR.dot_fn(fmt))(&rows[row * rb..(row + 1) * rb], a, ne0);
                    if want.to_bits() != out[t][r].to_bits() {
                        return Err(format!("{} GEMM differs from scalar for {} at token {} row {} ({} vs {})", k.name, fmt.name(), t, row, out[t][r], want));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Attention against the scalar reference for each KV type, with query-head pairs and a lone
/// head (`n_head / n_head_kv` even and odd), `head_dim` 32 and 64.
pub fn check_attention(k: &AttnKernels) -> Result<(), String> {
    let mut rng = Rng::new(0xa77);
    let shapes = [
        AttnShape { n_head: 4, n_head_kv: 2, head_dim: 64, n_kv: 19 },
        AttnShape { n_head: 3, n_head_kv: 1, head_dim: 32, n_kv: 7 },
    ];
    for sh in shapes.iter().cloned() {
        let kv_dim = sh.n_head_kv * sh.head_dim;
        let q: Vec<f32> = (0..sh.n_head * sh.head_dim).map(|_| rng.normal()).collect();
        let keys: Vec<f32> = (0..sh.n_kv * kv_dim).map(|_| rng.normal()).collect();
        let values: Vec<f32> = (0..sh.n_kv * kv_dim).map(|_| rng.normal()).collect();
        for kv_type in 0..3u32 {
            let row = crate::attention::kv_row_bytes(kv_type, kv_dim);
            let store = |xs: &[f32]| {
                let mut b = vec![0u8; sh.n_kv * row];
                for (p, x) in xs.chunks(kv_dim).enumerate() {
                    store_kv(x, &mut b[p * row..(p + 1) * row], kv_type);
                }
                b
            };
            let (kb, vb) = (store(&keys), store(&values));
            let run = |kern: Option<&AttnKernels>| -> Result<Vec<f32>, String> {
                let mut out = vec![0.0f32; sh.n_head * sh.head_dim];
                let mut scratch = vec![0.0f32; 2 * sh.n_kv];
                let (kv, vv) = (KvView { bytes: &kb, kv_type, stride: kv_dim }, KvView { bytes: &vb, kv_type, stride: kv_dim });
                attention_with(kern, sh, &q, kv, vv, &mut out, &mut scratch)?;
                Ok(out)
            };
            let (want, got) = (run(None)?, run(Some(k))?);
            if let Some(i) = (0..want.len()).find(|&i| want[i].to_bits() != got[i].to_bits()) {
                return Err(format!("attention (kv type {}, head_dim {}) differs from scalar at {} ({} vs {})", kv_type, sh.head_dim, i, got[i], want[i]));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{available, table_for};

    #[test]
    fn every_family_of_the_best_table_passes() {
        let t = table_for(available());
        check_dots(t).unwrap();
        if let Some(k) = t.lut() {
            check_lut(k).unwrap();
        }
        // the AVX2 set too where the best table has the AVX-512 one (BONSAI_LUT=avx2 picks it)
        #[cfg(all(target_arch = "x86_64", bk_f16c))]
        {
            if t.lut().is_some() {
                check_lut(&crate::lut::AVX2).unwrap();
            }
        }
        if let Some(k) = t.attention() {
            check_attention(k).unwrap();
        }
        for k in crate::dispatch::gemm_variants() {
            if available() & k.isa == k.isa {
                check_gemm(k).unwrap();
            } else {
                eprintln!("skipped: no {} (GEMM self-check)", k.name);
            }
        }
        // Where SIMD runs, the lookup-table and attention families run with it.
        #[cfg(any(all(target_arch = "x86_64", bk_f16c), target_arch = "aarch64"))]
        {
            if t.isa != 0 {
                assert!(t.lut().is_some() && t.attention().is_some(), "{} lost a family", t.name);
            }
        }
    }

    fn zero_q1_tile(_: &[u8], _: &[u8], _: &[f32], _: usize, out: &mut [f32; TILE]) {
        *out = [0.0; TILE];
    }
    fn zero_q2_tile(_: &PackedQ2, _: usize, _: &[u8], _: &[f32], out: &mut [f32; TILE]) {
        *out = [0.0; TILE];
    }
    fn zero_tokens(_: &[u8], _: usize, _: &[Act], out: &mut [[f32; TILE]]) {
        out.iter_mut().for_each(|o| *o = [0.0; TILE]);
    }
    fn zero_scores(_: usize, _: &[f32], _: usize, _: KvView, _: usize, _: f32, out: &mut [f32]) {
        out.iter_mut().for_each(|x| *x = 0.0);
    }
    fn no_sum(_: usize, _: &mut [f32], _: usize, _: &[f32], _: KvView, _: usize) {}

    #[test]
    fn a_wrong_kernel_is_caught() {
        let lut = LutKernels {
            name: "broken",
            q1_tables: q1::build_tables_scalar,
            q1_tile: zero_q1_tile,
            q2_tables: q2::build_tables_scalar,
            q2_tile: zero_q2_tile,
        };
        let err = check_lut(&lut).unwrap_err();
        assert!(err.contains("Q1_0 tile differs"), "{}", err);
        let gemm = GemmKernels { name: "broken", id: 0, isa: 0, q1_expand: crate::gemm::expand_scalar, q2_expand: crate::gemm::expand_q2_scalar, tokens: zero_tokens };
        let err = check_gemm(&gemm).unwrap_err();
        assert!(err.contains("broken GEMM differs"), "{}", err);
        let attn = AttnKernels { name: "broken", scores: zero_scores, weighted_sum: no_sum };
        let err = check_attention(&attn).unwrap_err();
        assert!(err.contains("attention (kv type 0"), "{}", err);
    }
}
