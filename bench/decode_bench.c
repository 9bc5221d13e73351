/*
 * decode_bench.c - decode (split-KV) against flash for few queries and a long
 * key history, timed in one process so the ratio is like for like.
 *
 *   clattn-decode-bench [--nq N] [--nk N] [--heads H] [--kv-heads HKV] [--dim D] [--repeat R] [--page P]
 *
 * Each variant: one plan, 2 warm-up runs, then R runs, each timed from a
 * marker enqueued before it to the end of the plan's event (decode is two
 * kernels); the median is printed. Both results are checked against the CPU
 * reference (all rows: Nq is small) with the f32 tolerance. --page P also
 * runs each variant on the same keys in a pool of P-key pages in shuffled
 * order read through a block table, its runs interleaved with the
 * contiguous plan's, and prints the paged/contiguous time ratio.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long nq = 1, nk = 16384, H = 32, HKV = 8, D = 128, R = 10, P = 0;
    clattn_context *ctx;
    cl_context c;
    cl_command_queue queue;
    cl_int err;
    for (int i = 1; i + 1 < argc; i += 2) {
        long *dst = !strcmp(argv[i], "--nq") ? &nq : !strcmp(argv[i], "--nk") ? &nk : !strcmp(argv[i], "--heads") ? &H
                  : !strcmp(argv[i], "--kv-heads") ? &HKV : !strcmp(argv[i], "--dim") ? &D
                  : !strcmp(argv[i], "--repeat") ? &R : !strcmp(argv[i], "--page") ? &P : NULL;
        if (!dst) {
            fprintf(stderr, "clattn-decode-bench: unknown option %s\n", argv[i]);
            return 2;
        }
        *dst = atol(argv[i + 1]);
    }
    if (nq < 1 || nk < 1 || H < 1 || HKV < 1 || H % HKV || D < 1 || D > 256 || R < 1 || P < 0 || (P && nk % P))
        return 2;
    if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS)
        return 3;
    clattn_context_cl(ctx, &c, NULL, &queue);
    const size_t qn = (size_t)(H * nq * D), kn = (size_t)(HKV * nk * D);
    float *hq = malloc(qn * 4), *hk = malloc(kn * 4), *hv = malloc(kn * 4), *ref = malloc(qn * 4), *out = malloc(qn * 4);
    double *ms = malloc(2 * (size_t)R * sizeof *ms);
    uint64_t s = 99;
    if (!hq || !hk || !hv || !ref || !out || !ms)
        return 3;
    for (size_t i = 0; i < qn; i++)
        hq[i] = (float)((s = s * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < kn; i++)
        hk[i] = (float)((s = s * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < kn; i++)
        hv[i] = (float)((s = s * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
    {
        clattn_host_args ha;
        memset(&ha, 0, sizeof ha);
        ha.q = (clattn_host_tensor){hq, CLATTN_F32, {1, H, nq, D}};
        ha.k = (clattn_host_tensor){hk, CLATTN_F32, {1, HKV, nk, D}};
        ha.v = (clattn_host_tensor){hv, CLATTN_F32, {1, HKV, nk, D}};
        ha.o = (clattn_host_tensor){ref, CLATTN_F32, {1, H, nq, D}};
        if (clattn_reference(NULL, &ha) != CLATTN_SUCCESS)
            return 3;
    }
    cl_mem mq = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, qn * 4, hq, &err);
    cl_mem mk = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, kn * 4, hk, &err);
    cl_mem mv = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, kn * 4, hv, &err);
    cl_mem mo = clCreateBuffer(c, CL_MEM_READ_WRITE, qn * 4, NULL, &err);
    if (err != CL_SUCCESS)
        return 3;
    /* --page: the same keys in pages [pages, HKV, P, D] of a pool in shuffled order */
    const long pages = P ? nk / P : 0;
    cl_mem mpk = NULL, mpv = NULL, mt = NULL;
    if (P) {
        float *pk = malloc(kn * 4), *pv = malloc(kn * 4);
        int32_t *table = malloc((size_t)pages * 4);
        if (!pk || !pv || !table)
            return 3;
        for (long i = 0; i < pages; i++)
            table[i] = (int32_t)i;
        for (long i = pages - 1; i > 0; i--) {
            const long j = (long)((s = s * 6364136223846793005ull + 1) >> 33) % (i + 1);
            const int32_t t = table[i];
            table[i] = table[j], table[j] = t;
        }
        for (long j = 0; j < pages; j++)
            for (long h = 0; h < HKV; h++)
                for (long r = 0; r < P; r++) {
                    memcpy(pk + ((table[j] * HKV + h) * P + r) * D, hk + (h * nk + j * P + r) * D, (size_t)D * 4);
                    memcpy(pv + ((table[j] * HKV + h) * P + r) * D, hv + (h * nk + j * P + r) * D, (size_t)D * 4);
                }
        mpk = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, kn * 4, pk, &err);
        mpv = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, kn * 4, pv, &err);
        mt = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, (size_t)pages * 4, table, &err);
        free(pk), free(pv), free(table);
        if (err != CL_SUCCESS)
            return 3;
    }
    printf("# %s: Nq=%ld Nk=%ld Hq=%ld Hkv=%ld D=%ld f32, median of %ld runs\n", clattn_context_device_name(ctx), nq,
           nk, H, HKV, D, R);
    double med[2] = {0, 0};
    const clattn_variant vs[2] = {CLATTN_VARIANT_DECODE, CLATTN_VARIANT_FLASH};
    for (int vi = 0; vi < 2; vi++) {
        clattn_plan *plan[2] = {NULL, NULL};
        clattn_args a[2];
        const int np = P ? 2 : 1;
        double pm[2] = {0, 0};
        for (int p = 0; p < np; p++) { /* p = 1: paged */
            clattn_attention_desc d = {0};
            d.variant = vs[vi];
            memset(&a[p], 0, sizeof a[p]);
            a[p].q = clattn_tensor_make(mq, 0, CLATTN_F32, 1, H, nq, D);
            a[p].k = p ? clattn_tensor_make(mpk, 0, CLATTN_F32, pages, HKV, P, D)
                       : clattn_tensor_make(mk, 0, CLATTN_F32, 1, HKV, nk, D);
            a[p].v = p ? clattn_tensor_make(mpv, 0, CLATTN_F32, pages, HKV, P, D)
                       : clattn_tensor_make(mv, 0, CLATTN_F32, 1, HKV, nk, D);
            a[p].o = clattn_tensor_make(mo, 0, CLATTN_F32, 1, H, nq, D);
            if (p)
                a[p].block_table = mt, a[p].page_size = P, a[p].max_pages = pages;
            if (clattn_plan_create(ctx, &d, &a[p], &plan[p]) != CLATTN_SUCCESS) {
                printf("%-7s skipped: %s\n", clattn_variant_name(vs[vi]), clattn_context_last_error(ctx));
                plan[p] = NULL;
            }
        }
        if (!plan[0] || (P && !plan[1])) {
            clattn_plan_free(plan[0]), clattn_plan_free(plan[1]);
            continue;
        }
        /* contiguous and paged runs alternate, so both see the same machine load */
        for (long r = -2; r < R; r++)
            for (int p = 0; p < np; p++) {
                cl_event start, end;
                cl_ulong t0 = 0, t1 = 0;
                clEnqueueMarkerWithWaitList(queue, 0, NULL, &start);
                clattn_plan_run(plan[p], &a[p], NULL, 0, NULL, &end);
                clWaitForEvents(1, &end);
                clGetEventProfilingInfo(start, CL_PROFILING_COMMAND_END, sizeof t0, &t0, NULL);
                clGetEventProfilingInfo(end, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
                clReleaseEvent(start);
                clReleaseEvent(end);
                if (r >= 0)
                    ms[p * R + r] = (double)(t1 - t0) * 1e-6;
            }
        for (int p = 0; p < np; p++) {
            qsort(ms + p * R, (size_t)R, sizeof *ms, cmp);
            pm[p] = ms[p * R + R / 2];
            clattn_plan_run(plan[p], &a[p], NULL, 0, NULL, NULL);
            clEnqueueReadBuffer(queue, mo, CL_TRUE, 0, qn * 4, out, 0, NULL, NULL);
            clattn_compare_result cr = clattn_compare_f32(out, ref, qn);
            printf("%-7s%s %10.3f ms  max_err %.2e %s  %s\n", clattn_variant_name(vs[vi]), p ? " paged" : "", pm[p],
                   cr.max_abs_err, clattn_compare_ok(&cr, 1e-5, 1e-4, 1e-7) ? "verified" : "FAILED",
                   clattn_plan_params_json(plan[p]));
            clattn_plan_free(plan[p]);
        }
        med[vi] = pm[0];
        if (P)
            printf("%-7s paged (%ld-key pages, shuffled) / contiguous time: %.3f\n", clattn_variant_name(vs[vi]), P,
                   pm[1] / pm[0]);
    }
    if (med[0] > 0 && med[1] > 0)
        printf("decode is %.2fx the speed of flash\n", med[1] / med[0]);
    clReleaseMemObject(mq), clReleaseMemObject(mk), clReleaseMemObject(mv), clReleaseMemObject(mo);
    if (P)
        clReleaseMemObject(mpk), clReleaseMemObject(mpv), clReleaseMemObject(mt);
    clattn_context_free(ctx);
    free(hq), free(hk), free(hv), free(ref), free(out), free(ms);
    return 0;
}
