//! Deterministic pseudo-random numbers for tests and the start-up self-check (no dependencies).

/// xorshift64* generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Approximately standard normal (sum of uniforms).
    pub fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() * 1.732 - 3.464
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u32() as u8).collect()
    }
}

/// Random row bytes of `rows` rows of `fmt` with sane scales (fp16 in a normal range), Q2_0 codes
/// limited to 0..2 unless `allow_code3`.
pub fn random_rows(rng: &mut Rng, fmt: crate::formats::Format, ne0: usize, rows: usize, allow_code3: bool) -> Vec<u8> {
    use crate::f16::f32_to_f16;
    use crate::formats::Format::*;
    let rb = fmt.row_bytes(ne0);
    let mut v = rng.bytes(rb * rows);
    match fmt {
        F32 => {
            for i in 0..ne0 * rows {
                v[4 * i..4 * i + 4].copy_from_slice(&rng.normal().to_le_bytes());
            }
        }
        F16 => {
            for i in 0..ne0 * rows {
                v[2 * i..2 * i + 2].copy_from_slice(&f32_to_f16(rng.normal()).to_le_bytes());
            }
        }
        _ => {
            let bb = fmt.block_bytes();
            for b in 0..(rb * rows) / bb {
                let d = f32_to_f16(0.01 + rng.uniform() * 0.1);
                v[b * bb..b * bb + 2].copy_from_slice(&d.to_le_bytes());
                if (fmt == Q2_0 || fmt == Q2_0G64) && !allow_code3 {
                    for byte in v[b * bb + 2..(b + 1) * bb].iter_mut() {
                        let mut x = 0u8;
                        for k in 0..4 {
                            x |= ((rng.next_u32() % 3) as u8) << (2 * k);
                        }
                        *byte = x;
                    }
                }
            }
        }
    }
    v
}

/// A quantised activation (as u32 words, so it is 4-byte aligned) for `n` random normal values.
pub fn random_act(rng: &mut Rng, n: usize) -> (Vec<f32>, Vec<u32>) {
    let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let mut buf = vec![0u32; crate::act::act_layout(n).total / 4];
    crate::act::quantize_act(&x, as_bytes_mut(&mut buf)).unwrap();
    (x, buf)
}

pub fn as_bytes(v: &[u32]) -> &[u8] {
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 4) }
}

pub fn as_bytes_mut(v: &mut [u32]) -> &mut [u8] {
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, v.len() * 4) }
}
