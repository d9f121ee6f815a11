//! Classification losses (and `log_softmax`, their building block).
//!
//! | id | reference | per sample | default reduction |
//! |---|---|---|---|
//! | [`log_softmax`](fn@log_softmax) | `torch.nn.functional.log_softmax` | `x - logsumexp(x)` along `dim` (not a loss) | none |
//! | [`cross_entropy`](fn@cross_entropy) | `torch.nn.functional.cross_entropy` | `-w[y] log softmax(x)[y]` (class dim 1), or `-sum_c w_c y_c log softmax(x)_c`; label smoothing | mean (indices: `/ sum w[y]` over non-ignored targets; probabilities: `/ N d1..dK`) |
//! | [`nll`](fn@nll) | `torch.nn.functional.nll_loss` | `-w[y] x[y]` (class dim 1) | mean (`/ sum w[y]` over non-ignored targets) |
//!
//! The PyTorch losses with class-index targets (`cross_entropy`, `nll`) share one set of rules
//! for the class dimension, target shapes, `ignore_index`, class weights and the weighted
//! mean (a private module, `targets`).

pub mod cross_entropy;
pub mod log_softmax;
pub mod nll;
mod targets;

pub use cross_entropy::{cross_entropy, cross_entropy_grad, CrossEntropyOptions, CrossEntropyTarget};
pub use log_softmax::{log_softmax, log_softmax_grad, LogSoftmaxOptions};
pub use nll::{nll, nll_grad, NllOptions};
