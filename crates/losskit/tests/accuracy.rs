//! Accuracy of the reductions: an `f32` mean over 10^7 elements is within one ulp of the
//! correctly rounded mean, on one thread and on two.

use losskit::{mse, MseOptions, View};

/// Deterministic uniform values in `[lo, hi)` (a 64-bit LCG; the top 24 bits).
fn uniform(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// Neumaier-compensated `f64` sum: exact to about one `f64` ulp of the total, far below the
/// half `f32` ulp the test needs.
fn compensated_sum(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in xs {
        let t = s + x;
        c += if s.abs() >= x.abs() { (s - t) + x } else { (x - t) + s };
        s = t;
    }
    s + c
}

fn ulps(a: f32, b: f32) -> u32 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
}

#[test]
fn f32_mean_of_ten_million_is_within_one_ulp() {
    let n = 10_000_000;
    let x = uniform(n, 1, -2.0, 2.0);
    let y = uniform(n, 2, -2.0, 2.0);
    // the elements the loss sums: (x - y)^2 computed in f32, as the reference does
    let exact = compensated_sum(x.iter().zip(&y).map(|(&a, &b)| ((a - b) * (a - b)) as f64)) / n as f64;
    let want = exact as f32;
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let got = pool
            .install(|| mse(View::from(&x[..]), View::from(&y[..]), None, &MseOptions::default()))
            .unwrap()
            .item()
            .unwrap();
        assert!(ulps(got, want) <= 1, "{threads} threads: {got:e} vs correctly rounded {want:e}");
    }
}
