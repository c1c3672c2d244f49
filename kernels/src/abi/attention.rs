//! The C ABI of attention over the KV cache: one query row (`bk_attention`, decode) or a prompt
//! chunk of consecutive rows of one sequence (`bk_attention_rows`, prefill).

use crate::attention::{attention, attention_rows, AttnShape, KvView};
use crate::abi::error::guard_status;
use crate::abi::{kv_bytes, slice, slice_mut};

/// Checked shape and K/V views of an attention call over `n_kv` positions.
#[allow(clippy::too_many_arguments)]
fn attention_args<'a>(
    k: *const u8,
    v: *const u8,
    kv_type: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    n_kv: u32,
    kv_stride: u32,
) -> Result<(AttnShape, KvView<'a>, KvView<'a>), String> {
    kv_bytes(kv_type, head_dim as usize, "head_dim")?;
    kv_bytes(kv_type, kv_stride as usize, "kv_stride")?;
    let sh = AttnShape { n_head: n_head as usize, n_head_kv: n_head_kv as usize, head_dim: head_dim as usize, n_kv: n_kv as usize };
    if sh.n_head == 0 || sh.n_head_kv == 0 || sh.head_dim == 0 || sh.n_head % sh.n_head_kv != 0 {
        return Err(format!("bad attention shape: n_head {} must be a positive multiple of n_head_kv {}, head_dim {} > 0", n_head, n_head_kv, head_dim));
    }
    if sh.n_kv == 0 {
        return Err("attention over 0 positions".to_string());
    }
    let row = sh.n_head_kv * sh.head_dim;
    if (kv_stride as usize) < row {
        return Err(format!("kv_stride {} is smaller than n_head_kv * head_dim = {}", kv_stride, row));
    }
    let kv_len = kv_bytes(kv_type, (sh.n_kv - 1) * kv_stride as usize + row, "kv length")?;
    let view = |p: *const u8, what: &str| -> Result<KvView<'a>, String> {
        Ok(KvView { bytes: slice(p, kv_len, what)?, kv_type, stride: kv_stride as usize })
    };
    Ok((sh, view(k, "k cache")?, view(v, "v cache")?))
}

/// One query row (all heads) over positions `0..n_kv`; `scratch` holds `2 * n_kv` floats.
#[no_mangle]
pub extern "C" fn bk_attention(
    q: *const f32,
    k: *const u8,
    v: *const u8,
    kv_type: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    n_kv: u32,
    kv_stride: u32,
    out: *mut f32,
    scratch: *mut f32,
) -> i32 {
    guard_status(|| {
        let (sh, kv_k, kv_v) = attention_args(k, v, kv_type, n_head, n_head_kv, head_dim, n_kv, kv_stride)?;
        let qs = slice(q, sh.n_head * sh.head_dim, "q")?;
        let o = slice_mut(out, sh.n_head * sh.head_dim, "output")?;
        let s = slice_mut(scratch, 2 * sh.n_kv, "scratch (2 * n_kv floats)")?;
        attention(sh, qs, kv_k, kv_v, o, s, false)
    })
}

/// `n_rows` consecutive query rows of one sequence, `n_head * head_dim` floats apart in `q` and
/// `out`; the last row sees positions `0..n_kv`, each earlier row one fewer.
#[no_mangle]
pub extern "C" fn bk_attention_rows(
    q: *const f32,
    k: *const u8,
    v: *const u8,
    kv_type: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    n_rows: u32,
    n_kv: u32,
    kv_stride: u32,
    out: *mut f32,
) -> i32 {
    guard_status(|| {
        let (sh, kv_k, kv_v) = attention_args(k, v, kv_type, n_head, n_head_kv, head_dim, n_kv, kv_stride)?;
        let n = n_rows as usize * sh.n_head * sh.head_dim;
        attention_rows(sh, n_rows as usize, slice(q, n, "q")?, kv_k, kv_v, slice_mut(out, n, "output")?, false)
    })
}
