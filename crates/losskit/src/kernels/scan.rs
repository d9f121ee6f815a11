//! Validation scans: find the first element that breaks a condition (a probability outside
//! `[0, 1]`, a label that is not 0 or 1).
//!
//! `iter().position(..)` stops at the first failure, so the compiler keeps it scalar: about
//! a nanosecond per element, as much as a whole vectorised loss. Here each chunk is tested with
//! a branch-free fold (vectorised), large inputs on every thread, and only a failing chunk is
//! searched element by element. The answer is the first failing position whatever the thread
//! count.

use rayon::prelude::*;

use super::simd::dispatch;
use super::sum::{CHUNK, PARALLEL_MIN};

/// Elements tested per step of the serial scan (a failure is found at most this far past it).
const STEP: usize = 4096;

/// The position of the first element of `v` for which `ok` is false, if any.
///
/// `ok` must be cheap and branch-free (comparisons joined with `&`, not `&&`) so that the
/// chunk test vectorises.
pub fn first_failing<T: Copy + Send + Sync>(v: &[T], ok: impl Fn(T) -> bool + Sync + Copy) -> Option<usize> {
    let scan = |part: &[T]| -> Option<usize> {
        dispatch(
            #[inline(always)]
            || {
                for (k, step) in part.chunks(STEP).enumerate() {
                    if !step.iter().fold(true, |all, &x| all & ok(x)) {
                        return step.iter().position(|&x| !ok(x)).map(|i| k * STEP + i);
                    }
                }
                None
            },
        )
    };
    if v.len() < PARALLEL_MIN || rayon::current_num_threads() == 1 {
        return scan(v);
    }
    // chunks on every thread; the first failing chunk (in order) holds the answer
    let chunk = v.par_chunks(CHUNK).position_first(|c| scan(c).is_some())?;
    let start = chunk * CHUNK;
    scan(&v[start..(start + CHUNK).min(v.len())]).map(|i| start + i)
}

/// The position of the first element of `v` outside `[lo, hi]` (NaN is outside).
pub fn first_outside<T: crate::Float>(v: &[T], lo: T, hi: T) -> Option<usize> {
    first_failing(
        v,
        #[inline(always)]
        move |x: T| (x >= lo) & (x <= hi),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_failure_at_every_position_and_thread_count() {
        let n = PARALLEL_MIN + 3 * STEP + 5;
        for bad in [0, 1, STEP - 1, STEP, CHUNK - 1, CHUNK, PARALLEL_MIN, n - 1] {
            let mut v = vec![0.5f32; n];
            v[bad] = 1.5;
            // a later failure must not win
            v[n - 1] = f32::NAN;
            let want = Some(bad);
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                assert_eq!(pool.install(|| first_outside(&v, 0.0, 1.0)), want, "bad={bad} threads={threads}");
            }
        }
        assert_eq!(first_outside(&[0.0f64, 1.0, 0.25], 0.0, 1.0), None);
        assert_eq!(first_outside(&[0.0f64, f64::NAN], 0.0, 1.0), Some(1));
        assert_eq!(first_outside(&[-0.0f64, -1e-300], 0.0, 1.0), Some(1));
        assert_eq!(first_outside::<f32>(&[], 0.0, 1.0), None);
        assert_eq!(first_failing(&[1.0f32, 0.0, 2.0], |y| (y == 0.0) | (y == 1.0)), Some(2));
    }
}
