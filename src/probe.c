/*
 * probe.c - a device's ceilings measured by the probe kernels of
 * kernels/probe.cl: f32 multiply-add throughput and device-memory copy
 * bandwidth. `clattn prof` reports each result as a fraction of them.
 *
 * Both are timed with profiling events (on the context's queue, or a private
 * profiling queue when an adopted queue has profiling off) after a warm-up
 * run, best of a few runs: a ceiling is what the device can do, so the
 * fastest run is the measurement and slower ones are noise.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define PROBE_WG 256                  /* preferred work-group size of both kernels */
#define PROBE_FMA_TARGET_MS 20.0      /* calibrated length of one FMA run */
#define PROBE_FMA_RUNS 3
#define PROBE_COPY_RUNS 5
#define PROBE_COPY_BYTES (64u << 20)  /* per buffer; 256 MiB on large devices (past their caches) */

/*
 * Device time of a finished command in milliseconds. clGetEventProfilingInfo
 * is called directly: the dispatch layer (cl.c) has no wrapper for it yet.
 */
static cl_int event_ms(cl_event ev, double *ms)
{
    cl_ulong t0 = 0, t1 = 0;
    cl_int err = clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
    if (err == CL_SUCCESS)
        err = clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
    if (err == CL_SUCCESS && t1 < t0)
        err = CL_PROFILING_INFO_NOT_AVAILABLE;
    if (err == CL_SUCCESS)
        *ms = (double)(t1 - t0) * 1e-6;
    return err;
}

/* Enqueue kernel once on q, wait for it and return its device time. */
static clattn_status timed_run(clattn_context *ctx, cl_command_queue q, cl_kernel k, size_t global, size_t local,
                               double *ms)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_event ev = NULL;
    CLATTN_CL(cla_EnqueueNDRangeKernel(q, k, 1, &global, &local, 0, NULL, &ev));
    CLATTN_CL(cla_WaitForEvents(1, &ev));
    CLATTN_CL(event_ms(ev, ms));
cleanup:
    cla_ReleaseEvent(ev);
    return status;
}

/* The kernel's work-group size: PROBE_WG within the device's and the kernel's limits. */
static clattn_status kernel_wg(clattn_context *ctx, cl_kernel k, size_t *wg)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t kwg = 0;
    CLATTN_CL(cla_GetKernelWorkGroupInfo(k, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg, NULL));
    *wg = PROBE_WG;
    if (*wg > kwg)
        *wg = kwg;
    if (*wg > ctx->max_wg)
        *wg = ctx->max_wg;
    if (*wg == 0)
        *wg = 1;
cleanup:
    return status;
}

static clattn_status probe_fma(clattn_context *ctx, cl_program prog, cl_command_queue q, int vec, double *gflops)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_int err = CL_SUCCESS;
    cl_kernel k = NULL;
    cl_mem out = NULL;
    size_t wg = 1, global;
    cl_int iters = 64;
    const cl_float a = 0.999f, b = 0.001f;
    double ms = 0.0, best = 0.0;

    k = cla_CreateKernel(prog, "probe_fma", &err);
    CLATTN_CL(err);
    status = kernel_wg(ctx, k, &wg);
    if (status)
        goto cleanup;
    /* Eight work-groups per compute unit keep every unit busy (and GPUs' latency hidden). */
    global = (size_t)(ctx->compute_units ? ctx->compute_units : 1) * wg * 8;
    out = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_WRITE_ONLY, global * sizeof(cl_float), NULL, &err);
    CLATTN_CL(err);
    CLATTN_CL(cla_SetKernelArg(k, 0, sizeof out, &out));
    CLATTN_CL(cla_SetKernelArg(k, 1, sizeof a, &a));
    CLATTN_CL(cla_SetKernelArg(k, 2, sizeof b, &b));
    CLATTN_CL(cla_SetKernelArg(k, 3, sizeof iters, &iters));

    /* Warm-up (first launches may compile or page in), then a calibration run
     * sizing the loop so that one run lasts about PROBE_FMA_TARGET_MS. */
    status = timed_run(ctx, q, k, global, wg, &ms);
    if (status)
        goto cleanup;
    status = timed_run(ctx, q, k, global, wg, &ms);
    if (status)
        goto cleanup;
    {
        double scale = ms > 0.0 ? PROBE_FMA_TARGET_MS / ms : 1024.0;
        double want = (double)iters * (scale < 1.0 ? 1.0 : scale > 65536.0 ? 65536.0 : scale);
        iters = (cl_int)(want > (double)(1 << 24) ? (double)(1 << 24) : want);
    }
    CLATTN_CL(cla_SetKernelArg(k, 3, sizeof iters, &iters));
    for (int r = 0; r < PROBE_FMA_RUNS; r++) {
        status = timed_run(ctx, q, k, global, wg, &ms);
        if (status)
            goto cleanup;
        if (r == 0 || ms < best)
            best = ms;
    }
    CLATTN_CHECK(best > 0.0, CLATTN_CL_PROFILING_INFO_NOT_AVAILABLE, "the FMA probe reported a zero duration");
    /* 32 vec-wide FMAs per work-item and iteration (probe.cl), 2 flops each */
    *gflops = 2.0 * 32.0 * vec * (double)iters * (double)global / (best * 1e6);
cleanup:
    cla_ReleaseMemObject(out);
    cla_ReleaseKernel(k);
    return status;
}

static clattn_status probe_copy(clattn_context *ctx, cl_program prog, cl_command_queue q, double *gbps)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_int err = CL_SUCCESS;
    cl_kernel k = NULL;
    cl_mem src = NULL, dst = NULL;
    size_t wg = 1, global;
    cl_ulong bytes = PROBE_COPY_BYTES, n;
    double ms = 0.0, best = 0.0;

    k = cla_CreateKernel(prog, "probe_copy", &err);
    CLATTN_CL(err);
    status = kernel_wg(ctx, k, &wg);
    if (status)
        goto cleanup;
    /* Large devices have last-level caches of tens to hundreds of MiB. */
    if (ctx->global_mem >= ((cl_ulong)16 << 30) && ctx->max_alloc >= ((cl_ulong)256 << 20))
        bytes = (cl_ulong)256 << 20;
    if (bytes > ctx->max_alloc)
        bytes = ctx->max_alloc;
    if (ctx->global_mem / 4 < bytes)
        bytes = ctx->global_mem / 4;
    bytes -= bytes % ((cl_ulong)16 * wg);
    CLATTN_CHECK(bytes > 0, CLATTN_ERROR_DEVICE_LIMIT, "the device's memory is too small for the copy probe");
    n = bytes / 16;
    global = (size_t)n; /* a multiple of wg */

    src = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY, (size_t)bytes, NULL, &err);
    CLATTN_CL(err);
    dst = cla_CreateBuffer(ctx->cl_ctx, CL_MEM_WRITE_ONLY, (size_t)bytes, NULL, &err);
    CLATTN_CL(err);
    CLATTN_CL(cla_SetKernelArg(k, 0, sizeof src, &src));
    CLATTN_CL(cla_SetKernelArg(k, 1, sizeof dst, &dst));
    CLATTN_CL(cla_SetKernelArg(k, 2, sizeof n, &n));
    /* The first run allocates and pages in both buffers: not timed. */
    status = timed_run(ctx, q, k, global, wg, &ms);
    if (status)
        goto cleanup;
    for (int r = 0; r < PROBE_COPY_RUNS; r++) {
        status = timed_run(ctx, q, k, global, wg, &ms);
        if (status)
            goto cleanup;
        if (r == 0 || ms < best)
            best = ms;
    }
    CLATTN_CHECK(best > 0.0, CLATTN_CL_PROFILING_INFO_NOT_AVAILABLE, "the copy probe reported a zero duration");
    *gbps = 2.0 * (double)bytes / (best * 1e6);
cleanup:
    cla_ReleaseMemObject(src);
    cla_ReleaseMemObject(dst);
    cla_ReleaseKernel(k);
    return status;
}

clattn_status clattn_device_probe_run(clattn_context *ctx, clattn_device_probe *out)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_program prog = NULL;
    cl_command_queue q = NULL, own = NULL;
    cl_command_queue_properties props = 0;
    cl_int err = CL_SUCCESS;
    clattn_device_probe res;
    cl_uint pref = 0;
    cl_device_fp_config fp = 0;
    int vec = 4;
    char opts[128];
    if (!ctx)
        return CLATTN_ERROR_NULL_ARGUMENT;
    clattn__clear_error(ctx);
    CLATTN_CHECK(out != NULL, CLATTN_ERROR_NULL_ARGUMENT, "out is NULL");
    memset(&res, 0, sizeof res);

    /* Contexts the library created profile; an adopted queue may not. */
    CLATTN_CL(cla_GetCommandQueueInfo(ctx->queue, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL));
    q = ctx->queue;
    if (!(props & CL_QUEUE_PROFILING_ENABLE)) {
        own = cla_CreateCommandQueue(ctx->cl_ctx, ctx->device, CL_QUEUE_PROFILING_ENABLE, &err);
        CLATTN_CL(err);
        q = own;
    }
    /* The widest chains the device prefers (CPU runtimes: their SIMD width),
     * and fma() only where it is hardware. */
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof pref, &pref, NULL));
    CLATTN_CL(cla_GetDeviceInfo(ctx->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL));
    vec = pref >= 16 ? 16 : pref >= 8 ? 8 : 4;
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DPROBE_VEC=%d -DPROBE_FMA=%d", vec, (fp & CL_FP_FMA) ? 1 : 0);
    status = clattn__program_get(ctx, "probe", opts, &prog);
    if (status)
        goto cleanup;
    status = probe_fma(ctx, prog, q, vec, &res.fma_gflops);
    if (status)
        goto cleanup;
    status = probe_copy(ctx, prog, q, &res.copy_gbps);
    if (status)
        goto cleanup;
    *out = res;
cleanup:
    if (own) {
        cla_Drain(own);
        cla_ReleaseCommandQueue(own);
    }
    return status;
}
