/*
 * variants/gemm.c - the `gemm` variant, the unfused baseline: per chunk of
 * query rows, CLBlast's strided-batched SGEMM computes S = scale Q K^T, a
 * masked-softmax kernel turns S into P with every semantic of DESIGN.md, and
 * a second SGEMM computes O = P V (kernels/gemm.cl: the kernels and why each
 * exists). Extra memory: O(chunk of B*Hq*Nq*Nk), bounded by a budget.
 *
 * Layout. Small kernels pack K, V and the chunk's Q rows into f32 row-major
 * scratch first, so any strides (BHND, BSHD, ...), f16/bf16 storage and
 * varlen batches (padded to max_seqlen with zero rows) reach CLBlast as
 * plain matrices; the copies are O(inputs), small next to S. GQA: the query
 * heads sharing a kv head are consecutive in packed Q, so each group is one
 * (Hq/Hkv * rows) x D matrix multiplied with its kv head's K and V, one
 * batched GEMM over (sequence, kv head) pairs: no copy of K/V per query head.
 *
 * Budget. The scratch that scales with a chunk (score chunk, packed Q/K/V,
 * the chunk's O) stays within CLATTN_GEMM_BUDGET bytes (K/M/G suffixes),
 * default min(CL_DEVICE_MAX_MEM_ALLOC_SIZE, global memory / 4). A chunk is
 * all sequences x all rows when that fits, else a group of whole sequences,
 * else rows of one sequence; the smallest chunk (one row of one sequence,
 * with that sequence's packed K and V) runs even over the budget. Each
 * buffer also stays within the allocation limit and 2^31 elements (CLBlast
 * addresses with int). Everything is allocated once in create
 * (plan->device_bytes); runs allocate nothing of clattn's own. CLBlast's
 * indirect GEMM path may still create temporary buffers inside its own
 * calls: its C API takes none from the caller.
 *
 * Columns. Each chunk's GEMMs span only the kept-key hull of its rows
 * (causal and window bounds known on the host), so keys no row of the chunk
 * keeps are neither multiplied nor read.
 *
 * Ordering and events. CLBlast takes no wait list, so the pipeline relies on
 * queue order: the first command waits for the caller's events and the last
 * command's event, returned to the caller, completes after all the others on
 * the in-order queue. Out-of-order queues are refused.
 *
 * Failure. With one chunk the last command writes the outputs; with several,
 * chunks write a staging buffer and a final commit kernel copies it out. So
 * a failure at any step leaves the outputs untouched.
 */
#include <clblast_c.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define KV_TILE 32        /* keys per V flag tile (kernels/gemm.cl) */
#define MAX_ELEMS 0x7fffffffull /* CLBlast passes offsets, strides and sizes as int */

enum { K_PACK_KV, K_PACK_Q, K_SOFTMAX, K_FINISH, K_COMMIT, K_COUNT };
static const char *const kernel_names[K_COUNT] = {"gemm_pack_kv", "gemm_pack_q", "gemm_softmax", "gemm_finish",
                                                  "gemm_commit"};

/* Scratch buffers: packed K and V and their flags (per group of sequences),
 * packed Q, scores, O and LSE of a chunk, staging O and LSE (several chunks). */
enum { B_KP, B_VP, B_KFLAG, B_TFLAG, B_QP, B_S, B_OC, B_LC, B_SO, B_SL, B_COUNT };
#define B_CHUNK_END B_SO /* buffers before this one scale with the chunk */

typedef struct gemm_geom {
    int64_t bc, rows;        /* sequences per group, query rows per chunk */
    int64_t groups, chunks;  /* groups of sequences, row chunks per group */
    size_t elems[B_COUNT];   /* 4-byte elements of each buffer; 0: not needed */
    size_t chunk_bytes;      /* what the budget bounds */
    size_t bytes;            /* all scratch */
} gemm_geom;

typedef struct gemm_state {
    cl_kernel k[K_COUNT];
    cl_mem buf[B_COUNT];
    gemm_geom g;
    size_t budget;
    size_t wg;
} gemm_state;

/* ------------------------------------------------------------ budget and chunks */

/* CLATTN_GEMM_BUDGET if set (0: malformed), else the device default. */
static int gemm_budget(const clattn_context *ctx, size_t *out)
{
    const char *env = getenv("CLATTN_GEMM_BUDGET");
    if (env && *env) {
        char *end = NULL;
        unsigned long long v;
        unsigned shift = 0;
        errno = 0;
        if (!isdigit((unsigned char)env[0]))
            return 0;
        v = strtoull(env, &end, 10);
        if (errno || end == env)
            return 0;
        switch (toupper((unsigned char)*end)) {
        case 'K': shift = 10, end++; break;
        case 'M': shift = 20, end++; break;
        case 'G': shift = 30, end++; break;
        default: break;
        }
        if (*end || v == 0 || v > (unsigned long long)(SIZE_MAX >> shift))
            return 0;
        *out = (size_t)v << shift;
        return 1;
    }
    {
        cl_ulong b = ctx->global_mem / 4;
        if (ctx->max_alloc < b)
            b = ctx->max_alloc;
        *out = b == 0 || b > SIZE_MAX ? SIZE_MAX : (size_t)b;
    }
    return 1;
}

static int mul3(size_t a, size_t b, size_t c, size_t *r)
{
    return clattn__mul_size(a, b, r) && clattn__mul_size(*r, c, r);
}

/* Buffer sizes for chunks of bc sequences x rows rows; 0 on overflow. */
static int geom_sizes(const clattn__problem *p, int64_t bc, int64_t rows, gemm_geom *g)
{
    const size_t Hq = (size_t)p->Hq, Hkv = (size_t)p->Hkv, Nk = (size_t)p->Nk, D = (size_t)p->D, Dv = (size_t)p->Dv;
    const size_t tiles = (Nk + KV_TILE - 1) / KV_TILE;
    size_t kv, qr, sum = 0;
    memset(g, 0, sizeof *g);
    g->bc = bc;
    g->rows = rows;
    g->groups = (p->B + bc - 1) / bc;
    g->chunks = (p->Nq + rows - 1) / rows;
    if (!clattn__mul_size((size_t)bc, Hkv, &kv) || !clattn__mul_size((size_t)bc, Hq, &qr) ||
        !clattn__mul_size(qr, (size_t)rows, &qr))
        return 0;
    if (!mul3(kv, Nk, D, &g->elems[B_KP]) || !mul3(kv, Nk, Dv, &g->elems[B_VP]) ||
        !clattn__mul_size(kv, Nk, &g->elems[B_KFLAG]) || !clattn__mul_size(kv, tiles, &g->elems[B_TFLAG]) ||
        !clattn__mul_size(qr, D, &g->elems[B_QP]) || !clattn__mul_size(qr, Nk, &g->elems[B_S]) ||
        !clattn__mul_size(qr, Dv, &g->elems[B_OC]))
        return 0;
    if (!clattn__mul_size(qr, 2, &g->elems[B_LC])) /* LSE and 1 / sum per row */
        return 0;
    if (g->groups * g->chunks > 1) {
        if (!mul3((size_t)p->B, Hq, (size_t)p->Nq, &g->elems[B_SL]) ||
            !clattn__mul_size(g->elems[B_SL], Dv, &g->elems[B_SO]))
            return 0;
    }
    for (int i = 0; i < B_COUNT; i++) {
        if (!clattn__add_size(sum, g->elems[i], &sum))
            return 0;
        if (i == B_CHUNK_END - 1 && !clattn__mul_size(sum, 4, &g->chunk_bytes))
            return 0;
    }
    return clattn__mul_size(sum, 4, &g->bytes);
}

/* 1 when each buffer is within the device's allocation limit (and the
 * chunk's within CLBlast's int addressing); budget: also within it. */
static int geom_fits(const clattn_context *ctx, const clattn__problem *p, int64_t bc, int64_t rows, size_t budget,
                     gemm_geom *g)
{
    if (!geom_sizes(p, bc, rows, g))
        return 0;
    for (int i = 0; i < B_COUNT; i++)
        if ((cl_ulong)g->elems[i] * 4 > ctx->max_alloc || (i < B_CHUNK_END && g->elems[i] > MAX_ELEMS))
            return 0;
    return g->chunk_bytes <= budget;
}

/* The largest chunk within the budget (see the file comment); NULL, or what
 * does not fit even in the smallest chunk. */
static const char *gemm_geometry(const clattn_context *ctx, const clattn__problem *p, size_t budget, gemm_geom *g)
{
    int64_t lo, hi;
    if (geom_fits(ctx, p, p->B, p->Nq, budget, g))
        return NULL;
    if (geom_fits(ctx, p, 1, p->Nq, budget, g)) { /* whole sequences: the most that fit */
        lo = 1, hi = p->B;
        while (hi - lo > 1) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (geom_fits(ctx, p, mid, p->Nq, budget, g))
                lo = mid;
            else
                hi = mid;
        }
        geom_fits(ctx, p, lo, p->Nq, budget, g);
        return NULL;
    }
    lo = 1, hi = p->Nq; /* rows of one sequence */
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (geom_fits(ctx, p, 1, mid, budget, g))
            lo = mid;
        else
            hi = mid;
    }
    /* lo = 1 may be over the budget: the smallest chunk runs anyway, if the device can hold it */
    if (!geom_fits(ctx, p, 1, lo, SIZE_MAX, g))
        return "the scratch of one query row (its sequence's packed K and V) within the device's allocation limit";
    return NULL;
}

/* ------------------------------------------------------------ CLBlast */

static const char *blas_code_name(CLBlastStatusCode code)
{
    switch (code) {
    case CLBlastNotImplemented: return "CLBlastNotImplemented";
    case CLBlastInvalidMatrixA: return "CLBlastInvalidMatrixA";
    case CLBlastInvalidMatrixB: return "CLBlastInvalidMatrixB";
    case CLBlastInvalidMatrixC: return "CLBlastInvalidMatrixC";
    case CLBlastInvalidDimension: return "CLBlastInvalidDimension";
    case CLBlastInvalidLeadDimA: return "CLBlastInvalidLeadDimA";
    case CLBlastInvalidLeadDimB: return "CLBlastInvalidLeadDimB";
    case CLBlastInvalidLeadDimC: return "CLBlastInvalidLeadDimC";
    case CLBlastInsufficientMemoryA: return "CLBlastInsufficientMemoryA";
    case CLBlastInsufficientMemoryB: return "CLBlastInsufficientMemoryB";
    case CLBlastInsufficientMemoryC: return "CLBlastInsufficientMemoryC";
    case CLBlastInsufficientMemoryTemp: return "CLBlastInsufficientMemoryTemp";
    case CLBlastInvalidBatchCount: return "CLBlastInvalidBatchCount";
    case CLBlastInvalidOverrideKernel: return "CLBlastInvalidOverrideKernel";
    case CLBlastMissingOverrideParameter: return "CLBlastMissingOverrideParameter";
    case CLBlastInvalidLocalMemUsage: return "CLBlastInvalidLocalMemUsage";
    case CLBlastNoHalfPrecision: return "CLBlastNoHalfPrecision";
    case CLBlastNoDoublePrecision: return "CLBlastNoDoublePrecision";
    case CLBlastDatabaseError: return "CLBlastDatabaseError";
    case CLBlastUnknownError: return "CLBlastUnknownError";
    case CLBlastUnexpectedError: return "CLBlastUnexpectedError";
    default: return clattn_status_name(clattn_status_from_cl((cl_int)code)); /* an OpenCL code */
    }
}

/* OpenCL codes keep their numbers; CLBlast's own (-1007..-1024 and
 * -2039..-2050): the device cannot run CLBlast's kernels -> unsupported,
 * a bad override set through CLBlast's API -> invalid value, anything else
 * (argument checks clattn should never trip) -> internal. */
static clattn_status blas_status(CLBlastStatusCode code)
{
    const int c = (int)code;
    if (!((c <= -1007 && c >= -1024) || (c <= -2039 && c >= -2050)))
        return clattn_status_from_cl((cl_int)c);
    switch (code) {
    case CLBlastNotImplemented:
    case CLBlastInvalidLocalMemUsage:
    case CLBlastNoHalfPrecision:
    case CLBlastNoDoublePrecision:
    case CLBlastDatabaseError:
        return CLATTN_ERROR_UNSUPPORTED;
    case CLBlastInvalidOverrideKernel:
    case CLBlastMissingOverrideParameter:
        return CLATTN_ERROR_INVALID_VALUE;
    default:
        return CLATTN_ERROR_INTERNAL;
    }
}

/* The mapping above for other CLBlast callers (src/mha.c). */
clattn_status clattn__blas_status(int code) { return blas_status((CLBlastStatusCode)code); }
const char *clattn__blas_code_name(int code) { return blas_code_name((CLBlastStatusCode)code); }

/* One row-major strided-batched SGEMM C = alpha A op(B) (beta 0: C is not
 * read), through the dispatch layer's fault hook like every OpenCL call. */
typedef struct mat {
    cl_mem m;
    size_t off, ld, stride; /* elements */
} mat;

static clattn_status sgemm(clattn_context *ctx, cl_command_queue queue, const char *what, int64_t chunk,
                           int64_t nchunks, int trans_b, size_t m, size_t n, size_t k, float alpha, mat a, mat b,
                           mat c, size_t batch)
{
    CLBlastStatusCode code = (CLBlastStatusCode)clattn__fault_check();
    if (code == CLBlastSuccess)
        code = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                                          trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, alpha, a.m,
                                          a.off, a.ld, a.stride, b.m, b.off, b.ld, b.stride, 0.0f, c.m, c.off, c.ld,
                                          c.stride, batch, &queue, NULL);
    if (code == CLBlastSuccess)
        return CLATTN_SUCCESS;
    return clattn__error(ctx, blas_status(code), "CLBlastSgemmStridedBatched",
                         "%s (chunk %lld of %lld, %zux%zux%zu x %zu): CLBlast error %d (%s)", what,
                         (long long)chunk + 1, (long long)nchunks, m, n, k, batch, (int)code, blas_code_name(code));
}

/* ------------------------------------------------------------ kernel arguments */


/* buffer, element offset, ndim strides (the plan's normalised ones) */
static void karg_view(clattn__kargs *a, const clattn_tensor *plan_view, const clattn_tensor *call, int ndim, int present)
{
    clattn__karg_mem(a, present ? call->buffer : NULL);
    clattn__karg_ulong(a, present ? call->offset / clattn_dtype_size(plan_view->dtype) : 0);
    for (int i = 0; i < ndim; i++)
        clattn__karg_long(a, present ? plan_view->strides[i] : 0);
}

/* SEQ_ARGS of kernels/gemm.cl */
static void karg_seq(clattn__kargs *a, const clattn__problem *p, const clattn_args *args)
{
    clattn__karg_mem(a, p->has_key_lengths ? args->key_lengths : NULL);
    clattn__karg_ulong(a, p->has_key_lengths ? args->key_lengths_offset / 4 : 0);
    clattn__karg_int(a, p->Nq);
    clattn__karg_int(a, p->Nk);
    clattn__karg_long(a, p->off);
    clattn__karg_int(a, p->desc.use_window ? p->desc.window_left : -1);
    clattn__karg_int(a, p->desc.use_window ? p->desc.window_right : -1);
    clattn__karg_int(a, p->desc.align == CLATTN_ALIGN_BOTTOM_RIGHT);
    clattn__karg_mem(a, p->has_varlen ? args->cu_seqlens_q : NULL);
    clattn__karg_ulong(a, p->has_varlen ? args->cu_seqlens_q_offset / 4 : 0);
    clattn__karg_mem(a, p->has_varlen ? args->cu_seqlens_k : NULL);
    clattn__karg_ulong(a, p->has_varlen ? args->cu_seqlens_k_offset / 4 : 0);
    clattn__karg_long(a, p->total_q);
    clattn__karg_long(a, p->total_k);
}

/* A launch: the caller's wait list on the first command only (the queue
 * orders the rest), the out event on the last only. */
typedef struct launcher {
    clattn_context *ctx;
    cl_command_queue queue;
    cl_uint nwait;
    const cl_event *wait;
} launcher;

static clattn_status launch(launcher *l, clattn__kargs *a, int kernel, cl_uint dims, const size_t *global,
                            const size_t *local, cl_event *ev)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = l->ctx;
    CLATTN_CHECK(a->err == CL_SUCCESS, clattn_status_from_cl(a->err), "clSetKernelArg(%s, %u) failed: %s",
                 kernel_names[kernel], a->failed_at, clattn_status_name(clattn_status_from_cl(a->err)));
    {
        const cl_int err = cla_EnqueueNDRangeKernel(l->queue, a->k, dims, global, local, l->nwait, l->wait, ev);
        CLATTN_CHECK(err == CL_SUCCESS, clattn_status_from_cl(err), "clEnqueueNDRangeKernel(%s) failed: %s",
                     kernel_names[kernel], clattn_status_name(clattn_status_from_cl(err)));
    }
    l->nwait = 0;
    l->wait = NULL;
cleanup:
    return status;
}

/* ------------------------------------------------------------ the variant */

static const char *gemm_supports(const clattn_context *ctx, const clattn__problem *p)
{
    size_t budget;
    gemm_geom g;
    if (p->Nq > INT32_MAX || p->Nk > INT32_MAX)
        return "sequences longer than 2^31 - 1";
    if (p->has_block_table)
        return "paged KV";
    if (p->desc.align == CLATTN_ALIGN_KEY_LENGTHS)
        return "alignment to each sequence's key length";
    if (!gemm_budget(ctx, &budget))
        return NULL; /* create() reports the malformed CLATTN_GEMM_BUDGET */
    return gemm_geometry(ctx, p, budget, &g);
}

static void release_state(gemm_state *st)
{
    if (!st)
        return;
    for (int i = 0; i < K_COUNT; i++)
        cla_ReleaseKernel(st->k[i]);
    for (int i = 0; i < B_COUNT; i++)
        cla_ReleaseMemObject(st->buf[i]);
    clattn__free(st);
}

static clattn_status gemm_create(clattn_plan *plan)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = plan->ctx;
    const clattn__problem *p = &plan->prob;
    gemm_state *st = NULL;
    const char *lack;
    cl_int err = CL_SUCCESS;

    st = clattn__calloc(1, sizeof *st);
    CLATTN_CHECK(st != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "gemm plan state");
    CLATTN_CHECK(gemm_budget(ctx, &st->budget), CLATTN_ERROR_INVALID_VALUE,
                 "CLATTN_GEMM_BUDGET: '%s' is not a positive byte count (digits, optional K, M or G suffix)",
                 getenv("CLATTN_GEMM_BUDGET"));
    lack = gemm_geometry(ctx, p, st->budget, &st->g);
    CLATTN_CHECK(lack == NULL, CLATTN_ERROR_DEVICE_LIMIT, "gemm: no chunk fits: %s", lack);

    /* One work-group size for the row kernels: 64 on GPUs; 8 on CPUs, where
     * the runtime vectorises across work-items and a larger group only adds
     * barrier cost (PoCL: softmax 2x slower at 64); less where the device or
     * a kernel allows fewer work-items (rebuilt then). */
    st->wg = ctx->device_type & CL_DEVICE_TYPE_CPU ? 8 : 64;
    while (st->wg > 1 && st->wg > ctx->max_wg)
        st->wg /= 2;
    for (;;) {
        char opts[640];
        size_t len = 0, smallest = SIZE_MAX;
        cl_program prog = NULL;
        clattn__problem_options(p, opts, sizeof opts, &len);
        clattn__appendf(opts, sizeof opts, &len, " -DGEMM_WG=%zu -DKV_TILE=%d", st->wg, KV_TILE);
        status = clattn__program_get(ctx, "gemm", opts, &prog);
        if (status)
            goto cleanup;
        for (int i = 0; i < K_COUNT; i++) {
            size_t kwg = 0;
            st->k[i] = cla_CreateKernel(prog, kernel_names[i], &err);
            CLATTN_CHECK(err == CL_SUCCESS, clattn_status_from_cl(err), "clCreateKernel(%s) failed: %s",
                         kernel_names[i], clattn_status_name(clattn_status_from_cl(err)));
            CLATTN_CL(cla_GetKernelWorkGroupInfo(st->k[i], ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg,
                                                 NULL));
            if (kwg < smallest)
                smallest = kwg;
        }
        if (st->wg <= smallest)
            break;
        CLATTN_CHECK(st->wg > 1, CLATTN_ERROR_DEVICE_LIMIT, "gemm: a kernel allows %zu work-items", smallest);
        for (int i = 0; i < K_COUNT; i++) {
            cla_ReleaseKernel(st->k[i]);
            st->k[i] = NULL;
        }
        st->wg /= 2;
    }

    for (int i = 0; i < B_COUNT; i++) {
        if (st->g.elems[i] == 0)
            continue;
        st->buf[i] = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, st->g.elems[i] * 4, NULL, &err);
        CLATTN_CHECK(err == CL_SUCCESS, clattn_status_from_cl(err), "clCreateBuffer(%zu bytes of gemm scratch) failed: %s",
                     st->g.elems[i] * 4, clattn_status_name(clattn_status_from_cl(err)));
    }
    plan->device_bytes = st->g.bytes;
    snprintf(plan->params_json, sizeof plan->params_json,
             "{\"variant\":\"gemm\",\"head_dim\":%lld,\"head_dim_v\":%lld,\"wg\":%zu,\"budget\":%zu,"
             "\"seqs_per_chunk\":%lld,\"rows_per_chunk\":%lld,\"chunks\":%lld,\"chunk_bytes\":%zu,"
             "\"scratch_bytes\":%zu,\"staged\":%d}",
             (long long)p->D, (long long)p->Dv, st->wg, st->budget, (long long)st->g.bc, (long long)st->g.rows,
             (long long)(st->g.groups * st->g.chunks), st->g.chunk_bytes, st->g.bytes, st->g.elems[B_SO] != 0);
    plan->state = st;
    st = NULL;
cleanup:
    release_state(st);
    return status;
}

/* Keys [lo, hi) that some row of rows [i0, i1) may keep: the causal and
 * window bounds (key lengths only shrink it; with varlen and bottom-right
 * alignment each sequence has its own diagonal, unknown here). */
static void chunk_hull(const clattn__problem *p, int64_t i0, int64_t i1, int64_t *lo, int64_t *hi)
{
    const int64_t off = p->has_varlen ? 0 : p->off;
    *lo = 0;
    *hi = p->Nk;
    if (p->has_varlen && p->desc.align == CLATTN_ALIGN_BOTTOM_RIGHT)
        return;
    if (p->desc.causal && i1 + off < *hi)
        *hi = i1 + off;
    if (p->desc.use_window) {
        if (p->desc.window_left >= 0 && i0 + off - p->desc.window_left > *lo)
            *lo = i0 + off - p->desc.window_left;
        if (p->desc.window_right >= 0 && i1 + off + p->desc.window_right < *hi)
            *hi = i1 + off + p->desc.window_right;
    }
    if (*lo > p->Nk)
        *lo = p->Nk;
    if (*hi < *lo)
        *hi = *lo;
}

static clattn_status gemm_enqueue(clattn_plan *plan, const clattn_args *args, cl_command_queue queue, cl_uint nwait,
                                  const cl_event *wait, cl_event *ev)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = plan->ctx;
    const clattn__problem *p = &plan->prob;
    gemm_state *st = plan->state;
    const gemm_geom *g = &st->g;
    const int64_t hpk = p->Hq / p->Hkv, nchunks = g->groups * g->chunks;
    const int staged = g->elems[B_SO] != 0;
    const size_t wg = st->wg;
    cl_command_queue_properties props = 0;
    launcher l = {ctx, queue, nwait, wait};

    CLATTN_CL(cla_GetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL));
    CLATTN_CHECK(!(props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE), CLATTN_ERROR_UNSUPPORTED,
                 "gemm: out-of-order queues are not supported (CLBlast's GEMMs are ordered by the queue alone)");

    for (int64_t grp = 0; grp < g->groups; grp++) {
        const int64_t b0 = grp * g->bc, nb = p->B - b0 < g->bc ? p->B - b0 : g->bc;
        {
            const size_t tiles = ((size_t)p->Nk + KV_TILE - 1) / KV_TILE;
            const size_t global[2] = {wg * tiles, (size_t)(nb * p->Hkv)}, local[2] = {wg, 1};
            clattn__kargs a = {st->k[K_PACK_KV], 0, CL_SUCCESS, 0};
            karg_view(&a, &p->k, &args->k, 4, 1);
            karg_view(&a, &p->v, &args->v, 4, 1);
            clattn__karg_mem(&a, st->buf[B_KP]);
            clattn__karg_mem(&a, st->buf[B_VP]);
            clattn__karg_mem(&a, st->buf[B_KFLAG]);
            clattn__karg_mem(&a, st->buf[B_TFLAG]);
            clattn__karg_long(&a, b0);
            clattn__karg_int(&a, p->Hkv);
            karg_seq(&a, p, args);
            status = launch(&l, &a, K_PACK_KV, 2, global, local, NULL);
            if (status)
                goto cleanup;
        }
        for (int64_t ch = 0; ch < g->chunks; ch++) {
            const int64_t i0 = ch * g->rows, nr = p->Nq - i0 < g->rows ? p->Nq - i0 : g->rows;
            const int64_t index = grp * g->chunks + ch, last = index == nchunks - 1;
            const size_t m = (size_t)(hpk * nr), batch = (size_t)(nb * p->Hkv);
            int64_t hlo, hhi, hw;
            chunk_hull(p, i0, i0 + nr, &hlo, &hhi);
            hw = hhi - hlo;
            if (hw > 0) {
                const size_t count = (size_t)(nb * p->Hq * nr * p->D);
                clattn__kargs a = {st->k[K_PACK_Q], 0, CL_SUCCESS, 0};
                karg_view(&a, &p->q, &args->q, 4, 1);
                clattn__karg_mem(&a, st->buf[B_QP]);
                clattn__karg_long(&a, b0);
                clattn__karg_long(&a, i0);
                clattn__karg_int(&a, nr);
                clattn__karg_int(&a, p->Hq);
                clattn__karg_long(&a, (int64_t)count);
                karg_seq(&a, p, args);
                status = launch(&l, &a, K_PACK_Q, 1, &count, NULL, NULL);
                if (status)
                    goto cleanup;
                status = sgemm(ctx, queue, "S = scale Q K^T", index, nchunks, 1, m, (size_t)hw, (size_t)p->D, p->scale,
                               (mat){st->buf[B_QP], 0, (size_t)p->D, m * (size_t)p->D},
                               (mat){st->buf[B_KP], (size_t)(hlo * p->D), (size_t)p->D, (size_t)(p->Nk * p->D)},
                               (mat){st->buf[B_S], 0, (size_t)hw, m * (size_t)hw}, batch);
                if (status)
                    goto cleanup;
            }
            {
                const size_t global[3] = {wg * (size_t)nr, (size_t)p->Hq, (size_t)nb}, local[3] = {wg, 1, 1};
                clattn__kargs a = {st->k[K_SOFTMAX], 0, CL_SUCCESS, 0};
                clattn__karg_mem(&a, st->buf[B_S]);
                clattn__karg_mem(&a, st->buf[B_LC]);
                clattn__karg_long(&a, b0);
                clattn__karg_long(&a, i0);
                clattn__karg_int(&a, nr);
                clattn__karg_long(&a, hlo);
                clattn__karg_long(&a, hw);
                clattn__karg_int(&a, p->Hq);
                clattn__karg_float(&a, p->desc.softcap);
                karg_view(&a, &p->bias, &args->bias, 4, p->has_bias);
                clattn__karg_mem(&a, p->has_alibi ? args->alibi : NULL);
                clattn__karg_ulong(&a, p->has_alibi ? args->alibi_offset / 4 : 0);
                karg_seq(&a, p, args);
                status = launch(&l, &a, K_SOFTMAX, 3, global, local, NULL);
                if (status)
                    goto cleanup;
            }
            if (hw > 0) {
                status = sgemm(ctx, queue, "O = P V", index, nchunks, 0, m, (size_t)p->Dv, (size_t)hw, 1.0f,
                               (mat){st->buf[B_S], 0, (size_t)hw, m * (size_t)hw},
                               (mat){st->buf[B_VP], (size_t)(hlo * p->Dv), (size_t)p->Dv, (size_t)(p->Nk * p->Dv)},
                               (mat){st->buf[B_OC], 0, (size_t)p->Dv, m * (size_t)p->Dv}, batch);
                if (status)
                    goto cleanup;
            }
            {
                const size_t global[3] = {wg * (size_t)nr, (size_t)p->Hq, (size_t)nb}, local[3] = {wg, 1, 1};
                clattn__kargs a = {st->k[K_FINISH], 0, CL_SUCCESS, 0};
                clattn__karg_mem(&a, st->buf[B_OC]);
                clattn__karg_mem(&a, st->buf[B_S]);
                clattn__karg_mem(&a, st->buf[B_LC]);
                clattn__karg_mem(&a, st->buf[B_KFLAG]);
                clattn__karg_mem(&a, st->buf[B_TFLAG]);
                karg_view(&a, &p->v, &args->v, 4, 1);
                karg_view(&a, &p->o, &args->o, 4, !staged);
                karg_view(&a, &p->lse, &args->lse, 3, !staged && p->has_lse);
                clattn__karg_mem(&a, st->buf[B_SO]);
                clattn__karg_mem(&a, st->buf[B_SL]);
                clattn__karg_int(&a, !staged);
                clattn__karg_long(&a, b0);
                clattn__karg_long(&a, i0);
                clattn__karg_int(&a, nr);
                clattn__karg_long(&a, hlo);
                clattn__karg_long(&a, hw);
                clattn__karg_int(&a, p->Hq);
                clattn__karg_int(&a, hpk);
                karg_seq(&a, p, args);
                status = launch(&l, &a, K_FINISH, 3, global, local, last && !staged ? ev : NULL);
                if (status)
                    goto cleanup;
            }
        }
    }
    if (staged) {
        const size_t count = g->elems[B_SO];
        clattn__kargs a = {st->k[K_COMMIT], 0, CL_SUCCESS, 0};
        clattn__karg_mem(&a, st->buf[B_SO]);
        clattn__karg_mem(&a, st->buf[B_SL]);
        karg_view(&a, &p->o, &args->o, 4, 1);
        karg_view(&a, &p->lse, &args->lse, 3, p->has_lse);
        clattn__karg_int(&a, p->Hq);
        clattn__karg_long(&a, (int64_t)count);
        karg_seq(&a, p, args);
        status = launch(&l, &a, K_COMMIT, 1, &count, NULL, ev);
    }
cleanup:
    return status;
}

static void gemm_destroy(clattn_plan *plan)
{
    release_state(plan->state);
    plan->state = NULL;
}

const clattn__variant clattn__variant_gemm = {
    CLATTN_VARIANT_GEMM, gemm_supports, gemm_create, gemm_enqueue, gemm_destroy,
};
