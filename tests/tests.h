/*
 * tests.h - shared declarations of the Check test runner: one Suite factory per
 * concern (tests/test_<concern>.c), and helpers for random data, poisoning and
 * canaries used by every kernel test.
 */
#ifndef CLATTN_TESTS_H
#define CLATTN_TESTS_H

#include <check.h>
#include <stdint.h>
#include <stddef.h>

#include "clattn.h"
#include "hostref.h"

Suite *suite_status(void);
Suite *suite_context(void);
Suite *suite_npy(void);
Suite *suite_reference(void);
Suite *suite_naive(void);
Suite *suite_tiled(void);
Suite *suite_flash(void);
Suite *suite_plan(void);
Suite *suite_decode(void);
Suite *suite_kv(void);
Suite *suite_validate(void);
Suite *suite_badinput(void);
Suite *suite_cache(void);
Suite *suite_faults(void);
Suite *suite_gemm(void);
Suite *suite_gemm_matrix(void); /* the variant matrix of test_variants.c for gemm */
Suite *suite_mha(void);
Suite *suite_tune(void);

/* Deterministic random numbers (splitmix64); the runner seeds from
 * CLATTN_TEST_SEED or the clock and prints the seed. */
uint64_t test_seed(void);
uint64_t test_rand_u64(uint64_t *state);
float test_rand_uniform(uint64_t *state); /* in [-1, 1) */
/* Element i of a host array of dtype (f32, f16 or bf16 storage) as float, and
 * back: elem_get and elem_put of tools/hostref.h, shared with the tool. */
/* Monotonic clock in seconds, for the run times suites print. */
double test_now_s(void);
/* ctx's reference count once it has stopped changing: queue finished, then
 * the same count in ten readings 5 ms apart (PoCL lets finished commands'
 * objects go on its driver thread a moment later). The baseline for leak
 * checks, which then wait for the count to come back to it. */
cl_uint test_ctx_refs_stable(cl_context ctx, cl_command_queue queue);
/* ctx's reference count now, and once it has come back to expected (up to 2 s
 * after finishing queue, if not NULL): a leak keeps it above. */
cl_uint test_ctx_refs(cl_context ctx);
cl_uint test_ctx_refs_settled(cl_context ctx, cl_command_queue queue, cl_uint expected);
void test_fill_uniform(float *x, size_t n, float scale, uint64_t *state);

/* A temporary directory unique to this process, created on first use. */
const char *test_tmpdir(void);

/* The context every device test shares (created on first use from
 * CLATTN_DEVICE or the default); NULL with a message if none. */
clattn_context *test_context(void);

/* ---- the kernel test harness (tests/harness.c) ---------------------- */

/* One attention problem as the kernel tests describe it. Zero fields mean
 * the plain case (f32, no mask, contiguous BHND layout, no optional input). */
typedef struct attn_case {
    int B, Hq, Hkv, Nq, Nk, D, Dv; /* Dv = 0: same as D */
    clattn_dtype dtype;            /* storage of q, k, v and o */
    clattn_variant variant;
    int causal;
    clattn_align align;
    int use_window, wl, wr;
    float softcap, scale;
    int alibi;
    int bias;        /* 0 none; 1 full [B,Hq,Nq,Nk]; 2 broadcast [1,Hq,1,Nk]; 3 [B,1,Nq,Nk] with -inf entries */
    int key_lengths; /* 0 none; 1 per-batch lengths: 0, 1, Nk, random (by batch index); 2 all 0 */
    int lse;
    int bshd;       /* q/k/v/o in [B, N, H, D] memory order, addressed through strides */
    int offset;     /* elements before each view in its buffer */
    float in_scale; /* magnitude of the random inputs (0 = 1) */
    int nan_masked; /* plant NaN in K/V rows no query may read */
    int dominant;   /* one key dominates every row's scores */
    float constant; /* nonzero: every q, k and v element equals this value (huge equal values) */
    int repeat;     /* > 1: run that many times and require bitwise-identical output */
    int varlen;     /* packed variable-length batch: per-sequence lengths up to Nq / Nk */
} attn_case;

typedef struct case_result {
    int ok, skipped;
    double max_err, nmse, lse_err;
    char msg[1024];
} case_result;

/* Run one case on ctx against the CPU reference (fresh random data from seed,
 * poisoned outputs, canaries before and after every output). */
void run_case(clattn_context *ctx, const attn_case *c, uint64_t seed, case_result *r);
/* run_case on the default test context, counted: ++*n, and on a failure (a
 * skip counts as one here) ++*bad and a line naming the case; *worst (if not
 * NULL) keeps the largest max_err of the passing cases. 1 when it passed. */
int run_case_counted(const attn_case *c, uint64_t seed, int *n, int *bad, double *worst);
/* A one-line description of the case for messages. */
const char *case_str(const attn_case *c, char *buf, size_t n);
/* FLOPs of the dense problem (4 * B * Hq * Nq * Nk * D), for test budgets. */
double case_flops(const attn_case *c);

#endif
