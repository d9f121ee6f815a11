//! Numerically stable scalar primitives. Each is exact to a few ulps over the whole range of
//! its argument, including the extremes (`±1e4`, `0`, `1`, `±inf`).

use crate::float::Float;

/// `log(1 + exp(x))` without overflow: `max(x, 0) + log1p(exp(-|x|))`.
#[inline]
pub fn softplus<T: Float>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

/// `log(sigmoid(x)) = -softplus(-x)`.
#[inline]
pub fn log_sigmoid<T: Float>(x: T) -> T {
    x.min(T::zero()) - (-x.abs()).exp().ln_1p()
}

/// The logistic function, without overflow for either sign.
#[inline]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// `x * log(y)`, defined as `0` when `x == 0` (whatever `y`).
#[inline]
pub fn xlogy<T: Float>(x: T, y: T) -> T {
    if x == T::zero() {
        T::zero()
    } else {
        x * y.ln()
    }
}

/// `log(cosh(z))` without overflow: `|z| + log1p(exp(-2|z|)) - log 2`.
#[inline]
pub fn log_cosh<T: Float>(z: T) -> T {
    let a = z.abs();
    a + (-(a + a)).exp().ln_1p() - T::LN_2()
}

/// `sign(x)` with `sign(0) = 0` (PyTorch's `sgn`; NaN stays NaN).
#[inline]
pub fn sgn<T: Float>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        x * T::zero()
    }
}

/// Clamps to `[lo, hi]` and reports whether `x` was strictly inside (the gradient of a clip
/// is 1 inside and 0 where it clipped; at the bounds themselves the references pass it).
#[inline]
pub fn clip<T: Float>(x: T, lo: T, hi: T) -> (T, bool) {
    if x < lo {
        (lo, false)
    } else if x > hi {
        (hi, false)
    } else {
        (x, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_extremes() {
        // softplus(x) -> x for large x, exp(x) for very negative x
        assert_eq!(softplus(1e4f64), 1e4);
        assert_eq!(softplus(-1e4f64), 0.0);
        assert!((softplus(0.0f64) - std::f64::consts::LN_2).abs() < 1e-16);
        assert!((softplus(-40.0f64) - (-40.0f64).exp()).abs() < 1e-30);
        assert_eq!(log_sigmoid(1e4f32), 0.0);
        assert_eq!(log_sigmoid(-1e4f32), -1e4);
    }

    #[test]
    fn sigmoid_symmetry() {
        for &x in &[-800.0f64, -30.0, -1.0, 0.0, 2.5, 50.0, 800.0] {
            let s = sigmoid(x) + sigmoid(-x);
            assert!((s - 1.0).abs() < 1e-15, "x={x}");
        }
    }

    #[test]
    fn log_cosh_matches_definition_and_is_finite() {
        for &z in &[-3.0f64, -0.5, 0.0, 1e-4, 2.0, 10.0] {
            assert!((log_cosh(z) - z.cosh().ln()).abs() < 1e-14, "z={z}");
        }
        // cosh overflows for |z| > ~710; the stable form is |z| - log 2
        assert_eq!(log_cosh(1000.0f64), 1000.0 - std::f64::consts::LN_2);
    }

    #[test]
    fn xlogy_zero() {
        assert_eq!(xlogy(0.0f64, 0.0), 0.0);
        assert_eq!(xlogy(2.0f64, 1.0), 0.0);
    }
}
