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

/// Whether this CPU's hardware prefetchers keep up with a gather of one element per row over
/// contiguous rows of at most a few cache lines (nll's class gather), so that a software
/// [`prefetch`] per row only adds instructions. Decided by the vendor, from measurements of
/// nll on 65536x32 `f32` logits: on AMD Zen 4 they do (prefetching each row cost 1.3x the
/// time), on an Intel Xeon (Emerald Rapids) they do not (prefetching took 0.78-0.87x the time,
/// one thread). Other CPUs are treated as Intel's.
pub fn follows_short_row_gathers() -> bool {
    static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AMD.get_or_init(|| vendor() == *b"AuthenticAMD")
}

/// The CPU's vendor string (zeros where there is no `cpuid`).
fn vendor() -> [u8; 12] {
    let mut v = [0u8; 12];
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `cpuid` exists on every x86-64 CPU and only reads identification registers
        // (an `unsafe fn` before Rust 1.90, safe since)
        #[allow(unused_unsafe)]
        let id = unsafe { core::arch::x86_64::__cpuid(0) };
        for (k, r) in [id.ebx, id.edx, id.ecx].into_iter().enumerate() {
            v[4 * k..4 * k + 4].copy_from_slice(&r.to_le_bytes());
        }
    }
    v
}

/// Outputs at least this large (bytes) are zeroed around the caches ([`zero`]): half the
/// last-level cache of the machines this library is measured on. A larger buffer does not stay
/// in the cache until it is read anyway.
pub const STREAM_MIN_BYTES: usize = 16 << 20;

/// True when a buffer of `len` elements of `T` is large enough for [`zero`] to stream.
#[inline]
pub fn streams<T>(len: usize) -> bool {
    len.saturating_mul(std::mem::size_of::<T>()) >= STREAM_MIN_BYTES
}

/// Sets every element of `b` to zero; with `stream`, by non-temporal stores.
///
/// A plain store to a line that is not in the cache first reads the line from memory (to own
/// it), so zeroing a large buffer moves it twice; a non-temporal store writes whole lines
/// without reading them (nll's 128 MB gradient: about 2.5x faster on one thread). The lines
/// then are not in the cache: only for buffers too large to stay there ([`streams`]).
/// Zero is all-zero bits in `f32` and `f64`, so the body is written as 16-byte integer
/// vectors whatever `T` is.
#[inline]
pub fn zero<T: Copy + Default>(b: &mut [T], stream: bool) {
    #[cfg(target_arch = "x86_64")]
    if stream {
        use core::arch::x86_64::{__m128i, _mm_setzero_si128, _mm_sfence, _mm_stream_si128};
        const VECTOR: usize = 16;
        let size = std::mem::size_of::<T>();
        // the elements before the first 16-byte boundary, the whole vectors, the rest
        let head = b.as_ptr().align_offset(VECTOR).min(b.len());
        let (first, rest) = b.split_at_mut(head);
        first.fill(T::default());
        let per = if size > 0 && VECTOR.is_multiple_of(size) { VECTOR / size } else { 0 };
        let vectors = rest.len().checked_div(per).unwrap_or(0);
        let (body, last) = rest.split_at_mut(vectors * per);
        last.fill(T::default());
        let p = body.as_mut_ptr().cast::<__m128i>();
        for i in 0..vectors {
            // SAFETY: `body` starts at a 16-byte boundary (`align_offset`, and an empty head
            // only when the slice starts there) and holds `vectors * 16` bytes, so vector `i`
            // lies inside it, aligned as `movntdq` requires. `T` is plain data (`f32`, `f64`):
            // all-zero bytes are its zero (the callers' `Float` types; `Default` gives the same
            // bits). SSE2 is part of the x86-64 baseline.
            unsafe { _mm_stream_si128(p.add(i), _mm_setzero_si128()) };
        }
        // the streamed stores are weakly ordered: fence them before anything else may read
        // the buffer (another thread after the join, or this one)
        // SAFETY: `sfence` only orders stores; SSE is part of the x86-64 baseline.
        unsafe { _mm_sfence() };
        return;
    }
    let _ = stream;
    b.fill(T::default());
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_streams_every_element_whatever_the_alignment() {
        // every start offset and length around the 16-byte vectors, f32 and f64, both ways
        let mut v32 = vec![1.5f32; 200];
        let mut v64 = vec![-2.5f64; 200];
        for start in 0..6 {
            for len in [0usize, 1, 3, 4, 5, 8, 17, 100, 150] {
                for stream in [false, true] {
                    v32.fill(1.5);
                    super::zero(&mut v32[start..start + len], stream);
                    assert!(v32[start..start + len].iter().all(|&x| x.to_bits() == 0));
                    assert!(v32[..start].iter().chain(&v32[start + len..]).all(|&x| x == 1.5));
                    v64.fill(-2.5);
                    super::zero(&mut v64[start..start + len], stream);
                    assert!(v64[start..start + len].iter().all(|&x| x.to_bits() == 0));
                    assert!(v64[..start].iter().chain(&v64[start + len..]).all(|&x| x == -2.5));
                }
            }
        }
        assert!(super::streams::<f32>(4 << 20) && !super::streams::<f32>((4 << 20) - 1));
        assert!(super::streams::<f64>(2 << 20) && super::streams::<f64>(usize::MAX));
    }

    #[test]
    fn the_vendor_is_a_known_string() {
        // cpuid leaf 0 names the maker in twelve ASCII bytes (a hypervisor passes the real
        // CPU's through); the gather policy follows it
        let v = super::vendor();
        #[cfg(target_arch = "x86_64")]
        {
            // the registers in the order ebx, edx, ecx (another order spells none of these)
            let known: [&[u8; 12]; 6] =
                [b"GenuineIntel", b"AuthenticAMD", b"HygonGenuine", b"CentaurHauls", b"  Shanghai  ", b"VIA VIA VIA "];
            assert!(known.contains(&&v), "{:?}", String::from_utf8_lossy(&v));
        }
        assert_eq!(super::follows_short_row_gathers(), v == *b"AuthenticAMD");
    }

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
