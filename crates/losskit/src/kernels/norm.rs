//! Vector p-norms of rows and their gradients, with PyTorch's conventions
//! (`torch.linalg.vector_norm` and its backward).
//!
//! The norm is evaluated literally, `(sum |x_i|^p)^(1/p)` accumulated in `f64` (a plain sum for
//! `p = 1`, `sqrt(sum x_i^2)` for `p = 2`, `max |x_i|` for `p = inf`), without rescaling:
//! like the reference, it overflows to `inf` where `|x_i|^p` does.
//!
//! The gradient follows the reference at its non-differentiable points: at a zero norm it is 0;
//! for `p = 1` it is `sgn(x_i)` (0 at `x_i = 0`); for `p < 1` a zero coordinate gets 0; for
//! `p = inf` the gradient is shared equally among the coordinates that attain the maximum.

use crate::float::Float;
use crate::kernels::stable::sgn;
use crate::kernels::sum::{sum_zip, sum_zip_pair};

/// The degree `p` of a vector norm, with its special cases.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormDegree {
    /// `p = 1`: the sum of absolute values.
    One,
    /// `p = 2`: the Euclidean norm.
    Two,
    /// `p = inf`: the largest absolute value.
    Inf,
    /// Any other `p > 0`.
    P(f64),
}

impl NormDegree {
    /// The degree `p`, or `None` unless `p > 0` (NaN included).
    pub fn new(p: f64) -> Option<Self> {
        if p.is_nan() || p <= 0.0 {
            return None;
        }
        Some(if p == 1.0 {
            NormDegree::One
        } else if p == 2.0 {
            NormDegree::Two
        } else if p == f64::INFINITY {
            NormDegree::Inf
        } else {
            NormDegree::P(p)
        })
    }

    /// The p-norm of `row`, in `f64`. An empty row has norm 0.
    #[inline(always)]
    pub fn norm(self, row: &[f64]) -> f64 {
        self.norm_zip(row, row, |x, _| x)
    }

    /// The p-norm of the row `x1 - x2 + eps` (each element widened to `f64` first) without
    /// writing that row: the bits of [`norm`](Self::norm) of it.
    #[inline(always)]
    pub fn norm_of_difference<T: Float>(self, x1: &[T], x2: &[T], eps: f64) -> f64 {
        self.norm_zip(x1, x2, move |u: T, v: T| u.acc() - v.acc() + eps)
    }

    /// `(norm_of_difference(x, y1, eps), norm_of_difference(x, y2, eps))`, the same bits; for
    /// `p = 2` (the common degree) both in one pass over short rows (see [`sum_zip_pair`]).
    #[inline(always)]
    pub fn norms_of_differences<T: Float>(self, x: &[T], y1: &[T], y2: &[T], eps: f64) -> (f64, f64) {
        if self != NormDegree::Two {
            return (self.norm_of_difference(x, y1, eps), self.norm_of_difference(x, y2, eps));
        }
        let square = move |u: T, v: T| {
            let d = u.acc() - v.acc() + eps;
            d * d
        };
        let (s1, s2) = sum_zip_pair(x, y1, y2, square, square);
        (s1.sqrt(), s2.sqrt())
    }

    /// The p-norm of the row `value(a[i], b[i])`, summed as [`sum_zip`] sums.
    #[inline(always)]
    fn norm_zip<A: Copy, B: Copy>(self, a: &[A], b: &[B], value: impl Fn(A, B) -> f64 + Copy) -> f64 {
        match self {
            NormDegree::One => sum_zip(a, b, |u, v| value(u, v).abs()),
            NormDegree::Two => sum_zip(a, b, |u, v| {
                let x = value(u, v);
                x * x
            })
            .sqrt(),
            // NaN propagates, as in the reference's amax
            NormDegree::Inf => a.iter().zip(b).fold(0.0f64, |m, (&u, &v)| {
                let x = value(u, v);
                if x.abs() > m || x.is_nan() {
                    x.abs()
                } else {
                    m
                }
            }),
            NormDegree::P(p) => sum_zip(a, b, |u, v| value(u, v).abs().powf(p)).powf(1.0 / p),
        }
    }

    /// Writes `scale * d norm / d row[i]` into `out[i]`, given `norm = self.norm(row)`.
    #[inline(always)]
    pub fn grad(self, row: &[f64], norm: f64, scale: f64, out: &mut [f64]) {
        match self {
            NormDegree::One => {
                for (o, &x) in out.iter_mut().zip(row) {
                    *o = scale * sgn(x);
                }
            }
            NormDegree::Two => {
                for (o, &x) in out.iter_mut().zip(row) {
                    *o = if norm == 0.0 { 0.0 } else { scale * (x / norm) };
                }
            }
            NormDegree::Inf => {
                let hit = |x: f64| x.abs() == norm || x.is_nan();
                let ties = row.iter().filter(|&&x| hit(x)).count();
                let share = scale / ties.max(1) as f64;
                for (o, &x) in out.iter_mut().zip(row) {
                    *o = if hit(x) { sgn(x) * share } else { 0.0 };
                }
            }
            NormDegree::P(p) if p < 1.0 => {
                // sgn(x) |x|^(p-1) norm^(1-p), with 0 at x = 0 (where |x|^(p-1) is infinite)
                let k = scale * norm.powf(1.0 - p);
                for (o, &x) in out.iter_mut().zip(row) {
                    *o = if x == 0.0 { 0.0 } else { sgn(x) * x.abs().powf(p - 1.0) * k };
                }
            }
            NormDegree::P(p) => {
                // sgn(x) |x|^(p-1) / norm^(p-1), 0 at a zero norm
                let k = if norm == 0.0 { 0.0 } else { scale / norm.powf(p - 1.0) };
                for (o, &x) in out.iter_mut().zip(row) {
                    *o = sgn(x) * x.abs().powf(p - 1.0) * k;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finite_diff(p: NormDegree, row: &[f64], i: usize) -> f64 {
        let h = 1e-6;
        let (mut a, mut b) = (row.to_vec(), row.to_vec());
        a[i] += h;
        b[i] -= h;
        (p.norm(&a) - p.norm(&b)) / (2.0 * h)
    }

    #[test]
    fn degrees() {
        assert_eq!(NormDegree::new(1.0), Some(NormDegree::One));
        assert_eq!(NormDegree::new(2.0), Some(NormDegree::Two));
        assert_eq!(NormDegree::new(f64::INFINITY), Some(NormDegree::Inf));
        assert_eq!(NormDegree::new(1.5), Some(NormDegree::P(1.5)));
        assert_eq!(NormDegree::new(0.0), None);
        assert_eq!(NormDegree::new(-1.0), None);
        assert_eq!(NormDegree::new(f64::NAN), None);
    }

    #[test]
    fn values() {
        let r = [3.0, -4.0];
        assert_eq!(NormDegree::One.norm(&r), 7.0);
        assert_eq!(NormDegree::Two.norm(&r), 5.0);
        assert_eq!(NormDegree::Inf.norm(&r), 4.0);
        assert!((NormDegree::P(3.0).norm(&r) - 91f64.cbrt()).abs() < 1e-14);
        // (sqrt 3 + sqrt 4)^2
        assert!((NormDegree::P(0.5).norm(&r) - (3f64.sqrt() + 2.0).powi(2)).abs() < 1e-13);
        assert_eq!(NormDegree::Two.norm(&[]), 0.0);
    }

    /// `norm_of_difference` has the bits of `norm` of the written row `x1 - x2 + eps`, for every
    /// degree, lengths across the lane and block boundaries, both dtypes, with NaN and inf.
    fn difference_norms_have_the_bits_of_the_row<T: Float>() {
        for n in (0..=40).chain([255, 256, 257, 300, 1000]) {
            let x1: Vec<T> = (0..n).map(|i| T::of(((i * 53) % 97) as f64 / 7.0 - 6.0)).collect();
            let mut x2: Vec<T> = (0..n).map(|i| T::of(((i * 37) % 89) as f64 / 9.0 - 4.0)).collect();
            // one length with an infinity, one with a NaN; the others finite
            if n == 300 {
                x2[17] = T::infinity();
            }
            if n == 1000 {
                x2[29] = T::nan();
            }
            for eps in [0.0, 1e-6] {
                let row: Vec<f64> = x1.iter().zip(&x2).map(|(u, v)| u.acc() - v.acc() + eps).collect();
                for p in [NormDegree::One, NormDegree::Two, NormDegree::Inf, NormDegree::P(3.0), NormDegree::P(0.5)] {
                    let (want, got) = (p.norm(&row), p.norm_of_difference(&x1, &x2, eps));
                    assert_eq!(want.to_bits(), got.to_bits(), "n={n} eps={eps} {p:?}");
                    // and beside a second row (x2 reversed)
                    let x3: Vec<T> = x2.iter().rev().copied().collect();
                    let (d2, d3) = p.norms_of_differences(&x1, &x2, &x3, eps);
                    let d3_alone = p.norm_of_difference(&x1, &x3, eps);
                    assert_eq!((d2.to_bits(), d3.to_bits()), (want.to_bits(), d3_alone.to_bits()), "n={n} {p:?}");
                }
            }
        }
    }

    #[test]
    fn difference_norms_have_the_bits_of_the_row_f32_f64() {
        difference_norms_have_the_bits_of_the_row::<f32>();
        difference_norms_have_the_bits_of_the_row::<f64>();
    }

    #[test]
    fn gradients_match_finite_differences() {
        let row = [0.7, -1.3, 2.1, 0.2];
        for p in [
            NormDegree::One,
            NormDegree::Two,
            NormDegree::Inf,
            NormDegree::P(0.5),
            NormDegree::P(1.5),
            NormDegree::P(3.0),
        ] {
            let n = p.norm(&row);
            let mut g = [0.0; 4];
            p.grad(&row, n, 2.0, &mut g);
            for (i, gi) in g.iter().enumerate() {
                let fd = 2.0 * finite_diff(p, &row, i);
                assert!((gi - fd).abs() < 1e-6, "{p:?} {i}: {gi} vs {fd}");
            }
        }
    }

    #[test]
    fn conventions_at_kinks() {
        // zero norm: zero gradient for every p
        let z = [0.0, 0.0];
        for p in [
            NormDegree::One,
            NormDegree::Two,
            NormDegree::Inf,
            NormDegree::P(0.5),
            NormDegree::P(1.5),
            NormDegree::P(3.0),
        ] {
            let mut g = [1.0; 2];
            p.grad(&z, 0.0, 1.0, &mut g);
            assert_eq!(g, [0.0, 0.0], "{p:?}");
        }
        // a zero coordinate: 0 (p = 1: sgn(0); p < 1: masked)
        let r = [0.0, 2.0];
        for p in [NormDegree::One, NormDegree::P(0.5), NormDegree::P(1.5)] {
            let mut g = [1.0; 2];
            p.grad(&r, p.norm(&r), 1.0, &mut g);
            assert_eq!(g[0], 0.0, "{p:?}");
        }
        // p = inf: ties share the gradient
        let r = [1.0, -3.0, 3.0];
        let mut g = [0.0; 3];
        NormDegree::Inf.grad(&r, 3.0, 1.0, &mut g);
        assert_eq!(g, [0.0, -0.5, 0.5]);
    }
}
