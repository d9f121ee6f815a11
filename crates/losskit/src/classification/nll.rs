//! `nll`: negative log-likelihood of class indices (PyTorch `nll_loss`).

use rayon::prelude::*;

use super::targets::IndexTargets;
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, torch_reduction};
use crate::catalog::spec::{ArgKind, Family, LossSpec, OptDefault, OptKind};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::kernels::axis::AxisLayout;
use crate::kernels::simd::prefetch;
use crate::kernels::sum::{par_units, par_zero, CHUNK};
use crate::reduction::{Reduction, TORCH_REDUCTIONS};
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_n = -\,w_{y_n}\,x_{n,y_n}\ \ (0 \text{ if } y_n = \text{ignore\_index});\qquad \text{mean} = \frac{\sum_n \ell_n}{\sum_{n:\,y_n\neq\text{ignore\_index}} w_{y_n}};\qquad \frac{\partial \ell_n}{\partial x_{n,c}} = -w_{y_n}[c = y_n]"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "nll",
    family: Family::Classification,
    summary: "Negative log-likelihood: minus the (weighted) input entry of each sample's target class; the input is \
taken as log-probabilities as is.",
    formula: formula!(),
    reference: "torch.nn.functional.nll_loss",
    reference_call: "F.nll_loss(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)",
    reduction_default: "mean",
    none_shape: "(N) or (N, d1, ..., dK); () for an unbatched (C) input",
    conventions: "No log and no softmax is applied: the loss is linear in the input, any real input is accepted and \
the loss may be negative. The class dimension is 1: an input (N, C, d1, ..., dK) takes targets (N, d1, ..., dK); an \
unbatched input (C) takes a 0-d target. Targets must lie in [0, C) or equal ignore_index (anything else is an error). \
Ignored targets give 0 under 'none', add nothing to 'sum' and are left out of the 'mean' denominator, which is the \
sum of weight[target] over the other targets (their count without weights); if every target is ignored, 'mean' is \
NaN and the gradient is 0. The weight is a constant: it gets no gradient.",
    errata: "The post's nll takes the log of the labels and never looks at the predictions, and sums instead of \
averaging. The reference picks the target class's entry of the log-probabilities, -w[y] x[y], and by default \
divides by the total weight of the targets that are not ignored.",
    args: &[
        arg(
            "input",
            "(C) or (N, C) or (N, C, d1, ..., dK)",
            ArgKind::Float,
            true,
            false,
            "log-probabilities expected; any finite values accepted",
        ),
        arg("target", "() or (N) or (N, d1, ..., dK)", ArgKind::Int, false, false, "in [0, C) or == ignore_index"),
        arg("weight", "(C)", ArgKind::Float, false, true, "finite, one weight per class"),
    ],
    options: &[
        opt("ignore_index", OptKind::Int, OptDefault::Int(-100), "targets equal to it are skipped"),
        torch_reduction("mean"),
    ],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`nll`](fn@nll).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NllOptions {
    /// Targets equal to this value are skipped (default -100).
    pub ignore_index: i64,
    /// `none`, `mean` (default, the weighted mean over targets that are not ignored) or `sum`.
    pub reduction: Reduction,
}

impl Default for NllOptions {
    fn default() -> Self {
        NllOptions { ignore_index: -100, reduction: Reduction::Mean }
    }
}

/// Negative log-likelihood of class indices given log-probabilities.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.nll_loss(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)`.
///
/// # Conventions
/// - `input` is `(C)` (one sample, loss shape `()`), `(N, C)` or `(N, C, d1, ..., dK)`; the class
///   dimension is 1. `target` is `()`, `(N)` or `(N, d1, ..., dK)`; `weight` is `(C)`.
/// - Nothing is applied to `input`: pass log-probabilities (e.g. from
///   [`log_softmax`](fn@crate::log_softmax)); any real values are accepted.
/// - `mean` divides by the sum of `weight[target]` over the targets that are not ignored; NaN
///   when every target is ignored (with a zero gradient).
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) for a 0-d `input`, a `target` whose shape is not
/// `input`'s without the class dimension, or a `weight` that is not `(C)`;
/// [`LossError::IndexOutOfRange`](crate::LossError::IndexOutOfRange) for a target outside
/// `[0, C)` that is not `ignore_index`; [`LossError::InvalidOption`](crate::LossError::InvalidOption)
/// for a reduction other than `none`, `mean`, `sum`.
///
/// # Example
/// ```
/// use losskit::{nll, NllOptions, View};
/// let logp = [-0.5f64, -1.0, -2.0, -0.25, -3.0, -1.5];
/// let target = [1i64, 0];
/// let w = [1.0f64, 2.0, 3.0];
/// let x = View::new(&logp, &[2, 3])?;
/// // -(2 * -1.0) - (1 * -0.25) = 2.25 over the total weight 2 + 1 = 3
/// // (torch: F.nll_loss(x, t, weight=w) = 0.75)
/// let loss = nll(x.borrow(), View::from(&target[..]), Some(View::from(&w[..])), &NllOptions::default())?;
/// assert_eq!(loss.item(), Some(0.75));
/// // the second target ignored: only the first counts
/// let t2 = [1i64, -100];
/// let loss = nll(x, View::from(&t2[..]), Some(View::from(&w[..])), &NllOptions::default())?;
/// assert_eq!(loss.item(), Some(1.0));
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn nll<T: Float>(
    input: View<'_, T>,
    target: View<'_, i64>,
    weight: Option<View<'_, T>>,
    options: &NllOptions,
) -> Result<Tensor<T>> {
    run(&input, &target, weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`nll`](fn@nll) and its gradient with respect to `input` (`-w[y] / total weight` at each
/// target entry under `mean`, 0 elsewhere).
///
/// # Example
/// ```
/// use losskit::{nll_grad, Backward, NllOptions, View};
/// let logp = [-0.5f64, -1.0, -2.0, -0.25];
/// let target = [1i64, 0];
/// let (_, g) = nll_grad(View::new(&logp, &[2, 2])?, View::from(&target[..]), None, &NllOptions::default(), Backward::new())?;
/// // mean over 2 samples: -1/2 at each target entry
/// assert_eq!(g.get("input").unwrap().data(), &[0.0, -0.5, -0.5, 0.0]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn nll_grad<T: Float>(
    input: View<'_, T>,
    target: View<'_, i64>,
    weight: Option<View<'_, T>>,
    options: &NllOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&input, &target, weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, i64>,
    weight: Option<&View<'_, T>>,
    options: &NllOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let reduction = options.reduction.check(TORCH_REDUCTIONS)?;
    let targets = IndexTargets::new(input.shape(), target, weight, options.ignore_index)?;
    let layout = targets.rows.layout;
    let x = input.data();
    let values = gather_values(x, &layout, &targets);
    let loss = targets.reduce(values, reduction);
    let Some(bw) = backward else {
        return Ok((loss, Grads::default()));
    };
    let (upstream, mut sink) = bw.start();
    let cot = targets.row_cotangents(&upstream, reduction)?;
    // zeros then the target entries, on every thread (a fresh buffer is not zeroed by the
    // allocator first: every page of it is touched anyway, a row at a time)
    let [gx] = sink.slots_overwritten([("input", input.shape(), true)])?;
    let entry = |r: usize, t: usize| -(targets.weight_of(t) * cot[r]);
    match gx {
        Some(gx) if layout.inner == 1 => {
            // contiguous rows: each chunk of rows zeroed, then its entries set while it is in cache
            let classes = layout.len;
            par_units(layout.rows(), (CHUNK / classes.max(1)).max(1), Some(gx), classes, |r0, r1, part| {
                if let Some(part) = part {
                    part.fill(T::zero());
                    for r in r0..r1 {
                        if let Some(t) = targets.class(r) {
                            part[(r - r0) * classes + t] = entry(r, t);
                        }
                    }
                }
                0.0
            });
        }
        Some(gx) => {
            par_zero(gx);
            for r in 0..layout.rows() {
                if let Some(t) = targets.class(r) {
                    gx[layout.at(r, t)] = entry(r, t);
                }
            }
        }
        None => {}
    }
    Ok((loss, sink.finish()))
}

/// Each row's value `-w[t] x[r, t]`: one load per row from anywhere in the input, so each row
/// is a cache miss (and with long rows a miss of the address translation too). The loop is kept
/// to a few instructions per row (the weights matched once, not per row; contiguous rows
/// indexed without a division, see `AxisLayout::base`), and it [`prefetch`]es the element of
/// the row [`GATHER_AHEAD`] rows on, whose class it reads from the targets: many misses are in
/// flight at once instead of the few the out-of-order window holds. Many rows are split over
/// the threads (every value depends on its row only: the same bits).
fn gather_values<T: Float>(x: &[T], layout: &AxisLayout, targets: &IndexTargets<'_, T>) -> Vec<T> {
    let rows = layout.rows();
    let mut values = vec![T::zero(); rows];
    let gather = |r0: usize, out: &mut [T]| match targets.weight() {
        None => gather_rows(x, layout, targets, r0, out, |_| T::one()),
        Some(w) => gather_rows(x, layout, targets, r0, out, |t| w[t]),
    };
    let threads = rayon::current_num_threads();
    if rows >= GATHER_PARALLEL_MIN && threads > 1 {
        let per_thread = rows.div_ceil(threads);
        values.par_chunks_mut(per_thread).enumerate().for_each(|(i, out)| gather(i * per_thread, out));
    } else {
        gather(0, &mut values);
    }
    values
}

/// Rows ahead whose element [`gather_values`] prefetches: about the misses one core keeps in
/// flight, times two.
const GATHER_AHEAD: usize = 24;
/// Rows from which [`gather_values`] uses every thread: below, the gather takes about as long
/// as a fork-join.
const GATHER_PARALLEL_MIN: usize = 2048;

/// `out[k] = -weight(t) x[r, t]` for row `r = r0 + k` of class `t` (0 for an ignored row).
#[inline(always)]
fn gather_rows<T: Float>(
    x: &[T],
    layout: &AxisLayout,
    targets: &IndexTargets<'_, T>,
    r0: usize,
    out: &mut [T],
    weight: impl Fn(usize) -> T,
) {
    let end = r0 + out.len();
    for (k, v) in out.iter_mut().enumerate() {
        let r = r0 + k;
        let ahead = r + GATHER_AHEAD;
        if ahead < end {
            if let Some(t) = targets.class(ahead) {
                prefetch(x.as_ptr().wrapping_add(layout.at(ahead, t)));
            }
        }
        *v = targets.class(r).map_or(T::zero(), |t| -x[layout.at(r, t)] * weight(t));
    }
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = NllOptions { ignore_index: opts.int("ignore_index").unwrap_or(-100), reduction: opts.reduction()? };
    run(&args.float("input")?, &args.int("target")?, args.opt_float("weight")?.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LossError;

    #[test]
    fn k_dimensional_rows_and_none_shape() {
        // input (2, 3, 2): row (n, k) holds x[n, :, k]
        let x: Vec<f64> = (0..12).map(|i| -(i as f64)).collect();
        let t = [2i64, 0, 1, -100];
        let opts = NllOptions { reduction: Reduction::None, ..Default::default() };
        let out = nll(View::new(&x, &[2, 3, 2]).unwrap(), View::new(&t, &[2, 2]).unwrap(), None, &opts).unwrap();
        // x[0, 2, 0] = -4, x[0, 0, 1] = -1, x[1, 1, 0] = -8, ignored
        assert_eq!((out.shape(), out.data()), (&[2, 2][..], &[4.0, 1.0, 8.0, 0.0][..]));
    }

    #[test]
    fn all_ignored_mean_is_nan_with_zero_gradient() {
        let x = [0.1f64, 0.2, 0.3, 0.4];
        let t = [-100i64, -100];
        let w = [0.0f64, 1.0];
        let (loss, g) = nll_grad(
            View::new(&x, &[2, 2]).unwrap(),
            View::from(&t[..]),
            Some(View::from(&w[..])),
            &NllOptions::default(),
            Backward::new(),
        )
        .unwrap();
        assert!(loss.item().unwrap().is_nan());
        assert_eq!(g.get("input").unwrap().data(), &[0.0; 4]);
        let opts = NllOptions { reduction: Reduction::Sum, ..Default::default() };
        let loss = nll(View::new(&x, &[2, 2]).unwrap(), View::from(&t[..]), None, &opts).unwrap();
        assert_eq!(loss.item(), Some(0.0));
    }

    #[test]
    fn errors() {
        let x = [0.1f64, 0.2, 0.3, 0.4];
        let bad = [0i64, 2];
        let e = nll(View::new(&x, &[2, 2]).unwrap(), View::from(&bad[..]), None, &NllOptions::default()).unwrap_err();
        assert!(matches!(e, LossError::IndexOutOfRange { index: 2, .. }));
        let opts = NllOptions { reduction: Reduction::BatchMean, ..Default::default() };
        let t = [0i64, 1];
        let e = nll(View::new(&x, &[2, 2]).unwrap(), View::from(&t[..]), None, &opts).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "reduction"));
        let e = nll(View::new(&x[..1], &[]).unwrap(), View::from(&t[..]), None, &NllOptions::default());
        assert!(matches!(e, Err(LossError::Shape { .. })));
    }
}
