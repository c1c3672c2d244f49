//! The C ABI. Every entry point catches panics; failures return -1 (or null) and leave a message
//! for `bk_last_error`. Buffer lengths are implied by the shapes passed (callers size them; the TS
//! binding checks them before calling).

pub mod attention;
pub mod error;
pub mod fused;

use crate::act::{act_layout, quantize_act};
use crate::dispatch;
use error::{guard, guard_status, last_error, set_error};
use crate::map::{map_file, Map};
use crate::matmul;
use crate::ops;
use crate::pool;
use crate::tensor::Tensor;
use std::ptr;

/// ABI version: bumped when a signature changes.
pub const VERSION: u32 = 1;

pub(crate) fn slice<'a, T>(p: *const T, n: usize, what: &str) -> Result<&'a [T], String> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(format!("{} is null", what));
    }
    if (p as usize) % std::mem::align_of::<T>() != 0 {
        return Err(format!("{} is not {}-byte aligned", what, std::mem::align_of::<T>()));
    }
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

pub(crate) fn slice_mut<'a, T>(p: *mut T, n: usize, what: &str) -> Result<&'a mut [T], String> {
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(format!("{} is null", what));
    }
    if (p as usize) % std::mem::align_of::<T>() != 0 {
        return Err(format!("{} is not {}-byte aligned", what, std::mem::align_of::<T>()));
    }
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

fn tensor<'a>(t: *const Tensor) -> Result<&'a Tensor, String> {
    if t.is_null() {
        return Err("tensor handle is null".to_string());
    }
    Ok(unsafe { &*t })
}

#[no_mangle]
pub extern "C" fn bk_version() -> u32 {
    VERSION
}

#[no_mangle]
pub extern "C" fn bk_isa_available() -> u32 {
    guard(0, || Ok(dispatch::available()))
}

#[no_mangle]
pub extern "C" fn bk_isa_active() -> u32 {
    guard(0, || Ok(dispatch::active()))
}

#[no_mangle]
pub extern "C" fn bk_force_isa(mask: u32) -> i32 {
    guard_status(|| dispatch::force_isa(mask))
}

/// 1 when new Q1_0 / Q2_0 tensors are packed for the lookup-table kernels (CPU support, start-up
/// self-check, and `BONSAI_NO_LUT` unset), else 0.
#[no_mangle]
pub extern "C" fn bk_lut_enabled() -> u32 {
    crate::lut::available() as u32
}

/// The GEMM variant prompt chunks of packed Q1_0 tensors run on now: 0 none (the lookup-table
/// kernels: no VNNI, `BONSAI_NO_GEMM` set, or a forced lower ISA), 1 AVX-512 VNNI, 2 AVX-VNNI,
/// 3 NEON dotprod (`sdot`).
#[no_mangle]
pub extern "C" fn bk_gemm_path() -> u32 {
    guard(0, || Ok(dispatch::table().gemm().map_or(0, |k| k.id)))
}

#[no_mangle]
pub extern "C" fn bk_set_threads(n: u32) -> u32 {
    guard(0, || Ok(pool::set_threads(n as usize) as u32))
}

/// Threads the pool uses now (starting the default pool if needed).
#[no_mangle]
pub extern "C" fn bk_threads() -> u32 {
    guard(0, || Ok(pool::threads() as u32))
}

#[no_mangle]
pub extern "C" fn bk_last_error(buf: *mut u8, cap: usize) -> usize {
    let msg = last_error();
    if !buf.is_null() && cap > 0 {
        let n = msg.len().min(cap);
        unsafe { ptr::copy_nonoverlapping(msg.as_ptr(), buf, n) };
    }
    msg.len()
}

#[no_mangle]
pub extern "C" fn bk_map_open(path: *const u8, path_len: usize) -> *mut Map {
    guard(ptr::null_mut(), || {
        let bytes = slice(path, path_len, "path")?;
        let p = std::str::from_utf8(bytes).map_err(|_| "path is not valid UTF-8".to_string())?;
        Ok(Box::into_raw(Box::new(map_file(p)?)))
    })
}

#[no_mangle]
pub extern "C" fn bk_map_size(m: *const Map) -> u64 {
    if m.is_null() {
        set_error("map handle is null".to_string());
        return 0;
    }
    unsafe { (*m).0.len() as u64 }
}

/// Drops the handle; the memory stays mapped while tensors made from it are alive.
#[no_mangle]
pub extern "C" fn bk_map_close(m: *mut Map) {
    if !m.is_null() {
        guard((), || {
            drop(unsafe { Box::from_raw(m) });
            Ok(())
        })
    }
}

#[no_mangle]
pub extern "C" fn bk_tensor_new(m: *const Map, offset: u64, format: u32, ne0: u64, ne1: u64) -> *mut Tensor {
    guard(ptr::null_mut(), || {
        if m.is_null() {
            return Err("map handle is null".to_string());
        }
        let t = Tensor::from_map(unsafe { &*m }, offset, format, ne0, ne1)?;
        Ok(Box::into_raw(Box::new(t)))
    })
}

#[no_mangle]
pub extern "C" fn bk_tensor_from_bytes(p: *const u8, len: usize, format: u32, ne0: u64, ne1: u64) -> *mut Tensor {
    guard(ptr::null_mut(), || {
        let bytes = slice(p, len, "tensor bytes")?;
        Ok(Box::into_raw(Box::new(Tensor::from_bytes(bytes, format, ne0, ne1)?)))
    })
}

#[no_mangle]
pub extern "C" fn bk_tensor_free(t: *mut Tensor) {
    if !t.is_null() {
        guard((), || {
            drop(unsafe { Box::from_raw(t) });
            Ok(())
        })
    }
}

#[no_mangle]
pub extern "C" fn bk_act_bytes(n: u64) -> usize {
    act_layout(n as usize).total
}

#[no_mangle]
pub extern "C" fn bk_quantize_act(x: *const f32, n: u64, act: *mut u8) -> i32 {
    guard_status(|| {
        let n = n as usize;
        let xs = slice(x, n, "input vector")?;
        let out = slice_mut(act, act_layout(n).total, "act buffer")?;
        quantize_act(xs, out)
    })
}

fn act_of<'a>(t: &Tensor, act: *const u8) -> Result<&'a [u8], String> {
    slice(act, act_layout(t.ne0).total, "act buffer")
}

#[no_mangle]
pub extern "C" fn bk_matvec(t: *const Tensor, act: *const u8, out: *mut f32) -> i32 {
    guard_status(|| {
        let t = tensor(t)?;
        matmul::matvec(t, act_of(t, act)?, slice_mut(out, t.ne1, "output")?)
    })
}

/// Always the scalar reference kernels, on the calling thread only.
#[no_mangle]
pub extern "C" fn bk_matvec_ref(t: *const Tensor, act: *const u8, out: *mut f32) -> i32 {
    guard_status(|| {
        let t = tensor(t)?;
        matmul::matvec_ref(t, act_of(t, act)?, slice_mut(out, t.ne1, "output")?)
    })
}

/// `n` matvecs sharing one activation in one pool dispatch: `ts[i]` (same ne0) -> `outs[i]` (ne1 floats).
#[no_mangle]
pub extern "C" fn bk_matvec_multi(ts: *const *const Tensor, n: u32, act: *const u8, outs: *const *mut f32) -> i32 {
    guard_status(|| {
        let tp = slice(ts, n as usize, "tensor list")?;
        let op = slice(outs, n as usize, "output list")?;
        let tensors: Vec<&Tensor> = tp.iter().map(|&t| tensor(t)).collect::<Result<_, _>>()?;
        if tensors.is_empty() {
            return Ok(());
        }
        let mut o: Vec<&mut [f32]> =
            tensors.iter().zip(op.iter()).map(|(t, &p)| slice_mut(p, t.ne1, "output")).collect::<Result<_, _>>()?;
        matmul::matvec_multi(&tensors, act_of(tensors[0], act)?, &mut o)
    })
}

#[no_mangle]
pub extern "C" fn bk_matmul(t: *const Tensor, act: *const u8, n_tok: u32, act_stride: usize, out: *mut f32, out_stride: usize) -> i32 {
    guard_status(|| {
        let t = tensor(t)?;
        let n = n_tok as usize;
        if n == 0 {
            return Ok(());
        }
        let one = act_layout(t.ne0).total;
        if act_stride < one {
            return Err(format!("act stride {} is smaller than one act of {} elements ({} bytes)", act_stride, t.ne0, one));
        }
        if out_stride < t.ne1 {
            return Err(format!("output stride {} is smaller than the {} rows", out_stride, t.ne1));
        }
        let a = slice(act, act_stride * (n - 1) + one, "act buffer")?;
        let o = slice_mut(out, out_stride * (n - 1) + t.ne1, "output")?;
        matmul::matmul(t, a, n, act_stride, o, out_stride)
    })
}

#[no_mangle]
pub extern "C" fn bk_dequant_row(t: *const Tensor, row: u64, out: *mut f32) -> i32 {
    guard_status(|| {
        let t = tensor(t)?;
        matmul::dequant_row(t, row as usize, slice_mut(out, t.ne0, "output")?)
    })
}

#[no_mangle]
pub extern "C" fn bk_rmsnorm(x: *const f32, w: *const f32, out: *mut f32, n: u32, eps: f32) -> i32 {
    guard_status(|| {
        let n = n as usize;
        if n == 0 {
            return Err("rmsnorm of an empty vector".to_string());
        }
        let w = if w.is_null() { None } else { Some(slice(w, n, "weights")?) };
        ops::rmsnorm(slice(x, n, "input")?, w, slice_mut(out, n, "output")?, eps);
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn bk_rmsnorm_heads(x: *mut f32, w: *const f32, n_heads: u32, head_dim: u32, eps: f32) -> i32 {
    guard_status(|| {
        let hd = head_dim as usize;
        if hd == 0 {
            return Err("head_dim is 0".to_string());
        }
        let xs = slice_mut(x, n_heads as usize * hd, "input")?;
        ops::rmsnorm_heads(xs, slice(w, hd, "weights")?, hd, eps);
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn bk_rope_neox(
    x: *mut f32,
    n_heads: u32,
    head_dim: u32,
    n_rot: u32,
    pos: u32,
    freq_base: f32,
    yarn_factor: f32,
    yarn_orig_ctx: u32,
) -> i32 {
    guard_status(|| {
        if n_rot % 2 != 0 || n_rot == 0 || n_rot > head_dim {
            return Err(format!("n_rot = {} must be even, positive and at most head_dim = {}", n_rot, head_dim));
        }
        let xs = slice_mut(x, n_heads as usize * head_dim as usize, "input")?;
        let f = rope_of(n_rot, freq_base, yarn_factor, yarn_orig_ctx)?.factors(pos);
        ops::rope_neox(xs, head_dim as usize, n_rot as usize, &f);
        Ok(())
    })
}

/// The model's RoPE after checking its parameters (`n_rot` checked by the caller).
pub(crate) fn rope_of(n_rot: u32, freq_base: f32, yarn_factor: f32, yarn_orig_ctx: u32) -> Result<ops::Rope, String> {
    if !(freq_base > 0.0) {
        return Err(format!("rope freq_base = {} must be positive", freq_base));
    }
    if yarn_factor > 1.0 && yarn_orig_ctx == 0 {
        return Err("YaRN scaling needs the original context length (got 0)".to_string());
    }
    Ok(ops::Rope::new(n_rot as usize, freq_base, yarn_factor, yarn_orig_ctx))
}

#[no_mangle]
pub extern "C" fn bk_softmax(x: *mut f32, n: u32) -> i32 {
    guard_status(|| {
        ops::softmax(slice_mut(x, n as usize, "input")?);
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn bk_silu_mul(gate: *const f32, up: *const f32, out: *mut f32, n: u32) -> i32 {
    guard_status(|| {
        let n = n as usize;
        ops::silu_mul(slice(gate, n, "gate")?, slice(up, n, "up")?, slice_mut(out, n, "output")?);
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn bk_add(x: *mut f32, y: *const f32, n: u32) -> i32 {
    guard_status(|| {
        let n = n as usize;
        ops::add(slice_mut(x, n, "x")?, slice(y, n, "y")?);
        Ok(())
    })
}

/// Bytes of `n` KV elements of `kv_type`; q8 needs whole 32-element blocks.
pub(crate) fn kv_bytes(kv_type: u32, n: usize, what: &str) -> Result<usize, String> {
    match kv_type {
        0 | 1 => Ok(crate::attention::kv_row_bytes(kv_type, n)),
        2 if n % 32 == 0 => Ok(crate::attention::kv_row_bytes(kv_type, n)),
        2 => Err(format!("q8 KV cache: {} = {} is not a multiple of 32", what, n)),
        _ => Err(format!("unknown kv_type {} (0 = f32, 1 = f16, 2 = q8)", kv_type)),
    }
}

#[no_mangle]
pub extern "C" fn bk_store_kv(src: *const f32, dst: *mut u8, kv_type: u32, n: u32) -> i32 {
    guard_status(|| {
        let n = n as usize;
        let nb = kv_bytes(kv_type, n, "element count")?;
        ops::store_kv(slice(src, n, "source")?, slice_mut(dst, nb, "destination")?, kv_type);
        Ok(())
    })
}

/// Context sliding: re-ropes `n_pos` consecutive cached key rows of one layer (`n_head_kv *
/// head_dim` elements of `kv_type` each) in place by `delta` positions, with the RoPE of
/// `bk_qk_rope_store` (see `ops::kv_shift`). Moving the rows is the caller's.
#[no_mangle]
pub extern "C" fn bk_kv_shift(
    keys: *mut u8,
    kv_type: u32,
    n_head_kv: u32,
    head_dim: u32,
    n_pos: u32,
    delta: i32,
    freq_base: f32,
    yarn_factor: f32,
    yarn_orig_ctx: u32,
) -> i32 {
    guard_status(|| {
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(format!("head_dim = {} must be even and positive", head_dim));
        }
        let rope = rope_of(head_dim, freq_base, yarn_factor, yarn_orig_ctx)?;
        let kv_dim = n_head_kv as usize * head_dim as usize;
        let row = kv_bytes(kv_type, kv_dim, "kv width")?;
        let n = (n_pos as usize).checked_mul(row).ok_or_else(|| format!("{} positions of {} bytes overflow", n_pos, row))?;
        ops::kv_shift(slice_mut(keys, n, "key rows")?, kv_type, kv_dim, head_dim as usize, n_pos as usize, delta as i64, &rope);
        Ok(())
    })
}

/// Best memory read bandwidth in GB/s over `reps` passes of a `bytes` buffer on the pool's threads;
/// negative on error (see `bk_last_error`).
#[no_mangle]
pub extern "C" fn bk_read_bandwidth(bytes: u64, reps: u32) -> f64 {
    guard(-1.0, || crate::bandwidth::read_bandwidth(bytes as usize, reps as usize))
}
