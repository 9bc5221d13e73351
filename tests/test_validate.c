/*
 * test_validate.c - every validation branch of plan creation, plan runs and
 * the host call returns its own status, names the argument in the last-error
 * text, and leaves outputs untouched.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

enum { B = 2, HQ = 4, HKV = 2, NQ = 5, NK = 7, D = 8 };
#define NQE (B * HQ * NQ * D)
#define NKE (B * HKV * NK * D)

typedef struct fixture {
    clattn_context *ctx;
    cl_mem q, k, v, o, lse, big;
    clattn_args args;
    clattn_attention_desc desc;
} fixture;

static fixture fx;

static cl_mem buffer(size_t bytes, const void *init)
{
    cl_context c;
    cl_int err;
    cl_mem m;
    clattn_context_cl(fx.ctx, &c, NULL, NULL);
    m = clCreateBuffer(c, CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0), bytes, (void *)init, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    return m;
}

static void setup(void)
{
    static float data[NQE + NKE];
    uint64_t rng = test_seed();
    memset(&fx, 0, sizeof fx);
    fx.ctx = test_context();
    ck_assert_ptr_nonnull(fx.ctx);
    test_fill_uniform(data, NQE + NKE, 1, &rng);
    fx.q = buffer(NQE * 4, data);
    fx.k = buffer(NKE * 4, data);
    fx.v = buffer(NKE * 4, data + NKE / 2);
    memset(data, 0xFF, NQE * 4); /* poison */
    fx.o = buffer(NQE * 4, data);
    fx.lse = buffer(B * HQ * NQ * 4, data);
    fx.big = buffer(4 * NQE * 4, NULL);
    fx.args.q = clattn_tensor_make(fx.q, 0, CLATTN_F32, B, HQ, NQ, D);
    fx.args.k = clattn_tensor_make(fx.k, 0, CLATTN_F32, B, HKV, NK, D);
    fx.args.v = clattn_tensor_make(fx.v, 0, CLATTN_F32, B, HKV, NK, D);
    fx.args.o = clattn_tensor_make(fx.o, 0, CLATTN_F32, B, HQ, NQ, D);
    fx.args.lse = clattn_tensor_make(fx.lse, 0, CLATTN_F32, B, HQ, NQ, 1);
}

static void teardown(void)
{
    cl_mem all[6] = {fx.q, fx.k, fx.v, fx.o, fx.lse, fx.big};
    for (int i = 0; i < 6; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
}

/* Output bytes still all poison (0xFF)? */
static int o_untouched(void)
{
    static unsigned char host[NQE * 4];
    cl_command_queue q;
    clattn_context_cl(fx.ctx, NULL, NULL, &q);
    ck_assert_int_eq(clEnqueueReadBuffer(q, fx.o, CL_TRUE, 0, sizeof host, host, 0, NULL, NULL), CL_SUCCESS);
    for (size_t i = 0; i < sizeof host; i++)
        if (host[i] != 0xFF)
            return 0;
    return 1;
}

/* plan_create must fail with want, mention `arg` in the last error, and write nothing. */
static void expect(const clattn_args *a, const clattn_attention_desc *d, clattn_status want, const char *arg)
{
    clattn_plan *plan = (clattn_plan *)1;
    clattn_status st = clattn_plan_create(fx.ctx, d, a, &plan);
    ck_assert_msg(st == want, "expected %s, got %s (%s)", clattn_status_name(want), clattn_status_name(st),
                  clattn_context_last_error(fx.ctx));
    ck_assert_ptr_null(plan);
    if (arg)
        ck_assert_msg(strstr(clattn_context_last_error(fx.ctx), arg) != NULL, "'%s' not named in: %s", arg,
                      clattn_context_last_error(fx.ctx));
    ck_assert(o_untouched());
}

START_TEST(valid_baseline)
{
    clattn_plan *plan = NULL;
    ck_assert_int_eq(clattn_plan_create(fx.ctx, NULL, &fx.args, &plan), CLATTN_SUCCESS);
    {
        /* the scheduler chose a real variant and reports it with its parameters */
        char want[64];
        ck_assert_int_ne(clattn_plan_variant(plan), CLATTN_VARIANT_AUTO);
        snprintf(want, sizeof want, "\"variant\":\"%s\"", clattn_variant_name(clattn_plan_variant(plan)));
        ck_assert_msg(strstr(clattn_plan_params_json(plan), want) != NULL, "%s", clattn_plan_params_json(plan));
    }
    clattn_plan_free(plan);
    clattn_plan_free(NULL);
}
END_TEST

START_TEST(null_arguments)
{
    clattn_plan *plan = NULL;
    clattn_args a = fx.args;
    ck_assert_int_eq(clattn_plan_create(NULL, NULL, &fx.args, &plan), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert_int_eq(clattn_plan_create(fx.ctx, NULL, &fx.args, NULL), CLATTN_ERROR_NULL_ARGUMENT);
    expect(NULL, NULL, CLATTN_ERROR_NULL_ARGUMENT, "args");
    ck_assert_int_eq(clattn_plan_run(NULL, &fx.args, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT);
    /* plan_create may omit buffers, plan_run may not */
    a.q.buffer = NULL;
    ck_assert_int_eq(clattn_plan_create(fx.ctx, NULL, &a, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert(strstr(clattn_context_last_error(fx.ctx), "q") != NULL);
    ck_assert(o_untouched());
    clattn_plan_free(plan);
}
END_TEST

START_TEST(shapes)
{
    clattn_args a;
    a = fx.args, a.q.shape[2] = 0;
    expect(&a, NULL, CLATTN_ERROR_INVALID_SHAPE, "q");
    a = fx.args, a.k.shape[3] = -3;
    expect(&a, NULL, CLATTN_ERROR_INVALID_SHAPE, "k");
    a = fx.args, a.v.shape[2] = NK + 1;
    expect(&a, NULL, CLATTN_ERROR_INVALID_SHAPE, "v");
    a = fx.args, a.k.shape[0] = 1;
    expect(&a, NULL, CLATTN_ERROR_INVALID_SHAPE, "batch");
    a = fx.args, a.o.shape[3] = D + 1;
    expect(&a, NULL, CLATTN_ERROR_INVALID_SHAPE, "o");
    a = fx.args, a.k.shape[1] = 3, a.v.shape[1] = 3;
    expect(&a, NULL, CLATTN_ERROR_HEAD_MISMATCH, "heads");
    a = fx.args, a.q.shape[3] = 257, a.k.shape[3] = 257;
    expect(&a, NULL, CLATTN_ERROR_HEAD_DIM, "256");
    a = fx.args, a.lse.shape[2] = NQ - 1;
    expect(&a, NULL, CLATTN_ERROR_INVALID_SHAPE, "lse");
    a = fx.args, a.lse.shape[3] = 2;
    expect(&a, NULL, CLATTN_ERROR_INVALID_SHAPE, "lse");
}
END_TEST

START_TEST(strides_sizes_overflow)
{
    clattn_args a;
    /* overlapping output strides */
    a = fx.args;
    a.o.strides[0] = HQ * NQ * D, a.o.strides[1] = NQ * D, a.o.strides[2] = 1, a.o.strides[3] = 1;
    expect(&a, NULL, CLATTN_ERROR_INVALID_STRIDE, "overlap");
    a = fx.args, a.q.strides[3] = -1;
    expect(&a, NULL, CLATTN_ERROR_INVALID_STRIDE, "q");
    /* buffer smaller than the view (offset pushes it past the end) */
    a = fx.args, a.k.offset = 4;
    expect(&a, NULL, CLATTN_ERROR_BUFFER_TOO_SMALL, "k");
    a = fx.args, a.lse.buffer = fx.lse, a.lse.offset = 8;
    expect(&a, NULL, CLATTN_ERROR_BUFFER_TOO_SMALL, "lse");
    /* element and byte counts that overflow */
    a = fx.args;
    a.q.shape[0] = a.k.shape[0] = a.v.shape[0] = a.o.shape[0] = INT32_MAX;
    a.q.shape[1] = a.o.shape[1] = INT32_MAX;
    a.q.shape[2] = a.o.shape[2] = INT32_MAX;
    expect(&a, NULL, CLATTN_ERROR_SIZE_OVERFLOW, "overflow");
    a = fx.args, a.q.shape[2] = (int64_t)INT32_MAX + 1;
    expect(&a, NULL, CLATTN_ERROR_SIZE_OVERFLOW, "q");
    a = fx.args, a.q.strides[0] = INT64_MAX / 2, a.q.strides[1] = 1, a.q.strides[2] = 1, a.q.strides[3] = 1;
    expect(&a, NULL, CLATTN_ERROR_SIZE_OVERFLOW, "q");
    /* misaligned byte offset */
    a = fx.args, a.v.offset = 2;
    expect(&a, NULL, CLATTN_ERROR_MISALIGNED, "v");
}
END_TEST

START_TEST(dtypes_and_enums)
{
    clattn_args a;
    clattn_attention_desc d;
    a = fx.args, a.q.dtype = (clattn_dtype)7;
    expect(&a, NULL, CLATTN_ERROR_INVALID_DTYPE, "q");
    a = fx.args, a.k.dtype = CLATTN_F16;
    expect(&a, NULL, CLATTN_ERROR_INVALID_DTYPE, "k");
    a = fx.args, a.lse.dtype = CLATTN_F16;
    expect(&a, NULL, CLATTN_ERROR_INVALID_DTYPE, "lse");
    memset(&d, 0, sizeof d), d.align = (clattn_align)5;
    expect(&fx.args, &d, CLATTN_ERROR_INVALID_ENUM, "align");
    memset(&d, 0, sizeof d), d.variant = (clattn_variant)42;
    expect(&fx.args, &d, CLATTN_ERROR_INVALID_ENUM, "variant");
}
END_TEST

START_TEST(attributes)
{
    clattn_attention_desc d;
    memset(&d, 0, sizeof d), d.scale = NAN;
    expect(&fx.args, &d, CLATTN_ERROR_INVALID_SCALE, "scale");
    memset(&d, 0, sizeof d), d.scale = INFINITY;
    expect(&fx.args, &d, CLATTN_ERROR_INVALID_SCALE, "scale");
    memset(&d, 0, sizeof d), d.softcap = -1.0f;
    expect(&fx.args, &d, CLATTN_ERROR_INVALID_SOFTCAP, "softcap");
    memset(&d, 0, sizeof d), d.softcap = NAN;
    expect(&fx.args, &d, CLATTN_ERROR_INVALID_SOFTCAP, "softcap");
    memset(&d, 0, sizeof d), d.use_window = 1, d.window_left = -2, d.window_right = 0;
    expect(&fx.args, &d, CLATTN_ERROR_INVALID_WINDOW, "window");
}
END_TEST

START_TEST(optional_inputs)
{
    clattn_args a;
    a = fx.args, a.bias = clattn_tensor_make(fx.big, 0, CLATTN_F32, 1, 3, 1, NK);
    expect(&a, NULL, CLATTN_ERROR_INVALID_BIAS, "bias");
    a = fx.args, a.bias = clattn_tensor_make(fx.big, 0, CLATTN_F16, 1, 1, 1, NK);
    expect(&a, NULL, CLATTN_ERROR_INVALID_BIAS, "bias");
    a = fx.args, a.alibi = fx.lse, a.alibi_offset = 2;
    expect(&a, NULL, CLATTN_ERROR_MISALIGNED, "alibi");
    a = fx.args, a.key_lengths = fx.lse, a.key_lengths_offset = B * HQ * NQ * 4 - 4;
    expect(&a, NULL, CLATTN_ERROR_BUFFER_TOO_SMALL, "key_lengths");
}
END_TEST

START_TEST(aliasing)
{
    clattn_args a;
    a = fx.args, a.o.buffer = fx.q;
    expect(&a, NULL, CLATTN_ERROR_ALIASING, "overlap");
    a = fx.args, a.lse.buffer = fx.o;
    expect(&a, NULL, CLATTN_ERROR_ALIASING, "lse");
    /* disjoint parts of one buffer are fine */
    a = fx.args;
    a.o.buffer = fx.big, a.o.offset = 0;
    a.lse.buffer = fx.big, a.lse.offset = NQE * 4;
    {
        clattn_plan *plan = NULL;
        ck_assert_int_eq(clattn_plan_create(fx.ctx, NULL, &a, &plan), CLATTN_SUCCESS);
        clattn_plan_free(plan);
    }
}
END_TEST

START_TEST(variant_choice)
{
    clattn_attention_desc d;
    clattn_plan *plan = NULL;
    {
        /* a variant asked for by name that lacks something the problem needs:
         * decode takes at most 16 query rows (metadata-only views) */
        clattn_args many = fx.args;
        many.q.buffer = many.o.buffer = many.lse.buffer = NULL;
        many.q.shape[2] = many.o.shape[2] = many.lse.shape[2] = 40;
        many.has_lse = 1;
        memset(&d, 0, sizeof d), d.variant = CLATTN_VARIANT_DECODE;
        expect(&many, &d, CLATTN_ERROR_UNSUPPORTED, "decode");
    }
    setenv("CLATTN_VARIANT", "bogus", 1);
    expect(&fx.args, NULL, CLATTN_ERROR_UNKNOWN_VARIANT, "CLATTN_VARIANT");
    setenv("CLATTN_VARIANT", "naive", 1);
    ck_assert_int_eq(clattn_plan_create(fx.ctx, NULL, &fx.args, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_variant(plan), CLATTN_VARIANT_NAIVE);
    clattn_plan_free(plan);
    unsetenv("CLATTN_VARIANT");
}
END_TEST

START_TEST(run_mismatch)
{
    clattn_plan *plan = NULL;
    clattn_args a = fx.args;
    cl_event ev = NULL;
    ck_assert_int_eq(clattn_plan_create(fx.ctx, NULL, &fx.args, &plan), CLATTN_SUCCESS);
    a.q.shape[2] = NQ - 1, a.o.shape[2] = NQ - 1, a.lse.shape[2] = NQ - 1;
    ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_ERROR_PLAN_MISMATCH);
    a = fx.args, a.lse.buffer = NULL;
    ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_ERROR_PLAN_MISMATCH);
    ck_assert_int_eq(clattn_plan_run(plan, &fx.args, NULL, 1, NULL, NULL), CLATTN_ERROR_INVALID_VALUE);
    a = fx.args, a.o.buffer = fx.q;
    ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_ERROR_ALIASING);
    a = fx.args, a.o.buffer = fx.k; /* smaller than o's view */
    ck_assert_int_eq(clattn_plan_run(plan, &a, NULL, 0, NULL, NULL), CLATTN_ERROR_BUFFER_TOO_SMALL);
    ck_assert(o_untouched());
    /* and the plan still runs correctly afterwards, with an event */
    ck_assert_int_eq(clattn_plan_run(plan, &fx.args, NULL, 0, NULL, &ev), CLATTN_SUCCESS);
    ck_assert_ptr_nonnull(ev);
    ck_assert_int_eq(clWaitForEvents(1, &ev), CL_SUCCESS);
    clReleaseEvent(ev);
    ck_assert(!o_untouched());
    clattn_plan_free(plan);
}
END_TEST

START_TEST(host_call)
{
    float q[2 * 4], k[3 * 4], v[3 * 4], o[2 * 4];
    const int32_t lens[1] = {4};
    clattn_host_args a;
    uint64_t rng = test_seed();
    test_fill_uniform(q, 8, 1, &rng);
    test_fill_uniform(k, 12, 1, &rng);
    test_fill_uniform(v, 12, 1, &rng);
    for (int i = 0; i < 8; i++)
        o[i] = 123.0f;
    memset(&a, 0, sizeof a);
    a.q = (clattn_host_tensor){q, CLATTN_F32, {1, 1, 2, 4}};
    a.k = (clattn_host_tensor){k, CLATTN_F32, {1, 1, 3, 4}};
    a.v = (clattn_host_tensor){v, CLATTN_F32, {1, 1, 3, 4}};
    a.o = (clattn_host_tensor){o, CLATTN_F32, {1, 1, 2, 4}};
    a.key_lengths = lens; /* 4 > Nk = 3 */
    ck_assert_int_eq(clattn_attention_host(fx.ctx, NULL, &a, NULL), CLATTN_ERROR_INVALID_KEY_LENGTHS);
    ck_assert(strstr(clattn_context_last_error(fx.ctx), "key_lengths") != NULL);
    a.key_lengths = NULL;
    a.q.data = NULL;
    ck_assert_int_eq(clattn_attention_host(fx.ctx, NULL, &a, NULL), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert_int_eq(clattn_attention_host(NULL, NULL, &a, NULL), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert_int_eq(clattn_attention_host(fx.ctx, NULL, NULL, NULL), CLATTN_ERROR_NULL_ARGUMENT);
    for (int i = 0; i < 8; i++)
        ck_assert(o[i] == 123.0f);
}
END_TEST

Suite *suite_validate(void)
{
    Suite *s = suite_create("validate");
    TCase *tc = tcase_create("validate");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, valid_baseline);
    tcase_add_test(tc, null_arguments);
    tcase_add_test(tc, shapes);
    tcase_add_test(tc, strides_sizes_overflow);
    tcase_add_test(tc, dtypes_and_enums);
    tcase_add_test(tc, attributes);
    tcase_add_test(tc, optional_inputs);
    tcase_add_test(tc, aliasing);
    tcase_add_test(tc, variant_choice);
    tcase_add_test(tc, run_mismatch);
    tcase_add_test(tc, host_call);
    suite_add_tcase(s, tc);
    return s;
}
