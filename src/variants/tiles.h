/*
 * variants/tiles.h - host helpers shared by the work-group variants.
 */
#ifndef CLATTN_VARIANTS_TILES_H
#define CLATTN_VARIANTS_TILES_H

#include "internal.h"

const char *clattn__tile_supports(const clattn_context *ctx, const clattn__problem *p, clattn_variant variant);
clattn_status clattn__tile_create(clattn_plan *plan, const char *file, const char *kernel_name);
clattn_status clattn__tile_enqueue(clattn_plan *plan, const clattn_args *args, cl_command_queue queue, cl_uint nwait,
                                   const cl_event *wait, cl_event *ev);
void clattn__tile_destroy(clattn_plan *plan);

#endif
