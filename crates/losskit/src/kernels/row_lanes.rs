//! Softmax of short rows across SIMD lanes: eight rows at a time, one row per lane.
//!
//! [`rows`](super::rows) vectorises along a row. On rows of a few dozen classes its per-row
//! work (a maximum and a sum joined from their lanes, loop set-up, scalars fetched and stored
//! one row at a time) costs more than the exponentials themselves: about 370 of the 510
//! instructions of a 32-class row of cross-entropy with its gradient. Here eight rows are
//! transposed in registers (8x8 blocks), so that class `c` of the eight rows is one vector:
//! each per-row quantity is a lane, the maxima and sums need no horizontal step, and the
//! per-row scalars of the gradient are two vectors. For class indices the kernel also finishes
//! each row: the target's logit gathered, `ln S`, the value, the gradient's factors from the
//! cotangents and the target's own term (about 45 instead of 130 scalar instructions per row
//! at 32 classes).
//!
//! The results have the bits of the row kernels (checked in the tests): the same exponential
//! (`vmath`'s AVX2 `exp8`, `exp_f32` operation for operation, or `exp8_normal` where every
//! shifted logit of the block lies in `[-86, 0]`: the same bits), each row's sums in
//! the lanes and tree of [`block_sum`](super::sum::block_sum) (lane `l` sums the classes
//! `c = l (mod 16)` in order, the lanes joined by [`join_lanes`](super::sum::join_lanes)),
//! `ln S` with [`ln_sum`](super::rows::ln_sum)'s operations (`vmath`'s AVX2 `ln_sum8`), the
//! value's and gradient's expressions. The maximum is taken in another order, which can change only the sign
//! of a zero maximum and, through it, no result: `x - m` and `e^(x - m)` are the same for
//! either sign, and a row where it matters (two zeros of opposite signs at the maximum) has a
//! sum of at least 2, whose logarithm absorbs the sign of `x_t - m`.
//!
//! `f32` with AVX2 and FMA only (the machines this library is measured on have both; AVX-512
//! machines have them too): elsewhere [`softmax8`] declines and callers use the row kernels.
//! Where the CPU has AVX-512F and rows are longer than 16, the exponentials, the sums and the
//! index gradient run on two columns per 512-bit vector: the same operations in the same order
//! on twice the lanes; and runs of 16 columns are transposed in 512-bit vectors, in and out
//! (two in-lane 4x4 transposes and eight two-source permutes for 16 columns of the eight rows,
//! against two 8x8 transposes of 24 shuffles each).

/// The longest rows [`softmax8`] takes. Measured on Zen 3 (`cross_entropy`, f32, alternating
/// runs against the row kernels): 0.38-0.71x the time at 10 and 24 classes, 0.82-0.95x at 32
/// (where the row kernels have no remainders), 1.0-1.4x at 48 and 64, where the row kernels'
/// per-row work is a smaller share and the transpositions cost more than they save.
pub const MAX_LEN: usize = 32;
const _: () = assert!(MAX_LEN.is_multiple_of(16));

/// The rows of a block.
pub const ROWS: usize = 8;

/// Probability targets of a block of [`softmax8`]: `y` (`8 * len`, the logits' layout), smoothed
/// and weighted into `τ_c = w_c ((1 - ε) y_c + ε / C)` (`keep = 1 - ε`, `per_class = ε / C`,
/// `weights` the `len` class weights `w`, or none), and the sums the kernel writes: `masses`
/// `W = sum_c τ_c` and `shifted` `D = sum_c τ_c (x_c - m)`, as
/// [`fill_sums`](super::rows::fill_sums) sums them (its `filled` sums, then its sums after the
/// map `τ_c (x_c - m)`).
pub struct Probs8<'a, T> {
    /// The targets.
    pub y: &'a [T],
    /// `1 - ε`.
    pub keep: T,
    /// `ε / C`.
    pub per_class: T,
    /// The class weights.
    pub weights: Option<&'a [T]>,
    /// Each row's `W`.
    pub masses: &'a mut [f64; ROWS],
    /// Each row's `D`.
    pub shifted: &'a mut [f64; ROWS],
}

/// The gradient rows (`8 * len`) [`softmax8`] overwrites, and their form.
pub enum Grad8<'a, T> {
    /// Index targets' softmax cross-entropy ([`Index8`], which must be given), as
    /// [`index_xent_rows`](super::xent::index_xent_rows) has it: with `s` the row's cotangent,
    /// `kk = -((ε / C) s)`, `a = -((1 - ε) s w_t)` (`+0` for an ignored row) and
    /// `γ = kk W + a` (`W` the total class weight), `g_c = kk - (e_c (1 / S)) γ` (`1 / S`
    /// rounded to `f32`), plus `a` at the target.
    Index {
        /// The rows.
        rows: &'a mut [T],
        /// Each row's cotangent `s`.
        cot: [T; ROWS],
        /// `W`, the sum of the class weights (`C` without).
        total_weight: T,
    },
    /// `g_c = e_c a - s τ_c` with `a = s W / S` (in `f64`, rounded to `f32`) per row, `s` its
    /// cotangent: probability targets ([`Probs8`], which must be given).
    Probs {
        /// The rows.
        rows: &'a mut [T],
        /// Each row's cotangent `s`.
        cot: [T; ROWS],
    },
}

/// Index targets of a block of [`softmax8`], and their values: row `i`'s softmax cross-entropy
/// against class `class[i]` (`-1`: an ignored row, value `+0`), with `logp_c = (x_c - m) - ln S`
/// (`ln S` as [`ln_sum`](super::rows::ln_sum) has it):
/// `nll = -(logp_t w_t)` (`w_t = weight[i]`, 1 without class weights) and, with label
/// smoothing `(keep, per_class) = (1 - ε, ε / C)` (unweighted: with class weights the
/// smoothing term weighs each class, which the row kernels do), the value
/// `keep nll + per_class (C ln S - sum_c (x_c - m))` ([`shifted_sum`](super::rows::shifted_sum));
/// each with the roundings of [`index_xent_rows`](super::xent::index_xent_rows).
pub struct Index8<'a, T> {
    /// Each row's class, or `-1`.
    pub class: [i32; ROWS],
    /// Each row's weight of its class.
    pub weight: [T; ROWS],
    /// `(1 - ε, ε / C)`.
    pub smoothing: Option<(T, T)>,
    /// Each row's value (written).
    pub values: &'a mut [T; ROWS],
}

/// Each of the eight rows of `len` logits `x` (`8 * len` elements, contiguous): its maximum
/// `m` ([`row_max`](super::axis::row_max)'s, NaN skipped) into `max`, the sum of
/// `e^(x_c - m)` into `sum` (in `f64`, as [`block_sum`](super::sum::block_sum) sums), with
/// `index` its value against an index target ([`Index8`]), with `probs` the sums of its
/// probability targets ([`Probs8`]), and with `grad` its gradient rows ([`Grad8`]).
///
/// Returns `false`, touching nothing, where it does not apply: another type than `f32`, a CPU
/// without AVX2 and FMA, `len` outside `1..=`[`MAX_LEN`], `x`, the targets or the gradient rows
/// shorter than `8 * len`, class weights shorter than `len`, a class outside `-1..len`, or a
/// [`Grad8::Probs`] without targets.
#[inline(always)]
pub fn softmax8<T: 'static + Copy>(
    x: &[T],
    len: usize,
    max: &mut [T; ROWS],
    sum: &mut [f64; ROWS],
    index: Option<Index8<'_, T>>,
    probs: Option<Probs8<'_, T>>,
    grad: Option<Grad8<'_, T>>,
) -> bool {
    softmax8_at(x, len, max, sum, index, probs, grad, len > WIDE_MIN_LEN)
}

/// Rows longer than this take [`softmax8`]'s 512-bit loops where the CPU has them. Measured on
/// an Intel Xeon (Emerald Rapids, full-width AVX-512; cross_entropy f32, 1 and 2 threads,
/// alternating runs, each side's best tenth): 0.93-0.95x the time at 32 classes and 0.79-0.84x
/// at 24, but 1.0-1.15x at 16, where eight pairs of columns do not pay for the calls.
const WIDE_MIN_LEN: usize = 16;

/// [`softmax8`], its loops over columns in 512-bit vectors where `wide` and the CPU has
/// AVX-512F (the same bits either way; the tests run both).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn softmax8_at<T: 'static + Copy>(
    x: &[T],
    len: usize,
    max: &mut [T; ROWS],
    sum: &mut [f64; ROWS],
    index: Option<Index8<'_, T>>,
    probs: Option<Probs8<'_, T>>,
    grad: Option<Grad8<'_, T>>,
    wide: bool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if !(1..=MAX_LEN).contains(&len) || x.len() < ROWS * len || !available() {
            return false;
        }
        let (Some(x), Some(max)) = (as_f32(x), as_f32_mut(max)) else { return false };
        let index = match index {
            None => None,
            Some(Index8 { class, weight, smoothing, values }) => {
                let smoothing = match smoothing.map(|(keep, per_class)| (f32_of(keep), f32_of(per_class))) {
                    None => None,
                    Some((Some(keep), Some(per_class))) => Some((keep, per_class)),
                    Some(_) => return false,
                };
                // one branch-free fold (eight compare-and-branch pairs otherwise)
                #[allow(clippy::manual_range_contains)]
                let in_range = class.iter().fold(true, |ok, &c| ok & (c >= -1) & (c < len as i32));
                match (f32s(weight), as_f32_mut(&mut values[..]).map(<&mut [f32; ROWS]>::try_from)) {
                    (Some(weight), Some(Ok(values))) if in_range => Some(Index8 { class, weight, smoothing, values }),
                    _ => return false,
                }
            }
        };
        let probs = match probs {
            None => None,
            Some(Probs8 { y, keep, per_class, weights, masses, shifted }) => {
                let weights = match weights.map(as_f32) {
                    None => None,
                    Some(Some(w)) if w.len() >= len => Some(w),
                    Some(_) => return false,
                };
                match (as_f32(y), f32_of(keep), f32_of(per_class)) {
                    (Some(y), Some(keep), Some(per_class)) if y.len() >= ROWS * len => {
                        Some(Probs8 { y, keep, per_class, weights, masses, shifted })
                    }
                    _ => return false,
                }
            }
        };
        let grad = match grad {
            None => None,
            Some(Grad8::Index { rows, cot, total_weight }) => match (as_f32_mut(rows), f32s(cot), f32_of(total_weight))
            {
                (Some(rows), Some(cot), Some(total_weight)) if rows.len() >= ROWS * len && index.is_some() => {
                    Some(Grad8::Index { rows, cot, total_weight })
                }
                _ => return false,
            },
            Some(Grad8::Probs { rows, cot }) => match (as_f32_mut(rows), f32s(cot)) {
                (Some(rows), Some(cot)) if rows.len() >= ROWS * len && probs.is_some() => {
                    Some(Grad8::Probs { rows, cot })
                }
                _ => return false,
            },
        };
        let Ok(max) = <&mut [f32; ROWS]>::try_from(max) else { return false };
        // SAFETY: `available()` checked that the CPU has AVX2 and FMA, the features the function
        // enables, and `wide` that it has AVX-512F where it is set; the slices are long enough
        // (checked above).
        unsafe { avx2::softmax8(x, len, max, sum, index, probs, grad, wide && wide_available()) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, len, max, sum, index, probs, grad, wide);
        false
    }
}

/// True when this CPU has AVX-512F, for [`softmax8`]'s 512-bit loops.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn wide_available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// `v` as an `f32` when `T` is `f32`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn f32_of<T: 'static + Copy>(v: T) -> Option<f32> {
    as_f32(std::slice::from_ref(&v)).map(|s| s[0])
}

/// `a` as `f32`s when `T` is `f32`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn f32s<T: 'static + Copy>(a: [T; ROWS]) -> Option<[f32; ROWS]> {
    let s = as_f32(&a[..])?;
    let mut out = [0.0; ROWS];
    out.copy_from_slice(s);
    Some(out)
}

/// `s` as `f32`s when `T` is `f32`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn as_f32<T: 'static>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: `T` is `f32` (the same type: same size, alignment and bits), so this is `s`
        // itself, for the same lifetime.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
}

/// [`as_f32`] of a mutable slice.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn as_f32_mut<T: 'static>(s: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: as in `as_f32`; the one borrow of `s` moves into the result.
        .then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) })
}

/// True when this CPU runs [`softmax8`] (AVX2 and FMA).
#[inline(always)]
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Grad8, Index8, Probs8, MAX_LEN, ROWS};
    use crate::kernels::simd::prefetch;
    use crate::kernels::vmath::avx2::{exp8, exp8_normal, exp_normal_lanes, ln_sum8};
    use core::arch::x86_64::*;
    use core::mem::MaybeUninit;

    /// The transpose of the 8x8 block whose rows are `r` (its own inverse).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        // pairs of rows interleaved, then pairs of pairs, then the 128-bit halves exchanged
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }

    /// Columns `c0..c0 + 8` of eight rows of `len` (`c0 + 8 <= len`), as eight vectors.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_columns(x: &[f32], len: usize, c0: usize) -> [__m256; 8] {
        debug_assert!(c0 + 8 <= len && x.len() >= ROWS * len);
        // SAFETY: row `i < 8` reads `x[i * len + c0..i * len + c0 + 8]`, inside `x` (the caller
        // checked `x.len() >= 8 * len` and `c0 + 8 <= len`).
        transpose8(core::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(i * len + c0)) }))
    }

    /// The `len` columns of eight rows of `x` (`8 * len`) in `tile`, followed by `+0` columns
    /// up to a multiple of 16 (for [`row_sums`]); that part of the tile, the rows' maxima when
    /// `MAX` (else `-inf`; `vmaxps(v, m)` is `v > m ? v : m`: NaN skipped), and when `LOW` (else
    /// `+inf` and no lane set) their minima (NaN skipped too) and the lanes (rows) that hold a
    /// NaN, which choose the exponential's form.
    ///
    /// With `WIDE` (which requires AVX-512F) runs of 16 columns are transposed in 512-bit
    /// vectors ([`wide::columns16`]): half the shuffles of two 8x8 transposes. Not with `LOW`:
    /// the 512-bit path keeps no minima (its exponential takes every argument).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn columns<'t, const MAX: bool, const LOW: bool, const WIDE: bool>(
        x: &[f32],
        len: usize,
        tile: &'t mut [MaybeUninit<__m256>; MAX_LEN],
    ) -> (&'t mut [__m256], __m256, __m256, __m256) {
        let full = len - len % 8;
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut lo = _mm256_set1_ps(f32::INFINITY);
        let mut nan = _mm256_setzero_ps();
        let mut c0 = 0;
        if WIDE && !LOW {
            while c0 + 16 <= full {
                // SAFETY: the caller guarantees AVX-512F with `WIDE`; `c0 + 16 <= len` and
                // `x.len() >= 8 * len` (checked by `softmax8`).
                let m16 = unsafe { wide::columns16(x, len, c0, &mut tile[c0..c0 + 16], m) };
                if MAX {
                    m = m16;
                }
                c0 += 16;
            }
        }
        while c0 < full {
            for (j, v) in load_columns(x, len, c0).into_iter().enumerate() {
                tile[c0 + j].write(v);
                if MAX {
                    m = _mm256_max_ps(v, m);
                }
                if LOW {
                    lo = _mm256_min_ps(v, lo);
                    nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
                }
            }
            c0 += 8;
        }
        if full < len {
            // the last `len - full < 8` columns by masked loads (a copy of a run-time length
            // was a `memcpy` call per row: a tenth of the instructions at 10 classes)
            let mask = tail_mask(len - full);
            // SAFETY: row `i < 8` reads the lanes `j < len - full` of `x[i * len + full..]`, that
            // is `x[i * len + full..(i + 1) * len]`, inside `x` (`x.len() >= 8 * len`); masked
            // lanes are not read and cannot fault.
            let block = core::array::from_fn(|i| unsafe { _mm256_maskload_ps(x.as_ptr().add(i * len + full), mask) });
            for (j, v) in transpose8(block).into_iter().take(len - full).enumerate() {
                tile[full + j].write(v);
                if MAX {
                    m = _mm256_max_ps(v, m);
                }
                if LOW {
                    lo = _mm256_min_ps(v, lo);
                    nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
                }
            }
        }
        let padded = len.next_multiple_of(16);
        for t in &mut tile[len..padded] {
            t.write(_mm256_setzero_ps());
        }
        // SAFETY: columns `0..full` were written by the first loops (`columns16` writes the 16
        // it is given), `full..len` by the masked one, `len..padded` by the last (`padded <=
        // MAX_LEN`, a multiple of 16), and
        // `MaybeUninit<__m256>` has the layout of `__m256`.
        (unsafe { &mut *(&mut tile[..padded] as *mut [MaybeUninit<__m256>] as *mut [__m256]) }, m, lo, nan)
    }

    /// The eight per-row sums of the columns `cols` (class `c` of row `i` in lane `i` of
    /// `cols[c]`; padded with `+0` columns to a multiple of 16), in `f64` as
    /// [`block_sum`](crate::kernels::sum::block_sum) sums a row: lane `l` of the sum is
    /// `0 + x_l + x_(l + 16) + ...`, the lanes joined as
    /// [`join_lanes`](crate::kernels::sum::join_lanes) joins them, whose first step
    /// `q(k) = (l_k + l_(k+1)) + (l_(k+2) + l_(k+3))` is over four lanes: four lanes at a time,
    /// their accumulators in registers. Rows 0-3 and 4-7 as two vectors of `f64`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn row_sums(cols: &[__m256]) -> [__m256d; 2] {
        debug_assert!(cols.len().is_multiple_of(16));
        let add = |a: [__m256d; 2], b: [__m256d; 2]| [_mm256_add_pd(a[0], b[0]), _mm256_add_pd(a[1], b[1])];
        // a plain loop: the closure of `array::from_fn` was called, not inlined (14% of
        // cross_entropy's time at 32 classes)
        let mut q = [[_mm256_setzero_pd(); 2]; 4];
        for (k, qk) in q.iter_mut().enumerate() {
            let mut lanes = [[_mm256_setzero_pd(); 2]; 4];
            for group in cols.chunks_exact(16) {
                for (lane, &v) in lanes.iter_mut().zip(&group[4 * k..4 * k + 4]) {
                    let wide =
                        [_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v))];
                    *lane = add(*lane, wide);
                }
            }
            *qk = add(add(lanes[0], lanes[1]), add(lanes[2], lanes[3]));
        }
        add(add(q[0], q[1]), add(q[2], q[3]))
    }

    /// Stores two vectors of `f64` as eight.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn store8(v: [__m256d; 2], out: &mut [f64; ROWS]) {
        // SAFETY: `out` holds eight `f64`: four at 0, four at 4.
        unsafe {
            _mm256_storeu_pd(out.as_mut_ptr(), v[0]);
            _mm256_storeu_pd(out.as_mut_ptr().add(4), v[1]);
        }
    }

    /// `τ_c` of the target columns `y` ([`Probs8`]).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn smoothed(y: __m256, c: usize, keep: __m256, per_class: __m256, weights: Option<&[f32]>) -> __m256 {
        // `y keep + per_class`, then times `w_c`: separate roundings, as the row kernel has them
        let t = _mm256_add_ps(_mm256_mul_ps(y, keep), per_class);
        match weights {
            Some(w) => _mm256_mul_ps(_mm256_set1_ps(w[c]), t),
            None => t,
        }
    }

    /// See [`super::softmax8`] (which checked the CPU and the lengths).
    ///
    /// With `wide` (which requires AVX-512F), the exponentials, the sums and the index
    /// gradient's expression run on two columns per 512-bit vector ([`wide`]): half the
    /// instructions on CPUs with full-width AVX-512 units.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA, and AVX-512F when `wide` is set.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax8(
        x: &[f32],
        len: usize,
        max: &mut [f32; ROWS],
        sum: &mut [f64; ROWS],
        index: Option<Index8<'_, f32>>,
        probs: Option<Probs8<'_, f32>>,
        grad: Option<Grad8<'_, f32>>,
        wide: bool,
    ) {
        let row_sums = |cols: &[__m256]| {
            if wide {
                // SAFETY: the caller guarantees AVX-512F with `wide`.
                unsafe { wide::row_sums(cols) }
            } else {
                row_sums(cols)
            }
        };
        debug_assert!((1..=MAX_LEN).contains(&len) && x.len() >= ROWS * len);
        // the block two blocks on (of the logits, the targets and the gradient rows, those
        // there are), towards the cache: a block takes longer than memory's latency, and its
        // eight rows read eight columns at a time, a row apart, are a pattern the hardware
        // prefetcher does not follow (a fifth of the time went to waiting for the loads without
        // this, at 32 classes)
        let ahead = 2 * ROWS * len;
        let streams = [
            Some(x.as_ptr()),
            probs.as_ref().map(|p| p.y.as_ptr()),
            grad.as_ref().map(|g| match g {
                Grad8::Index { rows, .. } | Grad8::Probs { rows, .. } => rows.as_ptr(),
            }),
        ];
        const LINE: usize = 64 / size_of::<f32>();
        for p in streams.into_iter().flatten() {
            if len == MAX_LEN {
                // a fixed count, unrolled into one instruction per line (a loop costs four)
                for k in 0..ROWS * MAX_LEN / LINE {
                    prefetch(p.wrapping_add(ahead + k * LINE));
                }
            } else {
                let mut e = 0;
                while e < ROWS * len {
                    prefetch(p.wrapping_add(ahead + e));
                    e += LINE;
                }
            }
        }
        // the columns, uninitialised: zeroing all `MAX_LEN` would cost as much as the rest of a
        // short block's loads; `columns` writes what it returns
        let mut tile = [MaybeUninit::<__m256>::uninit(); MAX_LEN];
        // (the 512-bit exponential takes every argument: no minimum or NaN lanes to choose a form)
        let (padded, m, lo, nan) = if wide {
            columns::<true, false, true>(x, len, &mut tile)
        } else {
            columns::<true, true, false>(x, len, &mut tile)
        };
        // SAFETY: `max` holds eight `f32`.
        unsafe { _mm256_storeu_ps(max.as_mut_ptr(), m) };
        // label smoothing's sums of the logits (as `row_max_sum` sums them), before the logits
        // turn into exponentials
        let x_sum = index.as_ref().and_then(|v| v.smoothing).map(|_| row_sums(padded));
        // probability targets: their columns, then W from τ and D from τ (x - m), before the
        // logits' columns turn into exponentials
        let mut target_tile = [MaybeUninit::<__m256>::uninit(); MAX_LEN];
        let mut tau_tile = [MaybeUninit::<__m256>::uninit(); MAX_LEN];
        let targets = match probs {
            Some(Probs8 { y, keep, per_class, weights, masses, shifted }) => {
                let (ys, ..) = if wide {
                    columns::<false, false, true>(y, len, &mut target_tile)
                } else {
                    columns::<false, false, false>(y, len, &mut target_tile)
                };
                let (keep, per_class) = (_mm256_set1_ps(keep), _mm256_set1_ps(per_class));
                let tau = filled(len, &mut tau_tile, |c| smoothed(ys[c], c, keep, per_class, weights));
                let total = row_sums(tau);
                store8(total, masses);
                for (t, &xc) in tau[..len].iter_mut().zip(&padded[..len]) {
                    *t = _mm256_mul_ps(*t, _mm256_sub_ps(xc, m));
                }
                store8(row_sums(tau), shifted);
                Some((ys, keep, per_class, weights, total))
            }
            None => None,
        };
        // the exponentials of the shifted logits: the cheaper form (the same bits) where every
        // one allows it, as a block of ordinary logits does. Rounding is monotonic, so every
        // `x - m` lies in `[-86, 0]` when the row's smallest does (and no element is NaN: the
        // minimum skipped them); an infinite maximum or minimum fails the test too.
        let normal = || _mm256_andnot_ps(nan, exp_normal_lanes(_mm256_sub_ps(lo, m)));
        if wide {
            // SAFETY: the caller guarantees AVX-512F with `wide`.
            unsafe { wide::exp_columns(&mut padded[..len], m) };
        } else if _mm256_movemask_ps(normal()) == 0xff {
            for v in &mut padded[..len] {
                *v = exp8_normal(_mm256_sub_ps(*v, m));
            }
        } else {
            for v in &mut padded[..len] {
                *v = exp8(_mm256_sub_ps(*v, m));
            }
        }
        let s = row_sums(padded);
        store8(s, sum);
        let mut targets_of_index = None;
        if let Some(Index8 { class: classes, weight, smoothing, values }) = index {
            // SAFETY: `classes`, `weight` and `values` hold eight `i32`s or `f32`s.
            let (class, weight) =
                unsafe { (_mm256_loadu_si256(classes.as_ptr().cast::<__m256i>()), _mm256_loadu_ps(weight.as_ptr())) };
            let valid = _mm256_cmpgt_epi32(class, _mm256_set1_epi32(-1));
            let at = _mm256_add_epi32(
                _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(len as i32)),
                class,
            );
            let valid = _mm256_castsi256_ps(valid);
            // SAFETY: a lane with `valid` set reads `x[i * len + class]` with `0 <= class < len`
            // (checked by the caller), inside `x` (`x.len() >= 8 * len`); other lanes read nothing.
            let x_t = unsafe { _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), x.as_ptr(), at, valid) };
            let lse = ln_sum8(s[0], s[1]);
            // -(((x_t - m) - ln S) w_t), +0 for an ignored row
            let nll = _mm256_and_ps(neg(_mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(x_t, m), lse), weight)), valid);
            let v = match (smoothing, x_sum) {
                (Some((keep, per_class)), Some(x_sum)) => {
                    // C ln S - (sum_c x_c - C m), in f64, rounded once; +0 for an ignored row
                    let c = _mm256_set1_pd(len as f64);
                    let smooth = |lse: __m128, x_sum: __m256d, m: __m128| {
                        let shifted = _mm256_sub_pd(x_sum, _mm256_mul_pd(c, _mm256_cvtps_pd(m)));
                        _mm256_sub_pd(_mm256_mul_pd(_mm256_cvtps_pd(lse), c), shifted)
                    };
                    let (lo, hi) = (_mm256_castps256_ps128, _mm256_extractf128_ps::<1>);
                    let smooth = halves(smooth(lo(lse), x_sum[0], lo(m)), smooth(hi(lse), x_sum[1], hi(m)));
                    let smooth = _mm256_and_ps(smooth, valid);
                    _mm256_add_ps(
                        _mm256_mul_ps(_mm256_set1_ps(keep), nll),
                        _mm256_mul_ps(smooth, _mm256_set1_ps(per_class)),
                    )
                }
                _ => nll,
            };
            // SAFETY: `values` holds eight `f32`.
            unsafe { _mm256_storeu_ps(values.as_mut_ptr(), v) };
            targets_of_index = Some((classes, valid, weight, smoothing.unwrap_or((1.0, 0.0))));
        }
        let cols = &mut padded[..len];
        let rows = match grad {
            None => return,
            Some(Grad8::Index { rows, cot, total_weight }) => {
                let Some((classes, valid, weight, (keep, per_class))) = targets_of_index else { return };
                // SAFETY: `cot` holds eight `f32`.
                let s32 = unsafe { _mm256_loadu_ps(cot.as_ptr()) };
                let kk = neg(_mm256_mul_ps(_mm256_set1_ps(per_class), s32));
                let a = _mm256_and_ps(neg(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(keep), s32), weight)), valid);
                let gamma = _mm256_add_ps(_mm256_mul_ps(kk, _mm256_set1_ps(total_weight)), a);
                // 1 / S in f64, rounded to f32
                let one = _mm256_set1_pd(1.0);
                let inv = halves(_mm256_div_pd(one, s[0]), _mm256_div_pd(one, s[1]));
                if wide {
                    // SAFETY: the caller guarantees AVX-512F with `wide`.
                    unsafe { wide::index_gradient(cols, kk, inv, gamma) };
                } else {
                    for v in cols.iter_mut() {
                        *v = index_gradient(*v, kk, inv, gamma);
                    }
                }
                store_rows(cols, len, rows, wide);
                // the target's own term
                let mut at = [0.0f32; ROWS];
                // SAFETY: `at` holds eight `f32`.
                unsafe { _mm256_storeu_ps(at.as_mut_ptr(), a) };
                for ((row, &c), a) in rows.chunks_exact_mut(len).zip(&classes).zip(at) {
                    if let Ok(t) = usize::try_from(c) {
                        row[t] += a;
                    }
                }
                return;
            }
            Some(Grad8::Probs { rows, cot }) => {
                let Some((ys, keep, per_class, weights, total)) = targets else { return };
                // SAFETY: `cot` holds eight `f32`.
                let s32 = unsafe { _mm256_loadu_ps(cot.as_ptr()) };
                // a = s W / S in f64, rounded to f32
                let (lo, hi) =
                    (_mm256_cvtps_pd(_mm256_castps256_ps128(s32)), _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(s32)));
                let a = halves(
                    _mm256_div_pd(_mm256_mul_pd(lo, total[0]), s[0]),
                    _mm256_div_pd(_mm256_mul_pd(hi, total[1]), s[1]),
                );
                for (c, v) in cols.iter_mut().enumerate() {
                    let tau = smoothed(ys[c], c, keep, per_class, weights);
                    *v = _mm256_sub_ps(_mm256_mul_ps(*v, a), _mm256_mul_ps(s32, tau));
                }
                rows
            }
        };
        store_rows(cols, len, rows, wide);
    }

    /// `kk - (e inv) γ`, the index gradient of the exponentials `e` (see [`Grad8::Index`]).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn index_gradient(e: __m256, kk: __m256, inv: __m256, gamma: __m256) -> __m256 {
        _mm256_sub_ps(kk, _mm256_mul_ps(_mm256_mul_ps(e, inv), gamma))
    }

    /// The loops of [`softmax8`] over a block's columns (eight rows each) on two columns per
    /// 512-bit vector, operation for operation as their 256-bit forms: the same bits.
    mod wide {
        use crate::kernels::vmath::avx512::exp16;
        use core::arch::x86_64::*;

        /// Within each 128-bit lane, the transpose of the 4x4 block whose rows are lane `L` of
        /// `a[0..4]` (its own inverse): the first two stages of `transpose8`.
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn transpose4_lanes(a: [__m512; 4]) -> [__m512; 4] {
            let t0 = _mm512_unpacklo_ps(a[0], a[1]);
            let t1 = _mm512_unpackhi_ps(a[0], a[1]);
            let t2 = _mm512_unpacklo_ps(a[2], a[3]);
            let t3 = _mm512_unpackhi_ps(a[2], a[3]);
            [
                _mm512_shuffle_ps::<0x44>(t0, t2),
                _mm512_shuffle_ps::<0xEE>(t0, t2),
                _mm512_shuffle_ps::<0x44>(t1, t3),
                _mm512_shuffle_ps::<0xEE>(t1, t3),
            ]
        }

        /// Lanes `[a.0, b.0, a.1, b.1]` and `[a.2, b.2, a.3, b.3]` of the 128-bit lanes of `a`
        /// and `b`: with `a` rows 0-3 and `b` rows 4-7 of columns `j, 4 + j, 8 + j, 12 + j`
        /// (one per lane), columns `j | 4 + j` and `8 + j | 12 + j` of the eight rows.
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn interleave_lanes(a: __m512, b: __m512) -> [__m512; 2] {
            let low = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
            let high = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
            [_mm512_permutex2var_ps(a, low, b), _mm512_permutex2var_ps(a, high, b)]
        }

        /// The inverse of `interleave_lanes`.
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn deinterleave_lanes(p: [__m512; 2]) -> [__m512; 2] {
            let a = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
            let b = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
            [_mm512_permutex2var_ps(p[0], a, p[1]), _mm512_permutex2var_ps(p[0], b, p[1])]
        }

        /// The high half of `v`.
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn high(v: __m512) -> __m256 {
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))
        }

        /// `lo | hi` as one vector.
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn join(lo: __m256, hi: __m256) -> __m512 {
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
                _mm256_castps_pd(hi),
            ))
        }

        /// Columns `c0..c0 + 16` of eight rows of `len` (`c0 + 16 <= len`, `x.len() >= 8 *
        /// len`) into `tile` (16 columns), as `load_columns` twice: eight 512-bit loads, two
        /// in-lane 4x4 transposes and eight two-source permutes (24 shuffles, against 48).
        /// Returns `max(v, m)` over the columns `v` (per lane: NaN skipped), folded from two
        /// columns per vector (the order of a maximum changes only the sign of a zero).
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub(super) fn columns16(
            x: &[f32],
            len: usize,
            c0: usize,
            tile: &mut [core::mem::MaybeUninit<__m256>],
            m: __m256,
        ) -> __m256 {
            debug_assert!(c0 + 16 <= len && x.len() >= 8 * len && tile.len() == 16);
            // SAFETY: row `i < 8` reads `x[i * len + c0..i * len + c0 + 16]`, inside `x` (the
            // caller checked `x.len() >= 8 * len` and `c0 + 16 <= len`).
            let r: [__m512; 8] = core::array::from_fn(|i| unsafe { _mm512_loadu_ps(x.as_ptr().add(i * len + c0)) });
            // lane L of s[j] (j < 4): column 4L + j of rows 0-3; of s[4 + j]: of rows 4-7
            let top = transpose4_lanes([r[0], r[1], r[2], r[3]]);
            let bottom = transpose4_lanes([r[4], r[5], r[6], r[7]]);
            let mut m2 = _mm512_set1_ps(f32::NEG_INFINITY);
            for j in 0..4 {
                let [p, q] = interleave_lanes(top[j], bottom[j]);
                m2 = _mm512_max_ps(p, m2);
                m2 = _mm512_max_ps(q, m2);
                tile[j].write(_mm512_castps512_ps256(p));
                tile[4 + j].write(high(p));
                tile[8 + j].write(_mm512_castps512_ps256(q));
                tile[12 + j].write(high(q));
            }
            _mm256_max_ps(high(m2), _mm256_max_ps(_mm512_castps512_ps256(m2), m))
        }

        /// The 16 columns `cols` written back as columns `c0..c0 + 16` of eight rows of `len`
        /// into `rows` (`c0 + 16 <= len`, `rows.len() >= 8 * len`): `columns16` backwards.
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub(super) fn store_columns16(cols: &[__m256], len: usize, c0: usize, rows: &mut [f32]) {
            debug_assert!(c0 + 16 <= len && rows.len() >= 8 * len && cols.len() == 16);
            let mut top = [_mm512_setzero_ps(); 4];
            let mut bottom = [_mm512_setzero_ps(); 4];
            for j in 0..4 {
                let pair = [join(cols[j], cols[4 + j]), join(cols[8 + j], cols[12 + j])];
                [top[j], bottom[j]] = deinterleave_lanes(pair);
            }
            for (half, r) in [transpose4_lanes(top), transpose4_lanes(bottom)].into_iter().enumerate() {
                for (i, v) in r.into_iter().enumerate() {
                    // SAFETY: row `4 half + i < 8` writes `rows[(4 half + i) len + c0..][..16]`,
                    // inside `rows` (at least `8 * len` long, checked by the caller; `c0 + 16
                    // <= len`).
                    unsafe { _mm512_storeu_ps(rows.as_mut_ptr().add((4 * half + i) * len + c0), v) };
                }
            }
        }

        /// `v` in both halves.
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn twice(v: __m256) -> __m512 {
            join(v, v)
        }

        /// Columns `2k, 2k + 1` of `cols` replaced by `f` of them as one vector (with `twice`
        /// of each per-row operand); an odd last column with its low half.
        #[inline(always)]
        fn map_pairs(cols: &mut [__m256], f: impl Fn(__m512) -> __m512) {
            let mut pairs = cols.chunks_exact_mut(2);
            for pair in &mut pairs {
                // the two columns read as two halves: the tile was just written one column at
                // a time, and a 512-bit load of two 256-bit stores still in flight cannot take
                // their data from the store buffer (on the Xeon the two forms measured the same)
                // SAFETY: the caller's target features cover AVX-512F.
                let v = unsafe { join(pair[0], pair[1]) };
                // SAFETY: as above; two `__m256` of the slice are 16 consecutive `f32`.
                unsafe { _mm512_storeu_ps(pair.as_mut_ptr().cast::<f32>(), f(v)) };
            }
            if let [last] = pairs.into_remainder() {
                // SAFETY: as above; the upper half of the vector is `last` again, its results
                // dropped.
                *last = unsafe { _mm512_castps512_ps256(f(twice(*last))) };
            }
        }

        /// `e^(x - m)` of each column (the bits of `exp8`: `exp16` is `exp_f32` operation for
        /// operation, for every argument).
        #[target_feature(enable = "avx512f")]
        pub(super) fn exp_columns(cols: &mut [__m256], m: __m256) {
            let m = twice(m);
            map_pairs(
                cols,
                #[inline(always)]
                |v| exp16(_mm512_sub_ps(v, m)),
            );
        }

        /// `index_gradient` of each column.
        #[target_feature(enable = "avx512f")]
        pub(super) fn index_gradient(cols: &mut [__m256], kk: __m256, inv: __m256, gamma: __m256) {
            let (kk, inv, gamma) = (twice(kk), twice(inv), twice(gamma));
            map_pairs(
                cols,
                #[inline(always)]
                |e| _mm512_sub_ps(kk, _mm512_mul_ps(_mm512_mul_ps(e, inv), gamma)),
            );
        }

        /// `row_sums` with one `f64` vector of the eight rows per column: the same additions
        /// in the same order.
        #[target_feature(enable = "avx512f")]
        pub(super) fn row_sums(cols: &[__m256]) -> [__m256d; 2] {
            debug_assert!(cols.len().is_multiple_of(16));
            let add = |a: __m512d, b: __m512d| _mm512_add_pd(a, b);
            let mut q = [_mm512_setzero_pd(); 4];
            for (k, qk) in q.iter_mut().enumerate() {
                let mut lanes = [_mm512_setzero_pd(); 4];
                for group in cols.chunks_exact(16) {
                    for (lane, &v) in lanes.iter_mut().zip(&group[4 * k..4 * k + 4]) {
                        *lane = add(*lane, _mm512_cvtps_pd(v));
                    }
                }
                *qk = add(add(lanes[0], lanes[1]), add(lanes[2], lanes[3]));
            }
            let s = add(add(q[0], q[1]), add(q[2], q[3]));
            [_mm512_castpd512_pd256(s), _mm512_extractf64x4_pd::<1>(s)]
        }
    }

    /// `-v` (the sign flipped, as a scalar negation flips it, NaN included).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn neg(v: __m256) -> __m256 {
        _mm256_xor_ps(v, _mm256_set1_ps(-0.0))
    }

    /// Rows 0-3 and 4-7 of eight `f64`s, each rounded to `f32`, as one vector.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn halves(lo: __m256d, hi: __m256d) -> __m256 {
        _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo))
    }

    /// `f(c)` for the `len` columns into `tile`, then `+0` columns up to a multiple of 16 (for
    /// [`row_sums`]); that part of the tile.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn filled(len: usize, tile: &mut [MaybeUninit<__m256>; MAX_LEN], f: impl Fn(usize) -> __m256) -> &mut [__m256] {
        let padded = len.next_multiple_of(16);
        for (c, t) in tile[..padded].iter_mut().enumerate() {
            t.write(if c < len { f(c) } else { _mm256_setzero_ps() });
        }
        // SAFETY: the loop wrote columns `0..padded` (`padded <= MAX_LEN`), and
        // `MaybeUninit<__m256>` has the layout of `__m256`.
        unsafe { &mut *(&mut tile[..padded] as *mut [MaybeUninit<__m256>] as *mut [__m256]) }
    }

    /// The lanes `j < n` (`n <= 8`) of a mask for `vmaskmovps`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn tail_mask(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    /// The `len` columns `cols` written back as eight rows of `len` into `rows` (`8 * len`).
    ///
    /// With `wide` (which requires AVX-512F) runs of 16 columns are transposed back in 512-bit
    /// vectors ([`wide::store_columns16`]).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn store_rows(cols: &[__m256], len: usize, rows: &mut [f32], wide: bool) {
        debug_assert!(cols.len() == len && rows.len() >= ROWS * len);
        let full = len - len % 8;
        if full < len {
            // the last `len - full < 8` columns first, eight lanes at a time where that stays
            // inside `rows`: such a store spills into the rows after, which their own stores
            // (later in this order) overwrite; the last rows lane by lane (a masked store is
            // microcoded on AMD CPUs, a copy of a run-time length a `memcpy` call)
            let r = transpose8(core::array::from_fn(|j| cols.get(full + j).copied().unwrap_or(_mm256_setzero_ps())));
            for (i, v) in r.into_iter().enumerate() {
                let at = i * len + full;
                if at + 8 <= ROWS * len {
                    // SAFETY: this writes `rows[at..at + 8]`, inside `rows` (at least `8 * len`
                    // long, checked by the caller).
                    unsafe { _mm256_storeu_ps(rows.as_mut_ptr().add(at), v) };
                } else {
                    let mut lanes = [0.0f32; 8];
                    // SAFETY: `lanes` holds eight `f32`.
                    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
                    for (o, &v) in rows[at..(i + 1) * len].iter_mut().zip(&lanes) {
                        *o = v;
                    }
                }
            }
        }
        let mut c0 = 0;
        if wide {
            while c0 + 16 <= full {
                // SAFETY: the caller guarantees AVX-512F with `wide`; `c0 + 16 <= len` and
                // `rows.len() >= 8 * len` (checked by `softmax8`).
                unsafe { wide::store_columns16(&cols[c0..c0 + 16], len, c0, rows) };
                c0 += 16;
            }
        }
        while c0 < full {
            let Ok(&block) = <&[__m256; 8]>::try_from(&cols[c0..c0 + 8]) else { break };
            for (i, v) in transpose8(block).into_iter().enumerate() {
                // SAFETY: row `i < 8` writes `rows[i * len + c0..i * len + c0 + 8]`, inside
                // `rows` (at least `8 * len` long, checked by the caller; `c0 + 8 <= len`).
                unsafe { _mm256_storeu_ps(rows.as_mut_ptr().add(i * len + c0), v) };
            }
            c0 += 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::axis::{row_max, row_max_sum};
    use crate::kernels::sum::block_sum;
    use crate::kernels::vmath::VMath;

    /// What a block of [`rows`] holds besides ordinary logits in `[-8, 8]`.
    #[derive(Clone, Copy, Debug)]
    enum Block {
        /// NaN, infinities, +-1e4, a row of `-inf`, zeros of both signs at the maximum.
        Awkward,
        /// Nothing else: every `x - m` in `[-86, 0]` (the cheaper exponential).
        Ordinary,
        /// One row spanning more than 86 (`x - m` below -86 there).
        Wide,
        /// One NaN.
        Nan,
    }

    /// Eight rows of `len` logits as `block` says.
    fn rows(len: usize, seed: u32, block: Block) -> Vec<f32> {
        let mut x: Vec<f32> = (0..ROWS * len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32 * 16.0
                    - 8.0
            })
            .collect();
        let at = |i: usize, c: usize| i * len + c % len;
        match block {
            Block::Awkward => {}
            Block::Ordinary => return x,
            Block::Wide => {
                // 8 + 79 above the rest of the row: its others go below -86
                x[at(3, 2)] = 87.0;
                return x;
            }
            Block::Nan => {
                x[at(7, 1)] = f32::NAN;
                return x;
            }
        }
        x[at(1, 3)] = 1e4;
        x[at(1, 5)] = -1e4;
        x[at(2, 0)] = f32::NAN;
        x[at(3, 1)] = f32::NEG_INFINITY;
        x[at(4, 2)] = f32::INFINITY;
        for c in 0..len {
            x[at(5, c)] = f32::NEG_INFINITY;
            x[at(6, c)] = x[at(6, c)].min(-1.0);
        }
        x[at(6, 0)] = 0.0;
        x[at(6, 1)] = -0.0;
        x
    }

    #[test]
    fn softmax8_has_the_bits_of_the_row_kernels() {
        use crate::kernels::rows::{ln_sum, shifted_sum};
        if !available() {
            return;
        }
        let blocks = [Block::Awkward, Block::Ordinary, Block::Wide, Block::Nan];
        // the 256-bit loops, and the 512-bit ones where the CPU has them
        let widths = if wide_available() { &[false, true][..] } else { &[false][..] };
        for (wide, len, block) in widths.iter().flat_map(|&w| {
            [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, MAX_LEN]
                .into_iter()
                .flat_map(move |l| blocks.map(|b| (w, l, b)))
        }) {
            for (seed, smoothing) in [
                (0u32, None),
                (12345, None),
                (0, Some((0.9f32, 0.1 / len as f32))),
                (777, Some((0.75, 0.25 / len as f32))),
            ] {
                let x = rows(len, seed, block);
                let cot: [f32; ROWS] = core::array::from_fn(|i| [0.0, 0.25, -1.5, 2.0][i % 4]);
                let total_weight = 3.5 * len as f32;
                // every third row ignored
                let class: [i32; ROWS] = core::array::from_fn(|i| if i % 3 == 2 { -1 } else { ((i * 5) % len) as i32 });
                let weight: [f32; ROWS] = core::array::from_fn(|i| 0.5 + i as f32);
                let (mut max, mut sum, mut values) = ([0.0f32; ROWS], [0.0f64; ROWS], [f32::NAN; ROWS]);
                let mut g = vec![f32::NAN; ROWS * len + 3];
                let grad = Grad8::Index { rows: &mut g[..], cot, total_weight };
                let v8 = Index8 { class, weight, smoothing, values: &mut values };
                assert!(softmax8_at(&x, len, &mut max, &mut sum, Some(v8), None, Some(grad), wide));
                for i in 0..ROWS {
                    let row = &x[i * len..(i + 1) * len];
                    let m = row_max(row);
                    let e: Vec<f32> = row.iter().map(|&v| (v - m).vexp()).collect();
                    let s = block_sum(&e);
                    let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan();
                    assert!(
                        same(max[i] as f64, m as f64),
                        "{block:?} len {len} wide {wide} row {i}: max {} vs {m}",
                        max[i]
                    );
                    assert!(same(sum[i], s), "{block:?} len {len} wide {wide} row {i}: sum {} vs {s}", sum[i]);
                    // the value as `index_xent_rows` computes it on its row kernels
                    let lse: f32 = ln_sum(s);
                    let t = usize::try_from(class[i]).ok();
                    let nll = t.map_or(0.0, |t| -(((row[t] - m) - lse) * weight[i]));
                    let want = match smoothing {
                        None => nll,
                        Some((keep, per_class)) => {
                            let shifted = shifted_sum(row_max_sum(row).1, len, m);
                            let smooth = if t.is_some() { (lse as f64 * len as f64 - shifted) as f32 } else { 0.0 };
                            keep * nll + smooth * per_class
                        }
                    };
                    assert!(
                        same(values[i] as f64, want as f64),
                        "{block:?} len {len} wide {wide} row {i}: value {} vs {want}",
                        values[i]
                    );
                    // the gradient as `index_xent_rows` computes it on its row kernels
                    let (keep, per_class) = smoothing.unwrap_or((1.0, 0.0));
                    let kk = -(per_class * cot[i]);
                    let a = t.map_or(0.0, |_| -(keep * cot[i] * weight[i]));
                    let gamma = kk * total_weight + a;
                    let inv = (1.0 / s) as f32;
                    for c in 0..len {
                        // `a` added at the target only (an ignored row's `-0` stays `-0`)
                        let want = kk - e[c] * inv * gamma;
                        let want = if Some(c) == t { want + a } else { want };
                        assert!(
                            same(g[i * len + c] as f64, want as f64),
                            "{block:?} len {len} wide {wide} row {i} class {c}"
                        );
                    }
                }
                // nothing past the eight rows is written
                assert!(g[ROWS * len..].iter().all(|v| v.is_nan()));
            }
        }
    }

    #[test]
    fn softmax8_declines_what_it_does_not_take() {
        let (mut max, mut sum) = ([0.0f64; ROWS], [0.0f64; ROWS]);
        // f64, a row too long, too few elements, empty rows
        assert!(!softmax8(&[0.0f64; 16], 2, &mut max, &mut sum, None, None, None));
        let mut max32 = [0.0f32; ROWS];
        let long = vec![0.0f32; ROWS * (MAX_LEN + 1)];
        assert!(!softmax8(&long, MAX_LEN + 1, &mut max32, &mut sum, None, None, None));
        assert!(!softmax8(&[0.0f32; 15], 2, &mut max32, &mut sum, None, None, None));
        assert!(!softmax8(&[0.0f32; 0], 0, &mut max32, &mut sum, None, None, None));
        // gradient rows, targets or class weights too short; a probability gradient without targets
        let (mut short, none) = ([0.0f32; 15], [0.0f32; ROWS]);
        let mut values = [0.0f32; ROWS];
        let index = Index8 { class: [0; ROWS], weight: none, smoothing: None, values: &mut values };
        let grad = Grad8::Index { rows: &mut short[..], cot: none, total_weight: 2.0 };
        assert!(!softmax8(&[0.0f32; 16], 2, &mut max32, &mut sum, Some(index), None, Some(grad)));
        // an index gradient without the classes
        let mut rows16 = [0.0f32; 16];
        let grad = Grad8::Index { rows: &mut rows16[..], cot: none, total_weight: 2.0 };
        assert!(!softmax8(&[0.0f32; 16], 2, &mut max32, &mut sum, None, None, Some(grad)));
        let mut rows = [0.0f32; 16];
        assert!(!softmax8(
            &[0.0f32; 16],
            2,
            &mut max32,
            &mut sum,
            None,
            None,
            Some(Grad8::Probs { rows: &mut rows[..], cot: none })
        ));
        let (mut masses, mut shifted) = ([0.0; ROWS], [0.0; ROWS]);
        let probs = Probs8 {
            y: &[0.0f32; 15],
            keep: 1.0,
            per_class: 0.0,
            weights: None,
            masses: &mut masses,
            shifted: &mut shifted,
        };
        assert!(!softmax8(&[0.0f32; 16], 2, &mut max32, &mut sum, None, Some(probs), None));
        let probs = Probs8 {
            y: &[0.0f32; 16],
            keep: 1.0,
            per_class: 0.0,
            weights: Some(&[1.0]),
            masses: &mut masses,
            shifted: &mut shifted,
        };
        assert!(!softmax8(&[0.0f32; 16], 2, &mut max32, &mut sum, None, Some(probs), None));
        // a class outside -1..len
        for bad in [2, -2, i32::MAX] {
            let mut class = [0; ROWS];
            class[7] = bad;
            let v8 = Index8 { class, weight: [1.0; ROWS], smoothing: None, values: &mut values };
            assert!(!softmax8(&[0.0f32; 16], 2, &mut max32, &mut sum, Some(v8), None, None));
        }
        assert_eq!((max32, masses, values), ([0.0; ROWS], [0.0; ROWS], [0.0; ROWS]));
        assert!(short.iter().chain(&rows).chain(&rows16).all(|&v| v == 0.0));
    }
}
