/*
 * check.c - `clattn check`: random attention cases drawn the way TESTING.md
 * asks (odd head dims and lengths, GQA, every mask and score modifier, key
 * lengths 0 and 1, 16-bit storage, strided BSHD views, scaled inputs, NaN in
 * masked-out K/V), each run on the device with poisoned outputs and canaries
 * and compared with the CPU reference on the same rounded inputs.
 *
 * Case i depends only on (seed, i) and the variant list, so any case can be
 * run alone again (--case i). Kernel specialisations are costly to compile
 * (about a second each on PoCL), so most cases draw their specialisation
 * (variant, head dims, dtype, feature switches) from a palette of
 * CHECK_PALETTE drawn from the seed alone and vary everything else freely;
 * one in CHECK_FRESH draws a fresh one. Different seeds cover other palettes.
 *
 * Hidden for the tool's own tests: CLATTN_CHECK_FORCE_FAIL=K puts a NaN in
 * the device result of case K after it is read back, so that case fails the
 * comparison like a wrong kernel would.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clattn.h"
#include "cli.h"

#define CHECK_PALETTE 32
#define CHECK_FRESH 32          /* one case in this many draws a fresh specialisation */
#define CHECK_FLOPS 2e7         /* dense 4*B*Hq*Nq*Nk*D of most cases ... */
#define CHECK_FLOPS_LARGE 2e8   /* ... and of one in CHECK_LARGE */
#define CHECK_LARGE 32
#define CANARY 64               /* elements after each output (and `offset` before) that must stay poisoned */
#define POISON 0xFF             /* NaN in f32, f16 and bf16 */
#define MAX_VARIANTS 16
#define MAX_REASONS 32

const char usage_check[] =
    "usage: clattn check [options]\n"
    "\n"
    "Run random attention cases on a device and compare each with the double-precision\n"
    "CPU reference: head dims 1..256, odd lengths, GQA/MQA, causal (both alignments),\n"
    "sliding windows, softcap, ALiBi, additive bias (broadcast, -inf entries), key\n"
    "lengths (0 and 1 included), f32/f16/bf16 storage, strided BSHD views, scaled inputs\n"
    "and NaN in masked-out keys. Outputs are poisoned before the run and a 64-element\n"
    "canary after O and LSE must stay untouched. Case i depends only on the seed, i and\n"
    "--variants: every failure prints the command that runs it again.\n"
    "\n"
    "  --count N          number of cases (default 100; 1 with --case)\n"
    "  --seed S           64-bit unsigned seed (default: from the clock, printed)\n"
    "  --case I           start at case I (alone, unless --count says more)\n"
    "  --variants LIST    comma-separated variants to draw from (default naive,tiled,flash)\n"
    "  --device SPEC      P:D, cpu|gpu|accelerator or a name substring\n"
    "  --json FILE|-      also write a JSON summary (- = stdout; the report goes to stderr)\n"
    "\n"
    "Pass rule: NaN/Inf positions match; max|dev - ref| <= atol + rtol*max|ref| and the\n"
    "NMSE bound of the storage dtype (f32: 1e-5, 1e-4, 1e-7); f16/bf16 also within 2x the\n"
    "error of rounding the exact result to the storage type; scaled f32 inputs, whose f32\n"
    "scores are inexact, within 3x the error of a plain f32 CPU implementation (the\n"
    "largest of four summation orders of the scores); LSE within 1e-5*(1+|ref|) (or 3x\n"
    "the plain one's), -inf exactly for empty rows. Unsupported combinations are\n"
    "skipped and counted, never passed. Exit status: 0 all passed, 1 a case failed,\n"
    "2 bad usage, 3 device error.\n";

/* The part of a case that selects a kernel specialisation. */
typedef struct check_spec {
    clattn_variant variant;
    int D, Dv;
    clattn_dtype dtype;
    int causal, window, softcap, alibi, bias, key_lengths, lse;
} check_spec;

typedef struct check_case {
    uint64_t index;
    check_spec s;
    int fresh;               /* spec drawn for this case alone */
    int B, Hq, Hkv, Nq, Nk;
    clattn_align align;
    int wl, wr;
    float softcap, scale;
    int bias;                /* 1 full, 2 [1,Hq,1,Nk], 3 [B,1,Nq,Nk] with -inf entries, 4 [1,1,Nq,Nk] */
    int bshd, offset;
    float in_scale;
    int nan_masked, dominant;
    uint64_t data_seed;
} check_case;

typedef struct case_result {
    int ok, skipped;
    double max_err, lse_err;
    char msg[1024];
} case_result;

/* ------------------------------------------------------------------------ */
/* drawing cases                                                            */
/* ------------------------------------------------------------------------ */

static uint64_t rnd(uint64_t *st) { return splitmix64(st); }
static int rint_below(uint64_t *st, int n) { return (int)(rnd(st) % (uint64_t)n); }
static float runiform(uint64_t *st) /* [-1, 1) */
{
    return (float)((double)(rnd(st) >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* An independent stream for (seed, purpose, i). */
static uint64_t stream(uint64_t seed, uint64_t purpose, uint64_t i)
{
    uint64_t h = i * 0x9e3779b97f4a7c15ull ^ purpose;
    uint64_t st = seed ^ splitmix64(&h);
    (void)splitmix64(&st);
    return st;
}

static const int head_dims[] = {1, 8, 32, 40, 59, 64, 80, 96, 111, 128, 256};
#define NDIMS ((int)(sizeof head_dims / sizeof head_dims[0]))

static void draw_spec(uint64_t *st, const clattn_variant *variants, int nvariants, check_spec *s)
{
    memset(s, 0, sizeof *s);
    s->variant = variants[rint_below(st, nvariants)];
    s->D = rint_below(st, 4) ? head_dims[rint_below(st, NDIMS)] : 1 + rint_below(st, CLATTN_MAX_HEAD_DIM);
    s->Dv = rint_below(st, 8) ? s->D : head_dims[rint_below(st, NDIMS)];
    const int dt = rint_below(st, 4);
    s->dtype = dt < 2 ? CLATTN_F32 : dt == 2 ? CLATTN_F16 : CLATTN_BF16;
    s->causal = rint_below(st, 5) < 2;
    s->window = rint_below(st, 5) == 0;
    s->softcap = rint_below(st, 5) == 0;
    s->alibi = rint_below(st, 5) == 0;
    s->bias = rint_below(st, 4) == 0;
    s->key_lengths = rint_below(st, 4) == 0;
    s->lse = rint_below(st, 10) < 7;
}

static double case_flops(const check_case *c)
{
    return 4.0 * c->B * c->Hq * (double)c->Nq * (double)c->Nk * (double)(c->s.D > c->s.Dv ? c->s.D : c->s.Dv);
}

/* Case i of seed: its specialisation from the palette (or fresh), then shapes and values. */
static void draw_case(uint64_t seed, uint64_t i, const check_spec *palette, const clattn_variant *variants,
                      int nvariants, check_case *c)
{
    uint64_t st = stream(seed, 0x636173650000ull, i);
    memset(c, 0, sizeof *c);
    c->index = i;
    if (rint_below(&st, CHECK_FRESH) == 0) {
        c->fresh = 1;
        draw_spec(&st, variants, nvariants, &c->s);
    } else {
        c->s = palette[rint_below(&st, CHECK_PALETTE)];
    }
    c->B = 1 + rint_below(&st, 3);
    static const int heads[4][2] = {{1, 1}, {4, 4}, {8, 2}, {6, 1}};
    const int hp = rint_below(&st, 4);
    c->Hq = heads[hp][0];
    c->Hkv = heads[hp][1];
    /* Lengths: the TESTING.md pairs, tile sizes and +-1, or random small/medium. */
    static const int pairs[7][2] = {{1, 1}, {1, 513}, {239, 1}, {113, 203}, {108, 256}, {1023, 1024}, {1024, 1023}};
    static const int tiles[5] = {16, 32, 64, 128, 256};
    const int how = rint_below(&st, 10);
    if (how < 4) {
        const int p = rint_below(&st, 7);
        c->Nq = pairs[p][0], c->Nk = pairs[p][1];
    } else if (how < 6) {
        c->Nq = tiles[rint_below(&st, 5)] + rint_below(&st, 3) - 1;
        c->Nk = tiles[rint_below(&st, 5)] + rint_below(&st, 3) - 1;
    } else if (how < 8) {
        c->Nq = 1 + rint_below(&st, 48);
        c->Nk = 1 + rint_below(&st, 48);
    } else {
        c->Nq = 1 + rint_below(&st, 400);
        c->Nk = 1 + rint_below(&st, 400);
    }
    c->align = rint_below(&st, 2) ? CLATTN_ALIGN_BOTTOM_RIGHT : CLATTN_ALIGN_TOP_LEFT;
    if (c->s.window) {
        c->wl = rint_below(&st, 4) == 0 ? -1 : rint_below(&st, c->Nk + 2);
        c->wr = rint_below(&st, 4) == 0 ? -1 : rint_below(&st, c->Nk / 2 + 2);
    }
    if (c->s.softcap) {
        static const float caps[4] = {1.0f, 2.5f, 10.0f, 30.0f};
        c->softcap = caps[rint_below(&st, 4)];
    }
    c->scale = rint_below(&st, 10) < 7 ? 0.0f : 0.02f + 0.5f * (float)rint_below(&st, 1000) / 1000.0f;
    if (c->s.bias)
        c->bias = 1 + rint_below(&st, 4);
    c->bshd = rint_below(&st, 2);
    c->offset = rint_below(&st, 2) ? 0 : 1 + rint_below(&st, 7);
    const int amp = rint_below(&st, 25);
    c->in_scale = amp < 20 ? 1.0f : (amp < 23 || c->s.dtype != CLATTN_F32) ? 5.0f : 100.0f;
    c->nan_masked = (c->s.causal || c->s.window || c->s.key_lengths) && rint_below(&st, 2);
    c->dominant = rint_below(&st, 12) == 0;
    /* Keep the case cheap: shrink batch, heads, then the longer length. */
    const double cap = rint_below(&st, CHECK_LARGE) == 0 ? CHECK_FLOPS_LARGE : CHECK_FLOPS;
    while (case_flops(c) > cap) {
        if (c->B > 1)
            c->B--;
        else if (c->Hq > 1)
            c->Hq = c->Hkv = 1;
        else if (c->Nq >= c->Nk)
            c->Nq = (c->Nq + 1) / 2;
        else
            c->Nk = (c->Nk + 1) / 2;
    }
    if (c->s.window) { /* the window bounds may now exceed the keys: fine, but keep them meaningful */
        if (c->wl > c->Nk + 1)
            c->wl = c->Nk + 1;
        if (c->wr > c->Nk + 1)
            c->wr = c->Nk + 1;
    }
    c->data_seed = rnd(&st);
}

static const char *case_str(const check_case *c, char *buf, size_t n)
{
    static const char *const bias_kinds[5] = {"none", "full", "[1,Hq,1,Nk]", "[B,1,Nq,Nk]+-inf", "[1,1,Nq,Nk]"};
    char win[48] = "off", dv[24] = "";
    if (c->s.window)
        snprintf(win, sizeof win, "(%d,%d)", c->wl, c->wr);
    if (c->s.Dv != c->s.D)
        snprintf(dv, sizeof dv, " Dv=%d", c->s.Dv);
    snprintf(buf, n,
             "%s %s B=%d Hq=%d Hkv=%d Nq=%d Nk=%d D=%d%s%s%s window=%s softcap=%g scale=%g alibi=%d bias=%s "
             "keylen=%d lse=%d %s offset=%d x%g%s%s%s",
             clattn_variant_name(c->s.variant), clattn_dtype_name(c->s.dtype), c->B, c->Hq, c->Hkv, c->Nq, c->Nk,
             c->s.D, dv, c->s.causal ? " causal" : "",
             c->s.causal || c->s.window || c->s.alibi
                 ? (c->align == CLATTN_ALIGN_BOTTOM_RIGHT ? " bottom-right" : " top-left")
                 : "",
             win, (double)c->softcap, (double)c->scale, c->s.alibi, bias_kinds[c->bias], c->s.key_lengths, c->s.lse,
             c->bshd ? "bshd" : "bhnd", c->offset, (double)c->in_scale, c->nan_masked ? " nan-masked" : "",
             c->dominant ? " dominant" : "", c->fresh ? " (fresh kernel)" : "");
    return buf;
}

/* ------------------------------------------------------------------------ */
/* running one case                                                         */
/* ------------------------------------------------------------------------ */

/* Strides (elements) of a [B, H, N, D] tensor in BHND or BSHD memory order. */
static void layout(int bshd, int64_t H, int64_t N, int64_t D, int64_t s[4])
{
    if (bshd)
        s[0] = N * H * D, s[1] = D, s[2] = H * D, s[3] = 1;
    else
        s[0] = H * N * D, s[1] = N * D, s[2] = D, s[3] = 1;
}

static size_t at(const int64_t s[4], int64_t b, int64_t h, int64_t n, int64_t d)
{
    return (size_t)(b * s[0] + h * s[1] + n * s[2] + d * s[3]);
}

static int all_poison(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != POISON)
            return 0;
    return 1;
}

typedef struct host_case {
    void *q, *k, *v;        /* contiguous BHND, storage dtype */
    float *bias, *alibi;
    int32_t *kl;
    int64_t bshape[4];
    float *ref_o, *ref_lse, *dev_o, *dev_lse;
} host_case;

/* The case's plain f32 yardstick errors (tools/hostref.h) of O and of the LSE. */
static void plain_errors(const check_case *c, const host_case *h, double *o_err, double *lse_err)
{
    plain_problem p = {.dtype = c->s.dtype, .B = c->B, .Hq = c->Hq, .Hkv = c->Hkv, .Nq = c->Nq, .Nk = c->Nk,
                       .D = c->s.D, .Dv = c->s.Dv, .q = h->q, .k = h->k, .v = h->v,
                       .scale = c->scale != 0.0f ? c->scale : (float)(1.0 / sqrt((double)c->s.D)),
                       .causal = c->s.causal,
                       .diag_off = c->align == CLATTN_ALIGN_BOTTOM_RIGHT ? (int64_t)c->Nk - c->Nq : 0,
                       .window = c->s.window, .wl = c->wl, .wr = c->wr, .softcap = c->softcap,
                       .alibi = h->alibi, .bias = h->bias, .key_lengths = h->kl,
                       .ref_o = h->ref_o, .ref_lse = c->s.lse ? h->ref_lse : NULL};
    for (int i = 0; i < 4; i++)
        p.bshape[i] = h->bshape[i];
    plain_f32_error(&p, o_err, lse_err);
}

typedef struct dev_buf {
    cl_mem mem;
    size_t bytes;
    unsigned char *host;
} dev_buf;

#define CASE_FAIL(...)                                          \
    do {                                                        \
        snprintf(r->msg, sizeof r->msg, __VA_ARGS__);           \
        r->ok = 0;                                              \
        goto cleanup;                                           \
    } while (0)

static void run_check_case(clattn_context *ctx, const check_case *c, int force_fail, case_result *r)
{
    const check_spec *s = &c->s;
    const clattn_dtype dt = s->dtype;
    const size_t e = clattn_dtype_size(dt), off = (size_t)c->offset;
    const float amp = c->in_scale;
    const size_t nq = (size_t)c->B * c->Hq * c->Nq * s->D, nk = (size_t)c->B * c->Hkv * c->Nk * s->D;
    const size_t nv = (size_t)c->B * c->Hkv * c->Nk * s->Dv, no = (size_t)c->B * c->Hq * c->Nq * s->Dv;
    const size_t nl = (size_t)c->B * c->Hq * c->Nq;
    uint64_t rng = c->data_seed;
    host_case h;
    dev_buf q = {0}, k = {0}, v = {0}, o = {0}, lse = {0}, bias = {0}, alibi = {0}, kl = {0};
    clattn_plan *plan = NULL;
    clattn_attention_desc desc;
    clattn_host_args ha;
    clattn_args args;
    clattn_status st;
    cl_context clctx = NULL;
    cl_command_queue queue = NULL;
    cl_int err;
    size_t nb = 0;
    int64_t sq[4], sk[4], sv[4], so[4];

    memset(&h, 0, sizeof h);
    memset(r, 0, sizeof *r);
    r->ok = 1;
    clattn_context_cl(ctx, &clctx, NULL, &queue);
    h.q = malloc(nq * e + 1);
    h.k = malloc(nk * e + 1);
    h.v = malloc(nv * e + 1);
    h.ref_o = malloc(no * sizeof(float) + 1);
    h.dev_o = malloc(no * sizeof(float) + 1);
    h.ref_lse = malloc(nl * sizeof(float) + 1);
    h.dev_lse = malloc(nl * sizeof(float) + 1);
    if (!h.q || !h.k || !h.v || !h.ref_o || !h.dev_o || !h.ref_lse || !h.dev_lse)
        CASE_FAIL("out of host memory");

    /* ---- inputs, rounded to the storage dtype */
    for (size_t i = 0; i < nq; i++)
        elem_put(h.q, dt, i, amp * runiform(&rng));
    for (size_t i = 0; i < nk; i++)
        elem_put(h.k, dt, i, amp * runiform(&rng));
    for (size_t i = 0; i < nv; i++)
        elem_put(h.v, dt, i, amp * runiform(&rng));
    if (c->dominant) { /* a large component 0 in every query and in one key per (b, kv head) */
        for (int b = 0; b < c->B; b++)
            for (int hh = 0; hh < c->Hkv; hh++)
                elem_put(h.k, dt, (((size_t)b * c->Hkv + hh) * c->Nk + (size_t)rint_below(&rng, c->Nk)) * s->D,
                    12.0f * amp);
        for (size_t i = 0; i < (size_t)c->B * c->Hq * c->Nq; i++)
            elem_put(h.q, dt, i * s->D, 12.0f * amp);
    }
    if (s->key_lengths) {
        h.kl = malloc((size_t)c->B * sizeof *h.kl);
        if (!h.kl)
            CASE_FAIL("out of host memory");
        const int start = rint_below(&rng, 4);
        for (int b = 0; b < c->B; b++) {
            const int pick[4] = {0, 1, c->Nk, rint_below(&rng, c->Nk + 1)};
            h.kl[b] = pick[(start + b) % 4];
        }
    }
    if (s->alibi) {
        h.alibi = malloc((size_t)c->Hq * sizeof *h.alibi);
        if (!h.alibi)
            CASE_FAIL("out of host memory");
        for (int hh = 0; hh < c->Hq; hh++) /* the usual geometric slopes 2^(-8(h+1)/Hq) */
            h.alibi[hh] = (float)pow(2.0, -8.0 * (hh + 1) / c->Hq);
    }
    if (c->bias) {
        h.bshape[0] = c->bias == 1 || c->bias == 3 ? c->B : 1;
        h.bshape[1] = c->bias == 1 || c->bias == 2 ? c->Hq : 1;
        h.bshape[2] = c->bias == 2 ? 1 : c->Nq;
        h.bshape[3] = c->Nk;
        nb = (size_t)(h.bshape[0] * h.bshape[1] * h.bshape[2] * h.bshape[3]);
        h.bias = malloc(nb * sizeof *h.bias);
        if (!h.bias)
            CASE_FAIL("out of host memory");
        for (size_t i = 0; i < nb; i++)
            h.bias[i] = (c->bias == 3 && rint_below(&rng, 4) == 0) ? -INFINITY : 2.0f * runiform(&rng);
        if (c->bias == 3 && c->Nq > 2) /* one row with every key at -inf: an empty row */
            for (int j = 0; j < c->Nk; j++)
                h.bias[(size_t)c->Nk + (size_t)j] = -INFINITY;
    }
    if (c->nan_masked) { /* keys no query row of batch b may read get NaN in K and V */
        const int64_t offd = c->align == CLATTN_ALIGN_BOTTOM_RIGHT ? (int64_t)c->Nk - c->Nq : 0;
        for (int b = 0; b < c->B; b++)
            for (int j = 0; j < c->Nk; j++) {
                int masked = 0;
                masked |= h.kl && j >= h.kl[b];
                masked |= s->causal && j > c->Nq - 1 + offd;
                masked |= s->window && c->wr >= 0 && j > c->Nq - 1 + offd + c->wr;
                masked |= s->window && c->wl >= 0 && j < offd - c->wl;
                if (!masked)
                    continue;
                for (int hh = 0; hh < c->Hkv; hh++) {
                    for (int d = 0; d < s->D; d++)
                        elem_put(h.k, dt, (((size_t)b * c->Hkv + hh) * c->Nk + j) * s->D + d, NAN);
                    for (int d = 0; d < s->Dv; d++)
                        elem_put(h.v, dt, (((size_t)b * c->Hkv + hh) * c->Nk + j) * s->Dv + d, NAN);
                }
            }
    }

    /* ---- descriptor and reference (same rounded inputs, f32 output not rounded) */
    memset(&desc, 0, sizeof desc);
    desc.scale = c->scale;
    desc.causal = s->causal;
    desc.align = c->align;
    desc.use_window = s->window;
    desc.window_left = c->wl;
    desc.window_right = c->wr;
    desc.softcap = c->softcap;
    desc.variant = s->variant;
    memset(&ha, 0, sizeof ha);
    ha.q = (clattn_host_tensor){h.q, dt, {c->B, c->Hq, c->Nq, s->D}};
    ha.k = (clattn_host_tensor){h.k, dt, {c->B, c->Hkv, c->Nk, s->D}};
    ha.v = (clattn_host_tensor){h.v, dt, {c->B, c->Hkv, c->Nk, s->Dv}};
    ha.o = (clattn_host_tensor){h.ref_o, CLATTN_F32, {c->B, c->Hq, c->Nq, s->Dv}};
    if (s->lse)
        ha.lse = (clattn_host_tensor){h.ref_lse, CLATTN_F32, {c->B, c->Hq, c->Nq, 1}};
    if (c->bias)
        ha.bias = (clattn_host_tensor){h.bias, CLATTN_F32, {h.bshape[0], h.bshape[1], h.bshape[2], h.bshape[3]}};
    ha.alibi = h.alibi;
    ha.key_lengths = h.kl;
    st = clattn_reference(&desc, &ha);
    if (st != CLATTN_SUCCESS)
        CASE_FAIL("the CPU reference rejected the case: %s", clattn_status_name(st));

    /* ---- device buffers: offset poisoned elements, the view, CANARY poisoned elements */
    layout(c->bshd, c->Hq, c->Nq, s->D, sq);
    layout(c->bshd, c->Hkv, c->Nk, s->D, sk);
    layout(c->bshd, c->Hkv, c->Nk, s->Dv, sv);
    layout(c->bshd, c->Hq, c->Nq, s->Dv, so);
    {
        struct {
            dev_buf *db;
            const void *src;
            size_t n;
            const int64_t *s;
            int64_t H, N, D;
        } views[4] = {{&q, h.q, nq, sq, c->Hq, c->Nq, s->D},
                      {&k, h.k, nk, sk, c->Hkv, c->Nk, s->D},
                      {&v, h.v, nv, sv, c->Hkv, c->Nk, s->Dv},
                      {&o, NULL, no, so, c->Hq, c->Nq, s->Dv}};
        for (int t = 0; t < 4; t++) {
            dev_buf *db = views[t].db;
            db->bytes = (off + views[t].n + CANARY) * e;
            db->host = malloc(db->bytes);
            if (!db->host)
                CASE_FAIL("out of host memory");
            memset(db->host, POISON, db->bytes);
            if (views[t].src) /* scatter the BHND host data into the layout */
                for (int64_t b = 0; b < c->B; b++)
                    for (int64_t hh = 0; hh < views[t].H; hh++)
                        for (int64_t n = 0; n < views[t].N; n++)
                            memcpy(db->host + (off + at(views[t].s, b, hh, n, 0)) * e,
                                   (const unsigned char *)views[t].src +
                                       (size_t)(((b * views[t].H + hh) * views[t].N + n) * views[t].D) * e,
                                   (size_t)views[t].D * e);
            db->mem = clCreateBuffer(clctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, db->bytes, db->host, &err);
            if (err != CL_SUCCESS)
                CASE_FAIL("clCreateBuffer: %s", clattn_status_name(clattn_status_from_cl(err)));
        }
    }
    if (s->lse) {
        lse.bytes = (off + nl + CANARY) * sizeof(float);
        lse.host = malloc(lse.bytes);
        if (!lse.host)
            CASE_FAIL("out of host memory");
        memset(lse.host, POISON, lse.bytes);
        lse.mem = clCreateBuffer(clctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, lse.bytes, lse.host, &err);
        if (err != CL_SUCCESS)
            CASE_FAIL("clCreateBuffer: %s", clattn_status_name(clattn_status_from_cl(err)));
    }
    {
        struct {
            dev_buf *db;
            void *src;
            size_t bytes;
        } in[3] = {{&bias, h.bias, nb * sizeof(float)},
                   {&alibi, h.alibi, (size_t)c->Hq * sizeof(float)},
                   {&kl, h.kl, (size_t)c->B * sizeof(int32_t)}};
        for (int t = 0; t < 3; t++) {
            if (!in[t].src)
                continue;
            in[t].db->mem =
                clCreateBuffer(clctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, in[t].bytes, in[t].src, &err);
            if (err != CL_SUCCESS)
                CASE_FAIL("clCreateBuffer: %s", clattn_status_name(clattn_status_from_cl(err)));
        }
    }
    memset(&args, 0, sizeof args);
    args.q = clattn_tensor_make(q.mem, off * e, dt, c->B, c->Hq, c->Nq, s->D);
    args.k = clattn_tensor_make(k.mem, off * e, dt, c->B, c->Hkv, c->Nk, s->D);
    args.v = clattn_tensor_make(v.mem, off * e, dt, c->B, c->Hkv, c->Nk, s->Dv);
    args.o = clattn_tensor_make(o.mem, off * e, dt, c->B, c->Hq, c->Nq, s->Dv);
    memcpy(args.q.strides, sq, sizeof sq);
    memcpy(args.k.strides, sk, sizeof sk);
    memcpy(args.v.strides, sv, sizeof sv);
    memcpy(args.o.strides, so, sizeof so);
    if (s->lse)
        args.lse = clattn_tensor_make(lse.mem, off * sizeof(float), CLATTN_F32, c->B, c->Hq, c->Nq, 1);
    if (c->bias)
        args.bias = clattn_tensor_make(bias.mem, 0, CLATTN_F32, h.bshape[0], h.bshape[1], h.bshape[2], h.bshape[3]);
    args.alibi = alibi.mem;
    args.key_lengths = kl.mem;

    /* ---- run */
    st = clattn_plan_create(ctx, &desc, &args, &plan);
    if (st == CLATTN_ERROR_UNSUPPORTED || st == CLATTN_ERROR_NO_VARIANT) {
        const char *why = clattn_context_last_error(ctx);
        const char *colon = strstr(why, ": ");
        r->skipped = 1;
        snprintf(r->msg, sizeof r->msg, "%s", colon ? colon + 2 : why);
        goto cleanup;
    }
    if (st != CLATTN_SUCCESS)
        CASE_FAIL("clattn_plan_create: %s: %s", clattn_status_name(st), clattn_context_last_error(ctx));
    st = clattn_plan_run(plan, &args, NULL, 0, NULL, NULL);
    if (st != CLATTN_SUCCESS)
        CASE_FAIL("clattn_plan_run: %s: %s", clattn_status_name(st), clattn_context_last_error(ctx));
    err = clEnqueueReadBuffer(queue, o.mem, CL_TRUE, 0, o.bytes, o.host, 0, NULL, NULL);
    if (err == CL_SUCCESS && s->lse)
        err = clEnqueueReadBuffer(queue, lse.mem, CL_TRUE, 0, lse.bytes, lse.host, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        CASE_FAIL("reading the outputs back: %s", clattn_status_name(clattn_status_from_cl(err)));

    /* ---- canaries */
    if (!all_poison(o.host, off * e) || !all_poison(o.host + (off + no) * e, CANARY * e))
        CASE_FAIL("O: a canary element before or after the output was overwritten");
    if (s->lse && (!all_poison(lse.host, off * 4) || !all_poison(lse.host + (off + nl) * 4, CANARY * 4)))
        CASE_FAIL("LSE: a canary element before or after the output was overwritten");

    /* ---- compare O */
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t hh = 0; hh < c->Hq; hh++)
            for (int64_t n = 0; n < c->Nq; n++)
                for (int64_t d = 0; d < s->Dv; d++)
                    h.dev_o[(size_t)(((b * c->Hq + hh) * c->Nq + n) * s->Dv + d)] =
                        elem_get(o.host + off * e, dt, at(so, b, hh, n, d));
    if (force_fail && no > 0) /* the test hook: a NaN fails every case, whatever its tolerance */
        h.dev_o[0] = NAN;
    /* Scaled f32 inputs: the f32 scores themselves are inexact beyond the fixed
     * tolerances; there FlashAttention's rule applies, at most 3x the error of
     * a plain f32 implementation (computed only when needed). */
    const int plain_ok = dt == CLATTN_F32 && c->in_scale > 1.0f;
    double plain = -1.0, plain_lse = -1.0;
    {
        double atol, rtol, mn;
        clattn_tolerance(dt, &atol, &rtol, &mn);
        clattn_compare_result cr = clattn_compare_f32(h.dev_o, h.ref_o, no);
        r->max_err = cr.max_abs_err;
        if (cr.nonfinite_mismatch)
            CASE_FAIL("O: %zu NaN/Inf positions differ from the reference", cr.nonfinite_mismatch);
        if (!clattn_compare_ok(&cr, atol, rtol, mn)) {
            if (plain_ok)
                plain_errors(c, &h, &plain, &plain_lse);
            if (!plain_ok || cr.max_abs_err > 3.0 * plain)
                CASE_FAIL("O: max error %.3g (allowed %.3g%s), NMSE %.3g (allowed %.3g)", cr.max_abs_err,
                          plain_ok ? 3.0 * plain : atol + rtol * cr.max_abs_ref, plain_ok ? " = 3x plain f32" : "",
                          cr.nmse, mn);
        }
        if (dt != CLATTN_F32) { /* at most 2x the error of rounding the exact result to the storage type */
            double round_err = 0;
            for (size_t i = 0; i < no; i++) {
                if (!isfinite(h.ref_o[i]))
                    continue;
                const float rounded = dt == CLATTN_F16 ? clattn_half_to_float(clattn_float_to_half(h.ref_o[i]))
                                                       : clattn_bf16_to_float(clattn_float_to_bf16(h.ref_o[i]));
                const double d = fabs((double)rounded - h.ref_o[i]);
                round_err = d > round_err ? d : round_err;
            }
            if (cr.max_abs_err > 2.0 * round_err + 1e-6)
                CASE_FAIL("O: max error %.3g exceeds 2x the %s rounding error %.3g", cr.max_abs_err,
                          clattn_dtype_name(dt), round_err);
        }
    }
    /* ---- compare LSE */
    if (s->lse) {
        memcpy(h.dev_lse, lse.host + off * 4, nl * 4);
        for (size_t i = 0; i < nl; i++) {
            const double a = h.dev_lse[i], b = h.ref_lse[i];
            if (!isfinite(b)) {
                if (a != b)
                    CASE_FAIL("LSE[%zu] = %g, reference %g", i, a, b);
                continue;
            }
            const double d = fabs(a - b);
            double allowed = 1e-5 * (1.0 + fabs(b));
            if (!(d <= r->lse_err))
                r->lse_err = isfinite(d) ? d : INFINITY;
            if (!(d <= allowed) && plain_ok) {
                if (plain_lse < 0.0)
                    plain_errors(c, &h, &plain, &plain_lse);
                allowed = fmax(allowed, 3.0 * plain_lse);
            }
            if (!(d <= allowed))
                CASE_FAIL("LSE[%zu] = %.9g, reference %.9g (error %.3g, allowed %.3g%s)", i, a, b, d, allowed,
                          plain_ok ? ", 3x plain f32 or 1e-5 relative" : "");
        }
    }
cleanup:
    clattn_plan_free(plan);
    {
        dev_buf *all[8] = {&q, &k, &v, &o, &lse, &bias, &alibi, &kl};
        for (int i = 0; i < 8; i++) {
            if (all[i]->mem)
                clReleaseMemObject(all[i]->mem);
            free(all[i]->host);
        }
    }
    free(h.q);
    free(h.k);
    free(h.v);
    free(h.bias);
    free(h.alibi);
    free(h.kl);
    free(h.ref_o);
    free(h.ref_lse);
    free(h.dev_o);
    free(h.dev_lse);
}

/* ------------------------------------------------------------------------ */
/* clattn check                                                             */
/* ------------------------------------------------------------------------ */

typedef struct failure {
    uint64_t index;
    char *desc, *msg;
} failure;

typedef struct reason {
    char *text;
    int count;
} reason;

typedef struct worst {
    double err, lse_err;
    uint64_t err_case, lse_case;
    int n;
} worst;

static int parse_u64(const char *arg, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || *s < '0' || *s > '9' || errno == ERANGE)
        return fail(RC_USAGE, arg, "'%s' is not an unsigned 64-bit integer", s);
    *out = (uint64_t)v;
    return RC_OK;
}

/* The command that runs case i again. */
static void repro_cmd(char *buf, size_t n, uint64_t seed, uint64_t i, const char *variants_s, const char *device)
{
    size_t len = (size_t)snprintf(buf, n, "clattn check --seed %llu --case %llu", (unsigned long long)seed,
                                  (unsigned long long)i);
    if (variants_s && len < n)
        len += (size_t)snprintf(buf + len, n - len, " --variants %s", variants_s);
    if (device && len < n)
        snprintf(buf + len, n - len, " --device '%s'", device);
}

static void progress_bar(uint64_t done, uint64_t total, int failed, int skipped, int tty)
{
    if (tty) {
        char bar[41];
        const int fill = total ? (int)(40 * done / total) : 40;
        for (int i = 0; i < 40; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[40] = '\0';
        fprintf(stderr, "\r[%s] %llu/%llu  %d failed  %d skipped", bar, (unsigned long long)done,
                (unsigned long long)total, failed, skipped);
        if (done == total)
            fputc('\n', stderr);
    } else if (done == total || (total >= 10 && done % (total / 10) == 0)) {
        fprintf(stderr, "clattn check: %llu/%llu cases, %d failed, %d skipped\n", (unsigned long long)done,
                (unsigned long long)total, failed, skipped);
    }
    fflush(stderr);
}

int cmd_check(int argc, char **argv)
{
    const char *count_s = NULL, *seed_s = NULL, *case_s = NULL, *variants_s = NULL, *json = NULL, *device = NULL;
    const opt opts[] = {
        {"--count", &count_s, NULL},       {"--seed", &seed_s, NULL}, {"--case", &case_s, NULL},
        {"--variants", &variants_s, NULL}, {"--json", &json, NULL},   {"--device", &device, NULL},
    };
    clattn_variant variants[MAX_VARIANTS];
    int nvariants = 0;
    uint64_t seed = 0, first = 0, count = 100;
    int rc = parse_opts("check", argc, argv, opts, sizeof opts / sizeof opts[0], usage_check);
    if (rc != RC_CONTINUE)
        return rc == RC_HELP ? RC_OK : rc;
    if (parse_variant_list("--variants", variants_s, "naive,tiled,flash", variants, MAX_VARIANTS, &nvariants) != RC_OK)
        return RC_USAGE;
    if (case_s) {
        if (parse_u64("--case", case_s, &first) != RC_OK)
            return RC_USAGE;
        count = 1;
    }
    if (count_s) {
        if (parse_u64("--count", count_s, &count) != RC_OK)
            return RC_USAGE;
        if (count < 1 || count > 100000000u)
            return fail(RC_USAGE, "--count", "'%s' is outside 1..100000000", count_s);
    }
    if (first > UINT64_MAX - count)
        return fail(RC_USAGE, "--case", "'%s' plus --count overflows", case_s);
    if (seed_s) {
        if (parse_u64("--seed", seed_s, &seed) != RC_OK)
            return RC_USAGE;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t t = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
        seed = splitmix64(&t) % 1000000000000ull; /* short enough to retype */
    }
    if (json && strcmp(json, "-") != 0 && check_out_path("--json", json) != RC_OK)
        return RC_USAGE;
    long force = -1;
    {
        const char *env = getenv("CLATTN_CHECK_FORCE_FAIL");
        if (env && *env)
            force = strtol(env, NULL, 10);
    }

    clattn_context *ctx = NULL;
    rc = open_context(device, &ctx);
    if (rc != RC_OK)
        return rc;

    FILE *rep = json && !strcmp(json, "-") ? stderr : stdout; /* the human report */
    char vlist[256];
    {
        size_t len = 0;
        vlist[0] = '\0';
        for (int i = 0; i < nvariants; i++)
            len += (size_t)snprintf(vlist + len, sizeof vlist - len, "%s%s", i ? "," : "",
                                    clattn_variant_name(variants[i]));
    }
    fprintf(rep, "clattn check: seed %llu, cases %llu..%llu, variants %s, device %s\n", (unsigned long long)seed,
            (unsigned long long)first, (unsigned long long)(first + count - 1), vlist,
            clattn_context_device_name(ctx));
    fflush(rep);

    check_spec palette[CHECK_PALETTE];
    for (int p = 0; p < CHECK_PALETTE; p++) {
        uint64_t st = stream(seed, 0x70616c6574746500ull, (uint64_t)p);
        draw_spec(&st, variants, nvariants, &palette[p]);
    }

    failure *fails = NULL;
    size_t nfails = 0, capfails = 0;
    reason reasons[MAX_REASONS];
    int nreasons = 0, other_reasons = 0, passed = 0, skipped = 0;
    worst w[CLATTN_DTYPE_COUNT_];
    memset(w, 0, sizeof w);
    memset(reasons, 0, sizeof reasons);
    const int tty = isatty(fileno(stderr)) && rep != stderr;
    const double t0 = now_ms();

    for (uint64_t n = 0; n < count; n++) {
        const uint64_t i = first + n;
        check_case c;
        case_result r;
        char desc[512];
        draw_case(seed, i, palette, variants, nvariants, &c);
        run_check_case(ctx, &c, force >= 0 && (uint64_t)force == i, &r);
        case_str(&c, desc, sizeof desc);
        if (r.skipped) {
            skipped++;
            int k = 0;
            while (k < nreasons && strcmp(reasons[k].text, r.msg) != 0)
                k++;
            if (k == nreasons && nreasons < MAX_REASONS && (reasons[k].text = dup_str(r.msg)) != NULL)
                nreasons++;
            if (k < nreasons)
                reasons[k].count++;
            else
                other_reasons++;
        } else {
            worst *wd = &w[c.s.dtype];
            wd->n++;
            if (isfinite(r.max_err) && r.max_err >= wd->err)
                wd->err = r.max_err, wd->err_case = i;
            if (r.lse_err >= wd->lse_err)
                wd->lse_err = r.lse_err, wd->lse_case = i;
            if (r.ok) {
                passed++;
            } else {
                char cmd[512];
                if (nfails == capfails) {
                    size_t cap = capfails ? 2 * capfails : 16;
                    failure *g = realloc(fails, cap * sizeof *g);
                    if (g)
                        fails = g, capfails = cap;
                }
                if (nfails < capfails) {
                    fails[nfails].index = i;
                    fails[nfails].desc = dup_str(desc);
                    fails[nfails].msg = dup_str(r.msg);
                    nfails++;
                }
                repro_cmd(cmd, sizeof cmd, seed, i, variants_s, device);
                if (tty)
                    fputs("\r\033[K", stderr);
                fprintf(rep, "FAIL case %llu: %s\n     %s\n     reproduce: %s\n", (unsigned long long)i, desc, r.msg,
                        cmd);
                fflush(rep);
            }
        }
        progress_bar(n + 1, count, (int)nfails, skipped, tty);
    }
    const int failed = (int)(count - (uint64_t)passed - (uint64_t)skipped);

    /* ---- summary: deterministic for a seed (times go to stderr) */
    fprintf(rep, "summary: %llu cases, %d passed, %d failed, %d skipped\n", (unsigned long long)count, passed, failed,
            skipped);
    for (int k = 0; k < nreasons; k++)
        fprintf(rep, "  skipped %d x %s\n", reasons[k].count, reasons[k].text);
    if (other_reasons)
        fprintf(rep, "  skipped %d x (other reasons)\n", other_reasons);
    for (int d = 0; d < CLATTN_DTYPE_COUNT_; d++) {
        if (!w[d].n)
            continue;
        fprintf(rep, "  worst %-4s: O max error %.3e (case %llu), LSE error %.3e (case %llu), %d cases compared\n",
                clattn_dtype_name((clattn_dtype)d), w[d].err, (unsigned long long)w[d].err_case, w[d].lse_err,
                (unsigned long long)w[d].lse_case, w[d].n);
    }
    for (size_t f = 0; f < nfails; f++) {
        char cmd[512];
        repro_cmd(cmd, sizeof cmd, seed, fails[f].index, variants_s, device);
        fprintf(rep, "  failed case %llu: %s\n", (unsigned long long)fails[f].index, cmd);
    }
    fflush(rep);
    fprintf(stderr, "clattn check: %llu cases in %.1f s\n", (unsigned long long)count, (now_ms() - t0) / 1000.0);

    if (json) {
        out_file of;
        int wrc = out_open("--json", json, &of);
        if (wrc == RC_OK) {
            FILE *f = of.f;
            fprintf(f, "{\"seed\":%llu,\"first\":%llu,\"count\":%llu,\"variants\":", (unsigned long long)seed,
                    (unsigned long long)first, (unsigned long long)count);
            json_str(f, vlist);
            fprintf(f, ",\"device\":");
            json_str(f, clattn_context_device_name(ctx));
            fprintf(f, ",\"passed\":%d,\"failed\":%d,\"skipped\":%d,\"skip_reasons\":[", passed, failed, skipped);
            for (int k = 0; k < nreasons; k++) {
                fprintf(f, "%s{\"reason\":", k ? "," : "");
                json_str(f, reasons[k].text);
                fprintf(f, ",\"count\":%d}", reasons[k].count);
            }
            fprintf(f, "],\"worst\":{");
            int firstw = 1;
            for (int d = 0; d < CLATTN_DTYPE_COUNT_; d++) {
                if (!w[d].n)
                    continue;
                fprintf(f, "%s\"%s\":{\"max_err\":", firstw ? "" : ",", clattn_dtype_name((clattn_dtype)d));
                json_num(f, w[d].err);
                fprintf(f, ",\"max_err_case\":%llu,\"lse_err\":", (unsigned long long)w[d].err_case);
                json_num(f, w[d].lse_err);
                fprintf(f, ",\"lse_err_case\":%llu,\"cases\":%d}", (unsigned long long)w[d].lse_case, w[d].n);
                firstw = 0;
            }
            fprintf(f, "},\"failures\":[");
            for (size_t k = 0; k < nfails; k++) {
                char cmd[512];
                repro_cmd(cmd, sizeof cmd, seed, fails[k].index, variants_s, device);
                fprintf(f, "%s{\"case\":%llu,\"description\":", k ? "," : "", (unsigned long long)fails[k].index);
                json_str(f, fails[k].desc);
                fprintf(f, ",\"message\":");
                json_str(f, fails[k].msg);
                fprintf(f, ",\"reproduce\":");
                json_str(f, cmd);
                fputc('}', f);
            }
            fprintf(f, "]}\n");
            wrc = out_close("--json", &of, 1);
        }
        if (wrc != RC_OK)
            rc = wrc;
    }
    if (rc == RC_OK && failed > 0)
        rc = RC_VERIFY;

    for (size_t f = 0; f < nfails; f++) {
        free(fails[f].desc);
        free(fails[f].msg);
    }
    free(fails);
    for (int k = 0; k < nreasons; k++)
        free(reasons[k].text);
    clattn_context_free(ctx);
    return rc;
}
