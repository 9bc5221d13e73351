/*
 * test_faults.c - fault injection through the dispatch layer (src/cl.c). For
 * each public operation (device selection, the CPU reference, context create
 * and adopt, plan create per variant from the disk cache and once cold, plan
 * run per variant, the host call) the cl* calls and host allocations it makes
 * through the layer are counted, then each one in turn is made to fail with
 * each error of a list. After every fault:
 *   - no crash, and a failure status that says what happened (the injected
 *     OpenCL code, or host memory / build failure), with a last-error text;
 *     or success when the failed call was one the library can do without
 *     (the disk cache, an optional device query), and then a correct result;
 *   - outputs untouched or complete: device outputs all poison or equal to the
 *     reference, host outputs exactly untouched, canaries always intact;
 *   - no OpenCL object leaked: the test's own cl_context, which every clattn
 *     context here adopts, has its reference count back at the baseline
 *     (programs, kernels, buffers and queues retain their context);
 *   - the next call on the same context succeeds with a correct result.
 * Host memory leaks on these paths are caught by LeakSanitizer in the ASan
 * run of every suite (tools/setup.sh test). Under valgrind this suite takes
 * about 11 minutes, so it is left out of the memcheck subset; run it by hand
 * with `meson test -C build --setup valgrind --suite faults`.
 */
#include <clblast_c.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "tests.h"

enum { B = 1, HQ = 2, HKV = 1, NQ = 5, NK = 7, D = 8, CANARY = 64 };
#define NQE (B * HQ * NQ * D)
#define NKE (B * HKV * NK * D)
#define NLSE (B * HQ * NQ)

/* The errors injected: device and host allocation failures, a build failure,
 * a dead queue, and "no platform" (what the ICD loader returns without one). */
static const cl_int all_codes[] = {
    CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_OUT_OF_RESOURCES,     CL_OUT_OF_HOST_MEMORY,
    CL_BUILD_PROGRAM_FAILURE,         CL_INVALID_COMMAND_QUEUE, (cl_int)CLATTN_CL_PLATFORM_NOT_FOUND_KHR,
};
enum { NCODES = sizeof all_codes / sizeof all_codes[0] };

/* ---- the test's own OpenCL objects and data (a checked fixture) */

static struct world {
    cl_context ctx;
    cl_device_id dev;
    cl_command_queue queue; /* every run goes here */
    cl_command_queue idle;  /* what clattn contexts adopt: nothing runs on it, so its count is exact */
    cl_mem q, k, v, o, lse; /* o and lse with CANARY floats after the view */
    cl_uint ctx_refs, idle_refs; /* reference counts with no clattn object alive */
    char warm_dir[512];           /* disk cache filled by the first build of each program */
} w;

static float hq[NQE], hk[NKE], hv[NKE], ref_o[2][NQE], ref_lse[2][NLSE];
/* Optional inputs for the host call's second sweep (every upload it can make). */
static float hbias[B * HQ * NQ * NK], halibi[HQ];
static int32_t hkl[B];
static double atol_, rtol_, nmse_;

static const char *const env_names[] = {"CLATTN_CACHE_DIR", "CLATTN_VARIANT", "CLATTN_PARAMS"};
enum { NENV = sizeof env_names / sizeof env_names[0] };
static char *env_saved[NENV];

/* Only for a queue nothing was enqueued on: implementations may hold
 * references for finished commands a while (PoCL does). */
static cl_uint idle_refs(void)
{
    cl_uint n = 0;
    ck_assert_int_eq(clGetCommandQueueInfo(w.idle, CL_QUEUE_REFERENCE_COUNT, sizeof n, &n, NULL), CL_SUCCESS);
    return n;
}

static cl_mem buffer(size_t bytes, const void *init)
{
    cl_int err = CL_SUCCESS;
    cl_mem m = clCreateBuffer(w.ctx, CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0), bytes, (void *)init,
                              &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    return m;
}

/* Point the disk cache at <tmpdir>/faults-<name>-<n> (n < 0: no number). */
static void cache_dir(char *buf, size_t n, const char *name, long num)
{
    int len = num < 0 ? snprintf(buf, n, "%s/faults-%s", test_tmpdir(), name)
                      : snprintf(buf, n, "%s/faults-%s-%ld", test_tmpdir(), name, num);
    ck_assert(len > 0 && (size_t)len < n);
    ck_assert_int_eq(setenv("CLATTN_CACHE_DIR", buf, 1), 0);
}

/* The problem in host memory, outputs to o and lse; full adds a bias,
 * ALiBi slopes and key lengths. */
static clattn_host_args host_args(float *o, float *lse, int full)
{
    clattn_host_args h;
    memset(&h, 0, sizeof h);
    h.q = (clattn_host_tensor){hq, CLATTN_F32, {B, HQ, NQ, D}};
    h.k = (clattn_host_tensor){hk, CLATTN_F32, {B, HKV, NK, D}};
    h.v = (clattn_host_tensor){hv, CLATTN_F32, {B, HKV, NK, D}};
    h.o = (clattn_host_tensor){o, CLATTN_F32, {B, HQ, NQ, D}};
    h.lse = (clattn_host_tensor){lse, CLATTN_F32, {B, HQ, NQ, 1}};
    if (full) {
        h.bias = (clattn_host_tensor){hbias, CLATTN_F32, {B, HQ, NQ, NK}};
        h.alibi = halibi;
        h.key_lengths = hkl;
    }
    return h;
}

/* A failed cache write leaves no temporary file behind. */
static void assert_no_tmp_files(const char *dir, const char *what)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return; /* never created: the fault came before the first write */
    while ((e = readdir(d)) != NULL)
        ck_assert_msg(strstr(e->d_name, ".tmp.") == NULL, "%s: temporary file %s/%s left behind", what, dir,
                      e->d_name);
    closedir(d);
}

static void setup(void)
{
    unsigned pi = 0, di = 0;
    cl_platform_id plats[64];
    cl_device_id devs[64];
    cl_uint np = 0, nd = 0;
    cl_int err = CL_SUCCESS;
    uint64_t rng = test_seed() ^ 0xfa017;
    clattn_host_args h;

    clattn__fault_inject(0, 0);
    for (int i = 0; i < NENV; i++) {
        const char *v = getenv(env_names[i]);
        env_saved[i] = v ? strdup(v) : NULL;
    }
    unsetenv("CLATTN_VARIANT");
    unsetenv("CLATTN_PARAMS");

    test_fill_uniform(hq, NQE, 1, &rng);
    test_fill_uniform(hk, NKE, 1, &rng);
    test_fill_uniform(hv, NKE, 1, &rng);
    test_fill_uniform(hbias, B * HQ * NQ * NK, 2, &rng);
    for (int i = 0; i < HQ; i++)
        halibi[i] = 0.25f * (float)(i + 1);
    for (int i = 0; i < B; i++)
        hkl[i] = NK - 2;
    for (int full = 0; full < 2; full++) {
        h = host_args(ref_o[full], ref_lse[full], full);
        ck_assert_int_eq(clattn_reference(NULL, &h), CLATTN_SUCCESS);
    }
    ck_assert_int_eq(clattn_tolerance(CLATTN_F32, &atol_, &rtol_, &nmse_), CLATTN_SUCCESS);

    /* The device clattn would pick (CLATTN_DEVICE honoured), in a cl_context of our own. */
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(clattn_device_select(NULL, &pi, &di), CLATTN_SUCCESS);
    ck_assert_int_eq(clGetPlatformIDs(64, plats, &np), CL_SUCCESS);
    ck_assert_uint_lt(pi, np);
    ck_assert_int_eq(clGetDeviceIDs(plats[pi], CL_DEVICE_TYPE_ALL, 64, devs, &nd), CL_SUCCESS);
    ck_assert_uint_lt(di, nd);
    w.dev = devs[di];
    w.ctx = clCreateContext(NULL, 1, &w.dev, NULL, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    w.queue = clCreateCommandQueue(w.ctx, w.dev, 0, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    w.idle = clCreateCommandQueue(w.ctx, w.dev, 0, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    w.q = buffer(sizeof hq, hq);
    w.k = buffer(sizeof hk, hk);
    w.v = buffer(sizeof hv, hv);
    w.o = buffer((NQE + CANARY) * sizeof(float), NULL);
    w.lse = buffer((NLSE + CANARY) * sizeof(float), NULL);
    w.ctx_refs = test_ctx_refs_stable(w.ctx, w.queue);
    w.idle_refs = idle_refs();
    cache_dir(w.warm_dir, sizeof w.warm_dir, "warm", -1);
}

static void teardown(void)
{
    clattn__fault_inject(0, 0);
    cl_mem *mems[] = {&w.q, &w.k, &w.v, &w.o, &w.lse};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (*mems[i])
            clReleaseMemObject(*mems[i]);
    if (w.queue)
        clReleaseCommandQueue(w.queue);
    if (w.idle)
        clReleaseCommandQueue(w.idle);
    if (w.ctx)
        clReleaseContext(w.ctx);
    memset(&w, 0, sizeof w);
    for (int i = 0; i < NENV; i++) {
        if (env_saved[i])
            setenv(env_names[i], env_saved[i], 1);
        else
            unsetenv(env_names[i]);
        free(env_saved[i]);
        env_saved[i] = NULL;
    }
}

/* The context's reference count once it has settled at expected (a leak
 * keeps it above). CLBlast's process-wide program cache (the gemm variant)
 * holds the context until it is cleared. */
static cl_uint settled_ctx_refs(cl_uint expected)
{
    CLBlastClearCache();
    return test_ctx_refs_settled(w.ctx, NULL, expected);
}

/* No clattn object alive: every OpenCL object clattn made is released. */
static void assert_no_cl_leak(const char *what)
{
    cl_uint c = settled_ctx_refs(w.ctx_refs), q = idle_refs();
    ck_assert_msg(c == w.ctx_refs && q == w.idle_refs,
                  "%s: cl_context reference count %u (baseline %u), queue %u (baseline %u): an OpenCL object leaked",
                  what, c, w.ctx_refs, q, w.idle_refs);
}

/* ---- problem, outputs and checks */

static clattn_args dev_args(void)
{
    clattn_args a;
    memset(&a, 0, sizeof a);
    a.q = clattn_tensor_make(w.q, 0, CLATTN_F32, B, HQ, NQ, D);
    a.k = clattn_tensor_make(w.k, 0, CLATTN_F32, B, HKV, NK, D);
    a.v = clattn_tensor_make(w.v, 0, CLATTN_F32, B, HKV, NK, D);
    a.o = clattn_tensor_make(w.o, 0, CLATTN_F32, B, HQ, NQ, D);
    a.lse = clattn_tensor_make(w.lse, 0, CLATTN_F32, B, HQ, NQ, 1);
    return a;
}

static clattn_attention_desc make_desc(clattn_variant variant)
{
    clattn_attention_desc d;
    memset(&d, 0, sizeof d);
    d.variant = variant;
    return d;
}

static int all_poison(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0xFF)
            return 0;
    return 1;
}

static int correct(const float *o, const float *lse, int full)
{
    clattn_compare_result ro = clattn_compare_f32(o, ref_o[full], NQE);
    clattn_compare_result rl = clattn_compare_f32(lse, ref_lse[full], NLSE);
    return clattn_compare_ok(&ro, atol_, rtol_, nmse_) && clattn_compare_ok(&rl, atol_, rtol_, nmse_);
}

static void poison_device(void)
{
    static const unsigned char ff = 0xFF;
    ck_assert_int_eq(clEnqueueFillBuffer(w.queue, w.o, &ff, 1, 0, (NQE + CANARY) * sizeof(float), 0, NULL, NULL),
                     CL_SUCCESS);
    ck_assert_int_eq(clEnqueueFillBuffer(w.queue, w.lse, &ff, 1, 0, (NLSE + CANARY) * sizeof(float), 0, NULL, NULL),
                     CL_SUCCESS);
    ck_assert_int_eq(clFinish(w.queue), CL_SUCCESS);
}

/* State of the device outputs after a run: 1 correct, 0 all poison; fails
 * the test on anything else (partial output, canary overwritten). */
static int device_outputs(const char *what)
{
    static float o[NQE + CANARY], lse[NLSE + CANARY];
    int poison, ok;
    ck_assert_int_eq(clFinish(w.queue), CL_SUCCESS);
    ck_assert_int_eq(clEnqueueReadBuffer(w.queue, w.o, CL_TRUE, 0, sizeof o, o, 0, NULL, NULL), CL_SUCCESS);
    ck_assert_int_eq(clEnqueueReadBuffer(w.queue, w.lse, CL_TRUE, 0, sizeof lse, lse, 0, NULL, NULL), CL_SUCCESS);
    ck_assert_msg(all_poison(o + NQE, CANARY * sizeof(float)) && all_poison(lse + NLSE, CANARY * sizeof(float)),
                  "%s: canary after an output overwritten", what);
    poison = all_poison(o, NQE * sizeof(float)) && all_poison(lse, NLSE * sizeof(float));
    ok = !poison && correct(o, lse, 0);
    ck_assert_msg(poison || ok, "%s: outputs neither untouched nor complete and correct", what);
    return ok;
}

/* Run plan on the test's buffers and require a correct result. */
static void run_verified(clattn_context *ctx, clattn_plan *plan, const char *what)
{
    clattn_args a = dev_args();
    clattn_status st;
    poison_device();
    st = clattn_plan_run(plan, &a, w.queue, 0, NULL, NULL);
    ck_assert_msg(st == CLATTN_SUCCESS, "%s: run after the fault: %s: %s", what, clattn_status_name(st),
                  clattn_context_last_error(ctx));
    ck_assert_msg(device_outputs(what) == 1, "%s: run after the fault wrote nothing", what);
}

/* The host call on ctx, poisoned outputs first; 1 if it succeeded (outputs
 * verified), 0 if it failed (outputs verified untouched). */
static int host_call(clattn_context *ctx, int full, clattn_status *st_out)
{
    static float o[NQE], lse[NLSE];
    clattn_host_args h = host_args(o, lse, full);
    clattn_attention_desc d = make_desc(CLATTN_VARIANT_AUTO);
    clattn_status st;
    memset(o, 0xFF, sizeof o);
    memset(lse, 0xFF, sizeof lse);
    st = clattn_attention_host(ctx, &d, &h, NULL);
    if (st_out)
        *st_out = st;
    if (st != CLATTN_SUCCESS) {
        ck_assert_msg(all_poison(o, sizeof o) && all_poison(lse, sizeof lse),
                      "clattn_attention_host failed (%s) but wrote its outputs", clattn_status_name(st));
        return 0;
    }
    ck_assert_msg(correct(o, lse, full), "clattn_attention_host: wrong result");
    return 1;
}

static void host_call_ok(clattn_context *ctx, int full, const char *what)
{
    clattn_status st;
    ck_assert_msg(host_call(ctx, full, &st), "%s: clattn_attention_host after the fault: %s: %s", what,
                  clattn_status_name(st), clattn_context_last_error(ctx));
}

/* A failure must carry the injected OpenCL error, or say host memory ran out
 * (host allocations fail whatever the code), or a build failure for an
 * injected CL_BUILD_PROGRAM_FAILURE in clBuildProgram. */
static void assert_failure_status(clattn_status st, cl_int code, const char *what)
{
    ck_assert_msg(st == clattn_status_from_cl(code) || st == CLATTN_ERROR_OUT_OF_HOST_MEMORY ||
                      (code == CL_BUILD_PROGRAM_FAILURE && st == CLATTN_ERROR_BUILD),
                  "%s: injected %s, got %s", what, clattn_status_name(clattn_status_from_cl(code)),
                  clattn_status_name(st));
}

/* ---- the sweep */

typedef struct sweep {
    const char *name;
    long calls;
    int ncodes;
    long failed, tolerated;
    double start;
} sweep;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sweep_begin(sweep *s, const char *name, long calls, int ncodes)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->calls = calls;
    s->ncodes = ncodes;
    s->start = now();
    ck_assert_msg(calls > 0, "%s: no calls through the dispatch layer counted", name);
}

static void sweep_end(const sweep *s)
{
    printf("faults: %-34s %3ld calls x %d codes: %4ld failed cleanly, %3ld tolerated (result verified), %.1f s\n",
           s->name, s->calls, s->ncodes, s->failed, s->tolerated, now() - s->start);
    ck_assert_int_eq(s->failed + s->tolerated, s->calls * s->ncodes);
    ck_assert_msg(s->failed > 0, "%s: no injected fault made the operation fail", s->name);
}

/* Make the nth call from now fail with code. */
static void fault_on(long n, cl_int code) { clattn__fault_inject(n, code); }

/* Stop injecting; the operation must have reached the nth call (its calls
 * do not vary from one run to the next). */
static void fault_off(const sweep *s, long n)
{
    long reached = clattn__fault_calls();
    clattn__fault_inject(0, 0);
    ck_assert_msg(reached >= n, "%s: fault %ld not reached (%ld calls): the operation's calls vary", s->name, n,
                  reached);
}

/* A clattn context on the test's cl_context and the idle queue (runs name
 * w.queue explicitly), or on w.queue for the host call. */
static clattn_context *adopt_on(cl_command_queue queue)
{
    clattn_context *ctx = NULL;
    ck_assert_int_eq(clattn_context_adopt(w.ctx, w.dev, queue, &ctx), CLATTN_SUCCESS);
    return ctx;
}

static clattn_context *adopt(void) { return adopt_on(w.idle); }

/* A plan on ctx that runs correctly (the program comes from the disk cache). */
static void plan_ok(clattn_context *ctx, const char *what)
{
    clattn_attention_desc d = make_desc(CLATTN_VARIANT_NAIVE);
    clattn_args a = dev_args();
    clattn_plan *plan = NULL;
    clattn_status st = clattn_plan_create(ctx, &d, &a, &plan);
    ck_assert_msg(st == CLATTN_SUCCESS, "%s: plan after the fault: %s: %s", what, clattn_status_name(st),
                  clattn_context_last_error(ctx));
    run_verified(ctx, plan, what);
    clattn_plan_free(plan);
}

/* ---- tests */

/* Context creation with each kind of device spec: the default (first GPU,
 * else first device), the device's type and a substring of its name. */
START_TEST(context_create)
{
    char name[256] = "", label[96];
    const char *specs[3] = {NULL, "cpu", name};
    cl_device_type type = 0;
    clattn_context *ctx = adopt_on(w.queue);
    host_call_ok(ctx, 0, "warm-up"); /* fills the disk cache: checking a new context is quick */
    clattn_context_free(ctx);
    ck_assert_int_eq(clGetDeviceInfo(w.dev, CL_DEVICE_TYPE, sizeof type, &type, NULL), CL_SUCCESS);
    ck_assert_int_eq(clGetDeviceInfo(w.dev, CL_DEVICE_NAME, sizeof name - 1, name, NULL), CL_SUCCESS);
    specs[1] = type & CL_DEVICE_TYPE_GPU ? "gpu" : type & CL_DEVICE_TYPE_CPU ? "cpu" : "accelerator";

    for (int sp = 0; sp < 3; sp++) {
        sweep s;
        long calls;
        snprintf(label, sizeof label, "clattn_context_create(%s)", sp == 0 ? "default" : sp == 1 ? "type" : "name");
        clattn__fault_inject(0, 0);
        ck_assert_int_eq(clattn_context_create(specs[sp], &ctx), CLATTN_SUCCESS);
        calls = clattn__fault_calls();
        clattn_context_free(ctx);
        sweep_begin(&s, label, calls, NCODES);
        for (long n = 1; n <= calls; n++) {
            for (int c = 0; c < NCODES; c++) {
                clattn_status st;
                ctx = (clattn_context *)&s; /* must be replaced */
                fault_on(n, all_codes[c]);
                st = clattn_context_create(specs[sp], &ctx);
                fault_off(&s, n);
                if (st == CLATTN_SUCCESS) {
                    s.tolerated++;
                    ck_assert_ptr_nonnull(ctx);
                    host_call_ok(ctx, 0, s.name);
                    clattn_context_free(ctx);
                } else {
                    s.failed++;
                    assert_failure_status(st, all_codes[c], s.name);
                    ck_assert_ptr_null(ctx);
                }
                ck_assert_int_eq(clattn_context_create(specs[sp], &ctx), CLATTN_SUCCESS);
                if (c == 0) /* one full check per call site is enough for a new context */
                    host_call_ok(ctx, 0, s.name);
                clattn_context_free(ctx);
            }
        }
        sweep_end(&s);
    }
}
END_TEST

/* Device selection: a failed query is an error (never another device), and
 * the indices are written only on success. */
START_TEST(device_select)
{
    unsigned p0 = 0, d0 = 0;
    long calls;
    sweep s;
    clattn__fault_inject(0, 0);
    ck_assert_int_eq(clattn_device_select(NULL, &p0, &d0), CLATTN_SUCCESS);
    calls = clattn__fault_calls();
    sweep_begin(&s, "clattn_device_select", calls, NCODES);
    for (long n = 1; n <= calls; n++) {
        for (int c = 0; c < NCODES; c++) {
            unsigned p = 999, d = 999;
            clattn_status st;
            fault_on(n, all_codes[c]);
            st = clattn_device_select(NULL, &p, &d);
            fault_off(&s, n);
            if (st == CLATTN_SUCCESS) {
                s.tolerated++;
                ck_assert_msg(p == p0 && d == d0, "%s: fault %ld picked device %u:%u instead of %u:%u", s.name, n, p,
                              d, p0, d0);
            } else {
                s.failed++;
                assert_failure_status(st, all_codes[c], s.name);
                ck_assert_msg(p == 999 && d == 999, "%s: failed but wrote the indices", s.name);
            }
            p = d = 999;
            ck_assert_int_eq(clattn_device_select(NULL, &p, &d), CLATTN_SUCCESS);
            ck_assert(p == p0 && d == d0);
        }
    }
    sweep_end(&s);
}
END_TEST

/* The CPU reference: host allocation failures leave its outputs untouched. */
START_TEST(reference)
{
    static float o[NQE], lse[NLSE];
    long calls;
    sweep s;
    for (int full = 0; full < 2; full++) {
        clattn_host_args h = host_args(o, lse, full);
        clattn__fault_inject(0, 0);
        ck_assert_int_eq(clattn_reference(NULL, &h), CLATTN_SUCCESS);
        calls = clattn__fault_calls();
        sweep_begin(&s, full ? "clattn_reference(all inputs)" : "clattn_reference", calls, NCODES);
        for (long n = 1; n <= calls; n++) {
            for (int c = 0; c < NCODES; c++) {
                clattn_status st;
                memset(o, 0xFF, sizeof o);
                memset(lse, 0xFF, sizeof lse);
                fault_on(n, all_codes[c]);
                st = clattn_reference(NULL, &h);
                fault_off(&s, n);
                if (st == CLATTN_SUCCESS) {
                    s.tolerated++;
                    ck_assert(correct(o, lse, full));
                } else {
                    s.failed++;
                    ck_assert_msg(st == CLATTN_ERROR_OUT_OF_HOST_MEMORY, "%s: got %s", s.name, clattn_status_name(st));
                    ck_assert_msg(all_poison(o, sizeof o) && all_poison(lse, sizeof lse),
                                  "%s: failed but wrote its outputs", s.name);
                }
                ck_assert_int_eq(clattn_reference(NULL, &h), CLATTN_SUCCESS);
                ck_assert(correct(o, lse, full));
            }
        }
        sweep_end(&s);
    }
}
END_TEST

/* Adoption retains the caller's context and queue only on success. */
START_TEST(context_adopt)
{
    sweep s;
    clattn_context *ctx = adopt();
    long calls;
    plan_ok(ctx, "warm-up");
    clattn_context_free(ctx);
    clattn__fault_inject(0, 0);
    ctx = adopt();
    calls = clattn__fault_calls();
    clattn_context_free(ctx);
    assert_no_cl_leak("adopt");
    sweep_begin(&s, "clattn_context_adopt", calls, NCODES);
    for (long n = 1; n <= calls; n++) {
        for (int c = 0; c < NCODES; c++) {
            clattn_status st;
            ctx = (clattn_context *)&s;
            fault_on(n, all_codes[c]);
            st = clattn_context_adopt(w.ctx, w.dev, w.idle, &ctx);
            fault_off(&s, n);
            if (st == CLATTN_SUCCESS) {
                s.tolerated++;
                ck_assert_ptr_nonnull(ctx);
                plan_ok(ctx, s.name);
                clattn_context_free(ctx);
            } else {
                s.failed++;
                assert_failure_status(st, all_codes[c], s.name);
                ck_assert_ptr_null(ctx);
            }
            assert_no_cl_leak(s.name);
            ctx = adopt();
            if (c == 0)
                plan_ok(ctx, s.name);
            clattn_context_free(ctx);
            assert_no_cl_leak(s.name);
        }
    }
    sweep_end(&s);
}
END_TEST

/* Plan creation on a fresh context (empty in-memory program cache) each
 * time, so every call of the build path is reached. Warm: the disk cache
 * holds the program, which loads in milliseconds. Cold: each attempt gets an
 * empty cache directory of its own, so the build from source and the cache
 * write are reached too; the retry after a failure loads from the warm cache.
 * Every code is injected on both paths: what is slow, compiling, the OpenCL
 * implementation caches itself (PoCL's kernel cache, on by default), so
 * building the same program again costs milliseconds and the whole suite
 * well under a minute. With that cache off (POCL_KERNEL_CACHE=0) PoCL
 * compiles on every fresh context and the suite takes about 10 minutes. */
static void sweep_plan_create(clattn_variant variant, int cold)
{
    const cl_int *codes = all_codes;
    const int ncodes = NCODES;
    clattn_attention_desc d = make_desc(variant);
    clattn_args a = dev_args();
    clattn_context *ctx;
    clattn_plan *plan = NULL;
    char name[64], dir[512], what[128];
    long calls;
    sweep s;

    /* Fill the warm cache, then count on a fresh context and an empty (cold) or filled (warm) disk cache. */
    ctx = adopt();
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
    clattn_plan_free(plan);
    clattn_context_free(ctx);
    if (cold)
        cache_dir(dir, sizeof dir, clattn_variant_name(variant), 0);
    ctx = adopt();
    clattn__fault_inject(0, 0);
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
    calls = clattn__fault_calls();
    run_verified(ctx, plan, "count");
    clattn_plan_free(plan);
    clattn_context_free(ctx);
    assert_no_cl_leak("count");

    snprintf(name, sizeof name, "clattn_plan_create(%s, %s)", clattn_variant_name(variant), cold ? "cold" : "warm");
    sweep_begin(&s, name, calls, ncodes);
    for (long n = 1; n <= calls; n++) {
        for (int c = 0; c < ncodes; c++) {
            clattn_status st;
            if (cold) /* an empty directory of its own: the disk cache misses and the build is written */
                cache_dir(dir, sizeof dir, clattn_variant_name(variant), n * ncodes + c);
            ctx = adopt();
            plan = (clattn_plan *)&s;
            fault_on(n, codes[c]);
            st = clattn_plan_create(ctx, &d, &a, &plan);
            fault_off(&s, n);
            if (st == CLATTN_SUCCESS) {
                s.tolerated++;
                ck_assert_ptr_nonnull(plan);
                run_verified(ctx, plan, name);
            } else {
                s.failed++;
                assert_failure_status(st, codes[c], name);
                ck_assert_ptr_null(plan);
                ck_assert_msg(clattn_context_last_error(ctx)[0] != '\0', "%s: failed with no message", name);
                if (cold)
                    ck_assert_int_eq(setenv("CLATTN_CACHE_DIR", w.warm_dir, 1), 0);
                st = clattn_plan_create(ctx, &d, &a, &plan);
                ck_assert_msg(st == CLATTN_SUCCESS, "%s: plan after fault %ld (%s): %s: %s", name, n,
                              clattn_status_name(clattn_status_from_cl(codes[c])), clattn_status_name(st),
                              clattn_context_last_error(ctx));
                run_verified(ctx, plan, name);
            }
            clattn_plan_free(plan);
            clattn_context_free(ctx);
            snprintf(what, sizeof what, "%s, fault %ld (%s)", name, n,
                     clattn_status_name(clattn_status_from_cl(codes[c])));
            assert_no_cl_leak(what);
            if (cold)
                assert_no_tmp_files(dir, what);
        }
    }
    if (cold)
        ck_assert_int_eq(setenv("CLATTN_CACHE_DIR", w.warm_dir, 1), 0);
    sweep_end(&s);
}

START_TEST(plan_create_warm)
{
    sweep_plan_create((clattn_variant)_i, 0);
}
END_TEST

/* The cold path on one variant: building from source and writing the cache
 * file is clattn__program_get's code whichever variant asks (every variant
 * runs it warm above), and a cold sweep of gemm alone would cost minutes:
 * CLBlast rebuilds its kernels each time its cache is cleared for the
 * reference counts. */
START_TEST(plan_create_cold)
{
    sweep_plan_create(CLATTN_VARIANT_NAIVE, 1);
}
END_TEST

/* Runs of one plan: a failed run leaves the outputs all poison (a completed
 * one all correct), returns no event, and the next run on the plan works. */
START_TEST(plan_run)
{
    const clattn_variant variant = (clattn_variant)_i;
    clattn_attention_desc d = make_desc(variant);
    clattn_args a = dev_args();
    clattn_context *ctx = adopt();
    clattn_plan *plan = NULL;
    char name[64];
    long calls;
    sweep s;
    ck_assert_int_eq(clattn_plan_create(ctx, &d, &a, &plan), CLATTN_SUCCESS);
    poison_device();
    clattn__fault_inject(0, 0);
    ck_assert_int_eq(clattn_plan_run(plan, &a, w.queue, 0, NULL, NULL), CLATTN_SUCCESS);
    calls = clattn__fault_calls();
    ck_assert_int_eq(device_outputs("count"), 1);

    snprintf(name, sizeof name, "clattn_plan_run(%s)", clattn_variant_name(variant));
    sweep_begin(&s, name, calls, NCODES);
    for (long n = 1; n <= calls; n++) {
        for (int c = 0; c < NCODES; c++) {
            clattn_status st;
            cl_event ev = NULL;
            poison_device();
            fault_on(n, all_codes[c]);
            st = clattn_plan_run(plan, &a, w.queue, 0, NULL, &ev);
            fault_off(&s, n);
            if (st == CLATTN_SUCCESS) {
                s.tolerated++;
                ck_assert_ptr_nonnull(ev);
                ck_assert_int_eq(clWaitForEvents(1, &ev), CL_SUCCESS);
                clReleaseEvent(ev);
                ck_assert_int_eq(device_outputs(name), 1);
            } else {
                s.failed++;
                assert_failure_status(st, all_codes[c], name);
                ck_assert_msg(ev == NULL, "%s: failed run returned an event", name);
                ck_assert_msg(clattn_context_last_error(ctx)[0] != '\0', "%s: failed with no message", name);
                device_outputs(name);
            }
            run_verified(ctx, plan, name);
        }
    }
    clattn_plan_free(plan);
    clattn_context_free(ctx);
    assert_no_cl_leak(name);
    sweep_end(&s);
}
END_TEST

/* What an adopted clattn context holds on the test's cl_context: one
 * reference of its own and one per cached program. */
static cl_uint held_refs(const clattn_context *ctx)
{
    cl_uint n = 1;
    for (const clattn__program_entry *e = ctx->programs; e; e = e->next)
        n++;
    return n;
}

/* The host call on one context, plain and with every optional input (bias,
 * ALiBi, key lengths: every upload it makes): a failure leaves the caller's
 * arrays exactly as they were, and the next call on the context succeeds. */
START_TEST(attention_host)
{
    const int full = _i;
    clattn_context *ctx = adopt_on(w.queue);
    cl_uint crefs, refs;
    long calls;
    sweep s;
    host_call_ok(ctx, full, "warm-up"); /* builds the program: the sweep runs on the in-memory cache */
    clattn__fault_inject(0, 0);
    host_call_ok(ctx, full, "count");
    calls = clattn__fault_calls();
    crefs = w.ctx_refs + held_refs(ctx);
    sweep_begin(&s, full ? "clattn_attention_host(all inputs)" : "clattn_attention_host", calls, NCODES);
    for (long n = 1; n <= calls; n++) {
        for (int c = 0; c < NCODES; c++) {
            clattn_status st;
            int ok;
            fault_on(n, all_codes[c]);
            ok = host_call(ctx, full, &st);
            fault_off(&s, n);
            if (ok) {
                s.tolerated++;
            } else {
                s.failed++;
                assert_failure_status(st, all_codes[c], s.name);
                ck_assert_msg(clattn_context_last_error(ctx)[0] != '\0', "%s: failed with no message", s.name);
            }
            refs = settled_ctx_refs(crefs);
            ck_assert_msg(refs == crefs,
                          "%s: fault %ld (%s): cl_context reference count %u, %u before: an OpenCL object leaked",
                          s.name, n, clattn_status_name(clattn_status_from_cl(all_codes[c])), refs, crefs);
            host_call_ok(ctx, full, s.name);
        }
    }
    clattn_context_free(ctx);
    assert_no_cl_leak(s.name);
    sweep_end(&s);
}
END_TEST

Suite *suite_faults(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 900);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, device_select);
    tcase_add_test(tc, reference);
    tcase_add_test(tc, context_create);
    tcase_add_test(tc, context_adopt);
    tcase_add_loop_test(tc, plan_create_warm, CLATTN_VARIANT_NAIVE, CLATTN_VARIANT_COUNT_);
    tcase_add_test(tc, plan_create_cold);
    tcase_add_loop_test(tc, plan_run, CLATTN_VARIANT_NAIVE, CLATTN_VARIANT_COUNT_);
    tcase_add_loop_test(tc, attention_host, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
