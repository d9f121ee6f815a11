//! Deterministic, accurate summation.
//!
//! Values are widened to `f64` and summed pairwise over
//! fixed blocks of [`BLOCK`] elements: the split points depend only on the length, never on
//! threads or timing, so a sum has the same bits on every run. The error bound is
//! `O(log2(n / BLOCK) + BLOCK / LANES)` roundings of the accumulator, far below one `f32` ulp.

use crate::float::Float;

/// Elements summed sequentially (in [`LANES`] interleaved partial sums) before pairing.
pub const BLOCK: usize = 256;
/// Interleaved partial sums inside a block.
pub const LANES: usize = 8;

/// Sum of `xs`, accumulated in `f64`.
pub fn sum_acc<T: Float>(xs: &[T]) -> f64 {
    sum_by(xs.len(), |i| xs[i].acc())
}

/// Sum of `xs`, rounded to `T`.
pub fn sum<T: Float>(xs: &[T]) -> T {
    T::from_acc(sum_acc(xs))
}

/// Sum of `f(i)` for `i` in `0..n`, in a fixed pairwise order.
pub fn sum_by(n: usize, f: impl Fn(usize) -> f64) -> f64 {
    pairwise(0, n, &f)
}

fn pairwise(start: usize, end: usize, f: &impl Fn(usize) -> f64) -> f64 {
    let n = end - start;
    if n <= BLOCK {
        let mut lanes = [0.0f64; LANES];
        let mut i = start;
        while i + LANES <= end {
            for (l, lane) in lanes.iter_mut().enumerate() {
                *lane += f(i + l);
            }
            i += LANES;
        }
        for (l, lane) in lanes.iter_mut().enumerate().take(end - i) {
            *lane += f(i + l);
        }
        // fixed tree over the lanes
        let a = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        let b = (lanes[4] + lanes[5]) + (lanes[6] + lanes[7]);
        return a + b;
    }
    // split at a multiple of BLOCK so that blocks are the same whatever the recursion depth
    let blocks = n.div_ceil(BLOCK);
    let mid = start + (blocks / 2) * BLOCK;
    pairwise(start, mid, f) + pairwise(mid, end, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_on_integers_and_empty() {
        let v: Vec<f32> = (1..=10_000).map(|i| i as f32).collect();
        // 10000 * 10001 / 2, exact in f64
        assert_eq!(sum_acc(&v), 50_005_000.0);
        assert_eq!(sum_acc::<f64>(&[]), 0.0);
    }

    #[test]
    fn accurate_on_cancellation() {
        // 1e8 + many small values: a naive f32 sum loses them all
        let mut v = vec![1e8f32];
        v.extend(std::iter::repeat_n(1.0f32, 4096));
        assert_eq!(sum_acc(&v), 1e8 + 4096.0);
    }
}
