//! `mean_squared_logarithmic_error`: squared difference of `log(max(., eps) + 1)`, averaged
//! over the last axis (Keras `MeanSquaredLogarithmicError`).

use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, KERAS_REDUCTION, KERAS_SAMPLE_WEIGHT};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::{last_axis_loss, Combine};
use crate::kernels::stable::max_tie;
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_n = \frac1D\sum_{d=1}^{D}\Delta_{n,d}^2,\ \ \Delta_{n,d} = \log\big(\max(\hat y_{n,d},\epsilon)+1\big) - \log\big(\max(y_{n,d},\epsilon)+1\big),\ \epsilon=10^{-7},\qquad \frac{\partial \ell_n}{\partial \hat y_{n,d}} = \frac{2}{D}\,\frac{\Delta_{n,d}}{\hat y_{n,d}+1}\,[\hat y_{n,d}>\epsilon]\ \ (\tfrac12 \text{ at } \hat y_{n,d}=\epsilon)"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "mean_squared_logarithmic_error",
    family: Family::Regression,
    summary: "Squared difference of log(1 + x) between prediction and target, both floored at 1e-7, averaged over \
the last axis into one value per sample, then reduced Keras-style.",
    formula: formula!(),
    reference: "keras.losses.MeanSquaredLogarithmicError",
    reference_call:
        "keras.losses.MeanSquaredLogarithmicError(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)",
    reduction_default: "sum_over_batch_size",
    none_shape: "y_pred.shape[:-1] (a 0-d value for 1-D inputs)",
    conventions: "Both arguments are floored at 1e-7 (in the computation dtype) before 1 is added, so zero and \
negative values count as 1e-7 and y_pred below 1e-7 gets zero gradient (exactly at 1e-7 half the gradient, the tie \
rule of jnp.maximum). log(1 + x) is evaluated as log1p. NaN stays NaN. y_true and y_pred have the same shape up to a \
trailing axis of size 1; the last axis is averaged, so a 1-D input is one sample and its 0-d loss is returned \
unreduced. sample_weight multiplies the per-sample values; sum_over_batch_size (= mean) divides by their count, \
mean_with_sample_weight by sum(sample_weight) (0 when that is 0). Only y_pred has a gradient.",
    errata: "The post's msle has the right formula but no floor: y_pred <= -1 gives -inf or NaN, and values in \
(-1, 0) are used as they are where Keras replaces them by 1e-7. Its mean over all elements equals the default \
reduction only for samples of equal length.",
    args: &[
        arg("y_true", "(N, ..., D)", F, false, false, "finite; values below 1e-7 count as 1e-7"),
        arg(
            "y_pred",
            "(N, ..., D), the shape of y_true (up to a trailing 1)",
            F,
            true,
            false,
            "finite; values below 1e-7 count as 1e-7 (zero gradient there)",
        ),
        KERAS_SAMPLE_WEIGHT,
    ],
    options: &[KERAS_REDUCTION],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`mean_squared_logarithmic_error`](fn@mean_squared_logarithmic_error).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanSquaredLogarithmicErrorOptions {
    /// `sum_over_batch_size` (default), `sum`, `mean`, `mean_with_sample_weight` or `none`.
    pub reduction: Reduction,
}

impl Default for MeanSquaredLogarithmicErrorOptions {
    fn default() -> Self {
        MeanSquaredLogarithmicErrorOptions { reduction: Reduction::SumOverBatchSize }
    }
}

/// Mean squared logarithmic error, averaged over the last axis per sample and reduced as
/// Keras does.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `keras.losses.MeanSquaredLogarithmicError(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)`.
///
/// # Conventions
/// - Both arguments are floored at `1e-7` before `log(x + 1)`: negative values count as
///   `1e-7`, and `y_pred < 1e-7` has zero gradient.
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
/// use losskit::{mean_squared_logarithmic_error, MeanSquaredLogarithmicErrorOptions, View};
/// let y_true = [1.0f64, 3.0];
/// let y_pred = [3.0f64, 1.0];
/// let options = MeanSquaredLogarithmicErrorOptions::default();
/// let loss = mean_squared_logarithmic_error(View::from(&y_true[..]), View::from(&y_pred[..]), None, &options)?;
/// // one sample: ((log 4 - log 2)^2 + (log 2 - log 4)^2) / 2 = (log 2)^2
/// let ln2 = std::f64::consts::LN_2;
/// assert!((loss.item().unwrap() - ln2 * ln2).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn mean_squared_logarithmic_error<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &MeanSquaredLogarithmicErrorOptions,
) -> Result<Tensor<T>> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`mean_squared_logarithmic_error`](fn@mean_squared_logarithmic_error) and its gradient with
/// respect to `y_pred`.
///
/// # Example
/// ```
/// use losskit::{mean_squared_logarithmic_error_grad, Backward, MeanSquaredLogarithmicErrorOptions, View};
/// let (t, p) = ([1.0f64, 0.5], [3.0f64, -0.5]);
/// let options = MeanSquaredLogarithmicErrorOptions::default();
/// let (_, grads) = mean_squared_logarithmic_error_grad(View::from(&t[..]), View::from(&p[..]), None, &options, Backward::new())?;
/// let g = grads.get("y_pred").unwrap().data();
/// // 2/D * (log 4 - log 2) / (3 + 1) with D = 2; y_pred = -0.5 is floored: no gradient
/// assert!((g[0] - std::f64::consts::LN_2 / 4.0).abs() < 1e-16);
/// assert_eq!(g[1], 0.0);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn mean_squared_logarithmic_error_grad<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &MeanSquaredLogarithmicErrorOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    options: &MeanSquaredLogarithmicErrorOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let eps = T::of(1e-7);
    let two = T::of(2.0);
    last_axis_loss(
        y_true,
        y_pred,
        sample_weight,
        options.reduction,
        Combine::Mean,
        #[inline(always)]
        move |t: T, p: T| {
            let ((pf, share), (tf, _)) = (max_tie(p, eps), max_tie(t, eps));
            let delta = pf.vln_1p() - tf.vln_1p();
            (delta * delta, two * delta * share / (pf + T::one()))
        },
        backward,
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = MeanSquaredLogarithmicErrorOptions { reduction: opts.reduction()? };
    let sample_weight = args.opt_float("sample_weight")?;
    run(&args.float("y_true")?, &args.float("y_pred")?, sample_weight.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_at_eps_and_its_gradient() {
        // Keras: y_true [[0.5, 0.5]], y_pred [[1e-7, 0.3]], sum -> 0.09243986212541512,
        // gradient [-0.20273248378083628, -0.11007757203128717] (half the gradient at the tie)
        let (t, p) = ([0.5f64, 0.5], [1e-7f64, 0.3]);
        let opts = MeanSquaredLogarithmicErrorOptions { reduction: Reduction::Sum };
        let (tv, pv) = (View::new(&t, &[1, 2]).unwrap(), View::new(&p, &[1, 2]).unwrap());
        let (l, g) = mean_squared_logarithmic_error_grad(tv, pv, None, &opts, Backward::new()).unwrap();
        assert!((l.item().unwrap() - 0.09243986212541512).abs() < 1e-16);
        let g = g.get("y_pred").unwrap().data();
        assert!((g[0] + 0.20273248378083628).abs() < 1e-15 && (g[1] + 0.11007757203128717).abs() < 1e-15);
        // negative values are floored: same loss as eps, zero gradient
        let (t, p) = ([0.5f64], [-1.0f64]);
        let (l, g) =
            mean_squared_logarithmic_error_grad(View::from(&t[..]), View::from(&p[..]), None, &opts, Backward::new())
                .unwrap();
        // Keras: 0.1644018728001578
        assert!((l.item().unwrap() - 0.1644018728001578).abs() < 1e-15);
        assert_eq!(g.get("y_pred").unwrap().data(), &[0.0]);
    }

    #[test]
    fn nan_propagates() {
        let (t, p) = ([0.5f64, 0.5], [f64::NAN, 0.3]);
        let l =
            mean_squared_logarithmic_error(View::from(&t[..]), View::from(&p[..]), None, &Default::default()).unwrap();
        assert!(l.item().unwrap().is_nan());
    }
}
