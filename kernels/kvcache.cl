/*
 * kvcache.cl - the KV cache's device work (src/kvcache.c): appending new
 * key/value rows in place (converting IN_DTYPE to the cache's OUT_DTYPE),
 * copying storage into a larger allocation when the cache grows, and
 * advancing the per-sequence lengths, all without host round trips.
 */
#ifndef CLATTN_COMMON
#include "common.cl"
#endif

/*
 * Row t of sequence b of src goes to row pos[seq0 + b] + t of sequence
 * seq0 + b of dst, for t < count (counts[b], or n_uniform when counts is
 * NULL; pos NULL means 0). PAGED: dst is a page pool and row p of sequence s
 * lives in page table[s * max_pages + p / page_size], slot p % page_size
 * (the host assigns the pages before the launch). Offsets and strides are in
 * elements. NDRange: dim 0 the head dim, dim 1 rows, dim 2 sequences * heads.
 */
__kernel void kv_append(__global const in_t *src, ulong s_off, long ssb, long ssh, long ssn, long ssd,
                        __global out_t *dst, ulong d_off, long dsb, long dsh, long dsn, long dsd,
                        __global const int *pos, __global const int *counts, int n_uniform, int seq0, int n_heads,
                        int dim, __global const int *table, int max_pages, int page_size)
{
    const long d = (long)get_global_id(0), t = (long)get_global_id(1), bh = (long)get_global_id(2);
    const long b = bh / n_heads, h = bh - b * n_heads, s = seq0 + b;
    if (d >= dim)
        return;
    if (t >= (counts ? (long)counts[b] : (long)n_uniform))
        return;
    const long p = (pos ? (long)pos[s] : 0L) + t;
    const float x = LOAD_IN(src, (long)s_off + b * ssb + h * ssh + t * ssn + d * ssd);
#if PAGED
    const long pg = p / page_size;
    const long page = (long)table[s * (long)max_pages + pg];
    STORE_OUT(dst, (long)d_off + page * dsb + h * dsh + (p - pg * page_size) * dsn + d * dsd, x);
#else
    STORE_OUT(dst, (long)d_off + s * dsb + h * dsh + p * dsn + d * dsd, x);
    (void)table, (void)max_pages, (void)page_size;
#endif
}

/* len[seq0 + i] += counts[i] (n_uniform when counts is NULL), i < n. */
__kernel void kv_lengths_add(__global int *len, __global const int *counts, int n_uniform, int seq0, int n)
{
    const int i = (int)get_global_id(0);
    if (i < n)
        len[seq0 + i] += counts ? counts[i] : n_uniform;
}
