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

/// `poisson` and `kl_divergence` check their `f32` terms' error bounds and redo in `f64` what
/// cancels: whatever the data (terms of one sign, of both signs, rows that cancel to 1e-3 of
/// their terms), each `f32` result is within `2^-19` of the `f64` computation on the same
/// inputs (plus its own rounding), with the same bits on one thread and on two.
#[test]
fn checked_f32_terms_stay_within_their_bound() {
    use losskit::{kl_divergence, poisson, Float, KlDivergenceOptions, PoissonOptions, Reduction};
    fn pois<T: Float>(t: &[T], p: &[T], shape: &[usize], reduction: Reduction) -> Vec<T> {
        let (t, p) = (View::new(t, shape).unwrap(), View::new(p, shape).unwrap());
        poisson(t, p, None, &PoissonOptions { reduction }).unwrap().data().to_vec()
    }
    fn kl<T: Float>(t: &[T], p: &[T], shape: &[usize], reduction: Reduction) -> Vec<T> {
        let (t, p) = (View::new(t, shape).unwrap(), View::new(p, shape).unwrap());
        kl_divergence(t, p, None, &KlDivergenceOptions { reduction }).unwrap().data().to_vec()
    }
    type Loss<T> = fn(&[T], &[T], &[usize], Reduction) -> Vec<T>;
    let (pois32, pois64, kl32, kl64): (Loss<f32>, Loss<f64>, Loss<f32>, Loss<f64>) = (pois, pois, kl, kl);
    let n = 42_000;
    let noise = uniform(n, 7, -1e-3, 1e-3);
    let rate = uniform(n, 5, 1.2, 3.0);
    // poisson: counts against rates (terms of both signs), and targets at which each term
    // nearly vanishes (`p = y ln p` to 1e-3)
    let poisson_cases = [
        (uniform(n, 3, 0.0, 5.0).iter().map(|v| v.floor()).collect::<Vec<f32>>(), uniform(n, 4, 0.1, 3.0)),
        (rate.iter().zip(&noise).map(|(&p, &e)| p / p.ln() * (1.0 + e)).collect(), rate.clone()),
    ];
    let y = uniform(n, 6, 1e-3, 1.0);
    // kl_divergence: independent probabilities, and predictions within 1e-3 of the targets
    let kl_cases = [
        (y.clone(), uniform(n, 8, 1e-3, 1.0)),
        (y.clone(), y.iter().zip(&noise).map(|(&v, &e)| v * (1.0 + e)).collect()),
    ];
    let pools: Vec<_> = [1, 2].map(|k| rayon::ThreadPoolBuilder::new().num_threads(k).build().unwrap()).into();
    for (name, f32_loss, f64_loss, cases) in
        [("poisson", &pois32, &pois64, &poisson_cases), ("kl_divergence", &kl32, &kl64, &kl_cases)]
    {
        for (t, p) in cases.iter() {
            for shape in [[14_000, 3], [420, 100], [60, 700]] {
                for reduction in [Reduction::None, Reduction::Sum, Reduction::SumOverBatchSize] {
                    let (t64, p64): (Vec<f64>, Vec<f64>) =
                        (t.iter().map(|&v| v as f64).collect(), p.iter().map(|&v| v as f64).collect());
                    let want = f64_loss(&t64, &p64, &shape, reduction);
                    let got: Vec<Vec<f32>> =
                        pools.iter().map(|pool| pool.install(|| f32_loss(t, p, &shape, reduction))).collect();
                    assert_eq!(got[0], got[1], "{name} {shape:?} {reduction:?}: 1 and 2 threads");
                    for (&g, &w) in got[0].iter().zip(&want) {
                        let err = (g as f64 - w).abs();
                        assert!(
                            err <= (2f64.powi(-19) + 2f64.powi(-24)) * w.abs(),
                            "{name} {shape:?} {reduction:?}: {g:e} vs {w:e}"
                        );
                    }
                }
            }
        }
    }
}

/// The fast `f32` terms of `poisson` and `kl_divergence` leave special arguments (NaN,
/// infinities, negative or zero rates, subnormals, the largest values) to their exact `f64`
/// form: each result matches the `f64` computation on the same inputs, NaN for NaN.
#[test]
fn checked_f32_terms_leave_special_arguments_to_f64() {
    use losskit::{kl_divergence, poisson, KlDivergenceOptions, PoissonOptions, Reduction};
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let cases: [([f32; 4], [f32; 4]); 7] = [
        ([1e30, 2.0, 3e38, 0.0], [3e38, 1e-30, 1.0, f32::MAX]),
        ([1.0, 2.0, inf, 0.0], [inf, 1.0, 1.0, 2.0]),
        ([1.0, nan, 1.0, 0.0], [0.5, 1.0, nan, 2.0]),
        ([1.0, 2.0, 1.0, 0.0], [-0.5e-7, 1.0, -2e-7, 2.0]),
        ([0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]),
        ([1e-40, 1.0, 1.0, 1e-45], [1e-40, 1e-45, 1.0, 1e-39]),
        ([3e38, 3e38, 1.0, 2.0], [3e38, 2.0, -inf, 2.0]),
    ];
    for (t, p) in cases {
        let (t64, p64) = (t.map(f64::from), p.map(f64::from));
        fn v32(x: &[f32; 4]) -> View<'_, f32> {
            View::new(&x[..], &[2, 2]).unwrap()
        }
        fn v64(x: &[f64; 4]) -> View<'_, f64> {
            View::new(&x[..], &[2, 2]).unwrap()
        }
        for reduction in [Reduction::None, Reduction::Sum, Reduction::SumOverBatchSize] {
            let results = [
                (
                    poisson(v32(&t), v32(&p), None, &PoissonOptions { reduction }).unwrap(),
                    poisson(v64(&t64), v64(&p64), None, &PoissonOptions { reduction }).unwrap(),
                ),
                (
                    kl_divergence(v32(&t), v32(&p), None, &KlDivergenceOptions { reduction }).unwrap(),
                    kl_divergence(v64(&t64), v64(&p64), None, &KlDivergenceOptions { reduction }).unwrap(),
                ),
            ];
            for (got, want) in results {
                for (&g, &w) in got.data().iter().zip(want.data()) {
                    let same = (g.is_nan() && w.is_nan()) || g == w as f32 || (g as f64 - w).abs() <= 1e-6 * w.abs();
                    assert!(same, "{t:?} {p:?} {reduction:?}: {g:e} vs {w:e}");
                }
            }
        }
    }
}
