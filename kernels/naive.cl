/*
 * naive.cl - fused attention, one work-item per query row.
 *
 * Two passes over the kept keys of the row: the first finds the row maximum
 * of the scores, the second accumulates exp(s - max) and the weighted sum of V.
 * Nothing of size Nk is stored. The host specialises the kernel with -D
 * options; common.cl's defaults let the file compile on its own.
 *
 * NDRange: dim 0 query rows (padded to the work-group size), dim 1 query
 * heads, dim 2 batch. All index arithmetic is 64-bit.
 */

#ifndef CLATTN_COMMON
#include "common.cl"
#endif

__kernel void attn_naive(ATTN_KERNEL_ARGS)
{
    const long i = (long)get_global_id(0);
    const long h = (long)get_global_id(1);
    const long b = (long)get_global_id(2);
    const seq_info sq = SEQUENCE(b);
    if (i >= sq.nq)
        return;
    const long hk = h / heads_per_kv;
    const long qrow = (long)q_off + b * qsb + h * qsh + (sq.q0 + i) * qsn;
    const long kbase = (long)k_off + b * ksb + hk * ksh + sq.k0 * ksn;
    const long vbase = (long)v_off + b * vsb + hk * vsh + sq.k0 * vsn;
    const long orow = (long)o_off + b * osb + h * osh + (sq.q0 + i) * osn;
    const long diag = i + sq.diag_off; /* key index on this row's diagonal */

    long lo, hi;
    kept_range(i, i, sq.nk, sq.diag_off, win_left, win_right, sq.klen, &lo, &hi);
#if HAS_ALIBI
    const float slope = alibi[alibi_off + h];
#else
    const float slope = 0.0f;
#endif
#if HAS_BIAS
    const long brow = (long)bias_off + b * bsb + h * bsh + i * bsn;
#else
    const long brow = 0;
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
        s_out = finish_score(dot_ * scale, softcap, slope, diag, (j), bias, brow, bsk); \
    } while (0)

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
    lse[(long)lse_off + b * lsb + h * lsh + (sq.q0 + i) * lsn] = l > 0.0f ? m + log(l) : -INFINITY;
#endif
}
