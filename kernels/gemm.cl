/*
 * gemm.cl - the kernels around the two CLBlast GEMMs of the `gemm` variant
 * (src/variants/gemm.c). Per chunk of query rows the host runs:
 *
 *   gemm_pack_kv   K and V of a group of sequences -> f32 row-major scratch
 *                  (once per group), non-finite V elements zeroed and flagged
 *   gemm_pack_q    the chunk's Q rows -> f32 row-major scratch
 *   CLBlast        S = scale * Q K^T over the chunk's kept-key hull
 *   gemm_softmax   S -> P in place: every semantic of DESIGN.md (softcap,
 *                  ALiBi, bias, causal / window / padding / varlen masks by
 *                  selection); masked pairs and empty rows get exactly 0
 *   CLBlast        O_chunk = P V
 *   gemm_finish    O_chunk -> the outputs (one chunk) or a staging buffer;
 *                  empty rows 0; rows whose kept keys hold a non-finite V
 *                  recomputed exactly from P and the original V
 *   gemm_commit    staging -> the outputs, after the last chunk (several
 *                  chunks), so a failed enqueue leaves the outputs untouched
 *
 * Why V is zeroed and flagged: in the P V product a masked key contributes
 * 0 * V[j], which is NaN when V[j] is NaN or Inf. With V' (non-finite -> 0)
 * the GEMM is exact for every row whose kept keys are all finite; the few
 * rows that do read a non-finite value get the semantics' sum over their
 * kept keys only, from the original V.
 *
 * All index arithmetic is 64-bit. The host specialises with -D options
 * (common.cl's plus GEMM_WG, the work-group size of every kernel here, a
 * power of two).
 */

#ifndef CLATTN_COMMON
#include "common.cl"
#endif

#ifndef GEMM_WG
#define GEMM_WG 64
#endif
/* Keys per flag tile: a row checks whole tiles by one flag each and only its
 * partial edge tiles key by key. */
#ifndef KV_TILE
#define KV_TILE 32
#endif

/* What SEQUENCE() and kept_range() need (the names of ATTN_KERNEL_ARGS). */
#define SEQ_ARGS                                                                                            \
    __global const int *key_len, ulong key_len_off, int n_q, int n_k, long diag_off, int win_left, int win_right, \
        int align_br, __global const int *cu_q, ulong cu_q_off, __global const int *cu_k, ulong cu_k_off,        \
        long total_q, long total_k

/* K and V of sequences b0 .. b0 + nb - 1 into kp [nb, Hkv, n_k, D] and
 * vp [nb, Hkv, n_k, Dv] (keys past a sequence's end are 0). Non-finite V
 * elements are stored as 0; kflag [nb, Hkv, n_k] and tflag [nb, Hkv, tiles]
 * say which keys and tiles held one. NDRange: (GEMM_WG * tiles, nb * Hkv),
 * one work-group per KV_TILE keys of one (sequence, kv head). */
__kernel void gemm_pack_kv(__global const in_t *k, ulong k_off, long ksb, long ksh, long ksn, long ksd,
                           __global const in_t *v, ulong v_off, long vsb, long vsh, long vsn, long vsd,
                           __global float *kp, __global float *vp, __global int *kflag, __global int *tflag, long b0,
                           int n_kv, SEQ_ARGS)
{
    __local volatile int bad[KV_TILE];
    const int lid = (int)get_local_id(0);
    const long tile = (long)get_group_id(0);
    const long bh = (long)get_global_id(1); /* sequence in the group * Hkv + kv head */
    const long bb = bh / n_kv, hk = bh - bb * n_kv, b = b0 + bb;
    const seq_info sq = SEQUENCE(b);
    const long tiles = ((long)n_k + KV_TILE - 1) / KV_TILE;
    const long j0 = tile * KV_TILE;
    const int nr = (int)min((long)KV_TILE, (long)n_k - j0);
    const long kbase = (long)k_off + b * ksb + hk * ksh + sq.k0 * ksn;
    const long vbase = (long)v_off + b * vsb + hk * vsh + sq.k0 * vsn;

    for (int r = lid; r < KV_TILE; r += GEMM_WG)
        bad[r] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int e = lid; e < nr * HEAD_DIM; e += GEMM_WG) {
        const int r = e / HEAD_DIM, d = e - r * HEAD_DIM;
        const long j = j0 + r;
        kp[(bh * n_k + j) * HEAD_DIM + d] = j < sq.nk ? LOAD_IN(k, kbase + j * ksn + d * ksd) : 0.0f;
    }
    for (int e = lid; e < nr * HEAD_DIM_V; e += GEMM_WG) {
        const int r = e / HEAD_DIM_V, d = e - r * HEAD_DIM_V;
        const long j = j0 + r;
        float x = j < sq.nk ? LOAD_IN(v, vbase + j * vsn + d * vsd) : 0.0f;
        if (!isfinite(x)) {
            atomic_or(&bad[r], 1);
            x = 0.0f;
        }
        vp[(bh * n_k + j) * HEAD_DIM_V + d] = x;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = lid; r < nr; r += GEMM_WG)
        kflag[bh * n_k + j0 + r] = bad[r];
    if (lid == 0) {
        int any = 0;
        for (int r = 0; r < nr; r++)
            any |= bad[r];
        tflag[bh * tiles + tile] = any;
    }
}

/* Query rows i0 .. i0 + rows - 1 of sequences b0 .. b0 + nb - 1 into
 * qp [nb, Hq, rows, D] (rows past a sequence's end are 0). The query heads
 * sharing a kv head are consecutive, so each GQA group is one
 * (Hq / Hkv * rows) x D matrix. NDRange: one work-item per element. */
__kernel void gemm_pack_q(__global const in_t *q, ulong q_off, long qsb, long qsh, long qsn, long qsd,
                          __global float *qp, long b0, long i0, int rows, int n_heads, long count, SEQ_ARGS)
{
    const long e = (long)get_global_id(0);
    if (e >= count)
        return;
    const long d = e % HEAD_DIM;
    long t = e / HEAD_DIM;
    const long r = t % rows;
    t /= rows;
    const long h = t % n_heads, b = b0 + t / n_heads;
    const seq_info sq = SEQUENCE(b);
    const long i = i0 + r;
    qp[e] = i < sq.nq ? LOAD_IN(q, (long)q_off + b * qsb + h * qsh + (sq.q0 + i) * qsn + d * qsd) : 0.0f;
}

/* The kept-key interval of row i of sequence sq within the chunk's columns
 * [hlo, hlo + hw). */
inline void row_range(const long i, const seq_info *sq, const int win_left, const int win_right, const long hlo,
                      const long hw, long *lo, long *hi)
{
    kept_range(i, i, sq->nk, sq->diag_off, win_left, win_right, sq->klen, lo, hi);
    *lo = max(*lo, hlo);
    *hi = min(*hi, hlo + hw);
}

/* S [nb, Hq, rows, hw] (keys hlo .. hlo + hw - 1, scaled by the GEMM) into
 * unnormalised P in place: p = exp(s - m) over the kept keys after softcap,
 * ALiBi and bias; exactly 0 for masked pairs (whatever S held there: NaN
 * from a NaN K is never read). lc [nb, Hq, rows, 2] receives each row's
 * log-sum-exp and 1 / sum (gemm_finish normalises O), or -inf and 0 for an
 * empty row: no kept key, every kept score -inf, or a NaN / +Inf score (the
 * reference's sum is then not > 0: O = 0, LSE = -inf; such a row's P may
 * hold NaN, which only reaches its own O row, never written). One exp per
 * kept pair. NDRange: (GEMM_WG * rows, Hq, nb), one work-group per row. */
__kernel void gemm_softmax(__global float *s, __global float *lc, long b0, long i0, int rows, long hlo, long hw,
                           int n_heads, float softcap, __global const float *bias, ulong bias_off, long bsb, long bsh,
                           long bsn, long bsk, __global const float *alibi, ulong alibi_off, SEQ_ARGS)
{
    __local float red_m[GEMM_WG], red_l[GEMM_WG];
    const int lid = (int)get_local_id(0);
    const long r = (long)get_group_id(0), h = (long)get_global_id(1), bb = (long)get_global_id(2), b = b0 + bb;
    const seq_info sq = SEQUENCE(b);
    const long i = i0 + r;
    if (i >= sq.nq)
        return; /* a padding row of a shorter sequence: never read back */
    const long row = (bb * n_heads + h) * rows + r;
    __global float *srow = s + row * hw;
    const long diag = i + sq.diag_off;
    long lo, hi;
    row_range(i, &sq, win_left, win_right, hlo, hw, &lo, &hi);
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

    /* the maximum kept score (a NaN score is passed over here: its exp makes the sum NaN below) */
    float m = -INFINITY;
    for (long j = lo + lid; j < hi; j += GEMM_WG) {
        const float x = finish_score(srow[j - hlo], softcap, slope, diag, j, bias, brow, bsk);
        if (x > m)
            m = x;
    }
    red_m[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = GEMM_WG / 2; w > 0; w /= 2) {
        if (lid < w)
            red_m[lid] = fmax(red_m[lid], red_m[lid + w]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float mx = red_m[0];

    float l = 0.0f;
    for (long j = hlo + lid; j < hlo + hw; j += GEMM_WG) {
        float p = 0.0f;
        if (mx != -INFINITY && j >= lo && j < hi) {
            p = exp(finish_score(srow[j - hlo], softcap, slope, diag, j, bias, brow, bsk) - mx);
            l += p;
        }
        srow[j - hlo] = p;
    }
    red_l[lid] = l;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = GEMM_WG / 2; w > 0; w /= 2) {
        if (lid < w)
            red_l[lid] += red_l[lid + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        const float sum = red_l[0];
        const int empty = !(sum > 0.0f);
        lc[2 * row] = empty ? -INFINITY : mx + log(sum);
        lc[2 * row + 1] = empty ? 0.0f : 1.0f / sum;
    }
}

/* Rows of the chunk from oc [nb, Hq, rows, Dv] (= P V', P unnormalised)
 * and lc into o and lse (direct) or into the staging buffers
 * so [B, Hq, n_q, Dv] and sl [B, Hq, n_q]: O = oc / sum. An empty row is 0.
 * A row whose kept keys include one flagged by gemm_pack_kv is recomputed
 * as sum_j p_j v_j / sum over its kept keys from P (still in p) and the
 * original V, so a NaN or Inf reaches exactly the rows that keep it.
 * NDRange: (GEMM_WG * rows, Hq, nb). */
__kernel void gemm_finish(__global const float *oc, __global const float *p, __global const float *lc,
                          __global const int *kflag, __global const int *tflag, __global const in_t *v, ulong v_off,
                          long vsb, long vsh, long vsn, long vsd, __global out_t *o, ulong o_off, long osb, long osh,
                          long osn, long osd, __global float *lse, ulong lse_off, long lsb, long lsh, long lsn,
                          __global float *so, __global float *sl, int direct, long b0, long i0, int rows, long hlo,
                          long hw, int n_heads, int heads_per_kv, SEQ_ARGS)
{
    __local volatile int poisoned;
    const int lid = (int)get_local_id(0);
    const long r = (long)get_group_id(0), h = (long)get_global_id(1), bb = (long)get_global_id(2), b = b0 + bb;
    const seq_info sq = SEQUENCE(b);
    const long i = i0 + r;
    if (i >= sq.nq)
        return;
    const long row = (bb * n_heads + h) * rows + r;
    const float lrow = lc[2 * row], inv = lc[2 * row + 1];
    const long n_kv = n_heads / heads_per_kv, hk = h / heads_per_kv, bh = bb * n_kv + hk;
    const long tiles = ((long)n_k + KV_TILE - 1) / KV_TILE;
    long lo, hi;
    row_range(i, &sq, win_left, win_right, hlo, hw, &lo, &hi);

    if (lid == 0)
        poisoned = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lrow != -INFINITY) {
        /* whole tiles [t_lo, t_hi) by their flag, the keys before and after one by one */
        const long t_lo = (lo + KV_TILE - 1) / KV_TILE, t_hi = hi / KV_TILE;
        const long e0 = t_lo < t_hi ? t_lo * KV_TILE : hi, e1 = t_lo < t_hi ? t_hi * KV_TILE : hi;
        int mine = 0;
        for (long t = t_lo + lid; t < t_hi; t += GEMM_WG)
            mine |= tflag[bh * tiles + t];
        for (long j = lo + lid; j < e0; j += GEMM_WG)
            mine |= kflag[bh * n_k + j];
        for (long j = e1 + lid; j < hi; j += GEMM_WG)
            mine |= kflag[bh * n_k + j];
        if (mine)
            atomic_or(&poisoned, 1);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const int recompute = poisoned;
    const long vbase = (long)v_off + b * vsb + hk * vsh + sq.k0 * vsn;
    const long orow = (long)o_off + b * osb + h * osh + (sq.q0 + i) * osn;
    const long stg = ((b * n_heads + h) * n_q + i) * HEAD_DIM_V;
    for (int d = lid; d < HEAD_DIM_V; d += GEMM_WG) {
        float x = 0.0f;
        if (lrow == -INFINITY) {
            x = 0.0f;
        } else if (!recompute) {
            x = oc[row * HEAD_DIM_V + d] * inv;
        } else {
            for (long j = lo; j < hi; j++)
                x = fma(p[row * hw + j - hlo], LOAD_IN(v, vbase + j * vsn + d * vsd), x);
            x *= inv;
        }
        if (direct)
            STORE_OUT(o, orow + d * osd, x);
        else
            so[stg + d] = x;
    }
    if (lid == 0) {
        if (!direct)
            sl[(b * n_heads + h) * n_q + i] = lrow;
#if HAS_LSE
        else
            lse[(long)lse_off + b * lsb + h * lsh + (sq.q0 + i) * lsn] = lrow;
#endif
    }
}

/* The staging buffers into o and lse once every chunk is done. NDRange: one
 * work-item per element of [B, Hq, n_q, Dv]. */
__kernel void gemm_commit(__global const float *so, __global const float *sl, __global out_t *o, ulong o_off, long osb,
                          long osh, long osn, long osd, __global float *lse, ulong lse_off, long lsb, long lsh,
                          long lsn, int n_heads, long count, SEQ_ARGS)
{
    const long e = (long)get_global_id(0);
    if (e >= count)
        return;
    const long d = e % HEAD_DIM_V, t = e / HEAD_DIM_V;
    const long i = t % n_q, bh = t / n_q;
    const long h = bh % n_heads, b = bh / n_heads;
    const seq_info sq = SEQUENCE(b);
    if (i >= sq.nq)
        return;
    STORE_OUT(o, (long)o_off + b * osb + h * osh + (sq.q0 + i) * osn + d * osd, so[e]);
#if HAS_LSE
    if (d == 0)
        lse[(long)lse_off + b * lsb + h * lsh + (sq.q0 + i) * lsn] = sl[t];
#endif
}
