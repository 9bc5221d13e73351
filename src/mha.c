/*
 * mha.c - the multi-head attention layer (clattn_mha_*): four CLBlast SGEMMs
 * for the projections, the element-wise kernels of kernels/mha.cl for biases
 * and RoPE, and an attention plan (any variant, the scheduler's choice by
 * default) as the core.
 *
 * Layout. The projections write row-major scratch: q and the attention
 * output [B*N, E], k and v [B*S, Hkv*Dh]. Read as [B, heads, rows, Dh] with
 * strides (rows*width, Dh, width, 1) these are the per-head tensors the
 * core takes, so splitting the heads and merging them back costs no copy:
 * the core reads q/k/v and writes o through those strides, and the output
 * projection reads o as the plain [B*N, E] matrix.
 *
 * Order of one run, all on one in-order queue:
 *   barrier on the caller's events (CLBlast takes no wait list)
 *   q = x Wq^T, k = s Wk^T, v = s Wv^T             CLBlast
 *   q += bq, RoPE; k += bk, RoPE; v += bv          mha_bias_rope / mha_bias
 *   o = attention(q, k, v)                         the core plan
 *   t = o Wo^T (into q's scratch, no longer read)  CLBlast
 *   y = t + bo                                     mha_bias, the caller's event
 * y is written by the last command alone, so a failure anywhere before it
 * leaves y untouched. The layer's scratch is allocated once at creation;
 * runs allocate nothing of clattn's own (CLBlast may use temporary buffers
 * inside its calls, as in the gemm variant).
 *
 * RoPE angles are pos * base^(-2i/Dh) for positions up to max(N, S): a table
 * of their cosines and sines is computed once on the host in double
 * precision and uploaded at creation, as f32 angle arithmetic on the device
 * would lose accuracy at long positions.
 */
#include <clblast_c.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define BLAS_MAX_ELEMS 0x7fffffffll /* CLBlast addresses with int */

enum { K_ROPE, K_BIAS, K_COUNT };
static const char *const kernel_names[K_COUNT] = {"mha_bias_rope", "mha_bias"};

enum { S_Q, S_K, S_V, S_O, S_TABLE, S_COUNT };

struct clattn_mha {
    clattn_context *ctx;
    clattn_mha_desc desc;
    clattn__mha_dims d;
    clattn_plan *core;
    clattn_args core_args; /* views onto the scratch */
    cl_kernel k[K_COUNT];
    cl_mem s[S_COUNT];
    size_t scratch_bytes, device_bytes;
};

/* ------------------------------------------------------------ validation */

static int mul_i64(int64_t a, int64_t b, int64_t *r)
{
    return !__builtin_mul_overflow(a, b, r);
}

clattn_status clattn__mha_validate(clattn_context *ctx, const clattn_mha_desc *desc, int64_t B, int64_t N, int64_t M,
                                   clattn__mha_dims *out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__mha_dims d;
    int64_t t;
    memset(&d, 0, sizeof d);
    CLATTN_CHECK(desc != NULL, CLATTN_ERROR_NULL_ARGUMENT, "desc is NULL");
    CLATTN_CHECK(desc->dtype == CLATTN_F32, CLATTN_ERROR_INVALID_DTYPE,
                 "desc->dtype: %s (%d); the layer stores f32 only", clattn_dtype_name(desc->dtype), (int)desc->dtype);
    CLATTN_CHECK((int)desc->variant >= 0 && desc->variant < CLATTN_VARIANT_COUNT_, CLATTN_ERROR_INVALID_ENUM,
                 "desc->variant: %d is not a clattn_variant", (int)desc->variant);
    CLATTN_CHECK(desc->embed_dim > 0, CLATTN_ERROR_EMBED_DIM, "desc->embed_dim: %lld is not positive",
                 (long long)desc->embed_dim);
    CLATTN_CHECK(desc->heads > 0, CLATTN_ERROR_EMBED_DIM, "desc->heads: %lld is not positive",
                 (long long)desc->heads);
    CLATTN_CHECK(desc->embed_dim % desc->heads == 0, CLATTN_ERROR_EMBED_DIM,
                 "desc->embed_dim: %lld is not a multiple of desc->heads = %lld", (long long)desc->embed_dim,
                 (long long)desc->heads);
    d.E = desc->embed_dim;
    d.H = desc->heads;
    d.Dh = d.E / d.H;
    CLATTN_CHECK(desc->kv_heads >= 0, CLATTN_ERROR_HEAD_MISMATCH, "desc->kv_heads: %lld is negative (0 = heads)",
                 (long long)desc->kv_heads);
    d.Hkv = desc->kv_heads ? desc->kv_heads : d.H;
    CLATTN_CHECK(d.H % d.Hkv == 0, CLATTN_ERROR_HEAD_MISMATCH,
                 "desc->kv_heads: %lld does not divide desc->heads = %lld", (long long)d.Hkv, (long long)d.H);
    d.KVW = d.Hkv * d.Dh;
    CLATTN_CHECK(d.Dh <= CLATTN_MAX_HEAD_DIM, CLATTN_ERROR_HEAD_DIM,
                 "desc->embed_dim / desc->heads: head dimension %lld exceeds %d", (long long)d.Dh,
                 CLATTN_MAX_HEAD_DIM);
    CLATTN_CHECK(isfinite(desc->rope_base) && desc->rope_base >= 0.0f, CLATTN_ERROR_INVALID_ROPE,
                 "desc->rope_base: %g is not finite and >= 0 (0 = no RoPE)", (double)desc->rope_base);
    CLATTN_CHECK(desc->rope_base == 0.0f || d.Dh % 2 == 0, CLATTN_ERROR_INVALID_ROPE,
                 "desc->rope_base: RoPE rotates pairs of the head dimension, and E / H = %lld is odd",
                 (long long)d.Dh);
    CLATTN_CHECK(isfinite(desc->scale), CLATTN_ERROR_INVALID_SCALE, "desc->scale: %g is not finite",
                 (double)desc->scale);
    CLATTN_CHECK(B > 0, CLATTN_ERROR_INVALID_SHAPE, "B: batch %lld is not positive", (long long)B);
    CLATTN_CHECK(N > 0, CLATTN_ERROR_INVALID_SHAPE, "N: %lld query positions is not positive", (long long)N);
    CLATTN_CHECK(M >= 0, CLATTN_ERROR_INVALID_SHAPE, "M: %lld key/value positions is negative (0 = self-attention)",
                 (long long)M);
    d.B = B;
    d.N = N;
    d.cross = M > 0;
    d.S = M > 0 ? M : N;
    /* Every array the layer touches, in bytes, fits size_t. */
    CLATTN_CHECK(mul_i64(B, N, &t) && mul_i64(t, d.E, &t) && mul_i64(t, 4, &t) && (uint64_t)t <= SIZE_MAX &&
                     mul_i64(B, d.S, &t) && mul_i64(t, d.E, &t) && mul_i64(t, 4, &t) && (uint64_t)t <= SIZE_MAX &&
                     mul_i64(d.E, d.E, &t) && mul_i64(t, 4, &t) && (uint64_t)t <= SIZE_MAX,
                 CLATTN_ERROR_SIZE_OVERFLOW, "B, N, M, desc->embed_dim: [B, max(N, M), E] = [%lld, %lld, %lld] f32 "
                 "overflows a size", (long long)B, (long long)(d.S > N ? d.S : N), (long long)d.E);
    d.scale = desc->scale != 0.0f ? desc->scale : (float)(1.0 / sqrt((double)d.Dh));
    *out = d;
cleanup:
    return status;
}

/* ------------------------------------------------------------ CLBlast and kernels */

/* Row-major C[m, n] = A[m, k] B[n, k]^T (y = x W^T, torch.nn.Linear's
 * convention), offsets in elements; through the dispatch layer's fault hook
 * like every OpenCL call, CLBlast's codes mapped as the gemm variant maps them. */
static clattn_status sgemm_nt(clattn_context *ctx, cl_command_queue queue, const char *what, size_t m, size_t n,
                              size_t k, cl_mem a, size_t a_off, cl_mem b, size_t b_off, cl_mem c, size_t c_off)
{
    CLBlastStatusCode code = (CLBlastStatusCode)clattn__fault_check();
    if (code == CLBlastSuccess)
        code = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, m, n, k, 1.0f, a, a_off, k,
                            b, b_off, k, 0.0f, c, c_off, n, &queue, NULL);
    if (code == CLBlastSuccess)
        return CLATTN_SUCCESS;
    return clattn__error(ctx, clattn__blas_status((int)code), "CLBlastSgemm", "%s (%zux%zux%zu): CLBlast error %d (%s)",
                         what, m, n, k, (int)code, clattn__blas_code_name((int)code));
}


/* Enqueue kernel over count work-items (the runtime picks the work-group). */
static clattn_status launch(clattn_context *ctx, cl_command_queue queue, clattn__kargs *a, int kernel, size_t count,
                            cl_event *ev)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_int err;
    CLATTN_CHECK(a->err == CL_SUCCESS, clattn_status_from_cl(a->err), "clSetKernelArg(%s, %u) failed: %s",
                 kernel_names[kernel], a->failed_at, clattn_status_name(clattn_status_from_cl(a->err)));
    err = cla_EnqueueNDRangeKernel(queue, a->k, 1, &count, NULL, 0, NULL, ev);
    CLATTN_CHECK(err == CL_SUCCESS, clattn_status_from_cl(err), "clEnqueueNDRangeKernel(%s) failed: %s",
                 kernel_names[kernel], clattn_status_name(clattn_status_from_cl(err)));
cleanup:
    return status;
}

/* Bias (bias != NULL) and RoPE (the layer's table) in place on the projection
 * x [B * seq, heads * Dh]. */
static clattn_status bias_rope(clattn_mha *mha, cl_command_queue queue, cl_mem x, int64_t seq, int64_t heads,
                               cl_mem bias, size_t bias_offset)
{
    const clattn__mha_dims *d = &mha->d;
    const int64_t rows = d->B * seq;
    clattn__kargs a = {mha->k[K_ROPE], 0, CL_SUCCESS, 0};
    clattn__karg_mem(&a, x);
    clattn__karg_long(&a, rows);
    clattn__karg_long(&a, seq);
    clattn__karg_int(&a, heads);
    clattn__karg_int(&a, d->Dh);
    clattn__karg_mem(&a, bias);
    clattn__karg_ulong(&a, bias_offset / 4);
    clattn__karg_int(&a, bias != NULL);
    clattn__karg_mem(&a, mha->s[S_TABLE]);
    return launch(mha->ctx, queue, &a, K_ROPE, (size_t)(rows * heads * (d->Dh / 2)), NULL);
}

/* dst[dst_offset..] = src + bias, over rows x width elements. */
static clattn_status add_bias(clattn_mha *mha, cl_command_queue queue, cl_mem src, cl_mem dst, size_t dst_offset,
                              int64_t rows, int64_t width, cl_mem bias, size_t bias_offset, cl_event *ev)
{
    clattn__kargs a = {mha->k[K_BIAS], 0, CL_SUCCESS, 0};
    clattn__karg_mem(&a, src);
    clattn__karg_mem(&a, dst);
    clattn__karg_ulong(&a, dst_offset / 4);
    clattn__karg_long(&a, rows * width);
    clattn__karg_long(&a, width);
    clattn__karg_mem(&a, bias);
    clattn__karg_ulong(&a, bias_offset / 4);
    clattn__karg_int(&a, bias != NULL);
    return launch(mha->ctx, queue, &a, K_BIAS, (size_t)(rows * width), ev);
}

/* ------------------------------------------------------------ create */

/* A [B, heads, rows, Dh] view of the row-major [B * rows, heads * Dh] scratch m. */
static clattn_tensor head_view(cl_mem m, int64_t B, int64_t heads, int64_t rows, int64_t Dh)
{
    clattn_tensor t = clattn_tensor_make(m, 0, CLATTN_F32, B, heads, rows, Dh);
    t.strides[0] = rows * heads * Dh;
    t.strides[1] = Dh;
    t.strides[2] = heads * Dh;
    t.strides[3] = 1;
    return t;
}

/* cos then sin of pos * base^(-2i/Dh), i < Dh/2, for pos < n: [n, Dh]. */
static clattn_status upload_rope_table(clattn_mha *mha, int64_t n)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = mha->ctx;
    const int64_t Dh = mha->d.Dh, half = Dh / 2;
    const size_t bytes = (size_t)(n * Dh) * sizeof(float);
    float *t = clattn__malloc(bytes);
    CLATTN_CHECK(t != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "RoPE table (%zu bytes)", bytes);
    for (int64_t i = 0; i < half; i++) {
        const double theta = pow((double)mha->desc.rope_base, -2.0 * (double)i / (double)Dh);
        for (int64_t pos = 0; pos < n; pos++) {
            const double angle = (double)pos * theta;
            t[pos * Dh + i] = (float)cos(angle);
            t[pos * Dh + half + i] = (float)sin(angle);
        }
    }
    CLATTN_CL(cla_EnqueueWriteBuffer(ctx->queue, mha->s[S_TABLE], CL_TRUE, 0, bytes, t, 0, NULL, NULL));
cleanup:
    clattn__free(t);
    return status;
}

clattn_status clattn_mha_create(clattn_context *ctx, const clattn_mha_desc *desc, int64_t B, int64_t N, int64_t M,
                                clattn_mha **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_mha *mha = NULL;
    clattn__mha_dims d;
    clattn_attention_desc ad;
    cl_program prog = NULL;
    cl_int err = CL_SUCCESS;
    size_t elems[S_COUNT] = {0};
    if (!ctx)
        return CLATTN_ERROR_NULL_ARGUMENT;
    clattn__clear_error(ctx);
    CLATTN_CHECK(out != NULL, CLATTN_ERROR_NULL_ARGUMENT, "out is NULL");
    *out = NULL;
    status = clattn__mha_validate(ctx, desc, B, N, M, &d);
    if (status)
        goto cleanup;
    /* The validation bounded every product by SIZE_MAX / 4. */
    elems[S_Q] = elems[S_O] = (size_t)(d.B * d.N * d.E);
    elems[S_K] = elems[S_V] = (size_t)(d.B * d.S * d.KVW);
    if (desc->rope_base > 0.0f)
        elems[S_TABLE] = (size_t)((d.S > d.N ? d.S : d.N) * d.Dh);
    CLATTN_CHECK(elems[S_Q] <= BLAS_MAX_ELEMS && (size_t)(d.B * d.S * d.E) <= BLAS_MAX_ELEMS &&
                     (size_t)(d.E * d.E) <= BLAS_MAX_ELEMS,
                 CLATTN_ERROR_DEVICE_LIMIT,
                 "B, N, M: the projections' matrices ([B*N, E] = [%lld, %lld], [B*M, E] = [%lld, %lld]) exceed "
                 "CLBlast's 2^31 - 1 elements",
                 (long long)(d.B * d.N), (long long)d.E, (long long)(d.B * d.S), (long long)d.E);
    for (int i = 0; i < S_COUNT; i++)
        CLATTN_CHECK((cl_ulong)elems[i] * 4 <= ctx->max_alloc, CLATTN_ERROR_DEVICE_LIMIT,
                     "B, N, M: a scratch buffer of %zu bytes exceeds the device's allocation limit of %llu bytes",
                     elems[i] * 4, (unsigned long long)ctx->max_alloc);

    mha = clattn__calloc(1, sizeof *mha);
    CLATTN_CHECK(mha != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "mha layer");
    mha->ctx = ctx;
    mha->desc = *desc;
    mha->desc.kv_heads = d.Hkv;
    mha->d = d;

    status = clattn__program_get(ctx, "mha", "-cl-std=CL1.2", &prog);
    if (status)
        goto cleanup;
    for (int i = 0; i < K_COUNT; i++) {
        mha->k[i] = cla_CreateKernel(prog, kernel_names[i], &err);
        CLATTN_CHECK(err == CL_SUCCESS, clattn_status_from_cl(err), "clCreateKernel(%s) failed: %s", kernel_names[i],
                     clattn_status_name(clattn_status_from_cl(err)));
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (elems[i] == 0)
            continue;
        mha->s[i] = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, elems[i] * 4, NULL, &err);
        CLATTN_CHECK(err == CL_SUCCESS, clattn_status_from_cl(err),
                     "clCreateBuffer(%zu bytes of mha scratch) failed: %s", elems[i] * 4,
                     clattn_status_name(clattn_status_from_cl(err)));
        mha->scratch_bytes += elems[i] * 4;
    }
    if (mha->s[S_TABLE]) {
        status = upload_rope_table(mha, (int64_t)(elems[S_TABLE] / (size_t)d.Dh));
        if (status)
            goto cleanup;
    }

    /* The core: heads split and merged by the views' strides. */
    memset(&ad, 0, sizeof ad);
    ad.scale = d.scale;
    ad.causal = desc->causal != 0;
    ad.align = CLATTN_ALIGN_TOP_LEFT;
    ad.variant = desc->variant;
    memset(&mha->core_args, 0, sizeof mha->core_args);
    mha->core_args.q = head_view(mha->s[S_Q], d.B, d.H, d.N, d.Dh);
    mha->core_args.k = head_view(mha->s[S_K], d.B, d.Hkv, d.S, d.Dh);
    mha->core_args.v = head_view(mha->s[S_V], d.B, d.Hkv, d.S, d.Dh);
    mha->core_args.o = head_view(mha->s[S_O], d.B, d.H, d.N, d.Dh);
    status = clattn_plan_create(ctx, &ad, &mha->core_args, &mha->core);
    if (status) {
        mha->core = NULL;
        goto cleanup;
    }
    mha->device_bytes = mha->scratch_bytes + clattn_plan_device_bytes(mha->core);
    *out = mha;
    mha = NULL;
cleanup:
    clattn_mha_free(mha);
    return status;
}

void clattn_mha_free(clattn_mha *mha)
{
    if (!mha)
        return;
    clattn_plan_free(mha->core);
    for (int i = 0; i < K_COUNT; i++)
        cla_ReleaseKernel(mha->k[i]);
    for (int i = 0; i < S_COUNT; i++)
        cla_ReleaseMemObject(mha->s[i]);
    clattn__free(mha);
}

size_t clattn_mha_device_bytes(const clattn_mha *mha)
{
    return mha ? mha->device_bytes : 0;
}

clattn_variant clattn_mha_variant(const clattn_mha *mha)
{
    return mha ? clattn_plan_variant(mha->core) : CLATTN_VARIANT_AUTO;
}

/* ------------------------------------------------------------ run */

/* One buffer argument of a run: what it must hold and where it lives. */
typedef struct operand {
    const char *name;
    cl_mem m;
    size_t off;   /* bytes */
    int64_t rows, cols;
    int blas;     /* read by CLBlast: int addressing */
    cl_mem base;  /* resolved allocation and byte range */
    size_t lo, hi;
} operand;

static clattn_status check_operand(clattn_context *ctx, operand *o)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t size = 0, need;
    const size_t count = (size_t)(o->rows * o->cols);
    CLATTN_CHECK(o->off % 4 == 0, CLATTN_ERROR_MISALIGNED, "%s: byte offset %zu is not a multiple of 4 (f32)", o->name,
                 o->off);
    CLATTN_CHECK(!o->blas || (uint64_t)(o->off / 4) + count <= (uint64_t)BLAS_MAX_ELEMS, CLATTN_ERROR_DEVICE_LIMIT,
                 "%s: offset %zu + %zu elements exceed CLBlast's 2^31 - 1", o->name, o->off / 4, count);
    CLATTN_CL(cla_GetMemObjectInfo(o->m, CL_MEM_SIZE, sizeof size, &size, NULL));
    CLATTN_CHECK(size >= o->off && size - o->off >= count * 4, CLATTN_ERROR_BUFFER_TOO_SMALL,
                 "%s: buffer holds %zu bytes, [%lld, %lld] f32 needs %zu from offset %zu", o->name, size,
                 (long long)o->rows, (long long)o->cols, count * 4, o->off);
    need = o->off + count * 4;
    status = clattn__mem_range(ctx, o->m, o->off, need, &o->base, &o->lo, &o->hi);
cleanup:
    return status;
}

clattn_status clattn_mha_run(clattn_mha *mha, const clattn_mha_weights *w, cl_mem x, size_t x_offset, cl_mem kv,
                             size_t kv_offset, cl_mem y, size_t y_offset, cl_command_queue queue, cl_uint num_wait,
                             const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx;
    const clattn__mha_dims *d;
    cl_command_queue_properties props = 0;
    enum { O_X, O_KV, O_WQ, O_WK, O_WV, O_WO, O_BQ, O_BK, O_BV, O_BO, O_Y, O_COUNT };
    operand ops[O_COUNT];
    cl_mem src;
    size_t src_off;
    if (!mha)
        return CLATTN_ERROR_NULL_ARGUMENT;
    ctx = mha->ctx;
    d = &mha->d;
    clattn__clear_error(ctx);
    CLATTN_CHECK((num_wait == 0) == (wait == NULL), CLATTN_ERROR_INVALID_VALUE, "wait: %u events but the list is %s",
                 num_wait, wait ? "non-NULL" : "NULL");
    CLATTN_CHECK(w != NULL, CLATTN_ERROR_NULL_ARGUMENT, "weights is NULL");
    CLATTN_CHECK(x != NULL, CLATTN_ERROR_NULL_ARGUMENT, "x is NULL");
    CLATTN_CHECK(y != NULL, CLATTN_ERROR_NULL_ARGUMENT, "y is NULL");
    CLATTN_CHECK(kv != NULL || !d->cross, CLATTN_ERROR_NULL_ARGUMENT,
                 "kv is NULL, but the layer was created for cross-attention (M = %lld)", (long long)d->S);
    CLATTN_CHECK(kv == NULL || d->cross, CLATTN_ERROR_INVALID_VALUE,
                 "kv: the layer was created for self-attention (M = 0), so kv must be NULL");
    CLATTN_CHECK(w->wq && w->wk && w->wv && w->wo, CLATTN_ERROR_NULL_ARGUMENT, "weights->%s is NULL",
                 !w->wq ? "wq" : !w->wk ? "wk" : !w->wv ? "wv" : "wo");

    memset(ops, 0, sizeof ops);
    ops[O_X] = (operand){"x", x, x_offset, d->B * d->N, d->E, 1, NULL, 0, 0};
    ops[O_KV] = (operand){"kv", kv, kv_offset, d->B * d->S, d->E, 1, NULL, 0, 0};
    ops[O_WQ] = (operand){"weights->wq", w->wq, w->wq_offset, d->E, d->E, 1, NULL, 0, 0};
    ops[O_WK] = (operand){"weights->wk", w->wk, w->wk_offset, d->KVW, d->E, 1, NULL, 0, 0};
    ops[O_WV] = (operand){"weights->wv", w->wv, w->wv_offset, d->KVW, d->E, 1, NULL, 0, 0};
    ops[O_WO] = (operand){"weights->wo", w->wo, w->wo_offset, d->E, d->E, 1, NULL, 0, 0};
    ops[O_BQ] = (operand){"weights->bq", w->bq, w->bq_offset, 1, d->E, 0, NULL, 0, 0};
    ops[O_BK] = (operand){"weights->bk", w->bk, w->bk_offset, 1, d->KVW, 0, NULL, 0, 0};
    ops[O_BV] = (operand){"weights->bv", w->bv, w->bv_offset, 1, d->KVW, 0, NULL, 0, 0};
    ops[O_BO] = (operand){"weights->bo", w->bo, w->bo_offset, 1, d->E, 0, NULL, 0, 0};
    ops[O_Y] = (operand){"y", y, y_offset, d->B * d->N, d->E, 0, NULL, 0, 0};
    for (int i = 0; i < O_COUNT; i++) {
        if (!ops[i].m)
            continue;
        status = check_operand(ctx, &ops[i]);
        if (status)
            goto cleanup;
    }
    /* y is written while every other operand is read: no byte in common. */
    for (int i = 0; i < O_Y; i++)
        CLATTN_CHECK(!ops[i].m || ops[i].base != ops[O_Y].base || ops[i].hi <= ops[O_Y].lo ||
                         ops[O_Y].hi <= ops[i].lo,
                     CLATTN_ERROR_ALIASING, "y: output bytes [%zu, %zu) overlap %s bytes [%zu, %zu) of the same buffer",
                     ops[O_Y].lo, ops[O_Y].hi, ops[i].name, ops[i].lo, ops[i].hi);

    if (!queue)
        queue = ctx->queue;
    CLATTN_CL(cla_GetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL));
    CLATTN_CHECK(!(props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE), CLATTN_ERROR_UNSUPPORTED,
                 "queue: out-of-order queues are not supported (CLBlast's GEMMs are ordered by the queue alone)");
    if (num_wait)
        CLATTN_CL(cla_EnqueueBarrierWithWaitList(queue, num_wait, wait, NULL));

    src = d->cross ? kv : x;
    src_off = (d->cross ? kv_offset : x_offset) / 4;
    status = sgemm_nt(ctx, queue, "q = x Wq^T", (size_t)(d->B * d->N), (size_t)d->E, (size_t)d->E, x, x_offset / 4,
                      w->wq, w->wq_offset / 4, mha->s[S_Q], 0);
    if (status)
        goto cleanup;
    status = sgemm_nt(ctx, queue, d->cross ? "k = kv Wk^T" : "k = x Wk^T", (size_t)(d->B * d->S), (size_t)d->KVW,
                      (size_t)d->E, src, src_off, w->wk, w->wk_offset / 4, mha->s[S_K], 0);
    if (status)
        goto cleanup;
    status = sgemm_nt(ctx, queue, d->cross ? "v = kv Wv^T" : "v = x Wv^T", (size_t)(d->B * d->S), (size_t)d->KVW,
                      (size_t)d->E, src, src_off, w->wv, w->wv_offset / 4, mha->s[S_V], 0);
    if (status)
        goto cleanup;
    if (mha->s[S_TABLE]) {
        status = bias_rope(mha, queue, mha->s[S_Q], d->N, d->H, w->bq, w->bq_offset);
        if (status)
            goto cleanup;
        status = bias_rope(mha, queue, mha->s[S_K], d->S, d->Hkv, w->bk, w->bk_offset);
        if (status)
            goto cleanup;
    } else {
        if (w->bq) {
            status = add_bias(mha, queue, mha->s[S_Q], mha->s[S_Q], 0, d->B * d->N, d->E, w->bq, w->bq_offset, NULL);
            if (status)
                goto cleanup;
        }
        if (w->bk) {
            status = add_bias(mha, queue, mha->s[S_K], mha->s[S_K], 0, d->B * d->S, d->KVW, w->bk, w->bk_offset, NULL);
            if (status)
                goto cleanup;
        }
    }
    if (w->bv) {
        status = add_bias(mha, queue, mha->s[S_V], mha->s[S_V], 0, d->B * d->S, d->KVW, w->bv, w->bv_offset, NULL);
        if (status)
            goto cleanup;
    }
    status = clattn_plan_run(mha->core, &mha->core_args, queue, 0, NULL, NULL);
    if (status)
        goto cleanup;
    /* q's scratch is free once the core has read it (the queue is in order). */
    status = sgemm_nt(ctx, queue, "y = o Wo^T", (size_t)(d->B * d->N), (size_t)d->E, (size_t)d->E, mha->s[S_O], 0,
                      w->wo, w->wo_offset / 4, mha->s[S_Q], 0);
    if (status)
        goto cleanup;
    status = add_bias(mha, queue, mha->s[S_Q], y, y_offset, d->B * d->N, d->E, w->bo, w->bo_offset, event);
cleanup:
    return status;
}
