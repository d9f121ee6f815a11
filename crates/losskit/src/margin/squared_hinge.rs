//! `squared_hinge`: `max(0, 1 - y ŷ)^2`, averaged over the last axis, with Keras' `{0, 1} ->
//! {-1, +1}` label conversion (Keras `SquaredHinge`).

use super::keras_hinge_labels;
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, KERAS_REDUCTION_ALT, KERAS_SAMPLE_WEIGHT};
use crate::catalog::spec::{ArgKind, Family, LossSpec};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::{last_axis_loss, Combine};
use crate::kernels::stable::max_tie;
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_n = \frac1D\sum_{d=1}^{D}\max\big(0,\ 1-\tilde y_{n,d}\,\hat y_{n,d}\big)^2,\ \ \tilde y = \begin{cases}2y-1 & \text{every element of } y \text{ is } 0 \text{ or } 1\\ y & \text{otherwise}\end{cases},\qquad \frac{\partial \ell_n}{\partial \hat y_{n,d}} = -\frac{2}{D}\,\tilde y_{n,d}\max\big(0,\ 1-\tilde y_{n,d}\,\hat y_{n,d}\big)"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "squared_hinge",
    family: Family::Margin,
    summary: "Squared hinge max(0, 1 - y_true*y_pred)^2 averaged over the last axis into one value per sample, \
labels given as 0/1 turned into -1/+1, then reduced Keras-style.",
    formula: formula!(),
    reference: "keras.losses.SquaredHinge",
    reference_call: "keras.losses.SquaredHinge(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)",
    reduction_default: "sum_over_batch_size",
    none_shape: "y_pred.shape[:-1] (a 0-d value for 1-D inputs)",
    conventions: "Label conversion is decided once for the whole y_true: if every element is 0 or 1, labels become \
2y - 1 (an all-zero y_true becomes all -1); if any element is something else (a -1, a 0.5), y_true is used as given \
and its zeros cost exactly 1 each whatever y_pred is. y_true may be integers or floats. The square makes the loss \
smooth: the gradient at the kink 1 - y*y_pred = 0 is 0. The last axis is averaged (not summed), so a 1-D input is \
one sample and its 0-d loss is returned unreduced; y_true and y_pred have the same shape up to a trailing axis of \
size 1. sample_weight multiplies the per-sample values; sum_over_batch_size (= mean) divides by their count, \
mean_with_sample_weight by sum(sample_weight) (0 when that is 0). Only y_pred has a gradient.",
    errata: "The post sums max(0, 1 - y*ŷ)^2 over every element, where Keras averages over the last axis and then \
(by default) over the samples, so the post is too large by the element count; and it does not convert 0/1 labels to \
-1/+1, so each 0 label costs 1 whatever ŷ is.",
    args: &[
        arg(
            "y_true",
            "(N, ..., D); -1/+1 or 0/1 labels",
            ArgKind::FloatOrInt,
            false,
            false,
            "the shape of y_pred (up to a trailing 1)",
        ),
        arg("y_pred", "(N, ..., D)", ArgKind::Float, true, false, "finite"),
        KERAS_SAMPLE_WEIGHT,
    ],
    options: &[KERAS_REDUCTION_ALT],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`squared_hinge`](fn@squared_hinge).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SquaredHingeOptions {
    /// `sum_over_batch_size` (default), `mean`, `mean_with_sample_weight`, `sum` or `none`.
    pub reduction: Reduction,
}

impl Default for SquaredHingeOptions {
    fn default() -> Self {
        SquaredHingeOptions { reduction: Reduction::SumOverBatchSize }
    }
}

/// Keras' squared hinge loss, averaged over the last axis per sample and reduced as Keras
/// does.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `keras.losses.SquaredHinge(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)`.
///
/// # Conventions
/// - When every element of `y_true` is 0 or 1, the labels are converted to `2y - 1`;
///   otherwise they are used as given (integer labels: convert them to floats first, e.g.
///   `labels.map(|&l| l as f64)`).
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
/// use losskit::{squared_hinge, SquaredHingeOptions, View};
/// // 0/1 labels become -1/+1: margins 1 - (-1)(-0.5) = 0.5 and 1 - (1)(0.25) = 0.75
/// let y_true = [0.0f64, 1.0];
/// let y_pred = [-0.5f64, 0.25];
/// let loss = squared_hinge(View::from(&y_true[..]), View::from(&y_pred[..]), None, &SquaredHingeOptions::default())?;
/// assert!((loss.item().unwrap() - (0.25 + 0.5625) / 2.0).abs() < 1e-15);
/// // with a -1 among them nothing is converted: the 0 label costs 1
/// let y_true = [0.0f64, -1.0];
/// let loss = squared_hinge(View::from(&y_true[..]), View::from(&y_pred[..]), None, &SquaredHingeOptions::default())?;
/// assert!((loss.item().unwrap() - (1.0 + 1.5625) / 2.0).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn squared_hinge<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &SquaredHingeOptions,
) -> Result<Tensor<T>> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`squared_hinge`](fn@squared_hinge) and its gradient with respect to `y_pred`.
///
/// # Example
/// ```
/// use losskit::{squared_hinge_grad, Backward, SquaredHingeOptions, View};
/// let (t, p) = ([-1.0f64, 1.0], [0.5f64, 2.0]);
/// let (_, grads) = squared_hinge_grad(View::from(&t[..]), View::from(&p[..]), None, &SquaredHingeOptions::default(), Backward::new())?;
/// // -2/D * y * max(0, 1 - y ŷ) with D = 2: [-(-1)(1.5), 0]
/// assert_eq!(grads.get("y_pred").unwrap().data(), &[1.5, 0.0]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn squared_hinge_grad<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &SquaredHingeOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    options: &SquaredHingeOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let labels = keras_hinge_labels(y_true);
    let two = T::of(2.0);
    last_axis_loss(
        &labels,
        y_pred,
        sample_weight,
        options.reduction,
        Combine::Mean,
        #[inline(always)]
        move |y: T, p: T| {
            // at the kink the margin is 0, so JAX's half-share of max does not matter
            let (m, _) = max_tie(T::one() - y * p, T::zero());
            (m * m, -two * y * m)
        },
        backward,
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = SquaredHingeOptions { reduction: opts.reduction()? };
    let sample_weight = args.opt_float("sample_weight")?;
    run(&args.float_lenient("y_true")?, &args.float("y_pred")?, sample_weight.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(t: &[f64], p: &[f64], shape: &[usize], red: Reduction) -> (Tensor<f64>, Vec<f64>) {
        let (tv, pv) = (View::new(t, shape).unwrap(), View::new(p, shape).unwrap());
        let (l, g) =
            squared_hinge_grad(tv, pv, None, &SquaredHingeOptions { reduction: red }, Backward::new()).unwrap();
        (l, g.get("y_pred").unwrap().data().to_vec())
    }

    #[test]
    fn conversion_is_all_or_nothing() {
        // Keras (sum): [[0, 1]] / [[-1, 0.3]] -> 0.245, gradient [0, -0.7]
        let (l, g) = sh(&[0.0, 1.0], &[-1.0, 0.3], &[1, 2], Reduction::Sum);
        assert!((l.item().unwrap() - 0.245).abs() < 1e-15);
        assert_eq!(g[0], 0.0);
        assert!((g[1] + 0.7).abs() < 1e-15);
        // Keras (sum): [[0, 1, -1]] / [[-1, 0.3, 2]] -> 3.4966666666666666, gradient [-0, -0.4667, 2]
        let (l, g) = sh(&[0.0, 1.0, -1.0], &[-1.0, 0.3, 2.0], &[1, 3], Reduction::Sum);
        assert!((l.item().unwrap() - 3.4966666666666666).abs() < 1e-15);
        assert!((g[1] + 0.4666666666666666).abs() < 1e-15 && g[2] == 2.0);
        // an all-zero y_true is converted to all -1
        let (l, _) = sh(&[0.0, 0.0], &[-1.0, -3.0], &[2, 1], Reduction::Sum);
        assert_eq!(l.item(), Some(0.0));
    }

    #[test]
    fn kink_gradient_is_zero() {
        let (l, g) = sh(&[1.0, -1.0], &[1.0, -1.0], &[1, 2], Reduction::Sum);
        assert_eq!(l.item(), Some(0.0));
        assert_eq!(g, vec![0.0, 0.0]);
    }

    #[test]
    fn integer_labels_through_the_catalogue() {
        use crate::catalog::{evaluate, AnyTensor, ArrayArg};
        let args = vec![
            ("y_true".to_string(), ArrayArg::Int(Tensor::new(vec![0, 1], vec![1, 2]).unwrap())),
            ("y_pred".to_string(), ArrayArg::F64(Tensor::new(vec![-1.0, 0.3], vec![1, 2]).unwrap())),
        ];
        let out = evaluate("squared_hinge", &args, &[("reduction".into(), "sum".into())], true).unwrap();
        assert!(matches!(out.loss, AnyTensor::F64(ref t) if (t.item().unwrap() - 0.245).abs() < 1e-15));
    }
}
