/*
 * test_badinput.c - bad input through the API, table-driven (suite "badinput").
 *
 * Each case is a mutation of a valid problem (dense: B 2, Hq 4, Hkv 2, Nq 5,
 * Nk 7, D 8, Dv 6 with LSE, a [B,1,Nq,Nk] bias, ALiBi and key lengths; or a
 * packed variable-length batch), the status it must return and a word the
 * context's last-error text must contain (the argument's name). A case runs
 * through every entry point it applies to: plan_create with real device
 * buffers, plan_create with metadata only, plan_run of a plan made from the
 * valid problem, clattn_attention_host and clattn_reference. After each call
 * every device buffer (inputs, outputs, their poisoned prefixes and 64-element
 * canaries) and every host array is compared byte for byte with its state
 * before. Further categories: the small API around problems (contexts, device
 * specs, enum helpers, wait lists), tuning files, and problems larger than the
 * device. Valid controls run first, so a case fails because of its mutation.
 * Each category prints how many cases and calls it made.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tests.h"

enum { B = 2, HQ = 4, HKV = 2, NQ = 5, NK = 7, D = 8, DV = 6 };
/* Elements before each view in its buffer, and canary elements after outputs. */
enum { OFF_Q = 3, OFF_V = 5, OFF_O = 16, OFF_L = 16, OFF_BIAS = 2, CANARY = 64 };
#define NQE (B * HQ * NQ * D)
#define NKE (B * HKV * NK * D)
#define NVE (B * HKV * NK * DV)
#define NOE (B * HQ * NQ * DV)
#define NLE (B * HQ * NQ)
#define NBE (B * NQ * NK) /* bias [B, 1, Nq, Nk] */
/* variable-length batch: two sequences packed, lengths (3, 5) and (7, 4) */
enum { TQ = 8, TK = 11 };
static const int32_t cu_q0[B + 1] = {0, 3, 8}, cu_k0[B + 1] = {0, 7, 11};
#define HOSTCAP 16384 /* floats per host array: room for any accidental write */

/* ------------------------------------------------------------------ the case table */

enum tgt { T_Q, T_K, T_V, T_O, T_LSE, T_BIAS, T_ALIBI, T_KL, T_CUQ, T_CUK, T_COUNT };

enum kind {
    E_END = 0,
    E_SHAPE,   /* tensor t: shape[i] = v */
    E_STRIDE,  /* tensor t: strides[i] = v */
    E_OFFSET,  /* t: byte offset = v (tensors, alibi, key lengths, cu_seqlens) */
    E_DTYPE,   /* tensor t: dtype = v */
    E_BUF,     /* t: buffer = pool buffer v at byte offset i (BF_NONE: NULL; host: data NULL) */
    E_DROP,    /* optional t absent */
    E_SCALE, E_SOFTCAP, E_ALIGN, E_VARIANT,
    E_WINDOW,  /* use_window = 1, left = i, right = v */
    E_TOTAL,   /* total_q (t = T_Q) or total_k (t = T_K) = v */
    E_HVAL,    /* host only: element i of alibi/key_lengths/cu_seqlens t = v (f for alibi) */
    E_HALIAS,  /* host only: output t's data = array of tensor i, at element v */
};

typedef struct edit {
    enum kind k;
    int t, i;
    int64_t v;
    double f;
} edit;

/* entry points */
enum { W_CREATE = 1, W_META = 2, W_RUN = 4, W_HOST = 8, W_REF = 16 };
#define M_DEV (W_CREATE | W_META | W_RUN)
#define M_HOST (W_HOST | W_REF)
#define M_ALL (M_DEV | M_HOST)
#define M_DESC (W_CREATE | W_META | M_HOST) /* a plan keeps its desc: nothing to mutate in run */
#define M_BUF (W_CREATE | W_RUN)

typedef struct bad_case {
    const char *name;
    unsigned where;
    int varlen;
    clattn_status want; /* CLATTN_SUCCESS: a valid control (plan_create only) */
    const char *needle;
    edit e[6];
} bad_case;

#define SHAPE(t, i, v) {E_SHAPE, t, i, v, 0}
#define STRIDE(t, i, v) {E_STRIDE, t, i, v, 0}
#define OFFSET(t, v) {E_OFFSET, t, 0, v, 0}
#define DTYPE(t, v) {E_DTYPE, t, 0, v, 0}
#define BUF(t, b, off) {E_BUF, t, off, b, 0}
#define DROP(t) {E_DROP, t, 0, 0, 0}
#define SCALE(x) {E_SCALE, 0, 0, 0, x}
#define SOFTCAP(x) {E_SOFTCAP, 0, 0, 0, x}
#define ALIGN(v) {E_ALIGN, 0, 0, v, 0}
#define VARIANT(v) {E_VARIANT, 0, 0, v, 0}
#define WINDOW(l, r) {E_WINDOW, 0, l, r, 0}
#define TOTAL(t, v) {E_TOTAL, t, 0, v, 0}
#define HVAL(t, i, v) {E_HVAL, t, i, v, 0}
#define HVALF(t, i, x) {E_HVAL, t, i, 0, x}
#define HALIAS(t, into, at) {E_HALIAS, t, into, at, 0}
#define ST(x) CLATTN_ERROR_##x

/* Device buffers of the pool. */
enum buf_id {
    BF_NONE = 0, BF_Q, BF_K, BF_V, BF_O, BF_L, BF_BIAS, BF_ALIBI, BF_KL,
    BF_VQ, BF_VK, BF_VV, BF_VO, BF_VL, BF_CUQ, BF_CUK,
    BF_SMALL, BF_BIG, BF_F16, /* plain buffers (snapshotted) up to here */
    BF_SUB_Q,   /* sub-buffer: all of BF_Q */
    BF_SUB_BIG, /* sub-buffer of BF_BIG from its first aligned origin */
    BF_COUNT
};
#define BF_PLAIN (BF_F16 + 1)
/* Regions of BF_BIG (elements) used by the aliasing cases. */
enum { BIG_Q = 0, BIG_K = 1024, BIG_V = 2048, BIG_BIAS = 3072, BIG_O = 4096, BIG_L = 5120, BIG_ALIBI = 6144,
       BIG_KL = 6200, BIG_ELEMS = 16384 };

#define X4(i) (int64_t)(i) * 4 /* elements to bytes */

static const bad_case desc_cases[] = {
    {"align -1", M_DESC, 0, ST(INVALID_ENUM), "desc.align", {ALIGN(-1)}},
    {"align COUNT", M_DESC, 0, ST(INVALID_ENUM), "desc.align", {ALIGN(CLATTN_ALIGN_COUNT_)}},
    {"align 1000", M_DESC, 0, ST(INVALID_ENUM), "desc.align", {ALIGN(1000)}},
    {"align INT_MIN", M_DESC, 0, ST(INVALID_ENUM), "desc.align", {ALIGN(INT_MIN)}},
    {"variant -1", M_DESC, 0, ST(INVALID_ENUM), "desc.variant", {VARIANT(-1)}},
    {"variant COUNT", M_DESC, 0, ST(INVALID_ENUM), "desc.variant", {VARIANT(CLATTN_VARIANT_COUNT_)}},
    {"variant 99", M_DESC, 0, ST(INVALID_ENUM), "desc.variant", {VARIANT(99)}},
    {"variant INT_MAX", M_DESC, 0, ST(INVALID_ENUM), "desc.variant", {VARIANT(INT_MAX)}},
    {"scale NaN", M_DESC, 0, ST(INVALID_SCALE), "desc.scale", {SCALE(NAN)}},
    {"scale -NaN", M_DESC, 0, ST(INVALID_SCALE), "desc.scale", {SCALE(-NAN)}},
    {"scale +Inf", M_DESC, 0, ST(INVALID_SCALE), "desc.scale", {SCALE(INFINITY)}},
    {"scale -Inf", M_DESC, 0, ST(INVALID_SCALE), "desc.scale", {SCALE(-INFINITY)}},
    {"softcap NaN", M_DESC, 0, ST(INVALID_SOFTCAP), "desc.softcap", {SOFTCAP(NAN)}},
    {"softcap +Inf", M_DESC, 0, ST(INVALID_SOFTCAP), "desc.softcap", {SOFTCAP(INFINITY)}},
    {"softcap -Inf", M_DESC, 0, ST(INVALID_SOFTCAP), "desc.softcap", {SOFTCAP(-INFINITY)}},
    {"softcap -1", M_DESC, 0, ST(INVALID_SOFTCAP), "desc.softcap", {SOFTCAP(-1.0)}},
    {"softcap -FLT_TRUE_MIN", M_DESC, 0, ST(INVALID_SOFTCAP), "desc.softcap", {SOFTCAP(-FLT_TRUE_MIN)}},
    {"softcap -FLT_MAX", M_DESC, 0, ST(INVALID_SOFTCAP), "desc.softcap", {SOFTCAP(-FLT_MAX)}},
    {"window (-2, 0)", M_DESC, 0, ST(INVALID_WINDOW), "desc.window", {WINDOW(-2, 0)}},
    {"window (0, -2)", M_DESC, 0, ST(INVALID_WINDOW), "desc.window", {WINDOW(0, -2)}},
    {"window (-2, -2)", M_DESC, 0, ST(INVALID_WINDOW), "desc.window", {WINDOW(-2, -2)}},
    {"window (INT32_MIN, 3)", M_DESC, 0, ST(INVALID_WINDOW), "desc.window", {WINDOW(INT32_MIN, 3)}},
    {"window (3, INT32_MIN)", M_DESC, 0, ST(INVALID_WINDOW), "desc.window", {WINDOW(3, INT32_MIN)}},
    {"window (-100, -1)", M_DESC, 0, ST(INVALID_WINDOW), "desc.window", {WINDOW(-100, -1)}},
    {"varlen: window (-3, 0)", M_DESC, 1, ST(INVALID_WINDOW), "desc.window", {WINDOW(-3, 0)}},
    {"varlen: scale NaN", M_DESC, 1, ST(INVALID_SCALE), "desc.scale", {SCALE(NAN)}},
};

static const bad_case view_cases[] = {
    /* unknown dtypes */
    {"q dtype -1", M_ALL, 0, ST(INVALID_DTYPE), "q: unknown dtype", {DTYPE(T_Q, -1)}},
    {"q dtype 3", M_ALL, 0, ST(INVALID_DTYPE), "q: unknown dtype", {DTYPE(T_Q, 3)}},
    {"k dtype 1000", M_ALL, 0, ST(INVALID_DTYPE), "k: unknown dtype", {DTYPE(T_K, 1000)}},
    {"v dtype -7", M_ALL, 0, ST(INVALID_DTYPE), "v: unknown dtype", {DTYPE(T_V, -7)}},
    {"o dtype 3", M_ALL, 0, ST(INVALID_DTYPE), "o: unknown dtype", {DTYPE(T_O, 3)}},
    {"o dtype INT_MIN", M_ALL, 0, ST(INVALID_DTYPE), "o: unknown dtype", {DTYPE(T_O, INT_MIN)}},
    {"lse dtype 9", M_ALL, 0, ST(INVALID_DTYPE), "lse: unknown dtype", {DTYPE(T_LSE, 9)}},
    {"bias dtype 3", M_ALL, 0, ST(INVALID_DTYPE), "bias: unknown dtype", {DTYPE(T_BIAS, 3)}},
    /* zero and negative dimensions */
    {"q B 0", M_ALL, 0, ST(INVALID_SHAPE), "q: shape[0]", {SHAPE(T_Q, 0, 0)}},
    {"q Hq 0", M_ALL, 0, ST(INVALID_SHAPE), "q: shape[1]", {SHAPE(T_Q, 1, 0)}},
    {"q Nq 0", M_ALL, 0, ST(INVALID_SHAPE), "q: shape[2]", {SHAPE(T_Q, 2, 0)}},
    {"q D 0", M_ALL, 0, ST(INVALID_SHAPE), "q: shape[3]", {SHAPE(T_Q, 3, 0)}},
    {"k B 0", M_ALL, 0, ST(INVALID_SHAPE), "k: shape[0]", {SHAPE(T_K, 0, 0)}},
    {"k Hkv 0", M_ALL, 0, ST(INVALID_SHAPE), "k: shape[1]", {SHAPE(T_K, 1, 0)}},
    {"k Nk 0", M_ALL, 0, ST(INVALID_SHAPE), "k: shape[2]", {SHAPE(T_K, 2, 0)}},
    {"k D 0", M_ALL, 0, ST(INVALID_SHAPE), "k: shape[3]", {SHAPE(T_K, 3, 0)}},
    {"v B 0", M_ALL, 0, ST(INVALID_SHAPE), "v: shape[0]", {SHAPE(T_V, 0, 0)}},
    {"v Hkv 0", M_ALL, 0, ST(INVALID_SHAPE), "v: shape[1]", {SHAPE(T_V, 1, 0)}},
    {"v Nk 0", M_ALL, 0, ST(INVALID_SHAPE), "v: shape[2]", {SHAPE(T_V, 2, 0)}},
    {"v Dv 0", M_ALL, 0, ST(INVALID_SHAPE), "v: shape[3]", {SHAPE(T_V, 3, 0)}},
    {"o B 0", M_ALL, 0, ST(INVALID_SHAPE), "o: shape[0]", {SHAPE(T_O, 0, 0)}},
    {"o Hq 0", M_ALL, 0, ST(INVALID_SHAPE), "o: shape[1]", {SHAPE(T_O, 1, 0)}},
    {"o Nq 0", M_ALL, 0, ST(INVALID_SHAPE), "o: shape[2]", {SHAPE(T_O, 2, 0)}},
    {"o Dv 0", M_ALL, 0, ST(INVALID_SHAPE), "o: shape[3]", {SHAPE(T_O, 3, 0)}},
    {"q B -1", M_ALL, 0, ST(INVALID_SHAPE), "q: shape[0]", {SHAPE(T_Q, 0, -1)}},
    {"q Hq -4", M_ALL, 0, ST(INVALID_SHAPE), "q: shape[1]", {SHAPE(T_Q, 1, -4)}},
    {"q Nq -5", M_ALL, 0, ST(INVALID_SHAPE), "q: shape[2]", {SHAPE(T_Q, 2, -5)}},
    {"q D INT64_MIN", M_ALL, 0, ST(INVALID_SHAPE), "q: shape[3]", {SHAPE(T_Q, 3, INT64_MIN)}},
    {"k B -2", M_ALL, 0, ST(INVALID_SHAPE), "k: shape[0]", {SHAPE(T_K, 0, -2)}},
    {"k Hkv -1", M_ALL, 0, ST(INVALID_SHAPE), "k: shape[1]", {SHAPE(T_K, 1, -1)}},
    {"k Nk INT64_MIN", M_ALL, 0, ST(INVALID_SHAPE), "k: shape[2]", {SHAPE(T_K, 2, INT64_MIN)}},
    {"k D -8", M_ALL, 0, ST(INVALID_SHAPE), "k: shape[3]", {SHAPE(T_K, 3, -8)}},
    {"v B -1", M_ALL, 0, ST(INVALID_SHAPE), "v: shape[0]", {SHAPE(T_V, 0, -1)}},
    {"v Hkv -2", M_ALL, 0, ST(INVALID_SHAPE), "v: shape[1]", {SHAPE(T_V, 1, -2)}},
    {"v Nk -7", M_ALL, 0, ST(INVALID_SHAPE), "v: shape[2]", {SHAPE(T_V, 2, -7)}},
    {"v Dv -1", M_ALL, 0, ST(INVALID_SHAPE), "v: shape[3]", {SHAPE(T_V, 3, -1)}},
    {"o B -1", M_ALL, 0, ST(INVALID_SHAPE), "o: shape[0]", {SHAPE(T_O, 0, -1)}},
    {"o Hq INT64_MIN", M_ALL, 0, ST(INVALID_SHAPE), "o: shape[1]", {SHAPE(T_O, 1, INT64_MIN)}},
    {"o Nq -1", M_ALL, 0, ST(INVALID_SHAPE), "o: shape[2]", {SHAPE(T_O, 2, -1)}},
    {"o Dv -6", M_ALL, 0, ST(INVALID_SHAPE), "o: shape[3]", {SHAPE(T_O, 3, -6)}},
    {"lse B 0", M_ALL, 0, ST(INVALID_SHAPE), "lse: shape[0]", {SHAPE(T_LSE, 0, 0)}},
    {"lse Hq -1", M_ALL, 0, ST(INVALID_SHAPE), "lse: shape[1]", {SHAPE(T_LSE, 1, -1)}},
    {"lse Nq 0", M_ALL, 0, ST(INVALID_SHAPE), "lse: shape[2]", {SHAPE(T_LSE, 2, 0)}},
    {"lse shape[3] 2", M_ALL, 0, ST(INVALID_SHAPE), "lse: a [B, H, N] view", {SHAPE(T_LSE, 3, 2)}},
    {"lse shape[3] -1", M_ALL, 0, ST(INVALID_SHAPE), "lse: a [B, H, N] view", {SHAPE(T_LSE, 3, -1)}},
    {"bias B 0", M_ALL, 0, ST(INVALID_SHAPE), "bias: shape[0]", {SHAPE(T_BIAS, 0, 0)}},
    {"bias H -1", M_ALL, 0, ST(INVALID_SHAPE), "bias: shape[1]", {SHAPE(T_BIAS, 1, -1)}},
    {"bias Nq 0", M_ALL, 0, ST(INVALID_SHAPE), "bias: shape[2]", {SHAPE(T_BIAS, 2, 0)}},
    {"bias Nk -7", M_ALL, 0, ST(INVALID_SHAPE), "bias: shape[3]", {SHAPE(T_BIAS, 3, -7)}},
    /* dims beyond int32 and int/size_t overflow of B*H*N*D*elem */
    {"q Nq 2^31", M_ALL, 0, ST(SIZE_OVERFLOW), "q: shape[2]", {SHAPE(T_Q, 2, (int64_t)1 << 31)}},
    {"k B INT64_MAX", M_ALL, 0, ST(SIZE_OVERFLOW), "k: shape[0]", {SHAPE(T_K, 0, INT64_MAX)}},
    {"v Dv 2^40", M_ALL, 0, ST(SIZE_OVERFLOW), "v: shape[3]", {SHAPE(T_V, 3, (int64_t)1 << 40)}},
    {"o Hq 2^32", M_ALL, 0, ST(SIZE_OVERFLOW), "o: shape[1]", {SHAPE(T_O, 1, (int64_t)1 << 32)}},
    {"lse Nq 2^31", M_ALL, 0, ST(SIZE_OVERFLOW), "lse: shape[2]", {SHAPE(T_LSE, 2, (int64_t)1 << 31)}},
    {"bias Nk 2^33", M_ALL, 0, ST(SIZE_OVERFLOW), "bias: shape[3]", {SHAPE(T_BIAS, 3, (int64_t)1 << 33)}},
    {"q count 2^124 (all dims 2^31-1)", M_HOST, 0, ST(SIZE_OVERFLOW), "q: element count",
     {SHAPE(T_Q, 0, INT32_MAX), SHAPE(T_Q, 1, INT32_MAX), SHAPE(T_Q, 2, INT32_MAX), SHAPE(T_Q, 3, INT32_MAX)}},
    {"k count 2^93", M_HOST, 0, ST(SIZE_OVERFLOW), "k: element count",
     {SHAPE(T_K, 0, INT32_MAX), SHAPE(T_K, 1, INT32_MAX), SHAPE(T_K, 2, INT32_MAX)}},
    {"o count 2^65", M_HOST, 0, ST(SIZE_OVERFLOW), "o: element count",
     {SHAPE(T_O, 0, (int64_t)1 << 30), SHAPE(T_O, 1, (int64_t)1 << 30), SHAPE(T_O, 2, 1 << 5)}},
    {"v bytes 2^64 (count 2^62 f32)", M_HOST, 0, ST(SIZE_OVERFLOW), "v: byte size",
     {SHAPE(T_V, 0, (int64_t)1 << 28), SHAPE(T_V, 1, (int64_t)1 << 30), SHAPE(T_V, 2, 3)}},
    {"lse bytes 2^64", M_HOST, 0, ST(SIZE_OVERFLOW), "lse: byte size",
     {SHAPE(T_LSE, 0, (int64_t)1 << 30), SHAPE(T_LSE, 1, (int64_t)1 << 30)}},
    {"bias count overflows", M_HOST, 0, ST(SIZE_OVERFLOW), "bias: element count",
     {SHAPE(T_BIAS, 0, INT32_MAX), SHAPE(T_BIAS, 1, INT32_MAX), SHAPE(T_BIAS, 2, INT32_MAX)}},
    /* negative strides */
    {"q stride[0] -1", M_DEV, 0, ST(INVALID_STRIDE), "q: stride[0]", {STRIDE(T_Q, 0, -1)}},
    {"q stride[1] -8", M_DEV, 0, ST(INVALID_STRIDE), "q: stride[1]", {STRIDE(T_Q, 1, -8)}},
    {"q stride[2] INT64_MIN", M_DEV, 0, ST(INVALID_STRIDE), "q: stride[2]", {STRIDE(T_Q, 2, INT64_MIN)}},
    {"q stride[3] -1", M_DEV, 0, ST(INVALID_STRIDE), "q: stride[3]", {STRIDE(T_Q, 3, -1)}},
    {"k stride[0] -1", M_DEV, 0, ST(INVALID_STRIDE), "k: stride[0]", {STRIDE(T_K, 0, -1)}},
    {"k stride[1] -1", M_DEV, 0, ST(INVALID_STRIDE), "k: stride[1]", {STRIDE(T_K, 1, -1)}},
    {"k stride[2] -8", M_DEV, 0, ST(INVALID_STRIDE), "k: stride[2]", {STRIDE(T_K, 2, -8)}},
    {"k stride[3] -2", M_DEV, 0, ST(INVALID_STRIDE), "k: stride[3]", {STRIDE(T_K, 3, -2)}},
    {"v stride[0] -1", M_DEV, 0, ST(INVALID_STRIDE), "v: stride[0]", {STRIDE(T_V, 0, -1)}},
    {"v stride[2] -6", M_DEV, 0, ST(INVALID_STRIDE), "v: stride[2]", {STRIDE(T_V, 2, -6)}},
    {"v stride[3] -1", M_DEV, 0, ST(INVALID_STRIDE), "v: stride[3]", {STRIDE(T_V, 3, -1)}},
    {"o stride[0] -1", M_DEV, 0, ST(INVALID_STRIDE), "o: stride[0]", {STRIDE(T_O, 0, -1)}},
    {"o stride[1] -30", M_DEV, 0, ST(INVALID_STRIDE), "o: stride[1]", {STRIDE(T_O, 1, -30)}},
    {"o stride[2] -6", M_DEV, 0, ST(INVALID_STRIDE), "o: stride[2]", {STRIDE(T_O, 2, -6)}},
    {"o stride[3] INT64_MIN", M_DEV, 0, ST(INVALID_STRIDE), "o: stride[3]", {STRIDE(T_O, 3, INT64_MIN)}},
    {"lse stride[0] -1", M_DEV, 0, ST(INVALID_STRIDE), "lse: stride[0]", {STRIDE(T_LSE, 0, -1)}},
    {"lse stride[2] -1", M_DEV, 0, ST(INVALID_STRIDE), "lse: stride[2]", {STRIDE(T_LSE, 2, -1)}},
    {"bias stride[0] -1", M_DEV, 0, ST(INVALID_STRIDE), "bias: stride[0]", {STRIDE(T_BIAS, 0, -1)}},
    {"bias stride[3] -1", M_DEV, 0, ST(INVALID_STRIDE), "bias: stride[3]", {STRIDE(T_BIAS, 3, -1)}},
    /* strides whose extent or byte size overflows */
    {"q stride[0] INT64_MAX", M_DEV, 0, ST(SIZE_OVERFLOW), "q: extent", {STRIDE(T_Q, 0, INT64_MAX)}},
    {"k stride[2] INT64_MAX/3", M_DEV, 0, ST(SIZE_OVERFLOW), "k: extent", {STRIDE(T_K, 2, INT64_MAX / 3)}},
    {"v stride[1] 2^62 (bytes 2^64)", M_DEV, 0, ST(SIZE_OVERFLOW), "v: byte size",
     {STRIDE(T_V, 1, (int64_t)1 << 62)}},
    {"o stride[0] INT64_MAX/2+2", M_DEV, 0, ST(SIZE_OVERFLOW), "o: byte size", {STRIDE(T_O, 0, INT64_MAX / 2 + 2)}},
    {"lse stride[1] 2^62", M_DEV, 0, ST(SIZE_OVERFLOW), "lse: extent", {STRIDE(T_LSE, 1, (int64_t)1 << 62)}},
    {"bias stride[2] INT64_MAX", M_DEV, 0, ST(SIZE_OVERFLOW), "bias: extent", {STRIDE(T_BIAS, 2, INT64_MAX)}},
    /* byte offsets: misaligned, or overflowing the view's byte size */
    {"q offset +1 byte", M_DEV, 0, ST(MISALIGNED), "q: byte offset", {OFFSET(T_Q, X4(OFF_Q) + 1)}},
    {"k offset 2", M_DEV, 0, ST(MISALIGNED), "k: byte offset", {OFFSET(T_K, 2)}},
    {"v offset +3", M_DEV, 0, ST(MISALIGNED), "v: byte offset", {OFFSET(T_V, X4(OFF_V) + 3)}},
    {"o offset +2", M_DEV, 0, ST(MISALIGNED), "o: byte offset", {OFFSET(T_O, X4(OFF_O) + 2)}},
    {"lse offset +1", M_DEV, 0, ST(MISALIGNED), "lse: byte offset", {OFFSET(T_LSE, X4(OFF_L) + 1)}},
    {"bias offset 6", M_DEV, 0, ST(MISALIGNED), "bias: byte offset", {OFFSET(T_BIAS, 6)}},
    {"o f16 offset 1", M_DEV, 0, ST(MISALIGNED), "o: byte offset", {DTYPE(T_O, CLATTN_F16), OFFSET(T_O, 1)}},
    {"q offset SIZE_MAX-3", M_DEV, 0, ST(SIZE_OVERFLOW), "q: byte size", {OFFSET(T_Q, (int64_t)(SIZE_MAX - 3))}},
    {"o offset SIZE_MAX-3", M_DEV, 0, ST(SIZE_OVERFLOW), "o: byte size", {OFFSET(T_O, (int64_t)(SIZE_MAX - 3))}},
    {"bias offset SIZE_MAX-7", M_DEV, 0, ST(SIZE_OVERFLOW), "bias: byte size",
     {OFFSET(T_BIAS, (int64_t)(SIZE_MAX - 7))}},
    /* output strides that make elements overlap */
    {"o D stride 0", M_DEV, 0, ST(INVALID_STRIDE), "overlap", {STRIDE(T_O, 3, 0)}},
    {"o N stride = D stride", M_DEV, 0, ST(INVALID_STRIDE), "overlap", {STRIDE(T_O, 2, 1)}},
    {"o rows 5 apart, 6 wide", M_DEV, 0, ST(INVALID_STRIDE), "overlap", {STRIDE(T_O, 2, DV - 1)}},
    {"o batch stride 0", M_DEV, 0, ST(INVALID_STRIDE), "overlap", {STRIDE(T_O, 0, 0)}},
    {"o head stride 0", M_DEV, 0, ST(INVALID_STRIDE), "overlap", {STRIDE(T_O, 1, 0)}},
    {"o heads interleaved with rows", M_DEV, 0, ST(INVALID_STRIDE), "overlap", {STRIDE(T_O, 1, DV)}},
    {"lse N stride 0", M_DEV, 0, ST(INVALID_STRIDE), "overlap", {STRIDE(T_LSE, 2, 0)}},
    {"lse head stride 1 = N stride", M_DEV, 0, ST(INVALID_STRIDE), "overlap", {STRIDE(T_LSE, 1, 1)}},
    {"lse batch stride 0", M_DEV, 0, ST(INVALID_STRIDE), "overlap", {STRIDE(T_LSE, 0, 0)}},
    /* input views may broadcast (stride 0) and outputs may be strided: valid */
    {"control: k batch stride 0", W_CREATE | W_META, 0, CLATTN_SUCCESS, NULL, {STRIDE(T_K, 0, 0)}},
    {"control: o BSHD strides", W_CREATE | W_META, 0, CLATTN_SUCCESS, NULL,
     {STRIDE(T_O, 1, DV), STRIDE(T_O, 2, HQ * DV)}},
};

static const bad_case shape_cases[] = {
    {"k f16, q f32", M_ALL, 0, ST(INVALID_DTYPE), "k, v: dtypes", {DTYPE(T_K, CLATTN_F16)}},
    {"v bf16, q f32", M_ALL, 0, ST(INVALID_DTYPE), "k, v: dtypes", {DTYPE(T_V, CLATTN_BF16)}},
    {"k, v f16, q f32", M_ALL, 0, ST(INVALID_DTYPE), "k, v: dtypes", {DTYPE(T_K, CLATTN_F16), DTYPE(T_V, CLATTN_F16)}},
    {"q bf16, k v f32", M_ALL, 0, ST(INVALID_DTYPE), "k, v: dtypes", {DTYPE(T_Q, CLATTN_BF16)}},
    {"k batch 1", M_ALL, 0, ST(INVALID_SHAPE), "batch", {SHAPE(T_K, 0, 1)}},
    {"k batch 3", M_ALL, 0, ST(INVALID_SHAPE), "batch", {SHAPE(T_K, 0, 3)}},
    {"v batch 1", M_ALL, 0, ST(INVALID_SHAPE), "batch", {SHAPE(T_V, 0, 1)}},
    {"o batch 3", M_ALL, 0, ST(INVALID_SHAPE), "batch", {SHAPE(T_O, 0, 3)}},
    {"v heads 1 vs k 2", M_ALL, 0, ST(INVALID_SHAPE), "v: 1 heads", {SHAPE(T_V, 1, 1)}},
    {"v heads 4 vs k 2", M_ALL, 0, ST(INVALID_SHAPE), "v: 4 heads", {SHAPE(T_V, 1, 4)}},
    {"v keys 6 vs k 7", M_ALL, 0, ST(INVALID_SHAPE), "v: 6 keys", {SHAPE(T_V, 2, NK - 1)}},
    {"v keys 8 vs k 7", M_ALL, 0, ST(INVALID_SHAPE), "v: 8 keys", {SHAPE(T_V, 2, NK + 1)}},
    {"k D 7 vs q 8", M_ALL, 0, ST(INVALID_SHAPE), "k: head dim", {SHAPE(T_K, 3, D - 1)}},
    {"k D 9 vs q 8", M_ALL, 0, ST(INVALID_SHAPE), "k: head dim", {SHAPE(T_K, 3, D + 1)}},
    {"o heads 2", M_ALL, 0, ST(INVALID_SHAPE), "o: shape", {SHAPE(T_O, 1, 2)}},
    {"o rows 4", M_ALL, 0, ST(INVALID_SHAPE), "o: shape", {SHAPE(T_O, 2, NQ - 1)}},
    {"o Dv 8 (= D, not Dv)", M_HOST, 0, ST(INVALID_SHAPE), "o: shape", {SHAPE(T_O, 3, D)}},
    {"o Dv 8 (= D, not Dv), strides to match", M_DEV, 0, ST(INVALID_SHAPE), "o: shape",
     {SHAPE(T_O, 3, D), STRIDE(T_O, 2, D), STRIDE(T_O, 1, NQ * D), STRIDE(T_O, 0, HQ * NQ * D)}},
    {"Hq 4, Hkv 3", M_ALL, 0, ST(HEAD_MISMATCH), "q, k: 4 query heads", {SHAPE(T_K, 1, 3), SHAPE(T_V, 1, 3)}},
    {"Hq 5, Hkv 2", M_ALL, 0, ST(HEAD_MISMATCH), "q, k: 5 query heads",
     {SHAPE(T_Q, 1, 5), SHAPE(T_O, 1, 5), SHAPE(T_LSE, 1, 5), STRIDE(T_O, 0, 5 * NQ * DV), STRIDE(T_LSE, 0, 5 * NQ)}},
    {"Hq 4, Hkv 8", M_ALL, 0, ST(HEAD_MISMATCH), "q, k: 4 query heads", {SHAPE(T_K, 1, 8), SHAPE(T_V, 1, 8)}},
    {"D 257", M_ALL, 0, ST(HEAD_DIM), "q, v: head dims (257, 6)", {SHAPE(T_Q, 3, 257), SHAPE(T_K, 3, 257)}},
    {"Dv 257", M_ALL, 0, ST(HEAD_DIM), "q, v: head dims (8, 257)",
     {SHAPE(T_V, 3, 257), SHAPE(T_O, 3, 257), STRIDE(T_O, 2, 257), STRIDE(T_O, 1, 257 * NQ),
      STRIDE(T_O, 0, 257 * NQ * HQ)}},
    {"D 4096", M_ALL, 0, ST(HEAD_DIM), "exceed 256", {SHAPE(T_Q, 3, 4096), SHAPE(T_K, 3, 4096)}},
    {"D 2^31-1", M_ALL, 0, ST(HEAD_DIM), "exceed 256",
     {SHAPE(T_Q, 3, INT32_MAX), SHAPE(T_K, 3, INT32_MAX)}},
    {"lse f16", M_ALL, 0, ST(INVALID_DTYPE), "lse: dtype must be f32", {DTYPE(T_LSE, CLATTN_F16)}},
    {"lse bf16", M_ALL, 0, ST(INVALID_DTYPE), "lse: dtype must be f32", {DTYPE(T_LSE, CLATTN_BF16)}},
    {"lse batch 1", M_ALL, 0, ST(INVALID_SHAPE), "lse: shape", {SHAPE(T_LSE, 0, 1)}},
    {"lse heads 5", M_ALL, 0, ST(INVALID_SHAPE), "lse: shape", {SHAPE(T_LSE, 1, HQ + 1), STRIDE(T_LSE, 0, (HQ + 1) * NQ)}},
    {"lse rows 4", M_ALL, 0, ST(INVALID_SHAPE), "lse: shape", {SHAPE(T_LSE, 2, NQ - 1)}},
    {"bias f16", M_ALL, 0, ST(INVALID_BIAS), "bias: dtype must be f32", {DTYPE(T_BIAS, CLATTN_F16)}},
    {"bias bf16", M_ALL, 0, ST(INVALID_BIAS), "bias: dtype must be f32", {DTYPE(T_BIAS, CLATTN_BF16)}},
    {"bias batch 3", M_ALL, 0, ST(INVALID_BIAS), "bias: dim 0", {SHAPE(T_BIAS, 0, 3)}},
    {"bias heads 2", M_ALL, 0, ST(INVALID_BIAS), "bias: dim 1", {SHAPE(T_BIAS, 1, 2)}},
    {"bias rows 4", M_ALL, 0, ST(INVALID_BIAS), "bias: dim 2", {SHAPE(T_BIAS, 2, NQ - 1)}},
    {"bias keys 6", M_ALL, 0, ST(INVALID_BIAS), "bias: dim 3", {SHAPE(T_BIAS, 3, NK - 1)}},
    {"bias keys 8", M_ALL, 0, ST(INVALID_BIAS), "bias: dim 3", {SHAPE(T_BIAS, 3, NK + 1)}},
    {"bias keys = Nq", M_ALL, 0, ST(INVALID_BIAS), "bias: dim 3", {SHAPE(T_BIAS, 3, NQ)}},
    {"alibi offset 1", M_DEV, 0, ST(MISALIGNED), "alibi: byte offset", {OFFSET(T_ALIBI, 1)}},
    {"alibi offset 2", M_DEV, 0, ST(MISALIGNED), "alibi: byte offset", {OFFSET(T_ALIBI, 2)}},
    {"alibi offset SIZE_MAX", M_DEV, 0, ST(MISALIGNED), "alibi: byte offset", {OFFSET(T_ALIBI, (int64_t)SIZE_MAX)}},
    {"key_lengths offset 3", M_DEV, 0, ST(MISALIGNED), "key_lengths: byte offset", {OFFSET(T_KL, 3)}},
    {"key_lengths offset 2", M_DEV, 0, ST(MISALIGNED), "key_lengths: byte offset", {OFFSET(T_KL, 2)}},
    {"key_lengths offset 5", M_DEV, 0, ST(MISALIGNED), "key_lengths: byte offset", {OFFSET(T_KL, 5)}},
    /* an output dtype of its own is allowed */
    {"control: o f16 of f32 inputs", W_CREATE | W_META, 0, CLATTN_SUCCESS, NULL, {DTYPE(T_O, CLATTN_F16)}},
};

static const bad_case buffer_cases[] = {
    /* buffers smaller than the view (through the buffer or the offset) */
    {"q in an 8-byte buffer", M_BUF, 0, ST(BUFFER_TOO_SMALL), "q: buffer holds 8", {BUF(T_Q, BF_SMALL, 0)}},
    {"k in an 8-byte buffer", M_BUF, 0, ST(BUFFER_TOO_SMALL), "k: buffer holds 8", {BUF(T_K, BF_SMALL, 0)}},
    {"v in an 8-byte buffer", M_BUF, 0, ST(BUFFER_TOO_SMALL), "v: buffer holds 8", {BUF(T_V, BF_SMALL, 0)}},
    {"o in an 8-byte buffer", M_BUF, 0, ST(BUFFER_TOO_SMALL), "o: buffer holds 8", {BUF(T_O, BF_SMALL, 0)}},
    {"lse in an 8-byte buffer", M_BUF, 0, ST(BUFFER_TOO_SMALL), "lse: buffer holds 8", {BUF(T_LSE, BF_SMALL, 0)}},
    {"bias in an 8-byte buffer", M_BUF, 0, ST(BUFFER_TOO_SMALL), "bias: buffer holds 8", {BUF(T_BIAS, BF_SMALL, 0)}},
    {"q offset one element too far", M_BUF, 0, ST(BUFFER_TOO_SMALL), "q: buffer", {OFFSET(T_Q, X4(OFF_Q + 1))}},
    {"k offset one element", M_BUF, 0, ST(BUFFER_TOO_SMALL), "k: buffer", {OFFSET(T_K, 4)}},
    {"v offset one element too far", M_BUF, 0, ST(BUFFER_TOO_SMALL), "v: buffer", {OFFSET(T_V, X4(OFF_V + 1))}},
    {"o offset past its canary", M_BUF, 0, ST(BUFFER_TOO_SMALL), "o: buffer",
     {OFFSET(T_O, X4(OFF_O + CANARY + 1))}},
    {"lse offset past its canary", M_BUF, 0, ST(BUFFER_TOO_SMALL), "lse: buffer",
     {OFFSET(T_LSE, X4(OFF_L + CANARY + 1))}},
    {"bias offset one element too far", M_BUF, 0, ST(BUFFER_TOO_SMALL), "bias: buffer",
     {OFFSET(T_BIAS, X4(OFF_BIAS + 1))}},
    {"q stride reaching past the buffer", W_CREATE, 0, ST(BUFFER_TOO_SMALL), "q: buffer",
     {STRIDE(T_Q, 0, HQ * NQ * D + 1)}},
    {"o Nq rows padded beyond the buffer", W_CREATE, 0, ST(BUFFER_TOO_SMALL), "o: buffer",
     {STRIDE(T_O, 2, 64), STRIDE(T_O, 1, 64 * NQ), STRIDE(T_O, 0, 64 * NQ * HQ)}},
    {"v in the key-lengths buffer", M_BUF, 0, ST(BUFFER_TOO_SMALL), "v: buffer holds 8", {BUF(T_V, BF_KL, 0)}},
    {"alibi in an 8-byte buffer", M_BUF, 0, ST(BUFFER_TOO_SMALL), "alibi: buffer holds 8",
     {BUF(T_ALIBI, BF_SMALL, 0)}},
    {"alibi offset 4 (3 slopes left)", M_BUF, 0, ST(BUFFER_TOO_SMALL), "alibi: buffer", {OFFSET(T_ALIBI, 4)}},
    {"alibi offset at the end", M_BUF, 0, ST(BUFFER_TOO_SMALL), "alibi: buffer", {OFFSET(T_ALIBI, HQ * 4)}},
    {"alibi offset past the end", M_BUF, 0, ST(BUFFER_TOO_SMALL), "alibi: buffer", {OFFSET(T_ALIBI, 1 << 20)}},
    {"alibi offset SIZE_MAX-3", M_BUF, 0, ST(BUFFER_TOO_SMALL), "alibi: buffer",
     {OFFSET(T_ALIBI, (int64_t)(SIZE_MAX - 3))}},
    {"key_lengths in 8 bytes at offset 4", M_BUF, 0, ST(BUFFER_TOO_SMALL), "key_lengths: buffer",
     {BUF(T_KL, BF_SMALL, 4)}},
    {"key_lengths offset at the end", M_BUF, 0, ST(BUFFER_TOO_SMALL), "key_lengths: buffer", {OFFSET(T_KL, B * 4)}},
    {"key_lengths offset SIZE_MAX-3", M_BUF, 0, ST(BUFFER_TOO_SMALL), "key_lengths: buffer",
     {OFFSET(T_KL, (int64_t)(SIZE_MAX - 3))}},
    /* plan_run needs every buffer the plan was made with */
    {"run: q buffer NULL", W_RUN, 0, ST(NULL_ARGUMENT), "q: buffer is NULL", {BUF(T_Q, BF_NONE, 0)}},
    {"run: k buffer NULL", W_RUN, 0, ST(NULL_ARGUMENT), "k: buffer is NULL", {BUF(T_K, BF_NONE, 0)}},
    {"run: v buffer NULL", W_RUN, 0, ST(NULL_ARGUMENT), "v: buffer is NULL", {BUF(T_V, BF_NONE, 0)}},
    {"run: o buffer NULL", W_RUN, 0, ST(NULL_ARGUMENT), "o: buffer is NULL", {BUF(T_O, BF_NONE, 0)}},
    {"control: create with NULL buffers", W_CREATE, 0, CLATTN_SUCCESS, NULL,
     {BUF(T_Q, BF_NONE, 0), BUF(T_O, BF_NONE, 0), BUF(T_BIAS, BF_NONE, 0)}},
    /* outputs aliasing inputs or each other */
    {"o in q's buffer", M_BUF, 0, ST(ALIASING), "o: output bytes", {BUF(T_O, BF_Q, 0)}},
    {"o in q's buffer at q's last element", M_BUF, 0, ST(ALIASING), "overlap q",
     {BUF(T_Q, BF_BIG, X4(BIG_Q)), BUF(T_O, BF_BIG, X4(BIG_Q + NQE - 1))}},
    {"o ending on q's first element", M_BUF, 0, ST(ALIASING), "overlap q",
     {BUF(T_Q, BF_BIG, X4(BIG_O)), BUF(T_O, BF_BIG, X4(BIG_O - NOE + 1))}},
    {"o over k", M_BUF, 0, ST(ALIASING), "overlap k", {BUF(T_K, BF_BIG, X4(BIG_K)), BUF(T_O, BF_BIG, X4(BIG_K + 8))}},
    {"o over v", M_BUF, 0, ST(ALIASING), "overlap v", {BUF(T_V, BF_BIG, X4(BIG_V)), BUF(T_O, BF_BIG, X4(BIG_V))}},
    {"o over bias", M_BUF, 0, ST(ALIASING), "overlap bias",
     {BUF(T_BIAS, BF_BIG, X4(BIG_BIAS)), BUF(T_O, BF_BIG, X4(BIG_BIAS + NBE - 4))}},
    {"o over lse", M_BUF, 0, ST(ALIASING), "o: output bytes",
     {BUF(T_LSE, BF_BIG, X4(BIG_O + 4)), BUF(T_O, BF_BIG, X4(BIG_O))}},
    {"lse over q", M_BUF, 0, ST(ALIASING), "lse: output bytes",
     {BUF(T_Q, BF_BIG, X4(BIG_Q)), BUF(T_LSE, BF_BIG, X4(BIG_Q + 100))}},
    {"lse over k", M_BUF, 0, ST(ALIASING), "lse: output bytes", {BUF(T_LSE, BF_K, 0)}},
    {"lse over v", M_BUF, 0, ST(ALIASING), "lse: output bytes", {BUF(T_LSE, BF_V, 0)}},
    {"lse over bias", M_BUF, 0, ST(ALIASING), "lse: output bytes", {BUF(T_LSE, BF_BIAS, 0)}},
    {"lse in o's buffer, same bytes", M_BUF, 0, ST(ALIASING), "overlap", {BUF(T_LSE, BF_O, X4(OFF_O))}},
    {"o over the ALiBi slopes", M_BUF, 0, ST(ALIASING), "overlap alibi",
     {BUF(T_ALIBI, BF_BIG, X4(BIG_O + 8)), BUF(T_O, BF_BIG, X4(BIG_O))}},
    {"lse over the key lengths", M_BUF, 0, ST(ALIASING), "overlap key_lengths",
     {BUF(T_KL, BF_BIG, X4(BIG_L + 2)), BUF(T_LSE, BF_BIG, X4(BIG_L))}},
    {"o in a sub-buffer of q's buffer", M_BUF, 0, ST(ALIASING), "overlap q", {BUF(T_O, BF_SUB_Q, X4(OFF_O))}},
    {"o in a sub-buffer over q", M_BUF, 0, ST(ALIASING), "overlap q",
     {BUF(T_Q, BF_BIG, 0), BUF(T_O, BF_SUB_BIG, 0)}},
    {"q in a sub-buffer under lse", M_BUF, 0, ST(ALIASING), "overlap q",
     {BUF(T_LSE, BF_BIG, X4(BIG_L)), BUF(T_Q, BF_SUB_BIG, X4(BIG_L - NQE))}},
    {"control: o right after q in one buffer", W_CREATE, 0, CLATTN_SUCCESS, NULL,
     {BUF(T_Q, BF_BIG, X4(BIG_Q)), BUF(T_O, BF_BIG, X4(BIG_Q + NQE))}},
    {"control: o in a sub-buffer away from q", W_CREATE, 0, CLATTN_SUCCESS, NULL,
     {BUF(T_Q, BF_BIG, 0), BUF(T_O, BF_SUB_BIG, X4(BIG_O))}},
};

static const bad_case mismatch_cases[] = {
    {"run: Nq 4 instead of 5", W_RUN, 0, ST(PLAN_MISMATCH), "args",
     {SHAPE(T_Q, 2, NQ - 1), SHAPE(T_O, 2, NQ - 1), SHAPE(T_LSE, 2, NQ - 1), SHAPE(T_BIAS, 2, NQ - 1)}},
    {"run: Nk 6 instead of 7", W_RUN, 0, ST(PLAN_MISMATCH), "args",
     {SHAPE(T_K, 2, NK - 1), SHAPE(T_V, 2, NK - 1), SHAPE(T_BIAS, 3, NK - 1)}},
    {"run: B 1 instead of 2", W_RUN, 0, ST(PLAN_MISMATCH), "args",
     {SHAPE(T_Q, 0, 1), SHAPE(T_K, 0, 1), SHAPE(T_V, 0, 1), SHAPE(T_O, 0, 1), SHAPE(T_LSE, 0, 1),
      SHAPE(T_BIAS, 0, 1)}},
    {"run: o f16", W_RUN, 0, ST(PLAN_MISMATCH), "args", {DTYPE(T_O, CLATTN_F16)}},
    {"run: q in BSHD order", W_RUN, 0, ST(PLAN_MISMATCH), "args", {STRIDE(T_Q, 1, D), STRIDE(T_Q, 2, HQ * D)}},
    {"run: k batch broadcast", W_RUN, 0, ST(PLAN_MISMATCH), "args", {STRIDE(T_K, 0, 0)}},
    {"run: without lse", W_RUN, 0, ST(PLAN_MISMATCH), "args", {DROP(T_LSE)}},
    {"run: without bias", W_RUN, 0, ST(PLAN_MISMATCH), "args", {DROP(T_BIAS)}},
    {"run: without ALiBi", W_RUN, 0, ST(PLAN_MISMATCH), "args", {DROP(T_ALIBI)}},
    {"run: without key lengths", W_RUN, 0, ST(PLAN_MISMATCH), "args", {DROP(T_KL)}},
    {"run: bias broadcast over rows", W_RUN, 0, ST(PLAN_MISMATCH), "args", {SHAPE(T_BIAS, 2, 1)}},
    {"run: varlen total_q 7", W_RUN, 1, ST(PLAN_MISMATCH), "args", {TOTAL(T_Q, 7)}},
    {"run: varlen total_k 12", W_RUN, 1, ST(PLAN_MISMATCH), "args", {TOTAL(T_K, 12)}},
    {"run: varlen without lse", W_RUN, 1, ST(PLAN_MISMATCH), "args", {DROP(T_LSE)}},
};

static const bad_case host_cases[] = {
    {"q data NULL", M_HOST, 0, ST(NULL_ARGUMENT), "q: data is NULL", {BUF(T_Q, BF_NONE, 0)}},
    {"k data NULL", M_HOST, 0, ST(NULL_ARGUMENT), "k: data is NULL", {BUF(T_K, BF_NONE, 0)}},
    {"v data NULL", M_HOST, 0, ST(NULL_ARGUMENT), "v: data is NULL", {BUF(T_V, BF_NONE, 0)}},
    {"o data NULL", M_HOST, 0, ST(NULL_ARGUMENT), "o: data is NULL", {BUF(T_O, BF_NONE, 0)}},
    {"key_lengths[0] -1", M_HOST, 0, ST(INVALID_KEY_LENGTHS), "key_lengths[0]", {HVAL(T_KL, 0, -1)}},
    {"key_lengths[1] Nk+1", M_HOST, 0, ST(INVALID_KEY_LENGTHS), "key_lengths[1]", {HVAL(T_KL, 1, NK + 1)}},
    {"key_lengths[1] INT32_MIN", M_HOST, 0, ST(INVALID_KEY_LENGTHS), "key_lengths[1]", {HVAL(T_KL, 1, INT32_MIN)}},
    {"key_lengths[0] INT32_MAX", M_HOST, 0, ST(INVALID_KEY_LENGTHS), "key_lengths[0]", {HVAL(T_KL, 0, INT32_MAX)}},
    {"alibi[2] NaN", M_HOST, 0, ST(INVALID_ALIBI), "alibi[2]", {HVALF(T_ALIBI, 2, NAN)}},
    {"alibi[0] +Inf", M_HOST, 0, ST(INVALID_ALIBI), "alibi[0]", {HVALF(T_ALIBI, 0, INFINITY)}},
    {"alibi[3] -Inf", M_HOST, 0, ST(INVALID_ALIBI), "alibi[3]", {HVALF(T_ALIBI, 3, -INFINITY)}},
    {"o is q", M_HOST, 0, ST(ALIASING), "o: output memory", {HALIAS(T_O, T_Q, 0)}},
    {"o starts at q's last element", M_HOST, 0, ST(ALIASING), "overlaps q", {HALIAS(T_O, T_Q, NQE - 1)}},
    {"o is k", M_HOST, 0, ST(ALIASING), "overlaps k", {HALIAS(T_O, T_K, 0)}},
    {"o inside v", M_HOST, 0, ST(ALIASING), "overlaps v", {HALIAS(T_O, T_V, 17)}},
    {"o is bias", M_HOST, 0, ST(ALIASING), "overlaps bias", {HALIAS(T_O, T_BIAS, 0)}},
    {"o over the ALiBi slopes", M_HOST, 0, ST(ALIASING), "overlaps alibi", {HALIAS(T_O, T_ALIBI, 0)}},
    {"o over the key lengths", M_HOST, 0, ST(ALIASING), "overlaps key_lengths", {HALIAS(T_O, T_KL, 0)}},
    {"lse is o", M_HOST, 0, ST(ALIASING), "lse", {HALIAS(T_LSE, T_O, 0)}},
    {"lse inside o", M_HOST, 0, ST(ALIASING), "lse", {HALIAS(T_LSE, T_O, NOE - 3)}},
    {"lse is q", M_HOST, 0, ST(ALIASING), "lse: output memory", {HALIAS(T_LSE, T_Q, 0)}},
    {"lse over bias", M_HOST, 0, ST(ALIASING), "lse: output memory", {HALIAS(T_LSE, T_BIAS, 10)}},
    {"lse over the key lengths", M_HOST, 0, ST(ALIASING), "overlaps key_lengths", {HALIAS(T_LSE, T_KL, 0)}},
    {"varlen: o over cu_seqlens_q", M_HOST, 1, ST(ALIASING), "overlaps cu_seqlens_q", {HALIAS(T_O, T_CUQ, 0)}},
    {"varlen: lse over cu_seqlens_k", M_HOST, 1, ST(ALIASING), "overlaps cu_seqlens_k", {HALIAS(T_LSE, T_CUK, 0)}},
};

static const bad_case varlen_cases[] = {
    {"total_q 0", M_DEV | M_HOST, 1, ST(INVALID_SEQLENS), "total_q", {TOTAL(T_Q, 0)}},
    {"total_q -8", M_DEV | M_HOST, 1, ST(INVALID_SEQLENS), "total_q", {TOTAL(T_Q, -8)}},
    {"total_q 2^31", M_DEV | M_HOST, 1, ST(INVALID_SEQLENS), "total_q", {TOTAL(T_Q, (int64_t)1 << 31)}},
    {"total_k 0", M_DEV | M_HOST, 1, ST(INVALID_SEQLENS), "total_k", {TOTAL(T_K, 0)}},
    {"total_k INT64_MIN", M_DEV | M_HOST, 1, ST(INVALID_SEQLENS), "total_k", {TOTAL(T_K, INT64_MIN)}},
    {"cu_seqlens_q offset 2", M_DEV, 1, ST(MISALIGNED), "cu_seqlens: byte offsets", {OFFSET(T_CUQ, 2)}},
    {"cu_seqlens_k offset 1", M_DEV, 1, ST(MISALIGNED), "cu_seqlens: byte offsets", {OFFSET(T_CUK, 1)}},
    {"q batch stride", M_DEV, 1, ST(INVALID_STRIDE), "q: varlen views", {STRIDE(T_Q, 0, 1)}},
    {"o batch stride", M_DEV, 1, ST(INVALID_STRIDE), "o: varlen views", {STRIDE(T_O, 0, HQ * DV)}},
    {"lse batch stride", M_DEV, 1, ST(INVALID_STRIDE), "lse: varlen views", {STRIDE(T_LSE, 0, 1)}},
    {"q max_seqlen 0", M_DEV | M_HOST, 1, ST(INVALID_SHAPE), "q: shape[2]", {SHAPE(T_Q, 2, 0)}},
    {"k heads -1", M_DEV | M_HOST, 1, ST(INVALID_SHAPE), "k: shape[1]", {SHAPE(T_K, 1, -1)}},
    {"v max_seqlen 2^31", M_DEV | M_HOST, 1, ST(SIZE_OVERFLOW), "v: shape[2]", {SHAPE(T_V, 2, (int64_t)1 << 31)}},
    {"lse rows 4", M_DEV | M_HOST, 1, ST(INVALID_SHAPE), "lse: shape", {SHAPE(T_LSE, 2, NQ - 1)}},
    {"o packed rows overlap (row stride 1)", M_DEV, 1, ST(INVALID_STRIDE), "overlap",
     {STRIDE(T_O, 1, DV), STRIDE(T_O, 2, 1), STRIDE(T_O, 3, 1)}},
    {"q packed rows past the buffer", M_BUF, 1, ST(BUFFER_TOO_SMALL), "q: buffer", {BUF(T_Q, BF_VV, 0)}},
    {"cu_seqlens_q in 8 bytes", M_BUF, 1, ST(BUFFER_TOO_SMALL), "cu_seqlens_q: buffer holds 8",
     {BUF(T_CUQ, BF_SMALL, 0)}},
    {"cu_seqlens_k offset 4", M_BUF, 1, ST(BUFFER_TOO_SMALL), "cu_seqlens_k: buffer", {OFFSET(T_CUK, 4)}},
    {"cu_seqlens_q over o", M_BUF, 1, ST(ALIASING), "overlap cu_seqlens_q", {BUF(T_CUQ, BF_VO, 0)}},
    {"cu_seqlens_k over lse", M_BUF, 1, ST(ALIASING), "overlap cu_seqlens_k", {BUF(T_CUK, BF_VL, 8)}},
    {"run: cu_seqlens_q NULL", W_RUN, 1, ST(NULL_ARGUMENT), "cu_seqlens_q: buffer is NULL",
     {BUF(T_CUQ, BF_NONE, 0)}},
    {"run: cu_seqlens_k NULL", W_RUN, 1, ST(NULL_ARGUMENT), "cu_seqlens_k: buffer is NULL",
     {BUF(T_CUK, BF_NONE, 0)}},
    {"host: cu_seqlens_k NULL", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_k: NULL", {BUF(T_CUK, BF_NONE, 0)}},
    {"host: cu_seqlens_q NULL", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_q: NULL", {BUF(T_CUQ, BF_NONE, 0)}},
    {"cu_seqlens_q[0] 1", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_q: must start at 0", {HVAL(T_CUQ, 0, 1)}},
    {"cu_seqlens_q[B] 7 != total 8", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_q: must start", {HVAL(T_CUQ, 2, 7)}},
    {"cu_seqlens_q decreasing", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_q: sequence 0", {HVAL(T_CUQ, 1, -1)}},
    {"cu_seqlens_q sequence longer than max_seqlen", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_q: sequence 1",
     {HVAL(T_CUQ, 1, 2)}},
    {"cu_seqlens_q past total", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_q: sequence 0", {HVAL(T_CUQ, 1, 9)}},
    {"cu_seqlens_k[0] -1", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_k: must start at 0", {HVAL(T_CUK, 0, -1)}},
    {"cu_seqlens_k[B] 12 != total 11", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_k", {HVAL(T_CUK, 2, 12)}},
    {"cu_seqlens_k sequence 8 > max 7", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_k: sequence 0",
     {HVAL(T_CUK, 1, 8)}},
    {"cu_seqlens_k INT32_MIN", M_HOST, 1, ST(INVALID_SEQLENS), "cu_seqlens_k: sequence 0",
     {HVAL(T_CUK, 1, INT32_MIN)}},
    {"control: varlen plan with NULL buffers", W_CREATE, 1, CLATTN_SUCCESS, NULL,
     {BUF(T_Q, BF_NONE, 0), BUF(T_CUQ, BF_NONE, 0)}},
};

typedef struct category {
    const char *name;
    const bad_case *cases;
    int n;
} category;

#define CAT(name, t) {name, t, (int)(sizeof t / sizeof t[0])}
static const category categories[] = {
    CAT("desc", desc_cases),       CAT("views", view_cases),       CAT("shapes", shape_cases),
    CAT("buffers", buffer_cases),  CAT("mismatch", mismatch_cases), CAT("host", host_cases),
    CAT("varlen", varlen_cases),
};
#define NCAT (int)(sizeof categories / sizeof categories[0])

/* ------------------------------------------------------------------ fixture */

typedef struct fixture {
    clattn_context *ctx;
    cl_context clctx;
    cl_command_queue queue;
    cl_mem buf[BF_COUNT];
    size_t size[BF_COUNT];
    unsigned char *snap[BF_COUNT]; /* contents every call must leave as they are */
    unsigned char *readback;
    size_t sub_origin;
    clattn_args dev[2];   /* valid device problems: dense, varlen */
    clattn_plan *plan[2]; /* made from them */
    /* host problems: arrays of HOSTCAP floats, inputs random, outputs poisoned */
    float *h[T_COUNT][2];
    float *hsnap[T_COUNT][2];
    clattn_host_args host[2];
} fixture;

static fixture fx;

static const unsigned char POISON = 0xFF; /* all-ones bytes: NaN in f32, f16 and bf16 */

static cl_mem new_buffer(size_t bytes, const void *init)
{
    cl_int err;
    cl_mem m = clCreateBuffer(fx.clctx, CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0), bytes, (void *)init,
                              &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    return m;
}

static void set_strides(clattn_tensor *t)
{
    t->strides[3] = 1;
    t->strides[2] = t->shape[3];
    t->strides[1] = t->shape[2] * t->shape[3];
    t->strides[0] = t->shape[1] * t->shape[2] * t->shape[3];
}

static void fixture_setup(void)
{
    static const size_t sizes[BF_PLAIN] = {
        [BF_Q] = X4(OFF_Q + NQE),
        [BF_K] = X4(NKE),
        [BF_V] = X4(OFF_V + NVE),
        [BF_O] = X4(OFF_O + NOE + CANARY),
        [BF_L] = X4(OFF_L + NLE + CANARY),
        [BF_BIAS] = X4(OFF_BIAS + NBE),
        [BF_ALIBI] = X4(HQ),
        [BF_KL] = X4(B),
        [BF_VQ] = X4(TQ * HQ * D),
        [BF_VK] = X4(TK * HKV * D),
        [BF_VV] = X4(TK * HKV * DV),
        [BF_VO] = X4(TQ * HQ * DV + CANARY),
        [BF_VL] = X4(TQ * HQ + CANARY),
        [BF_CUQ] = X4(B + 1),
        [BF_CUK] = X4(B + 1),
        [BF_SMALL] = 8,
        [BF_BIG] = X4(BIG_ELEMS),
        [BF_F16] = 64,
    };
    uint64_t rng = test_seed() ^ 0xbad1u;
    cl_device_id dev;
    cl_uint align_bits = 0;
    memset(&fx, 0, sizeof fx);
    fx.ctx = test_context();
    ck_assert_ptr_nonnull(fx.ctx);
    clattn_context_cl(fx.ctx, &fx.clctx, &dev, &fx.queue);

    for (int b = 1; b < BF_PLAIN; b++) {
        unsigned char *init = malloc(sizes[b]);
        ck_assert_ptr_nonnull(init);
        if (b == BF_O || b == BF_L || b == BF_VO || b == BF_VL || b == BF_BIG || b == BF_SMALL) {
            memset(init, POISON, sizes[b]); /* outputs (and what may become one): poisoned */
        } else if (b == BF_KL) {
            const int32_t kl[B] = {NK, 3};
            memcpy(init, kl, sizeof kl);
        } else if (b == BF_CUQ || b == BF_CUK) {
            memcpy(init, b == BF_CUQ ? cu_q0 : cu_k0, sizes[b]);
        } else if (b == BF_ALIBI) {
            for (int h = 0; h < HQ; h++)
                ((float *)init)[h] = 0.05f + 0.1f * (float)h;
        } else {
            test_fill_uniform((float *)init, sizes[b] / 4, 1.0f, &rng);
        }
        fx.buf[b] = new_buffer(sizes[b], init);
        fx.size[b] = sizes[b];
        fx.snap[b] = init;
    }
    fx.readback = malloc(X4(BIG_ELEMS));
    ck_assert_ptr_nonnull(fx.readback);
    {
        cl_buffer_region r = {0, fx.size[BF_Q]};
        cl_int err;
        ck_assert_int_eq(clGetDeviceInfo(dev, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL),
                         CL_SUCCESS);
        fx.buf[BF_SUB_Q] = clCreateSubBuffer(fx.buf[BF_Q], 0, CL_BUFFER_CREATE_TYPE_REGION, &r, &err);
        ck_assert_int_eq(err, CL_SUCCESS);
        fx.size[BF_SUB_Q] = r.size;
        fx.sub_origin = align_bits / 8 ? align_bits / 8 : 128;
        ck_assert_uint_lt(fx.sub_origin, 1024);
        r.origin = fx.sub_origin;
        r.size = X4(BIG_ELEMS) - fx.sub_origin;
        fx.buf[BF_SUB_BIG] = clCreateSubBuffer(fx.buf[BF_BIG], 0, CL_BUFFER_CREATE_TYPE_REGION, &r, &err);
        ck_assert_int_eq(err, CL_SUCCESS);
        fx.size[BF_SUB_BIG] = r.size;
    }

    /* the valid dense problem */
    {
        clattn_args *a = &fx.dev[0];
        memset(a, 0, sizeof *a);
        a->q = clattn_tensor_make(fx.buf[BF_Q], X4(OFF_Q), CLATTN_F32, B, HQ, NQ, D);
        a->k = clattn_tensor_make(fx.buf[BF_K], 0, CLATTN_F32, B, HKV, NK, D);
        a->v = clattn_tensor_make(fx.buf[BF_V], X4(OFF_V), CLATTN_F32, B, HKV, NK, DV);
        a->o = clattn_tensor_make(fx.buf[BF_O], X4(OFF_O), CLATTN_F32, B, HQ, NQ, DV);
        a->lse = clattn_tensor_make(fx.buf[BF_L], X4(OFF_L), CLATTN_F32, B, HQ, NQ, 1);
        a->bias = clattn_tensor_make(fx.buf[BF_BIAS], X4(OFF_BIAS), CLATTN_F32, B, 1, NQ, NK);
        set_strides(&a->q), set_strides(&a->k), set_strides(&a->v), set_strides(&a->o), set_strides(&a->bias);
        set_strides(&a->lse);
        a->lse.strides[3] = 0;
        a->alibi = fx.buf[BF_ALIBI];
        a->key_lengths = fx.buf[BF_KL];
    }
    /* the valid varlen problem: packed [total, H, D] (all-zero strides) */
    {
        clattn_args *a = &fx.dev[1];
        memset(a, 0, sizeof *a);
        a->q = clattn_tensor_make(fx.buf[BF_VQ], 0, CLATTN_F32, B, HQ, NQ, D);
        a->k = clattn_tensor_make(fx.buf[BF_VK], 0, CLATTN_F32, B, HKV, NK, D);
        a->v = clattn_tensor_make(fx.buf[BF_VV], 0, CLATTN_F32, B, HKV, NK, DV);
        a->o = clattn_tensor_make(fx.buf[BF_VO], 0, CLATTN_F32, B, HQ, NQ, DV);
        a->lse = clattn_tensor_make(fx.buf[BF_VL], 0, CLATTN_F32, B, HQ, NQ, 1);
        a->cu_seqlens_q = fx.buf[BF_CUQ];
        a->cu_seqlens_k = fx.buf[BF_CUK];
        a->total_q = TQ;
        a->total_k = TK;
    }
    /* host problems with the same data */
    for (int v = 0; v < 2; v++) {
        clattn_host_args *h = &fx.host[v];
        for (int t = 0; t < T_COUNT; t++) {
            fx.h[t][v] = malloc(X4(HOSTCAP));
            fx.hsnap[t][v] = malloc(X4(HOSTCAP));
            ck_assert(fx.h[t][v] && fx.hsnap[t][v]);
            if (t == T_O || t == T_LSE)
                memset(fx.h[t][v], POISON, X4(HOSTCAP));
            else
                test_fill_uniform(fx.h[t][v], HOSTCAP, 1.0f, &rng);
        }
        memset(h, 0, sizeof *h);
        h->q = (clattn_host_tensor){fx.h[T_Q][v], CLATTN_F32, {B, HQ, NQ, D}};
        h->k = (clattn_host_tensor){fx.h[T_K][v], CLATTN_F32, {B, HKV, NK, D}};
        h->v = (clattn_host_tensor){fx.h[T_V][v], CLATTN_F32, {B, HKV, NK, DV}};
        h->o = (clattn_host_tensor){fx.h[T_O][v], CLATTN_F32, {B, HQ, NQ, DV}};
        h->lse = (clattn_host_tensor){fx.h[T_LSE][v], CLATTN_F32, {B, HQ, NQ, 1}};
        if (v == 0) {
            h->bias = (clattn_host_tensor){fx.h[T_BIAS][v], CLATTN_F32, {B, 1, NQ, NK}};
            h->alibi = fx.h[T_ALIBI][v];
            h->key_lengths = (const int32_t *)fx.h[T_KL][v];
        } else {
            h->cu_seqlens_q = (const int32_t *)fx.h[T_CUQ][v];
            h->cu_seqlens_k = (const int32_t *)fx.h[T_CUK][v];
            h->total_q = TQ;
            h->total_k = TK;
        }
    }
    /* the host copies hold what the device buffers hold */
    memcpy(fx.h[T_Q][0], fx.snap[BF_Q] + X4(OFF_Q), X4(NQE));
    memcpy(fx.h[T_K][0], fx.snap[BF_K], X4(NKE));
    memcpy(fx.h[T_V][0], fx.snap[BF_V] + X4(OFF_V), X4(NVE));
    memcpy(fx.h[T_BIAS][0], fx.snap[BF_BIAS] + X4(OFF_BIAS), X4(NBE));
    memcpy(fx.h[T_ALIBI][0], fx.snap[BF_ALIBI], X4(HQ));
    memcpy(fx.h[T_KL][0], fx.snap[BF_KL], X4(B));
    memcpy(fx.h[T_Q][1], fx.snap[BF_VQ], fx.size[BF_VQ]);
    memcpy(fx.h[T_K][1], fx.snap[BF_VK], fx.size[BF_VK]);
    memcpy(fx.h[T_V][1], fx.snap[BF_VV], fx.size[BF_VV]);
    memcpy(fx.h[T_CUQ][1], cu_q0, sizeof cu_q0);
    memcpy(fx.h[T_CUK][1], cu_k0, sizeof cu_k0);
    for (int v = 0; v < 2; v++)
        for (int t = 0; t < T_COUNT; t++)
            memcpy(fx.hsnap[t][v], fx.h[t][v], X4(HOSTCAP));
}

static void fixture_teardown(void)
{
    for (int v = 0; v < 2; v++)
        clattn_plan_free(fx.plan[v]);
    for (int b = BF_COUNT - 1; b > 0; b--)
        if (fx.buf[b])
            clReleaseMemObject(fx.buf[b]);
    for (int b = 0; b < BF_COUNT; b++)
        free(fx.snap[b]);
    for (int v = 0; v < 2; v++)
        for (int t = 0; t < T_COUNT; t++) {
            free(fx.h[t][v]);
            free(fx.hsnap[t][v]);
        }
    free(fx.readback);
    memset(&fx, 0, sizeof fx);
}

/* Plans of the valid problems (the run cases need them). */
static void make_plans(void)
{
    for (int v = 0; v < 2; v++) {
        if (fx.plan[v])
            continue;
        ck_assert_msg(clattn_plan_create(fx.ctx, NULL, &fx.dev[v], &fx.plan[v]) == CLATTN_SUCCESS,
                      "valid %s problem rejected: %s", v ? "varlen" : "dense", clattn_context_last_error(fx.ctx));
    }
}

/* Every plain device buffer and host array as it was; names the first that is not. */
static const char *all_untouched(void)
{
    for (int b = 1; b < BF_PLAIN; b++) {
        ck_assert_int_eq(clEnqueueReadBuffer(fx.queue, fx.buf[b], CL_TRUE, 0, fx.size[b], fx.readback, 0, NULL, NULL),
                         CL_SUCCESS);
        if (memcmp(fx.readback, fx.snap[b], fx.size[b]) != 0) {
            static char what[64];
            snprintf(what, sizeof what, "device buffer %d", b);
            return what;
        }
    }
    for (int v = 0; v < 2; v++)
        for (int t = 0; t < T_COUNT; t++)
            if (memcmp(fx.h[t][v], fx.hsnap[t][v], X4(HOSTCAP)) != 0) {
                static char what[64];
                snprintf(what, sizeof what, "host array %d of problem %d", t, v);
                return what;
            }
    return NULL;
}

/* Put every buffer and array back (after a call that wrote what it should
 * not have, so that the next case starts clean). */
static void restore_all(void)
{
    for (int b = 1; b < BF_PLAIN; b++)
        ck_assert_int_eq(clEnqueueWriteBuffer(fx.queue, fx.buf[b], CL_TRUE, 0, fx.size[b], fx.snap[b], 0, NULL, NULL),
                         CL_SUCCESS);
    for (int v = 0; v < 2; v++)
        for (int t = 0; t < T_COUNT; t++)
            memcpy(fx.h[t][v], fx.hsnap[t][v], X4(HOSTCAP));
}

/* ------------------------------------------------------------------ applying a case */

static clattn_tensor *dev_tensor(clattn_args *a, int t)
{
    clattn_tensor *all[6] = {&a->q, &a->k, &a->v, &a->o, &a->lse, &a->bias};
    return t < 6 ? all[t] : NULL;
}

static void apply_desc(const edit *e, clattn_attention_desc *d)
{
    switch (e->k) {
    case E_SCALE: d->scale = (float)e->f; break;
    case E_SOFTCAP: d->softcap = (float)e->f; break;
    case E_ALIGN: d->align = (clattn_align)e->v; break;
    case E_VARIANT: d->variant = (clattn_variant)e->v; break;
    case E_WINDOW: d->use_window = 1, d->window_left = e->i, d->window_right = (int32_t)e->v; break;
    default: break;
    }
}

/* The device args of case c (meta: metadata only, presence flags instead of buffers). */
static void dev_args(const bad_case *c, int meta, clattn_attention_desc *d, clattn_args *a)
{
    cl_mem *small[4] = {&a->alibi, &a->key_lengths, &a->cu_seqlens_q, &a->cu_seqlens_k};
    size_t *small_off[4] = {&a->alibi_offset, &a->key_lengths_offset, &a->cu_seqlens_q_offset,
                            &a->cu_seqlens_k_offset};
    memset(d, 0, sizeof *d);
    *a = fx.dev[c->varlen];
    for (const edit *e = c->e; e < c->e + 6 && e->k != E_END; e++) {
        clattn_tensor *t = dev_tensor(a, e->t);
        switch (e->k) {
        case E_SHAPE: t->shape[e->i] = e->v; break;
        case E_STRIDE: t->strides[e->i] = e->v; break;
        case E_DTYPE: t->dtype = (clattn_dtype)e->v; break;
        case E_OFFSET:
            if (t)
                t->offset = (size_t)e->v;
            else
                *small_off[e->t - T_ALIBI] = (size_t)e->v;
            break;
        case E_BUF:
            if (t)
                t->buffer = fx.buf[e->v], t->offset = (size_t)e->i;
            else
                *small[e->t - T_ALIBI] = fx.buf[e->v], *small_off[e->t - T_ALIBI] = (size_t)e->i;
            break;
        case E_DROP:
            if (t)
                memset(t, 0, sizeof *t);
            else
                *small[e->t - T_ALIBI] = NULL;
            break;
        case E_TOTAL: *(e->t == T_Q ? &a->total_q : &a->total_k) = e->v; break;
        default: apply_desc(e, d); break;
        }
    }
    if (meta) {
        a->has_lse = a->lse.buffer != NULL;
        a->has_bias = a->bias.buffer != NULL;
        a->has_alibi = a->alibi != NULL;
        a->has_key_lengths = a->key_lengths != NULL;
        a->has_varlen = a->cu_seqlens_q != NULL || a->cu_seqlens_k != NULL;
        a->q.buffer = a->k.buffer = a->v.buffer = a->o.buffer = a->lse.buffer = a->bias.buffer = NULL;
        a->alibi = a->key_lengths = a->cu_seqlens_q = a->cu_seqlens_k = NULL;
    }
}

static clattn_host_tensor *host_tensor(clattn_host_args *h, int t)
{
    clattn_host_tensor *all[6] = {&h->q, &h->k, &h->v, &h->o, &h->lse, &h->bias};
    return t < 6 ? all[t] : NULL;
}

/* The host args of case c; small arrays edited in place (restored by host_restore). */
static void host_args(const bad_case *c, clattn_attention_desc *d, clattn_host_args *h)
{
    const int v = c->varlen;
    memset(d, 0, sizeof *d);
    *h = fx.host[v];
    for (const edit *e = c->e; e < c->e + 6 && e->k != E_END; e++) {
        clattn_host_tensor *t = host_tensor(h, e->t);
        switch (e->k) {
        case E_SHAPE: t->shape[e->i] = e->v; break;
        case E_DTYPE: t->dtype = (clattn_dtype)e->v; break;
        case E_BUF: /* only BF_NONE applies to host arrays */
        case E_DROP:
            if (t)
                t->data = NULL;
            else if (e->t == T_ALIBI)
                h->alibi = NULL;
            else if (e->t == T_KL)
                h->key_lengths = NULL;
            else if (e->t == T_CUQ)
                h->cu_seqlens_q = NULL;
            else
                h->cu_seqlens_k = NULL;
            break;
        case E_TOTAL: *(e->t == T_Q ? &h->total_q : &h->total_k) = e->v; break;
        case E_HVAL:
            if (e->t == T_ALIBI)
                fx.h[T_ALIBI][v][e->i] = (float)e->f;
            else
                ((int32_t *)fx.h[e->t][v])[e->i] = (int32_t)e->v;
            break;
        case E_HALIAS: t->data = fx.h[e->i][v] + e->v; break;
        default: apply_desc(e, d); break;
        }
    }
}

static void host_restore(void)
{
    for (int v = 0; v < 2; v++)
        for (int t = T_ALIBI; t < T_COUNT; t++)
            memcpy(fx.h[t][v], fx.hsnap[t][v], X4(HOSTCAP));
}

/* ------------------------------------------------------------------ running a category */

typedef struct tally {
    int cases, calls, per[5];
    char fails[8192];
    size_t len;
    int nfail;
} tally;

static void failf(tally *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(tally *t, const char *fmt, ...)
{
    va_list ap;
    t->nfail++;
    if (t->len + 2 >= sizeof t->fails)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(t->fails + t->len, sizeof t->fails - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len = t->len + (size_t)n < sizeof t->fails - 1 ? t->len + (size_t)n : sizeof t->fails - 1;
    t->fails[t->len++] = '\n';
    t->fails[t->len] = '\0';
}

static const char *const where_names[5] = {"plan_create", "plan_create (metadata)", "plan_run",
                                           "attention_host", "reference"};

/* One call of case c through entry point w (bit index); records failures. */
static void run_one(const bad_case *c, int w, tally *t)
{
    clattn_attention_desc d;
    clattn_status st;
    const char *err = "";
    const char *touched;
    clattn_plan *plan = (clattn_plan *)&plan; /* must come back NULL on failure */
    clattn_variant variant_out = (clattn_variant)77;
    if (w == 0 || w == 1 || w == 2) {
        clattn_args a;
        dev_args(c, w == 1, &d, &a);
        if (w == 2) {
            st = clattn_plan_run(fx.plan[c->varlen], &a, NULL, 0, NULL, NULL);
            plan = NULL;
        } else {
            st = clattn_plan_create(fx.ctx, &d, &a, &plan);
        }
        err = clattn_context_last_error(fx.ctx);
    } else {
        clattn_host_args h;
        host_args(c, &d, &h);
        if (w == 3) {
            st = clattn_attention_host(fx.ctx, &d, &h, &variant_out);
            err = clattn_context_last_error(fx.ctx);
        } else {
            st = clattn_reference(&d, &h);
            err = NULL; /* no context: the status is all there is */
        }
        host_restore();
    }
    t->calls++;
    t->per[w]++;
    if (st != c->want) {
        failf(t, "  %s via %s: %s, want %s (%s)", c->name, where_names[w], clattn_status_name(st),
              clattn_status_name(c->want), err ? err : "");
    } else if (c->want != CLATTN_SUCCESS && err && c->needle && !strstr(err, c->needle)) {
        failf(t, "  %s via %s: last error does not name '%s': %s", c->name, where_names[w], c->needle, err);
    }
    if (c->want == CLATTN_SUCCESS && (w == 0 || w == 1)) {
        if (st == CLATTN_SUCCESS)
            clattn_plan_free(plan);
    } else if ((w == 0 || w == 1) && plan != NULL) {
        failf(t, "  %s via %s: *out not NULL after a failure", c->name, where_names[w]);
        plan = NULL;
    }
    if (w == 3 && variant_out != (clattn_variant)77 && st != CLATTN_SUCCESS)
        failf(t, "  %s via attention_host: variant_out written on failure", c->name);
    if ((touched = all_untouched()) != NULL) {
        failf(t, "  %s via %s: %s changed", c->name, where_names[w], touched);
        restore_all();
    }
    if (err && st != CLATTN_SUCCESS && !*err && c->want != CLATTN_ERROR_NULL_ARGUMENT)
        failf(t, "  %s via %s: empty last-error text", c->name, where_names[w]);
}

static int run_category(const category *cat, tally *t)
{
    memset(t, 0, sizeof *t);
    make_plans();
    for (int i = 0; i < cat->n; i++) {
        const bad_case *c = &cat->cases[i];
        if (c->want != CLATTN_SUCCESS)
            t->cases++;
        for (int w = 0; w < 5; w++)
            if (c->where & (1u << w))
                run_one(c, w, t);
    }
    return t->nfail;
}

START_TEST(table)
{
    const category *cat = &categories[_i];
    tally t;
    run_category(cat, &t);
    printf("badinput: %-9s %3d bad inputs, %4d calls (plan_create %d, metadata-only %d, plan_run %d, "
           "attention_host %d, reference %d)%s\n",
           cat->name, t.cases, t.calls, t.per[0], t.per[1], t.per[2], t.per[3], t.per[4],
           t.nfail ? "" : ", every one handled");
    if (t.nfail)
        printf("%s", t.fails);
    ck_assert_msg(t.nfail == 0, "%d of %d calls in '%s' misbehaved (listed above)", t.nfail, t.calls, cat->name);
}
END_TEST

/* ------------------------------------------------------------------ valid controls */

/* The valid problems compute the right thing on every entry point, so a bad
 * case fails because of its mutation. */
START_TEST(controls)
{
    double atol, rtol, nmse;
    ck_assert_int_eq(clattn_tolerance(CLATTN_F32, &atol, &rtol, &nmse), CLATTN_SUCCESS);
    make_plans();
    for (int v = 0; v < 2; v++) {
        const size_t no = v ? TQ * HQ * DV : NOE, nl = v ? TQ * HQ : NLE;
        const int bo = v ? BF_VO : BF_O, bl = v ? BF_VL : BF_L, oo = v ? 0 : OFF_O, ol = v ? 0 : OFF_L;
        float *ref_o = malloc(X4(no)), *ref_l = malloc(X4(nl)), *dev = malloc(X4(no + oo + CANARY));
        unsigned char *raw = (unsigned char *)dev;
        clattn_host_args h = fx.host[v];
        clattn_compare_result r;
        clattn_variant used = CLATTN_VARIANT_AUTO;
        ck_assert(ref_o && ref_l && dev);
        h.o.data = ref_o;
        h.lse.data = ref_l;
        ck_assert_int_eq(clattn_reference(NULL, &h), CLATTN_SUCCESS);
        /* plan_run on device buffers: compare, canaries and prefix still poison */
        ck_assert_int_eq(clattn_plan_run(fx.plan[v], &fx.dev[v], NULL, 0, NULL, NULL), CLATTN_SUCCESS);
        ck_assert_int_eq(clEnqueueReadBuffer(fx.queue, fx.buf[bo], CL_TRUE, 0, fx.size[bo], dev, 0, NULL, NULL),
                         CL_SUCCESS);
        r = clattn_compare_f32(dev + oo, ref_o, no);
        ck_assert_msg(clattn_compare_ok(&r, atol, rtol, nmse), "%s o: max err %g", v ? "varlen" : "dense",
                      r.max_abs_err);
        for (size_t i = 0; i < (size_t)X4(oo); i++)
            ck_assert_uint_eq(raw[i], POISON);
        for (size_t i = (size_t)X4(oo + no); i < fx.size[bo]; i++)
            ck_assert_uint_eq(raw[i], POISON);
        ck_assert_int_eq(clEnqueueReadBuffer(fx.queue, fx.buf[bl], CL_TRUE, 0, fx.size[bl], dev, 0, NULL, NULL),
                         CL_SUCCESS);
        r = clattn_compare_f32(dev + ol, ref_l, nl);
        ck_assert_msg(clattn_compare_ok(&r, 1e-5, 1e-5, 1e-7), "%s lse: max err %g", v ? "varlen" : "dense",
                      r.max_abs_err);
        for (size_t i = (size_t)X4(ol + nl); i < fx.size[bl]; i++)
            ck_assert_uint_eq(raw[i], POISON);
        /* the host call */
        ck_assert_int_eq(clattn_attention_host(fx.ctx, NULL, &fx.host[v], &used), CLATTN_SUCCESS);
        ck_assert_int_ne(used, CLATTN_VARIANT_AUTO);
        r = clattn_compare_f32(fx.h[T_O][v], ref_o, no);
        ck_assert_msg(clattn_compare_ok(&r, atol, rtol, nmse), "host o: max err %g", r.max_abs_err);
        r = clattn_compare_f32(fx.h[T_LSE][v], ref_l, nl);
        ck_assert_msg(clattn_compare_ok(&r, 1e-5, 1e-5, 1e-7), "host lse: max err %g", r.max_abs_err);
        for (size_t i = no; i < HOSTCAP; i++) /* nothing past the view */
            ck_assert_msg(isnan(fx.h[T_O][v][i]), "host o canary %zu", i);
        free(ref_o), free(ref_l), free(dev);
    }
    {
        /* A packed lse whose only nonzero stride is the ignored strides[3]
         * is the packed [H, total] layout (found by fuzz_problem: it was
         * validated as that layout while the kernels got all-zero strides). */
        clattn_args a = fx.dev[1];
        clattn_plan *plan = NULL;
        float ref_l[TQ * HQ], dev[TQ * HQ];
        clattn_host_args h = fx.host[1];
        clattn_compare_result r;
        a.lse.strides[3] = 7;
        h.o.data = fx.h[T_O][1];
        h.lse.data = ref_l;
        ck_assert_int_eq(clattn_reference(NULL, &h), CLATTN_SUCCESS);
        ck_assert_int_eq(clattn_plan_create(fx.ctx, NULL, &a, &plan), CLATTN_SUCCESS);
        ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
        ck_assert_int_eq(clEnqueueReadBuffer(fx.queue, fx.buf[BF_VL], CL_TRUE, 0, sizeof dev, dev, 0, NULL, NULL),
                         CL_SUCCESS);
        r = clattn_compare_f32(dev, ref_l, TQ * HQ);
        ck_assert_msg(clattn_compare_ok(&r, 1e-5, 1e-5, 1e-7), "packed lse with strides[3] 7: max err %g",
                      r.max_abs_err);
        clattn_plan_free(plan);
    }
    printf("badinput: controls  dense and varlen problems verified through plan_run, attention_host, reference\n");
}
END_TEST

/* ------------------------------------------------------------------ the API around problems */

#define N_API 102

typedef struct api_tally {
    int n;
    tally t;
} api_tally;

/* One API check: status got vs want, the last error (if ctx) names needle. */
static void api_check(api_tally *a, const char *what, clattn_status got, clattn_status want, const char *needle)
{
    a->n++;
    if (got != want)
        failf(&a->t, "  %s: %s, want %s (%s)", what, clattn_status_name(got), clattn_status_name(want),
              fx.ctx ? clattn_context_last_error(fx.ctx) : "");
    else if (needle && !strstr(clattn_context_last_error(fx.ctx), needle))
        failf(&a->t, "  %s: last error does not name '%s': %s", what, needle, clattn_context_last_error(fx.ctx));
}

static void api_true(api_tally *a, const char *what, int ok)
{
    a->n++;
    if (!ok)
        failf(&a->t, "  %s", what);
}

START_TEST(api)
{
    api_tally a;
    clattn_context *c = (clattn_context *)&a;
    clattn_plan *plan = (clattn_plan *)&a;
    unsigned pi = 77, di = 77;
    clattn_variant var = (clattn_variant)77;
    cl_device_id dev;
    cl_context c2;
    cl_command_queue q2;
    cl_int err;
    cl_event ev = NULL;
    int applicable = 0;
    memset(&a, 0, sizeof a);
    make_plans();
    clattn_context_cl(fx.ctx, NULL, &dev, NULL);

    /* device specs: every one that names nothing or is malformed */
    static const struct {
        const char *spec;
        clattn_status want;
    } specs[] = {
        {"9:9", CLATTN_ERROR_NO_DEVICE},
        {"0:999", CLATTN_ERROR_NO_DEVICE},
        {"18446744073709551617:0", CLATTN_ERROR_NO_DEVICE},
        {"1:x", CLATTN_ERROR_INVALID_DEVICE_SPEC},
        {"0:", CLATTN_ERROR_INVALID_DEVICE_SPEC},
        {"0:0:0", CLATTN_ERROR_INVALID_DEVICE_SPEC},
        {"0:-1", CLATTN_ERROR_INVALID_DEVICE_SPEC},
        {"no-such-device-name-xyzzy", CLATTN_ERROR_NO_DEVICE},
        {"accelerator-xyzzy", CLATTN_ERROR_NO_DEVICE},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        char what[96];
        c = (clattn_context *)&a;
        snprintf(what, sizeof what, "context_create('%s')", specs[i].spec);
        api_check(&a, what, clattn_context_create(specs[i].spec, &c), specs[i].want, NULL);
        api_true(&a, "context_create: *out NULL after a failure", c == NULL);
        if (c && c != (clattn_context *)&a)
            clattn_context_free(c); /* a spec that unexpectedly names a device here */
        snprintf(what, sizeof what, "device_select('%s')", specs[i].spec);
        pi = di = 77;
        api_check(&a, what, clattn_device_select(specs[i].spec, &pi, &di), specs[i].want, NULL);
        api_true(&a, "device_select: indices untouched after a failure", pi == 77 && di == 77);
    }
    api_check(&a, "context_create(out NULL)", clattn_context_create("cpu", NULL), CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "device_select(platform NULL)", clattn_device_select(NULL, NULL, &di), CLATTN_ERROR_NULL_ARGUMENT,
              NULL);
    api_check(&a, "device_select(device NULL)", clattn_device_select(NULL, &pi, NULL), CLATTN_ERROR_NULL_ARGUMENT,
              NULL);
    setenv("CLATTN_DEVICE", "3:z", 1);
    api_check(&a, "CLATTN_DEVICE=3:z", clattn_context_create(NULL, &c), CLATTN_ERROR_INVALID_DEVICE_SPEC, NULL);
    setenv("CLATTN_DEVICE", "no-such-device-name-xyzzy", 1);
    api_check(&a, "CLATTN_DEVICE=no-such", clattn_context_create("", &c), CLATTN_ERROR_NO_DEVICE, NULL);
    unsetenv("CLATTN_DEVICE");

    /* adopting OpenCL objects that do not belong together */
    c2 = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    q2 = clCreateCommandQueue(c2, dev, 0, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    api_check(&a, "adopt(ctx NULL)", clattn_context_adopt(NULL, dev, q2, &c), CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "adopt(device NULL)", clattn_context_adopt(c2, NULL, q2, &c), CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "adopt(queue NULL)", clattn_context_adopt(c2, dev, NULL, &c), CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "adopt(out NULL)", clattn_context_adopt(c2, dev, q2, NULL), CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "adopt(queue of another context)", clattn_context_adopt(fx.clctx, dev, q2, &c),
              CLATTN_ERROR_INVALID_VALUE, NULL);
    api_true(&a, "adopt: *out NULL after a failure", c == NULL);
    clReleaseCommandQueue(q2);
    clReleaseContext(c2);

    /* NULL handles and pointers */
    api_check(&a, "context_cl(NULL)", clattn_context_cl(NULL, NULL, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_true(&a, "context_last_error(NULL)", strcmp(clattn_context_last_error(NULL), "no context") == 0);
    api_true(&a, "context_device_name(NULL)", strcmp(clattn_context_device_name(NULL), "") == 0);
    api_check(&a, "plan_create(ctx NULL)", clattn_plan_create(NULL, NULL, &fx.dev[0], &plan),
              CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "plan_create(out NULL)", clattn_plan_create(fx.ctx, NULL, &fx.dev[0], NULL),
              CLATTN_ERROR_NULL_ARGUMENT, "out");
    api_check(&a, "plan_create(args NULL)", clattn_plan_create(fx.ctx, NULL, NULL, &plan), CLATTN_ERROR_NULL_ARGUMENT,
              "args");
    api_true(&a, "plan_create: *out NULL after a failure", plan == NULL);
    api_check(&a, "plan_run(plan NULL)", clattn_plan_run(NULL, &fx.dev[0], NULL, 0, NULL, NULL),
              CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "plan_run(args NULL)", clattn_plan_run(fx.plan[0], NULL, NULL, 0, NULL, NULL),
              CLATTN_ERROR_NULL_ARGUMENT, "args");
    api_check(&a, "plan_run(1 event, list NULL)", clattn_plan_run(fx.plan[0], &fx.dev[0], NULL, 1, NULL, NULL),
              CLATTN_ERROR_INVALID_VALUE, "wait");
    api_check(&a, "plan_run(0 events, list given)", clattn_plan_run(fx.plan[0], &fx.dev[0], NULL, 0, &ev, NULL),
              CLATTN_ERROR_INVALID_VALUE, "wait");
    api_check(&a, "attention_host(ctx NULL)", clattn_attention_host(NULL, NULL, &fx.host[0], &var),
              CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "attention_host(args NULL)", clattn_attention_host(fx.ctx, NULL, NULL, &var),
              CLATTN_ERROR_NULL_ARGUMENT, "args");
    api_true(&a, "attention_host: variant_out untouched", var == (clattn_variant)77);
    api_check(&a, "reference(args NULL)", clattn_reference(NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "device_probe_run(ctx NULL)", clattn_device_probe_run(NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT,
              NULL);
    api_check(&a, "device_probe_run(out NULL)", clattn_device_probe_run(fx.ctx, NULL), CLATTN_ERROR_NULL_ARGUMENT,
              "out");
    api_check(&a, "tuning_file_load(ctx NULL)", clattn_tuning_file_load(NULL, NULL, &applicable),
              CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "tuning_file_load(applicable NULL)", clattn_tuning_file_load(fx.ctx, "x.json", NULL),
              CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_true(&a, "plan_variant(NULL)", clattn_plan_variant(NULL) == CLATTN_VARIANT_AUTO);
    api_true(&a, "plan_params_json(NULL)", strcmp(clattn_plan_params_json(NULL), "{}") == 0);
    api_true(&a, "plan_device_bytes(NULL)", clattn_plan_device_bytes(NULL) == 0);
    clattn_plan_free(NULL);
    clattn_context_free(NULL);
    clattn_npy_free(NULL);

    /* enum helpers */
    static const char *const bad_names[] = {"", "Naive", "naive ", " flash", "flash\n", "autox", "gemm2", "NAIVE"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        char what[64];
        var = (clattn_variant)77;
        snprintf(what, sizeof what, "variant_parse('%s')", bad_names[i]);
        api_check(&a, what, clattn_variant_parse(bad_names[i], &var), CLATTN_ERROR_UNKNOWN_VARIANT, NULL);
        api_true(&a, "variant_parse: output untouched after a failure", var == (clattn_variant)77);
    }
    api_check(&a, "variant_parse(NULL name)", clattn_variant_parse(NULL, &var), CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_check(&a, "variant_parse(NULL out)", clattn_variant_parse("naive", NULL), CLATTN_ERROR_NULL_ARGUMENT, NULL);
    api_true(&a, "variant_name(-1)", strcmp(clattn_variant_name((clattn_variant)-1), "?") == 0);
    api_true(&a, "variant_name(COUNT)", strcmp(clattn_variant_name(CLATTN_VARIANT_COUNT_), "?") == 0);
    api_true(&a, "dtype_name(3)", strcmp(clattn_dtype_name((clattn_dtype)3), "?") == 0);
    api_true(&a, "dtype_size(-1)", clattn_dtype_size((clattn_dtype)-1) == 0);
    {
        double at = -1, rt = -1, mn = -1;
        api_check(&a, "tolerance(dtype 3)", clattn_tolerance((clattn_dtype)3, &at, &rt, &mn), CLATTN_ERROR_INVALID_DTYPE,
                  NULL);
        api_check(&a, "tolerance(dtype -1)", clattn_tolerance((clattn_dtype)-1, &at, &rt, &mn),
                  CLATTN_ERROR_INVALID_DTYPE, NULL);
        api_true(&a, "tolerance: outputs untouched after a failure", at == -1 && rt == -1 && mn == -1);
    }
    {
        const float x[2] = {1, 2};
        clattn_compare_result r = clattn_compare_f32(NULL, x, 2);
        api_true(&a, "compare_f32(NULL): no metrics", r.count == 2 && r.max_abs_err == 0 && r.nmse == 0);
        api_true(&a, "compare_ok(NULL) fails", !clattn_compare_ok(NULL, 1, 1, 1));
    }
    api_true(&a, "npy_type_size(99)", clattn_npy_type_size((clattn_npy_type)99) == 0);

    /* variant requests the library cannot honour */
    setenv("CLATTN_VARIANT", "bogus", 1);
    api_check(&a, "CLATTN_VARIANT=bogus", clattn_plan_create(fx.ctx, NULL, &fx.dev[0], &plan),
              CLATTN_ERROR_UNKNOWN_VARIANT, "CLATTN_VARIANT");
    setenv("CLATTN_VARIANT", "Flash", 1);
    api_check(&a, "CLATTN_VARIANT=Flash", clattn_plan_create(fx.ctx, NULL, &fx.dev[0], &plan),
              CLATTN_ERROR_UNKNOWN_VARIANT, "Flash");
    unsetenv("CLATTN_VARIANT");
    {
        clattn_attention_desc d;
        clattn_args m = fx.dev[0];
        memset(&d, 0, sizeof d);
        d.variant = CLATTN_VARIANT_DECODE;
        m.q.buffer = m.k.buffer = m.v.buffer = m.o.buffer = m.lse.buffer = m.bias.buffer = NULL;
        m.alibi = m.key_lengths = NULL;
        m.has_lse = m.has_bias = m.has_alibi = m.has_key_lengths = 1;
        m.q.shape[2] = m.o.shape[2] = m.lse.shape[2] = m.bias.shape[2] = 40;
        set_strides(&m.q), set_strides(&m.o), set_strides(&m.bias);
        set_strides(&m.lse), m.lse.strides[3] = 0;
        api_check(&a, "decode asked for 40 query rows", clattn_plan_create(fx.ctx, &d, &m, &plan),
                  CLATTN_ERROR_UNSUPPORTED, "decode");
    }
    api_true(&a, "plan_create: *out NULL after the failures", plan == NULL);
    api_true(&a, "nothing written", all_untouched() == NULL);

    printf("badinput: api       %3d checks (device specs, adoption, NULL handles and pointers, wait lists, enum "
           "helpers, variant requests)%s\n",
           a.n, a.t.nfail ? "" : ", every one handled");
    if (a.t.nfail)
        printf("%s", a.t.fails);
    ck_assert_msg(a.t.nfail == 0, "%d API checks failed (listed above)", a.t.nfail);
    ck_assert_msg(a.n == N_API, "ran %d API checks, the total below counts %d", a.n, N_API);
}
END_TEST

/* ------------------------------------------------------------------ tuning files */

static const struct {
    const char *name;
    const char *text; /* NULL: built by the test */
    clattn_status want;
    const char *needle;
} tune_cases[] = {
    {"empty file", "", CLATTN_ERROR_TUNING_FILE, "expected '{'"},
    {"not JSON", "tuning: yes", CLATTN_ERROR_TUNING_FILE, "expected '{'"},
    {"empty object", "{}", CLATTN_ERROR_TUNING_FILE, "expected"},
    {"format 2", "{\"format\": 2, \"entries\": []}", CLATTN_ERROR_TUNING_FILE, "unknown format version"},
    {"format 1.5", "{\"format\": 1.5, \"entries\": []}", CLATTN_ERROR_TUNING_FILE, "unknown format version"},
    {"format as a string", "{\"format\": \"1\", \"entries\": []}", CLATTN_ERROR_TUNING_FILE, "expected a value"},
    {"no entries", "{\"format\": 1}", CLATTN_ERROR_TUNING_FILE, "not a clattn tuning file"},
    {"no format", "{\"entries\": []}", CLATTN_ERROR_TUNING_FILE, "not a clattn tuning file"},
    {"entries an object", "{\"format\": 1, \"entries\": {}}", CLATTN_ERROR_TUNING_FILE, "expected '['"},
    {"empty entry", "{\"format\": 1, \"entries\": [{}]}", CLATTN_ERROR_TUNING_FILE, "empty entry"},
    {"entry without vec",
     "{\"format\": 1, \"entries\": [{\"device\": \"d\", \"driver\": \"r\", \"variant\": \"flash\", \"d_max\": 64, "
     "\"block_m\": 16, \"block_n\": 64, \"rows\": 4, \"tpr\": 1}]}",
     CLATTN_ERROR_TUNING_FILE, "lacks"},
    {"block_m 0",
     "{\"format\": 1, \"entries\": [{\"device\": \"d\", \"driver\": \"r\", \"variant\": \"flash\", \"d_max\": 64, "
     "\"block_m\": 0, \"block_n\": 64, \"rows\": 4, \"tpr\": 1, \"vec\": 4}]}",
     CLATTN_ERROR_TUNING_FILE, "out of 1..4096"},
    {"block_n 5000",
     "{\"format\": 1, \"entries\": [{\"device\": \"d\", \"driver\": \"r\", \"variant\": \"flash\", \"d_max\": 64, "
     "\"block_m\": 16, \"block_n\": 5000, \"rows\": 4, \"tpr\": 1, \"vec\": 4}]}",
     CLATTN_ERROR_TUNING_FILE, "out of 1..4096"},
    {"tpr 2.5",
     "{\"format\": 1, \"entries\": [{\"device\": \"d\", \"driver\": \"r\", \"variant\": \"flash\", \"d_max\": 64, "
     "\"block_m\": 16, \"block_n\": 64, \"rows\": 4, \"tpr\": 2.5, \"vec\": 4}]}",
     CLATTN_ERROR_TUNING_FILE, "out of 1..4096"},
    {"d_max -64",
     "{\"format\": 1, \"entries\": [{\"device\": \"d\", \"driver\": \"r\", \"variant\": \"flash\", \"d_max\": -64, "
     "\"block_m\": 16, \"block_n\": 64, \"rows\": 4, \"tpr\": 1, \"vec\": 4}]}",
     CLATTN_ERROR_TUNING_FILE, "out of 1..4096"},
    {"vec 3",
     "{\"format\": 1, \"entries\": [{\"device\": \"d\", \"driver\": \"r\", \"variant\": \"flash\", \"d_max\": 64, "
     "\"block_m\": 16, \"block_n\": 64, \"rows\": 4, \"tpr\": 1, \"vec\": 3}]}",
     CLATTN_ERROR_TUNING_FILE, "vec other than 1 and 4"},
    {"rows 3 of block_m 16",
     "{\"format\": 1, \"entries\": [{\"device\": \"d\", \"driver\": \"r\", \"variant\": \"flash\", \"d_max\": 64, "
     "\"block_m\": 16, \"block_n\": 64, \"rows\": 3, \"tpr\": 1, \"vec\": 4}]}",
     CLATTN_ERROR_TUNING_FILE, "rows not dividing"},
    {"trailing text", "{\"format\": 1, \"entries\": []} and more", CLATTN_ERROR_TUNING_FILE, "trailing text"},
    {"unterminated string", "{\"format\": 1, \"entries\": [], \"note\": \"abc", CLATTN_ERROR_TUNING_FILE,
     "unterminated string"},
    {"bad escape", "{\"format\": 1, \"entries\": [], \"note\": \"a\\nb\"}", CLATTN_ERROR_TUNING_FILE,
     "unsupported escape"},
    {"control character", "{\"format\": 1, \"entries\": [], \"note\": \"a\tb\"}", CLATTN_ERROR_TUNING_FILE,
     "control character"},
    {"malformed number", "{\"format\": 1e, \"entries\": []}", CLATTN_ERROR_TUNING_FILE, "malformed number"},
    {"nesting 40 deep", NULL, CLATTN_ERROR_TUNING_FILE, "nesting too deep"},
    {"device name of 300 characters", NULL, CLATTN_ERROR_TUNING_FILE, "string too long"},
    {"1025 entries", NULL, CLATTN_ERROR_TUNING_FILE, "too many entries"},
    {"5 MiB file", NULL, CLATTN_ERROR_TUNING_FILE, "larger than"},
    {"missing file", NULL, CLATTN_ERROR_IO, "No such file"},
    {"malformed after a missing one", "not json", CLATTN_ERROR_TUNING_FILE, "expected '{'"},
    {"a directory", NULL, CLATTN_ERROR_IO, "directory"},
};
#define N_TUNE (int)(sizeof tune_cases / sizeof tune_cases[0])

/* The text of the generated cases; malloc'ed. */
static char *tune_text(int i, size_t *len)
{
    const char *name = tune_cases[i].name;
    char *s = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&s, &n);
    ck_assert_ptr_nonnull(m);
    if (!strcmp(name, "nesting 40 deep")) {
        fputs("{\"format\": 1, \"entries\": [], \"x\": ", m);
        for (int k = 0; k < 40; k++)
            fputc('[', m);
        for (int k = 0; k < 40; k++)
            fputc(']', m);
        fputc('}', m);
    } else if (!strcmp(name, "device name of 300 characters")) {
        fputs("{\"format\": 1, \"entries\": [{\"device\": \"", m);
        for (int k = 0; k < 300; k++)
            fputc('d', m);
        fputs("\", \"driver\": \"r\", \"variant\": \"flash\", \"d_max\": 64, \"block_m\": 16, \"block_n\": 64, "
              "\"rows\": 4, \"tpr\": 1, \"vec\": 4}]}",
              m);
    } else if (!strcmp(name, "1025 entries")) {
        fputs("{\"format\": 1, \"entries\": [", m);
        for (int k = 0; k < 1025; k++)
            fprintf(m, "%s{\"device\": \"d\", \"driver\": \"r\", \"variant\": \"flash\", \"d_max\": 64, "
                       "\"block_m\": 16, \"block_n\": 64, \"rows\": 4, \"tpr\": 1, \"vec\": 4}",
                    k ? "," : "");
        fputs("]}", m);
    } else if (!strcmp(name, "5 MiB file")) {
        fputs("{\"format\": 1, \"entries\": [], \"pad\": \"", m);
        for (int k = 0; k < 5 << 20; k++)
            fputc('x', m);
        fputs("\"}", m);
    }
    fclose(m);
    *len = n;
    return s;
}

START_TEST(tuning_files)
{
    tally t;
    int applicable;
    char path[512];
    memset(&t, 0, sizeof t);
    for (int i = 0; i < N_TUNE; i++) {
        clattn_status st;
        snprintf(path, sizeof path, "%s/tune-bad-%d.json", test_tmpdir(), i);
        if (!strcmp(tune_cases[i].name, "missing file")) {
            snprintf(path, sizeof path, "%s/no-such-dir/tuning.json", test_tmpdir());
        } else if (!strcmp(tune_cases[i].name, "a directory")) {
            snprintf(path, sizeof path, "%s", test_tmpdir());
        } else {
            size_t len = 0;
            char *gen = tune_cases[i].text ? NULL : tune_text(i, &len);
            FILE *f = fopen(path, "wb");
            ck_assert_ptr_nonnull(f);
            if (gen)
                fwrite(gen, 1, len, f);
            else
                fputs(tune_cases[i].text, f);
            fclose(f);
            free(gen);
        }
        applicable = 77;
        st = clattn_tuning_file_load(fx.ctx, path, &applicable);
        t.calls++;
        if (st != tune_cases[i].want)
            failf(&t, "  %s: %s, want %s (%s)", tune_cases[i].name, clattn_status_name(st),
                  clattn_status_name(tune_cases[i].want), clattn_context_last_error(fx.ctx));
        else if (!strstr(clattn_context_last_error(fx.ctx), tune_cases[i].needle))
            failf(&t, "  %s: last error does not say '%s': %s", tune_cases[i].name, tune_cases[i].needle,
                  clattn_context_last_error(fx.ctx));
        else if (!strstr(clattn_context_last_error(fx.ctx), path))
            failf(&t, "  %s: last error does not name the file: %s", tune_cases[i].name,
                  clattn_context_last_error(fx.ctx));
        if (applicable != 0)
            failf(&t, "  %s: *applicable = %d after a failure", tune_cases[i].name, applicable);
    }
    /* a malformed file named by CLATTN_TUNING_FILE is ignored by the scheduler */
    snprintf(path, sizeof path, "%s/tune-bad-0.json", test_tmpdir());
    setenv("CLATTN_TUNING_FILE", path, 1);
    {
        clattn_plan *plan = NULL;
        clattn_status st = clattn_plan_create(fx.ctx, NULL, &fx.dev[0], &plan);
        if (st != CLATTN_SUCCESS)
            failf(&t, "  plan with a malformed CLATTN_TUNING_FILE: %s", clattn_status_name(st));
        clattn_plan_free(plan);
        st = clattn_tuning_file_load(fx.ctx, NULL, &applicable);
        if (st != CLATTN_ERROR_TUNING_FILE)
            failf(&t, "  load(NULL) of a malformed CLATTN_TUNING_FILE: %s", clattn_status_name(st));
    }
    unsetenv("CLATTN_TUNING_FILE");
    printf("badinput: tuning    %3d malformed or missing tuning files%s\n", N_TUNE,
           t.nfail ? "" : ", every one handled");
    if (t.nfail)
        printf("%s", t.fails);
    ck_assert_msg(t.nfail == 0, "%d tuning-file cases failed (listed above)", t.nfail);
}
END_TEST

/* ------------------------------------------------------------------ larger than the device */

#define N_LIMIT 7

/* Problems whose device memory exceeds the device: refused up front with
 * CLATTN_ERROR_DEVICE_LIMIT (or, for an explicitly requested variant that
 * would need more scratch than one buffer may hold, UNSUPPORTED saying so),
 * before a single device buffer is created. The host arrays stay tiny: the
 * shapes are metadata the library must reject before reading them. */
START_TEST(device_limit)
{
    tally t;
    cl_ulong max_alloc = fx.ctx->max_alloc, global = fx.ctx->global_mem;
    const int64_t big_rows = (int64_t)(max_alloc / (256 * 4)) + 1; /* [1,1,big_rows,256] f32 > max_alloc */
    int n = 0, skipped = 0;
    memset(&t, 0, sizeof t);
    ck_assert(max_alloc > 0 && global > 0);
    ck_assert_msg(big_rows <= INT32_MAX, "the device allows %llu-byte buffers: beyond this test's shapes",
                  (unsigned long long)max_alloc);

    /* host calls */
    for (int c = 0; c < 5; c++) {
        clattn_host_args h;
        clattn_variant used = (clattn_variant)77;
        const long allocs = clattn__buffer_allocations();
        const char *needle;
        clattn_status st;
        memset(&h, 0, sizeof h);
        h.q = (clattn_host_tensor){fx.h[T_Q][0], CLATTN_F32, {1, 1, 1, 256}};
        h.k = (clattn_host_tensor){fx.h[T_K][0], CLATTN_F32, {1, 1, 1, 256}};
        h.v = (clattn_host_tensor){fx.h[T_V][0], CLATTN_F32, {1, 1, 1, 256}};
        h.o = (clattn_host_tensor){fx.h[T_O][0], CLATTN_F32, {1, 1, 1, 256}};
        switch (c) {
        case 0: /* q alone beyond the largest buffer */
            h.q.shape[2] = h.o.shape[2] = big_rows;
            needle = "q: ";
            break;
        case 1: /* k */
            h.k.shape[2] = h.v.shape[2] = big_rows;
            needle = "k: ";
            break;
        case 2: /* o: Dv 256 of D 1 */
            h.q.shape[3] = h.k.shape[3] = 1;
            h.q.shape[2] = h.o.shape[2] = big_rows;
            needle = "o: ";
            break;
        case 3: { /* a full bias [1, 4, N, N] */
            const int64_t side = (int64_t)sqrt((double)max_alloc / 16.0) + 2;
            h.q.shape[1] = h.o.shape[1] = 4, h.q.shape[2] = h.o.shape[2] = side;
            h.k.shape[2] = h.v.shape[2] = side;
            h.q.shape[3] = h.k.shape[3] = h.v.shape[3] = h.o.shape[3] = 8;
            h.bias = (clattn_host_tensor){fx.h[T_BIAS][0], CLATTN_F32, {1, 4, side, side}};
            needle = "bias: ";
            break;
        }
        default: { /* each buffer fits, all of them together do not */
            const int64_t rows = (int64_t)(global / 4 / (256 * 4)) + 1;
            if ((cl_ulong)rows * 256 * 4 > max_alloc) {
                printf("badinput: limit     skipped 'sum of buffers beyond global memory': each buffer would "
                       "exceed CL_DEVICE_MAX_MEM_ALLOC_SIZE on this device\n");
                skipped++;
                continue;
            }
            h.q.shape[2] = h.o.shape[2] = h.k.shape[2] = h.v.shape[2] = rows;
            needle = "CL_DEVICE_GLOBAL_MEM_SIZE";
            break;
        }
        }
        st = clattn_attention_host(fx.ctx, NULL, &h, &used);
        n++;
        if (st != CLATTN_ERROR_DEVICE_LIMIT)
            failf(&t, "  host case %d: %s, want CLATTN_ERROR_DEVICE_LIMIT (%s)", c, clattn_status_name(st),
                  clattn_context_last_error(fx.ctx));
        else if (!strstr(clattn_context_last_error(fx.ctx), needle))
            failf(&t, "  host case %d: last error does not name '%s': %s", c, needle,
                  clattn_context_last_error(fx.ctx));
        if (clattn__buffer_allocations() != allocs)
            failf(&t, "  host case %d: %ld device buffers created before refusing", c,
                  clattn__buffer_allocations() - allocs);
        if (used != (clattn_variant)77)
            failf(&t, "  host case %d: variant_out written", c);
    }
    /* plans (metadata only) whose variant needs scratch beyond the device */
    {
        clattn_attention_desc d;
        clattn_args m;
        clattn_plan *plan = NULL;
        clattn_status st;
        long allocs = clattn__buffer_allocations();
        memset(&d, 0, sizeof d);
        memset(&m, 0, sizeof m);
        /* gemm: one row's packed K (Nk x D f32) alone exceeds the largest buffer */
        d.variant = CLATTN_VARIANT_GEMM;
        m.q = clattn_tensor_make(NULL, 0, CLATTN_F32, 1, 1, 1, 256);
        m.k = clattn_tensor_make(NULL, 0, CLATTN_F32, 1, 1, big_rows, 256);
        m.v = clattn_tensor_make(NULL, 0, CLATTN_F32, 1, 1, big_rows, 256);
        m.o = clattn_tensor_make(NULL, 0, CLATTN_F32, 1, 1, 1, 256);
        st = clattn_plan_create(fx.ctx, &d, &m, &plan);
        n++;
        if (st != CLATTN_ERROR_UNSUPPORTED || !strstr(clattn_context_last_error(fx.ctx), "allocation limit"))
            failf(&t, "  gemm beyond the allocation limit: %s (%s)", clattn_status_name(st),
                  clattn_context_last_error(fx.ctx));
        clattn_plan_free(plan);
        plan = NULL;
        /* decode: the partial outputs of every (row, split) beyond the largest buffer */
        d.variant = CLATTN_VARIANT_DECODE;
        {
            const int64_t batch = (int64_t)(max_alloc / (64 * 16 * 8 * 4)) + 1;
            m.q = clattn_tensor_make(NULL, 0, CLATTN_F32, batch, 64, 16, 8);
            m.k = clattn_tensor_make(NULL, 0, CLATTN_F32, batch, 8, 64, 8);
            m.v = clattn_tensor_make(NULL, 0, CLATTN_F32, batch, 8, 64, 8);
            m.o = clattn_tensor_make(NULL, 0, CLATTN_F32, batch, 64, 16, 8);
        }
        st = clattn_plan_create(fx.ctx, &d, &m, &plan);
        n++;
        if (st != CLATTN_ERROR_DEVICE_LIMIT || !strstr(clattn_context_last_error(fx.ctx), "decode"))
            failf(&t, "  decode partials beyond the allocation limit: %s (%s)", clattn_status_name(st),
                  clattn_context_last_error(fx.ctx));
        clattn_plan_free(plan);
        plan = NULL;
        if (clattn__buffer_allocations() != allocs)
            failf(&t, "  plans: %ld device buffers created before refusing", clattn__buffer_allocations() - allocs);
        /* control: the fused variants need no scratch, whatever the size */
        d.variant = CLATTN_VARIANT_AUTO;
        m.q = clattn_tensor_make(NULL, 0, CLATTN_F32, 64, 64, 1 << 20, 128);
        m.k = clattn_tensor_make(NULL, 0, CLATTN_F32, 64, 8, 1 << 20, 128);
        m.v = clattn_tensor_make(NULL, 0, CLATTN_F32, 64, 8, 1 << 20, 128);
        m.o = clattn_tensor_make(NULL, 0, CLATTN_F32, 64, 64, 1 << 20, 128);
        st = clattn_plan_create(fx.ctx, &d, &m, &plan);
        if (st != CLATTN_SUCCESS || clattn_plan_device_bytes(plan) != 0)
            failf(&t, "  control: a 2 TiB problem of a fused variant: %s, %zu scratch bytes", clattn_status_name(st),
                  clattn_plan_device_bytes(plan));
        clattn_plan_free(plan);
    }
    {
        const char *touched = all_untouched();
        if (touched)
            failf(&t, "  %s changed", touched);
    }
    printf("badinput: limit     %3d problems beyond the device (max alloc %llu, global %llu bytes) refused before "
           "allocating%s\n",
           n, (unsigned long long)max_alloc, (unsigned long long)global, t.nfail ? "" : ", every one handled");
    if (t.nfail)
        printf("%s", t.fails);
    ck_assert_msg(t.nfail == 0, "%d device-limit cases failed (listed above)", t.nfail);
    ck_assert_int_eq(n + skipped, N_LIMIT);
}
END_TEST

/* ------------------------------------------------------------------ totals */

START_TEST(totals)
{
    int cases = 0, calls = 0;
    for (int c = 0; c < NCAT; c++)
        for (int i = 0; i < categories[c].n; i++) {
            const bad_case *b = &categories[c].cases[i];
            if (b->want == CLATTN_SUCCESS)
                continue;
            cases++;
            for (int w = 0; w < 5; w++)
                calls += (b->where >> w) & 1;
        }
    printf("badinput: total     %d bad inputs through the API (%d table cases in %d calls, %d API checks, %d tuning "
           "files, %d beyond the device)\n",
           cases + N_API + N_TUNE + N_LIMIT, cases, calls, N_API, N_TUNE, N_LIMIT);
    ck_assert_int_ge(cases + N_API + N_TUNE + N_LIMIT, 300);
}
END_TEST

Suite *suite_badinput(void)
{
    Suite *s = suite_create("badinput");
    TCase *tc = tcase_create("badinput");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_add_test(tc, controls);
    tcase_add_loop_test(tc, table, 0, NCAT);
    tcase_add_test(tc, api);
    tcase_add_test(tc, tuning_files);
    tcase_add_test(tc, device_limit);
    tcase_add_test(tc, totals);
    suite_add_tcase(s, tc);
    return s;
}
