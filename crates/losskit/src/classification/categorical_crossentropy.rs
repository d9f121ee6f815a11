//! `categorical_crossentropy`: Keras categorical cross-entropy
//! (`keras.losses.CategoricalCrossentropy`).

use super::{keras_prob_xent_rows, LabelSmoothing};
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, KERAS_REDUCTION, KERAS_SAMPLE_WEIGHT};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec, OptDefault, OptKind};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::{align_pair, keras_row_groups};
use crate::kernels::rows::rows_per_group;
use crate::reduction::{Reduction, KERAS_REDUCTIONS};
use crate::tensor::{resolve_axis, Tensor, View};

macro_rules! formula {
    () => {
        r"\tilde y = (1-\lambda)\,y + \tfrac{\lambda}{K},\qquad \ell = -\sum_{c} \tilde y_{c} \log \operatorname{clip}\Big(\frac{\hat y_{c}}{\sum_k \hat y_{k}}, \epsilon, 1-\epsilon\Big)\ \ (\text{from\_logits}=\text{False}),\qquad \ell = -\sum_c \tilde y_c \log\operatorname{softmax}(\hat y)_c\ \ (\text{True}),\qquad \epsilon = 10^{-7},\ c \text{ along } axis,\ K = \text{size of the last axis}"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "categorical_crossentropy",
    family: Family::Classification,
    summary: "Keras categorical cross-entropy for one-hot or probability targets: scores renormalised along `axis` and clipped to [1e-7, 1-1e-7], or log-softmax of logits, then Keras-reduced.",
    formula: formula!(),
    reference: "keras.losses.CategoricalCrossentropy",
    reference_call: "keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing, axis=axis, reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)",
    reduction_default: "sum_over_batch_size",
    none_shape: "y_pred.shape with `axis` removed: (N,) for (N, C)",
    conventions: "`axis` is the class axis (any axis, negative counts from the end). from_logits=False divides y_pred \
by its sum along `axis` (so unnormalised non-negative scores are accepted) and clips to [1e-7, 1 - 1e-7] (1 - 2^-23 in \
float32); the gradient flows through the renormalisation, and a clipped probability passes none of it (half exactly at \
a bound). A row summing to 0 gives NaN, as in the reference; values are not range-checked. from_logits=True uses the \
log-softmax (finite for logits of any size). Label smoothing maps y to y(1 - λ) + λ/K where K is the size of the LAST \
axis of y_true, which is the class count only when axis = -1 (the reference does this; checked with axis = 1). \
y_true and y_pred have the same shape up to a trailing axis of size 1; a class axis of size 1 is accepted (the \
reference only warns). Reductions as for every Keras loss: 'sum_over_batch_size'/'mean' divide the weighted sum by \
the number of per-sample values, 'mean_with_sample_weight' by the sum of the weights, 'sum' sums, 'none' returns them. \
The gradient is with respect to y_pred.",
    errata: "The post's cce sums -y log ŷ over the whole batch (the reference averages the per-sample values), does \
not renormalise ŷ and does not clip it, so a zero probability on the labelled class gives inf and 0 log 0 gives NaN.",
    args: &[
        arg("y_true", "(N, ..., C)", F, false, false, "one-hot or probabilities (not checked)"),
        arg("y_pred", "(N, ..., C), the shape of y_true", F, true, false, "from_logits=False: non-negative scores with a positive sum along axis; True: finite logits"),
        KERAS_SAMPLE_WEIGHT,
    ],
    options: &[
        opt("from_logits", OptKind::Bool, OptDefault::Bool(false), "y_pred holds logits instead of probabilities"),
        opt("label_smoothing", OptKind::Float, OptDefault::Float(0.0), "in [0, 1]"),
        opt("axis", OptKind::Int, OptDefault::Int(-1), "the class axis; negative counts from the end"),
        KERAS_REDUCTION,
    ],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`categorical_crossentropy`](fn@categorical_crossentropy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CategoricalCrossentropyOptions {
    /// `y_pred` holds logits (default `false`: probabilities or non-negative scores).
    pub from_logits: bool,
    /// Label smoothing `λ` in `[0, 1]`: labels become `y (1 - λ) + λ / K`, `K` the size of the
    /// last axis (default 0).
    pub label_smoothing: f64,
    /// The class axis (default -1).
    pub axis: i64,
    /// A Keras reduction (default `sum_over_batch_size`).
    pub reduction: Reduction,
}

impl Default for CategoricalCrossentropyOptions {
    fn default() -> Self {
        CategoricalCrossentropyOptions {
            from_logits: false,
            label_smoothing: 0.0,
            axis: -1,
            reduction: Reduction::SumOverBatchSize,
        }
    }
}

/// Keras categorical cross-entropy between target distributions (one-hot or soft) and
/// predicted probabilities or logits, along a class axis, with Keras sample weights and
/// reduction.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `keras.losses.CategoricalCrossentropy(from_logits=from_logits,
/// label_smoothing=label_smoothing, axis=axis, reduction=reduction)(y_true, y_pred,
/// sample_weight=sample_weight)` (Keras 3, JAX backend).
///
/// # Conventions
/// - Probabilities are renormalised along `axis` (gradient included) and clipped to
///   `[1e-7, 1 - 1e-7]`; logits go through a log-softmax.
/// - Label smoothing divides `λ` by the size of the last axis, whatever `axis` is (as the
///   reference does).
/// - The per-sample loss has `y_pred`'s shape without `axis`; `sample_weight` broadcasts
///   against it after Keras' rank alignment.
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) when `y_true` and `y_pred` differ in shape
/// (beyond a trailing axis of size 1) or `sample_weight` does not broadcast;
/// [`LossError::InvalidOption`](crate::LossError::InvalidOption) for `label_smoothing` outside
/// `[0, 1]`, an `axis` out of range, or a reduction that is not a Keras one.
///
/// # Example
/// ```
/// use losskit::{categorical_crossentropy, CategoricalCrossentropyOptions, View};
/// let y_true = [0.0f64, 1.0, 0.0, 0.0, 0.0, 1.0];
/// let y_pred = [0.05f64, 0.95, 0.0, 0.1, 0.8, 0.1];
/// let (yt, yp) = (View::new(&y_true, &[2, 3])?, View::new(&y_pred, &[2, 3])?);
/// // per sample -ln 0.95 = 0.0513 and -ln 0.1 = 2.3026 (keras.losses.categorical_crossentropy
/// // gives [0.0513, 2.303]); sum_over_batch_size averages them
/// let loss = categorical_crossentropy(yt, yp, None, &CategoricalCrossentropyOptions::default())?;
/// assert!((loss.item().unwrap() + (0.95f64.ln() + 0.1f64.ln()) / 2.0).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn categorical_crossentropy<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &CategoricalCrossentropyOptions,
) -> Result<Tensor<T>> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`categorical_crossentropy`](fn@categorical_crossentropy) and its gradient with respect to
/// `y_pred`.
///
/// # Example
/// ```
/// use losskit::{categorical_crossentropy_grad, Backward, CategoricalCrossentropyOptions, Reduction, View};
/// // logits [0, ln 3]: softmax [1/4, 3/4]; the gradient of the loss is softmax - y
/// let y_true = [0.0f64, 1.0];
/// let logits = [0.0f64, 3.0f64.ln()];
/// let opts = CategoricalCrossentropyOptions { from_logits: true, reduction: Reduction::Sum, ..Default::default() };
/// let (loss, g) = categorical_crossentropy_grad(View::from(&y_true[..]), View::from(&logits[..]), None, &opts, Backward::new())?;
/// assert!((loss.item().unwrap() + 0.75f64.ln()).abs() < 1e-15);
/// let g = g.get("y_pred").unwrap().data();
/// assert!((g[0] - 0.25).abs() < 1e-15 && (g[1] + 0.25).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn categorical_crossentropy_grad<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &CategoricalCrossentropyOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    options: &CategoricalCrossentropyOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    options.reduction.check(KERAS_REDUCTIONS)?;
    let shape = align_pair(y_true.shape(), y_pred.shape())?;
    let axis = resolve_axis("axis", options.axis, shape.len())?;
    // Keras smooths with the size of the LAST axis, not of `axis`
    let last = shape.last().copied().unwrap_or(1);
    let smooth = LabelSmoothing::<T>::categorical(options.label_smoothing, last)?;
    let from_logits = options.from_logits;
    keras_row_groups(
        &shape,
        axis,
        Some(y_true.data()),
        y_pred,
        sample_weight,
        None,
        options.reduction,
        backward,
        rows_per_group(shape[axis]),
        #[inline(always)]
        |rows, grad, values, work| keras_prob_xent_rows(from_logits, rows, smooth, grad, values, work),
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = CategoricalCrossentropyOptions {
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

    fn cce_grad(
        yt: &[f64],
        yp: &[f64],
        shape: &[usize],
        o: CategoricalCrossentropyOptions,
    ) -> Result<(Tensor<f64>, Vec<f64>)> {
        let (l, g) =
            categorical_crossentropy_grad(View::new(yt, shape)?, View::new(yp, shape)?, None, &o, Backward::new())?;
        Ok((l, g.get("y_pred").map(|t| t.data().to_vec()).unwrap_or_default()))
    }

    #[test]
    fn renormalisation_is_differentiated() {
        // scores [1, 3] -> probabilities [1/4, 3/4]; y = [0, 1]: loss -ln(3/4)
        // d/dx_j of -ln(x_1 / (x_0 + x_1)) = 1/s - [j == 1] / x_1 = [1/4, 1/4 - 1/3]
        let o = CategoricalCrossentropyOptions { reduction: Reduction::Sum, ..Default::default() };
        let (l, g) = cce_grad(&[0.0, 1.0], &[1.0, 3.0], &[2], o).unwrap();
        assert!((l.item().unwrap() + 0.75f64.ln()).abs() < 1e-15);
        assert!((g[0] - 0.25).abs() < 1e-15 && (g[1] - (0.25 - 1.0 / 3.0)).abs() < 1e-15);
    }

    #[test]
    fn class_axis_and_smoothing_use_the_last_axis_size() {
        // shape (1, 2, 3), class axis 1 (size 2) but K = 3 (the last axis)
        let yt = [1.0f64, 1.0, 1.0, 0.0, 0.0, 0.0];
        let yp = [0.2f64, 0.5, 0.5, 0.8, 0.5, 0.5];
        let o = CategoricalCrossentropyOptions {
            axis: 1,
            label_smoothing: 0.3,
            reduction: Reduction::None,
            ..Default::default()
        };
        let (l, _) = cce_grad(&yt, &yp, &[1, 2, 3], o).unwrap();
        assert_eq!(l.shape(), &[1, 3]);
        let (hi, lo) = (0.7 + 0.1, 0.1);
        let want0 = -(hi * 0.2f64.ln() + lo * 0.8f64.ln());
        let want1 = -(hi * 0.5f64.ln() + lo * 0.5f64.ln());
        assert!((l.data()[0] - want0).abs() < 1e-15);
        assert!((l.data()[1] - want1).abs() < 1e-15 && (l.data()[2] - want1).abs() < 1e-15);
    }

    #[test]
    fn extremes() {
        // probabilities exactly 0 and 1: clipped, finite, no gradient through the clip
        let o = CategoricalCrossentropyOptions { reduction: Reduction::None, ..Default::default() };
        let (l, g) = cce_grad(&[1.0, 0.0], &[0.0, 1.0], &[2], o).unwrap();
        assert!((l.item().unwrap() + 1e-7f64.ln()).abs() < 1e-9);
        // d/dx_1 through the sum only: g_0 = -1/q0 * 0 ... = 0; the renormalisation term is 0 too
        assert!(g.iter().all(|v| *v == 0.0));
        // logits +-1e4
        let o = CategoricalCrossentropyOptions { from_logits: true, reduction: Reduction::None, ..Default::default() };
        let (l, g) = cce_grad(&[0.0, 1.0], &[1e4, -1e4], &[2], o).unwrap();
        assert_eq!(l.item(), Some(2e4));
        assert_eq!(g, vec![1.0, -1.0]);
        // C = 1: probabilities clip at 1 - 1e-7, logits give 0
        let o = CategoricalCrossentropyOptions { reduction: Reduction::None, ..Default::default() };
        let (l, g) = cce_grad(&[1.0], &[0.3], &[1, 1], o).unwrap();
        assert!((l.data()[0] + (1.0f64 - 1e-7).ln()).abs() < 1e-15);
        assert_eq!(g, vec![0.0]);
        // a zero row: NaN, as in the reference
        let (l, _) = cce_grad(&[1.0, 0.0], &[0.0, 0.0], &[2], o).unwrap();
        assert!(l.item().unwrap().is_nan());
    }

    #[test]
    fn errors() {
        let d = CategoricalCrossentropyOptions::default();
        let e = cce_grad(&[0.0; 6], &[0.5; 6], &[2, 3], CategoricalCrossentropyOptions { label_smoothing: -0.5, ..d })
            .unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "label_smoothing"));
        let e = cce_grad(&[0.0; 6], &[0.5; 6], &[2, 3], CategoricalCrossentropyOptions { axis: -3, ..d }).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "axis"));
        let e = categorical_crossentropy(
            View::new(&[0.0f64; 6], &[6]).unwrap(),
            View::new(&[0.5f64; 6], &[2, 3]).unwrap(),
            None,
            &d,
        )
        .unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "y_true"));
    }
}
