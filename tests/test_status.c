/*
 * test_status.c - the status table, enum names, tolerances and the 16-bit
 * conversions every dtype path relies on.
 */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "tests.h"

static const int all_status[] = {
#define X_(name, value, msg) value,
    CLATTN_STATUS_MAP(X_)
#undef X_
};
#define N_STATUS (int)(sizeof all_status / sizeof all_status[0])

START_TEST(names_unique)
{
    for (int i = 0; i < N_STATUS; i++) {
        const char *n = clattn_status_name((clattn_status)all_status[i]);
        ck_assert_str_ne(n, "CLATTN_UNKNOWN_STATUS");
        ck_assert_int_eq(strncmp(n, "CLATTN_", 7), 0);
        ck_assert(strlen(clattn_status_message((clattn_status)all_status[i])) > 0);
        for (int j = 0; j < i; j++) {
            ck_assert_int_ne(all_status[i], all_status[j]);
            ck_assert_str_ne(n, clattn_status_name((clattn_status)all_status[j]));
        }
    }
    ck_assert_str_eq(clattn_status_name(CLATTN_SUCCESS), "CLATTN_SUCCESS");
    ck_assert_str_eq(clattn_status_name(CLATTN_ERROR_HEAD_MISMATCH), "CLATTN_ERROR_HEAD_MISMATCH");
    ck_assert_str_eq(clattn_status_name((clattn_status)-2999), "CLATTN_UNKNOWN_STATUS");
    ck_assert_str_eq(clattn_status_name((clattn_status)12345), "CLATTN_UNKNOWN_STATUS");
}
END_TEST

START_TEST(ranges)
{
    /* OpenCL errors keep OpenCL's numbers; the library's own sit in -3000..-3999. */
    ck_assert_int_eq(CLATTN_CL_INVALID_VALUE, CL_INVALID_VALUE);
    ck_assert_int_eq(CLATTN_CL_OUT_OF_RESOURCES, CL_OUT_OF_RESOURCES);
    ck_assert_int_eq(CLATTN_CL_BUILD_PROGRAM_FAILURE, CL_BUILD_PROGRAM_FAILURE);
    ck_assert_int_eq(CLATTN_CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_MEM_OBJECT_ALLOCATION_FAILURE);
    ck_assert_int_eq(clattn_status_from_cl(CL_INVALID_COMMAND_QUEUE), CLATTN_CL_INVALID_COMMAND_QUEUE);
    ck_assert_int_eq(clattn_status_from_cl(CL_SUCCESS), CLATTN_SUCCESS);
    for (int i = 0; i < N_STATUS; i++) {
        const char *n = clattn_status_name((clattn_status)all_status[i]);
        if (strncmp(n, "CLATTN_ERROR_", 13) == 0)
            ck_assert(all_status[i] <= -3000 && all_status[i] >= -3999);
        else if (strncmp(n, "CLATTN_CL_", 10) == 0)
            ck_assert(all_status[i] < 0 && all_status[i] > -1100);
    }
}
END_TEST

START_TEST(enums)
{
    clattn_variant v;
    ck_assert_str_eq(clattn_dtype_name(CLATTN_F16), "f16");
    ck_assert_str_eq(clattn_dtype_name((clattn_dtype)7), "?");
    ck_assert_uint_eq(clattn_dtype_size(CLATTN_BF16), 2);
    ck_assert_uint_eq(clattn_dtype_size((clattn_dtype)-1), 0);
    for (int i = 0; i < CLATTN_VARIANT_COUNT_; i++) {
        ck_assert_int_eq(clattn_variant_parse(clattn_variant_name((clattn_variant)i), &v), CLATTN_SUCCESS);
        ck_assert_int_eq(v, i);
    }
    ck_assert_int_eq(clattn_variant_parse("fast", &v), CLATTN_ERROR_UNKNOWN_VARIANT);
    ck_assert_int_eq(clattn_variant_parse(NULL, &v), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert_str_eq(clattn_variant_name((clattn_variant)99), "?");
}
END_TEST

START_TEST(tolerances)
{
    double a, r, m;
    ck_assert_int_eq(clattn_tolerance(CLATTN_F32, &a, &r, &m), CLATTN_SUCCESS);
    ck_assert(a == 1e-5 && r == 1e-4 && m == 1e-7);
    ck_assert_int_eq(clattn_tolerance(CLATTN_F16, &a, &r, &m), CLATTN_SUCCESS);
    ck_assert(m == 5e-4);
    ck_assert_int_eq(clattn_tolerance(CLATTN_BF16, &a, &r, &m), CLATTN_SUCCESS);
    ck_assert(m == 2e-3);
    ck_assert_int_eq(clattn_tolerance((clattn_dtype)9, &a, &r, &m), CLATTN_ERROR_INVALID_DTYPE);
}
END_TEST

START_TEST(compare_rule)
{
    const float ref[4] = {1.0f, -2.0f, NAN, INFINITY};
    float dev[4] = {1.0f, -2.0f, NAN, INFINITY};
    clattn_compare_result r = clattn_compare_f32(dev, ref, 4);
    ck_assert(clattn_compare_ok(&r, 1e-5, 1e-4, 1e-7));
    ck_assert(r.max_abs_err == 0.0 && r.max_abs_ref == 2.0);
    dev[0] = 1.001f; /* too far */
    r = clattn_compare_f32(dev, ref, 4);
    ck_assert(!clattn_compare_ok(&r, 1e-5, 1e-4, 1e-7));
    dev[0] = 1.0f;
    dev[2] = 0.0f; /* NaN lost */
    r = clattn_compare_f32(dev, ref, 4);
    ck_assert_uint_eq(r.nonfinite_mismatch, 1);
    ck_assert(!clattn_compare_ok(&r, 1, 1, 1));
    dev[2] = NAN;
    dev[3] = -INFINITY; /* wrong sign of Inf */
    r = clattn_compare_f32(dev, ref, 4);
    ck_assert_uint_eq(r.nonfinite_mismatch, 1);
}
END_TEST

START_TEST(half_known)
{
    ck_assert_uint_eq(clattn_float_to_half(1.0f), 0x3C00);
    ck_assert_uint_eq(clattn_float_to_half(-2.0f), 0xC000);
    ck_assert_uint_eq(clattn_float_to_half(65504.0f), 0x7BFF);
    ck_assert_uint_eq(clattn_float_to_half(65520.0f), 0x7C00); /* rounds up to Inf */
    ck_assert_uint_eq(clattn_float_to_half(65519.0f), 0x7BFF);
    ck_assert_uint_eq(clattn_float_to_half(0.1f), 0x2E66);
    ck_assert_uint_eq(clattn_float_to_half(5.9604645e-8f), 0x0001); /* 2^-24 */
    ck_assert_uint_eq(clattn_float_to_half(2.9802322e-8f), 0x0000); /* 2^-25: ties to even (0) */
    ck_assert_uint_eq(clattn_float_to_half(8.940697e-8f), 0x0002);  /* 1.5 * 2^-24: ties to even (2) */
    ck_assert_uint_eq(clattn_float_to_half(1.0f + 1.0f / 2048.0f), 0x3C00); /* tie to even */
    ck_assert_uint_eq(clattn_float_to_half(1.0f + 3.0f / 2048.0f), 0x3C02);
    ck_assert_uint_eq(clattn_float_to_half(INFINITY), 0x7C00);
    ck_assert(isnan(clattn_half_to_float(clattn_float_to_half(NAN))));
    ck_assert(clattn_half_to_float(0x0001) == 5.9604645e-8f);
    ck_assert(clattn_half_to_float(0xFBFF) == -65504.0f);
    /* every finite half survives float and back */
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7C00u) == 0x7C00u)
            continue;
        ck_assert_uint_eq(clattn_float_to_half(clattn_half_to_float((uint16_t)h)), h);
    }
}
END_TEST

START_TEST(bf16_known)
{
    ck_assert_uint_eq(clattn_float_to_bf16(1.0f), 0x3F80);
    ck_assert_uint_eq(clattn_float_to_bf16(-2.0f), 0xC000);
    ck_assert_uint_eq(clattn_float_to_bf16(1.0f + 1.0f / 256.0f), 0x3F80); /* tie to even */
    ck_assert_uint_eq(clattn_float_to_bf16(1.0f + 3.0f / 256.0f), 0x3F82);
    ck_assert(isnan(clattn_bf16_to_float(clattn_float_to_bf16(NAN))));
    ck_assert(clattn_bf16_to_float(0x3F80) == 1.0f);
    for (uint32_t b = 0; b < 0x10000u; b++) {
        if ((b & 0x7F80u) == 0x7F80u)
            continue;
        ck_assert_uint_eq(clattn_float_to_bf16(clattn_bf16_to_float((uint16_t)b)), b);
    }
}
END_TEST

Suite *suite_status(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("status");
    tcase_add_test(tc, names_unique);
    tcase_add_test(tc, ranges);
    tcase_add_test(tc, enums);
    tcase_add_test(tc, tolerances);
    tcase_add_test(tc, compare_rule);
    tcase_add_test(tc, half_known);
    tcase_add_test(tc, bf16_known);
    suite_add_tcase(s, tc);
    return s;
}
