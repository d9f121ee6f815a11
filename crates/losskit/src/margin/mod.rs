//! Margin (hinge-type) losses.
//!
//! | id | reference | per element | default reduction |
//! |---|---|---|---|
//! | [`squared_hinge`](fn@squared_hinge) | `keras.losses.SquaredHinge` | `max(0, 1 - y ŷ)^2` (0/1 labels as -1/+1), mean over the last axis | sum_over_batch_size |
//! | [`multiclass_hinge`](fn@multiclass_hinge) | `optax.losses.multiclass_hinge_loss` | `max_c(s_c + 1 - [c = y]) - s_y`, class axis last | none |
//! | [`margin_ranking`](fn@margin_ranking) | `torch.nn.functional.margin_ranking_loss` | `max(0, -y (x1 - x2) + margin)` | mean |

pub mod margin_ranking;
pub mod multiclass_hinge;
pub mod squared_hinge;

pub use margin_ranking::{margin_ranking, margin_ranking_grad, MarginRankingOptions};
pub use multiclass_hinge::{multiclass_hinge, multiclass_hinge_grad};
pub use squared_hinge::{squared_hinge, squared_hinge_grad, SquaredHingeOptions};

use crate::float::Float;
use crate::tensor::View;

/// Keras' `convert_binary_labels_to_hinge`: when EVERY element of `y_true` is 0 or 1 the labels
/// become `2y - 1` (-1/+1); otherwise (any other value, NaN included) they are used as given.
pub(crate) fn keras_hinge_labels<'v, T: Float>(y_true: &'v View<'_, T>) -> View<'v, T> {
    let (zero, one) = (T::zero(), T::one());
    let binary = |y: T| (y == zero) | (y == one);
    if crate::kernels::scan::first_failing(y_true.data(), binary).is_none() {
        let two = T::of(2.0);
        y_true.map(|&y| two * y - one)
    } else {
        y_true.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hinge_labels_are_converted_all_or_nothing() {
        let y = [0.0f64, 1.0, 1.0];
        assert_eq!(keras_hinge_labels(&View::vector(&y[..])).data(), &[-1.0, 1.0, 1.0]);
        let y = [0.0f64, 1.0, -1.0];
        assert_eq!(keras_hinge_labels(&View::vector(&y[..])).data(), &y);
        let y = [0.0f32, f32::NAN];
        assert!(keras_hinge_labels(&View::vector(&y[..])).data()[1].is_nan());
    }
}
