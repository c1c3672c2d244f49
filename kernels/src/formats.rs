//! Weight storage formats (ggml style: one `#[repr(C)]` struct per quantised block, size checked at
//! compile time). Kernels read blocks straight out of byte slices (mapped files need not be aligned
//! for these structs), so the structs document the layout and fix the sizes.

use std::mem::size_of;

/// Q8_0: 32 weights, `d * qs[j]`.
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; 32],
}

/// Q1_0 (1-bit Bonsai): 128 weights, bit j of `qs` (LSB first) set -> `+d`, clear -> `-d`.
#[repr(C)]
pub struct BlockQ1_0 {
    pub d: u16,
    pub qs: [u8; 16],
}

/// Q2_0 with 128-weight blocks (PrismML ternary files): 2-bit code j at `qs[j/4] >> 2*(j%4)`, value `(code-1)*d`.
#[repr(C)]
pub struct BlockQ2_0 {
    pub d: u16,
    pub qs: [u8; 32],
}

/// Q2_0 with 64-weight blocks (mainline `*-Q2_0_g64.gguf` files): same coding as [`BlockQ2_0`].
#[repr(C)]
pub struct BlockQ2_0G64 {
    pub d: u16,
    pub qs: [u8; 16],
}

const _: () = assert!(size_of::<BlockQ8_0>() == 34);
const _: () = assert!(size_of::<BlockQ1_0>() == 18);
const _: () = assert!(size_of::<BlockQ2_0>() == 34);
const _: () = assert!(size_of::<BlockQ2_0G64>() == 18);

/// A weight format as named by the C ABI's format codes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    F32,
    F16,
    Q8_0,
    Q1_0,
    Q2_0,
    Q2_0G64,
}

/// Every format, in dispatch-table order (see [`Format::index`]).
pub const ALL_FORMATS: [Format; 6] =
    [Format::F32, Format::F16, Format::Q8_0, Format::Q1_0, Format::Q2_0, Format::Q2_0G64];

impl Format {
    /// Maps an API format code (0 F32, 1 F16, 8 Q8_0, 41 Q1_0, 42 Q2_0, 242 Q2_0_g64) to a format.
    pub fn from_code(code: u32) -> Option<Format> {
        match code {
            0 => Some(Format::F32),
            1 => Some(Format::F16),
            8 => Some(Format::Q8_0),
            41 => Some(Format::Q1_0),
            42 => Some(Format::Q2_0),
            242 => Some(Format::Q2_0G64),
            _ => None,
        }
    }

    /// The API format code.
    pub fn code(self) -> u32 {
        match self {
            Format::F32 => 0,
            Format::F16 => 1,
            Format::Q8_0 => 8,
            Format::Q1_0 => 41,
            Format::Q2_0 => 42,
            Format::Q2_0G64 => 242,
        }
    }

    /// Position in [`ALL_FORMATS`] and in the dispatch tables.
    pub fn index(self) -> usize {
        match self {
            Format::F32 => 0,
            Format::F16 => 1,
            Format::Q8_0 => 2,
            Format::Q1_0 => 3,
            Format::Q2_0 => 4,
            Format::Q2_0G64 => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::F32 => "F32",
            Format::F16 => "F16",
            Format::Q8_0 => "Q8_0",
            Format::Q1_0 => "Q1_0",
            Format::Q2_0 => "Q2_0",
            Format::Q2_0G64 => "Q2_0_g64",
        }
    }

    /// Weights per block.
    pub fn block_len(self) -> usize {
        match self {
            Format::F32 | Format::F16 => 1,
            Format::Q8_0 => 32,
            Format::Q1_0 | Format::Q2_0 => 128,
            Format::Q2_0G64 => 64,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            Format::F32 => 4,
            Format::F16 => 2,
            Format::Q8_0 => size_of::<BlockQ8_0>(),
            Format::Q1_0 => size_of::<BlockQ1_0>(),
            Format::Q2_0 => size_of::<BlockQ2_0>(),
            Format::Q2_0G64 => size_of::<BlockQ2_0G64>(),
        }
    }

    /// Bytes of one row of `ne0` weights (`ne0` must be a multiple of the block length).
    pub fn row_bytes(self, ne0: usize) -> usize {
        ne0 / self.block_len() * self.block_bytes()
    }

    /// True for the block-quantised formats (integer dot products against the activation).
    pub fn is_quantized(self) -> bool {
        self.block_len() > 1
    }
}

/// Reads the little-endian fp16 scale at `row[off..off+2]`.
#[inline(always)]
pub fn read_u16(row: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([row[off], row[off + 1]])
}
