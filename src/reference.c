/*
 * reference.c - the CPU reference: the semantics of every variant computed in
 * double precision from exactly widened inputs, and the comparison metrics
 * that decide whether a device result passes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A host tensor as a metadata-only device view (contiguous). */
static clattn_tensor host_view(const clattn_host_tensor *h)
{
    return clattn_tensor_make(NULL, 0, h->dtype, h->shape[0], h->shape[1], h->shape[2], h->shape[3]);
}

/* Shared by the reference and the host convenience call: validate host args
 * exactly as a plan would, plus the values a device cannot check up front. */
clattn_status clattn__host_problem(clattn_context *ctx, const clattn_attention_desc *desc,
                                   const clattn_host_args *h, clattn__problem *p);
clattn_status clattn__host_problem(clattn_context *ctx, const clattn_attention_desc *desc,
                                   const clattn_host_args *h, clattn__problem *p)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_args a;
    memset(&a, 0, sizeof a);
    CLATTN_CHECK(h != NULL, CLATTN_ERROR_NULL_ARGUMENT, "args is NULL");
    CLATTN_CHECK(h->q.data && h->k.data && h->v.data && h->o.data, CLATTN_ERROR_NULL_ARGUMENT,
                 "%s: data is NULL", !h->q.data ? "q" : !h->k.data ? "k" : !h->v.data ? "v" : "o");
    a.q = host_view(&h->q);
    a.k = host_view(&h->k);
    a.v = host_view(&h->v);
    a.o = host_view(&h->o);
    a.has_lse = h->lse.data != NULL;
    if (a.has_lse)
        a.lse = host_view(&h->lse);
    a.has_bias = h->bias.data != NULL;
    if (a.has_bias)
        a.bias = host_view(&h->bias);
    a.has_alibi = h->alibi != NULL;
    a.has_key_lengths = h->key_lengths != NULL;
    if (h->cu_seqlens_q || h->cu_seqlens_k) {
        CLATTN_CHECK(h->cu_seqlens_q && h->cu_seqlens_k, CLATTN_ERROR_INVALID_SEQLENS,
                     "cu_seqlens_%c: NULL while the other is set", h->cu_seqlens_q ? 'k' : 'q');
        a.has_varlen = 1;
        a.total_q = h->total_q;
        a.total_k = h->total_k;
    }
    status = clattn__problem_init(ctx, desc, &a, p);
    if (status)
        goto cleanup;
    if (p->has_varlen) {
        const int32_t *cu[2] = {h->cu_seqlens_q, h->cu_seqlens_k};
        const int64_t total[2] = {p->total_q, p->total_k}, maxlen[2] = {p->Nq, p->Nk};
        for (int c = 0; c < 2; c++) {
            /* packed rows are covered exactly: no gap an output could leave unwritten */
            CLATTN_CHECK(cu[c][0] == 0 && cu[c][p->B] == total[c], CLATTN_ERROR_INVALID_SEQLENS,
                         "cu_seqlens_%c: must start at 0 and end at total = %lld, got %d .. %d", c ? 'k' : 'q',
                         (long long)total[c], (int)cu[c][0], (int)cu[c][p->B]);
            for (int64_t b = 0; b < p->B; b++) {
                const int64_t len = (int64_t)cu[c][b + 1] - cu[c][b];
                CLATTN_CHECK(len >= 0 && len <= maxlen[c] && cu[c][b + 1] <= total[c], CLATTN_ERROR_INVALID_SEQLENS,
                             "cu_seqlens_%c: sequence %lld spans [%d, %d), which is not within 0..%lld rows of "
                             "total %lld with max_seqlen %lld",
                             c ? 'k' : 'q', (long long)b, (int)cu[c][b], (int)cu[c][b + 1], (long long)total[c],
                             (long long)total[c], (long long)maxlen[c]);
            }
        }
    }
    if (p->has_key_lengths)
        for (int64_t b = 0; b < p->B; b++)
            CLATTN_CHECK(h->key_lengths[b] >= 0 && h->key_lengths[b] <= p->Nk, CLATTN_ERROR_INVALID_KEY_LENGTHS,
                         "key_lengths[%lld] = %d is outside 0..Nk = %lld", (long long)b, (int)h->key_lengths[b],
                         (long long)p->Nk);
    if (p->has_alibi)
        for (int64_t i = 0; i < p->Hq; i++)
            CLATTN_CHECK(isfinite(h->alibi[i]), CLATTN_ERROR_INVALID_ALIBI, "alibi[%lld] = %g is not finite",
                         (long long)i, (double)h->alibi[i]);
cleanup:
    return status;
}

/* Outputs must not overlap an input or each other: the reference reads
 * bias, slopes and lengths while it writes o and lse. Separate from
 * clattn__host_problem so that the host call can first refuse a problem too
 * large for the device (whose claimed views may span other arrays). */
clattn_status clattn__host_aliasing(clattn_context *ctx, const clattn__problem *p, const clattn_host_args *h);
clattn_status clattn__host_aliasing(clattn_context *ctx, const clattn__problem *p, const clattn_host_args *h)
{
    clattn_status status = CLATTN_SUCCESS;
    {
        enum { N = 10 };
        static const char *const names[N] = {"q", "k", "v", "o", "lse", "bias",
                                             "alibi", "key_lengths", "cu_seqlens_q", "cu_seqlens_k"};
        const void *ptr[N] = {h->q.data, h->k.data, h->v.data, h->o.data, p->has_lse ? h->lse.data : NULL,
                              p->has_bias ? h->bias.data : NULL, h->alibi, h->key_lengths,
                              h->cu_seqlens_q, h->cu_seqlens_k};
        const size_t bytes[N] = {p->need_bytes[CLATTN__T_Q], p->need_bytes[CLATTN__T_K], p->need_bytes[CLATTN__T_V],
                                 p->need_bytes[CLATTN__T_O], p->need_bytes[CLATTN__T_LSE],
                                 p->need_bytes[CLATTN__T_BIAS], (size_t)p->Hq * sizeof(float),
                                 (size_t)p->B * sizeof(int32_t), (size_t)(p->B + 1) * sizeof(int32_t),
                                 (size_t)(p->B + 1) * sizeof(int32_t)};
        for (int i = CLATTN__T_O; i <= CLATTN__T_LSE; i++) {
            const uintptr_t lo = (uintptr_t)ptr[i];
            if (!ptr[i])
                continue;
            for (int j = 0; j < N; j++) {
                const uintptr_t lo2 = (uintptr_t)ptr[j];
                if (j == i || !ptr[j])
                    continue;
                /* overlap test without a sum that could wrap around */
                CLATTN_CHECK(!(lo2 >= lo && lo2 - lo < bytes[i]) && !(lo >= lo2 && lo - lo2 < bytes[j]),
                             CLATTN_ERROR_ALIASING,
                             "%s: output memory (%zu bytes) overlaps %s (%zu bytes)", names[i], bytes[i], names[j],
                             bytes[j]);
            }
        }
    }
cleanup:
    return status;
}

static double load(const void *data, clattn_dtype dt, size_t i)
{
    switch (dt) {
    case CLATTN_F16: return clattn_half_to_float(((const uint16_t *)data)[i]);
    case CLATTN_BF16: return clattn_bf16_to_float(((const uint16_t *)data)[i]);
    default: return ((const float *)data)[i];
    }
}

static void store(void *data, clattn_dtype dt, size_t i, double x)
{
    switch (dt) {
    case CLATTN_F16: ((uint16_t *)data)[i] = clattn_float_to_half((float)x); break;
    case CLATTN_BF16: ((uint16_t *)data)[i] = clattn_float_to_bf16((float)x); break;
    default: ((float *)data)[i] = (float)x; break;
    }
}

static double *widen(const clattn_host_tensor *t, size_t n)
{
    double *w = clattn__malloc(n * sizeof *w);
    if (w)
        for (size_t i = 0; i < n; i++)
            w[i] = load(t->data, t->dtype, i);
    return w;
}

clattn_status clattn_reference(const clattn_attention_desc *desc, const clattn_host_args *args)
{
    clattn_status status;
    clattn__problem p;
    double *q = NULL, *k = NULL, *v = NULL, *s = NULL, *acc = NULL;
    size_t nq, nk, nv;
    status = clattn__host_problem(NULL, desc, args, &p);
    if (status == CLATTN_SUCCESS)
        status = clattn__host_aliasing(NULL, &p, args);
    if (status)
        return status;
    /* every element the (possibly packed or strided) views reach */
    nq = p.need_bytes[CLATTN__T_Q] / clattn_dtype_size(p.in_dtype);
    nk = p.need_bytes[CLATTN__T_K] / clattn_dtype_size(p.in_dtype);
    nv = p.need_bytes[CLATTN__T_V] / clattn_dtype_size(p.in_dtype);
    q = widen(&args->q, nq);
    k = widen(&args->k, nk);
    v = widen(&args->v, nv);
    s = clattn__malloc((size_t)p.Nk * sizeof *s);
    acc = clattn__malloc((size_t)p.Dv * sizeof *acc);
    if (!q || !k || !v || !s || !acc) {
        status = CLATTN_ERROR_OUT_OF_HOST_MEMORY;
        goto cleanup;
    }
    {
        const int64_t B = p.B, Hq = p.Hq, D = p.D, Dv = p.Dv;
        const int64_t hpk = p.Hq / p.Hkv;
        const double scale = p.scale, cap = p.desc.softcap;
        const float *bias = args->bias.data;
        const int64_t *qs = p.q.strides, *ks = p.k.strides, *vs = p.v.strides, *os = p.o.strides, *ls = p.lse.strides;
        for (int64_t b = 0; b < B; b++) {
            /* this sequence's rows, keys and diagonal offset */
            const int64_t q0 = p.has_varlen ? args->cu_seqlens_q[b] : 0;
            const int64_t k0 = p.has_varlen ? args->cu_seqlens_k[b] : 0;
            const int64_t Nq = p.has_varlen ? args->cu_seqlens_q[b + 1] - q0 : p.Nq;
            const int64_t Nk = p.has_varlen ? args->cu_seqlens_k[b + 1] - k0 : p.Nk;
            /* KEY_LENGTHS: against this sequence's key length, clamped as the kernels clamp it */
            const int64_t klen = !p.has_key_lengths ? Nk
                                 : args->key_lengths[b] < 0 ? 0
                                 : args->key_lengths[b] > Nk ? Nk
                                                             : args->key_lengths[b];
            const int64_t off = p.desc.align == CLATTN_ALIGN_KEY_LENGTHS ? klen - Nq
                                : p.has_varlen ? (p.desc.align == CLATTN_ALIGN_BOTTOM_RIGHT ? Nk - Nq : 0)
                                               : p.off;
            for (int64_t h = 0; h < Hq; h++) {
                const int64_t hk = h / hpk;
                for (int64_t i = 0; i < Nq; i++) {
                    const int64_t diag = i + off;
                    const size_t qrow = (size_t)(b * qs[0] + h * qs[1] + (q0 + i) * qs[2]);
                    const size_t orow = (size_t)(b * os[0] + h * os[1] + (q0 + i) * os[2]);
                    int64_t lo = 0, hi = Nk;
                    double m = -INFINITY, sum = 0.0;
                    if (p.has_key_lengths && args->key_lengths[b] < hi)
                        hi = args->key_lengths[b];
                    if (p.desc.causal && diag + 1 < hi)
                        hi = diag + 1;
                    if (p.desc.use_window) {
                        if (p.desc.window_left >= 0 && diag - p.desc.window_left > lo)
                            lo = diag - p.desc.window_left;
                        if (p.desc.window_right >= 0 && diag + p.desc.window_right + 1 < hi)
                            hi = diag + p.desc.window_right + 1;
                    }
                    for (int64_t j = lo; j < hi; j++) {
                        const size_t krow = (size_t)(b * ks[0] + hk * ks[1] + (k0 + j) * ks[2]);
                        double dot = 0.0, x;
                        for (int64_t d = 0; d < D; d++)
                            dot += q[qrow + (size_t)(d * qs[3])] * k[krow + (size_t)(d * ks[3])];
                        x = scale * dot;
                        if (cap > 0.0)
                            x = cap * tanh(x / cap);
                        if (p.has_alibi)
                            x -= (double)args->alibi[h] * fabs((double)(diag - j));
                        if (p.has_bias) {
                            const clattn_tensor *bt = &p.bias;
                            x += bias[b * bt->strides[0] + h * bt->strides[1] + i * bt->strides[2] +
                                      j * bt->strides[3]];
                        }
                        s[j] = x;
                        if (x > m)
                            m = x;
                    }
                    for (int64_t d = 0; d < Dv; d++)
                        acc[d] = 0.0;
                    if (m != -INFINITY) { /* else: no kept key (or all scores -inf): O = 0 */
                        for (int64_t j = lo; j < hi; j++) {
                            const double e = exp(s[j] - m);
                            const size_t vrow = (size_t)(b * vs[0] + hk * vs[1] + (k0 + j) * vs[2]);
                            sum += e;
                            for (int64_t d = 0; d < Dv; d++)
                                acc[d] += e * v[vrow + (size_t)(d * vs[3])];
                        }
                    }
                    for (int64_t d = 0; d < Dv; d++)
                        store(args->o.data, p.out_dtype, orow + (size_t)(d * os[3]), sum > 0.0 ? acc[d] / sum : 0.0);
                    if (p.has_lse)
                        ((float *)args->lse.data)[b * ls[0] + h * ls[1] + (q0 + i) * ls[2]] =
                            sum > 0.0 ? (float)(m + log(sum)) : -INFINITY;
                }
            }
        }
    }
cleanup:
    clattn__free(q);
    clattn__free(k);
    clattn__free(v);
    clattn__free(s);
    clattn__free(acc);
    return status;
}

clattn_compare_result clattn_compare_f32(const float *dev, const float *ref, size_t n)
{
    clattn_compare_result r;
    double num = 0.0, den = 0.0;
    memset(&r, 0, sizeof r);
    r.count = n;
    if (!dev || !ref)
        return r;
    for (size_t i = 0; i < n; i++) {
        const double a = dev[i], b = ref[i];
        if (!isfinite(a) || !isfinite(b)) {
            /* NaN must meet NaN, +-Inf the same Inf */
            if (!((isnan(a) && isnan(b)) || (isinf(a) && isinf(b) && (a > 0) == (b > 0))))
                r.nonfinite_mismatch++;
            continue;
        }
        const double e = fabs(a - b);
        if (e > r.max_abs_err)
            r.max_abs_err = e;
        if (fabs(b) > r.max_abs_ref)
            r.max_abs_ref = fabs(b);
        num += (a - b) * (a - b);
        den += b * b;
    }
    r.nmse = den > 0.0 ? num / den : (num > 0.0 ? INFINITY : 0.0);
    return r;
}

int clattn_compare_ok(const clattn_compare_result *r, double atol, double rtol, double max_nmse)
{
    return r && r->nonfinite_mismatch == 0 && r->max_abs_err <= atol + rtol * r->max_abs_ref && r->nmse <= max_nmse;
}
