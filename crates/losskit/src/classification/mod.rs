//! Classification losses (and `log_softmax`, their building block).
//!
//! | id | reference | per sample | default reduction |
//! |---|---|---|---|
//! | [`categorical_crossentropy`](fn@categorical_crossentropy) | `keras.losses.CategoricalCrossentropy` | `-sum_c y_c log p_c` along `axis`: `p` renormalised and clipped, or log-softmax of logits | sum_over_batch_size |
//! | [`sparse_categorical_crossentropy`](fn@sparse_categorical_crossentropy) | `keras.losses.SparseCategoricalCrossentropy` | `-log p_y` for an integer label `y` (0 where `y == ignore_class`) | sum_over_batch_size (over the non-ignored positions) |
//! | [`binary_crossentropy`](fn@binary_crossentropy) | `keras.losses.BinaryCrossentropy` | mean along `axis` of `-(y log p + (1 - y) log(1 - p))`, `p` clipped, or log-sigmoid of logits | sum_over_batch_size |
//!
//! The Keras losses share their pieces: the per-row driver and reduction
//! (`crate::keras`), the row kernels ([`kernels::xent`](crate::kernels::xent)), and Keras'
//! label smoothing and class-axis cross-entropy (this module).

pub mod binary_crossentropy;
pub mod categorical_crossentropy;
pub mod sparse_categorical_crossentropy;

pub use binary_crossentropy::{binary_crossentropy, binary_crossentropy_grad, BinaryCrossentropyOptions};
pub use categorical_crossentropy::{
    categorical_crossentropy, categorical_crossentropy_grad, CategoricalCrossentropyOptions,
};
pub use sparse_categorical_crossentropy::{
    sparse_categorical_crossentropy, sparse_categorical_crossentropy_grad, SparseCategoricalCrossentropyOptions,
};

use crate::error::{LossError, Result};
use crate::float::Float;
use crate::keras::EPSILON;
use crate::kernels::xent::{log_softmax_xent_row, renorm_clip_xent_row};

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

/// The cross-entropy of one row of class scores as Keras computes it on JAX: the log-softmax
/// of logits, or the scores renormalised to sum 1 and clipped to `[1e-7, 1 - 1e-7]`
/// (`1 - 1e-7` rounded in the dtype). `grad` as in [`kernels::xent`](crate::kernels::xent).
pub(crate) fn keras_class_xent_row<T: Float>(
    from_logits: bool,
    pred: &[T],
    target: impl Fn(usize) -> T,
    grad: Option<(T, &mut [T])>,
) -> T {
    if from_logits {
        log_softmax_xent_row(pred, target, grad)
    } else {
        renorm_clip_xent_row(pred, target, T::of(EPSILON), T::of(1.0 - EPSILON), grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn smoothing_out_of_range_is_an_error() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let e = LabelSmoothing::<f64>::binary(bad).unwrap_err();
            assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "label_smoothing"));
        }
    }
}
