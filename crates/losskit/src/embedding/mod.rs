//! Embedding and similarity losses.
//!
//! | id | reference | per sample | default reduction |
//! |---|---|---|---|
//! | [`cosine_similarity`](fn@cosine_similarity) | `keras.losses.CosineSimilarity` | `-sum_d y_d / max(norm(y), eps) * ŷ_d / max(norm(ŷ), eps)` along `axis` | sum_over_batch_size |

pub mod cosine_similarity;

pub use cosine_similarity::{cosine_similarity, cosine_similarity_grad, CosineSimilarityOptions};
