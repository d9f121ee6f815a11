//! The cache of freed result buffers (`kernels::alloc`): a dropped large result's memory
//! serves the next result of a similar size, with the contents every caller expects.
//!
//! One test function in its own test binary: the cache is process-wide, and tests running in
//! parallel in one binary would take each other's buffers.

use losskit::kernels::alloc::{cache_limit, cached_bytes, clear_cache, set_cache_limit, zeroed, CACHE_MIN_BYTES};
use losskit::{mse, mse_grad, Backward, MseOptions, Reduction, View};

/// `2 (x - y) / n`: the gradient of the mean squared error with respect to `x`.
fn mse_input_grad(x: &[f64], y: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    x.iter().zip(y).map(|(a, b)| 2.0 * (a - b) / n).collect()
}

#[test]
fn dropped_results_are_reused_with_correct_contents_and_within_the_bound() {
    set_cache_limit(64 << 20);
    assert_eq!(cache_limit(), 64 << 20);
    clear_cache();
    assert_eq!(cached_bytes(), 0);

    // 4.8 MB per f64 buffer: above the caching threshold
    let n = 600_000;
    assert!(n * 8 >= CACHE_MIN_BYTES);
    let x: Vec<f64> = (0..n).map(|i| (i % 1000) as f64 * 1e-3).collect();
    let y: Vec<f64> = (0..n).map(|i| (i % 7) as f64 * 0.25).collect();
    let opts = MseOptions::default();

    // first call: fresh gradients; dropping them fills the cache
    let (_, grads) = mse_grad(View::from(&x), View::from(&y), None, &opts, Backward::new()).unwrap();
    let first: Vec<*const f64> = grads.iter().map(|(_, t)| t.data().as_ptr()).collect();
    assert_eq!(first.len(), 2, "input and target gradients");
    drop(grads);
    assert_eq!(cached_bytes(), 2 * n * 8);

    // second call on other data: the same memory, the right values in every element
    let (_, grads) = mse_grad(View::from(&y), View::from(&x), None, &opts, Backward::new()).unwrap();
    assert_eq!(cached_bytes(), 0, "both gradients came from the cache");
    for (_, t) in grads.iter() {
        assert!(first.contains(&t.data().as_ptr()), "a cached buffer was reused");
    }
    let got = grads.get("input").unwrap().data();
    for (g, e) in got.iter().zip(mse_input_grad(&y, &x)) {
        // the kernel scales by 1/n, the expectation divides by n: a rounding apart
        assert!((g - e).abs() <= 1e-15 * e.abs(), "{g} vs {e}");
    }
    drop(grads);

    // a zero-filled request served from the cache is all zeros (the buffer held gradients)
    let z: Vec<f64> = zeroed(n);
    assert!(first.contains(&z.as_ptr()));
    assert!(z.iter().all(|&v| v == 0.0));
    drop(z); // a plain Vec: freed, not cached
    assert_eq!(cached_bytes(), n * 8);

    // a result handed over with into_vec is the caller's: not cached on drop
    let none = MseOptions { reduction: Reduction::None };
    let values = mse(View::from(&x), View::from(&y), None, &none).unwrap();
    assert_eq!(cached_bytes(), 0, "the unreduced values reused the last cached buffer");
    let expected: Vec<f64> = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).collect();
    let owned = values.into_vec();
    assert_eq!(owned, expected);
    drop(owned);
    assert_eq!(cached_bytes(), 0);

    // small results are never cached
    let (_, grads) = mse_grad(View::from(&x[..1000]), View::from(&y[..1000]), None, &opts, Backward::new()).unwrap();
    drop(grads);
    assert_eq!(cached_bytes(), 0);

    // a request much smaller than a cached buffer does not take it (it would pin it)
    let (_, grads) = mse_grad(View::from(&x), View::from(&y), None, &opts, Backward::new()).unwrap();
    drop(grads);
    assert_eq!(cached_bytes(), 2 * n * 8);
    let quarter = n / 4;
    assert!(quarter * 8 >= CACHE_MIN_BYTES);
    let (_, grads) =
        mse_grad(View::from(&x[..quarter]), View::from(&y[..quarter]), None, &opts, Backward::new()).unwrap();
    assert_eq!(cached_bytes(), 2 * n * 8);
    for (_, t) in grads.iter() {
        assert!(!first.contains(&t.data().as_ptr()));
    }
    drop(grads);
    assert_eq!(cached_bytes(), 2 * n * 8 + 2 * quarter * 8);

    // the bound: lowering it evicts the oldest buffers; 0 turns the cache off
    set_cache_limit(3 * n * 8);
    assert!(cached_bytes() <= 3 * n * 8);
    set_cache_limit(0);
    assert_eq!(cached_bytes(), 0);
    let (_, grads) = mse_grad(View::from(&x), View::from(&y), None, &opts, Backward::new()).unwrap();
    drop(grads);
    assert_eq!(cached_bytes(), 0);
}
