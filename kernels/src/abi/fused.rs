//! Fused entry points for the decode loop: each replaces a run of small calls that the forward
//! pass makes per layer and per token, so the fixed cost of crossing the FFI boundary is paid
//! once instead of several times. Each is exactly the sequence of the single ops it replaces
//! (same functions, same order), so results are bit-identical to calling them one by one.

use crate::act::{act_layout, quantize_act};
use crate::abi::error::guard_status;
use crate::abi::{kv_bytes, rope_of, slice, slice_mut};
use crate::ops;

/// `out = rmsnorm(x) * w`, then `act = quantize(out)`: `bk_rmsnorm` + `bk_quantize_act`.
#[no_mangle]
pub extern "C" fn bk_rmsnorm_quantize(x: *const f32, w: *const f32, out: *mut f32, n: u32, eps: f32, act: *mut u8) -> i32 {
    guard_status(|| {
        let n = n as usize;
        if n == 0 {
            return Err("rmsnorm of an empty vector".to_string());
        }
        let w = if w.is_null() { None } else { Some(slice(w, n, "weights")?) };
        let h = slice_mut(out, n, "output")?;
        ops::rmsnorm(slice(x, n, "input")?, w, h, eps);
        quantize_act(h, slice_mut(act, act_layout(n).total, "act buffer")?)
    })
}

/// After the q/k/v projections of one token: per-head RMSNorm of q and k, NEOX RoPE of both at
/// `pos`, then k and v stored into their cache slots: `bk_rmsnorm_heads` x2, `bk_rope_neox` x2,
/// `bk_store_kv` x2.
#[no_mangle]
pub extern "C" fn bk_qk_rope_store(
    q: *mut f32,
    k: *mut f32,
    v: *const f32,
    q_norm: *const f32,
    k_norm: *const f32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    eps: f32,
    pos: u32,
    freq_base: f32,
    yarn_factor: f32,
    yarn_orig_ctx: u32,
    k_dst: *mut u8,
    v_dst: *mut u8,
    kv_type: u32,
) -> i32 {
    guard_status(|| {
        let hd = head_dim as usize;
        if hd == 0 || hd % 2 != 0 {
            return Err(format!("head_dim = {} must be even and positive", head_dim));
        }
        let rope = rope_of(head_dim, freq_base, yarn_factor, yarn_orig_ctx)?;
        let kv_dim = n_head_kv as usize * hd;
        let qs = slice_mut(q, n_head as usize * hd, "q")?;
        let ks = slice_mut(k, kv_dim, "k")?;
        ops::rmsnorm_heads(qs, slice(q_norm, hd, "q norm weights")?, hd, eps);
        ops::rmsnorm_heads(ks, slice(k_norm, hd, "k norm weights")?, hd, eps);
        let f = rope.factors(pos);
        ops::rope_neox(qs, hd, hd, &f);
        ops::rope_neox(ks, hd, hd, &f);
        let nb = kv_bytes(kv_type, kv_dim, "kv width")?;
        ops::store_kv(ks, slice_mut(k_dst, nb, "key slot")?, kv_type);
        ops::store_kv(slice(v, kv_dim, "v")?, slice_mut(v_dst, nb, "value slot")?, kv_type);
        Ok(())
    })
}
