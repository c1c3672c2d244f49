//! Small AArch64 helpers shared by the NEON kernels (rustc 1.63 lacks the fp16 intrinsics, so
//! they are `asm!`).

use std::arch::aarch64::*;
use std::arch::asm;

/// Halves 0-3 of `h` as f32 (`fcvtl`: exact for every half, subnormals included).
#[inline(always)]
pub(crate) unsafe fn widen_low(h: uint16x8_t) -> float32x4_t {
    let f: float32x4_t;
    asm!("fcvtl {f:v}.4s, {h:v}.4h", h = in(vreg) h, f = lateout(vreg) f, options(pure, nomem, nostack, preserves_flags));
    f
}

/// Halves 4-7 of `h` as f32.
#[inline(always)]
pub(crate) unsafe fn widen_high(h: uint16x8_t) -> float32x4_t {
    let f: float32x4_t;
    asm!("fcvtl2 {f:v}.4s, {h:v}.8h", h = in(vreg) h, f = lateout(vreg) f, options(pure, nomem, nostack, preserves_flags));
    f
}
