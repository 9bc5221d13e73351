/*
 * flash.cl - fused attention in one pass over the keys with online softmax.
 *
 * A work-group owns BLOCK_M query rows of one (batch, head) and streams the
 * kept K/V tiles of BLOCK_N keys through local memory (K, then V, in one
 * buffer). Each work-item keeps, for its ROWS rows, the running maximum m,
 * the running sum l and its Dv columns of the output accumulator; when a
 * tile raises m, the accumulator and l are rescaled by exp(m_old - m_new).
 * Tiles wholly outside the block's kept interval (causal, window, key
 * padding) are never loaded. Extra memory: local only, independent of N.
 *
 * When one work-item owns whole output rows (TPR = 1, the CPU shape) and Dv
 * is a multiple of 8, the accumulator is kept as float8 along Dv; dot
 * products use float8 along D when D is a multiple of 8 (common.cl). CPU
 * implementations such as PoCL vectorise across work-items, which small
 * work-groups of 4-8 items leave mostly idle; explicit vectors fill the SIMD
 * lanes instead (about 2x on PoCL, bench/RESULTS.md).
 *
 * NDRange: dim 0 ceil(Nq / BLOCK_M) * WG, dim 1 query heads, dim 2 batch.
 */
#ifndef BLOCK_M
#define BLOCK_M 32
#endif
#ifndef BLOCK_N
#define BLOCK_N 32
#endif
#ifndef SPLIT_KV
#define SPLIT_KV 0 /* 1: the `decode` variant's split-KV pass (see below) */
#endif
#ifndef CLATTN_COMMON
#include "common.cl"
#endif

/*
 * SPLIT_KV (flash-decoding, for few query rows and long key sequences): the
 * work-groups of dim 0 are (row block, split) pairs; split s takes the
 * keys [s * chunk, (s + 1) * chunk) of the block's kept interval (chunk a
 * multiple of BLOCK_N) and writes its normalised partial O and LSE to
 * f32 scratch [B, Hq, Nq, splits, Dv] and [B, Hq, Nq, splits]; the
 * merge kernel (merge.cl) then combines the splits exactly in a fixed order.
 *
 * PAGED: k and v are page pools read through the sequence's row of the block
 * table (load_kv_rows in common.cl); everything else is unchanged.
 */
#if SPLIT_KV
#define SPLIT_ARGS , __global float *part_o, __global float *part_lse, int n_splits
#else
#define SPLIT_ARGS
#endif

__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void attn_flash(ATTN_KERNEL_ARGS SPLIT_ARGS)
{
    __local float Qs[BLOCK_M * LDQ];
    __local float KVs[BLOCK_N * LDKV];
    __local float S[BLOCK_M * BLOCK_N];

    const int lid = (int)get_local_id(0);
    const int t = lid % TPR, g = lid / TPR;
    const long h = (long)get_global_id(1), b = (long)get_global_id(2);
    const long hk = h / heads_per_kv;
#if SPLIT_KV
    const long split = (long)get_group_id(0) % n_splits;
    const long m0 = (long)get_group_id(0) / n_splits * BLOCK_M;
#else
    const long m0 = (long)get_group_id(0) * BLOCK_M;
#endif
    const seq_info sq = SEQUENCE(b);
    if (m0 >= sq.nq)
        return; /* the whole work-group: a shorter sequence of a varlen batch */
    const long qbase = (long)q_off + b * qsb + h * qsh + sq.q0 * qsn;
#if PAGED
    /* k and v are page pools: head hk of page 0, pages ksb / vsb apart, found
     * through this sequence's row of the block table */
    const long kbase = (long)k_off + hk * ksh;
    const long vbase = (long)v_off + hk * vsh;
    __global const int *bt = block_table + (long)bt_off + b * (long)max_pages;
#else
    const long kbase = (long)k_off + b * ksb + hk * ksh + sq.k0 * ksn;
    const long vbase = (long)v_off + b * vsb + hk * vsh + sq.k0 * vsn;
    __global const int *bt = block_table;
#endif
#if HAS_ALIBI
    const float slope = alibi[alibi_off + h];
#else
    const float slope = 0.0f;
#endif

    row_info ri[ROWS];
#if TPR == 1 && HEAD_DIM_V % 8 == 0
#define ACC8 1
    float8 acc8[ROWS][HEAD_DIM_V / 8];
    float m_i[ROWS], l_i[ROWS];
#else
#define ACC8 0
    float m_i[ROWS], l_i[ROWS], acc[ROWS][DV_PER];
#endif
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
#if ACC8
        for (int c = 0; c < HEAD_DIM_V / 8; c++)
            acc8[r][c] = (float8)(0.0f);
#else
        for (int c = 0; c < DV_PER; c++)
            acc[r][c] = 0.0f;
#endif
    }

    /* The block's kept interval: tiles outside it are skipped. */
    long lo, hi;
    kept_range(m0, min(m0 + BLOCK_M, sq.nq) - 1, sq.nk, sq.diag_off, win_left, win_right, sq.klen, &lo, &hi);
#if SPLIT_KV
    {
        /* this split's share of the keys; rows keep only keys inside it, so
         * no key is counted by two splits */
        const long span = max(hi - lo, 0L);
        const long chunk = ((span + n_splits - 1) / n_splits + BLOCK_N - 1) / BLOCK_N * BLOCK_N;
        const long s_lo = lo + split * chunk, s_hi = min(hi, lo + (split + 1) * chunk);
        lo = s_lo;
        hi = s_hi;
        for (int r = 0; r < ROWS; r++) {
            ri[r].lo = max(ri[r].lo, s_lo);
            ri[r].hi = min(ri[r].hi, s_hi);
        }
    }
#endif

    load_rows(Qs, LDQ, q, qbase, qsn, qsd, m0, BLOCK_M, sq.nq, HEAD_DIM);

    for (long n0 = lo; n0 < hi; n0 += BLOCK_N) {
        barrier(CLK_LOCAL_MEM_FENCE); /* Q is loaded; the previous tile's V is consumed */
        load_kv_rows(KVs, LDKV, k, kbase, ksb, ksn, ksd, n0, BLOCK_N, hi, HEAD_DIM, bt, page_size, num_pages);
        barrier(CLK_LOCAL_MEM_FENCE);
        score_tile(Qs, KVs, S, ri, g, t, n0, scale, softcap, slope, sq.diag_off, bias, bsk);
        barrier(CLK_LOCAL_MEM_FENCE); /* scores done: K can be replaced by V */
        load_kv_rows(KVs, LDKV, v, vbase, vsb, vsn, vsd, n0, BLOCK_N, hi, HEAD_DIM_V, bt, page_size, num_pages);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int r = 0; r < ROWS; r++) {
            __local const float *srow = S + (g * ROWS + r) * BLOCK_N;
            float mt = -INFINITY;
            for (int jj = 0; jj < BLOCK_N; jj++)
                mt = fmax(mt, srow[jj]);
            const float m_new = fmax(m_i[r], mt);
            /* all scores so far -inf: keep everything at zero, no NaN */
            const float m_use = m_new == -INFINITY ? 0.0f : m_new;
            const float alpha = exp(m_i[r] - m_use);
            l_i[r] *= alpha;
#if ACC8
            for (int c = 0; c < HEAD_DIM_V / 8; c++)
                acc8[r][c] *= alpha;
#else
            for (int c = 0; c < DV_PER; c++)
                acc[r][c] *= alpha;
#endif
            for (int jj = 0; jj < BLOCK_N; jj++) {
                const float s = srow[jj];
                if (s == -INFINITY) /* masked: select, so NaN in a masked V never enters */
                    continue;
                const float p = exp(s - m_use);
                l_i[r] += p;
#if ACC8
                for (int c = 0; c < HEAD_DIM_V / 8; c++)
                    acc8[r][c] = fma((float8)(p), vload8(c, KVs + jj * LDKV), acc8[r][c]);
#else
                for (int c = 0; c < DV_PER; c++) {
                    const int d = t + c * TPR;
                    if (d < HEAD_DIM_V)
                        acc[r][c] = fma(p, KVs[jj * LDKV + d], acc[r][c]);
                }
#endif
            }
            m_i[r] = m_new;
        }
    }

    for (int r = 0; r < ROWS; r++) {
        const long i = ri[r].i;
        if (i >= sq.nq)
            continue;
#if SPLIT_KV
        const long prow = ((b * (long)get_global_size(1) + h) * n_q + i) * n_splits + split;
#define WRITE_O(d, x) (part_o[prow * HEAD_DIM_V + (d)] = (x))
#else
        const long orow = (long)o_off + b * osb + h * osh + (sq.q0 + i) * osn;
#define WRITE_O(d, x) STORE_OUT(o, orow + (d) * osd, (x))
#endif
        const float inv = l_i[r] > 0.0f ? 1.0f / l_i[r] : 0.0f;
#if ACC8
        for (int c = 0; c < HEAD_DIM_V / 8; c++) {
            const float8 x = acc8[r][c] * inv;
            const float xs[8] = {x.s0, x.s1, x.s2, x.s3, x.s4, x.s5, x.s6, x.s7};
            for (int e = 0; e < 8; e++)
                WRITE_O(c * 8 + e, xs[e]);
        }
#else
        for (int c = 0; c < DV_PER; c++) {
            const int d = t + c * TPR;
            if (d < HEAD_DIM_V)
                WRITE_O(d, acc[r][c] * inv);
        }
#endif
#if SPLIT_KV
        if (t == 0)
            part_lse[prow] = l_i[r] > 0.0f ? m_i[r] + log(l_i[r]) : -INFINITY;
#elif HAS_LSE
        if (t == 0)
            lse[(long)lse_off + b * lsb + h * lsh + (sq.q0 + i) * lsn] = l_i[r] > 0.0f ? m_i[r] + log(l_i[r]) : -INFINITY;
#endif
#undef WRITE_O
    }
}
