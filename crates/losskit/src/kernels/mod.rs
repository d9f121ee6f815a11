//! The kernel layer: the only place that holds raw numerics. Losses are written against these
//! helpers, so that vectorised and multi-threaded versions can replace them without touching a
//! loss or the public API.
//!
//! - [`sum`]: accurate, deterministic (blocked pairwise) summation in the accumulator type, and
//!   the chunked multi-threaded driver whose results do not depend on the thread count;
//! - [`alloc`]: fresh output buffers (huge pages for large ones, fewer first-touch faults);
//! - [`vmath`]: vectorisable `exp`, `ln`, `ln_1p` (branch-free `f32`, at most 2 ulp);
//! - [`simd`]: run-time dispatch to the best instruction set (AVX-512, AVX2+FMA, portable);
//! - [`stable`]: numerically stable scalar primitives (softplus, log-sigmoid, xlogy, log-cosh, ...);
//! - [`exp_sums`]: a softmax row's exponentials and their block sums in one pass (AVX-512);
//! - [`rows`]: groups of contiguous rows for the softmax-family kernels (per-row scalars in
//!   small arrays, the group's exponentials in one vector loop across rows);
//! - [`row_lanes`]: the softmax of short rows eight at a time, one row per SIMD lane (AVX2);
//! - [`axis`]: iteration over the rows of a class (or feature) axis in a C-order tensor, with
//!   row log-sum-exp and log-softmax;
//! - [`broadcast`]: NumPy broadcasting of small arguments (weights) and its backward (summing
//!   over broadcast dimensions);
//! - [`norm`]: vector p-norms of rows and their gradients (PyTorch's conventions at zero norms,
//!   zero coordinates and ties);
//! - [`xent`]: cross-entropy kernels (binary per element; softmax and renormalised-clipped
//!   rows of class scores) with their gradients;
//! - [`cosine`]: the Keras cosine of two rows (L2 normalisation with an epsilon floor);
//! - [`scan`]: vectorised validation scans (the first element outside a range).

pub mod alloc;
pub mod axis;
pub mod broadcast;
pub mod cosine;
pub mod exp_sums;
pub mod norm;
pub mod row_lanes;
pub mod rows;
pub mod scan;
pub mod simd;
pub mod stable;
pub mod sum;
pub mod vmath;
pub mod xent;
