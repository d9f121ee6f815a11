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
    crate::classification::categorical_crossentropy::ENTRY,
    crate::classification::sparse_categorical_crossentropy::ENTRY,
    crate::classification::binary_crossentropy::ENTRY,
    crate::embedding::cosine_similarity::ENTRY,
];
