//! The shared kernel of Keras' elementwise losses (`LogCosh`, `MeanAbsolutePercentageError`,
//! `MeanSquaredLogarithmicError`, `Poisson`, `KLDivergence`, `SquaredHinge`, ...): a term per
//! element, combined over the last axis into one value per sample, then [`KerasReduce`].
//!
//! `y_true` and `y_pred` are first aligned with [`align_pair`] (a trailing axis of size 1
//! dropped or added); the per-sample loss has the aligned shape without its last axis — a 0-d
//! value for 1-D inputs, returned unreduced as Keras does. A 0-d input has no last axis and
//! is an error (Keras raises too). An empty last axis gives NaN under a mean (0/0, as
//! `jnp.mean`) and 0 under a sum.

use super::{align_pair, KerasReduce};
use crate::error::{LossError, Result};
use crate::float::{DType, Float};
use crate::grad::{overwritten_slots, start_optional, Backward, Grads, Upstream};
use crate::kernels::simd::dispatch;
use crate::kernels::sum::{
    block_sums, close_sums, par_units, run_block_sums, tree, Every, SplitOut, BLOCK, CHUNK, RUN,
};
use crate::reduction::Reduction;
use crate::tensor::{numel, Tensor, View};

/// How the terms of one sample are combined over the last axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Combine {
    /// `ops.mean(..., axis=-1)`.
    Mean,
    /// `ops.sum(..., axis=-1)`.
    Sum,
}

/// The terms of a loss over a tile of elements (a few thousand at most, in cache): for each
/// element its term and, with `grads = Some((c, g))`, `c` times the term's derivative in
/// `y_pred` into `g`. Any `Fn(y_true, y_pred) -> (term, derivative)` is one, computed element
/// by element; a loss whose term is one long chain of dependent operations can split it into
/// stages, each a loop over the tile, which the CPU overlaps across more elements.
pub(crate) trait Terms<T: Float>: Copy + Sync {
    /// The type of the terms: `T`, or `f64` where terms of either sign may cancel in the sums
    /// ([`Wide`]).
    type Value: Float;
    /// The type of the per-sample values: `T`, or `f64` where they may cancel in the reduction
    /// ([`Wide`], [`Checked`]).
    type Sum: Float;
    /// Whether [`fill_bounded`](Terms::fill_bounded) bounds the terms' errors and
    /// [`fill_exact`](Terms::fill_exact) is a slower, exact computation ([`Checked`]).
    const CHECKED: bool = false;
    /// Fills `values` (and `grads`) for the elements of `y_true` and `y_pred`, which are at
    /// least as long as `values`.
    fn fill(self, y_true: &[T], y_pred: &[T], values: &mut [Self::Value], grads: Option<(T, &mut [T])>);
    /// [`fill`](Terms::fill), and into `bounds` a bound on each term's error in units of `T`'s
    /// unit roundoff (half its machine epsilon): 0 for terms that are not [`CHECKED`](Terms::CHECKED).
    #[inline(always)]
    fn fill_bounded(
        self,
        y_true: &[T],
        y_pred: &[T],
        values: &mut [Self::Value],
        bounds: &mut [Self::Value],
        grads: Option<(T, &mut [T])>,
    ) {
        bounds.fill(Self::Value::from_acc(0.0));
        self.fill(y_true, y_pred, values, grads)
    }
    /// The terms (and derivatives) as [`Sum`](Terms::Sum)s, computed exactly up to their
    /// roundings: what [`Checked`] terms fall back on, [`fill`](Terms::fill) for the others.
    fn fill_exact(self, y_true: &[T], y_pred: &[T], values: &mut [Self::Sum], grads: Option<(T, &mut [T])>);
}

impl<T: Float, F: Fn(T, T) -> (T, T) + Copy + Sync> Terms<T> for F {
    type Value = T;
    type Sum = T;
    #[inline(always)]
    fn fill(self, y_true: &[T], y_pred: &[T], values: &mut [T], grads: Option<(T, &mut [T])>) {
        Wide(self).fill(y_true, y_pred, values, grads)
    }
    #[inline(always)]
    fn fill_exact(self, y_true: &[T], y_pred: &[T], values: &mut [T], grads: Option<(T, &mut [T])>) {
        self.fill(y_true, y_pred, values, grads)
    }
}

/// Terms whose values `term(t, p) -> (value, derivative)` are of type `V`: `f64` for a loss
/// whose terms can have either sign (the exact form of Poisson's `p - t ln p` and
/// Kullback-Leibler's `t ln(t / p)` in [`Checked`]), so that neither the terms nor their sums
/// over the last axis and the batch are rounded to `T` before the result (in `f32`, a mean
/// that cancels to a thousandth of its terms would otherwise carry their roundings a
/// thousandfold).
#[derive(Clone, Copy)]
pub(crate) struct Wide<F>(pub F);

impl<T: Float, V: Float, F: Fn(T, T) -> (V, T) + Copy + Sync> Terms<T> for Wide<F> {
    type Value = V;
    type Sum = V;
    #[inline(always)]
    fn fill_exact(self, y_true: &[T], y_pred: &[T], values: &mut [V], grads: Option<(T, &mut [T])>) {
        self.fill(y_true, y_pred, values, grads)
    }
    #[inline(always)]
    fn fill(self, y_true: &[T], y_pred: &[T], values: &mut [V], grads: Option<(T, &mut [T])>) {
        let Wide(term) = self;
        let n = values.len();
        let (ts, ps) = (&y_true[..n], &y_pred[..n]);
        match grads {
            Some((c, g)) => {
                // cut to `n`: no bounds check, so no scalar tail
                let g = &mut g[..n];
                for i in 0..n {
                    let (l, dl) = term(ts[i], ps[i]);
                    values[i] = l;
                    g[i] = c * dl;
                }
            }
            None => {
                for i in 0..n {
                    values[i] = term(ts[i], ps[i]).0;
                }
            }
        }
    }
}

/// Terms of either sign computed fast in `f32`, each with a bound on its error, and again in
/// `f64` (rounded once) wherever those bounds do not vouch for the result:
/// `Checked(first, then, exact)`. The fast terms come in two stages as [`Staged`] ones,
/// `first(t, p)` (a logarithm) then `then(t, p, first(t, p)) -> (term, derivative, bound)` in
/// `T`, with `|term - exact term| <= bound * u` (`u` the unit roundoff of `T`); `exact(t, p)
/// -> (term in f64, derivative)`.
///
/// [`last_axis_loss`] sums the bounds with the terms. A per-sample value whose bound is above
/// [`ACCEPT`] times its magnitude (its terms cancel) is computed again from `exact`, its
/// gradient too; a reduced loss whose bound, carried through the reduction's weights, is above
/// [`ACCEPT`] times its magnitude (the per-sample values cancel) is computed again from
/// `exact` throughout. So an `f32` result is never more than `ACCEPT` units of roundoff from
/// the exact one (`2^-19` relative in `f32`, 16 to 32 ulp; in practice within one or two), where plain `f32` terms would
/// carry their roundings into a cancelling mean a thousandfold, and costs an `f64` computation
/// only where the terms cancel. In `f64`, the exact terms are used alone.
#[derive(Clone, Copy)]
pub(crate) struct Checked<A, B, E>(pub A, pub B, pub E);

/// The largest error bound [`Checked`] terms accept, in units of roundoff of the value they
/// bound (`2^-19` relative in `f32`: 16 to 32 ulp, a tenth of the conformance tolerance).
pub(crate) const ACCEPT: f64 = 32.0;

impl<T, A, B, E> Terms<T> for Checked<A, B, E>
where
    T: Float,
    A: Fn(T, T) -> T + Copy + Sync,
    B: Fn(T, T, T) -> (T, T, T) + Copy + Sync,
    E: Fn(T, T) -> (f64, T) + Copy + Sync,
{
    type Value = T;
    type Sum = f64;
    const CHECKED: bool = true;
    #[inline(always)]
    fn fill(self, y_true: &[T], y_pred: &[T], values: &mut [T], grads: Option<(T, &mut [T])>) {
        in_stages(self.0, self.1, y_true, y_pred, values, None, grads)
    }
    #[inline(always)]
    fn fill_bounded(
        self,
        y_true: &[T],
        y_pred: &[T],
        values: &mut [T],
        bounds: &mut [T],
        grads: Option<(T, &mut [T])>,
    ) {
        in_stages(self.0, self.1, y_true, y_pred, values, Some(bounds), grads)
    }
    #[inline(always)]
    fn fill_exact(self, y_true: &[T], y_pred: &[T], values: &mut [f64], grads: Option<(T, &mut [T])>) {
        Wide(self.2).fill(y_true, y_pred, values, grads)
    }
}

/// Terms in two stages: `first(t, p)` of every element of a piece of a tile (an
/// exponential), then `then(t, p, first(t, p))`, the term and its derivative. One loop over
/// both stages is a chain of dependent operations per element which the CPU's scheduler cannot
/// overlap across enough elements when it is long (an exponential, then a logarithm and a
/// quotient: in two loops 1.3-1.5x faster on Zen 3).
#[derive(Clone, Copy)]
pub(crate) struct Staged<A, B>(pub A, pub B);

impl<T: Float, A: Fn(T, T) -> T + Copy + Sync, B: Fn(T, T, T) -> (T, T) + Copy + Sync> Terms<T> for Staged<A, B> {
    type Value = T;
    type Sum = T;
    #[inline(always)]
    fn fill_exact(self, y_true: &[T], y_pred: &[T], values: &mut [T], grads: Option<(T, &mut [T])>) {
        self.fill(y_true, y_pred, values, grads)
    }
    #[inline(always)]
    fn fill(self, y_true: &[T], y_pred: &[T], values: &mut [T], grads: Option<(T, &mut [T])>) {
        let Staged(first, then) = self;
        in_stages(
            first,
            #[inline(always)]
            move |t: T, p: T, z: T| {
                let (l, dl) = then(t, p, z);
                (l, dl, T::zero())
            },
            y_true,
            y_pred,
            values,
            None,
            grads,
        )
    }
}

/// The loops of [`Staged`] terms (and of [`Checked`] ones, whose second stage also gives each
/// term's error bound, written into `bounds` when given): `first(t, p)` over a piece of the
/// tile, then `then(t, p, first(t, p)) -> (term, derivative, bound)` over it.
#[inline(always)]
fn in_stages<T: Float>(
    first: impl Fn(T, T) -> T,
    then: impl Fn(T, T, T) -> (T, T, T),
    y_true: &[T],
    y_pred: &[T],
    values: &mut [T],
    mut bounds: Option<&mut [T]>,
    mut grads: Option<(T, &mut [T])>,
) {
    // pieces whose inputs and first stage stay in L1 between the two loops
    const PIECE: usize = 256;
    let n = values.len();
    let mut s = 0;
    while s < n {
        let len = PIECE.min(n - s);
        let (ts, ps, v) = (&y_true[s..s + len], &y_pred[s..s + len], &mut values[s..s + len]);
        for i in 0..len {
            v[i] = first(ts[i], ps[i]);
        }
        match (grads.as_mut(), bounds.as_deref_mut()) {
            (Some((c, g)), Some(b)) => {
                let (g, b) = (&mut g[s..s + len], &mut b[s..s + len]);
                for i in 0..len {
                    let (l, dl, e) = then(ts[i], ps[i], v[i]);
                    (v[i], g[i], b[i]) = (l, *c * dl, e);
                }
            }
            (Some((c, g)), None) => {
                let g = &mut g[s..s + len];
                for i in 0..len {
                    let (l, dl, _) = then(ts[i], ps[i], v[i]);
                    (v[i], g[i]) = (l, *c * dl);
                }
            }
            (None, Some(b)) => {
                let b = &mut b[s..s + len];
                for i in 0..len {
                    let (l, _, e) = then(ts[i], ps[i], v[i]);
                    (v[i], b[i]) = (l, e);
                }
            }
            (None, None) => {
                for i in 0..len {
                    v[i] = then(ts[i], ps[i], v[i]).0;
                }
            }
        }
        s += len;
    }
}

/// Computes `reduce(sample_weight * combine_d term(y_true[.., d], y_pred[.., d]))` where `term`
/// gives the elements' terms and their derivatives in `y_pred` ([`Terms`]); with `backward`, the gradient
/// with respect to `y_pred` (in `y_pred`'s own shape). `y_true` has no gradient.
///
/// The upstream gradient of each sample does not depend on the values, so it is computed
/// first and one pass over the rows ([`par_units`], multi-threaded with the same bits on any
/// thread count) computes the per-sample values and writes the gradient. [`Checked`] terms in
/// `f32` are checked there row by row, and the loss once at the end (a second pass, of the
/// values only, where it fails).
pub(crate) fn last_axis_loss<T: Float, Tm: Terms<T>>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    reduction: Reduction,
    combine: Combine,
    term: Tm,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let (loss, grads, exact) = drive(y_true, y_pred, sample_weight, reduction, combine, term, false, backward)?;
    if exact {
        // the per-sample values cancel in the reduction: all of them again, exact (the
        // gradient does not depend on them)
        let (loss, _, _) = drive(y_true, y_pred, sample_weight, reduction, combine, term, true, None)?;
        return Ok((loss, grads));
    }
    Ok((loss, grads))
}

/// [`last_axis_loss`] in one pass, with every term exact ([`Terms::fill_exact`]) if `exact`;
/// the flag says that the loss must be computed again that way ([`Checked`] terms).
#[allow(clippy::too_many_arguments)]
fn drive<T: Float, Tm: Terms<T>>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    reduction: Reduction,
    combine: Combine,
    term: Tm,
    exact: bool,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>, bool)> {
    let shape = align_pair(y_true.shape(), y_pred.shape())?;
    let Some((&d, per_sample)) = shape.split_last() else {
        return Err(LossError::shape("y_pred", "at least one axis (the loss combines over the last axis)", &shape));
    };
    let reducer = KerasReduce::new(reduction, per_sample, sample_weight, None)?;
    let (yt, yp) = (y_true.data(), y_pred.data());
    let n = numel(per_sample);
    // the per-sample combination: 1/D for a mean (NaN for D = 0, as 0/0), 1 for a sum
    let scale = match combine {
        Combine::Mean => 1.0 / d as f64,
        Combine::Sum => 1.0,
    };
    let divisor = match combine {
        Combine::Mean => d as f64,
        Combine::Sum => 1.0,
    };
    // error bounds are checked in f32 only: f64 computes the exact terms
    let checked = Tm::CHECKED && T::DTYPE == DType::F32 && !exact;
    // checked terms in f64 are the exact ones (the fast ones may leave out special arguments);
    // a constant for terms that are not checked: their loops have no verdicts to give
    let exact = Tm::CHECKED && (exact || T::DTYPE == DType::F64);
    // how much each per-sample value moves a reduced loss: its bound's weight in the loss's
    let reach = (checked && reducer.reduces()).then(|| reducer.backward(&Upstream::Ones)).transpose()?;
    let check = checked.then(|| RowCheck { unit: T::epsilon().acc() / 2.0 / divisor, reach: reach.as_deref() });
    let mut values = vec![Tm::Sum::from_acc(0.0); n];
    let (upstream, mut sink) = start_optional(backward);
    let cots = upstream.as_ref().map(|up| reducer.backward(up)).transpose()?;
    let [grad] = overwritten_slots(&mut sink, [("y_pred", y_pred.shape(), true)])?;
    let mut bound = 0.0;
    if let Some(rows_per_chunk) = CHUNK.checked_div(d) {
        let cots = cots.as_deref();
        let rows_per_chunk = rows_per_chunk.max(1);
        bound = par_units(n, rows_per_chunk, (Every(Some(&mut values[..]), d), grad), d, |r0, r1, (vals, mut grad)| {
            let vals = vals.0.unwrap_or_default();
            dispatch(
                #[inline(always)]
                || {
                    // local copies: kept in registers, not reloaded after every store
                    let (term, cots, check) = (term, cots, check);
                    if d < BLOCK {
                        let rows = Rows { yt, yp, d, scale, divisor, cots, check, exact };
                        return short_rows(&rows, r0, r1, vals, &mut grad, term);
                    }
                    let zero = Tm::Value::from_acc(0.0);
                    let mut scratch = [zero; RUN * BLOCK];
                    // only checked or exact terms need these (as in `short_rows`)
                    let mut bounds = if check.is_some() { vec![zero; RUN * BLOCK] } else { Vec::new() };
                    let exact_len = if check.is_some() || exact { RUN * BLOCK } else { 0 };
                    let mut exact_scratch = vec![Tm::Sum::from_acc(0.0); exact_len];
                    let mut parts = vec![0.0f64; 2 * d.div_ceil(BLOCK)];
                    let mut bound = 0.0;
                    for (k, r) in (r0..r1).enumerate() {
                        let mut g_row = grad.split_front(d);
                        let c = cots.map(|c| T::from_acc(c[r].acc() * scale));
                        let (ts, ps) = (&yt[r * d..(r + 1) * d], &yp[r * d..(r + 1) * d]);
                        let verdict = if exact {
                            None
                        } else {
                            let b = check.is_some().then_some(&mut bounds[..]);
                            let (sum, bsum) = row_sums(
                                ts,
                                ps,
                                c,
                                g_row.as_deref_mut(),
                                &mut scratch,
                                b,
                                &mut parts,
                                #[inline(always)]
                                |t: &[T],
                                 p: &[T],
                                 v: &mut [Tm::Value],
                                 b: Option<&mut [Tm::Value]>,
                                 g: Option<(T, &mut [T])>| match b {
                                    Some(b) => term.fill_bounded(t, p, v, b, g),
                                    None => term.fill(t, p, v, g),
                                },
                            );
                            match &check {
                                Some(check) => check.verdict(r, sum, bsum).map(|b| (sum, b)),
                                None => Some((sum, 0.0)),
                            }
                        };
                        let sum = match verdict {
                            Some((sum, b)) => {
                                bound += b;
                                sum
                            }
                            // the terms cancel (or every term is to be exact): the row, exact
                            None => {
                                let v = &mut exact_scratch[..];
                                row_sums(
                                    ts,
                                    ps,
                                    c,
                                    g_row,
                                    v,
                                    None,
                                    &mut parts,
                                    #[inline(always)]
                                    |t: &[T],
                                     p: &[T],
                                     v: &mut [Tm::Sum],
                                     _: Option<&mut [Tm::Sum]>,
                                     g: Option<(T, &mut [T])>| {
                                        term.fill_exact(t, p, v, g)
                                    },
                                )
                                .0
                            }
                        };
                        vals[k] = Tm::Sum::from_acc(sum / divisor);
                    }
                    bound
                },
            )
        });
    } else {
        // no element: every sample is the empty mean (NaN) or sum (0)
        values.fill(Tm::Sum::from_acc(0.0 * scale));
    }
    let loss = reducer.reduce(&values);
    // a reduced loss is one value; NaN (a NaN loss) counts as not within: the exact terms decide
    let within = |l: &T| bound <= ACCEPT * check.map_or(0.0, |c| c.unit) * divisor * l.acc().abs();
    let again = check.is_some_and(|check| check.reach.is_some() && !loss.data().iter().all(within));
    Ok((loss, sink.map(|s| s.finish()).unwrap_or_default(), again))
}

/// The verdict on a [`Checked`] per-sample value.
#[derive(Clone, Copy)]
struct RowCheck<'a, T> {
    /// the unit roundoff of `T` over the per-sample divisor: a row's error bound, from its
    /// summed term bounds
    unit: f64,
    /// [`KerasReduce::backward`] of ones (for a reduced loss)
    reach: Option<&'a [T]>,
}

/// Slack on a summed bound: the bounds themselves are computed in `T`, and a short row's are
/// summed in `T` too ([`close_sums`]: below `35 u` relative for rows shorter than [`BLOCK`]),
/// a long row's in `f64`.
const BOUND_SLACK: f64 = 1.0 + 1.0 / 64.0;

impl<T: Float> RowCheck<'_, T> {
    /// Whether row `r`, with terms summing to `sum` and bounds to `bsum`, is accurate enough:
    /// then its error's share of the loss's bound, else `None` (NaN and infinities included:
    /// the exact terms decide those).
    #[inline(always)]
    fn verdict(&self, r: usize, sum: f64, bsum: f64) -> Option<f64> {
        let bsum = bsum * BOUND_SLACK;
        (bsum <= ACCEPT * sum.abs() && sum.is_finite())
            .then(|| self.reach.map_or(0.0, |reach| reach[r].acc().abs() * bsum * self.unit))
    }
}

/// Sums the terms of one row (and their bounds, with `bounds`) that `fill(t, p, values,
/// bounds, grads)` computes run by run, writing `c` times their derivatives into `g`; `parts`
/// holds two block sums per block of the row.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row_sums<T: Float, V: Float>(
    ts: &[T],
    ps: &[T],
    c: Option<T>,
    mut g: Option<&mut [T]>,
    scratch: &mut [V],
    mut bounds: Option<&mut [V]>,
    parts: &mut [f64],
    fill: impl Fn(&[T], &[T], &mut [V], Option<&mut [V]>, Option<(T, &mut [T])>),
) -> (f64, f64) {
    let d = ts.len();
    let (vparts, bparts) = parts.split_at_mut(parts.len() / 2);
    let (mut nb, mut s) = (0, 0);
    while s < d {
        // a run of blocks, summed side by side
        let len = (RUN * BLOCK).min(d - s);
        let (t, p, v) = (&ts[s..s + len], &ps[s..s + len], &mut scratch[..len]);
        let blocks = len.div_ceil(BLOCK);
        let mut b = bounds.as_deref_mut().map(|b| &mut b[..len]);
        fill(t, p, v, b.as_deref_mut(), c.zip(g.split_front(len)));
        if let Some(b) = b {
            run_block_sums(b, &mut bparts[nb..nb + blocks]);
        }
        run_block_sums(v, &mut vparts[nb..nb + blocks]);
        nb += blocks;
        s += len;
    }
    let bsum = if bounds.is_some() { tree(&bparts[..nb]) } else { 0.0 };
    (tree(&vparts[..nb]), bsum)
}

/// Elements per group of short rows in [`short_rows`] (a stack buffer of terms).
const GROUP: usize = 16 * BLOCK;

/// What [`short_rows`] reads.
struct Rows<'a, T: Float> {
    yt: &'a [T],
    yp: &'a [T],
    d: usize,
    scale: f64,
    divisor: f64,
    cots: Option<&'a [T]>,
    check: Option<RowCheck<'a, T>>,
    /// every term exact ([`Terms::fill_exact`])
    exact: bool,
}

/// [`last_axis_loss`] on rows `r0..r1` shorter than [`BLOCK`]: the terms of a group of whole
/// rows are computed in one vectorised loop across row boundaries (row by row, a short row
/// leaves a scalar remainder that can cost as much as the rest), then each row's terms are
/// summed (the same single block sum as row by row) and its gradient scaled by its upstream.
/// Returns the rows' share of the loss's error bound ([`Checked`] terms).
#[inline(always)]
fn short_rows<T: Float, Tm: Terms<T>>(
    rows: &Rows<'_, T>,
    r0: usize,
    r1: usize,
    vals: &mut [Tm::Sum],
    grad: &mut Option<&mut [T]>,
    term: Tm,
) -> f64 {
    let Rows { yt, yp, d, scale, divisor, cots, check, exact } = *rows;
    let zero = Tm::Value::from_acc(0.0);
    let mut buf = [zero; GROUP];
    // only checked or exact terms need these
    let mut bbuf = if check.is_some() { vec![zero; GROUP] } else { Vec::new() };
    let mut exact_buf = if check.is_some() || exact { vec![Tm::Sum::from_acc(0.0); d] } else { Vec::new() };
    let per_group = (GROUP / d).max(1);
    // one cotangent for every row of the range (a reduced loss without sample weights): the
    // derivatives are scaled as they are written, not in a second pass (the same products)
    let same_cot = cots.and_then(|c| {
        let first = c.get(r0)?.acc();
        let same = c.get(r0..r1)?.iter().all(|x| x.acc().to_bits() == first.to_bits());
        same.then(|| T::from_acc(first * scale))
    });
    let mut bound = 0.0;
    let mut r = r0;
    while r < r1 {
        let rows = per_group.min(r1 - r);
        let len = rows * d;
        let (ts, ps) = (&yt[r * d..r * d + len], &yp[r * d..r * d + len]);
        let v = &mut buf[..len];
        let mut g = cots.and(grad.split_front(len));
        // the derivatives first, then each row's cotangent while they are in L1 (or the one
        // cotangent at once)
        let grads = g.as_deref_mut().map(|g| (same_cot.unwrap_or(T::one()), g));
        match check {
            _ if exact => {}
            Some(_) => term.fill_bounded(ts, ps, v, &mut bbuf[..len], grads),
            None => term.fill(ts, ps, v, grads),
        }
        let row_cot = |k: usize| cots.map(|c| T::from_acc(c[r + k].acc() * scale));
        if let Some(g) = g.as_deref_mut().filter(|_| same_cot.is_none()) {
            for k in 0..rows {
                let c = row_cot(k).unwrap_or_default();
                for gi in &mut g[k * d..(k + 1) * d] {
                    *gi = c * *gi;
                }
            }
        }
        // the row sums, many rows side by side
        let (mut sums, mut bsums) = ([0.0f64; 64], [0.0f64; 64]);
        for k0 in (0..rows).step_by(sums.len()) {
            let m = sums.len().min(rows - k0);
            if !exact {
                block_sums(&v[k0 * d..(k0 + m) * d], d, &mut sums[..m]);
            }
            if check.is_some() {
                // in `T`: a bound needs no more than to be close (the slack covers the roundings)
                close_sums(&bbuf[k0 * d..(k0 + m) * d], d, &mut bsums[..m]);
            }
            for k in k0..k0 + m {
                let verdict = match &check {
                    _ if exact => None,
                    Some(check) => check.verdict(r + k, sums[k - k0], bsums[k - k0]),
                    None => Some(0.0),
                };
                let sum = match verdict {
                    Some(b) => {
                        bound += b;
                        sums[k - k0]
                    }
                    None => {
                        // the terms cancel (or every term is to be exact): the row, exact, and
                        // its derivatives times its cotangent (the same products as above)
                        let row = k * d..(k + 1) * d;
                        let grads = row_cot(k).zip(g.as_deref_mut().map(|g| &mut g[row.clone()]));
                        term.fill_exact(&ts[row.clone()], &ps[row], &mut exact_buf, grads);
                        let mut one = [0.0];
                        block_sums(&exact_buf, d, &mut one);
                        one[0]
                    }
                };
                vals[r - r0 + k] = Tm::Sum::from_acc(sum / divisor);
            }
        }
        r += rows;
    }
    bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad::Upstream;

    fn square_err(t: f64, p: f64) -> (f64, f64) {
        ((p - t) * (p - t), 2.0 * (p - t))
    }

    fn run(
        t: &[f64],
        p: &[f64],
        ts: &[usize],
        ps: &[usize],
        w: Option<(&[f64], &[usize])>,
        red: Reduction,
        combine: Combine,
    ) -> Result<(Tensor<f64>, Grads<f64>)> {
        let (t, p) = (View::new(t, ts)?, View::new(p, ps)?);
        let w = w.map(|(w, s)| View::new(w, s)).transpose()?;
        last_axis_loss(&t, &p, w.as_ref(), red, combine, square_err, Some(Backward::new()))
    }

    #[test]
    fn short_and_long_rows_match_a_plain_computation() {
        // rows shorter than a block go through `short_rows` (groups of rows in one loop), longer
        // ones row by row: both must give each row's mean and the weighted gradient
        for d in [1usize, 3, 100, BLOCK - 1, BLOCK, BLOCK + 44, 3 * BLOCK] {
            let n = 2 * GROUP / d + 3;
            let t: Vec<f64> = (0..n * d).map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0).collect();
            let p: Vec<f64> = (0..n * d).map(|i| ((i * 53) % 97) as f64 / 40.0 - 1.2).collect();
            let w: Vec<f64> = (0..n).map(|i| (i % 5) as f64 * 0.25).collect();
            let (l, g) = run(&t, &p, &[n, d], &[n, d], Some((&w, &[n])), Reduction::None, Combine::Mean).unwrap();
            let g = g.get("y_pred").unwrap().data();
            for (r, &wr) in w.iter().enumerate() {
                let row = r * d..(r + 1) * d;
                let mean = row.clone().map(|i| square_err(t[i], p[i]).0).sum::<f64>() / d as f64;
                assert!((l.data()[r] - wr * mean).abs() <= 1e-12 * (1.0 + mean.abs()), "d={d} r={r}");
                for i in row {
                    let expected = wr / d as f64 * square_err(t[i], p[i]).1;
                    assert!((g[i] - expected).abs() <= 1e-15 * (1.0 + expected.abs()), "d={d} i={i}");
                }
            }
        }
    }

    /// `Checked` terms `p - t` whose fast form is off by a known `2^-21` relative (8 units of
    /// f32 roundoff, inside its bound of 16) and has derivative 1.5 (the exact one: 1), so that
    /// each value and gradient shows which form made it.
    fn marked_terms<T: Float>() -> impl Terms<T, Sum = f64> {
        let mark = T::of(1.0 + 2f64.powi(-21));
        Checked(
            |t: T, p: T| p - t,
            move |_: T, _: T, x: T| (x * mark, T::of(1.5), T::of(16.0) * x.abs()),
            |t: T, p: T| (p.acc() - t.acc(), T::one()),
        )
    }

    /// Rows of `d` terms: row 0 all positive (kept), row 1 cancelling to a fifteenth of its
    /// terms' size (redone exactly), each `[x]` written as `(t, p) = (0, x)`.
    fn two_rows(d: usize) -> (Vec<f32>, Vec<f32>) {
        let mut p: Vec<f32> = (0..d).map(|i| 1.0 + (i % 3) as f32).collect();
        p.extend((0..d).map(|i| if i % 2 == 0 { 4.0 } else { -3.5 }));
        (vec![0.0; 2 * d], p)
    }

    /// [`marked_terms`] over two rows of `d` (unreduced, mean), with their gradient.
    fn marked_rows<T: Float>(t: &[T], p: &[T], d: usize) -> (Tensor<T>, Grads<T>) {
        let (tv, pv) = (View::new(t, &[2, d]).unwrap(), View::new(p, &[2, d]).unwrap());
        let (red, bw) = (Reduction::None, Some(Backward::new()));
        last_axis_loss(&tv, &pv, None, red, Combine::Mean, marked_terms::<T>(), bw).unwrap()
    }

    #[test]
    fn checked_terms_are_redone_exactly_only_where_they_cancel() {
        for d in [2usize, 7, BLOCK + 3, 3 * BLOCK] {
            let (t, p) = two_rows(d);
            let row = |r: usize, fast: bool| -> f64 {
                let x = &p[r * d..(r + 1) * d];
                let mark = 1.0f32 + 2f32.powi(-21);
                x.iter().map(|&x| if fast { (x * mark) as f64 } else { x as f64 }).sum::<f64>() / d as f64
            };
            let (l, g) = marked_rows(&t, &p, d);
            // row 0 from the fast terms, row 1 exact; both differ from the other form
            assert_eq!(l.data(), &[row(0, true) as f32, row(1, false) as f32], "d={d}");
            assert!(row(0, false) as f32 != row(0, true) as f32 && row(1, false) as f32 != row(1, true) as f32);
            let g = g.get("y_pred").unwrap().data();
            let c = 1.0 / d as f32;
            assert!(g[..d].iter().all(|&gi| gi == 1.5 * c) && g[d..].iter().all(|&gi| gi == c), "d={d}");
            // in f64 the exact terms are used throughout, gradient included
            let (t64, p64): (Vec<f64>, Vec<f64>) =
                (t.iter().map(|&v| v as f64).collect(), p.iter().map(|&v| v as f64).collect());
            let (l, g) = marked_rows(&t64, &p64, d);
            let exact64 = |r: usize| p64[r * d..(r + 1) * d].iter().sum::<f64>() / d as f64;
            assert_eq!(l.data(), &[exact64(0), exact64(1)], "d={d}");
            assert!(g.get("y_pred").unwrap().data().iter().all(|&gi| gi == 1.0 / d as f64), "d={d}");
        }
    }

    #[test]
    fn checked_terms_are_redone_exactly_where_the_samples_cancel() {
        // rows 3 and -2.75 in sum: each row's terms agree in sign (kept), but the rows cancel
        // in the reduction to 1/46 of their bound: the loss again, exact; the gradient stays
        let (t, p) = (vec![0.0f32; 4], vec![1.0f32, 2.0, -1.0, -1.75]);
        let (tv, pv) = (View::new(&t, &[2, 2]).unwrap(), View::new(&p, &[2, 2]).unwrap());
        let (l, g) =
            last_axis_loss(&tv, &pv, None, Reduction::Sum, Combine::Mean, marked_terms::<f32>(), Some(Backward::new()))
                .unwrap();
        assert_eq!(l.item(), Some(0.125));
        assert_eq!(g.get("y_pred").unwrap().data(), &[0.75; 4]);
        // with weights that turn the cancellation off, the fast terms stand
        let w = [1.0f32, -1.0];
        let l = last_axis_loss(
            &tv,
            &pv,
            Some(&View::vector(&w[..])),
            Reduction::Sum,
            Combine::Mean,
            marked_terms::<f32>(),
            None,
        )
        .unwrap()
        .0;
        let mark = 1.0f32 + 2f32.powi(-21);
        let fast: f64 = p.iter().zip([1.0, 1.0, -1.0, -1.0]).map(|(&x, w)| w * (x * mark) as f64).sum::<f64>() / 2.0;
        assert_eq!(l.item(), Some(fast as f32));
        assert!(fast as f32 != 2.875);
    }

    #[test]
    fn checked_terms_on_empty_axes() {
        // an empty batch is returned unreduced (shape (0,)) by every reduction: no loss value
        // to check; an empty last axis gives NaN (mean) for every sample, then for the loss
        for reduction in [Reduction::None, Reduction::Sum, Reduction::SumOverBatchSize] {
            let (e, shape) = ([0.0f32; 0], [0usize, 3]);
            let v = View::new(&e, &shape).unwrap();
            let (l, g) =
                last_axis_loss(&v, &v, None, reduction, Combine::Mean, marked_terms::<f32>(), Some(Backward::new()))
                    .unwrap();
            assert_eq!((l.shape(), g.get("y_pred").unwrap().shape()), (&[0usize][..], &shape[..]));
            let v = View::new(&e, &[3, 0]).unwrap();
            let l = last_axis_loss(&v, &v, None, reduction, Combine::Mean, marked_terms::<f32>(), None).unwrap().0;
            assert!(l.data().iter().all(|x| x.is_nan()) && !l.data().is_empty(), "{reduction:?}");
        }
    }

    #[test]
    fn staged_terms_are_the_two_stages_composed() {
        // tiles that end inside a piece and span several; the second stage uses all three
        // arguments, so a piece's first stage reaching the wrong element would show
        let first = |t: f64, p: f64| (p - 2.0 * t).exp();
        let then = |t: f64, p: f64, z: f64| (z * t + p, z - t * p);
        for n in [1usize, 255, 256, 3 * 256 + 37] {
            let t: Vec<f64> = (0..n).map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0).collect();
            let p: Vec<f64> = (0..n).map(|i| ((i * 53) % 97) as f64 / 40.0 - 1.2).collect();
            let (mut v, mut g, mut v_only) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            Staged(first, then).fill(&t, &p, &mut v, Some((0.5, &mut g)));
            Staged(first, then).fill(&t, &p, &mut v_only, None);
            for i in 0..n {
                let (l, dl) = then(t[i], p[i], first(t[i], p[i]));
                assert_eq!((v[i], g[i], v_only[i]), (l, 0.5 * dl, l), "n={n} i={i}");
            }
        }
    }

    #[test]
    fn mean_and_sum_over_the_last_axis() {
        let t = [0.0; 6];
        let p = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        // per sample: mean [14/3, 77/3], sum [14, 77]
        let (l, g) = run(&t, &p, &[2, 3], &[2, 3], None, Reduction::None, Combine::Mean).unwrap();
        assert_eq!(l.shape(), &[2]);
        assert_eq!(l.data(), &[14.0 / 3.0, 77.0 / 3.0]);
        let want = [2.0 / 3.0, 4.0 / 3.0, 2.0, 8.0 / 3.0, 10.0 / 3.0, 4.0];
        for (a, b) in g.get("y_pred").unwrap().data().iter().zip(want) {
            assert!((a - b).abs() < 1e-15);
        }
        let (l, g) = run(&t, &p, &[2, 3], &[2, 3], None, Reduction::SumOverBatchSize, Combine::Sum).unwrap();
        assert_eq!(l.item(), Some(91.0 / 2.0));
        assert_eq!(g.get("y_pred").unwrap().data()[5], 6.0);
    }

    #[test]
    fn one_dimensional_input_is_one_sample_returned_unreduced() {
        let (l, g) = run(&[0.0, 0.0], &[1.0, 3.0], &[2], &[2], None, Reduction::Sum, Combine::Mean).unwrap();
        assert_eq!(l.shape(), &[] as &[usize]);
        assert_eq!(l.item(), Some(5.0));
        assert_eq!(g.get("y_pred").unwrap().data(), &[1.0, 3.0]);
    }

    #[test]
    fn trailing_unit_axis_is_aligned_and_the_gradient_keeps_y_pred_shape() {
        // y_true (2,), y_pred (2, 1): one value per sample, gradient (2, 1)
        let (l, g) = run(&[0.0, 0.0], &[1.0, 3.0], &[2], &[2, 1], None, Reduction::None, Combine::Mean).unwrap();
        assert_eq!(l.data(), &[1.0, 9.0]);
        assert_eq!(g.get("y_pred").unwrap().shape(), &[2, 1]);
        // y_true (2, 1), y_pred (2,)
        let (l, g) = run(&[0.0, 0.0], &[1.0, 3.0], &[2, 1], &[2], None, Reduction::None, Combine::Mean).unwrap();
        assert_eq!(l.data(), &[1.0, 9.0]);
        assert_eq!(g.get("y_pred").unwrap().shape(), &[2]);
    }

    #[test]
    fn sample_weight_and_upstream() {
        let t = [0.0; 4];
        let p = [1.0, 1.0, 2.0, 2.0];
        let w = [1.0, 3.0];
        let (l, g) =
            run(&t, &p, &[2, 2], &[2, 2], Some((&w, &[2, 1])), Reduction::MeanWithSampleWeight, Combine::Mean).unwrap();
        // (1*1 + 3*4) / 4
        assert_eq!(l.item(), Some(13.0 / 4.0));
        // d/dŷ: w / sum(w) * 2 (ŷ - y) / D
        assert_eq!(g.get("y_pred").unwrap().data(), &[0.25, 0.25, 1.5, 1.5]);
        let (tv, pv, wv) =
            (View::new(&t[..], &[2, 2]).unwrap(), View::new(&p[..], &[2, 2]).unwrap(), View::vector(&w[..]));
        let up = [2.0, -1.0];
        let bw = Backward::new().upstream(Upstream::Array(View::vector(&up[..])));
        let (l, g) = last_axis_loss(&tv, &pv, Some(&wv), Reduction::None, Combine::Mean, square_err, Some(bw)).unwrap();
        assert_eq!(l.data(), &[1.0, 12.0]);
        assert_eq!(g.get("y_pred").unwrap().data(), &[2.0, 2.0, -6.0, -6.0]);
    }

    #[test]
    fn empty_axes() {
        // empty batch: per-sample shape (0,) is returned as is
        let (l, g) = run(&[], &[], &[0, 3], &[0, 3], None, Reduction::SumOverBatchSize, Combine::Mean).unwrap();
        assert_eq!(l.shape(), &[0]);
        assert_eq!(g.get("y_pred").unwrap().shape(), &[0, 3]);
        // empty last axis: mean is NaN, sum is 0
        let (l, _) = run(&[], &[], &[3, 0], &[3, 0], None, Reduction::SumOverBatchSize, Combine::Mean).unwrap();
        assert!(l.item().unwrap().is_nan());
        let (l, _) = run(&[], &[], &[3, 0], &[3, 0], None, Reduction::SumOverBatchSize, Combine::Sum).unwrap();
        assert_eq!(l.item(), Some(0.0));
    }

    #[test]
    fn errors() {
        let e = run(&[1.0], &[1.0], &[], &[], None, Reduction::Sum, Combine::Mean).unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "y_pred"), "{e}");
        let e = run(&[1.0; 6], &[1.0; 6], &[2, 3], &[3, 2], None, Reduction::Sum, Combine::Mean).unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "y_true"), "{e}");
        let e = run(&[1.0; 6], &[1.0; 6], &[2, 3], &[2, 3], Some((&[1.0; 3], &[3])), Reduction::Sum, Combine::Mean)
            .unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "sample_weight"), "{e}");
        let e = run(&[1.0; 6], &[1.0; 6], &[2, 3], &[2, 3], None, Reduction::BatchMean, Combine::Mean).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "reduction"), "{e}");
    }
}
