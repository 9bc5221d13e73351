/*
 * mha_ref.c - the CPU reference of the multi-head attention layer
 * (clattn_mha_reference): projections, RoPE, softmax attention and the
 * output projection, all accumulated in double; y rounded to f32 once at the
 * end and written only when everything succeeded. Written for clarity, not
 * speed: it verifies the device on test-sized problems.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* out[r, o] = sum_e in[r, e] w[o, e] + b[o] for r < rows, o < n_out (y = x W^T + b). */
static void linear(const double *in, const float *w, const float *b, int64_t rows, int64_t n_in, int64_t n_out,
                   double *out)
{
    for (int64_t r = 0; r < rows; r++) {
        const double *xr = in + r * n_in;
        for (int64_t o = 0; o < n_out; o++) {
            const float *wr = w + o * n_in;
            double acc = b ? (double)b[o] : 0.0;
            for (int64_t e = 0; e < n_in; e++)
                acc += xr[e] * (double)wr[e];
            out[r * n_out + o] = acc;
        }
    }
}

/* RoPE in place on t [B * seq, heads * Dh]: position = row % seq. */
static void rope(double *t, int64_t rows, int64_t seq, int64_t heads, int64_t Dh, double base)
{
    const int64_t half = Dh / 2;
    for (int64_t r = 0; r < rows; r++) {
        const double pos = (double)(r % seq);
        for (int64_t h = 0; h < heads; h++) {
            double *p = t + (r * heads + h) * Dh;
            for (int64_t i = 0; i < half; i++) {
                const double angle = pos * pow(base, -2.0 * (double)i / (double)Dh);
                const double c = cos(angle), s = sin(angle), a = p[i], b = p[i + half];
                p[i] = a * c - b * s;
                p[i + half] = b * c + a * s;
            }
        }
    }
}

clattn_status clattn_mha_reference(const clattn_mha_desc *desc, int64_t B, int64_t N, int64_t M,
                                   const clattn_mha_host_weights *w, const float *x, const float *kv, float *y)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = NULL; /* no context: statuses only */
    clattn__mha_dims d;
    double *xs = NULL, *ss = NULL, *q = NULL, *k = NULL, *v = NULL, *o = NULL, *t = NULL, *p = NULL;
    float *yt = NULL;
    size_t nq, ns, nk;
    status = clattn__mha_validate(ctx, desc, B, N, M, &d);
    if (status)
        goto cleanup;
    CLATTN_CHECK(w != NULL && w->wq && w->wk && w->wv && w->wo, CLATTN_ERROR_NULL_ARGUMENT, "weights");
    CLATTN_CHECK(x != NULL && y != NULL, CLATTN_ERROR_NULL_ARGUMENT, "x or y");
    CLATTN_CHECK(kv != NULL || !d.cross, CLATTN_ERROR_NULL_ARGUMENT, "kv (cross-attention)");
    CLATTN_CHECK(kv == NULL || d.cross, CLATTN_ERROR_INVALID_VALUE, "kv (self-attention takes none)");

    /* Sizes are bounded by the validation (f32 bytes fit size_t; doubles are
     * twice that, checked here). */
    nq = (size_t)(d.B * d.N * d.E);
    ns = (size_t)(d.B * d.S * d.E);
    nk = (size_t)(d.B * d.S * d.KVW);
    CLATTN_CHECK(nq <= SIZE_MAX / sizeof(double) && ns <= SIZE_MAX / sizeof(double), CLATTN_ERROR_SIZE_OVERFLOW,
                 "B, N, M");
    xs = clattn__malloc(nq * sizeof *xs);
    q = clattn__malloc(nq * sizeof *q);
    o = clattn__malloc(nq * sizeof *o);
    t = clattn__malloc(nq * sizeof *t);
    k = clattn__malloc(nk * sizeof *k);
    v = clattn__malloc(nk * sizeof *v);
    p = clattn__malloc((size_t)d.S * sizeof *p);
    yt = clattn__malloc(nq * sizeof *yt);
    CLATTN_CHECK(xs && q && o && t && k && v && p && yt, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "mha reference buffers");
    if (d.cross) {
        ss = clattn__malloc(ns * sizeof *ss);
        CLATTN_CHECK(ss != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "mha reference buffers");
        for (size_t i = 0; i < ns; i++)
            ss[i] = kv[i];
    }
    for (size_t i = 0; i < nq; i++)
        xs[i] = x[i];

    linear(xs, w->wq, w->bq, d.B * d.N, d.E, d.E, q);
    linear(d.cross ? ss : xs, w->wk, w->bk, d.B * d.S, d.E, d.KVW, k);
    linear(d.cross ? ss : xs, w->wv, w->bv, d.B * d.S, d.E, d.KVW, v);
    if (desc->rope_base > 0.0f) {
        rope(q, d.B * d.N, d.N, d.H, d.Dh, (double)desc->rope_base);
        rope(k, d.B * d.S, d.S, d.Hkv, d.Dh, (double)desc->rope_base);
    }

    /* o[b, i, h*Dh + c] = softmax_j(scale q_i . k_j) v_j, query head h on kv head h / (H / Hkv). */
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t h = 0; h < d.H; h++) {
            const int64_t g = h / (d.H / d.Hkv);
            for (int64_t i = 0; i < d.N; i++) {
                const double *qi = q + (b * d.N + i) * d.E + h * d.Dh;
                double *oi = o + (b * d.N + i) * d.E + h * d.Dh;
                const int64_t nkeep = desc->causal ? (i + 1 < d.S ? i + 1 : d.S) : d.S;
                double mx = -INFINITY, sum = 0.0;
                for (int64_t j = 0; j < nkeep; j++) {
                    const double *kj = k + (b * d.S + j) * d.KVW + g * d.Dh;
                    double dot = 0.0;
                    for (int64_t c = 0; c < d.Dh; c++)
                        dot += qi[c] * kj[c];
                    p[j] = (double)d.scale * dot;
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int64_t j = 0; j < nkeep; j++)
                    sum += (p[j] = exp(p[j] - mx));
                for (int64_t c = 0; c < d.Dh; c++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < nkeep; j++)
                        acc += p[j] * v[(b * d.S + j) * d.KVW + g * d.Dh + c];
                    oi[c] = acc / sum;
                }
            }
        }

    linear(o, w->wo, w->bo, d.B * d.N, d.E, d.E, t);
    for (size_t i = 0; i < nq; i++)
        yt[i] = (float)t[i];
    memcpy(y, yt, nq * sizeof *yt);
cleanup:
    clattn__free(xs);
    clattn__free(ss);
    clattn__free(q);
    clattn__free(k);
    clattn__free(v);
    clattn__free(o);
    clattn__free(t);
    clattn__free(p);
    clattn__free(yt);
    return status;
}
