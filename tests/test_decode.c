/*
 * test_decode.c - the decode (split-KV) variant against the CPU reference:
 * Nq in {1, 2, 3, 16}, Nk up to 32768, GQA 8:1 and MQA, key padding with
 * lengths 0 and 1, causal bottom-right, every score modifier, forced split
 * counts (1, 3, 7, 64) so the combine step merges empty and full splits,
 * varlen, 16-bit storage, and the scheduler's choice of decode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

START_TEST(shapes_and_masks)
{
    static const int nqs[] = {1, 2, 3, 16};
    static const int nks[] = {1, 17, 255, 1024, 4099};
    static const char *const splits[] = {"1", "3", "7", "64"};
    int n = 0, bad = 0;
    uint64_t seed = test_seed() ^ 0xdecull;
    ck_assert_ptr_nonnull(test_context());
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 5; b++) {
            attn_case c;
            memset(&c, 0, sizeof c);
            c.variant = CLATTN_VARIANT_DECODE;
            c.Nq = nqs[a];
            c.Nk = nks[b];
            c.D = (a + b) % 3 == 0 ? 128 : (a + b) % 3 == 1 ? 64 : 59;
            c.B = 3;
            c.Hq = (a + b) % 2 ? 8 : 6;
            c.Hkv = (a + b) % 2 ? 1 : 3; /* MQA 8:1, GQA 2:1 */
            c.causal = (a + b) % 3 != 2;
            c.align = CLATTN_ALIGN_BOTTOM_RIGHT;
            c.lse = 1;
            c.key_lengths = b % 2; /* per batch: 0, 1, Nk */
            c.nan_masked = 1;
            setenv("CLATTN_SPLITS", splits[(a + b) % 4], 1);
            run_case_counted(&c, seed + (uint64_t)n, &n, &bad, NULL);
        }
    unsetenv("CLATTN_SPLITS");
    printf("decode shapes and masks: %d cases, %d failed\n", n, bad);
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(features)
{
    int n = 0, bad = 0;
    uint64_t seed = test_seed() ^ 0xfea7ull;
    for (int f = 0; f < 9; f++)
        for (int sp = 0; sp < 2; sp++) {
            attn_case c;
            memset(&c, 0, sizeof c);
            c.variant = CLATTN_VARIANT_DECODE;
            c.Nq = 1 + f % 4, c.Nk = 700, c.D = 64, c.B = 2, c.Hq = 8, c.Hkv = 2, c.lse = 1;
            switch (f) {
            case 0: c.alibi = 1, c.causal = 1, c.align = CLATTN_ALIGN_BOTTOM_RIGHT; break;
            case 1: c.softcap = 4.0f, c.in_scale = 3.0f; break;
            case 2: c.use_window = 1, c.wl = 100, c.wr = 0, c.align = CLATTN_ALIGN_BOTTOM_RIGHT; break;
            case 3: c.bias = 3; break;
            case 4: c.bias = 2, c.scale = 0.3f, c.Dv = 40; break;
            case 5: c.dtype = CLATTN_F16, c.causal = 1, c.align = CLATTN_ALIGN_BOTTOM_RIGHT; break;
            case 6: c.dtype = CLATTN_BF16, c.key_lengths = 1; break;
            case 7: c.varlen = 1, c.B = 5, c.causal = 1, c.align = CLATTN_ALIGN_BOTTOM_RIGHT; break;
            default: c.bshd = 1, c.offset = 3, c.causal = 1, c.align = CLATTN_ALIGN_TOP_LEFT; break;
            }
            setenv("CLATTN_SPLITS", sp ? "5" : "1", 1);
            run_case_counted(&c, seed + (uint64_t)n, &n, &bad, NULL);
        }
    unsetenv("CLATTN_SPLITS");
    printf("decode features: %d cases, %d failed\n", n, bad);
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* Long keys: Nk = 32768 with GQA 8:1, the automatic split count, and the
 * scheduler choosing decode by itself; 50 runs bitwise identical. */
START_TEST(long_keys)
{
    int n = 0, bad = 0;
    attn_case c;
    memset(&c, 0, sizeof c);
    c.variant = CLATTN_VARIANT_AUTO; /* Nq <= 16, Nk >= 1024: the scheduler picks decode */
    c.Nq = 1, c.Nk = 32768, c.D = 128, c.B = 1, c.Hq = 8, c.Hkv = 1, c.lse = 1;
    c.causal = 1, c.align = CLATTN_ALIGN_BOTTOM_RIGHT;
    run_case_counted(&c, test_seed() ^ 0x10ull, &n, &bad, NULL);
    c.variant = CLATTN_VARIANT_DECODE, c.Nq = 2, c.Nk = 20000, c.D = 64, c.repeat = 50;
    setenv("CLATTN_SPLITS", "13", 1);
    run_case_counted(&c, test_seed() ^ 0x11ull, &n, &bad, NULL);
    unsetenv("CLATTN_SPLITS");
    printf("decode long keys: %d cases, %d failed\n", n, bad);
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(scheduler_and_limits)
{
    clattn_context *ctx = test_context();
    cl_context c;
    cl_int err;
    cl_mem m;
    clattn_args a;
    clattn_plan *plan = NULL;
    clattn_attention_desc d;
    clattn_context_cl(ctx, &c, NULL, NULL);
    m = clCreateBuffer(c, CL_MEM_READ_WRITE, 8u << 20, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    memset(&a, 0, sizeof a);
    a.q = clattn_tensor_make(NULL, 0, CLATTN_F32, 1, 4, 1, 64);
    a.k = clattn_tensor_make(NULL, 0, CLATTN_F32, 1, 4, 4096, 64);
    a.v = a.k;
    a.o = a.q;
    ck_assert_int_eq(clattn_plan_create(ctx, NULL, &a, &plan), CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_plan_variant(plan), CLATTN_VARIANT_DECODE);
    ck_assert(clattn_plan_device_bytes(plan) > 0); /* the partials live in plan-owned scratch */
    ck_assert(strstr(clattn_plan_params_json(plan), "\"splits\":") != NULL);
    clattn_plan_free(plan);
    /* many query rows: not decode, and an explicit request says why */
    a.q.shape[2] = a.o.shape[2] = 64;
    ck_assert_int_eq(clattn_plan_create(ctx, NULL, &a, &plan), CLATTN_SUCCESS);
    ck_assert_int_ne(clattn_plan_variant(plan), CLATTN_VARIANT_DECODE);
    clattn_plan_free(plan);
    memset(&d, 0, sizeof d);
    d.variant = CLATTN_VARIANT_DECODE;
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_ERROR_UNSUPPORTED);
    ck_assert(strstr(clattn_context_last_error(ctx), "16 query rows") != NULL);
    setenv("CLATTN_SPLITS", "0", 1);
    a.q.shape[2] = a.o.shape[2] = 1;
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_ERROR_INVALID_VALUE);
    unsetenv("CLATTN_SPLITS");
    clReleaseMemObject(m);
}
END_TEST

Suite *suite_decode(void)
{
    Suite *s = suite_create("decode");
    TCase *tc = tcase_create("decode");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, shapes_and_masks);
    tcase_add_test(tc, features);
    tcase_add_test(tc, long_keys);
    tcase_add_test(tc, scheduler_and_limits);
    suite_add_tcase(s, tc);
    return s;
}
