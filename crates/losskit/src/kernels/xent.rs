//! Cross-entropy kernels: the binary cross-entropy of one element, and the cross-entropy of one
//! row of class scores against a target row.
//!
//! Row kernels take the prediction row, the target as a function of the class (so that label
//! smoothing or a one-hot target costs no buffer) and, optionally, `(cot, grad)`: then they
//! overwrite `grad` (the row's length) with `cot` times the derivative of the row's value with
//! respect to each prediction.
//!
//! Clipping follows `jnp.clip` (a `maximum` then a `minimum`): the derivative is 1 strictly
//! inside the bounds, 0 outside, and 1/2 exactly at a bound (see [`clip_tie`]).

use crate::float::Float;
use crate::kernels::axis::row_max;
use crate::kernels::stable::clip_tie;
use crate::kernels::sum::{block_sum, sum_by, tree, BLOCK};

/// Binary cross-entropy of a logit `x` against a target `t`, as Keras writes it on JAX:
/// `-t log σ(x) - (1 - t) log σ(-x)`, and its derivative in `x`,
/// `(1 - t) σ(x) - t σ(-x)` (no cancellation for large `|x|`).
///
/// One exponential `e = exp(-|x|)`, one `log1p` and one division serve all four of
/// `log σ(±x)` and `σ(±x)` (the same bits as computing each on its own).
#[inline(always)]
pub fn bce_logits<T: Float>(t: T, x: T) -> (T, T) {
    let u = T::one() - t;
    let e = (-x.abs()).vexp();
    let l = e.vln_1p_unit();
    let (log_sig, log_sig_neg) = (x.min(T::zero()) - l, (-x).min(T::zero()) - l);
    let r = T::one() / (T::one() + e);
    let (sig, sig_neg) = if x >= T::zero() { (r, e * r) } else { (e * r, r) };
    let value = -t * log_sig - u * log_sig_neg;
    let d = u * sig - t * sig_neg;
    (value, d)
}

/// Binary cross-entropy of a probability `p` clipped to `[lo, hi]` against a target `t`:
/// `-(t log q + (1 - t) log(1 - q))` with `q = clip(p, lo, hi)`, and its derivative in `p`
/// (`(1 - t) / (1 - q) - t / q` times the clip's derivative, see [`clip_tie`]).
#[inline(always)]
pub fn bce_clipped<T: Float>(t: T, p: T, lo: T, hi: T) -> (T, T) {
    let (q, slope) = clip_tie(p, lo, hi);
    let u = T::one() - t;
    let r = T::one() - q;
    let value = -(t * q.vln() + u * r.vln());
    let d = (u / r - t / q) * slope;
    (value, d)
}

/// `-sum_c t(c) log clip(x_c / sum_k x_k, lo, hi)` for one row of scores `x` (Keras'
/// renormalised and clipped probabilities). The gradient flows through the renormalisation:
/// with `g_c = -t(c) / q_c * clip'(p_c)`, `d/dx_j = g_j / s - sum_c g_c x_c / s^2`.
///
/// A row summing to 0 gives NaN (`0 / 0`), as in the reference.
#[inline(always)]
pub fn renorm_clip_xent_row<T: Float>(
    x: &[T],
    target: impl Fn(usize) -> T,
    lo: T,
    hi: T,
    grad: Option<(T, &mut [T])>,
) -> T {
    let s = T::from_acc(sum_by(x.len(), |c| x[c].acc()));
    let q = |c: usize| clip_tie(x[c] / s, lo, hi);
    let value = -sum_by(x.len(), |c| (target(c) * q(c).0.vln()).acc());
    if let Some((cot, g)) = grad {
        // the cotangent of each clipped probability, then back through x / s
        for (c, gc) in g.iter_mut().enumerate() {
            let (qc, slope) = q(c);
            *gc = -(target(c) / qc) * slope;
        }
        let dot = T::from_acc(sum_by(x.len(), |c| (g[c] * x[c]).acc()));
        let back = -dot / (s * s);
        for gc in g.iter_mut() {
            *gc = cot * (*gc / s + back);
        }
    }
    T::from_acc(value)
}

/// Label smoothing of an index target: the kept share `1 - ε` of the target's term and the
/// share `ε / C` of every class's term.
#[derive(Clone, Copy, Debug)]
pub struct Smoothing<T> {
    /// `1 - ε`.
    pub keep: T,
    /// `ε / C`.
    pub per_class: T,
}

/// Softmax cross-entropy of one contiguous row of logits `x` against class `target` (`None`:
/// an ignored row, value 0), with optional class weights `w` and label smoothing, in one read
/// of the row from memory and one exponential per element:
///
/// 1. the row maximum `m`;
/// 2. `e_c = exp(x_c - m)` (written into the gradient row when there is one) and their sum
///    `S`, and with smoothing `sum_c w_c (x_c - m)`;
/// 3. with `grad = Some((s, g))`: `g_c = s * d value / d x_c`, from `p_c = e_c / S`, in place.
///
/// The value is `-(1 - ε) w_t logp_t - ε/C sum_c w_c logp_c` with
/// `logp_c = (x_c - m) - log S`; the gradient with respect to the log-probabilities is
/// `γ_c = -s (ε/C w_c + [c = t] (1 - ε) w_t)` and with respect to the logits
/// `γ_c - p_c sum_k γ_k`. `weights` are the class weights with their sum (the same for every
/// row, so the caller computes it once). `scratch` is a reusable buffer for the block sums.
#[inline(always)]
pub fn index_xent_row<T: Float>(
    x: &[T],
    target: Option<usize>,
    smoothing: Option<Smoothing<T>>,
    weights: Option<(&[T], f64)>,
    grad: Option<(T, &mut [T])>,
    scratch: &mut Vec<f64>,
) -> T {
    let n = x.len();
    let w = weights.map(|(w, _)| w);
    let total_weight = weights.map_or(n as f64, |(_, total)| total);
    let m = row_max(x);
    let (s, mut g) = match grad {
        Some((s, g)) => (s, Some(g)),
        None => (T::zero(), None),
    };
    scratch.clear();
    let mut tile = [T::zero(); BLOCK];
    // pass 2: exponentials and their sum (and the weighted sum of x - m for smoothing)
    let mut shifted = 0.0f64;
    let mut start = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        let xs = &x[start..start + len];
        let e: &mut [T] = match g.as_deref_mut() {
            Some(g) => &mut g[start..start + len],
            None => &mut tile[..len],
        };
        for c in 0..len {
            e[c] = (xs[c] - m).vexp();
        }
        scratch.push(block_sum(e));
        if smoothing.is_some() {
            let mut d = [T::zero(); BLOCK];
            match w {
                None => {
                    for c in 0..len {
                        d[c] = xs[c] - m;
                    }
                }
                Some(w) => {
                    let ws = &w[start..start + len];
                    for c in 0..len {
                        d[c] = ws[c] * (xs[c] - m);
                    }
                }
            }
            shifted += block_sum(&d[..len]);
        }
        start += len;
    }
    let sum = tree(scratch);
    let lse = T::from_acc(sum.ln());
    let wt = |c: usize| w.map_or(T::one(), |w| w[c]);
    let nll = target.map_or(T::zero(), |t| -(((x[t] - m) - lse) * wt(t)));
    let value = match smoothing {
        None => nll,
        Some(sm) => {
            let smooth = if target.is_some() { T::from_acc(lse.acc() * total_weight - shifted) } else { T::zero() };
            sm.keep * nll + smooth * sm.per_class
        }
    };
    if let Some(g) = g {
        let (keep, per_class) = smoothing.map_or((T::one(), T::zero()), |sm| (sm.keep, sm.per_class));
        let k = -(per_class * s);
        let at_target = target.map_or(T::zero(), |t| -(keep * s * wt(t)));
        let gamma_sum = k * T::from_acc(total_weight) + at_target;
        let inv = T::from_acc(1.0 / sum);
        match (w, smoothing.is_some()) {
            (Some(w), true) => {
                for c in 0..n {
                    g[c] = k * w[c] - g[c] * inv * gamma_sum;
                }
            }
            _ => {
                for gc in g.iter_mut() {
                    *gc = k - *gc * inv * gamma_sum;
                }
            }
        }
        if let Some(t) = target {
            g[t] += at_target;
        }
    }
    value
}

/// Softmax cross-entropy of one contiguous row of logits `x` against class probabilities `y`
/// (the row's length), with label smoothing (`ỹ = (1 - ε) y + ε / C`) and optional class
/// weights `w`: `-sum_c w_c ỹ_c logp_c`, in one read of `x` and `y` from memory and one
/// exponential per element.
///
/// Per tile of [`BLOCK`] classes: `e_c = exp(x_c - m)` (into the gradient row when there is
/// one), `τ_c = w_c ỹ_c`, `τ_c (x_c - m)`, and their block sums `S`, `W`, `D`. With
/// `logp_c = (x_c - m) - log S` the value is `W log S - D` (for non-negative targets and
/// weights, two non-negative terms: no cancellation beyond the value's own). With the
/// cotangent `s` of the value, `grad` (when given) becomes `g_c = s (e_c W / S - τ_c)` and
/// `grad_target` the target's gradient `-s (1 - ε) w_c logp_c`. A `-inf` logit meeting a zero target gives NaN (`0 * inf`),
/// as the reference's `-(ỹ * logp).sum()` does.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn prob_xent_row<T: Float>(
    x: &[T],
    y: &[T],
    smoothing: Option<Smoothing<T>>,
    weights: Option<&[T]>,
    cot: T,
    mut grad: Option<&mut [T]>,
    grad_target: Option<&mut [T]>,
    scratch: &mut Vec<f64>,
) -> T {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let (keep, per_class) = smoothing.map_or((T::one(), T::zero()), |sm| (sm.keep, sm.per_class));
    let m = row_max(x);
    let (s, g) = (cot, &mut grad);
    let blocks = n.div_ceil(BLOCK);
    scratch.clear();
    scratch.resize(3 * blocks, 0.0);
    let (sums, rest) = scratch.split_at_mut(blocks);
    let (masses, shifted) = rest.split_at_mut(blocks);
    let mut tile = [T::zero(); BLOCK];
    let mut tau = [T::zero(); BLOCK];
    let mut d = [T::zero(); BLOCK];
    for b in 0..blocks {
        let start = b * BLOCK;
        let len = BLOCK.min(n - start);
        let (xs, ys) = (&x[start..start + len], &y[start..start + len]);
        let e: &mut [T] = match g.as_deref_mut() {
            Some(g) => &mut g[start..start + len],
            None => &mut tile[..len],
        };
        for c in 0..len {
            e[c] = (xs[c] - m).vexp();
        }
        match weights {
            None => {
                for c in 0..len {
                    tau[c] = ys[c] * keep + per_class;
                }
            }
            Some(w) => {
                let ws = &w[start..start + len];
                for c in 0..len {
                    tau[c] = ws[c] * (ys[c] * keep + per_class);
                }
            }
        }
        for c in 0..len {
            d[c] = tau[c] * (xs[c] - m);
        }
        sums[b] = block_sum(e);
        masses[b] = block_sum(&tau[..len]);
        shifted[b] = block_sum(&d[..len]);
    }
    let (sum, mass, shift) = (tree(sums), tree(masses), tree(shifted));
    let log_sum = sum.ln();
    let value = T::from_acc(log_sum * mass - shift);
    if let Some(g) = grad {
        let a = T::from_acc(s.acc() * mass / sum);
        for b in 0..blocks {
            let start = b * BLOCK;
            let len = BLOCK.min(n - start);
            let (gs, ys) = (&mut g[start..start + len], &y[start..start + len]);
            match weights {
                None => {
                    for c in 0..len {
                        gs[c] = gs[c] * a - s * (ys[c] * keep + per_class);
                    }
                }
                Some(w) => {
                    let ws = &w[start..start + len];
                    for c in 0..len {
                        gs[c] = gs[c] * a - s * (ws[c] * (ys[c] * keep + per_class));
                    }
                }
            }
        }
    }
    if let Some(gy) = grad_target {
        let (lse, k) = (T::from_acc(log_sum), -(s * keep));
        match weights {
            None => {
                for c in 0..n {
                    gy[c] = ((x[c] - m) - lse) * k;
                }
            }
            Some(w) => {
                for c in 0..n {
                    gy[c] = ((x[c] - m) - lse) * k * w[c];
                }
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_ties_take_half() {
        assert_eq!(clip_tie(0.5f64, 0.1, 0.9), (0.5, 1.0));
        assert_eq!(clip_tie(0.1f64, 0.1, 0.9), (0.1, 0.5));
        assert_eq!(clip_tie(0.9f64, 0.1, 0.9), (0.9, 0.5));
        assert_eq!(clip_tie(0.0f64, 0.1, 0.9), (0.1, 0.0));
        assert_eq!(clip_tie(1.0f64, 0.1, 0.9), (0.9, 0.0));
        assert!(clip_tie(f64::NAN, 0.1, 0.9).0.is_nan());
    }

    #[test]
    fn bce_logits_extremes() {
        // t = 1, x = -100: -log σ(-100) = 100 (softplus(100))
        let (v, d) = bce_logits(1.0f64, -100.0);
        assert_eq!(v, 100.0);
        assert_eq!(d, -1.0);
        let (v, d) = bce_logits(1.0f64, 1e4);
        assert_eq!((v, d), (0.0, 0.0));
        // x = 0: log 2, derivative 1/2 - t
        let (v, d) = bce_logits(0.25f64, 0.0);
        assert!((v - std::f64::consts::LN_2).abs() < 1e-16);
        assert_eq!(d, 0.25);
    }

    #[test]
    fn bce_clipped_bounds() {
        let (lo, hi) = (1e-7f64, 1.0 - 1e-7);
        // p = 0 with t = 1: clipped to 1e-7, no gradient
        let (v, d) = bce_clipped(1.0, 0.0, lo, hi);
        assert!((v + lo.ln()).abs() < 1e-12);
        assert_eq!(d, 0.0);
        // inside: d = (1 - t) / (1 - p) - t / p
        let (_, d) = bce_clipped(0.3f64, 0.6, lo, hi);
        assert!((d - (0.7 / 0.4 - 0.3 / 0.6)).abs() < 1e-15);
    }

    #[test]
    fn softmax_xent_value_and_gradient() {
        // logits [0, ln 3]: softmax [1/4, 3/4]; target one-hot class 1: value -ln(3/4),
        // gradient 2 (softmax - onehot) = [1/2, -1/2]; the target's gradient -2 logp
        let x = [0.0f64, 3.0f64.ln()];
        let (mut g, mut gy) = ([0.0; 2], [0.0; 2]);
        let mut scratch = Vec::new();
        let v = prob_xent_row(&x, &[0.0, 1.0], None, None, 2.0, Some(&mut g), Some(&mut gy), &mut scratch);
        assert!((v + 0.75f64.ln()).abs() < 1e-15);
        assert!((g[0] - 0.5).abs() < 1e-15 && (g[1] + 0.5).abs() < 1e-15);
        assert!((gy[0] - 2.0 * 4f64.ln()).abs() < 1e-15 && (gy[1] + 2.0 * 0.75f64.ln()).abs() < 1e-15);
        // huge logits stay finite; the index kernel agrees
        let v = prob_xent_row(&[1e4f64, -1e4], &[0.0, 1.0], None, None, 0.0, None, None, &mut scratch);
        assert_eq!(v, 2e4);
        assert_eq!(index_xent_row(&[1e4f64, -1e4], Some(1), None, None, None, &mut scratch), 2e4);
        // rows longer than a block, with weights and smoothing: against the plain formula
        let n = 3 * BLOCK + 7;
        let x: Vec<f64> = (0..n).map(|i| ((i * 31) % 17) as f64 - 8.0).collect();
        let y: Vec<f64> = (0..n).map(|i| ((i * 7) % 5) as f64 / (2.0 * n as f64)).collect();
        let w: Vec<f64> = (0..n).map(|i| 0.5 + (i % 3) as f64).collect();
        let sm = Smoothing { keep: 0.9, per_class: 0.1 / n as f64 };
        let lse = x.iter().map(|v| v.exp()).sum::<f64>().ln();
        let plain: f64 = (0..n).map(|c| -w[c] * (0.9 * y[c] + sm.per_class) * (x[c] - lse)).sum();
        let v = prob_xent_row(&x, &y, Some(sm), Some(&w), 0.0, None, None, &mut scratch);
        assert!((v - plain).abs() < 1e-12 * plain.abs(), "{v} vs {plain}");
    }

    #[test]
    fn renorm_xent_matches_finite_differences() {
        let x = [0.2f64, 0.5, 1.3];
        let t = [0.1f64, 0.6, 0.3];
        let (lo, hi) = (1e-7, 1.0 - 1e-7);
        let mut g = [0.0; 3];
        renorm_clip_xent_row(&x, |c| t[c], lo, hi, Some((1.0, &mut g)));
        for j in 0..3 {
            let h = 1e-6;
            let mut xp = x;
            xp[j] += h;
            let mut xm = x;
            xm[j] -= h;
            let fd = (renorm_clip_xent_row(&xp, |c| t[c], lo, hi, None)
                - renorm_clip_xent_row(&xm, |c| t[c], lo, hi, None))
                / (2.0 * h);
            assert!((fd - g[j]).abs() < 1e-8, "j={j}: {fd} vs {}", g[j]);
        }
        // a zero row gives NaN
        assert!(renorm_clip_xent_row(&[0.0f64, 0.0], |_| 0.5, lo, hi, None).is_nan());
    }
}
