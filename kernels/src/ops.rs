//! Small f32 operators of the forward pass. Scalar, simple, exact (ggml's formulas and order).

use crate::f16::f32_to_f16;

/// `out = x / sqrt(mean(x^2) + eps) * w` (w optional). Sum of squares in f64 as in ggml.
pub fn rmsnorm(x: &[f32], w: Option<&[f32]>, out: &mut [f32], eps: f32) {
    let n = x.len();
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / n as f64) as f32;
    let scale = 1.0f32 / (mean + eps).sqrt();
    match w {
        Some(w) => {
            for i in 0..n {
                out[i] = (x[i] * scale) * w[i];
            }
        }
        None => {
            for i in 0..n {
                out[i] = x[i] * scale;
            }
        }
    }
}

/// RMS-normalises each of the `x.len() / head_dim` heads in place, times `w[head_dim]`.
pub fn rmsnorm_heads(x: &mut [f32], w: &[f32], head_dim: usize, eps: f32) {
    let mut tmp = vec![0.0f32; head_dim];
    for h in x.chunks_mut(head_dim) {
        rmsnorm(h, Some(w), &mut tmp, eps);
        h.copy_from_slice(&tmp);
    }
}

/// The RoPE of one model: the rotation angle of each of the `n_rot/2` dimension pairs at any
/// position, in f64. The one owner of the formula: the forward pass's RoPE ([`rope_factors`]) and
/// KV sliding ([`kv_shift`]) both take their angles from here.
/// `yarn_factor` <= 1 (or 0) means no scaling; otherwise YaRN as in ggml (beta_fast 32, beta_slow 1,
/// ext_factor 1, mscale = 1 + 0.1 ln(factor) applied to cos and sin).
pub struct Rope {
    n_rot: usize,
    base: f64,
    yarn: bool,
    low: f64,
    high: f64,
    freq_scale: f64,
    /// YaRN's magnitude factor of cos and sin (1 without YaRN).
    pub mscale: f64,
}

impl Rope {
    pub fn new(n_rot: usize, freq_base: f32, yarn_factor: f32, yarn_orig_ctx: u32) -> Rope {
        let base = freq_base as f64;
        let yarn = yarn_factor > 1.0;
        let (low, high, freq_scale, mscale) = if yarn {
            let n_dims = n_rot as f64;
            let corr_dim = |beta: f64| n_dims * ((yarn_orig_ctx as f64) / (beta * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln());
            let low = corr_dim(32.0).floor().max(0.0);
            let high = corr_dim(1.0).ceil().min(n_dims - 1.0);
            let factor = yarn_factor as f64;
            (low, high, 1.0 / factor, 1.0 + 0.1 * factor.ln())
        } else {
            (0.0, 0.0, 1.0, 1.0)
        };
        Rope { n_rot, base, yarn, low, high, freq_scale, mscale }
    }

    /// Rotation angle of pair `i` at position `p` (YaRN-interpolated when enabled).
    pub fn theta(&self, i: usize, p: f64) -> f64 {
        let theta_extrap = p * self.base.powf(-2.0 * i as f64 / self.n_rot as f64);
        if !self.yarn {
            return theta_extrap;
        }
        let theta_interp = self.freq_scale * theta_extrap;
        let y = (i as f64 - self.low) / (self.high - self.low).max(0.001);
        let ramp = 1.0 - y.max(0.0).min(1.0);
        theta_interp * (1.0 - ramp) + theta_extrap * ramp
    }

    /// (cos, sin) of every pair at `pos`, times `mscale`, as f32.
    pub fn factors(&self, pos: u32) -> Vec<(f32, f32)> {
        (0..self.n_rot / 2)
            .map(|i| {
                let theta = self.theta(i, pos as f64);
                ((theta.cos() * self.mscale) as f32, (theta.sin() * self.mscale) as f32)
            })
            .collect()
    }
}

/// RoPE rotation factors for the `n_rot/2` pairs at `pos`: (cos, sin), computed in f64 (see [`Rope`]).
pub fn rope_factors(n_rot: usize, pos: u32, freq_base: f32, yarn_factor: f32, yarn_orig_ctx: u32) -> Vec<(f32, f32)> {
    Rope::new(n_rot, freq_base, yarn_factor, yarn_orig_ctx).factors(pos)
}

/// NEOX-style RoPE in place on `n_heads` heads of `head_dim`: element i pairs with i + n_rot/2.
pub fn rope_neox(x: &mut [f32], head_dim: usize, n_rot: usize, factors: &[(f32, f32)]) {
    let half = n_rot / 2;
    for h in x.chunks_mut(head_dim) {
        for (i, &(c, s)) in factors.iter().enumerate().take(half) {
            let x0 = h[i];
            let x1 = h[i + half];
            h[i] = x0 * c - x1 * s;
            h[i + half] = x0 * s + x1 * c;
        }
    }
}

/// Softmax in place (max subtracted; sum in f64; scaled by 1/sum as in ggml).
pub fn softmax(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `out = silu(gate) * up` with silu(g) = g / (1 + exp(-g)).
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        let g = gate[i];
        out[i] = g / (1.0 + (-g).exp()) * up[i];
    }
}

/// `x += y`.
pub fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y.iter()) {
        *a += *b;
    }
}

/// Stores `src` into `dst` as f32 (kv_type 0), f16 (kv_type 1, round to nearest even) or q8
/// (kv_type 2: per 32 elements an f16 `d = amax/127` then `q = round(x/d)` as i8; `src.len()` a
/// multiple of 32), little-endian.
pub fn store_kv(src: &[f32], dst: &mut [u8], kv_type: u32) {
    if kv_type == 2 {
        for (b, xs) in src.chunks(32).enumerate() {
            let o = &mut dst[34 * b..34 * b + 34];
            let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            o[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
            for (i, v) in xs.iter().enumerate() {
                let q = if d == 0.0 { 0.0 } else { (v / d).round().max(-127.0).min(127.0) };
                o[2 + i] = q as i8 as u8;
            }
        }
    } else if kv_type == 0 {
        for (i, v) in src.iter().enumerate() {
            dst[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
    } else {
        for (i, v) in src.iter().enumerate() {
            dst[2 * i..2 * i + 2].copy_from_slice(&f32_to_f16(*v).to_le_bytes());
        }
    }
}

/// Context sliding: rotates `n_pos` cached key rows (`kv_dim` elements of `kv_type` each, one row
/// after another, heads of `head_dim = n_rot` elements) by `delta` positions in place, so that
/// keys moved to another position see RoPE as if computed there. RoPE is a rotation by
/// `pos * freq_i`; rotating again by `delta * freq_i` moves a key from `pos` to `pos + delta`.
/// YaRN's magnitude factor is already in the cached keys, so only the angle moves (no `mscale`).
/// Each row is read as the attention kernels read it, rotated in f64 (one rounding to f32 at the
/// end) and written back with [`store_kv`], the codec of freshly computed keys.
pub fn kv_shift(keys: &mut [u8], kv_type: u32, kv_dim: usize, head_dim: usize, n_pos: usize, delta: i64, rope: &Rope) {
    let half = head_dim / 2;
    let rot: Vec<(f64, f64)> = (0..half)
        .map(|i| {
            let theta = rope.theta(i, delta as f64);
            (theta.cos(), theta.sin())
        })
        .collect();
    let row_bytes = crate::attention::kv_row_bytes(kv_type, kv_dim);
    let mut x = vec![0.0f32; kv_dim];
    for slot in keys[..n_pos * row_bytes].chunks_mut(row_bytes) {
        crate::attention::load_kv_row(slot, kv_type, &mut x);
        for h in x.chunks_mut(head_dim) {
            for (i, &(c, s)) in rot.iter().enumerate() {
                let (a, b) = (h[i] as f64, h[i + half] as f64);
                h[i] = (a * c - b * s) as f32;
                h[i + half] = (a * s + b * c) as f32;
            }
        }
        store_kv(&x, slot, kv_type);
    }
}
