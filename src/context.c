/*
 * context.c - platform and device discovery, the device spec ("P:D", "cpu",
 * "gpu", a name substring), creating an own context and queue or adopting the
 * caller's, and the device capabilities the scheduler reads.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_PLATFORMS 32
#define MAX_DEVICES 64

typedef struct device_list {
    cl_uint nplat;
    cl_platform_id plat[MAX_PLATFORMS];
    cl_uint ndev[MAX_PLATFORMS];
    cl_device_id dev[MAX_PLATFORMS][MAX_DEVICES];
} device_list;

static clattn_status list_devices(device_list *l)
{
    cl_int err = cla_GetPlatformIDs(MAX_PLATFORMS, l->plat, &l->nplat);
    if (err == (cl_int)CLATTN_CL_PLATFORM_NOT_FOUND_KHR || (err == CL_SUCCESS && l->nplat == 0))
        return CLATTN_CL_PLATFORM_NOT_FOUND_KHR;
    if (err != CL_SUCCESS)
        return clattn_status_from_cl(err);
    if (l->nplat > MAX_PLATFORMS)
        l->nplat = MAX_PLATFORMS;
    for (cl_uint p = 0; p < l->nplat; p++) {
        err = cla_GetDeviceIDs(l->plat[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, l->dev[p], &l->ndev[p]);
        if (err == CL_DEVICE_NOT_FOUND) {
            l->ndev[p] = 0;
            continue;
        }
        if (err != CL_SUCCESS)
            return clattn_status_from_cl(err);
        if (l->ndev[p] > MAX_DEVICES)
            l->ndev[p] = MAX_DEVICES;
    }
    return CLATTN_SUCCESS;
}

static int ci_contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0)
        return 1;
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

/* Parse "P:D" with decimal indices; returns 1 if spec has that form. */
static int parse_indices(const char *spec, unsigned long *p, unsigned long *d)
{
    char *end;
    if (!isdigit((unsigned char)spec[0]))
        return 0;
    *p = strtoul(spec, &end, 10);
    if (*end != ':' || !isdigit((unsigned char)end[1]))
        return 0;
    *d = strtoul(end + 1, &end, 10);
    return *end == '\0';
}

/* A device query that fails is an error, not a device that does not match:
 * skipping it would pick another device (or none) for a transient failure. */
static clattn_status query_failed(cl_int err, const char *what, cl_uint p, cl_uint d, char *msg, size_t n)
{
    snprintf(msg, n, "clGetDeviceInfo(%s) of device %u:%u failed: %s", what, (unsigned)p, (unsigned)d,
             clattn_status_name(clattn_status_from_cl(err)));
    return clattn_status_from_cl(err);
}

/* Resolve spec to indices; msg (size n) says why when it fails. */
static clattn_status select_device(const char *spec, const device_list *l, unsigned *pi, unsigned *di,
                                   char *msg, size_t n)
{
    unsigned long p, d;
    cl_device_type want = 0;
    int any_digit_colon;
    if (spec && !*spec)
        spec = NULL;
    if (!spec) {
        const char *env = getenv("CLATTN_DEVICE");
        if (env && *env)
            spec = env;
    }
    if (!spec) {
        /* Default: the first GPU, then the first device of any kind. */
        for (int pass = 0; pass < 2; pass++) {
            for (cl_uint i = 0; i < l->nplat; i++) {
                for (cl_uint j = 0; j < l->ndev[i]; j++) {
                    cl_device_type t = 0;
                    cl_int err = cla_GetDeviceInfo(l->dev[i][j], CL_DEVICE_TYPE, sizeof t, &t, NULL);
                    if (err != CL_SUCCESS)
                        return query_failed(err, "CL_DEVICE_TYPE", i, j, msg, n);
                    if (pass == 1 || (t & CL_DEVICE_TYPE_GPU)) {
                        *pi = i;
                        *di = j;
                        return CLATTN_SUCCESS;
                    }
                }
            }
        }
        snprintf(msg, n, "no OpenCL device found on %u platform(s)", (unsigned)l->nplat);
        return CLATTN_ERROR_NO_DEVICE;
    }
    if (parse_indices(spec, &p, &d)) {
        if (p >= l->nplat || d >= l->ndev[p]) {
            snprintf(msg, n, "device '%s' does not exist (%u platform(s); see `clattn devices`)", spec,
                     (unsigned)l->nplat);
            return CLATTN_ERROR_NO_DEVICE;
        }
        *pi = (unsigned)p;
        *di = (unsigned)d;
        return CLATTN_SUCCESS;
    }
    /* Text that looks like an index spec but is not one is a typo, not a name. */
    any_digit_colon = strchr(spec, ':') != NULL && isdigit((unsigned char)spec[0]);
    if (any_digit_colon) {
        snprintf(msg, n, "malformed device spec '%s' (expected P:D with decimal indices)", spec);
        return CLATTN_ERROR_INVALID_DEVICE_SPEC;
    }
    if (strcmp(spec, "cpu") == 0)
        want = CL_DEVICE_TYPE_CPU;
    else if (strcmp(spec, "gpu") == 0)
        want = CL_DEVICE_TYPE_GPU;
    else if (strcmp(spec, "accelerator") == 0)
        want = CL_DEVICE_TYPE_ACCELERATOR;
    for (cl_uint i = 0; i < l->nplat; i++) {
        for (cl_uint j = 0; j < l->ndev[i]; j++) {
            if (want) {
                cl_device_type t = 0;
                cl_int err = cla_GetDeviceInfo(l->dev[i][j], CL_DEVICE_TYPE, sizeof t, &t, NULL);
                if (err != CL_SUCCESS)
                    return query_failed(err, "CL_DEVICE_TYPE", i, j, msg, n);
                if (t & want) {
                    *pi = i;
                    *di = j;
                    return CLATTN_SUCCESS;
                }
            } else {
                char name[256] = "";
                cl_int err = cla_GetDeviceInfo(l->dev[i][j], CL_DEVICE_NAME, sizeof name - 1, name, NULL);
                if (err != CL_SUCCESS)
                    return query_failed(err, "CL_DEVICE_NAME", i, j, msg, n);
                if (ci_contains(name, spec)) {
                    *pi = i;
                    *di = j;
                    return CLATTN_SUCCESS;
                }
            }
        }
    }
    snprintf(msg, n, "no device matches '%s' (see `clattn devices`)", spec);
    return CLATTN_ERROR_NO_DEVICE;
}

clattn_status clattn_device_select(const char *spec, unsigned *platform_index, unsigned *device_index)
{
    device_list *l;
    clattn_status st;
    char msg[256];
    unsigned p = 0, d = 0;
    if (!platform_index || !device_index)
        return CLATTN_ERROR_NULL_ARGUMENT;
    l = clattn__calloc(1, sizeof *l);
    if (!l)
        return CLATTN_ERROR_OUT_OF_HOST_MEMORY;
    st = list_devices(l);
    if (st == CLATTN_SUCCESS)
        st = select_device(spec, l, &p, &d, msg, sizeof msg);
    if (st == CLATTN_SUCCESS) {
        *platform_index = p;
        *device_index = d;
    }
    clattn__free(l);
    return st;
}

/* Read the capabilities the scheduler and the tool use. */
static clattn_status query_device(clattn_context *ctx)
{
    clattn_status status = CLATTN_SUCCESS;
    char ext[8192] = "";
    cl_device_fp_config fp64 = 0;
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_NAME, sizeof ctx->device_name - 1, ctx->device_name, NULL));
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_VENDOR, sizeof ctx->device_vendor - 1, ctx->device_vendor, NULL));
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DRIVER_VERSION, sizeof ctx->driver_version - 1, ctx->driver_version, NULL));
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_TYPE, sizeof ctx->device_type, &ctx->device_type, NULL));
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof ctx->compute_units, &ctx->compute_units, NULL));
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof ctx->global_mem, &ctx->global_mem, NULL));
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ctx->max_alloc, &ctx->max_alloc, NULL));
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof ctx->local_mem, &ctx->local_mem, NULL));
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof ctx->max_wg, &ctx->max_wg, NULL));
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_EXTENSIONS, sizeof ext - 1, ext, NULL));
    if (cla_GetDeviceInfo(ctx->device, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL) != CL_SUCCESS)
        fp64 = 0;
    CLATTN_CL(cla_GetPlatformInfo(ctx->platform, CL_PLATFORM_VERSION, sizeof ctx->platform_version - 1,
                                  ctx->platform_version, NULL));
    ctx->has_fp16 = strstr(ext, "cl_khr_fp16") != NULL;
    ctx->has_fp64 = strstr(ext, "cl_khr_fp64") != NULL || fp64 != 0;
cleanup:
    return status;
}

clattn_status clattn_context_create(const char *spec, clattn_context **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = NULL;
    device_list *l = NULL;
    unsigned p = 0, d = 0;
    cl_int err = CL_SUCCESS;
    char msg[512];
    if (!out)
        return CLATTN_ERROR_NULL_ARGUMENT;
    *out = NULL;
    ctx = clattn__calloc(1, sizeof *ctx);
    l = clattn__calloc(1, sizeof *l);
    if (!ctx || !l) {
        clattn__free(ctx);
        clattn__free(l);
        return CLATTN_ERROR_OUT_OF_HOST_MEMORY;
    }
    status = list_devices(l);
    CLATTN_CHECK(status == CLATTN_SUCCESS, status, "listing OpenCL platforms and devices: %s",
                 clattn_status_message(status));
    status = select_device(spec, l, &p, &d, msg, sizeof msg);
    CLATTN_CHECK(status == CLATTN_SUCCESS, status, "%s%s",
                 status == CLATTN_ERROR_NO_DEVICE || status == CLATTN_ERROR_INVALID_DEVICE_SPEC ? "spec: " : "", msg);
    ctx->platform = l->plat[p];
    ctx->device = l->dev[p][d];
    ctx->cl_ctx = cla_CreateContext(ctx->device, &err);
    CLATTN_CL(err);
    ctx->queue = cla_CreateCommandQueue(ctx->cl_ctx, ctx->device, CL_QUEUE_PROFILING_ENABLE, &err);
    CLATTN_CL(err);
    status = query_device(ctx);
    if (status != CLATTN_SUCCESS)
        goto cleanup;
    clattn__clear_error(ctx);
    *out = ctx;
    ctx = NULL;
cleanup:
    clattn__free(l);
    if (ctx)
        clattn_context_free(ctx);
    return status;
}

clattn_status clattn_context_adopt(cl_context cl_ctx, cl_device_id device, cl_command_queue queue,
                                   clattn_context **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = NULL;
    cl_context qctx = NULL;
    cl_device_id qdev = NULL;
    cl_uint ndev = 0;
    cl_device_id devs[MAX_DEVICES];
    int found = 0;
    if (!out)
        return CLATTN_ERROR_NULL_ARGUMENT;
    *out = NULL;
    if (!cl_ctx || !device || !queue)
        return CLATTN_ERROR_NULL_ARGUMENT;
    ctx = clattn__calloc(1, sizeof *ctx);
    if (!ctx)
        return CLATTN_ERROR_OUT_OF_HOST_MEMORY;
    /* The three must belong together: the queue's context and device are the
     * ones given, and the device is in the context. */
    CLATTN_CL(cla_GetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof qctx, &qctx, NULL));
    CLATTN_CL(cla_GetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof qdev, &qdev, NULL));
    CLATTN_CHECK(qctx == cl_ctx, CLATTN_ERROR_INVALID_VALUE, "queue: belongs to another cl_context");
    CLATTN_CHECK(qdev == device, CLATTN_ERROR_INVALID_VALUE, "queue: belongs to another device");
    CLATTN_CL(cla_GetContextInfo(cl_ctx, CL_CONTEXT_NUM_DEVICES, sizeof ndev, &ndev, NULL));
    CLATTN_CHECK(ndev <= MAX_DEVICES, CLATTN_ERROR_DEVICE_LIMIT, "cl_context: more than %d devices", MAX_DEVICES);
    CLATTN_CL(cla_GetContextInfo(cl_ctx, CL_CONTEXT_DEVICES, ndev * sizeof(cl_device_id), devs, NULL));
    for (cl_uint i = 0; i < ndev; i++)
        found |= devs[i] == device;
    CLATTN_CHECK(found, CLATTN_ERROR_INVALID_VALUE, "device: not part of the given cl_context");
    CLATTN_CL(cla_GetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof ctx->platform, &ctx->platform, NULL));
    ctx->device = device;
    CLATTN_CL(cla_RetainContext(cl_ctx));
    ctx->cl_ctx = cl_ctx;
    CLATTN_CL(cla_RetainCommandQueue(queue));
    ctx->queue = queue;
    status = query_device(ctx);
    if (status != CLATTN_SUCCESS)
        goto cleanup;
    clattn__clear_error(ctx);
    *out = ctx;
    ctx = NULL;
cleanup:
    if (ctx)
        clattn_context_free(ctx);
    return status;
}

void clattn_context_free(clattn_context *ctx)
{
    if (!ctx)
        return;
    clattn__programs_free(ctx);
    cla_ReleaseCommandQueue(ctx->queue);
    cla_ReleaseContext(ctx->cl_ctx);
    clattn__free(ctx);
}

clattn_status clattn_context_cl(const clattn_context *ctx, cl_context *cl_ctx, cl_device_id *device,
                                cl_command_queue *queue)
{
    if (!ctx)
        return CLATTN_ERROR_NULL_ARGUMENT;
    if (cl_ctx)
        *cl_ctx = ctx->cl_ctx;
    if (device)
        *device = ctx->device;
    if (queue)
        *queue = ctx->queue;
    return CLATTN_SUCCESS;
}

const char *clattn_context_device_name(const clattn_context *ctx)
{
    return ctx ? ctx->device_name : "";
}
