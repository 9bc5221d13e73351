/*
 * prof.c - `clattn prof`: device time of attention variants over a sweep of
 * sequence lengths, against the device's own ceilings measured by the probe
 * kernels (clattn_device_probe_run), each result verified on sampled rows
 * against the CPU reference. Writes a table, and on request JSON, CSV and an
 * SVG plot drawn here (no plotting library).
 *
 * Same shape as every subcommand: parse -> load (inputs per size) -> run
 * (time each variant) -> verify -> write; files are written only at the end,
 * each through a temporary file renamed into place.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clattn.h"
#include "cli.h"

#define PROF_MAX_VARIANTS 16
#define PROF_MAX_SIZES 64
#define PROF_WARMUP 2
#define PROF_MAX_RUNS 100000  /* calibration never asks for more runs than this */
#define PROF_FULL_VERIFY_FLOPS 5e7 /* problems up to this size are verified on every row */

const char usage_prof[] =
    "usage: clattn prof [options]\n"
    "\n"
    "Time attention variants over a sweep of sequence lengths (Nq = Nk = N) with OpenCL\n"
    "profiling events, and report each point against the device's ceilings measured by\n"
    "built-in probe kernels (f32 FMA throughput, copy bandwidth).\n"
    "\n"
    "problem:\n"
    "  --variants LIST      comma-separated (default: every variant the library names;\n"
    "                       those that cannot run the problem are reported as skipped)\n"
    "  --sizes LIST         sequence lengths N (default 512,1024,2048)\n"
    "  --batch B            batch size (default 1)\n"
    "  --heads H            query heads (default 8)\n"
    "  --kv-heads HKV       key/value heads, a divisor of H (default H)\n"
    "  --dim D              head dimension 1..256 (default 64)\n"
    "  --causal             causal mask (top-left)\n"
    "  --dtype T            storage of Q, K, V and O: f32 (default), f16 or bf16\n"
    "  --lse                also write the log-sum-exp of each row (counted in GB/s)\n"
    "measurement:\n"
    "  --repeat N           at least N timed runs per point (default 5), after 2 warm-ups;\n"
    "                       a run lasts from a marker enqueued before it to the end of\n"
    "                       the plan's event (the whole plan, however many kernels)\n"
    "  --min-time S         more runs until the timed runs of a point last S seconds in\n"
    "                       all (default 0.5; 0 = exactly --repeat runs)\n"
    "  --no-verify          skip the comparison with the CPU reference\n"
    "  --device SPEC        P:D, cpu|gpu|accelerator or a name substring\n"
    "output:\n"
    "  --json FILE|-        a JSON array of records: variant, device, B, H, Hkv, Nq, Nk, D,\n"
    "                       causal, dtype, ms_median, ms_min, ms_max, gflops, gbps,\n"
    "                       verified, max_err, params (- = stdout; the table goes to stderr)\n"
    "  --csv FILE|-         the same columns as CSV (params as a quoted JSON string)\n"
    "  --plot FILE.svg|-    an SVG plot of GFLOP/s against N, one line per variant\n"
    "\n"
    "GFLOP/s count only kept (unmasked) query-key pairs, 4*D flops each (causal: N(N+1)/2\n"
    "pairs per head); GB/s count Q, K and V read once and O (and LSE) written once. Both\n"
    "use the median time; %FMA and %copy compare them with the probes. mem is the device\n"
    "memory a point needed: inputs, outputs and the plan's own buffers. Each result is\n"
    "verified on all heads of batch 0, first and last 8 query rows (every row of small\n"
    "problems). Exit status: 0 ok, 1 a verification failed, 2 bad usage, 3 device error.\n";

typedef struct prof_opts {
    const char *variants_s, *sizes_s, *batch_s, *heads_s, *kv_s, *dim_s, *dtype_s, *repeat_s;
    const char *json, *csv, *plot, *device, *min_time_s;
    int causal, no_verify, lse;
    double min_ms;
    clattn_variant variants[PROF_MAX_VARIANTS];
    int nvariants;
    int64_t sizes[PROF_MAX_SIZES];
    int nsizes;
    int64_t B, H, Hkv, D;
    clattn_dtype dtype;
    int repeat;
} prof_opts;

typedef struct prof_rec {
    clattn_variant variant;
    int64_t N;
    int skipped;
    char *reason;           /* skipped: why */
    int runs;
    double ms_median, ms_min, ms_max, gflops, gbps;
    int verified;           /* -1 not verified, 0 failed, 1 passed */
    double max_err;
    char *params;           /* the plan's JSON object */
    double mem_bytes;
} prof_rec;

typedef struct prof_state {
    clattn_context *ctx;
    cl_context clctx;
    cl_command_queue queue;
    const char *device;
    int have_probe;
    clattn_device_probe probe;
    prof_rec *recs;
    int nrecs;
} prof_state;

/* ------------------------------------------------------------------------ */
/* parse                                                                    */
/* ------------------------------------------------------------------------ */

static int parse_pos(const char *arg, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (parse_i64(arg, s, out) != RC_OK)
        return RC_USAGE;
    if (*out < lo || *out > hi)
        return fail(RC_USAGE, arg, "'%s' is outside %lld..%lld", s, (long long)lo, (long long)hi);
    return RC_OK;
}

static int parse_dtype(const char *arg, const char *s, clattn_dtype *out)
{
    if (!strcmp(s, "f32"))
        *out = CLATTN_F32;
    else if (!strcmp(s, "f16"))
        *out = CLATTN_F16;
    else if (!strcmp(s, "bf16"))
        *out = CLATTN_BF16;
    else
        return fail(RC_USAGE, arg, "'%s' is not f32, f16 or bf16", s);
    return RC_OK;
}

int parse_variant_list(const char *arg, const char *s, const char *dflt, clattn_variant *out, int max, int *n)
{
    char buf[512], all[512];
    *n = 0;
    if (!s && !dflt) {
        size_t len = 0;
        all[0] = '\0';
        for (int v = CLATTN_VARIANT_AUTO + 1; strcmp(clattn_variant_name((clattn_variant)v), "?") != 0; v++)
            len += (size_t)snprintf(all + len, sizeof all - len, "%s%s", len ? "," : "",
                                    clattn_variant_name((clattn_variant)v));
        dflt = all;
    }
    if (!s)
        s = dflt;
    if (strlen(s) >= sizeof buf)
        return fail(RC_USAGE, arg, "value too long");
    strcpy(buf, s);
    for (char *p = buf;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        clattn_variant v;
        if (*p == '\0')
            return fail(RC_USAGE, arg, "'%s' has an empty entry", s);
        if (clattn_variant_parse(p, &v) != CLATTN_SUCCESS)
            return fail(RC_USAGE, arg, "'%s' is not a variant (auto, naive, tiled, flash, gemm, decode)", p);
        for (int i = 0; i < *n; i++)
            if (out[i] == v)
                return fail(RC_USAGE, arg, "'%s' is listed twice", p);
        if (*n == max)
            return fail(RC_USAGE, arg, "more than %d variants", max);
        out[(*n)++] = v;
        if (!comma)
            break;
        p = comma + 1;
    }
    return RC_OK;
}

static int prof_parse(int argc, char **argv, prof_opts *po)
{
    const opt opts[] = {
        {"--variants", &po->variants_s, NULL}, {"--sizes", &po->sizes_s, NULL},
        {"--batch", &po->batch_s, NULL},       {"--heads", &po->heads_s, NULL},
        {"--kv-heads", &po->kv_s, NULL},       {"--dim", &po->dim_s, NULL},
        {"--causal", NULL, &po->causal},       {"--dtype", &po->dtype_s, NULL},
        {"--lse", NULL, &po->lse},             {"--repeat", &po->repeat_s, NULL},
        {"--min-time", &po->min_time_s, NULL},
        {"--no-verify", NULL, &po->no_verify}, {"--device", &po->device, NULL},
        {"--json", &po->json, NULL},           {"--csv", &po->csv, NULL},
        {"--plot", &po->plot, NULL},
    };
    int rc = parse_opts("prof", argc, argv, opts, sizeof opts / sizeof opts[0], usage_prof);
    if (rc != RC_CONTINUE)
        return rc;
    if (parse_variant_list("--variants", po->variants_s, NULL, po->variants, PROF_MAX_VARIANTS, &po->nvariants) !=
        RC_OK)
        return RC_USAGE;
    if (parse_int_list("--sizes", po->sizes_s ? po->sizes_s : "512,1024,2048", po->sizes, PROF_MAX_SIZES,
                       &po->nsizes) != RC_OK)
        return RC_USAGE;
    for (int i = 0; i < po->nsizes; i++) {
        if (po->sizes[i] < 1 || po->sizes[i] > (1 << 24))
            return fail(RC_USAGE, "--sizes", "%lld is outside 1..%d", (long long)po->sizes[i], 1 << 24);
        for (int j = 0; j < i; j++)
            if (po->sizes[j] == po->sizes[i])
                return fail(RC_USAGE, "--sizes", "%lld is listed twice", (long long)po->sizes[i]);
    }
    int64_t rep = 5;
    po->B = 1, po->H = 8, po->D = 64;
    if ((po->batch_s && parse_pos("--batch", po->batch_s, 1, 65536, &po->B) != RC_OK) ||
        (po->heads_s && parse_pos("--heads", po->heads_s, 1, 65536, &po->H) != RC_OK) ||
        (po->dim_s && parse_pos("--dim", po->dim_s, 1, CLATTN_MAX_HEAD_DIM, &po->D) != RC_OK) ||
        (po->repeat_s && parse_pos("--repeat", po->repeat_s, 1, PROF_MAX_RUNS, &rep) != RC_OK))
        return RC_USAGE;
    po->repeat = (int)rep;
    po->min_ms = 500.0;
    if (po->min_time_s) {
        double t;
        if (parse_double("--min-time", po->min_time_s, &t) != RC_OK)
            return RC_USAGE;
        if (t < 0.0 || t > 3600.0)
            return fail(RC_USAGE, "--min-time", "'%s' is outside 0..3600 seconds", po->min_time_s);
        po->min_ms = t * 1000.0;
    }
    po->Hkv = po->H;
    if (po->kv_s && parse_pos("--kv-heads", po->kv_s, 1, 65536, &po->Hkv) != RC_OK)
        return RC_USAGE;
    if (po->H % po->Hkv != 0)
        return fail(RC_USAGE, "--kv-heads", "%lld does not divide the %lld query heads", (long long)po->Hkv,
                    (long long)po->H);
    po->dtype = CLATTN_F32;
    if (po->dtype_s && parse_dtype("--dtype", po->dtype_s, &po->dtype) != RC_OK)
        return RC_USAGE;
    /* Any one of the outputs may be "-" (stdout; the table then goes to stderr). */
    if (po->json && strcmp(po->json, "-") != 0 && check_out_path("--json", po->json) != RC_OK)
        return RC_USAGE;
    if (po->csv && strcmp(po->csv, "-") != 0 && check_out_path("--csv", po->csv) != RC_OK)
        return RC_USAGE;
    if (po->plot && strcmp(po->plot, "-") != 0 && check_out_path("--plot", po->plot) != RC_OK)
        return RC_USAGE;
    if (po->csv && po->json && !strcmp(po->csv, po->json))
        return fail(RC_USAGE, "--csv", "'%s' is also the --json %s", po->csv,
                    strcmp(po->csv, "-") ? "path" : "output");
    if (po->plot && po->json && !strcmp(po->plot, po->json))
        return fail(RC_USAGE, "--plot", "'%s' is also the --json %s", po->plot,
                    strcmp(po->plot, "-") ? "path" : "output");
    if (po->plot && po->csv && !strcmp(po->plot, po->csv))
        return fail(RC_USAGE, "--plot", "'%s' is also the --csv %s", po->plot,
                    strcmp(po->plot, "-") ? "path" : "output");
    return RC_OK;
}

/* ------------------------------------------------------------------------ */
/* load: inputs of one size                                                 */
/* ------------------------------------------------------------------------ */

typedef struct prof_inputs {
    int64_t N;
    size_t nq, nkv, nl, esz;
    void *q, *k, *v;            /* host, storage dtype, contiguous BHND */
    cl_mem mq, mk, mv, mo, mlse;
    /* reference of the verified rows: every row, or 16 per head of batch 0 */
    int full;
    int64_t rows;               /* verified rows per head */
    float *ref_o, *ref_lse, *dev_o, *dev_lse;
    void *host_o;
    float *host_lse;
} prof_inputs;

static void inputs_release(prof_inputs *in)
{
    cl_mem all[] = {in->mq, in->mk, in->mv, in->mo, in->mlse};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    free(in->q);
    free(in->k);
    free(in->v);
    free(in->ref_o);
    free(in->ref_lse);
    free(in->dev_o);
    free(in->dev_lse);
    free(in->host_o);
    free(in->host_lse);
    memset(in, 0, sizeof *in);
}

static double kept_pairs(int64_t nq, int64_t nk, int causal)
{
    if (!causal)
        return (double)nq * (double)nk;
    if (nk >= nq) /* top-left: row i keeps i + 1 keys */
        return (double)nq * (double)(nq + 1) / 2.0;
    return (double)nk * (double)(nk + 1) / 2.0 + (double)(nq - nk) * (double)nk;
}

static size_t count4(int64_t a, int64_t b, int64_t c, int64_t d, int *ovf)
{
    size_t r = 1;
    const int64_t f[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        if (f[i] > 0 && r > SIZE_MAX / 4 / (size_t)f[i])
            *ovf = 1;
        else
            r *= (size_t)f[i];
    }
    return r;
}

static int prof_load(const prof_opts *po, prof_state *ps, int64_t N, prof_inputs *in)
{
    int ovf = 0;
    cl_int err;
    memset(in, 0, sizeof *in);
    in->N = N;
    in->esz = clattn_dtype_size(po->dtype);
    in->nq = count4(po->B, po->H, N, po->D, &ovf);
    in->nkv = count4(po->B, po->Hkv, N, po->D, &ovf);
    in->nl = count4(po->B, po->H, N, 1, &ovf);
    if (ovf)
        return fail(RC_USAGE, "--sizes", "N = %lld makes tensors too large for this machine", (long long)N);
    {
        /* A size the device cannot hold is refused before the host copies
         * (as large) are allocated and filled. */
        cl_device_id dev = NULL;
        cl_ulong max_alloc = 0, global = 0;
        const double qb = (double)in->nq * (double)in->esz, kb = (double)in->nkv * (double)in->esz;
        const double total = 2.0 * qb + 2.0 * kb + (po->lse ? (double)in->nl * 4.0 : 0.0);
        if (clattn_context_cl(ps->ctx, NULL, &dev, NULL) == CLATTN_SUCCESS &&
            clGetDeviceInfo(dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof max_alloc, &max_alloc, NULL) == CL_SUCCESS &&
            clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global, &global, NULL) == CL_SUCCESS &&
            (qb > (double)max_alloc || kb > (double)max_alloc || total > (double)global))
            return fail(RC_DEVICE, "--sizes",
                        "N = %lld needs %.3g GiB of device memory, buffers of up to %.3g GiB; the device has %.3g GiB, "
                        "at most %.3g GiB per buffer (%s)",
                        (long long)N, total / 1073741824.0, (qb > kb ? qb : kb) / 1073741824.0,
                        (double)global / 1073741824.0, (double)max_alloc / 1073741824.0,
                        clattn_status_message(CLATTN_ERROR_DEVICE_LIMIT));
    }
    in->q = malloc(in->nq * in->esz);
    in->k = malloc(in->nkv * in->esz);
    in->v = malloc(in->nkv * in->esz);
    in->host_o = malloc(in->nq * in->esz);
    in->host_lse = po->lse ? malloc(in->nl * sizeof(float)) : NULL;
    if (!in->q || !in->k || !in->v || !in->host_o || (po->lse && !in->host_lse))
        return fail(RC_DEVICE, "--sizes", "out of host memory for N = %lld", (long long)N);
    /* Fixed seed per size: every variant and every run sees the same data. */
    uint64_t rng = 0x5eed0000u + (uint64_t)N;
    for (size_t i = 0; i < in->nq; i++)
        elem_put(in->q, po->dtype, i, (float)((double)(splitmix64(&rng) >> 40) * (2.0 / 16777216.0) - 1.0));
    for (size_t i = 0; i < in->nkv; i++)
        elem_put(in->k, po->dtype, i, (float)((double)(splitmix64(&rng) >> 40) * (2.0 / 16777216.0) - 1.0));
    for (size_t i = 0; i < in->nkv; i++)
        elem_put(in->v, po->dtype, i, (float)((double)(splitmix64(&rng) >> 40) * (2.0 / 16777216.0) - 1.0));

    const void *src[3] = {in->q, in->k, in->v};
    cl_mem *dst[3] = {&in->mq, &in->mk, &in->mv};
    const size_t n[3] = {in->nq, in->nkv, in->nkv};
    for (int t = 0; t < 3; t++) {
        *dst[t] = clCreateBuffer(ps->clctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n[t] * in->esz,
                                 (void *)src[t], &err);
        if (err != CL_SUCCESS) {
            *dst[t] = NULL;
            return cl_fail(err, "--sizes", "creating an input buffer failed");
        }
    }
    in->mo = clCreateBuffer(ps->clctx, CL_MEM_READ_WRITE, in->nq * in->esz, NULL, &err);
    if (err != CL_SUCCESS) {
        in->mo = NULL;
        return cl_fail(err, "--sizes", "creating the output buffer failed");
    }
    if (po->lse) {
        in->mlse = clCreateBuffer(ps->clctx, CL_MEM_READ_WRITE, in->nl * sizeof(float), NULL, &err);
        if (err != CL_SUCCESS) {
            in->mlse = NULL;
            return cl_fail(err, "--sizes", "creating the LSE buffer failed");
        }
    }
    return RC_OK;
}

/*
 * The reference of the verified rows. Small problems: every row. Otherwise all
 * heads of batch 0, query rows 0..7 and N-8..N-1. With a causal mask the first
 * rows are the top-left problem itself; the last 8, as an 8-row query against
 * all keys with bottom-right alignment (off = N - 8), keep exactly the keys
 * j <= N - 8 + r of the full problem's rows: the sliced problem is exact.
 */
static int prof_reference(const prof_opts *po, prof_inputs *in)
{
    const int64_t N = in->N, H = po->H, D = po->D;
    clattn_attention_desc d;
    clattn_host_args ha;
    clattn_status st;
    memset(&d, 0, sizeof d);
    d.causal = po->causal;
    in->full = N <= 16 || 4.0 * (double)po->B * (double)H * kept_pairs(N, N, po->causal) * (double)D <=
                              PROF_FULL_VERIFY_FLOPS;
    in->rows = in->full ? N : 16;
    const int64_t nb = in->full ? po->B : 1;
    const size_t no = (size_t)(nb * H * in->rows * D), nl = (size_t)(nb * H * in->rows);
    in->ref_o = malloc(no * sizeof(float));
    in->dev_o = malloc(no * sizeof(float));
    in->ref_lse = malloc(nl * sizeof(float));
    in->dev_lse = malloc(nl * sizeof(float));
    if (!in->ref_o || !in->dev_o || !in->ref_lse || !in->dev_lse)
        return fail(RC_DEVICE, "--sizes", "out of host memory for the reference");
    if (in->full) {
        memset(&ha, 0, sizeof ha);
        ha.q = (clattn_host_tensor){in->q, po->dtype, {po->B, H, N, D}};
        ha.k = (clattn_host_tensor){in->k, po->dtype, {po->B, po->Hkv, N, D}};
        ha.v = (clattn_host_tensor){in->v, po->dtype, {po->B, po->Hkv, N, D}};
        ha.o = (clattn_host_tensor){in->ref_o, CLATTN_F32, {po->B, H, N, D}};
        ha.lse = (clattn_host_tensor){in->ref_lse, CLATTN_F32, {po->B, H, N, 1}};
        st = clattn_reference(&d, &ha);
        if (st != CLATTN_SUCCESS)
            return lib_fail(st, 0, "prof", "the CPU reference failed");
        return RC_OK;
    }
    for (int half = 0; half < 2; half++) {
        const int rc = sample_reference("prof", po->dtype, H, po->Hkv, N, D, in->q, in->k, in->v, po->causal,
                                        half ? N - 8 : 0, 8, in->ref_o, in->ref_lse, 16, half * 8);
        if (rc != RC_OK)
            return rc;
    }
    return RC_OK;
}

/* ------------------------------------------------------------------------ */
/* run and verify one point                                                 */
/* ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Enqueue n runs, wait for all, store their device times in ms[0..n-1]
 * (tools/measure.c says how a run is timed). */
static int timed_runs(prof_state *ps, clattn_plan *plan, const clattn_args *a, int n, double *ms)
{
    return time_plan_runs(ps->ctx, "prof", plan, a, n, ms);
}

static int verify_point(const prof_opts *po, prof_state *ps, prof_inputs *in, prof_rec *r)
{
    const int64_t N = in->N, H = po->H, D = po->D;
    const int64_t nb = in->full ? po->B : 1;
    cl_int err = clEnqueueReadBuffer(ps->queue, in->mo, CL_TRUE, 0, in->nq * in->esz, in->host_o, 0, NULL, NULL);
    if (err == CL_SUCCESS && po->lse)
        err = clEnqueueReadBuffer(ps->queue, in->mlse, CL_TRUE, 0, in->nl * sizeof(float), in->host_lse, 0, NULL,
                                  NULL);
    if (err != CL_SUCCESS)
        return cl_fail(err, "prof", "reading the output back failed");
    size_t k = 0;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t r2 = 0; r2 < in->rows; r2++) {
                const int64_t row = in->full ? r2 : r2 < 8 ? r2 : N - 16 + r2;
                const size_t base = (size_t)(((b * H + h) * N + row) * D);
                for (int64_t d = 0; d < D; d++)
                    in->dev_o[k * (size_t)D + (size_t)d] = elem_get(in->host_o, po->dtype, base + (size_t)d);
                if (po->lse)
                    in->dev_lse[k] = in->host_lse[(size_t)((b * H + h) * N + row)];
                k++;
            }
    double atol, rtol, max_nmse;
    clattn_tolerance(po->dtype, &atol, &rtol, &max_nmse);
    clattn_compare_result cr = clattn_compare_f32(in->dev_o, in->ref_o, k * (size_t)D);
    int ok = clattn_compare_ok(&cr, atol, rtol, max_nmse);
    if (po->lse) {
        for (size_t i = 0; i < k; i++) {
            const double a = in->dev_lse[i], b = in->ref_lse[i];
            if (isfinite(b) ? !(fabs(a - b) <= 1e-5 * (1.0 + fabs(b))) : a != b)
                ok = 0;
        }
    }
    r->verified = ok;
    r->max_err = cr.nonfinite_mismatch ? INFINITY : cr.max_abs_err;
    return RC_OK;
}

static void progress(int k, int total, const prof_rec *r)
{
    const int tty = isatty(fileno(stderr));
    char line[256];
    if (r->skipped)
        snprintf(line, sizeof line, "clattn prof [%d/%d] %s N=%lld: skipped", k, total,
                 clattn_variant_name(r->variant), (long long)r->N);
    else
        snprintf(line, sizeof line, "clattn prof [%d/%d] %s N=%lld: %.3f ms, %.1f GFLOP/s, %d runs%s", k, total,
                 clattn_variant_name(r->variant), (long long)r->N, r->ms_median, r->gflops, r->runs,
                 r->verified == 0 ? ", VERIFICATION FAILED" : "");
    if (tty)
        fprintf(stderr, "\r\033[K%s%s", line, k == total ? "\n" : "");
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

/* One (variant, size) point: plan, warm up, calibrate, time, verify. */
static int prof_point(const prof_opts *po, prof_state *ps, prof_inputs *in, clattn_variant variant, prof_rec *r)
{
    int rc = RC_OK;
    clattn_plan *plan = NULL;
    clattn_attention_desc d;
    clattn_args a;
    double *ms = NULL, warm[PROF_WARMUP];
    const int64_t N = in->N;
    memset(r, 0, sizeof *r);
    r->variant = variant;
    r->N = N;
    r->verified = -1;
    memset(&d, 0, sizeof d);
    d.causal = po->causal;
    d.variant = variant;
    memset(&a, 0, sizeof a);
    a.q = clattn_tensor_make(in->mq, 0, po->dtype, po->B, po->H, N, po->D);
    a.k = clattn_tensor_make(in->mk, 0, po->dtype, po->B, po->Hkv, N, po->D);
    a.v = clattn_tensor_make(in->mv, 0, po->dtype, po->B, po->Hkv, N, po->D);
    a.o = clattn_tensor_make(in->mo, 0, po->dtype, po->B, po->H, N, po->D);
    if (po->lse)
        a.lse = clattn_tensor_make(in->mlse, 0, CLATTN_F32, po->B, po->H, N, 1);

    clattn_status st = clattn_plan_create(ps->ctx, &d, &a, &plan);
    if (st == CLATTN_ERROR_UNSUPPORTED || st == CLATTN_ERROR_NO_VARIANT) {
        const char *why = clattn_context_last_error(ps->ctx);
        const char *colon = strstr(why, ": ");
        r->skipped = 1;
        r->reason = dup_str(colon ? colon + 2 : why);
        return RC_OK;
    }
    if (st == CLATTN_ERROR_DEVICE_LIMIT || st == CLATTN_CL_MEM_OBJECT_ALLOCATION_FAILURE ||
        st == CLATTN_CL_OUT_OF_RESOURCES) {
        /* Too large for this device (e.g. a variant's scratch): the rest of the sweep still runs. */
        char why[1024];
        snprintf(why, sizeof why, "%s: %s", clattn_status_name(st), clattn_context_last_error(ps->ctx));
        r->skipped = 1;
        r->reason = dup_str(why);
        return RC_OK;
    }
    if (st != CLATTN_SUCCESS)
        return lib_fail(st, 0, "prof", clattn_context_last_error(ps->ctx));
    r->params = dup_str(clattn_plan_params_json(plan));
    r->mem_bytes = (double)((in->nq * 2 + in->nkv * 2) * in->esz) + (po->lse ? (double)in->nl * 4.0 : 0.0) +
                   (double)clattn_plan_device_bytes(plan);

    /* Poison O (and LSE) so that a skipped element cannot pass the verification. */
    if (!po->no_verify) {
        memset(in->host_o, 0xFF, in->nq * in->esz);
        cl_int err = clEnqueueWriteBuffer(ps->queue, in->mo, CL_TRUE, 0, in->nq * in->esz, in->host_o, 0, NULL, NULL);
        if (err == CL_SUCCESS && po->lse) {
            memset(in->host_lse, 0xFF, in->nl * sizeof(float));
            err = clEnqueueWriteBuffer(ps->queue, in->mlse, CL_TRUE, 0, in->nl * sizeof(float), in->host_lse, 0, NULL,
                                       NULL);
        }
        if (err != CL_SUCCESS) {
            rc = cl_fail(err, "prof", "poisoning the output failed");
            goto cleanup;
        }
    }
    rc = timed_runs(ps, plan, &a, PROF_WARMUP, warm);
    if (rc != RC_OK)
        goto cleanup;
    {
        /* Calibrate from the last warm-up run: enough runs to last --min-time. */
        const double t = warm[PROF_WARMUP - 1] > 1e-6 ? warm[PROF_WARMUP - 1] : 1e-6;
        const double want = ceil(po->min_ms / t);
        r->runs = want > (double)PROF_MAX_RUNS ? PROF_MAX_RUNS : (int)want;
        if (r->runs < po->repeat)
            r->runs = po->repeat;
    }
    ms = malloc((size_t)r->runs * sizeof *ms);
    if (!ms) {
        rc = fail(RC_DEVICE, "prof", "out of host memory");
        goto cleanup;
    }
    rc = timed_runs(ps, plan, &a, r->runs, ms);
    if (rc != RC_OK)
        goto cleanup;
    qsort(ms, (size_t)r->runs, sizeof *ms, cmp_double);
    r->ms_min = ms[0];
    r->ms_max = ms[r->runs - 1];
    r->ms_median = r->runs % 2 ? ms[r->runs / 2] : 0.5 * (ms[r->runs / 2 - 1] + ms[r->runs / 2]);
    {
        const double flops = 4.0 * (double)po->D * (double)po->B * (double)po->H * kept_pairs(N, N, po->causal);
        const double bytes = (double)((in->nq * 2 + in->nkv * 2) * in->esz) + (po->lse ? (double)in->nl * 4.0 : 0.0);
        r->gflops = r->ms_median > 0 ? flops / (r->ms_median * 1e6) : NAN;
        r->gbps = r->ms_median > 0 ? bytes / (r->ms_median * 1e6) : NAN;
    }
    if (!po->no_verify)
        rc = verify_point(po, ps, in, r);
cleanup:
    free(ms);
    clattn_plan_free(plan);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* write: table, JSON, CSV, SVG                                             */
/* ------------------------------------------------------------------------ */

static const char *mask_name(const prof_opts *po) { return po->causal ? "causal" : "non-causal"; }

static void print_table(FILE *f, const prof_opts *po, const prof_state *ps)
{
    fprintf(f, "device: %s\n", ps->device);
    if (ps->have_probe)
        fprintf(f, "ceilings (probe kernels): f32 FMA %.1f GFLOP/s, copy %.1f GB/s\n", ps->probe.fma_gflops,
                ps->probe.copy_gbps);
    else
        fprintf(f, "ceilings: not measured (the probe kernels failed)\n");
    fprintf(f,
            "problem: B=%lld H=%lld Hkv=%lld D=%lld %s %s%s, Nq = Nk = N; median of >= %d runs (>= %g s per point) "
            "after %d warm-ups\n\n",
            (long long)po->B, (long long)po->H, (long long)po->Hkv, (long long)po->D, clattn_dtype_name(po->dtype),
            mask_name(po), po->lse ? " +LSE" : "", po->repeat, po->min_ms / 1000.0, PROF_WARMUP);
    fprintf(f, "%-7s %6s %6s %10s %10s %10s %9s %6s %8s %6s %9s %8s %9s  %s\n", "variant", "N", "runs", "ms_median",
            "ms_min", "ms_max", "GFLOP/s", "%FMA", "GB/s", "%copy", "mem_MiB", "verified", "max_err", "params");
    for (int i = 0; i < ps->nrecs; i++) {
        const prof_rec *r = &ps->recs[i];
        if (r->skipped) {
            fprintf(f, "%-7s %6lld  skipped: %s\n", clattn_variant_name(r->variant), (long long)r->N, r->reason);
            continue;
        }
        char pf[16] = "-", pb[16] = "-", err[16] = "-";
        if (ps->have_probe && ps->probe.fma_gflops > 0)
            snprintf(pf, sizeof pf, "%.3g", 100.0 * r->gflops / ps->probe.fma_gflops);
        if (ps->have_probe && ps->probe.copy_gbps > 0)
            snprintf(pb, sizeof pb, "%.3g", 100.0 * r->gbps / ps->probe.copy_gbps);
        if (r->verified >= 0)
            snprintf(err, sizeof err, "%.2e", r->max_err);
        fprintf(f, "%-7s %6lld %6d %10.4f %10.4f %10.4f %9.4g %6s %8.4g %6s %9.2f %8s %9s  %s\n",
                clattn_variant_name(r->variant), (long long)r->N, r->runs, r->ms_median, r->ms_min, r->ms_max,
                r->gflops, pf, r->gbps, pb, r->mem_bytes / 1048576.0,
                r->verified < 0 ? "-" : r->verified ? "yes" : "FAILED", err, r->params);
    }
}

static void write_json(FILE *f, const prof_opts *po, const prof_state *ps)
{
    int first = 1;
    fputc('[', f);
    for (int i = 0; i < ps->nrecs; i++) {
        const prof_rec *r = &ps->recs[i];
        if (r->skipped)
            continue;
        fputs(first ? "\n" : ",\n", f);
        first = 0;
        fprintf(f, "{\"variant\":\"%s\",\"device\":", clattn_variant_name(r->variant));
        json_str(f, ps->device);
        fprintf(f,
                ",\"B\":%lld,\"H\":%lld,\"Hkv\":%lld,\"Nq\":%lld,\"Nk\":%lld,\"D\":%lld,\"causal\":%s,"
                "\"dtype\":\"%s\"",
                (long long)po->B, (long long)po->H, (long long)po->Hkv, (long long)r->N, (long long)r->N,
                (long long)po->D, po->causal ? "true" : "false", clattn_dtype_name(po->dtype));
        fputs(",\"ms_median\":", f);
        json_num(f, r->ms_median);
        fputs(",\"ms_min\":", f);
        json_num(f, r->ms_min);
        fputs(",\"ms_max\":", f);
        json_num(f, r->ms_max);
        fputs(",\"gflops\":", f);
        json_num(f, r->gflops);
        fputs(",\"gbps\":", f);
        json_num(f, r->gbps);
        fprintf(f, ",\"verified\":%s,\"max_err\":", r->verified < 0 ? "null" : r->verified ? "true" : "false");
        json_num(f, r->verified < 0 ? NAN : r->max_err);
        fprintf(f, ",\"params\":%s}", r->params && r->params[0] ? r->params : "null");
    }
    fputs(first ? "]\n" : "\n]\n", f);
}

/* A CSV field, quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s, int force_quote)
{
    if (!force_quote && !strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, ",%.9g", v);
    else
        fputs(",", f);
}

static void write_csv(FILE *f, const prof_opts *po, const prof_state *ps)
{
    fputs("variant,device,B,H,Hkv,Nq,Nk,D,causal,dtype,ms_median,ms_min,ms_max,gflops,gbps,verified,max_err,params\n",
          f);
    for (int i = 0; i < ps->nrecs; i++) {
        const prof_rec *r = &ps->recs[i];
        if (r->skipped)
            continue;
        fprintf(f, "%s,", clattn_variant_name(r->variant));
        csv_field(f, ps->device, 0);
        fprintf(f, ",%lld,%lld,%lld,%lld,%lld,%lld,%s,%s", (long long)po->B, (long long)po->H, (long long)po->Hkv,
                (long long)r->N, (long long)r->N, (long long)po->D, po->causal ? "true" : "false",
                clattn_dtype_name(po->dtype));
        csv_num(f, r->ms_median);
        csv_num(f, r->ms_min);
        csv_num(f, r->ms_max);
        csv_num(f, r->gflops);
        csv_num(f, r->gbps);
        fprintf(f, ",%s", r->verified < 0 ? "" : r->verified ? "true" : "false");
        csv_num(f, r->verified < 0 ? NAN : r->max_err);
        fputc(',', f);
        csv_field(f, r->params ? r->params : "", 1);
        fputc('\n', f);
    }
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t')
                fputc(*s, f);
        }
    }
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about n ticks over [0, hi]. */
static double nice_step(double hi, int n)
{
    const double raw = hi / n, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m <= 1.0 ? 1.0 : m <= 2.0 ? 2.0 : m <= 5.0 ? 5.0 : 10.0) * p;
}

static void write_svg(FILE *f, const prof_opts *po, const prof_state *ps)
{
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                         "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    const double W = 860, Hh = 520, ml = 80, mr = 170, mt = 60, mb = 70;
    const double pw = W - ml - mr, ph = Hh - mt - mb;
    double xmin = (double)po->sizes[0], xmax = xmin, ymax = 0;
    for (int i = 0; i < po->nsizes; i++) {
        xmin = fmin(xmin, (double)po->sizes[i]);
        xmax = fmax(xmax, (double)po->sizes[i]);
    }
    for (int i = 0; i < ps->nrecs; i++)
        if (!ps->recs[i].skipped && isfinite(ps->recs[i].gflops))
            ymax = fmax(ymax, ps->recs[i].gflops);
    const int logx = xmax >= 4.0 * xmin;
    const double ystep = nice_step(ymax > 0 ? ymax * 1.05 : 1.0, 5);
    const double ytop = ceil((ymax > 0 ? ymax * 1.05 : 1.0) / ystep) * ystep;
    /* x position of a size: log2 or linear; a single size sits in the middle. */
#define XPOS(n)                                                                                            \
    (xmax == xmin ? ml + pw / 2                                                                            \
     : logx       ? ml + pw * 0.04 + pw * 0.92 * (log2((double)(n)) - log2(xmin)) / (log2(xmax) - log2(xmin)) \
                  : ml + pw * 0.04 + pw * 0.92 * ((double)(n)-xmin) / (xmax - xmin))
#define YPOS(v) (mt + ph - ph * (v) / ytop)

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n",
            W, Hh, W, Hh);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", W, Hh);
    /* title */
    fprintf(f, "<text class=\"title\" x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">clattn prof: ",
            ml + pw / 2);
    xml_text(f, ps->device);
    fprintf(f, "</text>\n");
    fprintf(f,
            "<text class=\"subtitle\" x=\"%.1f\" y=\"44\" text-anchor=\"middle\">"
            "B=%lld H=%lld Hkv=%lld D=%lld %s %s%s, "
            "Nq = Nk = N",
            ml + pw / 2, (long long)po->B, (long long)po->H, (long long)po->Hkv, (long long)po->D,
            clattn_dtype_name(po->dtype), mask_name(po), po->lse ? " +LSE" : "");
    if (ps->have_probe)
        fprintf(f, "; FMA ceiling %.0f GFLOP/s", ps->probe.fma_gflops);
    fprintf(f, "</text>\n");
    /* grid, y ticks and labels */
    fprintf(f, "<g class=\"y-axis\">\n");
    for (double y = 0; y <= ytop * (1 + 1e-9); y += ystep) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", ml, YPOS(y), ml + pw,
                YPOS(y));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", ml - 5, YPOS(y), ml,
                YPOS(y));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ml - 8, YPOS(y) + 4, y);
    }
    fprintf(f,
            "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f %.1f)\">"
            "GFLOP/s (kept pairs, 4*D flops each)</text>\n",
            ml - 58, mt + ph / 2, ml - 58, mt + ph / 2);
    fprintf(f, "</g>\n<g class=\"x-axis\">\n");
    for (int i = 0; i < po->nsizes; i++) {
        const double x = XPOS(po->sizes[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", x, mt + ph, x,
                mt + ph + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%lld</text>\n", x, mt + ph + 20,
                (long long)po->sizes[i]);
    }
    fprintf(f, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">sequence length N%s</text>\n",
            ml + pw / 2, mt + ph + 45, logx ? " (log scale)" : "");
    fprintf(f, "</g>\n");
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", ml, mt,
            pw, ph);
    /* one polyline with markers per variant that has points, and its legend entry */
    int series = 0;
    for (int v = 0; v < po->nvariants; v++) {
        int npts = 0;
        for (int i = 0; i < ps->nrecs; i++)
            npts += ps->recs[i].variant == po->variants[v] && !ps->recs[i].skipped && isfinite(ps->recs[i].gflops);
        if (!npts)
            continue;
        const char *name = clattn_variant_name(po->variants[v]);
        const char *color = colors[series % (sizeof colors / sizeof colors[0])];
        fprintf(f,
                "<g class=\"series\" data-variant=\"%s\">\n"
                "<polyline data-variant=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                name, name, color);
        int k = 0;
        for (int s = 0; s < po->nsizes; s++)
            for (int i = 0; i < ps->nrecs; i++) {
                const prof_rec *r = &ps->recs[i];
                if (r->variant == po->variants[v] && r->N == po->sizes[s] && !r->skipped && isfinite(r->gflops))
                    fprintf(f, "%s%.1f,%.1f", k++ ? " " : "", XPOS(r->N), YPOS(r->gflops));
            }
        fprintf(f, "\"/>\n");
        for (int i = 0; i < ps->nrecs; i++) {
            const prof_rec *r = &ps->recs[i];
            if (r->variant == po->variants[v] && !r->skipped && isfinite(r->gflops))
                fprintf(f,
                        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>%s N=%lld: %.2f GFLOP/s, %.4f ms"
                        "</title></circle>\n",
                        XPOS(r->N), YPOS(r->gflops), color, name, (long long)r->N, r->gflops, r->ms_median);
        }
        fprintf(f, "</g>\n");
        const double ly = mt + 10 + 22.0 * series;
        fprintf(f, "<g class=\"legend-entry\">\n");
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                ml + pw + 15, ly, ml + pw + 45, ly, color);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", ml + pw + 30, ly, color);
        fprintf(f, "<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">%s</text>\n</g>\n", ml + pw + 52, ly + 4, name);
        series++;
    }
    fprintf(f, "</svg>\n");
#undef XPOS
#undef YPOS
}

typedef void (*writer_fn)(FILE *, const prof_opts *, const prof_state *);

static int write_file(const char *arg, const char *path, writer_fn fn, const prof_opts *po, const prof_state *ps)
{
    out_file o;
    int rc = out_open(arg, path, &o);
    if (rc != RC_OK)
        return rc;
    fn(o.f, po, ps);
    return out_close(arg, &o, 1);
}

/* ------------------------------------------------------------------------ */
/* clattn prof                                                              */
/* ------------------------------------------------------------------------ */

int cmd_prof(int argc, char **argv)
{
    prof_opts po;
    prof_state ps;
    prof_inputs in;
    int any_failed = 0;
    memset(&po, 0, sizeof po);
    memset(&ps, 0, sizeof ps);
    memset(&in, 0, sizeof in);

    int rc = prof_parse(argc, argv, &po);
    if (rc != RC_OK)
        return rc == RC_HELP ? RC_OK : rc;
    rc = open_context(po.device, &ps.ctx);
    if (rc != RC_OK)
        return rc;
    clattn_status st = clattn_context_cl(ps.ctx, &ps.clctx, NULL, &ps.queue);
    if (st != CLATTN_SUCCESS) {
        rc = lib_fail(st, 0, "device", clattn_context_last_error(ps.ctx));
        goto cleanup;
    }
    ps.device = clattn_context_device_name(ps.ctx);
    ps.recs = calloc((size_t)(po.nsizes * po.nvariants), sizeof *ps.recs);
    if (!ps.recs) {
        rc = fail(RC_DEVICE, "prof", "out of host memory");
        goto cleanup;
    }
    st = clattn_device_probe_run(ps.ctx, &ps.probe);
    ps.have_probe = st == CLATTN_SUCCESS;
    if (!ps.have_probe)
        fprintf(stderr, "clattn: warning: prof: the probe kernels failed, no ceilings: %s (%s): %s\n",
                clattn_status_message(st), clattn_status_name(st), clattn_context_last_error(ps.ctx));
    else
        fprintf(stderr, "clattn prof: %s: f32 FMA %.1f GFLOP/s, copy %.1f GB/s\n", ps.device, ps.probe.fma_gflops,
                ps.probe.copy_gbps);

    const int total = po.nsizes * po.nvariants;
    for (int s = 0; s < po.nsizes && rc == RC_OK; s++) {
        rc = prof_load(&po, &ps, po.sizes[s], &in);
        if (rc == RC_OK && !po.no_verify)
            rc = prof_reference(&po, &in);
        for (int v = 0; v < po.nvariants && rc == RC_OK; v++) {
            prof_rec *r = &ps.recs[ps.nrecs];
            rc = prof_point(&po, &ps, &in, po.variants[v], r);
            ps.nrecs++;
            if (rc == RC_OK) {
                any_failed |= r->verified == 0;
                progress(ps.nrecs, total, r);
            }
        }
        inputs_release(&in);
    }
    if (rc != RC_OK)
        goto cleanup;

    /* The table goes to stdout unless an output file does. */
    {
        const int out_is_stdout = (po.json && !strcmp(po.json, "-")) || (po.csv && !strcmp(po.csv, "-")) ||
                                  (po.plot && !strcmp(po.plot, "-"));
        print_table(out_is_stdout ? stderr : stdout, &po, &ps);
    }
    if (po.json && (rc = write_file("--json", po.json, write_json, &po, &ps)) != RC_OK)
        goto cleanup;
    if (po.csv && (rc = write_file("--csv", po.csv, write_csv, &po, &ps)) != RC_OK)
        goto cleanup;
    if (po.plot && (rc = write_file("--plot", po.plot, write_svg, &po, &ps)) != RC_OK)
        goto cleanup;
    if (any_failed) {
        fprintf(stderr, "clattn: error: prof: a result differs from the CPU reference (verified: FAILED above)\n");
        rc = RC_VERIFY;
    }

cleanup:
    inputs_release(&in);
    for (int i = 0; i < ps.nrecs; i++) {
        free(ps.recs[i].reason);
        free(ps.recs[i].params);
    }
    free(ps.recs);
    clattn_context_free(ps.ctx);
    return rc;
}
