/*
 * test_kv.c - suite "kv": merging partial results (clattn_merge), paged K/V
 * read through a block table, the KV cache object, and the decode cases
 * test_decode.c leaves open (GQA 8:1 with several kv heads, alignment to each
 * sequence's key length, lengths 0 and 1, Nk = 32768).
 *
 * Every device result is compared with the CPU reference on fresh random
 * inputs (seed printed by the runner), outputs are poisoned with NaN bytes
 * before each call, and canaries before and after every output must survive.
 * Values no query may read (K/V past a sequence's length, unused pages,
 * empty partial outputs) hold NaN, so reading them shows in the result.
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

/* ------------------------------------------------------------ helpers */

static cl_context g_cl;
static cl_command_queue g_q;

static clattn_context *ctx_get(void)
{
    clattn_context *ctx = test_context();
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(clattn_context_cl(ctx, &g_cl, NULL, &g_q), CLATTN_SUCCESS);
    return ctx;
}

/* CLATTN_TEST_SUBSET=k: every k-th case of the case tables (the sanitizer pass). */
static int subset_skip(int i)
{
    const char *e = getenv("CLATTN_TEST_SUBSET");
    const int k = e && *e ? atoi(e) : 1;
    return k > 1 && i % k != 0;
}

/* x rounded to dtype and back */
static float rnd(clattn_dtype dt, float x)
{
    uint16_t h[1];
    float f[1];
    elem_put(dt == CLATTN_F32 ? (void *)f : (void *)h, dt, 0, x);
    return elem_get(dt == CLATTN_F32 ? (void *)f : (void *)h, dt, 0);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

static cl_mem upload(const void *host, size_t bytes)
{
    cl_int err = CL_SUCCESS;
    cl_mem m = clCreateBuffer(g_cl, CL_MEM_READ_WRITE | (host ? CL_MEM_COPY_HOST_PTR : 0), bytes, (void *)host, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    return m;
}

static void download(cl_mem m, size_t off, size_t bytes, void *host)
{
    ck_assert_int_eq(clEnqueueReadBuffer(g_q, m, CL_TRUE, off, bytes, host, 0, NULL, NULL), CL_SUCCESS);
}

static int all_poison(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != POISON)
            return 0;
    return 1;
}

/* An output buffer: `pre` poisoned elements, the view, CANARY poisoned elements. */
typedef struct outbuf {
    cl_mem mem;
    size_t pre, n, esize;
    unsigned char *host;
} outbuf;

static void out_make(outbuf *b, size_t pre, size_t n, size_t esize)
{
    b->pre = pre, b->n = n, b->esize = esize;
    b->host = xmalloc((pre + n + CANARY) * esize);
    memset(b->host, POISON, (pre + n + CANARY) * esize);
    b->mem = upload(b->host, (pre + n + CANARY) * esize);
}

static void out_poison(outbuf *b)
{
    memset(b->host, POISON, (b->pre + b->n + CANARY) * b->esize);
    ck_assert_int_eq(clEnqueueWriteBuffer(g_q, b->mem, CL_TRUE, 0, (b->pre + b->n + CANARY) * b->esize, b->host, 0,
                                          NULL, NULL),
                     CL_SUCCESS);
}

/* Read back; 1 when both canaries are intact. */
static int out_read(outbuf *b)
{
    download(b->mem, 0, (b->pre + b->n + CANARY) * b->esize, b->host);
    return all_poison(b->host, b->pre * b->esize) && all_poison(b->host + (b->pre + b->n) * b->esize, CANARY * b->esize);
}

static int out_untouched(outbuf *b)
{
    download(b->mem, 0, (b->pre + b->n + CANARY) * b->esize, b->host);
    return all_poison(b->host, (b->pre + b->n + CANARY) * b->esize);
}

static void out_free(outbuf *b)
{
    if (b->mem)
        clReleaseMemObject(b->mem);
    free(b->host);
    memset(b, 0, sizeof *b);
}

/* Strides of [B, H, N, D] in BHND or BSHD memory order. */
static void layout(int bshd, int64_t H, int64_t N, int64_t D, int64_t s[4])
{
    if (bshd)
        s[0] = N * H * D, s[1] = D, s[2] = H * D, s[3] = 1;
    else
        s[0] = H * N * D, s[1] = N * D, s[2] = D, s[3] = 1;
}

static size_t at4(const int64_t s[4], int64_t b, int64_t h, int64_t n, int64_t d)
{
    return (size_t)(b * s[0] + h * s[1] + n * s[2] + d * s[3]);
}

/* Device result (dtype, strided) of a [B, H, N, D] output into f32 BHND. */
static void gather(const outbuf *ob, clattn_dtype dt, const int64_t s[4], int64_t B, int64_t H, int64_t N, int64_t D,
                   float *dst)
{
    const unsigned char *base = ob->host + ob->pre * ob->esize;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t d = 0; d < D; d++)
                    dst[((b * H + h) * N + n) * D + d] = elem_get(base, dt, at4(s, b, h, n, d));
}

/* O against a reference with the dtype's tolerance; LSE: -inf exactly where
 * the reference has it, else within 1e-5 relative. Returns 1 when both pass
 * and reports the worst errors. */
static int check_result(const float *o, const float *ref_o, size_t no, clattn_dtype dt, const float *lse,
                        const float *ref_lse, size_t nl, double *o_err, double *l_err, char *msg, size_t msg_n)
{
    double atol, rtol, nmse;
    clattn_compare_result r = clattn_compare_f32(o, ref_o, no);
    clattn_tolerance(dt, &atol, &rtol, &nmse);
    *o_err = r.max_abs_err;
    *l_err = 0.0;
    if (!clattn_compare_ok(&r, atol, rtol, nmse)) {
        snprintf(msg, msg_n, "o: max_err %.3g (allowed %.3g), nmse %.3g, %zu NaN/Inf mismatches", r.max_abs_err,
                 atol + rtol * r.max_abs_ref, r.nmse, r.nonfinite_mismatch);
        return 0;
    }
    for (size_t i = 0; lse && i < nl; i++) {
        const double a = lse[i], b = ref_lse[i];
        if (isinf(b) && b < 0) {
            if (!(isinf(a) && a < 0)) {
                snprintf(msg, msg_n, "lse[%zu]: %g, reference -inf", i, a);
                return 0;
            }
            continue;
        }
        if (!isfinite(a) || fabs(a - b) > 1e-5 * (1.0 + fabs(b))) {
            snprintf(msg, msg_n, "lse[%zu]: %.9g, reference %.9g", i, a, b);
            return 0;
        }
        if (fabs(a - b) > *l_err)
            *l_err = fabs(a - b);
    }
    return 1;
}

/* ------------------------------------------------------------ merge */

typedef struct merge_case {
    int B, H, N, Nk, D, Dv, parts;
    clattn_dtype pdt, odt; /* parts' O, output */
    int lse, bshd, causal, empty_row;
} merge_case;

/* Reference attention of q against keys [a, b) with the bias columns of that
 * range: O [B, H, N, Dv] and LSE [B, H, N] (rows without a kept key: O = 0,
 * LSE = -inf). */
static void ref_slice(const merge_case *c, const float *q, const float *k, const float *v, const float *bias, int a,
                      int b, float *o, float *lse)
{
    const int n = b - a;
    float *ks = xmalloc((size_t)c->B * c->H * n * c->D * sizeof *ks);
    float *vs = xmalloc((size_t)c->B * c->H * n * c->Dv * sizeof *vs);
    float *bs = xmalloc((size_t)c->B * c->H * c->N * n * sizeof *bs);
    clattn_host_args h;
    clattn_attention_desc d;
    for (int bh = 0; bh < c->B * c->H; bh++) {
        memcpy(ks + (size_t)bh * n * c->D, k + ((size_t)bh * c->Nk + a) * c->D, (size_t)n * c->D * sizeof *ks);
        memcpy(vs + (size_t)bh * n * c->Dv, v + ((size_t)bh * c->Nk + a) * c->Dv, (size_t)n * c->Dv * sizeof *vs);
        for (int i = 0; i < c->N; i++)
            memcpy(bs + ((size_t)bh * c->N + i) * n, bias + ((size_t)bh * c->N + i) * c->Nk + a, (size_t)n * sizeof *bs);
    }
    memset(&h, 0, sizeof h);
    memset(&d, 0, sizeof d);
    d.scale = 1.0f / sqrtf((float)c->D); /* the full problem's scale */
    h.q = (clattn_host_tensor){(void *)q, CLATTN_F32, {c->B, c->H, c->N, c->D}};
    h.k = (clattn_host_tensor){ks, CLATTN_F32, {c->B, c->H, n, c->D}};
    h.v = (clattn_host_tensor){vs, CLATTN_F32, {c->B, c->H, n, c->Dv}};
    h.o = (clattn_host_tensor){o, CLATTN_F32, {c->B, c->H, c->N, c->Dv}};
    h.lse = (clattn_host_tensor){lse, CLATTN_F32, {c->B, c->H, c->N, 1}};
    h.bias = (clattn_host_tensor){bs, CLATTN_F32, {c->B, c->H, c->N, n}};
    ck_assert_int_eq(clattn_reference(&d, &h), CLATTN_SUCCESS);
    free(ks);
    free(vs);
    free(bs);
}

static int run_merge_case(const merge_case *c, uint64_t seed, double *worst_o, double *worst_l)
{
    clattn_context *ctx = ctx_get();
    uint64_t rng = seed;
    const size_t nq = (size_t)c->B * c->H * c->N * c->D, nk = (size_t)c->B * c->H * c->Nk * c->D;
    const size_t nv = (size_t)c->B * c->H * c->Nk * c->Dv, no = (size_t)c->B * c->H * c->N * c->Dv;
    const size_t nl = (size_t)c->B * c->H * c->N, nb = nl * (size_t)c->Nk;
    float *q = xmalloc(nq * 4), *k = xmalloc(nk * 4), *v = xmalloc(nv * 4), *bias = xmalloc(nb * 4);
    float *ref_o = xmalloc(no * 4), *ref_l = xmalloc(nl * 4), *exp_o = xmalloc(no * 4);
    float *dev_o = xmalloc(no * 4), *dev_l = xmalloc(nl * 4);
    float **po = xmalloc((size_t)c->parts * sizeof *po), **pl = xmalloc((size_t)c->parts * sizeof *pl);
    int *cut = xmalloc((size_t)(c->parts + 1) * sizeof *cut);
    clattn_tensor *to = xmalloc((size_t)c->parts * sizeof *to), *tl = xmalloc((size_t)c->parts * sizeof *tl);
    cl_mem *mo = xmalloc((size_t)c->parts * sizeof *mo), *ml = xmalloc((size_t)c->parts * sizeof *ml);
    outbuf ob, lb;
    clattn_tensor o, lse;
    int64_t so[4], sl[4];
    const size_t pre = 5, pes = clattn_dtype_size(c->pdt), oes = clattn_dtype_size(c->odt);
    clattn_status st;
    char msg[512];
    int ok;
    double eo, el;
    clattn_host_args h;
    clattn_attention_desc d;

    test_fill_uniform(q, nq, 1.5f, &rng);
    test_fill_uniform(k, nk, 1.5f, &rng);
    test_fill_uniform(v, nv, 1.0f, &rng);
    for (size_t i = 0; i < nb; i++) {
        const size_t j = i % (size_t)c->Nk, row = (i / (size_t)c->Nk) % (size_t)c->N;
        bias[i] = test_rand_uniform(&rng);
        if (c->causal && (int64_t)j > (int64_t)row + (c->Nk - c->N)) /* bottom-right */
            bias[i] = -INFINITY;
        if (c->empty_row && row == 1)
            bias[i] = -INFINITY;
    }
    /* the full problem */
    memset(&h, 0, sizeof h);
    memset(&d, 0, sizeof d);
    h.q = (clattn_host_tensor){q, CLATTN_F32, {c->B, c->H, c->N, c->D}};
    h.k = (clattn_host_tensor){k, CLATTN_F32, {c->B, c->H, c->Nk, c->D}};
    h.v = (clattn_host_tensor){v, CLATTN_F32, {c->B, c->H, c->Nk, c->Dv}};
    h.o = (clattn_host_tensor){ref_o, CLATTN_F32, {c->B, c->H, c->N, c->Dv}};
    h.lse = (clattn_host_tensor){ref_l, CLATTN_F32, {c->B, c->H, c->N, 1}};
    h.bias = (clattn_host_tensor){bias, CLATTN_F32, {c->B, c->H, c->N, c->Nk}};
    ck_assert_int_eq(clattn_reference(&d, &h), CLATTN_SUCCESS);

    /* disjoint key ranges covering [0, Nk); with 3 or more parts one is empty */
    cut[0] = 0;
    cut[c->parts] = c->Nk;
    for (int i = 1; i < c->parts; i++)
        cut[i] = (int)(test_rand_u64(&rng) % (uint64_t)(c->Nk + 1));
    if (c->parts >= 3)
        cut[2] = cut[1];
    for (int i = 1; i < c->parts; i++) /* sort */
        for (int j = i; j > 1 && cut[j] < cut[j - 1]; j--) {
            const int t = cut[j];
            cut[j] = cut[j - 1], cut[j - 1] = t;
        }
    for (int p = 0; p < c->parts; p++) {
        po[p] = xmalloc(no * 4);
        pl[p] = xmalloc(nl * 4);
        if (cut[p + 1] > cut[p]) {
            ref_slice(c, q, k, v, bias, cut[p], cut[p + 1], po[p], pl[p]);
        } else {
            for (size_t i = 0; i < nl; i++)
                pl[p][i] = -INFINITY;
        }
        /* an empty part's O is never read: NaN proves it */
        for (size_t r = 0; r < nl; r++)
            if (isinf(pl[p][r]))
                for (int dd = 0; dd < c->Dv; dd++)
                    po[p][r * (size_t)c->Dv + (size_t)dd] = NAN;
            else
                for (int dd = 0; dd < c->Dv; dd++)
                    po[p][r * (size_t)c->Dv + (size_t)dd] = rnd(c->pdt, po[p][r * (size_t)c->Dv + (size_t)dd]);
    }
    /* expected: the exact merge (double) of the parts as stored */
    for (size_t r = 0; r < nl; r++) {
        double m = -INFINITY, ws = 0.0;
        for (int p = 0; p < c->parts; p++)
            m = pl[p][r] > m ? pl[p][r] : m;
        for (int dd = 0; dd < c->Dv; dd++) {
            double x = 0.0;
            ws = 0.0;
            for (int p = 0; p < c->parts && !isinf(m); p++) {
                const double w = isinf(pl[p][r]) ? 0.0 : exp((double)pl[p][r] - m);
                if (w > 0.0) {
                    ws += w;
                    x += w * po[p][r * (size_t)c->Dv + (size_t)dd];
                }
            }
            exp_o[r * (size_t)c->Dv + (size_t)dd] = ws > 0.0 ? (float)(x / ws) : 0.0f;
        }
    }
    if (c->pdt == CLATTN_F32) { /* the test's own slicing is exact */
        clattn_compare_result r = clattn_compare_f32(exp_o, ref_o, no);
        ck_assert_msg(clattn_compare_ok(&r, 1e-6, 1e-6, 1e-10), "merge test: host merge of the slices differs from "
                                                                  "the full reference by %g",
                      r.max_abs_err);
    }

    /* device parts: own buffers, odd parts BSHD with an offset, LSE [B, N, H] when bshd */
    for (int p = 0; p < c->parts; p++) {
        const int alt = c->bshd && p % 2;
        const size_t off = alt ? 3 : 0;
        int64_t s[4], ls[4];
        unsigned char *hb = xmalloc((off + no) * pes);
        float *hl = xmalloc((off + nl) * 4);
        layout(alt, c->H, c->N, c->Dv, s);
        layout(alt, c->H, c->N, 1, ls);
        memset(hb, POISON, (off + no) * pes);
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t hh = 0; hh < c->H; hh++)
                for (int64_t n = 0; n < c->N; n++) {
                    const size_t r = (size_t)((b * c->H + hh) * c->N + n);
                    for (int64_t dd = 0; dd < c->Dv; dd++)
                        elem_put(hb + off * pes, c->pdt, at4(s, b, hh, n, dd), po[p][r * (size_t)c->Dv + (size_t)dd]);
                    hl[off + at4(ls, b, hh, n, 0)] = pl[p][r];
                }
        mo[p] = upload(hb, (off + no) * pes);
        ml[p] = upload(hl, (off + nl) * 4);
        to[p] = clattn_tensor_make(mo[p], off * pes, c->pdt, c->B, c->H, c->N, c->Dv);
        memcpy(to[p].strides, s, sizeof s);
        tl[p] = clattn_tensor_make(ml[p], off * 4, CLATTN_F32, c->B, c->H, c->N, 1);
        tl[p].strides[0] = ls[0], tl[p].strides[1] = ls[1], tl[p].strides[2] = ls[2];
        free(hb);
        free(hl);
    }
    layout(c->bshd, c->H, c->N, c->Dv, so);
    layout(0, c->H, c->N, 1, sl);
    out_make(&ob, pre, no, oes);
    out_make(&lb, pre, nl, 4);
    o = clattn_tensor_make(ob.mem, pre * oes, c->odt, c->B, c->H, c->N, c->Dv);
    memcpy(o.strides, so, sizeof so);
    lse = clattn_tensor_make(lb.mem, pre * 4, CLATTN_F32, c->B, c->H, c->N, 1);

    st = clattn_merge(ctx, c->parts, to, tl, &o, c->lse ? &lse : NULL, NULL, 0, NULL, NULL);
    ck_assert_msg(st == CLATTN_SUCCESS, "clattn_merge: %s: %s", clattn_status_name(st), clattn_context_last_error(ctx));
    ck_assert_msg(out_read(&ob), "merge: a canary of o was overwritten");
    ck_assert_msg(c->lse ? out_read(&lb) : out_untouched(&lb), "merge: lse canary overwritten or lse written");
    gather(&ob, c->odt, so, c->B, c->H, c->N, c->Dv, dev_o);
    memcpy(dev_l, lb.host + pre * 4, nl * 4);
    ok = check_result(dev_o, exp_o, no, c->odt, c->lse ? dev_l : NULL, ref_l, nl, &eo, &el, msg, sizeof msg);
    if (!ok)
        printf("FAIL merge B=%d H=%d N=%d Nk=%d D=%d Dv=%d parts=%d %s->%s lse=%d bshd=%d causal=%d: %s\n", c->B, c->H,
               c->N, c->Nk, c->D, c->Dv, c->parts, clattn_dtype_name(c->pdt), clattn_dtype_name(c->odt), c->lse,
               c->bshd, c->causal, msg);
    if (c->odt == CLATTN_F32 && c->pdt == CLATTN_F32) { /* and the full attention itself */
        clattn_compare_result r = clattn_compare_f32(dev_o, ref_o, no);
        double a, rt, m;
        clattn_tolerance(CLATTN_F32, &a, &rt, &m);
        if (!clattn_compare_ok(&r, a, rt, m)) {
            printf("FAIL merge vs full attention: max_err %.3g\n", r.max_abs_err);
            ok = 0;
        }
    }
    *worst_o = eo > *worst_o ? eo : *worst_o;
    *worst_l = el > *worst_l ? el : *worst_l;

    for (int p = 0; p < c->parts; p++) {
        clReleaseMemObject(mo[p]);
        clReleaseMemObject(ml[p]);
        free(po[p]);
        free(pl[p]);
    }
    out_free(&ob);
    out_free(&lb);
    free(q), free(k), free(v), free(bias), free(ref_o), free(ref_l), free(exp_o), free(dev_o), free(dev_l);
    free(po), free(pl), free(cut), free(to), free(tl), free(mo), free(ml);
    return ok;
}

START_TEST(merge_exact)
{
    static const merge_case cases[] = {
        /* B H  N   Nk  D   Dv parts pdt         odt         lse bshd causal empty */
        {1, 1, 1, 1, 8, 8, 1, CLATTN_F32, CLATTN_F32, 1, 0, 0, 0},
        {2, 3, 7, 50, 16, 16, 2, CLATTN_F32, CLATTN_F32, 1, 0, 1, 1},
        {3, 2, 5, 97, 32, 24, 3, CLATTN_F32, CLATTN_F32, 1, 1, 1, 1},
        {1, 4, 9, 130, 64, 64, 4, CLATTN_F32, CLATTN_F32, 0, 1, 1, 0},
        {2, 2, 6, 77, 40, 40, 5, CLATTN_F32, CLATTN_F32, 1, 1, 1, 1},
        {2, 3, 4, 200, 59, 59, 9, CLATTN_F32, CLATTN_F32, 1, 0, 1, 1},
        {1, 2, 33, 64, 128, 128, 13, CLATTN_F32, CLATTN_F32, 1, 1, 1, 1},
        {2, 2, 5, 90, 64, 64, 3, CLATTN_F16, CLATTN_F32, 1, 1, 1, 1},
        {2, 2, 5, 90, 64, 64, 6, CLATTN_BF16, CLATTN_BF16, 1, 0, 1, 1},
        {1, 3, 8, 60, 48, 48, 2, CLATTN_F32, CLATTN_F16, 1, 1, 0, 1},
    };
    const int n = (int)(sizeof cases / sizeof cases[0]);
    int bad = 0, ran = 0;
    double wo = 0, wl = 0, t0 = test_now_s();
    for (int i = 0; i < n; i++)
        if (!subset_skip(i))
            bad += !run_merge_case(&cases[i], test_seed() ^ (0x3e7ull + (uint64_t)i), &wo, &wl), ran++;
    printf("kv merge: %d cases (1..13 parts, empty parts and rows, f32/f16/bf16), %d failed, worst |dO| %.3g "
           "(against the exact merge of the stored parts), |dLSE| %.3g, %.1f s\n",
           ran, bad, wo, wl, test_now_s() - t0);
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* Partial results computed on the device (two key ranges through views with
 * offsets, as two devices or two ring steps would) merged into the full
 * attention. */
START_TEST(merge_device_parts)
{
    clattn_context *ctx = ctx_get();
    enum { B = 2, H = 4, N = 5, NK = 300, D = 64, SPLIT = 113 };
    const size_t nq = (size_t)B * H * N * D, nk = (size_t)B * H * NK * D, no = nq, nl = (size_t)B * H * N;
    uint64_t rng = test_seed() ^ 0xd1ce;
    float *q = xmalloc(nq * 4), *k = xmalloc(nk * 4), *v = xmalloc(nk * 4), *ref_o = xmalloc(no * 4),
          *ref_l = xmalloc(nl * 4), *dev_o = xmalloc(no * 4);
    cl_mem mq, mk, mv, po[2], pl[2];
    outbuf ob, lb;
    clattn_tensor to[2], tl[2], o, lse;
    clattn_host_args h;
    char msg[256];
    double eo, el;
    test_fill_uniform(q, nq, 1, &rng);
    test_fill_uniform(k, nk, 1, &rng);
    test_fill_uniform(v, nk, 1, &rng);
    memset(&h, 0, sizeof h);
    h.q = (clattn_host_tensor){q, CLATTN_F32, {B, H, N, D}};
    h.k = (clattn_host_tensor){k, CLATTN_F32, {B, H, NK, D}};
    h.v = (clattn_host_tensor){v, CLATTN_F32, {B, H, NK, D}};
    h.o = (clattn_host_tensor){ref_o, CLATTN_F32, {B, H, N, D}};
    h.lse = (clattn_host_tensor){ref_l, CLATTN_F32, {B, H, N, 1}};
    ck_assert_int_eq(clattn_reference(NULL, &h), CLATTN_SUCCESS);
    mq = upload(q, nq * 4), mk = upload(k, nk * 4), mv = upload(v, nk * 4);
    for (int p = 0; p < 2; p++) {
        const int64_t a = p ? SPLIT : 0, n = p ? NK - SPLIT : SPLIT;
        clattn_args args;
        clattn_plan *plan = NULL;
        clattn_attention_desc d;
        memset(&d, 0, sizeof d);
        d.variant = p ? CLATTN_VARIANT_FLASH : CLATTN_VARIANT_DECODE;
        po[p] = upload(NULL, no * 4);
        pl[p] = upload(NULL, nl * 4);
        memset(&args, 0, sizeof args);
        args.q = clattn_tensor_make(mq, 0, CLATTN_F32, B, H, N, D);
        args.k = clattn_tensor_make(mk, (size_t)a * D * 4, CLATTN_F32, B, H, n, D);
        args.k.strides[0] = H * NK * D, args.k.strides[1] = NK * D, args.k.strides[2] = D, args.k.strides[3] = 1;
        args.v = args.k;
        args.v.buffer = mv;
        args.o = clattn_tensor_make(po[p], 0, CLATTN_F32, B, H, N, D);
        args.lse = clattn_tensor_make(pl[p], 0, CLATTN_F32, B, H, N, 1);
        ck_assert_int_eq(clattn_plan_create(ctx, &d, &args, &plan), CLATTN_SUCCESS);
        ck_assert_int_eq(clattn_plan_run(plan, &args, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
        clattn_plan_free(plan);
        to[p] = args.o;
        tl[p] = args.lse;
    }
    out_make(&ob, 0, no, 4);
    out_make(&lb, 0, nl, 4);
    o = clattn_tensor_make(ob.mem, 0, CLATTN_F32, B, H, N, D);
    lse = clattn_tensor_make(lb.mem, 0, CLATTN_F32, B, H, N, 1);
    ck_assert_int_eq(clattn_merge(ctx, 2, to, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
    ck_assert(out_read(&ob) && out_read(&lb));
    memcpy(dev_o, ob.host, no * 4);
    ck_assert_msg(check_result(dev_o, ref_o, no, CLATTN_F32, (float *)lb.host, ref_l, nl, &eo, &el, msg, sizeof msg),
                  "device parts merged: %s", msg);
    printf("kv merge of device parts (decode over keys [0, %d), flash over [%d, %d)): |dO| %.3g, |dLSE| %.3g\n", SPLIT,
           SPLIT, NK, eo, el);
    for (int p = 0; p < 2; p++)
        clReleaseMemObject(po[p]), clReleaseMemObject(pl[p]);
    clReleaseMemObject(mq), clReleaseMemObject(mk), clReleaseMemObject(mv);
    out_free(&ob);
    out_free(&lb);
    free(q), free(k), free(v), free(ref_o), free(ref_l), free(dev_o);
}
END_TEST

/* Every validation branch of clattn_merge: its status, the argument named in
 * the last-error text, and outputs untouched. */
START_TEST(merge_validation)
{
    clattn_context *ctx = ctx_get();
    enum { B = 1, H = 2, N = 3, D = 4 };
    const size_t no = B * H * N * D, nl = B * H * N;
    cl_mem mo[2], ml[2], small;
    clattn_tensor to[2], tl[2], o, lse, bad[2];
    outbuf ob, lb;
    int n = 0;
    float ho[B * H * N * D], hl[B * H * N];
    uint64_t rng = test_seed();
    test_fill_uniform(ho, no, 1, &rng);
    test_fill_uniform(hl, nl, 1, &rng);
    for (int p = 0; p < 2; p++) {
        mo[p] = upload(ho, no * 4);
        ml[p] = upload(hl, nl * 4);
        to[p] = clattn_tensor_make(mo[p], 0, CLATTN_F32, B, H, N, D);
        tl[p] = clattn_tensor_make(ml[p], 0, CLATTN_F32, B, H, N, 1);
    }
    small = upload(NULL, 8);
    out_make(&ob, 0, no, 4);
    out_make(&lb, 0, nl, 4);
    o = clattn_tensor_make(ob.mem, 0, CLATTN_F32, B, H, N, D);
    lse = clattn_tensor_make(lb.mem, 0, CLATTN_F32, B, H, N, 1);
#define EXPECT(call, st, text)                                                                                     \
    do {                                                                                                           \
        clattn_status s_ = (call);                                                                                 \
        n++;                                                                                                       \
        ck_assert_msg(s_ == (st), "%s: got %s, expected %s", #call, clattn_status_name(s_), clattn_status_name(st)); \
        ck_assert_msg(strstr(clattn_context_last_error(ctx), text) != NULL, "%s: last error '%s' lacks '%s'", #call, \
                      clattn_context_last_error(ctx), text);                                                       \
        ck_assert_msg(out_untouched(&ob) && out_untouched(&lb), "%s: failed but wrote an output", #call);         \
    } while (0)
    EXPECT(clattn_merge(ctx, 0, to, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_VALUE, "n_parts");
    EXPECT(clattn_merge(ctx, 2, NULL, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT, "o_parts");
    EXPECT(clattn_merge(ctx, 2, to, NULL, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT, "lse_parts");
    EXPECT(clattn_merge(ctx, 2, to, tl, NULL, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT, "o is NULL");
    EXPECT(clattn_merge(ctx, 2, to, tl, &o, &lse, NULL, 1, NULL, NULL), CLATTN_ERROR_INVALID_VALUE, "wait");
    memcpy(bad, to, sizeof bad);
    bad[1].shape[2] = N + 1;
    EXPECT(clattn_merge(ctx, 2, bad, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_SHAPE, "o_parts[1]");
    memcpy(bad, tl, sizeof bad);
    bad[1].shape[1] = H + 1;
    EXPECT(clattn_merge(ctx, 2, to, bad, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_SHAPE, "lse_parts[1]");
    memcpy(bad, to, sizeof bad);
    bad[1].dtype = CLATTN_F16;
    EXPECT(clattn_merge(ctx, 2, bad, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_DTYPE, "o_parts[1]");
    memcpy(bad, tl, sizeof bad);
    bad[0].dtype = CLATTN_F16;
    EXPECT(clattn_merge(ctx, 2, to, bad, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_DTYPE, "lse_parts[0]");
    memcpy(bad, to, sizeof bad);
    bad[0].dtype = (clattn_dtype)9;
    EXPECT(clattn_merge(ctx, 2, bad, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_DTYPE, "o_parts[0]");
    memcpy(bad, to, sizeof bad);
    bad[1].buffer = NULL;
    EXPECT(clattn_merge(ctx, 2, bad, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT, "o_parts[1]");
    memcpy(bad, to, sizeof bad);
    bad[0].buffer = small;
    EXPECT(clattn_merge(ctx, 2, bad, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_BUFFER_TOO_SMALL, "o_parts[0]");
    memcpy(bad, to, sizeof bad);
    bad[0].offset = 2;
    EXPECT(clattn_merge(ctx, 2, bad, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_MISALIGNED, "o_parts[0]");
    memcpy(bad, to, sizeof bad);
    bad[1].strides[0] = -1, bad[1].strides[1] = 1, bad[1].strides[2] = 1, bad[1].strides[3] = 1;
    EXPECT(clattn_merge(ctx, 2, bad, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_STRIDE, "o_parts[1]");
    {
        clattn_tensor o2 = o;
        o2.strides[0] = 1, o2.strides[1] = 1, o2.strides[2] = 1, o2.strides[3] = 1; /* output elements overlap */
        EXPECT(clattn_merge(ctx, 2, to, tl, &o2, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_STRIDE, "o:");
        o2 = o;
        o2.shape[3] = 0;
        EXPECT(clattn_merge(ctx, 2, to, tl, &o2, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_SHAPE, "o:");
    }
    {
        /* an output over a part's bytes, and lse over o's */
        clattn_tensor l2 = lse;
        memcpy(bad, to, sizeof bad);
        bad[1].buffer = ob.mem;
        EXPECT(clattn_merge(ctx, 2, bad, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_ALIASING, "o_parts[1]");
        l2.buffer = ob.mem;
        EXPECT(clattn_merge(ctx, 2, to, tl, &o, &l2, NULL, 0, NULL, NULL), CLATTN_ERROR_ALIASING, "lse");
        l2 = lse;
        l2.dtype = CLATTN_F16;
        EXPECT(clattn_merge(ctx, 2, to, tl, &o, &l2, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_DTYPE, "lse");
    }
#undef EXPECT
    ck_assert_int_eq(clattn_merge(NULL, 2, to, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT);
    /* and the context still works */
    ck_assert_int_eq(clattn_merge(ctx, 2, to, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
    ck_assert(out_read(&ob) && out_read(&lb));
    printf("kv merge validation: %d bad calls rejected with their status, outputs untouched\n", n);
    for (int p = 0; p < 2; p++)
        clReleaseMemObject(mo[p]), clReleaseMemObject(ml[p]);
    clReleaseMemObject(small);
    out_free(&ob);
    out_free(&lb);
}
END_TEST

/* ------------------------------------------------------------ paged K/V */

typedef struct paged_case {
    int B, Hq, Hkv, Nq, D, ps, max_pages;
    clattn_variant variant;
    clattn_dtype dtype; /* of q, k and v; o and lse are f32 */
    int causal, window, pool_bshd;
} paged_case;

typedef struct paged_world {
    int64_t Nk, num_pages;
    int32_t *lens, *table;
    void *kc, *vc, *pk, *pv; /* contiguous [B, Hkv, Nk, D] and pools [num_pages, Hkv, ps, D] in the dtype */
    int64_t pool_s[4];
} paged_world;

/* Random K/V with NaN past every sequence's length, and the same keys in a
 * pool of pages in shuffled order (spare pages all NaN) with a block table
 * whose unused entries are -1. */
static void paged_world_make(const paged_case *c, uint64_t *rng, paged_world *w)
{
    const size_t es = clattn_dtype_size(c->dtype);
    int64_t used = 0;
    int32_t *perm;
    memset(w, 0, sizeof *w);
    w->Nk = (int64_t)c->max_pages * c->ps;
    w->lens = xmalloc((size_t)c->B * sizeof *w->lens);
    for (int b = 0; b < c->B; b++) {
        const int64_t pick[4] = {w->Nk, 0, 1, 2 + (int64_t)(test_rand_u64(rng) % (uint64_t)(w->Nk - 1))};
        w->lens[b] = (int32_t)(c->B == 1 ? pick[3] : pick[b % 4]);
        used += (w->lens[b] + c->ps - 1) / c->ps;
    }
    w->num_pages = used + 3;
    w->kc = xmalloc((size_t)c->B * c->Hkv * w->Nk * c->D * es);
    w->vc = xmalloc((size_t)c->B * c->Hkv * w->Nk * c->D * es);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hkv; h++)
            for (int64_t n = 0; n < w->Nk; n++)
                for (int64_t d = 0; d < c->D; d++) {
                    const size_t i = (size_t)(((b * c->Hkv + h) * w->Nk + n) * c->D + d);
                    elem_put(w->kc, c->dtype, i, n < w->lens[b] ? 1.5f * test_rand_uniform(rng) : NAN);
                    elem_put(w->vc, c->dtype, i, n < w->lens[b] ? test_rand_uniform(rng) : NAN);
                }
    /* pool pages in a random order */
    perm = xmalloc((size_t)w->num_pages * sizeof *perm);
    for (int64_t i = 0; i < w->num_pages; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = w->num_pages - 1; i > 0; i--) {
        const int64_t j = (int64_t)(test_rand_u64(rng) % (uint64_t)(i + 1));
        const int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    layout(c->pool_bshd, c->Hkv, c->ps, c->D, w->pool_s);
    w->pk = xmalloc((size_t)w->num_pages * c->Hkv * c->ps * c->D * es);
    w->pv = xmalloc((size_t)w->num_pages * c->Hkv * c->ps * c->D * es);
    for (size_t i = 0; i < (size_t)w->num_pages * c->Hkv * c->ps * c->D; i++) {
        elem_put(w->pk, c->dtype, i, NAN);
        elem_put(w->pv, c->dtype, i, NAN);
    }
    w->table = xmalloc((size_t)c->B * c->max_pages * sizeof *w->table);
    used = 0;
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t j = 0; j < c->max_pages; j++) {
            const int reached = j * c->ps < w->lens[b];
            w->table[b * c->max_pages + j] = reached ? perm[used++] : -1;
            if (!reached)
                continue;
            for (int64_t h = 0; h < c->Hkv; h++)
                for (int64_t s = 0; s < c->ps; s++)
                    for (int64_t d = 0; d < c->D; d++) {
                        const size_t src = (size_t)(((b * c->Hkv + h) * w->Nk + j * c->ps + s) * c->D + d);
                        const size_t dst = at4(w->pool_s, w->table[b * c->max_pages + j], h, s, d);
                        elem_put(w->pk, c->dtype, dst, elem_get(w->kc, c->dtype, src));
                        elem_put(w->pv, c->dtype, dst, elem_get(w->vc, c->dtype, src));
                    }
        }
    free(perm);
}

static void paged_world_free(paged_world *w)
{
    free(w->lens), free(w->table), free(w->kc), free(w->vc), free(w->pk), free(w->pv);
    memset(w, 0, sizeof *w);
}

/* f32 arguments over the pools of w (dense pool layout), the block table mt
 * and the key lengths ml, with outputs o [B, Hq, Nq, D] and lse [B, Hq, Nq]. */
static clattn_args paged_f32_args(const paged_case *c, const paged_world *w, cl_mem mq, cl_mem mpk, cl_mem mpv,
                                  cl_mem mt, cl_mem ml, cl_mem o, cl_mem lse)
{
    clattn_args a;
    memset(&a, 0, sizeof a);
    a.q = clattn_tensor_make(mq, 0, CLATTN_F32, c->B, c->Hq, c->Nq, c->D);
    a.k = clattn_tensor_make(mpk, 0, CLATTN_F32, w->num_pages, c->Hkv, c->ps, c->D);
    a.v = clattn_tensor_make(mpv, 0, CLATTN_F32, w->num_pages, c->Hkv, c->ps, c->D);
    a.o = clattn_tensor_make(o, 0, CLATTN_F32, c->B, c->Hq, c->Nq, c->D);
    a.lse = clattn_tensor_make(lse, 0, CLATTN_F32, c->B, c->Hq, c->Nq, 1);
    a.key_lengths = ml;
    a.block_table = mt;
    a.page_size = c->ps;
    a.max_pages = c->max_pages;
    return a;
}

static clattn_attention_desc paged_desc(const paged_case *c, clattn_variant variant)
{
    clattn_attention_desc d;
    memset(&d, 0, sizeof d);
    d.causal = c->causal;
    d.align = CLATTN_ALIGN_KEY_LENGTHS;
    d.use_window = c->window;
    d.window_left = 40;
    d.window_right = c->causal ? 0 : 7;
    d.variant = variant;
    return d;
}

/* One paged case on the device against the reference, and against the same
 * problem on contiguous K/V; *bitwise counts the cases identical to it. */
static int run_paged_case(const paged_case *c, uint64_t seed, double *worst, int *bitwise)
{
    clattn_context *ctx = ctx_get();
    uint64_t rng = seed;
    paged_world w;
    const size_t es = clattn_dtype_size(c->dtype);
    const size_t nq = (size_t)c->B * c->Hq * c->Nq * c->D, no = nq, nl = (size_t)c->B * c->Hq * c->Nq;
    void *q = xmalloc(nq * es);
    float *ref_o = xmalloc(no * 4), *ref_l = xmalloc(nl * 4), *dev_o[2], *dev_l[2];
    clattn_attention_desc d = paged_desc(c, c->variant);
    clattn_host_args h;
    cl_mem mq, mkc, mvc, mpk, mpv, mt, ml;
    outbuf ob[2], lb[2];
    int ok = 1;
    char msg[512], what[256];
    paged_world_make(c, &rng, &w);
    for (size_t i = 0; i < nq; i++)
        elem_put(q, c->dtype, i, test_rand_uniform(&rng));
    memset(&h, 0, sizeof h);
    h.q = (clattn_host_tensor){q, c->dtype, {c->B, c->Hq, c->Nq, c->D}};
    h.k = (clattn_host_tensor){w.kc, c->dtype, {c->B, c->Hkv, w.Nk, c->D}};
    h.v = (clattn_host_tensor){w.vc, c->dtype, {c->B, c->Hkv, w.Nk, c->D}};
    h.o = (clattn_host_tensor){ref_o, CLATTN_F32, {c->B, c->Hq, c->Nq, c->D}};
    h.lse = (clattn_host_tensor){ref_l, CLATTN_F32, {c->B, c->Hq, c->Nq, 1}};
    h.key_lengths = w.lens;
    ck_assert_int_eq(clattn_reference(&d, &h), CLATTN_SUCCESS);
    snprintf(what, sizeof what, "%s B=%d Hq=%d Hkv=%d Nq=%d D=%d page=%d pages=%lld/%lld %s%s%s%s",
             clattn_variant_name(c->variant), c->B, c->Hq, c->Hkv, c->Nq, c->D, c->ps, (long long)c->max_pages,
             (long long)w.num_pages, clattn_dtype_name(c->dtype), c->causal ? " causal" : "", c->window ? " window" : "",
             c->pool_bshd ? " pool-bshd" : "");

    mq = upload(q, nq * es);
    mkc = upload(w.kc, (size_t)c->B * c->Hkv * w.Nk * c->D * es);
    mvc = upload(w.vc, (size_t)c->B * c->Hkv * w.Nk * c->D * es);
    mpk = upload(w.pk, (size_t)w.num_pages * c->Hkv * c->ps * c->D * es);
    mpv = upload(w.pv, (size_t)w.num_pages * c->Hkv * c->ps * c->D * es);
    mt = upload(w.table, (size_t)c->B * c->max_pages * 4);
    ml = upload(w.lens, (size_t)c->B * 4);
    for (int paged = 0; paged < 2; paged++) {
        clattn_args a;
        clattn_plan *plan = NULL;
        clattn_status st;
        double el;
        out_make(&ob[paged], 0, no, 4);
        out_make(&lb[paged], 0, nl, 4);
        memset(&a, 0, sizeof a);
        a.q = clattn_tensor_make(mq, 0, c->dtype, c->B, c->Hq, c->Nq, c->D);
        if (paged) {
            a.k = clattn_tensor_make(mpk, 0, c->dtype, w.num_pages, c->Hkv, c->ps, c->D);
            a.v = clattn_tensor_make(mpv, 0, c->dtype, w.num_pages, c->Hkv, c->ps, c->D);
            memcpy(a.k.strides, w.pool_s, sizeof w.pool_s);
            memcpy(a.v.strides, w.pool_s, sizeof w.pool_s);
            a.block_table = mt;
            a.page_size = c->ps;
            a.max_pages = c->max_pages;
        } else {
            a.k = clattn_tensor_make(mkc, 0, c->dtype, c->B, c->Hkv, w.Nk, c->D);
            a.v = clattn_tensor_make(mvc, 0, c->dtype, c->B, c->Hkv, w.Nk, c->D);
        }
        a.o = clattn_tensor_make(ob[paged].mem, 0, CLATTN_F32, c->B, c->Hq, c->Nq, c->D);
        a.lse = clattn_tensor_make(lb[paged].mem, 0, CLATTN_F32, c->B, c->Hq, c->Nq, 1);
        a.key_lengths = ml;
        st = clattn_plan_create(ctx, &d, &a, &plan);
        ck_assert_msg(st == CLATTN_SUCCESS, "%s: plan (%s): %s: %s", what, paged ? "paged" : "contiguous",
                      clattn_status_name(st), clattn_context_last_error(ctx));
        st = clattn_plan_run(plan, &a, NULL, 0, NULL, NULL);
        ck_assert_msg(st == CLATTN_SUCCESS, "%s: run: %s: %s", what, clattn_status_name(st),
                      clattn_context_last_error(ctx));
        clattn_plan_free(plan);
        ck_assert_msg(out_read(&ob[paged]) && out_read(&lb[paged]), "%s: canary overwritten", what);
        dev_o[paged] = (float *)ob[paged].host;
        dev_l[paged] = (float *)lb[paged].host;
        if (!check_result(dev_o[paged], ref_o, no, CLATTN_F32, dev_l[paged], ref_l, nl, worst + paged, &el, msg,
                          sizeof msg)) {
            printf("FAIL paged %s (%s K/V): %s\n", what, paged ? "paged" : "contiguous", msg);
            ok = 0;
        }
    }
    {
        clattn_compare_result r = clattn_compare_f32(dev_o[1], dev_o[0], no);
        double a, rt, m;
        clattn_tolerance(CLATTN_F32, &a, &rt, &m);
        if (!clattn_compare_ok(&r, a, rt, m)) {
            printf("FAIL paged %s: paged and contiguous differ by %.3g\n", what, r.max_abs_err);
            ok = 0;
        }
        worst[2] = r.max_abs_err > worst[2] ? r.max_abs_err : worst[2];
        *bitwise += memcmp(dev_o[1], dev_o[0], no * 4) == 0 && memcmp(dev_l[1], dev_l[0], nl * 4) == 0;
    }
    for (int i = 0; i < 2; i++)
        out_free(&ob[i]), out_free(&lb[i]);
    clReleaseMemObject(mq), clReleaseMemObject(mkc), clReleaseMemObject(mvc), clReleaseMemObject(mpk);
    clReleaseMemObject(mpv), clReleaseMemObject(mt), clReleaseMemObject(ml);
    paged_world_free(&w);
    free(q), free(ref_o), free(ref_l);
    return ok;
}

START_TEST(paged_vs_contiguous)
{
    static const paged_case cases[] = {
        /* B Hq Hkv Nq  D  ps pages variant                 dtype       causal window pool_bshd */
        {4, 8, 1, 1, 64, 16, 20, CLATTN_VARIANT_DECODE, CLATTN_F32, 1, 0, 0},
        {4, 16, 2, 3, 128, 64, 9, CLATTN_VARIANT_DECODE, CLATTN_F32, 1, 0, 1},
        {3, 6, 3, 16, 59, 16, 33, CLATTN_VARIANT_DECODE, CLATTN_F32, 1, 0, 0},
        {4, 8, 2, 2, 64, 16, 30, CLATTN_VARIANT_DECODE, CLATTN_F32, 1, 1, 0},
        {2, 8, 1, 1, 64, 64, 64, CLATTN_VARIANT_DECODE, CLATTN_BF16, 0, 0, 0},
        {4, 8, 2, 37, 64, 16, 12, CLATTN_VARIANT_FLASH, CLATTN_F32, 1, 0, 0},
        {3, 4, 4, 20, 40, 64, 5, CLATTN_VARIANT_FLASH, CLATTN_F16, 0, 0, 1},
        {4, 8, 8, 1, 64, 16, 20, CLATTN_VARIANT_FLASH, CLATTN_F32, 1, 1, 0},
        {4, 8, 2, 5, 64, 64, 18, CLATTN_VARIANT_AUTO, CLATTN_F32, 1, 0, 0}, /* Nk = 1152: the scheduler's decode */
    };
    const int n = (int)(sizeof cases / sizeof cases[0]);
    int bad = 0, bitwise = 0, ran = 0;
    double worst[3] = {0, 0, 0}, t0 = test_now_s();
    for (int i = 0; i < n; i++)
        if (!subset_skip(i))
            bad += !run_paged_case(&cases[i], test_seed() ^ (0x9a6edull + (uint64_t)i), worst, &bitwise), ran++;
    printf("kv paged: %d cases (pages of 16 and 64 keys in shuffled order, decode and flash), %d failed; worst |dO| vs "
           "reference: contiguous %.3g, paged %.3g; paged vs contiguous %.3g (%d of %d bitwise identical), %.1f s\n",
           ran, bad, worst[0], worst[1], worst[2], bitwise, ran, test_now_s() - t0);
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* Block tables the host check rejects before any kernel runs, and the other
 * validation branches of paged arguments: each with its own status, the
 * argument in the last-error text, and the outputs untouched. */
START_TEST(block_table_validation)
{
    clattn_context *ctx = ctx_get();
    const paged_case c = {3, 4, 2, 2, 32, 16, 6, CLATTN_VARIANT_DECODE, CLATTN_F32, 1, 0, 0};
    uint64_t rng = test_seed() ^ 0xb7;
    paged_world w;
    const size_t nq = (size_t)c.B * c.Hq * c.Nq * c.D, nl = (size_t)c.B * c.Hq * c.Nq;
    float *q = xmalloc(nq * 4);
    int32_t *bad_table;
    cl_mem mq, mpk, mpv, mt, mbad, ml, small;
    outbuf ob, lb;
    clattn_args a, b;
    clattn_attention_desc d = paged_desc(&c, CLATTN_VARIANT_DECODE);
    clattn_plan *plan = NULL;
    int n = 0, seq = -1;
    paged_world_make(&c, &rng, &w);
    test_fill_uniform(q, nq, 1, &rng);
    mq = upload(q, nq * 4);
    mpk = upload(w.pk, (size_t)w.num_pages * c.Hkv * c.ps * c.D * 4);
    mpv = upload(w.pv, (size_t)w.num_pages * c.Hkv * c.ps * c.D * 4);
    mt = upload(w.table, (size_t)c.B * c.max_pages * 4);
    ml = upload(w.lens, (size_t)c.B * 4);
    small = upload(NULL, 8);
    bad_table = xmalloc((size_t)c.B * c.max_pages * 4);
    out_make(&ob, 0, nq, 4);
    out_make(&lb, 0, nl, 4);
    a = paged_f32_args(&c, &w, mq, mpk, mpv, mt, ml, ob.mem, lb.mem);
    for (int s = 0; s < c.B; s++) /* a sequence with at least two pages */
        if (w.lens[s] > c.ps)
            seq = s;
    ck_assert_int_ge(seq, 0);
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
#define EXPECT(call, st, text)                                                                                     \
    do {                                                                                                           \
        clattn_status s_ = (call);                                                                                 \
        n++;                                                                                                       \
        ck_assert_msg(s_ == (st), "%s: got %s (%s), expected %s", #call, clattn_status_name(s_),                   \
                      clattn_context_last_error(ctx), clattn_status_name(st));                                     \
        ck_assert_msg(strstr(clattn_context_last_error(ctx), text) != NULL, "%s: last error '%s' lacks '%s'", #call, \
                      clattn_context_last_error(ctx), text);                                                       \
        ck_assert_msg(out_untouched(&ob) && out_untouched(&lb), "%s: failed but wrote an output", #call);         \
    } while (0)
    /* entries out of range where a sequence reads: -1, num_pages, a large value */
    {
        const int32_t vals[3] = {-1, (int32_t)w.num_pages, 0x7fffffff};
        char text[64];
        for (int i = 0; i < 3; i++) {
            memcpy(bad_table, w.table, (size_t)c.B * c.max_pages * 4);
            bad_table[seq * c.max_pages + 1] = vals[i];
            mbad = upload(bad_table, (size_t)c.B * c.max_pages * 4);
            b = a;
            b.block_table = mbad;
            snprintf(text, sizeof text, "block_table[%d][1] = %d", seq, (int)vals[i]);
            EXPECT(clattn_plan_run(plan, &b, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_BLOCK_TABLE, text);
            clReleaseMemObject(mbad);
        }
    }
    /* garbage past a sequence's length is never read: accepted */
    memcpy(bad_table, w.table, (size_t)c.B * c.max_pages * 4);
    for (int s = 0; s < c.B; s++)
        for (int j = (w.lens[s] + c.ps - 1) / c.ps; j < c.max_pages; j++)
            bad_table[s * c.max_pages + j] = j % 2 ? -7 : 1 << 30;
    mbad = upload(bad_table, (size_t)c.B * c.max_pages * 4);
    b = a;
    b.block_table = mbad;
    ck_assert_int_eq(clattn_plan_run(plan, &b, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
    ck_assert(out_read(&ob) && out_read(&lb));
    out_poison(&ob);
    out_poison(&lb);
    clReleaseMemObject(mbad);
    /* the plan's metadata */
    b = a;
    b.max_pages = c.max_pages + 1;
    EXPECT(clattn_plan_run(plan, &b, NULL, 0, NULL, NULL), CLATTN_ERROR_PLAN_MISMATCH, "plan");
    b = a;
    b.block_table = small;
    EXPECT(clattn_plan_run(plan, &b, NULL, 0, NULL, NULL), CLATTN_ERROR_BUFFER_TOO_SMALL, "block_table");
    b = a;
    b.block_table = NULL;
    b.has_block_table = 1;
    EXPECT(clattn_plan_run(plan, &b, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT, "block_table");
    b = a;
    b.block_table_offset = 2;
    EXPECT(clattn_plan_run(plan, &b, NULL, 0, NULL, NULL), CLATTN_ERROR_MISALIGNED, "block_table");
    clattn_plan_free(plan);
    plan = NULL;
    /* plan creation */
    b = a;
    b.page_size = 0;
    EXPECT(clattn_plan_create(ctx, &d, &b, &plan), CLATTN_ERROR_INVALID_BLOCK_TABLE, "page_size");
    b = a;
    b.page_size = c.ps * 2;
    EXPECT(clattn_plan_create(ctx, &d, &b, &plan), CLATTN_ERROR_INVALID_BLOCK_TABLE, "page pools");
    b = a;
    b.max_pages = 0;
    EXPECT(clattn_plan_create(ctx, &d, &b, &plan), CLATTN_ERROR_INVALID_BLOCK_TABLE, "max_pages");
    b = a;
    b.max_pages = 1 << 30;
    EXPECT(clattn_plan_create(ctx, &d, &b, &plan), CLATTN_ERROR_SIZE_OVERFLOW, "page_size * max_pages");
    b = a;
    b.v.shape[0] = w.num_pages - 1;
    EXPECT(clattn_plan_create(ctx, &d, &b, &plan), CLATTN_ERROR_INVALID_BLOCK_TABLE, "page pools");
    b = a;
    b.has_varlen = 1;
    b.total_q = 2, b.total_k = 2;
    EXPECT(clattn_plan_create(ctx, &d, &b, &plan), CLATTN_ERROR_INVALID_BLOCK_TABLE, "varlen");
    {
        /* the output's last bytes under the table's first */
        cl_mem big = upload(NULL, (nq + (size_t)c.B * c.max_pages) * 4);
        b = a;
        b.o.buffer = big;
        b.block_table = big;
        b.block_table_offset = (nq - 4) * 4;
        EXPECT(clattn_plan_create(ctx, &d, &b, &plan), CLATTN_ERROR_ALIASING, "block_table");
        clReleaseMemObject(big);
    }
    for (int v = CLATTN_VARIANT_NAIVE; v < CLATTN_VARIANT_COUNT_; v++) {
        clattn_attention_desc dv = d;
        if (v == CLATTN_VARIANT_FLASH || v == CLATTN_VARIANT_DECODE)
            continue;
        dv.variant = (clattn_variant)v;
        EXPECT(clattn_plan_create(ctx, &dv, &a, &plan), CLATTN_ERROR_UNSUPPORTED, "paged KV");
    }
#undef EXPECT
    printf("kv block table validation: %d bad calls rejected with their status, outputs untouched\n", n);
    out_free(&ob);
    out_free(&lb);
    clReleaseMemObject(mq), clReleaseMemObject(mpk), clReleaseMemObject(mpv), clReleaseMemObject(mt);
    clReleaseMemObject(ml), clReleaseMemObject(small);
    paged_world_free(&w);
    free(q);
    free(bad_table);
}
END_TEST

/* ------------------------------------------------------------ decode gaps */

/* What test_decode.c leaves open: GQA 8:1 with two kv heads, alignment to
 * each sequence's key length (lengths 0, 1, Nk and random per batch) for
 * Nq in {1, 2, 3, 16}, and the same alignment in every other variant that
 * has it (naive, tiled, flash). */
START_TEST(decode_gaps)
{
    static const int nqs[] = {1, 2, 3, 16};
    static const int nks[] = {1, 300, 4099};
    int n = 0, bad = 0;
    double worst = 0, t0 = test_now_s();
    uint64_t seed = test_seed() ^ 0x6a95ull;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 3; b++) {
            attn_case c;
            memset(&c, 0, sizeof c);
            c.variant = CLATTN_VARIANT_DECODE;
            c.Nq = nqs[a], c.Nk = nks[b], c.D = b == 1 ? 59 : 64, c.B = 4, c.Hq = 16, c.Hkv = 2;
            c.causal = 1, c.align = CLATTN_ALIGN_KEY_LENGTHS, c.key_lengths = 1, c.lse = 1;
            c.use_window = a == 2, c.wl = 37, c.wr = 0;
            if (subset_skip(a * 3 + b))
                continue;
            run_case_counted(&c, seed + (uint64_t)n, &n, &bad, &worst);
        }
    for (int v = 0; v < 3; v++) {
        static const clattn_variant vs[3] = {CLATTN_VARIANT_NAIVE, CLATTN_VARIANT_TILED, CLATTN_VARIANT_FLASH};
        attn_case c;
        memset(&c, 0, sizeof c);
        c.variant = vs[v];
        c.Nq = 37, c.Nk = 203, c.D = 32, c.B = 4, c.Hq = 8, c.Hkv = 1, c.causal = 1, c.lse = 1;
        c.align = CLATTN_ALIGN_KEY_LENGTHS, c.key_lengths = 1, c.alibi = v == 1;
        run_case_counted(&c, seed + (uint64_t)n, &n, &bad, &worst);
    }
    {
        /* Nq = 1 against 32768 keys, GQA 8:1, alignment to random key lengths */
        attn_case c;
        memset(&c, 0, sizeof c);
        c.variant = CLATTN_VARIANT_AUTO;
        c.Nq = 1, c.Nk = 32768, c.D = 128, c.B = 1, c.Hq = 16, c.Hkv = 2, c.lse = 1;
        c.causal = 1, c.align = CLATTN_ALIGN_KEY_LENGTHS, c.key_lengths = 1;
        run_case_counted(&c, seed + (uint64_t)n, &n, &bad, &worst);
    }
    printf("kv decode gaps: %d cases (GQA 16:2, key-length alignment, lengths 0/1/Nk/random), %d failed, worst |dO| "
           "%.3g, %.1f s\n",
           n, bad, worst, test_now_s() - t0);
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* ------------------------------------------------------------ the KV cache */

/* What the cache should hold: every appended row as stored (rounded to the
 * cache's dtype), [B, H, MAXN, D] and [B, H, MAXN, Dv], and the lengths. */
enum { MAXN = 256 };
typedef struct mirror {
    int B, H, D, Dv, ps;
    clattn_dtype dtype;
    float *k, *v;
    int32_t len[8];
} mirror;

static void mirror_make(mirror *m, int B, int H, int D, int Dv, int ps, clattn_dtype dtype)
{
    memset(m, 0, sizeof *m);
    m->B = B, m->H = H, m->D = D, m->Dv = Dv, m->ps = ps, m->dtype = dtype;
    m->k = xmalloc((size_t)B * H * MAXN * D * 4);
    m->v = xmalloc((size_t)B * H * MAXN * Dv * 4);
    for (size_t i = 0; i < (size_t)B * H * MAXN * D; i++)
        m->k[i] = NAN;
    for (size_t i = 0; i < (size_t)B * H * MAXN * Dv; i++)
        m->v[i] = NAN;
}

static void mirror_free(mirror *m)
{
    free(m->k);
    free(m->v);
}

static clattn_kvcache *cache_make(clattn_context *ctx, const mirror *m, int64_t capacity)
{
    clattn_kvcache_desc d;
    clattn_kvcache *kv = NULL;
    clattn_status st;
    memset(&d, 0, sizeof d);
    d.batch = m->B, d.kv_heads = m->H, d.head_dim = m->D, d.head_dim_v = m->Dv, d.dtype = m->dtype;
    d.capacity = capacity, d.page_size = m->ps;
    st = clattn_kvcache_create(ctx, &d, &kv);
    ck_assert_msg(st == CLATTN_SUCCESS, "kvcache_create: %s: %s", clattn_status_name(st),
                  clattn_context_last_error(ctx));
    return kv;
}

/* Append n_new random rows (src dtype, BHND or BSHD) to seq (< 0: all) with
 * optional counts, on the device and in the mirror; returns the status. */
static clattn_status cache_append(clattn_kvcache *kv, mirror *m, int seq, int n_new, const int32_t *counts,
                                  clattn_dtype src, int bshd, uint64_t *rng, int commit)
{
    const int nseq = seq < 0 ? m->B : 1, s0 = seq < 0 ? 0 : seq;
    const size_t es = clattn_dtype_size(src);
    const size_t nk = (size_t)nseq * m->H * n_new * m->D, nv = (size_t)nseq * m->H * n_new * m->Dv;
    void *hk = xmalloc(nk * es), *hv = xmalloc(nv * es);
    int64_t sk[4], sv[4];
    clattn_tensor tk, tv;
    cl_mem mk, mv;
    clattn_status st;
    layout(bshd, m->H, n_new, m->D, sk);
    layout(bshd, m->H, n_new, m->Dv, sv);
    for (size_t i = 0; i < nk; i++)
        elem_put(hk, src, i, 1.5f * test_rand_uniform(rng));
    for (size_t i = 0; i < nv; i++)
        elem_put(hv, src, i, test_rand_uniform(rng));
    mk = upload(hk, nk * es);
    mv = upload(hv, nv * es);
    tk = clattn_tensor_make(mk, 0, src, nseq, m->H, n_new, m->D);
    tv = clattn_tensor_make(mv, 0, src, nseq, m->H, n_new, m->Dv);
    memcpy(tk.strides, sk, sizeof sk);
    memcpy(tv.strides, sv, sizeof sv);
    st = clattn_kvcache_append(kv, seq, &tk, &tv, counts, NULL, 0, NULL, NULL);
    if (st == CLATTN_SUCCESS && commit) {
        for (int b = 0; b < nseq; b++) {
            const int s = s0 + b, c = counts ? counts[b] : n_new;
            ck_assert_int_le(m->len[s] + c, MAXN);
            for (int h = 0; h < m->H; h++)
                for (int t = 0; t < c; t++) {
                    for (int d = 0; d < m->D; d++)
                        m->k[(((size_t)s * m->H + h) * MAXN + (size_t)(m->len[s] + t)) * m->D + (size_t)d] =
                            rnd(m->dtype, elem_get(hk, src, at4(sk, b, h, t, d)));
                    for (int d = 0; d < m->Dv; d++)
                        m->v[(((size_t)s * m->H + h) * MAXN + (size_t)(m->len[s] + t)) * m->Dv + (size_t)d] =
                            rnd(m->dtype, elem_get(hv, src, at4(sv, b, h, t, d)));
                }
            m->len[s] += c;
        }
    }
    clFinish(g_q);
    clReleaseMemObject(mk);
    clReleaseMemObject(mv);
    free(hk);
    free(hv);
    return st;
}

/* The cache's lengths (host and device) and every stored row, bitwise. */
static void cache_check_contents(clattn_kvcache *kv, const mirror *m, const char *what)
{
    clattn_args a;
    int32_t len[8], dlen[8];
    int32_t *table = NULL;
    size_t kbytes = 0, vbytes = 0;
    unsigned char *hk, *hv;
    ck_assert_int_eq(clattn_kvcache_lengths(kv, len), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_kvcache_args(kv, &a), CLATTN_SUCCESS);
    download(a.key_lengths, 0, (size_t)m->B * 4, dlen);
    for (int b = 0; b < m->B; b++)
        ck_assert_msg(len[b] == m->len[b] && dlen[b] == m->len[b],
                      "%s: sequence %d has length %d (device %d), expected %d", what, b, len[b], dlen[b], m->len[b]);
    ck_assert_int_eq(clGetMemObjectInfo(a.k.buffer, CL_MEM_SIZE, sizeof kbytes, &kbytes, NULL), CL_SUCCESS);
    ck_assert_int_eq(clGetMemObjectInfo(a.v.buffer, CL_MEM_SIZE, sizeof vbytes, &vbytes, NULL), CL_SUCCESS);
    hk = xmalloc(kbytes);
    hv = xmalloc(vbytes);
    download(a.k.buffer, 0, kbytes, hk);
    download(a.v.buffer, 0, vbytes, hv);
    if (a.has_block_table) {
        table = xmalloc((size_t)(m->B * a.max_pages) * 4);
        download(a.block_table, 0, (size_t)(m->B * a.max_pages) * 4, table);
    }
    for (int b = 0; b < m->B; b++)
        for (int h = 0; h < m->H; h++)
            for (int n = 0; n < m->len[b]; n++) {
                int64_t outer = b, row = n;
                if (table) {
                    outer = table[b * a.max_pages + n / a.page_size];
                    row = n % a.page_size;
                    ck_assert_msg(outer >= 0 && outer < a.k.shape[0], "%s: table[%d][%d] = %lld", what, b,
                                  n / (int)a.page_size, (long long)outer);
                }
                for (int d = 0; d < m->D; d++) {
                    const size_t i = (size_t)(((outer * m->H + h) * a.k.shape[2] + row) * m->D + d);
                    const float want = m->k[(((size_t)b * m->H + h) * MAXN + (size_t)n) * m->D + (size_t)d];
                    ck_assert_msg(elem_get(hk, m->dtype, i) == want, "%s: k[%d][%d][%d][%d] = %g, appended %g", what, b, h,
                                  n, d, (double)elem_get(hk, m->dtype, i), (double)want);
                }
                for (int d = 0; d < m->Dv; d++) {
                    const size_t i = (size_t)(((outer * m->H + h) * a.v.shape[2] + row) * m->Dv + d);
                    const float want = m->v[(((size_t)b * m->H + h) * MAXN + (size_t)n) * m->Dv + (size_t)d];
                    ck_assert_msg(elem_get(hv, m->dtype, i) == want, "%s: v[%d][%d][%d][%d] = %g, appended %g", what, b, h,
                                  n, d, (double)elem_get(hv, m->dtype, i), (double)want);
                }
            }
    free(hk);
    free(hv);
    free(table);
}

/* Attention of Nq new queries against the cache, compared with the reference
 * on the mirror (key lengths = the sequences' lengths, causal aligned to
 * each). expect: the variant the scheduler must pick. */
static int cache_attend_check(clattn_context *ctx, clattn_kvcache *kv, const mirror *m, int Hq, int Nq, int causal,
                              clattn_variant expect, uint64_t *rng, double *worst, const char *what)
{
    const size_t es = clattn_dtype_size(m->dtype);
    const size_t nq = (size_t)m->B * Hq * Nq * m->D, no = (size_t)m->B * Hq * Nq * m->Dv, nl = (size_t)m->B * Hq * Nq;
    void *q = xmalloc(nq * es), *kk = xmalloc((size_t)m->B * m->H * MAXN * m->D * es),
         *vv = xmalloc((size_t)m->B * m->H * MAXN * m->Dv * es);
    float *ref_o = xmalloc(no * 4), *ref_l = xmalloc(nl * 4);
    clattn_attention_desc d, rd;
    clattn_host_args h;
    clattn_tensor tq, to, tl;
    outbuf ob, lb;
    cl_mem mq;
    clattn_status st;
    char msg[512];
    double eo, el;
    int ok;
    for (size_t i = 0; i < nq; i++)
        elem_put(q, m->dtype, i, test_rand_uniform(rng));
    for (size_t i = 0; i < (size_t)m->B * m->H * MAXN * m->D; i++)
        elem_put(kk, m->dtype, i, m->k[i]);
    for (size_t i = 0; i < (size_t)m->B * m->H * MAXN * m->Dv; i++)
        elem_put(vv, m->dtype, i, m->v[i]);
    memset(&d, 0, sizeof d);
    d.causal = causal;
    d.align = CLATTN_ALIGN_BOTTOM_RIGHT; /* in the cache: against each sequence's length */
    rd = d;
    rd.align = CLATTN_ALIGN_KEY_LENGTHS;
    memset(&h, 0, sizeof h);
    h.q = (clattn_host_tensor){q, m->dtype, {m->B, Hq, Nq, m->D}};
    h.k = (clattn_host_tensor){kk, m->dtype, {m->B, m->H, MAXN, m->D}};
    h.v = (clattn_host_tensor){vv, m->dtype, {m->B, m->H, MAXN, m->Dv}};
    h.o = (clattn_host_tensor){ref_o, CLATTN_F32, {m->B, Hq, Nq, m->Dv}};
    h.lse = (clattn_host_tensor){ref_l, CLATTN_F32, {m->B, Hq, Nq, 1}};
    h.key_lengths = m->len;
    ck_assert_int_eq(clattn_reference(&rd, &h), CLATTN_SUCCESS);
    mq = upload(q, nq * es);
    out_make(&ob, 3, no, 4);
    out_make(&lb, 3, nl, 4);
    tq = clattn_tensor_make(mq, 0, m->dtype, m->B, Hq, Nq, m->D);
    to = clattn_tensor_make(ob.mem, 3 * 4, CLATTN_F32, m->B, Hq, Nq, m->Dv);
    tl = clattn_tensor_make(lb.mem, 3 * 4, CLATTN_F32, m->B, Hq, Nq, 1);
    st = clattn_kvcache_attend(kv, &d, &tq, &to, &tl, NULL, 0, NULL, NULL);
    ck_assert_msg(st == CLATTN_SUCCESS, "%s: attend: %s: %s", what, clattn_status_name(st),
                  clattn_context_last_error(ctx));
    ck_assert_msg(out_read(&ob) && out_read(&lb), "%s: attend overwrote a canary", what);
    ck_assert_msg(clattn_kvcache_variant(kv) == expect, "%s: attend ran %s, expected %s", what,
                  clattn_variant_name(clattn_kvcache_variant(kv)), clattn_variant_name(expect));
    ok = check_result((float *)(ob.host + 12), ref_o, no, CLATTN_F32,
                      (float *)(lb.host + 12), ref_l, nl, &eo, &el, msg, sizeof msg);
    if (!ok)
        printf("FAIL %s: attend Nq=%d causal=%d: %s\n", what, Nq, causal, msg);
    *worst = eo > *worst ? eo : *worst;
    clReleaseMemObject(mq);
    out_free(&ob);
    out_free(&lb);
    free(q), free(kk), free(vv), free(ref_o), free(ref_l);
    return ok;
}

/* A cache's life: a prefill with per-sequence counts (one sequence empty),
 * forty single-token steps with decode in between, a long append to one
 * sequence, truncation and re-append (reused pages), a reset; growth from a
 * capacity of 8 on the way, contents checked bitwise after every phase and
 * attention (decode for Nq <= 16, flash above) against the reference. */
START_TEST(kvcache_life)
{
    static const struct {
        int ps;
        clattn_dtype dtype;
    } kinds[] = {{0, CLATTN_F32}, {16, CLATTN_F32}, {64, CLATTN_F32}, {16, CLATTN_F16}};
    const int k = _i;
    clattn_context *ctx = ctx_get();
    uint64_t rng = test_seed() ^ (0xcac4eull + (uint64_t)k);
    mirror m;
    clattn_kvcache *kv;
    char what[128];
    int bad = 0, attends = 0;
    double worst = 0, t0 = test_now_s();
    const int32_t counts[3] = {5, 0, 17};
    int64_t cap0;
    snprintf(what, sizeof what, "kvcache %s %s", kinds[k].ps ? "paged" : "contiguous", clattn_dtype_name(kinds[k].dtype));
    mirror_make(&m, 3, 2, 64, 48, kinds[k].ps, kinds[k].dtype);
    kv = cache_make(ctx, &m, 8);
    cap0 = clattn_kvcache_capacity(kv);
    ck_assert(clattn_kvcache_device_bytes(kv) > 0);
    /* empty: every row without a key */
    bad += !cache_attend_check(ctx, kv, &m, 8, 1, 1, CLATTN_VARIANT_DECODE, &rng, &worst, what), attends++;
    ck_assert_int_eq(cache_append(kv, &m, -1, 17, counts, CLATTN_F32, 0, &rng, 1), CLATTN_SUCCESS);
    cache_check_contents(kv, &m, what);
    bad += !cache_attend_check(ctx, kv, &m, 8, 1, 1, CLATTN_VARIANT_DECODE, &rng, &worst, what), attends++;
    bad += !cache_attend_check(ctx, kv, &m, 8, 20, 1, CLATTN_VARIANT_FLASH, &rng, &worst, what), attends++;
    for (int step = 0; step < 40; step++) {
        ck_assert_int_eq(cache_append(kv, &m, -1, 1, NULL, step % 10 == 3 ? CLATTN_F16 : CLATTN_F32, step % 2, &rng, 1),
                         CLATTN_SUCCESS);
        if (step % 10 == 9) {
            bad += !cache_attend_check(ctx, kv, &m, 8, 1, step < 20, CLATTN_VARIANT_DECODE, &rng, &worst, what);
            attends++;
        }
    }
    cache_check_contents(kv, &m, what);
    ck_assert_int_eq(cache_append(kv, &m, 1, 30, NULL, CLATTN_BF16, 1, &rng, 1), CLATTN_SUCCESS);
    cache_check_contents(kv, &m, what);
    bad += !cache_attend_check(ctx, kv, &m, 4, 3, 1, CLATTN_VARIANT_DECODE, &rng, &worst, what), attends++;
    ck_assert_int_eq(clattn_kvcache_set_length(kv, 0, 3, NULL), CLATTN_SUCCESS);
    m.len[0] = 3;
    cache_check_contents(kv, &m, what);
    ck_assert_int_eq(cache_append(kv, &m, 0, 50, NULL, CLATTN_F32, 0, &rng, 1), CLATTN_SUCCESS);
    cache_check_contents(kv, &m, what);
    bad += !cache_attend_check(ctx, kv, &m, 8, 17, 1, CLATTN_VARIANT_FLASH, &rng, &worst, what), attends++;
    bad += !cache_attend_check(ctx, kv, &m, 8, 16, 0, CLATTN_VARIANT_DECODE, &rng, &worst, what), attends++;
    ck_assert_int_eq(clattn_kvcache_set_length(kv, -1, 0, NULL), CLATTN_SUCCESS);
    memset(m.len, 0, sizeof m.len);
    cache_check_contents(kv, &m, what);
    bad += !cache_attend_check(ctx, kv, &m, 2, 2, 1, CLATTN_VARIANT_DECODE, &rng, &worst, what), attends++;
    ck_assert_int_eq(cache_append(kv, &m, -1, 2, NULL, CLATTN_F32, 0, &rng, 1), CLATTN_SUCCESS);
    cache_check_contents(kv, &m, what);
    bad += !cache_attend_check(ctx, kv, &m, 8, 1, 1, CLATTN_VARIANT_DECODE, &rng, &worst, what), attends++;
    printf("%s: capacity %lld -> %lld keys per sequence, %zu device bytes; %d attends, %d failed, worst |dO| %.3g, "
           "%.1f s\n",
           what, (long long)cap0, (long long)clattn_kvcache_capacity(kv), clattn_kvcache_device_bytes(kv), attends,
           bad, worst, test_now_s() - t0);
    ck_assert_int_gt(clattn_kvcache_capacity(kv), cap0); /* it grew on the way */
    clattn_kvcache_free(kv);
    mirror_free(&m);
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* Every validation branch of the cache's calls: status, argument named, and
 * the cache (lengths, contents) or the output unchanged. */
START_TEST(kvcache_validation)
{
    clattn_context *ctx = ctx_get();
    uint64_t rng = test_seed() ^ 0x7a1;
    mirror m;
    clattn_kvcache *kv, *out = NULL;
    clattn_kvcache_desc d;
    int n = 0;
    mirror_make(&m, 3, 2, 16, 16, 4, CLATTN_F32);
    kv = cache_make(ctx, &m, 8);
    ck_assert_int_eq(cache_append(kv, &m, -1, 5, NULL, CLATTN_F32, 0, &rng, 1), CLATTN_SUCCESS);
#define EXPECT(call, st, text)                                                                                     \
    do {                                                                                                           \
        clattn_status s_ = (call);                                                                                 \
        n++;                                                                                                       \
        ck_assert_msg(s_ == (st), "%s: got %s (%s), expected %s", #call, clattn_status_name(s_),                   \
                      clattn_context_last_error(ctx), clattn_status_name(st));                                     \
        ck_assert_msg(strstr(clattn_context_last_error(ctx), text) != NULL, "%s: last error '%s' lacks '%s'", #call, \
                      clattn_context_last_error(ctx), text);                                                       \
    } while (0)
    /* create */
    {
        struct {
            int field;
            int64_t value;
            clattn_status st;
            const char *text;
        } bad[] = {
            {0, 0, CLATTN_ERROR_INVALID_SHAPE, "desc.batch"},       {1, -2, CLATTN_ERROR_INVALID_SHAPE, "desc.kv_heads"},
            {2, 0, CLATTN_ERROR_HEAD_DIM, "desc.head_dim"},         {2, 257, CLATTN_ERROR_HEAD_DIM, "desc.head_dim"},
            {3, -1, CLATTN_ERROR_HEAD_DIM, "desc.head_dim_v"},      {4, 7, CLATTN_ERROR_INVALID_DTYPE, "desc.dtype"},
            {5, -1, CLATTN_ERROR_INVALID_VALUE, "desc.capacity"},   {6, -3, CLATTN_ERROR_INVALID_VALUE, "desc.page_size"},
            {5, 0x7fffffff, CLATTN_ERROR_DEVICE_LIMIT, "desc"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            memset(&d, 0, sizeof d);
            d.batch = 2, d.kv_heads = 2, d.head_dim = 64, d.dtype = CLATTN_F32;
            switch (bad[i].field) {
            case 0: d.batch = bad[i].value; break;
            case 1: d.kv_heads = bad[i].value; break;
            case 2: d.head_dim = bad[i].value; break;
            case 3: d.head_dim_v = bad[i].value; break;
            case 4: d.dtype = (clattn_dtype)bad[i].value; break;
            case 5: d.capacity = bad[i].value; break;
            default: d.page_size = bad[i].value; break;
            }
            EXPECT(clattn_kvcache_create(ctx, &d, &out), bad[i].st, bad[i].text);
            ck_assert_ptr_null(out);
        }
        EXPECT(clattn_kvcache_create(ctx, NULL, &out), CLATTN_ERROR_NULL_ARGUMENT, "desc");
        ck_assert_int_eq(clattn_kvcache_create(NULL, &d, &out), CLATTN_ERROR_NULL_ARGUMENT);
    }
    /* append */
    {
        float buf[3 * 2 * 4 * 16];
        cl_mem mk = upload(buf, sizeof buf), small = upload(NULL, 16);
        clattn_tensor tk = clattn_tensor_make(mk, 0, CLATTN_F32, 3, 2, 4, 16), tv = tk, b;
        clattn_args a;
        int32_t counts[3] = {1, 5, 0};
        test_fill_uniform(buf, sizeof buf / 4, 1, &rng);
        clEnqueueWriteBuffer(g_q, mk, CL_TRUE, 0, sizeof buf, buf, 0, NULL, NULL);
        EXPECT(clattn_kvcache_append(kv, 3, &tk, &tv, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_KVCACHE_RANGE, "seq");
        EXPECT(clattn_kvcache_append(kv, -1, NULL, &tv, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT, "k");
        EXPECT(clattn_kvcache_append(kv, -1, &tk, &tv, NULL, NULL, 2, NULL, NULL), CLATTN_ERROR_INVALID_VALUE, "wait");
        EXPECT(clattn_kvcache_append(kv, 0, &tk, &tv, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_SHAPE, "k:");
        b = tk, b.shape[1] = 1;
        EXPECT(clattn_kvcache_append(kv, -1, &b, &tv, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_SHAPE, "k:");
        b = tv, b.shape[2] = 3;
        EXPECT(clattn_kvcache_append(kv, -1, &tk, &b, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_SHAPE, "v:");
        b = tv, b.dtype = CLATTN_F16;
        EXPECT(clattn_kvcache_append(kv, -1, &tk, &b, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_DTYPE, "v:");
        EXPECT(clattn_kvcache_append(kv, -1, &tk, &tv, counts, NULL, 0, NULL, NULL), CLATTN_ERROR_KVCACHE_RANGE,
               "counts[1]");
        counts[1] = -1;
        EXPECT(clattn_kvcache_append(kv, -1, &tk, &tv, counts, NULL, 0, NULL, NULL), CLATTN_ERROR_KVCACHE_RANGE,
               "counts[1]");
        b = tk, b.buffer = small;
        EXPECT(clattn_kvcache_append(kv, -1, &b, &tv, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_BUFFER_TOO_SMALL, "k:");
        b = tk, b.buffer = NULL;
        EXPECT(clattn_kvcache_append(kv, -1, &b, &tv, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT, "k:");
        b = tk, b.offset = 3;
        EXPECT(clattn_kvcache_append(kv, -1, &b, &tv, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_MISALIGNED, "k:");
        clattn_kvcache_args(kv, &a);
        b = a.v, b.shape[0] = 3, b.shape[1] = 2, b.shape[2] = 4, b.shape[3] = 16;
        memset(b.strides, 0, sizeof b.strides);
        EXPECT(clattn_kvcache_append(kv, -1, &tk, &b, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_ALIASING, "v:");
        ck_assert_int_eq(clattn_kvcache_append(NULL, -1, &tk, &tv, NULL, NULL, 0, NULL, NULL),
                         CLATTN_ERROR_NULL_ARGUMENT);
        cache_check_contents(kv, &m, "after bad appends");
        clReleaseMemObject(mk);
        clReleaseMemObject(small);
    }
    /* set_length */
    EXPECT(clattn_kvcache_set_length(kv, 1, 6, NULL), CLATTN_ERROR_KVCACHE_RANGE, "length");
    EXPECT(clattn_kvcache_set_length(kv, -1, -1, NULL), CLATTN_ERROR_KVCACHE_RANGE, "length");
    EXPECT(clattn_kvcache_set_length(kv, 5, 0, NULL), CLATTN_ERROR_KVCACHE_RANGE, "seq");
    cache_check_contents(kv, &m, "after bad set_length");
    /* attend */
    {
        float hq[3 * 4 * 2 * 16];
        cl_mem mq;
        outbuf ob;
        clattn_tensor q, o, b;
        test_fill_uniform(hq, sizeof hq / 4, 1, &rng);
        mq = upload(hq, sizeof hq);
        out_make(&ob, 0, 3 * 4 * 2 * 16, 4);
        q = clattn_tensor_make(mq, 0, CLATTN_F32, 3, 4, 2, 16);
        o = clattn_tensor_make(ob.mem, 0, CLATTN_F32, 3, 4, 2, 16);
        b = q, b.dtype = CLATTN_F16;
        EXPECT(clattn_kvcache_attend(kv, NULL, &b, &o, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_DTYPE, "q:");
        b = q, b.shape[0] = 2;
        EXPECT(clattn_kvcache_attend(kv, NULL, &b, &o, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_SHAPE, "q:");
        b = q, b.shape[1] = 3;
        EXPECT(clattn_kvcache_attend(kv, NULL, &b, &o, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_INVALID_SHAPE, "o:");
        EXPECT(clattn_kvcache_attend(kv, NULL, &q, NULL, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT, "o");
        b = o, b.shape[1] = 3, q.shape[1] = 3;
        EXPECT(clattn_kvcache_attend(kv, NULL, &q, &b, NULL, NULL, 0, NULL, NULL), CLATTN_ERROR_HEAD_MISMATCH, "q, k");
        q.shape[1] = 4;
        ck_assert(out_untouched(&ob));
        ck_assert_int_eq(clattn_kvcache_attend(kv, NULL, &q, &o, NULL, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
        ck_assert(out_read(&ob));
        clReleaseMemObject(mq);
        out_free(&ob);
    }
#undef EXPECT
    printf("kv cache validation: %d bad calls rejected with their status, cache and outputs unchanged\n", n);
    clattn_kvcache_free(kv);
    clattn_kvcache_free(NULL);
    mirror_free(&m);
}
END_TEST

/* ------------------------------------------------------------ fault injection */

/* The sweeps run on a cl_context of the test's own, adopted by a clattn
 * context, so that its reference count shows a leaked OpenCL object. */
static struct fault_world {
    cl_context ctx;
    cl_device_id dev;
    cl_command_queue queue;
    clattn_context *cctx;
    cl_uint refs; /* with only the clattn context (and its cached programs) alive */
} fw;

static const cl_int fault_codes[] = {
    CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_OUT_OF_RESOURCES,      CL_OUT_OF_HOST_MEMORY,
    CL_BUILD_PROGRAM_FAILURE,         CL_INVALID_COMMAND_QUEUE, (cl_int)CLATTN_CL_PLATFORM_NOT_FOUND_KHR,
};
enum { NCODES = sizeof fault_codes / sizeof fault_codes[0] };

static void fw_setup(void)
{
    unsigned pi = 0, di = 0;
    cl_platform_id plats[64];
    cl_device_id devs[64];
    cl_uint np = 0, nd = 0;
    cl_int err = CL_SUCCESS;
    clattn__fault_inject(0, 0);
    memset(&fw, 0, sizeof fw);
    ck_assert_int_eq(clattn_device_select(NULL, &pi, &di), CLATTN_SUCCESS);
    ck_assert_int_eq(clGetPlatformIDs(64, plats, &np), CL_SUCCESS);
    ck_assert_uint_lt(pi, np);
    ck_assert_int_eq(clGetDeviceIDs(plats[pi], CL_DEVICE_TYPE_ALL, 64, devs, &nd), CL_SUCCESS);
    ck_assert_uint_lt(di, nd);
    fw.dev = devs[di];
    fw.ctx = clCreateContext(NULL, 1, &fw.dev, NULL, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    fw.queue = clCreateCommandQueue(fw.ctx, fw.dev, 0, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    ck_assert_int_eq(clattn_context_adopt(fw.ctx, fw.dev, fw.queue, &fw.cctx), CLATTN_SUCCESS);
    g_cl = fw.ctx, g_q = fw.queue; /* upload() and friends work in this context */
}

static void fw_teardown(void)
{
    clattn__fault_inject(0, 0);
    clattn_context_free(fw.cctx);
    if (fw.queue)
        clReleaseCommandQueue(fw.queue);
    if (fw.ctx)
        clReleaseContext(fw.ctx);
    memset(&fw, 0, sizeof fw);
    g_cl = NULL, g_q = NULL;
}

typedef struct sweep {
    const char *name;
    long calls, failed, tolerated;
    double t0;
} sweep;

static void sweep_begin(sweep *s, const char *name, long calls)
{
    memset(s, 0, sizeof *s);
    s->name = name, s->calls = calls, s->t0 = test_now_s();
    ck_assert_msg(calls > 0, "%s: no call through the dispatch layer counted", name);
}

static void sweep_end(const sweep *s)
{
    printf("kv faults: %-40s %4ld calls x %d codes: %4ld failed cleanly, %3ld tolerated (result verified), %.1f s\n",
           s->name, s->calls, NCODES, s->failed, s->tolerated, test_now_s() - s->t0);
    ck_assert_int_eq(s->failed + s->tolerated, s->calls * NCODES);
    ck_assert_msg(s->failed > 0, "%s: no injected fault made the operation fail", s->name);
}

/* Stop injecting; the operation must have reached the nth call. */
static void fault_off(const sweep *s, long n)
{
    const long reached = clattn__fault_calls();
    clattn__fault_inject(0, 0);
    ck_assert_msg(reached >= n, "%s: fault %ld not reached (%ld calls): the operation's calls vary", s->name, n,
                  reached);
}

static void assert_failure(const sweep *s, clattn_status st, cl_int code, long n)
{
    ck_assert_msg(st == clattn_status_from_cl(code) || st == CLATTN_ERROR_OUT_OF_HOST_MEMORY ||
                      (code == CL_BUILD_PROGRAM_FAILURE && st == CLATTN_ERROR_BUILD),
                  "%s: fault %ld: injected %s, got %s", s->name, n, clattn_status_name(clattn_status_from_cl(code)),
                  clattn_status_name(st));
    ck_assert_msg(clattn_context_last_error(fw.cctx)[0] != '\0', "%s: fault %ld: failed without a message", s->name,
                  n);
}

static void assert_no_leak(const sweep *s, long n, cl_uint expected)
{
    const cl_uint c = test_ctx_refs_settled(fw.ctx, fw.queue, expected);
    ck_assert_msg(c == expected, "%s: fault %ld: cl_context reference count %u, expected %u: an OpenCL object leaked",
                  s->name, n, c, expected);
}

/* clattn_merge of 2 parts (one launch) and of 6 (two launches through scratch). */
START_TEST(faults_merge)
{
    const int parts = _i ? 6 : 2;
    enum { B = 1, H = 2, N = 3, DV = 8 };
    const size_t no = B * H * N * DV, nl = B * H * N;
    uint64_t rng = test_seed() ^ 0xfa3;
    float *ho = xmalloc(no * 4 * 6), *hl = xmalloc(nl * 4 * 6), expect[B * H * N * DV];
    cl_mem mo[6], ml[6];
    clattn_tensor to[6], tl[6], o, lse;
    outbuf ob, lb;
    sweep s;
    long calls;
    char name[64];
    fw_setup();
    test_fill_uniform(ho, no * 6, 1, &rng);
    test_fill_uniform(hl, nl * 6, 3, &rng);
    for (size_t r = 0; r < nl; r++) /* part 1 empty everywhere */
        hl[nl + r] = -INFINITY;
    for (size_t r = 0; r < nl; r++) {
        double m = -INFINITY, ws = 0;
        for (int p = 0; p < parts; p++)
            m = hl[p * nl + r] > m ? hl[p * nl + r] : m;
        for (int p = 0; p < parts; p++)
            ws += exp((double)hl[p * nl + r] - m);
        for (int d = 0; d < DV; d++) {
            double x = 0;
            for (int p = 0; p < parts; p++)
                if (!isinf(hl[p * nl + r]))
                    x += exp((double)hl[p * nl + r] - m) * ho[p * no + r * DV + (size_t)d];
            expect[r * DV + (size_t)d] = (float)(x / ws);
        }
    }
    for (int p = 0; p < parts; p++) {
        mo[p] = upload(ho + p * no, no * 4);
        ml[p] = upload(hl + p * nl, nl * 4);
        to[p] = clattn_tensor_make(mo[p], 0, CLATTN_F32, B, H, N, DV);
        tl[p] = clattn_tensor_make(ml[p], 0, CLATTN_F32, B, H, N, 1);
    }
    out_make(&ob, 0, no, 4);
    out_make(&lb, 0, nl, 4);
    o = clattn_tensor_make(ob.mem, 0, CLATTN_F32, B, H, N, DV);
    lse = clattn_tensor_make(lb.mem, 0, CLATTN_F32, B, H, N, 1);
    ck_assert_int_eq(clattn_merge(fw.cctx, parts, to, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_SUCCESS); /* warm */
    fw.refs = test_ctx_refs_stable(fw.ctx, fw.queue);
    clattn__fault_inject(0, 0);
    ck_assert_int_eq(clattn_merge(fw.cctx, parts, to, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
    calls = clattn__fault_calls();
    snprintf(name, sizeof name, "clattn_merge(%d parts)", parts);
    sweep_begin(&s, name, calls);
    for (long n = 1; n <= calls; n++)
        for (int c = 0; c < NCODES; c++) {
            clattn_status st;
            cl_event ev = NULL;
            out_poison(&ob);
            out_poison(&lb);
            clattn__fault_inject(n, fault_codes[c]);
            st = clattn_merge(fw.cctx, parts, to, tl, &o, &lse, NULL, 0, NULL, &ev);
            fault_off(&s, n);
            clFinish(fw.queue);
            if (st == CLATTN_SUCCESS) {
                s.tolerated++;
                ck_assert_ptr_nonnull(ev);
                clReleaseEvent(ev);
                ck_assert(out_read(&ob) && out_read(&lb));
                {
                    clattn_compare_result r = clattn_compare_f32((float *)ob.host, expect, no);
                    ck_assert_msg(clattn_compare_ok(&r, 1e-5, 1e-4, 1e-7), "%s: fault %ld tolerated: max_err %g",
                                  s.name, n, r.max_abs_err);
                }
            } else {
                s.failed++;
                assert_failure(&s, st, fault_codes[c], n);
                ck_assert_msg(ev == NULL, "%s: failed call returned an event", s.name);
                ck_assert_msg(out_untouched(&ob) && out_untouched(&lb), "%s: fault %ld: outputs written", s.name, n);
            }
            assert_no_leak(&s, n, fw.refs);
            /* the next call succeeds and is right */
            ck_assert_int_eq(clattn_merge(fw.cctx, parts, to, tl, &o, &lse, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
            ck_assert(out_read(&ob) && out_read(&lb));
            {
                clattn_compare_result r = clattn_compare_f32((float *)ob.host, expect, no);
                ck_assert_msg(clattn_compare_ok(&r, 1e-5, 1e-4, 1e-7), "%s: after fault %ld: max_err %g", s.name, n,
                              r.max_abs_err);
            }
        }
    sweep_end(&s);
    for (int p = 0; p < parts; p++)
        clReleaseMemObject(mo[p]), clReleaseMemObject(ml[p]);
    out_free(&ob);
    out_free(&lb);
    free(ho);
    free(hl);
    fw_teardown();
}
END_TEST

/* Cache creation, and an append that grows the storage (contiguous: a larger
 * allocation and a copy; paged: a larger pool and a wider block table): a
 * failure leaves the cache as it was (lengths and contents), success gives
 * the appended rows, and the next append works. */
START_TEST(faults_kvcache)
{
    const int ps = _i ? 4 : 0;
    uint64_t rng = test_seed() ^ (0xfa4ull + (uint64_t)ps);
    mirror m;
    clattn_kvcache *kv = NULL;
    sweep s;
    long calls;
    char name[64];
    fw_setup();
    mirror_make(&m, 2, 2, 8, 8, ps, CLATTN_F32);
    /* warm the program cache of the adopted context */
    kv = cache_make(fw.cctx, &m, 8);
    ck_assert_int_eq(cache_append(kv, &m, -1, 8, NULL, CLATTN_F32, 0, &rng, 0), CLATTN_SUCCESS);
    clattn_kvcache_free(kv);
    fw.refs = test_ctx_refs_stable(fw.ctx, fw.queue);

    /* creation */
    {
        clattn_kvcache_desc d;
        memset(&d, 0, sizeof d);
        d.batch = m.B, d.kv_heads = m.H, d.head_dim = m.D, d.dtype = CLATTN_F32, d.capacity = 8, d.page_size = ps;
        clattn__fault_inject(0, 0);
        ck_assert_int_eq(clattn_kvcache_create(fw.cctx, &d, &kv), CLATTN_SUCCESS);
        calls = clattn__fault_calls();
        clattn_kvcache_free(kv);
        snprintf(name, sizeof name, "clattn_kvcache_create(%s)", ps ? "paged" : "contiguous");
        sweep_begin(&s, name, calls);
        for (long n = 1; n <= calls; n++)
            for (int c = 0; c < NCODES; c++) {
                clattn_status st;
                kv = (clattn_kvcache *)&s;
                clattn__fault_inject(n, fault_codes[c]);
                st = clattn_kvcache_create(fw.cctx, &d, &kv);
                fault_off(&s, n);
                if (st == CLATTN_SUCCESS) {
                    s.tolerated++;
                    clattn_kvcache_free(kv);
                } else {
                    s.failed++;
                    assert_failure(&s, st, fault_codes[c], n);
                    ck_assert_ptr_null(kv);
                }
                assert_no_leak(&s, n, fw.refs);
            }
        sweep_end(&s);
    }

    /* an append that grows the storage, on a full cache */
    {
        mirror m0;
        clattn_status st;
        kv = cache_make(fw.cctx, &m, 8);
        ck_assert_int_eq(cache_append(kv, &m, -1, 8, NULL, CLATTN_F32, 0, &rng, 1), CLATTN_SUCCESS);
        clattn__fault_inject(0, 0);
        ck_assert_int_eq(cache_append(kv, &m, -1, 5, NULL, CLATTN_F32, 1, &rng, 1), CLATTN_SUCCESS);
        calls = clattn__fault_calls();
        ck_assert_int_gt(clattn_kvcache_capacity(kv), 8);
        cache_check_contents(kv, &m, "count");
        clattn_kvcache_free(kv);
        snprintf(name, sizeof name, "clattn_kvcache_append(grow, %s)", ps ? "paged" : "contiguous");
        sweep_begin(&s, name, calls);
        for (long n = 1; n <= calls; n++)
            for (int c = 0; c < NCODES; c++) {
                memset(m.len, 0, sizeof m.len);
                kv = cache_make(fw.cctx, &m, 8);
                ck_assert_int_eq(cache_append(kv, &m, -1, 8, NULL, CLATTN_F32, 0, &rng, 1), CLATTN_SUCCESS);
                m0 = m;
                clattn__fault_inject(n, fault_codes[c]);
                st = cache_append(kv, &m, -1, 5, NULL, CLATTN_F32, 1, &rng, 1);
                fault_off(&s, n);
                if (st == CLATTN_SUCCESS) {
                    s.tolerated++;
                    ck_assert_int_gt(clattn_kvcache_capacity(kv), 8);
                } else {
                    s.failed++;
                    assert_failure(&s, st, fault_codes[c], n);
                    ck_assert_int_eq(memcmp(m0.len, m.len, sizeof m.len), 0);
                    ck_assert_int_eq(clattn_kvcache_capacity(kv), 8);
                }
                cache_check_contents(kv, &m, s.name); /* unchanged, or with the new rows */
                ck_assert_int_eq(cache_append(kv, &m, -1, 5, NULL, CLATTN_F32, 1, &rng, 1), CLATTN_SUCCESS);
                cache_check_contents(kv, &m, s.name);
                clattn_kvcache_free(kv);
                assert_no_leak(&s, n, fw.refs);
            }
        sweep_end(&s);
    }
    mirror_free(&m);
    fw_teardown();
}
END_TEST

/* Runs of a paged decode plan (the host check of the block table, the split
 * pass and the merge): outputs untouched or complete, the next run works. */
START_TEST(faults_paged_decode)
{
    const paged_case c = {2, 4, 2, 2, 16, 4, 5, CLATTN_VARIANT_DECODE, CLATTN_F32, 1, 0, 0};
    uint64_t rng = test_seed() ^ 0xfa5;
    paged_world w;
    const size_t nq = (size_t)c.B * c.Hq * c.Nq * c.D, nl = (size_t)c.B * c.Hq * c.Nq;
    float *q = xmalloc(nq * 4), *ref_o = xmalloc(nq * 4), *ref_l = xmalloc(nl * 4);
    cl_mem mq, mpk, mpv, mt, ml;
    outbuf ob, lb;
    clattn_args a;
    clattn_attention_desc d = paged_desc(&c, CLATTN_VARIANT_DECODE);
    clattn_host_args h;
    clattn_plan *plan = NULL;
    sweep s;
    long calls;
    char msg[256];
    double eo, el;
    fw_setup();
    paged_world_make(&c, &rng, &w);
    test_fill_uniform(q, nq, 1, &rng);
    memset(&h, 0, sizeof h);
    h.q = (clattn_host_tensor){q, CLATTN_F32, {c.B, c.Hq, c.Nq, c.D}};
    h.k = (clattn_host_tensor){w.kc, CLATTN_F32, {c.B, c.Hkv, w.Nk, c.D}};
    h.v = (clattn_host_tensor){w.vc, CLATTN_F32, {c.B, c.Hkv, w.Nk, c.D}};
    h.o = (clattn_host_tensor){ref_o, CLATTN_F32, {c.B, c.Hq, c.Nq, c.D}};
    h.lse = (clattn_host_tensor){ref_l, CLATTN_F32, {c.B, c.Hq, c.Nq, 1}};
    h.key_lengths = w.lens;
    ck_assert_int_eq(clattn_reference(&d, &h), CLATTN_SUCCESS);
    mq = upload(q, nq * 4);
    mpk = upload(w.pk, (size_t)w.num_pages * c.Hkv * c.ps * c.D * 4);
    mpv = upload(w.pv, (size_t)w.num_pages * c.Hkv * c.ps * c.D * 4);
    mt = upload(w.table, (size_t)c.B * c.max_pages * 4);
    ml = upload(w.lens, (size_t)c.B * 4);
    out_make(&ob, 0, nq, 4);
    out_make(&lb, 0, nl, 4);
    a = paged_f32_args(&c, &w, mq, mpk, mpv, mt, ml, ob.mem, lb.mem);
    ck_assert_int_eq(clattn_plan_create(fw.cctx, &d, &a, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
    fw.refs = test_ctx_refs_stable(fw.ctx, fw.queue);
    clattn__fault_inject(0, 0);
    ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
    calls = clattn__fault_calls();
    sweep_begin(&s, "clattn_plan_run(decode, paged K/V)", calls);
    for (long n = 1; n <= calls; n++)
        for (int k = 0; k < NCODES; k++) {
            clattn_status st;
            out_poison(&ob);
            out_poison(&lb);
            clattn__fault_inject(n, fault_codes[k]);
            st = clattn_plan_run(plan, &a, NULL, 0, NULL, NULL);
            fault_off(&s, n);
            clFinish(fw.queue);
            if (st == CLATTN_SUCCESS) {
                s.tolerated++;
                ck_assert(out_read(&ob) && out_read(&lb));
                ck_assert_msg(check_result((float *)ob.host, ref_o, nq, CLATTN_F32, (float *)lb.host, ref_l, nl, &eo,
                                           &el, msg, sizeof msg),
                              "%s: fault %ld tolerated, wrong result: %s", s.name, n, msg);
            } else {
                s.failed++;
                assert_failure(&s, st, fault_codes[k], n);
                ck_assert_msg(out_untouched(&ob) && out_untouched(&lb), "%s: fault %ld: outputs written", s.name, n);
            }
            assert_no_leak(&s, n, fw.refs);
            ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
            ck_assert(out_read(&ob) && out_read(&lb));
            ck_assert_msg(check_result((float *)ob.host, ref_o, nq, CLATTN_F32, (float *)lb.host, ref_l, nl, &eo, &el,
                                       msg, sizeof msg),
                          "%s: run after fault %ld: %s", s.name, n, msg);
        }
    sweep_end(&s);
    clattn_plan_free(plan);
    out_free(&ob);
    out_free(&lb);
    clReleaseMemObject(mq), clReleaseMemObject(mpk), clReleaseMemObject(mpv), clReleaseMemObject(mt);
    clReleaseMemObject(ml);
    paged_world_free(&w);
    free(q), free(ref_o), free(ref_l);
    fw_teardown();
}
END_TEST

Suite *suite_kv(void)
{
    Suite *s = suite_create("kv");
    TCase *tc = tcase_create("kv");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, merge_exact);
    tcase_add_test(tc, merge_device_parts);
    tcase_add_test(tc, merge_validation);
    tcase_add_test(tc, paged_vs_contiguous);
    tcase_add_test(tc, block_table_validation);
    tcase_add_test(tc, decode_gaps);
    tcase_add_loop_test(tc, kvcache_life, 0, 4);
    tcase_add_test(tc, kvcache_validation);
    tcase_add_loop_test(tc, faults_merge, 0, 2);
    tcase_add_loop_test(tc, faults_kvcache, 0, 2);
    tcase_add_test(tc, faults_paged_decode);
    suite_add_tcase(s, tc);
    return s;
}
