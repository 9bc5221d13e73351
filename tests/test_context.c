/*
 * test_context.c - device selection (default, CLATTN_DEVICE, P:D, type, name
 * substring, malformed and missing specs), adopting the caller's OpenCL
 * objects, the last-error text, and a build failure's log reaching the user.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

START_TEST(default_and_indices)
{
    clattn_context *ctx = NULL;
    unsigned p = 99, d = 99;
    unsetenv("CLATTN_DEVICE");
    ck_assert_int_eq(clattn_device_select(NULL, &p, &d), CLATTN_SUCCESS);
    ck_assert(p < 32 && d < 64);
    ck_assert_int_eq(clattn_context_create(NULL, &ctx), CLATTN_SUCCESS);
    ck_assert_ptr_nonnull(ctx);
    ck_assert(strlen(clattn_context_device_name(ctx)) > 0);
    ck_assert_str_eq(clattn_context_last_error(ctx), "");
    clattn_context_free(ctx);
    {
        char spec[32];
        snprintf(spec, sizeof spec, "%u:%u", p, d);
        ck_assert_int_eq(clattn_context_create(spec, &ctx), CLATTN_SUCCESS);
        clattn_context_free(ctx);
    }
    clattn_context_free(NULL); /* no-op */
}
END_TEST

START_TEST(by_name_and_type)
{
    clattn_context *ctx = NULL, *ctx2 = NULL;
    char name[256], part[8];
    cl_device_id dev;
    cl_device_type type = 0;
    ck_assert_int_eq(clattn_context_create(NULL, &ctx), CLATTN_SUCCESS);
    snprintf(name, sizeof name, "%s", clattn_context_device_name(ctx));
    clattn_context_cl(ctx, NULL, &dev, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    /* a substring of the name, in other case, finds a device of that name */
    snprintf(part, sizeof part, "%.4s", name);
    for (char *c = part; *c; c++)
        *c = (char)((*c >= 'a' && *c <= 'z') ? *c - 32 : (*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
    ck_assert_int_eq(clattn_context_create(part, &ctx2), CLATTN_SUCCESS);
    clattn_context_free(ctx2);
    ctx2 = NULL;
    ck_assert_int_eq(clattn_context_create((type & CL_DEVICE_TYPE_GPU) ? "gpu" : (type & CL_DEVICE_TYPE_CPU) ? "cpu" : name,
                                           &ctx2),
                     CLATTN_SUCCESS);
    clattn_context_free(ctx2);
    clattn_context_free(ctx);
}
END_TEST

START_TEST(bad_specs)
{
    clattn_context *ctx = (clattn_context *)1;
    unsigned p, d;
    ck_assert_int_eq(clattn_context_create("99:0", &ctx), CLATTN_ERROR_NO_DEVICE);
    ck_assert_ptr_null(ctx);
    ck_assert_int_eq(clattn_context_create("0:999", &ctx), CLATTN_ERROR_NO_DEVICE);
    ck_assert_int_eq(clattn_context_create("1:x", &ctx), CLATTN_ERROR_INVALID_DEVICE_SPEC);
    ck_assert_int_eq(clattn_context_create("0:", &ctx), CLATTN_ERROR_INVALID_DEVICE_SPEC);
    ck_assert_int_eq(clattn_context_create("no such device name", &ctx), CLATTN_ERROR_NO_DEVICE);
    ck_assert_int_eq(clattn_context_create(NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert_int_eq(clattn_device_select(NULL, NULL, &d), CLATTN_ERROR_NULL_ARGUMENT);
    /* CLATTN_DEVICE applies when no spec is given, and only then */
    setenv("CLATTN_DEVICE", "no such device name", 1);
    ck_assert_int_eq(clattn_context_create(NULL, &ctx), CLATTN_ERROR_NO_DEVICE);
    ck_assert_int_eq(clattn_device_select(NULL, &p, &d), CLATTN_ERROR_NO_DEVICE);
    ck_assert_int_eq(clattn_context_create("0:0", &ctx), CLATTN_SUCCESS);
    clattn_context_free(ctx);
    setenv("CLATTN_DEVICE", "0:0", 1);
    ck_assert_int_eq(clattn_context_create(NULL, &ctx), CLATTN_SUCCESS);
    clattn_context_free(ctx);
    unsetenv("CLATTN_DEVICE");
}
END_TEST

START_TEST(adopt)
{
    clattn_context *own = NULL, *ctx = NULL;
    cl_context clctx, other = NULL;
    cl_device_id dev;
    cl_command_queue q, other_q = NULL;
    cl_int err;
    float qd[2 * 8] = {0}, kd[3 * 8], vd[3 * 8], od[2 * 8], ref[2 * 8];
    uint64_t rng = test_seed();
    clattn_host_args a;
    clattn_variant ran = CLATTN_VARIANT_AUTO;
    ck_assert_int_eq(clattn_context_create(NULL, &own), CLATTN_SUCCESS);
    clattn_context_cl(own, &clctx, &dev, &q);
    ck_assert_int_eq(clattn_context_adopt(clctx, dev, q, &ctx), CLATTN_SUCCESS);
    /* the adopted context outlives the one that made the objects */
    clattn_context_free(own);
    test_fill_uniform(qd, 16, 1, &rng);
    test_fill_uniform(kd, 24, 1, &rng);
    test_fill_uniform(vd, 24, 1, &rng);
    memset(&a, 0, sizeof a);
    a.q = (clattn_host_tensor){qd, CLATTN_F32, {1, 1, 2, 8}};
    a.k = (clattn_host_tensor){kd, CLATTN_F32, {1, 1, 3, 8}};
    a.v = (clattn_host_tensor){vd, CLATTN_F32, {1, 1, 3, 8}};
    a.o = (clattn_host_tensor){ref, CLATTN_F32, {1, 1, 2, 8}};
    ck_assert_int_eq(clattn_reference(NULL, &a), CLATTN_SUCCESS);
    a.o.data = od;
    ck_assert_int_eq(clattn_attention_host(ctx, NULL, &a, &ran), CLATTN_SUCCESS);
    ck_assert_int_ne(ran, CLATTN_VARIANT_AUTO);
    {
        clattn_compare_result r = clattn_compare_f32(od, ref, 16);
        ck_assert(clattn_compare_ok(&r, 1e-5, 1e-4, 1e-7));
    }
    /* a queue of another context is refused, with a message */
    other = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    other_q = clCreateCommandQueue(other, dev, 0, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    clattn_context_cl(ctx, &clctx, NULL, NULL);
    {
        clattn_context *bad = (clattn_context *)1;
        ck_assert_int_eq(clattn_context_adopt(clctx, dev, other_q, &bad), CLATTN_ERROR_INVALID_VALUE);
        ck_assert_ptr_null(bad);
        ck_assert_int_eq(clattn_context_adopt(NULL, dev, other_q, &bad), CLATTN_ERROR_NULL_ARGUMENT);
    }
    clReleaseCommandQueue(other_q);
    clReleaseContext(other);
    clattn_context_free(ctx);
}
END_TEST

/* A kernel that does not compile: CLATTN_ERROR_BUILD, the log in the
 * last-error text, and the context still works once the source is fixed. */
START_TEST(build_failure)
{
    char path[512];
    FILE *f;
    clattn_context *ctx = NULL;
    float qd[4] = {1, 2, 3, 4}, od[4];
    clattn_host_args a;
    clattn_attention_desc naive = {0};
    naive.variant = CLATTN_VARIANT_NAIVE; /* the one kernel file the broken tree holds */
    snprintf(path, sizeof path, "%s/naive.cl", test_tmpdir());
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("__kernel void attn_naive(__global float *x) { this is not C; }\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/common.cl", test_tmpdir()); /* the shared prelude, empty here */
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/naive.cl", test_tmpdir());
    setenv("CLATTN_KERNEL_DIR", test_tmpdir(), 1);
    ck_assert_int_eq(clattn_context_create(NULL, &ctx), CLATTN_SUCCESS);
    memset(&a, 0, sizeof a);
    a.q = (clattn_host_tensor){qd, CLATTN_F32, {1, 1, 1, 4}};
    a.k = a.q;
    a.v = a.q;
    a.o = (clattn_host_tensor){od, CLATTN_F32, {1, 1, 1, 4}};
    od[0] = 42.0f;
    ck_assert_int_eq(clattn_attention_host(ctx, &naive, &a, NULL), CLATTN_ERROR_BUILD);
    ck_assert_msg(strstr(clattn_context_last_error(ctx), "build log") != NULL, "last error: %s",
                  clattn_context_last_error(ctx));
    ck_assert(od[0] == 42.0f); /* output untouched */
    unsetenv("CLATTN_KERNEL_DIR");
    remove(path);
    /* the same context builds the real source afterwards */
    ck_assert_int_eq(clattn_attention_host(ctx, &naive, &a, NULL), CLATTN_SUCCESS);
    ck_assert_str_eq(clattn_context_last_error(ctx), "");
    clattn_context_free(ctx);
}
END_TEST

Suite *suite_context(void)
{
    Suite *s = suite_create("context");
    TCase *tc = tcase_create("context");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, default_and_indices);
    tcase_add_test(tc, by_name_and_type);
    tcase_add_test(tc, bad_specs);
    tcase_add_test(tc, adopt);
    tcase_add_test(tc, build_failure);
    suite_add_tcase(s, tc);
    return s;
}
