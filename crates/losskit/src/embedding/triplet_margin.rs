//! `triplet_margin`: triplet margin loss with p-norm distances (PyTorch `triplet_margin_loss`).

use super::{fill_row, PairwiseDistance};
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, torch_reduction};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec, OptDefault, OptKind};
use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{overwritten_slots, start_optional, Backward, Grads};
use crate::kernels::broadcast::{broadcast_all, expand, sum_into};
use crate::kernels::norm::NormDegree;
use crate::kernels::simd::dispatch;
use crate::kernels::sum::{par_units, Every, SplitOut, CHUNK};
use crate::reduction::{reduce, reduce_cot, Reduction, TORCH_REDUCTIONS};
use crate::tensor::{numel, same_ndim, Tensor, View};

macro_rules! formula {
    () => {
        r"d(u, v) = \Big(\sum_{k} \lvert u_{k} - v_{k} + \epsilon \rvert^{p}\Big)^{1/p},\qquad \ell_n = \max\big(0,\ \text{margin} + d(a_n, p_n) - \tilde d_n\big),\qquad \tilde d_n = \begin{cases} \min\big(d(a_n, n_n),\ d(p_n, n_n)\big) & \text{swap} \\ d(a_n, n_n) & \text{otherwise} \end{cases}"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "triplet_margin",
    family: Family::Embedding,
    summary: "Triplet margin loss: a hinge on the p-norm distances anchor-positive and anchor-negative, with optional distance swap.",
    formula: formula!(),
    reference: "torch.nn.functional.triplet_margin_loss",
    reference_call: "F.triplet_margin_loss(anchor, positive, negative, margin=margin, p=p, eps=eps, swap=swap, reduction=reduction)",
    reduction_default: "mean",
    none_shape: "the broadcast shape without its last axis: (N,) for (N, D), () for (D,)",
    conventions: "Distances are pairwise_distance(u, v) = ||u - v + eps||_p over the last axis: eps is added to every \
coordinate of the difference, so d(u, v) != d(v, u) and d(u, u) = D^(1/p) eps. They are p-norms, not squared. The \
three inputs must have the same number of dimensions; leading axes are batch axes and all axes broadcast (each pair \
separately, then the distances); 0-d inputs are single coordinates. With swap the negative distance is \
min(d(a, n), d(p, n)), ties sharing the gradient equally. margin must be > 0, p > 0 (inf allowed), eps finite. \
Gradients: 0 where the hinge is inactive or at its kink, 0 for a zero distance, sgn(difference) for p = 1 (0 at a zero \
coordinate), and for p = inf the gradient is shared among the coordinates that attain the maximum.",
    errata: "The post's pos_distance and neg_distance are vectors of squared coordinate differences minus 1, not \
distances (no sum over the features, no p-th root, no eps), and its hinge with margin applies per coordinate before \
everything is summed. The reference takes the mean over samples of max(0, margin + ||a - p + eps||_p - ||a - n + eps||_p) \
with margin 1, p = 2, eps = 1e-6 by default and an optional swap.",
    args: &[
        arg("anchor", "(N, D) or (D,) (any leading batch axes)", F, true, false, "finite"),
        arg("positive", "same ndim as anchor, broadcastable", F, true, false, "finite"),
        arg("negative", "same ndim as anchor, broadcastable", F, true, false, "finite"),
    ],
    options: &[
        opt("margin", OptKind::Float, OptDefault::Float(1.0), "> 0"),
        opt("p", OptKind::Float, OptDefault::Float(2.0), "> 0 (norm degree; inf allowed)"),
        opt("eps", OptKind::Float, OptDefault::Float(1e-6), "finite"),
        opt("swap", OptKind::Bool, OptDefault::Bool(false), ""),
        torch_reduction("mean"),
    ],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`triplet_margin`](fn@triplet_margin).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TripletMarginOptions {
    /// The margin (default 1, must be > 0).
    pub margin: f64,
    /// The norm degree (default 2, must be > 0; `f64::INFINITY` is the max norm).
    pub p: f64,
    /// Added to every coordinate of each difference before the norm (default 1e-6).
    pub eps: f64,
    /// Use `min(d(a, n), d(p, n))` as the negative distance (default false).
    pub swap: bool,
    /// `none`, `mean` (default) or `sum`.
    pub reduction: Reduction,
}

impl Default for TripletMarginOptions {
    fn default() -> Self {
        TripletMarginOptions { margin: 1.0, p: 2.0, eps: 1e-6, swap: false, reduction: Reduction::Mean }
    }
}

/// Triplet margin loss between `anchor`, `positive` and `negative` embeddings (the last axis
/// holds the features).
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.triplet_margin_loss(anchor, positive, negative, margin=margin, p=p,
/// eps=eps, swap=swap, reduction=reduction)`.
///
/// # Conventions
/// - The three inputs have the same number of dimensions; the last axis holds the features,
///   leading axes are batch axes, and all axes broadcast. Reduction `none` returns the
///   broadcast shape without its last axis (`()` for 1-D inputs; 0-d inputs are single
///   coordinates).
/// - `eps` is added to every coordinate of the difference: `d(u, u) = D^(1/p) eps`.
/// - Gradients: see [`triplet_margin_grad`].
///
/// # Errors
/// [`LossError::Shape`] when the inputs differ in number of dimensions or do not broadcast
/// (or, for `p = inf`, have an empty feature axis); [`LossError::InvalidOption`] for
/// `margin <= 0`, `p <= 0`, a non-finite `eps` or a reduction other than `none`, `mean`,
/// `sum`.
///
/// # Example
/// ```
/// use losskit::{triplet_margin, View, TripletMarginOptions};
/// let a = [0.0f64, 0.0];
/// let p = [3.0f64, 4.0];
/// let n = [6.0f64, 8.0];
/// // eps = 0: d(a, p) = 5, d(a, n) = 10; max(0, 6 + 5 - 10) = 1
/// let opts = TripletMarginOptions { margin: 6.0, eps: 0.0, ..Default::default() };
/// let loss = triplet_margin(View::from(&a[..]), View::from(&p[..]), View::from(&n[..]), &opts)?;
/// assert_eq!(loss.item(), Some(1.0));
/// // p = 1: d(a, p) = 7, d(a, n) = 14, max(0, 6 + 7 - 14) = 0
/// let opts = TripletMarginOptions { p: 1.0, ..opts };
/// let loss = triplet_margin(View::from(&a[..]), View::from(&p[..]), View::from(&n[..]), &opts)?;
/// assert_eq!(loss.item(), Some(0.0));
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn triplet_margin<T: Float>(
    anchor: View<'_, T>,
    positive: View<'_, T>,
    negative: View<'_, T>,
    options: &TripletMarginOptions,
) -> Result<Tensor<T>> {
    run(&anchor, &positive, &negative, options, None).map(|(l, _)| l)
}

/// [`triplet_margin`](fn@triplet_margin) and its gradients with respect to `anchor`,
/// `positive` and `negative` (summed over broadcast dimensions).
///
/// The reference's conventions at non-differentiable points: 0 where the hinge is inactive or
/// exactly at its kink; 0 for a distance of exactly 0; `sgn` of each coordinate for `p = 1`
/// (0 at a zero coordinate, also for `p < 1`); for `p = inf` the gradient is shared equally
/// among the coordinates of largest magnitude; with `swap`, equal distances `d(a, n) = d(p, n)`
/// share the gradient equally.
///
/// # Example
/// ```
/// use losskit::{triplet_margin_grad, Backward, View, TripletMarginOptions};
/// let a = [0.0f64, 0.0];
/// let p = [3.0f64, 4.0];
/// let n = [6.0f64, 8.0];
/// let opts = TripletMarginOptions { margin: 6.0, eps: 0.0, ..Default::default() };
/// let (_, g) = triplet_margin_grad(View::from(&a[..]), View::from(&p[..]), View::from(&n[..]), &opts, Backward::new())?;
/// // (a - p) / 5 - (a - n) / 10 for the anchor, -(a - p) / 5 and (a - n) / 10 for the others
/// assert_eq!(g.get("anchor").unwrap().data(), &[0.0, 0.0]);
/// assert_eq!(g.get("positive").unwrap().data(), &[0.6, 0.8]);
/// assert_eq!(g.get("negative").unwrap().data(), &[-0.6, -0.8]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn triplet_margin_grad<T: Float>(
    anchor: View<'_, T>,
    positive: View<'_, T>,
    negative: View<'_, T>,
    options: &TripletMarginOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&anchor, &positive, &negative, options, Some(backward))
}

fn run<T: Float>(
    anchor: &View<'_, T>,
    positive: &View<'_, T>,
    negative: &View<'_, T>,
    options: &TripletMarginOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let reduction = options.reduction.check(TORCH_REDUCTIONS)?;
    let margin = options.margin;
    if margin.is_nan() || margin <= 0.0 {
        return Err(LossError::option("margin", format!("must be > 0, got {margin}")));
    }
    let p = NormDegree::new(options.p)
        .ok_or_else(|| LossError::option("p", format!("must be > 0 (inf allowed), got {}", options.p)))?;
    if !options.eps.is_finite() {
        return Err(LossError::option("eps", format!("must be finite, got {}", options.eps)));
    }
    let named = [("anchor", anchor.shape()), ("positive", positive.shape()), ("negative", negative.shape())];
    same_ndim(&named)?;
    // the common layout without broadcasting (an empty last axis goes the general way)
    let d = anchor.shape().last().copied().unwrap_or(0);
    if d > 0 && !anchor.shape().is_empty() && anchor.shape() == positive.shape() && anchor.shape() == negative.shape() {
        return same_shape(anchor, positive, negative, options, p, backward);
    }
    let eps = options.eps;
    let ap = PairwiseDistance::new(("anchor", anchor), ("positive", positive), p, eps)?;
    let an = PairwiseDistance::new(("anchor", anchor), ("negative", negative), p, eps)?;
    let pn = if options.swap {
        Some(PairwiseDistance::new(("positive", positive), ("negative", negative), p, eps)?)
    } else {
        None
    };
    let mut batches: Vec<(&str, &[usize])> = vec![("positive", &ap.batch), ("negative", &an.batch)];
    if let Some(pn) = &pn {
        batches.push(("negative", &pn.batch));
    }
    let shape = broadcast_all(&batches)?;
    let d_ap = expand("positive", &ap.dist, &ap.batch, &shape)?;
    let d_an = expand("negative", &an.dist, &an.batch, &shape)?;
    let d_pn = pn.as_ref().map(|pn| expand("negative", &pn.dist, &pn.batch, &shape)).transpose()?;
    let n = numel(&shape);
    // the negative distance, and the shares of d(a, n) and d(p, n) in its gradient
    let negative_distance = |i: usize| negative_distance(d_an[i], d_pn.as_ref().map(|d| d[i]));
    let hinge = |i: usize| margin + d_ap[i] - negative_distance(i).0;
    let values: Vec<T> = (0..n).map(|i| T::from_acc(clamp_hinge(hinge(i)))).collect();
    let loss = reduce(values, &shape, reduction, None);
    let Some(bw) = backward else {
        return Ok((loss, Grads::default()));
    };
    let (upstream, mut sink) = bw.start();
    let cot = reduce_cot(&upstream, &shape, reduction, None)?;
    let [ga, gp, gn] = sink.slots([
        ("anchor", anchor.shape(), true),
        ("positive", positive.shape(), true),
        ("negative", negative.shape(), true),
    ])?;
    // coefficients of each distance in d(sum upstream * loss), over the output shape
    let mut k_ap = vec![0.0; n];
    let mut k_an = vec![0.0; n];
    let mut k_pn = vec![0.0; n];
    for i in 0..n {
        if hinge(i) > 0.0 {
            (k_ap[i], k_an[i], k_pn[i]) = coefficients(cot.at(i).acc(), negative_distance(i));
        }
    }
    let mut acc_a = vec![0.0; anchor.len()];
    let mut acc_p = vec![0.0; positive.len()];
    let mut acc_n = vec![0.0; negative.len()];
    let per_row = |pair: &PairwiseDistance<'_, T>, k: &[f64]| -> Result<Vec<f64>> {
        let mut rows = vec![0.0; pair.dist.len()];
        sum_into(k, &shape, &pair.batch, &mut rows)?;
        Ok(rows)
    };
    ap.backward(&per_row(&ap, &k_ap)?, Some(&mut acc_a), Some(&mut acc_p))?;
    an.backward(&per_row(&an, &k_an)?, Some(&mut acc_a), Some(&mut acc_n))?;
    if let Some(pn) = &pn {
        pn.backward(&per_row(pn, &k_pn)?, Some(&mut acc_p), Some(&mut acc_n))?;
    }
    for (out, acc) in [(ga, acc_a), (gp, acc_p), (gn, acc_n)] {
        if let Some(out) = out {
            for (o, a) in out.iter_mut().zip(acc) {
                *o = T::from_acc(a);
            }
        }
    }
    Ok((loss, sink.finish()))
}

/// The negative distance given `d(a, n)` and, with `swap`, `d(p, n)`, and the shares of
/// `d(a, n)` and `d(p, n)` in its gradient.
#[inline(always)]
fn negative_distance(an: f64, pn: Option<f64>) -> (f64, f64, f64) {
    match pn {
        None => (an, 1.0, 0.0),
        Some(pn) => {
            let (x, y) = (an, pn);
            if x < y {
                (x, 1.0, 0.0)
            } else if y < x {
                (y, 0.0, 1.0)
            } else if x == y {
                (x, 0.5, 0.5)
            } else {
                (f64::NAN, 1.0, 1.0)
            }
        }
    }
}

/// `max(0, z)`; NaN propagates (clamp_min).
#[inline(always)]
fn clamp_hinge(z: f64) -> f64 {
    if z > 0.0 || z.is_nan() {
        z
    } else {
        0.0
    }
}

/// The coefficients of `d(a, p)`, `d(a, n)` and `d(p, n)` in `d(upstream * loss)` where the
/// hinge is active, for the upstream gradient `c`.
#[inline(always)]
fn coefficients(c: f64, (_, s_an, s_pn): (f64, f64, f64)) -> (f64, f64, f64) {
    (c, -c * s_an, -c * s_pn)
}

/// The common case: `anchor`, `positive` and `negative` of one shape `(..., D)`. Rows over
/// threads in fixed chunks; each row's distances, loss and gradients computed together (in the
/// general path's order of operations, so the same bits) and written straight into the
/// outputs.
fn same_shape<T: Float>(
    anchor: &View<'_, T>,
    positive: &View<'_, T>,
    negative: &View<'_, T>,
    options: &TripletMarginOptions,
    p: NormDegree,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let full = anchor.shape();
    let (&d, batch) = full.split_last().unwrap_or((&1, &[]));
    // d > 0 (checked by the caller)
    let rows = numel(batch);
    let (xa, xp, xn) = (anchor.data(), positive.data(), negative.data());
    let (margin, eps, swap) = (options.margin, options.eps, options.swap);
    let mut values = vec![T::zero(); rows];
    let (upstream, mut sink) = start_optional(backward);
    let cot = upstream.as_ref().map(|u| reduce_cot(u, batch, options.reduction, None)).transpose()?;
    // every element of the gradients is written below
    let [ga, gp, gn] =
        overwritten_slots(&mut sink, [("anchor", full, true), ("positive", full, true), ("negative", full, true)])?;
    let per_chunk = (CHUNK / d.max(1)).max(1);
    par_units(rows, per_chunk, (Every(Some(&mut values[..]), d), [ga, gp, gn]), d, |r0, r1, (vals, mut g)| {
        let vals = vals.0.unwrap_or_default();
        // the rows of differences (+ eps) and of the distances' gradients
        let mut diff = vec![0.0f64; 3 * d];
        let mut grad = vec![0.0f64; 3 * d];
        dispatch(
            #[inline(always)]
            || {
                let (cot, margin, eps, swap, p) = (cot, margin, eps, swap, p);
                let (row_ap, rest) = diff.split_at_mut(d);
                let (row_an, row_pn) = rest.split_at_mut(d);
                let (g_ap, rest) = grad.split_at_mut(d);
                let (g_an, g_pn) = rest.split_at_mut(d);
                for (k, r) in (r0..r1).enumerate() {
                    let (d_ap, d_an, d_pn) = if cot.is_some() {
                        // the rows of differences stay for the gradients
                        fill_row(xa, xp, r, d, eps, row_ap);
                        fill_row(xa, xn, r, d, eps, row_an);
                        let pn = swap.then(|| {
                            fill_row(xp, xn, r, d, eps, row_pn);
                            p.norm(row_pn)
                        });
                        (p.norm(row_ap), p.norm(row_an), pn)
                    } else {
                        let row = r * d..(r + 1) * d;
                        let (a, pos, neg) = (&xa[row.clone()], &xp[row.clone()], &xn[row]);
                        let pn = swap.then(|| p.norm_of_difference(pos, neg, eps));
                        let (ap, an) = p.norms_of_differences(a, pos, neg, eps);
                        (ap, an, pn)
                    };
                    let neg = negative_distance(d_an, d_pn);
                    let z = margin + d_ap - neg.0;
                    vals[k] = T::from_acc(clamp_hinge(z));
                    let [ga, gp, gn] = g.split_front(d);
                    let Some(cot) = cot else { continue };
                    let (k_ap, k_an, k_pn) = if z > 0.0 { coefficients(cot.at(r).acc(), neg) } else { (0.0, 0.0, 0.0) };
                    // the general path's per-row sums start at 0 (0 + k)
                    p.grad(row_ap, d_ap, 0.0 + k_ap, g_ap);
                    p.grad(row_an, d_an, 0.0 + k_an, g_an);
                    if let Some(d_pn) = d_pn {
                        p.grad(row_pn, d_pn, 0.0 + k_pn, g_pn);
                    }
                    // accumulated as the general path does: 0, then the pair (a, p), then (a, n),
                    // then (p, n); the second argument of a pair gets the negated gradient
                    if let Some(ga) = ga {
                        for j in 0..d {
                            ga[j] = T::from_acc(0.0 + g_ap[j] + g_an[j]);
                        }
                    }
                    if let Some(gp) = gp {
                        if swap {
                            for j in 0..d {
                                gp[j] = T::from_acc(0.0 + -g_ap[j] + g_pn[j]);
                            }
                        } else {
                            for j in 0..d {
                                gp[j] = T::from_acc(0.0 + -g_ap[j]);
                            }
                        }
                    }
                    if let Some(gn) = gn {
                        if swap {
                            for j in 0..d {
                                gn[j] = T::from_acc(0.0 + -g_an[j] + -g_pn[j]);
                            }
                        } else {
                            for j in 0..d {
                                gn[j] = T::from_acc(0.0 + -g_an[j]);
                            }
                        }
                    }
                }
                0.0
            },
        )
    });
    let loss = reduce(values, batch, options.reduction, None);
    match sink {
        Some(sink) => Ok((loss, sink.finish())),
        None => Ok((loss, Grads::default())),
    }
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = TripletMarginOptions {
        margin: opts.float("margin"),
        p: opts.float("p"),
        eps: opts.float("eps"),
        swap: opts.bool("swap"),
        reduction: opts.reduction()?,
    };
    run(&args.float("anchor")?, &args.float("positive")?, &args.float("negative")?, &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(data: &[f64], shape: &[usize]) -> View<'static, f64> {
        View::from_vec(data.to_vec(), shape).unwrap()
    }

    fn opts(margin: f64, p: f64, eps: f64, swap: bool, reduction: Reduction) -> TripletMarginOptions {
        TripletMarginOptions { margin, p, eps, swap, reduction }
    }

    #[test]
    fn huge_broadcast_is_an_error_not_an_abort() {
        // regression: (10^5, 1, 3) against (1, 10^5, 3) broadcast to 3e10 elements and the
        // allocation aborted the process
        let a = View::from_vec(vec![0.0f64; 300_000], &[100_000, 1, 3]).unwrap();
        let p = View::from_vec(vec![0.0f64; 300_000], &[1, 100_000, 3]).unwrap();
        let n = v(&[0.0; 3], &[1, 1, 3]);
        let e = triplet_margin(a, p, n, &TripletMarginOptions::default()).unwrap_err();
        assert!(e.to_string().contains("positive"), "{e}");
    }

    #[test]
    fn eps_is_added_to_every_coordinate() {
        // a = p: d(a, p) = ||(eps, eps, eps, eps)||_2 = 2 eps; d(a, n) = 0 + 2 eps when n = a too
        let a = v(&[1.0, 2.0, 3.0, 4.0], &[4]);
        let o = opts(1.0, 2.0, 0.25, false, Reduction::None);
        let l = triplet_margin(a.clone(), a.clone(), a.clone(), &o).unwrap();
        assert_eq!(l.shape(), &[] as &[usize]);
        assert_eq!(l.data(), &[1.0]);
        // d(u, v) != d(v, u): a - n + eps = (0.25, 0.25, 0.25, -0.75) vs n - a + eps
        let n = v(&[1.0, 2.0, 3.0, 5.0], &[4]);
        let o = opts(1.0, 1.0, 0.25, false, Reduction::None);
        let l = triplet_margin(a.clone(), a.clone(), n.clone(), &o).unwrap();
        // margin + 4 * 0.25 - (0.75 + 0.75) = 0.5
        assert_eq!(l.data(), &[0.5]);
        let l = triplet_margin(n.clone(), n, a, &o).unwrap();
        // n - a + eps = (0.25, 0.25, 0.25, 1.25): 1 + 1 - 2 = 0
        assert_eq!(l.data(), &[0.0]);
    }

    #[test]
    fn swap_ties_share_the_gradient() {
        // torch: anchor = positive exactly, so d(a, n) = d(p, n); grads [[1.0607, 1.0607]],
        // [[-0.35355, -0.35355]], [[-0.70711, -0.70711]] (margin 10, eps 1e-6, swap=True)
        let a = v(&[0.5, 1.0], &[1, 2]);
        let n = v(&[0.6, 1.1], &[1, 2]);
        let o = opts(10.0, 2.0, 1e-6, true, Reduction::None);
        let (l, g) = triplet_margin_grad(a.clone(), a.clone(), n, &o, Backward::new()).unwrap();
        assert!((l.data()[0] - 9.858_581_472_189_815).abs() < 1e-12);
        let close = |got: &[f64], want: &[f64]| got.iter().zip(want).all(|(x, y)| (x - y).abs() < 1e-12);
        let (ga, gp, gn) = (g.get("anchor").unwrap(), g.get("positive").unwrap(), g.get("negative").unwrap());
        assert!(close(ga.data(), &[1.060_660_171_779_821, 1.060_660_171_779_821_4]), "{:?}", ga.data());
        assert!(close(gp.data(), &[-0.353_553_390_593_274_06, -0.353_553_390_593_273_7]), "{:?}", gp.data());
        assert!(
            close(gn.data(), &[-std::f64::consts::FRAC_1_SQRT_2, -std::f64::consts::FRAC_1_SQRT_2]),
            "{:?}",
            gn.data()
        );
    }

    #[test]
    fn broadcasting_and_zero_d() {
        // anchor (2, 1, 3), positive (1, 4, 3), negative (2, 4, 1): loss (2, 4)
        let a = v(&[0.1, 0.2, 0.3, -1.0, 0.0, 1.0], &[2, 1, 3]);
        let p = v(&(0..12).map(|i| i as f64 / 10.0).collect::<Vec<_>>(), &[1, 4, 3]);
        let n = v(&(0..8).map(|i| 1.0 - i as f64 / 4.0).collect::<Vec<_>>(), &[2, 4, 1]);
        let o = opts(3.0, 2.0, 1e-6, true, Reduction::None);
        let (l, g) = triplet_margin_grad(a, p, n, &o, Backward::new()).unwrap();
        assert_eq!(l.shape(), &[2, 4]);
        assert_eq!(g.get("anchor").unwrap().shape(), &[2, 1, 3]);
        assert_eq!(g.get("positive").unwrap().shape(), &[1, 4, 3]);
        assert_eq!(g.get("negative").unwrap().shape(), &[2, 4, 1]);
        // 0-d inputs are single coordinates: torch gives loss 7.800002, grads 2, -1, -1
        let s = |x: f64| v(&[x], &[]);
        let o = opts(10.0, 3.0, 1e-6, false, Reduction::Mean);
        let (l, g) = triplet_margin_grad(s(0.5), s(0.2), s(3.0), &o, Backward::new()).unwrap();
        assert!((l.item().unwrap() - 7.800_002).abs() < 1e-12);
        assert_eq!(g.get("anchor").unwrap().data(), &[2.0]);
        assert_eq!(g.get("positive").unwrap().data(), &[-1.0]);
        assert_eq!(g.get("negative").unwrap().data(), &[-1.0]);
    }

    #[test]
    fn zero_distance_and_kink_give_zero_gradient() {
        // eps = 0 and anchor = positive: d(a, p) = 0, whose gradient is 0 for every p
        let a = v(&[0.5, 1.0], &[2]);
        let n = v(&[3.0, 2.0], &[2]);
        for p in [0.5, 1.0, 1.5, 2.0, 3.0, f64::INFINITY] {
            let o = opts(10.0, p, 0.0, false, Reduction::Sum);
            let (_, g) = triplet_margin_grad(a.clone(), a.clone(), n.clone(), &o, Backward::new()).unwrap();
            assert_eq!(g.get("positive").unwrap().data(), &[0.0, 0.0], "p = {p}");
        }
        // the hinge's kink: margin + 0 - 1 = 0
        let s = |x: f64| v(&[x], &[]);
        let o = opts(1.0, 2.0, 0.0, false, Reduction::Sum);
        let (l, g) = triplet_margin_grad(s(0.0), s(0.0), s(-1.0), &o, Backward::new()).unwrap();
        assert_eq!(l.item(), Some(0.0));
        assert_eq!(g.get("anchor").unwrap().data(), &[0.0]);
    }

    #[test]
    fn errors() {
        let x = v(&[1.0, 2.0], &[1, 2]);
        let run = |a: View<'static, f64>, p: View<'static, f64>, n: View<'static, f64>, o: TripletMarginOptions| {
            triplet_margin(a, p, n, &o)
        };
        let d = TripletMarginOptions::default();
        for (bad, name) in [
            (TripletMarginOptions { margin: 0.0, ..d }, "margin"),
            (TripletMarginOptions { margin: f64::NAN, ..d }, "margin"),
            (TripletMarginOptions { p: 0.0, ..d }, "p"),
            (TripletMarginOptions { p: -1.0, ..d }, "p"),
            (TripletMarginOptions { eps: f64::INFINITY, ..d }, "eps"),
            (TripletMarginOptions { reduction: Reduction::BatchMean, ..d }, "reduction"),
        ] {
            let r = run(x.clone(), x.clone(), x.clone(), bad);
            assert!(matches!(r, Err(LossError::InvalidOption { ref option, .. }) if option == name), "{r:?}");
        }
        let r = run(x.clone(), v(&[1.0, 2.0], &[2]), x.clone(), d);
        assert!(matches!(r, Err(LossError::Shape { ref arg, .. }) if arg == "positive"));
        let r = run(x.clone(), x.clone(), v(&[1.0, 2.0, 3.0], &[1, 3]), d);
        assert!(matches!(r, Err(LossError::Shape { ref arg, .. }) if arg == "negative"));
        // positive (2, 3) and negative (3, 3) broadcast with anchor (1, 3) but not with each other
        let r = run(v(&[0.0; 3], &[1, 3]), v(&[0.0; 6], &[2, 3]), v(&[0.0; 9], &[3, 3]), d);
        assert!(matches!(r, Err(LossError::Shape { ref arg, .. }) if arg == "negative"));
        // p = inf over an empty feature axis is undefined
        let e = v(&[], &[2, 0]);
        let r = run(e.clone(), e.clone(), e, TripletMarginOptions { p: f64::INFINITY, ..d });
        assert!(matches!(r, Err(LossError::Shape { ref arg, .. }) if arg == "anchor"));
    }
}
