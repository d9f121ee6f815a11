//! Classification losses (and `log_softmax`, their building block).
//!
//! | id | reference | per element or sample | default reduction |
//! |---|---|---|---|
//! | [`log_softmax`](fn@log_softmax) | `torch.nn.functional.log_softmax` | `x - logsumexp(x)` along `dim` (not a loss) | none |
//! | [`cross_entropy`](fn@cross_entropy) | `torch.nn.functional.cross_entropy` | `-w[y] log softmax(x)[y]` (class dim 1), or `-sum_c w_c y_c log softmax(x)_c`; label smoothing | mean (indices: `/ sum w[y]` over non-ignored targets; probabilities: `/ N d1..dK`) |
//! | [`nll`](fn@nll) | `torch.nn.functional.nll_loss` | `-w[y] x[y]` (class dim 1) | mean (`/ sum w[y]` over non-ignored targets) |
//! | [`binary_cross_entropy`](fn@binary_cross_entropy) | `torch.nn.functional.binary_cross_entropy` | `-w [y max(log x, -100) + (1 - y) max(log(1 - x), -100)]` | mean (`/ n`, even with weight) |
//! | [`binary_cross_entropy_with_logits`](fn@binary_cross_entropy_with_logits) | `torch.nn.functional.binary_cross_entropy_with_logits` | `-w [p y log σ(x) + (1 - y) log σ(-x)]` | mean (`/ n`, even with weights) |
//!
//! The PyTorch losses with class-index targets (`cross_entropy`, `nll`) share one set of rules
//! for the class dimension, target shapes, `ignore_index`, class weights and the weighted
//! mean (a private module, `targets`); the elementwise binary losses share `TorchElementwise`.

pub mod binary_cross_entropy;
pub mod binary_cross_entropy_with_logits;
pub mod cross_entropy;
pub mod log_softmax;
pub mod nll;
mod targets;

pub use binary_cross_entropy::{binary_cross_entropy, binary_cross_entropy_grad, BinaryCrossEntropyOptions};
pub use binary_cross_entropy_with_logits::{
    binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_grad, BinaryCrossEntropyWithLogitsOptions,
};
pub use cross_entropy::{cross_entropy, cross_entropy_grad, CrossEntropyOptions, CrossEntropyTarget};
pub use log_softmax::{log_softmax, log_softmax_grad, LogSoftmaxOptions};
pub use nll::{nll, nll_grad, NllOptions};

use std::borrow::Cow;

use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::kernels::broadcast::expand;
use crate::reduction::{reduce, reduce_cot, Reduction, TORCH_REDUCTIONS};
use crate::tensor::{same_shape, Tensor, View};

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

    /// The loss from `f_i` (`value(i)`), and with `backward` the gradients for `input` and
    /// `target` from `(d f_i / d x_i, d f_i / d y_i)` (`grad(i)`).
    pub(crate) fn run(
        self,
        value: impl Fn(usize) -> T,
        grad: impl Fn(usize) -> (T, T),
        backward: Option<Backward<'_, '_, T>>,
    ) -> Result<(Tensor<T>, Grads<T>)> {
        let n = crate::tensor::numel(self.shape);
        let w = self.weight.as_deref();
        let values: Vec<T> = match w {
            None => (0..n).map(&value).collect(),
            Some(w) => (0..n).map(|i| value(i) * w[i]).collect(),
        };
        let loss = reduce(values, self.shape, self.reduction, None);
        let Some(bw) = backward else {
            return Ok((loss, Grads::default()));
        };
        let (upstream, mut sink) = bw.start();
        let cot = reduce_cot(&upstream, self.shape, self.reduction, None)?;
        let [mut gx, mut gy] = sink.slots([("input", self.shape, true), ("target", self.shape, true)])?;
        if gx.is_some() || gy.is_some() {
            for i in 0..n {
                let c = match w {
                    None => cot.at(i),
                    Some(w) => cot.at(i) * w[i],
                };
                let (dx, dy) = grad(i);
                if let Some(gx) = gx.as_deref_mut() {
                    gx[i] = c * dx;
                }
                if let Some(gy) = gy.as_deref_mut() {
                    gy[i] = c * dy;
                }
            }
        }
        Ok((loss, sink.finish()))
    }
}
