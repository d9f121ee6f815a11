/*
 * The floor of cross_entropy's fused softmax pass on this CPU: the operations of
 * `kernels::exp_sums` (f32, AVX-512) on one row that stays in the first-level cache, timed
 * alone and in combination. Not part of the build or of CI; a measurement for the README.
 *
 *   cc -O2 -mavx512f -mavx512dq -o /tmp/exp_sum_floor bench/micro/exp_sum_floor.c
 *   for mode in 0 1 2 3; do /tmp/exp_sum_floor 4096 $mode; done
 *
 * mode 0: the exponential (exp16's operations) and its store
 * mode 1: x - m, the exponential, its store, and the widened f64 lane sums (the fused pass)
 * mode 2: the widened f64 lane sums alone (vcvtps2pd twice and two adds per 16 elements)
 * mode 3: mode 1 without the store (the forward pass without a gradient)
 * Cycles assume 3.4 GHz (Zen 4 here, measured with a chain of dependent adds).
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define C(x) _mm512_set1_ps(x)

/* the clamp, reduction, degree-7 polynomial and vscalefps of vmath::avx512::exp16 */
static inline __m512 exp16(__m512 x) {
    __m512 xc = _mm512_min_ps(C(100.f), _mm512_max_ps(C(-110.f), x));
    __m512 sh = _mm512_fmadd_ps(xc, C(1.44269504f), C(12582912.f));
    __m512 kf = _mm512_sub_ps(sh, C(12582912.f));
    __m512 r = _mm512_fmadd_ps(kf, C(2.1219444e-4f), _mm512_fmadd_ps(kf, C(-0.6933594f), xc));
    __m512 r2 = _mm512_mul_ps(r, r);
    __m512 q01 = _mm512_fmadd_ps(C(1.6666665e-1f), r, C(0.5f));
    __m512 q23 = _mm512_fmadd_ps(C(8.333452e-3f), r, C(4.1665796e-2f));
    __m512 q45 = _mm512_fmadd_ps(C(1.9875691e-4f), r, C(1.3981999e-3f));
    __m512 q = _mm512_fmadd_ps(_mm512_fmadd_ps(q45, r2, q23), r2, q01);
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(q, r2, r), C(1.f));
    return _mm512_scalef_ps(y, kf);
}

static inline void add_widened(__m512d *lo, __m512d *hi, __m512 e) {
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ELEMENTS MODE\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]) / 16 * 16, mode = atoi(argv[2]);
    float *a = aligned_alloc(64, n * 4), *b = aligned_alloc(64, n * 4);
    for (int i = 0; i < n; i++) a[i] = -(i % 97) * 0.3f, b[i] = 0.0f;
    double best = 1e9, sink = 0;
    for (int rep = 0; rep < 200; rep++) {
        double t0 = now();
        __m512d lo = _mm512_setzero_pd(), hi = lo;
        __m512 m = C(0.5f);
        for (int i = 0; i < n; i += 16) {
            __m512 x = _mm512_load_ps(a + i);
            if (mode == 0) {
                _mm512_store_ps(b + i, exp16(x));
            } else if (mode == 1) {
                __m512 e = exp16(_mm512_sub_ps(x, m));
                _mm512_store_ps(b + i, e);
                add_widened(&lo, &hi, e);
            } else if (mode == 2) {
                add_widened(&lo, &hi, x);
            } else {
                add_widened(&lo, &hi, exp16(_mm512_sub_ps(x, m)));
            }
        }
        double t = now() - t0;
        if (t < best) best = t;
        sink += _mm512_reduce_add_pd(_mm512_add_pd(lo, hi)) + b[rep % n];
    }
    printf("mode %d, %d elements: %.3f ns per element, %.1f cycles per 16 (%g)\n", mode, n, best / n * 1e9,
           best / n * 1e9 * 16 * 3.4, sink != 0 ? 1.0 : 0.0);
    return 0;
}
