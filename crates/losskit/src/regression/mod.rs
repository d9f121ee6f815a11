//! Regression losses: a prediction and a target of the same shape, compared elementwise.
//!
//! | id | reference | per element | default reduction |
//! |---|---|---|---|
//! | [`mse`](fn@mse) | `torch.nn.functional.mse_loss` | `w (x - y)^2` | mean (weighted: `/ sum w`) |
//! | [`l1`](fn@l1) | `torch.nn.functional.l1_loss` | `w abs(x - y)` | mean (weighted: `/ sum w`) |
//! | [`huber`](fn@huber) | `torch.nn.functional.huber_loss` | quadratic, then `delta`-linear | mean (weighted: `/ n`) |
//! | [`smooth_l1`](fn@smooth_l1) | `torch.nn.functional.smooth_l1_loss` | quadratic `/ beta`, then linear | mean |
//! | [`log_cosh`](fn@log_cosh) | `keras.losses.LogCosh` | `log cosh(ŷ - y)`, mean over the last axis | sum_over_batch_size |
//! | [`mean_absolute_percentage_error`](fn@mean_absolute_percentage_error) | `keras.losses.MeanAbsolutePercentageError` | `100 abs(y - ŷ) / max(abs y, eps)` | sum_over_batch_size |
//! | [`mean_squared_logarithmic_error`](fn@mean_squared_logarithmic_error) | `keras.losses.MeanSquaredLogarithmicError` | squared difference of `log(max(., eps) + 1)` | sum_over_batch_size |

pub mod huber;
pub mod l1;
pub mod log_cosh;
pub mod mean_absolute_percentage_error;
pub mod mean_squared_logarithmic_error;
pub mod mse;
pub mod smooth_l1;

pub use huber::{huber, huber_grad, HuberOptions};
pub use l1::{l1, l1_grad, L1Options};
pub use log_cosh::{log_cosh, log_cosh_grad, LogCoshOptions};
pub use mean_absolute_percentage_error::{
    mean_absolute_percentage_error, mean_absolute_percentage_error_grad, MeanAbsolutePercentageErrorOptions,
};
pub use mean_squared_logarithmic_error::{
    mean_squared_logarithmic_error, mean_squared_logarithmic_error_grad, MeanSquaredLogarithmicErrorOptions,
};
pub use mse::{mse, mse_grad, MseOptions};
pub use smooth_l1::{smooth_l1, smooth_l1_grad, SmoothL1Options};

use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::kernels::sum::{fused, sum_acc, BLOCK};
use crate::reduction::{keep_values, reduce_cot, reduce_summed, Reduction, TORCH_REDUCTIONS};
use crate::tensor::{same_shape, Tensor, View};

/// The denominator of a weighted PyTorch `mean`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightedMean {
    /// `sum(w * l) / sum(w)` (mse_loss, l1_loss).
    SumOfWeights,
    /// `sum(w * l) / n` (huber_loss).
    Count,
}

/// The shared kernel of PyTorch's pointwise regression losses: `l_i = w_i f(x_i - y_i)` with
/// `f` returning the loss and its derivative in the error, reduced as PyTorch does.
/// Gradients: input `w f'(e)`, target `-w f'(e)`, weight `f(e)` (minus the weighted mean for
/// a `SumOfWeights` mean), each times the upstream gradient.
///
/// One fused pass ([`fused`]) computes the values, their sum and the gradients; only the
/// gradient of `weight` under a `SumOfWeights` mean needs the mean first, hence a second pass.
pub(crate) fn torch_pointwise<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    weight: Option<&View<'_, T>>,
    reduction: Reduction,
    weighted_mean: WeightedMean,
    f: impl Fn(T) -> (T, T) + Sync + Copy,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    reduction.check(TORCH_REDUCTIONS)?;
    let shape = input.shape();
    same_shape("target", target.shape(), "input", shape)?;
    if let Some(w) = weight {
        same_shape("weight", w.shape(), "input", shape)?;
    }
    let (x, y) = (input.data(), target.data());
    let w = weight.map(|w| w.data());
    let n = x.len();
    let denominator = match (reduction, w, weighted_mean) {
        (Reduction::Mean, Some(w), WeightedMean::SumOfWeights) => Some(sum_acc(w)),
        _ => None,
    };
    let mut values = keep_values::<T>(reduction, n);
    let Some(bw) = backward else {
        let total = fused(
            n,
            values.as_deref_mut(),
            (),
            #[inline(always)]
            |s, v, _| value_tile(x, y, w, &f, s, v),
        );
        return Ok((reduce_summed(values, total, shape, reduction, denominator), Grads::default()));
    };
    let (upstream, mut sink) = bw.start();
    let cot = reduce_cot(&upstream, shape, reduction, denominator)?;
    let (each, scale) = cot.parts();
    let [gx, gy, gw] =
        sink.slots_overwritten([("input", shape, true), ("target", shape, true), ("weight", shape, weight.is_some())])?;
    // the weight's gradient under a weighted mean is (l_i - mean) / sum(w): the mean first
    let mean_value = match (denominator, &gw) {
        (Some(d), Some(_)) => Some(
            fused(
                n,
                None,
                (),
                #[inline(always)]
                |s, v, _| value_tile(x, y, w, &f, s, v),
            ) / d,
        ),
        _ => None,
    };
    let total = fused(
        n,
        values.as_deref_mut(),
        [gx, gy, gw],
        #[inline(always)]
        |s, v, [gx, gy, gw]| {
            // local copies: the compiler keeps them in registers instead of reloading them after
            // every store (it cannot prove the stores do not alias the captured values)
            let (f, scale) = (f, scale);
            let len = v.len();
            let (xs, ys) = (&x[s..s + len], &y[s..s + len]);
            // zeroed only where it is used: a tile is short, and zeroing it cost a tenth of it
            let mut scratch;
            // Every slice is cut to `len` before the loops: with a length the compiler cannot
            // see, each store keeps a bounds check, and the vectorised loop then leaves its
            // last 32 elements to a scalar loop (an eighth of every block, half the time here).
            // d(loss)/d(input) goes straight into the input's gradient when there is one
            let dx: &mut [T] = match gx.as_deref_mut() {
                Some(g) => &mut g[..len],
                None => {
                    scratch = [T::zero(); BLOCK];
                    &mut scratch[..len]
                }
            };
            // cot_i * w_i, computed as (cot * w) * f' like the unfused formula. The values and
            // the derivatives come from two loops (f computed twice): in one loop, the stores
            // to the tile in L1 and to the gradient, which is not there, alternate and stall
            // each other (mse 1e4 fwd_bwd_into on an Intel Xeon: 0.71-0.74x the time in two)
            value_tile(x, y, w, &f, s, v);
            match (w, each) {
                (None, None) => {
                    for i in 0..len {
                        dx[i] = scale * f(xs[i] - ys[i]).1;
                    }
                }
                (Some(w), None) => {
                    let ws = &w[s..s + len];
                    for i in 0..len {
                        dx[i] = scale * ws[i] * f(xs[i] - ys[i]).1;
                    }
                }
                (None, Some(e)) => {
                    let es = &e[s..s + len];
                    for i in 0..len {
                        dx[i] = scale * es[i] * f(xs[i] - ys[i]).1;
                    }
                }
                (Some(w), Some(e)) => {
                    let (ws, es) = (&w[s..s + len], &e[s..s + len]);
                    for i in 0..len {
                        dx[i] = scale * es[i] * ws[i] * f(xs[i] - ys[i]).1;
                    }
                }
            }
            if let Some(gy) = gy.as_deref_mut() {
                let gy = &mut gy[..len];
                for i in 0..len {
                    gy[i] = -dx[i];
                }
            }
            if let Some(gw) = gw.as_deref_mut() {
                let gw = &mut gw[..len];
                for i in 0..len {
                    let c = match each {
                        Some(e) => scale * e[s + i],
                        None => scale,
                    };
                    let l = f(xs[i] - ys[i]).0;
                    gw[i] = match mean_value {
                        Some(m) => c * T::from_acc(l.acc() - m),
                        None => c * l,
                    };
                }
            }
        },
    );
    Ok((reduce_summed(values, total, shape, reduction, denominator), sink.finish()))
}

/// The weighted loss of the tile `s..s + v.len()`, without gradients.
#[inline(always)]
fn value_tile<T: Float>(x: &[T], y: &[T], w: Option<&[T]>, f: &(impl Fn(T) -> (T, T) + Copy), s: usize, v: &mut [T]) {
    // a local copy of the closure: its captures stay in registers
    let f = *f;
    let len = v.len();
    let (xs, ys) = (&x[s..s + len], &y[s..s + len]);
    match w {
        None => {
            for i in 0..len {
                v[i] = f(xs[i] - ys[i]).0;
            }
        }
        Some(w) => {
            let ws = &w[s..s + len];
            for i in 0..len {
                v[i] = ws[i] * f(xs[i] - ys[i]).0;
            }
        }
    }
}
