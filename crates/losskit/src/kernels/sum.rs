//! Deterministic, accurate summation, serial or multi-threaded with the same bits.
//!
//! Values are widened to `f64` and summed in one fixed tree that depends only on the length:
//!
//! 1. blocks of [`BLOCK`] consecutive elements, each summed in [`LANES`] interleaved partial
//!    sums (element `i` goes to lane `i % LANES`) joined by a fixed tree — the shape a SIMD
//!    pair of AVX-512 registers of `f64` computes, so the compiler vectorises it without reordering;
//! 2. the block sums of one chunk of [`CHUNK`] elements joined pairwise (split at half the
//!    blocks);
//! 3. the chunk sums joined pairwise in the same way.
//!
//! Chunks are the unit of multi-threading ([`par_chunks`]): a thread computes whole chunks and
//! the chunk sums are joined in chunk order afterwards, so one thread, two threads or sixty-four
//! give the same bits. The error bound is `O(log2(n / BLOCK) + BLOCK / LANES)` roundings of the
//! `f64` accumulator, far below one `f32` ulp of the result: an `f32` mean is the correctly
//! rounded mean except in ties at the last `f64` bit.

use rayon::prelude::*;

use crate::float::Float;

/// Elements summed sequentially (in [`LANES`] interleaved partial sums) before pairing.
pub const BLOCK: usize = 256;
/// Interleaved partial sums inside a block.
pub const LANES: usize = 16;
/// Elements per unit of parallel work (a whole number of blocks). Fixed: the summation tree
/// never depends on the thread count.
pub const CHUNK: usize = 128 * BLOCK;
/// Blocks of a long row that the softmax kernels compute before summing them, side by side
/// ([`block_sums`]): a run of `RUN * BLOCK` elements still fits in the first-level cache. (The
/// elementwise driver [`fused`] sums each block as it comes: with runs, its memory-bound
/// loops lost about 10%.)
pub const RUN: usize = 4;
/// Work below this many elements stays on the calling thread: a fork-join costs a few
/// microseconds, about what one thread needs for this many elements of a cheap loss.
pub const PARALLEL_MIN: usize = 2 * CHUNK;

/// Sum of up to [`BLOCK`] values: [`LANES`] interleaved `f64` partial sums joined by a fixed
/// tree.
///
/// Dispatched on its own (not inlined into the caller's loop): inlined into a fused kernel,
/// the compiler vectorised it poorly (two-lane adds and shuffles); on its own it is one
/// widening load and one add per eight elements.
#[inline]
pub fn block_sum<T: Float>(xs: &[T]) -> f64 {
    pulp::Arch::new().dispatch(BlockSum(xs))
}

struct BlockSum<'a, T>(&'a [T]);

impl<T: Float> pulp::WithSimd for BlockSum<'_, T> {
    type Output = f64;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> f64 {
        // the same order as block_sum_by, written over fixed-size arrays so that it vectorises
        let mut lanes = [0.0f64; LANES];
        let mut groups = self.0.chunks_exact(LANES);
        for group in &mut groups {
            if let Ok(g) = <&[T; LANES]>::try_from(group) {
                for l in 0..LANES {
                    lanes[l] += g[l].acc();
                }
            }
        }
        // the remainder as one more group padded with +0 (which leaves every lane's bits as
        // they are: a lane that starts at +0 is never -0): indexed by a run-time count, the
        // lanes themselves would live in memory for the whole piece
        let rest = groups.remainder();
        if !rest.is_empty() {
            let mut last = [0.0f64; LANES];
            for (p, &x) in last.iter_mut().zip(rest) {
                *p = x.acc();
            }
            for l in 0..LANES {
                lanes[l] += last[l];
            }
        }
        join_lanes(&lanes)
    }
}

/// [`block_sum`] of each piece of `len` (at most [`BLOCK`]) consecutive elements of `xs` into
/// `out` (one sum per piece): the per-row sums of a group of short rows, or the blocks of a
/// longer run, in one dispatched call, the same bits as one [`block_sum`] per piece.
///
/// Pieces longer than [`SHORT_PIECE`] are summed four side by side: such a piece alone is a
/// chain of dependent adds (one per [`LANES`] elements, each waiting for the last), and four
/// chains interleaved keep the adder busy. For `f32` on a CPU with AVX-512F, an intrinsic
/// kernel does it and joins the four pieces' lanes in vector shuffles (Keras losses with rows
/// of 100, Intel Xeon: 0.77-0.95x the time on 1 thread, best of five rounds; 0.66-0.88x on 2).
#[inline]
pub fn block_sums<T: Float>(xs: &[T], len: usize, out: &mut [f64]) {
    debug_assert!(0 < len && len <= BLOCK);
    pulp::Arch::new().dispatch(BlockSums(xs, len, out))
}

struct BlockSums<'a, T>(&'a [T], usize, &'a mut [f64]);

/// Pieces of at most this many elements are summed one at a time by [`block_sums`].
pub const SHORT_PIECE: usize = 4 * LANES;

impl<T: Float> pulp::WithSimd for BlockSums<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let BlockSums(xs, len, out) = self;
        if len <= SHORT_PIECE {
            // a short piece's lanes fit in registers and its chains are short: pieces one at a
            // time overlap in the out-of-order window, where four side by side spilled their
            // 64 lanes to the stack (cross_entropy of 65536x32 logits, `perf`: the row sums
            // went from 28% to 24% of the samples)
            for (o, piece) in out.iter_mut().zip(xs.chunks_exact(len)) {
                *o = BlockSum(piece).with_simd(simd);
            }
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(x) = crate::kernels::row_lanes::as_f32(xs).filter(|_| is_x86_feature_detected!("avx512f")) {
            let quads = (x.len() / (4 * len)).min(out.len() / 4);
            let (four, rest) = out.split_at_mut(4 * quads);
            // SAFETY: the CPU has AVX-512F; `x` holds `4 * quads` pieces of `len <= BLOCK`
            // elements, one sum each in `four`.
            unsafe { avx512::block_sums4(x, len, four) };
            for (o, piece) in rest.iter_mut().zip(xs[4 * quads * len..].chunks_exact(len)) {
                *o = BlockSum(piece).with_simd(simd);
            }
            return;
        }
        let quads = xs.chunks_exact(4 * len);
        let single = quads.remainder();
        let mut out_quads = out.chunks_exact_mut(4);
        for (quad, o) in quads.zip(&mut out_quads) {
            let (p01, p23) = quad.split_at(2 * len);
            let (p0, p1) = p01.split_at(len);
            let (p2, p3) = p23.split_at(len);
            let pieces = [p0, p1, p2, p3];
            // per piece, lane l adds the piece's groups in order, then its remainder: the
            // order of BlockSum
            let mut lanes = [[0.0f64; LANES]; 4];
            let groups = pieces.map(|p| p.chunks_exact(LANES));
            let [g0, g1, g2, g3] = groups.clone();
            for (((a, b), c), d) in g0.zip(g1).zip(g2).zip(g3) {
                for (p, g) in [a, b, c, d].into_iter().enumerate() {
                    if let Ok(g) = <&[T; LANES]>::try_from(g) {
                        for l in 0..LANES {
                            lanes[p][l] += g[l].acc();
                        }
                    }
                }
            }
            for ((o, lanes), g) in o.iter_mut().zip(&mut lanes).zip(groups) {
                for (lane, &x) in lanes.iter_mut().zip(g.remainder()) {
                    *lane += x.acc();
                }
                *o = join_lanes(lanes);
            }
        }
        for (o, piece) in out_quads.into_remainder().iter_mut().zip(single.chunks_exact(len)) {
            *o = BlockSum(piece).with_simd(simd);
        }
    }
}

/// Each piece of `len` consecutive elements of `xs` summed in `T` itself, into `out` (one sum
/// per piece): eight interleaved partial sums joined by a fixed tree. For sums that only need
/// to be close, such as error bounds: for non-negative values the result lies within
/// `(len / 8 + 3) u` relative of the exact sum (`u` the unit roundoff of `T`), where
/// [`block_sums`]' widened `f64` lanes are exact to far below that, at about twice the
/// operations per element (a widening conversion for every addition). Deterministic as
/// [`block_sums`] is: a fixed order whatever the thread count.
#[inline]
pub fn close_sums<T: Float>(xs: &[T], len: usize, out: &mut [f64]) {
    pulp::Arch::new().dispatch(CloseSums(xs, len, out))
}

struct CloseSums<'a, T>(&'a [T], usize, &'a mut [f64]);

impl<T: Float> pulp::WithSimd for CloseSums<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        const EIGHT: usize = 8;
        let CloseSums(xs, len, out) = self;
        if len == 0 {
            out.fill(0.0);
            return;
        }
        // pieces four side by side: one piece alone is a chain of dependent adds (one per
        // eight elements) and a join, which four interleaved chains hide (poisson, rows of 100,
        // Intel Xeon, `perf`: one at a time, these sums took 12% of the samples)
        let pieces = out.len().min(xs.len() / len);
        let quads = xs[..4 * (pieces / 4) * len].chunks_exact(4 * len);
        let mut out_quads = out[..pieces].chunks_exact_mut(4);
        for (quad, o) in quads.zip(&mut out_quads) {
            let mut lanes = [[T::zero(); EIGHT]; 4];
            let groups: [_; 4] = core::array::from_fn(|p| quad[p * len..(p + 1) * len].chunks_exact(EIGHT));
            let [g0, g1, g2, g3] = groups.clone();
            for (((a, b), c), d) in g0.zip(g1).zip(g2).zip(g3) {
                for (lanes, g) in lanes.iter_mut().zip([a, b, c, d]) {
                    add_eight(lanes, g);
                }
            }
            for ((o, lanes), g) in o.iter_mut().zip(&mut lanes).zip(groups) {
                *o = join_eight(lanes, g.remainder());
            }
        }
        let first_single = 4 * (pieces / 4);
        for (o, piece) in out_quads.into_remainder().iter_mut().zip(xs[first_single * len..].chunks_exact(len)) {
            let mut lanes = [T::zero(); EIGHT];
            let mut groups = piece.chunks_exact(EIGHT);
            for group in &mut groups {
                add_eight(&mut lanes, group);
            }
            *o = join_eight(&mut lanes, groups.remainder());
        }
    }
}

/// One group of eight elements into [`close_sums`]' eight lanes, element `l` into lane `l`.
#[inline(always)]
fn add_eight<T: Float>(lanes: &mut [T; 8], group: &[T]) {
    if let Ok(g) = <&[T; 8]>::try_from(group) {
        for l in 0..8 {
            lanes[l] += g[l];
        }
    }
}

/// A piece's remainder (fewer than eight elements) into [`close_sums`]' lanes from lane 0,
/// then the fixed tree over the eight lanes, widened at the end.
#[inline(always)]
fn join_eight<T: Float>(l: &mut [T; 8], rest: &[T]) -> f64 {
    for (lane, &x) in l.iter_mut().zip(rest) {
        *lane += x;
    }
    let q = |k: usize| (l[k] + l[k + 1]) + (l[k + 2] + l[k + 3]);
    (q(0) + q(4)).acc()
}

/// The block sums of a run of consecutive elements (all blocks [`BLOCK`] long but the last)
/// into `out`, one per block: [`block_sums`] of the whole blocks and [`block_sum`] of the
/// last, shorter one.
#[inline(always)]
pub fn run_block_sums<T: Float>(xs: &[T], out: &mut [f64]) {
    let full = xs.len() / BLOCK;
    let (whole, rest) = xs.split_at(full * BLOCK);
    if full > 0 {
        block_sums(whole, BLOCK, &mut out[..full]);
    }
    if !rest.is_empty() {
        out[full] = block_sum(rest);
    }
}

/// The fixed tree over the lanes.
#[inline(always)]
pub fn join_lanes(l: &[f64; LANES]) -> f64 {
    let q = |k: usize| (l[k] + l[k + 1]) + (l[k + 2] + l[k + 3]);
    (q(0) + q(4)) + (q(8) + q(12))
}

/// The `f64` lanes of block sums in AVX-512 registers (`f32` values).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use core::arch::x86_64::*;

    use super::{BLOCK, LANES};

    /// Lanes 0-7 and 8-15 of `e` widened to `f64` and added to `lo` and `hi`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn add_widened(lo: &mut __m512d, hi: &mut __m512d, e: __m512) {
        let upper = _mm512_castpd_ps(_mm512_castpd256_pd512(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e))));
        *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm512_castps512_ps256(upper)));
    }

    /// [`block_sums`](super::block_sums) of `f32` pieces of `len` elements (`SHORT_PIECE < len
    /// <= BLOCK`), four side by side, into `out` (one sum per piece, four at a time). Each piece
    /// has sixteen `f64` lanes in two registers, which take its groups of sixteen in order, then
    /// its remainder (the lanes past it add `+0`, which leaves them as they are: a lane that
    /// starts at `+0` is never `-0`); the four pieces' lanes are then joined by
    /// [`join_lanes`](super::join_lanes)'s tree in 512-bit vectors. Joined one piece at a time
    /// in the generic code, the lanes went through the stack and back.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `xs` holds at least `out.len() * len` elements, `out.len()` is a
    /// multiple of 4 and `len <= BLOCK`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block_sums4(xs: &[f32], len: usize, out: &mut [f64]) {
        debug_assert!(LANES == 16 && len <= BLOCK && out.len().is_multiple_of(4) && xs.len() >= out.len() * len);
        let full = len - len % LANES;
        let rest_mask: __mmask16 = ((1u32 << (len - full)) - 1) as u16;
        for (q, o) in out.chunks_exact_mut(4).enumerate() {
            let start = 4 * q * len;
            let (mut lo, mut hi) = ([_mm512_setzero_pd(); 4], [_mm512_setzero_pd(); 4]);
            let mut i = 0;
            while i < full {
                for p in 0..4 {
                    // SAFETY: piece `p` of this quad holds `len` elements from `start + p len`,
                    // and `i + 16 <= full <= len`.
                    let at = unsafe { xs.as_ptr().add(start + p * len + i) };
                    // SAFETY: sixteen elements from `at`: eight, then eight more (two loads
                    // where `add_widened` would take one and a shuffle)
                    let (a, b) = unsafe { (_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))) };
                    lo[p] = _mm512_add_pd(lo[p], _mm512_cvtps_pd(a));
                    hi[p] = _mm512_add_pd(hi[p], _mm512_cvtps_pd(b));
                }
                i += LANES;
            }
            if full < len {
                for p in 0..4 {
                    // SAFETY: the mask selects the `len - full < 16` elements left in piece `p`;
                    // masked lanes are not read and cannot fault.
                    let v = unsafe { _mm512_maskz_loadu_ps(rest_mask, xs.as_ptr().add(start + p * len + full)) };
                    add_widened(&mut lo[p], &mut hi[p], v);
                }
            }
            // l[k] + l[k + 1] for even k, two pieces interleaved: [a0+a1, b0+b1, a2+a3, b2+b3, ..]
            let pairs = |x: __m512d, y: __m512d| _mm512_add_pd(_mm512_unpacklo_pd(x, y), _mm512_unpackhi_pd(x, y));
            // 128-bit quarters (0, 2) of x then of y, and (1, 3): the two operands of the next sums
            let evens = |x: __m512d, y: __m512d| _mm512_shuffle_f64x2::<0b10_00_10_00>(x, y);
            let odds = |x: __m512d, y: __m512d| _mm512_shuffle_f64x2::<0b11_01_11_01>(x, y);
            // q(k) = pair(k) + pair(k + 2), for k = 0 and 4 in `low`, 8 and 12 in `high`:
            // [qA(k), qB(k), qA(k+4), qB(k+4), qC(k), qD(k), qC(k+4), qD(k+4)]
            let quads = |x: [__m512d; 4]| {
                let (ab, cd) = (pairs(x[0], x[1]), pairs(x[2], x[3]));
                _mm512_add_pd(evens(ab, cd), odds(ab, cd))
            };
            let (low, high) = (quads(lo), quads(hi));
            // q(0) + q(4) of A-D, then q(8) + q(12) of A-D
            let halves = _mm512_add_pd(evens(low, high), odds(low, high));
            let sums = _mm256_add_pd(_mm512_castpd512_pd256(halves), _mm512_extractf64x4_pd::<1>(halves));
            // SAFETY: `o` holds four f64.
            unsafe { _mm256_storeu_pd(o.as_mut_ptr(), sums) };
        }
    }
}

/// [`block_sum`] of `f(i)` for `i` in `0..n` (`n <= BLOCK`).
#[inline(always)]
pub fn block_sum_by(n: usize, f: impl Fn(usize) -> f64) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let full = n - n % LANES;
    let mut i = 0;
    while i < full {
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane += f(i + l);
        }
        i += LANES;
    }
    for (l, lane) in lanes.iter_mut().enumerate().take(n - full) {
        *lane += f(full + l);
    }
    join_lanes(&lanes)
}

/// Pairwise sum of partial sums, split at half their count.
pub fn tree(parts: &[f64]) -> f64 {
    // the smallest trees written out (the same splits): fewer calls at the leaves
    match *parts {
        [] => 0.0,
        [a] => a,
        [a, b] => a + b,
        [a, b, c] => a + (b + c),
        [a, b, c, d] => (a + b) + (c + d),
        _ => {
            let half = parts.len() / 2;
            tree(&parts[..half]) + tree(&parts[half..])
        }
    }
}

/// The sum of [`sum_by`] from its block sums (`parts[b]` the sum of elements
/// `b * BLOCK..(b + 1) * BLOCK`, as [`block_sum`] gives it), joined by the same tree: for a
/// kernel that sums its values block by block as it computes them, in blocks of its own order.
pub fn tree_of_block_sums(parts: &[f64]) -> f64 {
    let chunks: Vec<f64> = parts.chunks(CHUNK / BLOCK).map(tree).collect();
    tree(&chunks)
}

/// One chunk `start..end` (at most [`CHUNK`] elements) cut into blocks, `block(b, e)` the sum
/// of block `b..e`, the block sums joined by the tree.
#[inline(always)]
fn chunk_blocks(start: usize, end: usize, block: impl Fn(usize, usize) -> f64) -> f64 {
    let mut parts = [0.0f64; CHUNK / BLOCK];
    let mut nb = 0;
    let mut b = start;
    while b < end {
        let len = BLOCK.min(end - b);
        parts[nb] = block(b, b + len);
        nb += 1;
        b += len;
    }
    tree(&parts[..nb])
}

/// The tree of [`sum_by`] over `n` elements, `block(b, e)` the sum of block `b..e`.
#[inline(always)]
fn sum_blocks(n: usize, block: impl Fn(usize, usize) -> f64) -> f64 {
    if n <= BLOCK {
        // one block: the tree of one part is the part itself
        return block(0, n);
    }
    let parts: Vec<f64> = (0..n).step_by(CHUNK).map(|c| chunk_blocks(c, (c + CHUNK).min(n), &block)).collect();
    tree(&parts)
}

/// [`sum_by`] of `f(a[i], b[i])` over two slices of one length: the same bits.
///
/// `f` gets the elements, not an index, and the blocks are cut from the slices: with an index
/// the compiler kept a bounds check per element and the loop scalar (the row norms of the
/// cosine and triplet losses ran at a quarter of the vector speed).
#[inline(always)]
pub fn sum_zip<A: Copy, B: Copy>(a: &[A], b: &[B], f: impl Fn(A, B) -> f64) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    sum_dispatched_blocks(
        n,
        #[inline(always)]
        |s, e| block_sum_zip(&a[s..e], &b[s..e], &f),
    )
}

/// [`sum_blocks`] with each block [`dispatch`](crate::kernels::simd::dispatch)ed on its own,
/// like [`block_sum`] (pass `block` as an `#[inline(always)]` closure). Left to the compiler,
/// a block closure was neither inlined into its (dispatched) caller nor compiled for the
/// caller's instruction set: it ran at the baseline, as a two-lane SSE2 loop, with every fused
/// multiply-add of `vln` a call to the C library's `fmaf`; forced inline into the caller, it
/// did not vectorise.
#[inline(always)]
fn sum_dispatched_blocks(n: usize, block: impl Fn(usize, usize) -> f64) -> f64 {
    sum_blocks(n, |s, e| dispatched_block(&block, s, e))
}

/// `block(s, e)`, [`dispatch`](crate::kernels::simd::dispatch)ed on its own.
#[inline(always)]
fn dispatched_block(block: &impl Fn(usize, usize) -> f64, s: usize, e: usize) -> f64 {
    crate::kernels::simd::dispatch(
        #[inline(always)]
        || block(s, e),
    )
}

/// `(sum_zip(a, b, f), sum_zip(a, c, g))`, the same bits: for slices of at most [`BLOCK`]
/// elements (the rows of an embedding loss) one dispatched pass that reads `a` once, where two
/// calls cost two dispatches and two reads; longer slices take the two calls.
#[inline(always)]
pub fn sum_zip_pair<A: Copy, B: Copy, C: Copy>(
    a: &[A],
    b: &[B],
    c: &[C],
    f: impl Fn(A, B) -> f64,
    g: impl Fn(A, C) -> f64,
) -> (f64, f64) {
    debug_assert!(a.len() == b.len() && a.len() == c.len());
    let n = a.len().min(b.len()).min(c.len());
    if n > BLOCK {
        return (sum_zip(a, b, f), sum_zip(a, c, g));
    }
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    crate::kernels::simd::dispatch(
        #[inline(always)]
        || {
            // block_sum_zip's lanes, twice
            let (mut lf, mut lg) = ([0.0f64; LANES], [0.0f64; LANES]);
            let (ga, gb, gc) = (a.chunks_exact(LANES), b.chunks_exact(LANES), c.chunks_exact(LANES));
            let (ra, rb, rc) = (ga.remainder(), gb.remainder(), gc.remainder());
            for ((x, y), z) in ga.zip(gb).zip(gc) {
                if let (Ok(x), Ok(y), Ok(z)) =
                    (<&[A; LANES]>::try_from(x), <&[B; LANES]>::try_from(y), <&[C; LANES]>::try_from(z))
                {
                    for l in 0..LANES {
                        lf[l] += f(x[l], y[l]);
                        lg[l] += g(x[l], z[l]);
                    }
                }
            }
            for (l, ((&x, &y), &z)) in ra.iter().zip(rb).zip(rc).enumerate() {
                lf[l] += f(x, y);
                lg[l] += g(x, z);
            }
            (join_lanes(&lf), join_lanes(&lg))
        },
    )
}

/// [`sum_zip`] over one slice: [`sum_by`] of `f(a[i])`, the same bits.
#[inline(always)]
pub fn sum_map<A: Copy>(a: &[A], f: impl Fn(A) -> f64) -> f64 {
    sum_zip(a, a, |x, _| f(x))
}

/// [`block_sum_by`] of `f(a[i], b[i])` (at most [`BLOCK`] elements), in the same lane order.
#[inline(always)]
fn block_sum_zip<A: Copy, B: Copy>(a: &[A], b: &[B], f: &impl Fn(A, B) -> f64) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let (ga, gb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ga.remainder(), gb.remainder());
    for (x, y) in ga.zip(gb) {
        if let (Ok(x), Ok(y)) = (<&[A; LANES]>::try_from(x), <&[B; LANES]>::try_from(y)) {
            for l in 0..LANES {
                lanes[l] += f(x[l], y[l]);
            }
        }
    }
    for (lane, (&x, &y)) in lanes.iter_mut().zip(ra.iter().zip(rb)) {
        *lane += f(x, y);
    }
    join_lanes(&lanes)
}

/// Sum of `xs`, accumulated in `f64` (multi-threaded for long slices, same bits).
pub fn sum_acc<T: Float>(xs: &[T]) -> f64 {
    par_sum_by(xs.len(), |i| xs[i].acc())
}

/// Sum of `xs`, rounded to `T`.
pub fn sum<T: Float>(xs: &[T]) -> T {
    T::from_acc(sum_acc(xs))
}

/// Sum of `f(i)` for `i` in `0..n`, in the fixed tree of this module, on the calling thread
/// (for rows and other short sums; [`par_sum_by`] gives the same bits on many threads).
///
/// Each block is dispatched on its own (as in [`sum_zip`]): at the baseline
/// instruction set, Keras' categorical cross-entropy of probabilities took 56 ns per element.
#[inline(always)]
pub fn sum_by(n: usize, f: impl Fn(usize) -> f64) -> f64 {
    sum_dispatched_blocks(
        n,
        #[inline(always)]
        |b, e| block_sum_by(e - b, |i| f(b + i)),
    )
}

/// [`sum_by`] split over the current rayon pool when `n` is large (same bits).
///
/// Each block is dispatched on its own, as in [`sum_by`]: a chunk's closure, dispatched whole,
/// was not inlined into the dispatched caller and ran at the baseline instruction set (a sum
/// of 4096 gathered values took a tenth of `nll`'s time).
pub fn par_sum_by(n: usize, f: impl Fn(usize) -> f64 + Sync) -> f64 {
    par_dispatched_blocks(
        n,
        #[inline(always)]
        |b, e| block_sum_by(e - b, |i| f(b + i)),
    )
}

/// [`sum_dispatched_blocks`] with the chunks split over the current rayon pool.
#[inline(always)]
fn par_dispatched_blocks(n: usize, block: impl Fn(usize, usize) -> f64 + Sync) -> f64 {
    if n <= BLOCK {
        return dispatched_block(&block, 0, n);
    }
    par_chunks(n, (), |start, end, ()| chunk_blocks(start, end, |s, e| dispatched_block(&block, s, e)))
}

/// True when work over `n` elements should be split over threads.
pub fn parallel(n: usize) -> bool {
    n >= PARALLEL_MIN && rayon::current_num_threads() > 1
}

/// Output buffers that a parallel driver hands out piece by piece: each call to
/// [`split_front`](SplitOut::split_front) detaches the next `n` elements (of every buffer).
pub trait SplitOut: Send + Sized {
    /// Detaches and returns the first `n` elements, keeping the rest in `self`.
    fn split_front(&mut self, n: usize) -> Self;
}

impl SplitOut for () {
    fn split_front(&mut self, _: usize) -> Self {}
}

impl<T: Send> SplitOut for Option<&mut [T]> {
    #[inline]
    fn split_front(&mut self, n: usize) -> Self {
        let s = self.take()?;
        let (a, b) = s.split_at_mut(n.min(s.len()));
        *self = Some(b);
        Some(a)
    }
}

impl<S: SplitOut, const K: usize> SplitOut for [S; K] {
    #[inline]
    fn split_front(&mut self, n: usize) -> Self {
        std::array::from_fn(|k| self[k].split_front(n))
    }
}

impl<A: SplitOut, B: SplitOut> SplitOut for (A, B) {
    #[inline]
    fn split_front(&mut self, n: usize) -> Self {
        (self.0.split_front(n), self.1.split_front(n))
    }
}

/// An output with one element per `k` elements of the others (one value per row of `k`
/// elements, say): it is split at `n / k` when they are split at `n` (`n` a multiple of `k`).
pub struct Every<S>(pub S, pub usize);

impl<S: SplitOut> SplitOut for Every<S> {
    #[inline]
    fn split_front(&mut self, n: usize) -> Self {
        Every(self.0.split_front(n / self.1.max(1)), self.1)
    }
}

/// Runs `chunk(start, end, outs)` on every chunk `start..end` of `0..n` ([`CHUNK`] elements,
/// the last one shorter), where `outs` holds the same range of every output buffer (each of
/// length `n`), on the current rayon pool when [`parallel`] says so; returns the chunk results
/// joined by [`tree`] in chunk order — the same bits on any number of threads.
pub fn par_chunks<O: SplitOut>(n: usize, outs: O, chunk: impl Fn(usize, usize, O) -> f64 + Sync) -> f64 {
    par_units(n, CHUNK, outs, 1, chunk)
}

/// Sets every element of `b` to zero, large buffers on every thread (fixed chunks): their
/// first-touch page faults are shared too. Buffers too large to stay in the cache are written
/// around it ([`zero`](crate::kernels::simd::zero)).
pub fn par_zero<T: Float>(b: &mut [T]) {
    let stream = crate::kernels::simd::streams::<T>(b.len());
    par_chunks(b.len(), Some(b), |_, _, part| {
        if let Some(part) = part {
            crate::kernels::simd::zero(part, stream);
        }
        0.0
    });
}

/// [`par_chunks`] over `units` items of `unit_len` output elements each (rows of a class axis,
/// say): chunk boundaries fall every `per_chunk` units, outputs have `units * unit_len`
/// elements, and `chunk` receives unit ranges.
pub fn par_units<O: SplitOut>(
    units: usize,
    per_chunk: usize,
    outs: O,
    unit_len: usize,
    chunk: impl Fn(usize, usize, O) -> f64 + Sync,
) -> f64 {
    let per_chunk = per_chunk.max(1);
    let chunks = units.div_ceil(per_chunk);
    if chunks <= 1 {
        return chunk(0, units, outs);
    }
    // every chunk gets its own piece of every output
    let mut rest = outs;
    let work: Vec<(usize, usize, O)> = (0..chunks)
        .map(|c| {
            let (start, end) = (c * per_chunk, ((c + 1) * per_chunk).min(units));
            (start, end, rest.split_front((end - start) * unit_len))
        })
        .collect();
    let parts: Vec<f64> = if units * unit_len.max(1) >= PARALLEL_MIN && rayon::current_num_threads() > 1 {
        work.into_par_iter().map(|(s, e, o)| chunk(s, e, o)).collect()
    } else {
        work.into_iter().map(|(s, e, o)| chunk(s, e, o)).collect()
    };
    tree(&parts)
}

/// The row driver: `row(r, outs)` returns the value of row `r` of `row_len` elements and writes
/// that row's piece of every output (`outs` holds the row's range of each buffer of
/// `rows * row_len` elements); the values land in `values` (one per row). Rows run in fixed
/// chunks of about [`CHUNK`] elements ([`par_row_groups`]: on the rayon pool when large, each
/// chunk SIMD-dispatched, so `row` must be `#[inline(always)]` down to its loops); `scratch` is
/// one reusable buffer per chunk for the row's block sums. Each row's value depends on that row
/// only: the same bits whatever the thread count.
pub fn par_rows<T: Float, O: SplitOut>(
    rows: usize,
    row_len: usize,
    values: &mut [T],
    outs: O,
    row: impl Fn(usize, O, &mut Vec<f64>) -> T + Sync,
) {
    par_row_groups(
        rows,
        row_len,
        usize::MAX,
        values,
        outs,
        #[inline(always)]
        |r0, vals: &mut [T], mut outs: O, scratch: &mut Vec<f64>| {
            for (k, v) in vals.iter_mut().enumerate() {
                *v = row(r0 + k, outs.split_front(row_len), scratch);
            }
        },
    );
}

/// [`par_rows`] by groups of rows: `group(r0, values, outs, work)` computes rows
/// `r0..r0 + values.len()` (at most `per_group` of them, never across a chunk boundary), writing
/// their values and their range of every output; `work` is a workspace made once per chunk
/// (`W::default()`) and reused by its groups. For kernels that do per-row work in vector loops
/// over several rows at once (short rows); each row's value must still depend on that row only,
/// so that the grouping, like the threading, changes no bits.
pub fn par_row_groups<T: Float, O: SplitOut, W: Default>(
    rows: usize,
    row_len: usize,
    per_group: usize,
    values: &mut [T],
    outs: O,
    group: impl Fn(usize, &mut [T], O, &mut W) + Sync,
) {
    debug_assert_eq!(values.len(), rows);
    let per_chunk = (CHUNK / row_len.max(1)).max(1);
    par_units(
        rows,
        per_chunk,
        (Every(Some(values), row_len.max(1)), outs),
        row_len.max(1),
        |r0, _, (vals, mut outs)| {
            let vals = vals.0.unwrap_or_default();
            crate::kernels::simd::dispatch(
                #[inline(always)]
                || {
                    let mut work = W::default();
                    let mut r = r0;
                    for vs in vals.chunks_mut(per_group.max(1)) {
                        let n = vs.len();
                        group(r, vs, outs.split_front(n * row_len), &mut work);
                        r += n;
                    }
                    0.0
                },
            )
        },
    );
}

/// The fused elementwise driver: one pass over `0..n` in tiles of at most [`BLOCK`] elements.
/// `tile(start, values, outs)` writes the loss of elements `start..start + values.len()` into
/// `values` and their gradients into `outs` (the same range of each output); the driver keeps
/// the values in `keep` (the unreduced loss) when given, sums them (the module's fixed tree)
/// and returns the sum. Multi-threaded over chunks, SIMD-dispatched; the same bits whatever
/// the thread count.
pub fn fused<T: Float, O: SplitOut>(
    n: usize,
    keep: Option<&mut [T]>,
    outs: O,
    tile: impl Fn(usize, &mut [T], &mut O) + Sync,
) -> f64 {
    par_chunks(n, (keep, outs), |start, end, (mut keep, mut outs)| {
        crate::kernels::simd::dispatch(
            #[inline(always)]
            || {
                let mut scratch = [T::zero(); BLOCK];
                let mut parts = [0.0f64; CHUNK / BLOCK];
                let mut nb = 0;
                let mut s = start;
                while s < end {
                    let len = BLOCK.min(end - s);
                    let mut o = outs.split_front(len);
                    let values: &mut [T] = match keep.split_front(len) {
                        Some(v) => v,
                        None => &mut scratch[..len],
                    };
                    tile(s, values, &mut o);
                    parts[nb] = block_sum(values);
                    nb += 1;
                    s += len;
                }
                tree(&parts[..nb])
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_sums_have_the_bits_of_the_indexed_sum() {
        // one block, whole lanes and a remainder, several blocks, and more than one chunk
        for n in (0..=600).chain([CHUNK - 1, CHUNK + 3 * BLOCK + 7, 2 * CHUNK + 1]) {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1013) as f32 * 1.37e-3 - 0.6).collect();
            let b: Vec<f64> = (0..n).map(|i| ((i * 104_729) % 997) as f64 * 3.1e-3 + 1e-9).collect();
            let zip = sum_zip(&a, &b, |x, y| x as f64 * y);
            assert_eq!(zip.to_bits(), sum_by(n, |i| a[i] as f64 * b[i]).to_bits(), "n={n}");
            let map = sum_map(&a, |x| (x as f64).exp());
            assert_eq!(map.to_bits(), sum_by(n, |i| (a[i] as f64).exp()).to_bits(), "n={n}");
        }
        assert_eq!(sum_map::<f64>(&[], |x| x), 0.0);
    }

    #[test]
    fn pair_sums_have_the_bits_of_two_zip_sums() {
        // one pass up to a block, two calls beyond it
        for n in (0..=300).chain([CHUNK + 3]) {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1013) as f32 * 1.37e-3 - 0.6).collect();
            let b: Vec<f64> = (0..n).map(|i| ((i * 104_729) % 997) as f64 * 3.1e-3 + 1e-9).collect();
            let c: Vec<f32> = (0..n).map(|i| ((i * 31) % 101) as f32 * 0.7 - 30.0).collect();
            let f = |x: f32, y: f64| x as f64 * y;
            let g = |x: f32, z: f32| (x as f64 - z as f64).powi(2);
            let (sf, sg) = sum_zip_pair(&a, &b, &c, f, g);
            assert_eq!(
                (sf.to_bits(), sg.to_bits()),
                (sum_zip(&a, &b, f).to_bits(), sum_zip(&a, &c, g).to_bits()),
                "n={n}"
            );
        }
    }

    #[test]
    fn the_tree_of_block_sums_is_sum_by() {
        for n in [0usize, 1, BLOCK, BLOCK + 1, CHUNK, CHUNK + 5 * BLOCK + 3, 3 * CHUNK + 1] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1013) as f32 * 1.37e-3 - 0.6).collect();
            let parts: Vec<f64> = a.chunks(BLOCK).map(block_sum).collect();
            assert_eq!(tree_of_block_sums(&parts).to_bits(), sum_acc(&a).to_bits(), "n={n}");
        }
    }

    #[test]
    fn close_sums_stay_within_their_bound() {
        // non-negative values of wide range, every piece length up to BLOCK, several pieces
        // side by side: each f32 sum within (len / 8 + 3) u of the exact one (the f64 sum of
        // f32 values below 2^24 elements is exact to far better than that)
        let u = f64::from(f32::EPSILON) / 2.0;
        for len in 1..=BLOCK {
            let pieces = 3;
            let xs: Vec<f32> = (0..len * pieces)
                .map(|i| ((i * 7919) % 1013) as f32 * 1.37e-3 * if i % 5 == 0 { 1e4 } else { 1.0 })
                .collect();
            let mut out = [f64::NAN; 3];
            close_sums(&xs, len, &mut out);
            for (piece, &got) in xs.chunks_exact(len).zip(&out) {
                let exact: f64 = piece.iter().map(|&x| f64::from(x)).sum();
                let bound = (len / 8 + 3) as f64 * u * exact;
                assert!((got - exact).abs() <= bound, "len={len}: {got} against {exact}");
            }
        }
        // whole numbers are exact; an empty piece length gives zeros; NaN and infinity go through
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let mut out = [0.0; 2];
        close_sums(&v, 50, &mut out);
        assert_eq!(out, [1275.0, 3775.0]);
        close_sums::<f32>(&[], 0, &mut out);
        assert_eq!(out, [0.0, 0.0]);
        close_sums(&[1.0f32, f32::INFINITY, 2.0, f32::NAN], 2, &mut out);
        assert!(out[0] == f64::INFINITY && out[1].is_nan());
    }

    #[test]
    fn side_by_side_close_sums_have_the_bits_of_one_at_a_time() {
        // values of mixed magnitude and sign, so that another association of the lanes or of
        // their tree gives other bits; 1 to 9 pieces: quads and the single pieces after them
        fn check<T: Float>() {
            for len in [1, 7, 8, 9, 31, 64, 100, 129, BLOCK] {
                for pieces in 1..=9 {
                    let xs: Vec<T> = (0..len * pieces)
                        .map(|i| {
                            let m = ((i * 7919) % 1013) as f64 * 1.37e-3 - 0.6;
                            T::of(m * [1.0, 3e7, 1e-5, 4e3][i % 4])
                        })
                        .collect();
                    let mut together = vec![f64::NAN; pieces];
                    close_sums(&xs, len, &mut together);
                    for (p, piece) in xs.chunks_exact(len).enumerate() {
                        let mut alone = [f64::NAN];
                        close_sums(piece, len, &mut alone);
                        assert_eq!(together[p].to_bits(), alone[0].to_bits(), "len={len} pieces={pieces} p={p}");
                    }
                }
            }
        }
        check::<f32>();
        check::<f64>();
        // the reference order, spelled out for one piece of 20: lanes of 8, the last 4 elements
        // in lanes 0-3, then ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
        let xs: Vec<f32> = (0..20).map(|i| (i as f32 - 9.5) * [1.0, 3e7, 1e-5, 4e3][i % 4]).collect();
        let mut lanes = [0.0f32; 8];
        for (i, &x) in xs.iter().enumerate() {
            lanes[if i < 16 { i % 8 } else { i - 16 }] += x;
        }
        let q = |k: usize| (lanes[k] + lanes[k + 1]) + (lanes[k + 2] + lanes[k + 3]);
        let mut four = [f64::NAN; 4];
        let xs4: Vec<f32> = xs.iter().cycle().take(80).copied().collect();
        close_sums(&xs4, 20, &mut four);
        assert_eq!(four, [f64::from(q(0) + q(4)); 4]);
    }

    #[test]
    fn exact_on_integers_and_empty() {
        let v: Vec<f32> = (1..=10_000).map(|i| i as f32).collect();
        // 10000 * 10001 / 2, exact in f64
        assert_eq!(sum_acc(&v), 50_005_000.0);
        assert_eq!(sum_acc::<f64>(&[]), 0.0);
    }

    #[test]
    fn accurate_on_cancellation() {
        // 1e8 + many small values: a naive f32 sum loses them all
        let mut v = vec![1e8f32];
        v.extend(std::iter::repeat_n(1.0f32, 4096));
        assert_eq!(sum_acc(&v), 1e8 + 4096.0);
    }

    #[test]
    fn the_tree_is_the_documented_one() {
        // a reference implementation of the three levels, written plainly
        let n = 3 * CHUNK + 1000;
        let v: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 * 1e-3 + 1e6 * ((i % 3) as f64)).collect();
        let block = |s: usize, e: usize| {
            let mut lanes = [0.0f64; LANES];
            for i in s..e {
                lanes[(i - s) % LANES] += v[i];
            }
            let q = |k: usize| (lanes[k] + lanes[k + 1]) + (lanes[k + 2] + lanes[k + 3]);
            (q(0) + q(4)) + (q(8) + q(12))
        };
        let chunk = |s: usize, e: usize| {
            let blocks: Vec<f64> = (s..e).step_by(BLOCK).map(|b| block(b, (b + BLOCK).min(e))).collect();
            tree(&blocks)
        };
        let chunks: Vec<f64> = (0..n).step_by(CHUNK).map(|c| chunk(c, (c + CHUNK).min(n))).collect();
        assert_eq!(sum_acc(&v).to_bits(), tree(&chunks).to_bits());
    }

    #[test]
    fn small_trees_split_as_the_recursion() {
        // the written-out cases must pair exactly as the split at half the count
        fn recursive(p: &[f64]) -> f64 {
            match p.len() {
                0 => 0.0,
                1 => p[0],
                n => recursive(&p[..n / 2]) + recursive(&p[n / 2..]),
            }
        }
        // magnitudes far apart: any other pairing rounds differently
        let v: Vec<f64> = (0..40).map(|i| [1e16, 1.0, -1e16, 3.5, 1e-3][i % 5] * (1.0 + i as f64 * 1e-7)).collect();
        for n in 0..=v.len() {
            for s in 0..5.min(v.len() - n + 1) {
                assert_eq!(tree(&v[s..s + n]).to_bits(), recursive(&v[s..s + n]).to_bits(), "n={n} s={s}");
            }
        }
    }

    /// Pieces whose sums depend on their order (magnitudes 1e-3 to 1e17, both signs; NaN,
    /// infinities and -0 in some), summed four side by side and one at a time.
    #[test]
    fn side_by_side_block_sums_keep_the_order_of_one_at_a_time() {
        let mut state = 0x2545_f491u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let specials = [f32::NAN, f32::INFINITY, -0.0, f32::NEG_INFINITY];
        for len in [SHORT_PIECE + 1, 100, 111, BLOCK - 1, BLOCK] {
            for round in 0..20 {
                let xs: Vec<f32> = (0..9 * len)
                    .map(|_| {
                        let r = next();
                        if round % 5 == 0 && r % 97 == 0 {
                            return specials[(r as usize / 97) % specials.len()];
                        }
                        let sign = if r & (1 << 20) == 0 { 1.0 } else { -1.0 };
                        sign * 10f32.powi((r % 21) as i32 - 3) * (1.0 + (next() % 1000) as f32 / 997.0)
                    })
                    .collect();
                let mut out = vec![0.0f64; 9];
                block_sums(&xs, len, &mut out);
                for (k, o) in out.iter().enumerate() {
                    // a NaN's payload is left out (the one-at-a-time tree's operands may be
                    // swapped by the compiler: addition commutes)
                    let want = block_sum(&xs[k * len..(k + 1) * len]);
                    assert!(
                        o.to_bits() == want.to_bits() || (o.is_nan() && want.is_nan()),
                        "len={len} round={round} k={k}: {o} against {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn side_by_side_block_sums_have_the_bits_of_one_at_a_time() {
        let v: Vec<f32> = (0..9 * BLOCK + 5).map(|i| ((i * 7919) % 1013) as f32 * 1.37e-3 - 0.6).collect();
        for len in [1, 5, 15, 16, 17, 32, 100, BLOCK - 1, BLOCK] {
            // 1 to 9 pieces: whole groups of four and the pieces after them
            for pieces in 1..=9 {
                let xs = &v[..pieces * len];
                let mut out = vec![0.0f64; pieces];
                block_sums(xs, len, &mut out);
                for (k, o) in out.iter().enumerate() {
                    assert_eq!(o.to_bits(), block_sum(&xs[k * len..(k + 1) * len]).to_bits(), "len={len} k={k}");
                }
            }
        }
        // a run: whole blocks and a shorter last one
        for n in [1, BLOCK, BLOCK + 1, 4 * BLOCK, 4 * BLOCK - 3, 5 * BLOCK + 7] {
            let xs = &v[..n];
            let mut out = vec![0.0f64; n.div_ceil(BLOCK)];
            run_block_sums(xs, &mut out);
            for (k, o) in out.iter().enumerate() {
                let piece = &xs[k * BLOCK..((k + 1) * BLOCK).min(n)];
                assert_eq!(o.to_bits(), block_sum(piece).to_bits(), "n={n} k={k}");
            }
        }
    }

    #[test]
    fn fused_has_the_bits_of_the_indexed_sum() {
        // whole blocks, a shorter last block, and more than one chunk
        let f = |i: usize| ((i * 7919) % 1013) as f32 * 1.37e-3 - 0.6;
        for n in
            [0, 1, BLOCK + 3, RUN * BLOCK, RUN * BLOCK + 1, 3 * RUN * BLOCK - 5, CHUNK + 2 * BLOCK + 9, 2 * CHUNK + 1]
        {
            let mut kept = vec![0.0f32; n];
            let total = fused(n, Some(&mut kept[..]), (), |s, v: &mut [f32], _| {
                assert!(v.len() <= BLOCK);
                for (k, x) in v.iter_mut().enumerate() {
                    *x = f(s + k);
                }
            });
            assert_eq!(total.to_bits(), sum_by(n, |i| f(i) as f64).to_bits(), "n={n}");
            assert!(kept.iter().enumerate().all(|(i, &x)| x == f(i)), "n={n}");
            let unkept = fused(n, None, (), |s, v: &mut [f32], _| {
                for (k, x) in v.iter_mut().enumerate() {
                    *x = f(s + k);
                }
            });
            assert_eq!(unkept.to_bits(), total.to_bits(), "n={n}");
        }
    }

    #[test]
    fn same_bits_on_one_and_two_threads() {
        let n = 5 * CHUNK + 17;
        let v: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.618).sin() * 1e3).collect();
        let on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| sum_acc(&v))
        };
        assert_eq!(on(1).to_bits(), on(2).to_bits());
        assert_eq!(on(1).to_bits(), on(3).to_bits());
    }

    #[test]
    fn units_split_outputs_at_chunk_boundaries() {
        // 10 units of 3 elements, 4 units per chunk: chunks [0,4) [4,8) [8,10)
        let mut out = vec![0.0f64; 30];
        let total = par_units(10, 4, Some(&mut out[..]), 3, |s, e, o| {
            let o = o.unwrap();
            assert_eq!(o.len(), (e - s) * 3);
            for (k, x) in o.iter_mut().enumerate() {
                *x = (s * 3 + k) as f64;
            }
            (e - s) as f64
        });
        assert_eq!(total, 10.0);
        assert!(out.iter().enumerate().all(|(i, &x)| x == i as f64));
    }
}
