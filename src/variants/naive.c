/*
 * variants/naive.c - the `naive` variant: one work-item per query row, two
 * passes over the kept keys (kernels/naive.cl). Supports every feature of the
 * semantics; it is the baseline the faster variants are measured against.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct naive_state {
    cl_kernel kernel;
    size_t wg;
} naive_state;

static const char *naive_supports(const clattn_context *ctx, const clattn__problem *p)
{
    (void)ctx;
    if (p->D > CLATTN_MAX_HEAD_DIM || p->Dv > CLATTN_MAX_HEAD_DIM)
        return "head dims above 256";
    if (p->has_block_table)
        return "paged KV";
    return NULL;
}

static clattn_status naive_create(clattn_plan *plan)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = plan->ctx;
    const clattn__problem *p = &plan->prob;
    naive_state *st = NULL;
    cl_program prog = NULL;
    cl_int err = CL_SUCCESS;
    size_t kwg = 0, len = 0;
    char opts[512];
    const char *source = "default";
    clattn__params tuned;

    st = clattn__calloc(1, sizeof *st);
    CLATTN_CHECK(st != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "naive plan state");
    clattn__problem_options(p, opts, sizeof opts, &len);
    status = clattn__program_get(ctx, "naive", opts, &prog);
    if (status)
        goto cleanup;
    st->kernel = cla_CreateKernel(prog, "attn_naive", &err);
    CLATTN_CL(err);
    CLATTN_CL(cla_GetKernelWorkGroupInfo(st->kernel, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg, NULL));
    if (plan->req.wg) {
        /* explicit (clattn_plan_create_with_params): checked, never adjusted */
        st->wg = (size_t)plan->req.wg;
        source = "explicit";
        CLATTN_CHECK(st->wg <= ctx->max_wg && st->wg <= kwg, CLATTN_ERROR_INVALID_PARAMS,
                     "params.wg: %zu work-items exceed the %s's limit of %zu", st->wg,
                     kwg < ctx->max_wg ? "naive kernel" : "device", kwg < ctx->max_wg ? kwg : ctx->max_wg);
    } else {
        st->wg = 64;
        if (clattn__tunefile_lookup(ctx, p, CLATTN_VARIANT_NAIVE, &tuned, &source) == 1)
            st->wg = (size_t)tuned.wg;
        if (st->wg > kwg)
            st->wg = kwg;
        if (st->wg > ctx->max_wg)
            st->wg = ctx->max_wg;
        if (st->wg == 0)
            st->wg = 1;
    }
    snprintf(plan->params_json, sizeof plan->params_json,
             "{\"variant\":\"naive\",\"head_dim\":%lld,\"head_dim_v\":%lld,\"wg\":%zu,\"tuning\":\"%s\"}",
             (long long)p->D, (long long)p->Dv, st->wg, source);
    memset(&plan->actual, 0, sizeof plan->actual);
    plan->actual.wg = (int)st->wg;
    plan->state = st;
    st = NULL;
cleanup:
    if (st) {
        cla_ReleaseKernel(st->kernel);
        clattn__free(st);
    }
    return status;
}

static clattn_status naive_enqueue(clattn_plan *plan, const clattn_args *args, cl_command_queue queue, cl_uint nwait,
                                   const cl_event *wait, cl_event *ev)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = plan->ctx;
    const clattn__problem *p = &plan->prob;
    naive_state *st = plan->state;
    size_t global[3], local[3];

    status = clattn__set_attention_args(plan, st->kernel, args);
    if (status)
        goto cleanup;
    local[0] = st->wg;
    local[1] = 1;
    local[2] = 1;
    global[0] = ((size_t)p->Nq + st->wg - 1) / st->wg * st->wg;
    global[1] = (size_t)p->Hq;
    global[2] = (size_t)p->B;
    CLATTN_CL(cla_EnqueueNDRangeKernel(queue, st->kernel, 3, global, local, nwait, wait, ev));
cleanup:
    return status;
}

static void naive_destroy(clattn_plan *plan)
{
    naive_state *st = plan->state;
    if (!st)
        return;
    cla_ReleaseKernel(st->kernel);
    clattn__free(st);
    plan->state = NULL;
}

const clattn__variant clattn__variant_naive = {
    CLATTN_VARIANT_NAIVE, naive_supports, naive_create, naive_enqueue, naive_destroy,
};
