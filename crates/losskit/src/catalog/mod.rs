//! The catalogue: every loss's metadata as data ([`LossSpec`]) and the by-id evaluator
//! ([`evaluate`]) that the command line dispatches through.

pub mod eval;
pub mod spec;

pub use eval::{evaluate, lookup, nearest_ids, parse_option, AnyTensor, ArrayArg, EvalOutput, OptValue, Opts};
pub use spec::{ArgKind, ArgSpec, Family, LossSpec, OptDefault, OptKind, OptionSpec};

use eval::Entry;

/// Every implemented loss, in catalogue order.
pub fn registry() -> &'static [Entry] {
    REGISTRY
}

/// The metadata of every implemented loss, in catalogue order.
pub fn specs() -> impl Iterator<Item = &'static LossSpec> {
    REGISTRY.iter().map(|e| e.spec)
}

static REGISTRY: &[Entry] = &[
    crate::regression::mse::ENTRY,
    crate::regression::l1::ENTRY,
    crate::regression::huber::ENTRY,
    crate::regression::smooth_l1::ENTRY,
    crate::regression::log_cosh::ENTRY,
    crate::regression::mean_absolute_percentage_error::ENTRY,
    crate::regression::mean_squared_logarithmic_error::ENTRY,
    crate::probabilistic::poisson::ENTRY,
    crate::probabilistic::kl_divergence::ENTRY,
    crate::classification::log_softmax::ENTRY,
    crate::classification::cross_entropy::ENTRY,
    crate::classification::nll::ENTRY,
    crate::classification::binary_cross_entropy::ENTRY,
    crate::classification::binary_cross_entropy_with_logits::ENTRY,
    crate::classification::categorical_crossentropy::ENTRY,
    crate::classification::sparse_categorical_crossentropy::ENTRY,
    crate::classification::binary_crossentropy::ENTRY,
    crate::margin::squared_hinge::ENTRY,
    crate::margin::multiclass_hinge::ENTRY,
    crate::margin::margin_ranking::ENTRY,
    crate::embedding::cosine_similarity::ENTRY,
    crate::embedding::triplet_margin::ENTRY,
];
