/*
 * naive.cl - fused attention, one work-item per query row.
 *
 * Two passes over the kept keys of the row: the first finds the row maximum
 * of the scores, the second accumulates exp(s - max) and the weighted sum of V.
 * Nothing of size Nk is stored. The host specialises the kernel with -D
 * options; the defaults below let the file compile on its own.
 *
 * NDRange: dim 0 query rows (padded to the work-group size), dim 1 query
 * heads, dim 2 batch. All index arithmetic is 64-bit.
 */

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

/* ---- storage formats: loads widen to float, stores round to nearest even */
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

__kernel void attn_naive(
    __global const in_t *q, ulong q_off, long qsb, long qsh, long qsn, long qsd,
    __global const in_t *k, ulong k_off, long ksb, long ksh, long ksn, long ksd,
    __global const in_t *v, ulong v_off, long vsb, long vsh, long vsn, long vsd,
    __global out_t *o, ulong o_off, long osb, long osh, long osn, long osd,
    __global float *lse, ulong lse_off, long lsb, long lsh, long lsn,
    __global const float *bias, ulong bias_off, long bsb, long bsh, long bsn, long bsk,
    __global const float *alibi, ulong alibi_off,
    __global const int *key_len, ulong key_len_off,
    int n_q, int n_k, int heads_per_kv, float scale, long diag_off,
    int win_left, int win_right, float softcap)
{
    const long i = (long)get_global_id(0);
    const long h = (long)get_global_id(1);
    const long b = (long)get_global_id(2);
    if (i >= n_q)
        return;
    const long hk = h / heads_per_kv;
    const long qrow = (long)q_off + b * qsb + h * qsh + i * qsn;
    const long kbase = (long)k_off + b * ksb + hk * ksh;
    const long vbase = (long)v_off + b * vsb + hk * vsh;
    const long orow = (long)o_off + b * osb + h * osh + i * osn;
    const long diag = i + diag_off; /* key index on this row's diagonal */

    /* Kept keys form one range [lo, hi): every mask is an interval. */
    long lo = 0, hi = n_k;
#if HAS_KEYLEN
    hi = min(hi, (long)clamp(key_len[key_len_off + b], 0, n_k));
#endif
#if CAUSAL
    hi = min(hi, diag + 1);
#endif
#if HAS_WINDOW
    if (win_left >= 0)
        lo = max(lo, diag - win_left);
    if (win_right >= 0)
        hi = min(hi, diag + win_right + 1);
#endif
#if HAS_ALIBI
    const float slope = alibi[alibi_off + h];
#endif
#if HAS_BIAS
    const long brow = (long)bias_off + b * bsb + h * bsh + i * bsn;
#endif

    float qr[HEAD_DIM];
    for (int d = 0; d < HEAD_DIM; d++)
        qr[d] = LOAD_IN(q, qrow + d * qsd);

/* The score of key j, after scale, softcap, ALiBi and bias. */
#define SCORE(j, s_out)                                                   \
    do {                                                                  \
        const long krow_ = kbase + (j) * ksn;                             \
        float dot_ = 0.0f;                                                \
        for (int d_ = 0; d_ < HEAD_DIM; d_++)                             \
            dot_ = fma(qr[d_], LOAD_IN(k, krow_ + d_ * ksd), dot_);       \
        s_out = dot_ * scale;                                             \
        SOFTCAP_(s_out);                                                  \
        ALIBI_(s_out, j);                                                 \
        BIAS_(s_out, j);                                                  \
    } while (0)
#if HAS_SOFTCAP
#define SOFTCAP_(s) (s) = softcap * tanh((s) / softcap)
#else
#define SOFTCAP_(s) (void)0
#endif
#if HAS_ALIBI
#define ALIBI_(s, j) (s) -= slope * fabs((float)(diag - (j)))
#else
#define ALIBI_(s, j) (void)0
#endif
#if HAS_BIAS
#define BIAS_(s, j) (s) += bias[brow + (j) * bsk]
#else
#define BIAS_(s, j) (void)0
#endif

    float m = -INFINITY;
    for (long j = lo; j < hi; j++) {
        float s;
        SCORE(j, s);
        m = fmax(m, s);
    }

    float acc[HEAD_DIM_V];
    for (int d = 0; d < HEAD_DIM_V; d++)
        acc[d] = 0.0f;
    float l = 0.0f;
    /* m = -inf: no kept key, or every kept score is -inf (bias): empty row. */
    if (m != -INFINITY) {
        for (long j = lo; j < hi; j++) {
            float s;
            SCORE(j, s);
            const float p = exp(s - m);
            const long vrow = vbase + j * vsn;
            l += p;
            for (int d = 0; d < HEAD_DIM_V; d++)
                acc[d] = fma(p, LOAD_IN(v, vrow + d * vsd), acc[d]);
        }
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int d = 0; d < HEAD_DIM_V; d++)
        STORE_OUT(o, orow + d * osd, acc[d] * inv);
#if HAS_LSE
    lse[(long)lse_off + b * lsb + h * lsh + i * lsn] = l > 0.0f ? m + log(l) : -INFINITY;
#endif
}
