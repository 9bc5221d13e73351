/*
 * host.c - the host-memory convenience call: upload, plan, run, download.
 * Outputs are written only after the whole device round trip succeeded.
 */
#include <string.h>

#include "internal.h"

clattn_status clattn__host_problem(clattn_context *ctx, const clattn_attention_desc *desc,
                                   const clattn_host_args *h, clattn__problem *p);

static size_t count4(const int64_t *s) { return (size_t)(s[0] * s[1] * s[2] * s[3]); }

/* Create a device buffer of n bytes and upload src into it (if src != NULL). */
static clattn_status upload(clattn_context *ctx, const void *src, size_t n, cl_mem_flags flags, cl_mem *out)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_int err = CL_SUCCESS;
    *out = cla_CreateBuffer(ctx->cl_ctx, flags, n, NULL, &err);
    CLATTN_CL(err);
    if (src)
        CLATTN_CL(cla_EnqueueWriteBuffer(ctx->queue, *out, CL_FALSE, 0, n, src, 0, NULL, NULL));
cleanup:
    return status;
}

clattn_status clattn_attention_host(clattn_context *ctx, const clattn_attention_desc *desc,
                                    const clattn_host_args *h, clattn_variant *variant_out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__problem p;
    clattn_args a;
    clattn_plan *plan = NULL;
    void *o_tmp = NULL, *lse_tmp = NULL;
    size_t o_bytes = 0, lse_bytes = 0;
    enum { NBUF = 8 };
    cl_mem bufs[NBUF] = {0};
    if (!ctx)
        return CLATTN_ERROR_NULL_ARGUMENT;
    clattn__clear_error(ctx);
    status = clattn__host_problem(ctx, desc, h, &p);
    if (status)
        goto cleanup;
    memset(&a, 0, sizeof a);
    a.q = clattn_tensor_make(NULL, 0, p.in_dtype, p.B, p.Hq, p.Nq, p.D);
    a.k = clattn_tensor_make(NULL, 0, p.in_dtype, p.B, p.Hkv, p.Nk, p.D);
    a.v = clattn_tensor_make(NULL, 0, p.in_dtype, p.B, p.Hkv, p.Nk, p.Dv);
    a.o = clattn_tensor_make(NULL, 0, p.out_dtype, p.B, p.Hq, p.Nq, p.Dv);
    status = upload(ctx, h->q.data, count4(a.q.shape) * clattn_dtype_size(p.in_dtype), CL_MEM_READ_ONLY, &bufs[0]);
    if (status) goto cleanup;
    status = upload(ctx, h->k.data, count4(a.k.shape) * clattn_dtype_size(p.in_dtype), CL_MEM_READ_ONLY, &bufs[1]);
    if (status) goto cleanup;
    status = upload(ctx, h->v.data, count4(a.v.shape) * clattn_dtype_size(p.in_dtype), CL_MEM_READ_ONLY, &bufs[2]);
    if (status) goto cleanup;
    o_bytes = count4(a.o.shape) * clattn_dtype_size(p.out_dtype);
    status = upload(ctx, NULL, o_bytes, CL_MEM_WRITE_ONLY, &bufs[3]);
    if (status) goto cleanup;
    a.q.buffer = bufs[0];
    a.k.buffer = bufs[1];
    a.v.buffer = bufs[2];
    a.o.buffer = bufs[3];
    if (p.has_lse) {
        lse_bytes = (size_t)(p.B * p.Hq * p.Nq) * sizeof(float);
        status = upload(ctx, NULL, lse_bytes, CL_MEM_WRITE_ONLY, &bufs[4]);
        if (status) goto cleanup;
        a.lse = clattn_tensor_make(bufs[4], 0, CLATTN_F32, p.B, p.Hq, p.Nq, 1);
    }
    if (p.has_bias) {
        a.bias = clattn_tensor_make(NULL, 0, CLATTN_F32, h->bias.shape[0], h->bias.shape[1], h->bias.shape[2],
                                    h->bias.shape[3]);
        status = upload(ctx, h->bias.data, count4(a.bias.shape) * sizeof(float), CL_MEM_READ_ONLY, &bufs[5]);
        if (status) goto cleanup;
        a.bias.buffer = bufs[5];
    }
    if (p.has_alibi) {
        status = upload(ctx, h->alibi, (size_t)p.Hq * sizeof(float), CL_MEM_READ_ONLY, &bufs[6]);
        if (status) goto cleanup;
        a.alibi = bufs[6];
    }
    if (p.has_key_lengths) {
        status = upload(ctx, h->key_lengths, (size_t)p.B * sizeof(int32_t), CL_MEM_READ_ONLY, &bufs[7]);
        if (status) goto cleanup;
        a.key_lengths = bufs[7];
    }
    status = clattn_plan_create(ctx, desc, &a, &plan);
    if (status)
        goto cleanup;
    status = clattn_plan_run(plan, &a, NULL, 0, NULL, NULL);
    if (status)
        goto cleanup;
    o_tmp = clattn__malloc(o_bytes);
    CLATTN_CHECK(o_tmp != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "download buffer for o (%zu bytes)", o_bytes);
    CLATTN_CL(cla_EnqueueReadBuffer(ctx->queue, bufs[3], CL_FALSE, 0, o_bytes, o_tmp, 0, NULL, NULL));
    if (p.has_lse) {
        lse_tmp = clattn__malloc(lse_bytes);
        CLATTN_CHECK(lse_tmp != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "download buffer for lse");
        CLATTN_CL(cla_EnqueueReadBuffer(ctx->queue, bufs[4], CL_FALSE, 0, lse_bytes, lse_tmp, 0, NULL, NULL));
    }
    CLATTN_CL(cla_Finish(ctx->queue));
    /* Everything succeeded: only now touch the caller's outputs. */
    memcpy(h->o.data, o_tmp, o_bytes);
    if (p.has_lse)
        memcpy(h->lse.data, lse_tmp, lse_bytes);
    if (variant_out)
        *variant_out = clattn_plan_variant(plan);
cleanup:
    if (status != CLATTN_SUCCESS && ctx->queue)
        cla_Drain(ctx->queue); /* pending uploads read caller memory: drain before returning */
    clattn_plan_free(plan);
    for (int i = 0; i < NBUF; i++)
        cla_ReleaseMemObject(bufs[i]);
    clattn__free(o_tmp);
    clattn__free(lse_tmp);
    return status;
}
