/*
 * test_reference.c - the CPU reference against small cases computed by hand
 * (softmax of two or three scores written out in closed form).
 */
#include <math.h>
#include <string.h>

#include "tests.h"

#define EPS 1e-6

/* One (b, h) problem in f32 with explicit sizes. */
static clattn_status ref1(const clattn_attention_desc *d, int Hq, int Hkv, int Nq, int Nk, int D, const float *q,
                          const float *k, const float *v, float *o, float *lse)
{
    clattn_host_args a;
    memset(&a, 0, sizeof a);
    a.q = (clattn_host_tensor){(void *)q, CLATTN_F32, {1, Hq, Nq, D}};
    a.k = (clattn_host_tensor){(void *)k, CLATTN_F32, {1, Hkv, Nk, D}};
    a.v = (clattn_host_tensor){(void *)v, CLATTN_F32, {1, Hkv, Nk, D}};
    a.o = (clattn_host_tensor){o, CLATTN_F32, {1, Hq, Nq, D}};
    if (lse)
        a.lse = (clattn_host_tensor){lse, CLATTN_F32, {1, Hq, Nq, 1}};
    return clattn_reference(d, &a);
}

START_TEST(two_keys)
{
    /* s = [1, 2] (scale 1): p = [1, e] / (1 + e); O = (10 + 20e) / (1 + e); LSE = 1 + log(1 + e) */
    const float q[1] = {1}, k[2] = {1, 2}, v[2] = {10, 20};
    float o[1], lse[1];
    clattn_attention_desc d = {0};
    const double e = exp(1.0);
    d.scale = 1.0f;
    ck_assert_int_eq(ref1(&d, 1, 1, 1, 2, 1, q, k, v, o, lse), CLATTN_SUCCESS);
    ck_assert_double_eq_tol(o[0], (10 + 20 * e) / (1 + e), EPS);
    ck_assert_double_eq_tol(lse[0], 1 + log(1 + e), EPS);
}
END_TEST

START_TEST(default_scale)
{
    /* D = 4: scale 1/2. q = k0 = [1,1,1,1], k1 = 0: s = [2, 0]. */
    const float q[4] = {1, 1, 1, 1}, k[8] = {1, 1, 1, 1, 0, 0, 0, 0};
    const float v[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    float o[4], lse[1];
    const double e2 = exp(2.0);
    ck_assert_int_eq(ref1(NULL, 1, 1, 1, 2, 4, q, k, v, o, lse), CLATTN_SUCCESS);
    ck_assert_double_eq_tol(o[0], e2 / (e2 + 1), EPS);
    ck_assert_double_eq_tol(o[1], 1 / (e2 + 1), EPS);
    ck_assert_double_eq_tol(o[2], 0, EPS);
    ck_assert_double_eq_tol(lse[0], log(e2 + 1), EPS);
}
END_TEST

START_TEST(causal_alignments)
{
    /* D = 1, scale 1, q = [1, 1, 1], k = [0, 1, 2], v = [1, 2, 3]. */
    const float q[3] = {1, 1, 1}, k[3] = {0, 1, 2}, v[3] = {1, 2, 3};
    float o[3], lse[3];
    clattn_attention_desc d = {0};
    const double e = exp(1.0), e2 = exp(2.0);
    d.scale = 1.0f;
    d.causal = 1;
    /* top-left, Nq = 1, Nk = 3: row 0 keeps key 0 only */
    ck_assert_int_eq(ref1(&d, 1, 1, 1, 3, 1, q, k, v, o, lse), CLATTN_SUCCESS);
    ck_assert_double_eq_tol(o[0], 1.0, EPS);
    ck_assert_double_eq_tol(lse[0], 0.0, EPS);
    /* bottom-right, Nq = 1, Nk = 3: row 0 keeps all keys */
    d.align = CLATTN_ALIGN_BOTTOM_RIGHT;
    ck_assert_int_eq(ref1(&d, 1, 1, 1, 3, 1, q, k, v, o, lse), CLATTN_SUCCESS);
    ck_assert_double_eq_tol(o[0], (1 + 2 * e + 3 * e2) / (1 + e + e2), EPS);
    ck_assert_double_eq_tol(lse[0], log(1 + e + e2), EPS);
    /* bottom-right, Nq = 3 > Nk = 1: off = -2, rows 0 and 1 are empty */
    ck_assert_int_eq(ref1(&d, 1, 1, 3, 1, 1, q, k, v, o, lse), CLATTN_SUCCESS);
    ck_assert(o[0] == 0.0f && o[1] == 0.0f);
    ck_assert(isinf(lse[0]) && lse[0] < 0 && isinf(lse[1]) && lse[1] < 0);
    ck_assert_double_eq_tol(o[2], 1.0, EPS);
    ck_assert_double_eq_tol(lse[2], 0.0, EPS);
    /* top-left, Nq = 3 = Nk: row 1 keeps keys 0 and 1 */
    d.align = CLATTN_ALIGN_TOP_LEFT;
    ck_assert_int_eq(ref1(&d, 1, 1, 3, 3, 1, q, k, v, o, lse), CLATTN_SUCCESS);
    ck_assert_double_eq_tol(o[1], (1 + 2 * e) / (1 + e), EPS);
    ck_assert_double_eq_tol(o[2], (1 + 2 * e + 3 * e2) / (1 + e + e2), EPS);
}
END_TEST

START_TEST(gqa_heads)
{
    /* Hq = 2 share one kv head; q head 1 has the opposite sign. */
    const float q[2] = {1, -1}, k[2] = {0, 1}, v[2] = {1, 3};
    float o[2], lse[2];
    clattn_attention_desc d = {0};
    const double e = exp(1.0);
    d.scale = 1.0f;
    ck_assert_int_eq(ref1(&d, 2, 1, 1, 2, 1, q, k, v, o, lse), CLATTN_SUCCESS);
    ck_assert_double_eq_tol(o[0], (1 + 3 * e) / (1 + e), EPS);
    ck_assert_double_eq_tol(o[1], (1 + 3 / e) / (1 + 1 / e), EPS);
    ck_assert_double_eq_tol(lse[1], log(1 + 1 / e), EPS);
    /* Hq not a multiple of Hkv is refused */
    ck_assert_int_eq(ref1(&d, 3, 2, 1, 2, 1, q, k, v, o, lse), CLATTN_ERROR_HEAD_MISMATCH);
}
END_TEST

START_TEST(softcap_alibi_window)
{
    const float q[1] = {1}, k[3] = {1, 2, 0}, v[3] = {1, 2, 3};
    float o[1], lse[1];
    clattn_attention_desc d = {0};
    clattn_host_args a;
    const float slope[1] = {0.5f};
    d.scale = 1.0f;
    d.softcap = 1.0f; /* s = tanh([1, 2, 0]) */
    ck_assert_int_eq(ref1(&d, 1, 1, 1, 3, 1, q, k, v, o, lse), CLATTN_SUCCESS);
    {
        const double w0 = exp(tanh(1.0)), w1 = exp(tanh(2.0)), w2 = 1.0;
        ck_assert_double_eq_tol(o[0], (w0 + 2 * w1 + 3 * w2) / (w0 + w1 + w2), EPS);
        ck_assert_double_eq_tol(lse[0], log(w0 + w1 + w2), EPS);
    }
    /* ALiBi slope 0.5 on row 0 (off 0): s = [1, 2 - 0.5, 0 - 1] */
    memset(&d, 0, sizeof d);
    d.scale = 1.0f;
    memset(&a, 0, sizeof a);
    a.q = (clattn_host_tensor){(void *)q, CLATTN_F32, {1, 1, 1, 1}};
    a.k = (clattn_host_tensor){(void *)k, CLATTN_F32, {1, 1, 3, 1}};
    a.v = (clattn_host_tensor){(void *)v, CLATTN_F32, {1, 1, 3, 1}};
    a.o = (clattn_host_tensor){o, CLATTN_F32, {1, 1, 1, 1}};
    a.lse = (clattn_host_tensor){lse, CLATTN_F32, {1, 1, 1, 1}};
    a.alibi = slope;
    ck_assert_int_eq(clattn_reference(&d, &a), CLATTN_SUCCESS);
    {
        const double w0 = exp(1.0), w1 = exp(1.5), w2 = exp(-1.0);
        ck_assert_double_eq_tol(o[0], (w0 + 2 * w1 + 3 * w2) / (w0 + w1 + w2), EPS);
    }
    /* Window (0, 1) on row 0: keys 0 and 1 */
    a.alibi = NULL;
    d.use_window = 1;
    d.window_left = 0;
    d.window_right = 1;
    ck_assert_int_eq(clattn_reference(&d, &a), CLATTN_SUCCESS);
    ck_assert_double_eq_tol(o[0], (exp(1.0) + 2 * exp(2.0)) / (exp(1.0) + exp(2.0)), EPS);
}
END_TEST

START_TEST(key_lengths_and_nan)
{
    /* key length 1 keeps key 0; NaN in the padded key must not matter. */
    const float q[1] = {1}, k[2] = {1, NAN}, v[2] = {7, NAN};
    float o[2], lse[2];
    const int32_t len1[1] = {1}, len0[1] = {0}, len_bad[1] = {3};
    clattn_host_args a;
    memset(&a, 0, sizeof a);
    a.q = (clattn_host_tensor){(void *)q, CLATTN_F32, {1, 1, 1, 1}};
    a.k = (clattn_host_tensor){(void *)k, CLATTN_F32, {1, 1, 2, 1}};
    a.v = (clattn_host_tensor){(void *)v, CLATTN_F32, {1, 1, 2, 1}};
    a.o = (clattn_host_tensor){o, CLATTN_F32, {1, 1, 1, 1}};
    a.lse = (clattn_host_tensor){lse, CLATTN_F32, {1, 1, 1, 1}};
    a.key_lengths = len1;
    ck_assert_int_eq(clattn_reference(NULL, &a), CLATTN_SUCCESS);
    ck_assert_double_eq_tol(o[0], 7.0, EPS);
    ck_assert_double_eq_tol(lse[0], 1.0, EPS);
    a.key_lengths = len0; /* empty row: O = 0, LSE = -inf, no NaN */
    ck_assert_int_eq(clattn_reference(NULL, &a), CLATTN_SUCCESS);
    ck_assert(o[0] == 0.0f && isinf(lse[0]) && lse[0] < 0);
    a.key_lengths = len_bad;
    ck_assert_int_eq(clattn_reference(NULL, &a), CLATTN_ERROR_INVALID_KEY_LENGTHS);
}
END_TEST

START_TEST(bias_broadcast)
{
    /* bias [1, 1, 1, 2] = [0, -inf]: only key 0 counts. */
    const float q[2] = {1, 1}, k[2] = {1, 5}, v[2] = {4, 9};
    const float bias[2] = {0.0f, -INFINITY};
    float o[2], lse[2];
    clattn_host_args a;
    clattn_attention_desc d = {0};
    d.scale = 1.0f;
    memset(&a, 0, sizeof a);
    a.q = (clattn_host_tensor){(void *)q, CLATTN_F32, {1, 1, 2, 1}};
    a.k = (clattn_host_tensor){(void *)k, CLATTN_F32, {1, 1, 2, 1}};
    a.v = (clattn_host_tensor){(void *)v, CLATTN_F32, {1, 1, 2, 1}};
    a.o = (clattn_host_tensor){o, CLATTN_F32, {1, 1, 2, 1}};
    a.lse = (clattn_host_tensor){lse, CLATTN_F32, {1, 1, 2, 1}};
    a.bias = (clattn_host_tensor){(void *)bias, CLATTN_F32, {1, 1, 1, 2}};
    ck_assert_int_eq(clattn_reference(&d, &a), CLATTN_SUCCESS);
    ck_assert_double_eq_tol(o[0], 4.0, EPS);
    ck_assert_double_eq_tol(o[1], 4.0, EPS);
    ck_assert_double_eq_tol(lse[1], 1.0, EPS);
    a.bias.shape[2] = 3; /* neither 1 nor Nq */
    ck_assert_int_eq(clattn_reference(&d, &a), CLATTN_ERROR_INVALID_BIAS);
}
END_TEST

START_TEST(f16_output_rounds)
{
    /* f16 inputs and output: O is the f16 rounding of the exact result. */
    uint16_t q[1], k[2], v[2], o[1];
    clattn_host_args a;
    clattn_attention_desc d = {0};
    const double e = exp(1.0);
    q[0] = clattn_float_to_half(1.0f);
    k[0] = clattn_float_to_half(1.0f), k[1] = clattn_float_to_half(2.0f);
    v[0] = clattn_float_to_half(0.1f), v[1] = clattn_float_to_half(0.3f);
    d.scale = 1.0f;
    memset(&a, 0, sizeof a);
    a.q = (clattn_host_tensor){q, CLATTN_F16, {1, 1, 1, 1}};
    a.k = (clattn_host_tensor){k, CLATTN_F16, {1, 1, 2, 1}};
    a.v = (clattn_host_tensor){v, CLATTN_F16, {1, 1, 2, 1}};
    a.o = (clattn_host_tensor){o, CLATTN_F16, {1, 1, 1, 1}};
    ck_assert_int_eq(clattn_reference(&d, &a), CLATTN_SUCCESS);
    {
        const double v0 = clattn_half_to_float(v[0]), v1 = clattn_half_to_float(v[1]);
        const double exact = (v0 + v1 * e) / (1 + e);
        ck_assert_uint_eq(o[0], clattn_float_to_half((float)exact));
    }
}
END_TEST

Suite *suite_reference(void)
{
    Suite *s = suite_create("reference");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, two_keys);
    tcase_add_test(tc, default_scale);
    tcase_add_test(tc, causal_alignments);
    tcase_add_test(tc, gqa_heads);
    tcase_add_test(tc, softcap_alibi_window);
    tcase_add_test(tc, key_lengths_and_nan);
    tcase_add_test(tc, bias_broadcast);
    tcase_add_test(tc, f16_output_rounds);
    suite_add_tcase(s, tc);
    return s;
}
