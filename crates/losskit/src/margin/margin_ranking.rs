//! `margin_ranking`: margin ranking loss (PyTorch `margin_ranking_loss`).

use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, torch_reduction};
use crate::catalog::spec::{
    ArgKind::{Float as F, FloatOrInt},
    Family, LossSpec, OptDefault, OptKind,
};
use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::kernels::broadcast::{broadcast_all, expand, sum_to};
use crate::kernels::sum::{fused, BLOCK};
use crate::reduction::{keep_values, reduce, reduce_cot, reduce_summed, Reduction, TORCH_REDUCTIONS};
use crate::tensor::{numel, same_ndim, Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_n = \max\big(0,\ -y_n\,(x_{1,n} - x_{2,n}) + \text{margin}\big),\qquad \frac{\partial \ell_n}{\partial x_{1,n}} = -\frac{\partial \ell_n}{\partial x_{2,n}} = \begin{cases} -y_n & \ell_n > 0 \\ 0 & \text{otherwise} \end{cases}"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "margin_ranking",
    family: Family::Margin,
    summary: "Margin ranking loss: a hinge on y (x1 - x2), with y = 1 asking input1 to rank above input2 by at least the margin.",
    formula: formula!(),
    reference: "torch.nn.functional.margin_ranking_loss",
    reference_call: "F.margin_ranking_loss(input1, input2, target, margin=margin, reduction=reduction)",
    reduction_default: "mean",
    none_shape: "the broadcast shape of input1, input2 and target ((N,) for (N,) inputs)",
    conventions: "target = 1 asks input1 to exceed input2 by at least margin, -1 the reverse; other values are used \
as given (0 gives the constant max(0, margin)). input1, input2 and target must have the same number of dimensions \
(a 0-d target with 1-D inputs is an error) and then broadcast; 'mean' divides by the element count of the broadcast \
shape. target may be floats or integers and gets no gradient. The gradient is 0 where the hinge is inactive or exactly \
at its kink. margin defaults to 0 and must be finite.",
    errata: "The post's formula -y·x1 - x2 + margin drops the parentheses around x1 - x2, so x2 is never multiplied by \
y (wrong for y = -1, and for y = 1 it subtracts x2 where it should add it); its Julia code, with the parentheses, \
matches the reference's 'mean'.",
    args: &[
        arg("input1", "(N,) or ()", F, true, false, "finite"),
        arg("input2", "same ndim as input1, broadcastable", F, true, false, "finite"),
        arg("target", "same ndim as input1, broadcastable", FloatOrInt, false, false, "-1 or +1"),
    ],
    options: &[opt("margin", OptKind::Float, OptDefault::Float(0.0), "finite"), torch_reduction("mean")],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`margin_ranking`](fn@margin_ranking).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MarginRankingOptions {
    /// The margin (default 0, must be finite).
    pub margin: f64,
    /// `none`, `mean` (default) or `sum`.
    pub reduction: Reduction,
}

impl Default for MarginRankingOptions {
    fn default() -> Self {
        MarginRankingOptions { margin: 0.0, reduction: Reduction::Mean }
    }
}

/// Margin ranking loss between scores `input1` and `input2` with preferences `target`
/// (`1`: `input1` should rank higher, `-1`: `input2` should).
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.margin_ranking_loss(input1, input2, target, margin=margin,
/// reduction=reduction)`.
///
/// # Conventions
/// - The three arguments have the same number of dimensions and broadcast (NumPy rules);
///   reduction `none` returns the broadcast shape and `mean` divides by its element count.
/// - `target` values are used as given (the reference does not check that they are ±1).
/// - The gradient is 0 at the kink `-y (x1 - x2) + margin = 0`.
///
/// # Errors
/// [`LossError::Shape`] when the arguments differ in number of dimensions or do not
/// broadcast; [`LossError::InvalidOption`] for a non-finite `margin` or a reduction other than
/// `none`, `mean`, `sum`.
///
/// # Example
/// ```
/// use losskit::{margin_ranking, View, MarginRankingOptions, Reduction};
/// let x1 = [2.0f64, 0.5, 1.0];
/// let x2 = [1.0f64, 1.0, 1.0];
/// let y = [1.0f64, 1.0, -1.0];
/// // max(0, -(1) + 0.5), max(0, 0.5 + 0.5), max(0, 0 + 0.5)
/// let opts = MarginRankingOptions { margin: 0.5, reduction: Reduction::None };
/// let loss = margin_ranking(View::from(&x1[..]), View::from(&x2[..]), View::from(&y[..]), &opts)?;
/// assert_eq!(loss.data(), &[0.0, 1.0, 0.5]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn margin_ranking<T: Float>(
    input1: View<'_, T>,
    input2: View<'_, T>,
    target: View<'_, T>,
    options: &MarginRankingOptions,
) -> Result<Tensor<T>> {
    run(&input1, &input2, &target, options, None).map(|(l, _)| l)
}

/// [`margin_ranking`](fn@margin_ranking) and its gradients with respect to `input1` and
/// `input2` (summed over broadcast dimensions).
///
/// # Example
/// ```
/// use losskit::{margin_ranking_grad, Backward, View, MarginRankingOptions, Reduction};
/// let x1 = [2.0f64, 0.5, 1.0];
/// let x2 = [1.0f64, 1.0, 1.0];
/// let y = [1.0f64, 1.0, -1.0];
/// let opts = MarginRankingOptions { margin: 0.5, reduction: Reduction::Sum };
/// let (_, g) = margin_ranking_grad(View::from(&x1[..]), View::from(&x2[..]), View::from(&y[..]), &opts, Backward::new())?;
/// // -y where the hinge is active, 0 elsewhere; input2 gets the opposite
/// assert_eq!(g.get("input1").unwrap().data(), &[0.0, -1.0, 1.0]);
/// assert_eq!(g.get("input2").unwrap().data(), &[0.0, 1.0, -1.0]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn margin_ranking_grad<T: Float>(
    input1: View<'_, T>,
    input2: View<'_, T>,
    target: View<'_, T>,
    options: &MarginRankingOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&input1, &input2, &target, options, Some(backward))
}

fn run<T: Float>(
    input1: &View<'_, T>,
    input2: &View<'_, T>,
    target: &View<'_, T>,
    options: &MarginRankingOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let reduction = options.reduction.check(TORCH_REDUCTIONS)?;
    if !options.margin.is_finite() {
        return Err(LossError::option("margin", format!("must be finite, got {}", options.margin)));
    }
    let named = [("input1", input1.shape()), ("input2", input2.shape()), ("target", target.shape())];
    same_ndim(&named)?;
    let shape = broadcast_all(&named)?;
    let m = T::of(options.margin);
    if input1.shape() == shape.as_slice() && input2.shape() == shape.as_slice() && target.shape() == shape.as_slice() {
        return same_shape(input1.data(), input2.data(), target.data(), &shape, m, reduction, backward);
    }
    let x1 = expand("input1", input1.data(), input1.shape(), &shape)?;
    let x2 = expand("input2", input2.data(), input2.shape(), &shape)?;
    let y = expand("target", target.data(), target.shape(), &shape)?;
    let z = |i: usize| hinge_arg(x1[i], x2[i], y[i], m);
    let values: Vec<T> = (0..numel(&shape)).map(|i| hinge(z(i))).collect();
    let loss = reduce(values, &shape, reduction, None);
    let Some(bw) = backward else {
        return Ok((loss, Grads::default()));
    };
    let (upstream, mut sink) = bw.start();
    let cot = reduce_cot(&upstream, &shape, reduction, None)?;
    let [g1, g2] = sink.slots([("input1", input1.shape(), true), ("input2", input2.shape(), true)])?;
    // d loss / d x1 over the broadcast shape; x2 gets the opposite
    let full: Vec<T> = (0..numel(&shape)).map(|i| slope(z(i), cot.at(i), y[i])).collect();
    if let Some(g1) = g1 {
        sum_to(&full, &shape, input1.shape(), g1)?;
    }
    if let Some(g2) = g2 {
        sum_to(&full, &shape, input2.shape(), g2)?;
        for v in g2.iter_mut() {
            *v = -*v;
        }
    }
    Ok((loss, sink.finish()))
}

/// The hinge argument `z = -y (x1 - x2) + margin`.
#[inline(always)]
fn hinge_arg<T: Float>(x1: T, x2: T, y: T, m: T) -> T {
    -y * (x1 - x2) + m
}

/// The loss `max(0, z)`; NaN propagates (clamp_min).
#[inline(always)]
fn hinge<T: Float>(z: T) -> T {
    if z > T::zero() || z.is_nan() {
        z
    } else {
        T::zero()
    }
}

/// d loss / d x1 for the upstream gradient `c`: `-c y` where the hinge is active, 0 elsewhere
/// (at the kink too).
#[inline(always)]
fn slope<T: Float>(z: T, c: T, y: T) -> T {
    if z > T::zero() {
        -c * y
    } else {
        T::zero()
    }
}

/// The common case without broadcasting: one fused pass (value and both gradients), written
/// straight into the outputs.
fn same_shape<T: Float>(
    x1: &[T],
    x2: &[T],
    y: &[T],
    shape: &[usize],
    m: T,
    reduction: Reduction,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let n = x1.len();
    let mut values = keep_values::<T>(reduction, n);
    let Some(bw) = backward else {
        let total = fused(
            n,
            values.as_deref_mut(),
            (),
            #[inline(always)]
            // move: the margin is a local copy, kept in a register
            move |s, v, _| {
                let len = v.len();
                let (a, b, t) = (&x1[s..s + len], &x2[s..s + len], &y[s..s + len]);
                for i in 0..len {
                    v[i] = hinge(hinge_arg(a[i], b[i], t[i], m));
                }
            },
        );
        return Ok((reduce_summed(values, total, shape, reduction, None), Grads::default()));
    };
    let (upstream, mut sink) = bw.start();
    let cot = reduce_cot(&upstream, shape, reduction, None)?;
    let (each, scale) = cot.parts();
    // every element of both gradients is written below
    let [g1, g2] = sink.slots_overwritten([("input1", shape, true), ("input2", shape, true)])?;
    let total = fused(
        n,
        values.as_deref_mut(),
        [g1, g2],
        #[inline(always)]
        |s, v, [g1, g2]| {
            // local copies: kept in registers, not reloaded after every store
            let (m, scale) = (m, scale);
            let len = v.len();
            let (a, b, t) = (&x1[s..s + len], &x2[s..s + len], &y[s..s + len]);
            // zeroed only where it is used: a tile is short, and zeroing it cost a tenth of it
            let mut scratch;
            // cut to `len`: no bounds check in the loops, so no scalar tail
            let d1: &mut [T] = match g1.as_deref_mut() {
                Some(g) => &mut g[..len],
                None => {
                    scratch = [T::zero(); BLOCK];
                    &mut scratch[..len]
                }
            };
            match each {
                None => {
                    for i in 0..len {
                        let z = hinge_arg(a[i], b[i], t[i], m);
                        v[i] = hinge(z);
                        d1[i] = slope(z, scale, t[i]);
                    }
                }
                Some(e) => {
                    let es = &e[s..s + len];
                    for i in 0..len {
                        let z = hinge_arg(a[i], b[i], t[i], m);
                        v[i] = hinge(z);
                        d1[i] = slope(z, scale * es[i], t[i]);
                    }
                }
            }
            if let Some(g2) = g2.as_deref_mut() {
                let g2 = &mut g2[..len];
                for i in 0..len {
                    g2[i] = -d1[i];
                }
            }
        },
    );
    Ok((reduce_summed(values, total, shape, reduction, None), sink.finish()))
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = MarginRankingOptions { margin: opts.float("margin"), reduction: opts.reduction()? };
    run(&args.float("input1")?, &args.float("input2")?, &args.float_lenient("target")?, &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_equal_rank_and_sums_gradients_back() {
        // torch: input1 (3, 1), input2 (1, 4), target (1, 4) -> loss (3, 4), grads of the inputs' shapes
        let x1 = [0.0f64, 1.0, 2.0];
        let x2 = [0.5f64, 1.5, 2.5, 3.5];
        let y = [1.0f64, -1.0, 1.0, 1.0];
        let a = View::new(&x1, &[3, 1]).unwrap();
        let b = View::new(&x2, &[1, 4]).unwrap();
        let t = View::new(&y, &[1, 4]).unwrap();
        let opts = MarginRankingOptions { margin: 0.1, reduction: Reduction::None };
        let (l, g) = margin_ranking_grad(a, b, t, &opts, Backward::new()).unwrap();
        assert_eq!(l.shape(), &[3, 4]);
        for (r, a) in x1.iter().enumerate() {
            for (c, (b, t)) in x2.iter().zip(&y).enumerate() {
                let z: f64 = -t * (a - b) + 0.1;
                assert_eq!(l.data()[r * 4 + c], z.max(0.0));
            }
        }
        let g1 = g.get("input1").unwrap();
        let g2 = g.get("input2").unwrap();
        assert_eq!(g1.shape(), &[3, 1]);
        assert_eq!(g2.shape(), &[1, 4]);
        // column 1 (y = -1): z = x1 - 1.5 + 0.1 > 0 only for x1 = 2; others (y = 1): z = x2 - x1 + 0.1 > 0 when x1 <= x2
        assert_eq!(g1.data(), &[-3.0, -2.0, -1.0]);
        assert_eq!(g2.data(), &[1.0, -1.0, 3.0, 3.0]);
    }

    #[test]
    fn kink_gradient_is_zero_and_zero_d_works() {
        // torch: F.margin_ranking_loss(x1, x2, y, margin=1.0) with -y (x1 - x2) + 1 = 0 gives grad 0
        let s = |v: f64| View::from_vec(vec![v], &[]).unwrap();
        let opts = MarginRankingOptions { margin: 1.0, reduction: Reduction::None };
        let (l, g) = margin_ranking_grad(s(2.0), s(1.0), s(1.0), &opts, Backward::new()).unwrap();
        assert_eq!(l.shape(), &[] as &[usize]);
        assert_eq!(l.data(), &[0.0]);
        assert_eq!(g.get("input1").unwrap().data(), &[0.0]);
        let (l, _) =
            margin_ranking_grad(s(0.5), s(1.0), s(1.0), &MarginRankingOptions::default(), Backward::new()).unwrap();
        assert_eq!(l.item(), Some(0.5));
    }

    #[test]
    fn errors() {
        let v = [1.0f64, 2.0, 3.0];
        let zero_d = View::from_vec(vec![1.0f64], &[]).unwrap();
        let r = margin_ranking(View::vector(&v), View::vector(&v), zero_d, &MarginRankingOptions::default());
        assert!(matches!(r, Err(LossError::Shape { ref arg, .. }) if arg == "target"));
        let r =
            margin_ranking(View::vector(&v), View::vector(&v[..2]), View::vector(&v), &MarginRankingOptions::default());
        assert!(matches!(r, Err(LossError::Shape { ref arg, .. }) if arg == "input2"));
        let opts = MarginRankingOptions { margin: f64::NAN, ..Default::default() };
        let r = margin_ranking(View::vector(&v), View::vector(&v), View::vector(&v), &opts);
        assert!(matches!(r, Err(LossError::InvalidOption { ref option, .. }) if option == "margin"));
        let opts = MarginRankingOptions { reduction: Reduction::BatchMean, ..Default::default() };
        let r = margin_ranking(View::vector(&v), View::vector(&v), View::vector(&v), &opts);
        assert!(matches!(r, Err(LossError::InvalidOption { ref option, .. }) if option == "reduction"));
    }
}
