//! Matrix · activation products on the thread pool. Each output row is computed by exactly one
//! thread with the active table's dot kernel, so results are identical for every thread count.

use crate::act::{act_layout, Act};
use crate::dispatch::{self, DotFn, Table};
use crate::gemm::{self, Expanded, GemmKernels};
use crate::lut::q1::TILE;
use crate::lut::{self, q1};
use std::cell::RefCell;
use crate::pool;
use crate::tensor::Tensor;

/// Below this many rows a matvec stays on the calling thread (waking workers costs more).
const MIN_PARALLEL_ROWS: usize = 64;

/// Raw output pointer that may be shared by the tasks (each writes disjoint rows).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

fn check_act(t: &Tensor, act: &[u8]) -> Result<(), String> {
    let need = act_layout(t.ne0).total;
    if act.len() < need {
        return Err(format!("act buffer has {} bytes, a row of {} weights needs {}", act.len(), t.ne0, need));
    }
    Ok(())
}

/// `out[r] = row_r · act` for all rows using `table` on the pool (`out.len() >= ne1`).
pub fn matvec_with(table: &Table, t: &Tensor, act: &[u8], out: &mut [f32], parallel: bool) -> Result<(), String> {
    check_act(t, act)?;
    if out.len() < t.ne1 {
        return Err(format!("output has {} floats, tensor has {} rows", out.len(), t.ne1));
    }
    let a = Act::from_bytes(act, t.ne0)?;
    if lut::usable(t, table) {
        let o = OutPtr(out.as_mut_ptr());
        return lut::with_tables(table, &[a], t.ne0, &[t], |tabs| {
            let body = |tiles: std::ops::Range<usize>| {
                for tile in tiles {
                    unsafe { lut::tile(t, tile, tabs, &a, o.0) };
                }
            };
            if parallel {
                pool::parallel_for(t.tiles(), MIN_PARALLEL_ROWS / q1::TILE, &body)
            } else {
                body(0..t.tiles());
                Ok(())
            }
        });
    }
    let dot: DotFn = table.dot_fn(t.fmt);
    let o = OutPtr(out.as_mut_ptr());
    let body = |rows: std::ops::Range<usize>| {
        let o = o;
        for r in rows {
            // SAFETY: r < ne1 <= out.len(); rows are disjoint between tasks.
            unsafe { *o.0.add(r) = dot(t.row(r), &a, t.ne0) };
        }
    };
    if parallel {
        pool::parallel_for(t.ne1, MIN_PARALLEL_ROWS, &body)
    } else {
        body(0..t.ne1);
        Ok(())
    }
}

/// Matvec with the active kernels on the pool.
pub fn matvec(t: &Tensor, act: &[u8], out: &mut [f32]) -> Result<(), String> {
    matvec_with(dispatch::table(), t, act, out, true)
}

/// Scalar reference kernels on the calling thread only.
pub fn matvec_ref(t: &Tensor, act: &[u8], out: &mut [f32]) -> Result<(), String> {
    matvec_with(&dispatch::SCALAR, t, act, out, false)
}

/// Several matvecs sharing one activation (e.g. Wq, Wk, Wv) in ONE pool dispatch: the rows of all
/// tensors are split as one concatenated range. All tensors must have the same `ne0`.
pub fn matvec_multi(ts: &[&Tensor], act: &[u8], outs: &mut [&mut [f32]]) -> Result<(), String> {
    if ts.is_empty() {
        return Ok(());
    }
    if ts.len() != outs.len() {
        return Err(format!("{} tensors but {} outputs", ts.len(), outs.len()));
    }
    let ne0 = ts[0].ne0;
    for (i, t) in ts.iter().enumerate() {
        if t.ne0 != ne0 {
            return Err(format!("tensor {} has ne0 = {}, tensor 0 has {}: one activation cannot feed both", i, t.ne0, ne0));
        }
        if outs[i].len() < t.ne1 {
            return Err(format!("output {} has {} floats, tensor has {} rows", i, outs[i].len(), t.ne1));
        }
    }
    check_act(ts[0], act)?;
    let a = Act::from_bytes(act, ne0)?;
    let table = dispatch::table();
    let lut_of: Vec<bool> = ts.iter().map(|t| lut::usable(t, table)).collect();
    // Work items are tiles of 32 rows for every tensor (the lookup-table kernel's unit).
    let tiles = |t: &Tensor| t.tiles();
    let segs: Vec<(usize, DotFn, OutPtr)> = {
        let mut start = 0;
        ts.iter()
            .zip(outs.iter_mut())
            .map(|(t, o)| {
                let s = start;
                start += tiles(t);
                (s, table.dot_fn(t.fmt), OutPtr(o.as_mut_ptr()))
            })
            .collect()
    };
    let total: usize = ts.iter().map(|t| tiles(t)).sum();
    let run = |tabs: &lut::Tables| {
        let body = |items: std::ops::Range<usize>| {
            for (i, t) in ts.iter().enumerate() {
                let (s, dot, o) = segs[i];
                let lo = items.start.max(s);
                let hi = items.end.min(s + tiles(t));
                for tile in lo - s..hi.max(lo) - s {
                    if lut_of[i] {
                        unsafe { lut::tile(t, tile, tabs, &a, o.0) };
                        continue;
                    }
                    for r in tile * q1::TILE..((tile + 1) * q1::TILE).min(t.ne1) {
                        unsafe { *o.0.add(r) = dot(t.row(r), &a, ne0) };
                    }
                }
            }
        };
        pool::parallel_for(total, MIN_PARALLEL_ROWS / q1::TILE, &body)
    };
    if lut_of.iter().any(|&u| u) {
        let packed: Vec<&Tensor> = ts.iter().zip(&lut_of).filter(|(_, &u)| u).map(|(t, _)| *t).collect();
        return lut::with_tables(table, &[a], ne0, &packed, run);
    }
    run(&lut::Tables::NONE)
}

/// `out[tok * out_stride + r] = row_r · act_tok` for `n_tok` activations `act_stride` bytes apart.
/// Rows outer, tokens inner: each weight row is read once for all tokens.
pub fn matmul(t: &Tensor, act: &[u8], n_tok: usize, act_stride: usize, out: &mut [f32], out_stride: usize) -> Result<(), String> {
    if n_tok == 0 {
        return Ok(());
    }
    let one = act_layout(t.ne0).total;
    if act_stride < one || act_stride % 4 != 0 {
        return Err(format!("act stride {} must be a multiple of 4 and at least {} (one act of {} elements)", act_stride, one, t.ne0));
    }
    if act.len() < act_stride * (n_tok - 1) + one {
        return Err(format!("act buffer has {} bytes, {} tokens need {}", act.len(), n_tok, act_stride * (n_tok - 1) + one));
    }
    if out_stride < t.ne1 || out.len() < out_stride * (n_tok - 1) + t.ne1 {
        return Err(format!("output of {} floats with stride {} cannot hold {} tokens x {} rows", out.len(), out_stride, n_tok, t.ne1));
    }
    let acts: Vec<Act> =
        (0..n_tok).map(|k| Act::from_bytes(&act[k * act_stride..k * act_stride + one], t.ne0)).collect::<Result<_, _>>()?;
    let table = dispatch::table();
    if let Some(g) = table.gemm() {
        if n_tok >= gemm::MIN_TOKENS && t.ne0 % 128 == 0 && (t.packed.is_some() || t.packed_q2.is_some()) {
            return matmul_gemm(g, t, &acts, out, out_stride);
        }
    }
    if lut::usable(t, table) {
        // Tokens in groups of 8 (their tables stay in cache); each tile is read once per group.
        for (g, group) in acts.chunks(8).enumerate() {
            lut::with_tables(table, group, t.ne0, &[t], |tabs| {
                let o = OutPtr(out.as_mut_ptr());
                let body = |tiles: std::ops::Range<usize>| {
                    for tile in tiles {
                        for (k, a) in group.iter().enumerate() {
                            unsafe { lut::tile(t, tile, &tabs.token(k), a, o.0.add((8 * g + k) * out_stride)) };
                        }
                    }
                };
                pool::parallel_for(t.tiles(), 2, &body)
            })?;
        }
        return Ok(());
    }
    let dot = table.dot_fn(t.fmt);
    let multi = table.dot_multi[t.fmt.index()];
    let o = OutPtr(out.as_mut_ptr());
    let body = |rows: std::ops::Range<usize>| {
        let o = o;
        let mut res = [0.0f32; 8];
        for r in rows {
            let row = t.row(r);
            match multi {
                Some(m) => {
                    for (g, group) in acts.chunks(8).enumerate() {
                        m(row, group, t.ne0, &mut res);
                        for (i, v) in res.iter().take(group.len()).enumerate() {
                            unsafe { *o.0.add((8 * g + i) * out_stride + r) = *v };
                        }
                    }
                }
                None => {
                    for (k, a) in acts.iter().enumerate() {
                        unsafe { *o.0.add(k * out_stride + r) = dot(row, a, t.ne0) };
                    }
                }
            }
        }
    };
    pool::parallel_for(t.ne1, (MIN_PARALLEL_ROWS / n_tok).max(2), &body)
}

thread_local! {
    /// The calling thread's expanded tile and tile results (per token), reused across calls.
    static GEMM_BUF: RefCell<(Expanded, Vec<[f32; TILE]>)> = RefCell::new((Expanded::default(), Vec::new()));
}

/// Prompt chunk of a packed Q1_0 / Q2_0 tensor (`ne0 % 128 == 0`) on the GEMM kernels: each tile
/// is expanded once by the thread that owns it and then multiplied with every token (same bits as
/// the other paths).
fn matmul_gemm(g: &GemmKernels, t: &Tensor, acts: &[Act], out: &mut [f32], out_stride: usize) -> Result<(), String> {
    let o = OutPtr(out.as_mut_ptr());
    let nb = t.ne0 / 128;
    let body = |tiles: std::ops::Range<usize>| {
        let o = o;
        GEMM_BUF.with(|cell| {
            let (exp, res) = &mut *cell.borrow_mut();
            if res.len() < acts.len() {
                res.resize(acts.len(), [0.0; TILE]);
            }
            for tile in tiles {
                match (&t.packed, &t.packed_q2) {
                    (Some(p), _) => (g.q1_expand)(p.tile(tile), p.nb, exp.bytes_mut(nb)),
                    (_, Some(p)) => (g.q2_expand)(p, tile, exp.bytes_mut(nb)),
                    _ => unreachable!("matmul_gemm of an unpacked tensor"),
                }
                (g.tokens)(exp.bytes(), nb, acts, &mut res[..acts.len()]);
                let r0 = tile * TILE;
                let n = TILE.min(t.ne1 - r0);
                for (k, r) in res[..acts.len()].iter().enumerate() {
                    // SAFETY: rows r0..r0+n of token k lie inside `out` (checked by `matmul`);
                    // tiles are disjoint between tasks.
                    unsafe { std::ptr::copy_nonoverlapping(r.as_ptr(), o.0.add(k * out_stride + r0), n) };
                }
            }
        })
    };
    pool::parallel_for(t.tiles(), 2, &body)
}

/// Dequantises row `r` into `out` (`ne0` floats).
pub fn dequant_row(t: &Tensor, r: usize, out: &mut [f32]) -> Result<(), String> {
    if r >= t.ne1 {
        return Err(format!("row {} out of range: tensor has {} rows", r, t.ne1));
    }
    if out.len() < t.ne0 {
        return Err(format!("output has {} floats, a row has {}", out.len(), t.ne0));
    }
    t.with_row(r, |row| crate::dot::scalar::dequant_row(t.fmt, row, t.ne0, out));
    Ok(())
}
