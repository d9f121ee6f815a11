//! `smooth_l1`: smooth L1 loss (PyTorch `smooth_l1_loss`).

use super::{torch_pointwise, WeightedMean};
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, torch_reduction};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec, OptDefault, OptKind};
use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::kernels::stable::{exact_inverse, sgn};
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_i = \begin{cases} \dfrac{(x_i - y_i)^2}{2\beta} & \lvert x_i - y_i\rvert < \beta \\ \lvert x_i - y_i\rvert - \tfrac12\beta & \text{otherwise} \end{cases},\qquad \frac{\partial \ell_i}{\partial x_i} = \operatorname{clamp}\Big(\frac{x_i - y_i}{\beta}, -1, 1\Big);\quad \beta = 0:\ \ell_i = \lvert x_i - y_i\rvert"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "smooth_l1",
    family: Family::Regression,
    summary: "Smooth L1: squared error over 2*beta inside |error| < beta, absolute error minus beta/2 outside.",
    formula: formula!(),
    reference: "torch.nn.functional.smooth_l1_loss",
    reference_call: "F.smooth_l1_loss(input, target, reduction=reduction, beta=beta)",
    reduction_default: "mean",
    none_shape: "the shape of input",
    conventions: "beta = 0 is exactly L1 (gradient sgn(e), 0 at e = 0); beta < 0 is an error. The linear part has \
slope 1, not beta: smooth_l1(beta) = huber(delta = beta) / beta, equal to huber only for beta = delta = 1. No weight \
argument. input and target must have the same shape.",
    errata: "The post merges Huber, Smooth L1 and 'Smooth MAE' into one function (with the branch bugs described \
under huber); Smooth L1 with threshold beta equals Huber only when beta = delta = 1.",
    args: &[
        arg("input", "(*)", F, true, false, "finite"),
        arg("target", "(*), the shape of input", F, true, false, "finite"),
    ],
    options: &[torch_reduction("mean"), opt("beta", OptKind::Float, OptDefault::Float(1.0), ">= 0; 0 means exact L1")],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`smooth_l1`](fn@smooth_l1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothL1Options {
    /// `none`, `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// The threshold of the quadratic part (default 1, must be >= 0).
    pub beta: f64,
}

impl Default for SmoothL1Options {
    fn default() -> Self {
        SmoothL1Options { reduction: Reduction::Mean, beta: 1.0 }
    }
}

/// Smooth L1 loss.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.smooth_l1_loss(input, target, reduction=reduction, beta=beta)`.
///
/// # Conventions
/// - `input` and `target` have the same shape; reduction `none` returns that shape.
/// - `beta = 0` is exactly [`l1`](fn@crate::l1).
///
/// # Errors
/// [`LossError::Shape`] when `target` does not have `input`'s shape;
/// [`LossError::InvalidOption`] for `beta < 0` or a reduction other than `none`, `mean`, `sum`.
///
/// # Example
/// ```
/// use losskit::{smooth_l1, View, SmoothL1Options, Reduction};
/// let x = [0.5f64, 3.0];
/// let y = [0.0f64, 0.0];
/// // 0.5 * 0.25 / 1 = 0.125 and 3 - 0.5 = 2.5
/// let opts = SmoothL1Options { reduction: Reduction::None, beta: 1.0 };
/// let loss = smooth_l1(View::from(&x[..]), View::from(&y[..]), &opts)?;
/// assert_eq!(loss.data(), &[0.125, 2.5]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn smooth_l1<T: Float>(input: View<'_, T>, target: View<'_, T>, options: &SmoothL1Options) -> Result<Tensor<T>> {
    run(&input, &target, options, None).map(|(l, _)| l)
}

/// [`smooth_l1`](fn@smooth_l1) and its gradients with respect to `input` and `target`.
///
/// # Example
/// ```
/// use losskit::{smooth_l1_grad, Backward, View, SmoothL1Options, Reduction};
/// let x = [0.5f64, 3.0];
/// let y = [0.0f64, 0.0];
/// let opts = SmoothL1Options { reduction: Reduction::Sum, beta: 2.0 };
/// let (_, g) = smooth_l1_grad(View::from(&x[..]), View::from(&y[..]), &opts, Backward::new())?;
/// // clamp(e / beta, -1, 1)
/// assert_eq!(g.get("input").unwrap().data(), &[0.25, 1.0]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn smooth_l1_grad<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    options: &SmoothL1Options,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&input, &target, options, Some(backward))
}

fn run<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    options: &SmoothL1Options,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let beta = options.beta;
    if beta.is_nan() || beta < 0.0 {
        return Err(LossError::option("beta", format!("must be >= 0, got {beta}")));
    }
    let red = options.reduction;
    if beta == 0.0 {
        return torch_pointwise(
            input,
            target,
            None,
            red,
            WeightedMean::Count,
            #[inline(always)]
            move |e| (e.abs(), sgn(e)),
            backward,
        );
    }
    let b = T::of(beta);
    // the default beta = 1, and any power of two, divides as its exact inverse multiplies: the
    // same bits without two divisions per element (the loop's bottleneck on AVX2)
    match exact_inverse(b) {
        Some(inv) => quadratic_or_linear(input, target, red, b, move |x: T| x * inv, backward),
        None => quadratic_or_linear(input, target, red, b, move |x: T| x / b, backward),
    }
}

/// Smooth L1 with `beta = b > 0`, where `over_b(x)` is `x / b`.
fn quadratic_or_linear<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    red: Reduction,
    b: T,
    over_b: impl Fn(T) -> T + Sync + Copy,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let half = T::of(0.5);
    torch_pointwise(
        input,
        target,
        None,
        red,
        WeightedMean::Count,
        // both branches are computed and one is selected: the loop vectorises
        #[inline(always)]
        move |e: T| {
            let a = e.abs();
            let quadratic = a < b;
            let l = if quadratic { over_b(half * e * e) } else { a - half * b };
            let g = if quadratic { over_b(e) } else { T::one().copysign(e) };
            (l, g)
        },
        backward,
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = SmoothL1Options { reduction: opts.reduction()?, beta: opts.float("beta") };
    run(&args.float("input")?, &args.float("target")?, &options, backward)
}
