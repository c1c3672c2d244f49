//! Software prefetch, one function for every target: the kernels stream weights and cached
//! keys/values in patterns the hardware prefetcher follows late (strided KV rows, the next tile).

/// Requests the cache lines of `bytes` bytes from `start` (prefetches never fault, even past the
/// end of an allocation; a no-op on targets without a prefetch instruction here).
#[inline(always)]
pub fn prefetch_lines(start: *const u8, bytes: usize) {
    let mut line = 0;
    while line < bytes {
        let p = start.wrapping_add(line);
        // SAFETY: a prefetch is only a hint: it reads nothing architecturally and cannot fault.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
        };
        #[cfg(target_arch = "aarch64")]
        unsafe {
            std::arch::asm!("prfm pldl1keep, [{p}]", p = in(reg) p, options(nostack, preserves_flags, readonly))
        };
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = p;
        line += 64;
    }
}

/// Requests the lines of `row`.
#[inline(always)]
pub fn prefetch_row(row: &[u8]) {
    prefetch_lines(row.as_ptr(), row.len())
}
