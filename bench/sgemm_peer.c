/*
 * sgemm_peer.c - the machine's practical f32 ceiling for bench/peers.py:
 * OpenBLAS SGEMM C = A B on square n x n matrices, timed over repeats after
 * a warm-up. Prints one JSON object: {"n":..,"ms_median":..,"gflops":..}.
 *
 *   cc -O2 bench/sgemm_peer.c $(pkg-config --cflags --libs openblas) -o sgemm-peer
 *   ./sgemm-peer N [REPEAT]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const long n = argc > 1 ? atol(argv[1]) : 1024;
    const int repeat = argc > 2 ? atoi(argv[2]) : 5;
    if (n < 1 || n > 65536 || repeat < 1 || repeat > 1000) {
        fprintf(stderr, "usage: sgemm-peer N [REPEAT] (1 <= N <= 65536, 1 <= REPEAT <= 1000)\n");
        return 2;
    }
    float *a = malloc(sizeof(float) * (size_t)(n * n)), *b = malloc(sizeof(float) * (size_t)(n * n));
    float *c = malloc(sizeof(float) * (size_t)(n * n));
    double *ms = malloc(sizeof(double) * (size_t)repeat);
    if (!a || !b || !c || !ms) {
        fprintf(stderr, "sgemm-peer: out of memory for N = %ld\n", n);
        return 1;
    }
    unsigned s = 12345u;
    for (long i = 0; i < n * n; i++) {
        s = s * 1664525u + 1013904223u;
        a[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
        s = s * 1664525u + 1013904223u;
        b[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a, (int)n, b, (int)n, 0.0f,
                c, (int)n); /* warm-up: threads started, pages touched */
    for (int r = 0; r < repeat; r++) {
        const double t0 = now_ms();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a, (int)n, b, (int)n,
                    0.0f, c, (int)n);
        ms[r] = now_ms() - t0;
    }
    qsort(ms, (size_t)repeat, sizeof *ms, cmp_double);
    const double med = ms[repeat / 2];
    printf("{\"n\":%ld,\"ms_median\":%.4f,\"gflops\":%.3f,\"check\":%.6g}\n", n, med,
           2.0 * (double)n * (double)n * (double)n / (med * 1e6), (double)c[n * n / 2]);
    free(a);
    free(b);
    free(c);
    free(ms);
    return 0;
}
