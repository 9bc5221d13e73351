/*
 * problem.c - one validation of an attention problem for every entry point
 * (plans, the host convenience call, the reference): attributes, shapes,
 * dtypes, optional inputs, and the buffers behind the views.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* Check one view. For varlen (packed_rows > 0) the view addresses packed
 * rows through cu_seqlens: all-zero strides mean the packed layout, the batch
 * stride must be 0, and extent and overlap are those of the physical
 * [1, H, packed_rows, D] tensor; the logical shape [B, H, max_seqlen, D] is
 * kept for the kernels. */
static clattn_status view_check(clattn_context *ctx, const char *name, clattn_tensor *t, int ndim, int output,
                                size_t *need, int64_t packed_rows)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_tensor phys;
    int all_zero = 1;
    if (!packed_rows)
        return clattn__tensor_check(ctx, name, t, ndim, output, need);
    if (ndim == 3) /* ignored for [B, H, N] views: it must not make the strides look given */
        t->strides[3] = 0;
    for (int i = 0; i < 4; i++) {
        CLATTN_CHECK(t->shape[i] > 0 || (ndim == 3 && i == 3), CLATTN_ERROR_INVALID_SHAPE,
                     "%s: shape[%d] = %lld must be positive", name, i, (long long)t->shape[i]);
        CLATTN_CHECK(t->shape[i] <= INT32_MAX, CLATTN_ERROR_SIZE_OVERFLOW, "%s: shape[%d] exceeds 2^31-1", name, i);
        all_zero &= t->strides[i] == 0;
    }
    if (all_zero) {
        if (ndim == 3) { /* lse: [H, total] */
            t->strides[1] = packed_rows, t->strides[2] = 1;
        } else { /* [total, H, D] */
            t->strides[1] = t->shape[3], t->strides[2] = t->shape[1] * t->shape[3], t->strides[3] = 1;
        }
    }
    CLATTN_CHECK(t->strides[0] == 0, CLATTN_ERROR_INVALID_STRIDE,
                 "%s: varlen views address sequences through cu_seqlens: the batch stride must be 0, got %lld", name,
                 (long long)t->strides[0]);
    phys = *t;
    phys.shape[0] = 1;
    phys.shape[2] = packed_rows;
    status = clattn__tensor_check(ctx, name, &phys, ndim, output, need);
    if (status)
        goto cleanup;
    t->shape[3] = phys.shape[3];
    t->strides[3] = phys.strides[3];
cleanup:
    return status;
}

clattn_status clattn__problem_init(clattn_context *ctx, const clattn_attention_desc *desc, const clattn_args *args,
                                   clattn__problem *p)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_attention_desc d;
    memset(p, 0, sizeof *p);
    CLATTN_CHECK(args != NULL, CLATTN_ERROR_NULL_ARGUMENT, "args is NULL");
    if (desc)
        d = *desc;
    else
        memset(&d, 0, sizeof d);

    CLATTN_CHECK((int)d.align >= 0 && d.align < CLATTN_ALIGN_COUNT_, CLATTN_ERROR_INVALID_ENUM,
                 "desc.align: unknown value %d", (int)d.align);
    CLATTN_CHECK((int)d.variant >= 0 && d.variant < CLATTN_VARIANT_COUNT_, CLATTN_ERROR_INVALID_ENUM,
                 "desc.variant: unknown value %d", (int)d.variant);
    CLATTN_CHECK(isfinite(d.scale), CLATTN_ERROR_INVALID_SCALE, "desc.scale: %g is not finite", (double)d.scale);
    CLATTN_CHECK(isfinite(d.softcap) && d.softcap >= 0.0f, CLATTN_ERROR_INVALID_SOFTCAP,
                 "desc.softcap: %g must be finite and >= 0 (0 = off)", (double)d.softcap);
    if (d.use_window)
        CLATTN_CHECK(d.window_left >= -1 && d.window_right >= -1, CLATTN_ERROR_INVALID_WINDOW,
                     "desc.window: (%d, %d) must be >= -1 each (-1 = unbounded)", (int)d.window_left,
                     (int)d.window_right);
    p->desc = d;

    p->has_varlen = args->has_varlen || args->cu_seqlens_q != NULL || args->cu_seqlens_k != NULL;
    if (p->has_varlen) {
        CLATTN_CHECK(args->total_q >= 1 && args->total_k >= 1 && args->total_q <= INT32_MAX &&
                         args->total_k <= INT32_MAX,
                     CLATTN_ERROR_INVALID_SEQLENS, "total_q, total_k: (%lld, %lld) must be in 1..2^31-1 with varlen",
                     (long long)args->total_q, (long long)args->total_k);
        CLATTN_CHECK(args->cu_seqlens_q_offset % 4 == 0 && args->cu_seqlens_k_offset % 4 == 0, CLATTN_ERROR_MISALIGNED,
                     "cu_seqlens: byte offsets (%zu, %zu) must be multiples of 4", args->cu_seqlens_q_offset,
                     args->cu_seqlens_k_offset);
        p->total_q = args->total_q;
        p->total_k = args->total_k;
    }
    p->has_block_table = args->has_block_table || args->block_table != NULL;
    if (p->has_block_table) {
        CLATTN_CHECK(!p->has_varlen, CLATTN_ERROR_INVALID_BLOCK_TABLE,
                     "block_table: paged K/V cannot be combined with varlen (cu_seqlens)");
        CLATTN_CHECK(args->page_size >= 1 && args->page_size <= INT32_MAX, CLATTN_ERROR_INVALID_BLOCK_TABLE,
                     "page_size: %lld must be in 1..2^31-1 with a block table", (long long)args->page_size);
        CLATTN_CHECK(args->max_pages >= 1 && args->max_pages <= INT32_MAX, CLATTN_ERROR_INVALID_BLOCK_TABLE,
                     "max_pages: %lld must be in 1..2^31-1 with a block table", (long long)args->max_pages);
        CLATTN_CHECK(args->page_size * args->max_pages <= INT32_MAX, CLATTN_ERROR_SIZE_OVERFLOW,
                     "page_size * max_pages: %lld keys per sequence exceed 2^31-1",
                     (long long)(args->page_size * args->max_pages));
        CLATTN_CHECK(args->block_table_offset % 4 == 0, CLATTN_ERROR_MISALIGNED,
                     "block_table: byte offset %zu is not a multiple of 4", args->block_table_offset);
        p->page_size = args->page_size;
        p->max_pages = args->max_pages;
    }
    p->q = args->q;
    p->k = args->k;
    p->v = args->v;
    p->o = args->o;
    status = view_check(ctx, "q", &p->q, 4, 0, &p->need_bytes[CLATTN__T_Q], p->total_q);
    if (status) goto cleanup;
    status = view_check(ctx, "k", &p->k, 4, 0, &p->need_bytes[CLATTN__T_K], p->total_k);
    if (status) goto cleanup;
    status = view_check(ctx, "v", &p->v, 4, 0, &p->need_bytes[CLATTN__T_V], p->total_k);
    if (status) goto cleanup;
    status = view_check(ctx, "o", &p->o, 4, 1, &p->need_bytes[CLATTN__T_O], p->total_q);
    if (status) goto cleanup;

    CLATTN_CHECK(p->k.dtype == p->q.dtype && p->v.dtype == p->q.dtype, CLATTN_ERROR_INVALID_DTYPE,
                 "k, v: dtypes (%s, %s) differ from q's %s", clattn_dtype_name(p->k.dtype),
                 clattn_dtype_name(p->v.dtype), clattn_dtype_name(p->q.dtype));
    p->in_dtype = p->q.dtype;
    p->out_dtype = p->o.dtype;

    p->B = p->q.shape[0];
    p->Hq = p->q.shape[1];
    p->Nq = p->q.shape[2];
    p->D = p->q.shape[3];
    p->Hkv = p->k.shape[1];
    p->Nk = p->k.shape[2];
    p->Dv = p->v.shape[3];
    if (p->has_block_table) {
        /* page pools [num_pages, Hkv, page_size, D]; the logical key count is the table's reach */
        CLATTN_CHECK(p->k.shape[2] == p->page_size && p->v.shape[2] == p->page_size &&
                         p->v.shape[0] == p->k.shape[0],
                     CLATTN_ERROR_INVALID_BLOCK_TABLE,
                     "k, v: page pools of shapes [%lld, %lld, %lld, %lld] and [%lld, %lld, %lld, %lld] must be "
                     "[num_pages, Hkv, page_size = %lld, D or Dv] with the same num_pages",
                     (long long)p->k.shape[0], (long long)p->k.shape[1], (long long)p->k.shape[2],
                     (long long)p->k.shape[3], (long long)p->v.shape[0], (long long)p->v.shape[1],
                     (long long)p->v.shape[2], (long long)p->v.shape[3], (long long)p->page_size);
        p->num_pages = p->k.shape[0];
        p->Nk = p->max_pages * p->page_size;
    }
    CLATTN_CHECK((p->has_block_table || (p->k.shape[0] == p->B && p->v.shape[0] == p->B)) && p->o.shape[0] == p->B,
                 CLATTN_ERROR_INVALID_SHAPE,
                 "k, v, o: batch sizes (%lld, %lld, %lld) differ from q's %lld", (long long)p->k.shape[0],
                 (long long)p->v.shape[0], (long long)p->o.shape[0], (long long)p->B);
    CLATTN_CHECK(p->v.shape[1] == p->Hkv, CLATTN_ERROR_INVALID_SHAPE, "v: %lld heads but k has %lld",
                 (long long)p->v.shape[1], (long long)p->Hkv);
    CLATTN_CHECK(p->has_block_table || p->v.shape[2] == p->Nk, CLATTN_ERROR_INVALID_SHAPE, "v: %lld keys but k has %lld",
                 (long long)p->v.shape[2], (long long)p->Nk);
    CLATTN_CHECK(p->k.shape[3] == p->D, CLATTN_ERROR_INVALID_SHAPE, "k: head dim %lld differs from q's %lld",
                 (long long)p->k.shape[3], (long long)p->D);
    CLATTN_CHECK(p->o.shape[1] == p->Hq && p->o.shape[2] == p->Nq && p->o.shape[3] == p->Dv,
                 CLATTN_ERROR_INVALID_SHAPE, "o: shape [%lld, %lld, %lld, %lld] must be [B, Hq, Nq, Dv] = [%lld, %lld, %lld, %lld]",
                 (long long)p->o.shape[0], (long long)p->o.shape[1], (long long)p->o.shape[2],
                 (long long)p->o.shape[3], (long long)p->B, (long long)p->Hq, (long long)p->Nq, (long long)p->Dv);
    CLATTN_CHECK(p->Hq % p->Hkv == 0, CLATTN_ERROR_HEAD_MISMATCH,
                 "q, k: %lld query heads are not a multiple of %lld key/value heads", (long long)p->Hq,
                 (long long)p->Hkv);
    CLATTN_CHECK(p->D <= CLATTN_MAX_HEAD_DIM && p->Dv <= CLATTN_MAX_HEAD_DIM, CLATTN_ERROR_HEAD_DIM,
                 "q, v: head dims (%lld, %lld) exceed %d", (long long)p->D, (long long)p->Dv, CLATTN_MAX_HEAD_DIM);

    p->has_lse = args->has_lse || args->lse.buffer != NULL;
    if (p->has_lse) {
        p->lse = args->lse;
        status = view_check(ctx, "lse", &p->lse, 3, 1, &p->need_bytes[CLATTN__T_LSE], p->total_q);
        if (status) goto cleanup;
        CLATTN_CHECK(p->lse.dtype == CLATTN_F32, CLATTN_ERROR_INVALID_DTYPE, "lse: dtype must be f32, got %s",
                     clattn_dtype_name(p->lse.dtype));
        CLATTN_CHECK(p->lse.shape[0] == p->B && p->lse.shape[1] == p->Hq && p->lse.shape[2] == p->Nq,
                     CLATTN_ERROR_INVALID_SHAPE, "lse: shape [%lld, %lld, %lld] must be [B, Hq, Nq] = [%lld, %lld, %lld]",
                     (long long)p->lse.shape[0], (long long)p->lse.shape[1], (long long)p->lse.shape[2],
                     (long long)p->B, (long long)p->Hq, (long long)p->Nq);
    }

    p->has_bias = args->has_bias || args->bias.buffer != NULL;
    if (p->has_bias) {
        const int64_t full[4] = {p->B, p->Hq, p->Nq, p->Nk};
        p->bias = args->bias;
        status = clattn__tensor_check(ctx, "bias", &p->bias, 4, 0, &p->need_bytes[CLATTN__T_BIAS]);
        if (status) goto cleanup;
        CLATTN_CHECK(p->bias.dtype == CLATTN_F32, CLATTN_ERROR_INVALID_BIAS, "bias: dtype must be f32, got %s",
                     clattn_dtype_name(p->bias.dtype));
        for (int i = 0; i < 4; i++) {
            CLATTN_CHECK(p->bias.shape[i] == 1 || p->bias.shape[i] == full[i], CLATTN_ERROR_INVALID_BIAS,
                         "bias: dim %d has size %lld, which is neither 1 nor %lld of [B, Hq, Nq, Nk]", i,
                         (long long)p->bias.shape[i], (long long)full[i]);
            if (p->bias.shape[i] == 1)
                p->bias.strides[i] = 0; /* broadcast */
        }
    }

    p->has_alibi = args->has_alibi || args->alibi != NULL;
    if (p->has_alibi)
        CLATTN_CHECK(args->alibi_offset % sizeof(float) == 0, CLATTN_ERROR_MISALIGNED,
                     "alibi: byte offset %zu is not a multiple of 4", args->alibi_offset);
    p->has_key_lengths = args->has_key_lengths || args->key_lengths != NULL;
    if (p->has_key_lengths)
        CLATTN_CHECK(args->key_lengths_offset % sizeof(int32_t) == 0, CLATTN_ERROR_MISALIGNED,
                     "key_lengths: byte offset %zu is not a multiple of 4", args->key_lengths_offset);

    p->scale = d.scale != 0.0f ? d.scale : (float)(1.0 / sqrt((double)p->D));
    /* KEY_LENGTHS: the kernels and the reference take key_len[b] - Nq per sequence */
    p->off = d.align == CLATTN_ALIGN_BOTTOM_RIGHT || d.align == CLATTN_ALIGN_KEY_LENGTHS ? p->Nk - p->Nq : 0;
cleanup:
    return status;
}

/* The base buffer and absolute byte range of a view, through sub-buffers. */
static clattn_status resolve(clattn_context *ctx, cl_mem m, size_t off, size_t need, cl_mem *base, size_t *lo,
                             size_t *hi)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem parent = NULL;
    size_t sub_off = 0;
    CLATTN_CL(cla_GetMemObjectInfo(m, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent, NULL));
    if (parent)
        CLATTN_CL(cla_GetMemObjectInfo(m, CL_MEM_OFFSET, sizeof sub_off, &sub_off, NULL));
    *base = parent ? parent : m;
    *lo = sub_off + off;
    *hi = sub_off + need; /* need already includes off */
cleanup:
    return status;
}

clattn_status clattn__mem_range(clattn_context *ctx, cl_mem m, size_t off, size_t need, cl_mem *base, size_t *lo,
                                size_t *hi)
{
    return resolve(ctx, m, off, need, base, lo, hi);
}

clattn_status clattn__problem_check_buffers(clattn_context *ctx, const clattn__problem *p, const clattn_args *args,
                                            int require)
{
    /* The six views, then the small inputs: ALiBi slopes, key lengths and
     * the two cu_seqlens arrays. Outputs may overlap none of them: a kernel
     * writing o over the slopes it still reads would compute garbage. */
    enum { NV = 6, NALL = 10 };
    static const char *const names[NALL] = {"q", "k", "v", "o", "lse", "bias",
                                            "alibi", "key_lengths", "cu_seqlens_q", "cu_seqlens_k"};
    clattn_status status = CLATTN_SUCCESS;
    const clattn_tensor *views[NV] = {&args->q, &args->k, &args->v, &args->o, &args->lse, &args->bias};
    const int present[NALL] = {1, 1, 1, 1, p->has_lse, p->has_bias, p->has_alibi, p->has_key_lengths,
                               p->has_varlen, p->has_varlen};
    const cl_mem small[NALL - NV] = {args->alibi, args->key_lengths, args->cu_seqlens_q, args->cu_seqlens_k};
    const size_t small_off[NALL - NV] = {args->alibi_offset, args->key_lengths_offset, args->cu_seqlens_q_offset,
                                         args->cu_seqlens_k_offset};
    const size_t small_bytes[NALL - NV] = {(size_t)p->Hq * 4, (size_t)p->B * 4, (size_t)(p->B + 1) * 4,
                                           (size_t)(p->B + 1) * 4};
    static const char *const small_what[NALL - NV] = {"slopes [Hq]", "lengths [B]", "entries [B + 1]",
                                                      "entries [B + 1]"};
    cl_mem base[NALL] = {0};
    size_t lo[NALL] = {0}, hi[NALL] = {0};
    for (int i = 0; i < NV; i++) {
        size_t size = 0;
        if (!present[i])
            continue;
        if (!views[i]->buffer) {
            CLATTN_CHECK(!require, CLATTN_ERROR_NULL_ARGUMENT, "%s: buffer is NULL", names[i]);
            continue;
        }
        CLATTN_CL(cla_GetMemObjectInfo(views[i]->buffer, CL_MEM_SIZE, sizeof size, &size, NULL));
        CLATTN_CHECK(size >= p->need_bytes[i], CLATTN_ERROR_BUFFER_TOO_SMALL,
                     "%s: buffer holds %zu bytes, the view needs %zu", names[i], size, p->need_bytes[i]);
        status = resolve(ctx, views[i]->buffer, views[i]->offset, p->need_bytes[i], &base[i], &lo[i], &hi[i]);
        if (status)
            goto cleanup;
    }
    for (int s = 0; s < NALL - NV; s++) {
        const int i = NV + s;
        size_t size = 0;
        if (!present[i])
            continue;
        if (!small[s]) {
            CLATTN_CHECK(!require, CLATTN_ERROR_NULL_ARGUMENT, "%s: buffer is NULL", names[i]);
            continue;
        }
        CLATTN_CL(cla_GetMemObjectInfo(small[s], CL_MEM_SIZE, sizeof size, &size, NULL));
        CLATTN_CHECK(size >= small_off[s] && size - small_off[s] >= small_bytes[s], CLATTN_ERROR_BUFFER_TOO_SMALL,
                     "%s: buffer holds %zu bytes, %lld %s need %zu from offset %zu", names[i], size,
                     (long long)(small_bytes[s] / 4), small_what[s], small_bytes[s], small_off[s]);
        status = resolve(ctx, small[s], small_off[s], small_off[s] + small_bytes[s], &base[i], &lo[i], &hi[i]);
        if (status)
            goto cleanup;
    }
    /* Outputs (o, lse) must not overlap any other view or input. Byte ranges
     * are a conservative test for strided views. */
    for (int i = CLATTN__T_O; i <= CLATTN__T_LSE; i++) {
        if (!base[i])
            continue;
        for (int j = 0; j < NALL; j++) {
            if (j == i || !base[j])
                continue;
            CLATTN_CHECK(base[i] != base[j] || hi[i] <= lo[j] || hi[j] <= lo[i], CLATTN_ERROR_ALIASING,
                         "%s: output bytes [%zu, %zu) overlap %s bytes [%zu, %zu) of the same buffer", names[i], lo[i],
                         hi[i], names[j], lo[j], hi[j]);
        }
    }
cleanup:
    return status;
}

/* ------------------------------------------------------------ paged K/V: the block table */

clattn_status clattn__check_block_table_buffer(clattn_context *ctx, const clattn__problem *p, const clattn_args *args,
                                               int require)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t size = 0, bytes, tlo, thi, olo, ohi;
    cl_mem tbase = NULL, obase = NULL;
    if (!p->has_block_table)
        return CLATTN_SUCCESS;
    if (!args->block_table) {
        CLATTN_CHECK(!require, CLATTN_ERROR_NULL_ARGUMENT, "block_table: buffer is NULL");
        goto cleanup;
    }
    CLATTN_CHECK(clattn__mul_size((size_t)p->B, (size_t)p->max_pages, &bytes) &&
                     clattn__mul_size(bytes, sizeof(int32_t), &bytes) &&
                     clattn__add_size(bytes, args->block_table_offset, &bytes),
                 CLATTN_ERROR_SIZE_OVERFLOW, "block_table: B * max_pages entries overflow size_t");
    CLATTN_CL(cla_GetMemObjectInfo(args->block_table, CL_MEM_SIZE, sizeof size, &size, NULL));
    CLATTN_CHECK(size >= bytes, CLATTN_ERROR_BUFFER_TOO_SMALL,
                 "block_table: buffer holds %zu bytes, [B, max_pages] = [%lld, %lld] entries need %zu from offset %zu",
                 size, (long long)p->B, (long long)p->max_pages, bytes - args->block_table_offset,
                 args->block_table_offset);
    status = clattn__mem_range(ctx, args->block_table, args->block_table_offset, bytes, &tbase, &tlo, &thi);
    if (status)
        goto cleanup;
    /* the outputs must not overwrite the table the kernels read */
    for (int i = 0; i < 2; i++) {
        const clattn_tensor *t = i ? &args->lse : &args->o;
        if ((i && !p->has_lse) || !t->buffer)
            continue;
        status = clattn__mem_range(ctx, t->buffer, t->offset, p->need_bytes[i ? CLATTN__T_LSE : CLATTN__T_O], &obase,
                                   &olo, &ohi);
        if (status)
            goto cleanup;
        CLATTN_CHECK(obase != tbase || ohi <= tlo || thi <= olo, CLATTN_ERROR_ALIASING,
                     "%s: output bytes [%zu, %zu) overlap block_table bytes [%zu, %zu) of the same buffer",
                     i ? "lse" : "o", olo, ohi, tlo, thi);
    }
cleanup:
    return status;
}

clattn_status clattn__check_block_table(clattn_context *ctx, const clattn__problem *p, const clattn_args *args,
                                        cl_command_queue queue, cl_uint num_wait, const cl_event *wait)
{
    clattn_status status = CLATTN_SUCCESS;
    int32_t *table = NULL, *lens = NULL;
    const size_t n = (size_t)p->B * (size_t)p->max_pages; /* fits: the buffer check passed */
    if (!p->has_block_table)
        return CLATTN_SUCCESS;
    table = clattn__malloc(n * sizeof *table);
    CLATTN_CHECK(table != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "block_table: host copy of %zu entries", n);
    CLATTN_CL(cla_EnqueueReadBuffer(queue, args->block_table, CL_TRUE, args->block_table_offset, n * sizeof *table,
                                    table, num_wait, wait, NULL));
    if (p->has_key_lengths) {
        lens = clattn__malloc((size_t)p->B * sizeof *lens);
        CLATTN_CHECK(lens != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "key_lengths: host copy");
        CLATTN_CL(cla_EnqueueReadBuffer(queue, args->key_lengths, CL_TRUE, args->key_lengths_offset,
                                        (size_t)p->B * sizeof *lens, lens, num_wait, wait, NULL));
    }
    for (int64_t b = 0; b < p->B; b++) {
        /* the pages sequence b reaches: its key length clamped as the kernels clamp it */
        const int64_t len = lens ? (lens[b] < 0 ? 0 : lens[b] > p->Nk ? p->Nk : lens[b]) : p->Nk;
        const int64_t pages = (len + p->page_size - 1) / p->page_size;
        for (int64_t j = 0; j < pages; j++) {
            const int32_t e = table[b * p->max_pages + j];
            CLATTN_CHECK(e >= 0 && e < p->num_pages, CLATTN_ERROR_INVALID_BLOCK_TABLE,
                         "block_table[%lld][%lld] = %d is not a page of the pool (0..%lld); sequence %lld has %lld "
                         "keys",
                         (long long)b, (long long)j, (int)e, (long long)(p->num_pages - 1), (long long)b,
                         (long long)len);
        }
    }
cleanup:
    clattn__free(table);
    clattn__free(lens);
    return status;
}
