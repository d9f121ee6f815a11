//! Keras 3's loss reduction (`keras/src/losses/loss.py`): sample weights, masks, and the
//! `sum_over_batch_size` / `mean_with_sample_weight` reductions, shared by every Keras loss.
//!
//! Keras first merges a mask (from `ignore_class`) into the sample weight — with
//! `sum_over_batch_size`/`mean` each valid position weighs `count / valid_count`, so the mean
//! runs over valid positions only — then aligns the ranks of the per-sample losses and the
//! weights (`squeeze_or_expand_to_same_rank`: a trailing axis of size 1 is dropped, or added
//! to a rank-1 operand), multiplies them with broadcasting, and reduces:
//! `sum_over_batch_size`/`mean` divide the sum by the number of weighted values,
//! `mean_with_sample_weight` by the sum of the (aligned, not broadcast) weights; a zero
//! divisor gives 0 (`divide_no_nan`). `none`, and a 0-d result, are returned unreduced.

use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{overwritten_slots, start_optional, Upstream};
use crate::kernels::broadcast::{broadcast_shapes, expand};
use crate::kernels::rows::Workspace;
use crate::kernels::sum::{par_sum_by, sum_acc};
use crate::reduction::{Cot, Reduction, KERAS_REDUCTIONS};
use crate::tensor::{fmt_shape, numel, Tensor, View};

mod last_axis;
pub(crate) use last_axis::{last_axis_loss, Checked, Combine, Staged};

/// Keras' `squeeze_or_expand_to_same_rank` on shapes.
pub(crate) fn squeeze_or_expand(a: &[usize], b: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    let (ra, rb) = (a.len(), b.len());
    if ra == rb + 1 && a.last() == Some(&1) {
        if rb == 1 {
            b.push(1);
        } else {
            a.pop();
        }
    }
    if rb == ra + 1 && b.last() == Some(&1) {
        if ra == 1 {
            a.push(1);
        } else {
            b.pop();
        }
    }
    (a, b)
}

/// The reduction of one call, prepared before the per-sample losses are computed.
pub(crate) struct KerasReduce<T: Float> {
    red: Reduction,
    /// per-sample loss shape (as the loss computes it)
    values_shape: Vec<usize>,
    /// output shape before reduction (after alignment and broadcasting)
    out_shape: Vec<usize>,
    /// for each output element: the per-sample index and the weight
    map: Option<(Vec<usize>, Vec<T>)>,
    /// the divisor of the mean reductions
    divisor: f64,
}

impl<T: Float> KerasReduce<T> {
    /// Validates `red` and the sample weight against the per-sample shape; `mask` (one flag per
    /// per-sample value, true = valid) comes from `ignore_class`.
    pub(crate) fn new(
        red: Reduction,
        values_shape: &[usize],
        sample_weight: Option<&View<'_, T>>,
        mask: Option<&[bool]>,
    ) -> Result<Self> {
        red.check(KERAS_REDUCTIONS)?;
        let mean_like = matches!(red, Reduction::Mean | Reduction::SumOverBatchSize);
        // 1. merge the mask into the sample weight
        let mut sw: Option<(Vec<T>, Vec<usize>)> = sample_weight.map(|w| (w.data().to_vec(), w.shape().to_vec()));
        if let Some(m) = mask {
            let total = T::of_usize(m.len());
            let valid = T::of_usize(m.iter().filter(|&&v| v).count());
            let on = if mean_like {
                if valid == T::zero() {
                    T::zero()
                } else {
                    total / valid
                }
            } else {
                T::one()
            };
            let fm: Vec<T> = m.iter().map(|&v| if v { on } else { T::zero() }).collect();
            sw = Some(match sw {
                None => (fm, values_shape.to_vec()),
                Some((w, ws)) => {
                    let (ms, ws2) = squeeze_or_expand(values_shape, &ws);
                    // `sample_weight *= mask` broadcasts (a (N, 1) weight and a (N, d) mask give
                    // a (N, d) weight, checked against keras 3.15.1 on jax)
                    let b = broadcast_shapes(&ms, &ws2).ok_or_else(|| bad_weight(&ws, values_shape))?;
                    let fm_b = expand("sample_weight", &fm, &ms, &b)?;
                    let w_b = expand("sample_weight", &w, &ws2, &b)?;
                    (w_b.iter().zip(fm_b.iter()).map(|(&a, &c)| a * c).collect(), b)
                }
            });
        }
        // 2. align and broadcast the weight against the per-sample losses
        let (out_shape, map, wsum) = match sw {
            None => (values_shape.to_vec(), None, None),
            Some((w, ws)) => {
                let (vs2, ws2) = squeeze_or_expand(values_shape, &ws);
                let out = broadcast_shapes(&vs2, &ws2).ok_or_else(|| bad_weight(&ws, values_shape))?;
                let idx: Vec<usize> = (0..numel(values_shape)).collect();
                let vi = expand("sample_weight", &idx, &vs2, &out)?.into_owned();
                let wb = expand("sample_weight", &w, &ws2, &out)?.into_owned();
                (out, Some((vi, wb)), Some(sum_acc(&w)))
            }
        };
        let divisor = match (red, wsum) {
            (Reduction::MeanWithSampleWeight, Some(s)) => s,
            _ => numel(&out_shape) as f64,
        };
        Ok(KerasReduce { red, values_shape: values_shape.to_vec(), out_shape, map, divisor })
    }

    /// Whether the per-sample values are reduced to one value (not returned one per sample).
    pub(crate) fn reduces(&self) -> bool {
        !self.unreduced()
    }

    fn unreduced(&self) -> bool {
        self.red == Reduction::None || self.out_shape.is_empty() || self.out_shape == [0]
    }

    /// The loss from the per-sample values, given in `T` or, where a loss's values may cancel
    /// in the reduction (a mean of cosines), in `f64`. The weighting and the sum are in `f64`
    /// (a product of two `T` is exact there), so the only rounding to `T` is the result's.
    pub(crate) fn reduce<V: Float>(&self, values: &[V]) -> Tensor<T> {
        debug_assert_eq!(values.len(), numel(&self.values_shape));
        if self.unreduced() {
            let out = match &self.map {
                None => values.iter().map(|v| T::from_acc(v.acc())).collect(),
                Some((vi, w)) => vi.iter().zip(w).map(|(&i, &w)| T::from_acc(values[i].acc() * w.acc())).collect(),
            };
            return Tensor::from_parts(out, self.out_shape.clone());
        }
        // the weighted values summed as they are formed: the same bits as a vector of them
        // summed, without that vector (new memory each call, whose pages the allocator had
        // returned to the system: a fault per 4 KiB)
        let total = match &self.map {
            None => sum_acc(values),
            Some((vi, w)) => par_sum_by(vi.len(), |j| values[vi[j]].acc() * w[j].acc()),
        };
        if self.red == Reduction::Sum {
            return Tensor::scalar(T::from_acc(total));
        }
        let zero = 0.0;
        Tensor::scalar(T::from_acc(if self.divisor == zero { zero } else { total / self.divisor }))
    }

    /// The gradient of the loss (times `up`) with respect to each per-sample value.
    pub(crate) fn backward(&self, up: &Upstream<'_, T>) -> Result<Vec<T>> {
        let n_out = numel(&self.out_shape);
        let cot = if self.unreduced() {
            Cot::from_upstream(up, &self.out_shape)?
        } else if self.red == Reduction::Sum {
            Cot::from_upstream(up, &[])?
        } else {
            let zero = 0.0;
            let inv = if self.divisor == zero { zero } else { 1.0 / self.divisor };
            Cot::from_upstream(up, &[])?.scaled(T::from_acc(inv))
        };
        let n_val = numel(&self.values_shape);
        Ok(match &self.map {
            None => (0..n_val).map(|i| cot.at(i)).collect(),
            Some((vi, w)) => {
                if n_out == n_val && vi.iter().enumerate().all(|(j, &i)| i == j) {
                    (0..n_val).map(|i| cot.at(i) * w[i]).collect()
                } else {
                    // several outputs per value (broadcast weight): sum their contributions
                    let mut acc = vec![0.0; n_val];
                    for (j, (&i, &wj)) in vi.iter().zip(w).enumerate() {
                        acc[i] += (cot.at(j) * wj).acc();
                    }
                    acc.into_iter().map(T::from_acc).collect()
                }
            }
        })
    }
}

/// The common shape of `y_true` and `y_pred` after Keras' `squeeze_or_expand_to_same_rank`
/// (a trailing axis of size 1 dropped or added when the ranks differ by one). The data of both
/// is unchanged (C order); only the shape they are read with changes. Fails when they still
/// differ.
pub(crate) fn align_pair(y_true: &[usize], y_pred: &[usize]) -> Result<Vec<usize>> {
    let (t, p) = squeeze_or_expand(y_true, y_pred);
    if t != p {
        return Err(LossError::shape(
            "y_true",
            format!("the shape of `y_pred`, {} (up to a trailing axis of size 1)", fmt_shape(y_pred)),
            y_true,
        ));
    }
    Ok(p)
}

fn bad_weight(ws: &[usize], vs: &[usize]) -> LossError {
    LossError::shape(
        "sample_weight",
        format!("a shape that broadcasts against the per-sample loss {}", fmt_shape(vs)),
        ws,
    )
}

/// Keras' `backend.epsilon()`: the clip bound of probabilities and the floor of norms. Losses
/// convert it to the computation dtype (`T::of(EPSILON)`, and `T::of(1.0 - EPSILON)` for the
/// upper clip, which rounds to `1 - 2^-23` in `f32` as in Keras).
pub(crate) const EPSILON: f64 = 1e-7;

/// One row of a [`keras_rows`] call: the elements of `y_true` and `y_pred` along the axis.
pub(crate) struct Row<'r, T> {
    /// The row of `y_true` (empty when the loss has no float target of `y_pred`'s shape).
    pub target: &'r [T],
    /// The row of `y_pred`.
    pub pred: &'r [T],
}

/// Consecutive rows of a [`keras_row_groups`] call, `len` elements each.
pub(crate) struct RowGroup<'r, T> {
    /// The flat position of the first row in the per-sample loss (C order); the others follow.
    pub first: usize,
    /// The rows' length (the size of the reduced axis).
    pub len: usize,
    /// The rows of `y_true` (empty when the loss has no float target of `y_pred`'s shape).
    pub target: &'r [T],
    /// The rows of `y_pred`.
    pub pred: &'r [T],
    /// The cotangent of each row's value, with a backward pass.
    pub cots: Option<&'r [T]>,
}

/// The driver of every Keras loss that maps each row of `y_pred` along one axis to one
/// per-sample value (a mean, a cross-entropy over classes, a cosine), then applies the Keras
/// reduction ([`KerasReduce`]: `sample_weight`, `mask`, `reduction`).
///
/// `shape` is the (aligned) shape both `target` and `pred` are read with and `axis < shape.len()`
/// the reduced axis; the per-sample loss has `shape` without `axis`. `row` returns the value of
/// one row (in `T`, or in `f64` for a loss whose values may cancel in the reduction, see
/// [`KerasReduce::reduce`]) and, given `Some((cot, grad))`, overwrites every element of `grad`
/// (the row's length) with `cot * d value / d pred`. The gradient is reported for `y_pred`, in
/// `pred`'s own shape.
///
/// Rows run through [`keras_row_groups`]; pass `row` as an `#[inline(always)]` closure.
#[allow(clippy::too_many_arguments)]
pub(crate) fn keras_rows<T: Float, V: Float>(
    shape: &[usize],
    axis: usize,
    target: Option<&[T]>,
    pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    mask: Option<&[bool]>,
    reduction: Reduction,
    backward: Option<crate::grad::Backward<'_, '_, T>>,
    row: impl Fn(Row<'_, T>, Option<(T, &mut [T])>, &mut Vec<f64>) -> V + Sync,
) -> Result<(Tensor<T>, crate::grad::Grads<T>)> {
    keras_row_groups(
        shape,
        axis,
        target,
        pred,
        sample_weight,
        mask,
        reduction,
        backward,
        usize::MAX,
        #[inline(always)]
        |rows: RowGroup<'_, T>, mut grad: Option<&mut [T]>, values: &mut [V], work: &mut Workspace<T>| {
            let n = rows.len;
            for (k, v) in values.iter_mut().enumerate() {
                let span = k * n..(k + 1) * n;
                let t = if rows.target.is_empty() { rows.target } else { &rows.target[span.clone()] };
                let g = match (rows.cots, grad.as_deref_mut()) {
                    (Some(c), Some(g)) => Some((c[k], &mut g[span.clone()])),
                    _ => None,
                };
                *v = row(Row { target: t, pred: &rows.pred[span] }, g, &mut work.parts[0]);
            }
        },
    )
}

/// [`keras_rows`] by groups of rows: `group(rows, grad, values, work)` computes the values of
/// the rows of `rows` (at most `per_group` of them) into `values` and, given `grad` (with
/// `rows.cots`), overwrites every element of it (`rows * len`) with each row's cotangent times
/// the derivative of its value with respect to `pred`; `work` is reused from group to group.
///
/// The upstream gradient of every sample is known before any value (the reduction is linear),
/// so one pass computes values and gradients. Along the last axis the rows are contiguous and
/// run through [`par_row_groups`](crate::kernels::sum::par_row_groups) (threads over fixed
/// chunks of rows, SIMD-dispatched: pass `group` as an `#[inline(always)]` closure); along
/// another axis each row is gathered into a buffer, a group of its own, and its gradient
/// scattered back.
#[allow(clippy::too_many_arguments)]
pub(crate) fn keras_row_groups<T: Float, V: Float>(
    shape: &[usize],
    axis: usize,
    target: Option<&[T]>,
    pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    mask: Option<&[bool]>,
    reduction: Reduction,
    backward: Option<crate::grad::Backward<'_, '_, T>>,
    per_group: usize,
    group: impl Fn(RowGroup<'_, T>, Option<&mut [T]>, &mut [V], &mut Workspace<T>) + Sync,
) -> Result<(Tensor<T>, crate::grad::Grads<T>)> {
    use crate::kernels::axis::AxisLayout;
    debug_assert!(axis < shape.len() && numel(shape) == pred.len());
    let layout = AxisLayout::new(shape, axis);
    let per_sample: Vec<usize> = shape.iter().enumerate().filter(|&(i, _)| i != axis).map(|(_, &d)| d).collect();
    let reducer = KerasReduce::new(reduction, &per_sample, sample_weight, mask)?;
    let n = layout.len;
    let mut values = vec![V::zero(); layout.rows()];
    let (upstream, mut sink) = start_optional(backward);
    let cots = upstream.as_ref().map(|up| reducer.backward(up)).transpose()?;
    if layout.inner == 1 {
        let [grad] = overwritten_slots(&mut sink, [("y_pred", pred.shape(), true)])?;
        let (p, cots) = (pred.data(), cots.as_deref());
        crate::kernels::sum::par_row_groups(
            layout.rows(),
            n,
            per_group,
            &mut values,
            grad,
            #[inline(always)]
            |r0, vals: &mut [V], g: Option<&mut [T]>, work: &mut Workspace<T>| {
                let span = r0 * n..(r0 + vals.len()) * n;
                let rows = RowGroup {
                    first: r0,
                    len: n,
                    target: target.map_or(&[][..], |t| &t[span.clone()]),
                    pred: &p[span],
                    cots: cots.map(|c| &c[r0..r0 + vals.len()]),
                };
                let g = if rows.cots.is_some() { g } else { None };
                group(rows, g, vals, work)
            },
        );
        return Ok((reducer.reduce(&values), sink.map(|s| s.finish()).unwrap_or_default()));
    }
    let [mut grad] = match sink.as_mut() {
        Some(sink) => sink.slots([("y_pred", pred.shape(), true)])?,
        None => [None],
    };
    let (mut tbuf, mut pbuf, mut gbuf) = (vec![T::zero(); n], vec![T::zero(); n], vec![T::zero(); n]);
    let mut work = Workspace::default();
    for (r, v) in values.iter_mut().enumerate() {
        if let Some(t) = target {
            layout.gather(t, r, &mut tbuf);
        }
        layout.gather(pred.data(), r, &mut pbuf);
        let t: &[T] = if target.is_some() { &tbuf } else { &[] };
        let rows = |cots| RowGroup { first: r, len: n, target: t, pred: &pbuf, cots };
        match (grad.as_deref_mut(), cots.as_deref()) {
            (Some(g), Some(cots)) => {
                group(rows(Some(&cots[r..r + 1])), Some(&mut gbuf), std::slice::from_mut(v), &mut work);
                layout.scatter(&gbuf, r, g);
            }
            _ => group(rows(None), None, std::slice::from_mut(v), &mut work),
        }
    }
    Ok((reducer.reduce(&values), sink.map(|s| s.finish()).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeeze_expand_rules() {
        assert_eq!(squeeze_or_expand(&[4], &[4, 1]), (vec![4, 1], vec![4, 1]));
        assert_eq!(squeeze_or_expand(&[4, 3], &[4, 3, 1]), (vec![4, 3], vec![4, 3]));
        assert_eq!(squeeze_or_expand(&[4, 1], &[4]), (vec![4, 1], vec![4, 1]));
        assert_eq!(squeeze_or_expand(&[4, 3], &[4]), (vec![4, 3], vec![4]));
    }

    #[test]
    fn weighted_means() {
        // values [1, 2, 3], weights [1, 0, 2]: sum 7; sum_over_batch_size 7/3; mean_with_sample_weight 7/3
        let v = [1.0f64, 2.0, 3.0];
        let w = View::vector(&[1.0f64, 0.0, 2.0][..]).borrow().map(|&x| x);
        let r = KerasReduce::new(Reduction::SumOverBatchSize, &[3], Some(&w), None).unwrap();
        assert_eq!(r.reduce(&v).item(), Some(7.0 / 3.0));
        let r = KerasReduce::new(Reduction::MeanWithSampleWeight, &[3], Some(&w), None).unwrap();
        assert_eq!(r.reduce(&v).item(), Some(7.0 / 3.0));
        let r = KerasReduce::<f64>::new(Reduction::Sum, &[3], Some(&w), None).unwrap();
        assert_eq!(r.backward(&Upstream::Ones).unwrap(), vec![1.0, 0.0, 2.0]);
        // masked mean: valid positions only
        let r = KerasReduce::<f64>::new(Reduction::SumOverBatchSize, &[3], None, Some(&[true, false, true])).unwrap();
        assert_eq!(r.reduce(&v).item(), Some((1.0 * 1.5 + 3.0 * 1.5) / 3.0));
    }
}
