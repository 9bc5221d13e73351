/*
 * variants/tiles.c - the host side shared by the work-group variants (tiled,
 * flash): parameters from the tuning table, -D specialisation, building, and
 * the launch geometry. Each variant's own file says what it supports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "variants/tiles.h"

typedef struct tile_state {
    cl_kernel kernel;
    clattn__params p;
} tile_state;

/* Environment override of the table, for experiments and the tuner:
 * CLATTN_PARAMS="block_m,block_n,rows,tpr,vec". */
static int params_from_env(clattn__params *pr)
{
    const char *env = getenv("CLATTN_PARAMS");
    clattn__params e;
    if (!env || !*env)
        return 0;
    if (sscanf(env, "%d,%d,%d,%d,%d", &e.block_m, &e.block_n, &e.rows, &e.tpr, &e.vec) != 5)
        return -1;
    if (e.block_m < 1 || e.block_n < 1 || e.rows < 1 || e.tpr < 1 || e.block_m % e.rows != 0 ||
        (e.vec != 1 && e.vec != 4) || e.block_m > 1024 || e.block_n > 1024 || e.tpr > 256)
        return -1;
    e.wg = e.block_m / e.rows * e.tpr;
    *pr = e;
    return 1;
}

const char *clattn__tile_supports(const clattn_context *ctx, const clattn__problem *p, clattn_variant variant)
{
    clattn__params pr;
    if (p->D > CLATTN_MAX_HEAD_DIM || p->Dv > CLATTN_MAX_HEAD_DIM)
        return "head dims above 256";
    if (p->has_block_table && variant != CLATTN_VARIANT_FLASH) /* flash.cl reads through the table */
        return "paged KV";
    if (clattn__tune_params(ctx, p, variant, &pr, NULL) != CLATTN_SUCCESS)
        return "these head dims within the device's local memory and work-group limits";
    return NULL;
}

clattn_status clattn__tile_create(clattn_plan *plan, const char *file, const char *kernel_name)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = plan->ctx;
    const clattn__problem *p = &plan->prob;
    tile_state *st = NULL;
    cl_program prog = NULL;
    cl_int err = CL_SUCCESS;
    const char *source = "env";
    size_t kwg = 0;
    int env;
    const clattn_launch_params *req = &plan->req;
    const int explicit_params = req->block_m || req->block_n || req->rows || req->tpr || req->vec;

    st = clattn__calloc(1, sizeof *st);
    CLATTN_CHECK(st != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "%s plan state", kernel_name);
    env = params_from_env(&st->p);
    CLATTN_CHECK(env >= 0, CLATTN_ERROR_INVALID_VALUE,
                 "CLATTN_PARAMS: expected block_m,block_n,rows,tpr,vec (rows divides block_m, vec 1 or 4)");
    if (explicit_params) {
        /* Explicit parameters (clattn_plan_create_with_params) over the
         * scheduler's choice, checked, never adjusted. */
        if (clattn__tune_params(ctx, p, plan->variant->id, &st->p, &source) != CLATTN_SUCCESS)
            memset(&st->p, 0, sizeof st->p);
        source = "explicit";
        status = clattn__params_apply(ctx, p, req, &st->p);
        if (status)
            goto cleanup;
    } else {
        if (env == 0)
            status = clattn__tune_params(ctx, p, plan->variant->id, &st->p, &source);
        else
            status = clattn__tune_fit(ctx, p, &st->p);
        CLATTN_CHECK(status == CLATTN_SUCCESS, status, "%s: no parameters fit the device", kernel_name);
    }
    /* A kernel may allow fewer work-items than the device (register
     * pressure): halve the row block until it fits, rebuilding each time. */
    for (int attempt = 0;; attempt++) {
        char opts[768];
        size_t len = 0;
        clattn__problem_options(p, opts, sizeof opts, &len);
        clattn__appendf(opts, sizeof opts, &len, " -DBLOCK_M=%d -DBLOCK_N=%d -DROWS=%d -DTPR=%d -DVEC=%d",
                        st->p.block_m, st->p.block_n, st->p.rows, st->p.tpr, st->p.vec);
        status = clattn__program_get(ctx, file, opts, &prog);
        if (status)
            goto cleanup;
        st->kernel = cla_CreateKernel(prog, kernel_name, &err);
        CLATTN_CL(err);
        CLATTN_CL(cla_GetKernelWorkGroupInfo(st->kernel, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg,
                                             NULL));
        if ((size_t)st->p.wg <= kwg)
            break;
        CLATTN_CHECK(!explicit_params, CLATTN_ERROR_INVALID_PARAMS,
                     "params.block_m: the %s kernel built with these parameters allows %zu work-items, "
                     "block_m / rows * tpr = %d", kernel_name, kwg, st->p.wg);
        CLATTN_CHECK(attempt < 8 && st->p.block_m > st->p.rows, CLATTN_ERROR_DEVICE_LIMIT,
                     "%s: the kernel allows %zu work-items, the smallest block needs %d", kernel_name, kwg, st->p.wg);
        cla_ReleaseKernel(st->kernel);
        st->kernel = NULL;
        st->p.block_m /= 2;
        st->p.wg = st->p.block_m / st->p.rows * st->p.tpr;
    }
    snprintf(plan->params_json, sizeof plan->params_json,
             "{\"variant\":\"%s\",\"head_dim\":%lld,\"head_dim_v\":%lld,\"block_m\":%d,\"block_n\":%d,\"rows\":%d,"
             "\"tpr\":%d,\"wg\":%d,\"vec\":%d,\"local_bytes\":%zu,\"tuning\":\"%s\"}",
             clattn_variant_name(plan->variant->id), (long long)p->D, (long long)p->Dv, st->p.block_m,
             st->p.block_n, st->p.rows, st->p.tpr, st->p.wg, st->p.vec, clattn__tile_local_bytes(p, &st->p), source);
    memset(&plan->actual, 0, sizeof plan->actual);
    plan->actual.block_m = st->p.block_m;
    plan->actual.block_n = st->p.block_n;
    plan->actual.rows = st->p.rows;
    plan->actual.tpr = st->p.tpr;
    plan->actual.vec = st->p.vec;
    plan->state = st;
    st = NULL;
cleanup:
    if (st) {
        cla_ReleaseKernel(st->kernel);
        clattn__free(st);
    }
    return status;
}

clattn_status clattn__tile_enqueue(clattn_plan *plan, const clattn_args *args, cl_command_queue queue, cl_uint nwait,
                                   const cl_event *wait, cl_event *ev)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = plan->ctx;
    const clattn__problem *p = &plan->prob;
    tile_state *st = plan->state;
    size_t global[3], local[3];
    status = clattn__set_attention_args(plan, st->kernel, args);
    if (status)
        goto cleanup;
    local[0] = (size_t)st->p.wg;
    local[1] = 1;
    local[2] = 1;
    global[0] = ((size_t)p->Nq + (size_t)st->p.block_m - 1) / (size_t)st->p.block_m * (size_t)st->p.wg;
    global[1] = (size_t)p->Hq;
    global[2] = (size_t)p->B;
    CLATTN_CL(cla_EnqueueNDRangeKernel(queue, st->kernel, 3, global, local, nwait, wait, ev));
cleanup:
    return status;
}

void clattn__tile_destroy(clattn_plan *plan)
{
    tile_state *st = plan->state;
    if (!st)
        return;
    cla_ReleaseKernel(st->kernel);
    clattn__free(st);
    plan->state = NULL;
}
