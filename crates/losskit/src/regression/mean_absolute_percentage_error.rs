//! `mean_absolute_percentage_error`: `100 |y - ŷ| / max(|y|, eps)`, averaged over the last
//! axis (Keras `MeanAbsolutePercentageError`).

use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, KERAS_REDUCTION, KERAS_SAMPLE_WEIGHT};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::{last_axis_loss, Combine};
use crate::kernels::stable::jax_abs_slope;
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_n = \frac{100}{D}\sum_{d=1}^{D}\frac{|y_{n,d}-\hat y_{n,d}|}{\max(|y_{n,d}|,\epsilon)},\ \epsilon = 10^{-7},\qquad \frac{\partial \ell_n}{\partial \hat y_{n,d}} = \frac{100}{D}\,\frac{\operatorname{sgn}(\hat y_{n,d}-y_{n,d})}{\max(|y_{n,d}|,\epsilon)},\ \operatorname{sgn}(0) = -1"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "mean_absolute_percentage_error",
    family: Family::Regression,
    summary: "Absolute error relative to |y_true| (floored at 1e-7), in percent, averaged over the last axis into \
one value per sample, then reduced Keras-style.",
    formula: formula!(),
    reference: "keras.losses.MeanAbsolutePercentageError",
    reference_call:
        "keras.losses.MeanAbsolutePercentageError(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)",
    reduction_default: "sum_over_batch_size",
    none_shape: "y_pred.shape[:-1] (a 0-d value for 1-D inputs)",
    conventions: "The denominator is max(|y_true|, 1e-7) with 1e-7 in the computation dtype: a zero target gives the \
finite but huge 100*|y_pred|/1e-7 (and an equally huge gradient); negative targets are fine. Not symmetric in its \
arguments. The gradient at y_pred == y_true is \
-100/(D max(|y_true|, 1e-7)), as in JAX, whose derivative of |x| is 1 at x = 0. y_true and y_pred have the same shape up to a trailing \
axis of size 1; the last axis is averaged, so a 1-D input is one sample and its 0-d loss is returned unreduced. \
sample_weight multiplies the per-sample values; sum_over_batch_size (= mean) divides by their count, \
mean_with_sample_weight by sum(sample_weight) (0 when that is 0). Only y_pred has a gradient.",
    errata: "The post's mape leaves out the factor 100, writes (y - ŷ)/y without the broadcasting dot (a matrix \
division in Julia, not an elementwise ratio), takes no absolute value of the denominator and does not guard y = 0.",
    args: &[
        arg("y_true", "(N, ..., D)", F, false, false, "finite; zero allowed (denominator floored at 1e-7)"),
        arg("y_pred", "(N, ..., D), the shape of y_true (up to a trailing 1)", F, true, false, "finite"),
        KERAS_SAMPLE_WEIGHT,
    ],
    options: &[KERAS_REDUCTION],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`mean_absolute_percentage_error`](fn@mean_absolute_percentage_error).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanAbsolutePercentageErrorOptions {
    /// `sum_over_batch_size` (default), `sum`, `mean`, `mean_with_sample_weight` or `none`.
    pub reduction: Reduction,
}

impl Default for MeanAbsolutePercentageErrorOptions {
    fn default() -> Self {
        MeanAbsolutePercentageErrorOptions { reduction: Reduction::SumOverBatchSize }
    }
}

/// Mean absolute percentage error, averaged over the last axis per sample and reduced as
/// Keras does.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `keras.losses.MeanAbsolutePercentageError(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)`.
///
/// # Conventions
/// - The denominator is `max(|y_true|, 1e-7)` (`1e-7` in the computation dtype): zero targets
///   give huge but finite values.
/// - The per-sample loss has shape `y_pred.shape[:-1]`; a 1-D input is one sample, whose 0-d
///   loss is returned unreduced. `y_true` may have one trailing axis of size 1 more or fewer.
/// - `sample_weight` broadcasts against the per-sample loss (e.g. `(N,)` or `(N, 1)`).
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) when `y_true` and `y_pred` differ in shape
/// (beyond a trailing axis of size 1), when they are 0-d, or when `sample_weight` does not
/// broadcast against the per-sample loss; [`LossError::InvalidOption`](crate::LossError::InvalidOption)
/// for a reduction Keras does not have.
///
/// # Example
/// ```
/// use losskit::{mean_absolute_percentage_error, MeanAbsolutePercentageErrorOptions, View};
/// let y_true = [2.0f64, -4.0, 1.0, 0.0];
/// let y_pred = [1.0f64, -3.0, 1.5, 1e-9];
/// let (t, p) = (View::new(&y_true, &[2, 2])?, View::new(&y_pred, &[2, 2])?);
/// let options = MeanAbsolutePercentageErrorOptions::default();
/// let loss = mean_absolute_percentage_error(t, p, None, &options)?;
/// // samples: 100 * (1/2 + 1/4) / 2 = 37.5 and 100 * (0.5/1 + 1e-9/1e-7) / 2 = 25.5; mean 31.5
/// assert!((loss.item().unwrap() - 31.5).abs() < 1e-12);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn mean_absolute_percentage_error<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &MeanAbsolutePercentageErrorOptions,
) -> Result<Tensor<T>> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`mean_absolute_percentage_error`](fn@mean_absolute_percentage_error) and its gradient with
/// respect to `y_pred`.
///
/// # Example
/// ```
/// use losskit::{mean_absolute_percentage_error_grad, Backward, MeanAbsolutePercentageErrorOptions, View};
/// let (t, p) = ([2.0f64, -4.0], [1.0f64, -3.0]);
/// let options = MeanAbsolutePercentageErrorOptions::default();
/// let (_, grads) = mean_absolute_percentage_error_grad(View::from(&t[..]), View::from(&p[..]), None, &options, Backward::new())?;
/// // 100/D * sign(ŷ - y) / |y| with D = 2: [-100/4, 100/8]
/// assert_eq!(grads.get("y_pred").unwrap().data(), &[-25.0, 12.5]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn mean_absolute_percentage_error_grad<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &MeanAbsolutePercentageErrorOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    options: &MeanAbsolutePercentageErrorOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let (eps, hundred) = (T::of(1e-7), T::of(100.0));
    last_axis_loss(
        y_true,
        y_pred,
        sample_weight,
        options.reduction,
        Combine::Mean,
        #[inline(always)]
        move |t: T, p: T| {
            let a = t.abs();
            // max(|y|, eps), keeping a NaN target NaN
            let den = if a < eps { eps } else { a };
            let q = (t - p) / den;
            // d|q|/dq is JAX's: 1 at q == 0, so the gradient at y_pred == y_true is -100 / den
            (hundred * q.abs(), -hundred * jax_abs_slope(q) / den)
        },
        backward,
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = MeanAbsolutePercentageErrorOptions { reduction: opts.reduction()? };
    let sample_weight = args.opt_float("sample_weight")?;
    run(&args.float("y_true")?, &args.float("y_pred")?, sample_weight.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_target_is_floored_at_eps() {
        // Keras: y_true [[0, 0.5]], y_pred [[1, 0.5]], reduction sum -> 5e8, gradient [5e8, -100]
        let (t, p) = ([0.0f64, 0.5], [1.0f64, 0.5]);
        let opts = MeanAbsolutePercentageErrorOptions { reduction: Reduction::Sum };
        let (tv, pv) = (View::new(&t, &[1, 2]).unwrap(), View::new(&p, &[1, 2]).unwrap());
        let (l, g) = mean_absolute_percentage_error_grad(tv, pv, None, &opts, Backward::new()).unwrap();
        assert!((l.item().unwrap() / 5e8 - 1.0).abs() < 1e-15);
        let g = g.get("y_pred").unwrap().data();
        assert!((g[0] / 5e8 - 1.0).abs() < 1e-15);
        // at y_pred == y_true JAX's slope of |x| at 0 is 1: -100 / 0.5 / 2 = -100
        assert_eq!(g[1], -100.0);
    }

    #[test]
    fn gradient_at_zero_error_follows_jax() {
        // regression: the gradient at y_pred == y_true was 0 (sign(0)); JAX differentiates |x|
        // at 0 with slope 1, so Keras gives -100 / max(|y|, eps) / D there:
        // jax.grad(lambda p: MeanAbsolutePercentageError(reduction="sum")([[0., 2.]], p))([[0., 2.]])
        //   -> [[-5e8, -25]]
        let (t, p) = ([0.0f64, 2.0], [0.0f64, 2.0]);
        let opts = MeanAbsolutePercentageErrorOptions { reduction: Reduction::Sum };
        let (tv, pv) = (View::new(&t, &[1, 2]).unwrap(), View::new(&p, &[1, 2]).unwrap());
        let (l, g) = mean_absolute_percentage_error_grad(tv, pv, None, &opts, Backward::new()).unwrap();
        assert_eq!(l.item().unwrap(), 0.0);
        let g = g.get("y_pred").unwrap().data();
        assert!((g[0] / -5e8 - 1.0).abs() < 1e-15 && g[1] == -25.0, "{g:?}");
        // f32: eps is 1e-7 rounded to f32
        let (t, p) = ([0.0f32, 2.0], [0.0f32, 2.0]);
        let (tv, pv) = (View::new(&t, &[1, 2]).unwrap(), View::new(&p, &[1, 2]).unwrap());
        let (_, g) = mean_absolute_percentage_error_grad(tv, pv, None, &opts, Backward::new()).unwrap();
        let g = g.get("y_pred").unwrap().data();
        assert!((g[0] / (-50.0 / 1e-7f32) - 1.0).abs() < 1e-6 && g[1] == -25.0, "{g:?}");
    }

    #[test]
    fn nan_target_propagates() {
        let (t, p) = ([f64::NAN, 1.0], [1.0f64, 2.0]);
        let l =
            mean_absolute_percentage_error(View::from(&t[..]), View::from(&p[..]), None, &Default::default()).unwrap();
        assert!(l.item().unwrap().is_nan());
    }
}
