/*
 * variants/tiled.c - the `tiled` variant (kernels/tiled.cl): a work-group
 * owns a tile of query rows, K/V tiles pass through local memory, and the
 * softmax is the exact two-pass form (maximum and sum first, then the
 * weighted sum of V without rescaling). Extra memory: none.
 */
#include "variants/tiles.h"

static const char *tiled_supports(const clattn_context *ctx, const clattn__problem *p)
{
    return clattn__tile_supports(ctx, p, CLATTN_VARIANT_TILED);
}

static clattn_status tiled_create(clattn_plan *plan)
{
    return clattn__tile_create(plan, "tiled", "attn_tiled");
}

const clattn__variant clattn__variant_tiled = {
    CLATTN_VARIANT_TILED, tiled_supports, tiled_create, clattn__tile_enqueue, clattn__tile_destroy,
};
