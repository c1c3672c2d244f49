//! Weight tensors: `ne1` rows of `ne0` weights in one format, either borrowed from a mapping (no copy)
//! or owning a copy of caller bytes.

use crate::formats::Format;
use crate::map::{Map, MapInner};
use crate::lut::q1::{PackedQ1, TILE};
use crate::lut::q2::PackedQ2;
use std::sync::{Arc, Once};

enum Storage {
    Mapped(Arc<MapInner>),
    Owned(Vec<u8>),
}

pub struct Tensor {
    pub fmt: Format,
    pub ne0: usize,
    pub ne1: usize,
    pub row_bytes: usize,
    offset: usize,
    storage: Storage,
    /// Q1_0 rows repacked for the lookup-table kernel (only where that kernel can run).
    pub packed: Option<PackedQ1>,
    /// Q2_0 rows (either block size) repacked for their lookup-table kernel (likewise).
    pub packed_q2: Option<PackedQ2>,
    /// The original rows were returned to the system once packed (see [`Tensor::from_map`]): the
    /// lookup-table kernels read only the packed copy. Anything that needs the original layout
    /// gets it rebuilt from the packed copy (a pure byte transpose): one row at a time for an
    /// embedding lookup, the whole tensor on first use by the row kernels (an ISA without
    /// lookup-table kernels forced after loading, in tests and A/B runs).
    released: bool,
    restored: Once,
}

/// Format from an API code, with an error naming the code and the known ones.
pub fn format_from_code(code: u32) -> Result<Format, String> {
    Format::from_code(code).ok_or_else(|| {
        format!("unknown weight format code {} (known: 0 F32, 1 F16, 8 Q8_0, 41 Q1_0, 42 Q2_0, 242 Q2_0_g64)", code)
    })
}

fn check_shape(fmt: Format, ne0: u64, ne1: u64) -> Result<usize, String> {
    if ne0 == 0 || ne1 == 0 {
        return Err(format!("tensor shape [{} x {}] is empty", ne0, ne1));
    }
    if ne0 % fmt.block_len() as u64 != 0 {
        return Err(format!("ne0 = {} is not a multiple of the {} block size {}", ne0, fmt.name(), fmt.block_len()));
    }
    let bytes = (ne0 / fmt.block_len() as u64)
        .checked_mul(fmt.block_bytes() as u64)
        .and_then(|rb| rb.checked_mul(ne1))
        .filter(|&b| b <= usize::MAX as u64 / 2)
        .ok_or_else(|| format!("tensor shape [{} x {}] of {} is too large", ne0, ne1, fmt.name()))?;
    Ok(bytes as usize)
}

impl Tensor {
    /// A tensor over `map` bytes `[offset, offset + size)`.
    pub fn from_map(map: &Map, offset: u64, code: u32, ne0: u64, ne1: u64) -> Result<Tensor, String> {
        let fmt = format_from_code(code)?;
        let bytes = check_shape(fmt, ne0, ne1)?;
        let end = offset.checked_add(bytes as u64);
        if end.map_or(true, |e| e > map.0.len() as u64) {
            return Err(format!(
                "{} tensor [{} x {}] at offset {} needs {} bytes, beyond the end of {:?} ({} bytes)",
                fmt.name(),
                ne0,
                ne1,
                offset,
                bytes,
                map.0.path(),
                map.0.len()
            ));
        }
        let mut t = Tensor {
            fmt,
            ne0: ne0 as usize,
            ne1: ne1 as usize,
            row_bytes: fmt.row_bytes(ne0 as usize),
            offset: offset as usize,
            storage: Storage::Mapped(map.0.clone()),
            packed: None,
            packed_q2: None,
            released: false,
            restored: Once::new(),
        };
        if t.pack() {
            // The kernels now read the packed copy only; return the original pages so resident
            // memory stays ~1x the weights.
            map.0.release(offset as usize, bytes);
            t.released = true;
        }
        Ok(t)
    }

    /// A tensor owning a copy of `bytes` (which must be exactly the tensor's size).
    pub fn from_bytes(bytes: &[u8], code: u32, ne0: u64, ne1: u64) -> Result<Tensor, String> {
        let fmt = format_from_code(code)?;
        let need = check_shape(fmt, ne0, ne1)?;
        if bytes.len() != need {
            return Err(format!("{} tensor [{} x {}] needs {} bytes, got {}", fmt.name(), ne0, ne1, need, bytes.len()));
        }
        let mut t = Tensor {
            fmt,
            ne0: ne0 as usize,
            ne1: ne1 as usize,
            row_bytes: fmt.row_bytes(ne0 as usize),
            offset: 0,
            storage: Storage::Owned(bytes.to_vec()),
            packed: None,
            packed_q2: None,
            released: false,
            restored: Once::new(),
        };
        t.pack();
        Ok(t)
    }

    /// Builds the packed copy if the format and the CPU have a lookup-table kernel; true if built.
    fn pack(&mut self) -> bool {
        if self.fmt == Format::Q1_0 && crate::lut::available() {
            self.packed = Some(PackedQ1::pack(self.data(), self.ne0, self.ne1));
            return true;
        }
        let block = match self.fmt {
            Format::Q2_0 => 128,
            Format::Q2_0G64 => 64,
            _ => return false,
        };
        if crate::lut::available() {
            self.packed_q2 = Some(PackedQ2::pack(self.data(), self.ne0, self.ne1, block));
            return true;
        }
        false
    }

    /// Drops the packed copies (the row kernels then read the original rows); for benchmarks
    /// and tests that compare the two.
    pub fn unpack(&mut self) {
        self.data(); // rebuilds released rows while the packed copy still exists
        self.packed = None;
        self.packed_q2 = None;
    }

    /// Tiles of [`TILE`] rows (the work unit of the lookup-table kernels).
    #[inline]
    pub fn tiles(&self) -> usize {
        (self.ne1 + TILE - 1) / TILE
    }

    /// All of the tensor's bytes (rebuilt from the packed copy on first use if they were released).
    #[inline]
    pub fn data(&self) -> &[u8] {
        if self.released {
            self.restored.call_once(|| self.restore());
        }
        let all = match &self.storage {
            Storage::Mapped(m) => m.bytes(),
            Storage::Owned(v) => &v[..],
        };
        &all[self.offset..self.offset + self.row_bytes * self.ne1]
    }

    /// Bytes of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data()[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Calls `f` with the bytes of row `r` without rebuilding a released tensor as a whole (an
    /// embedding lookup reads one row per token: its row is rebuilt alone, in a small buffer).
    pub fn with_row<R>(&self, r: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        if self.released && !self.restored.is_completed() {
            let mut buf = vec![0u8; self.row_bytes];
            self.packed_row(r, &mut buf);
            return f(&buf);
        }
        f(self.row(r))
    }

    /// Row `r` in the original layout, from the packed copy.
    fn packed_row(&self, r: usize, out: &mut [u8]) {
        if let Some(p) = &self.packed {
            p.unpack_row(r, out);
        } else if let Some(p) = &self.packed_q2 {
            p.unpack_row(r, out);
        } else {
            unreachable!("a released tensor always has a packed copy");
        }
    }

    /// Writes every row back into the released pages (once, under `restored`).
    fn restore(&self) {
        if let Storage::Mapped(m) = &self.storage {
            let mut row = vec![0u8; self.row_bytes];
            for r in 0..self.ne1 {
                self.packed_row(r, &mut row);
                // SAFETY: nobody reads this tensor's bytes before `restored` completes (every
                // reader goes through `data`, which waits for it), and the range is this
                // tensor's own.
                unsafe { m.write(self.offset + r * self.row_bytes, &row) };
            }
        }
    }
}
