/*
 * common.cl - what every attention kernel shares: storage formats (loads
 * widen to float, stores round to nearest even), the kept-key interval of a
 * query row, and the score modifiers (scale, softcap, ALiBi, bias).
 *
 * The host compiles it ahead of each kernel file with -DCLATTN_COMMON=1; a
 * kernel file compiled on its own #includes it instead. Feature switches
 * default to off so that the file compiles standalone.
 */
#ifndef CLATTN_COMMON_CL
#define CLATTN_COMMON_CL

#ifndef HEAD_DIM
#define HEAD_DIM 64 /* D of q and k */
#endif
#ifndef HEAD_DIM_V
#define HEAD_DIM_V HEAD_DIM /* Dv of v and o */
#endif
#ifndef IN_DTYPE
#define IN_DTYPE 0 /* storage of q, k, v: 0 f32, 1 f16, 2 bf16 */
#endif
#ifndef OUT_DTYPE
#define OUT_DTYPE 0 /* storage of o */
#endif
#ifndef CAUSAL
#define CAUSAL 0
#endif
#ifndef HAS_WINDOW
#define HAS_WINDOW 0
#endif
#ifndef HAS_SOFTCAP
#define HAS_SOFTCAP 0
#endif
#ifndef HAS_ALIBI
#define HAS_ALIBI 0
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif
#ifndef HAS_KEYLEN
#define HAS_KEYLEN 0
#endif
#ifndef HAS_LSE
#define HAS_LSE 0
#endif

/* ---- storage formats */
#if IN_DTYPE == 0
typedef float in_t;
#define LOAD_IN(p, i) ((p)[(i)])
#elif IN_DTYPE == 1
typedef half in_t; /* only through vload_half: no cl_khr_fp16 needed */
#define LOAD_IN(p, i) vload_half((size_t)(i), (p))
#else
typedef ushort in_t;
#define LOAD_IN(p, i) as_float((uint)(p)[(i)] << 16)
#endif

#if OUT_DTYPE == 0
typedef float out_t;
#define STORE_OUT(p, i, x) ((p)[(i)] = (x))
#elif OUT_DTYPE == 1
typedef half out_t;
#define STORE_OUT(p, i, x) vstore_half_rte((x), (size_t)(i), (p))
#else
typedef ushort out_t;
inline ushort f32_to_bf16(float x)
{
    uint u = as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (ushort)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}
#define STORE_OUT(p, i, x) ((p)[(i)] = f32_to_bf16(x))
#endif

/* The kernel arguments every attention kernel takes, in this order (the host
 * sets them in one place). Offsets are in elements, strides in elements. */
#define ATTN_KERNEL_ARGS                                                          \
    __global const in_t *q, ulong q_off, long qsb, long qsh, long qsn, long qsd,  \
    __global const in_t *k, ulong k_off, long ksb, long ksh, long ksn, long ksd,  \
    __global const in_t *v, ulong v_off, long vsb, long vsh, long vsn, long vsd,  \
    __global out_t *o, ulong o_off, long osb, long osh, long osn, long osd,       \
    __global float *lse, ulong lse_off, long lsb, long lsh, long lsn,             \
    __global const float *bias, ulong bias_off, long bsb, long bsh, long bsn, long bsk, \
    __global const float *alibi, ulong alibi_off,                                 \
    __global const int *key_len, ulong key_len_off,                               \
    int n_q, int n_k, int heads_per_kv, float scale, long diag_off,               \
    int win_left, int win_right, float softcap

/* Kept keys of rows [i0, i1] of batch b, as one interval [*lo, *hi): each
 * mask is an interval, so their intersection is too. For a single row
 * (i0 == i1) it is exact; for a block it is the union's hull (tiles outside
 * it are wholly masked and can be skipped). */
inline void kept_range(long i0, long i1, long n_k, long diag_off, int win_left, int win_right, int klen,
                       long *lo, long *hi)
{
    long l = 0, h = n_k;
#if HAS_KEYLEN
    h = min(h, (long)klen);
#endif
#if CAUSAL
    h = min(h, i1 + diag_off + 1);
#endif
#if HAS_WINDOW
    if (win_left >= 0)
        l = max(l, i0 + diag_off - win_left);
    if (win_right >= 0)
        h = min(h, i1 + diag_off + win_right + 1);
#endif
    *lo = l;
    *hi = h;
}

/* Score modifiers after the scaled dot product (bias_row: the bias element
 * of key 0 for this row, only read when HAS_BIAS). */
inline float finish_score(float s, float softcap, float slope, long diag, long j, __global const float *bias,
                          long bias_row, long bsk)
{
#if HAS_SOFTCAP
    s = softcap * tanh(s / softcap);
#endif
#if HAS_ALIBI
    s -= slope * fabs((float)(diag - j));
#endif
#if HAS_BIAS
    s += bias[bias_row + j * bsk];
#endif
    return s;
}

#endif /* CLATTN_COMMON_CL */
