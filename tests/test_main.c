/*
 * test_main.c - the single Check runner: `clattn-tests SUITE...` runs the
 * named suites (all when none is named), prints the random seed so a failure
 * can be reproduced with CLATTN_TEST_SEED, and shared helpers.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <time.h>
#include <unistd.h>

#include "tests.h"

static uint64_t seed_value;
static int seed_set;

uint64_t test_seed(void)
{
    if (!seed_set) {
        const char *env = getenv("CLATTN_TEST_SEED");
        seed_value = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        seed_set = 1;
    }
    return seed_value;
}

uint64_t test_rand_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float test_rand_uniform(uint64_t *state)
{
    return (float)((double)(test_rand_u64(state) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

void test_fill_uniform(float *x, size_t n, float scale, uint64_t *state)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * test_rand_uniform(state);
}

const char *test_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/clattn-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            dir[0] = '\0';
            return "/tmp";
        }
    }
    return dir;
}

clattn_context *test_context(void)
{
    static clattn_context *ctx;
    static int tried;
    if (!tried) {
        clattn_status st;
        tried = 1;
        st = clattn_context_create(NULL, &ctx);
        if (st != CLATTN_SUCCESS) {
            fprintf(stderr, "no OpenCL context: %s\n", clattn_status_name(st));
            ctx = NULL;
        }
    }
    return ctx;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static const struct {
    const char *name;
    Suite *(*make)(void);
} suites[] = {
    {"status", suite_status},       {"context", suite_context}, {"npy", suite_npy},
    {"reference", suite_reference}, {"validate", suite_validate}, {"badinput", suite_badinput}, {"naive", suite_naive},
    {"plan", suite_plan}, {"decode", suite_decode}, {"kv", suite_kv},           {"tiled", suite_tiled},         {"flash", suite_flash},
    {"cache", suite_cache},         {"faults", suite_faults},
    {"gemm", suite_gemm},
    {"mha", suite_mha},
    {"tune", suite_tune},
};

int main(int argc, char **argv)
{
    SRunner *sr = NULL;
    int failed;
    const size_t n = sizeof suites / sizeof suites[0];
    setvbuf(stdout, NULL, _IOLBF, 0); /* forked tests that fail must not lose their lines */
    printf("clattn tests: seed %llu (reproduce with CLATTN_TEST_SEED=%llu)\n", (unsigned long long)test_seed(),
           (unsigned long long)test_seed());
    for (size_t i = 0; i < n; i++) {
        int want = argc < 2;
        for (int a = 1; a < argc; a++)
            want |= strcmp(argv[a], suites[i].name) == 0;
        if (!want)
            continue;
        if (!sr)
            sr = srunner_create(suites[i].make());
        else
            srunner_add_suite(sr, suites[i].make());
    }
    if (!sr) {
        fprintf(stderr, "unknown suite; available:");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", suites[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    test_tmpdir(); /* made here, so forked tests share it and it is removed once */
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (strcmp(test_tmpdir(), "/tmp") != 0)
        nftw(test_tmpdir(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? 0 : 1;
}
