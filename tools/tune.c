/*
 * tune.c - `clattn tune`: searches the launch parameters of the variants
 * that have them (tiled and flash: tile sizes, rows per work-item, work-items
 * per row group and so the work-group size, vector width; naive: its
 * work-group size) on the device, and writes a tuning file the scheduler
 * reads ahead of its built-in table.
 *
 * The search is a descent over neighbours: from the scheduler's default, each
 * round builds the parameter sets one step away (one field doubled or halved,
 * rows and block_m together, vec toggled), verifies every candidate against
 * the CPU reference on sampled rows, times the survivors interleaved with the
 * default in the same rounds, and moves to the fastest if it beats the
 * current point. Timings are medians of OpenCL profiling events, and every
 * comparison is a ratio to the default measured in the same batch, so a busy
 * machine slows both sides alike. A final head-to-head decides what is
 * written: the winner only if it is at least as fast as the default, else
 * the default's own parameters, so a tuning file never makes a plan slower.
 *
 * Parameters the device cannot take (work-group size, local memory) are
 * refused by clattn_plan_create_with_params() before anything is built.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clattn.h"
#include "cli.h"

#define TUNE_MAX_DIMS 16
#define TUNE_MAX_SIZES 16
#define TUNE_MAX_VARIANTS 8
#define TUNE_MAX_CANDS 24
#define TUNE_MAX_VISITED 512
#define TUNE_MIN_GAIN 0.01 /* a move must beat the current point by 1% in the same batch */

const char usage_tune[] =
    "usage: clattn tune [options]\n"
    "       clattn tune --check-file FILE [--device SPEC]\n"
    "       clattn tune --compare FILE [--variants LIST] [--dim LIST] [--sizes LIST] [--heads H]\n"
    "\n"
    "Search the launch parameters of each variant on the device (tile sizes, rows per\n"
    "work-item, work-items per row and so the work-group size, vector width; naive: its\n"
    "work-group size), verify every candidate against the CPU reference on sampled rows,\n"
    "keep the fastest, and write a tuning file keyed by device name and driver version.\n"
    "The scheduler reads it (CLATTN_TUNING_FILE, default tuning.json in the kernel cache\n"
    "directory) ahead of its built-in table. The fastest is written only if it was at\n"
    "least as fast as the built-in default in a final head-to-head; otherwise the\n"
    "default's own parameters are.\n"
    "Entries of other devices, and of variants and head dims not tuned now, are kept.\n"
    "\n"
    "  --variants LIST   tiled, flash, naive (default: all three; --quick: tiled,flash,\n"
    "                    the variants the scheduler runs)\n"
    "  --dim LIST        head dimensions to tune, 1..256 (default 64,128); the entry\n"
    "                    tuned at D serves problems with max(D, Dv) <= D that no\n"
    "                    smaller tuned D covers\n"
    "  --out FILE|-      where to write (default: the file the scheduler reads)\n"
    "  --quick           a smaller problem (N = 512) and a shorter search: a few minutes\n"
    "                    on two CPU cores\n"
    "  --size N          the problem's sequence length, Nq = Nk = N (default 1024, --quick 512)\n"
    "  --heads H         query and key/value heads (default 8); batch 1, f32, no mask\n"
    "  --seed S          inputs' random seed (default: from the clock, printed)\n"
    "  --device SPEC     P:D, cpu|gpu|accelerator or a name substring\n"
    "  --check-file FILE check a tuning file instead: report how many of its entries\n"
    "                    apply to the device, or why it is rejected (exit 2)\n"
    "  --compare FILE    measure a tuning file instead: for each --variants, --dim and\n"
    "  --sizes LIST      --sizes (default 512,1024,2048), plan with the built-in table and\n"
    "                    with FILE in one process, verify both, time them interleaved\n"
    "\n"
    "Progress goes to stderr, the summary table to stdout (stderr with --out -). GFLOP/s\n"
    "count 4*D flops per query-key pair. CLATTN_PARAMS and an existing tuning file are\n"
    "ignored while tuning: candidates are compared with the built-in table.\n"
    "Exit status: 0 ok, 1 a candidate failed verification (nothing written), 2 bad usage\n"
    "or a malformed --check-file, 3 device error.\n";

typedef struct tune_opts {
    const char *variants_s, *dims_s, *out, *size_s, *heads_s, *seed_s, *device, *check_file, *compare, *sizes_s;
    int quick;
    int64_t sizes[TUNE_MAX_SIZES];
    int nsizes;
    clattn_variant variants[TUNE_MAX_VARIANTS];
    int nvariants;
    int64_t dims[TUNE_MAX_DIMS];
    int ndims;
    int64_t N, H;
    uint64_t seed;
    char out_path[4096];
    int out_default;
    /* effort */
    int max_rounds;   /* descent steps */
    int rounds, reps; /* per batch: rounds over the plans, reps runs of each per round */
    int final_rounds, final_reps;
    int wide;         /* also try x4 and /4 steps */
} tune_opts;

typedef struct tune_inputs {
    int64_t D;
    size_t nq;
    float *q, *k, *v, *host_o;
    cl_mem mq, mk, mv, mo;
    /* the reference of the verified rows: blocks starts[i] .. + lens[i] of every head */
    int nblocks;
    int64_t starts[3], lens[3], rows;
    float *ref_o, *ref_lse, *dev_o;
} tune_inputs;

typedef struct tune_result {
    clattn_variant variant;
    int64_t D;
    int skipped;
    char reason[256];
    clattn_launch_params dflt, best, written;
    double g_default, g_best; /* final head-to-head, GFLOP/s */
    int tried, pruned, rejected, failed, steps;
} tune_result;

typedef struct tune_state {
    clattn_context *ctx;
    cl_context clctx;
    cl_command_queue queue;
    char device[256], driver[128];
    tune_result *res;
    int nres;
    int any_failed;
    double t0;
} tune_state;

typedef struct cand {
    clattn_launch_params p;
    clattn_plan *plan;
    double med;
} cand;

/* ------------------------------------------------------------------------ */
/* parse                                                                    */
/* ------------------------------------------------------------------------ */

static int tune_parse(int argc, char **argv, tune_opts *to)
{
    const opt opts[] = {
        {"--variants", &to->variants_s, NULL}, {"--dim", &to->dims_s, NULL},     {"--out", &to->out, NULL},
        {"--quick", NULL, &to->quick},         {"--size", &to->size_s, NULL},    {"--heads", &to->heads_s, NULL},
        {"--seed", &to->seed_s, NULL},         {"--device", &to->device, NULL},  {"--check-file", &to->check_file, NULL},
        {"--compare", &to->compare, NULL},     {"--sizes", &to->sizes_s, NULL},
    };
    int rc = parse_opts("tune", argc, argv, opts, sizeof opts / sizeof opts[0], usage_tune);
    if (rc != RC_CONTINUE)
        return rc;
    if (to->check_file) {
        const char *other = to->variants_s ? "--variants" : to->dims_s ? "--dim" : to->out ? "--out"
                            : to->quick ? "--quick" : to->size_s ? "--size" : to->heads_s ? "--heads"
                            : to->seed_s ? "--seed" : to->compare ? "--compare" : to->sizes_s ? "--sizes" : NULL;
        if (other)
            return fail(RC_USAGE, other, "does not go with --check-file");
        return RC_OK;
    }
    if (to->compare) {
        const char *other = to->out ? "--out" : to->quick ? "--quick" : to->size_s ? "--size" : NULL;
        if (other)
            return fail(RC_USAGE, other, "does not go with --compare (use --sizes)");
        if (parse_int_list("--sizes", to->sizes_s ? to->sizes_s : "512,1024,2048", to->sizes, TUNE_MAX_SIZES,
                           &to->nsizes) != RC_OK)
            return RC_USAGE;
        for (int i = 0; i < to->nsizes; i++)
            if (to->sizes[i] < 1 || to->sizes[i] > 65536)
                return fail(RC_USAGE, "--sizes", "%lld is outside 1..65536", (long long)to->sizes[i]);
    } else if (to->sizes_s) {
        return fail(RC_USAGE, "--sizes", "goes with --compare only (a search uses one --size)");
    }
    if (parse_variant_list("--variants", to->variants_s, to->quick || to->compare ? "tiled,flash" : "tiled,flash,naive", to->variants,
                           TUNE_MAX_VARIANTS,
                           &to->nvariants) != RC_OK)
        return RC_USAGE;
    for (int i = 0; i < to->nvariants; i++) {
        const clattn_variant v = to->variants[i];
        if (v == CLATTN_VARIANT_AUTO)
            return fail(RC_USAGE, "--variants", "name the variants to tune (tiled, flash, naive), not auto");
        if (v == CLATTN_VARIANT_GEMM)
            return fail(RC_USAGE, "--variants", "gemm has no launch parameters to tune (CLBlast tunes its own GEMMs)");
        if (v == CLATTN_VARIANT_DECODE)
            return fail(RC_USAGE, "--variants",
                        "decode is not tuned: it keeps the built-in table (flash's entries, measured on long query "
                        "blocks, would waste work on a few query rows)");
    }
    if (parse_int_list("--dim", to->dims_s ? to->dims_s : "64,128", to->dims, TUNE_MAX_DIMS, &to->ndims) != RC_OK)
        return RC_USAGE;
    for (int i = 0; i < to->ndims; i++) {
        if (to->dims[i] < 1 || to->dims[i] > CLATTN_MAX_HEAD_DIM)
            return fail(RC_USAGE, "--dim", "%lld is outside 1..%d", (long long)to->dims[i], CLATTN_MAX_HEAD_DIM);
        for (int j = 0; j < i; j++)
            if (to->dims[j] == to->dims[i])
                return fail(RC_USAGE, "--dim", "%lld is listed twice", (long long)to->dims[i]);
    }
    to->N = to->quick ? 512 : 1024;
    to->H = 8;
    if (to->size_s) {
        if (parse_i64("--size", to->size_s, &to->N) != RC_OK)
            return RC_USAGE;
        if (to->N < 1 || to->N > 65536)
            return fail(RC_USAGE, "--size", "'%s' is outside 1..65536", to->size_s);
    }
    if (to->heads_s) {
        if (parse_i64("--heads", to->heads_s, &to->H) != RC_OK)
            return RC_USAGE;
        if (to->H < 1 || to->H > 1024)
            return fail(RC_USAGE, "--heads", "'%s' is outside 1..1024", to->heads_s);
    }
    to->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (to->seed_s) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(to->seed_s, &end, 10);
        if (end == to->seed_s || *end || *to->seed_s < '0' || *to->seed_s > '9' || errno == ERANGE)
            return fail(RC_USAGE, "--seed", "'%s' is not an unsigned 64-bit integer", to->seed_s);
        to->seed = (uint64_t)s;
    }
    if (to->compare) {
        /* nothing is written */
    } else if (to->out) {
        if (strcmp(to->out, "-") != 0 && check_out_path("--out", to->out) != RC_OK)
            return RC_USAGE;
        snprintf(to->out_path, sizeof to->out_path, "%s", to->out);
    } else {
        clattn_status st = clattn_tuning_file_path(to->out_path, sizeof to->out_path);
        if (st != CLATTN_SUCCESS)
            return fail(RC_USAGE, "--out", "no default tuning file (CLATTN_TUNING_FILE=off, or no cache directory: "
                                           "set CLATTN_CACHE_DIR or HOME); name one with --out");
        to->out_default = 1;
    }
    if (to->compare) {
        to->final_rounds = 6, to->final_reps = 2;
    } else if (to->quick) {
        to->max_rounds = 2, to->rounds = 3, to->reps = 2, to->final_rounds = 5, to->final_reps = 2, to->wide = 0;
    } else {
        to->max_rounds = 4, to->rounds = 3, to->reps = 3, to->final_rounds = 7, to->final_reps = 3, to->wide = 1;
    }
    return RC_OK;
}

/* ------------------------------------------------------------------------ */
/* inputs of one head dim and the reference of its sampled rows             */
/* ------------------------------------------------------------------------ */

static void inputs_release(tune_inputs *in)
{
    cl_mem all[] = {in->mq, in->mk, in->mv, in->mo};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    free(in->q);
    free(in->k);
    free(in->v);
    free(in->host_o);
    free(in->ref_o);
    free(in->ref_lse);
    free(in->dev_o);
    memset(in, 0, sizeof *in);
}

static int inputs_make(const tune_opts *to, tune_state *ts, int64_t D, tune_inputs *in)
{
    const int64_t N = to->N, H = to->H;
    uint64_t rng = to->seed ^ ((uint64_t)D * 0x9e3779b97f4a7c15ull);
    cl_int err;
    memset(in, 0, sizeof *in);
    in->D = D;
    in->nq = (size_t)(H * N * D);
    in->q = malloc(in->nq * sizeof(float));
    in->k = malloc(in->nq * sizeof(float));
    in->v = malloc(in->nq * sizeof(float));
    in->host_o = malloc(in->nq * sizeof(float));
    /* Verified rows: the first, a middle and the last block of 8 of every head
     * (all rows of a short problem). */
    if (N <= 24) {
        in->nblocks = 1, in->starts[0] = 0, in->lens[0] = N;
    } else {
        in->nblocks = 3;
        in->starts[0] = 0, in->starts[1] = N / 2 - 4, in->starts[2] = N - 8;
        in->lens[0] = in->lens[1] = in->lens[2] = 8;
    }
    in->rows = 0;
    for (int b = 0; b < in->nblocks; b++)
        in->rows += in->lens[b];
    in->ref_o = malloc((size_t)(H * in->rows * D) * sizeof(float));
    in->ref_lse = malloc((size_t)(H * in->rows) * sizeof(float));
    in->dev_o = malloc((size_t)(H * in->rows * D) * sizeof(float));
    if (!in->q || !in->k || !in->v || !in->host_o || !in->ref_o || !in->ref_lse || !in->dev_o)
        return fail(RC_DEVICE, "tune", "out of host memory for D = %lld", (long long)D);
    for (size_t i = 0; i < in->nq; i++) {
        in->q[i] = (float)((double)(splitmix64(&rng) >> 40) * (2.0 / 16777216.0) - 1.0);
        in->k[i] = (float)((double)(splitmix64(&rng) >> 40) * (2.0 / 16777216.0) - 1.0);
        in->v[i] = (float)((double)(splitmix64(&rng) >> 40) * (2.0 / 16777216.0) - 1.0);
    }
    float *src[3] = {in->q, in->k, in->v};
    cl_mem *dst[3] = {&in->mq, &in->mk, &in->mv};
    for (int t = 0; t < 3; t++) {
        *dst[t] = clCreateBuffer(ts->clctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, in->nq * sizeof(float), src[t],
                                 &err);
        if (err != CL_SUCCESS) {
            *dst[t] = NULL;
            return cl_fail(err, "tune", "creating an input buffer failed");
        }
    }
    in->mo = clCreateBuffer(ts->clctx, CL_MEM_READ_WRITE, in->nq * sizeof(float), NULL, &err);
    if (err != CL_SUCCESS) {
        in->mo = NULL;
        return cl_fail(err, "tune", "creating the output buffer failed");
    }
    for (int64_t b = 0, at = 0; b < in->nblocks; at += in->lens[b], b++) {
        int rc = sample_reference("tune", CLATTN_F32, H, H, N, D, in->q, in->k, in->v, 0, in->starts[b], in->lens[b],
                                  in->ref_o, in->ref_lse, in->rows, at);
        if (rc != RC_OK)
            return rc;
    }
    return RC_OK;
}

static clattn_args make_args(const tune_opts *to, const tune_inputs *in)
{
    clattn_args a;
    memset(&a, 0, sizeof a);
    a.q = clattn_tensor_make(in->mq, 0, CLATTN_F32, 1, to->H, to->N, in->D);
    a.k = clattn_tensor_make(in->mk, 0, CLATTN_F32, 1, to->H, to->N, in->D);
    a.v = clattn_tensor_make(in->mv, 0, CLATTN_F32, 1, to->H, to->N, in->D);
    a.o = clattn_tensor_make(in->mo, 0, CLATTN_F32, 1, to->H, to->N, in->D);
    return a;
}

/* ------------------------------------------------------------------------ */
/* one candidate: plan, verify, time                                        */
/* ------------------------------------------------------------------------ */

/* Run the plan once on a poisoned output and compare the sampled rows with
 * the reference; *ok is 1 when they pass the f32 rule, *err the max error. */
static int verify_plan(const tune_opts *to, tune_state *ts, tune_inputs *in, clattn_plan *plan, int *ok, double *err)
{
    const clattn_args a = make_args(to, in);
    const int64_t N = to->N, D = in->D;
    cl_event ev = NULL;
    cl_int cerr;
    clattn_status st;
    memset(in->host_o, 0xFF, in->nq * sizeof(float)); /* NaN: an unwritten element cannot pass */
    cerr = clEnqueueWriteBuffer(ts->queue, in->mo, CL_TRUE, 0, in->nq * sizeof(float), in->host_o, 0, NULL, NULL);
    if (cerr != CL_SUCCESS)
        return cl_fail(cerr, "tune", "poisoning the output failed");
    st = clattn_plan_run(plan, &a, NULL, 0, NULL, &ev);
    if (st != CLATTN_SUCCESS)
        return lib_fail(st, 0, "tune", clattn_context_last_error(ts->ctx));
    cerr = clWaitForEvents(1, &ev);
    clReleaseEvent(ev);
    if (cerr == CL_SUCCESS)
        cerr = clEnqueueReadBuffer(ts->queue, in->mo, CL_TRUE, 0, in->nq * sizeof(float), in->host_o, 0, NULL, NULL);
    if (cerr != CL_SUCCESS)
        return cl_fail(cerr, "tune", "running or reading back the output failed");
    size_t k = 0;
    for (int64_t h = 0; h < to->H; h++)
        for (int b = 0; b < in->nblocks; b++)
            for (int64_t r = 0; r < in->lens[b]; r++, k++)
                memcpy(in->dev_o + k * (size_t)D, in->host_o + (size_t)((h * N + in->starts[b] + r) * D),
                       (size_t)D * sizeof(float));
    double atol, rtol, max_nmse;
    clattn_tolerance(CLATTN_F32, &atol, &rtol, &max_nmse);
    clattn_compare_result cr = clattn_compare_f32(in->dev_o, in->ref_o, k * (size_t)D);
    *ok = clattn_compare_ok(&cr, atol, rtol, max_nmse);
    *err = cr.nonfinite_mismatch ? INFINITY : cr.max_abs_err;
    return RC_OK;
}

/*
 * Time the plans interleaved: `rounds` rounds, each running every plan `reps`
 * times (in alternating order), so that a change in the machine's load
 * touches all of them alike; med[i] is the median of plan i's runs.
 */
static int time_batch(const tune_opts *to, tune_state *ts, tune_inputs *in, clattn_plan **plans, int n, int rounds,
                      int reps, double *med)
{
    const clattn_args a = make_args(to, in);
    double *samples = malloc((size_t)(n * rounds * reps) * sizeof(double));
    int rc = RC_OK;
    if (!samples)
        return fail(RC_DEVICE, "tune", "out of host memory");
    /* one warm-up run of each */
    for (int i = 0; i < n && rc == RC_OK; i++)
        rc = time_plan_runs(ts->ctx, "tune", plans[i], &a, 1, samples);
    for (int r = 0; r < rounds && rc == RC_OK; r++)
        for (int j = 0; j < n && rc == RC_OK; j++) {
            const int i = r % 2 ? n - 1 - j : j;
            rc = time_plan_runs(ts->ctx, "tune", plans[i], &a, reps, samples + (size_t)(i * rounds * reps + r * reps));
        }
    for (int i = 0; i < n && rc == RC_OK; i++)
        med[i] = median_sorted(samples + (size_t)(i * rounds * reps), rounds * reps);
    free(samples);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the search                                                               */
/* ------------------------------------------------------------------------ */

static int is_tile(clattn_variant v)
{
    return v == CLATTN_VARIANT_TILED || v == CLATTN_VARIANT_FLASH;
}

static int same_params(const clattn_launch_params *a, const clattn_launch_params *b)
{
    return a->block_m == b->block_m && a->block_n == b->block_n && a->rows == b->rows && a->tpr == b->tpr &&
           a->vec == b->vec && a->wg == b->wg && a->splits == b->splits;
}

static void params_str(clattn_variant v, const clattn_launch_params *p, char *buf, size_t n)
{
    if (is_tile(v))
        snprintf(buf, n, "block_m=%d block_n=%d rows=%d tpr=%d vec=%d (wg %d)", p->block_m, p->block_n, p->rows,
                 p->tpr, p->vec, p->rows ? p->block_m / p->rows * p->tpr : 0);
    else
        snprintf(buf, n, "wg=%d", p->wg);
}

/* A step: multiply each field by num/den (1/1 = keep); vec_flip toggles vec. */
typedef struct step {
    int bm_num, bm_den, bn_num, bn_den, rows_num, rows_den, tpr_num, tpr_den, vec_flip;
} step;

static int scale_field(int x, int num, int den, int *out)
{
    if (den == 0 || num == 0 || (long)x * num % den != 0)
        return 0;
    *out = (int)((long)x * num / den);
    return *out >= 1;
}

/* The neighbours of cur not seen yet (and marked seen now). */
static int neighbours(const tune_opts *to, clattn_variant v, int64_t D, const clattn_launch_params *cur,
                      clattn_launch_params *seen, int *nseen, clattn_launch_params *out, int max)
{
    static const step narrow[] = {
        {2, 1, 1, 1, 1, 1, 1, 1, 0}, {1, 2, 1, 1, 1, 1, 1, 1, 0}, /* block_m */
        {1, 1, 2, 1, 1, 1, 1, 1, 0}, {1, 1, 1, 2, 1, 1, 1, 1, 0}, /* block_n */
        {1, 1, 1, 1, 2, 1, 1, 1, 0}, {1, 1, 1, 1, 1, 2, 1, 1, 0}, /* rows */
        {2, 1, 1, 1, 2, 1, 1, 1, 0}, {1, 2, 1, 1, 1, 2, 1, 1, 0}, /* rows with block_m: same work-group */
        {1, 1, 1, 1, 1, 1, 2, 1, 0}, {1, 1, 1, 1, 1, 1, 1, 2, 0}, /* tpr */
        {1, 1, 1, 1, 1, 1, 1, 1, 1},                              /* vec */
    };
    static const step wide[] = {
        {4, 1, 1, 1, 1, 1, 1, 1, 0}, {1, 4, 1, 1, 1, 1, 1, 1, 0}, {1, 1, 4, 1, 1, 1, 1, 1, 0},
        {1, 1, 1, 4, 1, 1, 1, 1, 0}, {1, 2, 1, 1, 1, 1, 2, 1, 0}, {2, 1, 1, 1, 1, 1, 1, 2, 0},
    };
    int n = 0;
    clattn_launch_params c[2 * (sizeof narrow / sizeof narrow[0] + sizeof wide / sizeof wide[0])];
    int nc = 0;
    if (is_tile(v)) {
        for (int w = 0; w < (to->wide ? 2 : 1); w++) {
            const step *s = w ? wide : narrow;
            const size_t ns = w ? sizeof wide / sizeof wide[0] : sizeof narrow / sizeof narrow[0];
            for (size_t i = 0; i < ns; i++) {
                clattn_launch_params p = *cur;
                if (!scale_field(cur->block_m, s[i].bm_num, s[i].bm_den, &p.block_m) ||
                    !scale_field(cur->block_n, s[i].bn_num, s[i].bn_den, &p.block_n) ||
                    !scale_field(cur->rows, s[i].rows_num, s[i].rows_den, &p.rows) ||
                    !scale_field(cur->tpr, s[i].tpr_num, s[i].tpr_den, &p.tpr))
                    continue;
                if (s[i].vec_flip) {
                    if (D % 4 != 0)
                        continue;
                    p.vec = cur->vec == 4 ? 1 : 4;
                }
                if (p.block_m % p.rows != 0 || p.block_m > 1024 || p.block_n > 1024 || p.rows > CLATTN_MAX_ROWS || p.tpr > 256)
                    continue;
                c[nc++] = p;
            }
        }
    } else {
        const int mul[] = {2, -2, 4, -4};
        for (int i = 0; i < (to->wide ? 4 : 2); i++) {
            clattn_launch_params p = *cur;
            if (mul[i] > 0)
                p.wg = cur->wg * mul[i];
            else if (cur->wg % -mul[i] == 0)
                p.wg = cur->wg / -mul[i];
            else
                continue;
            if (p.wg < 1 || p.wg > 4096)
                continue;
            c[nc++] = p;
        }
    }
    for (int i = 0; i < nc && n < max; i++) {
        int dup = 0;
        for (int j = 0; j < *nseen && !dup; j++)
            dup = same_params(&c[i], &seen[j]);
        if (dup)
            continue;
        if (*nseen < TUNE_MAX_VISITED)
            seen[(*nseen)++] = c[i];
        out[n++] = c[i];
    }
    return n;
}

static void progress(const tune_state *ts, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void progress(const tune_state *ts, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "clattn tune [%5.1f s] ", (now_ms() - ts->t0) / 1000.0);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static double group_flops(const tune_opts *to, int64_t D)
{
    return 4.0 * (double)D * (double)to->H * (double)to->N * (double)to->N;
}

/* Make and verify a candidate's plan; *plan stays NULL when the candidate is
 * pruned, rejected or wrong (counted in r). Device errors return their code. */
static int make_candidate(const tune_opts *to, tune_state *ts, tune_inputs *in, tune_result *r,
                          const clattn_launch_params *p, clattn_plan **plan)
{
    clattn_attention_desc d;
    const clattn_args a = make_args(to, in);
    char ps[160];
    int ok = 0, rc;
    double err = 0;
    memset(&d, 0, sizeof d);
    d.variant = r->variant;
    *plan = NULL;
    r->tried++;
    params_str(r->variant, p, ps, sizeof ps);
    clattn_status st = clattn_plan_create_with_params(ts->ctx, &d, &a, p, plan);
    if (st == CLATTN_ERROR_INVALID_PARAMS) { /* beyond the device's limits: nothing was built */
        r->pruned++;
        return RC_OK;
    }
    if (st == CLATTN_ERROR_BUILD || st == CLATTN_ERROR_DEVICE_LIMIT || st == CLATTN_CL_OUT_OF_RESOURCES ||
        st == CLATTN_CL_MEM_OBJECT_ALLOCATION_FAILURE || st == CLATTN_CL_BUILD_PROGRAM_FAILURE) {
        progress(ts, "%s D=%lld: %s rejected: %s", clattn_variant_name(r->variant), (long long)r->D, ps,
                 clattn_status_name(st));
        r->rejected++;
        *plan = NULL;
        return RC_OK;
    }
    if (st != CLATTN_SUCCESS)
        return lib_fail(st, 0, "tune", clattn_context_last_error(ts->ctx));
    rc = verify_plan(to, ts, in, *plan, &ok, &err);
    if (rc == RC_OK && !ok) {
        /* a wrong result is a bug in a kernel, not a slow candidate: say so loudly */
        fprintf(stderr, "clattn: error: tune: %s D=%lld with %s differs from the CPU reference (max error %.3g)\n",
                clattn_variant_name(r->variant), (long long)r->D, ps, err);
        r->failed++;
        ts->any_failed = 1;
    }
    if (rc != RC_OK || !ok) {
        clattn_plan_free(*plan);
        *plan = NULL;
    }
    return rc;
}

static int tune_group(const tune_opts *to, tune_state *ts, tune_inputs *in, tune_result *r)
{
    clattn_plan *dflt = NULL, *cur_plan = NULL;
    clattn_launch_params cur, seen[TUNE_MAX_VISITED], next[TUNE_MAX_CANDS];
    cand cands[TUNE_MAX_CANDS];
    clattn_plan *batch[TUNE_MAX_CANDS + 2];
    double med[TUNE_MAX_CANDS + 2];
    char ps[160];
    int nseen = 0, rc = RC_OK, ok = 0;
    double err = 0;
    clattn_attention_desc d;
    const clattn_args a = make_args(to, in);
    memset(&d, 0, sizeof d);
    d.variant = r->variant;

    /* the scheduler's default for this problem (built-in table: the tuning file is off here) */
    clattn_status st = clattn_plan_create(ts->ctx, &d, &a, &dflt);
    if (st == CLATTN_ERROR_UNSUPPORTED || st == CLATTN_ERROR_NO_VARIANT || st == CLATTN_ERROR_DEVICE_LIMIT) {
        r->skipped = 1;
        snprintf(r->reason, sizeof r->reason, "%s", clattn_context_last_error(ts->ctx));
        progress(ts, "%s D=%lld: skipped: %s", clattn_variant_name(r->variant), (long long)r->D, r->reason);
        return RC_OK;
    }
    if (st != CLATTN_SUCCESS)
        return lib_fail(st, 0, "tune", clattn_context_last_error(ts->ctx));
    clattn_plan_launch_params(dflt, &r->dflt);
    rc = verify_plan(to, ts, in, dflt, &ok, &err);
    if (rc != RC_OK)
        goto cleanup;
    if (!ok) {
        fprintf(stderr, "clattn: error: tune: %s D=%lld: the default parameters differ from the CPU reference "
                        "(max error %.3g)\n", clattn_variant_name(r->variant), (long long)r->D, err);
        ts->any_failed = 1;
        r->failed++;
        goto cleanup;
    }
    cur = r->dflt;
    seen[nseen++] = cur;
    params_str(r->variant, &cur, ps, sizeof ps);
    progress(ts, "%s D=%lld: default %s", clattn_variant_name(r->variant), (long long)r->D, ps);

    for (int step = 0; step < to->max_rounds; step++) {
        int n = neighbours(to, r->variant, r->D, &cur, seen, &nseen, next, TUNE_MAX_CANDS), nc = 0, nb = 0;
        for (int i = 0; i < n && rc == RC_OK; i++) {
            clattn_plan *p = NULL;
            rc = make_candidate(to, ts, in, r, &next[i], &p);
            if (p) {
                cands[nc].p = next[i];
                cands[nc].plan = p;
                nc++;
            }
        }
        if (rc != RC_OK || nc == 0) {
            for (int i = 0; i < nc; i++)
                clattn_plan_free(cands[i].plan);
            break;
        }
        batch[nb++] = dflt;
        if (cur_plan)
            batch[nb++] = cur_plan;
        for (int i = 0; i < nc; i++)
            batch[nb++] = cands[i].plan;
        rc = time_batch(to, ts, in, batch, nb, to->rounds, to->reps, med);
        int best = -1;
        if (rc == RC_OK) {
            const double cur_med = cur_plan ? med[1] : med[0];
            for (int i = 0; i < nc; i++) {
                cands[i].med = med[nb - nc + i];
                if (best < 0 || cands[i].med < cands[best].med)
                    best = i;
            }
            params_str(r->variant, &cands[best].p, ps, sizeof ps);
            progress(ts, "%s D=%lld: step %d: %d candidates built and verified (%d beyond the device's limits so "
                         "far); best %s at %.2fx the default (current %.2fx)",
                     clattn_variant_name(r->variant), (long long)r->D, step + 1, nc, r->pruned, ps,
                     med[0] / cands[best].med, med[0] / cur_med);
            if (cands[best].med < cur_med * (1.0 - TUNE_MIN_GAIN)) {
                clattn_plan_free(cur_plan);
                cur_plan = cands[best].plan;
                cands[best].plan = NULL;
                cur = cands[best].p;
                r->steps++;
            } else {
                best = -1;
            }
        }
        for (int i = 0; i < nc; i++)
            clattn_plan_free(cands[i].plan);
        if (rc != RC_OK || best < 0)
            break;
    }
    if (rc != RC_OK)
        goto cleanup;

    /* Head-to-head of the winner and the default, longer than a search batch. */
    {
        const double flops = group_flops(to, r->D);
        clattn_plan *final[2] = {dflt, cur_plan};
        rc = time_batch(to, ts, in, final, cur_plan ? 2 : 1, to->final_rounds, to->final_reps, med);
        if (rc != RC_OK)
            goto cleanup;
        r->g_default = flops / (med[0] * 1e6);
        r->g_best = cur_plan ? flops / (med[1] * 1e6) : r->g_default;
        r->best = cur;
        r->written = cur_plan && r->g_best >= r->g_default ? cur : r->dflt;
        params_str(r->variant, &r->written, ps, sizeof ps);
        progress(ts, "%s D=%lld: default %.2f GFLOP/s, best %.2f GFLOP/s (%.2fx): writing %s%s",
                 clattn_variant_name(r->variant), (long long)r->D, r->g_default, r->g_best, r->g_best / r->g_default, ps,
                 same_params(&r->written, &r->dflt) ? " (the default)" : "");
    }
cleanup:
    clattn_plan_free(cur_plan);
    clattn_plan_free(dflt);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* write: the tuning file, merged with the entries it already holds         */
/* ------------------------------------------------------------------------ */

/* Skip a JSON string starting at s[i] == '"'; returns the index after it. */
static size_t skip_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\')
            i++;
    return i < n ? i + 1 : n;
}

/* The string value of "key" at the top level of the object text o[0..n). */
static int obj_str(const char *o, size_t n, const char *key, char *out, size_t outn)
{
    int depth = 0;
    const size_t kl = strlen(key);
    for (size_t i = 0; i < n;) {
        if (o[i] == '"') {
            const size_t end = skip_string(o, i, n);
            size_t j = end;
            while (j < n && (o[j] == ' ' || o[j] == '\n' || o[j] == '\r' || o[j] == '\t'))
                j++;
            if (depth == 1 && j < n && o[j] == ':' && end - i - 2 == kl && !strncmp(o + i + 1, key, kl)) {
                j++;
                while (j < n && (o[j] == ' ' || o[j] == '\n' || o[j] == '\r' || o[j] == '\t'))
                    j++;
                if (j < n && o[j] == '"') {
                    const size_t e = skip_string(o, j, n);
                    size_t len = 0;
                    for (size_t k = j + 1; k + 1 < e && len + 1 < outn; k++) {
                        if (o[k] == '\\')
                            k++;
                        out[len++] = o[k];
                    }
                    out[len] = '\0';
                    return 1;
                }
                /* a number: copy its text */
                size_t len = 0;
                while (j < n && len + 1 < outn && strchr("+-0123456789.eE", o[j]))
                    out[len++] = o[j++];
                out[len] = '\0';
                return len > 0;
            }
            i = end;
            continue;
        }
        if (o[i] == '{' || o[i] == '[')
            depth++;
        else if (o[i] == '}' || o[i] == ']')
            depth--;
        i++;
    }
    return 0;
}

/*
 * The raw text of each entry of an existing tuning file that the new results
 * do not replace (another device or driver, or a (variant, d_max) not tuned
 * now), appended to keep/nkeep. The file has passed clattn_tuning_file_load(),
 * so it is well-formed JSON.
 */
static int keep_old_entries(const tune_state *ts, const char *path, char **keep_out, int *nkeep)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL, *keep = NULL;
    size_t n = 0, kn = 0;
    long size;
    *keep_out = NULL;
    *nkeep = 0;
    if (!f)
        return RC_OK;
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
        !(buf = malloc((size_t)size + 1)) || !(keep = malloc(2 * (size_t)size + 1)) ||
        fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(buf);
        free(keep);
        return fail(RC_DEVICE, "--out", "could not read the existing '%s'", path);
    }
    fclose(f);
    n = (size_t)size;
    buf[n] = '\0';
    keep[0] = '\0';
    /* find "entries" at depth 1, then each object at depth 2 inside its array */
    int depth = 0, in_entries = 0;
    for (size_t i = 0; i < n;) {
        if (buf[i] == '"') {
            const size_t end = skip_string(buf, i, n);
            size_t j = end;
            while (j < n && (buf[j] == ' ' || buf[j] == '\n' || buf[j] == '\r' || buf[j] == '\t'))
                j++;
            if (depth == 1 && j < n && buf[j] == ':' && end - i - 2 == 7 && !strncmp(buf + i + 1, "entries", 7))
                in_entries = 1; /* the key, not a value that happens to read "entries" */
            i = end;
            continue;
        }
        if (buf[i] == '{' && depth == 2 && in_entries) {
            size_t j = i + 1;
            int d = 1;
            while (j < n && d > 0) {
                if (buf[j] == '"') {
                    j = skip_string(buf, j, n);
                    continue;
                }
                d += buf[j] == '{' || buf[j] == '[';
                d -= buf[j] == '}' || buf[j] == ']';
                j++;
            }
            char dev[256] = "", drv[128] = "", var[32] = "", dmax[32] = "";
            obj_str(buf + i, j - i, "device", dev, sizeof dev);
            obj_str(buf + i, j - i, "driver", drv, sizeof drv);
            obj_str(buf + i, j - i, "variant", var, sizeof var);
            obj_str(buf + i, j - i, "d_max", dmax, sizeof dmax);
            int replaced = 0;
            if (!strcmp(dev, ts->device) && !strcmp(drv, ts->driver))
                for (int k = 0; k < ts->nres && !replaced; k++)
                    replaced = !ts->res[k].skipped && !strcmp(var, clattn_variant_name(ts->res[k].variant)) &&
                               atoll(dmax) == (long long)ts->res[k].D;
            if (!replaced) {
                memcpy(keep + kn, buf + i, j - i);
                kn += j - i;
                keep[kn++] = '\0';
                (*nkeep)++;
            }
            i = j;
            continue;
        }
        if (buf[i] == '{' || buf[i] == '[')
            depth++;
        else if (buf[i] == '}' || buf[i] == ']') {
            depth--;
            if (depth == 1)
                in_entries = 0;
        }
        i++;
    }
    free(buf);
    *keep_out = keep;
    return RC_OK;
}

static void write_entry(FILE *f, const tune_opts *to, const tune_state *ts, const tune_result *r, const char *date)
{
    const clattn_launch_params *p = &r->written;
    fputs("  {\"device\": ", f);
    json_str(f, ts->device);
    fputs(", \"driver\": ", f);
    json_str(f, ts->driver);
    fprintf(f, ", \"variant\": \"%s\", \"d_max\": %lld", clattn_variant_name(r->variant), (long long)r->D);
    if (is_tile(r->variant))
        fprintf(f, ", \"block_m\": %d, \"block_n\": %d, \"rows\": %d, \"tpr\": %d, \"vec\": %d", p->block_m,
                p->block_n, p->rows, p->tpr, p->vec);
    else
        fprintf(f, ", \"wg\": %d", p->wg);
    fprintf(f, ",\n   \"source\": \"%s\", \"gflops\": ", same_params(p, &r->dflt) ? "default" : "tuned");
    json_num(f, same_params(p, &r->dflt) ? r->g_default : r->g_best);
    fputs(", \"default_gflops\": ", f);
    json_num(f, r->g_default);
    fprintf(f, ", \"problem\": \"B=1 H=%lld N=%lld D=%lld f32 non-causal\", \"quick\": %s, \"date\": \"%s\"}",
            (long long)to->H, (long long)to->N, (long long)r->D, to->quick ? "true" : "false", date);
}

/* mkdir -p for the default location (the cache directory may not exist yet). */
static int make_parent_dirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return RC_OK;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            (void)mkdir(buf, 0700);
            *p = '/';
        }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return fail(RC_USAGE, "--out", "cannot create the directory '%s': %s", buf, strerror(errno));
    return RC_OK;
}

static int write_tuning_file(const tune_opts *to, tune_state *ts)
{
    char *keep = NULL, date[32];
    int nkeep = 0, rc = RC_OK, first = 1;
    time_t now = time(NULL);
    struct tm tmv;
    out_file o;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
    if (strcmp(to->out_path, "-") != 0) {
        int applicable = 0;
        clattn_status st = clattn_tuning_file_load(ts->ctx, to->out_path, &applicable);
        if (st == CLATTN_SUCCESS)
            rc = keep_old_entries(ts, to->out_path, &keep, &nkeep);
        else if (st != CLATTN_ERROR_IO)
            fprintf(stderr, "clattn: warning: --out: the existing file is not a valid tuning file, replacing it: %s\n",
                    clattn_context_last_error(ts->ctx));
        if (rc == RC_OK && to->out_default)
            rc = make_parent_dirs(to->out_path);
    }
    if (rc == RC_OK)
        rc = out_open("--out", to->out_path, &o);
    if (rc != RC_OK) {
        free(keep);
        return rc;
    }
    fprintf(o.f, "{\"format\": 1,\n \"generator\": \"clattn tune %d.%d.%d\",\n \"entries\": [", CLATTN_VERSION_MAJOR,
            CLATTN_VERSION_MINOR, CLATTN_VERSION_PATCH);
    for (int i = 0; i < ts->nres; i++) {
        if (ts->res[i].skipped)
            continue;
        fputs(first ? "\n" : ",\n", o.f);
        first = 0;
        write_entry(o.f, to, ts, &ts->res[i], date);
    }
    for (int i = 0, at = 0; i < nkeep; i++) {
        fputs(first ? "\n  " : ",\n  ", o.f);
        first = 0;
        fputs(keep + at, o.f);
        at += (int)strlen(keep + at) + 1;
    }
    fputs(first ? "]}\n" : "\n ]}\n", o.f);
    free(keep);
    rc = out_close("--out", &o, 1);
    if (rc == RC_OK && strcmp(to->out_path, "-") != 0) {
        /* what the scheduler will see: the file must load and name this device */
        int applicable = 0;
        clattn_status st = clattn_tuning_file_load(ts->ctx, to->out_path, &applicable);
        if (st != CLATTN_SUCCESS)
            return lib_fail(st, 0, "--out", clattn_context_last_error(ts->ctx));
        fprintf(stderr, "clattn tune: wrote %s (%d entries for this device%s)\n", to->out_path, applicable,
                nkeep ? ", other entries kept" : "");
    }
    return rc;
}

static void print_table(FILE *f, const tune_opts *to, const tune_state *ts)
{
    fprintf(f, "device: %s (driver %s)\n", ts->device, ts->driver);
    fprintf(f, "problem: B=1 H=%lld N=%lld f32 non-causal, seed %llu; GFLOP/s from medians of a final interleaved "
               "head-to-head (%d x %d runs each)\n\n",
            (long long)to->H, (long long)to->N, (unsigned long long)to->seed, to->final_rounds, to->final_reps);
    fprintf(f, "%-7s %4s %6s %6s %6s %6s %12s %12s %6s  %s\n", "variant", "D", "tried", "pruned", "failed", "steps",
            "default_GF/s", "tuned_GF/s", "ratio", "written");
    for (int i = 0; i < ts->nres; i++) {
        const tune_result *r = &ts->res[i];
        char ps[160];
        if (r->skipped) {
            fprintf(f, "%-7s %4lld  skipped: %s\n", clattn_variant_name(r->variant), (long long)r->D, r->reason);
            continue;
        }
        params_str(r->variant, &r->written, ps, sizeof ps);
        fprintf(f, "%-7s %4lld %6d %6d %6d %6d %12.2f %12.2f %6.2f  %s%s\n", clattn_variant_name(r->variant),
                (long long)r->D, r->tried, r->pruned, r->failed, r->steps, r->g_default, r->g_best,
                r->g_default > 0 ? r->g_best / r->g_default : 0.0, ps,
                same_params(&r->written, &r->dflt) ? " (default)" : "");
    }
}

/* ------------------------------------------------------------------------ */
/* clattn tune                                                              */
/* ------------------------------------------------------------------------ */

/* A plan of variant for the inputs with the tuning file set to file ("off": the built-in table). */
static clattn_status plan_with_file(const tune_opts *to, tune_state *ts, tune_inputs *in, clattn_variant variant,
                                    const char *file, clattn_plan **plan)
{
    clattn_attention_desc d;
    const clattn_args a = make_args(to, in);
    clattn_status st;
    memset(&d, 0, sizeof d);
    d.variant = variant;
    setenv("CLATTN_TUNING_FILE", file, 1);
    st = clattn_plan_create(ts->ctx, &d, &a, plan);
    setenv("CLATTN_TUNING_FILE", "off", 1);
    return st;
}

/*
 * --compare FILE: the built-in table against FILE's entries, both planned in
 * this process and timed interleaved, on every (dim, size, variant): the
 * before/after of a tuning file, away from the problem it was tuned on.
 */
static int compare_file(tune_opts *to, tune_state *ts)
{
    tune_inputs in;
    int applicable = 0, rc = RC_OK;
    clattn_status st = clattn_tuning_file_load(ts->ctx, to->compare, &applicable);
    memset(&in, 0, sizeof in);
    if (st != CLATTN_SUCCESS)
        return lib_fail(st, 0, "--compare", clattn_context_last_error(ts->ctx));
    if (applicable == 0)
        fprintf(stderr, "clattn: warning: --compare: no entry of '%s' applies to this device; both sides run the "
                        "built-in table\n", to->compare);
    printf("device: %s (driver %s)\n", ts->device, ts->driver);
    printf("B=1 H=%lld Nq = Nk = N f32 non-causal, seed %llu; built-in table against %s, both planned in one process "
           "and timed interleaved (%d x %d runs each, medians)\n\n",
           (long long)to->H, (unsigned long long)to->seed, to->compare, to->final_rounds, to->final_reps);
    printf("%-7s %4s %6s %12s %12s %6s  %-52s %s\n", "variant", "D", "N", "builtin_GF/s", "file_GF/s", "ratio",
           "built-in", "from the file");
    for (int di = 0; di < to->ndims && rc == RC_OK; di++)
        for (int si = 0; si < to->nsizes && rc == RC_OK; si++) {
            to->N = to->sizes[si];
            rc = inputs_make(to, ts, to->dims[di], &in);
            for (int vi = 0; vi < to->nvariants && rc == RC_OK; vi++) {
                const clattn_variant v = to->variants[vi];
                clattn_plan *pl[2] = {NULL, NULL};
                clattn_launch_params lp[2];
                char ps[2][160];
                double med[2], err = 0;
                int ok[2] = {0, 0};
                for (int k = 0; k < 2 && rc == RC_OK; k++) {
                    st = plan_with_file(to, ts, &in, v, k ? to->compare : "off", &pl[k]);
                    if (st == CLATTN_ERROR_UNSUPPORTED || st == CLATTN_ERROR_NO_VARIANT) {
                        printf("%-7s %4lld %6lld  skipped: %s\n", clattn_variant_name(v), (long long)in.D,
                               (long long)to->N, clattn_context_last_error(ts->ctx));
                        break;
                    }
                    if (st != CLATTN_SUCCESS)
                        rc = lib_fail(st, 0, "--compare", clattn_context_last_error(ts->ctx));
                    else
                        rc = verify_plan(to, ts, &in, pl[k], &ok[k], &err);
                    if (rc == RC_OK && !ok[k]) {
                        fprintf(stderr, "clattn: error: tune: %s D=%lld N=%lld (%s) differs from the CPU reference "
                                        "(max error %.3g)\n", clattn_variant_name(v), (long long)in.D,
                                (long long)to->N, k ? "file" : "built-in", err);
                        ts->any_failed = 1;
                    }
                }
                if (rc == RC_OK && pl[0] && pl[1] && ok[0] && ok[1])
                    rc = time_batch(to, ts, &in, pl, 2, to->final_rounds, to->final_reps, med);
                if (rc == RC_OK && pl[0] && pl[1] && ok[0] && ok[1]) {
                    const double flops = group_flops(to, in.D);
                    for (int k = 0; k < 2; k++) {
                        clattn_plan_launch_params(pl[k], &lp[k]);
                        params_str(v, &lp[k], ps[k], sizeof ps[k]);
                    }
                    printf("%-7s %4lld %6lld %12.2f %12.2f %6.2f  %-52s %s%s\n", clattn_variant_name(v),
                           (long long)in.D, (long long)to->N, flops / (med[0] * 1e6), flops / (med[1] * 1e6),
                           med[0] / med[1], ps[0], ps[1],
                           strstr(clattn_plan_params_json(pl[1]), "\"tuning\":\"tuning-file\"") ? ""
                                                                                                : " (no entry: table)");
                    fflush(stdout);
                    progress(ts, "%s D=%lld N=%lld: %.2fx", clattn_variant_name(v), (long long)in.D,
                             (long long)to->N, med[0] / med[1]);
                }
                clattn_plan_free(pl[0]);
                clattn_plan_free(pl[1]);
            }
            inputs_release(&in);
        }
    if (rc == RC_OK && ts->any_failed)
        rc = fail(RC_VERIFY, "tune", "a result differs from the CPU reference (see above)");
    return rc;
}

static int check_file(const tune_opts *to)
{
    clattn_context *ctx = NULL;
    int applicable = 0;
    int rc = open_context(to->device, &ctx);
    if (rc != RC_OK)
        return rc;
    clattn_status st = clattn_tuning_file_load(ctx, to->check_file, &applicable);
    if (st != CLATTN_SUCCESS)
        rc = lib_fail(st, 0, "--check-file", clattn_context_last_error(ctx));
    else
        printf("%s: a valid tuning file; %d entr%s for %s\n", to->check_file, applicable,
               applicable == 1 ? "y applies" : "ies apply", clattn_context_device_name(ctx));
    clattn_context_free(ctx);
    return rc;
}

int cmd_tune(int argc, char **argv)
{
    tune_opts to;
    tune_state ts;
    tune_inputs in;
    cl_device_id dev;
    memset(&to, 0, sizeof to);
    memset(&ts, 0, sizeof ts);
    memset(&in, 0, sizeof in);
    ts.t0 = now_ms();

    int rc = tune_parse(argc, argv, &to);
    if (rc != RC_OK)
        return rc == RC_HELP ? RC_OK : rc;
    if (to.check_file)
        return check_file(&to);
    /* Candidates are compared with the built-in table, not with whatever an
     * earlier tuning file or an override says. */
    {
        const char *env = getenv("CLATTN_PARAMS");
        if (env && *env)
            fprintf(stderr, "clattn tune: note: CLATTN_PARAMS is ignored while tuning\n");
        unsetenv("CLATTN_PARAMS");
        setenv("CLATTN_TUNING_FILE", "off", 1);
    }
    rc = open_context(to.device, &ts.ctx);
    if (rc != RC_OK)
        return rc;
    clattn_status st = clattn_context_cl(ts.ctx, &ts.clctx, &dev, &ts.queue);
    cl_int cerr = CL_SUCCESS;
    if (st == CLATTN_SUCCESS) {
        snprintf(ts.device, sizeof ts.device, "%s", clattn_context_device_name(ts.ctx));
        cerr = clGetDeviceInfo(dev, CL_DRIVER_VERSION, sizeof ts.driver - 1, ts.driver, NULL);
    }
    if (st != CLATTN_SUCCESS || cerr != CL_SUCCESS) {
        rc = st != CLATTN_SUCCESS ? lib_fail(st, 0, "device", clattn_context_last_error(ts.ctx))
                                  : cl_fail(cerr, "device", "clGetDeviceInfo(CL_DRIVER_VERSION) failed");
        goto cleanup;
    }
    ts.res = calloc((size_t)(to.ndims * to.nvariants), sizeof *ts.res);
    if (!ts.res) {
        rc = fail(RC_DEVICE, "tune", "out of host memory");
        goto cleanup;
    }
    if (to.compare) {
        rc = compare_file(&to, &ts);
        goto cleanup;
    }
    progress(&ts, "%s (driver %s): B=1 H=%lld N=%lld f32, seed %llu, %s search; output %s", ts.device, ts.driver,
             (long long)to.H, (long long)to.N, (unsigned long long)to.seed, to.quick ? "quick" : "full", to.out_path);
    for (int di = 0; di < to.ndims && rc == RC_OK; di++) {
        rc = inputs_make(&to, &ts, to.dims[di], &in);
        for (int vi = 0; vi < to.nvariants && rc == RC_OK; vi++) {
            tune_result *r = &ts.res[ts.nres++];
            r->variant = to.variants[vi];
            r->D = to.dims[di];
            rc = tune_group(&to, &ts, &in, r);
        }
        inputs_release(&in);
    }
    if (rc != RC_OK)
        goto cleanup;
    if (ts.any_failed) {
        rc = fail(RC_VERIFY, "tune", "a candidate differs from the CPU reference (see above); no file written");
        goto cleanup;
    }
    print_table(strcmp(to.out_path, "-") ? stdout : stderr, &to, &ts);
    rc = write_tuning_file(&to, &ts);
    if (rc == RC_OK)
        progress(&ts, "done");

cleanup:
    inputs_release(&in);
    free(ts.res);
    clattn_context_free(ts.ctx);
    return rc;
}
