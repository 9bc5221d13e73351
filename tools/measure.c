/*
 * measure.c - what the measuring subcommands (prof, tune, run --repeat)
 * share: device time of a plan's runs from OpenCL profiling events, medians,
 * and the CPU reference of sampled query rows.
 */
#include <stdlib.h>
#include <string.h>

#include "clattn.h"
#include "cli.h"

#define MEASURE_BATCH 64 /* runs enqueued before waiting for their events */

static cl_int event_time(cl_event ev, cl_profiling_info what, cl_ulong *t)
{
    return clGetEventProfilingInfo(ev, what, sizeof *t, t, NULL);
}

/*
 * A plan may enqueue several commands (the gemm variant does) and its event
 * is that of the last one, so a run is timed like a CUDA event pair: from a
 * marker enqueued just before it to the end of its event. The start is never
 * before the end of the run ahead of it (an implementation that stamps a
 * marker early cannot charge a run for the previous one) nor after the start
 * of the run's own event.
 */
int time_plan_runs(clattn_context *ctx, const char *arg, clattn_plan *plan, const clattn_args *a, int n, double *ms)
{
    cl_event ev[MEASURE_BATCH], mk[MEASURE_BATCH];
    cl_command_queue queue;
    cl_ulong prev_end = 0;
    int rc = RC_OK;
    clattn_status st = clattn_context_cl(ctx, NULL, NULL, &queue);
    if (st != CLATTN_SUCCESS)
        return lib_fail(st, 0, arg, clattn_context_last_error(ctx));
    for (int done = 0; done < n && rc == RC_OK;) {
        const int b = n - done < MEASURE_BATCH ? n - done : MEASURE_BATCH;
        int queued = 0;
        cl_int err = CL_SUCCESS;
        for (; queued < b; queued++) {
            err = clEnqueueMarkerWithWaitList(queue, 0, NULL, &mk[queued]);
            if (err != CL_SUCCESS) {
                rc = cl_fail(err, arg, "enqueueing a marker failed");
                break;
            }
            st = clattn_plan_run(plan, a, NULL, 0, NULL, &ev[queued]);
            if (st != CLATTN_SUCCESS) {
                clReleaseEvent(mk[queued]);
                rc = lib_fail(st, 0, arg, clattn_context_last_error(ctx));
                break;
            }
        }
        err = queued ? clWaitForEvents((cl_uint)queued, ev) : CL_SUCCESS;
        if (err != CL_SUCCESS && rc == RC_OK)
            rc = cl_fail(err, arg, "waiting for the attention kernels failed");
        for (int i = 0; i < queued; i++) {
            cl_ulong m_end = 0, e_start = 0, e_end = 0;
            if (rc == RC_OK &&
                ((err = event_time(mk[i], CL_PROFILING_COMMAND_END, &m_end)) != CL_SUCCESS ||
                 (err = event_time(ev[i], CL_PROFILING_COMMAND_START, &e_start)) != CL_SUCCESS ||
                 (err = event_time(ev[i], CL_PROFILING_COMMAND_END, &e_end)) != CL_SUCCESS))
                rc = cl_fail(err, arg, "reading the profiling events failed");
            if (rc == RC_OK) {
                cl_ulong t0 = m_end > prev_end ? m_end : prev_end;
                if (t0 > e_start)
                    t0 = e_start;
                ms[done + i] = e_end > t0 ? (double)(e_end - t0) * 1e-6 : 0.0;
                prev_end = e_end;
            }
            clReleaseEvent(mk[i]);
            clReleaseEvent(ev[i]);
        }
        done += queued;
    }
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double median_sorted(double *v, int n)
{
    if (n <= 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/*
 * Rows [r0, r0 + nr) of every head of batch 0, as the nr-row query Q[r0..]
 * against the keys they may see: with a causal mask the first r0 + nr keys
 * under bottom-right alignment (off = r0), which keeps exactly j <= r0 + r,
 * the full problem's rule; otherwise all N keys. q, k and v are the whole
 * [B, H(kv), N, D] inputs in storage dtype dt (batch 0 leads each buffer).
 */
int sample_reference(const char *arg, clattn_dtype dt, int64_t H, int64_t Hkv, int64_t N, int64_t D, const void *q,
                     const void *k, const void *v, int causal, int64_t r0, int64_t nr, float *ref_o, float *ref_lse,
                     int64_t ld, int64_t at)
{
    const size_t esz = clattn_dtype_size(dt);
    const int64_t nk = causal ? r0 + nr : N;
    unsigned char *qh = malloc((size_t)(H * nr * D) * esz);
    unsigned char *kh = NULL, *vh = NULL;
    float *oh = malloc((size_t)(H * nr * D) * sizeof(float)), *lh = malloc((size_t)(H * nr) * sizeof(float));
    clattn_attention_desc d;
    clattn_host_args ha;
    clattn_status st;
    int rc = RC_OK;
    if (nk < N) { /* the leading nk keys of each kv head */
        kh = malloc((size_t)(Hkv * nk * D) * esz);
        vh = malloc((size_t)(Hkv * nk * D) * esz);
    }
    if (!qh || !oh || !lh || (nk < N && (!kh || !vh))) {
        rc = fail(RC_DEVICE, arg, "out of host memory for the reference");
        goto cleanup;
    }
    for (int64_t h = 0; h < H; h++)
        memcpy(qh + (size_t)(h * nr * D) * esz, (const unsigned char *)q + (size_t)((h * N + r0) * D) * esz,
               (size_t)(nr * D) * esz);
    for (int64_t h = 0; kh && h < Hkv; h++) {
        memcpy(kh + (size_t)(h * nk * D) * esz, (const unsigned char *)k + (size_t)(h * N * D) * esz,
               (size_t)(nk * D) * esz);
        memcpy(vh + (size_t)(h * nk * D) * esz, (const unsigned char *)v + (size_t)(h * N * D) * esz,
               (size_t)(nk * D) * esz);
    }
    memset(&d, 0, sizeof d);
    d.causal = causal;
    d.align = CLATTN_ALIGN_BOTTOM_RIGHT; /* off = nk - nr = r0 with a causal mask; no effect without */
    memset(&ha, 0, sizeof ha);
    ha.q = (clattn_host_tensor){qh, dt, {1, H, nr, D}};
    ha.k = (clattn_host_tensor){kh ? (void *)kh : (void *)k, dt, {1, Hkv, nk, D}};
    ha.v = (clattn_host_tensor){vh ? (void *)vh : (void *)v, dt, {1, Hkv, nk, D}};
    ha.o = (clattn_host_tensor){oh, CLATTN_F32, {1, H, nr, D}};
    ha.lse = (clattn_host_tensor){lh, CLATTN_F32, {1, H, nr, 1}};
    st = clattn_reference(&d, &ha);
    if (st != CLATTN_SUCCESS) {
        rc = lib_fail(st, 0, arg, "the CPU reference failed");
        goto cleanup;
    }
    for (int64_t h = 0; h < H; h++) {
        memcpy(ref_o + (size_t)((h * ld + at) * D), oh + (size_t)(h * nr * D), (size_t)(nr * D) * sizeof(float));
        memcpy(ref_lse + (size_t)(h * ld + at), lh + (size_t)(h * nr), (size_t)nr * sizeof(float));
    }
cleanup:
    free(qh);
    free(kh);
    free(vh);
    free(oh);
    free(lh);
    return rc;
}
