//! Margin (hinge-type) losses.
//!
//! | id | reference | per sample | default reduction |
//! |---|---|---|---|
//! | [`multiclass_hinge`](fn@multiclass_hinge) | `optax.losses.multiclass_hinge_loss` | `max_c(s_c + 1 - [c = y]) - s_y`, class axis last | none |

pub mod multiclass_hinge;

pub use multiclass_hinge::{multiclass_hinge, multiclass_hinge_grad};
