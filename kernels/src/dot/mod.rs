//! The row dot-product family: one weight row · one quantised activation, per format. `scalar` is
//! the reference and fixes the accumulation order every other path (and the lookup-table family)
//! follows; the SIMD kernels are bit-identical to it. Collected per ISA into `dispatch`'s tables.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(bk_avx512)]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
#[cfg(target_arch = "aarch64")]
pub mod neon_q2;
