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

/// Asks the CPU to bring the cache line that holds `p` towards the first-level cache, without
/// waiting for it: a kernel that computes on one piece of a stream names the piece it reads
/// next, so that the memory's latency overlaps the computing instead of following it.
///
/// Any address is allowed, also one past the end of its allocation (the next group of rows
/// after the last is no group): a prefetch neither faults nor reads anything the program sees.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it never faults, whatever the address (mapped or not,
    // inside an allocation or not), and changes no memory or register the program observes;
    // the pointer is not dereferenced. SSE (which has it) is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_of_any_address_is_harmless() {
        // inside, at the end of and far past an allocation, and null: no fault, no change
        let v = vec![1.5f32; 100];
        for p in [v.as_ptr(), v.as_ptr().wrapping_add(100), v.as_ptr().wrapping_add(1 << 40), std::ptr::null()] {
            super::prefetch(p);
        }
        assert!(v.iter().all(|&x| x == 1.5));
    }

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
