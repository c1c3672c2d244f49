//! Cross-module tests: kernels against references, SIMD against scalar bit for bit, threading,
//! matmul, ops, attention, mapping. Uses only deterministic pseudo-random data.

use crate::act::{act_layout, Act, QK};
use crate::attention::{attention, AttnShape, KvView};
use crate::dispatch::{self, Table, SCALAR};
use crate::dot::scalar::dequant_row;
use crate::formats::{Format, ALL_FORMATS};
use crate::matmul;
use crate::ops;
use crate::pool;
use crate::tensor::Tensor;
use crate::testutil::{as_bytes, random_act, random_rows, Rng};

/// Prints past the test harness's output capture, so skipped ISAs are visible in every run.
fn say(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{}", msg);
}

/// Every kernel table this machine can run, besides the scalar reference.
fn simd_tables() -> Vec<&'static Table> {
    let avail = dispatch::available();
    let mut v: Vec<&'static Table> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use dispatch::*;
        if avail & (ISA_AVX2 | ISA_F16C) == ISA_AVX2 | ISA_F16C {
            v.push(&AVX2);
        } else {
            say("skipped: no avx2");
        }
        #[cfg(bk_avx512)]
        {
            if avail & ISA_AVX512 != 0 {
                v.push(&AVX512);
                if avail & ISA_AVX512_VNNI != 0 {
                    v.push(&AVX512_VNNI);
                } else {
                    say("skipped: no avx512 vnni");
                }
            } else {
                say("skipped: no avx512 (AVX-512 kernels compiled but not run on this machine)");
            }
        }
        #[cfg(not(bk_avx512))]
        say("skipped: avx512 kernels not compiled (rustc < 1.89)");
    }
    #[cfg(target_arch = "aarch64")]
    {
        use dispatch::*;
        if avail & ISA_NEON != 0 {
            v.push(&NEON);
        } else {
            say("skipped: no neon");
        }
        if avail & ISA_NEON_DOTPROD != 0 {
            v.push(&NEON_DOTPROD);
        } else {
            say("skipped: no neon dotprod (sdot)");
        }
    }
    let _ = avail;
    v
}

fn ne0_for(fmt: Format, rng: &mut Rng) -> usize {
    let choices = [128usize, 256, 384, 640, 1024, 2048, 2560, 4096];
    let n = choices[rng.below(choices.len())];
    match fmt {
        Format::F32 | Format::F16 => n + rng.below(3) * 7, // also rows that end mid-block
        Format::Q8_0 => n + 32 * rng.below(3),             // block counts not a multiple of 4
        Format::Q2_0G64 => n + 64 * rng.below(2),          // odd numbers of 64-blocks
        _ => n,
    }
}

#[test]
fn block_sizes() {
    use crate::formats::*;
    use std::mem::size_of;
    assert_eq!(size_of::<BlockQ8_0>(), 34);
    assert_eq!(size_of::<BlockQ1_0>(), 18);
    assert_eq!(size_of::<BlockQ2_0>(), 34);
    assert_eq!(size_of::<BlockQ2_0G64>(), 18);
    assert_eq!(Format::Q1_0.row_bytes(2048), 16 * 18);
    for f in ALL_FORMATS.iter() {
        assert_eq!(Format::from_code(f.code()), Some(*f));
    }
}

/// Scalar dot == dequantise-then-f64 reference within 1e-5 of sum |w x| (f32 rounding only).
#[test]
fn scalar_dot_matches_dequantised_reference() {
    let mut rng = Rng::new(11);
    for &fmt in ALL_FORMATS.iter() {
        for _ in 0..12 {
            let ne0 = ne0_for(fmt, &mut rng);
            let rows = random_rows(&mut rng, fmt, ne0, 1, true);
            let (_, act) = random_act(&mut rng, ne0);
            let a = Act::from_bytes(as_bytes(&act), ne0).unwrap();
            let mut w = vec![0.0f32; ne0];
            dequant_row(fmt, &rows, ne0, &mut w);
            let (mut want, mut mag) = (0.0f64, 0.0f64);
            for i in 0..ne0 {
                let x = a.d[i / QK] as f64 * a.q[i] as f64;
                want += w[i] as f64 * x;
                mag += (w[i] as f64 * x).abs();
            }
            let got = (SCALAR.dot_fn(fmt))(&rows, &a, ne0) as f64;
            assert!((got - want).abs() <= 1e-5 * mag + 1e-6, "{} ne0={}: {} vs {} (mag {})", fmt.name(), ne0, got, want, mag);
        }
    }
}

/// Q1_0 dot against a fully independent definition: ±d per bit.
#[test]
fn q1_0_semantics() {
    // one block, d = 1.0 (0x3c00), bits: element j set iff j % 3 == 0
    let mut row = vec![0u8; 18];
    row[0] = 0x00;
    row[1] = 0x3c;
    for j in 0..128 {
        if j % 3 == 0 {
            row[2 + j / 8] |= 1 << (j % 8);
        }
    }
    let x: Vec<f32> = (0..128).map(|i| ((i % 7) as f32 - 3.0) * 0.25).collect();
    let mut buf = vec![0u32; act_layout(128).total / 4];
    crate::act::quantize_act(&x, crate::testutil::as_bytes_mut(&mut buf)).unwrap();
    let a = Act::from_bytes(as_bytes(&buf), 128).unwrap();
    let want: f64 = (0..128).map(|j| if j % 3 == 0 { 1.0 } else { -1.0 } * (a.d[j / 32] * a.q[j] as f32) as f64).sum();
    for t in std::iter::once(&SCALAR).chain(simd_tables().into_iter()) {
        let got = (t.dot_fn(Format::Q1_0))(&row, &a, 128) as f64;
        assert!((got - want).abs() < 1e-4, "{}: {} vs {}", t.name, got, want);
    }
}

/// Every SIMD table gives the scalar integer sums and the scalar floats, bit for bit.
#[test]
fn simd_equals_scalar_bit_for_bit() {
    let mut rng = Rng::new(12);
    for t in simd_tables() {
        for &fmt in ALL_FORMATS.iter() {
            for iter in 0..40 {
                let ne0 = ne0_for(fmt, &mut rng);
                let n_rows = [1usize, 3, 7, 33][iter % 4];
                let rows = random_rows(&mut rng, fmt, ne0, n_rows, iter % 2 == 0);
                let (_, act) = random_act(&mut rng, ne0);
                let a = Act::from_bytes(as_bytes(&act), ne0).unwrap();
                let rb = fmt.row_bytes(ne0);
                for r in 0..n_rows {
                    let row = &rows[r * rb..(r + 1) * rb];
                    if let (Some(si), Some(ti)) = (SCALAR.isums[fmt.index()], t.isums[fmt.index()]) {
                        let mut want = vec![0i32; ne0 / QK];
                        let mut got = vec![-1i32; ne0 / QK];
                        si(row, &a, ne0, &mut want);
                        ti(row, &a, ne0, &mut got);
                        assert_eq!(want, got, "{} {} isums ne0={}", t.name, fmt.name(), ne0);
                    }
                    let want = (SCALAR.dot_fn(fmt))(row, &a, ne0);
                    let got = (t.dot_fn(fmt))(row, &a, ne0);
                    assert_eq!(want.to_bits(), got.to_bits(), "{} {} dot ne0={}: {} vs {}", t.name, fmt.name(), ne0, got, want);
                }
            }
        }
    }
}

#[cfg(bk_f16c)]
#[test]
fn f16c_matches_software_for_all_halves() {
    if !is_x86_feature_detected!("f16c") {
        say("skipped: no f16c");
        return;
    }
    #[target_feature(enable = "f16c")]
    unsafe fn hw(h: u16) -> f32 {
        use std::arch::x86_64::*;
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(h as i16)))
    }
    for h in 0..=0xffffu32 {
        let sw = crate::f16::f16_to_f32(h as u16);
        let hw = unsafe { hw(h as u16) };
        if sw.is_nan() {
            assert!(hw.is_nan());
        } else {
            assert_eq!(sw.to_bits(), hw.to_bits(), "half {:#x}", h);
        }
    }
}

fn tensor(rng: &mut Rng, fmt: Format, ne0: usize, ne1: usize) -> Tensor {
    let bytes = random_rows(rng, fmt, ne0, ne1, false);
    Tensor::from_bytes(&bytes, fmt.code(), ne0 as u64, ne1 as u64).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// matvec == per-row dot; matvec_ref == scalar; thread counts 1, 2, 3 agree bit for bit;
/// matmul == repeated matvec; matvec_multi == separate matvecs.
#[test]
fn matvec_matmul_threads() {
    let mut rng = Rng::new(13);
    for &fmt in ALL_FORMATS.iter() {
        for &(ne0, ne1) in [(128usize, 1usize), (256, 3), (512, 7), (1024, 33), (2048, 301)].iter() {
            let t = tensor(&mut rng, fmt, ne0, ne1);
            let (_, act) = random_act(&mut rng, ne0);
            let ab = as_bytes(&act);
            let a = Act::from_bytes(ab, ne0).unwrap();
            let per_row: Vec<f32> = (0..ne1).map(|r| (SCALAR.dot_fn(fmt))(t.row(r), &a, ne0)).collect();
            let mut r = vec![0.0f32; ne1];
            matmul::matvec_ref(&t, ab, &mut r).unwrap();
            assert_eq!(bits(&r), bits(&per_row));
            for &n in [1usize, 2, 3].iter() {
                pool::set_threads(n);
                let mut out = vec![0.0f32; ne1];
                matmul::matvec(&t, ab, &mut out).unwrap();
                assert_eq!(bits(&out), bits(&per_row), "{} [{}x{}] threads {}", fmt.name(), ne0, ne1, n);
            }
            // matmul over 11 tokens (a group of 8 and a partial group) with padded strides
            let n_tok = 11;
            let one = act_layout(ne0).total;
            let stride = one + 32;
            let mut acts = vec![0u32; stride * n_tok / 4];
            let mut expect = Vec::new();
            for k in 0..n_tok {
                let (_, ak) = random_act(&mut rng, ne0);
                crate::testutil::as_bytes_mut(&mut acts)[k * stride..k * stride + one].copy_from_slice(as_bytes(&ak));
                let mut o = vec![0.0f32; ne1];
                matmul::matvec(&t, as_bytes(&ak), &mut o).unwrap();
                expect.push(o);
            }
            let out_stride = ne1 + 5;
            let mut out = vec![f32::NAN; out_stride * n_tok];
            matmul::matmul(&t, as_bytes(&acts), n_tok, stride, &mut out, out_stride).unwrap();
            for k in 0..n_tok {
                assert_eq!(bits(&out[k * out_stride..k * out_stride + ne1]), bits(&expect[k]), "matmul token {}", k);
            }
        }
    }
    // multi: three tensors of one width
    let ts: Vec<Tensor> = [(Format::Q1_0, 300usize), (Format::Q1_0, 7), (Format::Q8_0, 65)]
        .iter()
        .map(|&(f, rows)| tensor(&mut rng, f, 1024, rows))
        .collect();
    let (_, act) = random_act(&mut rng, 1024);
    let mut outs: Vec<Vec<f32>> = ts.iter().map(|t| vec![0.0; t.ne1]).collect();
    {
        let refs: Vec<&Tensor> = ts.iter().collect();
        let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| &mut v[..]).collect();
        matmul::matvec_multi(&refs, as_bytes(&act), &mut o).unwrap();
    }
    for (t, o) in ts.iter().zip(outs.iter()) {
        let mut want = vec![0.0f32; t.ne1];
        matmul::matvec_ref(t, as_bytes(&act), &mut want).unwrap();
        assert_eq!(bits(o), bits(&want));
    }
    pool::set_threads(0);
}

#[test]
fn tensor_shape_errors() {
    let e = Tensor::from_bytes(&[0u8; 18], 7, 128, 1).err().unwrap();
    assert!(e.contains("unknown weight format code 7"), "{}", e);
    let e = Tensor::from_bytes(&[0u8; 18], 41, 100, 1).err().unwrap();
    assert!(e.contains("not a multiple of the Q1_0 block size 128"), "{}", e);
    let e = Tensor::from_bytes(&[0u8; 17], 41, 128, 1).err().unwrap();
    assert!(e.contains("needs 18 bytes, got 17"), "{}", e);
}

#[test]
fn map_and_bounds() {
    let dir = std::env::temp_dir().join(format!("bk_map_test_{}", std::process::id()));
    std::fs::write(&dir, vec![7u8; 1000]).unwrap();
    let m = crate::map::map_file(dir.to_str().unwrap()).unwrap();
    assert_eq!(m.0.len(), 1000);
    assert_eq!(m.0.bytes()[999], 7);
    let t = Tensor::from_map(&m, 100, 41, 128, 50).unwrap(); // 900 bytes: fits exactly
    assert_eq!(t.row(49).len(), 18);
    let e = Tensor::from_map(&m, 101, 41, 128, 50).err().unwrap();
    assert!(e.contains("beyond the end") && e.contains("bk_map_test"), "{}", e);
    drop(m); // the tensor keeps the mapping alive
    assert_eq!(t.row(0)[0], 7);
    std::fs::remove_file(&dir).unwrap();
    let e = crate::map::map_file("/nonexistent/model.gguf").err().unwrap();
    assert!(e.contains("/nonexistent/model.gguf") && e.contains("No such file"), "{}", e);
}

#[test]
fn force_isa_restricts() {
    let avail = dispatch::available();
    assert!(dispatch::force_isa(0).is_ok());
    assert_eq!(dispatch::active(), 0);
    assert!(dispatch::force_isa(!avail & 0x3f).is_err() || !avail & 0x3f == 0);
    dispatch::force_isa(avail).unwrap();
    assert_eq!(dispatch::active(), dispatch::table_for(avail).isa);
}

// ---- ops ----

#[test]
fn rope_matches_f64_reference() {
    let mut rng = Rng::new(14);
    let (n_heads, hd) = (4usize, 128usize);
    for &(n_rot, pos, factor, orig) in [(128usize, 0u32, 1.0f32, 0u32), (128, 17, 0.0, 0), (64, 4000, 1.0, 0), (128, 20000, 4.0, 16384), (128, 3, 4.0, 16384)].iter() {
        let x: Vec<f32> = (0..n_heads * hd).map(|_| rng.normal()).collect();
        let mut y = x.clone();
        let f = ops::rope_factors(n_rot, pos, 1e6, factor, orig);
        ops::rope_neox(&mut y, hd, n_rot, &f);
        // reference: ggml's formulation (theta_scale^i, corr dims, ramp) written out in f64
        let base = 1e6f64;
        let theta_scale = base.powf(-2.0 / n_rot as f64);
        let yarn = factor > 1.0;
        let corr = |b: f64| n_rot as f64 * (orig as f64 / (b * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln());
        let (lo, hi) = if yarn { (corr(32.0).floor().max(0.0), corr(1.0).ceil().min(n_rot as f64 - 1.0)) } else { (0.0, 0.0) };
        for h in 0..n_heads {
            let mut theta = pos as f64;
            for i in 0..hd {
                let v = if i < n_rot / 2 {
                    let (mut th, mut ms) = (theta, 1.0);
                    if yarn {
                        let ramp = 1.0 - ((i as f64 - lo) / (hi - lo).max(0.001)).max(0.0).min(1.0);
                        th = theta / factor as f64 * (1.0 - ramp) + theta * ramp;
                        ms = 1.0 + 0.1 * (factor as f64).ln();
                    }
                    theta *= theta_scale;
                    let (a, b) = (x[h * hd + i] as f64, x[h * hd + i + n_rot / 2] as f64);
                    let r0 = a * th.cos() * ms - b * th.sin() * ms;
                    let r1 = a * th.sin() * ms + b * th.cos() * ms;
                    assert!((y[h * hd + i + n_rot / 2] as f64 - r1).abs() < 1e-5 * (1.0 + r1.abs()), "pair hi {}", i);
                    r0
                } else if i >= n_rot {
                    x[h * hd + i] as f64 // not rotated
                } else {
                    continue;
                };
                assert!((y[h * hd + i] as f64 - v).abs() < 1e-5 * (1.0 + v.abs()), "n_rot {} pos {} i {}: {} vs {}", n_rot, pos, i, y[h * hd + i], v);
            }
        }
    }
}

#[test]
fn norms_softmax_silu_store() {
    let x = [1.0f32, -2.0, 3.0, 4.0];
    let w = [1.0f32, 2.0, 0.5, 1.0];
    let mut out = [0.0f32; 4];
    ops::rmsnorm(&x, Some(&w), &mut out, 1e-6);
    let rms = ((1.0 + 4.0 + 9.0 + 16.0) / 4.0f64 + 1e-6).sqrt();
    for i in 0..4 {
        assert!((out[i] as f64 - x[i] as f64 / rms * w[i] as f64).abs() < 1e-6);
    }
    let mut heads = [1.0f32, -2.0, 3.0, 4.0, 0.5, 0.5, 0.5, 0.5];
    ops::rmsnorm_heads(&mut heads, &w, 4, 1e-6);
    assert_eq!(&heads[..4], &out[..]);
    assert!((heads[5] as f64 - 2.0 / (0.25f64 + 1e-6).sqrt() * 0.5).abs() < 1e-5);
    let mut s = [1.0f32, 2.0, 3.0, 1000.0];
    ops::softmax(&mut s);
    assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6 && s[3] > 0.999);
    let mut s = [0.0f32, (2.0f32).ln()];
    ops::softmax(&mut s);
    assert!((s[0] - 1.0 / 3.0).abs() < 1e-6);
    let mut o = [0.0f32; 2];
    ops::silu_mul(&[0.0, 2.0], &[5.0, 3.0], &mut o);
    assert_eq!(o[0], 0.0);
    assert!((o[1] as f64 - 2.0 / (1.0 + (-2.0f64).exp()) * 3.0).abs() < 1e-6);
    let mut b = [0u8; 6];
    ops::store_kv(&[1.0, -2.0, 65504.0], &mut b, 1);
    assert_eq!(b, [0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b]);
}

/// Values a KV cache can hold beyond ordinary ones, injected into some attention cases.
#[derive(Clone, Copy, PartialEq)]
enum KvEdges {
    /// store_kv of random normal values only.
    Plain,
    /// f16: signed zeros, subnormals, the largest magnitude; q8: block scales zero, subnormal, largest.
    Finite,
    /// `Finite`, and f16 infinities (store_kv of |x| >= 65520) in V: NaN or ±inf in those columns.
    InfInV,
    /// `Finite`, and f16 infinities in K: ±inf or NaN scores, NaN heads.
    InfInK,
}

/// f16 bit patterns of `KvEdges::Finite`: ±0 and subnormals (smallest, largest, others) first,
/// then ±65504.
const EDGE_HALVES: [u16; 8] = [0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x8200, 0x7bff, 0xfbff];
/// q8 block scales `amax / 127` of `KvEdges::Finite`: zero (all-zero block) and subnormal (amax
/// below 127 * 2^-14) first, then the largest half.
const EDGE_SCALES: [u16; 4] = [0x0000, 0x0001, 0x03ff, 0x7bff];
/// How many leading entries of `EDGE_HALVES` / `EDGE_SCALES` are zeros and subnormals.
const TINY_HALVES: usize = 6;
const TINY_SCALES: usize = 3;
const INF_HALVES: [u16; 2] = [0x7c00, 0xfc00];

/// The bytes holding element `e` of a cache: the element, or for q8 the scale of its block.
fn half_at(kv_type: u32, e: usize) -> std::ops::Range<usize> {
    let at = if kv_type == 2 { 34 * (e / 32) } else { 2 * e };
    at..at + 2
}

/// Writes each of `halves` over three random elements of the cache's rows (`n_kv` positions of
/// `row_len` elements, `stride` apart).
fn scatter_halves(rng: &mut Rng, bytes: &mut [u8], kv_type: u32, n_kv: usize, stride: usize, row_len: usize, halves: &[u16]) {
    for &h in halves {
        for _ in 0..3 {
            let e = rng.below(n_kv) * stride + rng.below(row_len);
            bytes[half_at(kv_type, e)].copy_from_slice(&h.to_le_bytes());
        }
    }
}

/// Fills `elements` of a cache with random picks of `halves`.
fn fill_halves(rng: &mut Rng, bytes: &mut [u8], kv_type: u32, elements: impl Iterator<Item = usize>, halves: &[u16]) {
    for e in elements {
        bytes[half_at(kv_type, e)].copy_from_slice(&halves[rng.below(halves.len())].to_le_bytes());
    }
}

/// The SIMD attention of this machine (AVX2 + F16C, NEON) equals the scalar reference bit for bit,
/// and both are close to an f64 computation.
#[test]
fn attention_matches_naive() {
    use KvEdges::*;
    let simd = if cfg!(target_arch = "x86_64") {
        dispatch::available() & (dispatch::ISA_AVX2 | dispatch::ISA_F16C) == dispatch::ISA_AVX2 | dispatch::ISA_F16C
    } else {
        cfg!(target_arch = "aarch64") && dispatch::available() & dispatch::ISA_NEON != 0
    };
    if !simd {
        say("attention_matches_naive: no SIMD attention here, scalar only");
    }
    let mut rng = Rng::new(15);
    for &(kv_type, n_head, n_head_kv, hd, n_kv, edges) in
        [
            (0u32, 4usize, 2usize, 16usize, 1usize, Plain),
            (1, 4, 1, 20, 9, Plain),
            (0, 16, 8, 128, 70, Plain),
            (1, 8, 2, 128, 300, Plain),
            (2, 4, 2, 32, 1, Plain),
            (2, 8, 2, 64, 37, Plain),
            (2, 16, 8, 128, 300, Plain),
            // three query heads per KV head (a pair and a single), and a lone query head
            (1, 6, 2, 40, 45, Plain),
            (1, 12, 4, 64, 403, Plain),
            (0, 3, 3, 8, 6, Plain),
            (1, 8, 2, 128, 70, Finite),
            (1, 6, 2, 64, 37, InfInV),
            (1, 4, 2, 32, 23, InfInK),
            (2, 6, 2, 96, 50, Finite),
        ]
            .iter()
    {
        // padding between positions (q8 rows stay whole 32-element blocks)
        let stride = n_head_kv * hd + if kv_type == 2 { 32 } else { 3 };
        let q: Vec<f32> = (0..n_head * hd).map(|_| rng.normal()).collect();
        let kf: Vec<f32> = (0..n_kv * stride).map(|_| rng.normal()).collect();
        let vf: Vec<f32> = (0..n_kv * stride).map(|_| rng.normal()).collect();
        let mut kb = vec![0u8; crate::attention::kv_row_bytes(kv_type, kf.len())];
        let mut vb = vec![0u8; crate::attention::kv_row_bytes(kv_type, vf.len())];
        ops::store_kv(&kf, &mut kb, kv_type);
        ops::store_kv(&vf, &mut vb, kv_type);
        if edges != Plain {
            let (finite, tiny): (&[u16], usize) = if kv_type == 2 { (&EDGE_SCALES, TINY_SCALES) } else { (&EDGE_HALVES, TINY_HALVES) };
            let row_len = n_head_kv * hd;
            scatter_halves(&mut rng, &mut kb, kv_type, n_kv, stride, row_len, finite);
            scatter_halves(&mut rng, &mut vb, kv_type, n_kv, stride, row_len, finite);
            // a key row and a value column of zeros and subnormals alone: scores and outputs that
            // hang on converting them exactly (next to ordinary values they would round away)
            let p = rng.below(n_kv);
            fill_halves(&mut rng, &mut kb, kv_type, p * stride..p * stride + row_len, &finite[..tiny]);
            let e = rng.below(row_len);
            fill_halves(&mut rng, &mut vb, kv_type, (0..n_kv).map(|p| p * stride + e), &finite[..tiny]);
            match edges {
                InfInV => scatter_halves(&mut rng, &mut vb, kv_type, n_kv, stride, row_len, &INF_HALVES),
                InfInK => scatter_halves(&mut rng, &mut kb, kv_type, n_kv, stride, row_len, &INF_HALVES),
                _ => {}
            }
        }
        let rd = |b: &[u8], i: usize| -> f64 {
            if kv_type == 0 {
                f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]) as f64
            } else if kv_type == 1 {
                crate::f16::f16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])) as f64
            } else {
                let o = 34 * (i / 32);
                crate::f16::f16_to_f32(u16::from_le_bytes([b[o], b[o + 1]])) as f64 * (b[o + 2 + i % 32] as i8) as f64
            }
        };
        let sh = AttnShape { n_head, n_head_kv, head_dim: hd, n_kv };
        let kv = |b: &'static [u8]| KvView { bytes: b, kv_type, stride };
        let kb: &'static [u8] = Box::leak(kb.into_boxed_slice());
        let vb: &'static [u8] = Box::leak(vb.into_boxed_slice());
        let mut out = vec![0.0f32; n_head * hd];
        let mut out_scalar = vec![0.0f32; n_head * hd];
        let mut scratch = vec![0.0f32; 2 * n_kv];
        attention(sh, &q, kv(kb), kv(vb), &mut out, &mut scratch, false).unwrap();
        attention(sh, &q, kv(kb), kv(vb), &mut out_scalar, &mut scratch, true).unwrap();
        let case = format!("kv_type {} heads {}/{} head_dim {} n_kv {}", kv_type, n_head, n_head_kv, hd, n_kv);
        assert_eq!(bits(&out), bits(&out_scalar), "SIMD attention differs from scalar: {}", case);
        for h in 0..n_head {
            let g = h / (n_head / n_head_kv);
            let s: Vec<f64> = (0..n_kv)
                .map(|p| (0..hd).map(|i| q[h * hd + i] as f64 * rd(kb, p * stride + g * hd + i)).sum::<f64>() / (hd as f64).sqrt())
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for i in 0..hd {
                let terms = (0..n_kv).map(|p| e[p] / z * rd(vb, p * stride + g * hd + i));
                let (want, size) = terms.fold((0.0f64, 1.0f64), |(sum, size), t| (sum + t, size + t.abs()));
                let got = out[h * hd + i] as f64;
                // an infinity in the column's values (or in K) leaves no finite result on either side
                assert_eq!(got.is_finite(), want.is_finite(), "{} h {} i {}: {} vs {}", case, h, i, got, want);
                assert!(!want.is_finite() || (got - want).abs() < 1e-4 * size, "{} h {} i {}: {} vs {}", case, h, i, got, want);
            }
        }
    }
}

/// KV sliding: keys roped at `pos` and shifted by `delta` equal keys roped at `pos + delta` (f32
/// rows, with and without YaRN, both directions), and a shift by 0 leaves every KV type's bytes
/// unchanged (the rotation and the q8 codec are exact there).
#[test]
fn kv_shift_moves_keys_to_their_new_position() {
    let mut rng = Rng::new(15);
    let (n_head_kv, hd) = (2usize, 64usize);
    let kv_dim = n_head_kv * hd;
    for &(factor, orig) in [(1.0f32, 0u32), (4.0, 4096)].iter() {
        let rope = ops::Rope::new(hd, 1e6, factor, orig);
        let x: Vec<f32> = (0..3 * kv_dim).map(|_| rng.normal()).collect();
        for &(pos, delta) in [(40u32, -17i64), (5, 300), (9, 0)].iter() {
            let roped = |p: u32| {
                let mut y = x.clone();
                ops::rope_neox(&mut y, hd, hd, &rope.factors(p));
                y
            };
            let mut bytes = vec![0u8; 3 * 4 * kv_dim];
            ops::store_kv(&roped(pos), &mut bytes, 0);
            ops::kv_shift(&mut bytes, 0, kv_dim, hd, 3, delta, &rope);
            let want = roped((pos as i64 + delta) as u32);
            for (i, w) in want.iter().enumerate() {
                let got = f32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
                assert!((got - w).abs() < 1e-4 * (1.0 + w.abs()), "yarn {} pos {} delta {} i {}: {} vs {}", factor, pos, delta, i, got, w);
            }
        }
        for kv_type in 0..3u32 {
            let rb = crate::attention::kv_row_bytes(kv_type, kv_dim);
            let mut bytes = vec![0u8; 3 * rb];
            for (p, row) in x.chunks(kv_dim).enumerate() {
                ops::store_kv(row, &mut bytes[p * rb..(p + 1) * rb], kv_type);
            }
            let before = bytes.clone();
            ops::kv_shift(&mut bytes, kv_type, kv_dim, hd, 3, 0, &rope);
            assert_eq!(bytes, before, "kv type {}", kv_type);
        }
    }
}

/// q8 KV rows: per 32 elements an f16 amax/127 then round(x/d); values come back within half a step.
#[test]
fn store_kv_q8_round_trips() {
    let mut rng = Rng::new(21);
    let mut x: Vec<f32> = (0..96).map(|_| rng.normal() * 3.0).collect();
    for v in x[32..64].iter_mut() {
        *v = 0.0; // an all-zero block has scale 0 and zero codes
    }
    x[70] = -10.0; // the block's amax maps to -127
    let mut b = vec![0u8; 3 * 34];
    ops::store_kv(&x, &mut b, 2);
    for blk in 0..3 {
        let o = 34 * blk;
        let d = crate::f16::f16_to_f32(u16::from_le_bytes([b[o], b[o + 1]]));
        let amax = x[32 * blk..32 * blk + 32].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_eq!(b[o..o + 2], crate::f16::f32_to_f16(amax / 127.0).to_le_bytes());
        for i in 0..32 {
            let q = b[o + 2 + i] as i8;
            assert!(q != -128);
            let back = d * q as f32;
            assert!((back - x[32 * blk + i]).abs() <= amax / 127.0 * 0.5 + amax * 1e-3, "block {} i {}", blk, i);
        }
    }
    assert!(b[34..68].iter().all(|&v| v == 0));
    assert_eq!(b[68 + 2 + 6] as i8, -127);
}

/// parallel_for covers every item exactly once for many sizes and thread counts.
#[test]
fn parallel_for_covers_each_item_once() {
    use std::sync::atomic::{AtomicU32, Ordering};
    for &threads in [1usize, 2, 3].iter() {
        pool::set_threads(threads);
        for &n in [0usize, 1, 5, 63, 64, 65, 1000, 4099].iter() {
            let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            pool::parallel_for(n, 1, &|r: std::ops::Range<usize>| {
                for i in r {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap();
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "threads {} n {}", threads, n);
        }
    }
    pool::set_threads(0);
}

/// Sets every weight byte of a block-quantised row (not the scales) to `byte`: all bits set or clear.
fn fill_weight_bytes(fmt: Format, row: &mut [u8], byte: u8) {
    let bb = fmt.block_bytes();
    for blk in row.chunks_mut(bb) {
        for v in blk[2..].iter_mut() {
            *v = byte;
        }
    }
}

/// Every table's multi-activation kernels give, for each activation, that table's `dot` bit for bit:
/// 1..8 activations, odd row counts, and rows with all weight bits set or clear.
#[test]
fn dot_multi_equals_dot_bit_for_bit() {
    let mut rng = Rng::new(16);
    let mut covered = 0;
    for t in simd_tables() {
        for &fmt in ALL_FORMATS.iter() {
            let multi = match t.dot_multi[fmt.index()] {
                Some(m) => m,
                None => continue,
            };
            covered += 1;
            for iter in 0..24 {
                let ne0 = ne0_for(fmt, &mut rng);
                let n_rows = [1usize, 3, 7, 17][iter % 4];
                let n_act = 1 + iter % 8;
                let mut rows = random_rows(&mut rng, fmt, ne0, n_rows, iter % 2 == 0);
                let rb = fmt.row_bytes(ne0);
                if fmt.is_quantized() && n_rows > 1 {
                    fill_weight_bytes(fmt, &mut rows[..rb], 0xFF);
                    fill_weight_bytes(fmt, &mut rows[rb..2 * rb], 0x00);
                }
                let bufs: Vec<Vec<u32>> = (0..n_act).map(|_| random_act(&mut rng, ne0).1).collect();
                let acts: Vec<Act> = bufs.iter().map(|b| Act::from_bytes(as_bytes(b), ne0).unwrap()).collect();
                for r in 0..n_rows {
                    let row = &rows[r * rb..(r + 1) * rb];
                    let mut got = [f32::NAN; 8];
                    multi(row, &acts, ne0, &mut got);
                    for (k, a) in acts.iter().enumerate() {
                        let want = (t.dot_fn(fmt))(row, a, ne0);
                        assert_eq!(
                            want.to_bits(),
                            got[k].to_bits(),
                            "{} {} dot_multi ne0={} row {} act {}/{}: {} vs {}",
                            t.name,
                            fmt.name(),
                            ne0,
                            r,
                            k,
                            n_act,
                            got[k],
                            want
                        );
                    }
                }
            }
        }
    }
    if covered == 0 {
        say("skipped: no table with dot_multi on this machine");
    }
}

/// A loaded tensor no longer depends on its file: truncating and rewriting the file (what `cp new
/// old` does) changes nothing, and rows released after packing are rebuilt exactly, one at a time
/// (embedding lookups) or whole (the row kernels).
#[test]
fn a_loaded_tensor_survives_its_file_being_truncated_and_rewritten() {
    use crate::testutil::{as_bytes, random_act, random_rows, Rng};
    let mut rng = Rng::new(21);
    let (ne0, ne1) = (256usize, 45usize);
    let rows = random_rows(&mut rng, crate::formats::Format::Q1_0, ne0, ne1, false);
    let path = std::env::temp_dir().join(format!("bk_map_rewrite_{}", std::process::id()));
    let mut file = vec![0u8; 64];
    file.extend_from_slice(&rows);
    std::fs::write(&path, &file).unwrap();
    let m = crate::map::map_file(path.to_str().unwrap()).unwrap();
    let t = Tensor::from_map(&m, 64, 41, ne0 as u64, ne1 as u64).unwrap();
    std::fs::write(&path, b"short").unwrap(); // the update: truncated, then other bytes
    let rb = t.row_bytes;
    for &r in [0usize, 31, 32, 44].iter() {
        t.with_row(r, |b| assert_eq!(b, &rows[r * rb..(r + 1) * rb], "row {} rebuilt alone", r));
    }
    let (_, act) = random_act(&mut rng, ne0);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let mut fast = vec![0f32; ne1];
    matmul::matvec(&t, as_bytes(&act), &mut fast).unwrap();
    let mut reference = vec![0f32; ne1];
    matmul::matvec_ref(&t, as_bytes(&act), &mut reference).unwrap(); // row kernels: rebuilds all rows
    assert_eq!(bits(&fast), bits(&reference));
    assert_eq!(t.data(), &rows[..]);
    std::fs::remove_file(&path).unwrap();
}
