//! The one dispatch table: per-ISA kernel sets, CPU feature detection, and the active choice.
//!
//! Tables are `static`s (built at compile time); the active one is chosen once at first use from the
//! detected features, after a quick self-check against the scalar reference (a SIMD table that
//! disagrees is not used), and can be restricted later with [`force_isa`] (tests, determinism checks).

use crate::act::Act;
use crate::dot_scalar as sc;
use crate::formats::Format;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// ISA bits of the C ABI (`bk_isa_available` / `bk_isa_active`).
pub const ISA_AVX2: u32 = 1;
pub const ISA_AVX512: u32 = 2;
pub const ISA_AVX512_VNNI: u32 = 4;
pub const ISA_NEON: u32 = 8;
pub const ISA_NEON_DOTPROD: u32 = 16;
pub const ISA_F16C: u32 = 32;

/// Row · activation dot product for `ne0` weights.
pub type DotFn = fn(&[u8], &Act, usize) -> f32;
/// Exact integer sums per activation block (quantised formats only; for tests).
pub type IsumFn = fn(&[u8], &Act, usize, &mut [i32]);
/// One row against up to 8 activations: `out[t]` must equal `dot(row, acts[t], ne0)` bit for bit.
pub type DotMultiFn = fn(&[u8], &[Act], usize, &mut [f32]);

/// One kernel set. `dot` and `isums` are indexed by [`Format::index`].
pub struct Table {
    pub name: &'static str,
    /// ISA bits this table relies on.
    pub isa: u32,
    pub dot: [DotFn; 6],
    pub isums: [Option<IsumFn>; 6],
    /// Optional multi-activation kernels (prefill), by format; absent ones fall back to `dot`.
    pub dot_multi: [Option<DotMultiFn>; 6],
}

impl Table {
    #[inline]
    pub fn dot_fn(&self, f: Format) -> DotFn {
        self.dot[f.index()]
    }
}

fn sc_isums_q2_0(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    sc::isums_q2(r, a, n, 128, o)
}
fn sc_isums_q2_g64(r: &[u8], a: &Act, n: usize, o: &mut [i32]) {
    sc::isums_q2(r, a, n, 64, o)
}

pub static SCALAR: Table = Table {
    name: "scalar",
    isa: 0,
    dot: [sc::dot_f32, sc::dot_f16, sc::dot_q8_0, sc::dot_q1_0, sc::dot_q2_0, sc::dot_q2_0_g64],
    isums: [None, None, Some(sc::isums_q8_0), Some(sc::isums_q1_0), Some(sc_isums_q2_0), Some(sc_isums_q2_g64)],
    dot_multi: [None; 6],
};

/// Base NEON: the quantised formats in NEON (Q1_0 also for several activations), F32/F16 scalar.
#[cfg(target_arch = "aarch64")]
pub static NEON: Table = {
    use crate::dot_neon as n;
    use crate::dot_neon_q2 as n2;
    Table {
        name: "neon",
        isa: ISA_NEON,
        dot: [sc::dot_f32, sc::dot_f16, n::dot_q8_0, n::dot_q1_0, n2::dot_q2_0, n2::dot_q2_0_g64],
        isums: [None, None, Some(n::isums_q8_0), Some(n::isums_q1_0), Some(n2::isums_q2_0), Some(n2::isums_q2_g64)],
        dot_multi: [None, None, None, Some(n::dot_q1_0_multi), None, None],
    }
};

/// NEON with the dot-product extension (`sdot`) for the quantised formats.
#[cfg(target_arch = "aarch64")]
pub static NEON_DOTPROD: Table = {
    use crate::dot_neon as n;
    use crate::dot_neon_q2 as n2;
    Table {
        name: "neon+dotprod",
        isa: ISA_NEON | ISA_NEON_DOTPROD,
        dot: [sc::dot_f32, sc::dot_f16, n::dot_q8_0_dot, n::dot_q1_0_dot, n2::dot_q2_0_dot, n2::dot_q2_0_g64_dot],
        isums: [None, None, Some(n::isums_q8_0_dot), Some(n::isums_q1_0_dot), Some(n2::isums_q2_0_dot), Some(n2::isums_q2_g64_dot)],
        dot_multi: [None, None, None, Some(n::dot_q1_0_multi_dot), None, None],
    }
};

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2_entry {
    //! Safe wrappers: only reachable through `AVX2`, which is only selected when avx2+f16c exist.
    use crate::act::Act;
    use crate::dot_avx2 as k;
    pub fn dot_f32(r: &[u8], a: &Act, n: usize) -> f32 { unsafe { k::dot_f32(r, a, n) } }
    pub fn dot_f16(r: &[u8], a: &Act, n: usize) -> f32 { unsafe { k::dot_f16(r, a, n) } }
    pub fn dot_q8_0(r: &[u8], a: &Act, n: usize) -> f32 { unsafe { k::dot_q8_0(r, a, n) } }
    pub fn dot_q1_0(r: &[u8], a: &Act, n: usize) -> f32 { unsafe { k::dot_q1_0(r, a, n) } }
    pub fn dot_q2_0(r: &[u8], a: &Act, n: usize) -> f32 { unsafe { k::dot_q2_0(r, a, n) } }
    pub fn dot_q2_0_g64(r: &[u8], a: &Act, n: usize) -> f32 { unsafe { k::dot_q2_0_g64(r, a, n) } }
    pub fn isums_q8_0(r: &[u8], a: &Act, n: usize, o: &mut [i32]) { unsafe { k::isums_q8_0(r, a, n, o) } }
    pub fn isums_q1_0(r: &[u8], a: &Act, n: usize, o: &mut [i32]) { unsafe { k::isums_q1_0(r, a, n, o) } }
    pub fn isums_q2_0(r: &[u8], a: &Act, n: usize, o: &mut [i32]) { unsafe { k::isums_q2(r, a, n, 128, o) } }
    pub fn isums_q2_g64(r: &[u8], a: &Act, n: usize, o: &mut [i32]) { unsafe { k::isums_q2(r, a, n, 64, o) } }
    pub fn dot_q1_0_multi(r: &[u8], a: &[Act], n: usize, o: &mut [f32]) { unsafe { k::dot_q1_0_multi(r, a, n, o) } }
}

#[cfg(target_arch = "x86_64")]
pub static AVX2: Table = Table {
    name: "avx2",
    isa: ISA_AVX2 | ISA_F16C,
    dot: [
        avx2_entry::dot_f32,
        avx2_entry::dot_f16,
        avx2_entry::dot_q8_0,
        avx2_entry::dot_q1_0,
        avx2_entry::dot_q2_0,
        avx2_entry::dot_q2_0_g64,
    ],
    isums: [
        None,
        None,
        Some(avx2_entry::isums_q8_0),
        Some(avx2_entry::isums_q1_0),
        Some(avx2_entry::isums_q2_0),
        Some(avx2_entry::isums_q2_g64),
    ],
    dot_multi: [None, None, None, Some(avx2_entry::dot_q1_0_multi), None, None],
};

#[cfg(bk_avx512)]
pub use crate::dot_avx512::{AVX512, AVX512_VNNI};

/// ISA bits the CPU offers (before the self-check).
pub fn detect() -> u32 {
    let mut m = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") {
            m |= ISA_AVX2;
        }
        if is_x86_feature_detected!("f16c") {
            m |= ISA_F16C;
        }
        #[cfg(bk_avx512)]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
                m |= ISA_AVX512;
                if is_x86_feature_detected!("avx512vnni") {
                    m |= ISA_AVX512_VNNI;
                }
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            m |= ISA_NEON;
        }
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            m |= ISA_NEON_DOTPROD;
        }
    }
    m
}

/// The best table usable with the ISA bits in `mask` (bits the CPU lacks must not be in `mask`).
pub fn table_for(mask: u32) -> &'static Table {
    #[cfg(bk_avx512)]
    {
        let base = ISA_AVX512 | ISA_AVX2 | ISA_F16C;
        if mask & base == base && mask & ISA_AVX512_VNNI != 0 {
            return &AVX512_VNNI;
        }
        if mask & base == base {
            return &AVX512;
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if mask & ISA_AVX2 != 0 && mask & ISA_F16C != 0 {
            return &AVX2;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if mask & ISA_NEON != 0 && mask & ISA_NEON_DOTPROD != 0 {
            return &NEON_DOTPROD;
        }
        if mask & ISA_NEON != 0 {
            return &NEON;
        }
    }
    let _ = mask;
    &SCALAR
}

static INIT: Once = Once::new();
static AVAILABLE: AtomicU32 = AtomicU32::new(0);
static ACTIVE: AtomicU32 = AtomicU32::new(0);

fn init() {
    INIT.call_once(|| {
        let mut avail = detect();
        // Drop SIMD tables that disagree with the scalar reference (never expected; guards kernels
        // that could not be run on the build machine, e.g. AVX-512).
        loop {
            let t = table_for(avail);
            if t.isa == 0 {
                break;
            }
            match crate::selfcheck::check_table(t) {
                Ok(()) => break,
                Err(msg) => {
                    eprintln!("bonsai_kernels: disabling {} kernels: {}", t.name, msg);
                    // drop only the table's own top feature, so the next table down is tried
                    let drop = [ISA_AVX512_VNNI, ISA_AVX512, ISA_AVX2, ISA_NEON_DOTPROD, ISA_NEON]
                        .iter()
                        .cloned()
                        .find(|b| t.isa & b != 0)
                        .unwrap_or(t.isa);
                    avail &= !drop;
                }
            }
        }
        AVAILABLE.store(avail, Ordering::SeqCst);
        ACTIVE.store(avail, Ordering::SeqCst);
    });
}

/// ISA bits available: detected on the CPU, compiled into this build, and passing the self-check.
pub fn available() -> u32 {
    init();
    AVAILABLE.load(Ordering::Relaxed)
}

/// ISA bits the active table uses (0 = scalar reference).
pub fn active() -> u32 {
    table().isa
}

/// The active kernel table.
#[inline]
pub fn table() -> &'static Table {
    init();
    table_for(ACTIVE.load(Ordering::Relaxed))
}

/// Restricts dispatch to `mask` (a subset of [`available`]; 0 = scalar). Errors name missing bits.
/// The x86 SIMD tables convert fp16 scales with F16C and AVX-512 reuses AVX2 kernels, so asking for
/// AVX-512 implies AVX2 + F16C and AVX2 implies F16C.
pub fn force_isa(mask: u32) -> Result<(), String> {
    let avail = available();
    let mask = if mask & ISA_AVX512 != 0 { mask | (avail & (ISA_AVX2 | ISA_F16C)) } else { mask };
    let mask = if mask & ISA_AVX2 != 0 { mask | (avail & ISA_F16C) } else { mask };
    if mask & !avail != 0 {
        return Err(format!("ISA mask {:#x} requests bits {:#x} this CPU/build does not offer (available {:#x})", mask, mask & !avail, avail));
    }
    ACTIVE.store(mask, Ordering::SeqCst);
    Ok(())
}
