//! `binary_cross_entropy`: binary cross-entropy on probabilities (PyTorch
//! `binary_cross_entropy`).

use super::TorchElementwise;
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, torch_reduction};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec};
use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::kernels::stable::floor_at;
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_i = -\,w_i\big[y_i \max(\log x_i, -100) + (1 - y_i)\max(\log(1 - x_i), -100)\big],\qquad \frac{\partial \ell_i}{\partial x_i} = w_i\,\frac{x_i - y_i}{\max\big(x_i(1 - x_i),\ 10^{-12}\big)},\qquad \frac{\partial \ell_i}{\partial y_i} = w_i \log\frac{1 - x_i}{x_i}"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "binary_cross_entropy",
    family: Family::Classification,
    summary: "Binary cross-entropy between predicted probabilities and targets in [0, 1], each log clamped at -100, optionally weighted.",
    formula: formula!(),
    reference: "torch.nn.functional.binary_cross_entropy",
    reference_call: "F.binary_cross_entropy(input, target, weight=weight, reduction=reduction)",
    reduction_default: "mean",
    none_shape: "the shape of input",
    conventions: "input and target must have the same shape and every element of both must lie in [0, 1] (NaN \
included, an error otherwise). Each log is clamped below at -100, so a prediction of exactly 0 or 1 on the wrong side \
costs 100 (times its weight), never inf. The input gradient is not the derivative of that clamped value but \
w(x - y)/max(x(1 - x), 1e-12), the 1e-12 being a single-precision constant (about -1e12 at x = 0, y = 1). The target \
gradient is w log((1 - x)/x), unclamped: +inf at x = 0 and -inf at x = 1. weight broadcasts to input's shape and gets \
no gradient; 'mean' divides by the element count even with a weight.",
    errata: "The post's bce drops the leading minus sign (its loss is <= 0), multiplies log(1 - y) by log(1 - ŷ) \
instead of (1 - y) by log(1 - ŷ) (negatives then contribute nothing and positives give inf), and does not guard \
log(0); the reference negates, uses (1 - y) and clamps each log at -100.",
    args: &[
        arg("input", "(*)", F, true, false, "probabilities in [0, 1]"),
        arg("target", "(*), the shape of input", F, true, false, "in [0, 1]"),
        arg("weight", "broadcastable to input's shape", F, false, true, "finite"),
    ],
    options: &[torch_reduction("mean")],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// The floor of `x (1 - x)` in the input gradient: PyTorch's single-precision `1e-12`.
const EPSILON: f32 = 1e-12;

/// Options of [`binary_cross_entropy`](fn@binary_cross_entropy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BinaryCrossEntropyOptions {
    /// `none`, `mean` (default) or `sum`.
    pub reduction: Reduction,
}

impl Default for BinaryCrossEntropyOptions {
    fn default() -> Self {
        BinaryCrossEntropyOptions { reduction: Reduction::Mean }
    }
}

/// Binary cross-entropy between probabilities `input` and targets `target`, optionally
/// weighted per element.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.binary_cross_entropy(input, target, weight=weight, reduction=reduction)`.
///
/// # Conventions
/// - `input` and `target` have the same shape; reduction `none` returns that shape.
/// - Each log is clamped at `-100`: a probability of exactly 0 or 1 on the wrong side costs
///   `100 w`, not infinity.
/// - `weight` broadcasts to `input`'s shape and has no gradient; `mean` divides by the element
///   count, not by `sum(weight)`.
/// - Gradients are the reference's: see [`binary_cross_entropy_grad`].
///
/// # Errors
/// [`LossError::Shape`] when `target` does not have `input`'s shape or `weight` does not
/// broadcast to it; [`LossError::InvalidValue`] when an element of `input` or `target` lies
/// outside `[0, 1]` or is NaN; [`LossError::InvalidOption`] for a reduction other than `none`,
/// `mean`, `sum`.
///
/// # Example
/// ```
/// use losskit::{binary_cross_entropy, View, BinaryCrossEntropyOptions};
/// let x = [0.8f64, 0.1, 0.5];
/// let y = [1.0f64, 0.0, 0.25];
/// // (-ln 0.8 - ln 0.9 + ln 2) / 3 (torch: F.binary_cross_entropy(x, y) = 0.34055041584399381)
/// let loss = binary_cross_entropy(View::from(&x[..]), View::from(&y[..]), None, &BinaryCrossEntropyOptions::default())?;
/// let expected = (-(0.8f64.ln()) - 0.9f64.ln() + 2f64.ln()) / 3.0;
/// assert!((loss.item().unwrap() - expected).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn binary_cross_entropy<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    weight: Option<View<'_, T>>,
    options: &BinaryCrossEntropyOptions,
) -> Result<Tensor<T>> {
    run(&input, &target, weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`binary_cross_entropy`](fn@binary_cross_entropy) and its gradients with respect to
/// `input` and `target`.
///
/// As in the reference, the input gradient is `w (x - y) / max(x (1 - x), 1e-12)` (with the
/// single-precision constant `1e-12`), not the derivative of the clamped value: it is about
/// `-1e12` at `x = 0, y = 1`. The target gradient is `w log((1 - x) / x)` without clamping:
/// `+inf` at `x = 0`, `-inf` at `x = 1`.
///
/// # Errors
/// Those of [`binary_cross_entropy`](fn@binary_cross_entropy). The range of `input` and
/// `target` is checked in the same pass as the loss, so on that error the gradient buffers
/// given to [`Backward`] may already hold values.
///
/// # Example
/// ```
/// use losskit::{binary_cross_entropy_grad, Backward, View, BinaryCrossEntropyOptions, Reduction};
/// let x = [0.8f64, 0.5];
/// let y = [1.0f64, 0.25];
/// let opts = BinaryCrossEntropyOptions { reduction: Reduction::Sum };
/// let (_, g) = binary_cross_entropy_grad(View::from(&x[..]), View::from(&y[..]), None, &opts, Backward::new())?;
/// let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(u, v)| (u - v).abs() < 1e-14);
/// // (x - y) / (x (1 - x)): -0.2 / 0.16 and 0.25 / 0.25
/// assert!(close(g.get("input").unwrap().data(), &[-1.25, 1.0]));
/// // log((1 - x) / x): log(0.25) and log(1)
/// assert!(close(g.get("target").unwrap().data(), &[0.25f64.ln(), 0.0]));
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn binary_cross_entropy_grad<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    weight: Option<View<'_, T>>,
    options: &BinaryCrossEntropyOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&input, &target, weight.as_ref(), options, Some(backward))
}

/// Fails unless every element lies in `[0, 1]` (NaN fails too).
fn check_unit_interval<T: Float>(name: &str, v: &View<'_, T>) -> Result<()> {
    match crate::kernels::scan::first_outside(v.data(), T::zero(), T::one()) {
        None => Ok(()),
        Some(i) => Err(LossError::value(
            name,
            format!("every element must lie in [0, 1]; found {} at flat position {i}", v.data()[i]),
        )),
    }
}

fn run<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    weight: Option<&View<'_, T>>,
    options: &BinaryCrossEntropyOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let frame = TorchElementwise::new(input, target, weight, options.reduction)?;
    let (x, y) = (input.data(), target.data());
    let one = T::one();
    let floor = T::of(-100.0);
    let eps = T::of(f64::from(EPSILON));
    // both in [0, 1] (NaN is outside), tested in the loss' own pass; the scans only name the
    // first element outside
    frame.run_in_domain(
        x,
        y,
        None,
        #[inline(always)]
        move |x, y| (x >= T::zero()) & (x <= one) & (y >= T::zero()) & (y <= one),
        || {
            check_unit_interval("input", input)?;
            check_unit_interval("target", target)
        },
        // no first stage: the two logarithms are independent chains
        |_| T::zero(),
        // x is in [0, 1]: its logs are never NaN, nor is x (1 - x), so floors without NaN
        // tests; elements outside the domain make an error, whatever their values
        #[inline(always)]
        move |x, y, _, _| {
            let (log_x, log_1mx) = x.vln_both_unit();
            (y - one) * floor_at(log_1mx, floor) - y * floor_at(log_x, floor)
        },
        #[inline(always)]
        move |x, y, _, _| {
            let (log_x, log_1mx) = x.vln_both_unit();
            let value = (y - one) * floor_at(log_1mx, floor) - y * floor_at(log_x, floor);
            // the target's gradient -logit(x) = log(1 - x) - log(x), from the unclamped logs
            // (the reference's log(x / (1 - x)) has the same absolute rounding error; at 0 and
            // 1 both give the same infinities)
            (value, (x - y) / floor_at((one - x) * x, eps), log_1mx - log_x)
        },
        backward,
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = BinaryCrossEntropyOptions { reduction: opts.reduction()? };
    run(&args.float("input")?, &args.float("target")?, args.opt_float("weight")?.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> BinaryCrossEntropyOptions {
        BinaryCrossEntropyOptions { reduction: Reduction::None }
    }

    #[test]
    fn clamped_logs_at_the_extremes() {
        // torch: F.binary_cross_entropy(x, y, reduction='none') = [100, 100, 0, -0]
        let x = [0.0f64, 1.0, 0.0, 1.0];
        let y = [1.0f64, 0.0, 0.0, 1.0];
        let l = binary_cross_entropy(View::from(&x[..]), View::from(&y[..]), None, &none()).unwrap();
        assert_eq!(l.data(), &[100.0, 100.0, 0.0, 0.0]);
        let (_, g) =
            binary_cross_entropy_grad(View::from(&x[..]), View::from(&y[..]), None, &none(), Backward::new()).unwrap();
        // torch (float64): -1.00000000399580286e+12 = -1 / f64(1e-12f32)
        let big = 1.0 / f64::from(1e-12f32);
        assert_eq!(g.get("input").unwrap().data(), &[-big, big, 0.0, 0.0]);
        let gy = g.get("target").unwrap().data();
        assert_eq!(gy, &[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY]);
        // float32: the constant is 1e-12f32 itself
        let x32 = [0.0f32];
        let y32 = [1.0f32];
        let (_, g) =
            binary_cross_entropy_grad(View::from(&x32[..]), View::from(&y32[..]), None, &none(), Backward::new())
                .unwrap();
        assert_eq!(g.get("input").unwrap().data(), &[-1.0 / 1e-12f32]);
    }

    #[test]
    fn tiny_probabilities_use_log1p() {
        // torch: 1.00000000005e-10 (log1p), not log(1 - x)
        let x = [1e-10f64];
        let y = [0.0f64];
        let l = binary_cross_entropy(View::from(&x[..]), View::from(&y[..]), None, &none()).unwrap();
        assert_eq!(l.data(), &[1.00000000005e-10]);
    }

    #[test]
    fn weight_broadcasts_and_mean_divides_by_count() {
        let x = [0.5f64, 0.5, 0.5, 0.5];
        let y = [1.0f64, 1.0, 1.0, 1.0];
        let w = [1.0f64, 3.0];
        let xv = View::new(&x, &[2, 2]).unwrap();
        let yv = View::new(&y, &[2, 2]).unwrap();
        let wv = View::vector(&w);
        let l = binary_cross_entropy(xv.clone(), yv.clone(), Some(wv.clone()), &BinaryCrossEntropyOptions::default())
            .unwrap();
        // ln 2 * (1 + 3 + 1 + 3) / 4
        assert!((l.item().unwrap() - 2.0 * std::f64::consts::LN_2).abs() < 1e-15);
        let (_, g) =
            binary_cross_entropy_grad(xv, yv, Some(wv), &BinaryCrossEntropyOptions::default(), Backward::new())
                .unwrap();
        // w (x - y) / (x (1 - x)) / 4 = -2 w / 4
        assert_eq!(g.get("input").unwrap().data(), &[-0.5, -1.5, -0.5, -1.5]);
        assert!(g.get("weight").is_none());
    }

    #[test]
    fn errors() {
        let x = [0.5f64, 1.5];
        let y = [0.0f64, 1.0];
        let bad = binary_cross_entropy(View::from(&x[..]), View::from(&y[..]), None, &none());
        assert!(matches!(bad, Err(LossError::InvalidValue { ref arg, .. }) if arg == "input"));
        let x = [0.5f64, f64::NAN];
        let bad = binary_cross_entropy(View::from(&x[..]), View::from(&y[..]), None, &none());
        assert!(matches!(bad, Err(LossError::InvalidValue { ref arg, .. }) if arg == "input"));
        let x = [0.5f64, 0.5];
        let y = [0.0f64, -0.5];
        let bad = binary_cross_entropy(View::from(&x[..]), View::from(&y[..]), None, &none());
        assert!(matches!(bad, Err(LossError::InvalidValue { ref arg, .. }) if arg == "target"));
        let y = [0.0f64, 1.0, 1.0];
        let bad = binary_cross_entropy(View::from(&x[..]), View::from(&y[..]), None, &none());
        assert!(matches!(bad, Err(LossError::Shape { ref arg, .. }) if arg == "target"));
        let y = [0.0f64, 1.0];
        let w = [1.0f64, 2.0, 3.0];
        let bad = binary_cross_entropy(View::from(&x[..]), View::from(&y[..]), Some(View::from(&w[..])), &none());
        assert!(matches!(bad, Err(LossError::Shape { ref arg, .. }) if arg == "weight"));
        let opts = BinaryCrossEntropyOptions { reduction: Reduction::BatchMean };
        let bad = binary_cross_entropy(View::from(&x[..]), View::from(&y[..]), None, &opts);
        assert!(matches!(bad, Err(LossError::InvalidOption { .. })));
    }

    /// Every backward path tests the domain (the general tiles and the fast path of a reduced
    /// loss, with both gradients or the input's only): an element outside `[0, 1]` anywhere,
    /// in the first tile or a later chunk, is an error naming its argument.
    fn gradient_paths_check_the_domain<T: Float>() {
        use crate::GradsMut;
        let n = 70_001;
        for (at, bad) in [(3, T::of(1.5)), (n - 2, T::nan()), (40_000, T::of(-1e-30))] {
            for (arg, on_input) in [("input", true), ("target", false)] {
                let mut x: Vec<T> = (0..n).map(|i| T::of(((i * 53) % 101) as f64 / 100.0)).collect();
                let mut y: Vec<T> = (0..n).map(|i| T::of(((i * 37) % 101) as f64 / 100.0)).collect();
                if on_input {
                    x[at] = bad;
                } else {
                    y[at] = bad;
                }
                for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                    let opts = BinaryCrossEntropyOptions { reduction };
                    let both =
                        binary_cross_entropy_grad(View::from(&x[..]), View::from(&y[..]), None, &opts, Backward::new());
                    assert!(matches!(both, Err(LossError::InvalidValue { arg: ref a, .. }) if a == arg), "{arg} {at}");
                    let mut gx = vec![T::zero(); n];
                    let into = Backward::new().into_buffers(GradsMut::new().with("input", &mut gx));
                    let one = binary_cross_entropy_grad(View::from(&x[..]), View::from(&y[..]), None, &opts, into);
                    assert!(matches!(one, Err(LossError::InvalidValue { arg: ref a, .. }) if a == arg), "{arg} {at}");
                }
            }
        }
    }

    #[test]
    fn gradient_paths_check_the_domain_f32_f64() {
        gradient_paths_check_the_domain::<f32>();
        gradient_paths_check_the_domain::<f64>();
    }

    #[test]
    fn zero_d_and_empty() {
        let x = View::from_vec(vec![0.3f64], &[]).unwrap();
        let y = View::from_vec(vec![1.0f64], &[]).unwrap();
        let l = binary_cross_entropy(x, y, None, &none()).unwrap();
        assert_eq!(l.shape(), &[] as &[usize]);
        assert!((l.data()[0] + 0.3f64.ln()).abs() < 1e-15);
        let e: [f64; 0] = [];
        let l =
            binary_cross_entropy(View::from(&e[..]), View::from(&e[..]), None, &BinaryCrossEntropyOptions::default())
                .unwrap();
        assert!(l.item().unwrap().is_nan());
    }
}
