//! The cosine of two rows as Keras computes it: each row is L2-normalised as
//! `x * min(rsqrt(sum x^2), 1 / eps)` (keras 3.15.1 `ops.normalize`), i.e. divided by
//! `max(||x||, eps)`, then the normalised rows are multiplied and summed.
//!
//! A row whose norm is below `eps` is scaled by `1 / eps` rather than unit-normalised, so its
//! cosine shrinks with its norm; an all-zero row gives a cosine of 0 and, as in the reference
//! (the derivative of `rsqrt` at 0 is infinite and is multiplied by the zero derivative of the
//! `min`), a NaN gradient for the whole row.
//!
//! Everything after the elements is in `f64`: the sums of products (exact products of `f32`
//! elements), the factors and the cosine itself, which is returned in `f64`. A mean of cosines
//! of both signs can cancel far below the cosines (six cosines of order 1 averaging 3.5e-4),
//! and a cosine rounded to `f32` before the mean would carry its rounding into the result
//! at that scale.

use crate::float::Float;
use crate::kernels::sum::{sum_map, sum_zip};

/// The normalisation factor of one row and what its derivative needs, in `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct L2Scale {
    /// `sum x^2`.
    pub square_sum: f64,
    /// `rsqrt(sum x^2)` before the floor (`inf` for a zero row).
    pub raw: f64,
    /// `min(raw, 1 / eps)`: the factor the row is multiplied by.
    pub scale: f64,
    /// The derivative of the `min` with respect to `raw`: 1 when `raw < 1 / eps`, 1/2 at a
    /// tie (JAX splits it), 0 when the floor is active.
    pub pass: f64,
}

impl L2Scale {
    /// The factor of a row whose `sum x^2` is `square_sum`.
    #[inline(always)]
    pub fn from_square_sum(square_sum: f64, eps: f64) -> Self {
        let raw = 1.0 / square_sum.sqrt();
        let cap = 1.0 / eps;
        let (scale, pass) = if raw < cap {
            (raw, 1.0)
        } else if raw == cap {
            (raw, 0.5)
        } else {
            (cap, 0.0)
        };
        L2Scale { square_sum, raw, scale, pass }
    }
}

/// `[sum a^2, sum b^2, sum a b]` of two rows of one length, in `f64`, each blocked as
/// [`sum_by`](crate::kernels::sum::sum_by) blocks it.
///
/// Three vectorised passes over the rows (in the first-level cache after the first). One
/// pass with three sets of lanes did not vectorise: written over lane arrays like the
/// library's block sums, it ran scalar and took 1.7x the instructions of the three.
#[inline(always)]
pub fn square_and_cross_sums<T: Float>(a: &[T], b: &[T]) -> [f64; 3] {
    let square = |x: T| {
        let x = x.acc();
        x * x
    };
    [sum_map(a, square), sum_map(b, square), sum_zip(a, b, |x, y| x.acc() * y.acc())]
}

/// `sum_d (a_d sa) (b_d sb)` with `sa`, `sb` the [`L2Scale`] factors of `a` and `b` (the Keras
/// cosine), in `f64`; with `Some((cot, grad))` also `grad = cot * d cos / d b`, rounded to `T`.
///
/// The derivative is that of the reference's computation graph: through `b * sb` directly, and
/// through `sb = min(rsqrt(sum b^2), 1 / eps)` (zero where the floor is active, NaN for an
/// all-zero `b`): `d cos / d b_j = sa sb a_j + sa D pass (-raw / (2 B)) 2 b_j` with
/// `D = sum a b` and `B = sum b^2`.
///
/// The three sums come first ([`square_and_cross_sums`]) and the cosine is
/// `(D sa) sb`. Where a sum is not finite (`f64` rows of norm beyond `1e154`, whose `sum x^2`
/// overflows so that `rsqrt` gives 0, or non-finite elements) the cosine is summed again over
/// the scaled elements, as the graph does, which gives the reference's 0 rather than `inf * 0`.
///
/// Always inlined, so that it is compiled into the caller's dispatched row loop (with the
/// instruction set's vectors) rather than once for the baseline.
#[inline(always)]
pub fn keras_cosine_row<T: Float>(a: &[T], b: &[T], eps: f64, grad: Option<(T, &mut [T])>) -> f64 {
    let [square_a, square_b, dot] = square_and_cross_sums(a, b);
    let sa = L2Scale::from_square_sum(square_a, eps).scale;
    let sb = L2Scale::from_square_sum(square_b, eps);
    let finite = square_a.is_finite() && square_b.is_finite() && dot.is_finite();
    // the graph's sum of (a sa) b: the cotangent of sb over the upstream one
    let scaled_dot = || if finite { dot * sa } else { sum_zip(a, b, |ad, bd| (ad.acc() * sa) * bd.acc()) };
    if let Some((cot, g)) = grad {
        let cot = cot.acc();
        // the cotangent of sb, then through the min and rsqrt, times d(sum b^2)/d b_j = 2 b_j
        let through_norm = cot * scaled_dot() * sb.pass * (-0.5 * sb.raw / sb.square_sum) * 2.0;
        let direct = cot * sa * sb.scale;
        for ((gd, &ad), &bd) in g.iter_mut().zip(a).zip(b) {
            *gd = T::from_acc(direct * ad.acc() + through_norm * bd.acc());
        }
    }
    if finite {
        dot * sa * sb.scale
    } else {
        sum_zip(a, b, |ad, bd| (ad.acc() * sa) * (bd.acc() * sb.scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_and_floored_rows() {
        let eps = 1e-7f64;
        // [3, 4] . [3, 4] / 25 = 1
        assert!((keras_cosine_row(&[3.0f64, 4.0], &[3.0, 4.0], eps, None) - 1.0).abs() < 1e-15);
        // orthogonal
        assert_eq!(keras_cosine_row(&[1.0f64, 0.0], &[0.0, 2.0], eps, None), 0.0);
        // b with norm 2.236e-8 < eps: scaled by 1/eps, not normalised: 1e7 * 1e-8 * 1/sqrt2 ...
        let v = keras_cosine_row(&[1.0f64, 1.0], &[1e-8, 2e-8], eps, None);
        assert!((v - 3e-8 * 1e7 / 2f64.sqrt()).abs() < 1e-12);
        // a zero b: cosine 0, gradient NaN
        let mut g = [0.0f64; 2];
        assert_eq!(keras_cosine_row(&[1.0, 1.0], &[0.0, 0.0], eps, Some((1.0, &mut g))), 0.0);
        assert!(g.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let a = [0.3f64, -1.2, 0.7];
        let b = [1.1f64, 0.4, -0.5];
        let mut g = [0.0; 3];
        keras_cosine_row(&a, &b, 1e-7, Some((1.0, &mut g)));
        for j in 0..3 {
            let h = 1e-6;
            let (mut bp, mut bm) = (b, b);
            bp[j] += h;
            bm[j] -= h;
            let fd = (keras_cosine_row(&a, &bp, 1e-7, None) - keras_cosine_row(&a, &bm, 1e-7, None)) / (2.0 * h);
            assert!((fd - g[j]).abs() < 1e-9, "j={j}");
        }
    }
}
