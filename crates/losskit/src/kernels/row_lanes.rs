//! Softmax of short rows across SIMD lanes: eight rows at a time, one row per lane.
//!
//! [`rows`](super::rows) vectorises along a row. On rows of a few dozen classes its per-row
//! work (a maximum and a sum joined from their lanes, loop set-up, scalars fetched and stored
//! one row at a time) costs more than the exponentials themselves: about 370 of the 510
//! instructions of a 32-class row of cross-entropy with its gradient. Here eight rows are
//! transposed in registers (8x8 blocks), so that class `c` of the eight rows is one vector:
//! each per-row quantity is a lane, the maxima and sums need no horizontal step, and the
//! per-row scalars of the gradient are two vectors.
//!
//! The results have the bits of the row kernels (checked in the tests): the same exponential
//! (`vmath`'s AVX2 `exp8`, `exp_f32` operation for operation), each row's sums in
//! the lanes and tree of [`block_sum`](super::sum::block_sum) (lane `l` sums the classes
//! `c = l (mod 16)` in order, the lanes joined by [`join_lanes`](super::sum::join_lanes)), the
//! gradient's expression. The maximum is taken in another order, which can change only the sign
//! of a zero maximum and, through it, no result: `x - m` and `e^(x - m)` are the same for
//! either sign, and a row where it matters (two zeros of opposite signs at the maximum) has a
//! sum of at least 2, whose logarithm absorbs the sign of `x_t - m`.
//!
//! `f32` with AVX2 and FMA only (the machines this library is measured on have both; AVX-512
//! machines have them too): elsewhere [`softmax8`] declines and callers use the row kernels.

/// The longest rows [`softmax8`] takes. Measured on Zen 3 (`cross_entropy`, f32, alternating
/// runs): 0.5-0.9x the time of the row kernels at 10 to 32 classes, 1.0-1.4x at 48 and 64, where
/// the row kernels' per-row work is a smaller share and the transpositions and the eight
/// interleaved streams of rows cost more than they save.
pub const MAX_LEN: usize = 32;
const _: () = assert!(MAX_LEN.is_multiple_of(16));

/// The rows of a block.
pub const ROWS: usize = 8;

/// The gradient [`softmax8`] writes: `g_c = offset - (e_c / S) scale` per row (`e_c / S` as
/// `e_c` times `1 / S` rounded to `f32`), the softmax cross-entropy's gradient with respect to
/// the logits before the target's own term, which the caller adds.
pub struct Grad8<'a> {
    /// The eight gradient rows (`8 * len`), overwritten.
    pub rows: &'a mut [f32],
    /// Each row's `offset`.
    pub offset: [f32; ROWS],
    /// Each row's `scale`.
    pub scale: [f32; ROWS],
}

/// Each of the eight rows of `len` logits `x` (`8 * len` elements, contiguous): its maximum
/// `m` ([`row_max`](super::axis::row_max)'s, NaN skipped) into `max`, the sum of
/// `e^(x_c - m)` into `sum` (in `f64`, as [`block_sum`](super::sum::block_sum) sums), with
/// `x_sum` the sum of its logits (as [`row_max_sum`](super::axis::row_max_sum) sums), and with
/// `grad` its gradient rows ([`Grad8`]).
///
/// Returns `false`, touching nothing, where it does not apply: another type than `f32`, a CPU
/// without AVX2 and FMA, `len` outside `1..=`[`MAX_LEN`], or `x` (or the gradient rows)
/// shorter than `8 * len`.
#[inline(always)]
pub fn softmax8<T: 'static>(
    x: &[T],
    len: usize,
    max: &mut [T; ROWS],
    sum: &mut [f64; ROWS],
    x_sum: Option<&mut [f64; ROWS]>,
    grad: Option<(&mut [T], [T; ROWS], [T; ROWS])>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if !(1..=MAX_LEN).contains(&len) || x.len() < ROWS * len || !available() {
            return false;
        }
        let (Some(x), Some(max)) = (as_f32(x), as_f32_mut(max)) else { return false };
        let grad = match grad {
            None => None,
            Some((rows, offset, scale)) => match (as_f32_mut(rows), as_f32(&offset), as_f32(&scale)) {
                (Some(rows), Some(offset), Some(scale)) if rows.len() >= ROWS * len => {
                    let eight = |v: &[f32]| core::array::from_fn(|i| v[i]);
                    Some(Grad8 { rows, offset: eight(offset), scale: eight(scale) })
                }
                _ => return false,
            },
        };
        let max = <&mut [f32; ROWS]>::try_from(max).expect("eight maxima");
        // SAFETY: `available()` checked that the CPU has AVX2 and FMA, the features the function
        // enables; the slices are at least `8 * len` long (checked above).
        unsafe { avx2::softmax8(x, len, max, sum, x_sum, grad) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, len, max, sum, x_sum, grad);
        false
    }
}

/// `s` as `f32`s when `T` is `f32`.
#[inline(always)]
fn as_f32<T: 'static>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: `T` is `f32` (the same type: same size, alignment and bits), so this is `s`
        // itself, for the same lifetime.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
}

/// [`as_f32`] of a mutable slice.
#[inline(always)]
fn as_f32_mut<T: 'static>(s: &mut [T]) -> Option<&mut [f32]> {
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
    use super::{Grad8, MAX_LEN, ROWS};
    use crate::kernels::simd::prefetch;
    use crate::kernels::vmath::avx2::exp8;
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
        let q: [[__m256d; 2]; 4] = core::array::from_fn(|k| {
            let mut lanes = [[_mm256_setzero_pd(); 2]; 4];
            for group in cols.chunks_exact(16) {
                for (lane, &v) in lanes.iter_mut().zip(&group[4 * k..4 * k + 4]) {
                    let wide =
                        [_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v))];
                    *lane = add(*lane, wide);
                }
            }
            add(add(lanes[0], lanes[1]), add(lanes[2], lanes[3]))
        });
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

    /// See [`super::softmax8`] (which checked the CPU and the lengths).
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn softmax8(
        x: &[f32],
        len: usize,
        max: &mut [f32; ROWS],
        sum: &mut [f64; ROWS],
        x_sum: Option<&mut [f64; ROWS]>,
        grad: Option<Grad8<'_>>,
    ) {
        debug_assert!((1..=MAX_LEN).contains(&len) && x.len() >= ROWS * len);
        // the block two blocks on (of the logits, and of the gradient rows when there are
        // some), towards the cache: a block takes longer than memory's latency, and eight rows
        // read a few columns at a time are eight streams, more than the hardware prefetcher
        // follows (a fifth of the time went to waiting for the loads without this)
        let ahead = 2 * ROWS * len;
        let line = 64 / size_of::<f32>();
        let mut e = 0;
        while e < ROWS * len {
            prefetch(x.as_ptr().wrapping_add(ahead + e));
            if let Some(g) = grad.as_ref() {
                prefetch(g.rows.as_ptr().wrapping_add(ahead + e));
            }
            e += line;
        }
        let full = len - len % 8;
        // the columns, uninitialised: zeroing all `MAX_LEN` would cost as much as the rest of a
        // short block's loads; the first `len` are written below before anything reads them
        let mut tile = [MaybeUninit::<__m256>::uninit(); MAX_LEN];
        // the columns, and the maxima: `vmaxps(v, m)` is `v > m ? v : m`, NaN skipped
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut c0 = 0;
        while c0 < full {
            for (j, v) in load_columns(x, len, c0).into_iter().enumerate() {
                tile[c0 + j].write(v);
                m = _mm256_max_ps(v, m);
            }
            c0 += 8;
        }
        if full < len {
            // the last `len - full < 8` columns through a padded copy
            let mut block = [[0.0f32; 8]; ROWS];
            for (i, b) in block.iter_mut().enumerate() {
                b[..len - full].copy_from_slice(&x[i * len + full..(i + 1) * len]);
            }
            let flat = block.as_flattened();
            for (j, v) in load_columns(flat, 8, 0).into_iter().take(len - full).enumerate() {
                tile[full + j].write(v);
                m = _mm256_max_ps(v, m);
            }
        }
        // +0 columns up to a multiple of 16, for the sums (`MAX_LEN` is one)
        let padded = len.next_multiple_of(16);
        for t in &mut tile[len..padded] {
            t.write(_mm256_setzero_ps());
        }
        // SAFETY: columns `0..full` were written by the first loop, `full..len` by the second,
        // `len..padded` just above (`padded <= MAX_LEN`), and `MaybeUninit<__m256>` has the
        // layout of `__m256`.
        let padded = unsafe { &mut *(&mut tile[..padded] as *mut [MaybeUninit<__m256>] as *mut [__m256]) };
        // SAFETY: `max` holds eight `f32`.
        unsafe { _mm256_storeu_ps(max.as_mut_ptr(), m) };
        if let Some(out) = x_sum {
            store8(row_sums(padded), out);
        }
        for v in &mut padded[..len] {
            *v = exp8(_mm256_sub_ps(*v, m));
        }
        let s = row_sums(padded);
        let cols = &mut padded[..len];
        store8(s, sum);
        let Some(Grad8 { rows, offset, scale }) = grad else { return };
        // 1 / S in f64, rounded to f32
        let one = _mm256_set1_pd(1.0);
        let inv = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_div_pd(one, s[1])), _mm256_cvtpd_ps(_mm256_div_pd(one, s[0])));
        // SAFETY: `offset` and `scale` hold eight `f32`.
        let (offset, scale) = unsafe { (_mm256_loadu_ps(offset.as_ptr()), _mm256_loadu_ps(scale.as_ptr())) };
        for v in cols.iter_mut() {
            *v = _mm256_sub_ps(offset, _mm256_mul_ps(_mm256_mul_ps(*v, inv), scale));
        }
        let mut c0 = 0;
        while c0 < full {
            let Ok(&block) = <&[__m256; 8]>::try_from(&cols[c0..c0 + 8]) else { break };
            let r = transpose8(block);
            for (i, v) in r.into_iter().enumerate() {
                // SAFETY: row `i < 8` writes `rows[i * len + c0..i * len + c0 + 8]`, inside
                // `rows` (at least `8 * len` long, checked by the caller; `c0 + 8 <= len`).
                unsafe { _mm256_storeu_ps(rows.as_mut_ptr().add(i * len + c0), v) };
            }
            c0 += 8;
        }
        if full < len {
            let r = transpose8(core::array::from_fn(|j| cols.get(full + j).copied().unwrap_or(_mm256_setzero_ps())));
            for (i, v) in r.into_iter().enumerate() {
                let mut row = [0.0f32; 8];
                // SAFETY: `row` holds eight `f32`.
                unsafe { _mm256_storeu_ps(row.as_mut_ptr(), v) };
                rows[i * len + full..(i + 1) * len].copy_from_slice(&row[..len - full]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::axis::{row_max, row_max_sum};
    use crate::kernels::sum::block_sum;
    use crate::kernels::vmath::VMath;

    /// Eight rows of `len` logits with the awkward entries: NaN, infinities, +-1e4, a row of
    /// `-inf`, zeros of both signs at the maximum.
    fn rows(len: usize, seed: u32) -> Vec<f32> {
        let mut x: Vec<f32> = (0..ROWS * len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32 * 16.0
                    - 8.0
            })
            .collect();
        let at = |i: usize, c: usize| i * len + c % len;
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
        if !available() {
            return;
        }
        for len in [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, MAX_LEN] {
            for seed in [0u32, 12345] {
                let x = rows(len, seed);
                let offset: [f32; ROWS] = core::array::from_fn(|i| [-0.0, 0.25, -1.5][i % 3]);
                let scale: [f32; ROWS] = core::array::from_fn(|i| 0.5 + i as f32);
                let (mut max, mut sum, mut x_sum) = ([0.0f32; ROWS], [0.0f64; ROWS], [0.0f64; ROWS]);
                let mut g = vec![f32::NAN; ROWS * len + 3];
                assert!(softmax8(&x, len, &mut max, &mut sum, Some(&mut x_sum), Some((&mut g[..], offset, scale))));
                for i in 0..ROWS {
                    let row = &x[i * len..(i + 1) * len];
                    let m = row_max(row);
                    let e: Vec<f32> = row.iter().map(|&v| (v - m).vexp()).collect();
                    let s = block_sum(&e);
                    let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan();
                    assert!(same(max[i] as f64, m as f64), "len {len} row {i}: max {} vs {m}", max[i]);
                    assert!(same(sum[i], s), "len {len} row {i}: sum {} vs {s}", sum[i]);
                    assert!(same(x_sum[i], row_max_sum(row).1), "len {len} row {i}: x sum");
                    let inv = (1.0 / s) as f32;
                    for c in 0..len {
                        let want = offset[i] - e[c] * inv * scale[i];
                        assert!(same(g[i * len + c] as f64, want as f64), "len {len} row {i} class {c}");
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
        assert!(!softmax8(&[0.0f64; 16], 2, &mut max, &mut sum, None, None));
        let mut max32 = [0.0f32; ROWS];
        assert!(!softmax8(&vec![0.0f32; ROWS * (MAX_LEN + 1)], MAX_LEN + 1, &mut max32, &mut sum, None, None));
        assert!(!softmax8(&[0.0f32; 15], 2, &mut max32, &mut sum, None, None));
        assert!(!softmax8(&[0.0f32; 0], 0, &mut max32, &mut sum, None, None));
        let mut short = [0.0f32; 15];
        let none = [0.0f32; ROWS];
        assert!(!softmax8(&[0.0f32; 16], 2, &mut max32, &mut sum, None, Some((&mut short[..], none, none))));
        assert_eq!(max32, [0.0; ROWS]);
    }
}
