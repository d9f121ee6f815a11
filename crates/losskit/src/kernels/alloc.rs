//! Fresh output buffers, and the cache that lets a dropped result's memory serve the next one.
//!
//! A gradient returned by the allocating API is new memory, and the first write to each page
//! of it costs a page fault (about 1.7 µs per 4 KiB page here: some 35 ms for 80 MB, more than
//! the loss itself). Two things keep that cost off the hot path:
//!
//! - **The buffer cache.** A large result ([`Tensor`](crate::Tensor)) that came from here
//!   gives its memory back to a small per-dtype cache when it is dropped, and the next large
//!   allocation of a similar size takes it from there: in a training loop, which computes the
//!   same loss on the same shapes every step, the gradient of step `k + 1` reuses the pages of
//!   step `k`, already mapped. This is what PyTorch's caching allocator does for GPU memory;
//!   glibc does not do it for large blocks (it returns them to the OS with `munmap` or a heap
//!   trim, and maps fresh zero pages for the next one). Only buffers of at least
//!   [`CACHE_MIN_BYTES`] are cached, and the cache holds at most [`cache_limit`] bytes (256 MiB
//!   by default; the environment variable `LOSSKIT_BUFFER_CACHE_MIB` or [`set_cache_limit`]
//!   change it, and `0` turns the cache off). [`clear_cache`] frees what it holds.
//! - **Huge pages.** [`zeroed`] and [`for_overwrite`] ask Linux to back large fresh buffers
//!   with 2 MiB pages (`madvise(MADV_HUGEPAGE)`), which takes 512 times fewer faults.
//!
//! A buffer that a kernel writes in full comes from [`for_overwrite`]: no zero fill. A
//! zero-filled buffer ([`zeroed`]) is a fresh zeroed allocation (zero pages that cost nothing
//! until written) or, from the cache, one parallel fill.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::float::Float;

/// Buffers at least this large (bytes) are advised to use huge pages.
const HUGE_MIN_BYTES: usize = 4 << 20;
/// The huge page size on x86-64 and aarch64 Linux.
const HUGE_PAGE: usize = 2 << 20;

/// A zero-filled vector of `n` elements; large ones backed by huge pages where the OS allows.
pub fn zeroed<T: Float>(n: usize) -> Vec<T> {
    if let Some(mut v) = take_cached::<T>(n) {
        crate::kernels::sum::par_zero(&mut v);
        return v;
    }
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
        if let Some(mut v) = take_cached::<T>(n) {
            v.fill(T::nan());
            return v;
        }
        let v = vec![T::nan(); n];
        advise_huge_pages(&v);
        return v;
    }
    if let Some(v) = take_cached::<T>(n) {
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

/// Buffers smaller than this (bytes) are not cached: the allocator serves them from memory it
/// keeps anyway, and their page faults are few.
pub const CACHE_MIN_BYTES: usize = 1 << 20;
/// The default bound on the bytes the cache holds.
const DEFAULT_CACHE_MIB: usize = 256;
/// At most this many buffers per dtype are kept (a lookup scans them).
const CACHE_MAX_BUFFERS: usize = 16;

/// The cache's bound in bytes; `usize::MAX` until first read from the environment.
static CACHE_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Bytes held by the caches of both dtypes.
static CACHED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The freed buffers of one dtype, kept for reuse (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct BufferCache<T> {
    /// Oldest first.
    buffers: Mutex<Vec<Vec<T>>>,
}

impl<T> BufferCache<T> {
    /// An empty cache (for the per-dtype statics).
    pub const fn new() -> Self {
        BufferCache { buffers: Mutex::new(Vec::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<T>>> {
        // a panic while holding the lock cannot leave the list inconsistent (every change is
        // one push or remove), so a poisoned lock is used as it is
        self.buffers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The most bytes the cache of freed result buffers holds (both dtypes together).
pub fn cache_limit() -> usize {
    let limit = CACHE_LIMIT.load(Ordering::Relaxed);
    if limit != usize::MAX {
        return limit;
    }
    static FROM_ENV: OnceLock<usize> = OnceLock::new();
    let from_env = *FROM_ENV.get_or_init(|| {
        std::env::var("LOSSKIT_BUFFER_CACHE_MIB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_CACHE_MIB)
            .saturating_mul(1 << 20)
            .min(usize::MAX - 1)
    });
    // a concurrent `set_cache_limit` wins over the environment
    let _ = CACHE_LIMIT.compare_exchange(usize::MAX, from_env, Ordering::Relaxed, Ordering::Relaxed);
    CACHE_LIMIT.load(Ordering::Relaxed)
}

/// Sets the most bytes the cache of freed result buffers holds (`0` turns it off), and frees
/// cached buffers beyond the new bound.
pub fn set_cache_limit(bytes: usize) {
    CACHE_LIMIT.store(bytes.min(usize::MAX - 1), Ordering::Relaxed);
    trim::<f32>(bytes);
    trim::<f64>(bytes);
}

/// Bytes the cache holds now.
pub fn cached_bytes() -> usize {
    CACHED_BYTES.load(Ordering::Relaxed)
}

/// Frees every cached buffer.
pub fn clear_cache() {
    trim::<f32>(0);
    trim::<f64>(0);
}

/// Frees this dtype's oldest buffers until the cache holds at most `bound` bytes (or this
/// dtype has none left).
fn trim<T: Float>(bound: usize) {
    let evicted = evict_oldest(&mut T::buffer_cache().lock(), bound, usize::MAX);
    // freed outside the lock: returning large blocks to the OS is a system call
    drop(evicted);
}

/// Removes `buffers`' oldest entries while the cache holds more than `bound` bytes or the list
/// more than `max_len` buffers, and returns them (for the caller to free after unlocking).
fn evict_oldest<T>(buffers: &mut Vec<Vec<T>>, bound: usize, max_len: usize) -> Vec<Vec<T>> {
    let mut evicted = Vec::new();
    while (CACHED_BYTES.load(Ordering::Relaxed) > bound || buffers.len() > max_len) && !buffers.is_empty() {
        let old = buffers.remove(0);
        CACHED_BYTES.fetch_sub(bytes_of(&old), Ordering::Relaxed);
        evicted.push(old);
    }
    evicted
}

fn bytes_of<T>(v: &Vec<T>) -> usize {
    v.capacity() * std::mem::size_of::<T>()
}

/// A cached buffer of length `n` (contents unspecified) when one fits: the smallest whose
/// capacity is at least `n` and at most `2n`, so that a small request does not pin a large
/// buffer.
fn take_cached<T: Float>(n: usize) -> Option<Vec<T>> {
    if n.saturating_mul(std::mem::size_of::<T>()) < CACHE_MIN_BYTES || cached_bytes() == 0 {
        return None;
    }
    let mut v = {
        let mut buffers = T::buffer_cache().lock();
        let best = buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= n && b.capacity() / 2 <= n)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)?;
        let v = buffers.remove(best);
        CACHED_BYTES.fetch_sub(bytes_of(&v), Ordering::Relaxed);
        v
    };
    // SAFETY: the capacity is at least `n` (checked above), so `set_len(n)` stays inside the
    // allocation; `T` is `f32` or `f64`, plain data valid for every bit pattern and without a
    // destructor, and the elements were initialised by their previous owner. The callers
    // (`zeroed`, `for_overwrite`) fill or hand out the buffer under their own contracts.
    unsafe { v.set_len(n) };
    Some(v)
}

/// Gives a result's buffer back: kept in the cache when it is large and fits under the bound
/// (the oldest buffers make room), freed otherwise. [`Tensor`](crate::Tensor)s that came from
/// the crate's kernels call this when dropped.
pub(crate) fn recycle<T: Float>(v: Vec<T>) {
    let bytes = bytes_of(&v);
    if bytes < CACHE_MIN_BYTES {
        return;
    }
    let limit = cache_limit();
    if bytes > limit {
        return;
    }
    let evicted = {
        let mut buffers = T::buffer_cache().lock();
        buffers.push(v);
        CACHED_BYTES.fetch_add(bytes, Ordering::Relaxed);
        // the buffer just pushed is the newest, so it goes last (only when the other dtype's
        // buffers alone fill the bound)
        evict_oldest(&mut buffers, limit, CACHE_MAX_BUFFERS)
    };
    drop(evicted);
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
