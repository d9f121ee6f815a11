//! The cosine of two rows as Keras computes it: each row is L2-normalised as
//! `x * min(rsqrt(sum x^2), 1 / eps)` (keras 3.15.1 `ops.normalize`), i.e. divided by
//! `max(||x||, eps)`, then the normalised rows are multiplied and summed.
//!
//! A row whose norm is below `eps` is scaled by `1 / eps` rather than unit-normalised, so its
//! cosine shrinks with its norm; an all-zero row gives a cosine of 0 and, as in the reference
//! (the derivative of `rsqrt` at 0 is infinite and is multiplied by the zero derivative of the
//! `min`), a NaN gradient for the whole row.

use crate::float::Float;
use crate::kernels::sum::{sum_map, sum_zip};

/// The normalisation factor of one row and what its derivative needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct L2Scale<T> {
    /// `sum x^2` (accumulated in `f64`, rounded to `T`).
    pub square_sum: T,
    /// `rsqrt(sum x^2)` before the floor (`inf` for a zero row).
    pub raw: T,
    /// `min(raw, 1 / eps)`: the factor the row is multiplied by.
    pub scale: T,
    /// The derivative of the `min` with respect to `raw`: 1 when `raw < 1 / eps`, 1/2 at a
    /// tie (JAX splits it), 0 when the floor is active.
    pub pass: T,
}

impl<T: Float> L2Scale<T> {
    /// The factor of row `x` with norm floor `eps` (the cap `1 / eps` is computed in `f64` and
    /// rounded to `T`, as Keras does with its Python-float `1.0 / epsilon`).
    #[inline(always)]
    pub fn of(x: &[T], eps: f64) -> Self {
        let square_sum = T::from_acc(sum_map(x, |v| {
            let v = v.acc();
            v * v
        }));
        let raw = T::one() / square_sum.sqrt();
        let cap = T::of(1.0 / eps);
        let (scale, pass) = if raw < cap {
            (raw, T::one())
        } else if raw == cap {
            (raw, T::of(0.5))
        } else {
            (cap, T::zero())
        };
        L2Scale { square_sum, raw, scale, pass }
    }
}

/// `sum_d a_d b_d * sa * sb` with `sa`, `sb` the [`L2Scale`] factors of `a` and `b` (the Keras
/// cosine); with `Some((cot, grad))` also `grad = cot * d cos / d b`.
///
/// The derivative is that of the reference's computation graph: through `b * sb` directly, and
/// through `sb = min(rsqrt(sum b^2), 1 / eps)` (zero where the floor is active, NaN for an
/// all-zero `b`).
///
/// Always inlined, so that it is compiled into the caller's dispatched row loop (with the
/// instruction set's vectors) rather than once for the baseline.
#[inline(always)]
pub fn keras_cosine_row<T: Float>(a: &[T], b: &[T], eps: f64, grad: Option<(T, &mut [T])>) -> T {
    let sa = L2Scale::of(a, eps).scale;
    let sb = L2Scale::of(b, eps);
    let value = T::from_acc(sum_zip(a, b, |ad, bd| (ad * sa * (bd * sb.scale)).acc()));
    if let Some((cot, g)) = grad {
        // cotangent of the scale factor, then through the min and rsqrt
        let dscale = T::from_acc(sum_zip(a, b, |ad, bd| (cot * (ad * sa) * bd).acc()));
        let half = T::of(0.5);
        let dsq = dscale * sb.pass * (-half * sb.raw / sb.square_sum);
        let two = T::of(2.0);
        for ((gd, &ad), &bd) in g.iter_mut().zip(a).zip(b) {
            *gd = cot * (ad * sa) * sb.scale + dsq * two * bd;
        }
    }
    value
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
