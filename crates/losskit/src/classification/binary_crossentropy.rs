//! `binary_crossentropy`: Keras binary cross-entropy (`keras.losses.BinaryCrossentropy`).

use super::LabelSmoothing;
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, KERAS_REDUCTION, KERAS_SAMPLE_WEIGHT};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec, OptDefault, OptKind};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::{align_pair, keras_rows, last_axis_loss, Combine, Staged, EPSILON};
use crate::kernels::stable::exp_neg_abs;
use crate::kernels::sum::sum_zip;
use crate::kernels::xent::{bce_clipped, bce_logits, bce_logits_with};
use crate::reduction::{Reduction, KERAS_REDUCTIONS};
use crate::tensor::{resolve_axis, Tensor, View};

macro_rules! formula {
    () => {
        r"\tilde y = (1-\lambda)\,y + \tfrac{\lambda}{2},\qquad \ell = \frac1D \sum_{d=1}^{D} -\big[\tilde y_d \log q_d + (1-\tilde y_d)\log(1-q_d)\big],\ \ q_d = \operatorname{clip}(\hat y_d, \epsilon, 1-\epsilon)\ \ (\text{from\_logits}=\text{False}),\qquad \ell = \frac1D \sum_{d} -\big[\tilde y_d \log\sigma(\hat y_d) + (1-\tilde y_d)\log\sigma(-\hat y_d)\big]\ \ (\text{True}),\qquad \epsilon = 10^{-7},\ d \text{ along } axis"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "binary_crossentropy",
    family: Family::Classification,
    summary: "Keras binary cross-entropy: per-element cross-entropy of clipped probabilities (or of logits through log-sigmoid), labels optionally smoothed towards 1/2, averaged along `axis`, then Keras-reduced.",
    formula: formula!(),
    reference: "keras.losses.BinaryCrossentropy",
    reference_call: "keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing, axis=axis, reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)",
    reduction_default: "sum_over_batch_size",
    none_shape: "y_pred.shape with `axis` removed: (N,) for (N, D); a 1-D input gives a 0-d scalar",
    conventions: "`axis` is the axis the per-element losses are AVERAGED over (default: the last), not a class axis; \
a 1-D input is one sample and gives a single number, even with reduction 'none'. from_logits=False clips y_pred to \
[1e-7, 1 - 1e-7] (1 - 1e-7 rounds to 1 - 2^-23 in float32, so the largest term there is 15.94, against 16.12 at the \
lower bound); a clipped element has zero gradient, and exactly at a bound half of it (jnp.clip's tie rule). \
from_logits=True uses log-sigmoid without clipping (logit -100 with label 1 costs 100). Label smoothing maps y to \
y(1 - λ) + λ/2, λ in [0, 1]. Values of y_true and y_pred are not range-checked: out-of-range probabilities are clipped \
and labels outside [0, 1] are used as given, as in the reference. y_true and y_pred have the same shape up to a \
trailing axis of size 1 (Keras' rank alignment). Reductions: 'sum_over_batch_size' and 'mean' divide the weighted \
sum by the number of per-sample values, 'mean_with_sample_weight' by the sum of the weights, 'sum' sums, 'none' \
returns the weighted per-sample values (a 0-d per-sample loss is never reduced). The gradient is with respect to y_pred.",
    errata: "The post's bce drops the leading minus sign, multiplies log(1 - y) by log(1 - ŷ) instead of (1 - y) by \
log(1 - ŷ) (so negatives contribute nothing and positives give +inf), and does not clip.",
    args: &[
        arg("y_true", "(N, ..., D)", F, false, false, "labels or probabilities, nominally in [0, 1] (not checked)"),
        arg("y_pred", "(N, ..., D), the shape of y_true", F, true, false, "probabilities, or logits when from_logits"),
        KERAS_SAMPLE_WEIGHT,
    ],
    options: &[
        opt("from_logits", OptKind::Bool, OptDefault::Bool(false), "y_pred holds logits instead of probabilities"),
        opt("label_smoothing", OptKind::Float, OptDefault::Float(0.0), "in [0, 1]"),
        opt("axis", OptKind::Int, OptDefault::Int(-1), "the axis of the mean; negative counts from the end"),
        KERAS_REDUCTION,
    ],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`binary_crossentropy`](fn@binary_crossentropy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BinaryCrossentropyOptions {
    /// `y_pred` holds logits (default `false`: probabilities).
    pub from_logits: bool,
    /// Label smoothing `λ` in `[0, 1]`: labels become `y (1 - λ) + λ / 2` (default 0).
    pub label_smoothing: f64,
    /// The axis of the mean (default -1, the last).
    pub axis: i64,
    /// A Keras reduction (default `sum_over_batch_size`).
    pub reduction: Reduction,
}

impl Default for BinaryCrossentropyOptions {
    fn default() -> Self {
        BinaryCrossentropyOptions {
            from_logits: false,
            label_smoothing: 0.0,
            axis: -1,
            reduction: Reduction::SumOverBatchSize,
        }
    }
}

/// Keras binary cross-entropy, averaged along `axis`, with Keras sample weights and reduction.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing,
/// axis=axis, reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)` (Keras 3, JAX
/// backend).
///
/// # Conventions
/// - `axis` is the axis of the mean; the per-sample loss has `y_pred`'s shape without it (a
///   1-D input gives a 0-d result, which no reduction changes).
/// - Probabilities are clipped to `[1e-7, 1 - 1e-7]` (in the dtype: `1 - 2^-23` for `f32`):
///   no gradient where clipped, half of it exactly at a bound. Logits go through log-sigmoid.
/// - `y_true` and `y_pred` have the same shape, up to a trailing axis of size 1.
/// - `sample_weight` broadcasts against the per-sample loss after Keras' rank alignment;
///   `sum_over_batch_size`/`mean` divide by the number of weighted values,
///   `mean_with_sample_weight` by the sum of the weights (0 when that is 0).
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) when the shapes do not fit;
/// [`LossError::InvalidOption`](crate::LossError::InvalidOption) for `label_smoothing` outside
/// `[0, 1]`, an `axis` out of range, or a reduction that is not a Keras one.
///
/// # Example
/// ```
/// use losskit::{binary_crossentropy, BinaryCrossentropyOptions, View};
/// let y_true = [0.0f64, 1.0, 0.0, 0.0];
/// let y_pred = [0.6f64, 0.4, 0.4, 0.6];
/// let (yt, yp) = (View::new(&y_true, &[2, 2])?, View::new(&y_pred, &[2, 2])?);
/// // row 0: -(ln 0.4 + ln 0.4) / 2 = 0.9163; row 1: -(ln 0.6 + ln 0.4) / 2 = 0.7136
/// // (keras.losses.binary_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]) = [0.916, 0.714])
/// let loss = binary_crossentropy(yt, yp, None, &BinaryCrossentropyOptions::default())?;
/// let expected = (-(0.4f64.ln() + 0.4f64.ln()) / 2.0 - (0.6f64.ln() + 0.4f64.ln()) / 2.0) / 2.0;
/// assert!((loss.item().unwrap() - expected).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn binary_crossentropy<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &BinaryCrossentropyOptions,
) -> Result<Tensor<T>> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`binary_crossentropy`](fn@binary_crossentropy) and its gradient with respect to `y_pred`.
///
/// # Example
/// ```
/// use losskit::{binary_crossentropy_grad, Backward, BinaryCrossentropyOptions, Reduction, View};
/// let y_true = [1.0f64, 0.0];
/// let logits = [0.0f64, 2.0];
/// let opts = BinaryCrossentropyOptions { from_logits: true, reduction: Reduction::Sum, ..Default::default() };
/// let (_, g) = binary_crossentropy_grad(View::from(&y_true[..]), View::from(&logits[..]), None, &opts, Backward::new())?;
/// // d/dx of the mean over 2 elements: (sigmoid(x) - y) / 2
/// let s = 1.0 / (1.0 + (-2.0f64).exp());
/// let g = g.get("y_pred").unwrap().data();
/// assert!((g[0] + 0.25).abs() < 1e-15 && (g[1] - s / 2.0).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn binary_crossentropy_grad<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &BinaryCrossentropyOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, Some(backward))
}

/// One element's binary cross-entropy and its derivative in the prediction, after smoothing.
#[inline(always)]
fn bce_element<T: Float>(smooth: LabelSmoothing<T>, from_logits: bool, lo: T, hi: T, t: T, x: T) -> (T, T) {
    let t = smooth.apply(t);
    if from_logits {
        bce_logits(t, x)
    } else {
        bce_clipped(t, x, lo, hi)
    }
}

fn run<T: Float>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    options: &BinaryCrossentropyOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let smooth = LabelSmoothing::<T>::binary(options.label_smoothing)?;
    options.reduction.check(KERAS_REDUCTIONS)?;
    let shape = align_pair(y_true.shape(), y_pred.shape())?;
    let axis = resolve_axis("axis", options.axis, shape.len())?;
    let (lo, hi) = (T::of(EPSILON), T::of(1.0 - EPSILON));
    let from_logits = options.from_logits;
    let element = move |t: T, x: T| bce_element(smooth, from_logits, lo, hi, t, x);
    if axis + 1 == shape.len() {
        // the mean over the last axis: the shared one-pass elementwise kernel
        // one loop per choice (a choice inside the loop computes both branches per element)
        let red = options.reduction;
        return if from_logits {
            last_axis_loss(
                y_true,
                y_pred,
                sample_weight,
                red,
                Combine::Mean,
                // the exponentials first (see `Staged`)
                Staged(
                    #[inline(always)]
                    |_, x| exp_neg_abs(x),
                    #[inline(always)]
                    move |t, x, e| bce_logits_with(smooth.apply(t), x, e),
                ),
                backward,
            )
        } else {
            last_axis_loss(
                y_true,
                y_pred,
                sample_weight,
                red,
                Combine::Mean,
                #[inline(always)]
                move |t, x| bce_clipped(smooth.apply(t), x, lo, hi),
                backward,
            )
        };
    }
    keras_rows(
        &shape,
        axis,
        Some(y_true.data()),
        y_pred,
        sample_weight,
        None,
        options.reduction,
        backward,
        |row, grad, _| {
            let n = row.pred.len();
            let total = sum_zip(row.target, row.pred, |t, p| element(t, p).0.acc());
            if let Some((cot, g)) = grad {
                // d mean / d element = 1 / D
                let c = cot / T::of_usize(n);
                for (d, gd) in g.iter_mut().enumerate() {
                    *gd = c * element(row.target[d], row.pred[d]).1;
                }
            }
            T::from_acc(total / n as f64)
        },
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = BinaryCrossentropyOptions {
        from_logits: opts.bool("from_logits"),
        label_smoothing: opts.float("label_smoothing"),
        axis: opts.int("axis").unwrap_or(-1),
        reduction: opts.reduction()?,
    };
    run(&args.float("y_true")?, &args.float("y_pred")?, args.opt_float("sample_weight")?.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LossError;

    fn bce(yt: &[f64], yp: &[f64], shape: &[usize], o: BinaryCrossentropyOptions) -> Result<Tensor<f64>> {
        binary_crossentropy(View::new(yt, shape)?, View::new(yp, shape)?, None, &o)
    }

    #[test]
    fn clipping_bounds_and_float32_top() {
        // p = 0 with y = 1 and p = 1 with y = 0: both clipped, -ln(1e-7) each in f64
        let o = BinaryCrossentropyOptions { reduction: Reduction::None, ..Default::default() };
        let l = bce(&[1.0, 0.0], &[0.0, 1.0], &[2], o).unwrap();
        assert!((l.item().unwrap() + (1e-7f64).ln()).abs() < 1e-9);
        // f32: the top bound is 1 - 2^-23, so p = 1 with y = 0 costs -ln(2^-23) = 15.942
        let l = binary_crossentropy(View::vector(&[0.0f32][..]), View::vector(&[1.0f32][..]), None, &o).unwrap();
        assert!((l.item().unwrap() - 15.942385).abs() < 1e-5);
        let l = binary_crossentropy(View::vector(&[1.0f32][..]), View::vector(&[0.0f32][..]), None, &o).unwrap();
        assert!((l.item().unwrap() - 16.118095).abs() < 1e-5);
    }

    #[test]
    fn clipped_elements_have_no_gradient() {
        let o = BinaryCrossentropyOptions { reduction: Reduction::Sum, ..Default::default() };
        let (yt, yp) = ([1.0f64, 0.0, 1.0], [0.0f64, 1.0, 0.5]);
        let (_, g) =
            binary_crossentropy_grad(View::from(&yt[..]), View::from(&yp[..]), None, &o, Backward::new()).unwrap();
        let g = g.get("y_pred").unwrap().data();
        assert_eq!(&g[..2], &[0.0, 0.0]);
        // -1/p / 3 at p = 0.5
        assert!((g[2] + 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn axis_of_the_mean() {
        // shape (2, 2) averaged over axis 0: the columns
        let yt = [1.0f64, 0.0, 1.0, 0.0];
        let yp = [0.5f64, 0.5, 0.25, 0.75];
        let o = BinaryCrossentropyOptions { axis: 0, reduction: Reduction::None, ..Default::default() };
        let l = bce(&yt, &yp, &[2, 2], o).unwrap();
        let c0 = -(0.5f64.ln() + 0.25f64.ln()) / 2.0;
        let c1 = -(0.5f64.ln() + 0.25f64.ln()) / 2.0;
        assert_eq!(l.shape(), &[2]);
        assert!((l.data()[0] - c0).abs() < 1e-15 && (l.data()[1] - c1).abs() < 1e-15);
    }

    #[test]
    fn logits_extremes() {
        let o = BinaryCrossentropyOptions { from_logits: true, reduction: Reduction::None, ..Default::default() };
        let l = bce(&[1.0, 0.0, 1.0], &[-100.0, 1e4, 1e4], &[3], o).unwrap();
        // (100 + 1e4 + 0) / 3
        assert!((l.item().unwrap() - 10100.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn errors() {
        let d = BinaryCrossentropyOptions::default();
        let e =
            bce(&[0.0; 6], &[0.5; 6], &[2, 3], BinaryCrossentropyOptions { label_smoothing: 2.0, ..d }).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { .. }));
        let e = bce(&[0.0; 6], &[0.5; 6], &[2, 3], BinaryCrossentropyOptions { axis: 2, ..d }).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "axis"));
        let e = bce(&[0.0; 6], &[0.5; 6], &[2, 3], BinaryCrossentropyOptions { reduction: Reduction::BatchMean, ..d })
            .unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "reduction"));
        let e = binary_crossentropy(
            View::new(&[0.0f64; 6], &[3, 2]).unwrap(),
            View::new(&[0.5f64; 6], &[2, 3]).unwrap(),
            None,
            &d,
        )
        .unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "y_true"));
        let w = [1.0f64; 2];
        let e = binary_crossentropy(
            View::new(&[0.0f64; 6], &[3, 2]).unwrap(),
            View::new(&[0.5f64; 6], &[3, 2]).unwrap(),
            Some(View::new(&w, &[2]).unwrap()),
            &d,
        )
        .unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "sample_weight"));
    }
}
