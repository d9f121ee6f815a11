//! `huber`: Huber loss (PyTorch `huber_loss`).

use super::{torch_pointwise, WeightedMean};
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, torch_reduction};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec, OptDefault, OptKind};
use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_i = w_i \begin{cases} \tfrac12 (x_i - y_i)^2 & \lvert x_i - y_i\rvert < \delta \\ \delta\,\big(\lvert x_i - y_i\rvert - \tfrac12 \delta\big) & \text{otherwise} \end{cases},\qquad \text{mean} = \frac1n \sum_i \ell_i,\qquad \frac{\partial \ell_i}{\partial x_i} = w_i \operatorname{clamp}(x_i - y_i, -\delta, \delta)"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "huber",
    family: Family::Regression,
    summary:
        "Huber loss: half the squared error inside |error| < delta, delta times the shifted absolute error outside.",
    formula: formula!(),
    reference: "torch.nn.functional.huber_loss",
    reference_call: "F.huber_loss(input, target, reduction=reduction, delta=delta, weight=weight)",
    reduction_default: "mean",
    none_shape: "the shape of input",
    conventions: "Continuous in value and slope at |e| = delta. delta must be > 0. With a weight (input's shape), \
'mean' is mean(w*loss) = sum(w*loss)/n: unlike mse and l1 it does NOT divide by sum(w). The gradient is the error \
clipped to [-delta, delta]. huber(delta) = delta * smooth_l1(beta = delta).",
    errata: "The post's Huber tests the branch once for the whole array (inverted), never reaches its linear branch, \
uses |e| - 0.5 (right only for delta = 1) and has no delta; the reference branches per element.",
    args: &[
        arg("input", "(*)", F, true, false, "finite"),
        arg("target", "(*), the shape of input", F, true, false, "finite"),
        arg("weight", "(*), the shape of input", F, true, true, "finite"),
    ],
    options: &[torch_reduction("mean"), opt("delta", OptKind::Float, OptDefault::Float(1.0), "> 0")],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`huber`](fn@huber).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HuberOptions {
    /// `none`, `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// The threshold between the quadratic and the linear part (default 1, must be > 0).
    pub delta: f64,
}

impl Default for HuberOptions {
    fn default() -> Self {
        HuberOptions { reduction: Reduction::Mean, delta: 1.0 }
    }
}

/// Huber loss, optionally weighted per element.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.huber_loss(input, target, reduction=reduction, delta=delta, weight=weight)`.
///
/// # Conventions
/// - `input`, `target` and `weight` have the same shape; reduction `none` returns that shape.
/// - With `weight`, `mean` is `sum(w * loss) / n` (not `/ sum(w)` as in [`mse`](fn@crate::mse)).
///
/// # Errors
/// [`LossError::Shape`] when `target` or `weight` does not have `input`'s shape;
/// [`LossError::InvalidOption`] for `delta <= 0` or a reduction other than `none`, `mean`, `sum`.
///
/// # Example
/// ```
/// use losskit::{huber, View, HuberOptions};
/// let x = [0.5f64, 3.0];
/// let y = [0.0f64, 0.0];
/// // 0.5 * 0.5^2 = 0.125 and 1 * (3 - 0.5) = 2.5; mean 1.3125
/// let loss = huber(View::from(&x[..]), View::from(&y[..]), None, &HuberOptions::default())?;
/// assert_eq!(loss.item(), Some(1.3125));
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn huber<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    weight: Option<View<'_, T>>,
    options: &HuberOptions,
) -> Result<Tensor<T>> {
    run(&input, &target, weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`huber`](fn@huber) and its gradients with respect to `input`, `target` and `weight`
/// (when given).
///
/// # Example
/// ```
/// use losskit::{huber_grad, Backward, View, HuberOptions, Reduction};
/// let x = [0.5f64, 3.0];
/// let y = [0.0f64, 0.0];
/// let opts = HuberOptions { reduction: Reduction::Sum, delta: 1.0 };
/// let (_, g) = huber_grad(View::from(&x[..]), View::from(&y[..]), None, &opts, Backward::new())?;
/// // the error clipped to [-delta, delta]
/// assert_eq!(g.get("input").unwrap().data(), &[0.5, 1.0]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn huber_grad<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    weight: Option<View<'_, T>>,
    options: &HuberOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&input, &target, weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    weight: Option<&View<'_, T>>,
    options: &HuberOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    if options.delta.is_nan() || options.delta <= 0.0 {
        return Err(LossError::option("delta", format!("must be > 0, got {}", options.delta)));
    }
    let d = T::of(options.delta);
    let half = T::of(0.5);
    torch_pointwise(
        input,
        target,
        weight,
        options.reduction,
        WeightedMean::Count,
        // both branches are computed and one is selected: the loop vectorises
        #[inline(always)]
        move |e: T| {
            let a = e.abs();
            let quadratic = a < d;
            let l = if quadratic { half * e * e } else { d * (a - half * d) };
            let g = if quadratic { e } else { d.copysign(e) };
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
    let options = HuberOptions { reduction: opts.reduction()?, delta: opts.float("delta") };
    run(&args.float("input")?, &args.float("target")?, args.opt_float("weight")?.as_ref(), &options, backward)
}
