/*
 * test_variants.c - each variant (naive, tiled, flash, gemm) against the CPU
 * reference: the TESTING.md shape grid (every head dim with every (Nq, Nk)
 * pair, batch and head configurations rotated through them), every mask on
 * every shape, 16-bit storage, every feature, scaled and adversarial inputs,
 * strided layouts, offsets, bitwise determinism, and for the work-group
 * variants a sweep of launch parameters (the GPU table's shapes included, so
 * a CPU device exercises them too).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

static const int head_dims[] = {1, 8, 32, 40, 59, 64, 80, 96, 111, 128, 256};
/* TESTING.md's pairs, then the tile and work-group sizes (16, 32, 64) +-1 */
static const int shapes[][2] = {{1, 1},   {1, 513}, {239, 1},  {113, 203}, {108, 256}, {1023, 1024},
                                {1024, 1023}, {63, 65}, {64, 64}, {65, 63}, {15, 17}, {16, 16},
                                {17, 15}, {31, 33}, {32, 32}, {33, 31}};

/* The variant under test: the loop index of the test (one suite per variant). */
static const clattn_variant variants[] = {CLATTN_VARIANT_NAIVE, CLATTN_VARIANT_TILED, CLATTN_VARIANT_FLASH,
                                           CLATTN_VARIANT_GEMM};
#define VARIANT variants[_i]
static const int heads[][2] = {{1, 1}, {4, 4}, {8, 2}, {6, 1}};
#define N_D (int)(sizeof head_dims / sizeof head_dims[0])
#define N_S (int)(sizeof shapes / sizeof shapes[0])

/* Keep one case's dense cost bounded so the suite stays within minutes on a
 * 2-core CPU device: shrink batch, then heads, never the shape or D. */
#define CASE_FLOP_CAP 1.2e9

static void fit_budget(attn_case *c)
{
    if (case_flops(c) > CASE_FLOP_CAP)
        c->B = 1;
    if (case_flops(c) > CASE_FLOP_CAP && c->Hq > 2) {
        /* keep the kind of head sharing: GQA/MQA stays 2:1, MHA becomes 1:1 */
        const int shared = c->Hkv < c->Hq;
        c->Hq = shared ? 2 : 1;
        c->Hkv = 1;
    }
    if (case_flops(c) > CASE_FLOP_CAP)
        c->Hq = 1, c->Hkv = 1;
}

/* Worst O and LSE errors per storage dtype over the cases of one test,
 * printed with its summary line. */
static double worst_o[CLATTN_DTYPE_COUNT_], worst_lse[CLATTN_DTYPE_COUNT_];

static int run_and_report(const attn_case *c, uint64_t seed, int *skipped)
{
    case_result r;
    char buf[512];
    run_case(test_context(), c, seed, &r);
    if (r.ok && !r.skipped) {
        if (r.max_err > worst_o[c->dtype])
            worst_o[c->dtype] = r.max_err;
        if (r.lse_err > worst_lse[c->dtype])
            worst_lse[c->dtype] = r.lse_err;
    }
    if (r.skipped) {
        ++*skipped;
        printf("SKIP %s: %s\n", case_str(c, buf, sizeof buf), r.msg);
        return 1;
    }
    if (!r.ok)
        printf("FAIL %s (seed %llu): %s\n", case_str(c, buf, sizeof buf), (unsigned long long)seed, r.msg);
    return r.ok;
}

#define RUN_CASES(label, ...)                                                                   \
    do {                                                                                        \
        int n_ = 0, bad_ = 0, skipped_ = 0, seen_ = 0;                                          \
        uint64_t seed_ = test_seed() ^ (uint64_t)__LINE__ * 0x9e3779b97f4a7c15ull;              \
        memset(worst_o, 0, sizeof worst_o), memset(worst_lse, 0, sizeof worst_lse);            \
        ck_assert_msg(test_context() != NULL, "no OpenCL device");                              \
        __VA_ARGS__;                                                                                \
        printf("%s %s: %d cases, %d failed, %d skipped; worst |O err| f32 %.2g f16 %.2g bf16 %.2g, "   \
               "|LSE err| %.2g\n", clattn_variant_name(VARIANT), label, n_, bad_, skipped_,             \
               worst_o[CLATTN_F32], worst_o[CLATTN_F16], worst_o[CLATTN_BF16],                         \
               fmax(worst_lse[CLATTN_F32], fmax(worst_lse[CLATTN_F16], worst_lse[CLATTN_BF16])));        \
        ck_assert_msg(bad_ == 0, "%s: %d of %d cases failed", label, bad_, n_);                \
        ck_assert_msg(n_ > 0, "%s: no cases ran", label);                                      \
    } while (0)
/* CLATTN_TEST_SUBSET=k runs every k-th case of each test (the sanitizer
 * pass of CI: it checks host code, which every case exercises alike, while
 * the kernels run uninstrumented). Default: every case. */
static int subset_stride(void)
{
    const char *e = getenv("CLATTN_TEST_SUBSET");
    const int k = e ? atoi(e) : 1;
    return k > 1 ? k : 1;
}

#define ONE(c)                                                                                  \
    do {                                                                                        \
        if (seen_++ % subset_stride() != 0)                                                     \
            break;                                                                              \
        n_++;                                                                                   \
        if (!run_and_report(&(c), seed_ + (uint64_t)seen_, &skipped_))                         \
            bad_++;                                                                             \
    } while (0)

/* Every head dim x every shape; batch, heads and mask rotate through the grid. */
START_TEST(grid)
{
    RUN_CASES("grid", {
        for (int i = 0; i < N_D; i++)
            for (int s = 0; s < N_S; s++) {
                attn_case c;
                memset(&c, 0, sizeof c);
                c.variant = VARIANT;
                c.D = head_dims[i];
                c.Nq = shapes[s][0];
                c.Nk = shapes[s][1];
                c.B = (i + s) % 2 ? 3 : 1;
                c.Hq = heads[(i + s) % 4][0];
                c.Hkv = heads[(i + s) % 4][1];
                c.causal = (i + 2 * s) % 3 != 0;
                c.align = (i + 2 * s) % 3 == 2 ? CLATTN_ALIGN_BOTTOM_RIGHT : CLATTN_ALIGN_TOP_LEFT;
                c.lse = 1;
                c.bshd = (i + s) % 4 == 3;
                c.offset = (i + s) % 3 == 1 ? 17 : 0;
                fit_budget(&c);
                ONE(c);
            }
    });
}
END_TEST

/* Every mask on every shape, with GQA, at two head dims. */
START_TEST(masks)
{
    RUN_CASES("masks", {
        for (int s = 0; s < N_S; s++)
            for (int m = 0; m < 3; m++)
                for (int di = 0; di < 2; di++) {
                    attn_case c;
                    memset(&c, 0, sizeof c);
                    c.variant = VARIANT;
                    c.D = di ? 59 : 64;
                    c.Nq = shapes[s][0];
                    c.Nk = shapes[s][1];
                    c.B = 1;
                    c.Hq = 4;
                    c.Hkv = di ? 1 : 2;
                    c.causal = m != 0;
                    c.align = m == 2 ? CLATTN_ALIGN_BOTTOM_RIGHT : CLATTN_ALIGN_TOP_LEFT;
                    c.lse = 1;
                    c.nan_masked = m != 0;
                    fit_budget(&c);
                    ONE(c);
                }
    });
}
END_TEST

/* f16 and bf16 storage on a slice of the grid, both alignments. */
START_TEST(dtypes)
{
    RUN_CASES("f16/bf16", {
        const clattn_dtype dts[2] = {CLATTN_F16, CLATTN_BF16};
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < N_D; i += 2)
                for (int s = 2; s < N_S; s += 2) {
                    attn_case c;
                    memset(&c, 0, sizeof c);
                    c.variant = VARIANT;
                    c.dtype = dts[t];
                    c.D = head_dims[i];
                    c.Nq = shapes[s][0];
                    c.Nk = shapes[s][1];
                    c.B = 1 + (s % 3 == 0) * 2;
                    c.Hq = heads[(i + s) % 4][0];
                    c.Hkv = heads[(i + s) % 4][1];
                    /* i and s step by 2: rotate the mask by the case count instead */
                    c.causal = n_ % 3 != 0;
                    c.align = n_ % 3 == 2 ? CLATTN_ALIGN_BOTTOM_RIGHT : CLATTN_ALIGN_TOP_LEFT;
                    c.nan_masked = c.causal;
                    c.lse = 1;
                    c.bshd = s % 4 == 0;
                    fit_budget(&c);
                    ONE(c);
                }
    });
}
END_TEST

/* Windows, softcap, ALiBi, bias (full, broadcast, -inf entries), key padding
 * with lengths 0, 1 and full, explicit scale, Dv != D, and all at once. */
START_TEST(features)
{
    RUN_CASES("features", {
        for (int f = 0; f < 15; f++)
            for (int s = 0; s < N_S; s++) {
                attn_case c;
                memset(&c, 0, sizeof c);
                c.variant = VARIANT;
                c.D = s % 2 ? 40 : 64;
                c.Nq = shapes[s][0] > 300 ? 300 : shapes[s][0];
                c.Nk = shapes[s][1] > 300 ? 311 : shapes[s][1];
                c.B = 3;
                c.Hq = 6;
                c.Hkv = 2;
                c.lse = 1;
                c.align = s % 2 ? CLATTN_ALIGN_BOTTOM_RIGHT : CLATTN_ALIGN_TOP_LEFT;
                switch (f) {
                case 0: c.use_window = 1, c.wl = 16, c.wr = 0; break;
                case 1: c.use_window = 1, c.wl = 0, c.wr = 0; break; /* window of 0: the diagonal only */
                case 2: c.use_window = 1, c.wl = 7, c.wr = 9, c.causal = 1; break;
                case 3: c.use_window = 1, c.wl = -1, c.wr = 5; break;
                case 4: c.softcap = 2.5f, c.in_scale = 3.0f; break;
                case 5: c.alibi = 1, c.causal = 1; break;
                case 6: c.bias = 1; break;
                case 7: c.bias = 2, c.causal = 1; break;
                case 8: c.bias = 3; break; /* -inf entries and one all -inf row */
                case 9: c.key_lengths = 1, c.nan_masked = 1; break;
                case 10: c.scale = 0.37f, c.Dv = 24; break;
                case 11: c.varlen = 1, c.causal = 1, c.B = 5; break; /* bottom-right per sequence when s is odd */
                case 12: c.varlen = 1, c.use_window = 1, c.wl = 9, c.wr = 3, c.key_lengths = 1, c.B = 4; break;
                case 13: c.varlen = 1, c.bias = 2, c.softcap = 3.0f, c.dtype = CLATTN_F16; break;
                default: /* everything at once */
                    c.causal = 1, c.use_window = 1, c.wl = 33, c.wr = 2, c.softcap = 5.0f, c.alibi = 1, c.bias = 2;
                    c.key_lengths = 1, c.nan_masked = 1, c.bshd = 1, c.offset = 5;
                    break;
                }
                ONE(c);
            }
    });
}
END_TEST

/* Scaled inputs, a dominant logit, huge equal values: finite and accurate. */
START_TEST(robust)
{
    RUN_CASES("robustness", {
        /* x5, x100, x1e4 inputs; a dominant logit; causal; q = k = v = 1.3e5
         * (every score equal and ~1e11); every row masked (key lengths 0) */
        const float amps[7] = {5.0f, 100.0f, 1.0f, 1.0f, 1e4f, 1.0f, 1.0f};
        for (int a = 0; a < 7; a++)
            for (int s = 3; s < 5; s++) {
                attn_case c;
                memset(&c, 0, sizeof c);
                c.variant = VARIANT;
                c.D = 64;
                c.Nq = shapes[s][0];
                c.Nk = shapes[s][1];
                c.B = 1;
                c.Hq = 2;
                c.Hkv = 1;
                c.lse = 1;
                c.in_scale = amps[a];
                c.dominant = a == 2;
                c.causal = a == 3, c.align = CLATTN_ALIGN_BOTTOM_RIGHT;
                c.constant = a == 5 ? 1.3e5f : 0.0f;
                c.key_lengths = a == 6 ? 2 : 0;
                c.B = a == 6 ? 3 : 1;
                ONE(c);
            }
    });
}
END_TEST

START_TEST(determinism)
{
    RUN_CASES("determinism", {
        attn_case c;
        memset(&c, 0, sizeof c);
        c.variant = VARIANT;
        c.D = 64, c.Nq = 113, c.Nk = 203, c.B = 2, c.Hq = 4, c.Hkv = 2, c.causal = 1, c.lse = 1;
        c.repeat = 50;
        ONE(c);
    });
}
END_TEST

/* Launch parameters the tuning table may pick on other devices, forced
 * through CLATTN_PARAMS: rows per work-item, work-items per row, vector
 * loads, tiles smaller and larger than the problem; flash's CPU forms with
 * several work-items (32,64,4,...) and with one whose register tiles do not
 * divide the block (6 rows and 3 vectors of keys; 3 rows, 2 vectors). */
START_TEST(params)
{
    static const char *const sets[] = {"64,32,2,4,4",  "32,32,1,4,4", "16,16,1,8,4", "32,64,1,1,1",
                                       "8,8,2,2,1",    "4,128,4,16,4", "1,4,1,1,1",   "128,16,4,2,4",
                                       "32,64,4,1,4", "6,24,6,1,4",   "3,16,3,1,4"};
    if (VARIANT == CLATTN_VARIANT_NAIVE || VARIANT == CLATTN_VARIANT_GEMM)
        return; /* no launch parameters */
    RUN_CASES("params", {
        for (size_t ps = 0; ps < sizeof sets / sizeof sets[0]; ps++) {
            setenv("CLATTN_PARAMS", sets[ps], 1);
            for (int s = 2; s < N_S; s += 3)
                for (int di = 0; di < 4; di++) {
                    const int ds[4] = {1, 59, 64, 256};
                    attn_case c;
                    memset(&c, 0, sizeof c);
                    c.variant = VARIANT;
                    c.D = ds[di];
                    c.Nq = shapes[s][0] > 300 ? 129 : shapes[s][0];
                    c.Nk = shapes[s][1] > 300 ? 257 : shapes[s][1];
                    c.B = 2, c.Hq = 6, c.Hkv = di % 2 ? 1 : 3;
                    c.causal = (s + di) % 3 != 0;
                    c.align = (s + di) % 3 == 2 ? CLATTN_ALIGN_BOTTOM_RIGHT : CLATTN_ALIGN_TOP_LEFT;
                    c.lse = 1;
                    c.bshd = di == 2;
                    c.key_lengths = ps % 3 == 1, c.nan_masked = ps % 3 == 1;
                    c.dtype = ps % 4 == 3 ? CLATTN_F16 : CLATTN_F32;
                    ONE(c);
                }
        }
        unsetenv("CLATTN_PARAMS");
    });
}
END_TEST

static Suite *variant_suite(const char *name, int index)
{
    Suite *s = suite_create(name);
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 1800);
    tcase_add_loop_test(tc, grid, index, index + 1);
    tcase_add_loop_test(tc, masks, index, index + 1);
    tcase_add_loop_test(tc, dtypes, index, index + 1);
    tcase_add_loop_test(tc, features, index, index + 1);
    tcase_add_loop_test(tc, robust, index, index + 1);
    tcase_add_loop_test(tc, determinism, index, index + 1);
    tcase_add_loop_test(tc, params, index, index + 1);
    suite_add_tcase(s, tc);
    return s;
}

Suite *suite_naive(void) { return variant_suite("naive", 0); }
Suite *suite_tiled(void) { return variant_suite("tiled", 1); }
Suite *suite_flash(void) { return variant_suite("flash", 2); }
/* tests/test_gemm.c adds the gemm variant's own tests to this suite */
Suite *suite_gemm_matrix(void) { return variant_suite("gemm", 3); }
