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
pub mod mse;
pub mod smooth_l1;

pub use huber::{huber, huber_grad, HuberOptions};
pub use l1::{l1, l1_grad, L1Options};
pub use mse::{mse, mse_grad, MseOptions};
pub use smooth_l1::{smooth_l1, smooth_l1_grad, SmoothL1Options};

use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::reduction::{reduce, reduce_cot, Reduction, TORCH_REDUCTIONS};
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
pub(crate) fn torch_pointwise<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    weight: Option<&View<'_, T>>,
    reduction: Reduction,
    weighted_mean: WeightedMean,
    f: impl Fn(T) -> (T, T),
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
    let values: Vec<T> = match w {
        None => x.iter().zip(y).map(|(&a, &b)| f(a - b).0).collect(),
        Some(w) => x.iter().zip(y).zip(w).map(|((&a, &b), &wi)| wi * f(a - b).0).collect(),
    };
    let denominator = match (reduction, w, weighted_mean) {
        (Reduction::Mean, Some(w), WeightedMean::SumOfWeights) => Some(crate::kernels::sum::sum_acc(w)),
        _ => None,
    };
    // the weighted mean itself, for the weight's gradient (l_i - mean) / sum(w)
    let mean_value = denominator.map(|d| crate::kernels::sum::sum_acc(&values) / d);
    let loss = reduce(values, shape, reduction, denominator);
    let Some(bw) = backward else {
        return Ok((loss, Grads::default()));
    };
    let (upstream, mut sink) = bw.start();
    let cot = reduce_cot(&upstream, shape, reduction, denominator)?;
    let [mut gx, mut gy, mut gw] =
        sink.slots([("input", shape, true), ("target", shape, true), ("weight", shape, weight.is_some())])?;
    for i in 0..x.len() {
        let (l, d) = f(x[i] - y[i]);
        let c = cot.at(i);
        let g = c * w.map_or(T::one(), |w| w[i]) * d;
        if let Some(gx) = gx.as_deref_mut() {
            gx[i] = g;
        }
        if let Some(gy) = gy.as_deref_mut() {
            gy[i] = -g;
        }
        if let Some(gw) = gw.as_deref_mut() {
            gw[i] = match mean_value {
                Some(m) => c * T::from_acc(l.acc() - m),
                None => c * l,
            };
        }
    }
    Ok((loss, sink.finish()))
}
