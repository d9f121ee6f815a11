//! `l1`: mean absolute error (PyTorch `l1_loss`).

use super::{torch_pointwise, WeightedMean};
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, torch_reduction};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::kernels::stable::sgn;
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_i = w_i\,\lvert x_i - y_i\rvert,\qquad \text{mean} = \frac{\sum_i \ell_i}{\sum_i w_i}\ \ (w \equiv 1 \text{ without weight}),\qquad \frac{\partial \ell_i}{\partial x_i} = w_i \operatorname{sgn}(x_i - y_i),\ \operatorname{sgn}(0) = 0"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "l1",
    family: Family::Regression,
    summary: "Absolute error between input and target per element (MAE), optionally weighted, reduced PyTorch-style.",
    formula: formula!(),
    reference: "torch.nn.functional.l1_loss",
    reference_call: "F.l1_loss(input, target, reduction=reduction, weight=weight)",
    reduction_default: "mean",
    none_shape: "the shape of input",
    conventions: "Also called MAE. input, target and weight must have the same shape (no broadcasting). With a \
weight, 'mean' is sum(w*|x-y|)/sum(w), 'sum' is sum(w*|x-y|), 'none' is w*|x-y|. The gradient at x == y is exactly 0. \
All three arguments are differentiable; d/dtarget = -d/dinput.",
    errata: "The post's mae is right for 'mean' and 'sum' but has no 'none' reduction and silently returns nothing \
for any other reduction string.",
    args: &[
        arg("input", "(*)", F, true, false, "finite"),
        arg("target", "(*), the shape of input", F, true, false, "finite"),
        arg("weight", "(*), the shape of input", F, true, true, "finite"),
    ],
    options: &[torch_reduction("mean")],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`l1`](fn@l1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct L1Options {
    /// `none`, `mean` (default) or `sum`.
    pub reduction: Reduction,
}

impl Default for L1Options {
    fn default() -> Self {
        L1Options { reduction: Reduction::Mean }
    }
}

/// Mean absolute error (L1), optionally weighted per element.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.l1_loss(input, target, reduction=reduction, weight=weight)`.
///
/// # Conventions
/// - `input`, `target` and `weight` have the same shape; reduction `none` returns that shape.
/// - With `weight`, `mean` divides by `sum(weight)`; the gradient at `x == y` is 0.
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) when `target` or `weight` does not have
/// `input`'s shape; [`LossError::InvalidOption`](crate::LossError::InvalidOption) for a
/// reduction other than `none`, `mean`, `sum`.
///
/// # Example
/// ```
/// use losskit::{l1, View, L1Options};
/// let x = [1.0f64, 2.0, 4.0];
/// let y = [1.0f64, 1.0, 1.0];
/// // absolute errors [0, 1, 3]: mean 4/3
/// let loss = l1(View::from(&x[..]), View::from(&y[..]), None, &L1Options::default())?;
/// assert!((loss.item().unwrap() - 4.0 / 3.0).abs() < 1e-15);
/// // weighted: sum(w |e|) / sum(w) = (0 + 2 + 9) / 6
/// let w = [1.0f64, 2.0, 3.0];
/// let loss = l1(View::from(&x[..]), View::from(&y[..]), Some(View::from(&w[..])), &L1Options::default())?;
/// assert!((loss.item().unwrap() - 11.0 / 6.0).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn l1<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    weight: Option<View<'_, T>>,
    options: &L1Options,
) -> Result<Tensor<T>> {
    run(&input, &target, weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`l1`](fn@l1) and its gradients with respect to `input`, `target` and `weight` (when
/// given).
///
/// # Example
/// ```
/// use losskit::{l1_grad, Backward, View, L1Options};
/// let x = [1.0f64, 2.0, 0.0];
/// let y = [1.0f64, 1.0, 1.0];
/// let (_, grads) = l1_grad(View::from(&x[..]), View::from(&y[..]), None, &L1Options::default(), Backward::new())?;
/// // d/dx mean|x - y| = sgn(x - y) / 3 with sgn(0) = 0
/// assert_eq!(grads.get("input").unwrap().data(), &[0.0, 1.0 / 3.0, -1.0 / 3.0]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn l1_grad<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    weight: Option<View<'_, T>>,
    options: &L1Options,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&input, &target, weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    weight: Option<&View<'_, T>>,
    options: &L1Options,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    torch_pointwise(
        input,
        target,
        weight,
        options.reduction,
        WeightedMean::SumOfWeights,
        #[inline(always)]
        move |e| (e.abs(), sgn(e)),
        backward,
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = L1Options { reduction: opts.reduction()? };
    run(&args.float("input")?, &args.float("target")?, args.opt_float("weight")?.as_ref(), &options, backward)
}
