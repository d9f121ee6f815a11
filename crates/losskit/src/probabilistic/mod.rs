//! Probabilistic losses: between distributions, or under a likelihood.
//!
//! | id | reference | per element | default reduction |
//! |---|---|---|---|
//! | [`poisson`](fn@poisson) | `keras.losses.Poisson` | `ŷ - y log(ŷ + eps)`, mean over the last axis | sum_over_batch_size |
//! | [`kl_divergence`](fn@kl_divergence) | `keras.losses.KLDivergence` | `y log(y / ŷ)`, both clipped to `[eps, 1]`, SUM over the last axis | sum_over_batch_size |

pub mod kl_divergence;
pub mod poisson;

pub use kl_divergence::{kl_divergence, kl_divergence_grad, KlDivergenceOptions};
pub use poisson::{poisson, poisson_grad, PoissonOptions};
