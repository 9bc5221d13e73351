/*
 * test_cache.c - the program cache: a miss then memory and disk hits, other
 * options and edited kernel sources missing, corrupt or foreign cache files
 * rejected and rewritten, CLATTN_CACHE_DIR=off, unwritable and uncreatable
 * directories, no temporary files left behind, and the default location under
 * XDG_CACHE_HOME or HOME. Every run is checked against the CPU reference.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "programs.h"
#include "tests.h"

/* ---- environment: saved before each test and restored after, even on failure */

static const char *const env_names[] = {"CLATTN_CACHE_DIR", "XDG_CACHE_HOME", "HOME", "CLATTN_KERNEL_DIR"};
enum { NENV = sizeof env_names / sizeof env_names[0] };
static char *env_saved[NENV];

static void env_setup(void)
{
    for (int i = 0; i < NENV; i++) {
        const char *v = getenv(env_names[i]);
        env_saved[i] = v ? strdup(v) : NULL;
    }
    clattn__cache_stats_reset();
}

static void env_teardown(void)
{
    for (int i = 0; i < NENV; i++) {
        if (env_saved[i])
            setenv(env_names[i], env_saved[i], 1);
        else
            unsetenv(env_names[i]);
        free(env_saved[i]);
        env_saved[i] = NULL;
    }
}

/* ---- files */

/* <tmpdir>/<name> (not created). */
static void tmp_path(char *buf, size_t n, const char *name)
{
    ck_assert((size_t)snprintf(buf, n, "%s/%s", test_tmpdir(), name) < n);
}

/* Point the cache at <tmpdir>/<name> (not created: the library must). */
static void use_cache_dir(char *buf, size_t n, const char *name)
{
    struct stat sb;
    tmp_path(buf, n, name);
    ck_assert_msg(stat(buf, &sb) != 0, "%s exists already", buf);
    setenv("CLATTN_CACHE_DIR", buf, 1);
}

/* Entries of dir whose name contains part (0 when dir does not exist); the
 * last one found goes to found (if not NULL). */
static int count_entries(const char *dir, const char *part, char *found, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int count = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || !strstr(e->d_name, part))
            continue;
        count++;
        if (found)
            ck_assert((size_t)snprintf(found, n, "%s/%s", dir, e->d_name) < n);
    }
    closedir(d);
    return count;
}

static int count_clbin(const char *dir) { return count_entries(dir, ".clbin", NULL, 0); }

static void assert_no_tmp(const char *dir)
{
    ck_assert_msg(count_entries(dir, ".tmp.", NULL, 0) == 0, "temporary file left in %s", dir);
}

/* The one .clbin file of dir. */
static void the_clbin(const char *dir, char *buf, size_t n)
{
    ck_assert_int_eq(count_entries(dir, ".clbin", buf, n), 1);
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    ck_assert_ptr_nonnull(f);
    ck_assert(fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    buf[n] = 0; /* so the key text can be searched as a string */
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert(fwrite(data, 1, len, f) == len);
    ck_assert_int_eq(fclose(f), 0);
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* ---- running attention */

/* One small attention on a fresh or given context, checked against the
 * reference. causal selects other build options. */
static void run_on(clattn_context *ctx, int causal)
{
    enum { NQ = 3, NK = 5, D = 8 };
    float q[NQ * D], k[NK * D], v[NK * D], o[NQ * D], ref[NQ * D];
    uint64_t rng = test_seed() ^ 0xcace;
    clattn_attention_desc desc;
    clattn_host_args a;
    clattn_variant ran = CLATTN_VARIANT_AUTO;
    double atol, rtol, nmse;
    clattn_status st;
    test_fill_uniform(q, NQ * D, 1, &rng);
    test_fill_uniform(k, NK * D, 1, &rng);
    test_fill_uniform(v, NK * D, 1, &rng);
    memset(&desc, 0, sizeof desc);
    desc.causal = causal;
    desc.variant = CLATTN_VARIANT_NAIVE; /* exactly one program per problem */
    memset(&a, 0, sizeof a);
    a.q = (clattn_host_tensor){q, CLATTN_F32, {1, 1, NQ, D}};
    a.k = (clattn_host_tensor){k, CLATTN_F32, {1, 1, NK, D}};
    a.v = (clattn_host_tensor){v, CLATTN_F32, {1, 1, NK, D}};
    a.o = (clattn_host_tensor){ref, CLATTN_F32, {1, 1, NQ, D}};
    ck_assert_int_eq(clattn_reference(&desc, &a), CLATTN_SUCCESS);
    a.o.data = o;
    for (int i = 0; i < NQ * D; i++)
        o[i] = 1e30f;
    st = clattn_attention_host(ctx, &desc, &a, &ran);
    ck_assert_msg(st == CLATTN_SUCCESS, "%s: %s", clattn_status_name(st), clattn_context_last_error(ctx));
    ck_assert_str_eq(clattn_context_last_error(ctx), "");
    ck_assert_int_eq(ran, CLATTN_VARIANT_NAIVE);
    ck_assert_int_eq(clattn_tolerance(CLATTN_F32, &atol, &rtol, &nmse), CLATTN_SUCCESS);
    {
        clattn_compare_result r = clattn_compare_f32(o, ref, NQ * D);
        ck_assert_msg(clattn_compare_ok(&r, atol, rtol, nmse), "max err %g nmse %g", r.max_abs_err, r.nmse);
    }
}

static void run_fresh(int causal)
{
    clattn_context *ctx = NULL;
    ck_assert_int_eq(clattn_context_create(NULL, &ctx), CLATTN_SUCCESS);
    run_on(ctx, causal);
    clattn_context_free(ctx);
}

static clattn__cache_stats stats(void)
{
    clattn__cache_stats s;
    clattn__cache_stats_get(&s);
    return s;
}

#define ASSERT_STATS(mem, dhit, dwrite, src, rej)                                                        \
    do {                                                                                                 \
        clattn__cache_stats s_ = stats();                                                                \
        ck_assert_msg(s_.memory_hits == (mem) && s_.disk_hits == (dhit) && s_.disk_writes == (dwrite) && \
                          s_.source_builds == (src) && s_.disk_rejects == (rej),                        \
                      "cache stats: memory_hits %ld disk_hits %ld disk_writes %ld source_builds %ld "    \
                      "disk_rejects %ld, expected %d %d %d %d %d",                                       \
                      s_.memory_hits, s_.disk_hits, s_.disk_writes, s_.source_builds, s_.disk_rejects,   \
                      (mem), (dhit), (dwrite), (src), (rej));                                            \
    } while (0)

/* ---- tests */

/* A miss builds from source and writes one file (creating the nested
 * directory); a fresh context loads it; a second plan in the same context
 * hits memory. */
START_TEST(miss_then_hit)
{
    char dir[512];
    clattn_context *ctx = NULL;
    use_cache_dir(dir, sizeof dir, "hit/nested/cache");
    ck_assert_int_eq(clattn_context_create(NULL, &ctx), CLATTN_SUCCESS);
    run_on(ctx, 0);
    ASSERT_STATS(0, 0, 1, 1, 0);
    ck_assert_int_eq(count_clbin(dir), 1);
    run_on(ctx, 0);
    ASSERT_STATS(1, 0, 1, 1, 0);
    clattn_context_free(ctx);

    run_fresh(0);
    ASSERT_STATS(1, 1, 1, 1, 0);
    ck_assert_int_eq(count_clbin(dir), 1);
    assert_no_tmp(dir);
}
END_TEST

/* Other -D options are another program: a second build and a second file. */
START_TEST(options_miss)
{
    char dir[512];
    clattn_context *ctx = NULL;
    use_cache_dir(dir, sizeof dir, "options");
    ck_assert_int_eq(clattn_context_create(NULL, &ctx), CLATTN_SUCCESS);
    run_on(ctx, 0);
    run_on(ctx, 1);
    ASSERT_STATS(0, 0, 2, 2, 0);
    ck_assert_int_eq(count_clbin(dir), 2);
    clattn_context_free(ctx);
    ck_assert_int_eq(clattn_context_create(NULL, &ctx), CLATTN_SUCCESS);
    run_on(ctx, 1);
    run_on(ctx, 0);
    ASSERT_STATS(0, 2, 2, 2, 0);
    clattn_context_free(ctx);
    assert_no_tmp(dir);
}
END_TEST

/* Kernel sources read at run time: an edited file is a new program even in
 * the same context (memory) and in a fresh one (disk). */
START_TEST(source_change_miss)
{
    char dir[512], kdir[512], path[600];
    const clattn_embedded_kernel *common = NULL, *naive = NULL;
    clattn_context *ctx = NULL;
    FILE *f;
    for (const clattn_embedded_kernel *e = clattn_embedded_kernels; e->name; e++) {
        if (strcmp(e->name, "common") == 0)
            common = e;
        if (strcmp(e->name, "naive") == 0)
            naive = e;
    }
    ck_assert(common && naive);
    tmp_path(kdir, sizeof kdir, "kernels-src");
    ck_assert_int_eq(mkdir(kdir, 0700), 0);
    snprintf(path, sizeof path, "%s/common.cl", kdir);
    write_file(path, common->source, common->length);
    snprintf(path, sizeof path, "%s/naive.cl", kdir);
    write_file(path, naive->source, naive->length);
    setenv("CLATTN_KERNEL_DIR", kdir, 1);
    use_cache_dir(dir, sizeof dir, "source");

    ck_assert_int_eq(clattn_context_create(NULL, &ctx), CLATTN_SUCCESS);
    run_on(ctx, 0);
    ASSERT_STATS(0, 0, 1, 1, 0);
    f = fopen(path, "ab");
    ck_assert_ptr_nonnull(f);
    fputs("\n/* edited */\n", f);
    ck_assert_int_eq(fclose(f), 0);
    run_on(ctx, 0);
    ASSERT_STATS(0, 0, 2, 2, 0);
    run_on(ctx, 0);
    ASSERT_STATS(1, 0, 2, 2, 0);
    clattn_context_free(ctx);
    ck_assert_int_eq(count_clbin(dir), 2);
    run_fresh(0);
    ASSERT_STATS(1, 1, 2, 2, 0);
    assert_no_tmp(dir);
}
END_TEST

enum corruption {
    GARBAGE,      /* random bytes */
    EMPTY,        /* zero length */
    TRUNCATED,    /* cut in the middle of the binary */
    HEADER_ONLY,  /* cut after the header */
    BINARY_FLIP,  /* one byte of the binary changed: checksum */
    FOREIGN,      /* consistent file of another device (key differs, key checksum fixed up) */
    BAD_MAGIC,
    BAD_VERSION,
    HUGE_KEY,     /* key length far beyond the file */
    HUGE_BINARY,  /* binary length far beyond the file */
    TRAILING,     /* extra bytes after the binary */
    BAD_BINARY,   /* binary replaced by garbage with a matching checksum */
    NCORRUPTIONS
};

static void corrupt(const char *path, enum corruption how)
{
    size_t len, i;
    unsigned char *b = read_file(path, &len);
    uint64_t klen = get_u64(b + 16);
    uint64_t blen = get_u64(b + 24);
    uint64_t rng = test_seed() + how;
    ck_assert(len == CLATTN__CACHE_HEADER_SIZE + klen + blen);
    switch (how) {
    case GARBAGE:
        for (i = 0; i < len; i++)
            b[i] = (unsigned char)test_rand_u64(&rng);
        break;
    case EMPTY:
        len = 0;
        break;
    case TRUNCATED:
        len = CLATTN__CACHE_HEADER_SIZE + klen + blen / 2;
        break;
    case HEADER_ONLY:
        len = CLATTN__CACHE_HEADER_SIZE;
        break;
    case BINARY_FLIP:
        b[CLATTN__CACHE_HEADER_SIZE + klen + blen / 2] ^= 0x5a;
        break;
    case FOREIGN: {
        unsigned char *key = b + CLATTN__CACHE_HEADER_SIZE;
        char *dev = strstr((char *)key, "\ndevice ");
        ck_assert_ptr_nonnull(dev);
        dev = strchr(dev + 1, '\n'); /* end of "device <len>" */
        ck_assert_ptr_nonnull(dev);
        dev[1] = dev[1] == 'X' ? 'Y' : 'X'; /* first letter of the device name */
        put_u64(b + 40, fnv1a64(key, (size_t)klen));
        break;
    }
    case BAD_MAGIC:
        b[0] ^= 1;
        break;
    case BAD_VERSION:
        put_u64(b + 8, 999);
        break;
    case HUGE_KEY:
        put_u64(b + 16, UINT64_MAX - 10);
        break;
    case HUGE_BINARY:
        put_u64(b + 24, (uint64_t)1 << 62);
        break;
    case TRAILING:
        b = realloc(b, len + 16);
        ck_assert_ptr_nonnull(b);
        memset(b + len, 0, 16);
        len += 16;
        break;
    case BAD_BINARY: {
        unsigned char *bin = b + CLATTN__CACHE_HEADER_SIZE + klen;
        for (i = 0; i < blen; i++)
            bin[i] = (unsigned char)test_rand_u64(&rng);
        put_u64(b + 32, fnv1a64(bin, (size_t)blen));
        break;
    }
    case NCORRUPTIONS:
        break;
    }
    write_file(path, b, len);
    free(b);
}

/* Every kind of damaged or foreign file is ignored: the result is still
 * right, the program is built from source and the file rewritten valid. */
START_TEST(corrupt_files)
{
    char dir[512], file[600], again[600];
    use_cache_dir(dir, sizeof dir, "corrupt");
    run_fresh(0);
    the_clbin(dir, file, sizeof file);
    for (int how = 0; how < NCORRUPTIONS; how++) {
        clattn__cache_stats s;
        corrupt(file, (enum corruption)how);
        clattn__cache_stats_reset();
        run_fresh(0);
        s = stats();
        ck_assert_msg(s.disk_rejects == 1 && s.source_builds == 1 && s.disk_writes == 1 && s.disk_hits == 0,
                      "corruption %d: rejects %ld builds %ld writes %ld hits %ld", how, s.disk_rejects,
                      s.source_builds, s.disk_writes, s.disk_hits);
        the_clbin(dir, again, sizeof again);
        ck_assert_str_eq(again, file); /* the same name, rewritten */
        run_fresh(0);
        ASSERT_STATS(0, 1, 1, 1, 1);
        assert_no_tmp(dir);
    }
}
END_TEST

/* CLATTN_CACHE_DIR=off: nothing is read or written anywhere. */
START_TEST(disabled)
{
    char xdg[512], home[512], xdg_clattn[600], home_clattn[600];
    struct stat sb;
    int had_off = stat("off", &sb) == 0;
    tmp_path(xdg, sizeof xdg, "xdg-off");
    tmp_path(home, sizeof home, "home-off");
    snprintf(xdg_clattn, sizeof xdg_clattn, "%s/clattn", xdg);
    snprintf(home_clattn, sizeof home_clattn, "%s/.cache/clattn", home);
    setenv("XDG_CACHE_HOME", xdg, 1);
    setenv("HOME", home, 1);
    setenv("CLATTN_CACHE_DIR", "off", 1);
    run_fresh(0);
    run_fresh(0);
    ASSERT_STATS(0, 0, 0, 2, 0);
    /* (the OpenCL implementation may keep its own cache there: PoCL does) */
    ck_assert_int_eq(count_clbin(xdg_clattn), 0);
    ck_assert(stat(xdg_clattn, &sb) != 0);
    ck_assert(stat(home_clattn, &sb) != 0);
    ck_assert(had_off || stat("off", &sb) != 0); /* not taken as a relative directory */
}
END_TEST

/* A cache directory that cannot be created (under a regular file) or is a
 * regular file itself never fails a plan; nothing is saved. */
START_TEST(unwritable)
{
    char file[512], dir[600];
    tmp_path(file, sizeof file, "afile");
    write_file(file, "not a directory\n", 16);
    snprintf(dir, sizeof dir, "%s/cache", file);
    setenv("CLATTN_CACHE_DIR", dir, 1);
    run_fresh(0);
    run_fresh(1);
    ASSERT_STATS(0, 0, 0, 2, 0);
    setenv("CLATTN_CACHE_DIR", file, 1);
    run_fresh(0);
    ASSERT_STATS(0, 0, 0, 3, 0);
}
END_TEST

/* A write that fails at the last step (a directory sits where the file goes,
 * so rename fails) removes its temporary file; no other run leaves one. */
START_TEST(no_temp_files)
{
    char a[512], b[512], file[600], blocker[700];
    const char *name;
    use_cache_dir(a, sizeof a, "tmp-a");
    run_fresh(0);
    the_clbin(a, file, sizeof file);
    name = strrchr(file, '/') + 1;
    use_cache_dir(b, sizeof b, "tmp-b");
    ck_assert_int_eq(mkdir(b, 0700), 0);
    snprintf(blocker, sizeof blocker, "%s/%s", b, name);
    ck_assert_int_eq(mkdir(blocker, 0700), 0);
    clattn__cache_stats_reset();
    run_fresh(0);
    ASSERT_STATS(0, 0, 0, 1, 1);
    assert_no_tmp(b);
    assert_no_tmp(a);
    ck_assert_int_eq(count_entries(b, "", NULL, 0), 1); /* only the blocker */
}
END_TEST

/* Without CLATTN_CACHE_DIR the cache lives in $XDG_CACHE_HOME/clattn, else
 * in $HOME/.cache/clattn (an empty CLATTN_CACHE_DIR counts as unset). */
START_TEST(default_location)
{
    char xdg[512], dir[600], home[512];
    unsetenv("CLATTN_CACHE_DIR");
    tmp_path(xdg, sizeof xdg, "xdg");
    setenv("XDG_CACHE_HOME", xdg, 1);
    run_fresh(0);
    snprintf(dir, sizeof dir, "%s/clattn", xdg);
    ck_assert_int_eq(count_clbin(dir), 1);
    assert_no_tmp(dir);
    run_fresh(0);
    ASSERT_STATS(0, 1, 1, 1, 0);

    unsetenv("XDG_CACHE_HOME");
    setenv("CLATTN_CACHE_DIR", "", 1);
    tmp_path(home, sizeof home, "home");
    setenv("HOME", home, 1);
    run_fresh(0);
    snprintf(dir, sizeof dir, "%s/.cache/clattn", home);
    ck_assert_int_eq(count_clbin(dir), 1);
    ASSERT_STATS(0, 1, 2, 2, 0);
}
END_TEST

Suite *suite_cache(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_add_test(tc, miss_then_hit);
    tcase_add_test(tc, options_miss);
    tcase_add_test(tc, source_change_miss);
    tcase_add_test(tc, corrupt_files);
    tcase_add_test(tc, disabled);
    tcase_add_test(tc, unwritable);
    tcase_add_test(tc, no_temp_files);
    tcase_add_test(tc, default_location);
    suite_add_tcase(s, tc);
    return s;
}
