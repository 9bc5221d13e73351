/*
 * half.c - exact conversions between float and the 16-bit storage formats
 * (IEEE binary16 and bfloat16), round to nearest even, NaN kept quiet.
 */
#include <string.h>

#include "internal.h"

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float clattn_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* Inf or NaN */
        return u2f(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0));
    if (exp == 0) { /* zero or subnormal: man * 2^-24 */
        float f = (float)man * u2f(0x33800000u);
        return sign ? -f : f;
    }
    return u2f(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t clattn_float_to_half(float f)
{
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: keep quiet, keep some payload */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x1ffu));
    if (a >= 0x477ff000u) /* rounds to >= 65520: Inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        /* value / 2^-24, rounded to nearest even by adding a float magic */
        float v = u2f(a) + 0.5f; /* 0.5 = 2^-1: aligns the half-subnormal ulp (2^-24) with float's ulp at 0.5 */
        uint32_t r = f2u(v) - f2u(0.5f);
        return (uint16_t)(sign | r);
    }
    {
        uint32_t mant_odd = (a >> 13) & 1u;
        a += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
        return (uint16_t)(sign | (a >> 13));
    }
}

float clattn_bf16_to_float(uint16_t b)
{
    return u2f((uint32_t)b << 16);
}

uint16_t clattn_float_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
