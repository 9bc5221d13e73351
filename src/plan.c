/*
 * plan.c - the scheduler: validates a problem once, picks a variant (explicit
 * request, CLATTN_VARIANT, or the first supported one in preference order),
 * lets it build its kernels, and runs it.
 *
 * Thread safety: a context and the plans made from it may be used from one
 * thread at a time (the program cache and kernel arguments are unguarded).
 * Different contexts are independent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Every variant built into the library. Adding a variant is one line here and
 * one file under src/variants/; the automatic order comes from the tuning
 * table (src/tune.c). */
static const clattn__variant *const registry[] = {
    &clattn__variant_naive,
    &clattn__variant_tiled,
    &clattn__variant_flash,
    &clattn__variant_gemm,
    &clattn__variant_decode,
};
#define REGISTRY_SIZE (sizeof registry / sizeof registry[0])

static const clattn__variant *find_variant(clattn_variant id)
{
    for (size_t i = 0; i < REGISTRY_SIZE; i++)
        if (registry[i]->id == id)
            return registry[i];
    return NULL;
}

/* The variant asked for: desc->variant, else CLATTN_VARIANT, else AUTO. */
static clattn_status requested_variant(clattn_context *ctx, const clattn__problem *p, clattn_variant *out)
{
    clattn_status status = CLATTN_SUCCESS;
    const char *env = getenv("CLATTN_VARIANT");
    *out = p->desc.variant;
    if (*out == CLATTN_VARIANT_AUTO && env && *env) {
        status = clattn_variant_parse(env, out);
        CLATTN_CHECK(status == CLATTN_SUCCESS, CLATTN_ERROR_UNKNOWN_VARIANT,
                     "CLATTN_VARIANT: unknown variant '%s' (auto, naive, tiled, flash, gemm, decode)", env);
    }
cleanup:
    return status;
}

clattn_status clattn_plan_create(clattn_context *ctx, const clattn_attention_desc *desc, const clattn_args *args,
                                 clattn_plan **out)
{
    return clattn_plan_create_with_params(ctx, desc, args, NULL, out);
}

clattn_status clattn_plan_create_with_params(clattn_context *ctx, const clattn_attention_desc *desc,
                                             const clattn_args *args, const clattn_launch_params *params,
                                             clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *plan = NULL;
    clattn_variant want;
    if (!ctx)
        return CLATTN_ERROR_NULL_ARGUMENT;
    clattn__clear_error(ctx);
    CLATTN_CHECK(out != NULL, CLATTN_ERROR_NULL_ARGUMENT, "out is NULL");
    *out = NULL;
    plan = clattn__calloc(1, sizeof *plan);
    CLATTN_CHECK(plan != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "plan");
    plan->ctx = ctx;
    if (params)
        plan->req = *params; /* checked against the variant below; the variant checks the values */
    status = clattn__problem_init(ctx, desc, args, &plan->prob);
    if (status)
        goto cleanup;
    status = clattn__problem_check_buffers(ctx, &plan->prob, args, 0);
    if (status)
        goto cleanup;
    status = clattn__check_block_table_buffer(ctx, &plan->prob, args, 0);
    if (status)
        goto cleanup;
    status = requested_variant(ctx, &plan->prob, &want);
    if (status)
        goto cleanup;

    if (want != CLATTN_VARIANT_AUTO) {
        const clattn__variant *v = find_variant(want);
        const char *lack;
        CLATTN_CHECK(v != NULL, CLATTN_ERROR_UNSUPPORTED, "variant '%s' is not available in this version of clattn",
                     clattn_variant_name(want));
        lack = v->supports(ctx, &plan->prob);
        CLATTN_CHECK(lack == NULL, CLATTN_ERROR_UNSUPPORTED, "variant '%s' does not support %s",
                     clattn_variant_name(want), lack);
        plan->variant = v;
    } else {
        char why[1024];
        size_t len = 0;
        why[0] = '\0';
        const clattn_variant *order = clattn__tune_order(ctx);
        /* Few query rows against many keys: split the keys (decode) so the
         * device fills up, whatever the device's order says. */
        if (plan->prob.Nq <= 16 && plan->prob.Nk >= 1024 && !clattn__variant_decode.supports(ctx, &plan->prob))
            plan->variant = &clattn__variant_decode;
        for (int i = 0; order[i] != CLATTN_VARIANT_AUTO && !plan->variant; i++) {
            const clattn__variant *v = find_variant(order[i]);
            const char *lack = v ? v->supports(ctx, &plan->prob) : "an implementation";
            if (!lack)
                plan->variant = v;
            else
                clattn__appendf(why, sizeof why, &len, "%s%s lacks %s", len ? "; " : "",
                                clattn_variant_name(order[i]), lack);
        }
        CLATTN_CHECK(plan->variant != NULL, CLATTN_ERROR_NO_VARIANT, "no variant supports this problem: %s", why);
    }
    status = clattn__params_fields(ctx, plan->variant->id, &plan->req);
    if (status) {
        plan->variant = NULL; /* nothing created yet */
        goto cleanup;
    }
    status = plan->variant->create(plan);
    if (status) {
        plan->variant = NULL; /* create cleaned up after itself */
        goto cleanup;
    }
    *out = plan;
    plan = NULL;
cleanup:
    clattn_plan_free(plan);
    return status;
}

static int same_view(const clattn_tensor *a, const clattn_tensor *b)
{
    return a->dtype == b->dtype && memcmp(a->shape, b->shape, sizeof a->shape) == 0 &&
           memcmp(a->strides, b->strides, sizeof a->strides) == 0;
}

clattn_status clattn_plan_run(clattn_plan *plan, const clattn_args *args, cl_command_queue queue, cl_uint num_wait,
                              const cl_event *wait, cl_event *event)
{
    return clattn__plan_run(plan, args, queue, num_wait, wait, event, 0);
}

clattn_status clattn__plan_run(clattn_plan *plan, const clattn_args *args, cl_command_queue queue, cl_uint num_wait,
                               const cl_event *wait, cl_event *event, int trusted_table)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx;
    clattn__problem p;
    if (!plan)
        return CLATTN_ERROR_NULL_ARGUMENT;
    ctx = plan->ctx;
    clattn__clear_error(ctx);
    CLATTN_CHECK((num_wait == 0) == (wait == NULL), CLATTN_ERROR_INVALID_VALUE,
                 "wait: %u events but the list is %s", num_wait, wait ? "non-NULL" : "NULL");
    /* Same validation as at creation (host-only work), then the plan's metadata must match. */
    status = clattn__problem_init(ctx, &plan->prob.desc, args, &p);
    if (status)
        goto cleanup;
    CLATTN_CHECK(same_view(&p.q, &plan->prob.q) && same_view(&p.k, &plan->prob.k) && same_view(&p.v, &plan->prob.v) &&
                     same_view(&p.o, &plan->prob.o) && p.has_lse == plan->prob.has_lse &&
                     (!p.has_lse || same_view(&p.lse, &plan->prob.lse)) && p.has_bias == plan->prob.has_bias &&
                     (!p.has_bias || same_view(&p.bias, &plan->prob.bias)) && p.has_alibi == plan->prob.has_alibi &&
                     p.has_key_lengths == plan->prob.has_key_lengths && p.has_varlen == plan->prob.has_varlen &&
                     p.total_q == plan->prob.total_q && p.total_k == plan->prob.total_k &&
                     p.has_block_table == plan->prob.has_block_table && p.page_size == plan->prob.page_size &&
                     p.max_pages == plan->prob.max_pages,
                 CLATTN_ERROR_PLAN_MISMATCH, "args: shapes, strides, dtypes or optional inputs differ from the plan's");
    status = clattn__problem_check_buffers(ctx, &p, args, 1);
    if (status)
        goto cleanup;
    status = clattn__check_block_table_buffer(ctx, &p, args, 1);
    if (status)
        goto cleanup;
    if (!trusted_table) {
        status = clattn__check_block_table(ctx, &p, args, queue ? queue : ctx->queue, num_wait, wait);
        if (status)
            goto cleanup;
    }
    status = plan->variant->enqueue(plan, args, queue ? queue : ctx->queue, num_wait, wait, event);
cleanup:
    return status;
}

void clattn_plan_free(clattn_plan *plan)
{
    if (!plan)
        return;
    if (plan->variant && plan->variant->destroy)
        plan->variant->destroy(plan);
    clattn__free(plan);
}

size_t clattn_plan_device_bytes(const clattn_plan *plan)
{
    return plan ? plan->device_bytes : 0;
}

clattn_variant clattn_plan_variant(const clattn_plan *plan)
{
    return plan && plan->variant ? plan->variant->id : CLATTN_VARIANT_AUTO;
}

const char *clattn_plan_params_json(const clattn_plan *plan)
{
    return plan ? plan->params_json : "{}";
}
