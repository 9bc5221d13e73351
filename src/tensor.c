/*
 * tensor.c - tensor views: construction, default strides, and the checks every
 * view passes (dtype, positive dims, strides, alignment, overflow-free extent,
 * outputs without self-overlap).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

clattn_tensor clattn_tensor_make(cl_mem buffer, size_t offset, clattn_dtype dtype, int64_t b, int64_t h,
                                 int64_t n, int64_t d)
{
    clattn_tensor t;
    memset(&t, 0, sizeof t);
    t.buffer = buffer;
    t.offset = offset;
    t.dtype = dtype;
    t.shape[0] = b;
    t.shape[1] = h;
    t.shape[2] = n;
    t.shape[3] = d;
    return t;
}

/* Sufficient condition for distinct indices to map to distinct elements: with
 * the dims of size > 1 sorted by stride, each stride exceeds the largest offset
 * reachable by the smaller ones. */
static int strides_disjoint(const int64_t *shape, const int64_t *strides, int ndim)
{
    int idx[4];
    int n = 0;
    int64_t reach = 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] > 1)
            idx[n++] = i;
    for (int a = 1; a < n; a++) { /* insertion sort by stride */
        int x = idx[a], b = a - 1;
        while (b >= 0 && strides[idx[b]] > strides[x]) {
            idx[b + 1] = idx[b];
            b--;
        }
        idx[b + 1] = x;
    }
    for (int a = 0; a < n; a++) {
        int64_t s = strides[idx[a]];
        if (s <= reach)
            return 0;
        reach += (shape[idx[a]] - 1) * s; /* bounded: extent was checked for overflow */
    }
    return 1;
}

clattn_status clattn__tensor_check(clattn_context *ctx, const char *name, clattn_tensor *t, int ndim, int output,
                                   size_t *need_bytes)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t esize = clattn_dtype_size(t->dtype);
    int all_zero = 1;
    uint64_t extent = 0; /* largest element offset reached */
    size_t bytes;
    CLATTN_CHECK((int)t->dtype >= 0 && t->dtype < CLATTN_DTYPE_COUNT_, CLATTN_ERROR_INVALID_DTYPE,
                 "%s: unknown dtype %d", name, (int)t->dtype);
    if (ndim == 3) {
        CLATTN_CHECK(t->shape[3] == 0 || t->shape[3] == 1, CLATTN_ERROR_INVALID_SHAPE,
                     "%s: a [B, H, N] view needs shape[3] = 1, got %lld", name, (long long)t->shape[3]);
        t->shape[3] = 1;
        t->strides[3] = 0;
    }
    for (int i = 0; i < 4; i++) {
        CLATTN_CHECK(t->shape[i] > 0, CLATTN_ERROR_INVALID_SHAPE, "%s: shape[%d] = %lld must be positive", name, i,
                     (long long)t->shape[i]);
        CLATTN_CHECK(t->shape[i] <= INT32_MAX, CLATTN_ERROR_SIZE_OVERFLOW, "%s: shape[%d] = %lld exceeds 2^31-1", name,
                     i, (long long)t->shape[i]);
        CLATTN_CHECK(t->strides[i] >= 0, CLATTN_ERROR_INVALID_STRIDE, "%s: stride[%d] = %lld is negative", name, i,
                     (long long)t->strides[i]);
        all_zero &= t->strides[i] == 0;
    }
    if (all_zero) {
        uint64_t s = 1;
        for (int i = 3; i >= 0; i--) {
            t->strides[i] = (int64_t)s;
            CLATTN_CHECK(!__builtin_mul_overflow(s, (uint64_t)t->shape[i], &s) && s <= INT64_MAX,
                         CLATTN_ERROR_SIZE_OVERFLOW, "%s: element count overflows", name);
        }
    }
    for (int i = 0; i < 4; i++) {
        uint64_t reach;
        CLATTN_CHECK(!__builtin_mul_overflow((uint64_t)(t->shape[i] - 1), (uint64_t)t->strides[i], &reach) &&
                         !__builtin_add_overflow(extent, reach, &extent) && extent <= INT64_MAX,
                     CLATTN_ERROR_SIZE_OVERFLOW, "%s: extent of shape and strides overflows", name);
    }
    CLATTN_CHECK(t->offset % esize == 0, CLATTN_ERROR_MISALIGNED,
                 "%s: byte offset %zu is not a multiple of the element size %zu", name, t->offset, esize);
    CLATTN_CHECK(extent < SIZE_MAX && clattn__mul_size((size_t)extent + 1, esize, &bytes) &&
                     clattn__add_size(bytes, t->offset, &bytes),
                 CLATTN_ERROR_SIZE_OVERFLOW, "%s: byte size of the view overflows size_t", name);
    if (output)
        CLATTN_CHECK(strides_disjoint(t->shape, t->strides, 4), CLATTN_ERROR_INVALID_STRIDE,
                     "%s: strides [%lld, %lld, %lld, %lld] make output elements overlap", name,
                     (long long)t->strides[0], (long long)t->strides[1], (long long)t->strides[2],
                     (long long)t->strides[3]);
    *need_bytes = bytes;
cleanup:
    return status;
}
