/*
 * variants/args.c - what the attention kernels share on the host side: their
 * common argument list (ATTN_KERNEL_ARGS in kernels/common.cl) and their
 * common -D options.
 */
#include "internal.h"

int clattn__problem_options(const clattn__problem *p, char *buf, size_t n, size_t *len)
{
    return clattn__appendf(buf, n, len,
                           "-cl-std=CL1.2 -DHEAD_DIM=%lld -DHEAD_DIM_V=%lld -DIN_DTYPE=%d -DOUT_DTYPE=%d -DCAUSAL=%d "
                           "-DHAS_WINDOW=%d -DHAS_SOFTCAP=%d -DHAS_ALIBI=%d -DHAS_BIAS=%d -DHAS_KEYLEN=%d -DHAS_LSE=%d "
                           "-DVARLEN=%d -DPAGED=%d",
                           (long long)p->D, (long long)p->Dv, (int)p->in_dtype, (int)p->out_dtype, p->desc.causal != 0,
                           p->desc.use_window != 0, p->desc.softcap > 0.0f, p->has_alibi, p->has_bias,
                           p->has_key_lengths, p->has_lse, p->has_varlen, p->has_block_table);
}

void clattn__karg(clattn__kargs *a, size_t n, const void *v)
{
    if (a->err == CL_SUCCESS) {
        a->err = cla_SetKernelArg(a->k, a->i, n, v);
        a->failed_at = a->i;
    }
    a->i++;
}
void clattn__karg_mem(clattn__kargs *a, cl_mem m) { clattn__karg(a, sizeof m, &m); }
void clattn__karg_long(clattn__kargs *a, int64_t x)
{
    const cl_long v = (cl_long)x;
    clattn__karg(a, sizeof v, &v);
}
void clattn__karg_ulong(clattn__kargs *a, uint64_t x)
{
    const cl_ulong v = (cl_ulong)x;
    clattn__karg(a, sizeof v, &v);
}
void clattn__karg_int(clattn__kargs *a, int64_t x)
{
    const cl_int v = (cl_int)x;
    clattn__karg(a, sizeof v, &v);
}
void clattn__karg_float(clattn__kargs *a, float x) { clattn__karg(a, sizeof x, &x); }

/* buffer, element offset, then ndim strides; an absent view passes NULL and zeros */
static void arg_view(clattn__kargs *a, const clattn_tensor *t, cl_mem buffer, size_t byte_offset, int ndim, int present)
{
    const size_t esize = clattn_dtype_size(t->dtype);
    const cl_mem m = present ? buffer : NULL;
    const cl_ulong off = present ? (cl_ulong)(byte_offset / esize) : 0;
    clattn__karg(a, sizeof(cl_mem), &m);
    clattn__karg(a, sizeof off, &off);
    for (int i = 0; i < ndim; i++) {
        const cl_long s = present ? (cl_long)t->strides[i] : 0;
        clattn__karg(a, sizeof s, &s);
    }
}

clattn_status clattn__set_attention_args(clattn_plan *plan, cl_kernel kernel, const clattn_args *args)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = plan->ctx;
    const clattn__problem *p = &plan->prob;
    clattn__kargs a = {kernel, 0, CL_SUCCESS, 0};
    const cl_mem alibi = p->has_alibi ? args->alibi : NULL;
    const cl_mem keylen = p->has_key_lengths ? args->key_lengths : NULL;
    const cl_ulong alibi_off = p->has_alibi ? args->alibi_offset / 4 : 0;
    const cl_ulong keylen_off = p->has_key_lengths ? args->key_lengths_offset / 4 : 0;
    const cl_int n_q = (cl_int)p->Nq, n_k = (cl_int)p->Nk, hpk = (cl_int)(p->Hq / p->Hkv);
    const cl_int win_l = p->desc.use_window ? p->desc.window_left : -1;
    const cl_int win_r = p->desc.use_window ? p->desc.window_right : -1;
    const cl_float scale = p->scale, softcap = p->desc.softcap;
    const cl_long diag = p->off;
    const cl_mem cu_q = p->has_varlen ? args->cu_seqlens_q : NULL, cu_k = p->has_varlen ? args->cu_seqlens_k : NULL;
    const cl_ulong cu_q_off = p->has_varlen ? args->cu_seqlens_q_offset / 4 : 0;
    const cl_ulong cu_k_off = p->has_varlen ? args->cu_seqlens_k_offset / 4 : 0;
    const cl_long total_q = p->total_q, total_k = p->total_k;
    /* 0 top-left, 1 bottom-right, 2 against each sequence's key length */
    const cl_int align_br = p->desc.align == CLATTN_ALIGN_KEY_LENGTHS ? 2 : p->desc.align == CLATTN_ALIGN_BOTTOM_RIGHT;
    const cl_mem table = p->has_block_table ? args->block_table : NULL;
    const cl_ulong table_off = p->has_block_table ? args->block_table_offset / 4 : 0;
    const cl_int max_pages = (cl_int)p->max_pages, page_size = (cl_int)p->page_size;
    const cl_long num_pages = p->num_pages;

    /* The plan's normalised strides with this call's buffers and offsets. */
    arg_view(&a, &p->q, args->q.buffer, args->q.offset, 4, 1);
    arg_view(&a, &p->k, args->k.buffer, args->k.offset, 4, 1);
    arg_view(&a, &p->v, args->v.buffer, args->v.offset, 4, 1);
    arg_view(&a, &p->o, args->o.buffer, args->o.offset, 4, 1);
    arg_view(&a, &p->lse, args->lse.buffer, args->lse.offset, 3, p->has_lse);
    arg_view(&a, &p->bias, args->bias.buffer, args->bias.offset, 4, p->has_bias);
    clattn__karg(&a, sizeof(cl_mem), &alibi);
    clattn__karg(&a, sizeof alibi_off, &alibi_off);
    clattn__karg(&a, sizeof(cl_mem), &keylen);
    clattn__karg(&a, sizeof keylen_off, &keylen_off);
    clattn__karg(&a, sizeof n_q, &n_q);
    clattn__karg(&a, sizeof n_k, &n_k);
    clattn__karg(&a, sizeof hpk, &hpk);
    clattn__karg(&a, sizeof scale, &scale);
    clattn__karg(&a, sizeof diag, &diag);
    clattn__karg(&a, sizeof win_l, &win_l);
    clattn__karg(&a, sizeof win_r, &win_r);
    clattn__karg(&a, sizeof softcap, &softcap);
    clattn__karg(&a, sizeof(cl_mem), &cu_q);
    clattn__karg(&a, sizeof cu_q_off, &cu_q_off);
    clattn__karg(&a, sizeof(cl_mem), &cu_k);
    clattn__karg(&a, sizeof cu_k_off, &cu_k_off);
    clattn__karg(&a, sizeof total_q, &total_q);
    clattn__karg(&a, sizeof total_k, &total_k);
    clattn__karg(&a, sizeof align_br, &align_br);
    clattn__karg(&a, sizeof(cl_mem), &table);
    clattn__karg(&a, sizeof table_off, &table_off);
    clattn__karg(&a, sizeof max_pages, &max_pages);
    clattn__karg(&a, sizeof page_size, &page_size);
    clattn__karg(&a, sizeof num_pages, &num_pages);
    CLATTN_CHECK(a.err == CL_SUCCESS, clattn_status_from_cl(a.err), "clSetKernelArg(%u) failed: %s", a.failed_at,
                 clattn_status_name(clattn_status_from_cl(a.err)));
    CLATTN_CHECK(a.i == CLATTN__ATTN_KERNEL_NARGS, CLATTN_ERROR_INTERNAL,
                 "set %u kernel arguments, ATTN_KERNEL_ARGS has %d", a.i, CLATTN__ATTN_KERNEL_NARGS);
cleanup:
    return status;
}
