//! The lookup-table family: Q1_0 / Q2_0 tensors repacked into tiles of 32 rows (`q1`, `q2`) and
//! matvec'd against per-activation tables (AVX2 + F16C on x86_64, NEON on AArch64). Each ISA's
//! kernels are one [`LutKernels`] set in its dispatch table; the scalar table has none (the row
//! dots of `dot` then run, on the unpacked rows). Also the glue the matmul paths share: table
//! buffers per thread and one tile's output.

pub mod q1;
#[cfg(all(target_arch = "x86_64", bk_avx512))]
pub mod q1_avx512;
pub mod q2;

use crate::act::Act;
use crate::dispatch::Table;
use crate::tensor::Tensor;
use q1::TILE;
use q2::PackedQ2;
use std::cell::RefCell;

/// The lookup-table kernels of one ISA. Safe to call only through a dispatch table whose ISA bits
/// the CPU has (tables are only selected then; see `dispatch`).
pub struct LutKernels {
    pub name: &'static str,
    /// Q1_0 tables of an activation's `ne0` int8 values into [`q1::tab_len`] bytes.
    pub q1_tables: fn(&[i8], usize, &mut [u8]),
    /// `out[r]` = row r of a Q1_0 tile (its bytes) · the activation (its tables, block scales,
    /// 128-weight blocks per row).
    pub q1_tile: fn(&[u8], &[u8], &[f32], usize, &mut [f32; TILE]),
    /// Q2_0 tables (both block sizes) into [`q2::tab_len`] bytes.
    pub q2_tables: fn(&[i8], usize, &mut [u8]),
    /// `out[r]` = row r of tile `tile` of a packed Q2_0 tensor · the activation.
    pub q2_tile: fn(&PackedQ2, usize, &[u8], &[f32], &mut [f32; TILE]),
}

#[cfg(all(target_arch = "x86_64", bk_f16c))]
mod avx2_entry {
    //! Safe wrappers: only reachable through tables that require AVX2 + F16C.
    use super::{PackedQ2, TILE};
    use crate::lut::{q1, q2};
    pub fn q1_tables(q: &[i8], ne0: usize, tab: &mut [u8]) { unsafe { q1::avx2::build_tables(q, ne0, tab) } }
    pub fn q1_tile(w: &[u8], tab: &[u8], d: &[f32], nb: usize, out: &mut [f32; TILE]) { unsafe { q1::avx2::tile_dot(w, tab, d, nb, out) } }
    pub fn q2_tables(q: &[i8], ne0: usize, tab: &mut [u8]) { unsafe { q2::avx2::build_tables(q, ne0, tab) } }
    pub fn q2_tile(p: &PackedQ2, tile: usize, tab: &[u8], d: &[f32], out: &mut [f32; TILE]) { unsafe { q2::avx2::tile_dot(p, tile, tab, d, out) } }
}

/// The AVX2 + F16C kernels (F16C intrinsics need Rust 1.68+: older compilers have none).
#[cfg(all(target_arch = "x86_64", bk_f16c))]
pub const AVX2: LutKernels = LutKernels {
    name: "avx2",
    q1_tables: avx2_entry::q1_tables,
    q1_tile: avx2_entry::q1_tile,
    q2_tables: avx2_entry::q2_tables,
    q2_tile: avx2_entry::q2_tile,
};

#[cfg(all(target_arch = "x86_64", bk_avx512))]
mod avx512_entry {
    //! Safe wrappers: only reachable through tables that require AVX-512 F + BW, AVX2 and F16C.
    use super::TILE;
    use crate::lut::q1_avx512 as k;
    pub fn q1_tables(q: &[i8], ne0: usize, tab: &mut [u8]) { unsafe { k::build_tables(q, ne0, tab) } }
    pub fn q1_tile(w: &[u8], tab: &[u8], d: &[f32], nb: usize, out: &mut [f32; TILE]) { unsafe { k::tile_dot(w, tab, d, nb, out) } }
}

/// AVX-512BW Q1_0 kernels (zmm lookups); Q2_0 stays on the AVX2 kernels.
#[cfg(all(target_arch = "x86_64", bk_avx512))]
pub const AVX512: LutKernels = LutKernels {
    name: "avx512",
    q1_tables: avx512_entry::q1_tables,
    q1_tile: avx512_entry::q1_tile,
    q2_tables: avx2_entry::q2_tables,
    q2_tile: avx2_entry::q2_tile,
};

/// Environment variable that picks a lower lookup-table variant: `avx2` runs the AVX2 kernels on
/// an AVX-512 CPU (A/B runs: keep whichever measures faster on a CPU).
pub const VARIANT_ENV: &str = "BONSAI_LUT";

static ENV_ONCE: std::sync::Once = std::sync::Once::new();
static AVX2_ONLY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Overrides [`VARIANT_ENV`] (true: the AVX2 kernels); for benchmarks comparing the variants in
/// one process.
pub fn set_avx2_only(on: bool) {
    env_wants_avx2();
    AVX2_ONLY.store(on as u32, std::sync::atomic::Ordering::SeqCst);
}

/// True when [`VARIANT_ENV`] asks for the AVX2 kernels (read once).
pub fn env_wants_avx2() -> bool {
    use std::sync::atomic::Ordering;
    ENV_ONCE.call_once(|| {
        let v = std::env::var(VARIANT_ENV).map_or(false, |v| v == "avx2");
        AVX2_ONLY.store(v as u32, Ordering::SeqCst);
    });
    AVX2_ONLY.load(Ordering::Relaxed) == 1
}

#[cfg(target_arch = "aarch64")]
mod neon_entry {
    //! Safe wrappers: NEON is part of AArch64.
    use super::{PackedQ2, TILE};
    use crate::lut::{q1, q2};
    pub fn q1_tables(q: &[i8], ne0: usize, tab: &mut [u8]) { unsafe { q1::neon::build_tables(q, ne0, tab) } }
    pub fn q1_tile(w: &[u8], tab: &[u8], d: &[f32], nb: usize, out: &mut [f32; TILE]) { unsafe { q1::neon::tile_dot(w, tab, d, nb, out) } }
    pub fn q2_tables(q: &[i8], ne0: usize, tab: &mut [u8]) { unsafe { q2::neon::build_tables(q, ne0, tab) } }
    pub fn q2_tile(p: &PackedQ2, tile: usize, tab: &[u8], d: &[f32], out: &mut [f32; TILE]) { unsafe { q2::neon::tile_dot(p, tile, tab, d, out) } }
}

/// The NEON kernels.
#[cfg(target_arch = "aarch64")]
pub const NEON: LutKernels = LutKernels {
    name: "neon",
    q1_tables: neon_entry::q1_tables,
    q1_tile: neon_entry::q1_tile,
    q2_tables: neon_entry::q2_tables,
    q2_tile: neon_entry::q2_tile,
};

/// Environment variable that turns the lookup-table kernels off (any value but empty or "0"):
/// tensors then stay unpacked and the row kernels run, to compare the two on a new CPU.
pub const DISABLE_ENV: &str = "BONSAI_NO_LUT";

/// True when tensors created now are packed for the lookup-table kernels: the best table this
/// CPU offers has them (and they passed the start-up self-check), and [`DISABLE_ENV`] does not
/// turn them off (read when a tensor is created, so it applies to tensors created after it
/// changes).
pub fn available() -> bool {
    crate::dispatch::table_for(crate::dispatch::available()).lut().is_some() && !disabled_by_env()
}

fn disabled_by_env() -> bool {
    std::env::var_os(DISABLE_ENV).map_or(false, |v| !v.is_empty() && v != "0")
}

thread_local! {
    /// Table buffers of the calling thread (Q1_0, Q2_0), reused across calls: no allocation
    /// per matvec.
    static TABLES: RefCell<(Vec<u8>, Vec<u8>)> = RefCell::new((Vec::new(), Vec::new()));
}

/// The tables of some activations: per token `q1_len` bytes of Q1_0 tables and `q2_len` of
/// Q2_0 tables, one token after another (either part empty when no tensor needs it), and the
/// kernels that built them (which compute the tiles).
pub struct Tables<'a> {
    k: Option<&'static LutKernels>,
    q1: &'a [u8],
    q2: &'a [u8],
    q1_len: usize,
    q2_len: usize,
}

impl<'a> Tables<'a> {
    /// No tables (no tensor of the call is packed).
    pub const NONE: Tables<'static> = Tables { k: None, q1: &[], q2: &[], q1_len: 0, q2_len: 0 };

    /// The tables of token `k` alone.
    pub fn token(&self, k: usize) -> Tables<'a> {
        let part = |v: &'a [u8], n: usize| if v.is_empty() { v } else { &v[k * n..(k + 1) * n] };
        Tables { k: self.k, q1: part(self.q1, self.q1_len), q2: part(self.q2, self.q2_len), q1_len: self.q1_len, q2_len: self.q2_len }
    }
}

/// True when `t` is packed for the lookup-table kernels and `table` (the active kernels) has them.
/// The scalar table (tests, `force_isa(0)`) never does.
pub fn usable(t: &Tensor, table: &Table) -> bool {
    (t.packed.is_some() || t.packed_q2.is_some()) && table.lut().is_some()
}

/// Builds the tables of `acts` for the packed formats among `ts` with `table`'s kernels (which
/// [`usable`] saw) and calls `f`.
pub fn with_tables<R>(table: &Table, acts: &[Act], ne0: usize, ts: &[&Tensor], f: impl FnOnce(&Tables) -> R) -> R {
    let k = table.lut().expect("lookup-table call without lookup-table kernels");
    let need_q1 = ts.iter().any(|t| t.packed.is_some());
    let need_q2 = ts.iter().any(|t| t.packed_q2.is_some());
    let q1_len = if need_q1 { q1::tab_len(ne0) } else { 0 };
    let q2_len = if need_q2 { q2::tab_len(ne0) } else { 0 };
    TABLES.with(|cell| {
        let (b1, b2) = &mut *cell.borrow_mut();
        if b1.len() < q1_len * acts.len() {
            b1.resize(q1_len * acts.len(), 0);
        }
        if b2.len() < q2_len * acts.len() {
            b2.resize(q2_len * acts.len(), 0);
        }
        for (i, a) in acts.iter().enumerate() {
            if need_q1 {
                (k.q1_tables)(a.q, ne0, &mut b1[i * q1_len..(i + 1) * q1_len]);
            }
            if need_q2 {
                (k.q2_tables)(a.q, ne0, &mut b2[i * q2_len..(i + 1) * q2_len]);
            }
        }
        f(&Tables { k: Some(k), q1: &b1[..q1_len * acts.len()], q2: &b2[..q2_len * acts.len()], q1_len, q2_len })
    })
}

/// Computes tile `tile` of packed tensor `t` against one token's `tabs` and stores its rows
/// (those below `ne1`) at `out[r]`.
///
/// # Safety
/// `t` must be packed and `tabs` built for it by [`with_tables`]; `out` must hold `t.ne1` floats;
/// tiles written concurrently must differ.
#[inline]
pub unsafe fn tile(t: &Tensor, tile: usize, tabs: &Tables, a: &Act, out: *mut f32) {
    let k = tabs.k.expect("tile without tables");
    let mut res = [0.0f32; TILE];
    if let Some(p) = &t.packed {
        (k.q1_tile)(p.tile(tile), &tabs.q1[..tabs.q1_len], a.d, p.nb, &mut res);
    } else {
        let p = t.packed_q2.as_ref().expect("tile of an unpacked tensor");
        (k.q2_tile)(p, tile, &tabs.q2[..tabs.q2_len], a.d, &mut res);
    }
    let r0 = tile * TILE;
    let n = TILE.min(t.ne1 - r0);
    std::ptr::copy_nonoverlapping(res.as_ptr(), out.add(r0), n);
}
