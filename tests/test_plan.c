/*
 * test_plan.c - the scheduler: explicit variant choice (descriptor and
 * CLATTN_VARIANT), the parameters a plan reports, CLATTN_PARAMS overrides,
 * no device allocation in steady-state runs, and many plans on one context.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tests.h"

enum { B = 2, HQ = 4, HKV = 2, NQ = 37, NK = 53, D = 40 };
#define NQE (B * HQ * NQ * D)
#define NKE (B * HKV * NK * D)

static float hq[NQE], hk[NKE], hv[NKE], ref[NQE];

/* Device buffers for one problem plus its reference output. */
static void make_problem(clattn_context *ctx, clattn_args *a, cl_mem mem[4])
{
    cl_context c;
    cl_int err;
    uint64_t rng = test_seed();
    clattn_host_args h;
    test_fill_uniform(hq, NQE, 1, &rng);
    test_fill_uniform(hk, NKE, 1, &rng);
    test_fill_uniform(hv, NKE, 1, &rng);
    clattn_context_cl(ctx, &c, NULL, NULL);
    mem[0] = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof hq, hq, &err);
    mem[1] = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof hk, hk, &err);
    mem[2] = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof hv, hv, &err);
    mem[3] = clCreateBuffer(c, CL_MEM_READ_WRITE, sizeof hq, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    memset(a, 0, sizeof *a);
    a->q = clattn_tensor_make(mem[0], 0, CLATTN_F32, B, HQ, NQ, D);
    a->k = clattn_tensor_make(mem[1], 0, CLATTN_F32, B, HKV, NK, D);
    a->v = clattn_tensor_make(mem[2], 0, CLATTN_F32, B, HKV, NK, D);
    a->o = clattn_tensor_make(mem[3], 0, CLATTN_F32, B, HQ, NQ, D);
    memset(&h, 0, sizeof h);
    h.q = (clattn_host_tensor){hq, CLATTN_F32, {B, HQ, NQ, D}};
    h.k = (clattn_host_tensor){hk, CLATTN_F32, {B, HKV, NK, D}};
    h.v = (clattn_host_tensor){hv, CLATTN_F32, {B, HKV, NK, D}};
    h.o = (clattn_host_tensor){ref, CLATTN_F32, {B, HQ, NQ, D}};
    ck_assert_int_eq(clattn_reference(NULL, &h), CLATTN_SUCCESS);
}

static void check_output(clattn_context *ctx, cl_mem o)
{
    static float out[NQE];
    cl_command_queue q;
    clattn_compare_result r;
    clattn_context_cl(ctx, NULL, NULL, &q);
    memset(out, 0xFF, sizeof out);
    ck_assert_int_eq(clEnqueueReadBuffer(q, o, CL_TRUE, 0, sizeof out, out, 0, NULL, NULL), CL_SUCCESS);
    r = clattn_compare_f32(out, ref, NQE);
    ck_assert_msg(clattn_compare_ok(&r, 1e-5, 1e-4, 1e-7), "max_err %g", r.max_abs_err);
}

static void release(cl_mem mem[4])
{
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(mem[i]);
}

START_TEST(explicit_choice)
{
    clattn_context *ctx = test_context();
    clattn_args a;
    cl_mem mem[4];
    clattn_plan *plan = NULL;
    clattn_attention_desc d;
    ck_assert_ptr_nonnull(ctx);
    make_problem(ctx, &a, mem);
    for (int v = CLATTN_VARIANT_NAIVE; v <= CLATTN_VARIANT_FLASH; v++) {
        memset(&d, 0, sizeof d);
        d.variant = (clattn_variant)v;
        ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
        ck_assert_int_eq(clattn_plan_variant(plan), v);
        ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
        check_output(ctx, mem[3]);
        if (v != CLATTN_VARIANT_NAIVE) /* the work-group variants report their launch shape */
            ck_assert_msg(strstr(clattn_plan_params_json(plan), "\"block_m\":") &&
                              strstr(clattn_plan_params_json(plan), "\"block_n\":") &&
                              strstr(clattn_plan_params_json(plan), "\"rows\":") &&
                              strstr(clattn_plan_params_json(plan), "\"wg\":") &&
                              strstr(clattn_plan_params_json(plan), "\"vec\":"),
                          "%s", clattn_plan_params_json(plan));
        clattn_plan_free(plan);
        /* the same through the environment, with the descriptor on auto */
        setenv("CLATTN_VARIANT", clattn_variant_name((clattn_variant)v), 1);
        ck_assert_int_eq(clattn_plan_create(ctx, NULL, &a, &plan), CLATTN_SUCCESS);
        ck_assert_int_eq(clattn_plan_variant(plan), v);
        clattn_plan_free(plan);
        unsetenv("CLATTN_VARIANT");
    }
    /* the descriptor wins over the environment */
    setenv("CLATTN_VARIANT", "naive", 1);
    memset(&d, 0, sizeof d);
    d.variant = CLATTN_VARIANT_FLASH;
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_variant(plan), CLATTN_VARIANT_FLASH);
    clattn_plan_free(plan);
    unsetenv("CLATTN_VARIANT");
    /* a variant this build lacks is refused by name */
    d.variant = CLATTN_VARIANT_DECODE;
    plan = (clattn_plan *)1;
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_ERROR_UNSUPPORTED);
    ck_assert_ptr_null(plan);
    ck_assert(strstr(clattn_context_last_error(ctx), "decode") != NULL);
    release(mem);
}
END_TEST

START_TEST(params_override)
{
    clattn_context *ctx = test_context();
    clattn_args a;
    cl_mem mem[4];
    clattn_plan *plan = NULL;
    clattn_attention_desc d;
    make_problem(ctx, &a, mem);
    memset(&d, 0, sizeof d);
    d.variant = CLATTN_VARIANT_FLASH;
    setenv("CLATTN_PARAMS", "16,8,2,4,4", 1);
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
    ck_assert_msg(strstr(clattn_plan_params_json(plan), "\"block_m\":16,\"block_n\":8,\"rows\":2,\"tpr\":4,\"wg\":32,"
                                                        "\"vec\":4") != NULL,
                  "%s", clattn_plan_params_json(plan));
    ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
    check_output(ctx, mem[3]);
    clattn_plan_free(plan);
    setenv("CLATTN_PARAMS", "16,8,3,4,4", 1); /* rows must divide block_m */
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_ERROR_INVALID_VALUE);
    ck_assert(strstr(clattn_context_last_error(ctx), "CLATTN_PARAMS") != NULL);
    setenv("CLATTN_PARAMS", "garbage", 1);
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_ERROR_INVALID_VALUE);
    unsetenv("CLATTN_PARAMS");
    release(mem);
}
END_TEST

/* After the first run, runs allocate no device memory, whatever the variant. */
START_TEST(steady_state_allocations)
{
    clattn_context *ctx = test_context();
    clattn_args a;
    cl_mem mem[4];
    make_problem(ctx, &a, mem);
    for (int v = CLATTN_VARIANT_NAIVE; v <= CLATTN_VARIANT_FLASH; v++) {
        clattn_plan *plan = NULL;
        clattn_attention_desc d;
        long before;
        memset(&d, 0, sizeof d);
        d.variant = (clattn_variant)v;
        ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
        ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
        before = clattn__buffer_allocations();
        for (int i = 0; i < 10; i++)
            ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
        ck_assert_int_eq(clattn__buffer_allocations(), before);
        check_output(ctx, mem[3]);
        clattn_plan_free(plan);
    }
    release(mem);
}
END_TEST

/* Several plans (different variants and options) live on one context and run
 * interleaved, each with its own event. */
START_TEST(many_plans)
{
    clattn_context *ctx = test_context();
    clattn_args a;
    cl_mem mem[4];
    clattn_plan *plans[6] = {0};
    make_problem(ctx, &a, mem);
    for (int i = 0; i < 6; i++) {
        clattn_attention_desc d;
        memset(&d, 0, sizeof d);
        d.variant = (clattn_variant)(CLATTN_VARIANT_NAIVE + i % 3);
        d.causal = i >= 3; /* a second specialisation of each kernel */
        ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plans[i]), CLATTN_SUCCESS);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3; i++) { /* the non-causal plans: the reference is non-causal */
            cl_event ev = NULL;
            ck_assert_int_eq(clattn_plan_run(plans[i], &a, NULL, 0, NULL, &ev), CLATTN_SUCCESS);
            ck_assert_int_eq(clWaitForEvents(1, &ev), CL_SUCCESS);
            clReleaseEvent(ev);
            check_output(ctx, mem[3]);
        }
    for (int i = 0; i < 6; i++)
        clattn_plan_free(plans[i]);
    release(mem);
}
END_TEST

/* Write a tuning file for this device (or a foreign one) to a temp path. */
static const char *write_tuning(const char *name, const char *body_fmt, const char *device, const char *driver)
{
    static char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, body_fmt, device, driver);
    fclose(f);
    return path;
}

START_TEST(tuning_file)
{
    clattn_context *ctx = test_context();
    clattn_args a;
    cl_mem mem[4];
    clattn_plan *plan = NULL;
    clattn_attention_desc d;
    cl_device_id dev;
    char driver[128] = "";
    int n = -1;
    const char *good = "{\"format\": 1, \"entries\": [{\"device\": \"%s\", \"driver\": \"%s\", \"variant\": "
                       "\"flash\", \"d_max\": 64, \"block_m\": 8, \"block_n\": 16, \"rows\": 2, \"tpr\": 2, "
                       "\"vec\": 1, \"gflops\": 1.5}]}\n";
    const char *path;
    make_problem(ctx, &a, mem);
    clattn_context_cl(ctx, NULL, &dev, NULL);
    clGetDeviceInfo(dev, CL_DRIVER_VERSION, sizeof driver - 1, driver, NULL);
    memset(&d, 0, sizeof d);
    d.variant = CLATTN_VARIANT_FLASH;

    /* measured on this device: used ahead of the table, and correct */
    path = write_tuning("tune-good.json", good, clattn_context_device_name(ctx), driver);
    setenv("CLATTN_TUNING_FILE", path, 1);
    ck_assert_int_eq(clattn_tuning_file_load(ctx, NULL, &n), CLATTN_SUCCESS);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
    ck_assert_msg(strstr(clattn_plan_params_json(plan), "\"block_m\":8,\"block_n\":16,\"rows\":2,\"tpr\":2") &&
                      strstr(clattn_plan_params_json(plan), "\"tuning\":\"tuning-file\""),
                  "%s", clattn_plan_params_json(plan));
    ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_SUCCESS);
    check_output(ctx, mem[3]);
    clattn_plan_free(plan);

    /* another device's (or driver's) entries do not apply */
    path = write_tuning("tune-foreign.json", good, "Some Other GPU", driver);
    setenv("CLATTN_TUNING_FILE", path, 1);
    ck_assert_int_eq(clattn_tuning_file_load(ctx, NULL, &n), CLATTN_SUCCESS);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
    ck_assert(strstr(clattn_plan_params_json(plan), "\"tuning\":\"tuning-file\"") == NULL);
    clattn_plan_free(plan);
    path = write_tuning("tune-driver.json", good, clattn_context_device_name(ctx), "other driver 9.9");
    ck_assert_int_eq(clattn_tuning_file_load(ctx, path, &n), CLATTN_SUCCESS);
    ck_assert_int_eq(n, 0);

    /* corrupt files: rejected with a message, never used by the scheduler */
    {
        static const char *const bad[] = {
            "garbage",
            "{\"format\": 1, \"entries\": [{\"device\": \"%s\", \"driver\": \"%s\"",   /* truncated */
            "{\"format\": 2, \"entries\": [], \"x\": \"%s%s\"}",                        /* unknown format */
            "{\"format\": 1, \"entries\": [{\"device\": \"%s\", \"driver\": \"%s\", \"variant\": \"flash\"}]}",
            "{\"format\": 1, \"entries\": [{\"device\": \"%s\", \"driver\": \"%s\", \"variant\": \"flash\", "
            "\"d_max\": 64, \"block_m\": 8, \"block_n\": 16, \"rows\": 3, \"tpr\": 2, \"vec\": 1}]}", /* rows */
            "{\"format\": 1, \"entries\": [{\"device\": \"%s\", \"driver\": \"%s\", \"variant\": \"flash\", "
            "\"d_max\": 64, \"block_m\": -8, \"block_n\": 16, \"rows\": 1, \"tpr\": 2, \"vec\": 1}]}",
            "{\"entries\": []} %s%s",                                                     /* trailing text */
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            path = write_tuning("tune-bad.json", bad[i], clattn_context_device_name(ctx), driver);
            setenv("CLATTN_TUNING_FILE", path, 1);
            ck_assert_int_eq(clattn_tuning_file_load(ctx, NULL, &n), CLATTN_ERROR_TUNING_FILE);
            ck_assert_msg(strstr(clattn_context_last_error(ctx), "tune-bad.json") != NULL, "%s",
                          clattn_context_last_error(ctx));
            ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
            ck_assert(strstr(clattn_plan_params_json(plan), "\"tuning\":\"tuning-file\"") == NULL);
            clattn_plan_free(plan);
        }
    }
    ck_assert_int_eq(clattn_tuning_file_load(ctx, "/nonexistent/tuning.json", &n), CLATTN_ERROR_IO);
    unsetenv("CLATTN_TUNING_FILE");
    release(mem);
}
END_TEST

Suite *suite_plan(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("plan");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, explicit_choice);
    tcase_add_test(tc, params_override);
    tcase_add_test(tc, steady_state_allocations);
    tcase_add_test(tc, many_plans);
    tcase_add_test(tc, tuning_file);
    suite_add_tcase(s, tc);
    return s;
}
