//! `multiclass_hinge`: the Crammer-Singer multiclass hinge loss (optax
//! `multiclass_hinge_loss`).

use crate::catalog::eval::{entry, Entry, Inputs, Opts, PickFloat};
use crate::catalog::spec::build::arg;
use crate::catalog::spec::{ArgKind, Family, LossSpec};
use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::{overwritten_slots, start_optional, Backward, Grads};
use crate::kernels::axis::{row_max_except, MASKED_ROW};
use crate::kernels::simd::dispatch;
use crate::kernels::sum::{par_units, Every, SplitOut, CHUNK, LANES};
use crate::reduction::Cot;
use crate::tensor::{fmt_shape, Tensor, View};

macro_rules! formula {
    () => {
        r"\ell = \max_{c}\big(s_{c} + 1 - [c = y]\big) - s_{y} = \max\Big(0,\ \max_{c \neq y}\ \big(1 + s_{c} - s_{y}\big)\Big),\qquad \frac{\partial \ell}{\partial s_c} = \frac{[c \in \operatorname{argmax}]}{\lvert \operatorname{argmax} \rvert} - [c = y]"
    };
}

pub(crate) const SPEC: LossSpec = LossSpec {
    id: "multiclass_hinge",
    family: Family::Margin,
    summary:
        "Crammer-Singer multiclass hinge: the largest margin violation 1 + s_c - s_y over the wrong classes, or 0.",
    formula: formula!(),
    reference: "optax.losses.multiclass_hinge_loss",
    reference_call: "optax.losses.multiclass_hinge_loss(scores, labels)",
    reduction_default: "none",
    none_shape: "scores.shape[:-1] (= labels.shape)",
    conventions:
        "The class axis is the LAST axis of scores; every leading axis is a batch axis, and labels has exactly \
the leading shape. No reduction. Labels must lie in [0, C): the reference one-hot encodes an out-of-range label into \
an all-zero row and silently returns max_c(s_c) + 1; here it is an error. The gradient of the maximum is split \
equally between the classes that attain it (JAX's rule), so at a tie between the true class and a violating class \
the gradient is halved; when only the true class attains it (loss 0) the gradient is 0.",
    errata: "The post's last formula max(0, 1 + max(w_y x - w_t x)) multiplies elementwise instead of forming class \
scores, applies a one-argument max that takes no maximum over the classes, and does not say that the true class \
carries no margin (with it the loss could never fall below 1). Written correctly it is this Crammer-Singer loss; \
Keras' categorical_hinge and PyTorch's multi_margin_loss are different losses.",
    args: &[
        arg("scores", "(..., C)", ArgKind::Float, true, false, "finite"),
        arg("labels", "(...)", ArgKind::Int, false, false, "0 <= label < C"),
    ],
    options: &[],
};

pub(crate) const ENTRY: Entry = entry!(SPEC, eval);

/// The Crammer-Singer multiclass hinge loss of class scores and integer labels; the class
/// axis is the last axis of `scores`, no reduction.
///
#[doc = concat!("<div class=\"math\">$$", formula!(), "$$</div>")]
///
/// # Reference
/// `optax.losses.multiclass_hinge_loss(scores, labels)`.
///
/// # Conventions
/// - `scores` is `(..., C)`, `labels` is `scores`' shape without the last axis, which is also
///   the loss's shape.
/// - Computed in `f64` and rounded once, so `f32` results are as close to the exact value as
///   their rounding allows.
///
/// # Errors
/// [`LossError::Shape`] for a 0-d `scores` or `labels` not of `scores`' leading shape;
/// [`LossError::IndexOutOfRange`] for a label outside `[0, C)` (optax silently accepts it).
///
/// # Example
/// ```
/// use losskit::{multiclass_hinge, View};
/// let scores = [2.0f64, 1.5, -1.0, 0.0, 3.0, 1.0];
/// let labels = [0i64, 2];
/// // sample 0: max(2 + 0, 1.5 + 1, -1 + 1) - 2 = 0.5; sample 1: max(0 + 1, 3 + 1, 1 + 0) - 1 = 3
/// // (optax: multiclass_hinge_loss(jnp.array(scores).reshape(2, 3), jnp.array(labels)))
/// let loss = multiclass_hinge(View::new(&scores, &[2, 3])?, View::from(&labels[..]))?;
/// assert_eq!(loss.data(), &[0.5, 3.0]);
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn multiclass_hinge<T: Float>(scores: View<'_, T>, labels: View<'_, i64>) -> Result<Tensor<T>> {
    run(&scores, &labels, None).map(|(l, _)| l)
}

/// [`multiclass_hinge`](fn@multiclass_hinge) and its gradient with respect to `scores`.
///
/// # Example
/// ```
/// use losskit::{multiclass_hinge_grad, Backward, View};
/// let scores = [2.0f64, 2.0, 1.0];
/// let labels = [1i64];
/// // s + 1 - onehot = [3, 2, 2]: class 0 violates the margin, so d/ds = [1, -1, 0]
/// let (loss, g) = multiclass_hinge_grad(View::new(&scores, &[1, 3])?, View::from(&labels[..]), Backward::new())?;
/// assert_eq!((loss.data(), g.get("scores").unwrap().data()), (&[1.0][..], &[1.0, -1.0, 0.0][..]));
/// # Ok::<(), losskit::LossError>(())
/// ```
pub fn multiclass_hinge_grad<T: Float>(
    scores: View<'_, T>,
    labels: View<'_, i64>,
    backward: Backward<'_, '_, T>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&scores, &labels, Some(backward))
}

fn run<T: Float>(
    scores: &View<'_, T>,
    labels: &View<'_, i64>,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    let shape = scores.shape();
    let Some((&classes, lead)) = shape.split_last() else {
        return Err(LossError::shape("scores", "(..., C): at least one (class) axis", shape));
    };
    if labels.shape() != lead {
        return Err(LossError::shape(
            "labels",
            format!("{}: the shape of `scores` {} without its last (class) axis", fmt_shape(lead), fmt_shape(shape)),
            labels.shape(),
        ));
    }
    let y = labels.data();
    if let Some((position, &index)) = y.iter().enumerate().find(|(_, &l)| !(0..classes as i64).contains(&l)) {
        return Err(LossError::IndexOutOfRange {
            arg: "labels".into(),
            index,
            position,
            valid: format!("0 <= label < {classes}"),
        });
    }
    let s = scores.data();
    let rows = y.len();
    let mut values = vec![T::zero(); rows];
    let (upstream, mut sink) = start_optional(backward);
    let cot = upstream.as_ref().map(|u| Cot::from_upstream(u, lead)).transpose()?;
    // every element of the gradient is written below
    let [gs] = overwritten_slots(&mut sink, [("scores", shape, true)])?;
    // rows of the (contiguous, last) class axis over threads in fixed chunks: the same bits on
    // any thread count (each row is computed on its own)
    let per_chunk = (CHUNK / classes.max(1)).max(1);
    par_units(rows, per_chunk, (Every(Some(&mut values[..]), classes.max(1)), gs), classes, |r0, r1, (vals, mut g)| {
        let vals = vals.0.unwrap_or_default();
        dispatch(
            #[inline(always)]
            // move: local copies of the captures, kept in registers
            move || {
                for (k, r) in (r0..r1).enumerate() {
                    let row = &s[r * classes..(r + 1) * classes];
                    // labels were checked to lie in 0..classes
                    let label = y[r] as usize;
                    let (m, dot) = row_max_and_dot(row, label);
                    vals[k] = T::from_acc(m - dot);
                    if let (Some(cot), Some(g)) = (cot, g.split_front(classes)) {
                        row_gradient(row, label, m, cot.at(r).acc(), g);
                    }
                }
                0.0
            },
        )
    });
    let loss = Tensor::from_parts(values, lead.to_vec());
    match sink {
        Some(sink) => Ok((loss, sink.finish())),
        None => Ok((loss, Grads::default())),
    }
}

/// The row's maximum of `s_c + 1 - [c = y]` as optax forms it (in `f64`; NaN when a score is
/// NaN) and optax's `sum_c s_c [c = y]` (`s_y`, or NaN when another score is not finite, as
/// `inf * 0`).
///
/// `s_c + 1` rounds monotonically, so the maximum over the other classes is taken on the
/// scores themselves and shifted once; the products `s_c * 0` of the other classes are `±0`
/// (adding nothing to `s_y`) unless `s_c` is not finite.
#[inline(always)]
fn row_max_and_dot<T: Float>(row: &[T], label: usize) -> (f64, f64) {
    let sy = row[label];
    let (other, finite) = (row_max_except(row, label), all_finite_except(row, label));
    let shifted_y = sy.acc() + 1.0 - 1.0;
    // `row_max_except` skips NaN; `jnp.max` propagates it. A NaN among the other classes
    // (possible only when they are not all finite, the rare case) makes the maximum NaN
    let nan_other = !finite && row.iter().enumerate().any(|(c, v)| c != label && v.is_nan());
    let m = if nan_other || sy.is_nan() {
        f64::NAN
    } else {
        let o = other.acc() + 1.0;
        if o > shifted_y {
            o
        } else {
            shifted_y
        }
    };
    // the fixed-tree sum of s_y and (+-0)s is s_y + 0 (its lanes start at +0)
    let dot = if finite { sy.acc() + 0.0 } else { f64::NAN };
    (m, dot)
}

/// True when no element other than `x[skip]` is infinite or NaN (`x * 0` is `±0` exactly
/// then), the two ways [`row_max_except`] takes: one masked loop over a short row, the two
/// pieces either side of `skip` of a long one.
#[inline(always)]
fn all_finite_except<T: Float>(x: &[T], skip: usize) -> bool {
    if x.len() > MASKED_ROW {
        let (before, after) = (&x[..skip], &x[skip + 1..]);
        let zero_times = |_, v: T| v * T::zero();
        return zero_products_are_zero(before, zero_times) && zero_products_are_zero(after, zero_times);
    }
    let skip = skip as u32;
    zero_products_are_zero(
        x,
        #[inline(always)]
        |c, v| if c == skip { T::zero() } else { v * T::zero() },
    )
}

/// True when the sum of `product(c, x[c])` (each `±0` or NaN) over the row, in [`LANES`]
/// vertical lanes, is not NaN.
#[inline(always)]
fn zero_products_are_zero<T: Float>(x: &[T], product: impl Fn(u32, T) -> T) -> bool {
    let mut lanes = [T::zero(); LANES];
    let mut groups = x.chunks_exact(LANES);
    let mut base = 0u32;
    for g in &mut groups {
        if let Ok(g) = <&[T; LANES]>::try_from(g) {
            for l in 0..LANES {
                lanes[l] += product(base.wrapping_add(l as u32), g[l]);
            }
        }
        base = base.wrapping_add(LANES as u32);
    }
    for (l, (lane, &v)) in lanes.iter_mut().zip(groups.remainder()).enumerate() {
        *lane += product(base.wrapping_add(l as u32), v);
    }
    lanes.iter().all(|v| !v.is_nan())
}

/// The row's gradient for upstream `u`: each maximiser of `s_c + 1 - [c = y]` gets `u / k`
/// (`k` of them; NaN everywhere when the maximum `m` is NaN, `k = 0`), the true class `-u`.
#[inline(always)]
fn row_gradient<T: Float>(row: &[T], label: usize, m: f64, u: f64, g: &mut [T]) {
    // s_c + 1 - 0 is s_c + 1 exactly for the other classes
    let shifted = |c: usize| if c == label { row[c].acc() + 1.0 - 1.0 } else { row[c].acc() + 1.0 };
    let mut k = 0.0f64;
    for &v in row {
        k += if v.acc() + 1.0 == m { 1.0 } else { 0.0 };
    }
    // the true class was counted as s_y + 1: count it as s_y + 1 - 1
    k -= if row[label].acc() + 1.0 == m { 1.0 } else { 0.0 };
    k += if shifted(label) == m { 1.0 } else { 0.0 };
    let k = if m.is_nan() { 0.0 } else { k };
    let share = u / k;
    let off = share * 0.0;
    for (gc, &v) in g.iter_mut().zip(row) {
        // at_max - 0 is at_max exactly for the other classes
        *gc = T::from_acc(if v.acc() + 1.0 == m { share } else { off });
    }
    g[label] = T::from_acc(if shifted(label) == m { share } else { off } - u);
}

fn eval<T: PickFloat>(
    args: &Inputs<'_, T>,
    _opts: &Opts,
    backward: Option<Backward<'_, '_, T>>,
) -> Result<(Tensor<T>, Grads<T>)> {
    run(&args.float("scores")?, &args.int("labels")?, backward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad::Upstream;

    #[test]
    fn non_finite_scores_follow_optax() {
        // optax 0.2.8 on jax 0.10.2, float32: scores [[.5, nan, .2, 1], [.5, .1, .2, 1],
        // [inf, .1, .2, 1]], labels [0, 0, 1]: values [nan, 1.5, nan]; the gradient of their sum
        // is NaN throughout the NaN row (jnp.max's gradient divides by the count of entries
        // equal to a NaN maximum: 0), [-1, 0, 0, 1] and [1, -1, 0, 0] (the +inf row's maximum is
        // finite in its gradient, while its value is inf - inf * 0 = NaN)
        let nan = f32::NAN;
        let s = [0.5f32, nan, 0.2, 1.0, 0.5, 0.1, 0.2, 1.0, f32::INFINITY, 0.1, 0.2, 1.0];
        let (l, g) = multiclass_hinge_grad(
            View::new(&s, &[3, 4]).unwrap(),
            View::from(&[0i64, 0, 1][..]),
            Backward::new().upstream(Upstream::Ones),
        )
        .unwrap();
        let l = l.data();
        assert!(l[0].is_nan() && l[1] == 1.5 && l[2].is_nan(), "{l:?}");
        let g = g.get("scores").unwrap().data();
        assert!(g[..4].iter().all(|v| v.is_nan()), "{g:?}");
        assert_eq!(&g[4..], &[-1.0, 0.0, 0.0, 1.0, 1.0, -1.0, 0.0, 0.0]);
    }

    #[test]
    fn short_and_long_rows_agree_with_the_formula() {
        // both paths (masked whole rows up to MASKED_ROW classes, two pieces beyond) against
        // max_c(s_c + 1 - [c = y]) - s_y written out, every label position
        for classes in [1usize, 2, 15, 16, 17, 33, MASKED_ROW - 1, MASKED_ROW, MASKED_ROW + 1, 130] {
            let s: Vec<f32> = (0..classes).map(|i| ((i * 37) % 23) as f32 * 0.25 - 2.0).collect();
            let labels: Vec<i64> = (0..classes as i64).collect();
            let rows: Vec<f32> = labels.iter().flat_map(|_| s.iter().copied()).collect();
            let l = multiclass_hinge(View::new(&rows, &[classes, classes]).unwrap(), View::from(&labels[..])).unwrap();
            for (y, &got) in l.data().iter().enumerate() {
                let m = (0..classes).map(|c| s[c] as f64 + 1.0 - (c == y) as u8 as f64).fold(f64::MIN, f64::max);
                assert_eq!(got, (m - s[y] as f64) as f32, "{classes} classes, label {y}");
            }
        }
    }

    #[test]
    fn ties_split_the_gradient() {
        // scores [1, 2, 0.5], y = 1: s + 1 - onehot = [2, 2, 1.5], class 0 ties with the true
        // class: the loss is 0 but the maximum's gradient is split between them
        let s = [1.0f64, 2.0, 0.5];
        let (l, g) =
            multiclass_hinge_grad(View::new(&s, &[1, 3]).unwrap(), View::from(&[1i64][..]), Backward::new()).unwrap();
        assert_eq!(l.data(), &[0.0]);
        assert_eq!(g.get("scores").unwrap().data(), &[0.5, -0.5, 0.0]);
        // two violating classes tie: each gets 1/2
        let s = [3.0f64, 1.0, 3.0];
        let (l, g) = multiclass_hinge_grad(
            View::new(&s, &[3]).unwrap(),
            View::from_vec(vec![1i64], &[]).unwrap(),
            Backward::new(),
        )
        .unwrap();
        assert_eq!((l.shape(), l.data()), (&[][..], &[3.0][..]));
        assert_eq!(g.get("scores").unwrap().data(), &[0.5, -1.0, 0.5]);
        // the true class alone at the maximum: zero loss and gradient
        let s = [0.0f64, 5.0, 1.0];
        let (l, g) = multiclass_hinge_grad(
            View::new(&s, &[3]).unwrap(),
            View::from_vec(vec![1i64], &[]).unwrap(),
            Backward::new(),
        )
        .unwrap();
        assert_eq!(l.data(), &[0.0]);
        assert!(g.get("scores").unwrap().data().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn batch_axes_and_upstream() {
        // (2, 2, 2): labels (2, 2)
        let s: Vec<f32> = vec![0.0, 1.0, 1.0, -1.0, 2.0, -2.0, 0.5, 0.25];
        let y = [0i64, 0, 1, 1];
        let up = [1.0f32, 2.0, 3.0, 4.0];
        let (l, g) = multiclass_hinge_grad(
            View::new(&s, &[2, 2, 2]).unwrap(),
            View::new(&y, &[2, 2]).unwrap(),
            Backward::new().upstream(Upstream::Array(View::new(&up, &[2, 2]).unwrap())),
        )
        .unwrap();
        assert_eq!(l.shape(), &[2, 2]);
        assert_eq!(l.data(), &[2.0, 0.0, 5.0, 1.25]);
        assert_eq!(g.get("scores").unwrap().data(), &[-1.0, 1.0, 0.0, 0.0, 3.0, -3.0, 4.0, -4.0]);
    }

    #[test]
    fn errors() {
        let s = [0.0f64; 6];
        let e = multiclass_hinge(View::new(&s, &[2, 3]).unwrap(), View::from(&[0i64, 3][..])).unwrap_err();
        assert!(matches!(e, LossError::IndexOutOfRange { ref arg, index: 3, position: 1, .. } if arg == "labels"));
        let e = multiclass_hinge(View::new(&s, &[2, 3]).unwrap(), View::from(&[0i64, 1, 2][..])).unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "labels"));
        let e =
            multiclass_hinge(View::new(&s[..1], &[]).unwrap(), View::from_vec(vec![0i64], &[]).unwrap()).unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "scores"));
    }
}
