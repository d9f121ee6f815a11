//! A softmax row's exponentials and their block sums in one pass (AVX-512, `f32`).
//!
//! The row kernels ([`rows`](super::rows)) otherwise take three passes over a tile: one writes
//! `x - m`, one turns it into exponentials in place, one sums them block by block. On a CPU
//! with AVX-512 the exponential is fast enough (about 11 cycles per sixteen elements on Zen 4)
//! that the two other passes, their loads, stores and loop overheads cost as much again
//! (`perf` on cross_entropy of 4096x1000 logits: 41% of the samples in the exponentials' loop,
//! 8% in the subtraction's, 10% in the block sums'). Here each vector is loaded once, shifted,
//! exponentiated, stored when the caller keeps the exponentials, and added into the block's
//! sixteen `f64` lanes while still in registers.
//!
//! The bits are those of the passes it replaces: `x - m` rounded once, the exponential of
//! [`vexp_in_place`](super::vmath::VMath::vexp_in_place) (the same `vscalefps` form), and each
//! block summed as [`block_sum`](super::sum::block_sum) sums it (element `i` into lane
//! `i % 16`, a short last group padded with `+0`, the lanes joined by
//! [`join_lanes`]). Elsewhere (no AVX-512, or `f64`) [`exp_sums`]
//! declines and the callers take the three passes.

use crate::kernels::sum::{join_lanes, LANES};

/// What [`exp_sums`] takes the exponentials of.
pub enum Source<'a, T> {
    /// `x - shift`, written to `dst` when there is one (a forward pass without a gradient keeps
    /// only the sums).
    Shifted {
        /// The values, `x.len()` of them.
        x: &'a [T],
        /// Where the exponentials go (`x.len()` elements), if anywhere.
        dst: Option<&'a mut [T]>,
    },
    /// The values themselves (already shifted), overwritten by their exponentials.
    InPlace(&'a mut [T]),
}

/// Where [`exp_sums`] fetches the next group of rows from while it computes: each pointer of
/// `ahead`, offset by `at` plus the position of the element being computed (see
/// [`prefetch`](super::simd::prefetch)).
#[derive(Clone, Copy)]
pub struct Fetch<'a, T> {
    /// One pointer per stream (at most three are used).
    pub ahead: &'a [*const T],
    /// The offset of the source's first element within its group.
    pub at: usize,
}

/// Whether [`exp_sums`] runs here for `T`: `f32` on a CPU with AVX-512F.
#[inline(always)]
pub fn available<T: 'static>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The exponentials of `src` and their sums by pieces of `piece` consecutive elements (the
/// last piece may be shorter): piece `p` is shifted by `shifts[p / per]` (for
/// [`Source::Shifted`]; in place, the values are taken as they are), and `out[p]` becomes the
/// sum of its exponentials, blocked as [`block_sum`](super::sum::block_sum) blocks it (`piece`
/// is at most [`BLOCK`](super::sum::BLOCK)).
///
/// Returns `false`, having done nothing, where it does not run ([`available`]); the caller then
/// computes the same bits in separate passes.
///
/// # Panics
/// If `piece` is 0, or `out`, `shifts` or `dst` is too short for `src`.
#[inline(always)]
pub fn exp_sums<T: 'static + Copy>(
    src: Source<'_, T>,
    piece: usize,
    shifts: &[T],
    per: usize,
    out: &mut [f64],
    fetch: Fetch<'_, T>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use super::row_lanes::{as_f32, as_f32_mut};
        if !available::<T>() {
            return false;
        }
        let Some(shifts) = as_f32(shifts) else { return false };
        let mut ahead = [std::ptr::null::<f32>(); 3];
        let streams = fetch.ahead.len().min(ahead.len());
        for (a, &p) in ahead.iter_mut().zip(fetch.ahead) {
            *a = p.cast::<f32>();
        }
        let ahead = &ahead[..streams];
        let (src, dst, n): (*const f32, *mut f32, usize) = match src {
            Source::Shifted { x, dst } => {
                let Some(x) = as_f32(x) else { return false };
                let dst = match dst.map(as_f32_mut) {
                    None => std::ptr::null_mut(),
                    Some(Some(d)) => {
                        assert!(d.len() >= x.len(), "exp_sums: dst shorter than x");
                        d.as_mut_ptr()
                    }
                    Some(None) => return false,
                };
                (x.as_ptr(), dst, x.len())
            }
            Source::InPlace(v) => {
                let Some(v) = as_f32_mut(v) else { return false };
                // one pointer for both: the kernel reads each vector before writing it
                let p = v.as_mut_ptr();
                (p.cast_const(), p, v.len())
            }
        };
        assert!(piece > 0 && piece <= super::sum::BLOCK, "exp_sums: piece of {piece} elements");
        let pieces = n.div_ceil(piece);
        assert!(out.len() >= pieces, "exp_sums: {pieces} sums into {}", out.len());
        assert!(per > 0 && (pieces == 0 || shifts.len() > (pieces - 1) / per), "exp_sums: too few shifts");
        let plan = Plan { src, dst, n, piece, shifts, per, ahead, at: fetch.at };
        // SAFETY: the CPU has AVX-512F (`available`); `src` holds `n` elements and `dst`, when
        // not null, at least `n` (checked above, or the same slice in place); `out` has a sum
        // per piece and `shifts` a shift per `per` pieces (checked above).
        unsafe {
            if dst.is_null() {
                avx512::exp_sums::<false>(&plan, out)
            } else {
                avx512::exp_sums::<true>(&plan, out)
            }
        };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (src, piece, shifts, per, out, fetch);
        false
    }
}

/// The arguments of [`avx512::exp_sums`], checked by [`exp_sums`].
#[cfg(target_arch = "x86_64")]
struct Plan<'a> {
    src: *const f32,
    dst: *mut f32,
    n: usize,
    piece: usize,
    shifts: &'a [f32],
    per: usize,
    ahead: &'a [*const f32],
    at: usize,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{join_lanes, Plan, LANES};
    use crate::kernels::simd::prefetch;
    use crate::kernels::sum::avx512::add_widened;
    use crate::kernels::vmath::avx512::exp16;
    use core::arch::x86_64::*;

    /// [`exp_sums`](super::exp_sums) (its checks done); `STORE`: whether `plan.dst` receives
    /// the exponentials (it may equal `plan.src`: each vector is read before it is written).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `plan.src` points to `plan.n` readable elements and, with `STORE`,
    /// `plan.dst` to `plan.n` writable ones; `out` has a sum per piece and `plan.shifts` a
    /// shift per `plan.per` pieces.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_sums<const STORE: bool>(plan: &Plan<'_>, out: &mut [f64]) {
        let Plan { src, dst, n, piece, shifts, per, ahead, at } = *plan;
        let (mut start, mut p) = (0, 0);
        while start < n {
            let end = start + piece.min(n - start);
            let m = _mm512_set1_ps(shifts[p / per]);
            let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
            let mut i = start;
            while i + 16 <= end {
                // one cache line per stream and sixteen elements: spread over the loop, the
                // requests do not queue up behind each other
                for &a in ahead {
                    prefetch(a.wrapping_add(at + i));
                }
                // SAFETY: `i + 16 <= n`: sixteen elements of `src` (and of `dst`) from `i`.
                let e = exp16(_mm512_sub_ps(unsafe { _mm512_loadu_ps(src.add(i)) }, m));
                if STORE {
                    // SAFETY: as for the load.
                    unsafe { _mm512_storeu_ps(dst.add(i), e) };
                }
                add_widened(&mut lo, &mut hi, e);
                i += 16;
            }
            if i < end {
                for &a in ahead {
                    prefetch(a.wrapping_add(at + i));
                }
                let mask: __mmask16 = (1u16 << (end - i)) - 1;
                // SAFETY: the mask selects the `end - i < 16` lanes that lie in the source (and
                // destination); masked lanes are neither read nor written and cannot fault.
                let x = unsafe { _mm512_maskz_loadu_ps(mask, src.add(i)) };
                // lanes past the end become +0, which leaves their sums' bits as they are (the
                // padding of `block_sum`)
                let e = _mm512_maskz_mov_ps(mask, exp16(_mm512_sub_ps(x, m)));
                if STORE {
                    // SAFETY: as for the load.
                    unsafe { _mm512_mask_storeu_ps(dst.add(i), mask, e) };
                }
                add_widened(&mut lo, &mut hi, e);
            }
            let mut lanes = [0.0f64; LANES];
            // SAFETY: `lanes` holds sixteen `f64`: eight from its start, eight from its middle.
            unsafe {
                _mm512_storeu_pd(lanes.as_mut_ptr(), lo);
                _mm512_storeu_pd(lanes.as_mut_ptr().add(8), hi);
            }
            out[p] = join_lanes(&lanes);
            start = end;
            p += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::sum::{block_sum, BLOCK};
    use crate::kernels::vmath::VMath;

    /// Values of a softmax row and beyond: ordinary logits, the extremes of `exp`'s range, and
    /// the special values (NaN, infinities, signed zeros, subnormals).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let special = [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -87.5, -103.9, -110.0, 88.7, 1e-40, -1e4];
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                if i % 37 == 5 {
                    special[(state as usize) % special.len()]
                } else {
                    (state as f32 / u32::MAX as f32) * 40.0 - 30.0
                }
            })
            .collect()
    }

    /// `exp(x - shift)` and the block sums by the separate passes this kernel replaces.
    fn reference(x: &[f32], piece: usize, shifts: &[f32], per: usize) -> (Vec<f32>, Vec<f64>) {
        let e: Vec<f32> = x
            .chunks(piece)
            .enumerate()
            .flat_map(|(p, c)| c.iter().map(move |&v| (v - shifts[p / per]).vexp()))
            .collect();
        let sums = e.chunks(piece).map(block_sum).collect();
        (e, sums)
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    fn same_bits64(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn the_bits_of_the_separate_passes() {
        if !available::<f32>() {
            // the callers' separate passes run instead (and their own tests cover them)
            assert!(!exp_sums(
                Source::InPlace(&mut [0.0f32][..]),
                1,
                &[0.0],
                1,
                &mut [0.0],
                Fetch { ahead: &[], at: 0 }
            ));
            return;
        }
        for (n, piece) in
            [(1, 1), (15, 7), (16, 16), (17, 17), (100, 32), (255, 255), (256, BLOCK), (1043, BLOCK), (4100, BLOCK)]
        {
            let x = values(n, n as u32);
            let pieces = n.div_ceil(piece);
            for per in [1, 3, usize::MAX] {
                let shifts: Vec<f32> =
                    (0..pieces.div_ceil(per.min(pieces))).map(|k| [2.5f32, -1.0, 0.0, f32::NAN, 9.0][k % 5]).collect();
                let (want_e, want_sums) = reference(&x, piece, &shifts, per);
                let ahead = [x.as_ptr()];
                let fetch = Fetch { ahead: &ahead, at: 3 };
                // shifted, kept
                let (mut e, mut sums) = (vec![7.0f32; n], vec![0.0f64; pieces]);
                let src = Source::Shifted { x: &x, dst: Some(&mut e) };
                assert!(exp_sums(src, piece, &shifts, per, &mut sums, fetch));
                assert!(same_bits(&e, &want_e), "n {n} piece {piece} per {per}: exponentials");
                assert!(same_bits64(&sums, &want_sums), "n {n} piece {piece} per {per}: sums");
                // shifted, only summed
                let mut only = vec![0.0f64; pieces];
                assert!(exp_sums(Source::Shifted { x: &x, dst: None }, piece, &shifts, per, &mut only, fetch));
                assert!(same_bits64(&only, &want_sums), "n {n} piece {piece} per {per}: sums without dst");
            }
            // in place: the values as they are
            let (want_e, want_sums) = reference(&x, piece, &[0.0], usize::MAX);
            let (mut v, mut sums) = (x.clone(), vec![0.0f64; pieces]);
            assert!(exp_sums(
                Source::InPlace(&mut v),
                piece,
                &[0.0],
                usize::MAX,
                &mut sums,
                Fetch { ahead: &[], at: 0 }
            ));
            assert!(same_bits(&v, &want_e) && same_bits64(&sums, &want_sums), "n {n} piece {piece}: in place");
        }
    }

    #[test]
    fn f64_declines() {
        let mut v = [0.0f64; 4];
        assert!(!exp_sums(Source::InPlace(&mut v[..]), 4, &[0.0], 1, &mut [0.0], Fetch { ahead: &[], at: 0 }));
        assert_eq!(v, [0.0; 4]);
    }
}
