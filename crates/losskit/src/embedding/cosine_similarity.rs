//! `cosine_similarity`: the Keras cosine-similarity loss (`keras.losses.CosineSimilarity`).

use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, KERAS_REDUCTION_ALT, KERAS_SAMPLE_WEIGHT};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec, OptDefault, OptKind};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::{align_pair, keras_rows, EPSILON};
use crate::kernels::cosine::keras_cosine_row;
use crate::reduction::{Reduction, KERAS_REDUCTIONS};
use crate::tensor::{resolve_axis, Tensor, View};

macro_rules! formula {
    () => {
        r"\ell = -\sum_{d} \frac{y_{d}}{\max(\lVert y \rVert_{2},\ \epsilon)} \cdot \frac{\hat y_{d}}{\max(\lVert \hat y \rVert_{2},\ \epsilon)},\qquad \epsilon = 10^{-7},\ \text{norms and sum along } axis"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "cosine_similarity",
    family: Family::Embedding,
    summary: "Keras cosine-similarity loss: minus the cosine of y_true and y_pred along an axis (-1 means the same direction), then Keras-reduced.",
    formula: formula!(),
    reference: "keras.losses.CosineSimilarity",
    reference_call: "keras.losses.CosineSimilarity(axis=axis, reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)",
    reduction_default: "sum_over_batch_size",
    none_shape: "y_pred.shape with `axis` removed ((N,) for (N, D))",
    conventions: "Values lie in [-1, 1]. Each vector is scaled by min(rsqrt(sum x^2), 1/1e-7), i.e. divided by \
max(||x||, 1e-7) (keras 3.15.1's normalisation): a vector with norm below 1e-7 is not unit-normalised, so its cosine \
shrinks with its norm; a zero vector gives 0. The gradient (with respect to y_pred only) follows the reference's \
graph: where the 1e-7 floor is active only the direct term remains, and an exactly-zero y_pred vector has a NaN \
gradient for its whole row (the reference multiplies the infinite derivative of rsqrt at 0 by the zero derivative of \
the min). y_true and y_pred have the same shape up to a trailing axis of size 1; the result has y_pred's shape without \
`axis` (a 0-d scalar for 1-D inputs). Reductions: 'sum_over_batch_size'/'mean' divide the weighted sum by the number \
of per-sample values, 'mean_with_sample_weight' by the sum of the weights, 'sum' sums, 'none' returns them.",
    errata: "The post's l2_norm returns the scalar norm, so its cosinesimilarity = -sum(l2_norm(y) .* l2_norm(ŷ)) is \
-||y||·||ŷ||: no dot product, independent of the angle and unbounded. The loss multiplies the L2-NORMALISED vectors \
elementwise and sums along the feature axis (one value per sample), guards small norms with max(||x||, 1e-7), and \
averages over samples; the post also takes norms over the whole array instead of per sample.",
    args: &[
        arg("y_true", "(N, ..., D)", F, false, false, "finite; same shape as y_pred"),
        arg("y_pred", "(N, ..., D)", F, true, false, "finite"),
        KERAS_SAMPLE_WEIGHT,
    ],
    options: &[
        opt("axis", OptKind::Int, OptDefault::Int(-1), "the axis of the norms and the sum; negative counts from the end"),
        KERAS_REDUCTION_ALT,
    ],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`cosine_similarity`](fn@cosine_similarity).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineSimilarityOptions {
    /// The axis of the norms and of the sum (default -1).
    pub axis: i64,
    /// A Keras reduction (default `sum_over_batch_size`).
    pub reduction: Reduction,
}

impl Default for CosineSimilarityOptions {
    fn default() -> Self {
        CosineSimilarityOptions { axis: -1, reduction: Reduction::SumOverBatchSize }
    }
}

/// The Keras cosine-similarity loss: minus the cosine of `y_true` and `y_pred` along `axis`,
/// each vector divided by `max(norm, 1e-7)`, with Keras sample weights and reduction.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `keras.losses.CosineSimilarity(axis=axis, reduction=reduction)(y_true, y_pred,
/// sample_weight=sample_weight)` (Keras 3, JAX backend).
///
/// # Conventions
/// - A vector with norm below `1e-7` is scaled by `1e7` instead of normalised; a zero vector
///   gives 0, and a zero `y_pred` vector a NaN gradient (as in the reference).
/// - The per-sample loss has `y_pred`'s shape without `axis`; `sample_weight` broadcasts
///   against it after Keras' rank alignment.
/// - For `f32` inputs the sums, the cosines and their weighted reduction are computed in `f64`
///   and rounded once: cosines of both signs can average far below their own size, where an
///   `f32` cosine's rounding would show in the result.
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) when `y_true` and `y_pred` differ in shape
/// (beyond a trailing axis of size 1) or `sample_weight` does not broadcast;
/// [`LossError::InvalidOption`](crate::LossError::InvalidOption) for an `axis` out of range or
/// a reduction that is not a Keras one.
///
/// # Example
/// ```
/// use losskit::{cosine_similarity, CosineSimilarityOptions, Reduction, View};
/// let y_true = [0.0f64, 1.0, 1.0, 1.0, 1.0, 1.0];
/// let y_pred = [1.0f64, 0.0, 1.0, 1.0, -1.0, -1.0];
/// // orthogonal, same direction, opposite: [-0, -1, 1]
/// // (keras.losses.cosine_similarity(y_true, y_pred) = [-0., -0.99999994, 0.99999994] in float32)
/// let opts = CosineSimilarityOptions { reduction: Reduction::None, ..Default::default() };
/// let loss = cosine_similarity(View::new(&y_true, &[3, 2])?, View::new(&y_pred, &[3, 2])?, None, &opts)?;
/// let l = loss.data();
/// assert!(l[0] == 0.0 && (l[1] + 1.0).abs() < 1e-15 && (l[2] - 1.0).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn cosine_similarity<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &CosineSimilarityOptions,
) -> Result<Tensor<T>> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`cosine_similarity`](fn@cosine_similarity) and its gradient with respect to `y_pred`.
///
/// # Example
/// ```
/// use losskit::{cosine_similarity_grad, Backward, CosineSimilarityOptions, Reduction, View};
/// // y_true = [1, 0], y_pred = [1, 1]: loss -1/sqrt(2); the gradient of -a.b/|b| is
/// // -(a - (a.b) b / |b|^2) / |b| = -[1/2, -1/2] / sqrt(2)
/// let (yt, yp) = ([1.0f64, 0.0], [1.0f64, 1.0]);
/// let opts = CosineSimilarityOptions { reduction: Reduction::Sum, ..Default::default() };
/// let (loss, g) = cosine_similarity_grad(View::from(&yt[..]), View::from(&yp[..]), None, &opts, Backward::new())?;
/// let r = 0.5f64.sqrt();
/// assert!((loss.item().unwrap() + r).abs() < 1e-15);
/// let g = g.get("y_pred").unwrap().data();
/// assert!((g[0] + 0.5 * r).abs() < 1e-15 && (g[1] - 0.5 * r).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn cosine_similarity_grad<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &CosineSimilarityOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    options: &CosineSimilarityOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    options.reduction.check(KERAS_REDUCTIONS)?;
    let shape = align_pair(y_true.shape(), y_pred.shape())?;
    let axis = resolve_axis("axis", options.axis, shape.len())?;
    keras_rows(
        &shape,
        axis,
        Some(y_true.data()),
        y_pred,
        sample_weight,
        None,
        options.reduction,
        backward,
        // the loss is minus the cosine: its cotangent enters the kernel negated
        #[inline(always)]
        |row, grad, _| -keras_cosine_row(row.target, row.pred, EPSILON, grad.map(|(cot, g)| (-cot, g))),
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = CosineSimilarityOptions { axis: opts.int("axis").unwrap_or(-1), reduction: opts.reduction()? };
    run(&args.float("y_true")?, &args.float("y_pred")?, args.opt_float("sample_weight")?.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LossError;

    fn cos(yt: &[f64], yp: &[f64], shape: &[usize], o: CosineSimilarityOptions) -> Result<(Tensor<f64>, Vec<f64>)> {
        let (l, g) = cosine_similarity_grad(View::new(yt, shape)?, View::new(yp, shape)?, None, &o, Backward::new())?;
        Ok((l, g.get("y_pred").map(|t| t.data().to_vec()).unwrap_or_default()))
    }

    #[test]
    fn zero_and_tiny_vectors() {
        let o = CosineSimilarityOptions { reduction: Reduction::None, ..Default::default() };
        // zero y_pred: loss 0, NaN gradient row; zero y_true: loss 0, gradient 0
        let (l, g) = cos(&[1.0, 2.0, 0.0, 0.0], &[0.0, 0.0, 1.0, 2.0], &[2, 2], o).unwrap();
        assert_eq!(l.data(), &[0.0, 0.0]);
        assert!(g[0].is_nan() && g[1].is_nan());
        assert_eq!(&g[2..], &[0.0, 0.0]);
        // y_pred of norm 2.236e-8 < 1e-7: scaled by 1e7; gradient -a * 1e7 (checked against keras)
        let (l, g) = cos(&[1.0, 1.0], &[1e-8, 2e-8], &[2], o).unwrap();
        let r = 0.5f64.sqrt();
        assert!((l.item().unwrap() + 3e-8 * 1e7 * r).abs() < 1e-12);
        assert!((g[0] + r * 1e7).abs() < 1e-6 && (g[1] + r * 1e7).abs() < 1e-6);
        // y_pred of norm 1.4e200: sum x^2 overflows, rsqrt gives 0, so the reference's
        // normalised y_pred is 0 and the loss 0; the gradient's terms are 0 (through y_pred * 0)
        // and sum((a sa) b) * (-raw / (2 B)) = 2.8e200 * (0 / inf) = 0 (not inf * 0)
        let (l, g) = cos(&[1.0, 1.0], &[1e200, 1e200], &[2], o).unwrap();
        assert_eq!(l.item(), Some(0.0));
        assert_eq!(g, [0.0, 0.0]);
    }

    #[test]
    fn a_cancelling_mean_carries_no_f32_rounding_of_the_cosines() {
        // Cosines of order 1 whose weighted mean cancels to about 1e-2 of them: each y_pred
        // row is [cos t, sin t, 0.25, 0] (rounded to f32) against y_true [1, 0, 0, 0]. The f32
        // result must be the f64 computation on the same f32 inputs, rounded once (what the
        // conformance reference is): a cosine rounded to f32 before the mean (3e-8 each) would
        // move it by ~1e-6 relative.
        let angles = [0.3f64, 2.9, 1.1, 2.0, 0.7, 2.45];
        let y_pred: Vec<f32> = angles.iter().flat_map(|&t| [t.cos() as f32, t.sin() as f32, 0.25, 0.0]).collect();
        let y_true: Vec<f32> = angles.iter().flat_map(|_| [1.0f32, 0.0, 0.0, 0.0]).collect();
        let weights = [1.0f32, 1.0, 0.5, 0.5, 2.0, 2.0];
        let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let (yt64, yp64, w64) = (widen(&y_true), widen(&y_pred), widen(&weights));
        for reduction in [Reduction::SumOverBatchSize, Reduction::MeanWithSampleWeight, Reduction::Sum] {
            let o = CosineSimilarityOptions { reduction, ..Default::default() };
            for weighted in [false, true] {
                let w32 = weighted.then(|| View::new(&weights[..], &[6]).unwrap());
                let w64v = weighted.then(|| View::new(&w64[..], &[6]).unwrap());
                let got = cosine_similarity(
                    View::new(&y_true, &[6, 4]).unwrap(),
                    View::new(&y_pred, &[6, 4]).unwrap(),
                    w32,
                    &o,
                )
                .unwrap()
                .item()
                .unwrap();
                let want =
                    cosine_similarity(View::new(&yt64, &[6, 4]).unwrap(), View::new(&yp64, &[6, 4]).unwrap(), w64v, &o)
                        .unwrap()
                        .item()
                        .unwrap();
                let cosines: f64 = angles.iter().map(|t| t.cos().abs()).sum();
                assert!(want.abs() < 0.1 * cosines / 6.0, "{reduction:?} weighted={weighted}: {want} does not cancel");
                assert_eq!(got, want as f32, "{reduction:?} weighted={weighted}");
            }
        }
    }

    #[test]
    fn axis_zero() {
        // columns of a (2, 2): [1, 0] against [0, 1], and [0, 1] against [0, 1]
        let o = CosineSimilarityOptions { axis: 0, reduction: Reduction::None };
        let (l, _) = cos(&[1.0, 0.0, 0.0, 1.0], &[0.0, 0.0, 1.0, 1.0], &[2, 2], o).unwrap();
        assert_eq!(l.data(), &[-0.0, -1.0]);
    }

    #[test]
    fn errors() {
        let d = CosineSimilarityOptions::default();
        let e = cos(&[0.0; 6], &[1.0; 6], &[2, 3], CosineSimilarityOptions { axis: 2, ..d }).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "axis"));
        let e = cos(&[0.0; 6], &[1.0; 6], &[2, 3], CosineSimilarityOptions { reduction: Reduction::BatchMean, ..d })
            .unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "reduction"));
        let e = cosine_similarity(
            View::new(&[0.0f64; 6], &[3, 2]).unwrap(),
            View::new(&[1.0f64; 6], &[2, 3]).unwrap(),
            None,
            &d,
        )
        .unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "y_true"));
    }
}
