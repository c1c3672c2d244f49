//! bonsai_kernels: compute kernels for PrismML Bonsai models (Qwen3, Q1_0 / Q2_0 weights) behind a
//! C ABI (`abi`). std only, no dependencies; builds with Rust 1.63+ (AVX-512 kernels need 1.89+).
//!
//! Layout: `formats` (block structs), `f16`, `act` (quantised activations); the kernel families,
//! one folder each: `dot` (row dot products; `dot::scalar` fixes the accumulation order every path
//! follows), `lut` (lookup-table tiles), `attention`; `dispatch` (the one table per ISA holding every
//! family) and `selfcheck` (its start-up check); `pool` (persistent threads), `matmul`, `ops`
//! (rmsnorm, RoPE, KV store and shift), `map` + `tensor` (weights), `abi` (the C ABI).

pub mod abi;
pub mod act;
pub mod attention;
pub mod bandwidth;
pub mod dispatch;
pub mod dot;
pub mod f16;
pub mod formats;
pub mod gemm;
pub mod lut;
pub mod map;
pub mod matmul;
pub mod ops;
pub mod pool;
mod prefetch;
mod selfcheck;
pub mod tensor;
pub mod testutil;

#[cfg(target_arch = "aarch64")]
mod neon_util;

#[cfg(test)]
mod tests;
