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
 * is a multiple of 8, the accumulator is kept as float8 along Dv. With D
 * and BLOCK_N multiples of 8 as well (KT_PATH, contiguous K/V), the K tile is
 * kept transposed in local memory so that the scores of eight keys come out
 * of broadcast FMAs, exp runs on float8, P V shares each V load between two
 * rows, and tiles every row keeps whole skip the per-key mask. CPU
 * implementations such as PoCL vectorise across work-items, which small
 * work-groups of 4-8 items leave mostly idle; explicit vectors fill the SIMD
 * lanes instead (bench/RESULTS.md, notes). The CPU default goes further:
 * one work-item per work-group (ROWS = BLOCK_M, WG = 1) owns the whole row
 * block and runs QK^T and P V as register-tiled products. Otherwise the dot
 * products use float8 along D when D is a multiple of 8 (common.cl).
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

/* The CPU form: one work-item owns whole rows (TPR = 1), D, Dv and BLOCK_N
 * multiples of 8. The K tile is stored transposed so that scores of eight
 * keys come out of broadcast FMAs, exp runs on float8, and P V accumulates
 * into float8 along Dv: no horizontal sums in the inner loops. */
#if TPR == 1 && HEAD_DIM % 8 == 0 && HEAD_DIM_V % 8 == 0 && BLOCK_N % 8 == 0 && !PAGED && !defined(KT_OFF)
#define KT_PATH 1
#else
#define KT_PATH 0
#endif
#ifndef PV_RB
#define PV_RB (ROWS % 2 == 0 ? 2 : 1) /* rows sharing each V load in P V */
#endif
#ifndef KT_RB
#define KT_RB ROWS /* rows whose scores are computed together */
#endif
/* Register tiles of the one-work-item form (WG == 1): RT_R rows by QK_CB
 * (PV_CB) float8 vectors of accumulators, at most 4 x 4 (16 vector registers). */
#define RT_R (ROWS % 4 == 0 ? 4 : ROWS % 2 == 0 ? 2 : 1)
#define QK_CB ((BLOCK_N / 8) % 4 == 0 ? 4 : (BLOCK_N / 8) % 2 == 0 ? 2 : 1)
#define PV_CB ((HEAD_DIM_V / 8) % 4 == 0 ? 4 : (HEAD_DIM_V / 8) % 2 == 0 ? 2 : 1)
#if KT_PATH
#if IN_DTYPE == 0
#define LOAD8(p, i) vload8(0, (p) + (i))
#elif IN_DTYPE == 1
#define LOAD8(p, i) vload_half8(0, (p) + (i))
#else
#define LOAD8(p, i) as_float8(convert_uint8(vload8(0, (p) + (i))) << 16)
#endif
/* Rows [n0, n0 + BLOCK_N) of K (rows at or past end read as 0) into
 * KT[d * BLOCK_N + r]. */
inline void load_rows_t(__local float *KT, __global const in_t *src, const long base, const long sn, const long sd,
                        const long n0, const long end)
{
#if VEC == 4
    /* 8 x 8 blocks: eight rows of eight elements in, transposed in
     * registers, eight columns out */
    for (int idx = (int)get_local_id(0); idx < BLOCK_N / 8 * (HEAD_DIM / 8); idx += WG) {
        const int rb = idx / (HEAD_DIM / 8), d = (idx - rb * (HEAD_DIM / 8)) * 8, r = rb * 8;
        float8 x[8];
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const long n = n0 + r + e;
            x[e] = n < end ? LOAD8(src, base + n * sn + d) : (float8)(0.0f);
        }
        vstore8((float8)(x[0].s0, x[1].s0, x[2].s0, x[3].s0, x[4].s0, x[5].s0, x[6].s0, x[7].s0), 0, KT + (d + 0) * BLOCK_N + r);
        vstore8((float8)(x[0].s1, x[1].s1, x[2].s1, x[3].s1, x[4].s1, x[5].s1, x[6].s1, x[7].s1), 0, KT + (d + 1) * BLOCK_N + r);
        vstore8((float8)(x[0].s2, x[1].s2, x[2].s2, x[3].s2, x[4].s2, x[5].s2, x[6].s2, x[7].s2), 0, KT + (d + 2) * BLOCK_N + r);
        vstore8((float8)(x[0].s3, x[1].s3, x[2].s3, x[3].s3, x[4].s3, x[5].s3, x[6].s3, x[7].s3), 0, KT + (d + 3) * BLOCK_N + r);
        vstore8((float8)(x[0].s4, x[1].s4, x[2].s4, x[3].s4, x[4].s4, x[5].s4, x[6].s4, x[7].s4), 0, KT + (d + 4) * BLOCK_N + r);
        vstore8((float8)(x[0].s5, x[1].s5, x[2].s5, x[3].s5, x[4].s5, x[5].s5, x[6].s5, x[7].s5), 0, KT + (d + 5) * BLOCK_N + r);
        vstore8((float8)(x[0].s6, x[1].s6, x[2].s6, x[3].s6, x[4].s6, x[5].s6, x[6].s6, x[7].s6), 0, KT + (d + 6) * BLOCK_N + r);
        vstore8((float8)(x[0].s7, x[1].s7, x[2].s7, x[3].s7, x[4].s7, x[5].s7, x[6].s7, x[7].s7), 0, KT + (d + 7) * BLOCK_N + r);
    }
    (void)sd;
#else
    for (int idx = (int)get_local_id(0); idx < BLOCK_N * HEAD_DIM; idx += WG) {
        const int r = idx / HEAD_DIM, d = idx - r * HEAD_DIM;
        const long n = n0 + r;
        KT[d * BLOCK_N + r] = n < end ? LOAD_IN(src, base + n * sn + d * sd) : 0.0f;
    }
#endif
}

/* Rows [n0, n0 + BLOCK_N) of V (rows at or past end read as 0) into
 * Vs[r * HEAD_DIM_V + d]. */
inline void load_rows_v(__local float *Vs, __global const in_t *src, const long base, const long sn, const long sd,
                        const long n0, const long end)
{
#if VEC == 4
    for (int idx = (int)get_local_id(0); idx < BLOCK_N * (HEAD_DIM_V / 8); idx += WG) {
        const int r = idx / (HEAD_DIM_V / 8), d = (idx - r * (HEAD_DIM_V / 8)) * 8;
        const long n = n0 + r;
        vstore8(n < end ? LOAD8(src, base + n * sn + d) : (float8)(0.0f), 0, Vs + r * HEAD_DIM_V + d);
    }
    (void)sd;
#else
    load_rows(Vs, HEAD_DIM_V, src, base, sn, sd, n0, BLOCK_N, end, HEAD_DIM_V);
#endif
}
/* Softcap, ALiBi, and where the tile is not kept whole by every row
 * (full == 0) the bias and the row's kept interval, applied to the scaled
 * scores of eight consecutive keys j0 .. j0 + 7 of one row. */
inline float8 finish_scores8(float8 x, const long j0, const long diag, const row_info *ri, const int full,
                             const float softcap, const float slope, __global const float *bias, const long bsk)
{
#if HAS_SOFTCAP
    x = softcap * tanh(x / softcap);
#endif
    const long8 j8 = (long8)(j0) + (long8)(0, 1, 2, 3, 4, 5, 6, 7);
#if HAS_ALIBI
    x -= slope * fabs(convert_float8((long8)(diag) - j8));
#endif
    if (!full) {
#if HAS_BIAS
        float xb[8];
        vstore8(x, 0, xb);
        for (int e = 0; e < 8; e++)
            xb[e] += j0 + e < ri->hi ? bias[ri->bias_row + (j0 + e) * bsk] : 0.0f;
        x = vload8(0, xb);
#endif
        const long8 keep = (j8 >= (long8)(ri->lo)) & (j8 < (long8)(ri->hi));
        x = select((float8)(-INFINITY), x, convert_int8(keep));
    }
    (void)softcap, (void)slope, (void)diag, (void)bias, (void)bsk;
    return x;
}
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
#if KT_PATH
    __local float KT[HEAD_DIM * BLOCK_N];      /* the K tile transposed: KT[d * BLOCK_N + jj] */
    __local float Vs[BLOCK_N * HEAD_DIM_V];    /* the V tile, rows of Dv */
#else
    __local float KVs[BLOCK_N * LDKV];
    __local float S[BLOCK_M * BLOCK_N];
#endif

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

#if KT_PATH && WG == 1
    /* One work-item owns the whole row block (ROWS = BLOCK_M): the barriers
     * have no one to wait for, and on CPU implementations that compile a
     * work-group into loops over its work-items nothing lives across them
     * in per-item context memory. QK^T and P V run as register-tiled
     * products, like a GEMM micro-kernel: RT_R rows by QK_CB (PV_CB) float8
     * vectors of accumulators, each loaded vector reused for RT_R rows and
     * each broadcast scalar for the CB vectors. The small loops are unrolled
     * explicitly: some compilers (PoCL's) otherwise keep the accumulator
     * tile in memory (bench/RESULTS.md, notes). */
    for (long n0 = lo; n0 < hi; n0 += BLOCK_N) {
        barrier(CLK_LOCAL_MEM_FENCE);
        load_rows_t(KT, k, kbase, ksn, ksd, n0, hi);
        load_rows_v(Vs, v, vbase, vsn, vsd, n0, hi);
        barrier(CLK_LOCAL_MEM_FENCE);
        int full = HAS_BIAS == 0;
        for (int r = 0; r < ROWS; r++)
            if (ri[r].i < sq.nq && (ri[r].lo > n0 || ri[r].hi < n0 + BLOCK_N))
                full = 0;
        float p[ROWS][BLOCK_N]; /* scores, then probabilities */
        for (int r0 = 0; r0 < ROWS; r0 += RT_R)
            for (int c0 = 0; c0 < BLOCK_N / 8; c0 += QK_CB) {
                float8 a[RT_R][QK_CB];
                #pragma unroll
                for (int r = 0; r < RT_R; r++)
                    #pragma unroll
                    for (int cc = 0; cc < QK_CB; cc++)
                        a[r][cc] = (float8)(0.0f);
                for (int d = 0; d < HEAD_DIM; d++) {
                    float8 kd[QK_CB];
                    #pragma unroll
                    for (int cc = 0; cc < QK_CB; cc++)
                        kd[cc] = vload8(c0 + cc, KT + d * BLOCK_N);
                    #pragma unroll
                    for (int r = 0; r < RT_R; r++) {
                        const float8 qb = (float8)(Qs[(r0 + r) * LDQ + d]);
                        #pragma unroll
                        for (int cc = 0; cc < QK_CB; cc++)
                            a[r][cc] = fma(qb, kd[cc], a[r][cc]);
                    }
                }
                #pragma unroll
                for (int r = 0; r < RT_R; r++)
                    #pragma unroll
                    for (int cc = 0; cc < QK_CB; cc++)
                        vstore8(a[r][cc], c0 + cc, p[r0 + r]);
            }
        for (int rr = 0; rr < ROWS; rr++) {
            const long diag = ri[rr].i + sq.diag_off;
            float8 mx = (float8)(-INFINITY);
            for (int c = 0; c < BLOCK_N / 8; c++) {
                float8 x = finish_scores8(vload8(c, p[rr]) * scale, n0 + c * 8, diag, &ri[rr], full, softcap, slope,
                                          bias, bsk);
                vstore8(x, c, p[rr]);
                mx = fmax(mx, x);
            }
            const float4 m4 = fmax(mx.lo, mx.hi);
            const float2 m2 = fmax(m4.lo, m4.hi);
            const float m_new = fmax(m_i[rr], fmax(m2.x, m2.y));
            const float m_use = m_new == -INFINITY ? 0.0f : m_new;
            float8 lsum = (float8)(0.0f);
            for (int c = 0; c < BLOCK_N / 8; c++) {
                const float8 p8 = exp2((vload8(c, p[rr]) - (float8)(m_use)) * M_LOG2E_F);
                lsum += p8;
                vstore8(p8, c, p[rr]);
            }
            const float4 l4 = lsum.lo + lsum.hi;
            const float2 l2 = l4.lo + l4.hi;
            if (m_new > m_i[rr]) {
                const float alpha = exp2((m_i[rr] - m_use) * M_LOG2E_F);
                l_i[rr] *= alpha;
                for (int c = 0; c < HEAD_DIM_V / 8; c++)
                    acc8[rr][c] *= alpha;
            }
            l_i[rr] += l2.x + l2.y;
            m_i[rr] = m_new;
        }
        /* P V, RT_R rows at a time: register tiles over the keys every live
         * row of the group keeps ([jt_lo, jt_hi): the whole tile when it is
         * full), then row by row over each row's other kept keys, so a V row
         * a row masks never enters it (NaN or Inf there included). With a
         * bias a -inf entry masks keys inside the interval too: partial
         * tiles go row by row whole, skipping zero probabilities. */
        for (int r0 = 0; r0 < ROWS; r0 += RT_R) {
            int jt_lo = 0, jt_hi = BLOCK_N;
            if (!full) {
#if HAS_BIAS
                jt_hi = 0;
#else
                for (int r = 0; r < RT_R; r++)
                    if (ri[r0 + r].i < sq.nq) {
                        jt_lo = max(jt_lo, (int)clamp(ri[r0 + r].lo - n0, 0L, (long)BLOCK_N));
                        jt_hi = min(jt_hi, (int)clamp(ri[r0 + r].hi - n0, 0L, (long)BLOCK_N));
                    }
#endif
                if (jt_hi <= jt_lo)
                    jt_lo = jt_hi = 0;
            }
            if (jt_hi > jt_lo)
                for (int c0 = 0; c0 < HEAD_DIM_V / 8; c0 += PV_CB) {
                    float8 o[RT_R][PV_CB];
                    #pragma unroll
                    for (int r = 0; r < RT_R; r++)
                        #pragma unroll
                        for (int cc = 0; cc < PV_CB; cc++)
                            o[r][cc] = acc8[r0 + r][c0 + cc];
                    for (int jj = jt_lo; jj < jt_hi; jj++) {
                        float8 vv[PV_CB];
                        #pragma unroll
                        for (int cc = 0; cc < PV_CB; cc++)
                            vv[cc] = vload8(c0 + cc, Vs + jj * HEAD_DIM_V);
                        #pragma unroll
                        for (int r = 0; r < RT_R; r++) {
                            const float8 pb = (float8)(p[r0 + r][jj]);
                            #pragma unroll
                            for (int cc = 0; cc < PV_CB; cc++)
                                o[r][cc] = fma(pb, vv[cc], o[r][cc]);
                        }
                    }
                    #pragma unroll
                    for (int r = 0; r < RT_R; r++)
                        #pragma unroll
                        for (int cc = 0; cc < PV_CB; cc++)
                            acc8[r0 + r][c0 + cc] = o[r][cc];
                }
            if (!full)
                for (int r = 0; r < RT_R; r++) {
                    const int rr = r0 + r;
                    const int j_lo = (int)clamp(ri[rr].lo - n0, 0L, (long)BLOCK_N);
                    const int j_hi = (int)clamp(ri[rr].hi - n0, 0L, (long)BLOCK_N);
                    for (int jj = j_lo; jj < j_hi; jj++) {
                        if (jj == jt_lo && jt_hi > jt_lo) { /* done in the register tiles */
                            jj = jt_hi - 1;
                            continue;
                        }
#if HAS_BIAS
                        if (p[rr][jj] == 0.0f)
                            continue;
#endif
                        for (int c = 0; c < HEAD_DIM_V / 8; c++)
                            acc8[rr][c] = fma((float8)(p[rr][jj]), vload8(c, Vs + jj * HEAD_DIM_V), acc8[rr][c]);
                    }
                }
        }
    }

#elif KT_PATH
    for (long n0 = lo; n0 < hi; n0 += BLOCK_N) {
        barrier(CLK_LOCAL_MEM_FENCE); /* Q is loaded; the previous tile is consumed */
        load_rows_t(KT, k, kbase, ksn, ksd, n0, hi);
        load_rows_v(Vs, v, vbase, vsn, vsd, n0, hi);
        barrier(CLK_LOCAL_MEM_FENCE);
        /* Is every key of the tile kept by every live row? Then no per-key
         * mask is needed (the common case away from the edges). */
        int full = HAS_BIAS == 0;
        for (int r = 0; r < ROWS; r++)
            if (ri[r].i < sq.nq && (ri[r].lo > n0 || ri[r].hi < n0 + BLOCK_N))
                full = 0;
        float p[ROWS][BLOCK_N];
        for (int r0 = 0; r0 < ROWS; r0 += KT_RB) {
            /* scores of KT_RB rows against the tile, eight keys per vector:
             * s[r][c] = sum_d q[r][d] * KT[d][8c .. 8c+7] (broadcast FMAs,
             * no horizontal sums) */
            float8 s8[KT_RB][BLOCK_N / 8];
            for (int c = 0; c < BLOCK_N / 8; c++) {
                float8 a[KT_RB];
                for (int r = 0; r < KT_RB; r++)
                    a[r] = (float8)(0.0f);
                for (int d = 0; d < HEAD_DIM; d++) {
                    const float8 kd = vload8(c, KT + d * BLOCK_N);
                    for (int r = 0; r < KT_RB; r++)
                        a[r] = fma((float8)(Qs[(g * ROWS + r0 + r) * LDQ + d]), kd, a[r]);
                }
                for (int r = 0; r < KT_RB; r++)
                    s8[r][c] = a[r];
            }
            for (int r = 0; r < KT_RB; r++) {
                const int rr = r0 + r;
                const long diag = ri[rr].i + sq.diag_off;
                float8 mx = (float8)(-INFINITY);
                for (int c = 0; c < BLOCK_N / 8; c++) {
                    const float8 x = finish_scores8(s8[r][c] * scale, n0 + c * 8, diag, &ri[rr], full, softcap, slope,
                                                    bias, bsk);
                    s8[r][c] = x;
                    mx = fmax(mx, x);
                }
                const float4 m4 = fmax(mx.lo, mx.hi);
                const float2 m2 = fmax(m4.lo, m4.hi);
                const float mt = fmax(m2.x, m2.y);
                const float m_new = fmax(m_i[rr], mt);
                const float m_use = m_new == -INFINITY ? 0.0f : m_new;
                const float alpha = exp(m_i[rr] - m_use);
                float8 lsum = (float8)(0.0f);
                for (int c = 0; c < BLOCK_N / 8; c++) {
                    const float8 p8 = exp(s8[r][c] - (float8)(m_use));
                    lsum += p8;
                    vstore8(p8, c, p[rr]);
                }
                const float4 l4 = lsum.lo + lsum.hi;
                const float2 l2 = l4.lo + l4.hi;
                l_i[rr] = l_i[rr] * alpha + (l2.x + l2.y);
                for (int c = 0; c < HEAD_DIM_V / 8; c++)
                    acc8[rr][c] *= alpha;
                if (!full) {
                    /* only this row's kept keys: NaN or Inf in a V row it
                     * masks never enters */
                    const int j_lo = (int)clamp(ri[rr].lo - n0, 0L, (long)BLOCK_N);
                    const int j_hi = (int)clamp(ri[rr].hi - n0, 0L, (long)BLOCK_N);
                    for (int jj = j_lo; jj < j_hi; jj++) {
#if HAS_BIAS
                        if (p[rr][jj] == 0.0f) /* a -inf bias masks too */
                            continue;
#endif
                        for (int c = 0; c < HEAD_DIM_V / 8; c++)
                            acc8[rr][c] = fma((float8)(p[rr][jj]), vload8(c, Vs + jj * HEAD_DIM_V), acc8[rr][c]);
                    }
                }
                m_i[rr] = m_new;
            }
        }
        if (full) {
            /* P V for all rows at once: each V vector loaded once serves
             * PV_RB rows */
            for (int r0 = 0; r0 < ROWS; r0 += PV_RB)
                for (int jj = 0; jj < BLOCK_N; jj++)
                    for (int c = 0; c < HEAD_DIM_V / 8; c++) {
                        const float8 vv = vload8(c, Vs + jj * HEAD_DIM_V);
                        for (int r = 0; r < PV_RB; r++)
                            acc8[r0 + r][c] = fma((float8)(p[r0 + r][jj]), vv, acc8[r0 + r][c]);
                    }
        }
    }
#else
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
#endif

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
