//! Fresh output buffers.
//!
//! A gradient returned by the allocating API is new memory, and the first write to each page
//! of it costs a page fault (about 1.7 µs per 4 KiB page here: some 35 ms for 80 MB, more than
//! the loss itself). [`zeroed`] asks Linux to back large buffers with 2 MiB pages
//! (`madvise(MADV_HUGEPAGE)`), which takes 512 times fewer faults. The buffer comes from a
//! zeroed allocation, which for large sizes is fresh zero pages that cost nothing until written.
//!
//! A buffer that a kernel writes in full comes from [`for_overwrite`] instead: no zero fill.
//! With a warm allocator (freed memory reused, as with glibc's `mmap_threshold` raised) a
//! zeroed allocation is a `memset` of the whole buffer, one extra write pass; fresh pages are
//! zeroed by the kernel either way.

use crate::float::Float;

/// Buffers at least this large (bytes) are advised to use huge pages.
const HUGE_MIN_BYTES: usize = 4 << 20;
/// The huge page size on x86-64 and aarch64 Linux.
const HUGE_PAGE: usize = 2 << 20;

/// A zero-filled vector of `n` elements; large ones backed by huge pages where the OS allows.
pub fn zeroed<T: Float>(n: usize) -> Vec<T> {
    let v = vec![T::zero(); n];
    advise_huge_pages(&v);
    v
}

/// A vector of `n` elements whose contents are unspecified, for a kernel that writes every
/// element before reading any (a gradient slot handed out by `slots_overwritten`); large ones
/// backed by huge pages where the OS allows.
///
/// In debug builds every element starts as NaN, so an element that a kernel forgot to write
/// shows up as NaN in the tests instead of as a stale value.
// `uninit_vec`: the contents are deliberately unspecified until the kernel writes them (see
// the SAFETY comment); this is the one place the crate does it.
#[allow(clippy::uninit_vec)]
pub fn for_overwrite<T: Float>(n: usize) -> Vec<T> {
    if cfg!(debug_assertions) {
        let v = vec![T::nan(); n];
        advise_huge_pages(&v);
        return v;
    }
    let mut v: Vec<T> = Vec::with_capacity(n);
    // SAFETY: the capacity is at least `n`, so `set_len(n)` stays inside the allocation. `T`
    // is `f32` or `f64` (the `Float` bound), plain data for which every bit pattern is a
    // valid value, with no destructor. The contract of this function is that the caller writes
    // every element before reading it (debug builds poison the buffer with NaN so a missed
    // element fails the tests); the allocator's previous contents are never observed.
    unsafe { v.set_len(n) };
    advise_huge_pages(&v);
    v
}

/// Advises huge pages for the 2 MiB-aligned part of `v`'s memory when it is large. Returns
/// whether advice was given (the kernel may still use small pages).
fn advise_huge_pages<T>(v: &[T]) -> bool {
    let bytes = std::mem::size_of_val(v);
    if bytes < HUGE_MIN_BYTES {
        return false;
    }
    let start = v.as_ptr() as usize;
    let first = start.next_multiple_of(HUGE_PAGE);
    let end = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
    if end <= first {
        return false;
    }
    madvise_huge(first, end - first)
}

#[cfg(target_os = "linux")]
fn madvise_huge(addr: usize, len: usize) -> bool {
    // SAFETY: `addr..addr + len` lies inside one live allocation of the caller (a `Vec` it
    // borrows), page-aligned (2 MiB-aligned); MADV_HUGEPAGE only changes how the kernel backs
    // the range with physical pages, never its contents or validity, so no Rust reference is
    // affected. A failure (e.g. THP disabled) is reported and ignored.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn madvise_huge(_addr: usize, _len: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_advised_and_stay_zero_and_writable() {
        let n = 3 * (HUGE_MIN_BYTES / 4) + 123;
        let mut v: Vec<f32> = zeroed(n);
        assert_eq!(v.len(), n);
        assert!(v.iter().all(|&x| x == 0.0));
        // the advice itself (on Linux it succeeds unless THP is compiled out; either way the
        // buffer is ordinary memory)
        let advised = advise_huge_pages(&v);
        if cfg!(target_os = "linux") && std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            assert!(advised);
        }
        for (i, x) in v.iter_mut().enumerate() {
            *x = i as f32;
        }
        assert_eq!(v[n - 1], (n - 1) as f32);
        // a buffer for overwriting has the length asked for and is ordinary writable memory
        let mut w: Vec<f64> = for_overwrite(n);
        assert_eq!(w.len(), n);
        if cfg!(debug_assertions) {
            assert!(w.iter().all(|x| x.is_nan()));
        }
        w.iter_mut().enumerate().for_each(|(i, x)| *x = i as f64);
        assert!(w.iter().enumerate().all(|(i, &x)| x == i as f64));
        assert!(for_overwrite::<f32>(0).is_empty());
        // small buffers are left alone
        let small: Vec<f64> = zeroed(100);
        assert!(!advise_huge_pages(&small) && small.iter().all(|&x| x == 0.0));
    }
}
