/*
 * merge.cl - the exact merge of partial attention results over disjoint key
 * sets: clattn_merge() and the decode variant's combine step.
 *
 * For one query row, with M = max_s LSE_s and w_s = exp(LSE_s - M):
 *   O = sum_s w_s O_s / sum_s w_s,  LSE = M + log(sum_s w_s).
 * An empty part (LSE_s = -inf) weighs 0 and its O_s is never read (it may
 * hold anything); a row with every part empty gets O = 0 and LSE = -inf.
 *
 * The parts come in up to MERGE_SLOTS slots, each a strided view of its own
 * buffer holding np parts a part stride apart (the decode scratch is one slot
 * of `splits` parts; clattn_merge passes one part per slot), plus optionally
 * the running result of an earlier launch (acc, f32 [rows, Dv] then the rows'
 * LSE at acc_lse_off), which is how more than MERGE_SLOTS parts are merged.
 * Parts are visited in a fixed order: results are deterministic.
 *
 * Storage: parts IN_DTYPE (f32/f16/bf16), LSE f32, output OUT_DTYPE.
 * VARLEN: row i of batch b is written to packed row cu_q[b] + i, rows past
 * the sequence's length are skipped (the parts are indexed by (b, h, i)).
 * NDRange: dim 0 the Dv columns, dim 1 query rows, dim 2 batch * heads.
 */
#ifndef CLATTN_COMMON
#include "common.cl"
#endif

#define MERGE_SLOTS 4

/* One slot: the parts' O view (element [b, h, i, d] of part s at
 * off + b*sb + h*sh + i*sn + d*sd + s*sp) and their LSE view. */
#define SLOT_ARGS(n)                                                                                               \
    __global const in_t *po##n, ulong po_off##n, long po_sb##n, long po_sh##n, long po_sn##n, long po_sd##n,        \
        long po_sp##n, __global const float *pl##n, ulong pl_off##n, long pl_sb##n, long pl_sh##n, long pl_sn##n, \
        long pl_sp##n, int np##n

#define SLOT_O_ROW(n) ((long)po_off##n + b * po_sb##n + h * po_sh##n + i * po_sn##n + d * po_sd##n)
#define SLOT_L_ROW(n) ((long)pl_off##n + b * pl_sb##n + h * pl_sh##n + i * pl_sn##n)

/* Largest LSE of a slot's parts, folded into m. */
inline float slot_max(float m, __global const float *pl, const long lrow, const long lsp, const int np)
{
    for (int s = 0; s < np; s++)
        m = fmax(m, pl[lrow + s * lsp]);
    return m;
}

/* Weighted sum of a slot's parts into *x and their weights into *wsum. */
inline void slot_sum(float *x, float *wsum, const float m, __global const in_t *po, const long orow, const long osp,
                     __global const float *pl, const long lrow, const long lsp, const int np)
{
    for (int s = 0; s < np; s++) {
        const float w = exp(pl[lrow + s * lsp] - m);
        if (w > 0.0f) { /* empty parts are skipped outright: their O is never read */
            *wsum += w;
            *x = fma(w, LOAD_IN(po, orow + s * osp), *x);
        }
    }
}

__kernel void attn_merge(SLOT_ARGS(0), SLOT_ARGS(1), SLOT_ARGS(2), SLOT_ARGS(3), __global const float *acc,
                         ulong acc_lse_off, __global out_t *o, ulong o_off, long osb, long osh, long osn, long osd,
                         __global float *lse, ulong lse_off, long lsb, long lsh, long lsn, int n_q, int n_heads,
                         int dv, __global const int *cu_q, ulong cu_q_off, long total_q)
{
    const long d = (long)get_global_id(0), i = (long)get_global_id(1), bh = (long)get_global_id(2);
    const long b = bh / n_heads, h = bh - b * n_heads;
    if (d >= dv)
        return;
#if VARLEN
    /* the same clamped sequence bounds the attention kernels use (common.cl) */
    const seq_info sq = sequence(b, n_q, 0, 0, 0, cu_q, 0, cu_q, cu_q_off, cu_q, cu_q_off, total_q, 0);
#else
    seq_info sq;
    sq.q0 = 0;
    sq.nq = n_q;
    (void)cu_q, (void)cu_q_off, (void)total_q;
#endif
    if (i >= sq.nq)
        return;
    const long arow = (bh * n_q + i);
    float m = -INFINITY;
    if (acc)
        m = acc[acc_lse_off + arow];
    m = slot_max(m, pl0, SLOT_L_ROW(0), pl_sp0, np0);
    m = slot_max(m, pl1, SLOT_L_ROW(1), pl_sp1, np1);
    m = slot_max(m, pl2, SLOT_L_ROW(2), pl_sp2, np2);
    m = slot_max(m, pl3, SLOT_L_ROW(3), pl_sp3, np3);

    float x = 0.0f, wsum = 0.0f;
    if (m != -INFINITY) {
        if (acc) {
            const float w = exp(acc[acc_lse_off + arow] - m);
            if (w > 0.0f) {
                wsum += w;
                x = fma(w, acc[arow * dv + d], x);
            }
        }
        slot_sum(&x, &wsum, m, po0, SLOT_O_ROW(0), po_sp0, pl0, SLOT_L_ROW(0), pl_sp0, np0);
        slot_sum(&x, &wsum, m, po1, SLOT_O_ROW(1), po_sp1, pl1, SLOT_L_ROW(1), pl_sp1, np1);
        slot_sum(&x, &wsum, m, po2, SLOT_O_ROW(2), po_sp2, pl2, SLOT_L_ROW(2), pl_sp2, np2);
        slot_sum(&x, &wsum, m, po3, SLOT_O_ROW(3), po_sp3, pl3, SLOT_L_ROW(3), pl_sp3, np3);
    }
    const long orow = (long)o_off + b * osb + h * osh + (sq.q0 + i) * osn;
    STORE_OUT(o, orow + d * osd, wsum > 0.0f ? x / wsum : 0.0f);
    if (lse && d == 0)
        lse[(long)lse_off + b * lsb + h * lsh + (sq.q0 + i) * lsn] = wsum > 0.0f ? m + log(wsum) : -INFINITY;
}
