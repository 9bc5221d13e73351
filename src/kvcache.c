/*
 * kvcache.c - the KV cache object: per-sequence K and V storage on the
 * device (contiguous [B, Hkv, capacity, D], or a pool of fixed-size pages
 * with a block table), appends in place (kernels/kvcache.cl), growth that
 * keeps the contents (copied on the device), per-sequence lengths kept both
 * on the host (the bookkeeping) and on the device (the key lengths every
 * attention kernel reads), and attention of new queries against the cache
 * through a cached plan (decode for few queries, flash otherwise).
 *
 * Every operation prepares its new state on the side (new buffers, a new
 * host table and free list) and commits it only once every command was
 * enqueued, so a failure leaves the cache exactly as it was.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_CAPACITY 256

struct clattn_kvcache {
    clattn_context *ctx;
    int64_t B, H, D, Dv;
    clattn_dtype dtype;
    size_t esize;
    int paged;
    int64_t page_size;
    /* storage: contiguous [B, H, cap, D(v)], or pools [num_pages, H, page_size, D(v)] */
    cl_mem k, v;
    int64_t cap;                   /* contiguous: keys per sequence */
    int64_t num_pages, max_pages;  /* paged */
    int32_t *table;                /* paged: host [B, max_pages], -1 = no page */
    int32_t *free_pages;           /* paged: stack of free pages (room for num_pages) */
    int64_t n_free;
    cl_mem table_dev;              /* paged: the table the kernels read */
    int32_t *len;                  /* host lengths [B] */
    cl_mem len_dev;                /* device lengths [B] (the attention's key lengths) */
    cl_mem counts_dev;             /* [B]: per-sequence counts of an append */
    cl_kernel append[CLATTN_DTYPE_COUNT_]; /* by source dtype (built on first use) */
    cl_kernel copy;                /* storage to storage, plain addressing (growth) */
    cl_kernel lengths_add;
    /* attention */
    clattn_plan *plan;
    clattn_attention_desc plan_desc;
    clattn_args plan_args;
    clattn_variant last_variant;
};

/* ------------------------------------------------------------ helpers */


static clattn_status kernel_of(clattn_context *ctx, clattn_dtype in, clattn_dtype out, int paged, const char *name,
                               cl_kernel *k)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_program prog = NULL;
    cl_int err = CL_SUCCESS;
    char opts[128];
    size_t len = 0;
    clattn__appendf(opts, sizeof opts, &len, "-cl-std=CL1.2 -DIN_DTYPE=%d -DOUT_DTYPE=%d -DPAGED=%d", (int)in,
                    (int)out, paged);
    status = clattn__program_get(ctx, "kvcache", opts, &prog);
    if (status)
        goto cleanup;
    *k = cla_CreateKernel(prog, name, &err);
    CLATTN_CL(err);
cleanup:
    return status;
}

/* A copy of rows between two 4-D views: [nseq, H, rows, dim] of src to
 * sequences seq0.. of dst at row offsets pos (NULL: 0), counts[b] rows each
 * (NULL: n_uniform); paged: dst addressed through table. */
typedef struct copy_job {
    cl_mem src;
    uint64_t s_off;
    int64_t ss[4];
    cl_mem dst;
    int64_t ds[4];
    cl_mem pos, counts, table;
    int64_t n_uniform, seq0, nseq, rows, dim, max_pages;
} copy_job;

static clattn_status enqueue_copy(clattn_kvcache *kv, cl_kernel kernel, const copy_job *j, cl_command_queue queue,
                                  cl_uint nwait, const cl_event *wait, cl_event *ev)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = kv->ctx;
    clattn__kargs a = {kernel, 0, CL_SUCCESS, 0};
    size_t global[3];
    clattn__karg_mem(&a, j->src);
    clattn__karg_ulong(&a, j->s_off);
    for (int i = 0; i < 4; i++)
        clattn__karg_long(&a, j->ss[i]);
    clattn__karg_mem(&a, j->dst);
    clattn__karg_ulong(&a, 0);
    for (int i = 0; i < 4; i++)
        clattn__karg_long(&a, j->ds[i]);
    clattn__karg_mem(&a, j->pos);
    clattn__karg_mem(&a, j->counts);
    clattn__karg_int(&a, j->n_uniform);
    clattn__karg_int(&a, j->seq0);
    clattn__karg_int(&a, kv->H);
    clattn__karg_int(&a, j->dim);
    clattn__karg_mem(&a, j->table);
    clattn__karg_int(&a, j->max_pages);
    clattn__karg_int(&a, kv->page_size);
    CLATTN_CHECK(a.err == CL_SUCCESS, clattn_status_from_cl(a.err), "kv_append: clSetKernelArg(%u) failed: %s",
                 a.failed_at, clattn_status_name(clattn_status_from_cl(a.err)));
    global[0] = (size_t)j->dim;
    global[1] = (size_t)(j->rows > 0 ? j->rows : 1);
    global[2] = (size_t)(j->nseq * kv->H);
    CLATTN_CL(cla_EnqueueNDRangeKernel(queue, kernel, 3, global, NULL, nwait, wait, ev));
cleanup:
    return status;
}

/* The chain of commands of one operation: the first waits on the caller's
 * list, each later one on its predecessor. */
typedef struct chain {
    cl_uint nwait;
    const cl_event *wait;
    cl_event last;
} chain;

static cl_uint chain_n(const chain *c) { return c->last ? 1 : c->nwait; }
static const cl_event *chain_w(const chain *c) { return c->last ? &c->last : c->wait; }
static void chain_step(chain *c, cl_event next)
{
    cla_ReleaseEvent(c->last);
    c->last = next;
}

static clattn_status check_seq(clattn_kvcache *kv, int64_t seq, int64_t *seq0, int64_t *nseq)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = kv->ctx;
    CLATTN_CHECK(seq < kv->B, CLATTN_ERROR_KVCACHE_RANGE, "seq: %lld is not a sequence of the cache (0..%lld, < 0: all)",
                 (long long)seq, (long long)(kv->B - 1));
    *seq0 = seq < 0 ? 0 : seq;
    *nseq = seq < 0 ? kv->B : 1;
cleanup:
    return status;
}

static size_t storage_bytes(const clattn_kvcache *kv, int64_t rows_or_pages, int64_t page_rows)
{
    /* k and v of [rows_or_pages, H, page_rows, D + Dv]; the caller checked the product fits */
    return (size_t)rows_or_pages * (size_t)kv->H * (size_t)page_rows * (size_t)(kv->D + kv->Dv) * kv->esize;
}

/* Whether B or pages x H x rows x max(D, Dv) elements fit one device allocation. */
static int storage_fits(const clattn_kvcache *kv, int64_t outer, int64_t rows)
{
    size_t n;
    const size_t dmax = (size_t)(kv->D > kv->Dv ? kv->D : kv->Dv);
    return clattn__mul_size((size_t)outer, (size_t)kv->H, &n) && clattn__mul_size(n, (size_t)rows, &n) &&
           clattn__mul_size(n, dmax, &n) && clattn__mul_size(n, kv->esize, &n) && n <= kv->ctx->max_alloc;
}

static clattn_status alloc_storage(clattn_kvcache *kv, int64_t outer, int64_t rows, cl_mem *k, cl_mem *v)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = kv->ctx;
    cl_int err = CL_SUCCESS;
    const size_t n = (size_t)outer * (size_t)kv->H * (size_t)rows * kv->esize;
    *k = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, n * (size_t)kv->D, NULL, &err);
    CLATTN_CL(err);
    *v = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, n * (size_t)kv->Dv, NULL, &err);
    CLATTN_CL(err);
cleanup:
    if (status) {
        cla_ReleaseMemObject(*k);
        cla_ReleaseMemObject(*v);
        *k = *v = NULL;
    }
    return status;
}

static void view_strides(int64_t H, int64_t N, int64_t D, int64_t s[4])
{
    s[0] = H * N * D, s[1] = N * D, s[2] = D, s[3] = 1;
}

/* ------------------------------------------------------------ create / free */

clattn_status clattn_kvcache_create(clattn_context *ctx, const clattn_kvcache_desc *desc, clattn_kvcache **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_kvcache *kv = NULL;
    int32_t *zeros = NULL;
    cl_int err = CL_SUCCESS;
    if (!ctx)
        return CLATTN_ERROR_NULL_ARGUMENT;
    clattn__clear_error(ctx);
    CLATTN_CHECK(out != NULL, CLATTN_ERROR_NULL_ARGUMENT, "out is NULL");
    *out = NULL;
    CLATTN_CHECK(desc != NULL, CLATTN_ERROR_NULL_ARGUMENT, "desc is NULL");
    CLATTN_CHECK(desc->batch >= 1 && desc->batch <= INT32_MAX, CLATTN_ERROR_INVALID_SHAPE,
                 "desc.batch: %lld must be in 1..2^31-1", (long long)desc->batch);
    CLATTN_CHECK(desc->kv_heads >= 1 && desc->kv_heads <= INT32_MAX, CLATTN_ERROR_INVALID_SHAPE,
                 "desc.kv_heads: %lld must be in 1..2^31-1", (long long)desc->kv_heads);
    CLATTN_CHECK(desc->head_dim >= 1 && desc->head_dim <= CLATTN_MAX_HEAD_DIM, CLATTN_ERROR_HEAD_DIM,
                 "desc.head_dim: %lld must be in 1..%d", (long long)desc->head_dim, CLATTN_MAX_HEAD_DIM);
    CLATTN_CHECK(desc->head_dim_v >= 0 && desc->head_dim_v <= CLATTN_MAX_HEAD_DIM, CLATTN_ERROR_HEAD_DIM,
                 "desc.head_dim_v: %lld must be in 0..%d (0 = head_dim)", (long long)desc->head_dim_v,
                 CLATTN_MAX_HEAD_DIM);
    CLATTN_CHECK((int)desc->dtype >= 0 && desc->dtype < CLATTN_DTYPE_COUNT_, CLATTN_ERROR_INVALID_DTYPE,
                 "desc.dtype: unknown value %d", (int)desc->dtype);
    CLATTN_CHECK(desc->capacity >= 0 && desc->capacity <= INT32_MAX, CLATTN_ERROR_INVALID_VALUE,
                 "desc.capacity: %lld must be in 0..2^31-1 (0 = %d)", (long long)desc->capacity, DEFAULT_CAPACITY);
    CLATTN_CHECK(desc->page_size >= 0 && desc->page_size <= INT32_MAX, CLATTN_ERROR_INVALID_VALUE,
                 "desc.page_size: %lld must be in 0..2^31-1 (0 = contiguous)", (long long)desc->page_size);

    kv = clattn__calloc(1, sizeof *kv);
    CLATTN_CHECK(kv != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "KV cache");
    kv->ctx = ctx;
    kv->B = desc->batch;
    kv->H = desc->kv_heads;
    kv->D = desc->head_dim;
    kv->Dv = desc->head_dim_v ? desc->head_dim_v : desc->head_dim;
    kv->dtype = desc->dtype;
    kv->esize = clattn_dtype_size(desc->dtype);
    kv->paged = desc->page_size > 0;
    kv->page_size = desc->page_size;
    kv->last_variant = CLATTN_VARIANT_AUTO;
    {
        const int64_t cap = desc->capacity ? desc->capacity : DEFAULT_CAPACITY;
        if (kv->paged) {
            kv->max_pages = (cap + kv->page_size - 1) / kv->page_size;
            kv->num_pages = kv->B * kv->max_pages;
            CLATTN_CHECK(kv->max_pages * kv->page_size <= INT32_MAX && storage_fits(kv, kv->num_pages, kv->page_size) &&
                             kv->num_pages <= INT32_MAX,
                         CLATTN_ERROR_DEVICE_LIMIT,
                         "desc: %lld pages of %lld keys exceed one device allocation (%llu bytes) or 2^31-1",
                         (long long)kv->num_pages, (long long)kv->page_size, (unsigned long long)ctx->max_alloc);
        } else {
            kv->cap = cap;
            CLATTN_CHECK(storage_fits(kv, kv->B, kv->cap), CLATTN_ERROR_DEVICE_LIMIT,
                         "desc: capacity %lld for %lld sequences exceeds one device allocation (%llu bytes)",
                         (long long)kv->cap, (long long)kv->B, (unsigned long long)ctx->max_alloc);
        }
    }
    kv->len = clattn__calloc((size_t)kv->B, sizeof *kv->len);
    zeros = clattn__calloc((size_t)kv->B, sizeof *zeros);
    CLATTN_CHECK(kv->len && zeros, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "KV cache lengths");
    if (kv->paged) {
        kv->table = clattn__malloc((size_t)(kv->B * kv->max_pages) * sizeof *kv->table);
        kv->free_pages = clattn__malloc((size_t)kv->num_pages * sizeof *kv->free_pages);
        CLATTN_CHECK(kv->table && kv->free_pages, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "KV cache block table");
        for (int64_t i = 0; i < kv->B * kv->max_pages; i++)
            kv->table[i] = -1;
        for (int64_t i = 0; i < kv->num_pages; i++) /* the top of the stack is page 0 */
            kv->free_pages[i] = (int32_t)(kv->num_pages - 1 - i);
        kv->n_free = kv->num_pages;
        status = alloc_storage(kv, kv->num_pages, kv->page_size, &kv->k, &kv->v);
        if (status)
            goto cleanup;
        kv->table_dev = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY, (size_t)(kv->B * kv->max_pages) * 4, NULL,
                                         &err);
        CLATTN_CL(err);
    } else {
        status = alloc_storage(kv, kv->B, kv->cap, &kv->k, &kv->v);
        if (status)
            goto cleanup;
    }
    kv->len_dev = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, (size_t)kv->B * 4, NULL, &err);
    CLATTN_CL(err);
    kv->counts_dev = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY, (size_t)kv->B * 4, NULL, &err);
    CLATTN_CL(err);
    CLATTN_CL(cla_EnqueueWriteBuffer(ctx->queue, kv->len_dev, CL_TRUE, 0, (size_t)kv->B * 4, zeros, 0, NULL, NULL));
    status = kernel_of(ctx, kv->dtype, kv->dtype, 0, "kv_append", &kv->copy);
    if (status)
        goto cleanup;
    status = kernel_of(ctx, kv->dtype, kv->dtype, 0, "kv_lengths_add", &kv->lengths_add);
    if (status)
        goto cleanup;
    *out = kv;
    kv = NULL;
cleanup:
    clattn__free(zeros);
    clattn_kvcache_free(kv);
    return status;
}

static void free_plan(clattn_kvcache *kv)
{
    clattn_plan_free(kv->plan);
    kv->plan = NULL;
}

void clattn_kvcache_free(clattn_kvcache *kv)
{
    if (!kv)
        return;
    free_plan(kv);
    for (int i = 0; i < CLATTN_DTYPE_COUNT_; i++)
        cla_ReleaseKernel(kv->append[i]);
    cla_ReleaseKernel(kv->copy);
    cla_ReleaseKernel(kv->lengths_add);
    cla_ReleaseMemObject(kv->k);
    cla_ReleaseMemObject(kv->v);
    cla_ReleaseMemObject(kv->table_dev);
    cla_ReleaseMemObject(kv->len_dev);
    cla_ReleaseMemObject(kv->counts_dev);
    clattn__free(kv->table);
    clattn__free(kv->free_pages);
    clattn__free(kv->len);
    clattn__free(kv);
}

/* ------------------------------------------------------------ append */

/* The new paged state an append prepares: a table (maybe wider), a free
 * list (maybe over a larger pool) and the pool itself when it grows. */
typedef struct paged_next {
    int32_t *table, *free_pages;
    int64_t max_pages, num_pages, n_free;
    int table_changed;
} paged_next;

static clattn_status plan_pages(clattn_kvcache *kv, const int64_t *new_len, int64_t seq0, int64_t nseq,
                                paged_next *nx)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = kv->ctx;
    const int64_t ps = kv->page_size;
    int64_t width = kv->max_pages, extra = 0;
    memset(nx, 0, sizeof *nx);
    for (int64_t i = 0; i < nseq; i++) {
        const int64_t s = seq0 + i;
        const int64_t have = (kv->len[s] + ps - 1) / ps, want = (new_len[i] + ps - 1) / ps;
        extra += want - have;
        if (want > width)
            width = want;
    }
    nx->max_pages = kv->max_pages;
    if (width > kv->max_pages) {
        nx->max_pages = 2 * kv->max_pages > width ? 2 * kv->max_pages : width;
        if (nx->max_pages * ps > INT32_MAX)
            nx->max_pages = width;
    }
    nx->num_pages = kv->num_pages;
    if (extra > kv->n_free) {
        const int64_t need = kv->num_pages + extra - kv->n_free;
        nx->num_pages = 2 * kv->num_pages > need ? 2 * kv->num_pages : need;
        if (nx->num_pages > INT32_MAX || !storage_fits(kv, nx->num_pages, ps))
            nx->num_pages = need;
        CLATTN_CHECK(nx->num_pages <= INT32_MAX && storage_fits(kv, nx->num_pages, ps), CLATTN_ERROR_DEVICE_LIMIT,
                     "append: a pool of %lld pages of %lld keys exceeds one device allocation (%llu bytes)",
                     (long long)need, (long long)ps, (unsigned long long)ctx->max_alloc);
    }
    nx->table = clattn__malloc((size_t)(kv->B * nx->max_pages) * sizeof *nx->table);
    nx->free_pages = clattn__malloc((size_t)nx->num_pages * sizeof *nx->free_pages);
    CLATTN_CHECK(nx->table && nx->free_pages, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "append: block table");
    for (int64_t b = 0; b < kv->B; b++)
        for (int64_t j = 0; j < nx->max_pages; j++)
            nx->table[b * nx->max_pages + j] = j < kv->max_pages ? kv->table[b * kv->max_pages + j] : -1;
    /* new pages under the old free ones, lowest on top */
    nx->n_free = 0;
    for (int64_t pg = nx->num_pages - 1; pg >= kv->num_pages; pg--)
        nx->free_pages[nx->n_free++] = (int32_t)pg;
    memcpy(nx->free_pages + nx->n_free, kv->free_pages, (size_t)kv->n_free * sizeof *kv->free_pages);
    nx->n_free += kv->n_free;
    for (int64_t i = 0; i < nseq; i++) {
        const int64_t s = seq0 + i;
        const int64_t have = (kv->len[s] + ps - 1) / ps, want = (new_len[i] + ps - 1) / ps;
        for (int64_t j = have; j < want; j++) {
            nx->table[s * nx->max_pages + j] = nx->free_pages[--nx->n_free];
            nx->table_changed = 1;
        }
    }
    nx->table_changed |= nx->max_pages != kv->max_pages;
cleanup:
    if (status) {
        clattn__free(nx->table);
        clattn__free(nx->free_pages);
        nx->table = nx->free_pages = NULL;
    }
    return status;
}

clattn_status clattn_kvcache_append(clattn_kvcache *kv, int64_t seq, const clattn_tensor *k, const clattn_tensor *v,
                                    const int32_t *counts, cl_command_queue queue, cl_uint num_wait,
                                    const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx;
    clattn_tensor tk, tv;
    int64_t seq0 = 0, nseq = 0, n_new, new_cap = 0, max_len = 0;
    int64_t *new_len = NULL;
    paged_next nx;
    cl_mem nk = NULL, nv = NULL, ntable = NULL; /* new storage / table, owned until committed */
    chain ch = {num_wait, wait, NULL};
    cl_event ev = NULL;
    memset(&nx, 0, sizeof nx);
    if (!kv)
        return CLATTN_ERROR_NULL_ARGUMENT;
    ctx = kv->ctx;
    clattn__clear_error(ctx);
    CLATTN_CHECK(k != NULL && v != NULL, CLATTN_ERROR_NULL_ARGUMENT, "%s is NULL", k ? "v" : "k");
    CLATTN_CHECK((num_wait == 0) == (wait == NULL), CLATTN_ERROR_INVALID_VALUE, "wait: %u events but the list is %s",
                 num_wait, wait ? "non-NULL" : "NULL");
    status = check_seq(kv, seq, &seq0, &nseq);
    if (status)
        goto cleanup;
    if (!queue)
        queue = ctx->queue;
    {
        size_t need_k = 0, need_v = 0, size = 0;
        tk = *k;
        tv = *v;
        status = clattn__tensor_check(ctx, "k", &tk, 4, 0, &need_k);
        if (status)
            goto cleanup;
        status = clattn__tensor_check(ctx, "v", &tv, 4, 0, &need_v);
        if (status)
            goto cleanup;
        n_new = tk.shape[2];
        CLATTN_CHECK(tk.shape[0] == nseq && tk.shape[1] == kv->H && tk.shape[3] == kv->D, CLATTN_ERROR_INVALID_SHAPE,
                     "k: shape [%lld, %lld, %lld, %lld] must be [%lld, Hkv = %lld, n_new, D = %lld]",
                     (long long)tk.shape[0], (long long)tk.shape[1], (long long)tk.shape[2], (long long)tk.shape[3],
                     (long long)nseq, (long long)kv->H, (long long)kv->D);
        CLATTN_CHECK(tv.shape[0] == nseq && tv.shape[1] == kv->H && tv.shape[2] == n_new && tv.shape[3] == kv->Dv,
                     CLATTN_ERROR_INVALID_SHAPE,
                     "v: shape [%lld, %lld, %lld, %lld] must be [%lld, Hkv = %lld, n_new = %lld, Dv = %lld]",
                     (long long)tv.shape[0], (long long)tv.shape[1], (long long)tv.shape[2], (long long)tv.shape[3],
                     (long long)nseq, (long long)kv->H, (long long)n_new, (long long)kv->Dv);
        CLATTN_CHECK(tk.dtype == tv.dtype, CLATTN_ERROR_INVALID_DTYPE, "v: dtype %s differs from k's %s",
                     clattn_dtype_name(tv.dtype), clattn_dtype_name(tk.dtype));
        for (int i = 0; i < 2; i++) {
            const clattn_tensor *t = i ? &tv : &tk;
            CLATTN_CHECK(t->buffer != NULL, CLATTN_ERROR_NULL_ARGUMENT, "%s: buffer is NULL", i ? "v" : "k");
            CLATTN_CHECK(t->buffer != kv->k && t->buffer != kv->v, CLATTN_ERROR_ALIASING,
                         "%s: the buffer is the cache's own storage", i ? "v" : "k");
            CLATTN_CL(cla_GetMemObjectInfo(t->buffer, CL_MEM_SIZE, sizeof size, &size, NULL));
            CLATTN_CHECK(size >= (i ? need_v : need_k), CLATTN_ERROR_BUFFER_TOO_SMALL,
                         "%s: buffer holds %zu bytes, the view needs %zu", i ? "v" : "k", size, i ? need_v : need_k);
        }
    }
    new_len = clattn__malloc((size_t)nseq * sizeof *new_len);
    CLATTN_CHECK(new_len != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "append: lengths");
    for (int64_t i = 0; i < nseq; i++) {
        const int64_t c = counts ? counts[i] : n_new;
        CLATTN_CHECK(c >= 0 && c <= n_new, CLATTN_ERROR_KVCACHE_RANGE, "counts[%lld]: %lld is outside 0..n_new = %lld",
                     (long long)i, (long long)c, (long long)n_new);
        new_len[i] = kv->len[seq0 + i] + c;
        CLATTN_CHECK(new_len[i] <= INT32_MAX, CLATTN_ERROR_KVCACHE_RANGE,
                     "append: sequence %lld would hold %lld keys, more than 2^31-1", (long long)(seq0 + i),
                     (long long)new_len[i]);
        if (new_len[i] > max_len)
            max_len = new_len[i];
    }

    /* New storage (and table) where the appended rows do not fit. */
    if (kv->paged) {
        status = plan_pages(kv, new_len, seq0, nseq, &nx);
        if (status)
            goto cleanup;
        if (nx.num_pages != kv->num_pages) {
            status = alloc_storage(kv, nx.num_pages, kv->page_size, &nk, &nv);
            if (status)
                goto cleanup;
        }
        if (nx.max_pages != kv->max_pages) {
            cl_int err = CL_SUCCESS;
            ntable = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY, (size_t)(kv->B * nx.max_pages) * 4, NULL, &err);
            CLATTN_CL(err);
        }
        if (nx.table_changed) {
            CLATTN_CL(cla_EnqueueWriteBuffer(queue, ntable ? ntable : kv->table_dev, CL_TRUE, 0,
                                             (size_t)(kv->B * nx.max_pages) * 4, nx.table, chain_n(&ch), chain_w(&ch),
                                             &ev));
            chain_step(&ch, ev), ev = NULL;
        }
    } else if (max_len > kv->cap) {
        new_cap = 2 * kv->cap > max_len ? 2 * kv->cap : max_len;
        if (new_cap > INT32_MAX || !storage_fits(kv, kv->B, new_cap))
            new_cap = max_len;
        CLATTN_CHECK(storage_fits(kv, kv->B, new_cap), CLATTN_ERROR_DEVICE_LIMIT,
                     "append: capacity %lld for %lld sequences exceeds one device allocation (%llu bytes)",
                     (long long)new_cap, (long long)kv->B, (unsigned long long)ctx->max_alloc);
        status = alloc_storage(kv, kv->B, new_cap, &nk, &nv);
        if (status)
            goto cleanup;
    }
    if (counts) {
        CLATTN_CL(cla_EnqueueWriteBuffer(queue, kv->counts_dev, CL_TRUE, 0, (size_t)nseq * 4, counts, chain_n(&ch),
                                         chain_w(&ch), &ev));
        chain_step(&ch, ev), ev = NULL;
    }
    /* Growth: the old contents into the new storage, on the device. */
    if (nk) {
        for (int i = 0; i < 2; i++) {
            copy_job j;
            const int64_t dim = i ? kv->Dv : kv->D;
            memset(&j, 0, sizeof j);
            j.src = i ? kv->v : kv->k;
            j.dst = i ? nv : nk;
            j.dim = dim;
            if (kv->paged) { /* the whole pool: pages keep their numbers */
                view_strides(kv->H, kv->page_size, dim, j.ss);
                view_strides(kv->H, kv->page_size, dim, j.ds);
                j.nseq = kv->num_pages;
                j.rows = kv->page_size;
                j.n_uniform = kv->page_size;
            } else { /* each sequence's rows [0, len) */
                int64_t longest = 0;
                for (int64_t b = 0; b < kv->B; b++)
                    longest = kv->len[b] > longest ? kv->len[b] : longest;
                view_strides(kv->H, kv->cap, dim, j.ss);
                view_strides(kv->H, new_cap, dim, j.ds);
                j.nseq = kv->B;
                j.rows = longest;
                j.counts = kv->len_dev;
            }
            status = enqueue_copy(kv, kv->copy, &j, queue, chain_n(&ch), chain_w(&ch), &ev);
            if (status)
                goto cleanup;
            chain_step(&ch, ev), ev = NULL;
        }
    }
    /* The new rows, then the lengths. */
    if (!kv->append[tk.dtype]) {
        status = kernel_of(ctx, tk.dtype, kv->dtype, kv->paged, "kv_append", &kv->append[tk.dtype]);
        if (status)
            goto cleanup;
    }
    for (int i = 0; i < 2; i++) {
        copy_job j;
        const clattn_tensor *t = i ? &tv : &tk;
        const int64_t dim = i ? kv->Dv : kv->D;
        memset(&j, 0, sizeof j);
        j.src = t->buffer;
        j.s_off = t->offset / clattn_dtype_size(t->dtype);
        memcpy(j.ss, t->strides, sizeof j.ss);
        j.dst = nk ? (i ? nv : nk) : (i ? kv->v : kv->k);
        if (kv->paged)
            view_strides(kv->H, kv->page_size, dim, j.ds);
        else
            view_strides(kv->H, nk ? new_cap : kv->cap, dim, j.ds);
        j.pos = kv->len_dev;
        j.counts = counts ? kv->counts_dev : NULL;
        j.n_uniform = n_new;
        j.seq0 = seq0;
        j.nseq = nseq;
        j.rows = n_new;
        j.dim = dim;
        j.table = kv->paged ? (ntable ? ntable : kv->table_dev) : NULL;
        j.max_pages = kv->paged ? nx.max_pages : 0;
        status = enqueue_copy(kv, kv->append[tk.dtype], &j, queue, chain_n(&ch), chain_w(&ch), &ev);
        if (status)
            goto cleanup;
        chain_step(&ch, ev), ev = NULL;
    }
    {
        clattn__kargs a = {kv->lengths_add, 0, CL_SUCCESS, 0};
        const size_t global = (size_t)nseq;
        clattn__karg_mem(&a, kv->len_dev);
        clattn__karg_mem(&a, counts ? kv->counts_dev : NULL);
        clattn__karg_int(&a, n_new);
        clattn__karg_int(&a, seq0);
        clattn__karg_int(&a, nseq);
        CLATTN_CHECK(a.err == CL_SUCCESS, clattn_status_from_cl(a.err),
                     "kv_lengths_add: clSetKernelArg(%u) failed: %s", a.failed_at,
                     clattn_status_name(clattn_status_from_cl(a.err)));
        CLATTN_CL(cla_EnqueueNDRangeKernel(queue, kv->lengths_add, 1, &global, NULL, chain_n(&ch), chain_w(&ch),
                                           event ? &ev : NULL));
    }

    /* Everything is enqueued: commit. */
    if (event)
        *event = ev, ev = NULL;
    for (int64_t i = 0; i < nseq; i++)
        kv->len[seq0 + i] = (int32_t)new_len[i];
    if (nk) {
        cla_ReleaseMemObject(kv->k);
        cla_ReleaseMemObject(kv->v);
        kv->k = nk, kv->v = nv;
        nk = nv = NULL;
        if (!kv->paged)
            kv->cap = new_cap;
    }
    if (kv->paged) {
        if (ntable) {
            cla_ReleaseMemObject(kv->table_dev);
            kv->table_dev = ntable;
            ntable = NULL;
        }
        clattn__free(kv->table);
        clattn__free(kv->free_pages);
        kv->table = nx.table, kv->free_pages = nx.free_pages;
        nx.table = nx.free_pages = NULL;
        kv->max_pages = nx.max_pages, kv->num_pages = nx.num_pages, kv->n_free = nx.n_free;
    }
cleanup:
    cla_ReleaseEvent(ev);
    cla_ReleaseEvent(ch.last);
    /* not committed: released now, freed by OpenCL once the commands using them finished */
    cla_ReleaseMemObject(nk);
    cla_ReleaseMemObject(nv);
    cla_ReleaseMemObject(ntable);
    clattn__free(nx.table);
    clattn__free(nx.free_pages);
    clattn__free(new_len);
    return status;
}

/* ------------------------------------------------------------ lengths */

clattn_status clattn_kvcache_lengths(const clattn_kvcache *kv, int32_t *lengths)
{
    if (!kv || !lengths)
        return CLATTN_ERROR_NULL_ARGUMENT;
    memcpy(lengths, kv->len, (size_t)kv->B * sizeof *lengths);
    return CLATTN_SUCCESS;
}

clattn_status clattn_kvcache_set_length(clattn_kvcache *kv, int64_t seq, int32_t length, cl_command_queue queue)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx;
    int32_t *next = NULL;
    int64_t seq0 = 0, nseq = 0;
    if (!kv)
        return CLATTN_ERROR_NULL_ARGUMENT;
    ctx = kv->ctx;
    clattn__clear_error(ctx);
    status = check_seq(kv, seq, &seq0, &nseq);
    if (status)
        goto cleanup;
    for (int64_t s = seq0; s < seq0 + nseq; s++)
        CLATTN_CHECK(length >= 0 && length <= kv->len[s], CLATTN_ERROR_KVCACHE_RANGE,
                     "length: %d is outside 0..%d, the current length of sequence %lld (set_length only truncates)",
                     (int)length, (int)kv->len[s], (long long)s);
    next = clattn__malloc((size_t)kv->B * sizeof *next);
    CLATTN_CHECK(next != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "set_length: lengths");
    memcpy(next, kv->len, (size_t)kv->B * sizeof *next);
    for (int64_t s = seq0; s < seq0 + nseq; s++)
        next[s] = length;
    CLATTN_CL(cla_EnqueueWriteBuffer(queue ? queue : ctx->queue, kv->len_dev, CL_TRUE, 0, (size_t)kv->B * 4, next, 0,
                                     NULL, NULL));
    if (kv->paged) /* pages past the new lengths go back to the pool (the last freed is reused first) */
        for (int64_t s = seq0; s < seq0 + nseq; s++) {
            const int64_t keep = (length + kv->page_size - 1) / kv->page_size;
            const int64_t have = (kv->len[s] + kv->page_size - 1) / kv->page_size;
            for (int64_t j = have - 1; j >= keep; j--) {
                kv->free_pages[kv->n_free++] = kv->table[s * kv->max_pages + j];
                kv->table[s * kv->max_pages + j] = -1;
            }
        }
    memcpy(kv->len, next, (size_t)kv->B * sizeof *next);
cleanup:
    clattn__free(next);
    return status;
}

int64_t clattn_kvcache_capacity(const clattn_kvcache *kv)
{
    if (!kv)
        return 0;
    return kv->paged ? kv->max_pages * kv->page_size : kv->cap;
}

size_t clattn_kvcache_device_bytes(const clattn_kvcache *kv)
{
    size_t n;
    if (!kv)
        return 0;
    n = kv->paged ? storage_bytes(kv, kv->num_pages, kv->page_size) + (size_t)(kv->B * kv->max_pages) * 4
                  : storage_bytes(kv, kv->B, kv->cap);
    return n + 2 * (size_t)kv->B * 4 + clattn_plan_device_bytes(kv->plan);
}

clattn_status clattn_kvcache_args(const clattn_kvcache *kv, clattn_args *out)
{
    if (!kv || !out)
        return CLATTN_ERROR_NULL_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (kv->paged) {
        out->k = clattn_tensor_make(kv->k, 0, kv->dtype, kv->num_pages, kv->H, kv->page_size, kv->D);
        out->v = clattn_tensor_make(kv->v, 0, kv->dtype, kv->num_pages, kv->H, kv->page_size, kv->Dv);
        out->has_block_table = 1;
        out->block_table = kv->table_dev;
        out->page_size = kv->page_size;
        out->max_pages = kv->max_pages;
    } else {
        out->k = clattn_tensor_make(kv->k, 0, kv->dtype, kv->B, kv->H, kv->cap, kv->D);
        out->v = clattn_tensor_make(kv->v, 0, kv->dtype, kv->B, kv->H, kv->cap, kv->Dv);
    }
    out->key_lengths = kv->len_dev;
    out->has_key_lengths = 1;
    return CLATTN_SUCCESS;
}

/* ------------------------------------------------------------ attention */

static int same_view(const clattn_tensor *a, const clattn_tensor *b)
{
    return a->dtype == b->dtype && memcmp(a->shape, b->shape, sizeof a->shape) == 0 &&
           memcmp(a->strides, b->strides, sizeof a->strides) == 0;
}

static int same_desc(const clattn_attention_desc *a, const clattn_attention_desc *b)
{
    return a->scale == b->scale && a->causal == b->causal && a->align == b->align && a->use_window == b->use_window &&
           a->window_left == b->window_left && a->window_right == b->window_right && a->softcap == b->softcap &&
           a->variant == b->variant;
}

static int same_meta(const clattn_args *a, const clattn_args *b)
{
    return same_view(&a->q, &b->q) && same_view(&a->k, &b->k) && same_view(&a->v, &b->v) && same_view(&a->o, &b->o) &&
           (a->lse.buffer != NULL) == (b->lse.buffer != NULL) && (!a->lse.buffer || same_view(&a->lse, &b->lse)) &&
           a->max_pages == b->max_pages && a->page_size == b->page_size;
}

clattn_status clattn_kvcache_attend(clattn_kvcache *kv, const clattn_attention_desc *desc, const clattn_tensor *q,
                                    const clattn_tensor *o, const clattn_tensor *lse, cl_command_queue queue,
                                    cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx;
    clattn_attention_desc d;
    clattn_args a;
    if (!kv)
        return CLATTN_ERROR_NULL_ARGUMENT;
    ctx = kv->ctx;
    clattn__clear_error(ctx);
    CLATTN_CHECK(q != NULL && o != NULL, CLATTN_ERROR_NULL_ARGUMENT, "%s is NULL", q ? "o" : "q");
    CLATTN_CHECK(q->dtype == kv->dtype, CLATTN_ERROR_INVALID_DTYPE, "q: dtype %s differs from the cache's %s",
                 clattn_dtype_name(q->dtype), clattn_dtype_name(kv->dtype));
    CLATTN_CHECK(q->shape[0] == kv->B && q->shape[3] == kv->D, CLATTN_ERROR_INVALID_SHAPE,
                 "q: shape [%lld, %lld, %lld, %lld] must be [B = %lld, Hq, Nq, D = %lld] of the cache",
                 (long long)q->shape[0], (long long)q->shape[1], (long long)q->shape[2], (long long)q->shape[3],
                 (long long)kv->B, (long long)kv->D);
    if (desc)
        d = *desc;
    else
        memset(&d, 0, sizeof d);
    /* the queries are the last Nq positions of every sequence */
    if (d.align == CLATTN_ALIGN_BOTTOM_RIGHT)
        d.align = CLATTN_ALIGN_KEY_LENGTHS;
    clattn_kvcache_args(kv, &a);
    a.q = *q;
    a.o = *o;
    if (lse) {
        a.lse = *lse;
        a.has_lse = 1;
    }
    if (kv->plan && !(same_desc(&d, &kv->plan_desc) && same_meta(&a, &kv->plan_args)))
        free_plan(kv);
    if (!kv->plan) {
        clattn_attention_desc pd = d;
        const char *env = getenv("CLATTN_VARIANT");
        /* the scheduler's choice by query count: split-KV for few queries */
        if (pd.variant == CLATTN_VARIANT_AUTO && !(env && *env))
            pd.variant = q->shape[2] <= 16 ? CLATTN_VARIANT_DECODE : CLATTN_VARIANT_FLASH;
        status = clattn_plan_create(ctx, &pd, &a, &kv->plan);
        if (status == CLATTN_ERROR_UNSUPPORTED && d.variant == CLATTN_VARIANT_AUTO)
            status = clattn_plan_create(ctx, &d, &a, &kv->plan);
        if (status)
            goto cleanup;
        kv->plan_desc = d;
        kv->plan_args = a;
    }
    status = clattn__plan_run(kv->plan, &a, queue, num_wait, wait, event, 1);
    if (status)
        goto cleanup;
    kv->last_variant = clattn_plan_variant(kv->plan);
cleanup:
    return status;
}

clattn_variant clattn_kvcache_variant(const clattn_kvcache *kv)
{
    return kv ? kv->last_variant : CLATTN_VARIANT_AUTO;
}
