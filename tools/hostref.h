/*
 * hostref.h - host-side pieces the clattn tool and the test harness share:
 * elements of f32/f16/bf16 host arrays, and the plain f32 implementation
 * that is the yardstick of the "at most 3x a plain f32 implementation"
 * rule for inputs so large that f32 rounding of the scores alone exceeds
 * the fixed tolerances (FlashAttention's rule). Defined in tools/hostref.c.
 */
#ifndef CLATTN_TOOL_HOSTREF_H
#define CLATTN_TOOL_HOSTREF_H

#include <stddef.h>
#include <stdint.h>

#include "clattn.h"

/* Element i of a host array of dtype dt as float, and back (stores round to nearest even). */
float elem_get(const void *p, clattn_dtype dt, size_t i);
void elem_put(void *p, clattn_dtype dt, size_t i, float x);

/* One attention problem on contiguous [B, H, N, D] host arrays, with the
 * exact reference result the plain implementations are measured against. */
typedef struct plain_problem {
    clattn_dtype dtype; /* storage of q, k and v */
    int64_t B, Hq, Hkv, Nq, Nk, D, Dv;
    const void *q, *k, *v;
    float scale;           /* the effective logit scale */
    int causal;            /* keep key j of row i when j <= i + diag_off */
    int64_t diag_off;      /* 0 top-left, Nk - Nq bottom-right */
    int window;            /* keep i + diag_off - wl <= j <= i + diag_off + wr (-1: unbounded) */
    int64_t wl, wr;
    float softcap;         /* 0 = off */
    const float *alibi;    /* [Hq] slopes, or NULL */
    const float *bias;     /* compact array broadcast over size-1 dims of bshape, or NULL */
    int64_t bshape[4];
    const int32_t *key_lengths; /* [B] (keys j >= len masked), or NULL */
    const float *ref_o;    /* [B, Hq, Nq, Dv] */
    const float *ref_lse;  /* [B, Hq, Nq], or NULL */
} plain_problem;

/*
 * The largest max error against ref_o, and against the finite entries of
 * ref_lse (0 without it), of four plain f32 implementations: float scores
 * summing D forwards, backwards, in 8 lanes (as SIMD code and GEMM tiles
 * do) and in 4 lanes of fused multiply-adds, then a float softmax. One
 * summation order alone is a single sample of f32 rounding noise; a device
 * with another order can exceed 3x it by chance. Returns 0, or -1 when out
 * of host memory (errors INFINITY then).
 */
int plain_f32_error(const plain_problem *p, double *o_err, double *lse_err);

#endif
