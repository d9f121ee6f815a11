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
use crate::kernels::row_lanes::{softmax8, Grad8, Index8, Probs8, ROWS};
use crate::kernels::rows::{
    fill_sums, ln_sums, minus_max, plain, row_sums, shifted_exps, summed, update_row, Workspace,
};
use crate::kernels::stable::{clip_tie, exp_neg_abs};
use crate::kernels::sum::{join_lanes, sum_by, sum_map, sum_zip, tree, BLOCK, LANES};

/// Binary cross-entropy of a logit `x` against a target `t`, as Keras writes it on JAX:
/// `-t log σ(x) - (1 - t) log σ(-x)`, and its derivative in `x`,
/// `(1 - t) σ(x) - t σ(-x)` (no cancellation for large `|x|`).
///
/// One exponential `e = exp(-|x|)`, one `log1p` and one division serve all four of
/// `log σ(±x)` and `σ(±x)` (the same bits as computing each on its own).
#[inline(always)]
pub fn bce_logits<T: Float>(t: T, x: T) -> (T, T) {
    bce_logits_with(t, x, exp_neg_abs(x))
}

/// [`bce_logits`] given `e = `[`exp_neg_abs`]`(x)` (a first stage computed for a whole tile).
#[inline(always)]
pub fn bce_logits_with<T: Float>(t: T, x: T, e: T) -> (T, T) {
    let u = T::one() - t;
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
    let s = T::from_acc(sum_map(x, T::acc));
    let q = |c: usize| clip_tie(x[c] / s, lo, hi);
    let value = -sum_by(x.len(), |c| (target(c) * q(c).0.vln()).acc());
    if let Some((cot, g)) = grad {
        // the cotangent of each clipped probability, then back through x / s
        for (c, gc) in g.iter_mut().enumerate() {
            let (qc, slope) = q(c);
            *gc = -(target(c) / qc) * slope;
        }
        let dot = T::from_acc(sum_zip(g, x, |gc, xc| (gc * xc).acc()));
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

/// The class targets of a group's rows, as [`index_xent_rows`] reads them: one row at a time
/// on the row kernels, eight at a time on the lanes kernel. A closure `Fn(usize) ->
/// Option<usize>` is one ([`IndexClasses`] reads eight at once).
pub trait RowClasses {
    /// Row `k`'s class, `None` for an ignored row.
    fn class(&self, k: usize) -> Option<usize>;
    /// Rows `k..k + 8`: as [`Index8`] takes them, `-1` for an ignored row and a class beyond
    /// `i32` as `i32::MAX` (which [`softmax8`] declines).
    #[inline(always)]
    fn classes8(&self, k: usize) -> [i32; ROWS] {
        let mut class = [-1; ROWS];
        for (i, c) in class.iter_mut().enumerate() {
            *c = lane_class(self.class(k + i));
        }
        class
    }
}

/// A row's class as [`Index8`] takes it: `-1` for an ignored row, `i32::MAX` beyond `i32`.
#[inline(always)]
fn lane_class(class: Option<usize>) -> i32 {
    class.map_or(-1, |t| i32::try_from(t).unwrap_or(i32::MAX))
}

impl<F: Fn(usize) -> Option<usize>> RowClasses for F {
    #[inline(always)]
    fn class(&self, k: usize) -> Option<usize> {
        self(k)
    }
}

/// Class ids of consecutive rows (row `k`'s is `ids[k]`), `ignore` marking an ignored row; the
/// others are valid classes (the caller checked them). Eight rows are one branch-free select
/// over eight `i64` (a closure per row was about 15 instructions a row, with its bounds check,
/// its comparisons and the narrowing to `i32`).
#[derive(Clone, Copy)]
pub struct IndexClasses<'a> {
    /// The class ids.
    pub ids: &'a [i64],
    /// The id of an ignored row.
    pub ignore: i64,
}

impl RowClasses for IndexClasses<'_> {
    #[inline(always)]
    fn class(&self, k: usize) -> Option<usize> {
        let t = self.ids[k];
        // a negative id other than `ignore` (which the caller's check rules out) becomes a
        // class no row has
        (t != self.ignore).then(|| usize::try_from(t).unwrap_or(usize::MAX))
    }
    #[inline(always)]
    fn classes8(&self, k: usize) -> [i32; ROWS] {
        let Some(Ok(ids)) = self.ids.get(k..k + ROWS).map(<&[i64; ROWS]>::try_from) else {
            return std::array::from_fn(|i| lane_class(self.class(k + i)));
        };
        let mut class = [0; ROWS];
        for i in 0..ROWS {
            let t = ids[i];
            #[allow(clippy::manual_range_contains)] // `&`, not `contains`' `&&`: no branch
            let fits = (t >= 0) & (t <= i64::from(i32::MAX));
            class[i] = if t == self.ignore {
                -1
            } else if fits {
                t as i32
            } else {
                i32::MAX
            };
        }
        class
    }
}

/// A per-row scalar of a group's rows (the cotangents of their values), as the softmax
/// cross-entropy kernels read it: one row at a time, or eight. A closure `Fn(usize) -> T` is
/// one ([`IndexCots`] and [`RowsOrZero`] read eight at once).
pub trait RowScalars<T> {
    /// Row `k`'s.
    fn at(&self, k: usize) -> T;
    /// Rows `k..k + 8`'s.
    #[inline(always)]
    fn eight(&self, k: usize) -> [T; ROWS]
    where
        T: Copy,
    {
        let mut v = [self.at(k); ROWS];
        for (i, v) in v.iter_mut().enumerate().skip(1) {
            *v = self.at(k + i);
        }
        v
    }
}

impl<T, F: Fn(usize) -> T> RowScalars<T> for F {
    #[inline(always)]
    fn at(&self, k: usize) -> T {
        self(k)
    }
}

/// Row `k`'s scalar is `values[k]`, or zero without `values` (a Keras row group's
/// cotangents): eight rows are one copy.
#[derive(Clone, Copy)]
pub struct RowsOrZero<'a, T>(pub Option<&'a [T]>);

impl<T: Float> RowScalars<T> for RowsOrZero<'_, T> {
    #[inline(always)]
    fn at(&self, k: usize) -> T {
        self.0.map_or(T::zero(), |v| v[k])
    }
    #[inline(always)]
    fn eight(&self, k: usize) -> [T; ROWS] {
        match self.0.map(|v| v.get(k..k + ROWS).map(<&[T; ROWS]>::try_from)) {
            None => [T::zero(); ROWS],
            Some(Some(Ok(v))) => *v,
            Some(_) => std::array::from_fn(|i| self.at(k + i)),
        }
    }
}

/// The cotangents of the values of rows with class ids (row `k`'s id `ids[k]`): `scale`
/// times `each[k]` (or `scale` alone without `each`, a reduced loss's upstream) for a row whose
/// id is not `ignore`, zero for an ignored row. Computed as the kernels read them: a vector of
/// them per call was a serial pass, and new memory whose first touch cost more than the pass
/// (a page fault per 4 KiB, each call, once glibc had returned it to the system).
#[derive(Clone, Copy)]
pub struct IndexCots<'a, T> {
    /// The class ids.
    pub ids: &'a [i64],
    /// The id of an ignored row.
    pub ignore: i64,
    /// The common factor.
    pub scale: T,
    /// The per-row factors, when they differ.
    pub each: Option<&'a [T]>,
}

impl<'a, T> IndexCots<'a, T> {
    /// The cotangents from row `r0` on.
    #[inline(always)]
    pub fn from_row(self, r0: usize) -> Self {
        IndexCots { ids: &self.ids[r0..], each: self.each.map(|e| &e[r0..]), ..self }
    }
}

impl<T: Float> RowScalars<T> for IndexCots<'_, T> {
    #[inline(always)]
    fn at(&self, k: usize) -> T {
        if self.ids[k] != self.ignore {
            self.each.map_or(self.scale, |e| self.scale * e[k])
        } else {
            T::zero()
        }
    }
    #[inline(always)]
    fn eight(&self, k: usize) -> [T; ROWS] {
        let Some(Ok(ids)) = self.ids.get(k..k + ROWS).map(<&[i64; ROWS]>::try_from) else {
            return std::array::from_fn(|i| self.at(k + i));
        };
        let mut cot = [self.scale; ROWS];
        match self.each.map(|e| e.get(k..k + ROWS).map(<&[T; ROWS]>::try_from)) {
            None => {}
            Some(Some(Ok(each))) => {
                for (c, &e) in cot.iter_mut().zip(each) {
                    *c = self.scale * e;
                }
            }
            Some(_) => return std::array::from_fn(|i| self.at(k + i)),
        }
        for (c, &t) in cot.iter_mut().zip(ids) {
            if t == self.ignore {
                *c = T::zero();
            }
        }
        cot
    }
}

/// Softmax cross-entropy of a group of contiguous rows of logits `x` ([`rows`](super::rows),
/// `len` classes each) against class `target(k)` of row `k` (`None`: an ignored row, value 0),
/// with optional class weights `w` and label smoothing, in one read of the rows from memory and
/// one exponential per element; row `k`'s value lands in `values[k]`:
///
/// 1. the row maxima `m` and, with smoothing but no class weights, `sum_c (x_c - m)` (from the
///    same pass);
/// 2. `e_c = exp(x_c - m)` (written into the gradient rows when there are some) and their
///    per-row sums `S`, and with smoothing and class weights `sum_c w_c (x_c - m)`;
/// 3. with `grad`: `g_c = s * d value / d x_c` with `s = cot(k)`, from `p_c = e_c / S`, in
///    place.
///
/// The value is `-(1 - ε) w_t logp_t - ε/C sum_c w_c logp_c` with
/// `logp_c = (x_c - m) - log S`; the gradient with respect to the log-probabilities is
/// `γ_c = -s (ε/C w_c + [c = t] (1 - ε) w_t)` and with respect to the logits
/// `γ_c - p_c sum_k γ_k`. `weights` are the class weights with their sum (the same for every
/// row, so the caller computes it once).
///
/// Rows of up to [`MAX_LEN`](super::row_lanes::MAX_LEN) classes go eight at a time across SIMD
/// lanes ([`softmax8`]) where the type and the CPU allow it, with the same bits; weighted label
/// smoothing (a per-class gradient offset) stays on the row kernels.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn index_xent_rows<T: Float>(
    x: &[T],
    len: usize,
    target: impl RowClasses,
    smoothing: Option<Smoothing<T>>,
    weights: Option<(&[T], f64)>,
    cot: impl RowScalars<T>,
    grad: Option<&mut [T]>,
    values: &mut [T],
    work: &mut Workspace<T>,
) {
    let rows = values.len();
    let n = rows * len;
    let x = &x[..n];
    let w = weights.map(|(w, _)| &w[..len]);
    let total_weight = weights.map_or(len as f64, |(_, total)| total);
    let Workspace { tile, parts, max, sum, lse, aux, .. } = work.ready();
    let (max, sum, lse, shifted) = (&mut max[..rows], &mut sum[..rows], &mut lse[..rows], &mut aux[0][..rows]);
    let mut g = grad.map(|g| &mut g[..n]);
    let wt = |c: usize| w.map_or(T::one(), |w| w[c]);
    let (keep, per_class) = smoothing.map_or((T::one(), T::zero()), |sm| (sm.keep, sm.per_class));
    // Short rows go eight at a time across SIMD lanes where the type and the CPU allow
    // ([`softmax8`], the same bits as the row kernels, values included), from each row's class
    // and cotangent read once; the rest, and every row otherwise, through the row kernels.
    // Weighted label smoothing (`kk w_c` differs by class) stays on the latter.
    let mut head = 0;
    if !(smoothing.is_some() && w.is_some()) {
        while head + ROWS <= rows {
            let (block, at) = (head..head + ROWS, head * len);
            let (Ok(m), Ok(s), Ok(v)) = (
                <&mut [T; ROWS]>::try_from(&mut max[block.clone()]),
                <&mut [f64; ROWS]>::try_from(&mut sum[block.clone()]),
                <&mut [T; ROWS]>::try_from(&mut values[block]),
            ) else {
                break;
            };
            // a class beyond `i32` makes `softmax8` decline (then the row kernels fail)
            let class = target.classes8(head);
            let mut weight = [T::one(); ROWS];
            if let Some(w) = w {
                for (wi, &c) in weight.iter_mut().zip(&class) {
                    if let Some(&wc) = usize::try_from(c).ok().and_then(|c| w.get(c)) {
                        *wi = wc;
                    }
                }
            }
            let smoothing = smoothing.map(|sm| (sm.keep, sm.per_class));
            let index = Index8 { class, weight, smoothing, values: v };
            // a `match`, not `Option::map`: the closure was called, not inlined
            let grad = match g.as_deref_mut() {
                Some(g) => Some(Grad8::Index {
                    rows: &mut g[at..at + ROWS * len],
                    cot: cot.eight(head),
                    total_weight: T::from_acc(total_weight),
                }),
                None => None,
            };
            if !softmax8(&x[at..], len, m, s, Some(index), None, grad) {
                break;
            }
            head += ROWS;
        }
    }
    if head == rows {
        return;
    }
    // label smoothing's sum of `x - m` comes with the maxima (the same pass) when it is
    // unweighted; weighted, it is a pass of its own
    let fused_shifted = (smoothing.is_some() && w.is_none()).then_some(&mut shifted[head..]);
    let rest = &x[head * len..];
    shifted_exps(
        rest,
        len,
        &mut max[head..],
        g.as_deref_mut().map(|g| &mut g[head * len..]),
        tile,
        parts,
        &mut sum[head..],
        fused_shifted,
        None,
        plain(),
    );
    let max = &*max;
    if let (Some(_), Some(w)) = (smoothing, w) {
        row_sums(len, rows, tile, parts, shifted, |k, c0, v: &mut [T]| {
            let (xs, ws, m) = (&x[k * len + c0..k * len + c0 + v.len()], &w[c0..c0 + v.len()], max[k]);
            for ((v, &xc), &wc) in v.iter_mut().zip(xs).zip(ws) {
                *v = wc * (xc - m);
            }
        });
    }
    ln_sums(&sum[head..], &mut lse[head..]);
    for (k, value) in values.iter_mut().enumerate().skip(head) {
        let (m, lse, t) = (max[k], lse[k], target.class(k));
        let nll = t.map_or(T::zero(), |t| -(((x[k * len + t] - m) - lse) * wt(t)));
        *value = match smoothing {
            None => nll,
            Some(sm) => {
                let smooth = if t.is_some() { T::from_acc(lse.acc() * total_weight - shifted[k]) } else { T::zero() };
                sm.keep * nll + smooth * sm.per_class
            }
        };
    }
    let Some(g) = g else { return };
    for (k, g) in g.chunks_exact_mut(len).enumerate().skip(head) {
        // row k's gradient is `kk w_c - p_c gamma_sum`, plus `at_target` at its target (the
        // lanes' `Grad8::Index` has the same expressions)
        let s = cot.at(k);
        let kk = -(per_class * s);
        let at_target = target.class(k).map_or(T::zero(), |t| -(keep * s * wt(t)));
        let gamma_sum = kk * T::from_acc(total_weight) + at_target;
        let inv = T::from_acc(1.0 / sum[k]);
        match (w, smoothing.is_some()) {
            (Some(w), true) => {
                for (gc, &wc) in g.iter_mut().zip(w) {
                    *gc = kk * wc - *gc * inv * gamma_sum;
                }
            }
            _ => {
                for gc in g.iter_mut() {
                    *gc = kk - *gc * inv * gamma_sum;
                }
            }
        }
        if let Some(t) = target.class(k) {
            g[t] += at_target;
        }
    }
}

/// Softmax cross-entropy of a group of contiguous rows of logits `x` ([`rows`](super::rows),
/// `len` classes each) against class probabilities `y` (the same shape), with label smoothing
/// (`ỹ = (1 - ε) y + ε / C`) and optional class weights `w`: row `k`'s value
/// `-sum_c w_c ỹ_c logp_c` lands in `values[k]`, in one read of `x` and `y` from memory and
/// one exponential per element.
///
/// Per row: `e_c = exp(x_c - m)` (into the gradient rows when there are some),
/// `τ_c = w_c ỹ_c`, `τ_c (x_c - m)`, and their sums `S`, `W`, `D`. With
/// `logp_c = (x_c - m) - log S` the value is `W log S - D` (for non-negative targets and
/// weights, two non-negative terms: no cancellation beyond the value's own). With the
/// cotangent `s = cot(k)` of the value, `grad` (when given) becomes `g_c = s (e_c W / S - τ_c)`
/// and `grad_target` the target's gradient `-s (1 - ε) w_c logp_c`. A `-inf` logit meeting a
/// zero target gives NaN (`0 * inf`), as the reference's `-(ỹ * logp).sum()` does.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn prob_xent_rows<T: Float>(
    x: &[T],
    y: &[T],
    len: usize,
    smoothing: Option<Smoothing<T>>,
    weights: Option<&[T]>,
    cot: impl RowScalars<T>,
    grad: Option<&mut [T]>,
    grad_target: Option<&mut [T]>,
    values: &mut [T],
    work: &mut Workspace<T>,
) {
    let rows = values.len();
    let n = rows * len;
    let (x, y) = (&x[..n], &y[..n]);
    let w = weights.map(|w| &w[..len]);
    let (keep, per_class) = smoothing.map_or((T::one(), T::zero()), |sm| (sm.keep, sm.per_class));
    let Workspace { tile, parts, max, sum, lse, aux, aux_parts } = work.ready();
    let [masses, shifted] = aux;
    let (max, sum, lse) = (&mut max[..rows], &mut sum[..rows], &mut lse[..rows]);
    let (masses, shifted) = (&mut masses[..rows], &mut shifted[..rows]);
    let mut g = grad.map(|g| &mut g[..n]);
    // short rows eight at a time across SIMD lanes where the type and the CPU allow
    // ([`softmax8`], the same bits as the row kernels), the rest through the row kernels
    let mut head = 0;
    while head + ROWS <= rows {
        let (block, at) = (head..head + ROWS, head * len);
        let (Ok(m), Ok(s), Ok(masses), Ok(shifted)) = (
            <&mut [T; ROWS]>::try_from(&mut max[block.clone()]),
            <&mut [f64; ROWS]>::try_from(&mut sum[block.clone()]),
            <&mut [f64; ROWS]>::try_from(&mut masses[block.clone()]),
            <&mut [f64; ROWS]>::try_from(&mut shifted[block]),
        ) else {
            break;
        };
        let probs = Probs8 { y: &y[at..], keep, per_class, weights: w, masses, shifted };
        let grad = g.as_deref_mut().map(|g| Grad8::Probs { rows: &mut g[at..at + ROWS * len], cot: cot.eight(head) });
        if !softmax8(&x[at..], len, m, s, None, Some(probs), grad) {
            break;
        }
        head += ROWS;
    }
    if head < rows {
        // long rows take the targets' two sums from the pass that writes `x - m` for the
        // exponentials, run by run ([`TargetRun`]); short ones from tiles of τ afterwards (below):
        // the same bits either way
        let long = len > BLOCK;
        let (x, y) = (&x[head * len..], &y[head * len..]);
        let (row_masses, row_shifted) = (&mut masses[head..], &mut shifted[head..]);
        let [mass_parts, shifted_parts] = aux_parts;
        let mut minus = minus_max(x, len);
        shifted_exps(
            x,
            len,
            &mut max[head..],
            g.as_deref_mut().map(|g| &mut g[head * len..]),
            tile,
            parts,
            &mut sum[head..],
            None,
            Some(y.as_ptr()),
            Some(
                #[inline(always)]
                |k, c0, m, v: &mut [T]| {
                    if !long {
                        return minus(k, c0, m, v);
                    }
                    if c0 == 0 {
                        mass_parts.clear();
                        shifted_parts.clear();
                    }
                    let span = k * len + c0..k * len + c0 + v.len();
                    let run = TargetRun {
                        x: &x[span.clone()],
                        y: &y[span],
                        w: w.map(|w| &w[c0..c0 + v.len()]),
                        m,
                        keep,
                        per_class,
                        v,
                        masses: mass_parts,
                        shifted: shifted_parts,
                    };
                    let end = c0 + run.v.len() == len;
                    pulp::Arch::new().dispatch(run);
                    if end {
                        row_masses[k] = tree(mass_parts);
                        row_shifted[k] = tree(shifted_parts);
                    }
                },
            ),
        );
    }
    if head < rows && len <= BLOCK {
        let (x, y, max) = (&x[head * len..], &y[head * len..], &max[head..]);
        let tau = smoothed_targets(y, w, len, keep, per_class);
        // one pass over the targets for both sums: W from the tiles of τ, then D from the same
        // tiles times x - m (a tile starts at row k, class c0, and may run over whole rows)
        fill_sums(
            len,
            rows - head,
            None,
            tile,
            parts,
            &mut shifted[head..],
            Some(&mut masses[head..]),
            tau,
            summed(
                #[inline(always)]
                |k, c0, v: &mut [T]| {
                    let (mut r, mut c, mut rest) = (k, c0, v);
                    while !rest.is_empty() {
                        let (piece, tail) = rest.split_at_mut((len - c).min(rest.len()));
                        let (xs, m) = (&x[r * len + c..r * len + c + piece.len()], max[r]);
                        for (v, &xc) in piece.iter_mut().zip(xs) {
                            *v *= xc - m;
                        }
                        (r, c, rest) = (r + 1, 0, tail);
                    }
                },
            ),
        );
    }
    let max = &*max;
    ln_sums(sum, lse);
    for (k, value) in values.iter_mut().enumerate() {
        *value = T::from_acc(lse[k].acc() * masses[k] - shifted[k]);
    }
    if let Some(g) = g {
        for (k, (gs, ys)) in g.chunks_exact_mut(len).zip(y.chunks_exact(len)).enumerate().skip(head) {
            let s = cot.at(k);
            let a = T::from_acc(s.acc() * masses[k] / sum[k]);
            match w {
                None => {
                    for (gc, &yc) in gs.iter_mut().zip(ys) {
                        *gc = *gc * a - s * (yc * keep + per_class);
                    }
                }
                Some(w) => {
                    for ((gc, &yc), &wc) in gs.iter_mut().zip(ys).zip(w) {
                        *gc = *gc * a - s * (wc * (yc * keep + per_class));
                    }
                }
            }
        }
    }
    if let Some(gy) = grad_target {
        for (k, (gy, xs)) in gy[..n].chunks_exact_mut(len).zip(x.chunks_exact(len)).enumerate() {
            let (m, lse, kk) = (max[k], lse[k], -(cot.at(k) * keep));
            match w {
                None => update_row(gy, xs, |_, xc| ((xc - m) - lse) * kk),
                Some(w) => {
                    for ((gc, &xc), &wc) in gy.iter_mut().zip(xs).zip(w) {
                        *gc = ((xc - m) - lse) * kk * wc;
                    }
                }
            }
        }
    }
}

/// One run of a long row for [`prob_xent_rows`] (classes `c0..c0 + v.len()` of row `k`): `v_c
/// = x_c - m` for the exponentials that follow, and per block of [`BLOCK`] classes the sums of
/// `τ_c = w_c ((1 - ε) y_c + ε / C)` and of `τ_c (x_c - m)`, appended to `masses` and
/// `shifted`. One pass over `x` and `y` where the tiles of [`fill_sums`] took three, with the
/// same bits: the same `τ_c` and products, element `i` of a block in lane `i % LANES`, the
/// lanes joined by [`join_lanes`], as [`block_sum`](crate::kernels::sum::block_sum) sums a tile.
struct TargetRun<'a, T> {
    x: &'a [T],
    y: &'a [T],
    w: Option<&'a [T]>,
    m: T,
    keep: T,
    per_class: T,
    v: &'a mut [T],
    masses: &'a mut Vec<f64>,
    shifted: &'a mut Vec<f64>,
}

impl<T: Float> pulp::WithSimd for TargetRun<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let TargetRun { x, y, w, m, keep, per_class, v, masses, shifted } = self;
        // one body per case, so that the unweighted loop carries no weights
        match w {
            None => target_blocks(x, y, None, m, keep, per_class, v, masses, shifted),
            Some(w) => target_blocks(x, y, Some(w), m, keep, per_class, v, masses, shifted),
        }
    }
}

/// The loop of [`TargetRun`], written over arrays of [`LANES`] so that it vectorises.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn target_blocks<T: Float>(
    x: &[T],
    y: &[T],
    w: Option<&[T]>,
    m: T,
    keep: T,
    per_class: T,
    v: &mut [T],
    masses: &mut Vec<f64>,
    shifted: &mut Vec<f64>,
) {
    let n = v.len();
    let (x, y) = (&x[..n], &y[..n]);
    let mut at = 0;
    for vb in v.chunks_mut(BLOCK) {
        let (mut lw, mut ld) = ([0.0f64; LANES], [0.0f64; LANES]);
        let (xb, yb) = (&x[at..at + vb.len()], &y[at..at + vb.len()]);
        let wb = w.map(|w| &w[at..at + vb.len()]);
        let mut groups = vb.chunks_exact_mut(LANES);
        let mut i = 0;
        for group in &mut groups {
            let (Ok(out), Ok(xs), Ok(ys)) = (
                <&mut [T; LANES]>::try_from(group),
                <&[T; LANES]>::try_from(&xb[i..i + LANES]),
                <&[T; LANES]>::try_from(&yb[i..i + LANES]),
            ) else {
                break;
            };
            let ws = match wb {
                Some(wb) => <&[T; LANES]>::try_from(&wb[i..i + LANES]).ok(),
                None => None,
            };
            target_lanes(xs, ys, ws, m, keep, per_class, out, &mut lw, &mut ld);
            i += LANES;
        }
        // the rest of a short last block as one more padded group; the padded lanes are then
        // restored, which leaves every lane as `block_sum`'s padding (an added `+0`) leaves it
        let rest = groups.into_remainder();
        if !rest.is_empty() {
            let k = rest.len();
            let (mut xs, mut ys, mut ws, mut out) =
                ([m; LANES], [T::zero(); LANES], [T::zero(); LANES], [T::zero(); LANES]);
            xs[..k].copy_from_slice(&xb[i..]);
            ys[..k].copy_from_slice(&yb[i..]);
            let ws = match wb {
                Some(wb) => {
                    ws[..k].copy_from_slice(&wb[i..]);
                    Some(&ws)
                }
                None => None,
            };
            // padded lanes (`x = m`, `y = 0`, `w = 0`) still get terms (unweighted, `τ = ε / C`):
            // they are dropped below, those lanes re-set to what they held
            let (keep_w, keep_d) = (lw, ld);
            target_lanes(&xs, &ys, ws, m, keep, per_class, &mut out, &mut lw, &mut ld);
            for l in k..LANES {
                (lw[l], ld[l]) = (keep_w[l], keep_d[l]);
            }
            rest.copy_from_slice(&out[..k]);
        }
        masses.push(join_lanes(&lw));
        shifted.push(join_lanes(&ld));
        at += vb.len();
    }
}

/// One group of [`LANES`] elements of [`target_blocks`]: `out = x - m`, and `τ` and `τ (x - m)`
/// added to the lanes.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn target_lanes<T: Float>(
    xs: &[T; LANES],
    ys: &[T; LANES],
    ws: Option<&[T; LANES]>,
    m: T,
    keep: T,
    per_class: T,
    out: &mut [T; LANES],
    lw: &mut [f64; LANES],
    ld: &mut [f64; LANES],
) {
    let mut t = [T::zero(); LANES];
    for l in 0..LANES {
        t[l] = ys[l] * keep + per_class;
    }
    if let Some(ws) = ws {
        for l in 0..LANES {
            t[l] = ws[l] * t[l];
        }
    }
    for l in 0..LANES {
        let d = xs[l] - m;
        out[l] = d;
        lw[l] += t[l].acc();
        ld[l] += (t[l] * d).acc();
    }
}

/// The `fill` of [`fill_sums`] that writes `τ_c = w_c ((1 - ε) y_c + ε / C)` of row `k`,
/// classes `c0..c0 + v.len()` (rows of `len` targets `y`, class weights `w`).
#[inline(always)]
fn smoothed_targets<'a, T: Float>(
    y: &'a [T],
    w: Option<&'a [T]>,
    len: usize,
    keep: T,
    per_class: T,
) -> impl Fn(usize, usize, &mut [T]) + 'a {
    #[inline(always)]
    move |k: usize, c0: usize, v: &mut [T]| {
        let ys = &y[k * len + c0..k * len + c0 + v.len()];
        match w {
            None => {
                for (v, &yc) in v.iter_mut().zip(ys) {
                    *v = yc * keep + per_class;
                }
            }
            Some(w) => {
                let ws = &w[c0..c0 + v.len()];
                for ((v, &yc), &wc) in v.iter_mut().zip(ys).zip(ws) {
                    *v = wc * (yc * keep + per_class);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::sum::BLOCK;

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

    /// Long rows of probability targets (more than a block of classes) take the targets' two
    /// sums from the pass that writes `x - m` ([`TargetRun`]): each value must be `W ln S - D`
    /// from the blocked sums of `e^(x - m)`, `τ` and `τ (x - m)` ([`sum_by`]), bit for bit, also
    /// for a last block shorter than the lanes, with weights and smoothing, a `-inf` logit and
    /// zero targets.
    fn long_probability_rows_sum_as_sum_by<T: Float>() {
        for len in [BLOCK + 1, 300, 1000, 1043, 4 * BLOCK + 16 + 3] {
            let rows = 2;
            let x: Vec<T> = (0..rows * len)
                .map(|i| if i == len + 7 { T::neg_infinity() } else { T::of(((i * 7919) % 1601) as f64 / 100.0 - 8.0) })
                .collect();
            let y: Vec<T> = (0..rows * len)
                .map(|i| if i % 5 == 0 { T::zero() } else { T::of(((i * 31) % 97) as f64 / 97.0) })
                .collect();
            let w: Vec<T> = (0..len).map(|c| T::of(0.25 + (c % 7) as f64 / 4.0)).collect();
            for (smoothing, weighted) in [(None, false), (Some(0.1), false), (None, true), (Some(0.2), true)] {
                let sm = smoothing.map(|e: f64| Smoothing { keep: T::of(1.0 - e), per_class: T::of(e / len as f64) });
                let (keep, per_class) = sm.map_or((T::one(), T::zero()), |s| (s.keep, s.per_class));
                let weights = weighted.then_some(&w[..]);
                let mut values = vec![T::zero(); rows];
                let mut work = Workspace::default();
                let cot = |_: usize| T::one();
                prob_xent_rows(&x, &y, len, sm, weights, cot, None, None, &mut values, &mut work);
                for (k, &got) in values.iter().enumerate() {
                    let (xs, ys) = (&x[k * len..(k + 1) * len], &y[k * len..(k + 1) * len]);
                    let m = xs.iter().fold(T::neg_infinity(), |a, &b| if b > a { b } else { a });
                    let tau = |c: usize| {
                        let t = ys[c] * keep + per_class;
                        if weighted {
                            w[c] * t
                        } else {
                            t
                        }
                    };
                    let s = sum_by(len, |c| (xs[c] - m).vexp().acc());
                    let mass = sum_by(len, |c| tau(c).acc());
                    let shifted = sum_by(len, |c| (tau(c) * (xs[c] - m)).acc());
                    let lse: T = crate::kernels::rows::ln_sum(s);
                    let want = T::from_acc(lse.acc() * mass - shifted);
                    assert_eq!(got.f64().to_bits(), want.f64().to_bits(), "len {len} row {k} {smoothing:?} {weighted}");
                }
            }
        }
    }

    #[test]
    fn long_probability_rows_sum_as_sum_by_f32() {
        long_probability_rows_sum_as_sum_by::<f32>();
    }

    #[test]
    fn long_probability_rows_sum_as_sum_by_f64() {
        long_probability_rows_sum_as_sum_by::<f64>();
    }

    #[test]
    fn softmax_xent_value_and_gradient() {
        // logits [0, ln 3]: softmax [1/4, 3/4]; target one-hot class 1: value -ln(3/4),
        // gradient 2 (softmax - onehot) = [1/2, -1/2]; the target's gradient -2 logp
        let x = [0.0f64, 3.0f64.ln()];
        let (mut g, mut gy, mut v) = ([0.0; 2], [0.0; 2], [0.0]);
        let mut work = Workspace::default();
        prob_xent_rows(&x, &[0.0, 1.0], 2, None, None, |_| 2.0, Some(&mut g), Some(&mut gy), &mut v, &mut work);
        assert!((v[0] + 0.75f64.ln()).abs() < 1e-15);
        assert!((g[0] - 0.5).abs() < 1e-15 && (g[1] + 0.5).abs() < 1e-15);
        assert!((gy[0] - 2.0 * 4f64.ln()).abs() < 1e-15 && (gy[1] + 2.0 * 0.75f64.ln()).abs() < 1e-15);
        // huge logits stay finite; the index kernel agrees
        prob_xent_rows(&[1e4f64, -1e4], &[0.0, 1.0], 2, None, None, |_| 0.0, None, None, &mut v, &mut work);
        assert_eq!(v[0], 2e4);
        index_xent_rows(&[1e4f64, -1e4], 2, |_| Some(1), None, None, |_| 0.0, None, &mut v, &mut work);
        assert_eq!(v[0], 2e4);
        // rows longer than a block, with weights and smoothing: against the plain formula
        let n = 3 * BLOCK + 7;
        let x: Vec<f64> = (0..n).map(|i| ((i * 31) % 17) as f64 - 8.0).collect();
        let y: Vec<f64> = (0..n).map(|i| ((i * 7) % 5) as f64 / (2.0 * n as f64)).collect();
        let w: Vec<f64> = (0..n).map(|i| 0.5 + (i % 3) as f64).collect();
        let sm = Smoothing { keep: 0.9, per_class: 0.1 / n as f64 };
        let lse = x.iter().map(|v| v.exp()).sum::<f64>().ln();
        let plain: f64 = (0..n).map(|c| -w[c] * (0.9 * y[c] + sm.per_class) * (x[c] - lse)).sum();
        prob_xent_rows(&x, &y, n, Some(sm), Some(&w), |_| 0.0, None, None, &mut v, &mut work);
        assert!((v[0] - plain).abs() < 1e-12 * plain.abs(), "{} vs {plain}", v[0]);
    }

    #[test]
    fn eight_rows_at_once_read_what_single_rows_read() {
        // class ids: ordinary, the ignored value, ids beyond i32 either side, -1 when it is not
        // the ignored value; every window of eight
        let ids: Vec<i64> =
            vec![0, 5, -100, 31, 1 << 31, i64::from(i32::MAX), -1, 7, i64::MIN, 2, -100, i64::MAX, 3, 4, 5, 6];
        for ignore in [-100, -1, 5] {
            let classes = IndexClasses { ids: &ids, ignore };
            let by_row = |k: usize| classes.class(k);
            for k in 0..=ids.len() - ROWS {
                let want = RowClasses::classes8(&by_row, k);
                assert_eq!(classes.classes8(k), want, "ignore {ignore}, rows {k}..");
                // the closure's own default: -1 for ignored rows, i32::MAX beyond i32
                for (i, &c) in want.iter().enumerate() {
                    let t = ids[k + i];
                    let expected =
                        if t == ignore { -1 } else { i32::try_from(t).ok().filter(|&t| t >= 0).unwrap_or(i32::MAX) };
                    assert_eq!(c, expected, "id {t}, ignore {ignore}");
                }
            }
            // exactly eight ids: the whole slice is one window
            let short = IndexClasses { ids: &ids[..ROWS], ignore };
            assert_eq!(short.classes8(0), RowClasses::classes8(&|k: usize| short.class(k), 0));
        }
        // cotangents: the scale, times the per-row factor when there is one, 0 for an ignored
        // row (a -0.0 factor keeps its sign, as the product does)
        let each: Vec<f32> = (0..ids.len()).map(|i| i as f32 * 0.5 - 1.0).collect();
        for (ignore, scale, each) in [(-100, 0.25f32, None), (5, -3.0, Some(&each[..])), (-1, 1.0, Some(&each[..]))] {
            let cots = IndexCots { ids: &ids, ignore, scale, each };
            for r0 in [0, 3] {
                let cots = cots.from_row(r0);
                for k in 0..=ids.len() - r0 - ROWS {
                    let want: [f32; ROWS] = std::array::from_fn(|i| {
                        let r = r0 + k + i;
                        if ids[r] == ignore {
                            0.0
                        } else {
                            each.map_or(scale, |e| scale * e[r])
                        }
                    });
                    let got = cots.eight(k);
                    assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "rows {r0} + {k}..");
                    assert_eq!(got.map(f32::to_bits), (|r: usize| cots.at(r)).eight(k).map(f32::to_bits));
                }
            }
        }
        // a Keras group's cotangents: a copy of eight, or zeros without a backward pass
        for k in 0..=each.len() - ROWS {
            let want: [f32; ROWS] = std::array::from_fn(|i| each[k + i]);
            assert_eq!(RowsOrZero(Some(&each)).eight(k), want);
            assert_eq!(RowsOrZero::<f32>(None).eight(k), [0.0; ROWS]);
        }
        assert_eq!(RowsOrZero(Some(&each[..ROWS])).at(3), each[3]);
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
