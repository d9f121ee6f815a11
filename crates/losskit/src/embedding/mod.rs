//! Embedding and similarity losses.
//!
//! | id | reference | per sample | default reduction |
//! |---|---|---|---|
//! | [`cosine_similarity`](fn@cosine_similarity) | `keras.losses.CosineSimilarity` | `-sum_d y_d / max(norm(y), eps) * ŷ_d / max(norm(ŷ), eps)` along `axis` | sum_over_batch_size |
//! | [`triplet_margin`](fn@triplet_margin) | `torch.nn.functional.triplet_margin_loss` | `max(0, margin + d(a, p) - d(a, n))`, `d(u, v) = ‖u - v + ε‖_p` | mean |

pub mod cosine_similarity;
pub mod triplet_margin;

pub use cosine_similarity::{cosine_similarity, cosine_similarity_grad, CosineSimilarityOptions};
pub use triplet_margin::{triplet_margin, triplet_margin_grad, TripletMarginOptions};

use std::borrow::Cow;

use crate::error::{LossError, Result};
use crate::float::Float;
use crate::kernels::broadcast::{broadcast_all, expand, sum_into};
use crate::kernels::norm::NormDegree;
use crate::tensor::{fmt_shape, numel, View};

/// PyTorch's `pairwise_distance(x1, x2, p, eps)`: `‖x1 - x2 + eps‖_p` over the last axis, eps
/// added to every coordinate of the difference. `x1` and `x2` have the same number of
/// dimensions and broadcast; a 0-d pair is one row of one coordinate. The distances have the
/// broadcast shape without its last axis (`()` for 1-D or 0-d inputs).
///
/// Differences and distances are held in `f64`.
pub(crate) struct PairwiseDistance<'a, T: Float> {
    /// the arguments' shapes, 0-d read as `(1,)`
    s1: Vec<usize>,
    s2: Vec<usize>,
    /// the broadcast shape (with the last axis)
    full: Vec<usize>,
    x1: Cow<'a, [T]>,
    x2: Cow<'a, [T]>,
    /// the length of the last axis
    d: usize,
    eps: f64,
    p: NormDegree,
    /// one distance per row, in C order over `batch`
    pub(crate) dist: Vec<f64>,
    /// the shape of `dist`
    pub(crate) batch: Vec<usize>,
}

impl<'a, T: Float> PairwiseDistance<'a, T> {
    /// The distances between `x1` (argument `n1`) and `x2` (argument `n2`), which must have
    /// the same number of dimensions (checked by the caller) and broadcast.
    pub(crate) fn new(
        (n1, x1): (&str, &'a View<'_, T>),
        (n2, x2): (&str, &'a View<'_, T>),
        p: NormDegree,
        eps: f64,
    ) -> Result<Self> {
        let row_form = |s: &[usize]| if s.is_empty() { vec![1] } else { s.to_vec() };
        let (s1, s2) = (row_form(x1.shape()), row_form(x2.shape()));
        let full = broadcast_all(&[(n1, &s1), (n2, &s2)])?;
        let d = full.last().copied().unwrap_or(1);
        if d == 0 && p == NormDegree::Inf {
            return Err(LossError::shape(
                n1,
                format!("a non-empty last axis for p = inf (the broadcast shape with `{n2}` is {})", fmt_shape(&full)),
                x1.shape(),
            ));
        }
        let e1 = expand(n1, x1.data(), &s1, &full)?;
        let e2 = expand(n2, x2.data(), &s2, &full)?;
        let batch = full[..full.len() - 1].to_vec();
        let mut row = vec![0.0; d];
        let dist = (0..numel(&batch))
            .map(|r| {
                fill_row(&e1, &e2, r, d, eps, &mut row);
                p.norm(&row)
            })
            .collect();
        Ok(PairwiseDistance { s1, s2, full, x1: e1, x2: e2, d, eps, p, dist, batch })
    }

    /// Adds the gradient of `sum_r k[r] dist[r]` with respect to `x1` into `g1` and with respect
    /// to `x2` into `g2` (each in its argument's shape, `f64`).
    pub(crate) fn backward(&self, k: &[f64], g1: Option<&mut [f64]>, g2: Option<&mut [f64]>) -> Result<()> {
        let mut full = vec![0.0; numel(&self.full)];
        let mut row = vec![0.0; self.d];
        for (r, (&kr, &dr)) in k.iter().zip(&self.dist).enumerate() {
            fill_row(&self.x1, &self.x2, r, self.d, self.eps, &mut row);
            self.p.grad(&row, dr, kr, &mut full[r * self.d..(r + 1) * self.d]);
        }
        if let Some(g1) = g1 {
            sum_into(&full, &self.full, &self.s1, g1)?;
        }
        if let Some(g2) = g2 {
            full.iter_mut().for_each(|v| *v = -*v);
            sum_into(&full, &self.full, &self.s2, g2)?;
        }
        Ok(())
    }
}

/// Row `r` of `x1 - x2 + eps` (both already broadcast), widened to `f64`.
#[inline(always)]
fn fill_row<T: Float>(x1: &[T], x2: &[T], r: usize, d: usize, eps: f64, row: &mut [f64]) {
    let (a, b) = (&x1[r * d..(r + 1) * d], &x2[r * d..(r + 1) * d]);
    for ((o, u), v) in row.iter_mut().zip(a).zip(b) {
        *o = u.acc() - v.acc() + eps;
    }
}
