//! `log_softmax`: log-softmax along one dimension (PyTorch `log_softmax`).

use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec, OptDefault, OptKind, OptionSpec};
use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{overwritten_slots, start_optional, Backward, Grads};
use crate::kernels::alloc::for_overwrite;
use crate::kernels::axis::{log_softmax_rows, log_softmax_rows_into, AxisLayout};
use crate::kernels::rows::{rows_per_group, Workspace};
use crate::kernels::sum::par_row_groups;
use crate::reduction::Cot;
use crate::tensor::{resolve_axis, Tensor, View};

macro_rules! formula {
    () => {
        r"\log\operatorname{softmax}(x)_i = x_i - m - \log\sum_j e^{x_j - m},\ m = \max_j x_j;\qquad \bar x_i = g_i - \operatorname{softmax}(x)_i \sum_j g_j"
    };
}

const DIM: OptionSpec = OptionSpec {
    required: true,
    ..opt(
        "dim",
        OptKind::Int,
        OptDefault::None,
        "the dimension to normalise along; negative values count from the end. PyTorch's dim=None (a deprecated \
implicit choice) is not part of the contract",
    )
};

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "log_softmax",
    family: Family::Classification,
    summary: "Log-softmax along one dimension, computed stably; a building block rather than a loss.",
    formula: formula!(),
    reference: "torch.nn.functional.log_softmax",
    reference_call: "F.log_softmax(input, dim=dim)",
    reduction_default: "none",
    none_shape: "same as input",
    conventions: "dim must be given (negative values count from the end; a 0-d input takes dim 0 or -1 and gives 0). \
Each slice along dim is shifted by its maximum before exponentiating, so huge logits are exact: [1000, 0, -1000] \
gives [0, -1000, -2000]. A -inf entry gives -inf (and passes its upstream gradient through unchanged); a slice that \
is entirely -inf, or holds +inf or NaN, gives NaN. The gradient of sum(g * out) is g - softmax * sum(g) along dim.",
    errata: "The post's logsoftmax normalises over the whole array, so every sample of a batch shares one \
denominator, and it exponentiates without subtracting the maximum, so it overflows to NaN above about 88.7 (float32) \
or 709.8 (float64) and underflows to -inf for very negative logits. The reference normalises each slice along dim \
and shifts by the slice's maximum.",
    args: &[arg("input", "(*)", F, true, false, "finite or -inf")],
    options: &[DIM],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`log_softmax`](fn@log_softmax).
///
/// There is no `Default`: the dimension must be chosen (PyTorch's implicit choice for
/// `dim=None` is deprecated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSoftmaxOptions {
    /// The dimension to normalise along; negative values count from the end.
    pub dim: i64,
}

impl LogSoftmaxOptions {
    /// Log-softmax along `dim`.
    pub fn new(dim: i64) -> Self {
        LogSoftmaxOptions { dim }
    }
}

/// Log-softmax along `dim`.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.log_softmax(input, dim=dim)`.
///
/// # Conventions
/// - The output has the input's shape; each slice along `dim` is normalised on its own.
/// - Stable for any finite logits (the slice's maximum is subtracted first). A `-inf` logit
///   gives `-inf`; a slice that is all `-inf`, or holds `+inf` or NaN, gives NaN.
/// - A 0-d input takes `dim` 0 or -1 and gives 0.
///
/// # Errors
/// [`LossError::InvalidOption`] when `dim` is out of range for the input's rank.
///
/// # Example
/// ```
/// use losskit::{log_softmax, LogSoftmaxOptions, View};
/// // the maximum is subtracted first: exp(-1000) vanishes next to exp(0), so the result is
/// // exact (torch: F.log_softmax(torch.tensor([1000., 0., -1000.]), dim=0))
/// let x = [1000.0f64, 0.0, -1000.0];
/// let out = log_softmax(View::from(&x[..]), &LogSoftmaxOptions::new(0))?;
/// assert_eq!(out.data(), &[0.0, -1000.0, -2000.0]);
/// // two equal logits: log(1/2) each, along the last dimension of a (1, 2) input
/// let out = log_softmax(View::new(&[3.0f64, 3.0], &[1, 2])?, &LogSoftmaxOptions::new(-1))?;
/// assert_eq!(out.data(), &[-std::f64::consts::LN_2, -std::f64::consts::LN_2]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn log_softmax<T: Float>(input: View<'_, T>, options: &LogSoftmaxOptions) -> Result<Tensor<T>> {
    run(&input, options, None).map(|(l, _)| l)
}

/// [`log_softmax`](fn@log_softmax) and its gradient with respect to `input`: the
/// vector-Jacobian product `g - softmax(input) * sum(g)` along `dim`, `g` the upstream
/// gradient (all ones by default).
///
/// # Example
/// ```
/// use losskit::{log_softmax_grad, Backward, LogSoftmaxOptions, View};
/// let x = [0.0f64, 0.0];
/// let (_, grads) = log_softmax_grad(View::from(&x[..]), &LogSoftmaxOptions::new(0), Backward::new())?;
/// // softmax = [1/2, 1/2] and sum(g) = 2: 1 - 1/2 * 2 = 0 (the sum of a log-softmax slice
/// // only depends on the logits through the normaliser, so its gradient is 1 - C * softmax)
/// assert_eq!(grads.get("input").unwrap().data(), &[0.0, 0.0]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn log_softmax_grad<T: Float>(
    input: View<'_, T>,
    options: &LogSoftmaxOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&input, options, Some(backward))
}

fn run<T: Float>(
    input: &View<'_, T>,
    options: &LogSoftmaxOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let shape = input.shape();
    // a 0-d input is one slice of one element (PyTorch accepts dim 0 and -1 there)
    let rows_shape: &[usize] = if shape.is_empty() { &[1] } else { shape };
    if shape.is_empty() && !(-1..=0).contains(&options.dim) {
        return Err(LossError::option(
            "dim",
            format!("{} is out of range for a 0-d input (valid: 0 or -1)", options.dim),
        ));
    }
    let axis = resolve_axis("dim", options.dim, rows_shape.len())?;
    let layout = AxisLayout::new(rows_shape, axis);
    if layout.inner == 1 && layout.len > 0 {
        return contiguous(input, layout.rows(), layout.len, backward);
    }
    let x = input.data();
    let mut out = vec![T::zero(); x.len()];
    let Some(bw) = backward else {
        log_softmax_rows(&layout, x, None, |r, logp, _| layout.scatter(logp, r, &mut out));
        return Ok((Tensor::from_parts(out, shape.to_vec()), Grads::default()));
    };
    let (upstream, mut sink) = bw.start();
    let cot = Cot::from_upstream(&upstream, shape)?;
    let [gx] = sink.slots([("input", shape, true)])?;
    log_softmax_rows(&layout, x, gx, |r, logp, g| {
        layout.scatter(logp, r, &mut out);
        if let Some(g) = g {
            for (c, gc) in g.iter_mut().enumerate() {
                *gc = cot.at(layout.at(r, c));
            }
        }
    });
    Ok((Tensor::from_parts(out, shape.to_vec()), sink.finish()))
}

/// [`run`] over contiguous rows (`dim` the last dimension, or followed by size-1 ones): groups
/// of rows in one pass each ([`log_softmax_rows_into`]), over threads in fixed chunks.
fn contiguous<T: Float>(
    input: &View<'_, T>,
    rows: usize,
    classes: usize,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let shape = input.shape();
    let x = input.data();
    // every element is written by the row kernel
    let mut out = for_overwrite::<T>(x.len());
    let mut unused = vec![T::zero(); rows];
    let (upstream, mut sink) = start_optional(backward);
    let cot = upstream.as_ref().map(|up| Cot::from_upstream(up, shape)).transpose()?;
    let [gx] = overwritten_slots(&mut sink, [("input", shape, true)])?;
    par_row_groups(
        rows,
        classes,
        rows_per_group(classes),
        &mut unused,
        (Some(&mut out[..]), gx),
        #[inline(always)]
        |r0, vals: &mut [T], (out, gx), work: &mut Workspace<T>| {
            let span = r0 * classes..(r0 + vals.len()) * classes;
            let vjp = match (cot, gx) {
                (Some(cot), Some(g)) => {
                    let (each, scale) = cot.parts();
                    Some((each.map(|u| &u[span.clone()]), scale, g))
                }
                _ => None,
            };
            if let Some(out) = out {
                log_softmax_rows_into(&x[span], classes, out, vjp, work);
            }
        },
    );
    Ok((Tensor::from_parts(out, shape.to_vec()), sink.map(|s| s.finish()).unwrap_or_default()))
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let dim = opts.int("dim").ok_or_else(|| {
        LossError::option("dim", "is required by `log_softmax` (e.g. dim=1 or dim=-1); None is not accepted")
    })?;
    run(&args.float("input")?, &LogSoftmaxOptions::new(dim), backward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::eval::{evaluate, ArrayArg};
    use crate::grad::Upstream;

    #[test]
    fn rows_along_a_middle_dim_are_normalised() {
        // (2, 3, 2) along dim 1: every (i, :, k) slice sums to 1 in probability
        let x: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin() * 5.0).collect();
        let out = log_softmax(View::new(&x, &[2, 3, 2]).unwrap(), &LogSoftmaxOptions::new(-2)).unwrap();
        for i in 0..2 {
            for k in 0..2 {
                let s: f64 = (0..3).map(|c| out.data()[i * 6 + c * 2 + k].exp()).sum();
                assert!((s - 1.0).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn gradient_with_array_upstream() {
        let x = [0.5f64, -1.0, 2.0, 0.0, 0.0, 1.0];
        let up = [1.0f64, 2.0, 3.0, -1.0, 0.5, 0.25];
        let upv = View::new(&up, &[2, 3]).unwrap();
        let (out, g) = log_softmax_grad(
            View::new(&x, &[2, 3]).unwrap(),
            &LogSoftmaxOptions::new(1),
            Backward::new().upstream(Upstream::Array(upv)),
        )
        .unwrap();
        let g = g.get("input").unwrap().data();
        for r in 0..2 {
            let s: f64 = up[r * 3..r * 3 + 3].iter().sum();
            for c in 0..3 {
                let want = up[r * 3 + c] - out.data()[r * 3 + c].exp() * s;
                assert!((g[r * 3 + c] - want).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn zero_d_and_empty_inputs() {
        let x = View::from_vec(vec![3.0f32], &[]).unwrap();
        let (out, g) = log_softmax_grad(x.borrow(), &LogSoftmaxOptions::new(-1), Backward::new()).unwrap();
        assert_eq!((out.shape(), out.data()), (&[][..], &[0.0f32][..]));
        assert_eq!(g.get("input").unwrap().data(), &[0.0]);
        assert!(log_softmax(x, &LogSoftmaxOptions::new(1)).is_err());
        let e = View::from_vec(Vec::<f64>::new(), &[0, 3]).unwrap();
        assert_eq!(log_softmax(e, &LogSoftmaxOptions::new(1)).unwrap().shape(), &[0, 3]);
    }

    #[test]
    fn dim_errors() {
        let x = [1.0f64, 2.0];
        let e = log_softmax(View::new(&x, &[1, 2]).unwrap(), &LogSoftmaxOptions::new(2)).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "dim"));
        let args = vec![("input".to_string(), ArrayArg::F64(Tensor::new(x.to_vec(), vec![2]).unwrap()))];
        let e = evaluate("log_softmax", &args, &[], false).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "dim"));
        let e = evaluate("log_softmax", &args, &[("dim".into(), "None".into())], false).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "dim"));
        assert!(evaluate("log_softmax", &args, &[("dim".into(), "-1".into())], true).is_ok());
    }
}
