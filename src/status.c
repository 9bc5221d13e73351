/*
 * status.c - the status table (names, messages), per-context last-error text,
 * and the small enum/name helpers of the public API.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *clattn_status_name(clattn_status status)
{
    switch ((int)status) {
#define CLATTN_STATUS_NAME_(name, value, msg) \
    case value:                               \
        return "CLATTN_" #name;
        CLATTN_STATUS_MAP(CLATTN_STATUS_NAME_)
#undef CLATTN_STATUS_NAME_
    default:
        return "CLATTN_UNKNOWN_STATUS";
    }
}

const char *clattn_status_message(clattn_status status)
{
    switch ((int)status) {
#define CLATTN_STATUS_MSG_(name, value, msg) \
    case value:                              \
        return msg;
        CLATTN_STATUS_MAP(CLATTN_STATUS_MSG_)
#undef CLATTN_STATUS_MSG_
    default:
        return (int)status < 0 && (int)status > -1100 ? "OpenCL error" : "unknown status";
    }
}

clattn_status clattn_status_from_cl(cl_int err)
{
    /* OpenCL's numbers are kept as they are, including ones the table does
     * not name (clattn_status_name then says so). */
    return (clattn_status)err;
}

clattn_status clattn__error(clattn_context *ctx, clattn_status status, const char *func, const char *fmt, ...)
{
    if (ctx) {
        size_t len = 0;
        va_list ap;
        int n = snprintf(ctx->last_error, sizeof ctx->last_error, "%s: ", func);
        len = n > 0 ? (size_t)n : 0;
        if (len < sizeof ctx->last_error) {
            va_start(ap, fmt);
            vsnprintf(ctx->last_error + len, sizeof ctx->last_error - len, fmt, ap);
            va_end(ap);
        }
    }
    return status;
}

void clattn__clear_error(clattn_context *ctx)
{
    if (ctx)
        ctx->last_error[0] = '\0';
}

const char *clattn_context_last_error(const clattn_context *ctx)
{
    return ctx ? ctx->last_error : "no context";
}

int clattn__appendf(char *buf, size_t n, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int w;
    if (*len >= n)
        return 0;
    va_start(ap, fmt);
    w = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= n - *len) {
        *len = n;
        return 0;
    }
    *len += (size_t)w;
    return 1;
}

const char *clattn_dtype_name(clattn_dtype dtype)
{
    switch (dtype) {
    case CLATTN_F32: return "f32";
    case CLATTN_F16: return "f16";
    case CLATTN_BF16: return "bf16";
    default: return "?";
    }
}

size_t clattn_dtype_size(clattn_dtype dtype)
{
    switch (dtype) {
    case CLATTN_F32: return 4;
    case CLATTN_F16:
    case CLATTN_BF16: return 2;
    default: return 0;
    }
}

static const char *const variant_names[CLATTN_VARIANT_COUNT_] = {
    "auto", "naive", "tiled", "flash", "gemm", "decode",
};

const char *clattn_variant_name(clattn_variant variant)
{
    if ((int)variant < 0 || variant >= CLATTN_VARIANT_COUNT_)
        return "?";
    return variant_names[variant];
}

clattn_status clattn_variant_parse(const char *name, clattn_variant *out)
{
    if (!name || !out)
        return CLATTN_ERROR_NULL_ARGUMENT;
    for (int i = 0; i < CLATTN_VARIANT_COUNT_; i++) {
        if (strcmp(name, variant_names[i]) == 0) {
            *out = (clattn_variant)i;
            return CLATTN_SUCCESS;
        }
    }
    return CLATTN_ERROR_UNKNOWN_VARIANT;
}

clattn_status clattn_tolerance(clattn_dtype dtype, double *atol, double *rtol, double *max_nmse)
{
    double a, r, m;
    switch (dtype) {
    case CLATTN_F32: a = 1e-5; r = 1e-4; m = 1e-7; break;
    /* f16 output rounding alone is up to 2^-11 relative; two rounding steps
     * and f32 accumulation order stay well inside 4e-3 of max|ref|. */
    case CLATTN_F16: a = 1e-3; r = 4e-3; m = 5e-4; break;
    /* bf16 keeps 8 significant bits: rounding alone is up to 2^-9 relative. */
    case CLATTN_BF16: a = 8e-3; r = 1.6e-2; m = 2e-3; break;
    default: return CLATTN_ERROR_INVALID_DTYPE;
    }
    if (atol) *atol = a;
    if (rtol) *rtol = r;
    if (max_nmse) *max_nmse = m;
    return CLATTN_SUCCESS;
}
