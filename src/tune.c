/*
 * tune.c - tuning as data: the table of launch parameters per (vendor,
 * device, device type, variant, head dim), the automatic variant order per
 * device, and the fitting of parameters to a device's limits (work-group
 * size, local memory, vector loads).
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
    /* flash on PoCL (2 cores, AVX-512), N = 1024, D = 64: rows = 4 reuses each
     * K/V element for four query rows: 12.4 GFLOP/s against 5.4 with one row
     * (bench/RESULTS.md, launch-parameter sweep) */
    {"default-cpu", NULL, NULL, CL_DEVICE_TYPE_CPU, CLATTN_VARIANT_FLASH, 256, {16, 64, 4, 1, 4, 0}},
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

size_t clattn__tile_local_bytes(const clattn__problem *p, const clattn__params *pr)
{
    const size_t dmax = (size_t)(p->D > p->Dv ? p->D : p->Dv);
    const size_t ldq = (size_t)p->D | 1u, ldkv = dmax | 1u;
    return sizeof(float) * ((size_t)pr->block_m * ldq + (size_t)pr->block_n * ldkv +
                            (size_t)pr->block_m * (size_t)pr->block_n);
}

clattn_status clattn__tune_params(const clattn_context *ctx, const clattn__problem *p, clattn_variant variant,
                                  clattn__params *out, const char **source)
{
    const tune_entry *best = NULL;
    int best_spec = -1;
    const int dmax = (int)(p->D > p->Dv ? p->D : p->Dv);
    /* A tuning file measured on this very device comes first. */
    if (clattn__tunefile_lookup(ctx, p, variant, out, source) == 1)
        return clattn__tune_fit(ctx, p, out);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int s;
        if (table[i].variant != variant || table[i].d_max < dmax)
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
    const int is_cpu = (ctx->device_type & CL_DEVICE_TYPE_CPU) != 0;
    const size_t local_budget = ctx->local_mem > 512 ? (size_t)ctx->local_mem - 256 : 0;
    clattn__params pr = *io;

    /* Vector loads need contiguous rows whose length is a multiple of 4. */
    if (pr.vec == 4 && !(p->D % 4 == 0 && p->Dv % 4 == 0 && p->q.strides[3] == 1 && p->k.strides[3] == 1 &&
                         p->v.strides[3] == 1))
        pr.vec = 1;
    /* Keep each work-item's accumulator (ceil(Dv / tpr) * rows floats) in
     * registers on GPUs: more work-items per row for large Dv. */
    {
        const int cap = is_cpu ? 256 : 64;
        while (pr.tpr < 32 && ((p->Dv + pr.tpr - 1) / pr.tpr) * pr.rows > cap)
            pr.tpr *= 2;
    }
    /* Work-group size within the device's limit. */
    while ((size_t)(pr.block_m / pr.rows * pr.tpr) > ctx->max_wg && pr.block_m > pr.rows)
        pr.block_m /= 2;
    while ((size_t)(pr.block_m / pr.rows * pr.tpr) > ctx->max_wg && pr.tpr > 1)
        pr.tpr /= 2;
    /* Local memory: shorter key tiles first, then fewer rows. */
    while (clattn__tile_local_bytes(p, &pr) > local_budget && pr.block_n > 4)
        pr.block_n /= 2;
    while (clattn__tile_local_bytes(p, &pr) > local_budget && pr.block_m > pr.rows)
        pr.block_m /= 2;
    if (clattn__tile_local_bytes(p, &pr) > local_budget || (size_t)(pr.block_m / pr.rows * pr.tpr) > ctx->max_wg)
        return CLATTN_ERROR_DEVICE_LIMIT;
    pr.wg = pr.block_m / pr.rows * pr.tpr;
    *io = pr;
    return CLATTN_SUCCESS;
}
