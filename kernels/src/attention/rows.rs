//! Attention of a whole prompt chunk at once (`attention_rows`): the per-row kernels of the parent
//! module, run with blocks of cached positions outer and query rows inner, so each block of keys
//! and values is read from memory once per chunk instead of once per row.

use super::{axpy_scalar, dot_scalar, kernels, AttnKernels, AttnShape, KvView, OutPtr};
use crate::ops::softmax;
use crate::pool;

/// Positions per block in [`attention_rows`]: a block of one KV head's keys or values (16 KB of
/// f16 at head_dim 128) stays in L1 while every query row of the chunk uses it.
const ROWS_POS_BLOCK: usize = 64;

/// Causal attention of `n_rows` consecutive query rows of one sequence (a prompt chunk): row `r`
/// (`q[r * n_head * head_dim..]`) attends to positions `0..sh.n_kv - (n_rows - 1 - r)`, i.e.
/// `sh.n_kv` is what the last row sees. Same bits as [`attention`] on each row alone, but every
/// block of cached keys and values is loaded once for all rows instead of once per row.
pub fn attention_rows(sh: AttnShape, n_rows: usize, q: &[f32], k: KvView, v: KvView, out: &mut [f32], force_scalar: bool) -> Result<(), String> {
    let q_dim = sh.n_head * sh.head_dim;
    if n_rows == 0 {
        return Ok(());
    }
    if n_rows > sh.n_kv {
        return Err(format!("{} query rows cannot end at position {}: the first would see no position", n_rows, sh.n_kv));
    }
    if q.len() < n_rows * q_dim || out.len() < n_rows * q_dim {
        return Err(format!("q and out need {} floats for {} rows", n_rows * q_dim, n_rows));
    }
    let simd = kernels(force_scalar);
    let o = OutPtr(out.as_mut_ptr());
    let body = |groups: std::ops::Range<usize>| {
        let o = o;
        ROW_SCORES.with(|cell| {
            let mut scores = cell.borrow_mut();
            for g in groups {
                group_rows(g, sh, n_rows, q, k, v, o, &mut scores, simd);
            }
        })
    };
    if n_rows * sh.n_head * sh.n_kv * sh.head_dim < 1 << 18 {
        body(0..sh.n_head_kv);
        return Ok(());
    }
    pool::parallel_for(sh.n_head_kv, 1, &body)
}

thread_local! {
    /// Scores of one head pair for all rows of an [`attention_rows`] call, reused across calls.
    static ROW_SCORES: std::cell::RefCell<Vec<f32>> = std::cell::RefCell::new(Vec::new());
}

/// [`attention_rows`] for the query heads of KV head `g`, two at a time; writes only their
/// columns of each row of `out`.
#[allow(clippy::too_many_arguments)]
fn group_rows(g: usize, sh: AttnShape, n_rows: usize, q: &[f32], k: KvView, v: KvView, out: OutPtr, scores: &mut Vec<f32>, simd: Option<&AttnKernels>) {
    let (hd, n_kv) = (sh.head_dim, sh.n_kv);
    let q_dim = sh.n_head * hd;
    let rep = sh.n_head / sh.n_head_kv;
    let simd = simd.filter(|_| hd % 8 == 0);
    let scale = 1.0 / (hd as f32).sqrt();
    let seen = |r: usize| n_kv - (n_rows - 1 - r);
    let mut tmp = [0.0f32; 2 * ROWS_POS_BLOCK];
    let mut h0 = g * rep;
    while h0 < (g + 1) * rep {
        let n = ((g + 1) * rep - h0).min(2);
        scores.resize(n_rows * n * n_kv, 0.0);
        let at = |r: usize, j: usize| (r * n + j) * n_kv;
        // Scores: blocks of positions outer, rows inner, so a block of keys is read once.
        for p0 in (0..n_kv).step_by(ROWS_POS_BLOCK) {
            let kb = k.from_position(p0);
            for r in 0..n_rows {
                let len = seen(r).saturating_sub(p0).min(ROWS_POS_BLOCK);
                if len == 0 {
                    continue;
                }
                let qs = &q[r * q_dim + h0 * hd..r * q_dim + (h0 + n) * hd];
                if let Some(kern) = simd {
                    (kern.scores)(n, qs, hd, kb, g * hd, scale, &mut tmp[..n * len]);
                    for j in 0..n {
                        scores[at(r, j) + p0..at(r, j) + p0 + len].copy_from_slice(&tmp[j * len..(j + 1) * len]);
                    }
                } else {
                    for j in 0..n {
                        for p in 0..len {
                            scores[at(r, j) + p0 + p] = dot_scalar(&qs[j * hd..(j + 1) * hd], kb.row(p, g * hd, hd), k.kv_type) * scale;
                        }
                    }
                }
            }
        }
        for r in 0..n_rows {
            for j in 0..n {
                softmax(&mut scores[at(r, j)..at(r, j) + seen(r)]);
            }
        }
        // SAFETY: this task alone writes heads h0..h0+n of every row; out holds n_rows * q_dim floats.
        let row_out = |r: usize| unsafe { std::slice::from_raw_parts_mut(out.0.add(r * q_dim + h0 * hd), n * hd) };
        for r in 0..n_rows {
            row_out(r).iter_mut().for_each(|x| *x = 0.0);
        }
        // Values: the same blocking; each row's sums still run over positions in order.
        for p0 in (0..n_kv).step_by(ROWS_POS_BLOCK) {
            let vb = v.from_position(p0);
            for r in 0..n_rows {
                let len = seen(r).saturating_sub(p0).min(ROWS_POS_BLOCK);
                if len == 0 {
                    continue;
                }
                let o = row_out(r);
                if let Some(kern) = simd {
                    for j in 0..n {
                        tmp[j * len..(j + 1) * len].copy_from_slice(&scores[at(r, j) + p0..at(r, j) + p0 + len]);
                    }
                    (kern.weighted_sum)(n, o, hd, &tmp[..n * len], vb, g * hd);
                } else {
                    for (j, oh) in o.chunks_mut(hd).enumerate() {
                        for p in 0..len {
                            axpy_scalar(oh, scores[at(r, j) + p0 + p], vb.row(p, g * hd, hd), v.kv_type);
                        }
                    }
                }
            }
        }
        h0 += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{attention, kv_row_bytes};
    use crate::ops::store_kv;
    use crate::testutil::Rng;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A prompt chunk through `attention_rows` gives, row by row, the bits of `attention` on that
    /// row alone (SIMD and scalar), across position blocks, GQA pairs and a lone head, odd head
    /// sizes (scalar fallback), every KV type, and on 1 and 2 threads.
    #[test]
    fn rows_equal_one_row_at_a_time() {
        let mut rng = Rng::new(41);
        for &(kv_type, n_head, n_head_kv, hd, n_kv, n_rows) in [
            (1u32, 16usize, 8usize, 128usize, 150usize, 70usize),
            (1, 4, 2, 64, 64, 64),
            (0, 6, 2, 40, 129, 5),
            (2, 8, 2, 64, 200, 33),
            (1, 4, 1, 20, 90, 17),
            (1, 3, 3, 8, 7, 1),
        ]
        .iter()
        {
            let stride = n_head_kv * hd + if kv_type == 2 { 32 } else { 8 };
            let q_dim = n_head * hd;
            let q: Vec<f32> = (0..n_rows * q_dim).map(|_| rng.normal()).collect();
            let mut kb = vec![0u8; kv_row_bytes(kv_type, n_kv * stride)];
            let mut vb = kb.clone();
            let f: Vec<f32> = (0..n_kv * stride).map(|_| rng.normal()).collect();
            store_kv(&f, &mut kb, kv_type);
            let f: Vec<f32> = (0..n_kv * stride).map(|_| rng.normal()).collect();
            store_kv(&f, &mut vb, kv_type);
            let view = |b: &'static [u8]| KvView { bytes: b, kv_type, stride };
            let (kb, vb): (&'static [u8], &'static [u8]) = (Box::leak(kb.into_boxed_slice()), Box::leak(vb.into_boxed_slice()));
            for &force_scalar in [false, true].iter() {
                for &threads in [1usize, 2].iter() {
                    pool::set_threads(threads);
                    let mut want = vec![0.0f32; n_rows * q_dim];
                    let mut scratch = vec![0.0f32; 2 * n_kv];
                    for r in 0..n_rows {
                        let sh = AttnShape { n_head, n_head_kv, head_dim: hd, n_kv: n_kv - (n_rows - 1 - r) };
                        attention(sh, &q[r * q_dim..(r + 1) * q_dim], view(kb), view(vb), &mut want[r * q_dim..(r + 1) * q_dim], &mut scratch, force_scalar)
                            .unwrap();
                    }
                    let mut got = vec![f32::NAN; n_rows * q_dim + 1];
                    let sh = AttnShape { n_head, n_head_kv, head_dim: hd, n_kv };
                    attention_rows(sh, n_rows, &q, view(kb), view(vb), &mut got, force_scalar).unwrap();
                    assert_eq!(bits(&got[..n_rows * q_dim]), bits(&want), "kv {} [{} {} {}] n_kv {} rows {} scalar {}", kv_type, n_head, n_head_kv, hd, n_kv, n_rows, force_scalar);
                    assert!(got[n_rows * q_dim].is_nan(), "nothing written past the last row");
                }
            }
        }
        let sh = AttnShape { n_head: 2, n_head_kv: 1, head_dim: 8, n_kv: 3 };
        let kv = KvView { bytes: &[0u8; 96], kv_type: 0, stride: 8 };
        let err = attention_rows(sh, 4, &[0.0; 64], kv, kv, &mut [0.0; 64], false).unwrap_err();
        assert!(err.contains("4 query rows"), "{}", err);
    }
}
