//! `kl_divergence`: `y log(y / ŷ)` with both arguments clipped to `[eps, 1]`, summed over the
//! last axis (Keras `KLDivergence`).

use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, KERAS_REDUCTION, KERAS_SAMPLE_WEIGHT};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::{last_axis_loss, Checked, Combine};
use crate::kernels::stable::clip_tie;
use crate::kernels::vmath::VMath;
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_n = \sum_{d=1}^{D}\tilde y_{n,d}\log\frac{\tilde y_{n,d}}{\tilde p_{n,d}},\ \ \tilde y = \operatorname{clip}(y,\epsilon,1),\ \tilde p = \operatorname{clip}(\hat y,\epsilon,1),\ \epsilon=10^{-7},\qquad \frac{\partial \ell_n}{\partial \hat y_{n,d}} = -\frac{\tilde y_{n,d}}{\tilde p_{n,d}}\,s_{n,d},\ \ s = 1 \text{ for } \epsilon<\hat y<1,\ \tfrac12 \text{ at } \hat y \in\{\epsilon, 1\},\ 0 \text{ outside}"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "kl_divergence",
    family: Family::Probabilistic,
    summary: "Kullback-Leibler divergence sum(y_true*log(y_true/y_pred)) over the last axis, both arguments clipped \
to [1e-7, 1] first, one value per sample, then reduced Keras-style.",
    formula: formula!(),
    reference: "keras.losses.KLDivergence",
    reference_call: "keras.losses.KLDivergence(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)",
    reduction_default: "sum_over_batch_size",
    none_shape: "y_pred.shape[:-1] (a 0-d value for 1-D inputs)",
    conventions: "The last axis is SUMMED (not averaged). Both arguments are clipped to [1e-7, 1] (1e-7 in the \
computation dtype) and not renormalised: y_true = 0 counts as 1e-7 (a term 1e-7*log(1e-7/p), not 0), values above 1 \
count as 1, and y_pred = 0 costs y*log(y/1e-7). The gradient with respect to y_pred is -y/p strictly inside \
(1e-7, 1), 0 where y_pred was clipped, and half of -y/p at exactly 1e-7 or 1 (jnp.clip's tie rule). y_true and y_pred have the same shape up to a trailing \
axis of size 1; a 1-D input is one sample and its 0-d loss is returned unreduced. sample_weight multiplies the \
per-sample values; sum_over_batch_size (= mean) divides by their count, mean_with_sample_weight by \
sum(sample_weight) (0 when that is 0). Only y_pred has a gradient.",
    errata: "The post builds KL as entropy plus cross-entropy but swaps the arguments of the cross-entropy (it \
computes -sum(ŷ log y)), divides only the entropy term by size(y, 2), and clips nothing, so it is neither KL(y||ŷ) nor \
its batch mean and gives -inf at zero probabilities.",
    args: &[
        arg("y_true", "(N, ..., D)", F, false, false, "probabilities; clipped to [1e-7, 1]"),
        arg(
            "y_pred",
            "(N, ..., D), the shape of y_true (up to a trailing 1)",
            F,
            true,
            false,
            "probabilities; clipped to [1e-7, 1] (zero gradient outside)",
        ),
        KERAS_SAMPLE_WEIGHT,
    ],
    options: &[KERAS_REDUCTION],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`kl_divergence`](fn@kl_divergence).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KlDivergenceOptions {
    /// `sum_over_batch_size` (default), `sum`, `mean`, `mean_with_sample_weight` or `none`.
    pub reduction: Reduction,
}

impl Default for KlDivergenceOptions {
    fn default() -> Self {
        KlDivergenceOptions { reduction: Reduction::SumOverBatchSize }
    }
}

/// Keras' KL divergence of clipped probabilities, summed over the last axis per sample and
/// reduced as Keras does.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `keras.losses.KLDivergence(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)`.
///
/// # Conventions
/// - A SUM over the last axis. Both arguments are clipped to `[1e-7, 1]`: zero targets
///   contribute `1e-7 log(1e-7 / p)`, and `y_pred` outside `[1e-7, 1]` has zero gradient
///   (exactly at `1e-7` or `1`, half the gradient, as JAX's clip).
/// - The per-sample loss has shape `y_pred.shape[:-1]`; a 1-D input is one sample, whose 0-d
///   loss is returned unreduced. `y_true` may have one trailing axis of size 1 more or fewer.
/// - `sample_weight` broadcasts against the per-sample loss (e.g. `(N,)` or `(N, 1)`).
/// - Where `y_pred` is close to `y_true` the terms of either sign cancel to a small fraction
///   of their size, where `f32` terms would carry their roundings into the result many times
///   over. In `f32` each term comes with a bound on its error: a per-sample value, or the
///   reduced loss, whose bound exceeds `2^-19` of its magnitude is computed again in `f64`
///   from the same inputs and rounded once (its gradient too). Results are within `2^-19` of
///   the exact ones, usually within an ulp; the `f64` pass costs about 2.5x and is taken only
///   where terms cancel.
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) when `y_true` and `y_pred` differ in shape
/// (beyond a trailing axis of size 1), when they are 0-d, or when `sample_weight` does not
/// broadcast against the per-sample loss; [`LossError::InvalidOption`](crate::LossError::InvalidOption)
/// for a reduction Keras does not have.
///
/// # Example
/// ```
/// use losskit::{kl_divergence, KlDivergenceOptions, View};
/// let y_true = [0.5f64, 0.5, 1.0, 1.0];
/// let y_pred = [0.25f64, 0.75, 0.5, 2.0];
/// let (t, p) = (View::new(&y_true, &[2, 2])?, View::new(&y_pred, &[2, 2])?);
/// let loss = kl_divergence(t, p, None, &KlDivergenceOptions::default())?;
/// // sample 0: 0.5 log 2 + 0.5 log(2/3); sample 1: log 2 + log 1 (2.0 is clipped to 1); their mean
/// let expected = (0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln() + 2f64.ln()) / 2.0;
/// assert!((loss.item().unwrap() - expected).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn kl_divergence<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &KlDivergenceOptions,
) -> Result<Tensor<T>> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`kl_divergence`](fn@kl_divergence) and its gradient with respect to `y_pred`.
///
/// # Example
/// ```
/// use losskit::{kl_divergence_grad, Backward, KlDivergenceOptions, View};
/// let (t, p) = ([0.5f64, 0.5, 0.0], [0.25f64, 1.5, 0.5]);
/// let (_, grads) = kl_divergence_grad(View::from(&t[..]), View::from(&p[..]), None, &KlDivergenceOptions::default(), Backward::new())?;
/// // -y/p inside [1e-7, 1], 0 where y_pred was clipped (1.5); a zero target counts as 1e-7
/// assert_eq!(grads.get("y_pred").unwrap().data(), &[-2.0, 0.0, -2e-7]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn kl_divergence_grad<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &KlDivergenceOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    options: &KlDivergenceOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let (eps, one) = (T::of(1e-7), T::one());
    last_axis_loss(
        y_true,
        y_pred,
        sample_weight,
        options.reduction,
        Combine::Sum,
        // terms of either sign (`y < q`): checked in f32, and a sum that cancels is computed
        // again in f64; the clips are exact in `T`
        Checked(
            // the ratio first, its logarithm after: the derivative `-(y / q)` reuses the quotient
            // (one division per element, not two)
            #[inline(always)]
            move |t: T, p: T| clip_tie(t, eps, one).0 / clip_tie(p, eps, one).0,
            #[inline(always)]
            move |t: T, p: T, ratio: T| {
                let (y, _) = clip_tie(t, eps, one);
                let (q, share) = clip_tie(p, eps, one);
                // the ratio of two clipped values is normal (or NaN: the bound is then NaN too)
                let term = y * ratio.vln_normal();
                // in units of roundoff (`y > 0`): y for the quotient's rounding through the
                // log, 2 |term| for the log's ulp, |term| for the product; none for a NaN `q`,
                // whose ratio's log is not NaN (computed exactly, then; a NaN `y` makes the
                // term NaN)
                let bound = if q.is_nan() { q } else { y + T::of(3.0) * term.abs() };
                (term, -ratio * share, bound)
            },
            #[inline(always)]
            move |t: T, p: T| {
                let (y, _) = clip_tie(t, eps, one);
                let (q, share) = clip_tie(p, eps, one);
                let ratio = y.acc() / q.acc();
                (y.acc() * ratio.vln(), T::from_acc(-ratio * share.acc()))
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
    let options = KlDivergenceOptions { reduction: opts.reduction()? };
    let sample_weight = args.opt_float("sample_weight")?;
    run(&args.float("y_true")?, &args.float("y_pred")?, sample_weight.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_bounds_pass_half_the_gradient_and_outside_stops_it() {
        // Keras (sum): y_true [[0.3, 0.5, 0.2, 0, 0.5]], y_pred [[1, 1e-7, 0, 0.5, 1.5]]
        // -> 9.906438808831433, gradient [-0.15, -2.5e6, 0, -2e-7, 0]
        let t = [0.3f64, 0.5, 0.2, 0.0, 0.5];
        let p = [1.0f64, 1e-7, 0.0, 0.5, 1.5];
        let opts = KlDivergenceOptions { reduction: Reduction::Sum };
        let (tv, pv) = (View::new(&t, &[1, 5]).unwrap(), View::new(&p, &[1, 5]).unwrap());
        let (l, g) = kl_divergence_grad(tv, pv, None, &opts, Backward::new()).unwrap();
        assert!((l.item().unwrap() - 9.906438808831433).abs() < 1e-14);
        let g = g.get("y_pred").unwrap().data();
        let want = [-0.15, -2.5e6, 0.0, -2e-7, 0.0];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() <= 1e-15 * b.abs(), "{a} vs {b}");
        }
        // the same in f32 (y_pred = 1e-7 rounds to the f32 bound: a tie again)
        let (t32, p32): (Vec<f32>, Vec<f32>) =
            (t.iter().map(|&v| v as f32).collect(), p.iter().map(|&v| v as f32).collect());
        let (tv, pv) = (View::new(&t32, &[1, 5]).unwrap(), View::new(&p32, &[1, 5]).unwrap());
        let (l, g) = kl_divergence_grad(tv, pv, None, &opts, Backward::new()).unwrap();
        assert!((l.item().unwrap() as f64 / 9.906438808831433 - 1.0).abs() < 1e-6);
        assert!((g.get("y_pred").unwrap().data()[1] / -2.5e6 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn sums_over_the_last_axis() {
        // identical distributions: 0 per sample; a 1-D input gives a 0-d loss
        let p = [0.2f64, 0.3, 0.5];
        let l = kl_divergence(View::from(&p[..]), View::from(&p[..]), None, &KlDivergenceOptions::default()).unwrap();
        assert_eq!(l.shape(), &[] as &[usize]);
        assert_eq!(l.item(), Some(0.0));
    }

    #[test]
    fn a_cancelling_f32_sum_is_rounded_once() {
        // y_pred within 1e-4 of y_true: terms of about +-5e-5 sum to about 1e-8 (the sum of
        // (y - q)^2 / 2q). The f32 result must be the f64 computation on the same inputs,
        // rounded once (f32 terms would carry roundings of 3e-12 each into a sum of 1e-8).
        let y = [0.25f32, 0.25, 0.5];
        let q = [0.25f32 + 1e-4, 0.25 - 3e-4, 0.5 + 2e-4];
        let want: f64 = y.iter().zip(&q).map(|(&y, &q)| y as f64 * (y as f64 / q as f64).ln()).sum();
        let l = kl_divergence(View::from(&y[..]), View::from(&q[..]), None, &KlDivergenceOptions::default()).unwrap();
        let got = l.item().unwrap();
        assert!((got - want as f32).abs() <= f32::EPSILON * (want as f32).abs(), "{got:e} vs {want:e}");
    }
}
