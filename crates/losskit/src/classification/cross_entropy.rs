//! `cross_entropy`: softmax cross-entropy with class indices or class probabilities (PyTorch
//! `cross_entropy`).

use super::targets::{class_weight, ClassRows, IndexTargets};
use crate::catalog::eval::{entry, Entry, FloatOrInt, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::{arg, opt, torch_reduction};
use crate::catalog::spec::{ArgKind, Family, LossSpec, OptDefault, OptKind};
use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{overwritten_slots, start_optional, Backward, Grads};
use crate::kernels::axis::log_softmax_rows;
use crate::kernels::rows::{rows_per_group, Workspace};
use crate::kernels::sum::{par_row_groups, sum_by, sum_map, sum_zip};
use crate::kernels::xent::{index_xent_rows, prob_xent_rows, Smoothing};
use crate::reduction::{reduce, reduce_cot, Reduction, TORCH_REDUCTIONS};
use crate::tensor::{fmt_shape, numel, Tensor, View};

macro_rules! formula {
    () => {
        r"p_n = \operatorname{softmax}_{\text{dim}=1}(x_n);\ \ \ell_n = (1-\varepsilon)\,w_{y_n}\big(-\log p_{n,y_n}\big) + \frac{\varepsilon}{C}\sum_{c=1}^{C} w_c\big(-\log p_{n,c}\big),\ \ \ell_n = 0 \text{ if } y_n = \text{ignore\_index};\ \ \text{mean} = \frac{\sum_{n} \ell_n}{\sum_{n:\,y_n\neq \text{ignore\_index}} w_{y_n}};\quad \text{probability targets: } \ell_n = -\sum_{c} w_c\,\tilde y_{n,c}\log p_{n,c},\ \tilde y = (1-\varepsilon)\,y + \varepsilon/C,\ \ \text{mean} = \frac{1}{N d_1\cdots d_K}\sum_n \ell_n"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "cross_entropy",
    family: Family::Classification,
    summary: "Softmax cross-entropy of logits (class dimension 1) against class indices or class probabilities, with \
class weights, ignore_index and label smoothing.",
    formula: formula!(),
    reference: "torch.nn.functional.cross_entropy",
    reference_call: "F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)",
    reduction_default: "mean",
    none_shape: "(N) or (N, d1, ..., dK); () for an unbatched (C) input",
    conventions: "The class dimension is 1 (not the last one): input (N, C, d1, ..., dK); an unbatched input is (C). \
Integer targets are class indices of shape (N, d1, ..., dK) (0-d for a (C) input), each in [0, C) or equal to \
ignore_index; float targets are class probabilities of the input's shape. Index targets: ignored positions give 0 \
under 'none', count for nothing in 'sum', and are left out of the 'mean' denominator, which is the total weight \
sum(weight[target]) of the other targets (their count without weights) - also for the label-smoothing term, which \
itself weighs class c by weight[c]; if every target is ignored, 'mean' is NaN with a zero gradient. Probability \
targets: 'mean' divides by N*d1*...*dK whatever the weights, ignore_index must be negative (it is unused), rows need \
not sum to 1, and the target gets a gradient too. label_smoothing above 1 is an error; 0 or less (and NaN) means no \
smoothing. Computed with one log-sum-exp per row, so logits of +-1e4 are exact; a -inf logit is fine unless it \
meets a nonzero target or smoothing weight (then the loss is inf, or NaN for 0 * inf).",
    errata: "",
    args: &[
        arg("input", "(C) or (N, C) or (N, C, d1, ..., dK)", ArgKind::Float, true, false, "finite logits (-inf allowed where it cannot meet a nonzero target)"),
        arg(
            "target",
            "indices: () or (N) or (N, d1, ..., dK); probabilities: the shape of input",
            ArgKind::FloatOrInt,
            true,
            false,
            "indices in [0, C) or == ignore_index; probabilities in [0, 1] (not checked); a gradient only for probabilities",
        ),
        arg("weight", "(C)", ArgKind::Float, false, true, "finite, one weight per class"),
    ],
    options: &[
        opt("ignore_index", OptKind::Int, OptDefault::Int(-100), "index targets equal to it are skipped; must be negative with probability targets"),
        torch_reduction("mean"),
        opt("label_smoothing", OptKind::Float, OptDefault::Float(0.0), "<= 1; values <= 0 mean no smoothing"),
    ],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// The target of [`cross_entropy`](fn@cross_entropy): class indices or class probabilities.
#[derive(Clone, Debug, PartialEq)]
pub enum CrossEntropyTarget<'a, T: Clone> {
    /// Class indices: `()` for a `(C)` input, `(N)` or `(N, d1, ..., dK)` otherwise; each in
    /// `[0, C)` or equal to `ignore_index`.
    Indices(View<'a, i64>),
    /// Class probabilities (soft labels), with the input's shape; differentiable.
    Probabilities(View<'a, T>),
}

impl<'a, T: Float> From<View<'a, i64>> for CrossEntropyTarget<'a, T> {
    fn from(v: View<'a, i64>) -> Self {
        CrossEntropyTarget::Indices(v)
    }
}

impl<'a, T: Float> From<View<'a, T>> for CrossEntropyTarget<'a, T> {
    fn from(v: View<'a, T>) -> Self {
        CrossEntropyTarget::Probabilities(v)
    }
}

/// Options of [`cross_entropy`](fn@cross_entropy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropyOptions {
    /// Index targets equal to this value are skipped (default -100); must be negative with
    /// probability targets.
    pub ignore_index: i64,
    /// `none`, `mean` (default; the weighted mean described on
    /// [`cross_entropy`](fn@cross_entropy)) or `sum`.
    pub reduction: Reduction,
    /// The share `ε` of the target spread uniformly over the classes (default 0; at most 1;
    /// values <= 0 mean none).
    pub label_smoothing: f64,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions { ignore_index: -100, reduction: Reduction::Mean, label_smoothing: 0.0 }
    }
}

/// Softmax cross-entropy between logits and class indices or class probabilities.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `torch.nn.functional.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
/// reduction=reduction, label_smoothing=label_smoothing)`.
///
/// # Conventions
/// - `input` is `(C)` (one sample, loss shape `()`), `(N, C)` or `(N, C, d1, ..., dK)`: the
///   class dimension is 1. `weight` is `(C)`.
/// - [`CrossEntropyTarget::Indices`]: `mean` divides by the sum of `weight[target]` over the
///   targets that are not `ignore_index` (their count without weights), for the smoothing term
///   too; NaN with a zero gradient when every target is ignored.
/// - [`CrossEntropyTarget::Probabilities`]: `mean` divides by `N * d1 * ... * dK`; the target
///   gets a gradient; `ignore_index` must be negative.
/// - `label_smoothing` `ε` mixes `ε / C` of every class into each target; `ε <= 0` (or NaN)
///   means none, as in PyTorch.
///
/// # Errors
/// [`LossError::Shape`] for a 0-d `input`, index targets whose shape is not `input`'s without
/// the class dimension, probability targets not of `input`'s shape, or a `weight` that is not
/// `(C)`; [`LossError::IndexOutOfRange`] for an index outside `[0, C)` that is not
/// `ignore_index`; [`LossError::InvalidOption`] for `label_smoothing > 1`, a non-negative
/// `ignore_index` with probability targets, or a reduction other than `none`, `mean`, `sum`.
///
/// # Example
/// ```
/// use losskit::{cross_entropy, CrossEntropyOptions, CrossEntropyTarget, View};
/// // two equal logits: p = 1/2 for either class, so the loss is ln 2
/// // (torch: F.cross_entropy(torch.zeros(1, 2), torch.tensor([1])))
/// let x = [0.0f64, 0.0];
/// let t = [1i64];
/// let x = View::new(&x, &[1, 2])?;
/// let loss = cross_entropy(x.borrow(), CrossEntropyTarget::Indices(View::from(&t[..])), None, &CrossEntropyOptions::default())?;
/// assert!((loss.item().unwrap() - std::f64::consts::LN_2).abs() < 1e-15);
/// // probability targets [0.25, 0.75] on the same logits: -(0.25 + 0.75) ln(1/2) = ln 2
/// let p = [0.25f64, 0.75];
/// let loss = cross_entropy(x, CrossEntropyTarget::Probabilities(View::new(&p, &[1, 2])?), None, &CrossEntropyOptions::default())?;
/// assert!((loss.item().unwrap() - std::f64::consts::LN_2).abs() < 1e-15);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn cross_entropy<T: Float>(
    input: View<'_, T>,
    target: CrossEntropyTarget<'_, T>,
    weight: Option<View<'_, T>>,
    options: &CrossEntropyOptions,
) -> Result<Tensor<T>> {
    run(&input, &target, weight.as_ref(), options, None).map(|(l, _)| l)
}

/// [`cross_entropy`](fn@cross_entropy) and its gradients with respect to `input` and, for
/// probability targets, `target` (`weight` is a constant).
///
/// # Example
/// ```
/// use losskit::{cross_entropy_grad, Backward, CrossEntropyOptions, CrossEntropyTarget, View};
/// let x = [0.0f64, 0.0];
/// let t = [1i64];
/// let (_, g) = cross_entropy_grad(
///     View::new(&x, &[1, 2])?,
///     CrossEntropyTarget::Indices(View::from(&t[..])),
///     None,
///     &CrossEntropyOptions::default(),
///     Backward::new(),
/// )?;
/// // softmax - onehot = [1/2, 1/2] - [0, 1]
/// assert_eq!(g.get("input").unwrap().data(), &[0.5, -0.5]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn cross_entropy_grad<T: Float>(
    input: View<'_, T>,
    target: CrossEntropyTarget<'_, T>,
    weight: Option<View<'_, T>>,
    options: &CrossEntropyOptions,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&input, &target, weight.as_ref(), options, Some(backward))
}

/// `(1 - ε, ε / C)` in the dtype, when there is smoothing.
fn smoothing<T: Float>(label_smoothing: f64, classes: usize) -> Option<(T, T)> {
    (label_smoothing > 0.0).then(|| (T::of(1.0 - label_smoothing), T::of(label_smoothing / classes as f64)))
}

fn run<T: Float>(
    input: &View<'_, T>,
    target: &CrossEntropyTarget<'_, T>,
    weight: Option<&View<'_, T>>,
    options: &CrossEntropyOptions,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let reduction = options.reduction.check(TORCH_REDUCTIONS)?;
    let ls = options.label_smoothing;
    if ls > 1.0 {
        return Err(LossError::option(
            "label_smoothing",
            format!("must be at most 1 (values <= 0 mean none), got {ls}"),
        ));
    }
    match target {
        CrossEntropyTarget::Indices(t) => indices(input, t, weight, options.ignore_index, reduction, ls, backward),
        CrossEntropyTarget::Probabilities(p) => {
            if options.ignore_index >= 0 {
                return Err(LossError::option(
                    "ignore_index",
                    format!("must be negative with probability (float) targets, got {}", options.ignore_index),
                ));
            }
            probabilities(input, p, weight, reduction, ls, backward)
        }
    }
}

/// Index targets: `nll` of the log-softmax, plus the smoothing term `-sum_c w_c logp_c`.
fn indices<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, i64>,
    weight: Option<&View<'_, T>>,
    ignore_index: i64,
    reduction: Reduction,
    label_smoothing: f64,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let targets = IndexTargets::new(input.shape(), target, weight, ignore_index)?;
    let layout = targets.rows.layout;
    let sm = smoothing::<T>(label_smoothing, layout.len);
    if layout.inner == 1 && layout.len > 0 {
        return indices_contiguous(input, &targets, sm, reduction, backward);
    }
    let w = targets.weight();
    let row_value = |r: usize, logp: &[T]| -> T {
        let class = targets.class(r);
        let nll = class.map_or(T::zero(), |t| -logp[t] * targets.weight_of(t));
        match sm {
            None => nll,
            Some((keep, per_class)) => {
                let smooth = match (class, w) {
                    (None, _) => T::zero(),
                    (Some(_), None) => T::from_acc(-sum_map(logp, T::acc)),
                    (Some(_), Some(w)) => T::from_acc(-sum_zip(logp, w, |l, wc| (l * wc).acc())),
                };
                keep * nll + smooth * per_class
            }
        }
    };
    let mut values = vec![T::zero(); layout.rows()];
    let Some(bw) = backward else {
        log_softmax_rows(&layout, input.data(), None, |r, logp, _| values[r] = row_value(r, logp));
        return Ok((targets.reduce(values, reduction), Grads::default()));
    };
    let (upstream, mut sink) = bw.start();
    let cot = targets.row_cotangents(&upstream, reduction)?;
    let [gx] = sink.slots([("input", input.shape(), true)])?;
    log_softmax_rows(&layout, input.data(), gx, |r, logp, g| {
        values[r] = row_value(r, logp);
        // the gradient with respect to the log-probabilities; zero for an ignored row
        if let (Some(g), Some(t)) = (g, targets.class(r)) {
            let s = cot[r];
            let keep = match sm {
                None => T::one(),
                Some((keep, per_class)) => {
                    let k = -(per_class * s);
                    for (c, gc) in g.iter_mut().enumerate() {
                        *gc = k * targets.weight_of(c);
                    }
                    keep
                }
            };
            g[t] += -(keep * s * targets.weight_of(t));
        }
    });
    Ok((targets.reduce(values, reduction), sink.finish()))
}

/// [`indices`] for rows that are contiguous (the class dimension last, as for `(N, C)`): groups
/// of rows in one pass each ([`index_xent_rows`]), over threads in fixed chunks.
fn indices_contiguous<T: Float>(
    input: &View<'_, T>,
    targets: &IndexTargets<'_, T>,
    sm: Option<(T, T)>,
    reduction: Reduction,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let x = input.data();
    let classes = targets.rows.layout.len;
    let rows = targets.rows.layout.rows();
    let smoothing = sm.map(|(keep, per_class)| Smoothing { keep, per_class });
    // the class weights and their sum, the same for every row
    let weights = targets.weight().map(|w| (w, sum_by(classes, |c| w[c].acc())));
    let mut values = vec![T::zero(); rows];
    let (upstream, mut sink) = start_optional(backward);
    let cot = upstream.as_ref().map(|up| targets.index_cots(up, reduction)).transpose()?;
    let [gx] = overwritten_slots(&mut sink, [("input", input.shape(), true)])?;
    let with_grad = cot.is_some();
    // without a gradient the kernel reads no cotangent: zeros stand in
    let cot = cot.unwrap_or_else(|| targets.zero_cots());
    par_row_groups(
        rows,
        classes,
        rows_per_group(classes),
        &mut values,
        gx,
        #[inline(always)]
        |r0, vals: &mut [T], g: Option<&mut [T]>, work: &mut Workspace<T>| {
            let grad = if with_grad { g } else { None };
            index_xent_rows(
                &x[r0 * classes..],
                classes,
                targets.classes_from(r0),
                smoothing,
                weights,
                cot.from_row(r0),
                grad,
                vals,
                work,
            );
        },
    );
    Ok((targets.reduce(values, reduction), sink.map(|s| s.finish()).unwrap_or_default()))
}

/// Probability targets: `-sum_c w_c ỹ_c logp_c` with `ỹ = (1 - ε) y + ε / C`.
fn probabilities<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    weight: Option<&View<'_, T>>,
    reduction: Reduction,
    label_smoothing: f64,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let shape = input.shape();
    let rows = ClassRows::new(shape)?;
    if target.shape() != shape {
        return Err(LossError::shape(
            "target",
            format!("{}: float targets are class probabilities, shaped like `input`", fmt_shape(shape)),
            target.shape(),
        ));
    }
    let layout = rows.layout;
    let classes = layout.len;
    let w = class_weight(weight, classes)?;
    let sm = smoothing::<T>(label_smoothing, classes);
    // PyTorch divides the total by numel / C (NaN for an empty input)
    let denominator = numel(shape) as f64 / classes as f64;
    if layout.inner == 1 && classes > 0 {
        return probabilities_contiguous(input, target, w, sm, &rows.out_shape, reduction, denominator, backward);
    }
    let y = target.data();
    let smoothed = |i: usize| match sm {
        None => y[i],
        Some((keep, per_class)) => y[i] * keep + per_class,
    };
    let row_value = |r: usize, logp: &[T]| -> T {
        let term = |c: usize| {
            let v = logp[c] * smoothed(layout.at(r, c));
            w.map_or(v, |w| v * w[c]).acc()
        };
        T::from_acc(-sum_by(classes, term))
    };
    let mut values = vec![T::zero(); layout.rows()];
    let Some(bw) = backward else {
        log_softmax_rows(&layout, input.data(), None, |r, logp, _| values[r] = row_value(r, logp));
        return Ok((reduce(values, &rows.out_shape, reduction, Some(denominator)), Grads::default()));
    };
    let (upstream, mut sink) = bw.start();
    let cot = reduce_cot(&upstream, &rows.out_shape, reduction, Some(denominator))?;
    let [gx, mut gy] = sink.slots([("input", shape, true), ("target", shape, true)])?;
    let keep = sm.map_or(T::one(), |(keep, _)| keep);
    log_softmax_rows(&layout, input.data(), gx, |r, logp, g| {
        values[r] = row_value(r, logp);
        let s = cot.at(r);
        if let Some(g) = g {
            for (c, gc) in g.iter_mut().enumerate() {
                let v = smoothed(layout.at(r, c)) * s;
                *gc = -w.map_or(v, |w| v * w[c]);
            }
        }
        if let Some(gy) = gy.as_deref_mut() {
            for (c, &lp) in logp.iter().enumerate() {
                let v = lp * s * keep;
                gy[layout.at(r, c)] = -w.map_or(v, |w| v * w[c]);
            }
        }
    });
    Ok((reduce(values, &rows.out_shape, reduction, Some(denominator)), sink.finish()))
}

/// [`probabilities`] for contiguous rows (`(N, C)`): groups of rows in one pass each
/// ([`prob_xent_rows`]), over threads in fixed chunks.
#[allow(clippy::too_many_arguments)]
fn probabilities_contiguous<T: Float>(
    input: &View<'_, T>,
    target: &View<'_, T>,
    weight: Option<&[T]>,
    sm: Option<(T, T)>,
    out_shape: &[usize],
    reduction: Reduction,
    denominator: f64,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let (x, y) = (input.data(), target.data());
    // (C) or (N, C, 1, ..., 1): the class dimension is the only one after the rows
    let shape = input.shape();
    let classes = if shape.len() == 1 { shape[0] } else { shape[1] };
    let rows = x.len() / classes;
    let smoothing = sm.map(|(keep, per_class)| Smoothing { keep, per_class });
    let mut values = vec![T::zero(); rows];
    let (upstream, mut sink) = start_optional(backward);
    let cot = upstream.as_ref().map(|up| reduce_cot(up, out_shape, reduction, Some(denominator))).transpose()?;
    let [gx, gy] = overwritten_slots(&mut sink, [("input", input.shape(), true), ("target", input.shape(), true)])?;
    let cot = cot.as_ref();
    par_row_groups(
        rows,
        classes,
        rows_per_group(classes),
        &mut values,
        (gx, gy),
        #[inline(always)]
        |r0, vals: &mut [T], (gx, gy), work: &mut Workspace<T>| {
            let span = r0 * classes..(r0 + vals.len()) * classes;
            let s = |k: usize| cot.map_or(T::zero(), |c| c.at(r0 + k));
            prob_xent_rows(&x[span.clone()], &y[span], classes, smoothing, weight, s, gx, gy, vals, work);
        },
    );
    Ok((reduce(values, out_shape, reduction, Some(denominator)), sink.map(|s| s.finish()).unwrap_or_default()))
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let options = CrossEntropyOptions {
        ignore_index: opts.int("ignore_index").unwrap_or(-100),
        reduction: opts.reduction()?,
        label_smoothing: opts.float("label_smoothing"),
    };
    let target = match args.float_or_int("target")? {
        FloatOrInt::Int(t) => CrossEntropyTarget::Indices(t),
        FloatOrInt::Float(p) => CrossEntropyTarget::Probabilities(p),
    };
    run(&args.float("input")?, &target, args.opt_float("weight")?.as_ref(), &options, backward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad::{GradsMut, Upstream};

    fn opts(reduction: Reduction, label_smoothing: f64) -> CrossEntropyOptions {
        CrossEntropyOptions { reduction, label_smoothing, ..Default::default() }
    }

    fn ce_idx(
        x: &[f64],
        shape: &[usize],
        t: &[i64],
        w: Option<&[f64]>,
        o: &CrossEntropyOptions,
    ) -> Result<(Tensor<f64>, Grads<f64>)> {
        let ts = if shape.len() == 1 { vec![] } else { [&shape[..1], &shape[2..]].concat() };
        cross_entropy_grad(
            View::new(x, shape)?,
            CrossEntropyTarget::Indices(View::new(t, &ts)?),
            w.map(View::vector),
            o,
            Backward::new(),
        )
    }

    /// index targets equal one-hot probability targets (without ignored rows), with and
    /// without smoothing and weights, except for the mean's denominator
    #[test]
    fn indices_match_one_hot_probabilities() {
        let x = [0.3, -1.2, 2.0, 0.7, 0.0, 1.5, -0.4, 0.9, 1e4, -1e4, 0.0, 3.0];
        let t = [2i64, 0, 1];
        let w = [0.5, 2.0, 1.0, 3.0];
        let mut onehot = [0.0; 12];
        for (n, &c) in t.iter().enumerate() {
            onehot[n * 4 + c as usize] = 1.0;
        }
        for ls in [0.0, 0.3] {
            for wt in [None, Some(&w[..])] {
                let o = opts(Reduction::None, ls);
                let (a, ga) = ce_idx(&x, &[3, 4], &t, wt, &o).unwrap();
                let (b, gb) = cross_entropy_grad(
                    View::new(&x, &[3, 4]).unwrap(),
                    CrossEntropyTarget::Probabilities(View::new(&onehot, &[3, 4]).unwrap()),
                    wt.map(View::vector),
                    &o,
                    Backward::new(),
                )
                .unwrap();
                // weights: index mode weighs the smoothing by w_c, the nll term by w_y;
                // probability mode weighs the smoothed target by w_c: the same sum
                for (p, q) in a.data().iter().zip(b.data()) {
                    assert!((p - q).abs() <= 1e-12 * q.abs().max(1.0), "ls={ls} {p} vs {q}");
                }
                let (ga, gb) = (ga.get("input").unwrap().data(), gb.get("input").unwrap().data());
                for (p, q) in ga.iter().zip(gb) {
                    assert!((p - q).abs() < 1e-12, "ls={ls} {p} vs {q}");
                }
            }
        }
    }

    #[test]
    fn weighted_mean_and_ignored() {
        // x = 0 everywhere: -log p = ln 3 for every class
        let x = [0.0; 9];
        let w = [1.0, 2.0, 4.0];
        let t = [2i64, -100, 1];
        let (l, g) = ce_idx(&x, &[3, 3], &t, Some(&w), &opts(Reduction::Mean, 0.0)).unwrap();
        // (4 + 2) ln 3 / (4 + 2)
        assert!((l.item().unwrap() - 3f64.ln()).abs() < 1e-15);
        let g = g.get("input").unwrap().data();
        // row 0: w = 4, (1/3 - onehot) * 4 / 6; ignored row 1: zero
        assert!((g[0] - 4.0 / 18.0).abs() < 1e-15 && (g[2] + 8.0 / 18.0).abs() < 1e-15);
        assert_eq!(&g[3..6], &[0.0; 3]);
        // smoothing under 'mean' divides by the same total weight: with x = 0 the loss is
        // ((1 - e) w_y + e/C sum_c w_c) ln 3 per row
        let e = 0.25;
        let (l, _) = ce_idx(&x, &[3, 3], &t, Some(&w), &opts(Reduction::Mean, e)).unwrap();
        let per = |wy: f64| ((1.0 - e) * wy + e / 3.0 * 7.0) * 3f64.ln();
        assert!((l.item().unwrap() - (per(4.0) + per(2.0)) / 6.0).abs() < 1e-14);
        // all ignored: NaN mean, zero gradient; 'sum' is 0
        let (l, g) = ce_idx(&x, &[3, 3], &[-100; 3], Some(&w), &opts(Reduction::Mean, e)).unwrap();
        assert!(l.item().unwrap().is_nan());
        assert!(g.get("input").unwrap().data().iter().all(|&v| v == 0.0));
        let (l, _) = ce_idx(&x, &[3, 3], &[-100; 3], None, &opts(Reduction::Sum, 0.0)).unwrap();
        assert_eq!(l.item(), Some(0.0));
    }

    #[test]
    fn extremes() {
        // +-1e4 logits: the loss is exact (2e4) and the gradient softmax - onehot
        let x = [1e4f32, -1e4, 0.0];
        let (l, g) = cross_entropy_grad(
            View::new(&x, &[1, 3]).unwrap(),
            CrossEntropyTarget::Indices(View::from(&[1i64][..])),
            None,
            &CrossEntropyOptions::default(),
            Backward::new(),
        )
        .unwrap();
        assert_eq!(l.item(), Some(2e4));
        assert_eq!(g.get("input").unwrap().data(), &[1.0, -1.0, 0.0]);
        // a -inf logit that is not the target is fine; as the target it gives inf
        let x = [f64::NEG_INFINITY, 0.0];
        let (l, g) = ce_idx(&x, &[2], &[1], None, &opts(Reduction::Mean, 0.0)).unwrap();
        assert_eq!(l.item(), Some(0.0));
        assert_eq!(g.get("input").unwrap().data(), &[0.0, 0.0]);
        let (l, _) = ce_idx(&x, &[2], &[0], None, &opts(Reduction::Mean, 0.0)).unwrap();
        assert_eq!(l.item(), Some(f64::INFINITY));
        // label smoothing 0.1 (its sum of x - m comes from the maxima's pass as sum(x) - C m):
        // logp = [0, -2e4, -1e4], value 0.9 * 2e4 + (0.1 / 3) * 3e4 = 19000 in f64 and f32;
        // a -inf logit makes the smoothing term, and the value, inf (torch: -sum(logp) / C)
        let (l, _) = ce_idx(&[1e4, -1e4, 0.0], &[1, 3], &[1], None, &opts(Reduction::Mean, 0.1)).unwrap();
        assert!((l.item().unwrap() - 19000.0).abs() < 1e-9, "{l:?}");
        let (l, _) = ce_idx(&[f64::NEG_INFINITY, 0.0], &[1, 2], &[1], None, &opts(Reduction::Mean, 0.1)).unwrap();
        assert_eq!(l.item(), Some(f64::INFINITY));
        let (l, _) = ce_idx(&[f64::INFINITY, 0.0], &[1, 2], &[1], None, &opts(Reduction::Mean, 0.1)).unwrap();
        assert!(l.item().unwrap().is_nan());
        let l = cross_entropy(
            View::new(&[1e4f32, -1e4, 0.0], &[1, 3]).unwrap(),
            CrossEntropyTarget::Indices(View::from(&[1i64][..])),
            None,
            &opts(Reduction::Mean, 0.1),
        )
        .unwrap();
        assert_eq!(l.item(), Some(19000.0));
        // C = 1: log p = 0 whatever the logit
        let (l, g) = ce_idx(&[5.0, -3.0], &[2, 1], &[0, 0], None, &opts(Reduction::Sum, 0.0)).unwrap();
        assert_eq!((l.item(), g.get("input").unwrap().data()), (Some(0.0), &[0.0, 0.0][..]));
        // empty batch: 'mean' is NaN (0 / 0), 'sum' is 0
        let (l, _) = ce_idx(&[], &[0, 3], &[], None, &opts(Reduction::Mean, 0.0)).unwrap();
        assert!(l.item().unwrap().is_nan());
    }

    #[test]
    fn probability_gradients_match_finite_differences() {
        let x = [0.3, -1.2, 2.0, 0.7, 0.0, 1.5];
        let y = [0.2, 0.5, 0.3, 1.0, 0.0, 0.0];
        let w = [0.5, 2.0, 1.5];
        let up = [0.7, -1.3];
        let o = opts(Reduction::None, 0.2);
        let f = |x: &[f64], y: &[f64]| {
            let l = cross_entropy(
                View::new(x, &[2, 3]).unwrap(),
                CrossEntropyTarget::Probabilities(View::new(y, &[2, 3]).unwrap()),
                Some(View::vector(&w)),
                &o,
            )
            .unwrap();
            l.data().iter().zip(&up).map(|(a, b)| a * b).sum::<f64>()
        };
        let (_, g) = cross_entropy_grad(
            View::new(&x, &[2, 3]).unwrap(),
            CrossEntropyTarget::Probabilities(View::new(&y, &[2, 3]).unwrap()),
            Some(View::vector(&w)),
            &o,
            Backward::new().upstream(Upstream::Array(View::vector(&up))),
        )
        .unwrap();
        for i in 0..6 {
            let h = 1e-6;
            let (mut a, mut b) = (x, x);
            a[i] += h;
            b[i] -= h;
            let fd = (f(&a, &y) - f(&b, &y)) / (2.0 * h);
            assert!((fd - g.get("input").unwrap().data()[i]).abs() < 1e-8);
            let (mut a, mut b) = (y, y);
            a[i] += h;
            b[i] -= h;
            let fd = (f(&x, &a) - f(&x, &b)) / (2.0 * h);
            assert!((fd - g.get("target").unwrap().data()[i]).abs() < 1e-8);
        }
    }

    #[test]
    fn per_row_upstream_with_ignored_rows() {
        // reduction none, an upstream per row: row r's gradient is up[r] (softmax(x_r) - e_t),
        // from the definition; an ignored row's is exactly 0 whatever its upstream
        let x = [0.3f64, -1.2, 2.0, 0.7, 0.0, 1.5, -0.4, 0.9, 1.1, 0.2, -2.0, 0.6];
        let t = [1i64, -100, 3];
        let up = [0.5f64, 2.0, -1.5];
        let (_, g) = cross_entropy_grad(
            View::new(&x, &[3, 4]).unwrap(),
            CrossEntropyTarget::Indices(View::new(&t, &[3]).unwrap()),
            None,
            &opts(Reduction::None, 0.0),
            Backward::new().upstream(Upstream::Array(View::vector(&up))),
        )
        .unwrap();
        let g = g.get("input").unwrap().data();
        for r in 0..3 {
            let row = &x[r * 4..r * 4 + 4];
            let total: f64 = row.iter().map(|v| v.exp()).sum();
            for c in 0..4 {
                let want = if t[r] < 0 { 0.0 } else { up[r] * (row[c].exp() / total - f64::from(t[r] == c as i64)) };
                assert!((g[r * 4 + c] - want).abs() < 1e-15, "row {r} class {c}: {} against {want}", g[r * 4 + c]);
            }
        }
    }

    #[test]
    fn caller_buffers_and_upstream_shape() {
        let x = [0.3, -1.2, 2.0, 0.7, 0.0, 1.5];
        let y = [0.2, 0.5, 0.3, 1.0, 0.0, 0.0];
        let target = || CrossEntropyTarget::Probabilities(View::new(&y, &[2, 3]).unwrap());
        let o = opts(Reduction::Sum, 0.1);
        let (_, all) =
            cross_entropy_grad(View::new(&x, &[2, 3]).unwrap(), target(), None, &o, Backward::new()).unwrap();
        // only the target's gradient, into a caller buffer
        let mut gy = [f64::NAN; 6];
        let (_, none) = cross_entropy_grad(
            View::new(&x, &[2, 3]).unwrap(),
            target(),
            None,
            &o,
            Backward::new().into_buffers(GradsMut::new().with("target", &mut gy)),
        )
        .unwrap();
        assert!(none.is_empty());
        assert_eq!(&gy[..], all.get("target").unwrap().data());
        // an upstream that does not have the loss's shape
        let up = [1.0, 2.0, 3.0];
        let e = cross_entropy_grad(
            View::new(&x, &[2, 3]).unwrap(),
            target(),
            None,
            &opts(Reduction::None, 0.0),
            Backward::new().upstream(Upstream::Array(View::vector(&up))),
        )
        .unwrap_err();
        assert!(matches!(e, LossError::Upstream { .. }));
    }

    #[test]
    fn errors() {
        let x = [0.0; 6];
        let o = CrossEntropyOptions::default();
        let e = ce_idx(&x, &[2, 3], &[0, 3], None, &o).unwrap_err();
        assert!(matches!(e, LossError::IndexOutOfRange { index: 3, .. }));
        let e = ce_idx(&x, &[2, 3], &[0, -1], None, &o).unwrap_err();
        assert!(matches!(e, LossError::IndexOutOfRange { index: -1, .. }));
        let e = ce_idx(&x, &[2, 3], &[0, 1], None, &opts(Reduction::Mean, 1.5)).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "label_smoothing"));
        let e = ce_idx(&x, &[2, 3], &[0, 1], Some(&[1.0, 1.0]), &o).unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "weight"));
        let p = [0.0; 6];
        let prob = |shape: &[usize], o: &CrossEntropyOptions| {
            cross_entropy(
                View::new(&x, &[2, 3]).unwrap(),
                CrossEntropyTarget::Probabilities(View::new(&p, shape).unwrap()),
                None,
                o,
            )
        };
        let e = prob(&[3, 2], &o).unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "target"));
        let e = prob(&[2, 3], &CrossEntropyOptions { ignore_index: 0, ..o }).unwrap_err();
        assert!(matches!(e, LossError::InvalidOption { ref option, .. } if option == "ignore_index"));
        // negative smoothing is no smoothing
        let a = ce_idx(&[0.3, -1.0, 2.0], &[3], &[1], None, &opts(Reduction::Mean, -0.5)).unwrap().0;
        let b = ce_idx(&[0.3, -1.0, 2.0], &[3], &[1], None, &o).unwrap().0;
        assert_eq!(a, b);
    }
}
