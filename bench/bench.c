/*
 * bench.c - GFLOP/s of the fused variants on one device, measured in the
 * same run so the numbers are comparable as ratios.
 *
 *   clattn-bench [--variants naive,tiled,flash] [--sizes 512,1024,...] [--batch B]
 *                [--heads H] [--kv-heads HKV] [--dim D] [--causal] [--repeat N] [--device SPEC]
 *
 * Each point: one plan, two warm-up runs, then N runs timed with OpenCL
 * profiling events; the median is reported. FLOPs count only kept (unmasked)
 * query-key pairs, 4 * D each (QK^T and PV). The first run is also verified
 * against the CPU reference on a sample of rows (all heads of batch 0, the
 * first and last 8 query rows) so a fast wrong kernel cannot be reported.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double kept_pairs(long nq, long nk, int causal)
{
    double n = 0;
    if (!causal)
        return (double)nq * nk;
    for (long i = 0; i < nq; i++) /* top-left alignment */
        n += (double)(i + 1 < nk ? i + 1 : nk);
    return n;
}

int main(int argc, char **argv)
{
    const char *variants = "naive,tiled,flash", *sizes = "512,1024,2048,4096", *device = NULL;
    int B = 1, H = 8, HKV = 0, D = 64, causal = 0, repeat = 5;
    clattn_context *ctx = NULL;
    cl_context clctx;
    cl_command_queue queue;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--causal")) { causal = 1; continue; }
        if (!v) { fprintf(stderr, "clattn-bench: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--variants")) variants = v;
        else if (!strcmp(a, "--sizes")) sizes = v;
        else if (!strcmp(a, "--batch")) B = atoi(v);
        else if (!strcmp(a, "--heads")) H = atoi(v);
        else if (!strcmp(a, "--kv-heads")) HKV = atoi(v);
        else if (!strcmp(a, "--dim")) D = atoi(v);
        else if (!strcmp(a, "--repeat")) repeat = atoi(v);
        else if (!strcmp(a, "--device")) device = v;
        else { fprintf(stderr, "clattn-bench: unknown option %s\n", a); return 2; }
        i++;
    }
    if (!HKV)
        HKV = H;
    if (B < 1 || H < 1 || HKV < 1 || H % HKV || D < 1 || D > 256 || repeat < 1) {
        fprintf(stderr, "clattn-bench: bad shape or repeat\n");
        return 2;
    }
    if (clattn_context_create(device, &ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn-bench: no device\n");
        return 3;
    }
    clattn_context_cl(ctx, &clctx, NULL, &queue);
    printf("# device: %s\n# B=%d H=%d Hkv=%d D=%d %s, f32, median of %d runs after 2 warm-ups\n",
           clattn_context_device_name(ctx), B, H, HKV, D, causal ? "causal" : "non-causal", repeat);
    printf("%-8s %6s %10s %10s %8s  %s\n", "variant", "N", "ms", "GFLOP/s", "max_err", "params");

    char sizes_buf[256];
    snprintf(sizes_buf, sizeof sizes_buf, "%s", sizes);
    for (char *sp = strtok(sizes_buf, ","); sp; sp = strtok(NULL, ",")) {
        const long N = atol(sp);
        const size_t nq = (size_t)B * H * N * D, nk = (size_t)B * HKV * N * D;
        float *hq = malloc(nq * 4), *hk = malloc(nk * 4), *hv = malloc(nk * 4), *ho = malloc(nq * 4);
        float *ref = malloc((size_t)H * 16 * D * 4), *sub = malloc((size_t)H * 16 * D * 4);
        uint64_t s = 12345;
        cl_int err;
        cl_mem mq, mk, mv, mo;
        if (!hq || !hk || !hv || !ho || !ref || !sub || N < 16)
            return 3;
        for (size_t i = 0; i < nq; i++)
            hq[i] = (float)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 40) / 16777216.0f - 0.5f;
        for (size_t i = 0; i < nk; i++)
            hk[i] = (float)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 40) / 16777216.0f - 0.5f;
        for (size_t i = 0; i < nk; i++)
            hv[i] = (float)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 40) / 16777216.0f - 0.5f;
        mq = clCreateBuffer(clctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, nq * 4, hq, &err);
        mk = clCreateBuffer(clctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, nk * 4, hk, &err);
        mv = clCreateBuffer(clctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, nk * 4, hv, &err);
        mo = clCreateBuffer(clctx, CL_MEM_READ_WRITE, nq * 4, NULL, &err);
        if (err != CL_SUCCESS)
            return 3;
        /* reference for the sampled rows: batch 0, every head, rows 0..7 and N-8..N-1 */
        {
            clattn_attention_desc d = {0};
            float *q16 = malloc((size_t)H * 16 * D * 4);
            d.causal = causal;
            d.align = CLATTN_ALIGN_TOP_LEFT;
            for (int h = 0; h < H; h++)
                for (int r = 0; r < 16; r++)
                    memcpy(q16 + ((size_t)h * 16 + r) * D, hq + ((size_t)h * N + (r < 8 ? r : N - 16 + r)) * D,
                           (size_t)D * 4);
            /* The first 8 rows against all keys with top-left alignment keep
             * keys j <= r; the last 8 with bottom-right alignment (off =
             * N - 8) keep j <= N - 8 + r: the same rows of the full problem. */
            for (int half = 0; half < 2; half++) {
                clattn_host_args ha;
                float *qh = malloc((size_t)H * 8 * D * 4), *oh = malloc((size_t)H * 8 * D * 4);
                for (int h = 0; h < H; h++)
                    memcpy(qh + (size_t)h * 8 * D, q16 + ((size_t)h * 16 + half * 8) * D, (size_t)8 * D * 4);
                memset(&ha, 0, sizeof ha);
                ha.q = (clattn_host_tensor){qh, CLATTN_F32, {1, H, 8, D}};
                ha.k = (clattn_host_tensor){hk, CLATTN_F32, {1, HKV, N, D}};
                ha.v = (clattn_host_tensor){hv, CLATTN_F32, {1, HKV, N, D}};
                ha.o = (clattn_host_tensor){oh, CLATTN_F32, {1, H, 8, D}};
                d.align = half ? CLATTN_ALIGN_BOTTOM_RIGHT : CLATTN_ALIGN_TOP_LEFT;
                clattn_reference(&d, &ha);
                for (int h = 0; h < H; h++)
                    memcpy(ref + ((size_t)h * 16 + half * 8) * D, oh + (size_t)h * 8 * D, (size_t)8 * D * 4);
                free(qh), free(oh);
            }
            free(q16);
        }
        char vbuf[128];
        snprintf(vbuf, sizeof vbuf, "%s", variants);
        char *save = NULL;
        for (char *vn = strtok_r(vbuf, ",", &save); vn; vn = strtok_r(NULL, ",", &save)) {
            clattn_attention_desc d = {0};
            clattn_args a;
            clattn_plan *plan = NULL;
            double *ms = calloc((size_t)repeat, sizeof *ms), max_err = 0;
            clattn_status st;
            d.causal = causal;
            if (clattn_variant_parse(vn, &d.variant) != CLATTN_SUCCESS) {
                fprintf(stderr, "clattn-bench: unknown variant %s\n", vn);
                return 2;
            }
            memset(&a, 0, sizeof a);
            a.q = clattn_tensor_make(mq, 0, CLATTN_F32, B, H, N, D);
            a.k = clattn_tensor_make(mk, 0, CLATTN_F32, B, HKV, N, D);
            a.v = clattn_tensor_make(mv, 0, CLATTN_F32, B, HKV, N, D);
            a.o = clattn_tensor_make(mo, 0, CLATTN_F32, B, H, N, D);
            st = clattn_plan_create(ctx, &d, &a, &plan);
            if (st != CLATTN_SUCCESS) {
                printf("%-8s %6ld  skipped: %s\n", vn, N, clattn_context_last_error(ctx));
                free(ms);
                continue;
            }
            for (int r = -2; r < repeat; r++) {
                cl_event ev;
                cl_ulong t0 = 0, t1 = 0;
                clattn_plan_run(plan, &a, NULL, 0, NULL, &ev);
                clWaitForEvents(1, &ev);
                clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
                clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
                clReleaseEvent(ev);
                if (r >= 0)
                    ms[r] = (double)(t1 - t0) * 1e-6;
            }
            clEnqueueReadBuffer(queue, mo, CL_TRUE, 0, nq * 4, ho, 0, NULL, NULL);
            for (int h = 0; h < H; h++)
                for (int r = 0; r < 16; r++)
                    memcpy(sub + ((size_t)h * 16 + r) * D, ho + ((size_t)h * N + (r < 8 ? r : N - 16 + r)) * D,
                           (size_t)D * 4);
            {
                clattn_compare_result cr = clattn_compare_f32(sub, ref, (size_t)H * 16 * D);
                max_err = cr.max_abs_err + (cr.nonfinite_mismatch ? INFINITY : 0);
            }
            qsort(ms, (size_t)repeat, sizeof *ms, cmp_double);
            {
                const double med = ms[repeat / 2];
                const double flops = 4.0 * D * B * H * kept_pairs(N, N, causal);
                printf("%-8s %6ld %10.3f %10.2f %8.1e  %s\n", vn, N, med, flops / (med * 1e6), max_err,
                       clattn_plan_params_json(plan));
                fflush(stdout);
            }
            clattn_plan_free(plan);
            free(ms);
        }
        clReleaseMemObject(mq), clReleaseMemObject(mk), clReleaseMemObject(mv), clReleaseMemObject(mo);
        free(hq), free(hk), free(hv), free(ho), free(ref), free(sub);
    }
    clattn_context_free(ctx);
    return 0;
}
