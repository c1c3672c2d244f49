//! Memory read bandwidth probe: streams a buffer much larger than the caches through the thread
//! pool and reports the best rate seen. The bench divides it by the weight bytes read per token to
//! get the decode roofline (tokens/s if decode were purely bandwidth bound).

use crate::pool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Bytes each pool task streams at a time (large enough that scheduling costs vanish).
const CHUNK: usize = 1 << 20;

/// Sum of the u64 words (wrapping): a read of every byte the compiler cannot skip.
fn sum_words(w: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") {
            return unsafe { sum_words_avx2(w) };
        }
    }
    let mut s = [0u64; 4];
    for c in w.chunks_exact(4) {
        for i in 0..4 {
            s[i] = s[i].wrapping_add(c[i]);
        }
    }
    let tail: u64 = w.chunks_exact(4).remainder().iter().fold(0, |a, &b| a.wrapping_add(b));
    s.iter().fold(tail, |a, &b| a.wrapping_add(b))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_words_avx2(w: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let p = w.as_ptr() as *const __m256i;
    let n = w.len() / 16; // four 32-byte loads per step
    let (mut a, mut b, mut c, mut d) = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256());
    for i in 0..n {
        a = _mm256_add_epi64(a, _mm256_loadu_si256(p.add(4 * i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256(p.add(4 * i + 1)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256(p.add(4 * i + 2)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256(p.add(4 * i + 3)));
    }
    let s = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    let mut out = [0u64; 4];
    _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, s);
    let tail: u64 = w[16 * n..].iter().fold(0, |x, &y| x.wrapping_add(y));
    out.iter().fold(tail, |x, &y| x.wrapping_add(y))
}

/// Best read bandwidth in GB/s (1e9 bytes/s) over `reps` passes of a `bytes` buffer, using the
/// pool's threads. `bytes` is rounded up to a whole 1 MiB chunk.
pub fn read_bandwidth(bytes: usize, reps: usize) -> Result<f64, String> {
    if bytes == 0 || reps == 0 {
        return Err(format!("bandwidth probe needs bytes > 0 and reps > 0 (got {}, {})", bytes, reps));
    }
    let chunks = (bytes + CHUNK - 1) / CHUNK;
    let words = CHUNK / 8;
    // distinct non-zero contents so no page is a shared zero page
    let buf: Vec<u64> = (0..chunks * words).map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1).collect();
    let sink = AtomicU64::new(0);
    let mut best = f64::INFINITY;
    for _ in 0..reps + 1 {
        let t0 = Instant::now();
        pool::parallel_for(chunks, 2, &|r: std::ops::Range<usize>| {
            let mut s = 0u64;
            for c in r {
                s = s.wrapping_add(sum_words(&buf[c * words..(c + 1) * words]));
            }
            sink.fetch_add(s, Ordering::Relaxed);
        })?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    if sink.load(Ordering::Relaxed) == 0 {
        return Err("bandwidth probe read nothing".to_string()); // practically impossible; keeps the sum live
    }
    Ok((chunks * CHUNK) as f64 / best / 1e9)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_every_word() {
        let w: Vec<u64> = (1..=1000u64).collect();
        assert_eq!(super::sum_words(&w), 500_500);
        assert_eq!(super::sum_words(&w[3..37]), (4..=37u64).sum::<u64>());
    }

    #[test]
    fn bandwidth_is_positive_and_checks_args() {
        let gbs = super::read_bandwidth(4 << 20, 2).unwrap();
        assert!(gbs > 0.0 && gbs.is_finite());
        assert!(super::read_bandwidth(0, 1).is_err());
    }
}
