/*
 * tiled.cl - fused attention with an exact two-pass softmax over tiles.
 *
 * A work-group owns BLOCK_M query rows of one (batch, head); K/V tiles of
 * BLOCK_N keys pass through local memory. Pass 1 streams the K tiles and
 * finds each row's maximum and sum of exp(s - max); pass 2 streams K and V
 * again and accumulates exp(s - max) / sum times V, so the accumulator is
 * never rescaled. Nothing of size Nk is stored.
 *
 * NDRange: dim 0 ceil(Nq / BLOCK_M) * WG, dim 1 query heads, dim 2 batch.
 */
#ifndef BLOCK_M
#define BLOCK_M 16
#endif
#ifndef BLOCK_N
#define BLOCK_N 32
#endif
#ifndef CLATTN_COMMON
#include "common.cl"
#endif

__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void attn_tiled(ATTN_KERNEL_ARGS)
{
    __local float Qs[BLOCK_M * LDQ];
    __local float KVs[BLOCK_N * LDKV];
    __local float S[BLOCK_M * BLOCK_N];

    const int lid = (int)get_local_id(0);
    const int t = lid % TPR, g = lid / TPR;
    const long h = (long)get_global_id(1), b = (long)get_global_id(2);
    const long hk = h / heads_per_kv;
    const long m0 = (long)get_group_id(0) * BLOCK_M;
    const seq_info sq = SEQUENCE(b);
    if (m0 >= sq.nq)
        return; /* the whole work-group: a shorter sequence of a varlen batch */
    const long qbase = (long)q_off + b * qsb + h * qsh + sq.q0 * qsn;
    const long kbase = (long)k_off + b * ksb + hk * ksh + sq.k0 * ksn;
    const long vbase = (long)v_off + b * vsb + hk * vsh + sq.k0 * vsn;
#if HAS_ALIBI
    const float slope = alibi[alibi_off + h];
#else
    const float slope = 0.0f;
#endif

    row_info ri[ROWS];
    float m_i[ROWS], l_i[ROWS], acc[ROWS][DV_PER];
    for (int r = 0; r < ROWS; r++) {
        const long i = m0 + g * ROWS + r;
        ri[r].i = i;
        if (i < sq.nq)
            kept_range(i, i, sq.nk, sq.diag_off, win_left, win_right, sq.klen, &ri[r].lo, &ri[r].hi);
        else
            ri[r].lo = ri[r].hi = 0;
#if HAS_BIAS
        ri[r].bias_row = (long)bias_off + b * bsb + h * bsh + min(i, sq.nq - 1) * bsn;
#else
        ri[r].bias_row = 0;
#endif
        m_i[r] = -INFINITY;
        l_i[r] = 0.0f;
        for (int c = 0; c < DV_PER; c++)
            acc[r][c] = 0.0f;
    }
    long lo, hi;
    kept_range(m0, min(m0 + BLOCK_M, sq.nq) - 1, sq.nk, sq.diag_off, win_left, win_right, sq.klen, &lo, &hi);
    load_rows(Qs, LDQ, q, qbase, qsn, qsd, m0, BLOCK_M, sq.nq, HEAD_DIM);

    /* Pass 1: row maximum, then the sum of exp(s - max) at that maximum. */
    for (long n0 = lo; n0 < hi; n0 += BLOCK_N) {
        barrier(CLK_LOCAL_MEM_FENCE);
        load_rows(KVs, LDKV, k, kbase, ksn, ksd, n0, BLOCK_N, hi, HEAD_DIM);
        barrier(CLK_LOCAL_MEM_FENCE);
        score_tile(Qs, KVs, S, ri, g, t, n0, scale, softcap, slope, sq.diag_off, bias, bsk);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int r = 0; r < ROWS; r++) {
            __local const float *srow = S + (g * ROWS + r) * BLOCK_N;
            float mt = -INFINITY;
            for (int jj = 0; jj < BLOCK_N; jj++)
                mt = fmax(mt, srow[jj]);
            const float m_new = fmax(m_i[r], mt);
            const float m_use = m_new == -INFINITY ? 0.0f : m_new;
            float sum = l_i[r] * exp(m_i[r] - m_use);
            for (int jj = 0; jj < BLOCK_N; jj++)
                sum += exp(srow[jj] - m_use);
            l_i[r] = sum;
            m_i[r] = m_new;
        }
    }
    float inv[ROWS], m_use[ROWS];
    for (int r = 0; r < ROWS; r++) {
        inv[r] = l_i[r] > 0.0f ? 1.0f / l_i[r] : 0.0f;
        m_use[r] = m_i[r] == -INFINITY ? 0.0f : m_i[r];
    }

    /* Pass 2: O = sum over kept keys of (exp(s - max) / sum) * V. */
    for (long n0 = lo; n0 < hi; n0 += BLOCK_N) {
        barrier(CLK_LOCAL_MEM_FENCE);
        load_rows(KVs, LDKV, k, kbase, ksn, ksd, n0, BLOCK_N, hi, HEAD_DIM);
        barrier(CLK_LOCAL_MEM_FENCE);
        score_tile(Qs, KVs, S, ri, g, t, n0, scale, softcap, slope, sq.diag_off, bias, bsk);
        barrier(CLK_LOCAL_MEM_FENCE);
        load_rows(KVs, LDKV, v, vbase, vsn, vsd, n0, BLOCK_N, hi, HEAD_DIM_V);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int r = 0; r < ROWS; r++) {
            __local const float *srow = S + (g * ROWS + r) * BLOCK_N;
            for (int jj = 0; jj < BLOCK_N; jj++) {
                const float s = srow[jj];
                if (s == -INFINITY) /* masked: select, so NaN in a masked V never enters */
                    continue;
                const float p = exp(s - m_use[r]) * inv[r];
                for (int c = 0; c < DV_PER; c++) {
                    const int d = t + c * TPR;
                    if (d < HEAD_DIM_V)
                        acc[r][c] = fma(p, KVs[jj * LDKV + d], acc[r][c]);
                }
            }
        }
    }

    for (int r = 0; r < ROWS; r++) {
        const long i = ri[r].i;
        if (i >= sq.nq)
            continue;
        const long orow = (long)o_off + b * osb + h * osh + (sq.q0 + i) * osn;
        for (int c = 0; c < DV_PER; c++) {
            const int d = t + c * TPR;
            if (d < HEAD_DIM_V)
                STORE_OUT(o, orow + d * osd, acc[r][c]);
        }
#if HAS_LSE
        if (t == 0)
            lse[(long)lse_off + b * lsb + h * lsh + (sq.q0 + i) * lsn] = l_i[r] > 0.0f ? m_i[r] + log(l_i[r]) : -INFINITY;
#endif
    }
}
