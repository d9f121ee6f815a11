//! Run-time SIMD dispatch.
//!
//! Kernels are written as plain loops over slices, with `#[inline(always)]` helpers and
//! branch-free element formulas ([`vmath`](super::vmath) for exp and log), and run through
//! [`dispatch`]: it compiles the loop once per instruction set (AVX-512, AVX2+FMA, and the
//! portable baseline, via [`pulp`]) and picks the best one the CPU has at run time, so one
//! binary vectorises on every x86-64 machine without `-C target-cpu`.

/// Runs `f` compiled for the best instruction set this CPU supports.
///
/// `f` and whatever it inlines (mark kernel helpers `#[inline(always)]`) are compiled with
/// that instruction set enabled; calls it does not inline run at the baseline.
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// The instruction set [`dispatch`] uses on this CPU (for reports).
pub fn instruction_set() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if pulp::x86::V4::try_new().is_some() {
            return "avx512";
        }
        if pulp::x86::V3::try_new().is_some() {
            return "avx2+fma";
        }
    }
    "portable"
}

#[cfg(test)]
mod tests {
    #[test]
    fn dispatch_runs_the_closure_once() {
        let mut calls = 0;
        let v = super::dispatch(|| {
            calls += 1;
            (0..100).map(|i| i as f64).sum::<f64>()
        });
        assert_eq!((v, calls), (4950.0, 1));
        assert!(["avx512", "avx2+fma", "portable"].contains(&super::instruction_set()));
    }
}
