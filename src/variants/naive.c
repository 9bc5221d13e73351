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

    st = clattn__calloc(1, sizeof *st);
    CLATTN_CHECK(st != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "naive plan state");
    clattn__appendf(opts, sizeof opts, &len,
                    "-cl-std=CL1.2 -DHEAD_DIM=%lld -DHEAD_DIM_V=%lld -DIN_DTYPE=%d -DOUT_DTYPE=%d -DCAUSAL=%d "
                    "-DHAS_WINDOW=%d -DHAS_SOFTCAP=%d -DHAS_ALIBI=%d -DHAS_BIAS=%d -DHAS_KEYLEN=%d -DHAS_LSE=%d",
                    (long long)p->D, (long long)p->Dv, (int)p->in_dtype, (int)p->out_dtype, p->desc.causal != 0,
                    p->desc.use_window != 0, p->desc.softcap > 0.0f, p->has_alibi, p->has_bias, p->has_key_lengths,
                    p->has_lse);
    status = clattn__program_get(ctx, "naive", opts, &prog);
    if (status)
        goto cleanup;
    st->kernel = cla_CreateKernel(prog, "attn_naive", &err);
    CLATTN_CL(err);
    CLATTN_CL(cla_GetKernelWorkGroupInfo(st->kernel, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg, NULL));
    st->wg = 64;
    if (st->wg > kwg)
        st->wg = kwg;
    if (st->wg > ctx->max_wg)
        st->wg = ctx->max_wg;
    if (st->wg == 0)
        st->wg = 1;
    snprintf(plan->params_json, sizeof plan->params_json,
             "{\"variant\":\"naive\",\"head_dim\":%lld,\"head_dim_v\":%lld,\"wg\":%zu}", (long long)p->D,
             (long long)p->Dv, st->wg);
    plan->state = st;
    st = NULL;
cleanup:
    if (st) {
        cla_ReleaseKernel(st->kernel);
        clattn__free(st);
    }
    return status;
}

/* Sets consecutive kernel arguments, remembering the first failure. */
typedef struct argset {
    cl_kernel k;
    cl_uint i;
    cl_int err;
    cl_uint failed_at;
} argset;

static void arg(argset *a, size_t n, const void *v)
{
    if (a->err == CL_SUCCESS) {
        a->err = cla_SetKernelArg(a->k, a->i, n, v);
        a->failed_at = a->i;
    }
    a->i++;
}

static void arg_view(argset *a, const clattn_tensor *t, int ndim, int present)
{
    const size_t esize = clattn_dtype_size(t->dtype);
    const cl_mem m = present ? t->buffer : NULL;
    const cl_ulong off = present ? (cl_ulong)(t->offset / esize) : 0;
    arg(a, sizeof(cl_mem), &m);
    arg(a, sizeof off, &off);
    for (int i = 0; i < ndim; i++) {
        const cl_long s = present ? (cl_long)t->strides[i] : 0;
        arg(a, sizeof s, &s);
    }
}

static clattn_status naive_enqueue(clattn_plan *plan, const clattn_args *args, cl_command_queue queue, cl_uint nwait,
                                   const cl_event *wait, cl_event *ev)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = plan->ctx;
    const clattn__problem *p = &plan->prob;
    naive_state *st = plan->state;
    argset a = {st->kernel, 0, CL_SUCCESS, 0};
    clattn_tensor q = p->q, k = p->k, v = p->v, o = p->o, lse = p->lse, bias = p->bias;
    const cl_mem alibi = p->has_alibi ? args->alibi : NULL;
    const cl_mem keylen = p->has_key_lengths ? args->key_lengths : NULL;
    const cl_ulong alibi_off = p->has_alibi ? args->alibi_offset / 4 : 0;
    const cl_ulong keylen_off = p->has_key_lengths ? args->key_lengths_offset / 4 : 0;
    const cl_int n_q = (cl_int)p->Nq, n_k = (cl_int)p->Nk, hpk = (cl_int)(p->Hq / p->Hkv);
    const cl_int win_l = p->desc.use_window ? p->desc.window_left : -1;
    const cl_int win_r = p->desc.use_window ? p->desc.window_right : -1;
    const cl_float scale = p->scale, softcap = p->desc.softcap;
    const cl_long diag = p->off;
    size_t global[3], local[3];

    /* The plan's (normalised) strides with this call's buffers and offsets. */
    q.buffer = args->q.buffer, q.offset = args->q.offset;
    k.buffer = args->k.buffer, k.offset = args->k.offset;
    v.buffer = args->v.buffer, v.offset = args->v.offset;
    o.buffer = args->o.buffer, o.offset = args->o.offset;
    lse.buffer = args->lse.buffer, lse.offset = args->lse.offset;
    bias.buffer = args->bias.buffer, bias.offset = args->bias.offset;

    arg_view(&a, &q, 4, 1);
    arg_view(&a, &k, 4, 1);
    arg_view(&a, &v, 4, 1);
    arg_view(&a, &o, 4, 1);
    arg_view(&a, &lse, 3, p->has_lse);
    arg_view(&a, &bias, 4, p->has_bias);
    arg(&a, sizeof(cl_mem), &alibi);
    arg(&a, sizeof alibi_off, &alibi_off);
    arg(&a, sizeof(cl_mem), &keylen);
    arg(&a, sizeof keylen_off, &keylen_off);
    arg(&a, sizeof n_q, &n_q);
    arg(&a, sizeof n_k, &n_k);
    arg(&a, sizeof hpk, &hpk);
    arg(&a, sizeof scale, &scale);
    arg(&a, sizeof diag, &diag);
    arg(&a, sizeof win_l, &win_l);
    arg(&a, sizeof win_r, &win_r);
    arg(&a, sizeof softcap, &softcap);
    CLATTN_CHECK(a.err == CL_SUCCESS, clattn_status_from_cl(a.err), "clSetKernelArg(attn_naive, %u) failed: %s",
                 a.failed_at, clattn_status_name(clattn_status_from_cl(a.err)));

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
