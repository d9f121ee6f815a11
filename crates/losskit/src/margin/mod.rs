//! Margin (hinge-type) losses.
