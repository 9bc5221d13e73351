/*
 * test_tune.c - explicit launch parameters and tuning files as the tuner
 * uses them: clattn_plan_create_with_params() gives correct results with
 * the parameters asked for (reported back by clattn_plan_launch_params()),
 * refuses each kind of bad parameter with CLATTN_ERROR_INVALID_PARAMS naming
 * the field, and tuning-file entries are fitted to the problem and device
 * (naive work-group entries, entries beyond local memory, vec on odd D) but
 * not second-guessed, and decode does not take flash's entries. The reader's valid / foreign / corrupt cases are in
 * test_plan.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

#define CANARY 64
#define CANARY_VALUE 1234.5f

/* One problem with fresh random inputs on the device, its reference, and an
 * output buffer with a canary after O. */
typedef struct problem {
    int B, Hq, Hkv, Nq, Nk, D;
    size_t nq, nkv;
    float *q, *k, *v, *ref, *out;
    cl_mem mq, mk, mv, mo;
    clattn_args a;
} problem;

static void problem_make(clattn_context *ctx, problem *p, int B, int Hq, int Hkv, int Nq, int Nk, int D)
{
    cl_context c;
    cl_int err;
    uint64_t rng = test_seed() ^ (uint64_t)(Nq * 131 + Nk * 7 + D);
    clattn_host_args h;
    memset(p, 0, sizeof *p);
    p->B = B, p->Hq = Hq, p->Hkv = Hkv, p->Nq = Nq, p->Nk = Nk, p->D = D;
    p->nq = (size_t)B * Hq * Nq * D;
    p->nkv = (size_t)B * Hkv * Nk * D;
    p->q = malloc(p->nq * sizeof(float));
    p->k = malloc(p->nkv * sizeof(float));
    p->v = malloc(p->nkv * sizeof(float));
    p->ref = malloc(p->nq * sizeof(float));
    p->out = malloc((p->nq + CANARY) * sizeof(float));
    ck_assert(p->q && p->k && p->v && p->ref && p->out);
    test_fill_uniform(p->q, p->nq, 1, &rng);
    test_fill_uniform(p->k, p->nkv, 1, &rng);
    test_fill_uniform(p->v, p->nkv, 1, &rng);
    clattn_context_cl(ctx, &c, NULL, NULL);
    p->mq = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, p->nq * sizeof(float), p->q, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    p->mk = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, p->nkv * sizeof(float), p->k, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    p->mv = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, p->nkv * sizeof(float), p->v, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    p->mo = clCreateBuffer(c, CL_MEM_READ_WRITE, (p->nq + CANARY) * sizeof(float), NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    memset(&p->a, 0, sizeof p->a);
    p->a.q = clattn_tensor_make(p->mq, 0, CLATTN_F32, B, Hq, Nq, D);
    p->a.k = clattn_tensor_make(p->mk, 0, CLATTN_F32, B, Hkv, Nk, D);
    p->a.v = clattn_tensor_make(p->mv, 0, CLATTN_F32, B, Hkv, Nk, D);
    p->a.o = clattn_tensor_make(p->mo, 0, CLATTN_F32, B, Hq, Nq, D);
    memset(&h, 0, sizeof h);
    h.q = (clattn_host_tensor){p->q, CLATTN_F32, {B, Hq, Nq, D}};
    h.k = (clattn_host_tensor){p->k, CLATTN_F32, {B, Hkv, Nk, D}};
    h.v = (clattn_host_tensor){p->v, CLATTN_F32, {B, Hkv, Nk, D}};
    h.o = (clattn_host_tensor){p->ref, CLATTN_F32, {B, Hq, Nq, D}};
    ck_assert_int_eq(clattn_reference(NULL, &h), CLATTN_SUCCESS);
}

static void problem_free(problem *p)
{
    clReleaseMemObject(p->mq);
    clReleaseMemObject(p->mk);
    clReleaseMemObject(p->mv);
    clReleaseMemObject(p->mo);
    free(p->q);
    free(p->k);
    free(p->v);
    free(p->ref);
    free(p->out);
}

/* Poison O, fill the canary, run the plan, check O against the reference and
 * the canary; what names the case in messages. */
static void run_and_check(clattn_context *ctx, problem *p, clattn_plan *plan, const char *what)
{
    cl_command_queue q;
    clattn_compare_result r;
    clattn_context_cl(ctx, NULL, NULL, &q);
    memset(p->out, 0xFF, p->nq * sizeof(float));
    for (int i = 0; i < CANARY; i++)
        p->out[p->nq + (size_t)i] = CANARY_VALUE;
    ck_assert_int_eq(clEnqueueWriteBuffer(q, p->mo, CL_TRUE, 0, (p->nq + CANARY) * sizeof(float), p->out, 0, NULL,
                                          NULL),
                     CL_SUCCESS);
    ck_assert_int_eq(clattn_plan_run(plan, &p->a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
    memset(p->out, 0, (p->nq + CANARY) * sizeof(float));
    ck_assert_int_eq(clEnqueueReadBuffer(q, p->mo, CL_TRUE, 0, (p->nq + CANARY) * sizeof(float), p->out, 0, NULL,
                                         NULL),
                     CL_SUCCESS);
    r = clattn_compare_f32(p->out, p->ref, p->nq);
    ck_assert_msg(clattn_compare_ok(&r, 1e-5, 1e-4, 1e-7), "%s: max_err %g nmse %g nonfinite %zu (%s)", what,
                  r.max_abs_err, r.nmse, r.nonfinite_mismatch, clattn_plan_params_json(plan));
    for (int i = 0; i < CANARY; i++)
        ck_assert_msg(p->out[p->nq + (size_t)i] == CANARY_VALUE, "%s: canary %d overwritten", what, i);
}

static clattn_launch_params lp(int bm, int bn, int rows, int tpr, int vec)
{
    clattn_launch_params p;
    memset(&p, 0, sizeof p);
    p.block_m = bm, p.block_n = bn, p.rows = rows, p.tpr = tpr, p.vec = vec;
    return p;
}

/* ------------------------------------------------------------------ explicit parameters */

START_TEST(explicit_tile_params)
{
    clattn_context *ctx = test_context();
    problem p;
    const clattn_variant variants[] = {CLATTN_VARIANT_TILED, CLATTN_VARIANT_FLASH};
    /* odd shapes: partial row blocks, partial key tiles, several row groups per row */
    const clattn_launch_params sets[] = {lp(8, 16, 2, 2, 1), lp(4, 8, 1, 4, 4), lp(16, 32, 4, 1, 4), lp(6, 12, 3, 2, 1),
                                         lp(1, 4, 1, 1, 1)};
    ck_assert_ptr_nonnull(ctx);
    problem_make(ctx, &p, 2, 4, 2, 37, 53, 40);
    for (size_t v = 0; v < 2; v++)
        for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
            clattn_attention_desc d;
            clattn_plan *plan = NULL;
            clattn_launch_params got;
            char what[128];
            memset(&d, 0, sizeof d);
            d.variant = variants[v];
            snprintf(what, sizeof what, "%s %d,%d,%d,%d,%d", clattn_variant_name(variants[v]), sets[i].block_m,
                     sets[i].block_n, sets[i].rows, sets[i].tpr, sets[i].vec);
            ck_assert_msg(clattn_plan_create_with_params(ctx, &d, &p.a, &sets[i], &plan) == CLATTN_SUCCESS, "%s: %s",
                          what, clattn_context_last_error(ctx));
            ck_assert_int_eq(clattn_plan_launch_params(plan, &got), CLATTN_SUCCESS);
            ck_assert_msg(got.block_m == sets[i].block_m && got.block_n == sets[i].block_n &&
                              got.rows == sets[i].rows && got.tpr == sets[i].tpr && got.vec == sets[i].vec &&
                              got.wg == 0 && got.splits == 0,
                          "%s: the plan runs %s", what, clattn_plan_params_json(plan));
            ck_assert_msg(strstr(clattn_plan_params_json(plan), "\"tuning\":\"explicit\"") != NULL, "%s",
                          clattn_plan_params_json(plan));
            run_and_check(ctx, &p, plan, what);
            clattn_plan_free(plan);
        }
    problem_free(&p);
}
END_TEST

START_TEST(partial_and_null_params)
{
    clattn_context *ctx = test_context();
    problem p;
    clattn_attention_desc d;
    clattn_plan *plan = NULL, *dflt = NULL;
    clattn_launch_params want, got, base, zero;
    ck_assert_ptr_nonnull(ctx);
    problem_make(ctx, &p, 1, 2, 2, 29, 31, 16);
    memset(&d, 0, sizeof d);
    d.variant = CLATTN_VARIANT_FLASH;
    /* NULL or all-zero params: exactly clattn_plan_create() */
    memset(&zero, 0, sizeof zero);
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &p.a, &dflt), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_launch_params(dflt, &base), CLATTN_SUCCESS);
    ck_assert(base.block_m > 0 && base.block_n > 0 && base.rows > 0 && base.tpr > 0 && base.vec > 0);
    ck_assert_int_eq(clattn_plan_create_with_params(ctx, &d, &p.a, NULL, &plan), CLATTN_SUCCESS);
    ck_assert_str_eq(clattn_plan_params_json(plan), clattn_plan_params_json(dflt));
    clattn_plan_free(plan);
    ck_assert_int_eq(clattn_plan_create_with_params(ctx, &d, &p.a, &zero, &plan), CLATTN_SUCCESS);
    ck_assert_str_eq(clattn_plan_params_json(plan), clattn_plan_params_json(dflt));
    clattn_plan_free(plan);
    /* one field: the others stay the scheduler's */
    memset(&want, 0, sizeof want);
    want.block_n = base.block_n == 8 ? 16 : 8;
    ck_assert_int_eq(clattn_plan_create_with_params(ctx, &d, &p.a, &want, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_launch_params(plan, &got), CLATTN_SUCCESS);
    ck_assert_int_eq(got.block_n, want.block_n);
    ck_assert_int_eq(got.block_m, base.block_m);
    ck_assert_int_eq(got.rows, base.rows);
    ck_assert_int_eq(got.tpr, base.tpr);
    run_and_check(ctx, &p, plan, "flash block_n only");
    clattn_plan_free(plan);
    clattn_plan_free(dflt);
    ck_assert_int_eq(clattn_plan_launch_params(NULL, &got), CLATTN_ERROR_NULL_ARGUMENT);
    problem_free(&p);
}
END_TEST

START_TEST(naive_and_decode_params)
{
    clattn_context *ctx = test_context();
    problem p, dp;
    clattn_attention_desc d;
    clattn_plan *plan = NULL;
    clattn_launch_params want, got;
    ck_assert_ptr_nonnull(ctx);
    problem_make(ctx, &p, 1, 3, 1, 45, 38, 24);
    memset(&d, 0, sizeof d);
    d.variant = CLATTN_VARIANT_NAIVE;
    for (int wg = 1; wg <= 32; wg *= 4) {
        memset(&want, 0, sizeof want);
        want.wg = wg;
        ck_assert_int_eq(clattn_plan_create_with_params(ctx, &d, &p.a, &want, &plan), CLATTN_SUCCESS);
        ck_assert_int_eq(clattn_plan_launch_params(plan, &got), CLATTN_SUCCESS);
        ck_assert_int_eq(got.wg, wg);
        ck_assert_int_eq(got.block_m, 0);
        run_and_check(ctx, &p, plan, "naive wg");
        clattn_plan_free(plan);
    }
    /* decode: tile parameters and the split count */
    problem_make(ctx, &dp, 2, 4, 2, 3, 301, 32);
    d.variant = CLATTN_VARIANT_DECODE;
    for (int splits = 1; splits <= 7; splits += 3) {
        want = lp(4, 16, 1, 2, 4);
        want.splits = splits;
        ck_assert_msg(clattn_plan_create_with_params(ctx, &d, &dp.a, &want, &plan) == CLATTN_SUCCESS, "%s",
                      clattn_context_last_error(ctx));
        ck_assert_int_eq(clattn_plan_launch_params(plan, &got), CLATTN_SUCCESS);
        ck_assert_int_eq(got.splits, splits);
        ck_assert_int_eq(got.block_n, 16);
        ck_assert_int_eq(got.tpr, 2);
        run_and_check(ctx, &dp, plan, "decode");
        clattn_plan_free(plan);
    }
    problem_free(&dp);
    problem_free(&p);
}
END_TEST

START_TEST(invalid_params)
{
    clattn_context *ctx = test_context();
    problem p, odd;
    cl_device_id dev;
    size_t max_wg = 0;
    struct {
        clattn_variant variant;
        int odd_d;
        clattn_launch_params p;
        const char *field;
    } bad[] = {
        {CLATTN_VARIANT_FLASH, 0, lp(8, 16, 3, 1, 1), "params.rows"},     /* 3 does not divide 8 */
        {CLATTN_VARIANT_TILED, 0, lp(8, 16, 1, 1, 2), "params.vec"},      /* vec 2 */
        {CLATTN_VARIANT_FLASH, 1, lp(8, 16, 1, 1, 4), "params.vec"},      /* vec 4 with D = 39 */
        {CLATTN_VARIANT_FLASH, 0, lp(8, -16, 1, 1, 1), "params.block_n"}, /* negative */
        {CLATTN_VARIANT_TILED, 0, lp(2048, 16, 1, 1, 1), "params.block_m"},
        {CLATTN_VARIANT_FLASH, 0, lp(8, 16, 64, 1, 1), "params.rows"},
        {CLATTN_VARIANT_FLASH, 0, lp(8, 16, 1, 300, 1), "params.tpr"},
        /* 4.5 MB of local memory: beyond any device */
        {CLATTN_VARIANT_TILED, 0, lp(1024, 1024, 32, 1, 1), "params.block_n"},
        {CLATTN_VARIANT_NAIVE, 0, lp(8, 0, 0, 0, 0), "params.block_m"},   /* naive takes wg only */
        {CLATTN_VARIANT_GEMM, 0, lp(0, 16, 0, 0, 0), "params.block_n"},   /* gemm takes none */
        {CLATTN_VARIANT_FLASH, 0, lp(0, 0, 0, 0, 0), "params.wg"},        /* wg is derived */
        {CLATTN_VARIANT_TILED, 0, lp(0, 0, 0, 0, 0), "params.splits"},    /* decode only */
        {CLATTN_VARIANT_DECODE, 0, lp(0, 0, 0, 0, 0), "params.splits"},   /* 65 > 64 */
        {CLATTN_VARIANT_FLASH, 0, lp(0, 0, 0, 0, 0), "params.tpr"},       /* work-group beyond the device */
        {CLATTN_VARIANT_NAIVE, 0, lp(0, 0, 0, 0, 0), "params.wg"},        /* work-group beyond the device */
    };
    const size_t n = sizeof bad / sizeof bad[0];
    ck_assert_ptr_nonnull(ctx);
    clattn_context_cl(ctx, NULL, &dev, NULL);
    ck_assert_int_eq(clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg, &max_wg, NULL), CL_SUCCESS);
    bad[10].p.wg = 16;
    bad[11].p.splits = 2;
    bad[12].p.splits = 65;
    bad[13].p = lp(1024, 4, 1, 256, 1); /* 262144 work-items */
    bad[14].p.wg = (int)max_wg * 2;
    problem_make(ctx, &p, 1, 2, 2, 33, 35, 40);
    problem_make(ctx, &odd, 1, 2, 2, 17, 19, 39);
    for (size_t i = 0; i < n; i++) {
        clattn_attention_desc d;
        clattn_plan *plan = (clattn_plan *)&d; /* must come back NULL */
        clattn_status st;
        memset(&d, 0, sizeof d);
        d.variant = bad[i].variant;
        if (bad[i].variant == CLATTN_VARIANT_DECODE) {
            problem dp;
            problem_make(ctx, &dp, 1, 2, 2, 2, 100, 16);
            st = clattn_plan_create_with_params(ctx, &d, &dp.a, &bad[i].p, &plan);
            problem_free(&dp);
        } else {
            st = clattn_plan_create_with_params(ctx, &d, bad[i].odd_d ? &odd.a : &p.a, &bad[i].p, &plan);
        }
        ck_assert_msg(st == CLATTN_ERROR_INVALID_PARAMS, "case %zu (%s): %s: %s", i, bad[i].field,
                      clattn_status_name(st), clattn_context_last_error(ctx));
        ck_assert_ptr_null(plan);
        ck_assert_msg(strstr(clattn_context_last_error(ctx), bad[i].field) != NULL, "case %zu: '%s' lacks %s", i,
                      clattn_context_last_error(ctx), bad[i].field);
        /* the context stays usable */
        d.variant = CLATTN_VARIANT_FLASH;
        ck_assert_int_eq(clattn_plan_create(ctx, &d, &p.a, &plan), CLATTN_SUCCESS);
        clattn_plan_free(plan);
    }
    ck_assert_str_eq(clattn_status_name(CLATTN_ERROR_INVALID_PARAMS), "CLATTN_ERROR_INVALID_PARAMS");
    problem_free(&odd);
    problem_free(&p);
}
END_TEST

/* ------------------------------------------------------------------ tuning-file entries as the scheduler uses them */

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void device_keys(clattn_context *ctx, char *name, size_t nn, char *driver, size_t dn)
{
    cl_device_id dev;
    clattn_context_cl(ctx, NULL, &dev, NULL);
    snprintf(name, nn, "%s", clattn_context_device_name(ctx));
    memset(driver, 0, dn);
    ck_assert_int_eq(clGetDeviceInfo(dev, CL_DRIVER_VERSION, dn - 1, driver, NULL), CL_SUCCESS);
}

START_TEST(tuning_file_entries)
{
    clattn_context *ctx = test_context();
    problem p, big;
    char name[256], driver[128], text[4096];
    clattn_attention_desc d;
    clattn_plan *plan = NULL;
    clattn_launch_params got;
    const char *path;
    int n = -1;
    ck_assert_ptr_nonnull(ctx);
    device_keys(ctx, name, sizeof name, driver, sizeof driver);
    problem_make(ctx, &p, 1, 2, 1, 23, 41, 39);    /* D = 39: no vector loads */
    problem_make(ctx, &big, 1, 2, 2, 19, 27, 128); /* D = 128 */
    snprintf(text, sizeof text,
             "{\"format\": 1, \"entries\": [\n"
             " {\"device\": \"%s\", \"driver\": \"%s\", \"variant\": \"naive\", \"d_max\": 64, \"wg\": 16},\n"
             " {\"device\": \"%s\", \"driver\": \"%s\", \"variant\": \"tiled\", \"d_max\": 128, \"block_m\": 8,\n"
             "  \"block_n\": 4096, \"rows\": 1, \"tpr\": 2, \"vec\": 4},\n"
             " {\"device\": \"%s\", \"driver\": \"%s\", \"variant\": \"flash\", \"d_max\": 128, \"block_m\": 8,\n"
             "  \"block_n\": 16, \"rows\": 8, \"tpr\": 1, \"vec\": 4, \"gflops\": 3.5}]}\n",
             name, driver, name, driver, name, driver);
    path = write_file("tune-entries.json", text);
    setenv("CLATTN_TUNING_FILE", path, 1);
    ck_assert_int_eq(clattn_tuning_file_load(ctx, NULL, &n), CLATTN_SUCCESS);
    ck_assert_int_eq(n, 3);
    memset(&d, 0, sizeof d);

    /* naive: the entry's work-group size */
    d.variant = CLATTN_VARIANT_NAIVE;
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &p.a, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_launch_params(plan, &got), CLATTN_SUCCESS);
    ck_assert_msg(got.wg == 16 && strstr(clattn_plan_params_json(plan), "\"tuning\":\"tuning-file\""), "%s",
                  clattn_plan_params_json(plan));
    run_and_check(ctx, &p, plan, "naive from the tuning file");
    clattn_plan_free(plan);

    /* tiled: the entry is fitted to the problem and the device. D = 39
     * cannot load vectors (vec 4 -> 1); at D = 128, 4096-key tiles need
     * 2.2 MB of local memory, more than any device has (shorter tiles). */
    d.variant = CLATTN_VARIANT_TILED;
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &p.a, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_launch_params(plan, &got), CLATTN_SUCCESS);
    ck_assert_msg(got.vec == 1 && got.block_m == 8 && got.tpr == 2 &&
                      strstr(clattn_plan_params_json(plan), "\"tuning\":\"tuning-file\""),
                  "%s", clattn_plan_params_json(plan));
    run_and_check(ctx, &p, plan, "tiled D=39 from the tuning file, fitted");
    clattn_plan_free(plan);
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &big.a, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_launch_params(plan, &got), CLATTN_SUCCESS);
    ck_assert_msg(got.vec == 4 && got.block_n < 4096 && got.tpr == 2 &&
                      strstr(clattn_plan_params_json(plan), "\"tuning\":\"tuning-file\""),
                  "%s", clattn_plan_params_json(plan));
    run_and_check(ctx, &big, plan, "tiled D=128 from the tuning file, fitted");
    clattn_plan_free(plan);

    /* flash at D = 128: the measured rows = 8, tpr = 1 is kept (the table's
     * register-pressure guess would widen tpr) */
    d.variant = CLATTN_VARIANT_FLASH;
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &big.a, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_launch_params(plan, &got), CLATTN_SUCCESS);
    ck_assert_msg(got.rows == 8 && got.tpr == 1 && got.block_n == 16 && got.vec == 4 &&
                      strstr(clattn_plan_params_json(plan), "\"tuning\":\"tuning-file\""),
                  "%s", clattn_plan_params_json(plan));
    run_and_check(ctx, &big, plan, "flash D=128 from the tuning file");
    clattn_plan_free(plan);
    /* the D = 128 entry covers D = 39 too (vec fitted) */
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &p.a, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_launch_params(plan, &got), CLATTN_SUCCESS);
    ck_assert_msg(got.rows == 8 && got.vec == 1, "%s", clattn_plan_params_json(plan));
    run_and_check(ctx, &p, plan, "flash D=39 from the D=128 entry");
    clattn_plan_free(plan);
    /* decode shares flash's kernel but not its tuning-file entries (measured on
     * long query blocks): the built-in table */
    {
        problem dp;
        problem_make(ctx, &dp, 1, 2, 2, 2, 300, 39);
        d.variant = CLATTN_VARIANT_DECODE;
        ck_assert_int_eq(clattn_plan_create(ctx, &d, &dp.a, &plan), CLATTN_SUCCESS);
        ck_assert_msg(strstr(clattn_plan_params_json(plan), "\"tuning\":\"tuning-file\"") == NULL, "%s",
                      clattn_plan_params_json(plan));
        run_and_check(ctx, &dp, plan, "decode with a flash entry in the file");
        clattn_plan_free(plan);
        problem_free(&dp);
        d.variant = CLATTN_VARIANT_FLASH;
    }
    /* explicit parameters win over the file */
    {
        clattn_launch_params want = lp(4, 8, 1, 1, 1);
        ck_assert_int_eq(clattn_plan_create_with_params(ctx, &d, &p.a, &want, &plan), CLATTN_SUCCESS);
        ck_assert_int_eq(clattn_plan_launch_params(plan, &got), CLATTN_SUCCESS);
        ck_assert_int_eq(got.block_m, 4);
        ck_assert_int_eq(got.rows, 1);
        clattn_plan_free(plan);
    }

    /* a naive entry without wg: the file is rejected with a message and ignored */
    snprintf(text, sizeof text,
             "{\"format\": 1, \"entries\": [{\"device\": \"%s\", \"driver\": \"%s\", \"variant\": \"naive\", "
             "\"d_max\": 64, \"block_m\": 16}]}\n",
             name, driver);
    path = write_file("tune-naive-bad.json", text);
    setenv("CLATTN_TUNING_FILE", path, 1);
    ck_assert_int_eq(clattn_tuning_file_load(ctx, NULL, &n), CLATTN_ERROR_TUNING_FILE);
    ck_assert_msg(strstr(clattn_context_last_error(ctx), "tune-naive-bad.json") &&
                      strstr(clattn_context_last_error(ctx), "wg"),
                  "%s", clattn_context_last_error(ctx));
    d.variant = CLATTN_VARIANT_NAIVE;
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &p.a, &plan), CLATTN_SUCCESS);
    ck_assert(strstr(clattn_plan_params_json(plan), "\"tuning\":\"tuning-file\"") == NULL);
    clattn_plan_free(plan);
    unsetenv("CLATTN_TUNING_FILE");
    problem_free(&big);
    problem_free(&p);
}
END_TEST

START_TEST(tuning_file_path)
{
    char buf[512];
    const char *old = getenv("CLATTN_CACHE_DIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("CLATTN_TUNING_FILE", "/some/where/tune.json", 1);
    ck_assert_int_eq(clattn_tuning_file_path(buf, sizeof buf), CLATTN_SUCCESS);
    ck_assert_str_eq(buf, "/some/where/tune.json");
    ck_assert_int_eq(clattn_tuning_file_path(buf, 8), CLATTN_ERROR_INVALID_VALUE);
    ck_assert_int_eq(clattn_tuning_file_path(NULL, 8), CLATTN_ERROR_NULL_ARGUMENT);
    setenv("CLATTN_TUNING_FILE", "off", 1);
    ck_assert_int_eq(clattn_tuning_file_path(buf, sizeof buf), CLATTN_ERROR_NOT_FOUND);
    unsetenv("CLATTN_TUNING_FILE");
    setenv("CLATTN_CACHE_DIR", "/tmp/clattn-cache-dir-test", 1);
    ck_assert_int_eq(clattn_tuning_file_path(buf, sizeof buf), CLATTN_SUCCESS);
    ck_assert_str_eq(buf, "/tmp/clattn-cache-dir-test/tuning.json");
    setenv("CLATTN_CACHE_DIR", "off", 1);
    ck_assert_int_eq(clattn_tuning_file_path(buf, sizeof buf), CLATTN_ERROR_NOT_FOUND);
    if (saved)
        setenv("CLATTN_CACHE_DIR", saved, 1);
    else
        unsetenv("CLATTN_CACHE_DIR");
    free(saved);
}
END_TEST

Suite *suite_tune(void)
{
    Suite *s = suite_create("tune");
    TCase *tc = tcase_create("tune");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, explicit_tile_params);
    tcase_add_test(tc, partial_and_null_params);
    tcase_add_test(tc, naive_and_decode_params);
    tcase_add_test(tc, invalid_params);
    tcase_add_test(tc, tuning_file_entries);
    tcase_add_test(tc, tuning_file_path);
    suite_add_tcase(s, tc);
    return s;
}
