//! Rows along one axis of a C-order tensor.
//!
//! A shape `(d0, ..., d_{k-1}, C, d_{k+1}, ...)` with the axis `k` of length `C` is seen as
//! `outer x C x inner` with `outer = d0...d_{k-1}` and `inner = d_{k+1}...`; row `r` (of
//! `outer * inner`) holds the elements `base(r) + c * inner` for `c < C`. Row `r` corresponds to
//! flat position `r` of the shape with the axis removed, in C order.

use crate::float::Float;
use crate::kernels::row_lanes::{softmax8, ROWS};
use crate::kernels::rows::{ln_sums, plain, row_sums, shifted_exps, update_row, Workspace};
use crate::kernels::sum::{join_lanes, LANES};
use crate::kernels::vmath::VMath;

/// The `outer x len x inner` decomposition of a shape around one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisLayout {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Length of the axis.
    pub len: usize,
    /// Product of the dimensions after the axis (the stride of the axis).
    pub inner: usize,
}

impl AxisLayout {
    /// The layout of `shape` around `axis` (which must be `< shape.len()`).
    pub fn new(shape: &[usize], axis: usize) -> Self {
        AxisLayout {
            outer: shape[..axis].iter().product(),
            len: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        }
    }

    /// Number of rows (`outer * inner`).
    #[inline]
    pub fn rows(&self) -> usize {
        self.outer * self.inner
    }

    /// Flat index of element 0 of row `r`.
    #[inline]
    pub fn base(&self, r: usize) -> usize {
        // contiguous rows (the common case) without the division: a 64-bit `div` costs tens of
        // cycles, more than a row of a gather such as nll's
        if self.inner <= 1 {
            return r * self.len;
        }
        let (o, i) = (r / self.inner, r % self.inner);
        o * self.len * self.inner + i
    }

    /// Flat index of element `c` of row `r`.
    #[inline]
    pub fn at(&self, r: usize, c: usize) -> usize {
        self.base(r) + c * self.inner
    }

    /// Copies row `r` of `data` into `row` (length `len`).
    #[inline]
    pub fn gather<T: Copy>(&self, data: &[T], r: usize, row: &mut [T]) {
        let b = self.base(r);
        if self.inner == 1 {
            row.copy_from_slice(&data[b..b + self.len]);
        } else {
            for (c, v) in row.iter_mut().enumerate() {
                *v = data[b + c * self.inner];
            }
        }
    }

    /// Writes `row` into row `r` of `data`.
    #[inline]
    pub fn scatter<T: Copy>(&self, row: &[T], r: usize, data: &mut [T]) {
        let b = self.base(r);
        if self.inner == 1 {
            data[b..b + self.len].copy_from_slice(row);
        } else {
            for (c, v) in row.iter().enumerate() {
                data[b + c * self.inner] = *v;
            }
        }
    }
}

/// The maximum of a row's entries that are not NaN (`-inf` for a row of none), the shift of
/// the softmax kernels; in [`LANES`] vertical lanes so that it vectorises.
///
/// NaN entries are skipped rather than propagated: `x > lane ? x : lane` is one `vmaxps`,
/// where a NaN-propagating select is four operations in one dependency chain. The kernels do not
/// need the maximum to carry NaN: a NaN entry makes its own `exp(x - m)`, and so the row's sum
/// of exponentials and every result of the row, NaN (as the reference's NaN maximum does).
#[inline(always)]
pub fn row_max<T: Float>(x: &[T]) -> T {
    lanes_max::<T, false>(
        x,
        #[inline(always)]
        |_, v| v,
    )
    .0
}

/// [`row_max`] and the row's sum (widened to `f64`, in [`LANES`] interleaved partial sums joined
/// by a fixed tree) in the same pass: label smoothing's `sum_c (x_c - m) = sum_c x_c - C m`
/// costs no pass of its own.
#[inline(always)]
pub fn row_max_sum<T: Float>(x: &[T]) -> (T, f64) {
    lanes_max::<T, true>(
        x,
        #[inline(always)]
        |_, v| v,
    )
}

/// Rows of at most this many entries take the masked whole-row loop of [`row_max_except`].
pub const MASKED_ROW: usize = 4 * LANES;

/// [`row_max`] of the entries other than `x[skip]` (`-inf` when there are none; a `skip` past
/// the end skips nothing). Rows of up to [`MASKED_ROW`] entries: one vector loop over the whole
/// row, the skipped lane masked by a comparison of 32-bit indices (the two pieces either side of
/// `skip` vary in length and leave scalar remainders, which on a few dozen entries cost as much
/// as the vector part). Longer rows: the two pieces, in plain vector loops (there the masked
/// loop is several times slower).
#[inline(always)]
pub fn row_max_except<T: Float>(x: &[T], skip: usize) -> T {
    if x.len() > MASKED_ROW {
        let (a, b) = (row_max(&x[..skip.min(x.len())]), row_max(x.get(skip + 1..).unwrap_or(&[])));
        return if b > a { b } else { a };
    }
    // indices of a short row fit in u32; u32::MAX is none of them
    let skip32 = u32::try_from(skip).unwrap_or(u32::MAX);
    lanes_max::<T, false>(
        x,
        #[inline(always)]
        |c, v| if c == skip32 { T::neg_infinity() } else { v },
    )
    .0
}

/// The NaN-skipping maximum of `value(c, x[c])` over a row (`c` as `u32`, which the caller
/// keeps in range), in [`LANES`] vertical lanes; with `SUM`, also the sum of the row's `x[c]`
/// in as many `f64` lanes (else 0).
#[inline(always)]
fn lanes_max<T: Float, const SUM: bool>(x: &[T], value: impl Fn(u32, T) -> T) -> (T, f64) {
    #[inline(always)]
    fn max_of<T: Float>(lane: T, v: T) -> T {
        if v > lane {
            v
        } else {
            lane
        }
    }
    let mut lanes = [T::neg_infinity(); LANES];
    let mut sums = [0.0f64; LANES];
    let mut groups = x.chunks_exact(LANES);
    let mut base = 0u32;
    for g in &mut groups {
        if let Ok(g) = <&[T; LANES]>::try_from(g) {
            for l in 0..LANES {
                lanes[l] = max_of(lanes[l], value(base.wrapping_add(l as u32), g[l]));
                if SUM {
                    sums[l] += g[l].acc();
                }
            }
        }
        base = base.wrapping_add(LANES as u32);
    }
    // the remainder as one more group padded with -inf (which no lane takes) and, for the sum,
    // +0 (which changes no lane's bits): indexed by a run-time count, the lanes themselves
    // would live in memory for the whole row
    let rest = groups.remainder();
    if !rest.is_empty() {
        let mut last = [T::neg_infinity(); LANES];
        let mut last_sum = [0.0f64; LANES];
        for ((p, q), &v) in last.iter_mut().zip(&mut last_sum).zip(rest) {
            (*p, *q) = (v, v.acc());
        }
        for l in 0..LANES {
            lanes[l] = max_of(lanes[l], value(base.wrapping_add(l as u32), last[l]));
            if SUM {
                sums[l] += last_sum[l];
            }
        }
    }
    // the lanes joined by halves (four vector steps, not sixteen dependent scalar ones: on
    // short rows the join costs as much as the rest)
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            lanes[l] = max_of(lanes[l], lanes[l + width]);
        }
        width /= 2;
    }
    (lanes[0], if SUM { join_lanes(&sums) } else { 0.0 })
}

/// `max(row)` and `log(sum(exp(row - max)))`: `max + lse_shifted` is the log-sum-exp.
///
/// The shift by the maximum keeps every exponent `<= 0`. A row with a NaN, or whose maximum is
/// `-inf` (all `-inf`) or `+inf`, gives a NaN log-sum-exp, as in PyTorch.
#[inline]
pub fn logsumexp_parts<T: Float>(row: &[T]) -> (T, T) {
    let m = row_max(row);
    let s = crate::kernels::sum::sum_map(row, |v| (v - m).vexp().acc());
    (m, T::from_acc(s.vln()))
}

/// `log_softmax` of one row, in place: `x - max - log(sum(exp(x - max)))`.
#[inline]
pub fn log_softmax_row<T: Float>(row: &mut [T]) {
    let (m, l) = logsumexp_parts(row);
    for v in row.iter_mut() {
        *v = *v - m - l;
    }
}

/// The backward input of [`log_softmax_rows_into`]: the upstream's per-element factors (absent
/// when uniform), their common scale, and the gradient rows to write.
pub type SoftmaxVjp<'a, T> = (Option<&'a [T]>, T, &'a mut [T]);

/// `log_softmax` of a group of contiguous rows of `len` elements ([`rows`](super::rows)) written into
/// `out`, in one read of `x` from memory and one exponential per element: the row maxima `m`,
/// `e_c = exp(x_c - m)` (into the gradient rows, or into `out` until it is overwritten) summed
/// per row into `S`, then `out_c = (x_c - m) - ln S`.
///
/// With `vjp = Some((each, scale, g))`, the upstream gradient is `u_c = scale * each[c]` (or
/// `scale` for every element when `each` is `None`) and `g` becomes the gradient with respect to
/// `x`: `u_c - softmax_c * sum_k u_k`, with `softmax_c = e_c / S`. A row with a NaN, a `+inf`,
/// or only `-inf` gives NaN, as in PyTorch.
#[inline(always)]
pub fn log_softmax_rows_into<T: Float>(
    x: &[T],
    len: usize,
    out: &mut [T],
    vjp: Option<SoftmaxVjp<'_, T>>,
    work: &mut Workspace<T>,
) {
    let rows = x.len() / len;
    let n = rows * len;
    let (x, out) = (&x[..n], &mut out[..n]);
    let Workspace { tile, parts, max, sum, lse, aux, .. } = work.ready();
    let (max, sum, lse, totals) = (&mut max[..rows], &mut sum[..rows], &mut lse[..rows], &mut aux[0][..rows]);
    let (each, scale, mut g) = match vjp {
        Some((each, scale, g)) => (each, scale, Some(&mut g[..n])),
        None => (None, T::zero(), None),
    };
    // The exponentials go into the gradient rows, which the vector-Jacobian product reads;
    // without it they are only summed: short rows then go eight at a time across SIMD lanes
    // where the type and the CPU allow ([`softmax8`], the same maxima and sums as the row
    // kernels), the rest, and every row otherwise, through the row kernels and their tile.
    let head = if g.is_none() { lane_blocks(x, len, max, sum) } else { 0 };
    if head < rows {
        let e = g.as_deref_mut().map(|g| &mut g[head * len..]);
        let x = &x[head * len..];
        shifted_exps(x, len, &mut max[head..], e, tile, parts, &mut sum[head..], None, None, plain());
    }
    let max = &*max;
    ln_sums(sum, lse);
    for ((o, xs), (&m, &l)) in out.chunks_exact_mut(len).zip(x.chunks_exact(len)).zip(max.iter().zip(lse.iter())) {
        update_row(o, xs, |_, xc| (xc - m) - l);
    }
    let Some(g) = g else { return };
    if let Some(u) = each {
        let u = &u[..n];
        row_sums(len, rows, tile, parts, totals, |k, c0, v| {
            v.copy_from_slice(&u[k * len + c0..k * len + c0 + v.len()])
        });
    }
    for (k, g) in g.chunks_exact_mut(len).enumerate() {
        let inv = T::from_acc(1.0 / sum[k]);
        match each {
            Some(u) => {
                let kk = inv * (scale * T::from_acc(totals[k]));
                update_row(g, &u[k * len..(k + 1) * len], |gc, uc| scale * uc - gc * kk);
            }
            None => {
                let kk = inv * (scale * T::of_usize(len));
                // `x`'s row only stands in for a source the update does not read
                update_row(g, &x[k * len..(k + 1) * len], |gc, _| scale - gc * kk);
            }
        }
    }
}

/// Each row's maximum and sum of exponentials ([`softmax8`]) for the leading blocks of eight
/// rows that the lanes kernel takes; returns how many rows it did (0 where it does not apply).
#[inline(always)]
fn lane_blocks<T: Float>(x: &[T], len: usize, max: &mut [T], sum: &mut [f64]) -> usize {
    let mut head = 0;
    while head + ROWS <= max.len() {
        let block = head..head + ROWS;
        let (Ok(m), Ok(s)) =
            (<&mut [T; ROWS]>::try_from(&mut max[block.clone()]), <&mut [f64; ROWS]>::try_from(&mut sum[block]))
        else {
            break;
        };
        if !softmax8(&x[head * len..], len, m, s, None, None, None) {
            break;
        }
        head += ROWS;
    }
    head
}

/// The vector-Jacobian product of log-softmax on one row, in place: given the row's
/// log-softmax `logp` and the gradient `g` with respect to it, `g` becomes
/// `g_i - exp(logp_i) * sum_j g_j`, the gradient with respect to the logits.
///
/// An entry with `logp_i = -inf` (a `-inf` logit) keeps `g_i`; a row whose log-softmax is NaN
/// (all `-inf`, or a `+inf` logit) gives NaN everywhere, even where `g` is zero, as in PyTorch.
#[inline]
pub fn log_softmax_vjp_row<T: Float>(logp: &[T], g: &mut [T]) {
    let s = T::from_acc(crate::kernels::sum::sum_map(g, T::acc));
    for (gi, &lp) in g.iter_mut().zip(logp) {
        *gi -= lp.vexp() * s;
    }
}

/// Visits every row of `x` (laid out as `layout`) as its log-softmax, with an optional
/// backward pass: `f(r, logp, g)` sees row `r`'s log-softmax and, when `gx` is given, a
/// zeroed buffer `g` to fill with the gradient with respect to `logp`; the driver then applies
/// [`log_softmax_vjp_row`] and writes the gradient with respect to the logits into row `r` of
/// `gx`. One log-sum-exp per row; nothing of the size of `x` is allocated.
pub fn log_softmax_rows<T: Float>(
    layout: &AxisLayout,
    x: &[T],
    mut gx: Option<&mut [T]>,
    mut f: impl FnMut(usize, &[T], Option<&mut [T]>),
) {
    let mut row = vec![T::zero(); layout.len];
    let mut g = vec![T::zero(); if gx.is_some() { layout.len } else { 0 }];
    for r in 0..layout.rows() {
        layout.gather(x, r, &mut row);
        log_softmax_row(&mut row);
        match gx.as_deref_mut() {
            Some(gx) => {
                g.fill(T::zero());
                f(r, &row, Some(&mut g));
                log_softmax_vjp_row(&row, &mut g);
                layout.scatter(&g, r, gx);
            }
            None => f(r, &row, None),
        }
    }
}

/// The maximum of `f(0), ..., f(n - 1)` and how many entries attain it exactly.
///
/// JAX differentiates a maximum by splitting the gradient equally among the entries that
/// attain it; the count is that divisor. A NaN entry makes the maximum NaN with a count of 0;
/// an empty row gives `(-inf, 0)`.
#[inline]
pub fn max_with_ties(n: usize, f: impl Fn(usize) -> f64) -> (f64, usize) {
    let mut m = f64::NEG_INFINITY;
    let mut count = 0usize;
    for c in 0..n {
        let v = f(c);
        if v.is_nan() {
            return (f64::NAN, 0);
        }
        if v > m {
            m = v;
            count = 1;
        } else if v == m {
            count += 1;
        }
    }
    (m, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_max_is_the_maximum_and_skips_nan_at_every_length_and_position() {
        // every path: the four-set loop, whole vectors, a padded tail, and their joins
        for len in 0..=200usize {
            let x: Vec<f32> = (0..len).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
            let want = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            assert_eq!(row_max(&x), want, "len {len}");
            let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            assert_eq!(row_max(&xd), want as f64, "len {len} (f64)");
            for pos in [0, len / 3, len / 2, len.saturating_sub(1)] {
                if pos >= len {
                    continue;
                }
                let mut y = x.clone();
                y[pos] = 1e30; // the maximum alone in one lane
                assert_eq!(row_max(&y), 1e30, "len {len} max at {pos}");
                y[pos] = f32::NAN;
                let rest = y.iter().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                assert_eq!(row_max(&y), rest, "len {len} NaN at {pos}");
                y[pos] = f32::INFINITY;
                assert_eq!(row_max(&y), f32::INFINITY);
            }
        }
        assert_eq!(row_max::<f32>(&[]), f32::NEG_INFINITY);
        // every length up to 40 and every skipped position: the maximum of the other entries
        for len in (1..=40usize).chain([MASKED_ROW, MASKED_ROW + 1, 100]) {
            let x: Vec<f32> = (0..len).map(|i| ((i * 7919) % 41) as f32 - 20.0).collect();
            for skip in 0..len {
                let others = x.iter().enumerate().filter(|&(c, _)| c != skip).map(|(_, &v)| v);
                let want = others.fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(row_max_except(&x, skip), want, "len {len} skip {skip}");
            }
        }
        assert_eq!(row_max_except(&[f32::NAN, 3.0, -1.0], 1), -1.0);
        assert_eq!(row_max_except(&[5.0f64], 0), f64::NEG_INFINITY);
        assert_eq!(row_max(&[f32::NAN; 20]), f32::NEG_INFINITY);
        assert_eq!(row_max(&[f64::NEG_INFINITY; 70]), f64::NEG_INFINITY);
    }

    #[test]
    fn row_max_sum_is_the_maximum_and_the_lanes_sum() {
        // the maximum of row_max, and the sum in block_sum's lanes (the same bits up to a
        // block; longer rows within a few f64 roundings of the exact integer sum)
        for len in [0usize, 1, 5, 16, 17, 32, 33, 100, 256, 1000, 4099] {
            let x: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1601) as f32 - 800.0).collect();
            let (m, s) = row_max_sum(&x);
            assert_eq!(m, row_max(&x), "len {len}");
            let exact: i64 = (0..len).map(|i| ((i * 7919) % 1601) as i64 - 800).sum();
            assert_eq!(s, exact as f64, "len {len}");
            if len <= crate::kernels::sum::BLOCK {
                assert_eq!(s.to_bits(), crate::kernels::sum::block_sum(&x).to_bits(), "len {len}");
            }
        }
        // NaN: skipped by the maximum, carried by the sum; -inf: the sum's
        let (m, s) = row_max_sum(&[1.0f64, f64::NAN, 3.0]);
        assert_eq!(m, 3.0);
        assert!(s.is_nan());
        let mut y = [2.0f64; 19];
        y[17] = f64::NEG_INFINITY;
        assert_eq!(row_max_sum(&y), (2.0, f64::NEG_INFINITY));
    }

    #[test]
    fn values_alone_have_the_bits_of_values_with_a_gradient() {
        // without a gradient, short f32 rows go through the lanes kernel (where the CPU has
        // it) and long rows keep their exponentials in the tile; with one, the exponentials
        // land in the gradient rows: the log-probabilities must be the same bits either way
        // (groups of 8 rows and more, a remainder of rows, rows up to and past the lanes'
        // 32 classes and past a block; -inf, +inf and NaN entries)
        for len in [1usize, 3, 7, 16, 31, 32, 33, 300] {
            let rows = 8 * 3 + 5;
            let n = rows * len;
            let mut x: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 * 0.37 - 18.0).collect();
            x[len] = f32::NEG_INFINITY;
            if len > 2 {
                x[3 * len + 1] = f32::NAN;
                x[9 * len + 2] = f32::INFINITY;
            }
            let (mut alone, mut with, mut g, mut work) =
                (vec![0.0; n], vec![0.0; n], vec![0.0; n], Workspace::default());
            log_softmax_rows_into(&x, len, &mut alone, None, &mut work);
            log_softmax_rows_into(&x, len, &mut with, Some((None, 1.0, &mut g[..])), &mut work);
            for i in 0..n {
                assert_eq!(alone[i].to_bits(), with[i].to_bits(), "len {len}, element {i}: {} {}", alone[i], with[i]);
            }
        }
    }

    #[test]
    fn one_pass_row_matches_the_two_pass_one() {
        // a row longer than a block, with a per-element upstream and a uniform one
        let n = 2 * crate::kernels::sum::BLOCK + 9;
        let x: Vec<f64> = (0..n).map(|i| ((i * 13) % 29) as f64 * 0.7 - 9.0).collect();
        let u: Vec<f64> = (0..n).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
        let mut logp = x.clone();
        log_softmax_row(&mut logp);
        let mut expected = u.iter().map(|v| 0.5 * v).collect::<Vec<_>>();
        log_softmax_vjp_row(&logp, &mut expected);
        let (mut out, mut g, mut work) = (vec![0.0; n], vec![0.0; n], Workspace::default());
        log_softmax_rows_into(&x, n, &mut out, Some((Some(&u[..]), 0.5, &mut g[..])), &mut work);
        for c in 0..n {
            assert!((out[c] - logp[c]).abs() < 1e-13, "{c}");
            assert!((g[c] - expected[c]).abs() < 1e-13, "{c}");
        }
        // uniform upstream 2: 2 - softmax * 2n
        log_softmax_rows_into(&x, n, &mut out, Some((None, 2.0, &mut g[..])), &mut work);
        for c in 0..n {
            let want = 2.0 - logp[c].exp() * 2.0 * n as f64;
            assert!((g[c] - want).abs() < 1e-12 * (1.0 + want.abs()), "{c}");
        }
        // an all -inf row is NaN, as in PyTorch
        let mut o = [0.0f64; 2];
        log_softmax_rows_into(&[f64::NEG_INFINITY; 2], 2, &mut o, None, &mut work);
        assert!(o.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn layout_rows_cover_every_element_once() {
        let shape = [2, 3, 4, 5];
        let l = AxisLayout::new(&shape, 1);
        assert_eq!((l.outer, l.len, l.inner), (2, 3, 20));
        let mut seen = [0u8; 120];
        for r in 0..l.rows() {
            for c in 0..l.len {
                seen[l.at(r, c)] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
    }

    #[test]
    fn log_softmax_is_stable() {
        // [1000, 0, -1000] -> [0, -1000, -2000] (exp(-1000) underflows to 0 in the sum)
        let mut r = [1000.0f64, 0.0, -1000.0];
        log_softmax_row(&mut r);
        assert_eq!(r, [0.0, -1000.0, -2000.0]);
        let mut all_neg_inf = [f64::NEG_INFINITY; 2];
        log_softmax_row(&mut all_neg_inf);
        assert!(all_neg_inf[0].is_nan());
    }

    #[test]
    fn log_softmax_vjp_matches_finite_differences() {
        let x = [0.3f64, -1.2, 2.0, 0.0];
        let g = [1.0f64, -2.0, 0.5, 3.0];
        let mut lp = x;
        log_softmax_row(&mut lp);
        let mut vjp = g;
        log_softmax_vjp_row(&lp, &mut vjp);
        let f = |x: &[f64]| {
            let mut l = x.to_vec();
            log_softmax_row(&mut l);
            l.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>()
        };
        for i in 0..4 {
            let (mut a, mut b) = (x, x);
            a[i] += 1e-6;
            b[i] -= 1e-6;
            let fd = (f(&a) - f(&b)) / 2e-6;
            assert!((fd - vjp[i]).abs() < 1e-8, "i={i}: {fd} vs {}", vjp[i]);
        }
        // a -inf logit keeps its upstream gradient (its probability is 0)
        let mut lp = [f64::NEG_INFINITY, 1.0, 2.0];
        log_softmax_row(&mut lp);
        let mut g = [1.0f64, 2.0, 3.0];
        log_softmax_vjp_row(&lp, &mut g);
        assert_eq!(g[0], 1.0);
    }

    #[test]
    fn max_counts_ties() {
        let v = [1.0, 3.0, 2.0, 3.0];
        assert_eq!(max_with_ties(4, |i| v[i]), (3.0, 2));
        assert_eq!(max_with_ties(0, |_| 0.0), (f64::NEG_INFINITY, 0));
        let (m, k) = max_with_ties(2, |i| [1.0, f64::NAN][i]);
        assert!(m.is_nan() && k == 0);
    }
}
