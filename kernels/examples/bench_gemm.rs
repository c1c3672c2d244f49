//! Prompt-chunk matmul: the GEMM kernels against the lookup-table kernels on the same tensors, in
//! one process (paired runs: the ratio is what counts on a shared machine).
//! Then decode (one token): the AVX-512 lookup-table kernels against the AVX2 ones.
//! `cargo run --release --example bench_gemm [threads] [tokens,...]`

use bonsai_kernels::formats::Format;
use bonsai_kernels::testutil::{as_bytes, random_act, random_rows, Rng};
use bonsai_kernels::{dispatch, gemm, lut, matmul, pool, tensor::Tensor};
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let toks: Vec<usize> = std::env::args()
        .nth(2)
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![4, 8, 16, 64]);
    let n = pool::set_threads(threads);
    println!("threads {}, kernels {}", n, dispatch::table().name);
    let mut rng = Rng::new(1);
    for &(ne0, ne1) in [(2048usize, 6144usize), (6144, 2048), (2048, 151669)].iter() {
        let bytes = random_rows(&mut rng, Format::Q1_0, ne0, ne1, false);
        let t = Tensor::from_bytes(&bytes, Format::Q1_0.code(), ne0 as u64, ne1 as u64).unwrap();
        let (_, act) = random_act(&mut rng, ne0);
        let mut out = vec![0.0f32; ne1];
        let reps = (200_000_000 / bytes.len()).max(2);
        let mut times = [f64::INFINITY; 2];
        for _ in 0..15 {
            for (i, &avx2) in [false, true].iter().enumerate() {
                lut::set_avx2_only(avx2);
                let start = Instant::now();
                for _ in 0..reps {
                    matmul::matvec(&t, as_bytes(&act), &mut out).unwrap();
                }
                times[i] = times[i].min(start.elapsed().as_secs_f64() / reps as f64);
            }
        }
        println!(
            "matvec Q1_0 [{:>5} x {:>6}]: {} {:7.1} us {:6.1} Gw/s, avx2 {:7.1} us {:6.1} Gw/s  ({:.2}x)",
            ne0,
            ne1,
            "avx512",
            times[0] * 1e6,
            (ne0 * ne1) as f64 / times[0] / 1e9,
            times[1] * 1e6,
            (ne0 * ne1) as f64 / times[1] / 1e9,
            times[1] / times[0]
        );
    }
    lut::set_avx2_only(false);
    for &(fmt, ne0, ne1) in [(Format::Q1_0, 2048usize, 6144usize), (Format::Q1_0, 6144, 2048), (Format::Q2_0, 2048, 6144)].iter() {
        let bytes = random_rows(&mut rng, fmt, ne0, ne1, false);
        let t = Tensor::from_bytes(&bytes, fmt.code(), ne0 as u64, ne1 as u64).unwrap();
        let (_, act) = random_act(&mut rng, ne0);
        for &n_tok in toks.iter() {
            let stride = act.len() * 4;
            let mut acts = vec![0u32; act.len() * n_tok];
            for k in 0..n_tok {
                let (_, a) = random_act(&mut rng, ne0);
                acts[k * act.len()..(k + 1) * act.len()].copy_from_slice(&a);
            }
            let mut out = vec![0.0f32; ne1 * n_tok];
            let reps = (64 / n_tok).max(2);
            let mut line = format!("{} [{:>5} x {:>5}] x{:>3} tokens:", fmt.name(), ne0, ne1, n_tok);
            let paths = [(1u32, "lut"), (0, "gemm"), (2, "avx_vnni")];
            // interleaved rounds, best of each: the machine is shared, the minimum is the signal
            let mut times = vec![f64::INFINITY; paths.len()];
            for _ in 0..15 {
                for (i, &(choice, _)) in paths.iter().enumerate() {
                    gemm::set_choice(choice);
                    let start = Instant::now();
                    for _ in 0..reps {
                        matmul::matmul(&t, as_bytes(&acts), n_tok, stride, &mut out, ne1).unwrap();
                    }
                    times[i] = times[i].min(start.elapsed().as_secs_f64() / reps as f64);
                }
            }
            for (i, &(_, name)) in paths.iter().enumerate() {
                let s = times[i];
                line += &format!("  {} {:7.1} us/tok {:6.1} Gw/s", name, s * 1e6 / n_tok as f64, (ne0 * ne1 * n_tok) as f64 / s / 1e9);
            }
            println!("{}  gemm/lut {:.2}x", line, times[0] / times[1]);
        }
    }
}
