//! Groups of contiguous rows for the softmax-family kernels ([`axis`](super::axis),
//! [`xent`](super::xent)).
//!
//! A kernel that takes a row of class scores at a time pays fixed costs per row: a maximum
//! joined from lanes, a sum joined from lanes, a logarithm, scalar loop remainders, calls.
//! With a few dozen classes these cost as much as the row's elements. The kernels therefore
//! take a group of rows: the per-row scalars (maxima, sums, logarithms) live in small arrays
//! of a [`Workspace`], the exponentials of the whole group are one vector loop across row
//! boundaries ([`fill_sums`]), the logarithms of the row sums one vector loop over the rows
//! ([`ln_sums`]). A row longer than a block is a group of its own, visited in blocks.
//!
//! Every row's result depends on that row only, and each row's sums are blocked exactly as
//! [`sum_by`](super::sum::sum_by) blocks them, so the grouping changes no bits: a group of one
//! row gives what a group of many gives.

use crate::float::Float;
use crate::kernels::axis::{row_max, row_max_sum};
use crate::kernels::exp_sums;
use crate::kernels::simd::prefetch;
use crate::kernels::sum::{block_sums, run_block_sums, tree, BLOCK, RUN};

/// Elements of a group of short rows: the group's exponentials (16 KiB of `f32`) stay in the
/// first-level cache between the pass that writes them and the one that reads them.
pub const GROUP: usize = 16 * BLOCK;
/// Rows in a group at most (the length of the per-row arrays).
pub const GROUP_ROWS: usize = 256;

/// The rows a group holds for rows of `len` elements: as many whole rows as fit in [`GROUP`]
/// elements (at most [`GROUP_ROWS`]) when a row fits in a block, else one.
#[inline]
pub fn rows_per_group(len: usize) -> usize {
    if len <= BLOCK {
        (GROUP / len.max(1)).clamp(1, GROUP_ROWS)
    } else {
        1
    }
}

/// Buffers a group kernel reuses from group to group (one per chunk of rows): a tile of
/// [`GROUP`] elements, a long row's block sums, and per-row arrays of [`GROUP_ROWS`].
pub struct Workspace<T> {
    /// Values that are summed but not kept (exponentials without a gradient, weighted terms).
    pub tile: Vec<T>,
    /// The block sums of one long row (of the values, and of the values before their `map` in
    /// [`fill_sums`]).
    pub parts: [Vec<f64>; 2],
    /// Each row's maximum.
    pub max: Vec<T>,
    /// Each row's sum of exponentials.
    pub sum: Vec<f64>,
    /// Each row's `ln` of [`sum`](Self::sum).
    pub lse: Vec<T>,
    /// Two more per-row sums, as a kernel needs them.
    pub aux: [Vec<f64>; 2],
    /// The block sums of one long row of two more per-row sums (filled by a kernel's own
    /// `fill`, beside [`parts`](Self::parts)).
    pub aux_parts: [Vec<f64>; 2],
}

impl<T> Default for Workspace<T> {
    /// Empty: the buffers come with [`ready`](Workspace::ready) (drivers make one per chunk
    /// for kernels that may need none).
    fn default() -> Self {
        Workspace {
            tile: Vec::new(),
            parts: [Vec::new(), Vec::new()],
            max: Vec::new(),
            sum: Vec::new(),
            lse: Vec::new(),
            aux: [Vec::new(), Vec::new()],
            aux_parts: [Vec::new(), Vec::new()],
        }
    }
}

impl<T: Float> Workspace<T> {
    /// The workspace with its buffers allocated (on the first call).
    #[inline(always)]
    pub fn ready(&mut self) -> &mut Self {
        if self.tile.len() < GROUP {
            self.tile = vec![T::zero(); GROUP];
            self.max = vec![T::zero(); GROUP_ROWS];
            self.sum = vec![0.0; GROUP_ROWS];
            self.lse = vec![T::zero(); GROUP_ROWS];
            self.aux = [vec![0.0; GROUP_ROWS], vec![0.0; GROUP_ROWS]];
        }
        self
    }
}

/// The maximum of each row of `len` elements of `x` into `max` (see [`row_max`]); with
/// `shifted_sums`, each row's `sum_c (x_c - m)` too, as `sum_c x_c - len m` from the same pass
/// ([`row_max_sum`]).
#[inline(always)]
pub fn row_maxes<T: Float>(x: &[T], len: usize, max: &mut [T], shifted_sums: Option<&mut [f64]>) {
    let Some(shifted) = shifted_sums else {
        for (m, row) in max.iter_mut().zip(x.chunks_exact(len)) {
            *m = row_max(row);
        }
        return;
    };
    for ((m, d), row) in max.iter_mut().zip(shifted).zip(x.chunks_exact(len)) {
        let (mx, sx) = row_max_sum(row);
        (*m, *d) = (mx, shifted_sum(sx, len, mx));
    }
}

/// A row's `sum_c (x_c - m)` from its sum `sum_x` of `len` logits and its maximum `m`, as
/// `sum_x - len m`.
///
/// `len m` is exact for f32 logits and rounded once for f64: the difference is within a few
/// roundings of `sum_c |x_c|` in f64, far below the accuracy of the value it goes into (times
/// the smoothing share `ε / C`). A NaN or infinite entry gives what the sum of `x_c - m` gives
/// (NaN, or -inf for a -inf logit).
#[inline(always)]
pub fn shifted_sum<T: Float>(sum_x: f64, len: usize, m: T) -> f64 {
    sum_x - len as f64 * m.acc()
}

/// Per-row sums of computed values: for `rows` rows of `len` elements, `fill(k, c0, v)` writes
/// the values of row `k`, classes `c0..c0 + v.len()`, then `map_sums(k, c0, v, piece, out)`
/// transforms a whole tile in place (the tile starts at row `k`, class `c0`; a tile of short
/// rows spans the whole group) and writes the sums of its pieces of `piece` elements into `out`
/// (the last piece may be shorter), each blocked as [`block_sum`](super::sum::block_sum) sums
/// it ([`summed`] maps, then sums; [`exp_sums`] does both in one pass), so that `sums[k]`
/// becomes the sum of row `k`'s values, blocked as [`sum_by`](super::sum::sum_by) blocks a row.
/// With `filled`, `filled[k]` also becomes the sum of row `k`'s values as `fill` wrote them
/// (before the map), blocked the same way: the tile is still in the first-level cache, so that
/// sum costs no second `fill`. The values land in `dest` (`rows * len` elements, kept: the
/// gradient rows, say) or, without it, in `tile` (at least [`GROUP`]).
///
/// Rows of at most [`BLOCK`] elements are one tile (`rows * len <= GROUP`, pieces of a row):
/// `map_sums` runs once over the whole group, across row boundaries. Longer rows are tiled by
/// runs of [`RUN`] blocks (pieces of a block).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn fill_sums<T: Float>(
    len: usize,
    rows: usize,
    dest: Option<&mut [T]>,
    tile: &mut [T],
    parts: &mut [Vec<f64>; 2],
    sums: &mut [f64],
    mut filled: Option<&mut [f64]>,
    mut fill: impl FnMut(usize, usize, &mut [T]),
    mut map_sums: impl FnMut(usize, usize, &mut [T], usize, &mut [f64]),
) {
    if len <= BLOCK {
        let n = rows * len;
        let v = match dest {
            Some(d) => &mut d[..n],
            None => &mut tile[..n],
        };
        for (k, row) in v.chunks_exact_mut(len).enumerate() {
            fill(k, 0, row);
        }
        if let Some(f) = filled {
            block_sums(v, len, &mut f[..rows]);
        }
        map_sums(0, 0, v, len, &mut sums[..rows]);
        return;
    }
    let mut dest = dest;
    let [parts, filled_parts] = parts;
    for (k, sum) in sums[..rows].iter_mut().enumerate() {
        parts.clear();
        filled_parts.clear();
        // tiles of a run of blocks, whose block sums are computed side by side
        let mut c0 = 0;
        while c0 < len {
            let l = (RUN * BLOCK).min(len - c0);
            let blocks = l.div_ceil(BLOCK);
            let v = match dest.as_deref_mut() {
                Some(d) => &mut d[k * len + c0..k * len + c0 + l],
                None => &mut tile[..l],
            };
            fill(k, c0, v);
            if filled.is_some() {
                push_block_sums(filled_parts, v, blocks);
            }
            let at = parts.len();
            parts.resize(at + blocks, 0.0);
            map_sums(k, c0, v, BLOCK, &mut parts[at..]);
            c0 += l;
        }
        *sum = tree(parts);
        if let Some(f) = filled.as_deref_mut() {
            f[k] = tree(filled_parts);
        }
    }
}

/// The `map_sums` of [`fill_sums`] that applies `map(k, c0, v)` to a tile, then sums its pieces.
#[inline(always)]
pub fn summed<T: Float>(map: impl Fn(usize, usize, &mut [T])) -> impl FnMut(usize, usize, &mut [T], usize, &mut [f64]) {
    #[inline(always)]
    move |k: usize, c0: usize, v: &mut [T], piece: usize, out: &mut [f64]| {
        map(k, c0, v);
        if piece == BLOCK {
            // blocks of a run, the last one possibly shorter
            run_block_sums(v, out);
        } else {
            block_sums(v, piece, out);
        }
    }
}

/// Appends the `blocks` block sums of the run `v` to `parts`.
#[inline(always)]
fn push_block_sums<T: Float>(parts: &mut Vec<f64>, v: &[T], blocks: usize) {
    let at = parts.len();
    parts.resize(at + blocks, 0.0);
    run_block_sums(v, &mut parts[at..]);
}

/// [`fill_sums`] of values that need no transformation.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn row_sums<T: Float>(
    len: usize,
    rows: usize,
    tile: &mut [T],
    parts: &mut [Vec<f64>; 2],
    sums: &mut [f64],
    fill: impl FnMut(usize, usize, &mut [T]),
) {
    fill_sums(len, rows, None, tile, parts, sums, None, fill, summed(|_, _, _| {}));
}

/// The first step of every softmax kernel over a group of `max.len()` rows of `len` values
/// `x`: each row's maximum `m` into `max`, then `e^(x - m)` into `dest` (or the tile: nothing is
/// kept where the CPU allows [`exp_sums`]) and each row's sum of them into `sums`
/// ([`fill_sums`]); with `shifted_sums`, each row's sum of `x - m` too (label smoothing's sum of
/// log-probabilities), from the maxima's pass ([`row_maxes`]). `also`: the start of the group's
/// rows of another input of the logits' shape, which the caller reads next (probability
/// targets), for the prefetch of the next group.
///
/// `x - m` is computed here with `fill` `None` ([`plain`]); a caller's `fill(k, c0, m, v)` writes
/// it for classes `c0..c0 + v.len()` of row `k` into `v` and may compute more from the same pass
/// (it is called once per row of at most a block, once per run of a longer row, in order).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn shifted_exps<T: Float>(
    x: &[T],
    len: usize,
    max: &mut [T],
    dest: Option<&mut [T]>,
    tile: &mut [T],
    parts: &mut [Vec<f64>; 2],
    sums: &mut [f64],
    shifted_sums: Option<&mut [f64]>,
    also: Option<*const T>,
    fill: Option<impl FnMut(usize, usize, T, &mut [T])>,
) {
    let rows = max.len();
    let n = rows * len;
    row_maxes(x, len, max, shifted_sums);
    let max = &*max;
    // While the exponentials of this group are computed, the next group's rows (the `n`
    // elements after this group's, when the caller's rows go on) are fetched from memory: of
    // the logits, of the rows the exponentials are written to, and of the caller's `also`
    // (targets of the logits' shape). The next group's maxima then find their rows in cache.
    let mut ahead = [x.as_ptr().wrapping_add(n); 3];
    let mut streams = 1;
    for p in [dest.as_deref().map(<[T]>::as_ptr), also].into_iter().flatten() {
        ahead[streams] = p.wrapping_add(n);
        streams += 1;
    }
    let ahead = &ahead[..streams];
    if fill.is_none() && exp_sums::available::<T>() {
        return plain_exps(x, len, max, dest, parts, sums, ahead);
    }
    let mut fill = fill;
    let mut plain = minus_max(x, len);
    let zero = [T::zero()];
    let mut exps = summed(exps_fetching(ahead, len));
    fill_sums(
        len,
        rows,
        dest,
        tile,
        parts,
        sums,
        None,
        #[inline(always)]
        |k, c0, v: &mut [T]| match fill.as_mut() {
            Some(f) => f(k, c0, max[k], v),
            None => plain(k, c0, max[k], v),
        },
        // the exponentials and their sums in one pass where the CPU allows ([`exp_sums`]),
        // else one after the other
        #[inline(always)]
        |k, c0, v: &mut [T], piece, out: &mut [f64]| {
            let fetch = exp_sums::Fetch { ahead, at: k * len + c0 };
            if !exp_sums::exp_sums(exp_sums::Source::InPlace(&mut *v), piece, &zero, usize::MAX, out, fetch) {
                exps(k, c0, v, piece, out);
            }
        },
    );
}

/// A `fill(k, c0, m, v)` of [`shifted_exps`].
pub type RowFill<T> = fn(usize, usize, T, &mut [T]);

/// The `fill` of [`shifted_exps`] that leaves `x - m` to it.
#[inline(always)]
pub fn plain<T>() -> Option<RowFill<T>> {
    None
}

/// [`shifted_exps`] of `x - m` itself through [`exp_sums`]: the shift, the exponentials (stored
/// only into `dest`) and their block sums in one pass over `x`, short rows as one group of
/// pieces, a long row at once (no tile to keep in the first-level cache).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn plain_exps<T: Float>(
    x: &[T],
    len: usize,
    max: &[T],
    mut dest: Option<&mut [T]>,
    parts: &mut [Vec<f64>; 2],
    sums: &mut [f64],
    ahead: &[*const T],
) {
    use exp_sums::{exp_sums, Fetch, Source};
    let rows = max.len();
    if len <= BLOCK {
        let n = rows * len;
        let src = Source::Shifted { x: &x[..n], dst: dest.map(|d| &mut d[..n]) };
        let done = exp_sums(src, len, max, 1, &mut sums[..rows], Fetch { ahead, at: 0 });
        debug_assert!(done);
        return;
    }
    let parts = &mut parts[0];
    for (k, sum) in sums[..rows].iter_mut().enumerate() {
        let row = k * len..(k + 1) * len;
        parts.clear();
        parts.resize(len.div_ceil(BLOCK), 0.0);
        let src = Source::Shifted { x: &x[row.clone()], dst: dest.as_deref_mut().map(|d| &mut d[row]) };
        let done = exp_sums(src, BLOCK, &max[k..=k], usize::MAX, parts, Fetch { ahead, at: k * len });
        debug_assert!(done);
        *sum = tree(parts);
    }
}

/// The `fill` of [`shifted_exps`] that writes `x - m` and nothing more (rows of `len`
/// elements of `x`).
#[inline(always)]
pub fn minus_max<T: Float>(x: &[T], len: usize) -> impl FnMut(usize, usize, T, &mut [T]) + '_ {
    #[inline(always)]
    move |k: usize, c0: usize, m: T, v: &mut [T]| {
        let xs = &x[k * len + c0..k * len + c0 + v.len()];
        for (v, &xc) in v.iter_mut().zip(xs) {
            *v = xc - m;
        }
    }
}

/// The `map` of [`fill_sums`] that turns a tile into its exponentials
/// ([`exp_in_place_fetching`]) and fetches the elements at the tile's position in each group
/// of `ahead` (rows of `len` elements).
#[inline(always)]
fn exps_fetching<'a, T: Float>(ahead: &'a [*const T], len: usize) -> impl Fn(usize, usize, &mut [T]) + 'a {
    #[inline(always)]
    move |k: usize, c0: usize, v: &mut [T]| exp_in_place_fetching(v, ahead, k * len + c0)
}

/// `e_c = exp(v_c)` over a tile ([`vexp_in_place`](crate::kernels::vmath::VMath::vexp_in_place)).
#[inline(always)]
pub fn exp_in_place<T: Float>(v: &mut [T]) {
    T::vexp_in_place(v);
}

/// [`exp_in_place`] that also [`prefetch`]es, from each stream of `ahead`, the `v.len()`
/// elements from `at` on, one cache line per 64 bytes of `v`, spread over the loop: the
/// exponentials are slow enough to hide the memory's latency, and spread out, the requests do
/// not queue up behind each other.
#[inline(always)]
pub fn exp_in_place_fetching<T: Float>(v: &mut [T], ahead: &[*const T], at: usize) {
    // sixteen AVX-512 vectors of f32 a piece: each piece enters the exponential's loop afresh
    // (its constants set up again, the CPU's features checked), which at a quarter of this
    // size cost 5% of cross_entropy's instructions on rows of 32 (callgrind), while the
    // prefetches, 16 lines per stream and piece, still do not queue up (no loss on 32000-class
    // rows, which wait on memory)
    const STEP: usize = 256;
    let line = (64 / std::mem::size_of::<T>()).max(1);
    for (i, piece) in v.chunks_mut(STEP).enumerate() {
        let start = at + i * STEP;
        for &p in ahead {
            if piece.len() == STEP {
                // a whole piece: a fixed count, which the compiler unrolls into one instruction
                // per line (a loop of four per line was 7% of cross_entropy's instructions on
                // rows of 1000)
                for k in 0..STEP / line {
                    prefetch(p.wrapping_add(start + k * line));
                }
            } else {
                let mut e = start;
                while e < start + piece.len() {
                    prefetch(p.wrapping_add(e));
                    e += line;
                }
            }
        }
        exp_in_place(piece);
    }
}

/// `ln S` of a sum of exponentials `S` (at least 1: the maximum's term is `exp(0)`), in `T`.
///
/// `f64`: `S.ln()`. `f32`: the vectorisable [`vln`](crate::kernels::vmath::VMath::vln) of `S`
/// rounded to `s`, plus `(S - s) / s` (the first-order term of `ln(S / s)`) for what the
/// rounding lost: within about 1.5 ulp of `ln S` also when `S` is close to 1 and `ln S` tiny,
/// where `vln(s)` alone would keep only the absolute accuracy of `s`.
#[inline(always)]
pub fn ln_sum<T: Float>(s: f64) -> T {
    let r = T::from_acc(s);
    r.vln() + T::from_acc((s - r.acc()) / r.acc())
}

/// [`ln_sum`] of every row sum, in one vector loop.
#[inline(always)]
pub fn ln_sums<T: Float>(sums: &[f64], lse: &mut [T]) {
    for (l, &s) in lse.iter_mut().zip(sums) {
        *l = ln_sum(s);
    }
}

/// `row[c] = f(row[c], src[c])` along one row (`src` as long).
///
/// A row shorter than `SHORT_ROW` (64) goes in pieces of sixteen and of eight elements, each
/// through local arrays, then the rest one by one: on the row itself, the compiler's loop runs
/// its main body (64 elements at a time) on long rows only, and left a row of 32 `f32` to its
/// 8-wide remainder loop, four rounds with their set-up; pieces on the row's slices it unrolled
/// into scalar operations (it cannot tell that they do not overlap), on local arrays, which
/// alias nothing, it makes whole vectors. Log-softmax of 65536x32 `f32` took 0.87-0.94x the
/// time with it (the best of 8 to 20 alternating runs); long rows keep the compiler's loop
/// (pieces took 1.3-2x the time on rows of 1000).
#[inline(always)]
pub fn update_row<T: Copy>(row: &mut [T], src: &[T], f: impl Fn(T, T) -> T) {
    debug_assert_eq!(row.len(), src.len());
    if row.len() >= SHORT_ROW {
        for (r, &s) in row.iter_mut().zip(src) {
            *r = f(*r, s);
        }
        return;
    }
    let (row, src) = update_pieces::<T, 16>(row, src, &f);
    let (row, src) = update_pieces::<T, 8>(row, src, &f);
    for (r, &s) in row.iter_mut().zip(src) {
        *r = f(*r, s);
    }
}

/// Rows from this length on take the compiler's own loop in [`update_row`].
const SHORT_ROW: usize = 64;

/// [`update_row`] on the leading pieces of `N` elements; returns the rest of `row` and `src`.
#[inline(always)]
fn update_pieces<'a, T: Copy, const N: usize>(
    row: &'a mut [T],
    src: &'a [T],
    f: &impl Fn(T, T) -> T,
) -> (&'a mut [T], &'a [T]) {
    let mut rows = row.chunks_exact_mut(N);
    let mut srcs = src.chunks_exact(N);
    for (r, s) in (&mut rows).zip(&mut srcs) {
        let (mut piece, mut source) = ([s[0]; N], [s[0]; N]);
        piece.copy_from_slice(r);
        source.copy_from_slice(s);
        for (p, &s) in piece.iter_mut().zip(&source) {
            *p = f(*p, s);
        }
        r.copy_from_slice(&piece);
    }
    (rows.into_remainder(), srcs.remainder())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::vmath::VMath;

    /// Every length through the pieces of sixteen and eight, the rest and the long rows' loop
    /// gives what an element-by-element loop gives (the update reads both its arguments, in an
    /// order that matters, so that a misplaced element shows).
    #[test]
    fn update_row_is_the_elementwise_update() {
        for len in 0..=2 * SHORT_ROW + 3 {
            let src: Vec<f32> = (0..len).map(|c| c as f32 * 0.75 - 3.0).collect();
            let start: Vec<f32> = (0..len).map(|c| (c * c) as f32 + 0.5).collect();
            let f = |r: f32, s: f32| r * 2.0 - s;
            let mut row = start.clone();
            update_row(&mut row, &src, f);
            let want: Vec<f32> = start.iter().zip(&src).map(|(&r, &s)| f(r, s)).collect();
            assert_eq!(row, want, "length {len}");
        }
    }

    #[test]
    fn ln_sum_is_accurate_near_one() {
        // S = 1 + 3e-9: ln S = 3e-9 (to 1e-17); S rounds to 1 in f32, the correction keeps it
        let s = 1.0 + 3e-9;
        let l: f32 = ln_sum(s);
        assert!(((l as f64) - s.ln()).abs() <= 1e-7 * s.ln(), "{l:e}");
        for s in [1.0, 1.5, 2.0, 7.25, 31.999, 1000.0, 2e5] {
            let (l32, l64) = (ln_sum::<f32>(s) as f64, ln_sum::<f64>(s));
            assert_eq!(l64, s.ln());
            assert!((l32 - s.ln()).abs() <= 2.0 * f32::EPSILON as f64 * s.ln().max(1e-30), "{s}: {l32}");
        }
        assert!(ln_sum::<f32>(f64::NAN).is_nan());
        assert_eq!(ln_sum::<f32>(1.0), 0.0);
    }

    #[test]
    fn fill_sums_block_rows_as_sum_by() {
        // short and long rows, kept and not: each sum is the row's sum_by, bit for bit
        for len in [1usize, 5, 32, BLOCK, BLOCK + 1, 3 * BLOCK + 7] {
            let rows = rows_per_group(len).min(5);
            let x: Vec<f32> = (0..rows * len).map(|i| ((i * 37) % 101) as f32 / 7.0 - 3.0).collect();
            let mut w = Workspace::<f32>::default();
            w.ready();
            let mut dest = vec![0.0f32; rows * len];
            for (keep, with_filled) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut sums = vec![0.0; rows];
                let mut filled = vec![f64::NAN; rows];
                let d = if keep { Some(&mut dest[..]) } else { None };
                fill_sums(
                    len,
                    rows,
                    d,
                    &mut w.tile,
                    &mut w.parts,
                    &mut sums,
                    with_filled.then_some(&mut filled[..]),
                    |k, c0, v| v.copy_from_slice(&x[k * len + c0..k * len + c0 + v.len()]),
                    summed(|k, c0, v| exp_in_place_fetching(v, &[x.as_ptr().wrapping_add(rows * len)], k * len + c0)),
                );
                for (k, s) in sums.iter().enumerate() {
                    let want = crate::kernels::sum::sum_by(len, |c| x[k * len + c].vexp().acc());
                    assert_eq!(s.to_bits(), want.to_bits(), "len={len} k={k}");
                    // the sums before the map: of x itself; untouched without `filled`
                    let want = crate::kernels::sum::sum_by(len, |c| x[k * len + c].acc());
                    assert!(if with_filled { filled[k].to_bits() == want.to_bits() } else { filled[k].is_nan() });
                }
            }
            assert!(dest.iter().zip(&x).all(|(e, v)| *e == v.vexp()));
        }
    }

    /// Test rows: `rows` rows of `len` logits in about [-8, 8], row 1 with logits of +-1e4,
    /// row 2 with a `-inf` at its last class (when it has two classes or more).
    fn logits(rows: usize, len: usize) -> Vec<f64> {
        let mut x: Vec<f64> = (0..rows * len).map(|i| ((i * 7919) % 1601) as f64 / 100.0 - 8.0).collect();
        if rows > 2 {
            for c in 0..len {
                x[len + c] = if c % 2 == 0 { 1e4 } else { -1e4 };
            }
            if len > 1 {
                x[3 * len - 1] = f64::NEG_INFINITY;
            }
        }
        x
    }

    /// `ln sum exp` of a row in f64, plainly.
    fn plain_lse(row: &[f64]) -> f64 {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
    }

    /// `got` against `want` to `tol` relative to `max(1, |want|)`; non-finite values must match.
    fn close(got: f64, want: f64, tol: f64) -> bool {
        if !want.is_finite() {
            return got == want || got.is_nan() && want.is_nan();
        }
        (got - want).abs() <= tol * want.abs().max(1.0)
    }

    fn same_bits<T: Float>(a: &[T], b: &[T]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.f64().to_bits() == q.f64().to_bits())
    }

    /// Runs `kernel(r0, r1, work)` on rows `0..rows` in groups of `per_group` rows.
    fn by_groups(rows: usize, per_group: usize, mut kernel: impl FnMut(usize, usize, &mut Workspace<f64>)) {
        let mut work = Workspace::default();
        let mut r0 = 0;
        while r0 < rows {
            let r1 = (r0 + per_group).min(rows);
            kernel(r0, r1, &mut work);
            r0 = r1;
        }
    }

    /// Row lengths on both sides of the switch from groups of rows to blocks of one row.
    fn lengths() -> impl Iterator<Item = usize> {
        (1..=80).chain([BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 3])
    }

    #[test]
    fn grouped_index_rows_match_single_rows_and_the_plain_formula() {
        use crate::kernels::xent::{index_xent_rows, Smoothing};
        for len in lengths() {
            let rows = rows_per_group(len) + 3;
            let x = logits(rows, len);
            // every fourth row ignored (and given a zero cotangent, as the losses do)
            let target = |r: usize| (r % 4 != 3).then_some((r * 7) % len);
            let cot = |r: usize| if r % 4 == 3 { 0.0 } else { 0.5 + (r % 3) as f64 };
            let w: Vec<f64> = (0..len).map(|c| 0.5 + (c % 3) as f64).collect();
            let total: f64 = w.iter().sum();
            for (smoothing, weighted) in [(false, false), (true, false), (false, true), (true, true)] {
                let sm = smoothing.then(|| Smoothing { keep: 0.9, per_class: 0.1 / len as f64 });
                let weights = weighted.then_some((&w[..], total));
                let run = |per_group: usize| {
                    let (mut v, mut g) = (vec![0.0; rows], vec![f64::NAN; rows * len]);
                    by_groups(rows, per_group, |r0, r1, work| {
                        let (t, s) = (|k| target(r0 + k), |k| cot(r0 + k));
                        let g = Some(&mut g[r0 * len..r1 * len]);
                        index_xent_rows(&x[r0 * len..], len, t, sm, weights, s, g, &mut v[r0..r1], work);
                    });
                    (v, g)
                };
                let (v, g) = run(rows_per_group(len));
                let (v1, g1) = run(1);
                assert!(same_bits(&v, &v1) && same_bits(&g, &g1), "len={len} sm={smoothing} w={weighted}");
                let (keep, per_class) = sm.map_or((1.0, 0.0), |s| (s.keep, s.per_class));
                let wt = |c: usize| if weighted { w[c] } else { 1.0 };
                for r in 0..rows {
                    let row = &x[r * len..(r + 1) * len];
                    let lse = plain_lse(row);
                    let logp = |c: usize| row[c] - lse;
                    let want = target(r).map_or(0.0, |t| {
                        let smooth: f64 = if smoothing { (0..len).map(|c| wt(c) * logp(c)).sum() } else { 0.0 };
                        -keep * wt(t) * logp(t) - per_class * smooth
                    });
                    assert!(close(v[r], want, 1e-12), "len={len} r={r}: {} vs {want}", v[r]);
                    let gamma = |c: usize| match target(r) {
                        Some(t) => -cot(r) * (per_class * wt(c) + if c == t { keep * wt(t) } else { 0.0 }),
                        None => 0.0,
                    };
                    let gamma_sum: f64 = (0..len).map(gamma).sum();
                    for c in 0..len {
                        let want = gamma(c) - logp(c).exp() * gamma_sum;
                        assert!(close(g[r * len + c], want, 1e-12), "len={len} r={r} c={c}");
                    }
                }
            }
        }
    }

    #[test]
    fn grouped_probability_rows_match_single_rows_and_the_plain_formula() {
        use crate::kernels::xent::{prob_xent_rows, Smoothing};
        for len in lengths() {
            let rows = rows_per_group(len) + 3;
            let mut x = logits(rows, len);
            if rows > 2 && len > 1 {
                // a -inf logit meets a zero target: NaN; keep row 2 finite
                x[3 * len - 1] = -30.0;
            }
            let y: Vec<f64> = (0..rows * len).map(|i| ((i * 31) % 7) as f64 / (4.0 * len as f64)).collect();
            let cot = |r: usize| 0.25 + (r % 5) as f64;
            let w: Vec<f64> = (0..len).map(|c| 0.5 + (c % 3) as f64).collect();
            for (smoothing, weighted) in [(false, false), (true, true)] {
                let sm = smoothing.then(|| Smoothing { keep: 0.8, per_class: 0.2 / len as f64 });
                let weights = weighted.then_some(&w[..]);
                let run = |per_group: usize| {
                    let (mut v, mut g, mut gy) =
                        (vec![0.0; rows], vec![f64::NAN; rows * len], vec![f64::NAN; rows * len]);
                    by_groups(rows, per_group, |r0, r1, work| {
                        let span = r0 * len..r1 * len;
                        let (g, gy) = (Some(&mut g[span.clone()]), Some(&mut gy[span.clone()]));
                        let s = |k| cot(r0 + k);
                        prob_xent_rows(&x[span.clone()], &y[span], len, sm, weights, s, g, gy, &mut v[r0..r1], work);
                    });
                    (v, g, gy)
                };
                let (v, g, gy) = run(rows_per_group(len));
                let (v1, g1, gy1) = run(1);
                assert!(same_bits(&v, &v1) && same_bits(&g, &g1) && same_bits(&gy, &gy1), "len={len}");
                let (keep, per_class) = sm.map_or((1.0, 0.0), |s| (s.keep, s.per_class));
                let wt = |c: usize| if weighted { w[c] } else { 1.0 };
                for r in 0..rows {
                    let (row, ys) = (&x[r * len..(r + 1) * len], &y[r * len..(r + 1) * len]);
                    let lse = plain_lse(row);
                    let tau = |c: usize| wt(c) * (keep * ys[c] + per_class);
                    let mass: f64 = (0..len).map(tau).sum();
                    let want: f64 = -(0..len).map(|c| tau(c) * (row[c] - lse)).sum::<f64>();
                    assert!(close(v[r], want, 1e-12), "len={len} r={r}: {} vs {want}", v[r]);
                    for c in 0..len {
                        let p = (row[c] - lse).exp();
                        assert!(close(g[r * len + c], cot(r) * (p * mass - tau(c)), 1e-12), "len={len} r={r} c={c}");
                        let want = -cot(r) * keep * wt(c) * (row[c] - lse);
                        assert!(close(gy[r * len + c], want, 1e-12), "len={len} r={r} c={c}");
                    }
                }
            }
        }
    }

    #[test]
    fn grouped_log_softmax_rows_match_single_rows_and_the_plain_formula() {
        use crate::kernels::axis::log_softmax_rows_into;
        for len in lengths() {
            let rows = rows_per_group(len) + 3;
            let x = logits(rows, len);
            let u: Vec<f64> = (0..rows * len).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
            for per_element in [false, true] {
                let run = |per_group: usize, grad: bool| {
                    let (mut out, mut g) = (vec![f64::NAN; rows * len], vec![f64::NAN; rows * len]);
                    by_groups(rows, per_group, |r0, r1, work| {
                        let span = r0 * len..r1 * len;
                        let each = per_element.then(|| &u[span.clone()]);
                        let vjp = grad.then(|| (each, 0.5, &mut g[span.clone()]));
                        log_softmax_rows_into(&x[span.clone()], len, &mut out[span], vjp, work);
                    });
                    (out, g)
                };
                let (out, g) = run(rows_per_group(len), true);
                let (out1, g1) = run(1, true);
                let (out0, _) = run(rows_per_group(len), false);
                assert!(same_bits(&out, &out1) && same_bits(&g, &g1) && same_bits(&out, &out0), "len={len}");
                for r in 0..rows {
                    let row = &x[r * len..(r + 1) * len];
                    let lse = plain_lse(row);
                    let up = |c: usize| 0.5 * if per_element { u[r * len + c] } else { 1.0 };
                    let total: f64 = (0..len).map(up).sum();
                    for (c, &xc) in row.iter().enumerate() {
                        let i = r * len + c;
                        assert!(close(out[i], xc - lse, 1e-12), "len={len} r={r} c={c}");
                        let want = up(c) - (xc - lse).exp() * total;
                        assert!(close(g[i], want, 1e-12), "len={len} r={r} c={c}: {} vs {want}", g[i]);
                    }
                }
            }
        }
    }

    #[test]
    fn a_nan_logit_makes_its_whole_row_nan_and_no_other() {
        // the row maxima skip NaN: the NaN reaches the results through the row's sum of
        // exponentials, in every kernel, short rows and long, f32 and f64
        use crate::kernels::axis::log_softmax_rows_into;
        use crate::kernels::xent::{index_xent_rows, prob_xent_rows};
        fn check<T: Float>(len: usize) {
            let rows = 3;
            let mut x: Vec<T> = (0..rows * len).map(|i| T::of(((i * 13) % 17) as f64 / 4.0 - 2.0)).collect();
            x[len + len / 2] = T::nan();
            let y: Vec<T> = vec![T::of(1.0 / len as f64); rows * len];
            let nan_row = |v: &[T], r: usize| v[r * len..(r + 1) * len].iter().all(|e| e.is_nan());
            let finite_row = |v: &[T], r: usize| v[r * len..(r + 1) * len].iter().all(|e| e.is_finite());
            let mut work = Workspace::default();
            let (mut v, mut g, mut gy) =
                (vec![T::zero(); rows], vec![T::zero(); rows * len], vec![T::zero(); rows * len]);
            index_xent_rows(&x, len, |k| Some(k % len), None, None, |_| T::one(), Some(&mut g), &mut v, &mut work);
            assert!(v[1].is_nan() && nan_row(&g, 1) && v[0].is_finite() && finite_row(&g, 2), "index len {len}");
            prob_xent_rows(&x, &y, len, None, None, |_| T::one(), Some(&mut g), Some(&mut gy), &mut v, &mut work);
            assert!(v[1].is_nan() && nan_row(&g, 1) && nan_row(&gy, 1), "probabilities len {len}");
            assert!(v[2].is_finite() && finite_row(&g, 0) && finite_row(&gy, 2), "probabilities len {len}");
            let mut out = vec![T::zero(); rows * len];
            log_softmax_rows_into(&x, len, &mut out, Some((None, T::one(), &mut g)), &mut work);
            assert!(
                nan_row(&out, 1) && nan_row(&g, 1) && finite_row(&out, 0) && finite_row(&g, 2),
                "log_softmax {len}"
            );
        }
        for len in [1usize, 2, 32, BLOCK + 5, 3 * BLOCK] {
            check::<f32>(len);
            check::<f64>(len);
        }
    }

    #[test]
    fn f32_groups_match_single_rows() {
        // the f32 kernels (vectorised exp and ln) give each row the same bits in any grouping
        // (groups of eight rows or more also go across SIMD lanes, `row_lanes`, where the CPU
        // has AVX2: a group of one row never does), with label smoothing, class weights,
        // ignored rows and per-row cotangents, and stay within f32 accuracy of the f64 result
        use crate::kernels::xent::{index_xent_rows, Smoothing};
        for len in lengths() {
            let rows = rows_per_group(len) + 3;
            let x64 = logits(rows, len);
            let x: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
            let target = |r: usize| (r % 5 != 4).then_some((r * 7) % len);
            let cot = |r: usize| if r % 5 == 4 { 0.0 } else { 0.5 + (r % 3) as f32 };
            let w: Vec<f32> = (0..len).map(|c| 0.5 + (c % 3) as f32).collect();
            let total: f64 = w.iter().map(|&v| v as f64).sum();
            for (smoothing, weighted) in [(false, false), (true, false), (false, true), (true, true)] {
                let sm = smoothing.then(|| Smoothing { keep: 0.9f32, per_class: 0.1 / len as f32 });
                let weights = weighted.then_some((&w[..], total));
                let run = |per_group: usize| {
                    let (mut v, mut g) = (vec![0.0f32; rows], vec![f32::NAN; rows * len]);
                    let mut work = Workspace::default();
                    let mut r0 = 0;
                    while r0 < rows {
                        let r1 = (r0 + per_group).min(rows);
                        let (t, s) = (|k: usize| target(r0 + k), |k: usize| cot(r0 + k));
                        let g = Some(&mut g[r0 * len..r1 * len]);
                        index_xent_rows(&x[r0 * len..], len, t, sm, weights, s, g, &mut v[r0..r1], &mut work);
                        r0 = r1;
                    }
                    (v, g)
                };
                let (v, g) = run(rows_per_group(len));
                let (v1, g1) = run(1);
                assert!(same_bits(&v, &v1) && same_bits(&g, &g1), "len={len} sm={smoothing} w={weighted}");
                if smoothing || weighted {
                    continue;
                }
                for r in 0..rows {
                    let row: Vec<f64> = x[r * len..(r + 1) * len].iter().map(|&v| v as f64).collect();
                    let want = target(r).map_or(0.0, |t| plain_lse(&row) - row[t]);
                    assert!(close(v[r] as f64, want, 4e-7), "len={len} r={r}: {} vs {want}", v[r]);
                }
            }
        }
    }

    #[test]
    fn f32_probability_groups_match_single_rows() {
        // as `f32_groups_match_single_rows`, for probability targets (rows of up to 32 classes
        // in groups of eight or more go across SIMD lanes where the CPU has AVX2), with label
        // smoothing and class weights, both gradients
        use crate::kernels::xent::{prob_xent_rows, Smoothing};
        for len in lengths() {
            let rows = rows_per_group(len) + 3;
            let x: Vec<f32> = logits(rows, len).iter().map(|&v| v as f32).collect();
            let y: Vec<f32> = (0..rows * len).map(|i| ((i * 13) % 7) as f32 / (7.0 * len as f32)).collect();
            let cot = |r: usize| 0.5 + (r % 3) as f32;
            let w: Vec<f32> = (0..len).map(|c| 0.5 + (c % 3) as f32).collect();
            for (smoothing, weighted) in [(false, false), (true, false), (false, true), (true, true)] {
                let sm = smoothing.then(|| Smoothing { keep: 0.9f32, per_class: 0.1 / len as f32 });
                let weights = weighted.then_some(&w[..]);
                let run = |per_group: usize| {
                    let (mut v, mut g, mut gy) =
                        (vec![0.0f32; rows], vec![f32::NAN; rows * len], vec![f32::NAN; rows * len]);
                    let mut work = Workspace::default();
                    let mut r0 = 0;
                    while r0 < rows {
                        let r1 = (r0 + per_group).min(rows);
                        let span = r0 * len..r1 * len;
                        let (gs, gys) = (Some(&mut g[span.clone()]), Some(&mut gy[span.clone()]));
                        let s = |k: usize| cot(r0 + k);
                        prob_xent_rows(
                            &x[span.clone()],
                            &y[span],
                            len,
                            sm,
                            weights,
                            s,
                            gs,
                            gys,
                            &mut v[r0..r1],
                            &mut work,
                        );
                        r0 = r1;
                    }
                    (v, g, gy)
                };
                let (v, g, gy) = run(rows_per_group(len));
                let (v1, g1, gy1) = run(1);
                let same = same_bits(&v, &v1) && same_bits(&g, &g1) && same_bits(&gy, &gy1);
                assert!(same, "len={len} sm={smoothing} w={weighted}");
            }
        }
    }
}
