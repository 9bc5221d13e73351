/*
 * merge.c - the exact merge of partial attention results (kernels/merge.cl):
 * the public clattn_merge() and the launch the decode variant's combine step
 * shares with it, so one kernel serves both.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

clattn_status clattn__merge_kernel(clattn_context *ctx, clattn_dtype part_dtype, clattn_dtype out_dtype, int varlen,
                                   cl_kernel *out)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_program prog = NULL;
    cl_int err = CL_SUCCESS;
    char opts[128];
    *out = NULL;
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DIN_DTYPE=%d -DOUT_DTYPE=%d -DVARLEN=%d", (int)part_dtype,
             (int)out_dtype, varlen != 0);
    status = clattn__program_get(ctx, "merge", opts, &prog);
    if (status)
        goto cleanup;
    *out = cla_CreateKernel(prog, "attn_merge", &err);
    CLATTN_CL(err);
cleanup:
    return status;
}

/* Sets consecutive kernel arguments, remembering the first failure. */
typedef struct margs {
    cl_kernel k;
    cl_uint i;
    cl_int err;
    cl_uint failed_at;
} margs;

static void arg(margs *a, size_t n, const void *v)
{
    if (a->err == CL_SUCCESS) {
        a->err = cla_SetKernelArg(a->k, a->i, n, v);
        a->failed_at = a->i;
    }
    a->i++;
}

static void arg_mem(margs *a, cl_mem m) { arg(a, sizeof m, &m); }
static void arg_ulong(margs *a, uint64_t x)
{
    const cl_ulong v = (cl_ulong)x;
    arg(a, sizeof v, &v);
}
static void arg_long(margs *a, int64_t x)
{
    const cl_long v = (cl_long)x;
    arg(a, sizeof v, &v);
}
static void arg_int(margs *a, int64_t x)
{
    const cl_int v = (cl_int)x;
    arg(a, sizeof v, &v);
}

clattn_status clattn__merge_enqueue(clattn_context *ctx, cl_kernel kernel, const clattn__merge_launch *l,
                                    cl_command_queue queue, cl_uint nwait, const cl_event *wait, cl_event *ev)
{
    clattn_status status = CLATTN_SUCCESS;
    margs a = {kernel, 0, CL_SUCCESS, 0};
    size_t global[3];
    for (int s = 0; s < CLATTN__MERGE_SLOTS; s++) {
        const clattn__merge_slot *sl = &l->slot[s];
        const int used = sl->n > 0;
        arg_mem(&a, used ? sl->o : NULL);
        arg_ulong(&a, used ? sl->o_off : 0);
        for (int i = 0; i < 4; i++)
            arg_long(&a, used ? sl->os[i] : 0);
        arg_long(&a, used ? sl->o_part_stride : 0);
        arg_mem(&a, used ? sl->lse : NULL);
        arg_ulong(&a, used ? sl->lse_off : 0);
        for (int i = 0; i < 3; i++)
            arg_long(&a, used ? sl->ls[i] : 0);
        arg_long(&a, used ? sl->lse_part_stride : 0);
        arg_int(&a, sl->n);
    }
    arg_mem(&a, l->acc);
    arg_ulong(&a, l->acc ? l->acc_lse_off : 0);
    arg_mem(&a, l->o);
    arg_ulong(&a, l->o_off);
    for (int i = 0; i < 4; i++)
        arg_long(&a, l->os[i]);
    arg_mem(&a, l->lse);
    arg_ulong(&a, l->lse ? l->lse_off : 0);
    for (int i = 0; i < 3; i++)
        arg_long(&a, l->lse ? l->ls[i] : 0);
    arg_int(&a, l->N);
    arg_int(&a, l->H);
    arg_int(&a, l->Dv);
    arg_mem(&a, l->cu_q);
    arg_ulong(&a, l->cu_q ? l->cu_q_off : 0);
    arg_long(&a, l->total_q);
    CLATTN_CHECK(a.err == CL_SUCCESS, clattn_status_from_cl(a.err), "attn_merge: clSetKernelArg(%u) failed: %s",
                 a.failed_at, clattn_status_name(clattn_status_from_cl(a.err)));
    global[0] = (size_t)l->Dv;
    global[1] = (size_t)l->N;
    global[2] = (size_t)(l->B * l->H);
    CLATTN_CL(cla_EnqueueNDRangeKernel(queue, kernel, 3, global, NULL, nwait, wait, ev));
cleanup:
    return status;
}

/* ------------------------------------------------------------ clattn_merge */

/* Validate one view (name for messages) against the output's [B, H, N, Dv]
 * (ndim 4) or [B, H, N] (ndim 3) shape and check its buffer; fills the
 * normalised strides and the byte range it touches. */
static clattn_status check_view(clattn_context *ctx, const char *name, const clattn_tensor *in, int ndim, int output,
                                const int64_t *shape, clattn_tensor *t, cl_mem *base, size_t *lo, size_t *hi)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t need = 0, size = 0;
    *t = *in;
    status = clattn__tensor_check(ctx, name, t, ndim, output, &need);
    if (status)
        goto cleanup;
    if (shape) {
        const int n = ndim == 3 ? 3 : 4;
        for (int i = 0; i < n; i++)
            CLATTN_CHECK(t->shape[i] == shape[i], CLATTN_ERROR_INVALID_SHAPE,
                         "%s: shape [%lld, %lld, %lld, %lld] differs from o's [%lld, %lld, %lld, %lld]%s", name,
                         (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
                         (long long)t->shape[3], (long long)shape[0], (long long)shape[1], (long long)shape[2],
                         (long long)shape[3], ndim == 3 ? " (dims 0..2)" : "");
    }
    if (ndim == 3)
        CLATTN_CHECK(t->dtype == CLATTN_F32, CLATTN_ERROR_INVALID_DTYPE, "%s: dtype must be f32, got %s", name,
                     clattn_dtype_name(t->dtype));
    CLATTN_CHECK(t->buffer != NULL, CLATTN_ERROR_NULL_ARGUMENT, "%s: buffer is NULL", name);
    CLATTN_CL(cla_GetMemObjectInfo(t->buffer, CL_MEM_SIZE, sizeof size, &size, NULL));
    CLATTN_CHECK(size >= need, CLATTN_ERROR_BUFFER_TOO_SMALL, "%s: buffer holds %zu bytes, the view needs %zu", name,
                 size, need);
    status = clattn__mem_range(ctx, t->buffer, t->offset, need, base, lo, hi);
cleanup:
    return status;
}

/* A part or an output as a slot of the merge kernel (one part). */
static void slot_of(clattn__merge_slot *s, const clattn_tensor *o, const clattn_tensor *lse)
{
    memset(s, 0, sizeof *s);
    s->o = o->buffer;
    s->o_off = o->offset / clattn_dtype_size(o->dtype);
    memcpy(s->os, o->strides, sizeof s->os);
    s->lse = lse->buffer;
    s->lse_off = lse->offset / sizeof(float);
    memcpy(s->ls, lse->strides, sizeof s->ls);
    s->n = 1;
}

clattn_status clattn_merge(clattn_context *ctx, int n_parts, const clattn_tensor *o_parts,
                           const clattn_tensor *lse_parts, const clattn_tensor *o, const clattn_tensor *lse,
                           cl_command_queue queue, cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_tensor *po = NULL, *pl = NULL, to, tl;
    cl_mem *base = NULL, scratch[2] = {NULL, NULL};
    size_t *lo = NULL, *hi = NULL;
    cl_kernel k_final = NULL, k_mid = NULL;
    cl_event prev = NULL, next = NULL;
    const int nviews = 2 * (n_parts > 0 ? n_parts : 0) + 2;
    int64_t shape[4];
    char name[64];
    if (!ctx)
        return CLATTN_ERROR_NULL_ARGUMENT;
    clattn__clear_error(ctx);
    if (event)
        *event = NULL;
    CLATTN_CHECK(n_parts >= 1, CLATTN_ERROR_INVALID_VALUE, "n_parts: %d, at least 1 part is needed", n_parts);
    CLATTN_CHECK(o_parts != NULL && lse_parts != NULL, CLATTN_ERROR_NULL_ARGUMENT, "%s is NULL",
                 o_parts ? "lse_parts" : "o_parts");
    CLATTN_CHECK(o != NULL, CLATTN_ERROR_NULL_ARGUMENT, "o is NULL");
    CLATTN_CHECK((num_wait == 0) == (wait == NULL), CLATTN_ERROR_INVALID_VALUE, "wait: %u events but the list is %s",
                 num_wait, wait ? "non-NULL" : "NULL");
    po = clattn__calloc((size_t)n_parts, sizeof *po);
    pl = clattn__calloc((size_t)n_parts, sizeof *pl);
    base = clattn__calloc((size_t)nviews, sizeof *base);
    lo = clattn__calloc((size_t)nviews, sizeof *lo);
    hi = clattn__calloc((size_t)nviews, sizeof *hi);
    CLATTN_CHECK(po && pl && base && lo && hi, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "merge: views of %d parts", n_parts);

    /* the output fixes the shape; views 0, 1: o and lse, then the parts */
    status = check_view(ctx, "o", o, 4, 1, NULL, &to, &base[0], &lo[0], &hi[0]);
    if (status)
        goto cleanup;
    memcpy(shape, to.shape, sizeof shape);
    if (lse) {
        status = check_view(ctx, "lse", lse, 3, 1, shape, &tl, &base[1], &lo[1], &hi[1]);
        if (status)
            goto cleanup;
    }
    for (int i = 0; i < n_parts; i++) {
        snprintf(name, sizeof name, "o_parts[%d]", i);
        status = check_view(ctx, name, &o_parts[i], 4, 0, shape, &po[i], &base[2 + 2 * i], &lo[2 + 2 * i],
                            &hi[2 + 2 * i]);
        if (status)
            goto cleanup;
        CLATTN_CHECK(po[i].dtype == po[0].dtype, CLATTN_ERROR_INVALID_DTYPE, "o_parts[%d]: dtype %s differs from o_parts[0]'s %s",
                     i, clattn_dtype_name(po[i].dtype), clattn_dtype_name(po[0].dtype));
        snprintf(name, sizeof name, "lse_parts[%d]", i);
        status = check_view(ctx, name, &lse_parts[i], 3, 0, shape, &pl[i], &base[3 + 2 * i], &lo[3 + 2 * i],
                            &hi[3 + 2 * i]);
        if (status)
            goto cleanup;
    }
    /* Outputs overlap no part and not each other (byte ranges: conservative for strided views). */
    for (int i = 0; i < 2; i++) {
        if (!base[i])
            continue;
        for (int j = 0; j < nviews; j++) {
            if (j == i || !base[j])
                continue;
            if (j < 2)
                snprintf(name, sizeof name, "%s", j ? "lse" : "o");
            else
                snprintf(name, sizeof name, "%s[%d]", (j - 2) % 2 ? "lse_parts" : "o_parts", (j - 2) / 2);
            CLATTN_CHECK(base[i] != base[j] || hi[i] <= lo[j] || hi[j] <= lo[i], CLATTN_ERROR_ALIASING,
                         "%s: output bytes [%zu, %zu) overlap %s bytes [%zu, %zu) of the same buffer", i ? "lse" : "o",
                         lo[i], hi[i], name, lo[j], hi[j]);
        }
    }

    {
        const int64_t B = shape[0], H = shape[1], N = shape[2], Dv = shape[3];
        const int launches = n_parts <= CLATTN__MERGE_SLOTS ? 1 : (n_parts - 1) / CLATTN__MERGE_SLOTS + 1;
        size_t rows = 0, acc_bytes = 0;
        int next_part = 0;
        if (!queue)
            queue = ctx->queue;
        status = clattn__merge_kernel(ctx, po[0].dtype, to.dtype, 0, &k_final);
        if (status)
            goto cleanup;
        if (launches > 1) {
            /* Running results between launches: f32 [rows, Dv] then the rows' LSE, twice (ping-pong). */
            cl_int err = CL_SUCCESS;
            CLATTN_CHECK(clattn__mul_size((size_t)B, (size_t)H, &rows) && clattn__mul_size(rows, (size_t)N, &rows) &&
                             clattn__mul_size(rows, (size_t)Dv + 1, &acc_bytes) &&
                             clattn__mul_size(acc_bytes, sizeof(float), &acc_bytes),
                         CLATTN_ERROR_SIZE_OVERFLOW, "merge: scratch size overflows");
            CLATTN_CHECK(acc_bytes <= ctx->max_alloc, CLATTN_ERROR_DEVICE_LIMIT,
                         "merge: %d parts need %zu bytes of scratch, the device allocates at most %llu in one buffer",
                         n_parts, acc_bytes, (unsigned long long)ctx->max_alloc);
            if (to.dtype == CLATTN_F32) {
                k_mid = k_final;
            } else {
                status = clattn__merge_kernel(ctx, po[0].dtype, CLATTN_F32, 0, &k_mid);
                if (status)
                    goto cleanup;
            }
            for (int i = 0; i < 2; i++) {
                scratch[i] = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, acc_bytes, NULL, &err);
                CLATTN_CL(err);
            }
        }
        for (int L = 0; L < launches; L++) {
            const int last = L == launches - 1;
            clattn__merge_launch ml;
            memset(&ml, 0, sizeof ml);
            ml.B = B, ml.H = H, ml.N = N, ml.Dv = Dv;
            for (int s = 0; s < CLATTN__MERGE_SLOTS && next_part < n_parts; s++, next_part++)
                slot_of(&ml.slot[s], &po[next_part], &pl[next_part]);
            if (L > 0) {
                ml.acc = scratch[(L - 1) % 2];
                ml.acc_lse_off = (uint64_t)(rows * (size_t)Dv);
            }
            if (last) {
                ml.o = to.buffer;
                ml.o_off = to.offset / clattn_dtype_size(to.dtype);
                memcpy(ml.os, to.strides, sizeof ml.os);
                if (lse) {
                    ml.lse = tl.buffer;
                    ml.lse_off = tl.offset / sizeof(float);
                    memcpy(ml.ls, tl.strides, sizeof ml.ls);
                }
            } else { /* contiguous f32 scratch, read back as acc by the next launch */
                ml.o = scratch[L % 2];
                ml.os[0] = H * N * Dv, ml.os[1] = N * Dv, ml.os[2] = Dv, ml.os[3] = 1;
                ml.lse = scratch[L % 2];
                ml.lse_off = (uint64_t)(rows * (size_t)Dv);
                ml.ls[0] = H * N, ml.ls[1] = N, ml.ls[2] = 1;
            }
            status = clattn__merge_enqueue(ctx, last ? k_final : k_mid, &ml, queue, L == 0 ? num_wait : 1,
                                           L == 0 ? wait : &prev, last ? event : &next);
            if (status)
                goto cleanup;
            cla_ReleaseEvent(prev);
            prev = next;
            next = NULL;
        }
    }
cleanup:
    cla_ReleaseEvent(prev);
    if (k_mid != k_final)
        cla_ReleaseKernel(k_mid);
    cla_ReleaseKernel(k_final);
    /* released now, freed by OpenCL once the launches reading them finished */
    cla_ReleaseMemObject(scratch[0]);
    cla_ReleaseMemObject(scratch[1]);
    clattn__free(po);
    clattn__free(pl);
    clattn__free(base);
    clattn__free(lo);
    clattn__free(hi);
    return status;
}
