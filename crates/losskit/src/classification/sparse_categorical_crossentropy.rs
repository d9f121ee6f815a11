//! `sparse_categorical_crossentropy`: Keras categorical cross-entropy for integer labels
//! (`keras.losses.SparseCategoricalCrossentropy`).

use super::keras_index_xent_rows;
use super::targets::first_bad_class;
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, KERAS_REDUCTION, KERAS_SAMPLE_WEIGHT};
use crate::catalog::spec::{ArgKind, Family, LossSpec, OptDefault, OptKind};
use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::{keras_row_groups, squeeze_or_expand};
use crate::kernels::rows::rows_per_group;
use crate::kernels::xent::IndexClasses;
use crate::reduction::{Reduction, KERAS_REDUCTIONS};
use crate::tensor::{fmt_shape, resolve_axis, Tensor, View};

macro_rules! formula {
    () => {
        r"\ell = -\log \operatorname{clip}\Big(\frac{\hat y_{y}}{\sum_k \hat y_{k}}, \epsilon, 1-\epsilon\Big)\ \ (\text{from\_logits}=\text{False}),\qquad \ell = -\log\operatorname{softmax}(\hat y)_{y}\ \ (\text{True}),\qquad \ell = 0 \text{ where } y = \text{ignore\_class},\qquad \epsilon = 10^{-7}"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "sparse_categorical_crossentropy",
    family: Family::Classification,
    summary: "Keras sparse categorical cross-entropy for integer labels: renormalised and clipped probabilities, or log-softmax of logits, with an optional ignored class that is left out of the mean.",
    formula: formula!(),
    reference: "keras.losses.SparseCategoricalCrossentropy",
    reference_call: "keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=ignore_class, reduction=reduction, axis=axis)(y_true, y_pred, sample_weight=sample_weight)",
    reduction_default: "sum_over_batch_size",
    none_shape: "y_pred.shape[:-1]",
    conventions: "y_true holds integer class ids of shape y_pred.shape[:-1], optionally with a trailing axis of size 1. \
Every id must lie in [0, C) or equal ignore_class: other ids are an error here, whereas the reference silently gives \
them loss 0. ignore_class positions get loss 0 and zero gradient (with from_logits=False too, although the reference \
zeroes their scores there, which would make them 0/0), and they are left out of the mean: 'sum_over_batch_size' and \
'mean' divide by the number of non-ignored positions (0 when all are ignored), 'sum' sums, 'none' has zeros there, \
'mean_with_sample_weight' divides by the sum of the weights of the non-ignored positions. from_logits=False renormalises \
y_pred along the class axis (gradient included) and clips to [1e-7, 1 - 1e-7] (1 - 2^-23 in float32); True uses the \
log-softmax. The class axis is the last one: `axis` must designate it (-1, or ndim - 1); the reference computes \
nonsense or fails for any other axis, so other values are an error here. No label smoothing and no class weights \
(sample_weight weighs positions). A class axis of size 1 with y_true of rank >= 2 and no trailing 1 is rejected, as by \
the reference (its rank alignment squeezes y_pred's class axis). The gradient is with respect to y_pred.",
    errata: "The post's sparsece computes -sum(ŷ log ŷ), the entropy of the prediction, and never reads the labels. The \
loss is -log p[y] per position (after Keras' renormalisation and clipping, or log-softmax of logits), averaged over \
the positions.",
    args: &[
        arg("y_true", "y_pred.shape[:-1] (or with a trailing 1)", ArgKind::Int, false, false, "ids in [0, C) or == ignore_class"),
        arg("y_pred", "(N, ..., C)", ArgKind::Float, true, false, "from_logits=False: non-negative scores with a positive sum; True: finite logits"),
        KERAS_SAMPLE_WEIGHT,
    ],
    options: &[
        opt("from_logits", OptKind::Bool, OptDefault::Bool(false), "y_pred holds logits instead of probabilities"),
        opt("ignore_class", OptKind::Int, OptDefault::None, "None (default) or a class id whose positions are ignored"),
        KERAS_REDUCTION,
        opt("axis", OptKind::Int, OptDefault::Int(-1), "the class axis: only the last axis (-1) is supported, as in the reference"),
    ],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`sparse_categorical_crossentropy`](fn@sparse_categorical_crossentropy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseCategoricalCrossentropyOptions {
    /// `y_pred` holds logits (default `false`: probabilities or non-negative scores).
    pub from_logits: bool,
    /// A label value whose positions are ignored (default `None`).
    pub ignore_class: Option<i64>,
    /// A Keras reduction (default `sum_over_batch_size`).
    pub reduction: Reduction,
    /// The class axis: must be the last axis of `y_pred` (default -1).
    pub axis: i64,
}

impl Default for SparseCategoricalCrossentropyOptions {
    fn default() -> Self {
        SparseCategoricalCrossentropyOptions {
            from_logits: false,
            ignore_class: None,
            reduction: Reduction::SumOverBatchSize,
            axis: -1,
        }
    }
}

/// Keras sparse categorical cross-entropy between integer labels and predicted probabilities
/// or logits (class axis last), with an optional ignored class, Keras sample weights and
/// reduction.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits,
/// ignore_class=ignore_class, reduction=reduction, axis=axis)(y_true, y_pred,
/// sample_weight=sample_weight)` (Keras 3, JAX backend).
///
/// # Conventions
/// - `y_true` has shape `y_pred.shape[:-1]`, or that with a trailing axis of size 1.
/// - Positions labelled `ignore_class` have loss 0, gradient 0, and do not count in the
///   `sum_over_batch_size`/`mean` denominator (an all-ignored batch gives 0).
/// - The class axis is the last axis; `axis` must designate it.
///
/// # Errors
/// [`LossError::IndexOutOfRange`] for a label outside `[0, C)` that is not `ignore_class`
/// (the reference silently gives it loss 0); [`LossError::Shape`] when `y_true` or
/// `sample_weight` does not fit `y_pred`; [`LossError::InvalidOption`] for an `axis` other
/// than the last, or a reduction that is not a Keras one.
///
/// # Example
/// ```
/// use losskit::{sparse_categorical_crossentropy, SparseCategoricalCrossentropyOptions, View};
/// let labels = [1i64, 2];
/// let y_pred = [0.05f64, 0.95, 0.0, 0.1, 0.8, 0.1];
/// // per sample -ln 0.95 = 0.0513 and -ln 0.1 = 2.3026
/// // (keras.losses.sparse_categorical_crossentropy([1, 2], y_pred) = [0.0513, 2.303])
/// let opts = SparseCategoricalCrossentropyOptions::default();
/// let loss = sparse_categorical_crossentropy(View::from(&labels[..]), View::new(&y_pred, &[2, 3])?, None, &opts)?;
/// assert!((loss.item().unwrap() + (0.95f64.ln() + 0.1f64.ln()) / 2.0).abs() < 1e-15);
/// // ignoring class 2 leaves sample 0 alone in the mean
/// let opts = SparseCategoricalCrossentropyOptions { ignore_class: Some(2), ..opts };
/// let loss = sparse_categorical_crossentropy(View::from(&labels[..]), View::new(&y_pred, &[2, 3])?, None, &opts)?;
/// assert!((loss.item().unwrap() + 0.95f64.ln()).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn sparse_categorical_crossentropy<T: Float>(
    y_true: View<'_, i64>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &SparseCategoricalCrossentropyOptions,
) -> Result<Tensor<T>> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`sparse_categorical_crossentropy`](fn@sparse_categorical_crossentropy) and its gradient
/// with respect to `y_pred`.
///
/// # Example
/// ```
/// use losskit::{sparse_categorical_crossentropy_grad, Backward, SparseCategoricalCrossentropyOptions, Reduction, View};
/// // logits [0, ln 3]: softmax [1/4, 3/4]; label 1: gradient softmax - onehot = [1/4, -1/4]
/// let labels = [1i64];
/// let logits = [0.0f64, 3.0f64.ln()];
/// let opts = SparseCategoricalCrossentropyOptions { from_logits: true, reduction: Reduction::Sum, ..Default::default() };
/// let (_, g) = sparse_categorical_crossentropy_grad(
///     View::from(&labels[..]), View::new(&logits, &[1, 2])?, None, &opts, Backward::new())?;
/// let g = g.get("y_pred").unwrap().data();
/// assert!((g[0] - 0.25).abs() < 1e-15 && (g[1] + 0.25).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn sparse_categorical_crossentropy_grad<T: Float>(
    y_true: View<'_, i64>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &SparseCategoricalCrossentropyOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, Some(backward))
}

/// The shape `y_pred` is read with, following the reference's shape handling: Keras' rank
/// alignment of the pair, then a trailing size-1 axis of `y_true` is dropped, then `y_true`
/// must be `y_pred.shape[:-1]`.
fn class_shape(y_true: &[usize], y_pred: &[usize]) -> Result<Vec<usize>> {
    let (mut t, p) = squeeze_or_expand(y_true, y_pred);
    if t.len() == p.len() && t.last() == Some(&1) {
        t.pop();
    }
    match p.split_last() {
        Some((_, lead)) if lead == &t[..] => Ok(p),
        _ if p.len() < y_pred.len() => Err(LossError::shape(
            "y_true",
            format!(
                "{} with a trailing axis of size 1: with a class axis of size 1 and y_true of rank >= 2, the \
reference's rank alignment squeezes y_pred's class axis and then rejects the pair",
                fmt_shape(&y_pred[..y_pred.len() - 1])
            ),
            y_true,
        )),
        _ => Err(LossError::shape(
            "y_true",
            format!(
                "y_pred.shape[:-1] = {} (optionally with a trailing axis of size 1), for y_pred of shape {}",
                fmt_shape(&y_pred[..y_pred.len().saturating_sub(1)]),
                fmt_shape(y_pred)
            ),
            y_true,
        )),
    }
}

fn run<T: Float>(
    y_true: &View<'_, i64>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    options: &SparseCategoricalCrossentropyOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    options.reduction.check(KERAS_REDUCTIONS)?;
    if y_pred.ndim() == 0 {
        return Err(LossError::shape("y_pred", "at least one dimension (the class axis)", y_pred.shape()));
    }
    let shape = class_shape(y_true.shape(), y_pred.shape())?;
    let last = shape.len() - 1;
    let axis = resolve_axis("axis", options.axis, shape.len())?;
    if axis != last {
        return Err(LossError::option(
            "axis",
            format!(
                "{} designates axis {axis} of {}-dimensional y_pred, but the class axis must be the last one (-1): the reference supports no other",
                options.axis,
                shape.len()
            ),
        ));
    }
    let classes = shape[last];
    let labels = y_true.data();
    let ignore = options.ignore_class;
    if let Some(position) = first_bad_class(labels, classes, ignore) {
        return Err(LossError::IndexOutOfRange {
            arg: "y_true".into(),
            index: labels[position],
            position,
            valid: match ignore {
                Some(i) => format!("0 <= id < {classes} or == ignore_class {i}"),
                None => format!("0 <= id < {classes}"),
            },
        });
    }
    let mask: Option<Vec<bool>> = ignore.map(|i| labels.iter().map(|&y| y != i).collect());
    let from_logits = options.from_logits;
    keras_row_groups(
        &shape,
        last,
        None,
        y_pred,
        sample_weight,
        mask.as_deref(),
        options.reduction,
        backward,
        rows_per_group(classes),
        #[inline(always)]
        |rows, grad, values, work| {
            // validated above: every label in [0, C) unless ignored, so without an ignored
            // class -1 marks none
            let label = IndexClasses { ids: &labels[rows.first..], ignore: ignore.unwrap_or(-1) };
            keras_index_xent_rows(from_logits, rows, label, grad, values, work)
        },
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = SparseCategoricalCrossentropyOptions {
        from_logits: opts.bool("from_logits"),
        ignore_class: opts.int("ignore_class"),
        reduction: opts.reduction()?,
        axis: opts.int("axis").unwrap_or(-1),
    };
    run(&args.int("y_true")?, &args.float("y_pred")?, args.opt_float("sample_weight")?.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Out = (Tensor<f64>, Vec<f64>);

    fn scce(
        labels: &[i64],
        lshape: &[usize],
        yp: &[f64],
        pshape: &[usize],
        o: SparseCategoricalCrossentropyOptions,
    ) -> Result<Out> {
        let (l, g) = sparse_categorical_crossentropy_grad(
            View::new(labels, lshape)?,
            View::new(yp, pshape)?,
            None,
            &o,
            Backward::new(),
        )?;
        Ok((l, g.get("y_pred").map(|t| t.data().to_vec()).unwrap_or_default()))
    }

    #[test]
    fn shapes_accepted() {
        assert_eq!(class_shape(&[4], &[4, 3]).unwrap(), vec![4, 3]);
        assert_eq!(class_shape(&[4, 1], &[4, 3]).unwrap(), vec![4, 3]);
        assert_eq!(class_shape(&[2, 5, 1], &[2, 5, 3]).unwrap(), vec![2, 5, 3]);
        assert_eq!(class_shape(&[], &[3]).unwrap(), vec![3]);
        assert_eq!(class_shape(&[4], &[4, 1]).unwrap(), vec![4, 1]);
        // the reference's rank alignment squeezes a size-1 class axis of a rank-3 y_pred
        assert!(class_shape(&[2, 5], &[2, 5, 1]).is_err());
        assert!(class_shape(&[4, 3], &[4, 3]).is_err());
        assert!(class_shape(&[3], &[4, 3]).is_err());
    }

    #[test]
    fn ignored_rows_are_out_of_the_mean_with_zero_gradient() {
        let yp = [0.2f64, 0.3, 0.5, 0.1, 0.1, 0.8, 0.6, 0.2, 0.2];
        for from_logits in [false, true] {
            let o = SparseCategoricalCrossentropyOptions { from_logits, ignore_class: Some(-1), ..Default::default() };
            let (l, g) = scce(&[2, -1, 0], &[3], &yp, &[3, 3], o).unwrap();
            let (l2, g2) = scce(
                &[2, 0],
                &[2],
                &[0.2, 0.3, 0.5, 0.6, 0.2, 0.2],
                &[2, 3],
                SparseCategoricalCrossentropyOptions { from_logits, ..Default::default() },
            )
            .unwrap();
            assert!((l.item().unwrap() - l2.item().unwrap()).abs() < 1e-15);
            assert_eq!(&g[3..6], &[0.0, 0.0, 0.0]);
            for (a, b) in g[..3].iter().chain(&g[6..]).zip(&g2) {
                assert!((a - b).abs() < 1e-15);
            }
        }
        // all ignored: 0, gradient 0
        let o = SparseCategoricalCrossentropyOptions { ignore_class: Some(7), ..Default::default() };
        let (l, g) = scce(&[7, 7, 7], &[3], &yp, &[3, 3], o).unwrap();
        assert_eq!(l.item(), Some(0.0));
        assert!(g.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn extremes() {
        // logits +-1e4 and probabilities exactly 0 / 1
        let o = SparseCategoricalCrossentropyOptions {
            from_logits: true,
            reduction: Reduction::None,
            ..Default::default()
        };
        let (l, _) = scce(&[1, 0], &[2], &[1e4, -1e4, 1e4, -1e4], &[2, 2], o).unwrap();
        assert_eq!(l.data(), &[2e4, 0.0]);
        let o = SparseCategoricalCrossentropyOptions { reduction: Reduction::None, ..Default::default() };
        let (l, g) = scce(&[1, 0], &[2], &[1.0, 0.0, 1.0, 0.0], &[2, 2], o).unwrap();
        assert!((l.data()[0] + 1e-7f64.ln()).abs() < 1e-9);
        assert!((l.data()[1] + (1.0f64 - 1e-7).ln()).abs() < 1e-15);
        assert!(g.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn errors() {
        let d = SparseCategoricalCrossentropyOptions::default();
        let e = scce(&[0, 3], &[2], &[0.5; 6], &[2, 3], d).unwrap_err();
        assert!(matches!(e, LossError::IndexOutOfRange { index: 3, position: 1, .. }));
        let e = scce(&[-1, 0], &[2], &[0.5; 6], &[2, 3], d).unwrap_err();
        assert!(matches!(e, LossError::IndexOutOfRange { index: -1, position: 0, .. }));
        let e =
            scce(&[0, 1], &[2], &[0.5; 6], &[2, 3], SparseCategoricalCrossentropyOptions { axis: 0, ..d }).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "axis"));
        // axis = ndim - 1 is the last axis
        assert!(scce(&[0, 1], &[2], &[0.5; 6], &[2, 3], SparseCategoricalCrossentropyOptions { axis: 1, ..d }).is_ok());
        let e = scce(&[0, 1, 2], &[3], &[0.5; 6], &[2, 3], d).unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "y_true"));
        let e = scce(&[0], &[], &[0.5], &[], d).unwrap_err();
        assert!(matches!(e, LossError::Shape { .. }));
    }
}
