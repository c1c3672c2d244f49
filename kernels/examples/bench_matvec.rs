//! Quick matvec throughput check: `cargo run --release --example bench_matvec [threads]`
//! (`BK_SCALAR=1` to time the scalar reference kernels).
//! Shapes of Bonsai 1.7B (Q1_0): attention/FFN projections and the tied LM head.

use bonsai_kernels::formats::Format;
use bonsai_kernels::testutil::{as_bytes, random_act, random_rows, Rng};
use bonsai_kernels::{dispatch, matmul, pool, tensor::Tensor};
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let n = pool::set_threads(threads);
    if std::env::var("BK_SCALAR").is_ok() {
        dispatch::force_isa(0).unwrap();
    }
    println!("threads {}, kernels {}", n, dispatch::table().name);
    let mut rng = Rng::new(1);
    for &(fmt, ne0, ne1) in [
        (Format::Q1_0, 2048usize, 6144usize),
        (Format::Q1_0, 6144, 2048),
        (Format::Q1_0, 2048, 151669),
        (Format::Q2_0, 2048, 6144),
        (Format::Q2_0G64, 2048, 6144),
        (Format::Q8_0, 2048, 2048),
    ]
    .iter()
    {
        let bytes = random_rows(&mut rng, fmt, ne0, ne1, false);
        let mut t = Tensor::from_bytes(&bytes, fmt.code(), ne0 as u64, ne1 as u64).unwrap();
        let (_, act) = random_act(&mut rng, ne0);
        let mut out = vec![0.0f32; ne1];
        matmul::matvec(&t, as_bytes(&act), &mut out).unwrap();
        let iters = (2_000_000_000 / bytes.len()).max(3).min(2000);
        if t.packed.is_some() || t.packed_q2.is_some() {
            // the packed (lookup-table) path first, then the row kernels on the same tensor
            bench_matvec(&t, &act, &mut out, fmt, bytes.len(), iters, "  (packed LUT)");
            if ne1 <= 6144 {
                bench_matmul(&t, &act, ne0, ne1, iters, "packed LUT");
            }
            t.unpack();
        }
        bench_matvec(&t, &act, &mut out, fmt, bytes.len(), iters, "");
        if fmt == Format::Q1_0 && ne1 <= 6144 {
            bench_matmul(&t, &act, ne0, ne1, iters, "row kernels");
        }
    }
}

/// Decode: `iters` matvecs, printed with `label` after the rates.
fn bench_matvec(t: &Tensor, act: &[u32], out: &mut [f32], fmt: Format, n_bytes: usize, iters: usize, label: &str) {
    let start = Instant::now();
    for _ in 0..iters {
        matmul::matvec(t, as_bytes(act), out).unwrap();
    }
    let s = start.elapsed().as_secs_f64() / iters as f64;
    println!(
        "{:>8} [{:>5} x {:>6}]: {:8.1} us  {:6.2} GB/s  {:6.2} Gweights/s{}",
        fmt.name(),
        t.ne0,
        t.ne1,
        s * 1e6,
        n_bytes as f64 / s / 1e9,
        (t.ne0 * t.ne1) as f64 / s / 1e9,
        label
    );
}

/// Prefill: 16 tokens in one matmul.
fn bench_matmul(t: &Tensor, act: &[u32], ne0: usize, ne1: usize, iters: usize, what: &str) {
    let n_tok = 16;
    let stride = act.len() * 4;
    let mut acts = vec![0u32; act.len() * n_tok];
    for k in 0..n_tok {
        acts[k * act.len()..(k + 1) * act.len()].copy_from_slice(act);
    }
    let mut outm = vec![0.0f32; ne1 * n_tok];
    let reps = (iters / n_tok).max(2);
    let start = Instant::now();
    for _ in 0..reps {
        matmul::matmul(t, as_bytes(&acts), n_tok, stride, &mut outm, ne1).unwrap();
    }
    let s = start.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{:>8}   matmul x{} tokens: {:8.1} us/token {:6.2} Gweights/s  ({})",
        "",
        n_tok,
        s * 1e6 / n_tok as f64,
        (ne0 * ne1 * n_tok) as f64 / s / 1e9,
        what
    );
}
