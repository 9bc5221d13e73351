/*
 * tune.c - tuning as data: the table of launch parameters per (vendor,
 * device, device type, variant, head dim), the automatic variant order per
 * device, the fitting of parameters to a device's limits (work-group
 * size, local memory, vector loads), and the checks of explicit launch
 * parameters (clattn_plan_create_with_params), which are never adjusted.
 *
 * Lookup prefers the most specific matching entry: device name, then vendor,
 * then device type, then the generic default. Entries of one specificity are
 * ordered by ascending head-dim limit; the first that covers max(D, Dv) wins.
 */
#include <ctype.h>
#include <string.h>

#include "internal.h"

typedef struct tune_entry {
    const char *name;     /* reported in the plan's parameters */
    const char *vendor;   /* substring of CL_DEVICE_VENDOR, NULL = any */
    const char *device;   /* substring of CL_DEVICE_NAME, NULL = any */
    cl_device_type type;  /* 0 = any */
    clattn_variant variant;
    int d_max;            /* applies when max(D, Dv) <= d_max */
    clattn__params p;     /* block_m, block_n, rows, tpr, vec */
} tune_entry;

/* GPUs: many work-items per row group keep the private accumulator small
 * (Dv / tpr * rows floats). CPUs (PoCL and vendor CPU runtimes) run a
 * work-group as loops vectorised across work-items: one work-item per row
 * and long key tiles. */
static const tune_entry table[] = {
    /* generic GPU / accelerator defaults */
    {"default-gpu", NULL, NULL, 0, CLATTN_VARIANT_FLASH, 64, {64, 32, 2, 4, 4, 0}},
    {"default-gpu", NULL, NULL, 0, CLATTN_VARIANT_FLASH, 128, {32, 32, 1, 4, 4, 0}},
    {"default-gpu", NULL, NULL, 0, CLATTN_VARIANT_FLASH, 256, {16, 16, 1, 8, 4, 0}},
    {"default-gpu", NULL, NULL, 0, CLATTN_VARIANT_TILED, 64, {32, 32, 1, 4, 4, 0}},
    {"default-gpu", NULL, NULL, 0, CLATTN_VARIANT_TILED, 128, {32, 32, 1, 4, 4, 0}},
    {"default-gpu", NULL, NULL, 0, CLATTN_VARIANT_TILED, 256, {16, 16, 1, 8, 4, 0}},
    /* CPU devices */
    /* flash on CPUs: one work-item owns a row block of 128 (the register-tiled
     * one-item form of flash.cl); on PoCL (2 cores, AVX-512, N = 2048, D = 64)
     * 152 GFLOP/s against 110 with 16 rows and 71 for the earlier best of
     * 8 work-items x 4 rows (bench/RESULTS.md, notes). fit() shrinks the block
     * for short queries and to keep every compute unit busy. */
    {"default-cpu", NULL, NULL, CL_DEVICE_TYPE_CPU, CLATTN_VARIANT_FLASH, 256, {128, 64, 128, 1, 4, 0}},
    {"default-cpu", NULL, NULL, CL_DEVICE_TYPE_CPU, CLATTN_VARIANT_TILED, 256, {32, 64, 1, 1, 4, 0}},
};

typedef struct order_entry {
    const char *vendor, *device;
    cl_device_type type;
    clattn_variant order[CLATTN_VARIANT_COUNT_];
} order_entry;

static const order_entry orders[] = {
    {NULL, NULL, 0, {CLATTN_VARIANT_FLASH, CLATTN_VARIANT_TILED, CLATTN_VARIANT_NAIVE, CLATTN_VARIANT_AUTO}},
};

static int ci_contains(const char *hay, const char *needle)
{
    const size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

/* -1: does not match; else its specificity */
static int match(const clattn_context *ctx, const char *vendor, const char *device, cl_device_type type)
{
    int spec = 0;
    if (device) {
        if (!ci_contains(ctx->device_name, device))
            return -1;
        spec += 4;
    }
    if (vendor) {
        if (!ci_contains(ctx->device_vendor, vendor))
            return -1;
        spec += 2;
    }
    if (type) {
        if (!(ctx->device_type & type))
            return -1;
        spec += 1;
    }
    return spec;
}

const clattn_variant *clattn__tune_order(const clattn_context *ctx)
{
    const order_entry *best = &orders[0];
    int best_spec = -1;
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
        const int s = match(ctx, orders[i].vendor, orders[i].device, orders[i].type);
        if (s > best_spec)
            best_spec = s, best = &orders[i];
    }
    return best->order;
}

static clattn_status fit(const clattn_context *ctx, const clattn__problem *p, clattn__params *io, int guess);

int clattn__params_halve_block(clattn__params *pr)
{
    const int one_item = pr->rows == pr->block_m && pr->tpr == 1;
    if (one_item ? pr->block_m < 2 : pr->block_m / 2 < pr->rows || (pr->block_m / 2) % pr->rows != 0)
        return 0;
    pr->block_m /= 2;
    if (one_item)
        pr->rows = pr->block_m;
    return 1;
}

size_t clattn__tile_local_bytes(const clattn__problem *p, const clattn__params *pr)
{
    const size_t dmax = (size_t)(p->D > p->Dv ? p->D : p->Dv);
    const size_t ldq = (size_t)p->D | 1u, ldkv = dmax | 1u;
    const size_t bm = (size_t)pr->block_m, bn = (size_t)pr->block_n;
    size_t floats = bm * ldq + bn * ldkv + bm * bn; /* Q, one K-or-V tile, the score tile */
    /* flash's CPU form (KT_PATH in flash.cl): Q, the K tile transposed and the
     * V tile side by side, no score tile. The larger of the two counts, so
     * the figure holds for tiled and flash alike. */
    if (pr->tpr == 1 && p->D % 8 == 0 && p->Dv % 8 == 0 && pr->block_n % 8 == 0 && !p->has_block_table) {
        const size_t kt = bm * ldq + bn * (size_t)p->D + bn * (size_t)p->Dv;
        floats = kt > floats ? kt : floats;
    }
    return sizeof(float) * floats;
}

clattn_status clattn__tune_params(const clattn_context *ctx, const clattn__problem *p, clattn_variant variant,
                                  clattn__params *out, const char **source)
{
    const tune_entry *best = NULL;
    int best_spec = -1;
    const int dmax = (int)(p->D > p->Dv ? p->D : p->Dv);
    /* decode runs flash's kernel and shares its table entries, but not its
     * tuning-file entries: those are measured on long query blocks, and
     * their rows and block_m waste work on a handful of query rows. */
    const clattn_variant table_variant = variant == CLATTN_VARIANT_DECODE ? CLATTN_VARIANT_FLASH : variant;
    /* A tuning file measured on this very device comes first, fitted to the
     * problem's and the device's hard limits like the table's entries (but
     * not to the table's register-pressure guess: the entry was measured);
     * one that cannot fit falls through to the table. */
    if (clattn__tunefile_lookup(ctx, p, variant, out, source) == 1 && fit(ctx, p, out, 0) == CLATTN_SUCCESS)
        return CLATTN_SUCCESS;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int s;
        if (table[i].variant != table_variant || table[i].d_max < dmax)
            continue;
        s = match(ctx, table[i].vendor, table[i].device, table[i].type);
        if (s > best_spec) /* strictly greater: the first entry of a specificity wins */
            best_spec = s, best = &table[i];
    }
    if (!best)
        return CLATTN_ERROR_UNSUPPORTED;
    if (source)
        *source = best->name;
    *out = best->p;
    return clattn__tune_fit(ctx, p, out);
}

clattn_status clattn__tune_fit(const clattn_context *ctx, const clattn__problem *p, clattn__params *io)
{
    return fit(ctx, p, io, 1);
}

/* guess: also widen row groups where the accumulator would not fit in registers */
static clattn_status fit(const clattn_context *ctx, const clattn__problem *p, clattn__params *io, int guess)
{
    const int is_cpu = (ctx->device_type & CL_DEVICE_TYPE_CPU) != 0;
    const size_t local_budget = ctx->local_mem > 512 ? (size_t)ctx->local_mem - 256 : 0;
    clattn__params pr = *io;

    /* Vector loads need contiguous rows whose length is a multiple of 4. */
    if (pr.vec == 4 && !(p->D % 4 == 0 && p->Dv % 4 == 0 && p->q.strides[3] == 1 && p->k.strides[3] == 1 &&
                         p->v.strides[3] == 1))
        pr.vec = 1;
    /* Keep each work-item's accumulator (ceil(Dv / tpr) * rows floats) in
     * registers on GPUs: more work-items per row for large Dv. */
    /* Not on CPUs when flash's transposed-K form applies (TPR = 1, D, Dv and
     * block_n multiples of 8): there the accumulator lives in memory across
     * barriers anyway, and widening TPR to 2 leaves that form (4x slower at
     * D = 128 in `clattn tune --compare`, bench/RESULTS.md). */
    const int kt_form =
        is_cpu && pr.tpr == 1 && p->D % 8 == 0 && p->Dv % 8 == 0 && pr.block_n % 8 == 0 && !p->has_block_table;
    if (guess && !kt_form) {
        const int cap = is_cpu ? 256 : 64;
        while (pr.tpr < 32 && ((p->Dv + pr.tpr - 1) / pr.tpr) * pr.rows > cap)
            pr.tpr *= 2;
    }
    /* The one-work-item form (rows = block_m): no longer a block than the
     * queries, and enough work-groups for every compute unit (four each),
     * down to blocks of 16 rows (each block size is a program of its own:
     * the floor bounds the builds; decode shrinks further to its few rows). */
    if (guess && pr.rows == pr.block_m && pr.tpr == 1) {
        const int64_t target = 4 * (int64_t)(ctx->compute_units ? ctx->compute_units : 1);
        while (pr.block_m > 16 && (pr.block_m / 2 >= p->Nq ||
                                   p->B * p->Hq * ((p->Nq + pr.block_m - 1) / pr.block_m) < target))
            clattn__params_halve_block(&pr);
    }
    /* Work-group size within the device's limit. */
    while ((size_t)(pr.block_m / pr.rows * pr.tpr) > ctx->max_wg && pr.block_m > pr.rows)
        pr.block_m /= 2;
    while ((size_t)(pr.block_m / pr.rows * pr.tpr) > ctx->max_wg && pr.tpr > 1)
        pr.tpr /= 2;
    /* Local memory: shorter key tiles first, then fewer rows. */
    while (clattn__tile_local_bytes(p, &pr) > local_budget && pr.block_n > 4)
        pr.block_n /= 2;
    while (clattn__tile_local_bytes(p, &pr) > local_budget && clattn__params_halve_block(&pr))
        ;
    if (clattn__tile_local_bytes(p, &pr) > local_budget || (size_t)(pr.block_m / pr.rows * pr.tpr) > ctx->max_wg)
        return CLATTN_ERROR_DEVICE_LIMIT;
    pr.wg = pr.block_m / pr.rows * pr.tpr;
    *io = pr;
    return CLATTN_SUCCESS;
}

/* ------------------------------------------------------------ explicit launch parameters */

/* Which variants take which field: bit (1 << variant). */
#define V_(v) (1u << (v))
#define TILE_VARIANTS_ (V_(CLATTN_VARIANT_TILED) | V_(CLATTN_VARIANT_FLASH) | V_(CLATTN_VARIANT_DECODE))

clattn_status clattn__params_fields(clattn_context *ctx, clattn_variant variant, const clattn_launch_params *req)
{
    clattn_status status = CLATTN_SUCCESS;
    const struct {
        const char *name;
        int value;
        unsigned variants;
    } f[] = {
        {"block_m", req->block_m, TILE_VARIANTS_}, {"block_n", req->block_n, TILE_VARIANTS_},
        {"rows", req->rows, TILE_VARIANTS_},       {"tpr", req->tpr, TILE_VARIANTS_},
        {"vec", req->vec, TILE_VARIANTS_},         {"wg", req->wg, V_(CLATTN_VARIANT_NAIVE)},
        {"splits", req->splits, V_(CLATTN_VARIANT_DECODE)},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        CLATTN_CHECK(f[i].value >= 0, CLATTN_ERROR_INVALID_PARAMS, "params.%s: %d is negative (0 = the scheduler's choice)",
                     f[i].name, f[i].value);
        CLATTN_CHECK(f[i].value == 0 || (f[i].variants & V_(variant)), CLATTN_ERROR_INVALID_PARAMS,
                     "params.%s: the %s variant takes no %s%s", f[i].name, clattn_variant_name(variant), f[i].name,
                     variant == CLATTN_VARIANT_GEMM ? " (it has no launch parameters)"
                     : !strcmp(f[i].name, "wg") ? " (its work-group size is block_m / rows * tpr)"
                                                 : "");
    }
cleanup:
    return status;
}

clattn_status clattn__params_apply(clattn_context *ctx, const clattn__problem *p, const clattn_launch_params *req,
                                   clattn__params *io)
{
    clattn_status status = CLATTN_SUCCESS;
    const size_t local_budget = ctx->local_mem > 512 ? (size_t)ctx->local_mem - 256 : 0;
    clattn__params pr = *io;
    size_t local;
    long wg;
    if (req->block_m)
        pr.block_m = req->block_m;
    if (req->block_n)
        pr.block_n = req->block_n;
    if (req->rows)
        pr.rows = req->rows;
    if (req->tpr)
        pr.tpr = req->tpr;
    if (req->vec)
        pr.vec = req->vec;
    /* Bounds that keep the kernels' private arrays and loops sane. */
    CLATTN_CHECK(pr.block_m >= 1 && pr.block_m <= 1024, CLATTN_ERROR_INVALID_PARAMS, "params.block_m: %d is outside 1..1024",
                 pr.block_m);
    CLATTN_CHECK(pr.block_n >= 1 && pr.block_n <= 1024, CLATTN_ERROR_INVALID_PARAMS, "params.block_n: %d is outside 1..1024",
                 pr.block_n);
    CLATTN_CHECK(pr.rows >= 1 && pr.rows <= CLATTN_MAX_ROWS, CLATTN_ERROR_INVALID_PARAMS,
                 "params.rows: %d is outside 1..%d", pr.rows, CLATTN_MAX_ROWS);
    CLATTN_CHECK(pr.tpr >= 1 && pr.tpr <= 256, CLATTN_ERROR_INVALID_PARAMS, "params.tpr: %d is outside 1..256", pr.tpr);
    CLATTN_CHECK(pr.vec == 1 || pr.vec == 4, CLATTN_ERROR_INVALID_PARAMS, "params.vec: %d is not 1 or 4", pr.vec);
    CLATTN_CHECK(pr.block_m % pr.rows == 0, CLATTN_ERROR_INVALID_PARAMS,
                 "params.%s: rows = %d does not divide block_m = %d", req->rows ? "rows" : "block_m", pr.rows,
                 pr.block_m);
    CLATTN_CHECK(pr.vec == 1 || (p->D % 4 == 0 && p->Dv % 4 == 0 && p->q.strides[3] == 1 && p->k.strides[3] == 1 &&
                                 p->v.strides[3] == 1),
                 CLATTN_ERROR_INVALID_PARAMS,
                 "params.vec: 4 needs D and Dv multiples of 4 (here %lld, %lld) and contiguous q, k, v rows",
                 (long long)p->D, (long long)p->Dv);
    wg = (long)(pr.block_m / pr.rows) * pr.tpr;
    CLATTN_CHECK((size_t)wg <= ctx->max_wg, CLATTN_ERROR_INVALID_PARAMS,
                 "params.%s: block_m / rows * tpr = %d / %d * %d = %ld work-items exceed the device's %zu",
                 req->tpr ? "tpr" : req->block_m ? "block_m" : "rows", pr.block_m, pr.rows, pr.tpr, wg, ctx->max_wg);
    local = clattn__tile_local_bytes(p, &pr);
    CLATTN_CHECK(local <= local_budget, CLATTN_ERROR_INVALID_PARAMS,
                 "params.%s: block_m = %d and block_n = %d need %zu bytes of local memory, the device has %zu",
                 req->block_n ? "block_n" : "block_m", pr.block_m, pr.block_n, local, local_budget);
    pr.wg = (int)wg;
    *io = pr;
cleanup:
    return status;
}

clattn_status clattn_plan_launch_params(const clattn_plan *plan, clattn_launch_params *out)
{
    if (!plan || !out)
        return CLATTN_ERROR_NULL_ARGUMENT;
    *out = plan->actual;
    return CLATTN_SUCCESS;
}
