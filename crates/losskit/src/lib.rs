//! # losskit
//!
//! Loss functions whose values and gradients reproduce their reference implementations
//! (PyTorch, Keras 3, optax) to rounding, on every valid input, in `f32` and `f64`.
//!
//! ## Conventions
//! - **Inputs** are [`View`]s: C-order data with a shape, built from `ndarray` arrays
//!   (`View::from(&array)`) or from a slice and a shape (`View::new(&data, &[n, c])?`).
//!   Class indices are `View<i64>`.
//! - **Options** of loss `id` are a struct `IdOptions` (fields named as the reference's
//!   keywords) whose `Default` is the reference's defaults; they are validated on every call.
//! - **Reductions** ([`Reduction`]) are those of the reference: PyTorch's `none`/`mean`/`sum`,
//!   Keras' `sum_over_batch_size`/`mean_with_sample_weight`/..., each loss documenting its exact
//!   denominator.
//! - **Gradients**: every loss `id` has `id(...)` (the value) and `id_grad(..., Backward)`
//!   (the value and the gradient of `sum(upstream * loss)` for every differentiable argument
//!   given). [`Backward`] carries the upstream gradient and, optionally, caller-provided
//!   buffers ([`GradsMut`]) to write into.
//! - **Errors**: every invalid input returns a [`LossError`] naming the argument or option; no
//!   input makes a loss panic.
//! - **Determinism**: sums are blocked and pairwise in a fixed order ([`kernels::sum`]),
//!   accumulated in `f64`: the same bits on every run.
//!
//! ## Families
//! - [`regression`]: mse, l1, huber, smooth_l1, log_cosh, mean_absolute_percentage_error,
//!   mean_squared_logarithmic_error
//! - [`probabilistic`]: poisson, kl_divergence
//! - [`classification`]: log_softmax, cross_entropy, nll, binary_cross_entropy,
//!   binary_cross_entropy_with_logits, categorical_crossentropy,
//!   sparse_categorical_crossentropy, binary_crossentropy
//! - [`margin`]: squared_hinge, multiclass_hinge, margin_ranking
//! - [`embedding`]: cosine_similarity, triplet_margin
//!
//! The [`catalog`] holds every loss's metadata and evaluates a loss by id.
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs)]

pub mod catalog;
pub mod classification;
pub mod embedding;
mod error;
mod float;
mod grad;
pub(crate) mod keras;
pub mod kernels;
pub mod margin;
pub mod probabilistic;
mod reduction;
pub mod regression;
mod tensor;

pub use error::{LossError, Result};
pub use float::{DType, Float};
pub use grad::{Backward, Grads, GradsMut, Upstream};
pub use reduction::{Reduction, KERAS_REDUCTIONS, TORCH_REDUCTIONS};
pub use tensor::{numel, Tensor, View, MAX_ELEMENTS};

pub use classification::*;
pub use embedding::*;
pub use margin::*;
pub use probabilistic::*;
pub use regression::*;

/// The README's example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
