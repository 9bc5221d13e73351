/*
 * variants/flash.c - the `flash` variant (kernels/flash.cl): one pass over
 * the keys with online softmax, K/V tiles streamed through local memory,
 * several query rows per work-item where the tuning table says it pays, and
 * tiles wholly outside the masks skipped. Extra memory: none.
 */
#include "variants/tiles.h"

static const char *flash_supports(const clattn_context *ctx, const clattn__problem *p)
{
    return clattn__tile_supports(ctx, p, CLATTN_VARIANT_FLASH);
}

static clattn_status flash_create(clattn_plan *plan)
{
    return clattn__tile_create(plan, "flash", "attn_flash");
}

const clattn__variant clattn__variant_flash = {
    CLATTN_VARIANT_FLASH, flash_supports, flash_create, clattn__tile_enqueue, clattn__tile_destroy,
};
