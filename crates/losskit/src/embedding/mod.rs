//! Embedding and similarity losses.
