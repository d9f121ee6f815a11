//! `binary_cross_entropy_with_logits`: sigmoid and binary cross-entropy in one stable step
//! (PyTorch `binary_cross_entropy_with_logits`).

use super::TorchElementwise;
use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, torch_reduction};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::kernels::broadcast::expand;
use crate::kernels::stable::{exp_neg_abs, log_sigmoid_and_sigmoid_with, log_sigmoid_with};
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_i = -\,w_i\big[p_i\,y_i \log\sigma(x_i) + (1 - y_i)\log\sigma(-x_i)\big] = w_i\big[(1 - y_i)\,x_i - (1 + (p_i - 1)\,y_i)\log\sigma(x_i)\big],\qquad \frac{\partial \ell_i}{\partial x_i} = w_i\big[(p_i y_i + 1 - y_i)\,\sigma(x_i) - p_i y_i\big],\qquad \frac{\partial \ell_i}{\partial y_i} = w_i\big[\log\sigma(-x_i) - p_i \log\sigma(x_i)\big]"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "binary_cross_entropy_with_logits",
    family: Family::Classification,
    summary:
        "Binary cross-entropy on logits, computed stably in one step, with element weights and positive-class weights.",
    formula: formula!(),
    reference: "torch.nn.functional.binary_cross_entropy_with_logits",
    reference_call:
        "F.binary_cross_entropy_with_logits(input, target, weight=weight, reduction=reduction, pos_weight=pos_weight)",
    reduction_default: "mean",
    none_shape: "the shape of input",
    conventions: "Evaluated as (1 - y) x - (1 + (p - 1) y) log σ(x) with a stable log-sigmoid: no clamping, so a \
confident mistake costs about |x| (logits of ±1e4 are exact). pos_weight p scales only the positive term and \
broadcasts to input's shape from the right (typically one value per class of the last axis); weight also broadcasts \
to input's shape. Neither weight gets a gradient; input and target do (soft targets allowed, values not checked). \
target must have input's shape. 'mean' divides by the element count whatever the weights.",
    errata: "The post's bcelogits is a softmax (categorical) cross-entropy with per-class weights averaged over the \
columns, not a binary one: the reference applies a sigmoid to each logit independently and averages -w[p y log σ(x) \
+ (1 - y) log σ(-x)] over all elements.",
    args: &[
        arg("input", "(*)", F, true, false, "finite logits"),
        arg("target", "(*), the shape of input", F, true, false, "in [0, 1] (soft labels allowed; not checked)"),
        arg("weight", "broadcastable to input's shape", F, false, true, "finite"),
        arg("pos_weight", "broadcastable to input's shape, usually (C,)", F, false, true, "finite, typically > 0"),
    ],
    options: &[torch_reduction("mean")],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`binary_cross_entropy_with_logits`](fn@binary_cross_entropy_with_logits).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BinaryCrossEntropyWithLogitsOptions {
    /// `none`, `mean` (default) or `sum`.
    pub reduction: Reduction,
}

impl Default for BinaryCrossEntropyWithLogitsOptions {
    fn default() -> Self {
        BinaryCrossEntropyWithLogitsOptions { reduction: Reduction::Mean }
    }
}

/// Binary cross-entropy between `sigmoid(input)` and `target`, evaluated stably on the logits,
/// with optional element weights `weight` and positive-class weights `pos_weight`.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.binary_cross_entropy_with_logits(input, target, weight=weight,
/// reduction=reduction, pos_weight=pos_weight)`.
///
/// # Conventions
/// - `input` and `target` have the same shape; reduction `none` returns that shape.
/// - `weight` and `pos_weight` broadcast to `input`'s shape (NumPy rules, aligned from the
///   right: a `pos_weight` of shape `(C,)` weighs the classes of the last axis) and have no
///   gradient.
/// - `mean` divides by the element count, not by a sum of weights.
/// - No clamping: a logit of `-1e4` with target 1 costs exactly `1e4`.
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) when `target` does not have `input`'s shape
/// or `weight` / `pos_weight` does not broadcast to it;
/// [`LossError::InvalidOption`](crate::LossError::InvalidOption) for a reduction other than
/// `none`, `mean`, `sum`.
///
/// # Example
/// ```
/// use losskit::{binary_cross_entropy_with_logits, View, BinaryCrossEntropyWithLogitsOptions, Reduction};
/// let x = [2.0f64, -1.0, 0.0];
/// let y = [1.0f64, 0.0, 0.5];
/// // softplus(-2) + softplus(-1) + ln 2 (torch: reduction='sum' gives 1.13333687912114067)
/// let opts = BinaryCrossEntropyWithLogitsOptions { reduction: Reduction::Sum };
/// let loss = binary_cross_entropy_with_logits(View::from(&x[..]), View::from(&y[..]), None, None, &opts)?;
/// let sp = |z: f64| z.exp().ln_1p();
/// assert!((loss.item().unwrap() - (sp(-2.0) + sp(-1.0) + 2f64.ln())).abs() < 1e-15);
/// // logits of ±1e4 on the wrong side cost exactly 1e4
/// let x = [-1e4f32, 1e4];
/// let y = [1.0f32, 0.0];
/// let opts = BinaryCrossEntropyWithLogitsOptions { reduction: Reduction::None };
/// let loss = binary_cross_entropy_with_logits(View::from(&x[..]), View::from(&y[..]), None, None, &opts)?;
/// assert_eq!(loss.data(), &[1e4, 1e4]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn binary_cross_entropy_with_logits<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    weight: Option<View<'_, T>>,
    pos_weight: Option<View<'_, T>>,
    options: &BinaryCrossEntropyWithLogitsOptions,
) -> Result<Tensor<T>> {
    run(&input, &target, weight.as_ref(), pos_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`binary_cross_entropy_with_logits`](fn@binary_cross_entropy_with_logits) and its
/// gradients with respect to `input` and `target`.
///
/// # Example
/// ```
/// use losskit::{binary_cross_entropy_with_logits_grad, Backward, View, BinaryCrossEntropyWithLogitsOptions, Reduction};
/// let x = [2.0f64, -1.0, 0.0];
/// let y = [1.0f64, 0.0, 0.5];
/// let opts = BinaryCrossEntropyWithLogitsOptions { reduction: Reduction::Sum };
/// let (_, g) = binary_cross_entropy_with_logits_grad(View::from(&x[..]), View::from(&y[..]), None, None, &opts, Backward::new())?;
/// // sigmoid(x) - y
/// let s = |z: f64| 1.0 / (1.0 + (-z).exp());
/// let gx = g.get("input").unwrap().data();
/// assert!((gx[0] - (s(2.0) - 1.0)).abs() < 1e-15 && (gx[1] - s(-1.0)).abs() < 1e-15 && gx[2] == 0.0);
/// // -x without pos_weight
/// assert_eq!(g.get("target").unwrap().data(), &[-2.0, 1.0, 0.0]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn binary_cross_entropy_with_logits_grad<T: Float>(
    input: View<'_, T>,
    target: View<'_, T>,
    weight: Option<View<'_, T>>,
    pos_weight: Option<View<'_, T>>,
    options: &BinaryCrossEntropyWithLogitsOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&input, &target, weight.as_ref(), pos_weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    weight: Option<&View<'_, T>>,
    pos_weight: Option<&View<'_, T>>,
    options: &BinaryCrossEntropyWithLogitsOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let frame = TorchElementwise::new(input, target, weight, options.reduction)?;
    let pw = pos_weight.map(|p| expand("pos_weight", p.data(), p.shape(), input.shape())).transpose()?;
    let (x, y) = (input.data(), target.data());
    let one = T::one();
    match pw.as_deref() {
        None => frame.run(
            x,
            y,
            None,
            exp_neg_abs,
            #[inline(always)]
            move |x, y, _, e| (one - y) * x - log_sigmoid_with(x, e),
            #[inline(always)]
            move |x, y, _, e| {
                let (ls, sig) = log_sigmoid_and_sigmoid_with(x, e);
                ((one - y) * x - ls, sig - y, -x)
            },
            backward,
        ),
        Some(pw) => frame.run(
            x,
            y,
            Some(pw),
            exp_neg_abs,
            #[inline(always)]
            move |x, y, pw, e| (one - y) * x - ((pw - one) * y + one) * log_sigmoid_with(x, e),
            #[inline(always)]
            move |x, y, pw, e| {
                let py = pw * y;
                let (ls, sig) = log_sigmoid_and_sigmoid_with(x, e);
                // log(sigmoid(-x)) = log(sigmoid(x)) - x
                let lsm = ls - x;
                ((one - y) * x - ((pw - one) * y + one) * ls, (py + one - y) * sig - py, lsm - pw * ls)
            },
            backward,
        ),
    }
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = BinaryCrossEntropyWithLogitsOptions { reduction: opts.reduction()? };
    run(
        &args.float("input")?,
        &args.float("target")?,
        args.opt_float("weight")?.as_ref(),
        args.opt_float("pos_weight")?.as_ref(),
        &options,
        backward,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LossError;

    fn none() -> BinaryCrossEntropyWithLogitsOptions {
        BinaryCrossEntropyWithLogitsOptions { reduction: Reduction::None }
    }

    /// The frame's first stage (`exp(-|x|)` for a tile, then the rest) gives the bits of the
    /// one-element functions, on tiles that end inside a block and in several chunks.
    fn staged_matches_the_element_functions<T: Float>() {
        use crate::kernels::stable::{log_sigmoid, log_sigmoid_and_sigmoid};
        for n in [3 * 256 + 37, 300_001] {
            let x: Vec<T> = (0..n).map(|i| T::of(((i * 53) % 97) as f64 / 3.0 - 16.0)).collect();
            let y: Vec<T> = (0..n).map(|i| T::of(((i * 37) % 101) as f64 / 100.0)).collect();
            let opts = BinaryCrossEntropyWithLogitsOptions { reduction: Reduction::None };
            let (xv, yv) = (View::new(&x, &[n]).unwrap(), View::new(&y, &[n]).unwrap());
            let l = binary_cross_entropy_with_logits(xv.borrow(), yv.borrow(), None, None, &opts).unwrap();
            let (lg, g) = binary_cross_entropy_with_logits_grad(xv, yv, None, None, &opts, Backward::new()).unwrap();
            let (gx, gy) = (g.get("input").unwrap().data(), g.get("target").unwrap().data());
            for i in 0..n {
                let (ls, sig) = log_sigmoid_and_sigmoid(x[i]);
                let v = (T::one() - y[i]) * x[i] - ls;
                assert_eq!(log_sigmoid(x[i]), ls);
                assert_eq!((l.data()[i], lg.data()[i], gx[i], gy[i]), (v, v, sig - y[i], -x[i]), "n={n} i={i}");
            }
        }
    }

    #[test]
    fn staged_matches_the_element_functions_f32_f64() {
        staged_matches_the_element_functions::<f32>();
        staged_matches_the_element_functions::<f64>();
    }

    #[test]
    fn extreme_logits_are_exact() {
        // torch (float64 and float32): loss [0, 1e4, 1e4, 0], input grad [0, -1, 1, 0]
        let x = [1e4f64, -1e4, 1e4, -1e4];
        let y = [1.0f64, 1.0, 0.0, 0.0];
        let (l, g) = binary_cross_entropy_with_logits_grad(
            View::from(&x[..]),
            View::from(&y[..]),
            None,
            None,
            &none(),
            Backward::new(),
        )
        .unwrap();
        assert_eq!(l.data(), &[0.0, 1e4, 1e4, 0.0]);
        assert_eq!(g.get("input").unwrap().data(), &[0.0, -1.0, 1.0, 0.0]);
        assert_eq!(g.get("target").unwrap().data(), &[-1e4, 1e4, -1e4, 1e4]);
        // with pos_weight 3: torch loss [0, 3e4, 1e4, 0], target grad [-1e4, 3e4, -1e4, 3e4]
        let p = [3.0f64];
        let (l, g) = binary_cross_entropy_with_logits_grad(
            View::from(&x[..]),
            View::from(&y[..]),
            None,
            Some(View::from(&p[..])),
            &none(),
            Backward::new(),
        )
        .unwrap();
        assert_eq!(l.data(), &[0.0, 3e4, 1e4, 0.0]);
        assert_eq!(g.get("input").unwrap().data(), &[0.0, -3.0, 1.0, 0.0]);
        assert_eq!(g.get("target").unwrap().data(), &[-1e4, 3e4, -1e4, 3e4]);
    }

    #[test]
    fn pos_weight_matches_reference() {
        // torch: F.binary_cross_entropy_with_logits(x, y, reduction='none', pos_weight=tensor([2.]))
        let x = [2.0f64, -1.0, 0.0];
        let y = [1.0f64, 0.0, 0.5];
        let p = [2.0f64];
        let l = binary_cross_entropy_with_logits(
            View::from(&x[..]),
            View::from(&y[..]),
            None,
            Some(View::from(&p[..])),
            &none(),
        )
        .unwrap();
        let want = [0.253_856_022_085_945, 0.313_261_687_518_222_8, 1.039_720_770_839_917_9];
        for (a, b) in l.data().iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
    }

    #[test]
    fn weights_broadcast_from_the_right() {
        let x = [0.0f64; 6];
        let y = [1.0f64; 6];
        let xv = View::new(&x, &[2, 3]).unwrap();
        let yv = View::new(&y, &[2, 3]).unwrap();
        let w = [1.0f64, 2.0];
        let wv = View::new(&w, &[2, 1]).unwrap();
        let p = [1.0f64, 2.0, 3.0];
        let l = binary_cross_entropy_with_logits(xv.clone(), yv.clone(), Some(wv), Some(View::vector(&p)), &none())
            .unwrap();
        let ln2 = std::f64::consts::LN_2;
        assert_eq!(l.data(), &[ln2, 2.0 * ln2, 3.0 * ln2, 2.0 * ln2, 4.0 * ln2, 6.0 * ln2]);
        let bad = binary_cross_entropy_with_logits(xv.clone(), yv.clone(), None, Some(View::vector(&w)), &none());
        assert!(matches!(bad, Err(LossError::Shape { ref arg, .. }) if arg == "pos_weight"));
        let bad = binary_cross_entropy_with_logits(xv, yv, Some(View::vector(&w)), None, &none());
        assert!(matches!(bad, Err(LossError::Shape { ref arg, .. }) if arg == "weight"));
        let bad = binary_cross_entropy_with_logits(View::vector(&x), View::vector(&y[..5]), None, None, &none());
        assert!(matches!(bad, Err(LossError::Shape { ref arg, .. }) if arg == "target"));
    }
}
