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
use crate::float::Float;
use crate::grad::{overwritten_slots, start_optional, Backward, Grads};
use crate::kernels::simd::dispatch;
use crate::kernels::sum::{block_sums, par_units, run_block_sums, tree, Every, SplitOut, BLOCK, CHUNK, RUN};
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
    /// The type of the terms, the per-sample values and the sums: `T`, or `f64` where terms of
    /// either sign may cancel in the sums ([`Wide`]).
    type Value: Float;
    /// Fills `values` (and `grads`) for the elements of `y_true` and `y_pred`, which are at
    /// least as long as `values`.
    fn fill(self, y_true: &[T], y_pred: &[T], values: &mut [Self::Value], grads: Option<(T, &mut [T])>);
}

impl<T: Float, F: Fn(T, T) -> (T, T) + Copy + Sync> Terms<T> for F {
    type Value = T;
    #[inline(always)]
    fn fill(self, y_true: &[T], y_pred: &[T], values: &mut [T], grads: Option<(T, &mut [T])>) {
        Wide(self).fill(y_true, y_pred, values, grads)
    }
}

/// Terms whose values `term(t, p) -> (value, derivative)` are of type `V`: `f64` for a loss
/// whose terms can have either sign (Poisson's `p - t ln p`, Kullback-Leibler's `t ln(t / p)`),
/// so that neither the terms nor their sums over the last axis and the batch are rounded to
/// `T` before the result (in `f32`, a mean that cancels to a thousandth of its terms would
/// otherwise carry their roundings a thousandfold).
#[derive(Clone, Copy)]
pub(crate) struct Wide<F>(pub F);

impl<T: Float, V: Float, F: Fn(T, T) -> (V, T) + Copy + Sync> Terms<T> for Wide<F> {
    type Value = V;
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

/// Terms in two stages: `first(t, p)` of every element of a piece of a tile (an
/// exponential), then `then(t, p, first(t, p))`, the term and its derivative. One loop over
/// both stages is a chain of dependent operations per element which the CPU's scheduler cannot
/// overlap across enough elements when it is long (an exponential, then a logarithm and a
/// quotient: in two loops 1.3-1.5x faster on Zen 3).
#[derive(Clone, Copy)]
pub(crate) struct Staged<A, B>(pub A, pub B);

impl<T: Float, A: Fn(T, T) -> T + Copy + Sync, B: Fn(T, T, T) -> (T, T) + Copy + Sync> Terms<T> for Staged<A, B> {
    type Value = T;
    #[inline(always)]
    fn fill(self, y_true: &[T], y_pred: &[T], values: &mut [T], mut grads: Option<(T, &mut [T])>) {
        // pieces whose inputs and first stage stay in L1 between the two loops
        const PIECE: usize = 256;
        let Staged(first, then) = self;
        let n = values.len();
        let mut s = 0;
        while s < n {
            let len = PIECE.min(n - s);
            let (ts, ps, v) = (&y_true[s..s + len], &y_pred[s..s + len], &mut values[s..s + len]);
            for i in 0..len {
                v[i] = first(ts[i], ps[i]);
            }
            match grads.as_mut() {
                Some((c, g)) => {
                    let g = &mut g[s..s + len];
                    for i in 0..len {
                        let (l, dl) = then(ts[i], ps[i], v[i]);
                        v[i] = l;
                        g[i] = *c * dl;
                    }
                }
                None => {
                    for i in 0..len {
                        v[i] = then(ts[i], ps[i], v[i]).0;
                    }
                }
            }
            s += len;
        }
    }
}

/// Computes `reduce(sample_weight * combine_d term(y_true[.., d], y_pred[.., d]))` where `term`
/// gives the elements' terms and their derivatives in `y_pred` ([`Terms`]); with `backward`, the gradient
/// with respect to `y_pred` (in `y_pred`'s own shape). `y_true` has no gradient.
///
/// The upstream gradient of each sample does not depend on the values, so it is computed
/// first and one pass over the rows ([`par_units`], multi-threaded with the same bits on any
/// thread count) computes the per-sample values and writes the gradient.
pub(crate) fn last_axis_loss<T: Float, Tm: Terms<T>>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    reduction: Reduction,
    combine: Combine,
    term: Tm,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
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
    let mut values = vec![Tm::Value::from_acc(0.0); n];
    let (upstream, mut sink) = start_optional(backward);
    let cots = upstream.as_ref().map(|up| reducer.backward(up)).transpose()?;
    let [grad] = overwritten_slots(&mut sink, [("y_pred", y_pred.shape(), true)])?;
    if let Some(rows_per_chunk) = CHUNK.checked_div(d) {
        let cots = cots.as_deref();
        let rows_per_chunk = rows_per_chunk.max(1);
        par_units(n, rows_per_chunk, (Every(Some(&mut values[..]), d), grad), d, |r0, r1, (vals, mut grad)| {
            let vals = vals.0.unwrap_or_default();
            dispatch(
                #[inline(always)]
                || {
                    // local copies: kept in registers, not reloaded after every store
                    let (term, cots) = (term, cots);
                    if d < BLOCK {
                        short_rows(yt, yp, d, r0, r1, scale, divisor, cots, vals, &mut grad, term);
                        return 0.0;
                    }
                    let mut scratch = [Tm::Value::from_acc(0.0); RUN * BLOCK];
                    let mut parts = vec![0.0f64; d.div_ceil(BLOCK)];
                    for (k, r) in (r0..r1).enumerate() {
                        let mut g_row = grad.split_front(d);
                        let c = cots.map(|c| T::from_acc(c[r].acc() * scale));
                        let mut nb = 0;
                        let mut s = r * d;
                        while s < (r + 1) * d {
                            // a run of blocks, summed side by side
                            let len = (RUN * BLOCK).min((r + 1) * d - s);
                            let (ts, ps) = (&yt[s..s + len], &yp[s..s + len]);
                            let v = &mut scratch[..len];
                            term.fill(ts, ps, v, c.zip(g_row.split_front(len)));
                            let blocks = len.div_ceil(BLOCK);
                            run_block_sums(v, &mut parts[nb..nb + blocks]);
                            nb += blocks;
                            s += len;
                        }
                        vals[k] = Tm::Value::from_acc(tree(&parts[..nb]) / divisor);
                    }
                    0.0
                },
            )
        });
    } else {
        // no element: every sample is the empty mean (NaN) or sum (0)
        values.fill(Tm::Value::from_acc(0.0 * scale));
    }
    let loss = reducer.reduce(&values);
    Ok((loss, sink.map(|s| s.finish()).unwrap_or_default()))
}

/// Elements per group of short rows in [`short_rows`] (a stack buffer of terms).
const GROUP: usize = 16 * BLOCK;

/// [`last_axis_loss`] on rows `r0..r1` shorter than [`BLOCK`]: the terms of a group of whole
/// rows are computed in one vectorised loop across row boundaries (row by row, a short row
/// leaves a scalar remainder that can cost as much as the rest), then each row's terms are
/// summed (the same single block sum as row by row) and its gradient scaled by its upstream.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn short_rows<T: Float, Tm: Terms<T>>(
    yt: &[T],
    yp: &[T],
    d: usize,
    r0: usize,
    r1: usize,
    scale: f64,
    divisor: f64,
    cots: Option<&[T]>,
    vals: &mut [Tm::Value],
    grad: &mut Option<&mut [T]>,
    term: Tm,
) {
    let mut buf = [Tm::Value::from_acc(0.0); GROUP];
    let per_group = (GROUP / d).max(1);
    let mut r = r0;
    while r < r1 {
        let rows = per_group.min(r1 - r);
        let len = rows * d;
        let (ts, ps) = (&yt[r * d..r * d + len], &yp[r * d..r * d + len]);
        let v = &mut buf[..len];
        match (cots, grad.split_front(len)) {
            (Some(c), Some(g)) => {
                // the derivatives first, then each row's cotangent
                term.fill(ts, ps, v, Some((T::one(), &mut g[..])));
                for k in 0..rows {
                    let c = T::from_acc(c[r + k].acc() * scale);
                    for gi in &mut g[k * d..(k + 1) * d] {
                        *gi = c * *gi;
                    }
                }
            }
            _ => term.fill(ts, ps, v, None),
        }
        // the row sums, four rows side by side
        let mut sums = [0.0f64; 64];
        for k0 in (0..rows).step_by(sums.len()) {
            let m = sums.len().min(rows - k0);
            block_sums(&v[k0 * d..(k0 + m) * d], d, &mut sums[..m]);
            for (val, s) in vals[r - r0 + k0..r - r0 + k0 + m].iter_mut().zip(&sums) {
                *val = Tm::Value::from_acc(s / divisor);
            }
        }
        r += rows;
    }
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
