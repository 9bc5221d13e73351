/*
 * tunefile.c - tuning files written by `clattn tune` (placeholder until the
 * reader lands: no file is consulted yet).
 */
#include "internal.h"

int clattn__tunefile_lookup(const clattn_context *ctx, const clattn__problem *p, clattn_variant variant,
                            struct clattn__params *out, const char **source)
{
    (void)ctx, (void)p, (void)variant, (void)out, (void)source;
    return 0;
}
