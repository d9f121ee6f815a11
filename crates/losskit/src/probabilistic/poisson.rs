//! `poisson`: Poisson loss `ŷ - y log(ŷ + eps)`, averaged over the last axis (Keras `Poisson`).

use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, KERAS_REDUCTION, KERAS_SAMPLE_WEIGHT};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::{last_axis_loss, Checked, Combine};
use crate::kernels::vmath::VMath;
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_n = \frac1D\sum_{d=1}^{D}\big(\hat y_{n,d} - y_{n,d}\log(\hat y_{n,d}+\epsilon)\big),\ \epsilon=10^{-7},\qquad \frac{\partial \ell_n}{\partial \hat y_{n,d}} = \frac1D\Big(1 - \frac{y_{n,d}}{\hat y_{n,d}+\epsilon}\Big)"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "poisson",
    family: Family::Probabilistic,
    summary: "Poisson negative log-likelihood without its log(y!) term, y_pred - y_true*log(y_pred + 1e-7) for a \
predicted rate, averaged over the last axis into one value per sample, then reduced Keras-style.",
    formula: formula!(),
    reference: "keras.losses.Poisson",
    reference_call: "keras.losses.Poisson(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)",
    reduction_default: "sum_over_batch_size",
    none_shape: "y_pred.shape[:-1] (a 0-d value for 1-D inputs)",
    conventions: "y_pred is the rate itself (not its log). Nothing is clipped: 1e-7 (in the computation dtype) is \
added inside the log only, so y_pred = 0 costs -y_true*log(1e-7) (about 16.118*y_true) and y_pred < -1e-7 gives NaN \
(even where y_true = 0: 0*log of a negative number). The log(y!) term is left out. y_true and y_pred have the same \
shape up to a trailing axis of size 1; the last axis is averaged, so a 1-D input is one sample and its 0-d loss is \
returned unreduced. sample_weight multiplies the per-sample values; sum_over_batch_size (= mean) divides by their \
count, mean_with_sample_weight by sum(sample_weight) (0 when that is 0). Only y_pred has a gradient.",
    errata: "The post's poisson is mean(ŷ - log(ŷ)): the target is missing (it should be ŷ - y log(ŷ + eps)), so \
the loss does not depend on y at all, and there is no eps.",
    args: &[
        arg("y_true", "(N, ..., D)", F, false, false, "counts >= 0 (not checked)"),
        arg("y_pred", "(N, ..., D), the shape of y_true (up to a trailing 1)", F, true, false, "rate > -1e-7"),
        KERAS_SAMPLE_WEIGHT,
    ],
    options: &[KERAS_REDUCTION],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`poisson`](fn@poisson).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoissonOptions {
    /// `sum_over_batch_size` (default), `sum`, `mean`, `mean_with_sample_weight` or `none`.
    pub reduction: Reduction,
}

impl Default for PoissonOptions {
    fn default() -> Self {
        PoissonOptions { reduction: Reduction::SumOverBatchSize }
    }
}

/// Poisson loss of a predicted rate, averaged over the last axis per sample and reduced as
/// Keras does.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `keras.losses.Poisson(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)`.
///
/// # Conventions
/// - `y_pred` is a rate; `1e-7` is added inside the log only (no clipping): a zero rate is
///   finite, a rate below `-1e-7` gives NaN.
/// - The per-sample loss has shape `y_pred.shape[:-1]`; a 1-D input is one sample, whose 0-d
///   loss is returned unreduced. `y_true` may have one trailing axis of size 1 more or fewer.
/// - `sample_weight` broadcasts against the per-sample loss (e.g. `(N,)` or `(N, 1)`).
/// - Terms can have either sign and cancel in a mean to a small fraction of their size, where
///   `f32` terms would carry their roundings into the result many times over. In `f32` each
///   term comes with a bound on its error: a per-sample value, or the reduced loss, whose
///   bound exceeds `2^-19` of its magnitude is computed again in `f64` from the same inputs
///   and rounded once (its gradient too). Results are within `2^-19` of the exact ones,
///   usually within an ulp; the `f64` pass costs about 2.5x and is taken only where terms
///   cancel.
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) when `y_true` and `y_pred` differ in shape
/// (beyond a trailing axis of size 1), when they are 0-d, or when `sample_weight` does not
/// broadcast against the per-sample loss; [`LossError::InvalidOption`](crate::LossError::InvalidOption)
/// for a reduction Keras does not have.
///
/// # Example
/// ```
/// use losskit::{poisson, PoissonOptions, View};
/// let y_true = [0.0f64, 2.0];
/// let y_pred = [1.0f64, 1.0 - 1e-7];
/// let loss = poisson(View::from(&y_true[..]), View::from(&y_pred[..]), None, &PoissonOptions::default())?;
/// // one sample: (1 - 0) and (1 - 1e-7 - 2 log 1), averaged: 1 - 0.5e-7
/// assert!((loss.item().unwrap() - (1.0 - 0.5e-7)).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn poisson<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &PoissonOptions,
) -> Result<Tensor<T>> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`poisson`](fn@poisson) and its gradient with respect to `y_pred`.
///
/// # Example
/// ```
/// use losskit::{poisson_grad, Backward, PoissonOptions, View};
/// let (t, p) = ([3.0f64, 0.0], [2.0f64 - 1e-7, 5.0]);
/// let (_, grads) = poisson_grad(View::from(&t[..]), View::from(&p[..]), None, &PoissonOptions::default(), Backward::new())?;
/// // (1 - y / (ŷ + 1e-7)) / D with D = 2: [(1 - 3/2) / 2, 1 / 2]
/// let g = grads.get("y_pred").unwrap().data();
/// assert!((g[0] + 0.25).abs() < 1e-15 && g[1] == 0.5);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn poisson_grad<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &PoissonOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    options: &PoissonOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let (eps, one) = (T::of(1e-7), T::one());
    last_axis_loss(
        y_true,
        y_pred,
        sample_weight,
        options.reduction,
        Combine::Mean,
        // terms of either sign (`p - t ln(p + ε)` is negative where `t ln(p + ε) > p`): checked
        // in f32, and a mean that cancels is computed again in f64
        Checked(
            #[inline(always)]
            // `p + ε` is normal for the rates the bound accepts (`0 <= p <= max`)
            move |_: T, p: T| (p + eps).vln_normal(),
            #[inline(always)]
            move |t: T, p: T, ln_q: T| {
                let tl = t * ln_q;
                let term = p - tl;
                // in units of roundoff: 1.2 |t| for `q = p + ε`'s rounding and ε's in f32
                // (1.2e-8 of `q >= 1e-7`) through the log, 2 |t ln q| for the log's ulp,
                // |t ln q| and |term| for the product and the difference; a negative rate may
                // lose every bit of `p + ε`, and other rates fall outside the log's range
                // (computed exactly, then)
                let bound = if p >= T::zero() && p <= T::max_value() {
                    T::of(1.25) * t.abs() + T::of(3.0) * tl.abs() + term.abs()
                } else {
                    T::infinity()
                };
                (term, one - t / (p + eps), bound)
            },
            // the derivative rounded once: `p + ε` in f32 loses `p`'s last bits, all of them
            // for `p` near `-ε`
            #[inline(always)]
            move |t: T, p: T| {
                let (t, p) = (t.acc(), p.acc());
                let q = p + 1e-7;
                (p - t * q.vln(), T::from_acc(1.0 - t / q))
            },
        ),
        backward,
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = PoissonOptions { reduction: opts.reduction()? };
    let sample_weight = args.opt_float("sample_weight")?;
    run(&args.float("y_true")?, &args.float("y_pred")?, sample_weight.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short rows scale their derivatives by the rows' cotangents in a second pass, or as they
    /// are written when every row of a range has the same one: the same bits. Rows of 100 and
    /// 300 terms, some cancelling (y_pred = y_true = e: e - e ln e = 0, computed exactly), under
    /// an upstream of ones (one cotangent) and of ones but the last row (a second pass).
    fn one_cotangent_has_the_bits_of_a_cotangent_per_row<T: Float>() {
        use crate::Upstream;
        for d in [100usize, 300] {
            let rows = 2 * 16 * 256 / d + 3;
            let n = rows * d;
            let mut t: Vec<T> = (0..n).map(|i| T::of(((i * 37) % 7) as f64)).collect();
            let mut p: Vec<T> = (0..n).map(|i| T::of(0.1 + ((i * 53) % 97) as f64 / 30.0)).collect();
            for r in (0..rows).step_by(5) {
                for i in r * d..(r + 1) * d {
                    (t[i], p[i]) = (T::of(std::f64::consts::E), T::of(std::f64::consts::E));
                }
            }
            let opts = PoissonOptions { reduction: Reduction::None };
            let grad = |ups: &[T]| {
                let up = Upstream::Array(View::new(ups, &[rows]).unwrap());
                let (t, p) = (View::new(&t, &[rows, d]).unwrap(), View::new(&p, &[rows, d]).unwrap());
                let (l, g) = poisson_grad(t, p, None, &opts, Backward::new().upstream(up)).unwrap();
                let bits = |v: &[T]| v.iter().map(|x| x.acc().to_bits()).collect::<Vec<u64>>();
                (bits(l.data()), bits(g.get("y_pred").unwrap().data()))
            };
            let ones = vec![T::one(); rows];
            let mut last_two = ones.clone();
            last_two[rows - 1] = T::of(2.0);
            let (same, per_row) = (grad(&ones), grad(&last_two));
            assert_eq!(same.0, per_row.0, "d={d}");
            assert_eq!(same.1[..n - d], per_row.1[..n - d], "d={d}");
        }
    }

    #[test]
    fn one_cotangent_has_the_bits_of_a_cotangent_per_row_f32_f64() {
        one_cotangent_has_the_bits_of_a_cotangent_per_row::<f32>();
        one_cotangent_has_the_bits_of_a_cotangent_per_row::<f64>();
    }

    #[test]
    fn zero_and_negative_rates() {
        // Keras, reduction none: y_true [[0, 2, 1]], y_pred [[0, 0, -1]] -> NaN (the -1);
        // gradient [1/3, (1 - 2e7)/3, (1 - 1/(-1 + 1e-7))/3]
        let (t, p) = ([0.0f64, 2.0, 1.0], [0.0f64, 0.0, -1.0]);
        let opts = PoissonOptions { reduction: Reduction::None };
        let (tv, pv) = (View::new(&t, &[1, 3]).unwrap(), View::new(&p, &[1, 3]).unwrap());
        let (l, g) = poisson_grad(tv, pv, None, &opts, Backward::new()).unwrap();
        assert!(l.data()[0].is_nan());
        let g = g.get("y_pred").unwrap().data();
        assert!((g[0] - 1.0 / 3.0).abs() < 1e-16);
        assert!((g[1] / -6.666666333333334e6 - 1.0).abs() < 1e-15);
        assert!((g[2] - 6.666667000000033e-01).abs() < 1e-15);
        // without the negative rate: a zero rate costs -y log(1e-7)
        let l = poisson(View::from(&t[..2]), View::from(&p[..2]), None, &opts).unwrap();
        assert!((l.item().unwrap() - (-2.0 * 1e-7f64.ln()) / 2.0).abs() < 1e-14);
    }

    #[test]
    fn a_cancelling_f32_mean_is_rounded_once() {
        // 2 - 4 ln 2 = -0.7726 against a term of about +0.7727: the mean is about 1e-4 of the
        // terms. The f32 result must be the f64 computation on the same inputs, rounded once
        // (f32 terms would carry their roundings, about 6e-8 of 0.77, into a mean of 5e-5).
        let x = (4.0 * 2f64.ln() - 2.0 + 1e-4) as f32;
        let y = (4.0 * 1.5f64.ln() - 1.5 + 2e-4) as f32;
        let (t, p) = ([4.0f32, 0.0, 4.0, 0.0], [2.0f32, x, 1.5, y]);
        let term = |t: f32, p: f32| p as f64 - t as f64 * (p as f64 + 1e-7).ln();
        for reduction in [Reduction::None, Reduction::Sum, Reduction::SumOverBatchSize] {
            let opts = PoissonOptions { reduction };
            let l = poisson(View::new(&t, &[2, 2]).unwrap(), View::new(&p, &[2, 2]).unwrap(), None, &opts).unwrap();
            let rows: Vec<f64> =
                (0..2).map(|r| (term(t[2 * r], p[2 * r]) + term(t[2 * r + 1], p[2 * r + 1])) / 2.0).collect();
            let want: Vec<f32> = match reduction {
                Reduction::None => rows.iter().map(|&v| v as f32).collect(),
                Reduction::Sum => vec![(rows[0] + rows[1]) as f32],
                _ => vec![((rows[0] + rows[1]) / 2.0) as f32],
            };
            for (&got, &want) in l.data().iter().zip(&want) {
                assert!((got - want).abs() <= f32::EPSILON * want.abs(), "{reduction:?}: {got:e} vs {want:e}");
            }
        }
    }
}
