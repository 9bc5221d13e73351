/*
 * test_mha.c - the multi-head attention layer (src/mha.c) against its
 * double-precision CPU reference (src/mha_ref.c): self and cross attention,
 * grouped and multi-query heads, causal, RoPE, with and without each bias,
 * odd shapes, every core variant, packed parameters at offsets, long RoPE
 * positions and scaled inputs; every result on fresh random inputs, y
 * poisoned before the run with canaries before and after it. Then every
 * validation branch (create, run, reference), CLBlast errors mapped to
 * clattn statuses with the CLBlast code in the last-error text, and a
 * fault-injection sweep of create and run through the dispatch layer: no
 * crash, a failure status carrying the injected code, y untouched or
 * complete, no OpenCL object leaked, and the next call succeeds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "tests.h"

#define CANARY 64
#define POISON 0xFF

/* ---- one layer case */

enum { BIAS_Q = 1, BIAS_K = 2, BIAS_V = 4, BIAS_O = 8, BIAS_ALL = 15 };

typedef struct mha_case {
    int B, N, M, E, H, Hkv; /* M = 0: self-attention; Hkv = 0: H */
    int causal;
    float rope;     /* RoPE base, 0 = off */
    int bias;       /* BIAS_* mask */
    clattn_variant variant;
    float in_scale; /* magnitude of x and kv (0 = 1) */
    int offset;     /* elements before every view; parameters packed in one buffer */
    int repeat;     /* > 1: runs must be bitwise identical */
} mha_case;

static const char *mha_str(const mha_case *c, char *buf, size_t n)
{
    snprintf(buf, n, "B=%d N=%d M=%d E=%d H=%d Hkv=%d%s rope=%g bias=%d variant=%s x%g off=%d", c->B, c->N, c->M,
             c->E, c->H, c->Hkv ? c->Hkv : c->H, c->causal ? " causal" : "", (double)c->rope, c->bias,
             clattn_variant_name(c->variant), (double)(c->in_scale > 0 ? c->in_scale : 1), c->offset);
    return buf;
}

static clattn_mha_desc mha_desc(const mha_case *c)
{
    clattn_mha_desc d;
    memset(&d, 0, sizeof d);
    d.embed_dim = c->E;
    d.heads = c->H;
    d.kv_heads = c->Hkv;
    d.causal = c->causal;
    d.rope_base = c->rope;
    d.variant = c->variant;
    return d;
}

static int all_poison(const void *p, size_t bytes)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < bytes; i++)
        if (c[i] != POISON)
            return 0;
    return 1;
}

/* Host data of a case: inputs, parameters and the reference output. */
typedef struct host_data {
    float *x, *kv, *w[4], *b[4], *ref;
    size_t nx, nkv, nw[4], nb[4];
} host_data;

static void host_free(host_data *h)
{
    free(h->x);
    free(h->kv);
    free(h->ref);
    for (int i = 0; i < 4; i++) {
        free(h->w[i]);
        free(h->b[i]);
    }
    memset(h, 0, sizeof *h);
}

/* Random x (and kv) of magnitude amp, weights U(-1, 1) / sqrt(E) (torch's
 * nn.Linear scale), biases U(-0.5, 0.5); the reference output. 0 on a host
 * allocation failure or a reference error (message in msg). */
static int host_make(const mha_case *c, uint64_t seed, host_data *h, char *msg, size_t n)
{
    uint64_t rng = seed;
    const float amp = c->in_scale > 0 ? c->in_scale : 1.0f;
    const int Hkv = c->Hkv ? c->Hkv : c->H, Dh = c->E / c->H, S = c->M ? c->M : c->N;
    const size_t kvw = (size_t)Hkv * Dh;
    clattn_mha_desc d = mha_desc(c);
    clattn_mha_host_weights hw;
    clattn_status st;
    memset(h, 0, sizeof *h);
    h->nx = (size_t)c->B * c->N * c->E;
    h->nkv = c->M ? (size_t)c->B * S * c->E : 0;
    h->nw[0] = h->nw[3] = (size_t)c->E * c->E;
    h->nw[1] = h->nw[2] = kvw * c->E;
    h->nb[0] = h->nb[3] = (size_t)c->E;
    h->nb[1] = h->nb[2] = kvw;
    h->x = malloc(h->nx * sizeof(float));
    h->kv = c->M ? malloc(h->nkv * sizeof(float)) : NULL;
    h->ref = malloc(h->nx * sizeof(float));
    if (!h->x || (c->M && !h->kv) || !h->ref) {
        snprintf(msg, n, "host allocation failed");
        return 0;
    }
    test_fill_uniform(h->x, h->nx, amp, &rng);
    if (c->M)
        test_fill_uniform(h->kv, h->nkv, amp, &rng);
    for (int i = 0; i < 4; i++) {
        h->w[i] = malloc(h->nw[i] * sizeof(float));
        if (!h->w[i]) {
            snprintf(msg, n, "host allocation failed");
            return 0;
        }
        test_fill_uniform(h->w[i], h->nw[i], (float)(1.0 / sqrt((double)c->E)), &rng);
        if (c->bias & (1 << i)) {
            h->b[i] = malloc(h->nb[i] * sizeof(float));
            if (!h->b[i]) {
                snprintf(msg, n, "host allocation failed");
                return 0;
            }
            test_fill_uniform(h->b[i], h->nb[i], 0.5f, &rng);
        }
    }
    hw = (clattn_mha_host_weights){h->w[0], h->w[1], h->w[2], h->w[3], h->b[0], h->b[1], h->b[2], h->b[3]};
    memset(h->ref, POISON, h->nx * sizeof(float));
    st = clattn_mha_reference(&d, c->B, c->N, c->M, &hw, h->x, h->kv, h->ref);
    if (st != CLATTN_SUCCESS) {
        snprintf(msg, n, "reference failed: %s", clattn_status_name(st));
        return 0;
    }
    return 1;
}

/* Device buffers of a case: x, kv, the parameters packed into one buffer
 * (each at its own offset, off pad elements before each) and y with off pad
 * elements before and CANARY after, all poisoned where not written. */
typedef struct dev_data {
    cl_mem x, kv, params, y;
    clattn_mha_weights w;
    size_t x_off, kv_off, y_off; /* bytes */
    size_t y_bytes;
} dev_data;

static void dev_free(dev_data *dv)
{
    cl_mem all[4] = {dv->x, dv->kv, dv->params, dv->y};
    for (int i = 0; i < 4; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    memset(dv, 0, sizeof *dv);
}

/* A buffer of pad poisoned floats, then n floats of data (or poison), then CANARY poisoned floats. */
static cl_mem padded(cl_context cl, cl_command_queue q, const float *data, size_t pad, size_t n, size_t *bytes)
{
    const size_t total = (pad + n + CANARY) * sizeof(float);
    unsigned char *tmp = malloc(total);
    cl_int err = CL_SUCCESS;
    cl_mem m;
    ck_assert_ptr_nonnull(tmp);
    memset(tmp, POISON, total);
    if (data)
        memcpy(tmp + pad * sizeof(float), data, n * sizeof(float));
    m = clCreateBuffer(cl, CL_MEM_READ_WRITE, total, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    ck_assert_int_eq(clEnqueueWriteBuffer(q, m, CL_TRUE, 0, total, tmp, 0, NULL, NULL), CL_SUCCESS);
    free(tmp);
    if (bytes)
        *bytes = total;
    return m;
}

static void dev_make(cl_context cl, cl_command_queue q, const mha_case *c, const host_data *h, dev_data *dv)
{
    const size_t pad = (size_t)c->offset;
    size_t total = 0, at = 0;
    float *packed;
    cl_mem *wm[8] = {&dv->w.wq, &dv->w.wk, &dv->w.wv, &dv->w.wo, &dv->w.bq, &dv->w.bk, &dv->w.bv, &dv->w.bo};
    size_t *wo[8] = {&dv->w.wq_offset, &dv->w.wk_offset, &dv->w.wv_offset, &dv->w.wo_offset,
                     &dv->w.bq_offset, &dv->w.bk_offset, &dv->w.bv_offset, &dv->w.bo_offset};
    memset(dv, 0, sizeof *dv);
    dv->x = padded(cl, q, h->x, pad, h->nx, NULL);
    dv->x_off = pad * sizeof(float);
    if (h->kv) {
        dv->kv = padded(cl, q, h->kv, pad, h->nkv, NULL);
        dv->kv_off = pad * sizeof(float);
    }
    dv->y = padded(cl, q, NULL, pad, h->nx, &dv->y_bytes);
    dv->y_off = pad * sizeof(float);
    for (int i = 0; i < 8; i++)
        total += pad + (i < 4 ? h->nw[i] : h->b[i - 4] ? h->nb[i - 4] : 0);
    packed = malloc(total * sizeof(float));
    ck_assert_ptr_nonnull(packed);
    memset(packed, POISON, total * sizeof(float));
    for (int i = 0; i < 8; i++) {
        const float *src = i < 4 ? h->w[i] : h->b[i - 4];
        const size_t n = i < 4 ? h->nw[i] : h->nb[i - 4];
        if (!src)
            continue;
        at += pad;
        memcpy(packed + at, src, n * sizeof(float));
        *wo[i] = at * sizeof(float);
        at += n;
    }
    dv->params = padded(cl, q, packed, 0, total, NULL);
    free(packed);
    for (int i = 0; i < 8; i++)
        if (i < 4 || h->b[i - 4])
            *wm[i] = dv->params;
}

static void poison_y(cl_command_queue q, const dev_data *dv)
{
    unsigned char *tmp = malloc(dv->y_bytes);
    ck_assert_ptr_nonnull(tmp);
    memset(tmp, POISON, dv->y_bytes);
    ck_assert_int_eq(clEnqueueWriteBuffer(q, dv->y, CL_TRUE, 0, dv->y_bytes, tmp, 0, NULL, NULL), CL_SUCCESS);
    free(tmp);
}

/* y read back: 1 complete and correct, 0 all poison; canaries must hold
 * either way; anything else (partial or wrong output) is reported in msg as -1. */
static int read_y(cl_command_queue q, const dev_data *dv, const host_data *h, int pad, float *out,
                  clattn_compare_result *cr, char *msg, size_t n)
{
    unsigned char *all = malloc(dv->y_bytes);
    const size_t pb = (size_t)pad * sizeof(float), yb = h->nx * sizeof(float);
    double atol, rtol, nmse;
    int rc;
    ck_assert_ptr_nonnull(all);
    ck_assert_int_eq(clFinish(q), CL_SUCCESS);
    ck_assert_int_eq(clEnqueueReadBuffer(q, dv->y, CL_TRUE, 0, dv->y_bytes, all, 0, NULL, NULL), CL_SUCCESS);
    if (!all_poison(all, pb) || !all_poison(all + pb + yb, CANARY * sizeof(float))) {
        snprintf(msg, n, "a canary around y was overwritten");
        free(all);
        return -1;
    }
    if (all_poison(all + pb, yb)) {
        free(all);
        return 0;
    }
    ck_assert_int_eq(clattn_tolerance(CLATTN_F32, &atol, &rtol, &nmse), CLATTN_SUCCESS);
    if (out)
        memcpy(out, all + pb, yb);
    *cr = clattn_compare_f32((const float *)(all + pb), h->ref, h->nx);
    rc = clattn_compare_ok(cr, atol, rtol, nmse) ? 1 : -1;
    if (rc < 0)
        snprintf(msg, n, "y differs from the reference: max err %.3g (allowed %.3g), NMSE %.3g, %zu non-finite "
                 "mismatches", cr->max_abs_err, atol + rtol * cr->max_abs_ref, cr->nmse, cr->nonfinite_mismatch);
    free(all);
    return rc;
}

typedef struct mha_result {
    int ok, skipped;
    double max_err, max_ref, nmse;
    clattn_variant variant;
    char msg[1024];
} mha_result;

static void run_mha_case(clattn_context *ctx, const mha_case *c, uint64_t seed, mha_result *r)
{
    host_data h;
    dev_data dv;
    cl_context cl;
    cl_command_queue q;
    clattn_mha *mha = NULL;
    clattn_mha_desc d = mha_desc(c);
    clattn_status st;
    clattn_compare_result cr;
    float *first = NULL, *again = NULL;
    int got;
    memset(r, 0, sizeof *r);
    memset(&dv, 0, sizeof dv);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(clattn_context_cl(ctx, &cl, NULL, &q), CLATTN_SUCCESS);
    if (!host_make(c, seed, &h, r->msg, sizeof r->msg))
        goto cleanup;
    st = clattn_mha_create(ctx, &d, c->B, c->N, c->M, &mha);
    if (st == CLATTN_ERROR_UNSUPPORTED || st == CLATTN_ERROR_NO_VARIANT) {
        r->skipped = 1;
        snprintf(r->msg, sizeof r->msg, "skipped: %s", clattn_context_last_error(ctx));
        goto cleanup;
    }
    if (st != CLATTN_SUCCESS) {
        snprintf(r->msg, sizeof r->msg, "create: %s: %s", clattn_status_name(st), clattn_context_last_error(ctx));
        goto cleanup;
    }
    r->variant = clattn_mha_variant(mha);
    dev_make(cl, q, c, &h, &dv);
    first = malloc(h.nx * sizeof(float));
    again = malloc(h.nx * sizeof(float));
    ck_assert(first && again);
    for (int rep = 0; rep < (c->repeat > 1 ? c->repeat : 1); rep++) {
        cl_event ev = NULL;
        poison_y(q, &dv);
        st = clattn_mha_run(mha, &dv.w, dv.x, dv.x_off, dv.kv, dv.kv_off, dv.y, dv.y_off, q, 0, NULL, &ev);
        if (st != CLATTN_SUCCESS) {
            snprintf(r->msg, sizeof r->msg, "run: %s: %s", clattn_status_name(st), clattn_context_last_error(ctx));
            goto cleanup;
        }
        ck_assert_ptr_nonnull(ev);
        ck_assert_int_eq(clWaitForEvents(1, &ev), CL_SUCCESS);
        clReleaseEvent(ev);
        got = read_y(q, &dv, &h, c->offset, rep ? again : first, &cr, r->msg, sizeof r->msg);
        if (got == 0)
            snprintf(r->msg, sizeof r->msg, "y not written");
        if (got != 1)
            goto cleanup;
        if (rep && memcmp(first, again, h.nx * sizeof(float)) != 0) {
            snprintf(r->msg, sizeof r->msg, "run %d differs bitwise from the first", rep + 1);
            goto cleanup;
        }
    }
    r->max_err = cr.max_abs_err;
    r->max_ref = cr.max_abs_ref;
    r->nmse = cr.nmse;
    r->ok = 1;
cleanup:
    free(first);
    free(again);
    clattn_mha_free(mha);
    dev_free(&dv);
    host_free(&h);
}

/* CLATTN_TEST_SUBSET=k: every k-th case (the sanitizer pass). */
static int subset_stride(void)
{
    const char *e = getenv("CLATTN_TEST_SUBSET");
    const int k = e ? atoi(e) : 1;
    return k > 1 ? k : 1;
}

static void run_cases(const char *label, const mha_case *cases, int n)
{
    clattn_context *ctx = test_context();
    const uint64_t seed = test_seed();
    int ran = 0, bad = 0, skipped = 0;
    double worst = 0.0, worst_rel = 0.0, worst_nmse = 0.0;
    char buf[256];
    const double t0 = test_now_s();
    ck_assert_ptr_nonnull(ctx);
    for (int i = 0; i < n; i++) {
        mha_result r;
        if (i % subset_stride() != 0)
            continue;
        ran++;
        run_mha_case(ctx, &cases[i], seed + 7919u * (uint64_t)i, &r);
        if (r.skipped) {
            skipped++;
            printf("mha %s: SKIP %s: %s\n", label, mha_str(&cases[i], buf, sizeof buf), r.msg);
            continue;
        }
        if (!r.ok) {
            bad++;
            printf("mha %s: FAIL %s (seed %llu): %s\n", label, mha_str(&cases[i], buf, sizeof buf),
                   (unsigned long long)(seed + 7919u * (uint64_t)i), r.msg);
            continue;
        }
        worst = fmax(worst, r.max_err);
        worst_rel = fmax(worst_rel, r.max_ref > 0 ? r.max_err / r.max_ref : 0);
        worst_nmse = fmax(worst_nmse, r.nmse);
    }
    printf("mha %s: %d cases, %d failed, %d skipped; worst max|y err| %.2g (%.2g of max|y|), NMSE %.2g; %.1f s\n",
           label, ran, bad, skipped, worst, worst_rel, worst_nmse, test_now_s() - t0);
    ck_assert_msg(bad == 0, "mha %s: %d of %d cases failed", label, bad, ran);
    ck_assert_msg(ran - skipped > 0, "mha %s: no case ran", label);
}

/* ---- correctness */

START_TEST(layer_shapes)
{
    static const mha_case cases[] = {
        /* self-attention, plain and with every bias */
        {.B = 2, .N = 33, .E = 64, .H = 4},
        {.B = 3, .N = 37, .E = 72, .H = 3, .causal = 1, .bias = BIAS_ALL},
        /* cross-attention, the odd shape */
        {.B = 2, .N = 37, .M = 53, .E = 72, .H = 3, .bias = BIAS_ALL},
        {.B = 1, .N = 37, .M = 53, .E = 72, .H = 3, .causal = 1, .rope = 10000},
        /* GQA and MQA, causal, RoPE */
        {.B = 2, .N = 29, .E = 64, .H = 8, .Hkv = 2, .causal = 1, .rope = 10000, .bias = BIAS_ALL},
        {.B = 1, .N = 17, .M = 40, .E = 48, .H = 6, .Hkv = 1, .causal = 1, .rope = 500},
        {.B = 2, .N = 53, .M = 37, .E = 72, .H = 6, .Hkv = 2, .causal = 1, .rope = 10000, .bias = BIAS_ALL},
        {.B = 3, .N = 23, .E = 96, .H = 12, .Hkv = 4, .rope = 10000, .bias = BIAS_ALL},
        /* odd head dims (no RoPE), Dh = 1, Dh = 256 */
        {.B = 2, .N = 11, .M = 19, .E = 45, .H = 3, .causal = 1, .bias = BIAS_ALL},
        {.B = 1, .N = 13, .E = 5, .H = 5, .Hkv = 1, .bias = BIAS_ALL},
        {.B = 1, .N = 9, .M = 12, .E = 256, .H = 1, .causal = 1, .rope = 10000, .bias = BIAS_ALL},
        /* some biases only */
        {.B = 2, .N = 19, .E = 32, .H = 2, .bias = BIAS_Q | BIAS_O},
        {.B = 2, .N = 19, .M = 7, .E = 32, .H = 4, .Hkv = 2, .rope = 10000, .bias = BIAS_K | BIAS_V},
        /* one query, one key; one query against many keys (the scheduler's split-KV choice) */
        {.B = 1, .N = 1, .E = 16, .H = 2, .causal = 1, .rope = 10000, .bias = BIAS_ALL},
        {.B = 2, .N = 1, .M = 1100, .E = 64, .H = 4, .Hkv = 1, .rope = 10000, .bias = BIAS_ALL},
        /* long RoPE positions */
        {.B = 1, .N = 300, .M = 517, .E = 32, .H = 2, .causal = 1, .rope = 10000, .bias = BIAS_ALL},
        /* scaled inputs */
        {.B = 2, .N = 37, .M = 53, .E = 72, .H = 3, .rope = 10000, .bias = BIAS_ALL, .in_scale = 5},
        /* parameters packed in one buffer at offsets, x, kv and y at offsets; bitwise repeatable */
        {.B = 2, .N = 21, .M = 30, .E = 40, .H = 4, .Hkv = 2, .causal = 1, .rope = 10000, .bias = BIAS_ALL,
         .offset = 5, .repeat = 3},
        {.B = 1, .N = 21, .E = 40, .H = 4, .bias = BIAS_Q | BIAS_V, .offset = 3},
    };
    run_cases("shapes", cases, (int)(sizeof cases / sizeof cases[0]));
}
END_TEST

/* Every core variant on a cross, a self GQA and a few-queries MQA layer
 * (unsupported ones skipped with the reason). */
START_TEST(layer_variants)
{
    mha_case cases[3 * (CLATTN_VARIANT_COUNT_ - 1)];
    int n = 0;
    for (int v = CLATTN_VARIANT_NAIVE; v < CLATTN_VARIANT_COUNT_; v++) {
        cases[n++] = (mha_case){.B = 2, .N = 37, .M = 53, .E = 72, .H = 3, .causal = 1, .rope = 10000,
                                .bias = BIAS_ALL, .variant = (clattn_variant)v};
        cases[n++] = (mha_case){.B = 2, .N = 29, .E = 64, .H = 8, .Hkv = 2, .causal = 1, .rope = 10000,
                                .bias = BIAS_Q | BIAS_K, .variant = (clattn_variant)v};
        /* few queries, many keys: what decode is for */
        cases[n++] = (mha_case){.B = 2, .N = 7, .M = 300, .E = 48, .H = 4, .Hkv = 1, .rope = 10000,
                                .bias = BIAS_ALL, .variant = (clattn_variant)v};
    }
    run_cases("variants", cases, n);
}
END_TEST

/* The reference itself on a case small enough to work out by hand: one
 * head, E = 2, identity weights, no RoPE: y = softmax(x x^T / sqrt 2) x. */
START_TEST(reference_by_hand)
{
    const float I[4] = {1, 0, 0, 1};
    const float x[6] = {1, 0, 0, 1, 1, 1};
    float y[6], bo[2] = {0.25f, -0.5f};
    clattn_mha_desc d;
    clattn_mha_host_weights w = {I, I, I, I, NULL, NULL, NULL, bo};
    memset(&d, 0, sizeof d);
    d.embed_dim = 2;
    d.heads = 1;
    d.causal = 1;
    ck_assert_int_eq(clattn_mha_reference(&d, 1, 3, 0, &w, x, NULL, y), CLATTN_SUCCESS);
    for (int i = 0; i < 3; i++) {
        double s[3], m = -INFINITY, l = 0, acc[2] = {0, 0};
        for (int j = 0; j <= i; j++) {
            s[j] = (x[2 * i] * x[2 * j] + x[2 * i + 1] * x[2 * j + 1]) / sqrt(2.0);
            m = fmax(m, s[j]);
        }
        for (int j = 0; j <= i; j++) {
            const double p = exp(s[j] - m);
            l += p;
            acc[0] += p * x[2 * j];
            acc[1] += p * x[2 * j + 1];
        }
        for (int c = 0; c < 2; c++)
            ck_assert_msg(fabs(y[2 * i + c] - (acc[c] / l + bo[c])) < 1e-6, "y[%d,%d] = %g, expected %g", i, c,
                          (double)y[2 * i + c], acc[c] / l + bo[c]);
    }
    /* RoPE at position 0 is the identity, and rotating q and k alike by the
     * same angle keeps q.k: for N = 1 the output does not depend on RoPE. */
    {
        float y0[2], y1[2];
        d.rope_base = 10000;
        ck_assert_int_eq(clattn_mha_reference(&d, 1, 1, 0, &w, x + 4, NULL, y1), CLATTN_SUCCESS);
        d.rope_base = 0;
        ck_assert_int_eq(clattn_mha_reference(&d, 1, 1, 0, &w, x + 4, NULL, y0), CLATTN_SUCCESS);
        ck_assert(y0[0] == y1[0] && y0[1] == y1[1]);
    }
    /* With RoPE, a query at position 1 rotated by angle 1 (Dh = 2: theta_0 = 1). */
    {
        const float xk[4] = {1, 0, 0, 1}; /* keys/values at positions 0 and 1 */
        const float xq[2] = {0, 0};
        const float Wz[4] = {0, 0, 0, 0};
        float yr[2];
        clattn_mha_host_weights w2 = {Wz, I, I, I, NULL, NULL, NULL, NULL};
        /* q = 0: uniform softmax over the two rotated values: mean of v_0 = (1, 0) and
         * v_1 = (0, 1) (v is not rotated) = (0.5, 0.5). */
        d.rope_base = 10000;
        d.causal = 0;
        ck_assert_int_eq(clattn_mha_reference(&d, 1, 1, 2, &w2, xq, xk, yr), CLATTN_SUCCESS);
        ck_assert(fabs(yr[0] - 0.5) < 1e-7 && fabs(yr[1] - 0.5) < 1e-7);
        /* q = k_1 unrotated at position 0 vs k rotated: with bq making q = (0, 1) at position 0
         * and key 1 = (0, 1) rotated by 1 rad -> (-sin 1, cos 1), key 0 = (1, 0) unrotated:
         * scores s0 = 0, s1 = cos(1) / sqrt(2). */
        {
            const float bq[2] = {0, 1};
            clattn_mha_host_weights w3 = {Wz, I, I, I, bq, NULL, NULL, NULL};
            const double s1 = cos(1.0) / sqrt(2.0), p0 = 1 / (1 + exp(s1)), p1 = 1 - p0;
            ck_assert_int_eq(clattn_mha_reference(&d, 1, 1, 2, &w3, xq, xk, yr), CLATTN_SUCCESS);
            ck_assert_msg(fabs(yr[0] - p0) < 1e-7 && fabs(yr[1] - p1) < 1e-7, "RoPE: y = (%g, %g), expected (%g, %g)",
                          (double)yr[0], (double)yr[1], p0, p1);
        }
    }
}
END_TEST

/* ---- validation */

typedef struct bad_desc {
    const char *what;
    clattn_mha_desc d;
    int64_t B, N, M;
    clattn_status expect;
    const char *names; /* the argument the message must name */
} bad_desc;

START_TEST(validate_create)
{
    clattn_context *ctx = test_context();
    const clattn_mha_desc ok = {.embed_dim = 24, .heads = 4, .kv_heads = 2, .rope_base = 10000};
    bad_desc cases[] = {
        {"E = 0", ok, 1, 4, 0, CLATTN_ERROR_EMBED_DIM, "embed_dim"},
        {"E < 0", ok, 1, 4, 0, CLATTN_ERROR_EMBED_DIM, "embed_dim"},
        {"H = 0", ok, 1, 4, 0, CLATTN_ERROR_EMBED_DIM, "heads"},
        {"E % H", ok, 1, 4, 0, CLATTN_ERROR_EMBED_DIM, "embed_dim"},
        {"Hkv < 0", ok, 1, 4, 0, CLATTN_ERROR_HEAD_MISMATCH, "kv_heads"},
        {"H % Hkv", ok, 1, 4, 0, CLATTN_ERROR_HEAD_MISMATCH, "kv_heads"},
        {"Dh > 256", ok, 1, 4, 0, CLATTN_ERROR_HEAD_DIM, "embed_dim"},
        {"B = 0", ok, 0, 4, 0, CLATTN_ERROR_INVALID_SHAPE, "B"},
        {"N = 0", ok, 1, 0, 0, CLATTN_ERROR_INVALID_SHAPE, "N"},
        {"N < 0", ok, 1, -3, 0, CLATTN_ERROR_INVALID_SHAPE, "N"},
        {"M < 0", ok, 1, 4, -1, CLATTN_ERROR_INVALID_SHAPE, "M"},
        {"rope NaN", ok, 1, 4, 0, CLATTN_ERROR_INVALID_ROPE, "rope_base"},
        {"rope < 0", ok, 1, 4, 0, CLATTN_ERROR_INVALID_ROPE, "rope_base"},
        {"rope inf", ok, 1, 4, 0, CLATTN_ERROR_INVALID_ROPE, "rope_base"},
        {"rope, odd Dh", ok, 1, 4, 0, CLATTN_ERROR_INVALID_ROPE, "rope_base"},
        {"f16", ok, 1, 4, 0, CLATTN_ERROR_INVALID_DTYPE, "dtype"},
        {"variant", ok, 1, 4, 0, CLATTN_ERROR_INVALID_ENUM, "variant"},
        {"scale NaN", ok, 1, 4, 0, CLATTN_ERROR_INVALID_SCALE, "scale"},
        {"overflow", ok, INT64_MAX / 2, 4, 0, CLATTN_ERROR_SIZE_OVERFLOW, "B"},
    };
    const int n = (int)(sizeof cases / sizeof cases[0]);
    clattn_mha *mha;
    float y[4] = {1, 2, 3, 4};
    ck_assert_ptr_nonnull(ctx);
    cases[1].d.embed_dim = -8;
    cases[2].d.heads = 0;
    cases[3].d.embed_dim = 26;
    cases[4].d.kv_heads = -1;
    cases[5].d.kv_heads = 3;
    cases[6].d.embed_dim = 257 * 4;
    cases[6].d.rope_base = 0;
    cases[11].d.rope_base = NAN;
    cases[12].d.rope_base = -1;
    cases[13].d.rope_base = INFINITY;
    cases[14].d.embed_dim = 12; /* Dh = 3 */
    cases[15].d.dtype = CLATTN_F16;
    cases[16].d.variant = (clattn_variant)99;
    cases[17].d.scale = NAN;
    cases[0].d.embed_dim = 0;
    for (int i = 0; i < n; i++) {
        const bad_desc *c = &cases[i];
        const float I[1] = {0};
        const clattn_mha_host_weights hw = {I, I, I, I, NULL, NULL, NULL, NULL};
        clattn_status st;
        mha = (clattn_mha *)&st;
        st = clattn_mha_create(ctx, &c->d, c->B, c->N, c->M, &mha);
        ck_assert_msg(st == c->expect, "%s: create gave %s, expected %s (%s)", c->what, clattn_status_name(st),
                      clattn_status_name(c->expect), clattn_context_last_error(ctx));
        ck_assert_msg(mha == NULL, "%s: *out not NULL after a failure", c->what);
        ck_assert_msg(strstr(clattn_context_last_error(ctx), c->names) != NULL, "%s: message '%s' does not name %s",
                      c->what, clattn_context_last_error(ctx), c->names);
        /* The reference validates alike (before touching any array) and leaves y alone. */
        st = clattn_mha_reference(&c->d, c->B, c->N, c->M, &hw, I, NULL, y);
        ck_assert_msg(st == c->expect, "%s: reference gave %s, expected %s", c->what, clattn_status_name(st),
                      clattn_status_name(c->expect));
        ck_assert(y[0] == 1 && y[3] == 4);
    }
    /* NULL arguments */
    ck_assert_int_eq(clattn_mha_create(NULL, &ok, 1, 4, 0, &mha), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert_int_eq(clattn_mha_create(ctx, NULL, 1, 4, 0, &mha), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert(strstr(clattn_context_last_error(ctx), "desc") != NULL);
    ck_assert_int_eq(clattn_mha_create(ctx, &ok, 1, 4, 0, NULL), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert(strstr(clattn_context_last_error(ctx), "out") != NULL);
    ck_assert_int_eq(clattn_mha_reference(NULL, 1, 4, 0, NULL, NULL, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT);
    {
        const float I[1] = {0};
        const clattn_mha_host_weights none = {NULL, I, I, I, NULL, NULL, NULL, NULL};
        const clattn_mha_host_weights hw = {I, I, I, I, NULL, NULL, NULL, NULL};
        ck_assert_int_eq(clattn_mha_reference(&ok, 1, 4, 0, NULL, y, NULL, y), CLATTN_ERROR_NULL_ARGUMENT);
        ck_assert_int_eq(clattn_mha_reference(&ok, 1, 4, 0, &none, y, NULL, y), CLATTN_ERROR_NULL_ARGUMENT);
        ck_assert_int_eq(clattn_mha_reference(&ok, 1, 4, 0, &hw, NULL, NULL, y), CLATTN_ERROR_NULL_ARGUMENT);
        ck_assert_int_eq(clattn_mha_reference(&ok, 1, 4, 0, &hw, y, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT);
        ck_assert_int_eq(clattn_mha_reference(&ok, 1, 4, 3, &hw, y, NULL, y), CLATTN_ERROR_NULL_ARGUMENT);
        ck_assert_int_eq(clattn_mha_reference(&ok, 1, 4, 0, &hw, y, y, y), CLATTN_ERROR_INVALID_VALUE);
    }
    /* NULL handles elsewhere are harmless */
    clattn_mha_free(NULL);
    ck_assert_uint_eq(clattn_mha_device_bytes(NULL), 0);
    ck_assert_int_eq(clattn_mha_variant(NULL), CLATTN_VARIANT_AUTO);
    ck_assert_int_eq(clattn_mha_run(NULL, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, NULL),
                     CLATTN_ERROR_NULL_ARGUMENT);
}
END_TEST

/* Every validation branch of a run: its own status, the argument named, y
 * untouched, and the next valid run correct. */
START_TEST(validate_run)
{
    clattn_context *ctx = test_context();
    const mha_case c = {.B = 2, .N = 6, .M = 5, .E = 8, .H = 2, .Hkv = 1, .causal = 1, .rope = 100,
                        .bias = BIAS_ALL, .offset = 2};
    clattn_mha_desc d = mha_desc(&c);
    clattn_mha *mha = NULL, *self = NULL;
    host_data h;
    dev_data dv;
    cl_context cl;
    cl_command_queue q;
    cl_mem small;
    cl_int err;
    char msg[256];
    clattn_compare_result cr;
    cl_event ev = NULL;
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(clattn_context_cl(ctx, &cl, NULL, &q), CLATTN_SUCCESS);
    ck_assert_msg(host_make(&c, test_seed(), &h, msg, sizeof msg), "%s", msg);
    dev_make(cl, q, &c, &h, &dv);
    ck_assert_int_eq(clattn_mha_create(ctx, &d, c.B, c.N, c.M, &mha), CLATTN_SUCCESS);
    d.rope_base = 0;
    ck_assert_int_eq(clattn_mha_create(ctx, &d, c.B, c.N, 0, &self), CLATTN_SUCCESS);
    ck_assert_uint_gt(clattn_mha_device_bytes(mha), (size_t)(2 * c.B * c.N * c.E * 4));
    small = clCreateBuffer(cl, CL_MEM_READ_WRITE, 4 * sizeof(float) * 3, NULL, &err); /* 12 floats: too small for all */
    ck_assert_int_eq(err, CL_SUCCESS);

    for (int i = 0;; i++) {
        clattn_mha_weights w = dv.w;
        cl_mem x = dv.x, kv = dv.kv, y = dv.y;
        size_t xo = dv.x_off, kvo = dv.kv_off, yo = dv.y_off;
        clattn_mha *layer = mha;
        cl_uint nwait = 0;
        const cl_event *wait = NULL;
        clattn_status expect, st;
        const char *name;
        cl_mem *wm[8] = {&w.wq, &w.wk, &w.wv, &w.wo, &w.bq, &w.bk, &w.bv, &w.bo};
        static const char *const wn[8] = {"wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"};
        const clattn_mha_weights *wp = &w;
        if (i < 4) { /* a required weight missing */
            *wm[i] = NULL, expect = CLATTN_ERROR_NULL_ARGUMENT, name = wn[i];
        } else if (i < 12) { /* each parameter in a buffer too small */
            *wm[i - 4] = small, expect = CLATTN_ERROR_BUFFER_TOO_SMALL, name = wn[i - 4];
        } else if (i < 20) { /* each parameter misaligned */
            size_t *off[8] = {&w.wq_offset, &w.wk_offset, &w.wv_offset, &w.wo_offset,
                              &w.bq_offset, &w.bk_offset, &w.bv_offset, &w.bo_offset};
            *off[i - 12] += 2, expect = CLATTN_ERROR_MISALIGNED, name = wn[i - 12];
        } else {
            switch (i) {
            case 20: wp = NULL, expect = CLATTN_ERROR_NULL_ARGUMENT, name = "weights"; break;
            case 21: x = NULL, expect = CLATTN_ERROR_NULL_ARGUMENT, name = "x"; break;
            case 22: y = NULL, expect = CLATTN_ERROR_NULL_ARGUMENT, name = "y"; break;
            case 23: kv = NULL, expect = CLATTN_ERROR_NULL_ARGUMENT, name = "kv"; break;
            case 24: layer = self, expect = CLATTN_ERROR_INVALID_VALUE, name = "kv"; break;
            case 25: x = small, expect = CLATTN_ERROR_BUFFER_TOO_SMALL, name = "x"; break;
            case 26: kv = small, expect = CLATTN_ERROR_BUFFER_TOO_SMALL, name = "kv"; break;
            case 27: y = small, expect = CLATTN_ERROR_BUFFER_TOO_SMALL, name = "y"; break;
            case 28: xo += 4 * 1000, expect = CLATTN_ERROR_BUFFER_TOO_SMALL, name = "x"; break;
            case 29: yo += 1, expect = CLATTN_ERROR_MISALIGNED, name = "y"; break;
            case 30: kvo += 3, expect = CLATTN_ERROR_MISALIGNED, name = "kv"; break;
            case 31: x = dv.y, xo = dv.y_off, expect = CLATTN_ERROR_ALIASING, name = "x"; break;
            case 32: kv = dv.y, kvo = 0, expect = CLATTN_ERROR_ALIASING, name = "kv"; break;
            case 33: w.wo = dv.y, w.wo_offset = dv.y_off + 4 * (size_t)(c.B * c.N * c.E - 1),
                     expect = CLATTN_ERROR_ALIASING, name = "wo"; break;
            case 34: y = dv.params, yo = 0, expect = CLATTN_ERROR_ALIASING, name = "y"; break;
            case 35: nwait = 1, expect = CLATTN_ERROR_INVALID_VALUE, name = "wait"; break;
            case 36: wait = &ev, expect = CLATTN_ERROR_INVALID_VALUE, name = "wait"; break;
            default: expect = CLATTN_SUCCESS, name = NULL; break;
            }
        }
        if (!name)
            break;
        poison_y(q, &dv);
        st = clattn_mha_run(layer, wp, x, xo, kv, kvo, y, yo, q, nwait, wait, NULL);
        ck_assert_msg(st == expect, "case %d (%s): got %s, expected %s: %s", i, name, clattn_status_name(st),
                      clattn_status_name(expect), clattn_context_last_error(ctx));
        ck_assert_msg(strstr(clattn_context_last_error(ctx), name) != NULL, "case %d: message '%s' does not name %s",
                      i, clattn_context_last_error(ctx), name);
        ck_assert_msg(read_y(q, &dv, &h, c.offset, NULL, &cr, msg, sizeof msg) == 0, "case %d (%s): y written", i,
                      name);
    }
    /* After all that, a valid run is correct, with a wait list this time. */
    {
        cl_event dep = clCreateUserEvent(cl, &err);
        ck_assert_int_eq(err, CL_SUCCESS);
        ck_assert_int_eq(clSetUserEventStatus(dep, CL_COMPLETE), CL_SUCCESS);
        poison_y(q, &dv);
        ck_assert_int_eq(clattn_mha_run(mha, &dv.w, dv.x, dv.x_off, dv.kv, dv.kv_off, dv.y, dv.y_off, NULL, 1, &dep,
                                        &ev),
                         CLATTN_SUCCESS);
        ck_assert_int_eq(clWaitForEvents(1, &ev), CL_SUCCESS);
        clReleaseEvent(ev);
        clReleaseEvent(dep);
        ck_assert_msg(read_y(q, &dv, &h, c.offset, NULL, &cr, msg, sizeof msg) == 1, "%s", msg);
    }
    clReleaseMemObject(small);
    clattn_mha_free(mha);
    clattn_mha_free(self);
    dev_free(&dv);
    host_free(&h);
}
END_TEST

/* ---- faults: the test's own cl_context, adopted, so leaks show in its reference count */

static const cl_int fault_codes[] = {
    CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_OUT_OF_RESOURCES,     CL_OUT_OF_HOST_MEMORY,
    CL_BUILD_PROGRAM_FAILURE,         CL_INVALID_COMMAND_QUEUE, (cl_int)CLATTN_CL_PLATFORM_NOT_FOUND_KHR,
};
enum { NCODES = sizeof fault_codes / sizeof fault_codes[0] };

static struct fx {
    cl_context cl;
    cl_device_id dev;
    cl_command_queue q;
    cl_event dep; /* a completed user event every run waits for: the barrier is swept too */
    clattn_context *ctx;
    mha_case c;
    host_data h;
    dev_data dv;
    cl_uint base_refs;
} F;

static clattn_context *fx_adopt(void)
{
    clattn_context *ctx = NULL;
    ck_assert_int_eq(clattn_context_adopt(F.cl, F.dev, F.q, &ctx), CLATTN_SUCCESS);
    return ctx;
}

static clattn_status fx_run(clattn_mha *mha, cl_event *ev)
{
    return clattn_mha_run(mha, &F.dv.w, F.dv.x, F.dv.x_off, F.dv.kv, F.dv.kv_off, F.dv.y, F.dv.y_off, F.q, 1, &F.dep,
                          ev);
}

/* Run mha and require a correct y. */
static void fx_run_ok(clattn_mha *mha, const char *what)
{
    clattn_compare_result cr;
    char msg[256];
    clattn_status st;
    poison_y(F.q, &F.dv);
    st = fx_run(mha, NULL);
    ck_assert_msg(st == CLATTN_SUCCESS, "%s: run: %s: %s", what, clattn_status_name(st),
                  clattn_context_last_error(F.ctx));
    ck_assert_msg(read_y(F.q, &F.dv, &F.h, F.c.offset, NULL, &cr, msg, sizeof msg) == 1, "%s: %s", what, msg);
}

static void fx_setup(void)
{
    unsigned pi = 0, di = 0;
    cl_platform_id plats[64];
    cl_device_id devs[64];
    cl_uint np = 0, nd = 0;
    cl_int err = CL_SUCCESS;
    char msg[256];
    clattn_mha *mha = NULL;
    clattn_mha_desc d;
    clattn__fault_inject(0, 0);
    memset(&F, 0, sizeof F);
    ck_assert_int_eq(clattn_device_select(NULL, &pi, &di), CLATTN_SUCCESS);
    ck_assert_int_eq(clGetPlatformIDs(64, plats, &np), CL_SUCCESS);
    ck_assert_int_eq(clGetDeviceIDs(plats[pi], CL_DEVICE_TYPE_ALL, 64, devs, &nd), CL_SUCCESS);
    F.dev = devs[di];
    F.cl = clCreateContext(NULL, 1, &F.dev, NULL, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    F.q = clCreateCommandQueue(F.cl, F.dev, 0, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    F.dep = clCreateUserEvent(F.cl, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    ck_assert_int_eq(clSetUserEventStatus(F.dep, CL_COMPLETE), CL_SUCCESS);
    /* Cross-attention with GQA, causal, RoPE and every bias: every command a run can make. */
    F.c = (mha_case){.B = 2, .N = 5, .M = 7, .E = 16, .H = 4, .Hkv = 2, .causal = 1, .rope = 10000,
                     .bias = BIAS_ALL, .offset = 1};
    ck_assert_msg(host_make(&F.c, test_seed() ^ 0x3a5, &F.h, msg, sizeof msg), "%s", msg);
    dev_make(F.cl, F.q, &F.c, &F.h, &F.dv);
    F.ctx = fx_adopt();
    /* Warm-up: CLBlast compiles and caches its kernels on this cl_context;
     * the baseline count includes what its cache holds. */
    d = mha_desc(&F.c);
    ck_assert_int_eq(clattn_mha_create(F.ctx, &d, F.c.B, F.c.N, F.c.M, &mha), CLATTN_SUCCESS);
    fx_run_ok(mha, "warm-up");
    clattn_mha_free(mha);
    clattn_context_free(F.ctx);
    F.ctx = NULL;
    F.base_refs = test_ctx_refs_stable(F.cl, NULL);
}

static void fx_teardown(void)
{
    clattn__fault_inject(0, 0);
    clattn_context_free(F.ctx);
    dev_free(&F.dv);
    host_free(&F.h);
    if (F.dep)
        clReleaseEvent(F.dep);
    if (F.q)
        clReleaseCommandQueue(F.q);
    if (F.cl)
        clReleaseContext(F.cl);
    memset(&F, 0, sizeof F);
}

static void assert_no_leak(const char *what)
{
    const cl_uint c = test_ctx_refs_settled(F.cl, NULL, F.base_refs);
    ck_assert_msg(c == F.base_refs, "%s: cl_context reference count %u, baseline %u: an OpenCL object leaked", what, c,
                  F.base_refs);
}

static void assert_failure(clattn_status st, cl_int code, const char *what)
{
    ck_assert_msg(st == clattn_status_from_cl(code) || st == CLATTN_ERROR_OUT_OF_HOST_MEMORY ||
                      (code == CL_BUILD_PROGRAM_FAILURE && st == CLATTN_ERROR_BUILD),
                  "%s: injected %s, got %s (%s)", what, clattn_status_name(clattn_status_from_cl(code)),
                  clattn_status_name(st), clattn_context_last_error(F.ctx));
    ck_assert_msg(clattn_context_last_error(F.ctx)[0] != '\0', "%s: failed with no message", what);
}

/* clattn_mha_create on a fresh context (programs from the disk cache) with
 * call n failing, for every call it makes and every code. */
START_TEST(faults_create)
{
    clattn_mha_desc d;
    clattn_mha *mha = NULL;
    long calls, failed = 0, tolerated = 0;
    const double t0 = test_now_s();
    fx_setup();
    d = mha_desc(&F.c);
    F.ctx = fx_adopt();
    clattn__fault_inject(0, 0);
    ck_assert_int_eq(clattn_mha_create(F.ctx, &d, F.c.B, F.c.N, F.c.M, &mha), CLATTN_SUCCESS);
    calls = clattn__fault_calls();
    clattn_mha_free(mha);
    clattn_context_free(F.ctx);
    F.ctx = NULL;
    ck_assert_int_gt(calls, 0);
    for (long n = 1; n <= calls; n++)
        for (int ci = 0; ci < NCODES; ci++) {
            char what[128];
            clattn_status st;
            snprintf(what, sizeof what, "clattn_mha_create, call %ld failing with %s", n,
                     clattn_status_name(clattn_status_from_cl(fault_codes[ci])));
            F.ctx = fx_adopt();
            mha = (clattn_mha *)&st;
            clattn__fault_inject(n, fault_codes[ci]);
            st = clattn_mha_create(F.ctx, &d, F.c.B, F.c.N, F.c.M, &mha);
            ck_assert_msg(clattn__fault_calls() >= n, "%s: not reached: create's calls vary", what);
            clattn__fault_inject(0, 0);
            if (st == CLATTN_SUCCESS) {
                tolerated++;
                ck_assert_ptr_nonnull(mha);
            } else {
                failed++;
                assert_failure(st, fault_codes[ci], what);
                ck_assert_ptr_null(mha);
                /* the next call on the same context succeeds */
                st = clattn_mha_create(F.ctx, &d, F.c.B, F.c.N, F.c.M, &mha);
                ck_assert_msg(st == CLATTN_SUCCESS, "%s: create after the fault: %s: %s", what,
                              clattn_status_name(st), clattn_context_last_error(F.ctx));
            }
            fx_run_ok(mha, what);
            clattn_mha_free(mha);
            clattn_context_free(F.ctx);
            F.ctx = NULL;
            assert_no_leak(what);
        }
    printf("mha faults: clattn_mha_create, %ld calls x %d codes: %ld failed cleanly, %ld tolerated (result verified), "
           "%.1f s\n", calls, NCODES, failed, tolerated, test_now_s() - t0);
    ck_assert_int_eq(failed + tolerated, calls * NCODES);
    ck_assert_int_gt(failed, 0);
    fx_teardown();
}
END_TEST

/* clattn_mha_run with call n failing: a failed run returns no event and
 * leaves y all poison, a tolerated one completes it, and the next run is
 * correct. CLBlast's own codes at its four calls map as the gemm variant
 * maps them, with the code in the last-error text. */
START_TEST(faults_run)
{
    static const struct {
        cl_int code;
        clattn_status expect;
    } blas_codes[] = {
        {CL_MEM_OBJECT_ALLOCATION_FAILURE, CLATTN_CL_MEM_OBJECT_ALLOCATION_FAILURE},
        {-1024 /* CLBlastNotImplemented */, CLATTN_ERROR_UNSUPPORTED},
        {-1017 /* CLBlastInvalidDimension */, CLATTN_ERROR_INTERNAL},
        {-2041 /* CLBlastDatabaseError */, CLATTN_ERROR_UNSUPPORTED},
        {-2046 /* CLBlastInvalidLocalMemUsage */, CLATTN_ERROR_UNSUPPORTED},
        {-2047 /* CLBlastMissingOverrideParameter */, CLATTN_ERROR_INVALID_VALUE},
        {-2040 /* CLBlastUnknownError */, CLATTN_ERROR_INTERNAL},
    };
    clattn_mha_desc d;
    clattn_mha *mha = NULL;
    long calls, failed = 0, tolerated = 0, blas_at[16];
    int nblas = 0;
    const double t0 = test_now_s();
    fx_setup();
    d = mha_desc(&F.c);
    F.ctx = fx_adopt();
    ck_assert_int_eq(clattn_mha_create(F.ctx, &d, F.c.B, F.c.N, F.c.M, &mha), CLATTN_SUCCESS);
    poison_y(F.q, &F.dv);
    clattn__fault_inject(0, 0);
    ck_assert_int_eq(fx_run(mha, NULL), CLATTN_SUCCESS);
    calls = clattn__fault_calls();
    fx_run_ok(mha, "count");
    for (long n = 1; n <= calls; n++)
        for (int ci = 0; ci < NCODES; ci++) {
            char what[128], msg[256];
            clattn_compare_result cr;
            cl_event ev = NULL;
            clattn_status st;
            int state;
            snprintf(what, sizeof what, "clattn_mha_run, call %ld failing with %s", n,
                     clattn_status_name(clattn_status_from_cl(fault_codes[ci])));
            poison_y(F.q, &F.dv);
            clattn__fault_inject(n, fault_codes[ci]);
            st = fx_run(mha, &ev);
            ck_assert_msg(clattn__fault_calls() >= n, "%s: not reached: the run's calls vary", what);
            clattn__fault_inject(0, 0);
            if (st == CLATTN_SUCCESS) {
                tolerated++;
                ck_assert_ptr_nonnull(ev);
                ck_assert_int_eq(clWaitForEvents(1, &ev), CL_SUCCESS);
                clReleaseEvent(ev);
            } else {
                failed++;
                assert_failure(st, fault_codes[ci], what);
                ck_assert_msg(ev == NULL, "%s: a failed run returned an event", what);
                if (ci == 0 && strstr(clattn_context_last_error(F.ctx), "CLBlastSgemm")) {
                    ck_assert_int_lt(nblas, 16);
                    blas_at[nblas++] = n;
                }
            }
            state = read_y(F.q, &F.dv, &F.h, F.c.offset, NULL, &cr, msg, sizeof msg);
            ck_assert_msg(state == (st == CLATTN_SUCCESS), "%s: y %s after %s (%s)", what,
                          state == 0 ? "untouched" : state == 1 ? "written" : "damaged", clattn_status_name(st), msg);
            fx_run_ok(mha, what);
        }
    printf("mha faults: clattn_mha_run, %ld calls x %d codes: %ld failed cleanly, %ld tolerated (result verified)\n",
           calls, NCODES, failed, tolerated);
    ck_assert_int_eq(failed + tolerated, calls * NCODES);
    ck_assert_int_gt(failed, 0);
    ck_assert_msg(nblas == 4, "%d CLBlast calls failed a run, expected the 4 projections", nblas);
    for (size_t bc = 0; bc < sizeof blas_codes / sizeof blas_codes[0]; bc++)
        for (int i = 0; i < nblas; i++) {
            char text[64], msg[256];
            clattn_compare_result cr;
            cl_event ev = NULL;
            clattn_status st;
            const char *err;
            poison_y(F.q, &F.dv);
            clattn__fault_inject(blas_at[i], blas_codes[bc].code);
            st = fx_run(mha, &ev);
            clattn__fault_inject(0, 0);
            err = clattn_context_last_error(F.ctx);
            snprintf(text, sizeof text, "CLBlast error %d", (int)blas_codes[bc].code);
            ck_assert_msg(st == blas_codes[bc].expect, "CLBlast code %d at call %ld gave %s, expected %s (%s)",
                          (int)blas_codes[bc].code, blas_at[i], clattn_status_name(st),
                          clattn_status_name(blas_codes[bc].expect), err);
            ck_assert_msg(strstr(err, "CLBlastSgemm") && strstr(err, text), "'%s' lacks the CLBlast call or '%s'", err,
                          text);
            ck_assert(ev == NULL);
            ck_assert_int_eq(read_y(F.q, &F.dv, &F.h, F.c.offset, NULL, &cr, msg, sizeof msg), 0);
            fx_run_ok(mha, "after a CLBlast error");
        }
    printf("mha faults: %zu CLBlast codes at each of the %d CLBlast calls: mapped as expected; %.1f s\n",
           sizeof blas_codes / sizeof blas_codes[0], nblas, test_now_s() - t0);
    clattn_mha_free(mha);
    clattn_context_free(F.ctx);
    F.ctx = NULL;
    assert_no_leak("clattn_mha_run sweep");
    fx_teardown();
}
END_TEST

/* The reference's host allocations failing: a clean status, y untouched. */
START_TEST(faults_reference)
{
    const mha_case c = {.B = 1, .N = 4, .M = 3, .E = 8, .H = 2, .causal = 1, .rope = 10000, .bias = BIAS_ALL};
    const clattn_mha_desc d = mha_desc(&c);
    host_data h;
    char msg[256];
    float y[32];
    long calls;
    clattn_mha_host_weights hw;
    ck_assert_msg(host_make(&c, test_seed(), &h, msg, sizeof msg), "%s", msg);
    hw = (clattn_mha_host_weights){h.w[0], h.w[1], h.w[2], h.w[3], h.b[0], h.b[1], h.b[2], h.b[3]};
    clattn__fault_inject(0, 0);
    ck_assert_int_eq(clattn_mha_reference(&d, c.B, c.N, c.M, &hw, h.x, h.kv, y), CLATTN_SUCCESS);
    calls = clattn__fault_calls();
    ck_assert_int_gt(calls, 0);
    for (long n = 1; n <= calls; n++) {
        clattn_status st;
        memset(y, POISON, sizeof y);
        clattn__fault_inject(n, CL_OUT_OF_HOST_MEMORY);
        st = clattn_mha_reference(&d, c.B, c.N, c.M, &hw, h.x, h.kv, y);
        clattn__fault_inject(0, 0);
        ck_assert_int_eq(st, CLATTN_ERROR_OUT_OF_HOST_MEMORY);
        ck_assert(all_poison(y, sizeof y));
    }
    ck_assert_int_eq(clattn_mha_reference(&d, c.B, c.N, c.M, &hw, h.x, h.kv, y), CLATTN_SUCCESS);
    ck_assert(memcmp(y, h.ref, h.nx * sizeof(float)) == 0);
    host_free(&h);
}
END_TEST

Suite *suite_mha(void)
{
    Suite *s = suite_create("mha");
    TCase *tc = tcase_create("layer");
    TCase *tv = tcase_create("validate");
    TCase *tf = tcase_create("faults");
    tcase_set_timeout(tc, 900);
    tcase_set_timeout(tv, 300);
    tcase_set_timeout(tf, 900);
    tcase_add_test(tc, reference_by_hand);
    tcase_add_test(tc, layer_shapes);
    tcase_add_test(tc, layer_variants);
    tcase_add_test(tv, validate_create);
    tcase_add_test(tv, validate_run);
    tcase_add_test(tf, faults_reference);
    tcase_add_test(tf, faults_create);
    tcase_add_test(tf, faults_run);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tv);
    suite_add_tcase(s, tf);
    return s;
}
