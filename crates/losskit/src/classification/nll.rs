//! `nll`: negative log-likelihood of class indices (PyTorch `nll_loss`).

use rayon::prelude::*;

use super::targets::{IndexTargets, UncheckedTargets};
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, torch_reduction};
use crate::catalog::spec::{ArgKind, Family, LossSpec, OptDefault, OptKind};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::kernels::alloc::for_overwrite;
use crate::kernels::axis::AxisLayout;
use crate::kernels::simd::{follows_short_row_gathers, prefetch, streams, zero};
use crate::kernels::sum::{block_sum, par_units, par_zero, tree_of_block_sums, SplitOut, BLOCK, CHUNK};
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
    let unchecked = UncheckedTargets::new(input.shape(), target, weight, options.ignore_index)?;
    let layout = unchecked.rows().layout;
    let (targets, values, total) = gather_values(input.data(), &layout, unchecked, reduction == Reduction::None)?;
    let loss = targets.reduce_summed(values, total, reduction);
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
            // contiguous rows: each chunk of rows zeroed, then its entries set (a gradient too
            // large for the cache zeroed around it: the entries then cost a line per row)
            let classes = layout.len;
            let stream = streams::<T>(gx.len());
            par_units(layout.rows(), (CHUNK / classes.max(1)).max(1), Some(gx), classes, |r0, r1, part| {
                if let Some(part) = part {
                    zero(part, stream);
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

/// Each row's value `-w[t] x[r, t]` (kept for `none`), their sum (the fixed tree of
/// [`sum_by`](crate::kernels::sum::sum_by), from block sums), and the class ids checked in the
/// same pass: one load per row from anywhere in the input, so each row is a cache miss (and
/// with long rows a miss of the address translation too), and the checks and the count of the
/// rows not ignored, which a separate scan of the ids would cost, come free under the misses.
///
/// The loop is kept to a few instructions per row (the weights matched once, not per row;
/// contiguous rows indexed without a division, see `AxisLayout::base`), and it [`prefetch`]es
/// the element of the row [`GATHER_AHEAD`] rows on, whose class it reads from the targets: many
/// misses are in flight at once instead of the few the out-of-order window holds. Many rows
/// are split over the threads in whole blocks (every value depends on its row only, and the
/// block sums are joined in one fixed tree: the same bits).
fn gather_values<'a, T: Float>(
    x: &[T],
    layout: &AxisLayout,
    targets: UncheckedTargets<'a, T>,
    keep: bool,
) -> Result<(IndexTargets<'a, T>, Option<Vec<T>>, f64)> {
    let rows = layout.rows();
    let mut values = keep.then(|| for_overwrite::<T>(rows));
    let mut parts = vec![0.0f64; rows.div_ceil(BLOCK)];
    let threads = rayon::current_num_threads();
    let per_task = if rows >= GATHER_PARALLEL_MIN && threads > 1 { parts.len().div_ceil(threads) } else { parts.len() };
    let mut rest = values.as_deref_mut();
    let tasks: Vec<_> = parts
        .chunks_mut(per_task.max(1))
        .enumerate()
        .map(|(i, p)| {
            let r0 = i * per_task * BLOCK;
            (r0, p, rest.split_front((rows - r0).min(per_task * BLOCK)))
        })
        .collect();
    let gather = |(r0, p, v): (usize, &mut [f64], Option<&mut [T]>)| match targets.weight() {
        None => gather_blocks(x, layout, &targets, r0, p, v, |_| T::one()),
        Some(w) => gather_blocks(x, layout, &targets, r0, p, v, |t| w[t]),
    };
    let found: Vec<Found> = if tasks.len() > 1 {
        tasks.into_par_iter().map(gather).collect()
    } else {
        tasks.into_iter().map(gather).collect()
    };
    let first_bad = found.iter().find_map(|f| f.first_bad);
    let targets = targets.checked(first_bad, || found.iter().map(|f| f.kept).sum())?;
    Ok((targets, values, tree_of_block_sums(&parts)))
}

/// What [`gather_blocks`] found in its rows: how many are not ignored, and the first whose id
/// is neither a class nor `ignore_index`.
struct Found {
    kept: usize,
    first_bad: Option<usize>,
}

/// Rows ahead whose element [`gather_values`] prefetches: about the misses one core keeps in
/// flight, times two.
const GATHER_AHEAD: usize = 24;
/// Contiguous rows of at most this many bytes are not prefetched by [`gather_blocks`] on a CPU
/// whose hardware prefetcher follows them ([`follows_short_row_gathers`]).
const NEAR_ROW_BYTES: usize = 128;
/// Rows from which [`gather_values`] uses every thread: below, the gather takes about as long
/// as a fork-join.
const GATHER_PARALLEL_MIN: usize = 2048;

/// The rows of blocks `parts` (from row `r0`): `-weight(t) x[r, t]` for row `r` of class `t`
/// (0 for an ignored or invalid row) into `values` (or a scratch block), each block's
/// [`block_sum`] into `parts`.
#[inline(always)]
fn gather_blocks<T: Float>(
    x: &[T],
    layout: &AxisLayout,
    targets: &UncheckedTargets<'_, T>,
    r0: usize,
    parts: &mut [f64],
    mut values: Option<&mut [T]>,
    weight: impl Fn(usize) -> T,
) -> Found {
    let (ids, ignore, classes) = (targets.ids(), targets.ignore_index(), layout.len as u64);
    let rows = ids.len();
    let mut found = Found { kept: 0, first_bad: None };
    let mut scratch = [T::zero(); BLOCK];
    // rows of up to a few cache lines, contiguous, are a stream some hardware prefetchers follow
    let near = layout.inner == 1 && layout.len * std::mem::size_of::<T>() <= NEAR_ROW_BYTES;
    let far = !(near && follows_short_row_gathers());
    for (b, part) in parts.iter_mut().enumerate() {
        let s = r0 + b * BLOCK;
        let len = BLOCK.min(rows - s);
        let v: &mut [T] = match values.split_front(len) {
            Some(v) => v,
            None => &mut scratch[..len],
        };
        for (k, v) in v.iter_mut().enumerate() {
            let r = s + k;
            if let Some(&t) = ids.get(r + GATHER_AHEAD).filter(|_| far) {
                if (t as u64) < classes {
                    prefetch(x.as_ptr().wrapping_add(layout.at(r + GATHER_AHEAD, t as usize)));
                }
            }
            let t = ids[r];
            *v = if t == ignore {
                T::zero()
            } else if (t as u64) < classes {
                found.kept += 1;
                -x[layout.at(r, t as usize)] * weight(t as usize)
            } else {
                found.first_bad.get_or_insert(r);
                T::zero()
            };
        }
        *part = block_sum(v);
    }
    found
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

    /// The gather checks the ids in its own pass, in blocks split over the threads: the error
    /// names the first bad id whatever the split, and the values, their sum and the count of
    /// kept rows are those of the plain definition (ids checked first, `sum_acc` of the values).
    #[test]
    fn the_gathers_checks_and_sums_match_the_plain_definition() {
        let (rows, classes) = (3 * GATHER_PARALLEL_MIN + 5, 7);
        let x: Vec<f32> = (0..rows * classes).map(|i| ((i * 7919) % 1013) as f32 * 1e-2 - 5.0).collect();
        let mut t: Vec<i64> = (0..rows).map(|r| ((r * 31) % classes) as i64).collect();
        for r in (0..rows).step_by(97) {
            t[r] = -100;
        }
        let w: Vec<f32> = (0..classes).map(|c| 0.5 + c as f32).collect();
        let plain: Vec<f32> = (0..rows)
            .map(|r| if t[r] == -100 { 0.0 } else { -x[r * classes + t[r] as usize] * w[t[r] as usize] })
            .collect();
        let total_w = crate::kernels::sum::sum_by(rows, |r| if t[r] == -100 { 0.0 } else { w[t[r] as usize] as f64 });
        let want_mean = (crate::kernels::sum::sum_acc(&plain) / total_w) as f32;
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let input = || View::new(&x, &[rows, classes]).unwrap();
                let none = NllOptions { reduction: Reduction::None, ..Default::default() };
                let out = nll(input(), View::from(&t[..]), Some(View::from(&w[..])), &none).unwrap();
                assert_eq!(out.data(), &plain[..], "{threads} threads");
                let mean = nll(input(), View::from(&t[..]), Some(View::from(&w[..])), &NllOptions::default()).unwrap();
                assert_eq!(mean.item().unwrap().to_bits(), want_mean.to_bits(), "{threads} threads");
                // two bad ids in different blocks (and different tasks): the first is named
                let mut bad = t.clone();
                (bad[2 * GATHER_PARALLEL_MIN + 1], bad[GATHER_PARALLEL_MIN + 3]) = (classes as i64, -1);
                let e = nll(input(), View::from(&bad[..]), None, &none).unwrap_err();
                assert!(
                    matches!(e, LossError::IndexOutOfRange { index: -1, position, .. } if position == GATHER_PARALLEL_MIN + 3),
                    "{threads} threads: {e}"
                );
            });
        }
    }
}
