/*
 * host.c - the host-memory convenience call: upload, plan, run, download.
 * Outputs are written only after the whole device round trip succeeded.
 */
#include <string.h>

#include "internal.h"

clattn_status clattn__host_problem(clattn_context *ctx, const clattn_attention_desc *desc,
                                   const clattn_host_args *h, clattn__problem *p);
clattn_status clattn__host_aliasing(clattn_context *ctx, const clattn__problem *p, const clattn_host_args *h);

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

/* Decide before allocating anything whether the device can hold the
 * problem: each buffer within CL_DEVICE_MAX_MEM_ALLOC_SIZE, all of them
 * within CL_DEVICE_GLOBAL_MEM_SIZE. A request beyond either would fail
 * late (or, on runtimes that allocate lazily, while copying). */
static clattn_status fits_device(clattn_context *ctx, const clattn__problem *p)
{
    static const char *const names[9] = {"q", "k", "v", "o", "lse", "bias", "alibi", "key_lengths", "cu_seqlens"};
    clattn_status status = CLATTN_SUCCESS;
    size_t bytes[9] = {0}, total = 0;
    int over = 0;
    for (int i = 0; i < 6; i++)
        bytes[i] = p->need_bytes[i];
    bytes[6] = p->has_alibi ? (size_t)p->Hq * sizeof(float) : 0;
    bytes[7] = p->has_key_lengths ? (size_t)p->B * sizeof(int32_t) : 0;
    bytes[8] = p->has_varlen ? 2 * (size_t)(p->B + 1) * sizeof(int32_t) : 0;
    for (int i = 0; i < 9; i++) {
        CLATTN_CHECK((cl_ulong)bytes[i] <= ctx->max_alloc, CLATTN_ERROR_DEVICE_LIMIT,
                     "%s: %zu bytes exceed the device's largest buffer of %llu bytes (CL_DEVICE_MAX_MEM_ALLOC_SIZE)",
                     names[i], bytes[i], (unsigned long long)ctx->max_alloc);
        over |= !clattn__add_size(total, bytes[i], &total);
    }
    CLATTN_CHECK(!over && (cl_ulong)total <= ctx->global_mem, CLATTN_ERROR_DEVICE_LIMIT,
                 "args: the problem needs %s%zu bytes of device memory, the device has %llu "
                 "(CL_DEVICE_GLOBAL_MEM_SIZE)", over ? "more than " : "", total,
                 (unsigned long long)ctx->global_mem);
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
    enum { NBUF = 10 };
    cl_mem bufs[NBUF] = {0};
    if (!ctx)
        return CLATTN_ERROR_NULL_ARGUMENT;
    clattn__clear_error(ctx);
    status = clattn__host_problem(ctx, desc, h, &p);
    if (status)
        goto cleanup;
    status = fits_device(ctx, &p);
    if (status)
        goto cleanup;
    status = clattn__host_aliasing(ctx, &p, h);
    if (status)
        goto cleanup;
    /* Device views with the validated (contiguous, packed or broadcast)
     * strides of the host arrays; each buffer holds exactly what its view reaches. */
    memset(&a, 0, sizeof a);
    a.q = p.q, a.k = p.k, a.v = p.v, a.o = p.o;
    status = upload(ctx, h->q.data, p.need_bytes[CLATTN__T_Q], CL_MEM_READ_ONLY, &bufs[0]);
    if (status) goto cleanup;
    status = upload(ctx, h->k.data, p.need_bytes[CLATTN__T_K], CL_MEM_READ_ONLY, &bufs[1]);
    if (status) goto cleanup;
    status = upload(ctx, h->v.data, p.need_bytes[CLATTN__T_V], CL_MEM_READ_ONLY, &bufs[2]);
    if (status) goto cleanup;
    o_bytes = p.need_bytes[CLATTN__T_O];
    status = upload(ctx, NULL, o_bytes, CL_MEM_WRITE_ONLY, &bufs[3]);
    if (status) goto cleanup;
    a.q.buffer = bufs[0];
    a.k.buffer = bufs[1];
    a.v.buffer = bufs[2];
    a.o.buffer = bufs[3];
    if (p.has_lse) {
        lse_bytes = p.need_bytes[CLATTN__T_LSE];
        status = upload(ctx, NULL, lse_bytes, CL_MEM_WRITE_ONLY, &bufs[4]);
        if (status) goto cleanup;
        a.lse = p.lse;
        a.lse.buffer = bufs[4];
    }
    if (p.has_bias) {
        a.bias = p.bias;
        status = upload(ctx, h->bias.data, p.need_bytes[CLATTN__T_BIAS], CL_MEM_READ_ONLY, &bufs[5]);
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
    if (p.has_varlen) {
        status = upload(ctx, h->cu_seqlens_q, (size_t)(p.B + 1) * sizeof(int32_t), CL_MEM_READ_ONLY, &bufs[8]);
        if (status) goto cleanup;
        status = upload(ctx, h->cu_seqlens_k, (size_t)(p.B + 1) * sizeof(int32_t), CL_MEM_READ_ONLY, &bufs[9]);
        if (status) goto cleanup;
        a.cu_seqlens_q = bufs[8];
        a.cu_seqlens_k = bufs[9];
        a.total_q = p.total_q;
        a.total_k = p.total_k;
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
