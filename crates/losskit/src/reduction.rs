//! [`Reduction`]: how a loss's elements (or per-sample values) become its output, and the
//! matching backward scaling.
//!
//! | value | meaning | used by |
//! |---|---|---|
//! | `none` | no reduction: the unreduced loss | all |
//! | `mean` | PyTorch: the (weighted) mean described by each loss; Keras: same as `sum_over_batch_size` | torch, Keras |
//! | `sum` | the sum | torch, Keras |
//! | `batchmean` | the sum divided by the batch size | `kl_div` |
//! | `sum_over_batch_size` | Keras: sum of the weighted per-sample losses / their count | Keras |
//! | `mean_with_sample_weight` | Keras: sum of the weighted per-sample losses / sum of the weights | Keras |

use std::fmt;
use std::str::FromStr;

use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::Upstream;
use crate::kernels::sum::sum_acc;
use crate::tensor::{numel, Tensor};

/// How the loss's values are reduced. Each loss accepts the subset its reference accepts and
/// rejects the others with [`LossError::InvalidOption`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// No reduction.
    None,
    /// The mean (each loss documents its exact denominator).
    Mean,
    /// The sum.
    Sum,
    /// The sum divided by the batch size (first dimension).
    BatchMean,
    /// Keras: sum of the (weighted) per-sample losses divided by their count.
    SumOverBatchSize,
    /// Keras: sum of the weighted per-sample losses divided by the sum of the sample weights.
    MeanWithSampleWeight,
}

impl Reduction {
    /// The catalogue's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
            Reduction::BatchMean => "batchmean",
            Reduction::SumOverBatchSize => "sum_over_batch_size",
            Reduction::MeanWithSampleWeight => "mean_with_sample_weight",
        }
    }

    /// Fails unless `self` is one of `allowed`.
    pub(crate) fn check(self, allowed: &[Reduction]) -> Result<Self> {
        if allowed.contains(&self) {
            Ok(self)
        } else {
            let names: Vec<&str> = allowed.iter().map(|r| r.name()).collect();
            Err(LossError::option(
                "reduction",
                format!("'{}' is not valid for this loss (valid: {})", self.name(), names.join(", ")),
            ))
        }
    }
}

/// The reductions PyTorch losses accept.
pub const TORCH_REDUCTIONS: &[Reduction] = &[Reduction::None, Reduction::Mean, Reduction::Sum];
/// The reductions Keras losses accept.
pub const KERAS_REDUCTIONS: &[Reduction] =
    &[Reduction::SumOverBatchSize, Reduction::Sum, Reduction::Mean, Reduction::MeanWithSampleWeight, Reduction::None];

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reduction {
    type Err = LossError;
    /// Parses the catalogue spelling (`None`, Python's spelling for Keras, is read as `none`).
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "none" | "None" => Reduction::None,
            "mean" => Reduction::Mean,
            "sum" => Reduction::Sum,
            "batchmean" => Reduction::BatchMean,
            "sum_over_batch_size" => Reduction::SumOverBatchSize,
            "mean_with_sample_weight" => Reduction::MeanWithSampleWeight,
            _ => {
                return Err(LossError::option(
                    "reduction",
                    format!(
                        "unknown reduction '{s}' (known: none, mean, sum, batchmean, sum_over_batch_size, mean_with_sample_weight)"
                    ),
                ))
            }
        })
    }
}

/// The gradient of the output with respect to each reduced-over value: `scale * each[i]`
/// (or `scale` when `each` is absent).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cot<'a, T> {
    each: Option<&'a [T]>,
    scale: T,
}

impl<'a, T: Float> Cot<'a, T> {
    pub(crate) fn uniform(scale: T) -> Self {
        Cot { each: None, scale }
    }

    #[inline(always)]
    pub(crate) fn at(&self, i: usize) -> T {
        match self.each {
            Some(e) => self.scale * e[i],
            None => self.scale,
        }
    }

    /// The per-element factors (absent when uniform) and the common scale: element `i` gets
    /// `scale * each[i]`.
    #[inline(always)]
    pub(crate) fn parts(&self) -> (Option<&'a [T]>, T) {
        (self.each, self.scale)
    }

    /// Multiplies by a factor (a mean's `1/n`, say).
    pub(crate) fn scaled(self, k: T) -> Self {
        Cot { each: self.each, scale: self.scale * k }
    }

    /// The upstream gradient of an output of shape `out_shape`, as a per-element accessor.
    pub(crate) fn from_upstream(up: &'a Upstream<'_, T>, out_shape: &[usize]) -> Result<Self> {
        match up {
            Upstream::Ones => Ok(Cot::uniform(T::one())),
            Upstream::Scalar(s) => Ok(Cot::uniform(*s)),
            Upstream::Array(v) => {
                if v.shape() == out_shape {
                    if out_shape.is_empty() {
                        Ok(Cot::uniform(v.data()[0]))
                    } else {
                        Ok(Cot { each: Some(v.data()), scale: T::one() })
                    }
                } else if out_shape.is_empty() && v.len() == 1 {
                    Ok(Cot::uniform(v.data()[0]))
                } else {
                    Err(LossError::Upstream { expected: out_shape.to_vec(), found: v.shape().to_vec() })
                }
            }
        }
    }
}

/// PyTorch-style reduction of `values` (the unreduced loss, shape `shape`) with an optional
/// denominator for `mean` (default: the element count; a weighted mean passes its own).
pub(crate) fn reduce<T: Float>(
    values: Vec<T>,
    shape: &[usize],
    red: Reduction,
    mean_denominator: Option<f64>,
) -> Tensor<T> {
    let total = if red == Reduction::None { 0.0 } else { sum_acc(&values) };
    reduce_summed(Some(values), total, shape, red, mean_denominator)
}

/// [`reduce`] for a kernel that summed the values as it computed them: `values` (kept only
/// for `none`) and their `total`.
pub(crate) fn reduce_summed<T: Float>(
    values: Option<Vec<T>>,
    total: f64,
    shape: &[usize],
    red: Reduction,
    mean_denominator: Option<f64>,
) -> Tensor<T> {
    match (red, values) {
        (Reduction::None, Some(v)) => Tensor::from_parts(v, shape.to_vec()),
        (Reduction::Sum, _) => Tensor::scalar(T::from_acc(total)),
        _ => Tensor::scalar(T::from_acc(total / mean_denominator.unwrap_or(numel(shape) as f64))),
    }
}

/// An output buffer for the unreduced values when `red` is `none`, for the
/// [`fused`](crate::kernels::sum::fused) driver, which writes every value (so the buffer is not
/// zero-filled first: [`for_overwrite`](crate::kernels::alloc::for_overwrite)).
pub(crate) fn keep_values<T: Float>(red: Reduction, n: usize) -> Option<Vec<T>> {
    (red == Reduction::None).then(|| crate::kernels::alloc::for_overwrite(n))
}

/// The backward counterpart of [`reduce`]: the gradient of the output with respect to each
/// unreduced value. `shape` is the UNREDUCED shape (that of `values` in [`reduce`]).
pub(crate) fn reduce_cot<'a, T: Float>(
    up: &'a Upstream<'_, T>,
    shape: &[usize],
    red: Reduction,
    mean_denominator: Option<f64>,
) -> Result<Cot<'a, T>> {
    match red {
        Reduction::None => Cot::from_upstream(up, shape),
        Reduction::Sum => Cot::from_upstream(up, &[]),
        _ => {
            let d = mean_denominator.unwrap_or(numel(shape) as f64);
            Ok(Cot::from_upstream(up, &[])?.scaled(T::from_acc(1.0 / d)))
        }
    }
}
