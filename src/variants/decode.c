/*
 * variants/decode.c - the `decode` variant (flash-decoding): for few query
 * rows (Nq <= 16) against long key sequences, the keys of each row block are
 * split across work-groups (kernels/flash.cl with SPLIT_KV); each writes a
 * normalised partial O and its LSE to plan-owned scratch, and the merge
 * kernel clattn_merge() uses (kernels/merge.cl, the scratch as one slot of
 * `splits` parts) combines them exactly in a fixed order (deterministic, no
 * atomics). The split count fills the device: about four work-groups per
 * compute unit. Paged K/V is read through the block table (flash.cl).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DECODE_MAX_ROWS 16
#define DECODE_MAX_SPLITS 64

typedef struct decode_state {
    cl_kernel split, combine;
    cl_mem part_o, part_lse;
    clattn__params p;
    int splits;
} decode_state;

static const char *decode_supports(const clattn_context *ctx, const clattn__problem *p)
{
    clattn__params pr;
    if (p->Nq > DECODE_MAX_ROWS)
        return "more than 16 query rows (use flash)";
    if (clattn__tune_params(ctx, p, CLATTN_VARIANT_DECODE, &pr, NULL) != CLATTN_SUCCESS)
        return "these head dims within the device's local memory and work-group limits";
    return NULL;
}

static clattn_status decode_create(clattn_plan *plan)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = plan->ctx;
    const clattn__problem *p = &plan->prob;
    decode_state *st = NULL;
    cl_program prog = NULL;
    cl_int err = CL_SUCCESS;
    const char *source = "";
    size_t kwg = 0, len = 0, rows_total, part_bytes, lse_bytes;
    long blocks, groups, target;
    char opts[768];
    const clattn_launch_params *req = &plan->req;
    const int explicit_params = req->block_m || req->block_n || req->rows || req->tpr || req->vec;

    st = clattn__calloc(1, sizeof *st);
    CLATTN_CHECK(st != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "decode plan state");
    status = clattn__tune_params(ctx, p, CLATTN_VARIANT_DECODE, &st->p, &source);
    CLATTN_CHECK(status == CLATTN_SUCCESS, status, "decode: no parameters fit the device");
    /* One row block covers all query rows: shrink it to them. */
    while (st->p.block_m / 2 >= p->Nq && clattn__params_halve_block(&st->p))
        ;
    status = clattn__tune_fit(ctx, p, &st->p);
    CLATTN_CHECK(status == CLATTN_SUCCESS, status, "decode: no parameters fit the device");
    if (explicit_params) { /* clattn_plan_create_with_params: checked, never adjusted */
        source = "explicit";
        status = clattn__params_apply(ctx, p, &plan->req, &st->p);
        if (status)
            goto cleanup;
    }
    /* Splits: enough work-groups to fill the device, never a split shorter than a tile. */
    blocks = (long)((p->Nq + st->p.block_m - 1) / st->p.block_m);
    groups = (long)p->B * (long)p->Hq * blocks;
    target = 4L * (long)(ctx->compute_units ? ctx->compute_units : 1);
    st->splits = (int)((target + groups - 1) / groups);
    if (st->splits > (int)((p->Nk + st->p.block_n - 1) / st->p.block_n))
        st->splits = (int)((p->Nk + st->p.block_n - 1) / st->p.block_n);
    if (st->splits > DECODE_MAX_SPLITS)
        st->splits = DECODE_MAX_SPLITS;
    if (st->splits < 1)
        st->splits = 1;
    {
        /* CLATTN_SPLITS forces the split count (tests, experiments) */
        const char *env = getenv("CLATTN_SPLITS");
        if (env && *env) {
            char *end;
            const long n = strtol(env, &end, 10);
            CLATTN_CHECK(*end == '\0' && n >= 1 && n <= DECODE_MAX_SPLITS, CLATTN_ERROR_INVALID_VALUE,
                         "CLATTN_SPLITS: '%s' is not a split count in 1..%d", env, DECODE_MAX_SPLITS);
            st->splits = (int)n;
        }
    }
    if (plan->req.splits) {
        CLATTN_CHECK(plan->req.splits <= DECODE_MAX_SPLITS, CLATTN_ERROR_INVALID_PARAMS,
                     "params.splits: %d is outside 1..%d", plan->req.splits, DECODE_MAX_SPLITS);
        st->splits = plan->req.splits;
        source = "explicit";
    }

    clattn__problem_options(p, opts, sizeof opts, &len);
    clattn__appendf(opts, sizeof opts, &len, " -DBLOCK_M=%d -DBLOCK_N=%d -DROWS=%d -DTPR=%d -DVEC=%d -DSPLIT_KV=1",
                    st->p.block_m, st->p.block_n, st->p.rows, st->p.tpr, st->p.vec);
    status = clattn__program_get(ctx, "flash", opts, &prog);
    if (status)
        goto cleanup;
    st->split = cla_CreateKernel(prog, "attn_flash", &err);
    CLATTN_CL(err);
    status = clattn__merge_kernel(ctx, CLATTN_F32, p->out_dtype, p->has_varlen, &st->combine);
    if (status)
        goto cleanup;
    CLATTN_CL(cla_GetKernelWorkGroupInfo(st->split, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg, NULL));
    CLATTN_CHECK((size_t)st->p.wg <= kwg, explicit_params ? CLATTN_ERROR_INVALID_PARAMS : CLATTN_ERROR_DEVICE_LIMIT,
                 "%sdecode: the kernel allows %zu work-items, needs %d", explicit_params ? "params.block_m: " : "", kwg,
                 st->p.wg);

    /* Scratch, allocated once: partial O and LSE of every (row, split). */
    rows_total = (size_t)(p->B * p->Hq * p->Nq) * (size_t)st->splits;
    CLATTN_CHECK(clattn__mul_size(rows_total, (size_t)p->Dv * sizeof(float), &part_bytes) &&
                     clattn__mul_size(rows_total, sizeof(float), &lse_bytes),
                 CLATTN_ERROR_SIZE_OVERFLOW, "decode: scratch size overflows");
    CLATTN_CHECK(part_bytes <= ctx->max_alloc, CLATTN_ERROR_DEVICE_LIMIT,
                 "decode: partial outputs need %zu bytes, the device allocates at most %llu in one buffer", part_bytes,
                 (unsigned long long)ctx->max_alloc);
    st->part_o = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, part_bytes, NULL, &err);
    CLATTN_CL(err);
    st->part_lse = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, lse_bytes, NULL, &err);
    CLATTN_CL(err);
    plan->device_bytes = part_bytes + lse_bytes;
    memset(&plan->actual, 0, sizeof plan->actual);
    plan->actual.block_m = st->p.block_m;
    plan->actual.block_n = st->p.block_n;
    plan->actual.rows = st->p.rows;
    plan->actual.tpr = st->p.tpr;
    plan->actual.vec = st->p.vec;
    plan->actual.splits = st->splits;
    snprintf(plan->params_json, sizeof plan->params_json,
             "{\"variant\":\"decode\",\"head_dim\":%lld,\"head_dim_v\":%lld,\"block_m\":%d,\"block_n\":%d,\"rows\":%d,"
             "\"tpr\":%d,\"wg\":%d,\"vec\":%d,\"splits\":%d,\"scratch_bytes\":%zu,\"tuning\":\"%s\"}",
             (long long)p->D, (long long)p->Dv, st->p.block_m, st->p.block_n, st->p.rows, st->p.tpr, st->p.wg,
             st->p.vec, st->splits, plan->device_bytes, source);
    plan->state = st;
    st = NULL;
cleanup:
    if (st) {
        cla_ReleaseKernel(st->split);
        cla_ReleaseKernel(st->combine);
        cla_ReleaseMemObject(st->part_o);
        cla_ReleaseMemObject(st->part_lse);
        clattn__free(st);
    }
    return status;
}

/* The three arguments after the common ones: partial O, partial LSE, splits. */
static clattn_status split_args(clattn_context *ctx, cl_kernel k, const decode_state *st)
{
    clattn_status status = CLATTN_SUCCESS;
    const cl_uint first = CLATTN__ATTN_KERNEL_NARGS;
    const cl_int splits = st->splits;
    CLATTN_CL(cla_SetKernelArg(k, first, sizeof(cl_mem), &st->part_o));
    CLATTN_CL(cla_SetKernelArg(k, first + 1, sizeof(cl_mem), &st->part_lse));
    CLATTN_CL(cla_SetKernelArg(k, first + 2, sizeof splits, &splits));
cleanup:
    return status;
}

static clattn_status decode_enqueue(clattn_plan *plan, const clattn_args *args, cl_command_queue queue, cl_uint nwait,
                                    const cl_event *wait, cl_event *ev)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = plan->ctx;
    const clattn__problem *p = &plan->prob;
    decode_state *st = plan->state;
    cl_event mid = NULL;
    size_t global[3], local[3] = {(size_t)st->p.wg, 1, 1};
    status = clattn__set_attention_args(plan, st->split, args);
    if (status)
        goto cleanup;
    status = split_args(ctx, st->split, st);
    if (status)
        goto cleanup;
    global[0] = ((size_t)p->Nq + (size_t)st->p.block_m - 1) / (size_t)st->p.block_m * (size_t)st->splits *
                (size_t)st->p.wg;
    global[1] = (size_t)p->Hq;
    global[2] = (size_t)p->B;
    /* The combine waits on the split pass's event, so out-of-order queues
     * are served too; the caller's event is the combine's. */
    CLATTN_CL(cla_EnqueueNDRangeKernel(queue, st->split, 3, global, local, nwait, wait, &mid));
    {
        /* the scratch [B, Hq, Nq, splits, Dv] and [B, Hq, Nq, splits] as one slot of `splits` parts */
        const int64_t S = st->splits, Dv = p->Dv, N = p->Nq, H = p->Hq;
        clattn__merge_launch ml;
        memset(&ml, 0, sizeof ml);
        ml.slot[0].o = st->part_o;
        ml.slot[0].os[0] = H * N * S * Dv, ml.slot[0].os[1] = N * S * Dv, ml.slot[0].os[2] = S * Dv;
        ml.slot[0].os[3] = 1, ml.slot[0].o_part_stride = Dv;
        ml.slot[0].lse = st->part_lse;
        ml.slot[0].ls[0] = H * N * S, ml.slot[0].ls[1] = N * S, ml.slot[0].ls[2] = S;
        ml.slot[0].lse_part_stride = 1;
        ml.slot[0].n = st->splits;
        ml.o = args->o.buffer;
        ml.o_off = args->o.offset / clattn_dtype_size(p->out_dtype);
        memcpy(ml.os, p->o.strides, sizeof ml.os);
        if (p->has_lse) {
            ml.lse = args->lse.buffer;
            ml.lse_off = args->lse.offset / sizeof(float);
            memcpy(ml.ls, p->lse.strides, sizeof ml.ls);
        }
        ml.B = p->B, ml.H = H, ml.N = N, ml.Dv = Dv;
        if (p->has_varlen) {
            ml.cu_q = args->cu_seqlens_q;
            ml.cu_q_off = args->cu_seqlens_q_offset / 4;
            ml.total_q = p->total_q;
        }
        status = clattn__merge_enqueue(ctx, st->combine, &ml, queue, 1, &mid, ev);
    }
cleanup:
    cla_ReleaseEvent(mid);
    return status;
}

static void decode_destroy(clattn_plan *plan)
{
    decode_state *st = plan->state;
    if (!st)
        return;
    cla_ReleaseKernel(st->split);
    cla_ReleaseKernel(st->combine);
    cla_ReleaseMemObject(st->part_o);
    cla_ReleaseMemObject(st->part_lse);
    clattn__free(st);
    plan->state = NULL;
}

const clattn__variant clattn__variant_decode = {
    CLATTN_VARIANT_DECODE, decode_supports, decode_create, decode_enqueue, decode_destroy,
};
