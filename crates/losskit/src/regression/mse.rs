//! `mse`: mean squared error (PyTorch `mse_loss`).

use super::{torch_pointwise, WeightedMean};
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, torch_reduction};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_i = w_i\,(x_i - y_i)^2,\qquad \text{mean} = \frac{\sum_i \ell_i}{\sum_i w_i}\ \ (w \equiv 1 \text{ without weight}),\qquad \frac{\partial \ell_i}{\partial x_i} = 2 w_i (x_i - y_i)"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "mse",
    family: Family::Regression,
    summary: "Squared error between input and target per element, optionally weighted, reduced PyTorch-style.",
    formula: formula!(),
    reference: "torch.nn.functional.mse_loss",
    reference_call: "F.mse_loss(input, target, reduction=reduction, weight=weight)",
    reduction_default: "mean",
    none_shape: "the shape of input",
    conventions: "input, target and weight must have the same shape (no broadcasting). With a weight, \
'mean' is the weighted mean sum(w*(x-y)^2)/sum(w) (not the mean of w*(x-y)^2), 'sum' is sum(w*(x-y)^2) and 'none' \
is w*(x-y)^2. All three arguments are differentiable; d/dtarget = -d/dinput. A zero weight sum gives inf or NaN \
under 'mean', as in the reference.",
    errata: "The post's mse is right for 'mean' and 'sum' but has no 'none' reduction and no weights, and silently \
returns nothing for an unknown reduction string.",
    args: &[
        arg("input", "(*)", F, true, false, "finite"),
        arg("target", "(*), the shape of input", F, true, false, "finite"),
        arg("weight", "(*), the shape of input", F, true, true, "finite; sum(weight) != 0 under 'mean'"),
    ],
    options: &[torch_reduction("mean")],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`mse`](fn@mse).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MseOptions {
    /// `none`, `mean` (default) or `sum`.
    pub reduction: Reduction,
}

impl Default for MseOptions {
    fn default() -> Self {
        MseOptions { reduction: Reduction::Mean }
    }
}

/// Mean squared error, optionally weighted per element.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.mse_loss(input, target, reduction=reduction, weight=weight)`.
///
/// # Conventions
/// - `input`, `target` and `weight` have the same shape; reduction `none` returns that shape.
/// - With `weight`, `mean` divides by `sum(weight)`, not by the element count.
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) when `target` or `weight` does not have
/// `input`'s shape; [`LossError::InvalidOption`](crate::LossError::InvalidOption) for a
/// reduction other than `none`, `mean`, `sum`.
///
/// # Example
/// ```
/// use losskit::{mse, View, MseOptions};
/// let x = [1.0f64, 2.0, 3.0];
/// let y = [1.0f64, 1.0, 1.0];
/// // squared errors [0, 1, 4]: mean 5/3 (torch: F.mse_loss(x, y) = 1.6667)
/// let loss = mse(View::from(&x[..]), View::from(&y[..]), None, &MseOptions::default())?;
/// assert!((loss.item().unwrap() - 5.0 / 3.0).abs() < 1e-15);
/// // weighted: sum(w * se) / sum(w) = (0 + 2 + 12) / 6
/// let w = [1.0f64, 2.0, 3.0];
/// let loss = mse(View::from(&x[..]), View::from(&y[..]), Some(View::from(&w[..])), &MseOptions::default())?;
/// assert!((loss.item().unwrap() - 14.0 / 6.0).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn mse<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    weight: Option<View<'_, T>>,
    options: &MseOptions,
) -> Result<Tensor<T>> {
    run(&input, &target, weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`mse`](fn@mse) and its gradients with respect to `input`, `target` and `weight` (when
/// given).
///
/// # Example
/// ```
/// use losskit::{mse_grad, Backward, View, MseOptions};
/// let x = [1.0f64, 2.0, 3.0];
/// let y = [1.0f64, 1.0, 1.0];
/// let (loss, grads) = mse_grad(View::from(&x[..]), View::from(&y[..]), None, &MseOptions::default(), Backward::new())?;
/// // d/dx mean((x - y)^2) = 2 (x - y) / 3
/// assert_eq!(grads.get("input").unwrap().data(), &[0.0, 2.0 / 3.0, 4.0 / 3.0]);
/// # let _ = loss;
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn mse_grad<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    weight: Option<View<'_, T>>,
    options: &MseOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&input, &target, weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    weight: Option<&View<'_, T>>,
    options: &MseOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let two = T::of(2.0);
    torch_pointwise(
        input,
        target,
        weight,
        options.reduction,
        WeightedMean::SumOfWeights,
        #[inline(always)]
        move |e| (e * e, two * e),
        backward,
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = MseOptions { reduction: opts.reduction()? };
    run(&args.float("input")?, &args.float("target")?, args.opt_float("weight")?.as_ref(), &options, backward)
}
