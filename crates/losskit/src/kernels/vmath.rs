//! Vectorisable `exp`, `ln` and `ln_1p`.
//!
//! A call to the C library's `expf` inside a loop keeps the loop scalar. The `f32` functions
//! here are branch-free Rust (range reduction, a polynomial, exponent bits) that the compiler
//! turns into SIMD code inside a [`dispatch`](super::simd::dispatch)ed loop; special inputs
//! (zero, negative, infinite, NaN, subnormal, overflowing) are handled with selects.
//!
//! - `exp`: `x = k ln 2 + r` with `k = round(x / ln 2)` and `ln 2` split in two (Cody–Waite, so
//!   `r` is exact), a degree-6 minimax polynomial on `|r| <= ln 2 / 2`, and `2^k` applied as two
//!   exponent-field multiplications so that subnormal results round once more at most. On
//!   `[-86, 0]`, where softmax rows' shifted logits nearly always lie, the result is normal and
//!   `2^k` is one integer addition to the exponent field: the same bits, a third fewer
//!   operations (slices checked first, [`VMath::vexp_in_place`]).
//! - `ln`: `x = 2^e m` with `m` in `[sqrt(1/2), sqrt(2))`, a minimax polynomial in `f = m - 1`,
//!   and `e ln 2` added in two parts; subnormal inputs are first scaled by `2^23`.
//! - `ln_1p`: `ln(u) - ((u - 1) - x) / u` with `u = 1 + x`: the correction restores what the
//!   rounding of `u` lost, so tiny `x` keeps full relative accuracy. `ln_1p_unit` (softplus'
//!   `ln(1 + e^-|z|)`, argument in `[0, 1]`) needs neither the exponent split nor the division;
//!   `ln_1m_unit` (`ln(1 - p)` of a probability) needs no division either: its reductions are
//!   exact.
//!
//! Where the CPU has AVX-512, whole slices of exponentials ([`VMath::vexp_in_place`], the
//! softmax kernels' tiles) apply `2^k` with `vscalefps`, which also handles overflow and gradual
//! underflow: the same reduction and polynomial, so the same bits, in about half the operations.
//!
//! Polynomials are evaluated with fused multiply-adds in Estrin's scheme: the loops these
//! functions sit in are bound by the latency of their dependency chains, which FMA and the
//! shallower tree both shorten.
//!
//! Measured against the correctly rounded result (the `f64` function rounded to `f32`) over
//! the whole `f32` range in this module's tests: at most 1 ulp for `exp`, `ln` and `ln_1p`
//! (the tests allow 1, 1 and 2).
//!
//! `f64` follows the same plan with longer polynomials (Taylor series of `e^r` to `r^13`, and
//! of `ln(1 + f)` as `2 atanh(f / (2 + f))` to `s^21`, one division): within 1 ulp of the
//! standard library's (correctly rounded in nearly every case) in the tests, and vectorised
//! (the C library's `exp` kept `f64` cross-entropy scalar, two to three times slower than
//! PyTorch's).

/// Vectorisable transcendental functions, implemented for `f32` and `f64` (branch-free,
/// SIMD-friendly).
pub trait VMath: Copy {
    /// `e^x`.
    fn vexp(self) -> Self;
    /// The natural logarithm.
    fn vln(self) -> Self;
    /// `ln(x)` for a positive, normal, finite `x` only: the bits of [`vln`](Self::vln) there,
    /// without its handling of subnormal, zero, infinite, negative and NaN arguments, for
    /// which it returns an unspecified value (possibly finite). For callers that know their
    /// range or check their results (`keras::Checked` terms).
    fn vln_normal(self) -> Self;
    /// `ln(1 + x)`, accurate for small `x`.
    fn vln_1p(self) -> Self;
    /// `ln(x)` for `x` in `[0, 1]` only (`0` gives `-inf`, NaN stays NaN): the bits of
    /// [`vln`](Self::vln) there, without its tests for infinite and negative arguments (the
    /// `log(p)` of a probability).
    #[inline(always)]
    fn vln_unit(self) -> Self {
        self.vln()
    }
    /// `ln(1 + x)` for `x` in `[0, 1]` only (NaN stays NaN): cheaper than
    /// [`vln_1p`](Self::vln_1p) for softplus-like terms `ln(1 + e^-|z|)`.
    fn vln_1p_unit(self) -> Self;
    /// `ln(1 + x)` for `x` in `[0, sqrt(2) - 1]` only (NaN stays NaN): the bits of
    /// [`vln_1p_unit`](Self::vln_1p_unit) there, without its range reduction (the
    /// `ln(1 + e^{-2|z|})` of log-cosh beyond `|z| = 1/2`).
    #[inline(always)]
    fn vln_1p_small(self) -> Self {
        self.vln_1p_unit()
    }
    /// `ln(1 - x)` for `x` in `[0, 1]` only (NaN stays NaN; `1` gives `-inf`): the `log(1 - p)`
    /// of a probability, cheaper than `(-x).vln_1p()`.
    fn vln_1m_unit(self) -> Self;
    /// `(ln x, ln(1 - x))` for `x` in `[0, 1]` only (NaN gives NaN twice): the bits of
    /// [`vln_unit`](Self::vln_unit) and [`vln_1m_unit`](Self::vln_1m_unit), for one exponent
    /// split instead of two (the `log(p)` and `log(1 - p)` of binary cross-entropy).
    #[inline(always)]
    fn vln_both_unit(self) -> (Self, Self) {
        (self.vln_unit(), self.vln_1m_unit())
    }
    /// `e^v` of every element of `v`, in place: the bits of [`vexp`](Self::vexp), computed the
    /// fastest way this CPU allows (a softmax row's exponentials).
    #[inline(always)]
    fn vexp_in_place(v: &mut [Self]) {
        for e in v.iter_mut() {
            *e = e.vexp();
        }
    }
}

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2 = LN2_HI + LN2_LO`, `LN2_HI` with trailing zero bits so that `k * LN2_HI` is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Above this, `e^x` overflows; below `EXP_MIN` it rounds to zero.
const EXP_MAX: f32 = 88.722_84;
const EXP_MIN: f32 = -103.972_08;
/// `exp` clamps its argument to `[EXP_CLAMP_LO, EXP_CLAMP_HI]`, a little wider than
/// `[EXP_MIN, EXP_MAX]`: at and beyond those bounds the computation itself gives 0 (below half
/// the smallest subnormal: `k <= -150` and `y < 1`, or `k < -150`) or infinity (`y 2^k` with
/// `k >= 128`, `y >= 1`, or `k > 128`), so no select is needed, while `k` stays within what the
/// two exponent-field factors of `2^k` can hold.
const EXP_CLAMP_LO: f32 = -110.0;
const EXP_CLAMP_HI: f32 = 100.0;
const _: () = assert!(EXP_CLAMP_LO < EXP_MIN && EXP_CLAMP_HI > EXP_MAX);
/// `e^r = 1 + r + r^2 q(r)` on `|r| <= ln 2 / 2`: the coefficients of the minimax `q`, from
/// degree 0 up (shared by [`exp_f32`] and its AVX-512 form, which must have the same bits).
const EXP_Q: [f32; 6] = [0.5, 1.666_666_5e-1, 4.166_579_6e-2, 8.333_452e-3, 1.398_199_9e-3, 1.987_569_1e-4];
/// `ln(1 + f) = f - f^2 / 2 + f^3 p(f)` on `[sqrt(1/2) - 1, sqrt(2) - 1]`: the coefficients of
/// the minimax `p`, from degree 0 up (shared by [`ln_reduced`] and its AVX2 form, which must
/// have the same bits).
const LN_P: [f32; 9] = [
    3.333_333e-1,
    -2.499_999_4e-1,
    2.000_071_5e-1,
    -1.666_805_8e-1,
    1.424_932_3e-1,
    -1.242_014_1e-1,
    1.167_699_9e-1,
    -1.151_461e-1,
    7.037_683_6e-2,
];
/// Adding and subtracting `1.5 * 2^23` rounds an `f32` of magnitude below `2^22` to an integer
/// (to nearest, ties to even).
const ROUNDER: f32 = 12_582_912.0;

/// `2^k` for `k` in `[-126, 127]`, from the exponent field.
#[inline(always)]
fn pow2i(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// `a * b + c`, fused: one rounding, and one instruction (`vfmadd`) inside a
/// [`dispatch`](super::simd::dispatch)ed loop, whose AVX-512 and AVX2 paths both have FMA.
/// Outside one (or on a CPU without FMA) it is the C library's `fmaf`: the same value, slower.
#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// `e^x = y 2^k` for an `x` within the clamp: `(y, k)`, `y` in `[1/sqrt 2, sqrt 2]` (NaN stays
/// NaN), the reduction and polynomial shared by [`exp_f32`] and [`exp_f32_normal`].
#[inline(always)]
fn exp_reduced_f32(x: f32) -> (f32, i32) {
    let shifted = fma(x, LOG2_E, ROUNDER);
    let kf = shifted - ROUNDER;
    let r = fma(kf, -LN2_LO, fma(kf, -LN2_HI, x));
    // e^r = 1 + r + r^2 q(r); q by Estrin's scheme (three dependent steps instead of six)
    let r2 = r * r;
    let q01 = fma(EXP_Q[1], r, EXP_Q[0]);
    let q23 = fma(EXP_Q[3], r, EXP_Q[2]);
    let q45 = fma(EXP_Q[5], r, EXP_Q[4]);
    let q = fma(fma(q45, r2, q23), r2, q01);
    // k from the low bits of `shifted` (1.5 * 2^23 + k): a float-to-int cast saturates, which
    // the compiler leaves scalar
    (fma(q, r2, r) + 1.0, shifted.to_bits() as i32 - 0x4b40_0000)
}

#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    // a NaN `x` stays NaN (`clamp` keeps it, as documented), and so do `y` and the result: no
    // select back to `x`, which would also let the compiler turn an in-place loop's store into
    // a masked store (`vmaskmovps`), microcoded and slow on AVX2 CPUs
    let (y, k) = exp_reduced_f32(x.clamp(EXP_CLAMP_LO, EXP_CLAMP_HI));
    // 2^k as two factors: k goes down to -150 where a single exponent field cannot
    // (k in [-159, 144] after the clamp: both factors are normal)
    let k1 = k >> 1;
    y * pow2i(k1) * pow2i(k - k1)
}

/// The arguments `[EXP_NORMAL_MIN, 0]` of [`exp_f32_normal`]: there `k >= -124` and `k <= 0`,
/// so `y 2^k` (`y` in `[1/sqrt 2, sqrt 2]`) is a normal number.
pub(crate) const EXP_NORMAL_MIN: f32 = -86.0;

/// [`exp_f32`] for `x` in `[EXP_NORMAL_MIN, 0]` (the shifted logits `x - max` of a softmax row,
/// nearly always), with the same bits: no clamp (a no-op there), and `2^k` applied by adding `k`
/// to the exponent field of `y`, which is `y 2^k` exactly because the result is normal, as are
/// `exp_f32`'s two factors and both its products (exact too). About a third fewer operations.
/// Outside that range the result is wrong: callers check the whole slice first.
#[inline(always)]
fn exp_f32_normal(x: f32) -> f32 {
    let (y, k) = exp_reduced_f32(x);
    f32::from_bits((y.to_bits() as i32).wrapping_add(k << 23) as u32)
}

/// Whether every element of `v` lies in `[EXP_NORMAL_MIN, 0]` (NaN does not).
///
/// Eight lanes over fixed-size groups, each a select between its flag and 1 (`vcmpps`, `vandps`,
/// `vblendvps`): a fold of one `bool` over the slice was vectorised with its comparison masks
/// packed down to bytes on every step, half the cost of the exponentials that follow.
#[inline(always)]
#[allow(clippy::manual_range_contains)] // `&`, not `contains`' `&&`: no branch in the lanes
fn all_exp_normal(v: &[f32]) -> bool {
    const LANES: usize = 8;
    let mut outside = [0.0f32; LANES];
    let mut groups = v.chunks_exact(LANES);
    for group in &mut groups {
        if let Ok(g) = <&[f32; LANES]>::try_from(group) {
            for l in 0..LANES {
                let inside = (g[l] >= EXP_NORMAL_MIN) & (g[l] <= 0.0);
                outside[l] = if inside { outside[l] } else { 1.0 };
            }
        }
    }
    outside.iter().all(|&o| o == 0.0) && groups.remainder().iter().all(|x| (EXP_NORMAL_MIN..=0.0).contains(x))
}

/// `ln(1 + f) + e ln 2` for `f` in `[sqrt(1/2) - 1, sqrt(2) - 1]` (`f` exact) and an integer
/// `e`: the core of [`ln_f32`] and [`ln_1p_unit_f32`].
#[inline(always)]
fn ln_reduced(f: f32, ef: f32) -> f32 {
    // ln(1 + f) = f - f^2/2 + f^3 p(f); p by Estrin's scheme
    let z = f * f;
    let z2 = z * z;
    let p01 = fma(LN_P[1], f, LN_P[0]);
    let p23 = fma(LN_P[3], f, LN_P[2]);
    let p45 = fma(LN_P[5], f, LN_P[4]);
    let p67 = fma(LN_P[7], f, LN_P[6]);
    let p03 = fma(p23, z, p01);
    let p47 = fma(p67, z, p45);
    let p = fma(fma(LN_P[8], z2, p47), z2, p03);
    let y = fma(-0.5, z, fma(p * f, z, ef * LN2_LO));
    fma(ef, LN2_HI, f + y)
}

/// A normal positive `u = 2^e m` split for [`ln_reduced`]: `m` in `[sqrt(1/2), sqrt(2))`, so
/// that `f = m - 1` is small and exact. Returns `(f, e)`.
///
/// In integer arithmetic on the bits: `u = 2^E M` with `M` in `[1, 2)` is halved (`m = M / 2`,
/// `e = E + 1`) exactly when `M > sqrt(2)` as an `f32` ([`SPLIT_AT`]), i.e. when the bits of
/// `M / 2` are at least `SPLIT_AT`'s; so `e` is `(bits(u) - SPLIT_AT) >> 23` (arithmetic
/// shift: the exponent difference, one less below the threshold), and `m` is `u` with `e`
/// taken off its exponent field. Five integer operations where masks, a comparison, a
/// product and a select took ten; the same `(f, e)`, checked against that form in the tests.
#[inline(always)]
fn split_exponent(u: f32) -> (f32, i32) {
    let bits = u.to_bits();
    let e = (bits.wrapping_sub(SPLIT_AT) as i32) >> 23;
    let m = f32::from_bits(bits.wrapping_sub((e << 23) as u32));
    (m - 1.0, e)
}

/// The bits of the smallest `m` that [`split_exponent`] halves (the `f32` after `sqrt(2)`),
/// halved: `M / 2` for `M` above `sqrt(2)` has bits at least these, for `M` up to it fewer.
const SPLIT_AT: u32 = (std::f32::consts::SQRT_2.to_bits() + 1) - (1 << 23);

/// `ln(x)` for a positive finite `x`, subnormals included; other arguments give a value that
/// the callers replace.
#[inline(always)]
fn ln_positive(x: f32) -> f32 {
    // subnormals: scale into the normal range first
    let sub = x < f32::MIN_POSITIVE;
    let xs = if sub { x * 8_388_608.0 } else { x };
    let (f, e) = split_exponent(xs);
    ln_reduced(f, (e - if sub { 23 } else { 0 }) as f32)
}

#[inline(always)]
fn ln_f32(x: f32) -> f32 {
    ln_by(x, ln_positive(x))
}

/// `ln(x)` for either dtype given `v`, its logarithm where `x` is positive and finite: the
/// special arguments replace it by selects.
#[inline(always)]
fn ln_by<T: crate::float::Float>(x: T, v: T) -> T {
    let v = if x == T::infinity() { x } else { v };
    let v = if x == T::zero() { T::neg_infinity() } else { v };
    // negative inputs and NaN
    if x < T::zero() || x.is_nan() {
        T::nan()
    } else {
        v
    }
}

/// [`ln_f32`] for `x` in `[0, 1]`: `0` (and NaN) leave through one select, `-inf + x`.
#[inline(always)]
fn ln_unit_f32(x: f32) -> f32 {
    ln_unit_by(x, ln_positive(x))
}

/// [`ln_by`] for `x` in `[0, 1]` (see [`ln_unit_f32`]).
#[inline(always)]
fn ln_unit_by<T: crate::float::Float>(x: T, v: T) -> T {
    if x > T::zero() {
        v
    } else {
        T::neg_infinity() + x
    }
}

#[inline(always)]
fn ln_1p_f32(x: f32) -> f32 {
    let u = 1.0 + x;
    let v = ln_f32(u) - ((u - 1.0) - x) / u;
    // u == 1: x is below half an ulp of 1, and ln(1 + x) = x to within its rounding
    let v = if u == 1.0 { x } else { v };
    let v = if x == f32::INFINITY { x } else { v };
    if x == -1.0 {
        f32::NEG_INFINITY
    } else {
        v
    }
}

/// `ln(1 + x)` for `x` in `[0, 1]` (the `ln(1 + e^-|z|)` of softplus and log-sigmoid): `1 + x`
/// lies in `[1, 2]`, so the reduction needs no exponent bits and `f` is exact (`x` itself below
/// `sqrt(2) - 1`, `(x - 1) / 2` rounded once above), and there is no correction division as
/// in [`ln_1p_f32`].
#[inline(always)]
fn ln_1p_unit_f32(x: f32) -> f32 {
    let big = x > std::f32::consts::SQRT_2 - 1.0;
    let f = if big { fma(x, 0.5, -0.5) } else { x };
    ln_reduced(f, if big { 1.0 } else { 0.0 })
}

/// `ln(1 - x)` for `x` in `[0, 1]`, without the division of [`ln_1p_f32`]'s correction: every
/// case reduces to an exact `f` for [`ln_reduced`].
/// - `x <= 1 - sqrt(1/2)`: `1 - x = 1 + f` with `f = -x`;
/// - `x < 1/2`: `1 - x = (1 + f) / 2` with `f = 1 - 2x`, exact by Sterbenz' lemma (`2x` lies
///   in `[1/2, 1)`);
/// - from `1/2`: `u = 1 - x` is itself exact (Sterbenz again), and split as in [`ln_f32`]
///   (never subnormal: at least `2^-24` unless 0).
#[inline(always)]
fn ln_1m_unit_f32(x: f32) -> f32 {
    ln_1m_unit_by(
        x,
        #[inline(always)]
        |u| {
            let (f, e) = split_exponent(u);
            (f, e as f32)
        },
        ln_reduced,
    )
}

/// The reductions of `ln_1m_unit` for either dtype, given its `split` of a positive normal `u`
/// into `(m - 1, e)` and its `reduced` logarithm `ln(1 + f) + e ln 2` (see [`ln_1m_unit_f32`]).
#[inline(always)]
fn ln_1m_unit_by<T: crate::float::Float>(x: T, split: impl Fn(T) -> (T, T), reduced: impl Fn(T, T) -> T) -> T {
    let (f_u, e_u) = split(T::one() - x);
    let small = x <= T::one() - T::FRAC_1_SQRT_2();
    let mid = x < T::of(0.5);
    let f = if small {
        -x
    } else if mid {
        T::of(-2.0).mul_add(x, T::one())
    } else {
        f_u
    };
    let e = if small {
        T::zero()
    } else if mid {
        -T::one()
    } else {
        e_u
    };
    let v = reduced(f, e);
    let v = if x == T::one() { T::neg_infinity() } else { v };
    if x.is_nan() {
        x
    } else {
        v
    }
}

/// `(ln x, ln(1 - x))` for `x` in `[0, 1]`, given `ln_unit` and the `reduced` logarithm
/// `ln(1 + f) + e ln 2` of either dtype: the bits of `ln_unit(x)` and `ln_1m_unit(x)`.
///
/// Of `x` and `1 - x`, the smaller `u` (exact: `1 - x` by Sterbenz' lemma above 1/2) takes
/// `ln_unit`, the one exponent split (`u` may be 0 or subnormal); the larger lies in `[1/2, 1]`
/// and needs none: it is `1 + f` or `(1 + f) / 2` with `f` exact, chosen as `ln_1m_unit`
/// (below 1/2) and `split_exponent` (above) choose them, so that each logarithm is the same
/// `reduced(f, e)` as on its own.
#[inline(always)]
fn ln_both_unit_by<T: crate::float::Float>(x: T, ln_unit: impl Fn(T) -> T, reduced: impl Fn(T, T) -> T) -> (T, T) {
    let lower = x <= T::of(0.5);
    let far = ln_unit(if lower { x } else { T::one() - x });
    // below 1/2, ln(1 - x) as `ln_1m_unit` reduces it (`1 - x = 1 + f` or `(1 + f) / 2`);
    // above, ln(x) as `split_exponent` does (`m = x` or `m = 2x`): selects, then one
    // `reduced` (a vectorised loop computes every branch)
    let (one, two) = (T::one(), T::of(2.0));
    let small = if lower { x <= one - T::FRAC_1_SQRT_2() } else { x + x > T::SQRT_2() };
    let f_small = if lower { -x } else { x - one };
    let f_half = if lower { (-two).mul_add(x, one) } else { two.mul_add(x, -one) };
    let f = if small { f_small } else { f_half };
    let near = reduced(f, if small { T::zero() } else { -one });
    if lower {
        (far, near)
    } else {
        (near, far)
    }
}

/// The clamp, reduction and polynomial of [`exp_f32`] on one vector, operation for operation,
/// written once for the intrinsic forms (AVX-512 and AVX2 name their operations differently):
/// `exp_reduced!(x, set1, min, max, fmadd, sub, mul, add)` gives `(y, kf, shifted)`, with
/// `e^x = y 2^kf`. `vmaxps`/`vminps` return their second operand when either is NaN: NaN goes
/// through, as `clamp` lets it.
#[cfg(target_arch = "x86_64")]
macro_rules! exp_reduced {
    ($x:expr, $set1:ident, $min:ident, $max:ident, $fmadd:ident, $sub:ident, $mul:ident, $add:ident) => {{
        let c = $set1;
        let xc = $min(c(EXP_CLAMP_HI), $max(c(EXP_CLAMP_LO), $x));
        let shifted = $fmadd(xc, c(LOG2_E), c(ROUNDER));
        let kf = $sub(shifted, c(ROUNDER));
        let r = $fmadd(kf, c(-LN2_LO), $fmadd(kf, c(-LN2_HI), xc));
        let r2 = $mul(r, r);
        let q01 = $fmadd(c(EXP_Q[1]), r, c(EXP_Q[0]));
        let q23 = $fmadd(c(EXP_Q[3]), r, c(EXP_Q[2]));
        let q45 = $fmadd(c(EXP_Q[5]), r, c(EXP_Q[4]));
        let q = $fmadd($fmadd(q45, r2, q23), r2, q01);
        ($add($fmadd(q, r2, r), c(1.0)), kf, shifted)
    }};
}

/// [`exp_f32`] on sixteen lanes with AVX-512's `vscalefps`, which multiplies by `2^k` with
/// one rounding, overflow to infinity and gradual underflow in one instruction: about half the
/// operations of the portable code, whose two exponent-field factors and range selects it
/// replaces. The reduction and the polynomial are [`exp_f32`]'s, operation for operation, so
/// the results have the same bits (checked in the tests).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{EXP_CLAMP_HI, EXP_CLAMP_LO, EXP_Q, LN2_HI, LN2_LO, LOG2_E, ROUNDER};
    use core::arch::x86_64::*;

    // arguments are clamped as in [`exp_f32`](super::exp_f32), and beyond `[EXP_MIN, EXP_MAX]`
    // `vscalefps` too gives 0 or infinity

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn exp16(x: __m512) -> __m512 {
        let (y, kf, _) = exp_reduced!(
            x,
            _mm512_set1_ps,
            _mm512_min_ps,
            _mm512_max_ps,
            _mm512_fmadd_ps,
            _mm512_sub_ps,
            _mm512_mul_ps,
            _mm512_add_ps
        );
        _mm512_scalef_ps(y, kf)
    }

    /// `v[i] = exp_f32(v[i])` for every element, sixteen at a time; the last `< 16` through
    /// masked loads and stores.
    #[target_feature(enable = "avx512f")]
    pub(super) fn exp_in_place(v: &mut [f32]) {
        let mut pieces = v.chunks_exact_mut(16);
        for p in &mut pieces {
            let p = p.as_mut_ptr();
            // SAFETY: `p` points to 16 `f32`s of the slice, read then written.
            unsafe { _mm512_storeu_ps(p, exp16(_mm512_loadu_ps(p))) };
        }
        let rest = pieces.into_remainder();
        if !rest.is_empty() {
            let mask: __mmask16 = (1u16 << rest.len()) - 1;
            let p = rest.as_mut_ptr();
            // SAFETY: the mask selects the `rest.len() < 16` lanes that lie in the slice; masked
            // lanes are neither read nor written (and cannot fault).
            unsafe { _mm512_mask_storeu_ps(p, mask, exp16(_mm512_maskz_loadu_ps(mask, p))) };
        }
    }
}

/// [`exp_f32`] on eight lanes with AVX2 and FMA, operation for operation (the same bits,
/// checked in the tests), for kernels written with intrinsics
/// ([`row_lanes`](super::row_lanes)): there the exponential works on vectors that never pass
/// through memory.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{EXP_CLAMP_HI, EXP_CLAMP_LO, EXP_Q, LN2_HI, LN2_LO, LN_P, LOG2_E, ROUNDER};
    use core::arch::x86_64::*;

    /// `exp_f32` of each lane.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn exp8(x: __m256) -> __m256 {
        let (y, _, shifted) = exp_reduced!(
            x,
            _mm256_set1_ps,
            _mm256_min_ps,
            _mm256_max_ps,
            _mm256_fmadd_ps,
            _mm256_sub_ps,
            _mm256_mul_ps,
            _mm256_add_ps
        );
        // k from the low bits of `shifted`, 2^k as the two exponent-field factors of exp_f32
        let k = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x4b40_0000));
        let k1 = _mm256_srai_epi32::<1>(k);
        let bias = _mm256_set1_epi32(127);
        let p1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k1, bias)));
        let p2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_sub_epi32(k, k1), bias)));
        _mm256_mul_ps(_mm256_mul_ps(y, p1), p2)
    }

    /// `exp_f32_normal` of each lane (each in `[EXP_NORMAL_MIN, 0]`, which the caller checked):
    /// `exp8`'s operations without the clamp, and `2^k` added to the exponent field.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn exp8_normal(x: __m256) -> __m256 {
        // the clamp is a no-op on these arguments: `exp_reduced!`'s minimum and maximum become
        // the argument itself
        #[inline(always)]
        fn argument(_: __m256, x: __m256) -> __m256 {
            x
        }
        let (y, _, shifted) = exp_reduced!(
            x,
            _mm256_set1_ps,
            argument,
            argument,
            _mm256_fmadd_ps,
            _mm256_sub_ps,
            _mm256_mul_ps,
            _mm256_add_ps
        );
        let k = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x4b40_0000));
        _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), _mm256_slli_epi32::<23>(k)))
    }

    /// The mask of the lanes of `x` that lie in `[EXP_NORMAL_MIN, 0]` (all ones there, zero
    /// elsewhere; NaN lies outside): the range `exp8_normal` takes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn exp_normal_lanes(x: __m256) -> __m256 {
        _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_set1_ps(super::EXP_NORMAL_MIN)),
            _mm256_cmp_ps::<_CMP_LE_OQ>(x, _mm256_setzero_ps()),
        )
    }

    /// [`ln_sum`](crate::kernels::rows::ln_sum)`::<f32>` of each of eight row sums of
    /// exponentials `S` (`lo`: rows 0-3, `hi`: rows 4-7), each at least 1 (the maximum's term
    /// is `exp(0)`), or NaN: the bits of the portable code, operation for operation (its exponent
    /// split included: `split_exponent`'s integer form).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn ln_sum8(lo: __m256d, hi: __m256d) -> __m256 {
        let set1 = _mm256_set1_ps;
        let r = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
        // `split_exponent` of a normal `r`: `e = (bits - SPLIT_AT) >> 23` (arithmetic), `m` the
        // bits with `e` taken off the exponent field, in [sqrt(1/2), sqrt(2))
        let bits = _mm256_castps_si256(r);
        let e = _mm256_srai_epi32::<23>(_mm256_sub_epi32(bits, _mm256_set1_epi32(super::SPLIT_AT as i32)));
        let m = _mm256_castsi256_ps(_mm256_sub_epi32(bits, _mm256_slli_epi32::<23>(e)));
        let f = _mm256_sub_ps(m, set1(1.0));
        let ef = _mm256_cvtepi32_ps(e);
        // `ln_reduced`
        let fma = _mm256_fmadd_ps;
        let z = _mm256_mul_ps(f, f);
        let z2 = _mm256_mul_ps(z, z);
        let p01 = fma(set1(LN_P[1]), f, set1(LN_P[0]));
        let p23 = fma(set1(LN_P[3]), f, set1(LN_P[2]));
        let p45 = fma(set1(LN_P[5]), f, set1(LN_P[4]));
        let p67 = fma(set1(LN_P[7]), f, set1(LN_P[6]));
        let p03 = fma(p23, z, p01);
        let p47 = fma(p67, z, p45);
        let p = fma(fma(set1(LN_P[8]), z2, p47), z2, p03);
        let y = fma(set1(-0.5), z, fma(_mm256_mul_ps(p, f), z, _mm256_mul_ps(ef, set1(LN2_LO))));
        let v = fma(ef, set1(LN2_HI), _mm256_add_ps(f, y));
        // `ln_by`'s special arguments that a sum of at least 1 can be: infinity and NaN
        let v = _mm256_blendv_ps(v, r, _mm256_cmp_ps::<_CMP_EQ_OQ>(r, set1(f32::INFINITY)));
        let v = _mm256_blendv_ps(v, set1(f32::NAN), _mm256_cmp_ps::<_CMP_UNORD_Q>(r, r));
        // plus `(S - r) / r` in f64, rounded once
        let correction = |s: __m256d, r: __m128| {
            let r = _mm256_cvtps_pd(r);
            _mm256_cvtpd_ps(_mm256_div_pd(_mm256_sub_pd(s, r), r))
        };
        let c =
            _mm256_set_m128(correction(hi, _mm256_extractf128_ps::<1>(r)), correction(lo, _mm256_castps256_ps128(r)));
        _mm256_add_ps(v, c)
    }
}

impl VMath for f32 {
    #[inline(always)]
    fn vexp(self) -> f32 {
        exp_f32(self)
    }
    #[inline(always)]
    fn vexp_in_place(v: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, the only feature the function enables.
            unsafe { avx512::exp_in_place(v) };
            return;
        }
        // a softmax row's shifted logits nearly always allow the cheaper form (same bits)
        if all_exp_normal(v) {
            for e in v.iter_mut() {
                *e = exp_f32_normal(*e);
            }
            return;
        }
        for e in v.iter_mut() {
            *e = exp_f32(*e);
        }
    }
    #[inline(always)]
    fn vln(self) -> f32 {
        ln_f32(self)
    }
    #[inline(always)]
    fn vln_normal(self) -> f32 {
        let (f, e) = split_exponent(self);
        ln_reduced(f, e as f32)
    }
    #[inline(always)]
    fn vln_1p(self) -> f32 {
        ln_1p_f32(self)
    }
    #[inline(always)]
    fn vln_1p_unit(self) -> f32 {
        ln_1p_unit_f32(self)
    }
    #[inline(always)]
    fn vln_unit(self) -> f32 {
        ln_unit_f32(self)
    }
    #[inline(always)]
    fn vln_1p_small(self) -> f32 {
        ln_reduced(self, 0.0)
    }
    #[inline(always)]
    fn vln_1m_unit(self) -> f32 {
        ln_1m_unit_f32(self)
    }
    #[inline(always)]
    fn vln_both_unit(self) -> (f32, f32) {
        ln_both_unit_by(self, ln_unit_f32, ln_reduced)
    }
}

/// `f64` counterparts, on the same plan with longer polynomials.
///
/// Integer work stays within what AVX2 has for 64-bit lanes (additions, logical shifts, bit
/// operations): the integer `k` of `2^k` and the exponent `e` of a logarithm's argument go
/// through the bits of `2^52 + ...` (the significand of a float of that size is an integer)
/// instead of float-to-integer conversions or arithmetic shifts, which it lacks.
mod f64_impl {
    /// `2^52 + 2^51`: adding and subtracting it rounds an `f64` below `2^50` in magnitude to an
    /// integer (to nearest, ties to even).
    const ROUNDER: f64 = 6_755_399_441_055_744.0;
    /// `2^52`: an integer `i` in `[0, 2^52)` plus it has `i` as its significand bits.
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    /// `ln 2 = LN2_HI + LN2_LO`, `LN2_HI` with 32 trailing zero bits so that `k * LN2_HI` is
    /// exact for every `|k| < 2^20`.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    /// `ln 2 - LN2_HI` rounded to `f64` (from 60 digits of `ln 2`; `LN_2 - LN2_HI` in `f64`
    /// would keep only the 21 bits of `LN_2` beyond `LN2_HI`).
    const LN2_LO: f64 = 1.908_214_929_270_587_8e-10;
    /// `exp` clamps its argument to `[EXP_CLAMP_LO, EXP_CLAMP_HI]`, beyond the ends of its
    /// range (`e^x` overflows above 709.79 and rounds to 0 below -745.14): there the
    /// computation itself gives infinity or 0, and `k` stays within what the two exponent-field
    /// factors of `2^k` can hold.
    pub(super) const EXP_CLAMP_LO: f64 = -760.0;
    pub(super) const EXP_CLAMP_HI: f64 = 720.0;

    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }

    /// `2^k` for an integer-valued `k` in `[-1022, 1023]`, from the exponent field.
    #[inline(always)]
    fn pow2(k: f64) -> f64 {
        // the significand of 2^52 + k + 1023 is k + 1023; shifted into the exponent field
        f64::from_bits((k + (TWO_52 + 1023.0)).to_bits() << 52)
    }

    /// `e^x`: `x = k ln 2 + r` (`|r| <= ln 2 / 2`, `r` exact), `e^r = 1 + r + r^2 q(r)` with
    /// `q` the Taylor series to `r^11 / 13!` (what it leaves out is below `5e-18`), and `2^k`
    /// as two exponent-field factors (subnormal results round once).
    #[inline(always)]
    pub(super) fn exp(x: f64) -> f64 {
        // NaN stays NaN through `clamp`, `r` and the result (see `exp_f32`)
        let xc = x.clamp(EXP_CLAMP_LO, EXP_CLAMP_HI);
        let kf = fma(xc, std::f64::consts::LOG2_E, ROUNDER) - ROUNDER;
        let r = fma(kf, -LN2_LO, fma(kf, -LN2_HI, xc));
        // q(r) = sum_j r^j / (j + 2)!, j = 0..11, by Estrin's scheme
        const C: [f64; 12] = {
            let mut c = [0.0; 12];
            let mut f = 2.0;
            let mut j = 0;
            while j < 12 {
                c[j] = 1.0 / f;
                f *= (j + 3) as f64;
                j += 1;
            }
            c
        };
        let r2 = r * r;
        let r4 = r2 * r2;
        let r8 = r4 * r4;
        let p = |j: usize| fma(C[j + 1], r, C[j]);
        let q03 = fma(p(2), r2, p(0));
        let q47 = fma(p(6), r2, p(4));
        let q811 = fma(p(10), r2, p(8));
        let q = fma(q811, r8, fma(q47, r4, q03));
        let y = fma(q, r2, r) + 1.0;
        // k in [-1097, 1039] after the clamp: both halves are normal exponents
        let k1 = fma(kf, 0.5, ROUNDER) - ROUNDER;
        y * pow2(k1) * pow2(kf - k1)
    }

    /// `ln(1 + f) + e ln 2 + c` for `f` in `[sqrt(1/2) - 1, sqrt(2) - 1]` (exact), an integer
    /// `e` and a correction `c` far below `f`'s scale (what the rounding of `1 + x` lost, in
    /// `ln_1p`): with `s = f / (2 + f)`, `ln(1 + f) = 2 atanh(s) = 2s + s R(s^2)`, `R` the series
    /// `2z/3 + 2z^2/5 + ...` to `z^10` (`s^2 <= 0.0295`: what it leaves out is below `1e-18`),
    /// written as `f - (f^2/2 - s (f^2/2 + R))` so that the large terms are exact and the
    /// small ones are summed first.
    #[inline(always)]
    fn ln_reduced(f: f64, e: f64, c: f64) -> f64 {
        let s = f / (2.0 + f);
        let z = s * s;
        let z2 = z * z;
        let z4 = z2 * z2;
        let coef = |j: usize| 2.0 / (2 * j + 1) as f64;
        let p = |j: usize| fma(coef(j + 1), z, coef(j));
        // R(z) / z = sum_j c(j) z^(j-1), j = 1..10
        let r14 = fma(p(3), z2, p(1));
        let r58 = fma(p(7), z2, p(5));
        let r = z * fma(fma(p(9), z4, r58), z4, r14);
        let hfsq = 0.5 * f * f;
        // the small terms first, then `f`, then the exact `e LN2_HI`: one large rounding
        let small = hfsq - fma(s, hfsq + r, fma(e, LN2_LO, c));
        fma(e, LN2_HI, f - small)
    }

    /// A positive normal `u = 2^e m` split for [`ln_reduced`]: `(m - 1, e)` with `m` in
    /// `[sqrt(1/2), sqrt(2))`.
    #[inline(always)]
    fn split_exponent(u: f64) -> (f64, f64) {
        let bits = u.to_bits();
        let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
        let big = m > std::f64::consts::SQRT_2;
        let m = if big { m * 0.5 } else { m };
        // the biased exponent as a float, through the significand of 2^52 + it
        let biased = f64::from_bits(((bits >> 52) & 0x7ff) | TWO_52.to_bits()) - TWO_52;
        (m - 1.0, biased - 1023.0 + if big { 1.0 } else { 0.0 })
    }

    /// `ln(x)` for a positive finite `x`, subnormals included.
    #[inline(always)]
    fn ln_positive(x: f64) -> f64 {
        let sub = x < f64::MIN_POSITIVE;
        let (f, e) = split_exponent(if sub { x * TWO_52 } else { x });
        ln_reduced(f, e - if sub { 52.0 } else { 0.0 }, 0.0)
    }

    #[inline(always)]
    pub(super) fn ln(x: f64) -> f64 {
        super::ln_by(x, ln_positive(x))
    }

    /// `ln(x)` for a positive normal finite `x` (see `VMath::vln_normal`).
    #[inline(always)]
    pub(super) fn ln_normal(x: f64) -> f64 {
        let (f, e) = split_exponent(x);
        ln_reduced(f, e, 0.0)
    }

    /// `ln(x)` for `x` in `[0, 1]` (`0` and NaN leave through one select).
    #[inline(always)]
    pub(super) fn ln_unit(x: f64) -> f64 {
        super::ln_unit_by(x, ln_positive(x))
    }

    /// `(ln x, ln(1 - x))` for `x` in `[0, 1]` (see `ln_both_unit_by`).
    #[inline(always)]
    pub(super) fn ln_both_unit(x: f64) -> (f64, f64) {
        super::ln_both_unit_by(
            x,
            ln_unit,
            #[inline(always)]
            |f, e| ln_reduced(f, e, 0.0),
        )
    }

    /// `ln(u) + (x - (u - 1)) / u` with `u = 1 + x` (see the module notes), the correction
    /// summed with the reduction's small terms. `u` is never subnormal (at least `2^-53`
    /// unless 0).
    #[inline(always)]
    pub(super) fn ln_1p(x: f64) -> f64 {
        let u = 1.0 + x;
        let (f, e) = split_exponent(u);
        let v = ln_reduced(f, e, (x - (u - 1.0)) / u);
        let v = if u == 1.0 { x } else { v };
        let v = if x == f64::INFINITY { x } else { v };
        let v = if x == -1.0 { f64::NEG_INFINITY } else { v };
        // below -1, and NaN
        if x >= -1.0 {
            v
        } else {
            f64::NAN
        }
    }

    /// `ln(1 + x)` for `x` in `[0, 1]`: `u = 1 + x` lies in `[1, 2]`, split without exponent
    /// bits (`u - 1` and `u / 2 - 1` are exact), plus the correction of [`ln_1p`].
    #[inline(always)]
    pub(super) fn ln_1p_unit(x: f64) -> f64 {
        let u = 1.0 + x;
        let big = u > std::f64::consts::SQRT_2;
        let f = if big { fma(u, 0.5, -1.0) } else { u - 1.0 };
        ln_reduced(f, if big { 1.0 } else { 0.0 }, (x - (u - 1.0)) / u)
    }

    /// `ln(1 - x)` for `x` in `[0, 1]`: as `ln_1m_unit_f32`, every case an exact reduction.
    #[inline(always)]
    pub(super) fn ln_1m_unit(x: f64) -> f64 {
        super::ln_1m_unit_by(
            x,
            split_exponent,
            #[inline(always)]
            |f, e| ln_reduced(f, e, 0.0),
        )
    }
}

impl VMath for f64 {
    #[inline(always)]
    fn vexp(self) -> f64 {
        f64_impl::exp(self)
    }
    #[inline(always)]
    fn vln(self) -> f64 {
        f64_impl::ln(self)
    }
    #[inline(always)]
    fn vln_normal(self) -> f64 {
        f64_impl::ln_normal(self)
    }
    #[inline(always)]
    fn vln_unit(self) -> f64 {
        f64_impl::ln_unit(self)
    }
    #[inline(always)]
    fn vln_1p(self) -> f64 {
        f64_impl::ln_1p(self)
    }
    #[inline(always)]
    fn vln_1p_unit(self) -> f64 {
        f64_impl::ln_1p_unit(self)
    }
    #[inline(always)]
    fn vln_1m_unit(self) -> f64 {
        f64_impl::ln_1m_unit(self)
    }
    #[inline(always)]
    fn vln_both_unit(self) -> (f64, f64) {
        f64_impl::ln_both_unit(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_integer_split_is_the_select_split() {
        // the masks-and-select form it replaced: M from the significand, halved above sqrt(2)
        let by_select = |u: f32| {
            let bits = u.to_bits();
            let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
            let big = m > std::f32::consts::SQRT_2;
            let m = if big { m * 0.5 } else { m };
            (m - 1.0, ((bits >> 23) & 0xff) as i32 - 127 + big as i32)
        };
        let check = |bits: u32| {
            let u = f32::from_bits(bits);
            let ((f, e), (g, d)) = (split_exponent(u), by_select(u));
            assert!(f.to_bits() == g.to_bits() && e == d, "{u:e}: ({f}, {e}) against ({g}, {d})");
        };
        let threshold = std::f32::consts::SQRT_2.to_bits() & 0x007f_ffff;
        for exponent in 1..=254u32 {
            // every significand around the threshold, and both ends, at every exponent
            for mant in (threshold - 64..=threshold + 64).chain([0, 1, 0x007f_fffe, 0x007f_ffff]) {
                check(exponent << 23 | mant);
            }
        }
        // and a sweep of all normal positive floats
        for bits in (0x0080_0000..0x7f80_0000u32).step_by(997) {
            check(bits);
        }
    }

    /// Distance in ulps between two values of either dtype (0 for equal values, both NaN, or
    /// equal infinities), through `key`, their bit patterns mapped to a monotone integer line.
    fn ulp_distance<T: crate::float::Float>(a: T, b: T, key: impl Fn(T) -> i128) -> u64 {
        if a.is_nan() && b.is_nan() || a == b {
            return 0;
        }
        if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
            return u64::MAX;
        }
        (key(a) - key(b)).unsigned_abs() as u64
    }

    /// A float's bit pattern (`width` bits, the sign on top) as a point on a line that is
    /// monotone in the value: positives as they are, negatives mirrored below zero.
    fn monotone_key(bits: u64, width: u32) -> i128 {
        let (b, sign) = (bits as i128, 1i128 << (width - 1));
        if b < sign {
            b
        } else {
            sign - b
        }
    }

    /// [`ulp_distance`] of two `f32`s.
    fn ulps(a: f32, b: f32) -> u64 {
        ulp_distance(a, b, |x| monotone_key(x.to_bits().into(), 32))
    }

    /// The worst ulp error of `f` against `reference` (an `f64` function rounded to `f32`) over
    /// every `stride`-th `f32` bit pattern in `lo..=hi` (both finite, same sign as the range).
    fn worst(f: impl Fn(f32) -> f32, reference: impl Fn(f64) -> f64, lo: f32, hi: f32, stride: usize) -> (u64, f32) {
        let mut w = (0u64, 0.0f32);
        let mut check = |x: f32| {
            let e = ulps(f(x), reference(x as f64) as f32);
            if e > w.0 {
                w = (e, x);
            }
        };
        let (a, b) = (lo.to_bits(), hi.to_bits());
        // walk both signs' bit patterns in increasing magnitude
        let (start, end) = if a <= b { (a, b) } else { (b, a) };
        for bits in (start..=end).step_by(stride) {
            check(f32::from_bits(bits));
        }
        check(lo);
        check(hi);
        w
    }

    #[test]
    fn exp_is_within_one_ulp_over_the_range() {
        // positive and negative halves of [-104, 89]; stride 97 visits ~20 million patterns
        let pos = worst(f32::vexp, f64::exp, 0.0, 89.0, 97);
        let neg = worst(f32::vexp, f64::exp, -0.0, -104.0, 97);
        assert!(pos.0 <= 1 && neg.0 <= 1, "exp: {} ulp at {:e}, {} ulp at {:e}", pos.0, pos.1, neg.0, neg.1);
    }

    #[test]
    fn ln_is_within_one_ulp_over_the_range() {
        // every positive f32 from the smallest subnormal to the largest finite value
        let w = worst(f32::vln, f64::ln, f32::from_bits(1), f32::MAX, 61);
        assert!(w.0 <= 1, "ln: {} ulp at {:e}", w.0, w.1);
    }

    #[test]
    fn ln_normal_is_ln_on_normal_arguments() {
        // every positive normal f32 (a stride through the bits), and f64s across the range
        for bits in (f32::MIN_POSITIVE.to_bits()..=f32::MAX.to_bits()).step_by(61) {
            let x = f32::from_bits(bits);
            assert_eq!(x.vln_normal().to_bits(), x.vln().to_bits(), "{x:e}");
        }
        let mut x = f64::MIN_POSITIVE;
        while x < f64::MAX / 1.37 {
            for y in [x, x * 1.000_000_1, x * 1.41] {
                assert_eq!(y.vln_normal().to_bits(), y.vln().to_bits(), "{y:e}");
            }
            x *= 1.37;
        }
    }

    #[test]
    fn ln_1p_is_within_two_ulp_over_the_range() {
        let pos = worst(f32::vln_1p, f64::ln_1p, 0.0, f32::MAX, 61);
        let neg = worst(f32::vln_1p, f64::ln_1p, -0.0, -1.0, 23);
        assert!(pos.0 <= 2 && neg.0 <= 2, "ln_1p: {} ulp at {:e}, {} ulp at {:e}", pos.0, pos.1, neg.0, neg.1);
    }

    #[test]
    fn ln_1p_unit_is_within_two_ulp_on_its_domain() {
        // every 61st f32 in [0, 1] (about 17 million values), both branches
        let w = worst(f32::vln_1p_unit, f64::ln_1p, 0.0, 1.0, 61);
        assert!(w.0 <= 2, "ln_1p_unit: {} ulp at {:e}", w.0, w.1);
        assert_eq!(0.0f32.vln_1p_unit(), 0.0);
        assert_eq!(1e-30f32.vln_1p_unit(), 1e-30);
        assert_eq!(f32::from_bits(1).vln_1p_unit(), f32::from_bits(1));
        assert!(f32::NAN.vln_1p_unit().is_nan());
        assert_eq!(1.0f64.vln_1p_unit(), std::f64::consts::LN_2);
    }

    #[test]
    fn ln_unit_has_the_bits_of_ln_on_its_domain() {
        // every 61st f32 in [0, 1] (about 17 million values, subnormals included), the ends
        let mut bits = 0u32;
        while bits <= 1.0f32.to_bits() {
            let x = f32::from_bits(bits);
            assert_eq!(x.vln_unit().to_bits(), x.vln().to_bits(), "{x:e}");
            bits += 61;
        }
        for x in [0.0f32, -0.0, f32::from_bits(1), f32::MIN_POSITIVE, 0.5, 1.0f32.next_down(), 1.0] {
            assert_eq!(x.vln_unit().to_bits(), x.vln().to_bits(), "{x:e}");
        }
        assert_eq!(0.0f32.vln_unit(), f32::NEG_INFINITY);
        assert!(f32::NAN.vln_unit().is_nan());
        assert_eq!(0.25f64.vln_unit(), 0.25f64.ln());
    }

    #[test]
    fn ln_both_unit_has_the_bits_of_ln_unit_and_ln_1m_unit() {
        // every 61st f32 in [0, 1] (subnormals included), the reductions' edges and the ends;
        // f64 at steps of 2^-20 and near the same edges
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan();
        let check32 = |x: f32| {
            let (l, l1m) = x.vln_both_unit();
            assert!(same(l, x.vln_unit()) && same(l1m, x.vln_1m_unit()), "{x:e}: {l:e} {l1m:e}");
        };
        let mut bits = 0u32;
        while bits <= 1.0f32.to_bits() {
            check32(f32::from_bits(bits));
            bits += 61;
        }
        let edges32 = [1.0 - std::f32::consts::FRAC_1_SQRT_2, 0.5, std::f32::consts::FRAC_1_SQRT_2, 1.0];
        for e in edges32 {
            for x in [e.next_down().next_down(), e.next_down(), e, e.next_up(), e.next_up().next_up()] {
                if (0.0..=1.0).contains(&x) {
                    check32(x);
                }
            }
        }
        for x in [0.0f32, -0.0, f32::from_bits(1), f32::MIN_POSITIVE, f32::NAN] {
            check32(x);
        }
        let check64 = |x: f64| {
            let (l, l1m) = x.vln_both_unit();
            let ok = |a: f64, b: f64| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan();
            assert!(ok(l, x.vln_unit()) && ok(l1m, x.vln_1m_unit()), "{x:e}: {l:e} {l1m:e}");
        };
        for i in 0..=(1 << 20) {
            check64(i as f64 / (1u64 << 20) as f64);
        }
        for e in [1.0 - std::f64::consts::FRAC_1_SQRT_2, 0.5, std::f64::consts::FRAC_1_SQRT_2, 1.0] {
            for x in [e.next_down().next_down(), e.next_down(), e, e.next_up(), e.next_up().next_up()] {
                if (0.0..=1.0).contains(&x) {
                    check64(x);
                }
            }
        }
        for x in [0.0f64, f64::from_bits(1), f64::MIN_POSITIVE, 1e-300, f64::NAN] {
            check64(x);
        }
        assert_eq!(0.25f32.vln_both_unit(), (0.25f32.vln(), 0.75f32.vln()));
    }

    #[test]
    fn ln_1p_small_has_the_bits_of_ln_1p_unit_on_its_domain() {
        // every 61st f32 in [0, sqrt(2) - 1] (about 17 million values), and the end point
        let end = std::f32::consts::SQRT_2 - 1.0;
        let mut bits = 0u32;
        while bits <= end.to_bits() {
            let x = f32::from_bits(bits);
            assert_eq!(x.vln_1p_small().to_bits(), x.vln_1p_unit().to_bits(), "{x:e}");
            bits += 61;
        }
        assert_eq!(end.vln_1p_small(), end.vln_1p_unit());
        assert!(f32::NAN.vln_1p_small().is_nan());
        assert_eq!(0.25f64.vln_1p_small(), 0.25f64.ln_1p());
    }

    #[test]
    fn ln_1m_unit_is_within_one_ulp_on_its_domain() {
        // every 61st f32 in [0, 1], all three reductions (the reference: 1 - x is exact in f64)
        let w = worst(f32::vln_1m_unit, |x| (-x).ln_1p(), 0.0, 1.0, 61);
        assert!(w.0 <= 1, "ln_1m_unit: {} ulp at {:e}", w.0, w.1);
        // at the case boundaries and the ends
        let edges = [1.0 - std::f32::consts::FRAC_1_SQRT_2, 0.5, 1.0 - f32::EPSILON / 2.0, 0.25];
        for x in
            edges.into_iter().flat_map(|e| [-1i32, 0, 1].map(|d| f32::from_bits(e.to_bits().wrapping_add_signed(d))))
        {
            let want = (-(x as f64)).ln_1p() as f32;
            assert!(ulps(x.vln_1m_unit(), want) <= 1, "ln_1m_unit({x:e})");
        }
        assert_eq!(0.0f32.vln_1m_unit(), 0.0);
        assert_eq!(1e-30f32.vln_1m_unit(), -1e-30);
        assert_eq!(f32::from_bits(1).vln_1m_unit(), -f32::from_bits(1));
        assert_eq!(1.0f32.vln_1m_unit(), f32::NEG_INFINITY);
        assert!(f32::NAN.vln_1m_unit().is_nan());
        assert_eq!(0.5f64.vln_1m_unit(), -std::f64::consts::LN_2);
    }

    #[test]
    fn exp_in_place_has_the_bits_of_exp() {
        // every 211th f32 of both signs up to 128 in magnitude (beyond both clamps), every f32
        // within 4096 ulps of the ends of exp's range, and the specials; slices of odd lengths,
        // so that the masked tail of the AVX-512 path runs too (on a CPU that has it)
        let mut xs: Vec<f32> =
            (0..=128f32.to_bits()).step_by(211).flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)]).collect();
        for edge in [EXP_MIN, EXP_MAX, -87.336_55, -103.278_9] {
            xs.extend((-4096i32..=4096).map(|d| f32::from_bits(edge.to_bits().wrapping_add_signed(d))));
        }
        xs.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MAX,
            f32::MIN,
            0.0,
            -0.0,
            200.0,
            -200.0,
        ]);
        for len in [1usize, 15, 16, 17, 1000, 4099] {
            // all the values in slices of 1000, the first 100000 in the other lengths
            let xs = if len == 1000 { &xs[..] } else { &xs[..100_000] };
            for chunk in xs.chunks(len) {
                let mut v = chunk.to_vec();
                f32::vexp_in_place(&mut v);
                for (&x, &e) in chunk.iter().zip(&v) {
                    let want = x.vexp();
                    assert!(
                        e.to_bits() == want.to_bits() || e.is_nan() && want.is_nan(),
                        "exp({x:e}): {e:e} vs {want:e}"
                    );
                }
            }
        }
    }

    #[test]
    fn exp_of_normal_results_has_the_bits_of_exp() {
        // every 211th f32 in [EXP_NORMAL_MIN, 0] (subnormal arguments among them), every f32
        // within 4096 ulps of the lower end, and the ends: the cheaper exponential, its AVX2
        // form and the slice function's fast path have exp_f32's bits, all normal
        let lo = EXP_NORMAL_MIN.to_bits();
        let mut xs: Vec<f32> = ((-0.0f32).to_bits()..=lo).step_by(211).map(f32::from_bits).collect();
        xs.extend((lo - 4096..=lo).map(f32::from_bits));
        xs.extend([0.0, -0.0, EXP_NORMAL_MIN, -f32::from_bits(1), -f32::MIN_POSITIVE]);
        assert!(all_exp_normal(&xs));
        for &x in &xs {
            let (got, want) = (exp_f32_normal(x), exp_f32(x));
            assert_eq!(got.to_bits(), want.to_bits(), "exp({x:e}): {got:e} vs {want:e}");
            assert!((f32::MIN_POSITIVE..=1.0).contains(&got), "exp({x:e}) = {got:e}");
        }
        for chunk in xs.chunks(1000) {
            let mut v = chunk.to_vec();
            f32::vexp_in_place(&mut v);
            for (&x, &e) in chunk.iter().zip(&v) {
                assert_eq!(e.to_bits(), exp_f32(x).to_bits(), "exp({x:e})");
            }
        }
        // one argument outside (or NaN) sends the whole slice to the general form
        for outside in [f32::NAN, 1e-45, -86.000_01, f32::NEG_INFINITY, 3.0] {
            // in the lanes of whole groups and in the remainder
            for at in 0..21 {
                let mut v = vec![-1.0f32; 21];
                v[at] = outside;
                assert!(!all_exp_normal(&v), "{outside:e} at {at}");
            }
        }
        assert!(all_exp_normal(&[-1.0f32; 21]) && all_exp_normal(&[]));
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            use core::arch::x86_64::*;
            for chunk in xs.chunks_exact(8) {
                let (mut e, mut lanes) = ([0.0f32; 8], [0.0f32; 8]);
                // SAFETY: the CPU has AVX2 and FMA (checked above); `chunk`, `e` and `lanes`
                // hold eight `f32`s.
                unsafe {
                    let x = _mm256_loadu_ps(chunk.as_ptr());
                    _mm256_storeu_ps(e.as_mut_ptr(), avx2::exp8_normal(x));
                    _mm256_storeu_ps(lanes.as_mut_ptr(), avx2::exp_normal_lanes(x));
                }
                for ((&x, &e), &lane) in chunk.iter().zip(&e).zip(&lanes) {
                    assert_eq!(e.to_bits(), exp_f32(x).to_bits(), "exp8_normal({x:e})");
                    assert_eq!(lane.to_bits(), u32::MAX, "{x:e} is in range");
                }
            }
            let odd = [f32::NAN, 1e-45, -86.000_01, f32::NEG_INFINITY, 3.0, -1.0, -0.0, 0.0];
            let mut lanes = [0.0f32; 8];
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), avx2::exp_normal_lanes(_mm256_loadu_ps(odd.as_ptr()))) };
            let set: Vec<bool> = lanes.iter().map(|l| l.to_bits() == u32::MAX).collect();
            assert_eq!(set, [false, false, false, false, false, true, true, true]);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_exp_has_the_bits_of_exp() {
        use core::arch::x86_64::*;
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        // every 97th f32 of both signs (the whole range, both clamps and the specials among
        // them), eight at a time
        let mut xs: Vec<f32> = (0..=f32::INFINITY.to_bits() + 1)
            .step_by(97)
            .flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)])
            .collect();
        xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.0, -0.0, EXP_MIN, EXP_MAX, -87.336_55]);
        for chunk in xs.chunks_exact(8) {
            let mut e = [0.0f32; 8];
            // SAFETY: the CPU has AVX2 and FMA (checked above); `chunk` and `e` hold eight `f32`s.
            unsafe { _mm256_storeu_ps(e.as_mut_ptr(), avx2::exp8(_mm256_loadu_ps(chunk.as_ptr()))) };
            for (&x, &e) in chunk.iter().zip(&e) {
                let want = x.vexp();
                assert!(e.to_bits() == want.to_bits() || e.is_nan() && want.is_nan(), "exp({x:e}): {e:e} vs {want:e}");
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_ln_sum_has_the_bits_of_ln_sum() {
        use crate::kernels::rows::ln_sum;
        use core::arch::x86_64::*;
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        // sums of exponentials from 1 up (each side of every power of two and of sqrt(2) times
        // one, sums that round to an f32 up or down), then infinity and NaN
        let mut sums: Vec<f64> = (0..40_000).map(|i| 1.0 + i as f64 * 1.37e-3 + (i % 7) as f64 * 1e-10).collect();
        for k in 0..40 {
            let p = 2f64.powi(k);
            sums.extend([
                p,
                p * (1.0 + 1e-12),
                p * (1.0 - 1e-12),
                p * std::f64::consts::SQRT_2,
                p * f64::from(std::f32::consts::SQRT_2),
            ]);
        }
        sums.retain(|&s| s >= 1.0);
        sums.extend([f64::INFINITY, f64::NAN, 1e300, 1.0 + 3e-9]);
        while !sums.len().is_multiple_of(8) {
            sums.push(1.0);
        }
        for chunk in sums.chunks_exact(8) {
            let mut got = [0.0f32; 8];
            // SAFETY: the CPU has AVX2 and FMA (checked above); `chunk` holds eight `f64`s and
            // `got` eight `f32`s.
            unsafe {
                let (lo, hi) = (_mm256_loadu_pd(chunk.as_ptr()), _mm256_loadu_pd(chunk[4..].as_ptr()));
                _mm256_storeu_ps(got.as_mut_ptr(), avx2::ln_sum8(lo, hi));
            }
            for (&s, &got) in chunk.iter().zip(&got) {
                let want: f32 = ln_sum(s);
                assert!(
                    got.to_bits() == want.to_bits() || got.is_nan() && want.is_nan(),
                    "ln_sum({s:e}): {got:e} vs {want:e}"
                );
            }
        }
    }

    /// [`ulp_distance`] of two `f64`s.
    fn ulps64(a: f64, b: f64) -> u64 {
        ulp_distance(a, b, |x| monotone_key(x.to_bits(), 64))
    }

    /// The worst ulp error of `f` against the standard library's `reference` (correctly rounded
    /// in nearly every case) over `n` values spread evenly over `lo..=hi`, and over every
    /// `f64` bit pattern in steps of `2^40` between the two (both signs' magnitudes alike).
    fn worst64(f: impl Fn(f64) -> f64, reference: impl Fn(f64) -> f64, lo: f64, hi: f64, n: usize) -> (u64, f64) {
        let mut w = (0u64, 0.0f64);
        let mut check = |x: f64| {
            if (lo..=hi).contains(&x) {
                let e = ulps64(f(x), reference(x));
                if e > w.0 {
                    w = (e, x);
                }
            }
        };
        for i in 0..=n {
            check(lo + (hi - lo) * (i as f64 / n as f64));
        }
        for bits in (0..=f64::MAX.to_bits()).step_by(1 << 40) {
            check(f64::from_bits(bits));
            check(-f64::from_bits(bits));
        }
        w
    }

    #[test]
    fn f64_functions_are_within_one_ulp() {
        // name, the function, the standard library's, the range
        type Case = (&'static str, fn(f64) -> f64, fn(f64) -> f64, f64, f64);
        let cases: [Case; 7] = [
            ("exp", f64::vexp, f64::exp, -746.0, 710.0),
            ("exp near 0", f64::vexp, f64::exp, -1.0, 1.0),
            ("ln", f64::vln, f64::ln, 0.0, f64::MAX),
            ("ln near 1", f64::vln, f64::ln, 0.5, 2.0),
            ("ln_1p", f64::vln_1p, f64::ln_1p, -1.0, 1e6),
            ("ln_1p_unit", f64::vln_1p_unit, f64::ln_1p, 0.0, 1.0),
            ("ln_1m_unit", f64::vln_1m_unit, |x| (-x).ln_1p(), 0.0, 1.0),
        ];
        for (name, f, reference, lo, hi) in cases {
            let (e, x) = worst64(f, reference, lo, hi, 2_000_000);
            assert!(e <= 1, "{name}: {e} ulp at {x:e}");
        }
        assert_eq!(f64::vln_unit(0.25).to_bits(), 0.25f64.vln().to_bits());
    }

    #[test]
    fn special_values() {
        let (inf, nan) = (f32::INFINITY, f32::NAN);
        assert_eq!(inf.vexp(), inf);
        assert_eq!((-inf).vexp(), 0.0);
        assert_eq!(100.0f32.vexp(), inf);
        assert_eq!((-200.0f32).vexp(), 0.0);
        // the clamp's bounds and beyond, and the last values before the bounds of the range
        for x in [EXP_CLAMP_HI, f32::MAX, EXP_MAX.next_up(), 89.0] {
            assert_eq!(x.vexp(), inf, "exp({x:e})");
        }
        for x in [EXP_CLAMP_LO, -f32::MAX, EXP_MIN.next_down(), -104.0] {
            assert_eq!(x.vexp().to_bits(), 0, "exp({x:e})");
        }
        assert!(EXP_MAX.vexp().is_infinite() && EXP_MAX.next_down().vexp().is_finite());
        assert_eq!(EXP_MIN.vexp(), f32::from_bits(1));
        assert!(nan.vexp().is_nan());
        assert_eq!(0.0f32.vexp(), 1.0);
        // the smallest subnormal: e^-103.2789 = 1.4e-45
        assert_eq!((-103.2789f32).vexp(), f32::from_bits(1));
        assert_eq!(0.0f32.vln(), -inf);
        assert_eq!((-0.0f32).vln(), -inf);
        assert!((-1.0f32).vln().is_nan());
        assert!(nan.vln().is_nan());
        assert_eq!(inf.vln(), inf);
        assert_eq!(1.0f32.vln(), 0.0);
        assert_eq!((-1.0f32).vln_1p(), -inf);
        assert!((-2.0f32).vln_1p().is_nan());
        assert!(nan.vln_1p().is_nan());
        assert_eq!(inf.vln_1p(), inf);
        assert_eq!(1e-30f32.vln_1p(), 1e-30);
        assert_eq!((-0.0f32).vln_1p().to_bits(), (-0.0f32).to_bits());
        // f64: the same conventions
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        assert!(ulps64(1.0f64.vexp(), std::f64::consts::E) <= 1);
        assert_eq!(2.0f64.vln(), std::f64::consts::LN_2);
        assert_eq!((inf.vexp(), (-inf).vexp(), 0.0f64.vexp()), (inf, 0.0, 1.0));
        assert_eq!((709.79f64.vexp(), f64::MAX.vexp(), f64_impl::EXP_CLAMP_HI.vexp()), (inf, inf, inf));
        assert_eq!(((-745.2f64).vexp(), (-f64::MAX).vexp(), f64_impl::EXP_CLAMP_LO.vexp()), (0.0, 0.0, 0.0));
        assert_eq!((-745.0f64).vexp(), f64::from_bits(1));
        assert!(709.78f64.vexp().is_finite() && nan.vexp().is_nan());
        assert_eq!((0.0f64.vln(), (-0.0f64).vln(), inf.vln(), 1.0f64.vln()), (-inf, -inf, inf, 0.0));
        assert!((-1.0f64).vln().is_nan() && nan.vln().is_nan() && (-inf).vln().is_nan());
        // the smallest subnormal goes through the scaling by 2^52
        assert!(ulps64(f64::from_bits(1).vln(), f64::from_bits(1).ln()) <= 1);
        assert_eq!(((-1.0f64).vln_1p(), inf.vln_1p(), 1e-300f64.vln_1p()), (-inf, inf, 1e-300));
        assert!((-2.0f64).vln_1p().is_nan() && nan.vln_1p().is_nan());
        assert_eq!((-0.0f64).vln_1p().to_bits(), (-0.0f64).to_bits());
        assert_eq!((0.0f64.vln_unit(), 1.0f64.vln_unit()), (-inf, 0.0));
        assert!(nan.vln_unit().is_nan() && nan.vln_1p_unit().is_nan() && nan.vln_1m_unit().is_nan());
        assert_eq!((0.0f64.vln_1p_unit(), 1.0f64.vln_1p_unit()), (0.0, std::f64::consts::LN_2));
        assert_eq!((1.0f64.vln_1m_unit(), 0.0f64.vln_1m_unit(), 1e-300f64.vln_1m_unit()), (-inf, 0.0, -1e-300));
    }
}
