/*
 * test_gemm.c - the `gemm` variant beyond the variant matrix (which
 * test_variants.c runs on it too, as part of this suite): problems whose
 * score matrix exceeds the scratch budget run in chunks and match the
 * reference with every feature; CLATTN_GEMM_BUDGET parsing and the geometry
 * a plan reports; NaN/Inf in V or K at keys that some rows keep and others
 * mask reach exactly the rows the semantics say; CLBlast failures (through
 * the dispatch layer's fault hook) map to clattn statuses with the CLBlast
 * code in the last-error text and leave the outputs untouched; every other
 * call of a run and of plan creation fails cleanly too; runs allocate no
 * device memory; the caller's wait list and the returned event bracket the
 * whole pipeline; out-of-order queues are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "tests.h"

/* ---- a small problem on device buffers, with its reference */

enum { B = 2, HQ = 4, HKV = 2, NQ = 37, NK = 53, D = 40, CANARY = 64 };
#define NQE (B * HQ * NQ * D)
#define NKE (B * HKV * NK * D)
#define NLSE (B * HQ * NQ)
/* Budgets for the small problem: one sequence's packed K/V is ~34 KB and a
 * query row of all heads ~2 KB, so these give 2 x 2 chunks and 2 x 1. */
#define BUDGET_4_CHUNKS "76000"
#define BUDGET_2_CHUNKS "150000"

static struct fix {
    clattn_context *ctx;
    cl_context cl;
    cl_device_id dev;
    cl_command_queue queue;
    cl_mem q, k, v, o, lse; /* o and lse with CANARY floats after the view */
    float hq[NQE], hk[NKE], hv[NKE], ref_o[NQE], ref_lse[NLSE];
} F;

static void fix_setup(void)
{
    cl_int err = CL_SUCCESS;
    uint64_t rng = test_seed() ^ 0x6e33;
    clattn_host_args h;
    memset(&F, 0, sizeof F);
    unsetenv("CLATTN_GEMM_BUDGET");
    unsetenv("CLATTN_VARIANT");
    F.ctx = test_context();
    ck_assert_ptr_nonnull(F.ctx);
    ck_assert_int_eq(clattn_context_cl(F.ctx, &F.cl, &F.dev, &F.queue), CLATTN_SUCCESS);
    test_fill_uniform(F.hq, NQE, 1, &rng);
    test_fill_uniform(F.hk, NKE, 1, &rng);
    test_fill_uniform(F.hv, NKE, 1, &rng);
    F.q = clCreateBuffer(F.cl, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof F.hq, F.hq, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    F.k = clCreateBuffer(F.cl, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof F.hk, F.hk, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    F.v = clCreateBuffer(F.cl, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof F.hv, F.hv, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    F.o = clCreateBuffer(F.cl, CL_MEM_READ_WRITE, (NQE + CANARY) * sizeof(float), NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    F.lse = clCreateBuffer(F.cl, CL_MEM_READ_WRITE, (NLSE + CANARY) * sizeof(float), NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    memset(&h, 0, sizeof h);
    h.q = (clattn_host_tensor){F.hq, CLATTN_F32, {B, HQ, NQ, D}};
    h.k = (clattn_host_tensor){F.hk, CLATTN_F32, {B, HKV, NK, D}};
    h.v = (clattn_host_tensor){F.hv, CLATTN_F32, {B, HKV, NK, D}};
    h.o = (clattn_host_tensor){F.ref_o, CLATTN_F32, {B, HQ, NQ, D}};
    h.lse = (clattn_host_tensor){F.ref_lse, CLATTN_F32, {B, HQ, NQ, 1}};
    ck_assert_int_eq(clattn_reference(NULL, &h), CLATTN_SUCCESS);
}

static void fix_teardown(void)
{
    clattn__fault_inject(0, 0);
    unsetenv("CLATTN_GEMM_BUDGET");
    cl_mem mems[5] = {F.q, F.k, F.v, F.o, F.lse};
    for (int i = 0; i < 5; i++)
        if (mems[i])
            clReleaseMemObject(mems[i]);
    memset(&F, 0, sizeof F);
}

static clattn_args fix_args(void)
{
    clattn_args a;
    memset(&a, 0, sizeof a);
    a.q = clattn_tensor_make(F.q, 0, CLATTN_F32, B, HQ, NQ, D);
    a.k = clattn_tensor_make(F.k, 0, CLATTN_F32, B, HKV, NK, D);
    a.v = clattn_tensor_make(F.v, 0, CLATTN_F32, B, HKV, NK, D);
    a.o = clattn_tensor_make(F.o, 0, CLATTN_F32, B, HQ, NQ, D);
    a.lse = clattn_tensor_make(F.lse, 0, CLATTN_F32, B, HQ, NQ, 1);
    return a;
}

static clattn_attention_desc gemm_desc(void)
{
    clattn_attention_desc d;
    memset(&d, 0, sizeof d);
    d.variant = CLATTN_VARIANT_GEMM;
    return d;
}

static clattn_plan *fix_plan(const char *budget)
{
    clattn_attention_desc d = gemm_desc();
    clattn_args a = fix_args();
    clattn_plan *plan = NULL;
    clattn_status st;
    if (budget)
        setenv("CLATTN_GEMM_BUDGET", budget, 1);
    else
        unsetenv("CLATTN_GEMM_BUDGET");
    st = clattn_plan_create(F.ctx, &d, &a, &plan);
    unsetenv("CLATTN_GEMM_BUDGET");
    ck_assert_msg(st == CLATTN_SUCCESS, "gemm plan: %s: %s", clattn_status_name(st), clattn_context_last_error(F.ctx));
    return plan;
}

static int all_poison(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0xFF)
            return 0;
    return 1;
}

static void poison_outputs(void)
{
    static const unsigned char ff = 0xFF;
    ck_assert_int_eq(clEnqueueFillBuffer(F.queue, F.o, &ff, 1, 0, (NQE + CANARY) * sizeof(float), 0, NULL, NULL),
                     CL_SUCCESS);
    ck_assert_int_eq(clEnqueueFillBuffer(F.queue, F.lse, &ff, 1, 0, (NLSE + CANARY) * sizeof(float), 0, NULL, NULL),
                     CL_SUCCESS);
    ck_assert_int_eq(clFinish(F.queue), CL_SUCCESS);
}

/* 1: outputs complete and correct, 0: untouched (all poison); fails the test
 * on anything else or on an overwritten canary. q: the queue to read on. */
static int outputs_state(cl_command_queue q, const char *what)
{
    static float o[NQE + CANARY], lse[NLSE + CANARY];
    double atol, rtol, nmse;
    int poison, ok;
    clattn_compare_result ro, rl;
    ck_assert_int_eq(clEnqueueReadBuffer(q, F.o, CL_TRUE, 0, sizeof o, o, 0, NULL, NULL), CL_SUCCESS);
    ck_assert_int_eq(clEnqueueReadBuffer(q, F.lse, CL_TRUE, 0, sizeof lse, lse, 0, NULL, NULL), CL_SUCCESS);
    ck_assert_msg(all_poison(o + NQE, CANARY * sizeof(float)) && all_poison(lse + NLSE, CANARY * sizeof(float)),
                  "%s: canary after an output overwritten", what);
    poison = all_poison(o, NQE * sizeof(float)) && all_poison(lse, NLSE * sizeof(float));
    clattn_tolerance(CLATTN_F32, &atol, &rtol, &nmse);
    ro = clattn_compare_f32(o, F.ref_o, NQE);
    rl = clattn_compare_f32(lse, F.ref_lse, NLSE);
    ok = clattn_compare_ok(&ro, atol, rtol, nmse) && clattn_compare_ok(&rl, atol, rtol, nmse);
    ck_assert_msg(poison || ok, "%s: outputs neither untouched nor complete and correct (O err %g, LSE err %g)", what,
                  ro.max_abs_err, rl.max_abs_err);
    return ok;
}

static void run_ok(clattn_plan *plan, const char *what)
{
    clattn_args a = fix_args();
    clattn_status st;
    poison_outputs();
    st = clattn_plan_run(plan, &a, NULL, 0, NULL, NULL);
    ck_assert_msg(st == CLATTN_SUCCESS, "%s: run: %s: %s", what, clattn_status_name(st),
                  clattn_context_last_error(F.ctx));
    ck_assert_int_eq(clFinish(F.queue), CL_SUCCESS);
    ck_assert_msg(outputs_state(F.queue, what) == 1, "%s: run wrote nothing", what);
}

/* A number from the plan's JSON ("key":N); -1 when absent. */
static long long json_num(const clattn_plan *plan, const char *key)
{
    char pat[64];
    const char *s = clattn_plan_params_json(plan), *at;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    at = strstr(s, pat);
    return at ? strtoll(at + strlen(pat), NULL, 10) : -1;
}

/* ---- chunked problems against the reference */

/* The chunks a plan for case c gets under budget (metadata only: no buffers). */
static long long case_chunks(const attn_case *c, const char *budget, long long *chunk_bytes)
{
    clattn_attention_desc d = gemm_desc();
    clattn_args a;
    clattn_plan *plan = NULL;
    clattn_status st;
    long long n;
    const int dv = c->Dv ? c->Dv : c->D;
    memset(&a, 0, sizeof a);
    a.q = clattn_tensor_make(NULL, 0, c->dtype, c->B, c->Hq, c->Nq, c->D);
    a.k = clattn_tensor_make(NULL, 0, c->dtype, c->B, c->Hkv, c->Nk, c->D);
    a.v = clattn_tensor_make(NULL, 0, c->dtype, c->B, c->Hkv, c->Nk, dv);
    a.o = clattn_tensor_make(NULL, 0, c->dtype, c->B, c->Hq, c->Nq, dv);
    if (c->varlen) {
        memset(a.q.strides, 0, sizeof a.q.strides);
        a.has_varlen = 1;
        a.total_q = (int64_t)c->B * c->Nq;
        a.total_k = (int64_t)c->B * c->Nk;
    }
    d.causal = c->causal;
    d.align = c->align;
    setenv("CLATTN_GEMM_BUDGET", budget, 1);
    st = clattn_plan_create(test_context(), &d, &a, &plan);
    unsetenv("CLATTN_GEMM_BUDGET");
    ck_assert_msg(st == CLATTN_SUCCESS, "metadata plan: %s: %s", clattn_status_name(st),
                  clattn_context_last_error(test_context()));
    n = json_num(plan, "chunks");
    *chunk_bytes = json_num(plan, "chunk_bytes");
    clattn_plan_free(plan);
    return n;
}

START_TEST(chunked)
{
    static const struct {
        const char *budget;
        attn_case c;
    } cases[] = {
        {"1M", {.B = 3, .Hq = 8, .Hkv = 2, .Nq = 239, .Nk = 203, .D = 64, .causal = 1,
                .align = CLATTN_ALIGN_BOTTOM_RIGHT, .nan_masked = 1, .lse = 1}},
        {"2M", {.B = 1, .Hq = 2, .Hkv = 1, .Nq = 1024, .Nk = 1023, .D = 64, .causal = 1, .lse = 1}},
        {"600K", {.B = 3, .Hq = 6, .Hkv = 2, .Nq = 113, .Nk = 203, .D = 40, .use_window = 1, .wl = 16, .wr = 0,
                  .lse = 1}},
        {"600K", {.B = 3, .Hq = 6, .Hkv = 2, .Nq = 113, .Nk = 203, .D = 40, .use_window = 1, .wl = 7, .wr = 9,
                  .causal = 1, .align = CLATTN_ALIGN_BOTTOM_RIGHT, .nan_masked = 1, .lse = 1}},
        {"400K", {.B = 3, .Hq = 4, .Hkv = 4, .Nq = 108, .Nk = 256, .D = 32, .key_lengths = 1, .nan_masked = 1,
                  .lse = 1}},
        {"400K", {.B = 5, .Hq = 6, .Hkv = 2, .Nq = 113, .Nk = 203, .D = 40, .varlen = 1, .causal = 1, .lse = 1}},
        {"400K", {.B = 4, .Hq = 6, .Hkv = 2, .Nq = 113, .Nk = 203, .D = 40, .varlen = 1, .causal = 1,
                  .align = CLATTN_ALIGN_BOTTOM_RIGHT, .use_window = 1, .wl = 9, .wr = 3, .key_lengths = 1,
                  .lse = 1}},
        {"600K", {.B = 3, .Hq = 6, .Hkv = 2, .Nq = 113, .Nk = 203, .D = 64, .dtype = CLATTN_F16, .bias = 2,
                  .softcap = 3.0f, .lse = 1}},
        {"600K", {.B = 3, .Hq = 6, .Hkv = 3, .Nq = 113, .Nk = 203, .D = 59, .dtype = CLATTN_BF16, .bshd = 1,
                  .offset = 17, .alibi = 1, .causal = 1, .lse = 1}},
        {"300K", {.B = 3, .Hq = 6, .Hkv = 2, .Nq = 65, .Nk = 63, .D = 40, .bias = 3, .lse = 1}},
        {"400K", {.B = 3, .Hq = 6, .Hkv = 2, .Nq = 113, .Nk = 203, .D = 40, .Dv = 24, .scale = 0.37f, .lse = 1}},
        {"800K", {.B = 3, .Hq = 6, .Hkv = 2, .Nq = 113, .Nk = 203, .D = 64, .causal = 1, .use_window = 1, .wl = 33,
                  .wr = 2, .softcap = 5.0f, .alibi = 1, .bias = 2, .key_lengths = 1, .nan_masked = 1, .bshd = 1,
                  .offset = 5, .lse = 1}},
        /* one byte: every chunk is the smallest, one query row of one sequence */
        {"1", {.B = 2, .Hq = 4, .Hkv = 2, .Nq = 17, .Nk = 15, .D = 8, .causal = 1, .key_lengths = 1,
               .nan_masked = 1, .alibi = 1, .lse = 1}},
    };
    int failed = 0;
    double worst = 0.0, worst_lse = 0.0;
    ck_assert_ptr_nonnull(test_context());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        attn_case c = cases[i].c;
        case_result r;
        char buf[512];
        long long chunk_bytes = 0, chunks;
        size_t budget = strtoull(cases[i].budget, NULL, 10);
        const uint64_t seed = test_seed() + 977 * i;
        c.variant = CLATTN_VARIANT_GEMM;
        budget <<= strchr(cases[i].budget, 'M') ? 20 : strchr(cases[i].budget, 'K') ? 10 : 0;
        chunks = case_chunks(&c, cases[i].budget, &chunk_bytes);
        ck_assert_msg(chunks > 1, "case %zu: %lld chunk(s) under budget %s: the test does not chunk", i, chunks,
                      cases[i].budget);
        ck_assert_msg(budget < 64 || (size_t)chunk_bytes <= budget, "case %zu: chunk scratch %lld over budget %zu", i,
                      chunk_bytes, budget);
        setenv("CLATTN_GEMM_BUDGET", cases[i].budget, 1);
        run_case(test_context(), &c, seed, &r);
        unsetenv("CLATTN_GEMM_BUDGET");
        printf("gemm chunked: %s budget %s: %lld chunks of <= %lld bytes: %s (O err %.2g, LSE err %.2g)\n",
               case_str(&c, buf, sizeof buf), cases[i].budget, chunks, chunk_bytes,
               r.skipped ? "SKIPPED" : r.ok ? "ok" : r.msg, r.max_err, r.lse_err);
        ck_assert_msg(!r.skipped, "case %zu skipped: %s", i, r.msg);
        if (!r.ok) {
            failed++;
            printf("FAIL (seed %llu)\n", (unsigned long long)seed);
        } else if (c.dtype == CLATTN_F32) {
            worst = fmax(worst, r.max_err);
            worst_lse = fmax(worst_lse, r.lse_err);
        }
    }
    printf("gemm chunked: %zu cases, %d failed; worst f32 |O err| %.2g, |LSE err| %.2g\n",
           sizeof cases / sizeof cases[0], failed, worst, worst_lse);
    ck_assert_int_eq(failed, 0);
}
END_TEST

/* ---- budget parsing and the geometry a plan reports */

START_TEST(budget_env)
{
    static const char *const bad[] = {"abc", "0", "-5", "12Q", "1.5M", " 64", "99999999999999999999G", "4KB"};
    clattn_plan *plan;
    fix_setup();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clattn_attention_desc d = gemm_desc();
        clattn_args a = fix_args();
        clattn_status st;
        plan = (clattn_plan *)&d;
        setenv("CLATTN_GEMM_BUDGET", bad[i], 1);
        st = clattn_plan_create(F.ctx, &d, &a, &plan);
        unsetenv("CLATTN_GEMM_BUDGET");
        ck_assert_msg(st == CLATTN_ERROR_INVALID_VALUE, "CLATTN_GEMM_BUDGET='%s': %s", bad[i], clattn_status_name(st));
        ck_assert_ptr_null(plan);
        ck_assert_msg(strstr(clattn_context_last_error(F.ctx), "CLATTN_GEMM_BUDGET") != NULL, "%s",
                      clattn_context_last_error(F.ctx));
    }
    /* default: the whole problem in one chunk, written straight to the outputs */
    plan = fix_plan(NULL);
    ck_assert_int_eq(json_num(plan, "chunks"), 1);
    ck_assert_int_eq(json_num(plan, "staged"), 0);
    ck_assert_int_eq(json_num(plan, "rows_per_chunk"), NQ);
    ck_assert_int_eq(json_num(plan, "seqs_per_chunk"), B);
    ck_assert_int_eq((long long)clattn_plan_device_bytes(plan), json_num(plan, "scratch_bytes"));
    ck_assert_int_eq((long long)clattn_plan_device_bytes(plan), json_num(plan, "chunk_bytes"));
    /* at least the score matrix */
    ck_assert_uint_ge(clattn_plan_device_bytes(plan), (size_t)B * HQ * NQ * NK * 4);
    run_ok(plan, "default budget");
    clattn_plan_free(plan);
    /* suffixes; whole sequences per chunk, then rows of one */
    plan = fix_plan("200K");
    ck_assert_int_eq(json_num(plan, "budget"), 200 << 10);
    ck_assert_int_eq(json_num(plan, "seqs_per_chunk"), 1);
    ck_assert_int_eq(json_num(plan, "rows_per_chunk"), NQ);
    ck_assert_int_eq(json_num(plan, "chunks"), 2);
    ck_assert_int_eq(json_num(plan, "staged"), 1);
    ck_assert_int_le(json_num(plan, "chunk_bytes"), 200 << 10);
    /* staging of O and LSE on top of the chunk */
    ck_assert_int_eq(json_num(plan, "scratch_bytes"), json_num(plan, "chunk_bytes") + (long long)NLSE * (D + 1) * 4);
    run_ok(plan, "200K");
    clattn_plan_free(plan);
    plan = fix_plan(BUDGET_4_CHUNKS);
    ck_assert_int_eq(json_num(plan, "seqs_per_chunk"), 1);
    ck_assert_int_eq(json_num(plan, "chunks"), 4);
    ck_assert_int_le(json_num(plan, "chunk_bytes"), 76000);
    run_ok(plan, BUDGET_4_CHUNKS);
    clattn_plan_free(plan);
    plan = fix_plan("1g");
    ck_assert_int_eq(json_num(plan, "budget"), 1ll << 30);
    ck_assert_int_eq(json_num(plan, "chunks"), 1);
    clattn_plan_free(plan);
    /* below the smallest chunk: one row at a time, over the budget but running */
    plan = fix_plan("1");
    ck_assert_int_eq(json_num(plan, "rows_per_chunk"), 1);
    ck_assert_int_eq(json_num(plan, "chunks"), B * NQ);
    run_ok(plan, "budget 1");
    clattn_plan_free(plan);
    fix_teardown();
}
END_TEST

/* ---- NaN and Inf at keys some rows keep and others mask */

START_TEST(nonfinite_kept)
{
    enum { NB = 1, NH = 2, NKV = 2, N = 67, DD = 16 };
    static float q[NB * NH * N * DD], k[NB * NKV * N * DD], v[NB * NKV * N * DD], bias[NB * NH * N * N];
    static float o[NB * NH * N * DD], lse[NB * NH * N], ro[NB * NH * N * DD], rl[NB * NH * N];
    static const char *const budgets[2] = {NULL, "20000"};
    uint64_t rng = test_seed() ^ 0xbad;
    clattn_host_args h;
    clattn_attention_desc d = gemm_desc();
    double atol, rtol, nmse;
    clattn_context *ctx = test_context();
    ck_assert_ptr_nonnull(ctx);
    test_fill_uniform(q, sizeof q / sizeof q[0], 1, &rng);
    test_fill_uniform(k, sizeof k / sizeof k[0], 1, &rng);
    test_fill_uniform(v, sizeof v / sizeof v[0], 1, &rng);
    test_fill_uniform(bias, sizeof bias / sizeof bias[0], 1, &rng);
    /* kv head 0: NaN in V at key 40 (kept by rows >= 40 only, causal), +Inf
     * at key 50; kv head 1: NaN in K at key 20 (rows >= 20: a NaN score, the
     * row is empty as in the reference). Query head 0, row 5: all bias -inf
     * (empty), row 45: bias -inf on key 40 (still kept: NaN reaches it). */
    v[(0 * N + 40) * DD + 3] = NAN;
    v[(0 * N + 50) * DD + 5] = INFINITY;
    v[(0 * N + 50) * DD + 6] = -INFINITY;
    k[(1 * N + 20) * DD + 7] = NAN;
    for (int j = 0; j < N; j++)
        bias[(0 * N + 5) * N + j] = -INFINITY;
    bias[(0 * N + 45) * N + 40] = -INFINITY;
    memset(&h, 0, sizeof h);
    h.q = (clattn_host_tensor){q, CLATTN_F32, {NB, NH, N, DD}};
    h.k = (clattn_host_tensor){k, CLATTN_F32, {NB, NKV, N, DD}};
    h.v = (clattn_host_tensor){v, CLATTN_F32, {NB, NKV, N, DD}};
    h.bias = (clattn_host_tensor){bias, CLATTN_F32, {NB, NH, N, N}};
    h.o = (clattn_host_tensor){ro, CLATTN_F32, {NB, NH, N, DD}};
    h.lse = (clattn_host_tensor){rl, CLATTN_F32, {NB, NH, N, 1}};
    d.causal = 1;
    ck_assert_int_eq(clattn_reference(&d, &h), CLATTN_SUCCESS);
    /* the planted values are visible in the reference: rows 40.. NaN, 50.. Inf, row 5 and 45 */
    ck_assert(isnan(ro[(0 * N + 41) * DD + 3]) && !isnan(ro[(0 * N + 39) * DD + 3]));
    ck_assert(isinf(ro[(0 * N + 51) * DD + 5]) && isfinite(ro[(0 * N + 49) * DD + 5]));
    ck_assert(ro[(0 * N + 5) * DD + 3] == 0.0f && isinf(rl[0 * N + 5]));
    ck_assert(isnan(ro[(0 * N + 45) * DD + 3]));
    ck_assert(ro[(1 * N + 30) * DD + 0] == 0.0f && isinf(rl[1 * N + 30]) && isfinite(rl[1 * N + 19]));
    clattn_tolerance(CLATTN_F32, &atol, &rtol, &nmse);
    for (int b = 0; b < 2; b++) {
        clattn_compare_result co, cl;
        clattn_variant ran = CLATTN_VARIANT_AUTO;
        clattn_status st;
        h.o.data = o;
        h.lse.data = lse;
        if (budgets[b])
            setenv("CLATTN_GEMM_BUDGET", budgets[b], 1);
        st = clattn_attention_host(ctx, &d, &h, &ran);
        unsetenv("CLATTN_GEMM_BUDGET");
        h.o.data = ro;
        h.lse.data = rl;
        ck_assert_msg(st == CLATTN_SUCCESS, "%s: %s", clattn_status_name(st), clattn_context_last_error(ctx));
        ck_assert_int_eq(ran, CLATTN_VARIANT_GEMM);
        co = clattn_compare_f32(o, ro, sizeof o / sizeof o[0]);
        cl = clattn_compare_f32(lse, rl, sizeof lse / sizeof lse[0]);
        printf("gemm non-finite kept keys (budget %s): O err %.2g, %zu NaN/Inf mismatches; LSE err %.2g, %zu\n",
               budgets[b] ? budgets[b] : "default", co.max_abs_err, co.nonfinite_mismatch, cl.max_abs_err,
               cl.nonfinite_mismatch);
        ck_assert_msg(clattn_compare_ok(&co, atol, rtol, nmse), "O: err %g, %zu NaN/Inf positions differ",
                      co.max_abs_err, co.nonfinite_mismatch);
        ck_assert_msg(clattn_compare_ok(&cl, atol, rtol, nmse), "LSE: err %g, %zu NaN/Inf positions differ",
                      cl.max_abs_err, cl.nonfinite_mismatch);
    }
}
END_TEST

/* ---- CLBlast errors and every other fault of a run */

typedef struct blas_code {
    cl_int code;
    clattn_status expect; /* at a CLBlast call */
} blas_code;

/* Fail call n of a run with code; returns 1 when the failing call was a
 * CLBlast one (its status and text checked), 0 for another call, -1 when the
 * run tolerated the fault. Outputs must be untouched on failure and the next
 * run must be correct. */
static int run_with_fault(clattn_plan *plan, long n, const blas_code *bc, const char *what)
{
    clattn_args a = fix_args();
    clattn_status st;
    cl_event ev = NULL;
    int blas = 0;
    char text[64];
    poison_outputs();
    clattn__fault_inject(n, bc->code);
    st = clattn_plan_run(plan, &a, F.queue, 0, NULL, &ev);
    ck_assert_msg(clattn__fault_calls() >= n, "%s: fault %ld not reached: the run's calls vary", what, n);
    clattn__fault_inject(0, 0);
    ck_assert_int_eq(clFinish(F.queue), CL_SUCCESS);
    if (st == CLATTN_SUCCESS) {
        ck_assert_ptr_nonnull(ev);
        clReleaseEvent(ev);
        ck_assert_msg(outputs_state(F.queue, what) == 1, "%s: fault %ld tolerated but no output", what, n);
        blas = -1;
    } else {
        const char *err = clattn_context_last_error(F.ctx);
        ck_assert_msg(ev == NULL, "%s: failed run returned an event", what);
        ck_assert_msg(outputs_state(F.queue, what) == 0, "%s: fault %ld: failed run wrote its outputs", what, n);
        ck_assert_msg(err[0] != '\0', "%s: failed with no message", what);
        if (strstr(err, "CLBlastSgemmStridedBatched")) {
            blas = 1;
            snprintf(text, sizeof text, "CLBlast error %d", (int)bc->code);
            ck_assert_msg(strstr(err, text) != NULL, "%s: '%s' lacks '%s'", what, err, text);
            ck_assert_msg(st == bc->expect, "%s: CLBlast error %d gave %s, expected %s", what, (int)bc->code,
                          clattn_status_name(st), clattn_status_name(bc->expect));
        } else {
            ck_assert_msg(st == clattn_status_from_cl(bc->code) || st == CLATTN_ERROR_OUT_OF_HOST_MEMORY,
                          "%s: injected %d, got %s (%s)", what, (int)bc->code, clattn_status_name(st), err);
        }
    }
    run_ok(plan, what);
    return blas;
}

START_TEST(clblast_errors)
{
    static const blas_code sweep_codes[] = {
        {CL_OUT_OF_RESOURCES, CLATTN_CL_OUT_OF_RESOURCES},
        {-2041 /* CLBlastDatabaseError */, CLATTN_ERROR_UNSUPPORTED},
    };
    /* tried at the CLBlast calls only */
    static const blas_code blas_codes[] = {
        {CL_MEM_OBJECT_ALLOCATION_FAILURE /* CLBlastTempBufferAllocFailure */, CLATTN_CL_MEM_OBJECT_ALLOCATION_FAILURE},
        {CL_BUILD_PROGRAM_FAILURE, CLATTN_CL_BUILD_PROGRAM_FAILURE},
        {-1024 /* CLBlastNotImplemented */, CLATTN_ERROR_UNSUPPORTED},
        {-1017 /* CLBlastInvalidDimension */, CLATTN_ERROR_INTERNAL},
        {-2046 /* CLBlastInvalidLocalMemUsage */, CLATTN_ERROR_UNSUPPORTED},
        {-2047 /* CLBlastMissingOverrideParameter */, CLATTN_ERROR_INVALID_VALUE},
        {-2040 /* CLBlastUnknownError */, CLATTN_ERROR_INTERNAL},
    };
    long blas_at[64];
    int nblas = 0;
    long calls;
    clattn_plan *plan;
    clattn_args a;
    fix_setup();
    plan = fix_plan(BUDGET_4_CHUNKS);
    ck_assert_int_eq(json_num(plan, "chunks"), 4);
    run_ok(plan, "warm-up"); /* CLBlast compiles its kernels on first use */
    a = fix_args();
    clattn__fault_inject(0, 0);
    ck_assert_int_eq(clattn_plan_run(plan, &a, F.queue, 0, NULL, NULL), CLATTN_SUCCESS);
    calls = clattn__fault_calls();
    for (size_t c = 0; c < sizeof sweep_codes / sizeof sweep_codes[0]; c++) {
        long failed = 0, tolerated = 0, at_blas = 0;
        for (long n = 1; n <= calls; n++) {
            const int r = run_with_fault(plan, n, &sweep_codes[c], "clattn_plan_run(gemm)");
            failed += r >= 0, tolerated += r < 0, at_blas += r == 1;
            if (r == 1 && c == 0) {
                ck_assert_int_lt(nblas, 64);
                blas_at[nblas++] = n;
            }
        }
        printf("gemm faults: clattn_plan_run, %ld calls x code %d: %ld failed cleanly (%ld at CLBlast calls), "
               "%ld tolerated\n", calls, (int)sweep_codes[c].code, failed, at_blas, tolerated);
        /* two GEMMs per chunk */
        ck_assert_int_eq(at_blas, 2 * 4);
        ck_assert_int_eq(failed + tolerated, calls);
    }
    for (size_t c = 0; c < sizeof blas_codes / sizeof blas_codes[0]; c++)
        for (int i = 0; i < nblas; i++)
            ck_assert_int_eq(run_with_fault(plan, blas_at[i], &blas_codes[c], "CLBlast call"), 1);
    printf("gemm faults: %zu further CLBlast codes at each of the %d CLBlast calls: mapped as expected\n",
           sizeof blas_codes / sizeof blas_codes[0], nblas);
    clattn_plan_free(plan);
    fix_teardown();
}
END_TEST

/* Plan creation: every call it makes fails cleanly (no plan, no leaked
 * OpenCL object, a message) and the next creation works. */
START_TEST(create_faults)
{
    static const cl_int codes[] = {CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_OUT_OF_RESOURCES, CL_OUT_OF_HOST_MEMORY};
    const char *budgets[2] = {NULL, BUDGET_4_CHUNKS};
    fix_setup();
    for (int bi = 0; bi < 2; bi++) {
        clattn_attention_desc d = gemm_desc();
        clattn_args a = fix_args();
        clattn_plan *plan = fix_plan(budgets[bi]); /* warm: the program is in the context's cache */
        long calls, failed = 0, tolerated = 0;
        cl_uint base;
        run_ok(plan, "warm-up");
        clattn_plan_free(plan);
        ck_assert_int_eq(clFinish(F.queue), CL_SUCCESS);
        base = test_ctx_refs_stable(F.cl, NULL);
        if (budgets[bi])
            setenv("CLATTN_GEMM_BUDGET", budgets[bi], 1);
        clattn__fault_inject(0, 0);
        ck_assert_int_eq(clattn_plan_create(F.ctx, &d, &a, &plan), CLATTN_SUCCESS);
        calls = clattn__fault_calls();
        clattn_plan_free(plan);
        for (long n = 1; n <= calls; n++)
            for (size_t c = 0; c < sizeof codes / sizeof codes[0]; c++) {
                clattn_status st;
                plan = (clattn_plan *)&d;
                clattn__fault_inject(n, codes[c]);
                st = clattn_plan_create(F.ctx, &d, &a, &plan);
                clattn__fault_inject(0, 0);
                if (st == CLATTN_SUCCESS) {
                    tolerated++;
                } else {
                    failed++;
                    ck_assert_ptr_null(plan);
                    ck_assert_msg(st == clattn_status_from_cl(codes[c]) || st == CLATTN_ERROR_OUT_OF_HOST_MEMORY,
                                  "fault %ld: injected %d, got %s", n, (int)codes[c], clattn_status_name(st));
                    ck_assert(clattn_context_last_error(F.ctx)[0] != '\0');
                    ck_assert_int_eq(clattn_plan_create(F.ctx, &d, &a, &plan), CLATTN_SUCCESS);
                }
                clattn_plan_free(plan);
                const cl_uint now = test_ctx_refs_settled(F.cl, NULL, base);
                ck_assert_msg(now == base, "fault %ld (%d): cl_context references %u, %u before", n, (int)codes[c],
                              now, base);
            }
        unsetenv("CLATTN_GEMM_BUDGET");
        printf("gemm faults: clattn_plan_create(budget %s), %ld calls x %zu codes: %ld failed cleanly, %ld "
               "tolerated\n", budgets[bi] ? budgets[bi] : "default", calls, sizeof codes / sizeof codes[0], failed,
               tolerated);
        ck_assert_int_gt(failed, 0);
        plan = fix_plan(budgets[bi]);
        run_ok(plan, "after the sweep");
        clattn_plan_free(plan);
    }
    fix_teardown();
}
END_TEST

/* ---- runs: no allocation, wait list and event, queue kinds */

START_TEST(steady_state)
{
    const char *budgets[2] = {NULL, BUDGET_4_CHUNKS};
    fix_setup();
    for (int bi = 0; bi < 2; bi++) {
        clattn_plan *plan = fix_plan(budgets[bi]);
        clattn_args a = fix_args();
        long before;
        ck_assert_uint_gt(clattn_plan_device_bytes(plan), 0);
        run_ok(plan, "first run");
        before = clattn__buffer_allocations();
        for (int i = 0; i < 10; i++)
            ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
        ck_assert_int_eq(clattn__buffer_allocations(), before);
        ck_assert_int_eq(clFinish(F.queue), CL_SUCCESS);
        ck_assert_int_eq(outputs_state(F.queue, "steady state"), 1);
        clattn_plan_free(plan);
    }
    fix_teardown();
}
END_TEST

START_TEST(events_and_queues)
{
    const char *budgets[2] = {NULL, BUDGET_4_CHUNKS};
    cl_int err;
    cl_command_queue other, ooo;
    fix_setup();
    other = clCreateCommandQueue(F.cl, F.dev, 0, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    for (int bi = 0; bi < 2; bi++) {
        clattn_plan *plan = fix_plan(budgets[bi]);
        clattn_args a = fix_args();
        cl_event gate, ev = NULL;
        cl_int state = 0;
        poison_outputs();
        gate = clCreateUserEvent(F.cl, &err);
        ck_assert_int_eq(err, CL_SUCCESS);
        ck_assert_int_eq(clattn_plan_run(plan, &a, F.queue, 1, &gate, &ev), CLATTN_SUCCESS);
        ck_assert_ptr_nonnull(ev);
        ck_assert_int_eq(clFlush(F.queue), CL_SUCCESS);
        ck_assert_int_eq(clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof state, &state, NULL),
                         CL_SUCCESS);
        ck_assert_msg(state != CL_COMPLETE, "the run completed before its wait list");
        ck_assert_int_eq(clSetUserEventStatus(gate, CL_COMPLETE), CL_SUCCESS);
        ck_assert_int_eq(clWaitForEvents(1, &ev), CL_SUCCESS);
        /* read on another queue: only the event orders it after the run */
        ck_assert_int_eq(outputs_state(other, "after the event"), 1);
        clReleaseEvent(ev);
        clReleaseEvent(gate);
        clattn_plan_free(plan);
    }
    ooo = clCreateCommandQueue(F.cl, F.dev, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    if (err == CL_SUCCESS) {
        clattn_plan *plan = fix_plan(NULL);
        clattn_args a = fix_args();
        cl_event ev = NULL;
        poison_outputs();
        ck_assert_int_eq(clattn_plan_run(plan, &a, ooo, 0, NULL, &ev), CLATTN_ERROR_UNSUPPORTED);
        ck_assert_ptr_null(ev);
        ck_assert(strstr(clattn_context_last_error(F.ctx), "out-of-order") != NULL);
        ck_assert_int_eq(outputs_state(F.queue, "out-of-order queue"), 0);
        clattn_plan_free(plan);
        clReleaseCommandQueue(ooo);
    } else {
        printf("gemm: this device has no out-of-order queues (%d): that check is not run\n", (int)err);
    }
    clReleaseCommandQueue(other);
    fix_teardown();
}
END_TEST

Suite *suite_gemm(void)
{
    Suite *s = suite_gemm_matrix();
    TCase *tc = tcase_create("gemm-own");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, chunked);
    tcase_add_test(tc, budget_env);
    tcase_add_test(tc, nonfinite_kept);
    tcase_add_test(tc, clblast_errors);
    tcase_add_test(tc, create_faults);
    tcase_add_test(tc, steady_state);
    tcase_add_test(tc, events_and_queues);
    suite_add_tcase(s, tc);
    return s;
}
