/*
 * hostref.c - host-side pieces the clattn tool and the test harness share
 * (see hostref.h).
 */
#include <math.h>
#include <stdlib.h>

#include "hostref.h"

float elem_get(const void *p, clattn_dtype dt, size_t i)
{
    if (dt == CLATTN_F16)
        return clattn_half_to_float(((const uint16_t *)p)[i]);
    if (dt == CLATTN_BF16)
        return clattn_bf16_to_float(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

void elem_put(void *p, clattn_dtype dt, size_t i, float x)
{
    if (dt == CLATTN_F16)
        ((uint16_t *)p)[i] = clattn_float_to_half(x);
    else if (dt == CLATTN_BF16)
        ((uint16_t *)p)[i] = clattn_float_to_bf16(x);
    else
        ((float *)p)[i] = x;
}

enum { PLAIN_ORDERS = 4 };

/* q_i . k_j in float, summed in the given order (see plain_f32_error). The
 * product and the sum are separate statements, so no compiler contracts the
 * unfused orders into fused multiply-adds. */
static float plain_dot(const plain_problem *p, int order, size_t qrow, size_t krow)
{
    float lane[8] = {0};
    const int lanes = order == 2 ? 8 : order == 3 ? 4 : 1;
    for (int64_t dd = 0; dd < p->D; dd++) {
        const int64_t d = order == 1 ? p->D - 1 - dd : dd;
        const float x = elem_get(p->q, p->dtype, qrow * (size_t)p->D + (size_t)d);
        const float y = elem_get(p->k, p->dtype, krow * (size_t)p->D + (size_t)d);
        float *acc = &lane[dd % lanes];
        if (order == 3) {
            *acc = fmaf(x, y, *acc);
        } else {
            const float xy = x * y;
            *acc += xy;
        }
    }
    float dot = 0.0f;
    for (int e = 0; e < lanes; e++)
        dot += lane[e];
    return dot;
}

int plain_f32_error(const plain_problem *p, double *o_err, double *lse_err)
{
    const int64_t hpk = p->Hq / p->Hkv;
    float *s = malloc((size_t)p->Nk * sizeof *s);
    double worst = 0.0, worst_lse = 0.0;
    *o_err = *lse_err = INFINITY;
    if (!s)
        return -1;
    for (int order = 0; order < PLAIN_ORDERS; order++)
        for (int64_t b = 0; b < p->B; b++)
            for (int64_t h = 0; h < p->Hq; h++)
                for (int64_t i = 0; i < p->Nq; i++) {
                    const int64_t kvh = h / hpk, diag = i + p->diag_off;
                    const size_t row = (size_t)((b * p->Hq + h) * p->Nq + i);
                    float m = -INFINITY, l = 0.0f;
                    for (int64_t j = 0; j < p->Nk; j++) {
                        int kept = !(p->causal && j > diag);
                        kept &= !(p->window && p->wl >= 0 && j < diag - p->wl);
                        kept &= !(p->window && p->wr >= 0 && j > diag + p->wr);
                        kept &= !(p->key_lengths && j >= p->key_lengths[b]);
                        s[j] = -INFINITY;
                        if (!kept)
                            continue;
                        float x = plain_dot(p, order, row, (size_t)((b * p->Hkv + kvh) * p->Nk + j)) * p->scale;
                        if (p->softcap > 0)
                            x = p->softcap * tanhf(x / p->softcap);
                        if (p->alibi)
                            x -= p->alibi[h] * (float)llabs(diag - j);
                        if (p->bias) {
                            const int64_t *bs = p->bshape;
                            x += p->bias[(((bs[0] > 1 ? b : 0) * bs[1] + (bs[1] > 1 ? h : 0)) * bs[2] +
                                          (bs[2] > 1 ? i : 0)) * bs[3] + j];
                        }
                        s[j] = x;
                        m = x > m ? x : m;
                    }
                    for (int64_t j = 0; j < p->Nk; j++)
                        l += (s[j] = s[j] == -INFINITY ? 0.0f : expf(s[j] - m));
                    if (p->ref_lse && l > 0.0f && isfinite(p->ref_lse[row])) {
                        const double e = fabs((double)(m + logf(l)) - p->ref_lse[row]);
                        worst_lse = e > worst_lse ? e : worst_lse;
                    }
                    for (int64_t d = 0; d < p->Dv; d++) {
                        float acc = 0.0f;
                        for (int64_t j = 0; j < p->Nk; j++)
                            if (s[j] != 0.0f) {
                                const float pv = s[j] * elem_get(p->v, p->dtype,
                                                                 (size_t)((b * p->Hkv + kvh) * p->Nk + j) *
                                                                         (size_t)p->Dv + (size_t)d);
                                acc += pv;
                            }
                        const float o = l > 0.0f ? acc / l : 0.0f;
                        const double ref = p->ref_o[row * (size_t)p->Dv + (size_t)d];
                        if (isfinite(ref)) {
                            const double e = fabs((double)o - ref);
                            worst = e > worst ? e : worst;
                        }
                    }
                }
    free(s);
    *o_err = worst;
    *lse_err = worst_lse;
    return 0;
}
