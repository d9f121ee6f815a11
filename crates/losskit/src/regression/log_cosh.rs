//! `log_cosh`: log-cosh of the prediction error, averaged over the last axis (Keras `LogCosh`).

use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, KERAS_REDUCTION, KERAS_SAMPLE_WEIGHT};
use crate::catalog::spec::{ArgKind::Float as F, Family, LossSpec};
use crate::error::Result;
use crate::float::Float;
use crate::grad::{Backward, Grads};
use crate::keras::{last_axis_loss, Combine, Staged};
use crate::kernels::stable;
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

macro_rules! formula {
    () => {
        r"\ell_n = \frac1D\sum_{d=1}^{D}\log\cosh(\hat y_{n,d}-y_{n,d}),\qquad \frac{\partial \ell_n}{\partial \hat y_{n,d}} = \frac{\tanh(\hat y_{n,d}-y_{n,d})}{D}"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "log_cosh",
    family: Family::Regression,
    summary: "Log-cosh of the error y_pred - y_true, averaged over the last axis into one value per sample, then \
reduced Keras-style.",
    formula: formula!(),
    reference: "keras.losses.LogCosh",
    reference_call: "keras.losses.LogCosh(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)",
    reduction_default: "sum_over_batch_size",
    none_shape: "y_pred.shape[:-1] (a 0-d value for 1-D inputs)",
    conventions: "log cosh is evaluated without overflow or cancellation (about e^2/2 for small errors, |e| - log 2 \
for large ones; an error of 1e4 gives 1e4 - log 2 and gradient tanh = 1). Small errors keep full relative accuracy \
(Keras' own e + softplus(-2e) - log 2 loses it: about 5e-7 relative in float64 when every error is near 1e-5). y_true and y_pred have the same shape up to \
a trailing axis of size 1 (Keras drops or adds it); the last axis is averaged, so a 1-D input is one sample and its \
0-d loss is returned unreduced. sample_weight multiplies the per-sample values before the reduction: \
sum_over_batch_size (= mean) divides by their count, mean_with_sample_weight by sum(sample_weight) (0 when that is 0). \
Only y_pred has a gradient.",
    errata: "The post's identity e + softplus(-2e) - log 2 is right, but its softplus log(exp(x) + 1) overflows, so \
large negative errors give inf; and it averages over all elements, which equals the default reduction only because \
every sample has the same length.",
    args: &[
        arg("y_true", "(N, ..., D)", F, false, false, "finite"),
        arg("y_pred", "(N, ..., D), the shape of y_true (up to a trailing 1)", F, true, false, "finite"),
        KERAS_SAMPLE_WEIGHT,
    ],
    options: &[KERAS_REDUCTION],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// Options of [`log_cosh`](fn@log_cosh).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogCoshOptions {
    /// `sum_over_batch_size` (default), `sum`, `mean`, `mean_with_sample_weight` or `none`.
    pub reduction: Reduction,
}

impl Default for LogCoshOptions {
    fn default() -> Self {
        LogCoshOptions { reduction: Reduction::SumOverBatchSize }
    }
}

/// Log-cosh error, averaged over the last axis per sample and reduced as Keras does.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `keras.losses.LogCosh(reduction=reduction)(y_true, y_pred, sample_weight=sample_weight)`.
///
/// # Conventions
/// - The per-sample loss has shape `y_pred.shape[:-1]`; a 1-D input is one sample, whose 0-d
///   loss is returned unreduced. `y_true` may have one trailing axis of size 1 more or fewer.
/// - Stable for any error: about `e^2/2` for small errors, `|e| - log 2` for large ones.
/// - `sample_weight` broadcasts against the per-sample loss (e.g. `(N,)` or `(N, 1)`).
///
/// # Errors
/// [`LossError::Shape`](crate::LossError::Shape) when `y_true` and `y_pred` differ in shape
/// (beyond a trailing axis of size 1), when they are 0-d, or when `sample_weight` does not
/// broadcast against the per-sample loss; [`LossError::InvalidOption`](crate::LossError::InvalidOption)
/// for a reduction Keras does not have.
///
/// # Example
/// ```
/// use losskit::{log_cosh, LogCoshOptions, View};
/// // keras.losses.LogCosh()([[0., 1.], [0., 0.]], [[1., 1.], [0., 0.]]) = 0.108
/// let y_true = [0.0f64, 1.0, 0.0, 0.0];
/// let y_pred = [1.0f64, 1.0, 0.0, 0.0];
/// let (t, p) = (View::new(&y_true, &[2, 2])?, View::new(&y_pred, &[2, 2])?);
/// let loss = log_cosh(t, p, None, &LogCoshOptions::default())?;
/// // per sample: [log(cosh 1) / 2, 0]; their mean: log(cosh 1) / 4
/// assert!((loss.item().unwrap() - 1f64.cosh().ln() / 4.0).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn log_cosh<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &LogCoshOptions,
) -> Result<Tensor<T>> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`log_cosh`](fn@log_cosh) and its gradient with respect to `y_pred`.
///
/// # Example
/// ```
/// use losskit::{log_cosh_grad, Backward, LogCoshOptions, View};
/// let (t, p) = ([0.0f64, 0.0], [1.0f64, -2.0]);
/// let (loss, grads) = log_cosh_grad(View::from(&t[..]), View::from(&p[..]), None, &LogCoshOptions::default(), Backward::new())?;
/// // one sample of two elements: d/dŷ = tanh(ŷ - y) / 2
/// let g = grads.get("y_pred").unwrap().data();
/// assert!((g[0] - 1f64.tanh() / 2.0).abs() < 1e-16 && (g[1] + 2f64.tanh() / 2.0).abs() < 1e-16);
/// # let _ = loss;
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn log_cosh_grad<T: Float>(
    y_true: View<'_, T>,
    y_pred: View<'_, T>,
    sample_weight: Option<View<'_, T>>,
    options: &LogCoshOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&y_true, &y_pred, sample_weight.as_ref(), options, Some(backward))
}

fn run<T: Float>(
    y_true: &View<'_, T>,
    y_pred: &View<'_, T>,
    sample_weight: Option<&View<'_, T>>,
    options: &LogCoshOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    last_axis_loss(
        y_true,
        y_pred,
        sample_weight,
        options.reduction,
        Combine::Mean,
        // the exponentials first (see `Staged`)
        Staged(
            #[inline(always)]
            |t: T, p: T| stable::log_cosh_exp(p - t),
            #[inline(always)]
            |t: T, p: T, exp: T| stable::log_cosh_tanh_with(p - t, exp),
        ),
        backward,
    )
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = LogCoshOptions { reduction: opts.reduction()? };
    let sample_weight = args.opt_float("sample_weight")?;
    run(&args.float("y_true")?, &args.float("y_pred")?, sample_weight.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_errors_are_finite_and_symmetric() {
        let t = [0.0f64, 0.0];
        let p = [1e4f64, -1e4];
        let opts = LogCoshOptions { reduction: Reduction::None };
        let (l, g) = log_cosh_grad(View::from(&t[..]), View::from(&p[..]), None, &opts, Backward::new()).unwrap();
        // Keras: 9999.30685281944, gradient [0.5, -0.5]
        assert_eq!(l.item(), Some(1e4 - std::f64::consts::LN_2));
        assert_eq!(g.get("y_pred").unwrap().data(), &[0.5, -0.5]);
        let (t32, p32) = ([0.0f32; 2], [1e4f32, -1e4]);
        let l = log_cosh(View::from(&t32[..]), View::from(&p32[..]), None, &opts).unwrap();
        assert_eq!(l.item(), Some(1e4f32 - std::f32::consts::LN_2));
    }

    /// The staged terms give the bits of the one-element function through the public
    /// functions: short rows, long rows, multi-threaded chunks.
    fn staged_terms_match_the_element_function<T: Float>() {
        let n = 3 * 256 + 37;
        // through the frame: rows of 5 (short rows) and one long row of 3e5 (several chunks)
        for (shape, m) in [([n / 5, 5], n / 5 * 5), ([1, 300_000], 300_000)] {
            let t: Vec<T> = (0..m).map(|i| T::of(((i * 37) % 101) as f64 / 7.0 - 7.0)).collect();
            let p: Vec<T> = (0..m).map(|i| T::of(((i * 53) % 97) as f64 / 9.0 - 5.0)).collect();
            let (tv, pv) = (View::new(&t, &shape).unwrap(), View::new(&p, &shape).unwrap());
            let opts = LogCoshOptions { reduction: Reduction::Sum };
            let (_, g) = log_cosh_grad(tv, pv, None, &opts, Backward::new()).unwrap();
            let scale = T::of(1.0 / shape[1] as f64);
            for (i, &gi) in g.get("y_pred").unwrap().data().iter().enumerate() {
                assert_eq!(gi, scale * stable::log_cosh_tanh(p[i] - t[i]).1, "element {i} of {shape:?}");
            }
        }
    }

    #[test]
    fn staged_terms_match_the_element_function_f32_f64() {
        staged_terms_match_the_element_function::<f32>();
        staged_terms_match_the_element_function::<f64>();
    }

    #[test]
    fn small_errors_keep_relative_accuracy_in_f32() {
        let t = [0.0f32; 3];
        let p = [1e-3f32, -2e-3, 5e-4];
        let l = log_cosh(View::from(&t[..]), View::from(&p[..]), None, &LogCoshOptions::default()).unwrap();
        let exact: f64 = p.iter().map(|&e| (e as f64).cosh().ln()).sum::<f64>() / 3.0;
        assert!((l.item().unwrap() as f64 / exact - 1.0).abs() < 1e-6);
    }

    #[test]
    fn default_reduction_and_weights() {
        let t = [0.0f64; 4];
        let p = [1.0f64, 1.0, 2.0, 2.0];
        let v = |r, w: Option<&[f64]>| {
            let (tv, pv) = (View::new(&t, &[2, 2]).unwrap(), View::new(&p, &[2, 2]).unwrap());
            log_cosh(tv, pv, w.map(View::vector), &LogCoshOptions { reduction: r }).unwrap().item().unwrap()
        };
        let (a, b) = (1f64.cosh().ln(), 2f64.cosh().ln());
        assert!((v(Reduction::SumOverBatchSize, None) - (a + b) / 2.0).abs() < 1e-15);
        assert!((v(Reduction::Mean, None) - (a + b) / 2.0).abs() < 1e-15);
        assert!((v(Reduction::Sum, Some(&[2.0, 1.0])) - (2.0 * a + b)).abs() < 1e-15);
        assert!((v(Reduction::MeanWithSampleWeight, Some(&[2.0, 1.0])) - (2.0 * a + b) / 3.0).abs() < 1e-15);
        assert_eq!(v(Reduction::MeanWithSampleWeight, Some(&[0.0, 0.0])), 0.0);
    }
}
