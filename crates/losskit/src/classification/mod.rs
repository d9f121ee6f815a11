//! Classification losses (and `log_softmax`, their building block).
//!
//! | id | reference | per element or sample | default reduction |
//! |---|---|---|---|
//! | [`log_softmax`](fn@log_softmax) | `torch.nn.functional.log_softmax` | `x - logsumexp(x)` along `dim` (not a loss) | none |
//! | [`cross_entropy`](fn@cross_entropy) | `torch.nn.functional.cross_entropy` | `-w[y] log softmax(x)[y]` (class dim 1), or `-sum_c w_c y_c log softmax(x)_c`; label smoothing | mean (indices: `/ sum w[y]` over non-ignored targets; probabilities: `/ N d1..dK`) |
//! | [`nll`](fn@nll) | `torch.nn.functional.nll_loss` | `-w[y] x[y]` (class dim 1) | mean (`/ sum w[y]` over non-ignored targets) |
//! | [`binary_cross_entropy`](fn@binary_cross_entropy) | `torch.nn.functional.binary_cross_entropy` | `-w [y max(log x, -100) + (1 - y) max(log(1 - x), -100)]` | mean (`/ n`, even with weight) |
//! | [`binary_cross_entropy_with_logits`](fn@binary_cross_entropy_with_logits) | `torch.nn.functional.binary_cross_entropy_with_logits` | `-w [p y log σ(x) + (1 - y) log σ(-x)]` | mean (`/ n`, even with weights) |
//! | [`categorical_crossentropy`](fn@categorical_crossentropy) | `keras.losses.CategoricalCrossentropy` | `-sum_c y_c log p_c` along `axis`: `p` renormalised and clipped, or log-softmax of logits | sum_over_batch_size |
//! | [`sparse_categorical_crossentropy`](fn@sparse_categorical_crossentropy) | `keras.losses.SparseCategoricalCrossentropy` | `-log p_y` for an integer label `y` (0 where `y == ignore_class`) | sum_over_batch_size (over the non-ignored positions) |
//! | [`binary_crossentropy`](fn@binary_crossentropy) | `keras.losses.BinaryCrossentropy` | mean along `axis` of `-(y log p + (1 - y) log(1 - p))`, `p` clipped, or log-sigmoid of logits | sum_over_batch_size |
//!
//! Shared pieces: the PyTorch losses with class-index targets (`cross_entropy`, `nll`) share the
//! rules for the class dimension, target shapes, `ignore_index`, class weights and the weighted
//! mean (a private module, `targets`); the PyTorch elementwise binary losses share one frame
//! (`TorchElementwise`); the Keras losses share the per-row driver and reduction (`crate::keras`),
//! the row kernels ([`kernels::xent`](crate::kernels::xent)), and Keras' label smoothing and
//! class-axis cross-entropy (this module).

pub mod binary_cross_entropy;
pub mod binary_cross_entropy_with_logits;
pub mod binary_crossentropy;
pub mod categorical_crossentropy;
pub mod cross_entropy;
pub mod log_softmax;
pub mod nll;
pub mod sparse_categorical_crossentropy;
mod targets;

pub use binary_cross_entropy::{binary_cross_entropy, binary_cross_entropy_grad, BinaryCrossEntropyOptions};
pub use binary_cross_entropy_with_logits::{
    binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_grad, BinaryCrossEntropyWithLogitsOptions,
};
pub use binary_crossentropy::{binary_crossentropy, binary_crossentropy_grad, BinaryCrossentropyOptions};
pub use categorical_crossentropy::{
    categorical_crossentropy, categorical_crossentropy_grad, CategoricalCrossentropyOptions,
};
pub use cross_entropy::{cross_entropy, cross_entropy_grad, CrossEntropyOptions, CrossEntropyTarget};
pub use log_softmax::{log_softmax, log_softmax_grad, LogSoftmaxOptions};
pub use nll::{nll, nll_grad, NllOptions};
pub use sparse_categorical_crossentropy::{
    sparse_categorical_crossentropy, sparse_categorical_crossentropy_grad, SparseCategoricalCrossentropyOptions,
};

use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::RowGroup;
use crate::keras::EPSILON;
use crate::kernels::broadcast::expand;
use crate::kernels::rows::Workspace;
use crate::kernels::sum::{fused, BLOCK};
use crate::kernels::xent::{
    index_xent_rows, prob_xent_rows, renorm_clip_xent_row, RowClasses, RowScalars, RowsOrZero, Smoothing,
};
use crate::reduction::{keep_values, reduce_cot, reduce_summed, Reduction, TORCH_REDUCTIONS};
use crate::tensor::{same_shape, Tensor, View};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

/// The shared frame of PyTorch's elementwise binary losses (`binary_cross_entropy`,
/// `binary_cross_entropy_with_logits`): `input` and `target` of one shape, an optional
/// non-differentiable `weight` broadcast to that shape, `l_i = w_i f_i`, and a `mean` that
/// divides by the element count whatever the weights.
pub(crate) struct TorchElementwise<'a, T: Float> {
    shape: &'a [usize],
    weight: Option<Cow<'a, [T]>>,
    reduction: Reduction,
}

impl<'a, T: Float> TorchElementwise<'a, T> {
    /// Checks the reduction and the shapes (`target` exactly `input`'s, `weight` broadcastable
    /// to it) and broadcasts the weight.
    pub(crate) fn new(
        input: &'a View<'_, T>,
        target: &View<'_, T>,
        weight: Option<&'a View<'_, T>>,
        reduction: Reduction,
    ) -> Result<Self> {
        reduction.check(TORCH_REDUCTIONS)?;
        let shape = input.shape();
        same_shape("target", target.shape(), "input", shape)?;
        let weight = weight.map(|w| expand("weight", w.data(), w.shape(), shape)).transpose()?;
        Ok(TorchElementwise { shape, weight, reduction })
    }

    /// The loss of `l_i = f(x_i, y_i, e_i)` (`e` an optional third stream, zero when absent),
    /// and with `backward` the gradients for `input` and `target` from `all`, which returns
    /// `(l_i, d l_i / d x_i, d l_i / d y_i)`; `value` is `all`'s first part alone (the
    /// forward-only pass does not compute derivatives). One fused pass over the elements.
    ///
    /// `first(x_i)` is a first stage of `f` (an `exp(-|x|)`), computed for a whole tile before
    /// `value` or `all`, which get it as their last argument: one loop over both stages is a
    /// chain of dependent operations too long for the CPU to overlap across enough elements.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        self,
        x: &[T],
        y: &[T],
        e: Option<&[T]>,
        first: impl Fn(T) -> T + Sync + Copy,
        value: impl Fn(T, T, T, T) -> T + Sync + Copy,
        all: impl Fn(T, T, T, T) -> (T, T, T) + Sync + Copy,
        backward: Option<Backward<'_, '_, T>>,
    ) -> Result<(Tensor<T>, Grads<T>)> {
        self.run_in_domain(x, y, e, |_, _| true, || Ok(()), first, value, all, backward)
    }

    /// [`run`](Self::run) for a loss defined on a domain: `in_domain(x_i, y_i)` is tested in the
    /// same pass (a separate validation scan read both inputs once more: a quarter of
    /// `binary_cross_entropy`'s time), and when an element fails, `explain` (which scans for
    /// the first failure and names it) gives the error. The pass runs to its end either way:
    /// on that error, the caller's gradient buffers hold its values.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_in_domain(
        self,
        x: &[T],
        y: &[T],
        e: Option<&[T]>,
        in_domain: impl Fn(T, T) -> bool + Sync + Copy,
        explain: impl FnOnce() -> Result<()>,
        first: impl Fn(T) -> T + Sync + Copy,
        value: impl Fn(T, T, T, T) -> T + Sync + Copy,
        all: impl Fn(T, T, T, T) -> (T, T, T) + Sync + Copy,
        backward: Option<Backward<'_, '_, T>>,
    ) -> Result<(Tensor<T>, Grads<T>)> {
        let outside = AtomicBool::new(false);
        let result = self.run_checked(x, y, e, in_domain, &outside, first, value, all, backward)?;
        if outside.into_inner() {
            explain()?;
        }
        Ok(result)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn run_checked(
        self,
        x: &[T],
        y: &[T],
        e: Option<&[T]>,
        in_domain: impl Fn(T, T) -> bool + Sync + Copy,
        outside: &AtomicBool,
        first: impl Fn(T) -> T + Sync + Copy,
        value: impl Fn(T, T, T, T) -> T + Sync + Copy,
        all: impl Fn(T, T, T, T) -> (T, T, T) + Sync + Copy,
        backward: Option<Backward<'_, '_, T>>,
    ) -> Result<(Tensor<T>, Grads<T>)> {
        let n = crate::tensor::numel(self.shape);
        let w = self.weight.as_deref();
        let mut values = keep_values::<T>(self.reduction, n);
        let Some(bw) = backward else {
            let total = fused(
                n,
                values.as_deref_mut(),
                (),
                #[inline(always)]
                |s, v, _| {
                    // a local copy: its captures stay in registers
                    let (first, value, w) = (first, value, w);
                    let len = v.len();
                    let (xs, ys) = (&x[s..s + len], &y[s..s + len]);
                    // the first stage into `v`, which the second overwrites
                    for i in 0..len {
                        v[i] = first(xs[i]);
                    }
                    // the domain tested in the values' loop (joined with `&`: branch-free)
                    let mut inside = true;
                    match e {
                        None => {
                            for i in 0..len {
                                inside &= in_domain(xs[i], ys[i]);
                                v[i] = value(xs[i], ys[i], T::zero(), v[i]);
                            }
                        }
                        Some(e) => {
                            let es = &e[s..s + len];
                            for i in 0..len {
                                inside &= in_domain(xs[i], ys[i]);
                                v[i] = value(xs[i], ys[i], es[i], v[i]);
                            }
                        }
                    }
                    if !inside {
                        outside.store(true, Ordering::Relaxed);
                    }
                    if let Some(w) = w {
                        let ws = &w[s..s + len];
                        for i in 0..len {
                            v[i] *= ws[i];
                        }
                    }
                },
            );
            return Ok((reduce_summed(values, total, self.shape, self.reduction, None), Grads::default()));
        };
        let (upstream, mut sink) = bw.start();
        let cot = reduce_cot(&upstream, self.shape, self.reduction, None)?;
        let (each, scale) = cot.parts();
        let grads = sink.slots_overwritten([("input", self.shape, true), ("target", self.shape, true)])?;
        let total = fused(
            n,
            values.as_deref_mut(),
            grads,
            #[inline(always)]
            |s, v, [gx, gy]| {
                let (first, all, scale) = (first, all, scale);
                let len = v.len();
                let (xs, ys) = (&x[s..s + len], &y[s..s + len]);
                let es = e.map(|e| &e[s..s + len]);
                if each.is_none() && w.is_none() {
                    if let Some(gx) = gx.as_deref_mut() {
                        // one factor for every element: straight into the outputs
                        let gy = gy.as_deref_mut().map(|g| &mut g[..len]);
                        if !scaled_tile(xs, ys, es, in_domain, first, all, scale, v, &mut gx[..len], gy) {
                            outside.store(true, Ordering::Relaxed);
                        }
                        return;
                    }
                }
                let (mut dx, mut dy) = ([T::zero(); BLOCK], [T::zero(); BLOCK]);
                // every slice cut to `len`: no bounds check left in the loops, so no scalar tail
                let (dx, dy) = (&mut dx[..len], &mut dy[..len]);
                // the first stage into `dx`, which the second overwrites
                for i in 0..len {
                    dx[i] = first(xs[i]);
                }
                // the domain tested in the values' loop, as in the other paths
                let mut inside = true;
                match es {
                    None => {
                        for i in 0..len {
                            inside &= in_domain(xs[i], ys[i]);
                            (v[i], dx[i], dy[i]) = all(xs[i], ys[i], T::zero(), dx[i]);
                        }
                    }
                    Some(es) => {
                        for i in 0..len {
                            inside &= in_domain(xs[i], ys[i]);
                            (v[i], dx[i], dy[i]) = all(xs[i], ys[i], es[i], dx[i]);
                        }
                    }
                }
                if !inside {
                    outside.store(true, Ordering::Relaxed);
                }
                // the factor of each element: upstream times weight, (cot * w) as one product
                let mut c = [scale; BLOCK];
                let c = &mut c[..len];
                if let Some(each) = each {
                    let es = &each[s..s + len];
                    for i in 0..len {
                        c[i] = scale * es[i];
                    }
                }
                if let Some(w) = w {
                    let ws = &w[s..s + len];
                    for i in 0..len {
                        c[i] *= ws[i];
                        v[i] *= ws[i];
                    }
                }
                if let Some(gx) = gx.as_deref_mut() {
                    let gx = &mut gx[..len];
                    for i in 0..len {
                        gx[i] = c[i] * dx[i];
                    }
                }
                if let Some(gy) = gy.as_deref_mut() {
                    let gy = &mut gy[..len];
                    for i in 0..len {
                        gy[i] = c[i] * dy[i];
                    }
                }
            },
        );
        Ok((reduce_summed(values, total, self.shape, self.reduction, None), sink.finish()))
    }
}

/// A tile of [`TorchElementwise`]'s backward pass when every element's factor is `scale` (no
/// weight, a reduced loss): `first` into `gx`, then `all` writes the values and the scaled
/// gradients in place, with the bits of the general path (`scale * d`) and none of its tiles.
/// Returns whether every element is `in_domain`, tested in the same loop.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn scaled_tile<T: Float>(
    xs: &[T],
    ys: &[T],
    es: Option<&[T]>,
    in_domain: impl Fn(T, T) -> bool,
    first: impl Fn(T) -> T,
    all: impl Fn(T, T, T, T) -> (T, T, T),
    scale: T,
    v: &mut [T],
    gx: &mut [T],
    gy: Option<&mut [T]>,
) -> bool {
    let len = v.len();
    let (xs, ys, gx) = (&xs[..len], &ys[..len], &mut gx[..len]);
    for i in 0..len {
        gx[i] = first(xs[i]);
    }
    // joined with `&` in the loops (branch-free, so they vectorise)
    let mut inside = true;
    match (es, gy) {
        (None, Some(gy)) => {
            let gy = &mut gy[..len];
            for i in 0..len {
                inside &= in_domain(xs[i], ys[i]);
                let (l, dx, dy) = all(xs[i], ys[i], T::zero(), gx[i]);
                (v[i], gx[i], gy[i]) = (l, scale * dx, scale * dy);
            }
        }
        (Some(es), Some(gy)) => {
            let (es, gy) = (&es[..len], &mut gy[..len]);
            for i in 0..len {
                inside &= in_domain(xs[i], ys[i]);
                let (l, dx, dy) = all(xs[i], ys[i], es[i], gx[i]);
                (v[i], gx[i], gy[i]) = (l, scale * dx, scale * dy);
            }
        }
        (None, None) => {
            for i in 0..len {
                inside &= in_domain(xs[i], ys[i]);
                let (l, dx, _) = all(xs[i], ys[i], T::zero(), gx[i]);
                (v[i], gx[i]) = (l, scale * dx);
            }
        }
        (Some(es), None) => {
            let es = &es[..len];
            for i in 0..len {
                inside &= in_domain(xs[i], ys[i]);
                let (l, dx, _) = all(xs[i], ys[i], es[i], gx[i]);
                (v[i], gx[i]) = (l, scale * dx);
            }
        }
    }
    inside
}

/// Keras label smoothing, `y (1 - λ) + λ / k`: `k = 2` for the binary losses (towards 1/2),
/// `k = C` (the size of the LAST axis of `y_true`) for the categorical ones. `λ = 0` leaves the
/// labels untouched (Keras skips the step).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LabelSmoothing<T> {
    scale: T,
    offset: T,
}

impl<T: Float> LabelSmoothing<T> {
    fn checked(label_smoothing: f64) -> Result<f64> {
        if !(0.0..=1.0).contains(&label_smoothing) {
            return Err(LossError::option("label_smoothing", format!("must lie in [0, 1], got {label_smoothing}")));
        }
        Ok(label_smoothing)
    }

    /// `y (1 - λ) + λ / 2` (Keras writes `0.5 * λ`, a Python float).
    pub(crate) fn binary(label_smoothing: f64) -> Result<Self> {
        let ls = Self::checked(label_smoothing)?;
        Ok(LabelSmoothing { scale: T::of(1.0 - ls), offset: T::of(0.5 * ls) })
    }

    /// `y (1 - λ) + λ / classes` (Keras divides `λ` by the class count in the dtype).
    pub(crate) fn categorical(label_smoothing: f64, classes: usize) -> Result<Self> {
        let ls = Self::checked(label_smoothing)?;
        if ls == 0.0 {
            return Ok(LabelSmoothing { scale: T::one(), offset: T::zero() });
        }
        Ok(LabelSmoothing { scale: T::of(1.0 - ls), offset: T::of(ls) / T::of_usize(classes) })
    }

    /// The smoothed label.
    #[inline(always)]
    pub(crate) fn apply(&self, y: T) -> T {
        y * self.scale + self.offset
    }
}

/// The cross-entropy of a group of rows of class scores against probability rows, as Keras
/// computes it on JAX: the log-softmax of logits ([`prob_xent_rows`], one pass per group), or
/// the scores renormalised to sum 1 and clipped to `[1e-7, 1 - 1e-7]` (`1 - 1e-7` rounded in
/// the dtype), row by row. `grad` as in [`keras_row_groups`](crate::keras::keras_row_groups):
/// every element overwritten.
#[inline(always)]
pub(crate) fn keras_prob_xent_rows<T: Float>(
    from_logits: bool,
    rows: RowGroup<'_, T>,
    smoothing: LabelSmoothing<T>,
    mut grad: Option<&mut [T]>,
    values: &mut [T],
    work: &mut Workspace<T>,
) {
    let (n, cot) = (rows.len, |k: usize| rows.cots.map_or(T::zero(), |c| c[k]));
    if !from_logits {
        let (lo, hi) = (T::of(EPSILON), T::of(1.0 - EPSILON));
        for (k, v) in values.iter_mut().enumerate() {
            let (y, span) = (&rows.target[k * n..(k + 1) * n], k * n..(k + 1) * n);
            let g = grad.as_deref_mut().map(|g| (cot.at(k), &mut g[span.clone()]));
            *v = renorm_clip_xent_row(&rows.pred[span], |c| smoothing.apply(y[c]), lo, hi, g);
        }
        return;
    }
    if n == 0 {
        // no class: W log S - D = 0 * -inf, as the reference's empty sum of 0 * log(0/0)
        values.fill(T::nan());
        return;
    }
    let sm = Smoothing { keep: smoothing.scale, per_class: smoothing.offset };
    prob_xent_rows(rows.pred, rows.target, n, Some(sm), None, cot, grad, None, values, work);
}

/// The cross-entropy of a group of rows of class scores against class indices (`label.class(k)`
/// of row `k`; `None` for an ignored row, whose value and gradient are 0), as Keras computes it
/// on JAX: see [`keras_prob_xent_rows`] ([`index_xent_rows`] for logits).
#[inline(always)]
pub(crate) fn keras_index_xent_rows<T: Float>(
    from_logits: bool,
    rows: RowGroup<'_, T>,
    label: impl RowClasses + Copy,
    mut grad: Option<&mut [T]>,
    values: &mut [T],
    work: &mut Workspace<T>,
) {
    let (n, cot) = (rows.len, RowsOrZero(rows.cots));
    if from_logits && n > 0 {
        index_xent_rows(rows.pred, n, label, None, None, cot, grad.as_deref_mut(), values, work);
        // the reference multiplies a one-hot row by the log-softmax: a -inf logit anywhere
        // makes the value NaN (0 * -inf); the gradient stays finite. One test over the group
        // first: the per-row one is rarely needed.
        let mut any_neg_inf = false;
        for &v in &rows.pred[..values.len() * n] {
            any_neg_inf |= v == T::neg_infinity();
        }
        if any_neg_inf {
            for (k, v) in values.iter_mut().enumerate() {
                if label.class(k).is_some() && rows.pred[k * n..(k + 1) * n].contains(&T::neg_infinity()) {
                    *v = T::nan();
                }
            }
        }
    }
    let (lo, hi) = (T::of(EPSILON), T::of(1.0 - EPSILON));
    for (k, v) in values.iter_mut().enumerate() {
        let span = k * n..(k + 1) * n;
        let Some(t) = label.class(k) else {
            // loss 0 and gradient 0, as the reference's masking gives
            *v = T::zero();
            if let Some(g) = grad.as_deref_mut() {
                g[span].fill(T::zero());
            }
            continue;
        };
        if !from_logits {
            let g = grad.as_deref_mut().map(|g| (cot.at(k), &mut g[span.clone()]));
            let one_hot = |c: usize| if c == t { T::one() } else { T::zero() };
            *v = renorm_clip_xent_row(&rows.pred[span], one_hot, lo, hi, g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_index_rows_with_a_minus_inf_logit() {
        // Keras multiplies the one-hot row by the log-softmax: 0 * -inf makes the value NaN,
        // while the gradient softmax - onehot = [1, 0] - [1, 0] stays finite; an ignored row
        // is 0 with a zero gradient, whatever its logits
        let mut g = [f64::NAN; 6];
        let mut v = [0.0; 3];
        let mut work = Workspace::default();
        let x = [0.0f64, f64::NEG_INFINITY, 0.0, 1.0, f64::NAN, 0.0];
        let labels = [Some(0), Some(0), None];
        let rows = RowGroup { first: 0, len: 2, target: &[], pred: &x, cots: Some(&[1.0; 3]) };
        keras_index_xent_rows(true, rows, |k| labels[k], Some(&mut g), &mut v, &mut work);
        assert!(v[0].is_nan());
        assert_eq!(&g[..2], [0.0, 0.0]);
        // finite logits: ln(1 + e) - 0 for logits [0, 1] and class 0
        assert!((v[1] - (1.0 + 1f64.exp()).ln()).abs() < 1e-15);
        assert_eq!((v[2], &g[4..]), (0.0, &[0.0, 0.0][..]));
    }

    #[test]
    fn smoothing_values() {
        // λ = 0.1, C = 3: 1 -> 0.9 + 0.0333 = 0.9333, 0 -> 0.0333
        let s = LabelSmoothing::<f64>::categorical(0.1, 3).unwrap();
        assert!((s.apply(1.0) - (0.9 + 0.1 / 3.0)).abs() < 1e-16);
        assert!((s.apply(0.0) - 0.1 / 3.0).abs() < 1e-16);
        // binary: towards 1/2
        let b = LabelSmoothing::<f64>::binary(0.2).unwrap();
        assert_eq!((b.apply(1.0), b.apply(0.0)), (0.9, 0.1));
        // λ = 0 is the identity, even without classes
        let z = LabelSmoothing::<f32>::categorical(0.0, 0).unwrap();
        assert_eq!(z.apply(0.7), 0.7);
    }

    /// The binary losses' gradients through every path of `run_checked`'s backward pass: one
    /// factor for all elements (`scaled_tile`, both gradients or only the input's, with and
    /// without a per-element third input) and the general tiles (an upstream array, a weight),
    /// all with the factor 3/4, so the same bits: `sum` with an upstream scalar is the fast
    /// path, `none` with an upstream array and `sum` with a weight of ones the general one.
    fn binary_gradient_paths_agree<T: Float>() {
        fn view<T: Float>(v: &[T]) -> View<'_, T> {
            View::new(v, &[v.len()]).unwrap()
        }
        use crate::{
            binary_cross_entropy_grad, binary_cross_entropy_with_logits_grad, BinaryCrossEntropyOptions,
            BinaryCrossEntropyWithLogitsOptions, GradsMut, Upstream,
        };
        for n in [3 * 256 + 37, 70_001] {
            let p: Vec<T> = (0..n).map(|i| T::of(((i * 53) % 101) as f64 / 100.0)).collect();
            let x: Vec<T> = (0..n).map(|i| T::of(((i * 53) % 97) as f64 / 3.0 - 16.0)).collect();
            let y: Vec<T> = (0..n).map(|i| T::of(((i * 37) % 101) as f64 / 100.0)).collect();
            let pw: Vec<T> = (0..n).map(|i| T::of(0.5 + (i % 7) as f64 / 4.0)).collect();
            let ones = vec![T::one(); n];
            let factor = T::of(0.75);
            let factors = vec![factor; n];
            let grads = |sum: bool, input: &[T], logits: bool, pos: bool, weight: bool| {
                let reduction = if sum { Reduction::Sum } else { Reduction::None };
                let upstream = if sum { Upstream::Scalar(factor) } else { Upstream::Array(view(&factors)) };
                let w = weight.then(|| view(&ones));
                let bw = Backward::new().upstream(upstream);
                let (_, g) = if logits {
                    let o = BinaryCrossEntropyWithLogitsOptions { reduction };
                    let pw = pos.then(|| view(&pw));
                    binary_cross_entropy_with_logits_grad(view(input), view(&y), w, pw, &o, bw).unwrap()
                } else {
                    let o = BinaryCrossEntropyOptions { reduction };
                    binary_cross_entropy_grad(view(input), view(&y), w, &o, bw).unwrap()
                };
                let bits = |name| g.get(name).unwrap().data().iter().map(|v| v.acc().to_bits()).collect::<Vec<u64>>();
                (bits("input"), bits("target"))
            };
            for (input, logits, pos) in [(&p, false, false), (&x, true, false), (&x, true, true)] {
                let fast = grads(true, input, logits, pos, false);
                assert_eq!(fast, grads(false, input, logits, pos, false), "n={n} logits={logits} pos={pos}");
                assert_eq!(fast, grads(true, input, logits, pos, true), "n={n} logits={logits} pos={pos}");
                // only the input's gradient, into a caller buffer
                let mut gx = vec![T::nan(); n];
                let into = Backward::new()
                    .upstream(Upstream::Scalar(factor))
                    .into_buffers(GradsMut::new().with("input", &mut gx));
                if logits {
                    let o = BinaryCrossEntropyWithLogitsOptions { reduction: Reduction::Sum };
                    let pw = pos.then(|| view(&pw));
                    binary_cross_entropy_with_logits_grad(view(input), view(&y), None, pw, &o, into).unwrap();
                } else {
                    let o = BinaryCrossEntropyOptions { reduction: Reduction::Sum };
                    binary_cross_entropy_grad(view(input), view(&y), None, &o, into).unwrap();
                }
                let gx: Vec<u64> = gx.iter().map(|v| v.acc().to_bits()).collect();
                assert_eq!(gx, fast.0, "n={n} logits={logits} pos={pos}");
            }
        }
    }

    #[test]
    fn binary_gradient_paths_agree_f32_f64() {
        binary_gradient_paths_agree::<f32>();
        binary_gradient_paths_agree::<f64>();
    }

    #[test]
    fn smoothing_out_of_range_is_an_error() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let e = LabelSmoothing::<f64>::binary(bad).unwrap_err();
            assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "label_smoothing"));
        }
    }
}
