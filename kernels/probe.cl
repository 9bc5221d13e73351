/*
 * probe.cl - micro-kernels that measure a device's ceilings for `clattn prof`
 * (clattn_device_probe_run): f32 multiply-add throughput and device-memory
 * copy bandwidth. They compute nothing useful; their results are written
 * only so that the compiler cannot drop the work.
 *
 * NDRange: 1-D in both kernels.
 */

#ifndef CLATTN_COMMON
#include "common.cl"
#endif

#ifndef PROBE_VEC
#define PROBE_VEC 4 /* lanes of each chain: 4, 8 or 16 (the host picks the device's preferred width) */
#endif
#ifndef PROBE_FMA
#define PROBE_FMA 1 /* 1: fma() (the device has hardware FMA), 0: mad() */
#endif

#define PROBE_CAT_(a, b) a##b
#define PROBE_CAT(a, b) PROBE_CAT_(a, b)
typedef PROBE_CAT(float, PROBE_VEC) probe_vec;

#if PROBE_FMA
#define PROBE_OP(x, a, b) fma((x), (a), (b))
#else
#define PROBE_OP(x, a, b) mad((x), (a), (b))
#endif

/*
 * Eight independent chains x = x * a + b of PROBE_VEC lanes per work-item, so
 * that every FMA pipeline has independent work in flight (ILP on GPUs; full
 * vector registers on CPU runtimes, which run each work-item's loop on its
 * own). fma() where the device has it in hardware: PoCL, for one, lowers
 * mad() to a separate multiply and add. a and b are arguments, so the chains
 * cannot be folded; with 0 < a < 1 they converge to b / (1 - a) and stay
 * finite and normal. Every lane reaches the output, or the compiler would
 * drop the chains that do not. 32 * PROBE_VEC FMAs per work-item and
 * iteration.
 */
#define PROBE_STEP8()               \
    x0 = PROBE_OP(x0, a4, b4);      \
    x1 = PROBE_OP(x1, a4, b4);      \
    x2 = PROBE_OP(x2, a4, b4);      \
    x3 = PROBE_OP(x3, a4, b4);      \
    x4 = PROBE_OP(x4, a4, b4);      \
    x5 = PROBE_OP(x5, a4, b4);      \
    x6 = PROBE_OP(x6, a4, b4);      \
    x7 = PROBE_OP(x7, a4, b4)

__kernel void probe_fma(__global float *out, const float a, const float b, const int iters)
{
    const size_t gid = get_global_id(0);
    const probe_vec a4 = (probe_vec)(a), b4 = (probe_vec)(b);
    const float g = (float)(gid & 1023) * 1e-3f;
    probe_vec x0 = (probe_vec)(g);
    probe_vec x1 = x0 + 1.0f, x2 = x0 + 2.0f, x3 = x0 + 3.0f;
    probe_vec x4 = x0 + 4.0f, x5 = x0 + 5.0f, x6 = x0 + 6.0f, x7 = x0 + 7.0f;
    for (int i = 0; i < iters; i++) {
        PROBE_STEP8();
        PROBE_STEP8();
        PROBE_STEP8();
        PROBE_STEP8();
    }
    const probe_vec s = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7));
#if PROBE_VEC == 16
    const float8 s8 = s.lo + s.hi;
    const float4 s4 = s8.lo + s8.hi;
#elif PROBE_VEC == 8
    const float4 s4 = s.lo + s.hi;
#else
    const float4 s4 = s;
#endif
    out[gid] = (s4.x + s4.y) + (s4.z + s4.w);
}

/* One float4 per work-item; n is the number of float4 elements. */
__kernel void probe_copy(__global const float4 *restrict src, __global float4 *restrict dst, const ulong n)
{
    const size_t i = get_global_id(0);
    if (i < n)
        dst[i] = src[i];
}
