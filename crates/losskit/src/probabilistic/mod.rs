//! Probabilistic losses: between distributions, or under a likelihood.
