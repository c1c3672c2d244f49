//! bonsai_kernels: compute kernels for PrismML Bonsai models (Qwen3, Q1_0 / Q2_0 weights) behind a
//! C ABI (`ffi`). std only, no dependencies; builds with Rust 1.63+ (AVX-512 kernels need 1.89+).
//!
//! Layout: `formats` (block structs), `f16`, `act` (quantised activations), `dot_scalar` (reference
//! kernels and the accumulation order every path follows), `dot_avx2` / `dot_avx512` (SIMD),
//! `dispatch` (the one kernel table), `pool` (persistent threads), `matmul`, `ops`, `attention`,
//! `map` + `tensor` (weights), `error` + `ffi` (the C ABI).

pub mod act;
pub mod attention;
pub mod bandwidth;
pub mod dispatch;
pub mod dot_scalar;
pub mod error;
pub mod f16;
pub mod ffi;
pub mod ffi_attention;
pub mod fused;
pub mod formats;
pub mod map;
pub mod matmul;
pub mod ops;
pub mod pool;
mod prefetch;
pub mod q1_lut;
pub mod q2_lut;
mod selfcheck;
pub mod tensor;
pub mod testutil;

#[cfg(target_arch = "x86_64")]
mod attention_avx2;
#[cfg(target_arch = "aarch64")]
mod attention_neon;
#[cfg(target_arch = "x86_64")]
pub mod dot_avx2;
#[cfg(bk_avx512)]
pub mod dot_avx512;
#[cfg(target_arch = "aarch64")]
pub mod dot_neon;
#[cfg(target_arch = "aarch64")]
mod neon_util;
#[cfg(target_arch = "aarch64")]
pub mod dot_neon_q2;

#[cfg(test)]
mod tests;
