/*
 * common.cl - what every attention kernel shares: storage formats (loads
 * widen to float, stores round to nearest even), the kept-key interval of a
 * query row, and the score modifiers (scale, softcap, ALiBi, bias).
 *
 * The host compiles it ahead of each kernel file with -DCLATTN_COMMON=1; a
 * kernel file compiled on its own #includes it instead. Feature switches
 * default to off so that the file compiles standalone. PAGED kernels read
 * K/V from page pools through a block table (load_kv_rows).
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
#ifndef VARLEN
#define VARLEN 0 /* sequences packed along N, addressed through cu_seqlens */
#endif
#ifndef PAGED
#define PAGED 0 /* k and v are page pools read through a block table */
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
    int win_left, int win_right, float softcap,                                   \
    __global const int *cu_q, ulong cu_q_off, __global const int *cu_k, ulong cu_k_off, \
    long total_q, long total_k, int align_br,                                     \
    __global const int *block_table, ulong bt_off, int max_pages, int page_size, long num_pages

/* One sequence of the batch: its query rows and keys, where they start in
 * the (packed) tensors, its key-padding limit and its diagonal offset. With
 * VARLEN the cu_seqlens values are clamped to the tensors' bounds, so
 * inconsistent prefix sums cannot make a kernel leave its buffers.
 * align_br: 0 top-left, 1 bottom-right, 2 bottom-right against the
 * sequence's key length (CLATTN_ALIGN_KEY_LENGTHS). */
typedef struct seq_info {
    long nq, nk;    /* query rows and keys of this sequence */
    long q0, k0;    /* first packed row of q/o/lse and of k/v */
    long diag_off;  /* key index of row 0's diagonal */
    int klen;       /* keys kept by padding */
} seq_info;

inline seq_info sequence(const long b, const int n_q, const int n_k, const long diag_off, const int align_br,
                         __global const int *key_len, const ulong key_len_off, __global const int *cu_q,
                         const ulong cu_q_off, __global const int *cu_k, const ulong cu_k_off, const long total_q,
                         const long total_k)
{
    seq_info s;
#if VARLEN
    s.q0 = clamp((long)cu_q[cu_q_off + b], 0L, total_q);
    s.k0 = clamp((long)cu_k[cu_k_off + b], 0L, total_k);
    s.nq = clamp((long)cu_q[cu_q_off + b + 1] - s.q0, 0L, min((long)n_q, total_q - s.q0));
    s.nk = clamp((long)cu_k[cu_k_off + b + 1] - s.k0, 0L, min((long)n_k, total_k - s.k0));
    s.diag_off = align_br ? s.nk - s.nq : 0;
#else
    s.q0 = 0;
    s.k0 = 0;
    s.nq = n_q;
    s.nk = n_k;
    s.diag_off = diag_off;
#endif
#if HAS_KEYLEN
    s.klen = (int)clamp((long)key_len[key_len_off + b], 0L, s.nk);
#else
    s.klen = (int)s.nk;
#endif
    if (align_br == 2)
        s.diag_off = (long)s.klen - s.nq;
    return s;
}
#define SEQUENCE(b)                                                                                    \
    sequence((b), n_q, n_k, diag_off, align_br, key_len, key_len_off, cu_q, cu_q_off, cu_k, cu_k_off, total_q, \
             total_k)

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


/* ------------------------------------------------------------------------
 * Tile helpers of the work-group kernels (tiled.cl, flash.cl): present when
 * the tile shape is defined. A work-group owns BLOCK_M query rows of one
 * (batch, head); its WG work-items form BLOCK_M / ROWS row groups of TPR
 * work-items. For scores, the TPR work-items of a group split the keys of a
 * tile; for the output, they split the Dv columns (column t, t+TPR, ...).
 * ------------------------------------------------------------------------ */
#if defined(BLOCK_M) && defined(BLOCK_N)

#ifndef ROWS
#define ROWS 1 /* query rows per work-item */
#endif
#ifndef TPR
#define TPR 1 /* work-items per row group */
#endif
#ifndef VEC
#define VEC 1 /* 4: K/V/Q rows are contiguous and a multiple of 4 long: vector loads */
#endif
#define WG (BLOCK_M / ROWS * TPR)
#define DMAX (HEAD_DIM > HEAD_DIM_V ? HEAD_DIM : HEAD_DIM_V)
/* Odd leading dimensions: work-items reading column d of different rows hit
 * different local-memory banks. */
#define LDQ (HEAD_DIM | 1)
#define LDKV (DMAX | 1)
#define DV_PER ((HEAD_DIM_V + TPR - 1) / TPR)

#if VEC == 4
#if IN_DTYPE == 0
#define LOAD4(p, i) vload4(0, (p) + (i))
#elif IN_DTYPE == 1
#define LOAD4(p, i) vload_half4(0, (p) + (i))
#else
#define LOAD4(p, i) as_float4(convert_uint4(vload4(0, (p) + (i))) << 16)
#endif
#endif

/* Rows [n0, n0 + nrows) of one head (row r at base + r * sn, element d at
 * d * sd) into dst[r * ld + d], as float; rows at or past `end` become 0. */
inline void load_rows(__local float *dst, const int ld, __global const in_t *src, const long base, const long sn,
                      const long sd, const long n0, const int nrows, const long end, const int dim)
{
    const int lid = (int)get_local_id(0);
#if VEC == 4
    const int dim4 = dim / 4;
    for (int idx = lid; idx < nrows * dim4; idx += WG) {
        const int r = idx / dim4, d = (idx - r * dim4) * 4;
        const long n = n0 + r;
        const float4 x = n < end ? LOAD4(src, base + n * sn + d) : (float4)(0.0f);
        dst[r * ld + d] = x.s0;
        dst[r * ld + d + 1] = x.s1;
        dst[r * ld + d + 2] = x.s2;
        dst[r * ld + d + 3] = x.s3;
    }
    (void)sd;
#else
    for (int idx = lid; idx < nrows * dim; idx += WG) {
        const int r = idx / dim, d = idx - r * dim;
        const long n = n0 + r;
        dst[r * ld + d] = n < end ? LOAD_IN(src, base + n * sn + d * sd) : 0.0f;
    }
#endif
}

/* Rows [n0, n0 + nrows) of one K or V head as load_rows does. PAGED: row n
 * lives in page bt[n / page_size] (bt: the sequence's block-table row, each
 * entry clamped to the pool), slot n % page_size; base addresses slot 0 of
 * page 0 and pages are sb elements apart. Otherwise load_rows. */
inline void load_kv_rows(__local float *dst, const int ld, __global const in_t *src, const long base, const long sb,
                         const long sn, const long sd, const long n0, const int nrows, const long end, const int dim,
                         __global const int *bt, const int page_size, const long num_pages)
{
#if PAGED
    const int lid = (int)get_local_id(0);
#if VEC == 4
    const int dim4 = dim / 4;
    long last = -1, row = 0; /* the row's address, looked up once per row */
    for (int idx = lid; idx < nrows * dim4; idx += WG) {
        const int r = idx / dim4, d = (idx - r * dim4) * 4;
        const long n = n0 + r;
        float4 x = (float4)(0.0f);
        if (n < end) {
            if (n != last) {
                const long pg = n / page_size;
                row = base + clamp((long)bt[pg], 0L, num_pages - 1) * sb + (n - pg * page_size) * sn;
                last = n;
            }
            x = LOAD4(src, row + d);
        }
        dst[r * ld + d] = x.s0;
        dst[r * ld + d + 1] = x.s1;
        dst[r * ld + d + 2] = x.s2;
        dst[r * ld + d + 3] = x.s3;
    }
    (void)sd;
#else
    long last = -1, row = 0;
    for (int idx = lid; idx < nrows * dim; idx += WG) {
        const int r = idx / dim, d = idx - r * dim;
        const long n = n0 + r;
        float x = 0.0f;
        if (n < end) {
            if (n != last) {
                const long pg = n / page_size;
                row = base + clamp((long)bt[pg], 0L, num_pages - 1) * sb + (n - pg * page_size) * sn;
                last = n;
            }
            x = LOAD_IN(src, row + d * sd);
        }
        dst[r * ld + d] = x;
    }
#endif
#else
    load_rows(dst, ld, src, base, sn, sd, n0, nrows, end, dim);
    (void)sb, (void)bt, (void)page_size, (void)num_pages;
#endif
}

/* Per-row state a work-item keeps for each of its ROWS rows. */
typedef struct row_info {
    long i;       /* query row index (may be >= n_q in the last block) */
    long lo, hi;  /* its exact kept-key interval */
    long bias_row;
} row_info;

/* Scores of this work-item's rows against keys t, t+TPR, ... of the tile
 * starting at key n0 (Ks holds the tile), into S[row * BLOCK_N + jj]. Masked
 * pairs get -inf by selection, so NaN in a masked K never enters. */
inline void score_tile(__local const float *Qs, __local const float *Ks, __local float *S, const row_info *ri,
                       const int g, const int t, const long n0, const float scale, const float softcap,
                       const float slope, const long diag_off, __global const float *bias, const long bsk)
{
    for (int jj = t; jj < BLOCK_N; jj += TPR) {
        const long j = n0 + jj;
        float dot[ROWS];
        for (int r = 0; r < ROWS; r++)
            dot[r] = 0.0f;
#if HEAD_DIM % 8 == 0
        /* eight lanes along D: explicit SIMD for implementations that
         * vectorise across work-items only (PoCL with small work-groups) */
        float8 dot8[ROWS];
        for (int r = 0; r < ROWS; r++)
            dot8[r] = (float8)(0.0f);
        for (int d = 0; d < HEAD_DIM; d += 8) {
            const float8 kd = vload8(0, Ks + jj * LDKV + d);
            for (int r = 0; r < ROWS; r++)
                dot8[r] = fma(vload8(0, Qs + (g * ROWS + r) * LDQ + d), kd, dot8[r]);
        }
        for (int r = 0; r < ROWS; r++) {
            const float4 h4 = dot8[r].lo + dot8[r].hi;
            const float2 h2 = h4.lo + h4.hi;
            dot[r] = h2.x + h2.y;
        }
#else
        for (int d = 0; d < HEAD_DIM; d++) {
            const float kd = Ks[jj * LDKV + d];
            for (int r = 0; r < ROWS; r++)
                dot[r] = fma(Qs[(g * ROWS + r) * LDQ + d], kd, dot[r]);
        }
#endif
        for (int r = 0; r < ROWS; r++) {
            const int kept = j >= ri[r].lo && j < ri[r].hi;
            S[(g * ROWS + r) * BLOCK_N + jj] =
                kept ? finish_score(dot[r] * scale, softcap, slope, ri[r].i + diag_off, j, bias, ri[r].bias_row, bsk)
                     : -INFINITY;
        }
    }
}

#endif /* BLOCK_M && BLOCK_N */

#endif /* CLATTN_COMMON_CL */
