//! The one dispatch table: per ISA, one [`Table`] holding every kernel family (row dot products,
//! lookup-table tiles, attention), with the scalar reference as the fallback of each; CPU feature
//! detection; and the active choice.
//!
//! Tables are `static`s (built at compile time); the active one is chosen once at first use from the
//! detected features, after a quick self-check of every family against the scalar reference
//! (`selfcheck`): a table whose row dots disagree is not used, and a lookup-table or attention
//! family that disagrees is turned off (its scalar fallback runs). The choice can be restricted
//! later with [`force_isa`] (tests, determinism checks).

use crate::act::Act;
use crate::attention::AttnKernels;
use crate::dot::scalar as sc;
use crate::formats::Format;
use crate::gemm::GemmKernels;
use crate::lut::LutKernels;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// ISA bits of the C ABI (`bk_isa_available` / `bk_isa_active`).
pub const ISA_AVX2: u32 = 1;
pub const ISA_AVX512: u32 = 2;
pub const ISA_AVX512_VNNI: u32 = 4;
pub const ISA_NEON: u32 = 8;
pub const ISA_NEON_DOTPROD: u32 = 16;
pub const ISA_F16C: u32 = 32;
/// AVX-VNNI (VEX-encoded `vpdpbusd` on ymm; Alder Lake-N / N100 and later, Zen 5).
pub const ISA_AVX_VNNI: u32 = 64;

/// Row · activation dot product for `ne0` weights.
pub type DotFn = fn(&[u8], &Act, usize) -> f32;
/// Exact integer sums per activation block (quantised formats only; for tests).
pub type IsumFn = fn(&[u8], &Act, usize, &mut [i32]);
/// One row against up to 8 activations: `out[t]` must equal `dot(row, acts[t], ne0)` bit for bit.
pub type DotMultiFn = fn(&[u8], &[Act], usize, &mut [f32]);

/// One kernel set: every family for one ISA. `dot` and `isums` are indexed by [`Format::index`].
pub struct Table {
    pub name: &'static str,
    /// ISA bits this table relies on.
    pub isa: u32,
    pub dot: [DotFn; 6],
    pub isums: [Option<IsumFn>; 6],
    /// Optional multi-activation kernels (prefill), by format; absent ones fall back to `dot`.
    pub dot_multi: [Option<DotMultiFn>; 6],
    /// Lookup-table kernels for packed Q1_0 / Q2_0 tensors; `None` (or turned off by the
    /// self-check): the `dot` row kernels. Read through [`Table::lut`].
    pub lut: Option<&'static LutKernels>,
    /// Attention kernels; `None` (or turned off by the self-check): the scalar reference of
    /// `attention`. Read through [`Table::attention`].
    pub attention: Option<&'static AttnKernels>,
    /// GEMM kernels for prompt chunks of packed Q1_0 / Q2_0 tensors; used only when the active ISA mask
    /// has their bits and neither the self-check nor the environment turned them off. Read
    /// through [`Table::gemm`].
    pub gemm: Option<&'static GemmKernels>,
}

impl Table {
    #[inline]
    pub fn dot_fn(&self, f: Format) -> DotFn {
        self.dot[f.index()]
    }

    /// The lookup-table kernels, unless absent or turned off by the start-up self-check.
    #[inline]
    pub fn lut(&self) -> Option<&'static LutKernels> {
        #[allow(unused_mut)]
        let mut k = self.lut;
        let off = FAMILIES_OFF.load(Ordering::Relaxed);
        #[cfg(all(target_arch = "x86_64", bk_avx512))]
        {
            // the AVX-512 set falls back to AVX2 when the self-check or BONSAI_LUT=avx2 says so
            if k.map_or(false, |k| std::ptr::eq(k, &crate::lut::AVX512)) && (off & FAMILY_LUT_512 != 0 || crate::lut::env_wants_avx2()) {
                k = X86_LUT;
            }
        }
        k.filter(|_| off & FAMILY_LUT == 0)
    }

    /// The attention kernels, unless absent or turned off by the start-up self-check.
    #[inline]
    pub fn attention(&self) -> Option<&'static AttnKernels> {
        self.attention.filter(|_| FAMILIES_OFF.load(Ordering::Relaxed) & FAMILY_ATTENTION == 0)
    }

    /// The GEMM kernels for prompt chunks: this table's (or, with `BONSAI_GEMM=avx_vnni`, the
    /// AVX-VNNI ones) when the active ISA mask has their bits, the start-up self-check passed
    /// them and `BONSAI_NO_GEMM` is not set; otherwise `None` (the lookup-table kernels run).
    #[inline]
    pub fn gemm(&self) -> Option<&'static GemmKernels> {
        let choice = crate::gemm::env_choice();
        if choice == 1 {
            return None;
        }
        #[allow(unused_mut)]
        let mut k = self.gemm;
        #[cfg(all(target_arch = "x86_64", bk_avx512))]
        {
            if choice == 2 {
                k = Some(&crate::gemm::AVX_VNNI);
            }
        }
        let active = ACTIVE.load(Ordering::Relaxed);
        let off = FAMILIES_OFF.load(Ordering::Relaxed);
        k.filter(|k| active & k.isa == k.isa && off & gemm_off_bit(k) == 0)
    }
}

/// The [`FAMILIES_OFF`] bit of a GEMM variant (each is checked on its own: they differ in ISA;
/// AArch64's one variant takes the second bit).
fn gemm_off_bit(k: &GemmKernels) -> u32 {
    if k.isa & ISA_AVX512_VNNI != 0 {
        FAMILY_GEMM_512
    } else {
        FAMILY_GEMM_256
    }
}

/// Families the self-check turned off ([`FAMILY_LUT`], [`FAMILY_ATTENTION`] bits; the AVX-512
/// lookup tables and each GEMM variant have bits of their own, as other tables use other
/// variants). Per family
/// rather than per table: every table of an architecture shares the same lookup-table and
/// attention kernels, so one that fails fails for all of them.
static FAMILIES_OFF: AtomicU32 = AtomicU32::new(0);
const FAMILY_LUT: u32 = 1;
const FAMILY_ATTENTION: u32 = 2;
const FAMILY_GEMM_512: u32 = 4;
const FAMILY_GEMM_256: u32 = 8;
const FAMILY_LUT_512: u32 = 16;

/// The lookup-table kernels of the AVX-512 tables: zmm Q1_0 lookups.
#[cfg(all(target_arch = "x86_64", bk_avx512))]
const X86_LUT_512: Option<&'static LutKernels> = Some(&crate::lut::AVX512);

/// The GEMM of the AVX2 and AVX-512 (no VNNI) tables: AVX-VNNI, where the CPU has it.
#[cfg(all(target_arch = "x86_64", bk_avx512))]
const X86_GEMM_256: Option<&'static GemmKernels> = Some(&crate::gemm::AVX_VNNI);
#[cfg(not(all(target_arch = "x86_64", bk_avx512)))]
#[allow(dead_code)]
const X86_GEMM_256: Option<&'static GemmKernels> = None;

/// The lookup-table and attention kernels of the x86_64 SIMD tables (AVX2 and AVX-512 alike).
#[cfg(all(target_arch = "x86_64", bk_f16c))]
pub(crate) const X86_LUT: Option<&'static LutKernels> = Some(&crate::lut::AVX2);
#[cfg(all(target_arch = "x86_64", not(bk_f16c)))]
pub(crate) const X86_LUT: Option<&'static LutKernels> = None;
#[cfg(target_arch = "x86_64")]
pub(crate) const X86_ATTENTION: Option<&'static AttnKernels> = Some(&crate::attention::AVX2);

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
    lut: None,
    attention: None,
    gemm: None,
};

/// Base NEON: the quantised formats in NEON (Q1_0 also for several activations), F32/F16 scalar.
#[cfg(target_arch = "aarch64")]
pub static NEON: Table = {
    use crate::dot::neon as n;
    use crate::dot::neon_q2 as n2;
    Table {
        name: "neon",
        isa: ISA_NEON,
        dot: [sc::dot_f32, sc::dot_f16, n::dot_q8_0, n::dot_q1_0, n2::dot_q2_0, n2::dot_q2_0_g64],
        isums: [None, None, Some(n::isums_q8_0), Some(n::isums_q1_0), Some(n2::isums_q2_0), Some(n2::isums_q2_g64)],
        dot_multi: [None, None, None, Some(n::dot_q1_0_multi), None, None],
        lut: Some(&crate::lut::NEON),
        attention: Some(&crate::attention::NEON),
        gemm: None,
    }
};

/// NEON with the dot-product extension (`sdot`) for the quantised formats.
#[cfg(target_arch = "aarch64")]
pub static NEON_DOTPROD: Table = {
    use crate::dot::neon as n;
    use crate::dot::neon_q2 as n2;
    Table {
        name: "neon+dotprod",
        isa: ISA_NEON | ISA_NEON_DOTPROD,
        dot: [sc::dot_f32, sc::dot_f16, n::dot_q8_0_dot, n::dot_q1_0_dot, n2::dot_q2_0_dot, n2::dot_q2_0_g64_dot],
        isums: [None, None, Some(n::isums_q8_0_dot), Some(n::isums_q1_0_dot), Some(n2::isums_q2_0_dot), Some(n2::isums_q2_g64_dot)],
        dot_multi: [None, None, None, Some(n::dot_q1_0_multi_dot), None, None],
        lut: Some(&crate::lut::NEON),
        attention: Some(&crate::attention::NEON),
        gemm: Some(&crate::gemm::NEON_DOTPROD),
    }
};

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2_entry {
    //! Safe wrappers: only reachable through `AVX2`, which is only selected when avx2+f16c exist.
    use crate::act::Act;
    use crate::dot::avx2 as k;
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
    lut: X86_LUT,
    attention: X86_ATTENTION,
    gemm: X86_GEMM_256,
};

/// AVX-512 F + BW: its own Q1_0 row dots, the AVX2 kernels for everything else.
#[cfg(bk_avx512)]
pub static AVX512: Table = {
    use crate::dot::avx512 as k;
    use avx2_entry as a2;
    Table {
        name: "avx512",
        isa: ISA_AVX512 | ISA_AVX2 | ISA_F16C,
        dot: [a2::dot_f32, a2::dot_f16, a2::dot_q8_0, k::dot_q1_0, a2::dot_q2_0, a2::dot_q2_0_g64],
        isums: [None, None, Some(a2::isums_q8_0), Some(k::isums_q1_0), Some(a2::isums_q2_0), Some(a2::isums_q2_g64)],
        dot_multi: [None; 6],
        lut: X86_LUT_512,
        attention: X86_ATTENTION,
        gemm: X86_GEMM_256,
    }
};

/// AVX-512 with VNNI for the Q1_0 row dots.
#[cfg(bk_avx512)]
pub static AVX512_VNNI: Table = {
    use crate::dot::avx512 as k;
    use avx2_entry as a2;
    Table {
        name: "avx512_vnni",
        isa: ISA_AVX512 | ISA_AVX512_VNNI | ISA_AVX2 | ISA_F16C,
        dot: [a2::dot_f32, a2::dot_f16, a2::dot_q8_0, k::dot_q1_0_vnni, a2::dot_q2_0, a2::dot_q2_0_g64],
        isums: [None, None, Some(a2::isums_q8_0), Some(k::isums_q1_0_vnni), Some(a2::isums_q2_0), Some(a2::isums_q2_g64)],
        dot_multi: [None; 6],
        lut: X86_LUT_512,
        attention: X86_ATTENTION,
        gemm: Some(&crate::gemm::AVX512_VNNI),
    }
};

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
            if is_x86_feature_detected!("avxvnni") {
                m |= ISA_AVX_VNNI;
            }
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
        // Drop SIMD tables whose row dots disagree with the scalar reference, and turn off a
        // lookup-table or attention family that does (never expected; guards kernels that could
        // not be run on the build machine).
        loop {
            let t = table_for(avail);
            if t.isa == 0 {
                break;
            }
            match crate::selfcheck::check_dots(t) {
                Ok(()) => {
                    // The chosen table's other families; every table of the architecture shares
                    // them, so one check covers the lower tables `force_isa` may select too.
                    #[cfg(all(target_arch = "x86_64", bk_avx512))]
                    {
                        // The AVX-512 set on its own bit: a failure there leaves the AVX2 set.
                        if t.lut.map_or(false, |k| std::ptr::eq(k, &crate::lut::AVX512)) {
                            if let Err(msg) = crate::selfcheck::check_lut(&crate::lut::AVX512) {
                                eprintln!("bonsai_kernels: disabling the avx512 lookup-table kernels: {}", msg);
                                FAMILIES_OFF.fetch_or(FAMILY_LUT_512, Ordering::SeqCst);
                            }
                        }
                    }
                    if let Some(k) = t.lut.map(|_| table_for(avail & !(ISA_AVX512 | ISA_AVX512_VNNI))).and_then(|t| t.lut) {
                        if let Err(msg) = crate::selfcheck::check_lut(k) {
                            eprintln!("bonsai_kernels: disabling the {} lookup-table kernels: {}", k.name, msg);
                            FAMILIES_OFF.fetch_or(FAMILY_LUT, Ordering::SeqCst);
                        }
                    }
                    if let Some(k) = t.attention {
                        if let Err(msg) = crate::selfcheck::check_attention(k) {
                            eprintln!("bonsai_kernels: disabling the {} attention kernels: {}", k.name, msg);
                            FAMILIES_OFF.fetch_or(FAMILY_ATTENTION, Ordering::SeqCst);
                        }
                    }
                    // Every GEMM variant the CPU has (a lower table or BONSAI_GEMM may pick any).
                    for k in gemm_variants().iter().filter(|k| avail & k.isa == k.isa) {
                        if let Err(msg) = crate::selfcheck::check_gemm(k) {
                            eprintln!("bonsai_kernels: disabling the {} GEMM kernels: {}", k.name, msg);
                            FAMILIES_OFF.fetch_or(gemm_off_bit(k), Ordering::SeqCst);
                        }
                    }
                    break;
                }
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

/// Every GEMM variant of this build.
pub fn gemm_variants() -> Vec<&'static GemmKernels> {
    #[allow(unused_mut)]
    let mut v: Vec<&'static GemmKernels> = Vec::new();
    #[cfg(all(target_arch = "x86_64", bk_avx512))]
    {
        v.push(&crate::gemm::AVX512_VNNI);
        v.push(&crate::gemm::AVX_VNNI);
    }
    #[cfg(target_arch = "aarch64")]
    v.push(&crate::gemm::NEON_DOTPROD);
    v
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
