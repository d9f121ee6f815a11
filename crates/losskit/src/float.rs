//! The one float trait every loss is generic over: `f32` and `f64`.

use std::fmt::{Debug, Display, LowerExp};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use crate::kernels::alloc::BufferCache;

/// The two computation dtypes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary64.
    F64,
}

impl DType {
    /// NumPy's name of the dtype (`"float32"`, `"float64"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }
}

/// A floating-point scalar losskit computes in: implemented for `f32` and `f64`.
///
/// Reductions accumulate in `f64` for both, so that an `f32` mean is as close to the exact
/// mean as its final rounding allows.
pub trait Float:
    num_traits::Float
    + num_traits::FloatConst
    + Default
    + Debug
    + Display
    + LowerExp
    + Send
    + Sync
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + crate::kernels::vmath::VMath
    + 'static
{
    /// The dtype tag.
    const DTYPE: DType;
    /// Converts from `f64` (rounding to nearest for `f32`).
    fn of(v: f64) -> Self;
    /// Converts to `f64` (exact).
    fn f64(self) -> f64;
    /// Converts a count.
    fn of_usize(n: usize) -> Self {
        Self::of(n as f64)
    }
    /// Widens to the `f64` accumulator.
    #[inline(always)]
    fn acc(self) -> f64 {
        self.f64()
    }
    /// Narrows from the `f64` accumulator (rounding to nearest).
    #[inline(always)]
    fn from_acc(a: f64) -> Self {
        Self::of(a)
    }
    /// This dtype's cache of freed result buffers ([`crate::kernels::alloc`]).
    #[doc(hidden)]
    fn buffer_cache() -> &'static BufferCache<Self>;
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;
    fn buffer_cache() -> &'static BufferCache<Self> {
        static CACHE: BufferCache<f32> = BufferCache::new();
        &CACHE
    }
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const DTYPE: DType = DType::F64;
    fn buffer_cache() -> &'static BufferCache<Self> {
        static CACHE: BufferCache<f64> = BufferCache::new();
        &CACHE
    }
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
}
