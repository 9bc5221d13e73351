/*
 * fuzz_problem.c - libFuzzer harness for the problem validator
 * (clattn__problem_init, the one validation behind plan_create, plan_run, the
 * host call and the reference) and for the CPU reference behind it.
 *
 * The input is a fixed little-endian record (missing bytes read as zero):
 *   off  size
 *     0     1  flags: 1 host path, 2 varlen, 4|8|16 alias selector (host path),
 *              32 lse, 64 bias, 128 alibi
 *     1     1  flags: 1 key lengths, 2 causal, 4 sliding window
 *     2     4  scale (f32)          6  4  softcap (f32)
 *    10     4  window_left (i32)   14  4  window_right (i32)
 *    18     1  align (i8)          19  1  variant (i8)
 *    20  6*73  q, k, v, o, lse, bias: dtype (i8), shape[4], strides[4] (i64), byte offset (u64)
 *   458    48  alibi_offset, key_lengths_offset (u64), total_q, total_k (i64), cu_seqlens_q/k offsets (u64)
 *   506   136  host values: key_lengths i32[8], alibi f32[8], cu_seqlens_q i32[9], cu_seqlens_k i32[9]
 *
 * Device path: the record as device-view metadata (no buffers). On success
 * the validated problem must be consistent (dims in range, Hq a multiple of
 * Hkv, head dims within CLATTN_MAX_HEAD_DIM, finite scale, softcap >= 0), every
 * view's byte range must cover each element the kernels can address, and the
 * elements of an output view must not overlap (checked exhaustively for
 * small views). On failure the status is one of the library's own.
 * Host path: the record as contiguous host arrays. When the metadata is
 * invalid the reference must reject it with the same status; when it is valid
 * and small the reference runs on arrays of exactly the validated sizes
 * (AddressSanitizer catches any read or write past them), an output aliased
 * onto an input must be refused, and a result must hold no NaN.
 * Built with -Dfuzz=true (clang, -fsanitize=fuzzer,address,undefined).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { REC_SIZE = 642, TENSORS = 6 };

typedef struct record {
    unsigned flags, flags2;
    float scale, softcap;
    int32_t wl, wr;
    int align, variant;
    struct {
        int dtype;
        int64_t shape[4], strides[4];
        uint64_t offset;
    } t[TENSORS];
    uint64_t alibi_off, kl_off, cuq_off, cuk_off;
    int64_t total_q, total_k;
    int32_t kl[8], cu_q[9], cu_k[9];
    float alibi[8];
} record;

static const uint8_t *rd(const uint8_t *buf, size_t *at, size_t n)
{
    const uint8_t *p = buf + *at;
    *at += n;
    return p;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static float le_f32(const uint8_t *p)
{
    const uint32_t u = (uint32_t)le(p, 4);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void parse(const uint8_t *data, size_t size, record *r)
{
    uint8_t buf[REC_SIZE];
    size_t at = 0;
    memset(buf, 0, sizeof buf);
    memcpy(buf, data, size < sizeof buf ? size : sizeof buf);
    r->flags = *rd(buf, &at, 1);
    r->flags2 = *rd(buf, &at, 1);
    r->scale = le_f32(rd(buf, &at, 4));
    r->softcap = le_f32(rd(buf, &at, 4));
    r->wl = (int32_t)(uint32_t)le(rd(buf, &at, 4), 4);
    r->wr = (int32_t)(uint32_t)le(rd(buf, &at, 4), 4);
    r->align = (int8_t)*rd(buf, &at, 1);
    r->variant = (int8_t)*rd(buf, &at, 1);
    for (int t = 0; t < TENSORS; t++) {
        r->t[t].dtype = (int8_t)*rd(buf, &at, 1);
        for (int i = 0; i < 4; i++)
            r->t[t].shape[i] = (int64_t)le(rd(buf, &at, 8), 8);
        for (int i = 0; i < 4; i++)
            r->t[t].strides[i] = (int64_t)le(rd(buf, &at, 8), 8);
        r->t[t].offset = le(rd(buf, &at, 8), 8);
    }
    r->alibi_off = le(rd(buf, &at, 8), 8);
    r->kl_off = le(rd(buf, &at, 8), 8);
    r->total_q = (int64_t)le(rd(buf, &at, 8), 8);
    r->total_k = (int64_t)le(rd(buf, &at, 8), 8);
    r->cuq_off = le(rd(buf, &at, 8), 8);
    r->cuk_off = le(rd(buf, &at, 8), 8);
    for (int i = 0; i < 8; i++)
        r->kl[i] = (int32_t)(uint32_t)le(rd(buf, &at, 4), 4);
    for (int i = 0; i < 8; i++)
        r->alibi[i] = le_f32(rd(buf, &at, 4));
    for (int i = 0; i < 9; i++)
        r->cu_q[i] = (int32_t)(uint32_t)le(rd(buf, &at, 4), 4);
    for (int i = 0; i < 9; i++)
        r->cu_k[i] = (int32_t)(uint32_t)le(rd(buf, &at, 4), 4);
}

#define REQUIRE(cond)                                                                             \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "fuzz_problem: %s:%d: contract broken: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

static void make_desc(const record *r, clattn_attention_desc *d)
{
    memset(d, 0, sizeof *d);
    d->scale = r->scale;
    d->softcap = r->softcap;
    d->causal = (r->flags2 & 2) != 0;
    d->use_window = (r->flags2 & 4) != 0;
    d->window_left = r->wl;
    d->window_right = r->wr;
    d->align = (clattn_align)r->align;
    d->variant = (clattn_variant)r->variant;
}

static int is_library_error(clattn_status st)
{
    return (int)st <= -3001 && (int)st >= -3999 && strcmp(clattn_status_name(st), "CLATTN_UNKNOWN_STATUS") != 0;
}

/* The view's bytes from its offset cover every element it addresses; an
 * output's elements are distinct (exhaustively, when the view is small). */
static void check_view(const clattn_tensor *t, size_t need, int64_t packed_rows, int output)
{
    int64_t sh[4];
    unsigned __int128 reach = 0, last;
    const size_t esize = clattn_dtype_size(t->dtype);
    REQUIRE(esize > 0);
    REQUIRE(t->offset % esize == 0);
    memcpy(sh, t->shape, sizeof sh);
    if (packed_rows) { /* varlen: the packed rows are what the buffer holds */
        REQUIRE(t->strides[0] == 0);
        sh[0] = 1;
        sh[2] = packed_rows;
    }
    for (int i = 0; i < 4; i++) {
        REQUIRE(sh[i] >= 1 && sh[i] <= INT32_MAX);
        REQUIRE(t->strides[i] >= 0);
        reach += (unsigned __int128)(sh[i] - 1) * (uint64_t)t->strides[i];
    }
    last = (unsigned __int128)t->offset + (reach + 1) * esize;
    REQUIRE(last <= need);
    if (output && reach < (1u << 20) && (unsigned __int128)sh[0] * sh[1] * sh[2] * sh[3] <= (1u << 16)) {
        unsigned char *seen = calloc((size_t)reach + 1, 1);
        REQUIRE(seen != NULL);
        for (int64_t a = 0; a < sh[0]; a++)
            for (int64_t b = 0; b < sh[1]; b++)
                for (int64_t c = 0; c < sh[2]; c++)
                    for (int64_t d = 0; d < sh[3]; d++) {
                        const size_t e = (size_t)(a * t->strides[0] + b * t->strides[1] + c * t->strides[2] +
                                                  d * t->strides[3]);
                        REQUIRE(!seen[e]); /* two output elements in one place */
                        seen[e] = 1;
                    }
        free(seen);
    }
}

static void device_path(const record *r)
{
    clattn_attention_desc d;
    clattn_args a;
    clattn__problem p;
    clattn_tensor *views[TENSORS] = {&a.q, &a.k, &a.v, &a.o, &a.lse, &a.bias};
    clattn_status st;
    make_desc(r, &d);
    memset(&a, 0, sizeof a);
    for (int t = 0; t < TENSORS; t++) {
        views[t]->dtype = (clattn_dtype)r->t[t].dtype;
        memcpy(views[t]->shape, r->t[t].shape, sizeof views[t]->shape);
        memcpy(views[t]->strides, r->t[t].strides, sizeof views[t]->strides);
        views[t]->offset = (size_t)r->t[t].offset;
    }
    a.has_lse = (r->flags & 32) != 0;
    a.has_bias = (r->flags & 64) != 0;
    a.has_alibi = (r->flags & 128) != 0;
    a.has_key_lengths = (r->flags2 & 1) != 0;
    a.has_varlen = (r->flags & 2) != 0;
    a.alibi_offset = (size_t)r->alibi_off;
    a.key_lengths_offset = (size_t)r->kl_off;
    a.total_q = r->total_q;
    a.total_k = r->total_k;
    a.cu_seqlens_q_offset = (size_t)r->cuq_off;
    a.cu_seqlens_k_offset = (size_t)r->cuk_off;

    st = clattn__problem_init(NULL, &d, &a, &p);
    if (st != CLATTN_SUCCESS) {
        REQUIRE(is_library_error(st));
        return;
    }
    REQUIRE(p.B >= 1 && p.Hq >= 1 && p.Hkv >= 1 && p.Nq >= 1 && p.Nk >= 1);
    REQUIRE(p.B <= INT32_MAX && p.Hq <= INT32_MAX && p.Nq <= INT32_MAX && p.Nk <= INT32_MAX);
    REQUIRE(p.Hq % p.Hkv == 0);
    REQUIRE(p.D >= 1 && p.D <= CLATTN_MAX_HEAD_DIM && p.Dv >= 1 && p.Dv <= CLATTN_MAX_HEAD_DIM);
    REQUIRE(isfinite(p.scale) && isfinite(p.desc.softcap) && p.desc.softcap >= 0.0f);
    REQUIRE((int)p.desc.align >= 0 && p.desc.align < CLATTN_ALIGN_COUNT_);
    REQUIRE((int)p.desc.variant >= 0 && p.desc.variant < CLATTN_VARIANT_COUNT_);
    REQUIRE(!p.desc.use_window || (p.desc.window_left >= -1 && p.desc.window_right >= -1));
    REQUIRE(p.k.dtype == p.q.dtype && p.v.dtype == p.q.dtype);
    REQUIRE(p.k.shape[3] == p.D && p.v.shape[1] == p.Hkv && p.v.shape[2] == p.Nk);
    REQUIRE(p.o.shape[0] == p.B && p.o.shape[1] == p.Hq && p.o.shape[2] == p.Nq && p.o.shape[3] == p.Dv);
    if (p.has_varlen)
        REQUIRE(p.total_q >= 1 && p.total_k >= 1 && p.total_q <= INT32_MAX && p.total_k <= INT32_MAX);
    check_view(&p.q, p.need_bytes[CLATTN__T_Q], p.total_q, 0);
    check_view(&p.k, p.need_bytes[CLATTN__T_K], p.total_k, 0);
    check_view(&p.v, p.need_bytes[CLATTN__T_V], p.total_k, 0);
    check_view(&p.o, p.need_bytes[CLATTN__T_O], p.total_q, 1);
    if (p.has_lse) {
        REQUIRE(p.lse.dtype == CLATTN_F32 && p.lse.shape[0] == p.B && p.lse.shape[1] == p.Hq && p.lse.shape[2] == p.Nq);
        check_view(&p.lse, p.need_bytes[CLATTN__T_LSE], p.total_q, 1);
    }
    if (p.has_bias) {
        const int64_t full[4] = {p.B, p.Hq, p.Nq, p.Nk};
        REQUIRE(p.bias.dtype == CLATTN_F32);
        for (int i = 0; i < 4; i++)
            REQUIRE(p.bias.shape[i] == 1 || p.bias.shape[i] == full[i]);
        check_view(&p.bias, p.need_bytes[CLATTN__T_BIAS], 0, 0);
    }
}

static void fill(void *data, clattn_dtype dt, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        float x;
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        x = (float)((double)(*s >> 40) / 8388608.0 - 1.0); /* [-1, 1) */
        if (dt == CLATTN_F16)
            ((uint16_t *)data)[i] = clattn_float_to_half(x);
        else if (dt == CLATTN_BF16)
            ((uint16_t *)data)[i] = clattn_float_to_bf16(x);
        else
            ((float *)data)[i] = x;
    }
}

static void host_path(const record *r)
{
    enum { MAX_BYTES = 1 << 20 };
    clattn_attention_desc d;
    clattn_args meta;
    clattn_host_args h;
    clattn__problem p;
    clattn_host_tensor *ht[TENSORS] = {&h.q, &h.k, &h.v, &h.o, &h.lse, &h.bias};
    void *mem[TENSORS + 4] = {0};
    clattn_status want, st;
    const int varlen = (r->flags & 2) != 0, alias = (r->flags >> 2) & 7;
    make_desc(r, &d);
    memset(&h, 0, sizeof h);
    for (int t = 0; t < TENSORS; t++) {
        ht[t]->dtype = (clattn_dtype)r->t[t].dtype;
        memcpy(ht[t]->shape, r->t[t].shape, sizeof ht[t]->shape);
    }
    /* the metadata the host call validates, as a plan would see it */
    memset(&meta, 0, sizeof meta);
    {
        clattn_tensor *mv[TENSORS] = {&meta.q, &meta.k, &meta.v, &meta.o, &meta.lse, &meta.bias};
        for (int t = 0; t < TENSORS; t++)
            *mv[t] = clattn_tensor_make(NULL, 0, ht[t]->dtype, ht[t]->shape[0], ht[t]->shape[1], ht[t]->shape[2],
                                        ht[t]->shape[3]);
    }
    meta.has_lse = (r->flags & 32) != 0;
    meta.has_bias = (r->flags & 64) != 0;
    meta.has_alibi = (r->flags & 128) != 0;
    meta.has_key_lengths = (r->flags2 & 1) != 0;
    meta.has_varlen = varlen;
    meta.total_q = h.total_q = r->total_q;
    meta.total_k = h.total_k = r->total_k;
    if (!meta.has_lse)
        memset(&meta.lse, 0, sizeof meta.lse);
    if (!meta.has_bias)
        memset(&meta.bias, 0, sizeof meta.bias);
    want = clattn__problem_init(NULL, &d, &meta, &p);
    if (want != CLATTN_SUCCESS) {
        /* invalid metadata: the reference refuses it the same way, before
         * reading a byte of the (one-byte) arrays */
        static unsigned char dummy[TENSORS + 4][1];
        for (int t = 0; t < TENSORS; t++)
            ht[t]->data = (t == 4 && !meta.has_lse) || (t == 5 && !meta.has_bias) ? NULL : dummy[t];
        h.alibi = meta.has_alibi ? (const float *)(void *)dummy[6] : NULL;
        h.key_lengths = meta.has_key_lengths ? (const int32_t *)(void *)dummy[7] : NULL;
        h.cu_seqlens_q = varlen ? (const int32_t *)(void *)dummy[8] : NULL;
        h.cu_seqlens_k = varlen ? (const int32_t *)(void *)dummy[9] : NULL;
        st = clattn_reference(&d, &h);
        REQUIRE(st == want);
        return;
    }
    /* valid metadata: run the reference when the problem is small */
    {
        double work = (double)p.B * (double)p.Hq * (double)p.Nq * (double)p.Nk * (double)(p.D + p.Dv);
        uint64_t seed = 0x5eedull ^ (uint64_t)r->flags;
        if (work > 2e6 || p.B > 4096 || p.Hq > 4096)
            return;
        for (int t = 0; t < TENSORS; t++) {
            if ((t == 4 && !p.has_lse) || (t == 5 && !p.has_bias))
                continue;
            if (p.need_bytes[t] > MAX_BYTES)
                return;
        }
        for (int t = 0; t < TENSORS; t++) {
            if ((t == 4 && !p.has_lse) || (t == 5 && !p.has_bias))
                continue;
            mem[t] = malloc(p.need_bytes[t]); /* exactly what the view needs */
            REQUIRE(mem[t] != NULL);
            ht[t]->data = mem[t];
            if (t == 3 || t == 4)
                memset(mem[t], 0xFF, p.need_bytes[t]);
            else
                fill(mem[t], ht[t]->dtype, p.need_bytes[t] / clattn_dtype_size(ht[t]->dtype), &seed);
        }
        if (p.has_alibi) {
            float *al = malloc((size_t)p.Hq * sizeof *al);
            REQUIRE(al != NULL);
            for (int64_t i = 0; i < p.Hq; i++)
                al[i] = r->alibi[i % 8];
            h.alibi = al, mem[6] = al;
        }
        if (p.has_key_lengths) {
            int32_t *kl = malloc((size_t)p.B * sizeof *kl);
            REQUIRE(kl != NULL);
            for (int64_t b = 0; b < p.B; b++)
                kl[b] = r->kl[b % 8];
            h.key_lengths = kl, mem[7] = kl;
        }
        if (varlen) {
            int32_t *cq = malloc((size_t)(p.B + 1) * sizeof *cq), *ck = malloc((size_t)(p.B + 1) * sizeof *ck);
            REQUIRE(cq && ck);
            for (int64_t b = 0; b <= p.B; b++)
                cq[b] = r->cu_q[b % 9], ck[b] = r->cu_k[b % 9];
            h.cu_seqlens_q = cq, h.cu_seqlens_k = ck, mem[8] = cq, mem[9] = ck;
        }
        /* an output placed on an input (or on the other output) */
        switch (alias) {
        case 1: h.o.data = h.q.data; break;
        case 2: if (h.lse.data) h.lse.data = h.o.data; break;
        case 3: if (h.bias.data) h.o.data = h.bias.data; break;
        case 4: if (h.alibi) h.o.data = (void *)(uintptr_t)h.alibi; break;
        case 5: if (h.key_lengths && h.lse.data) h.lse.data = (void *)(uintptr_t)h.key_lengths; break;
        case 6: h.o.data = h.k.data; break;
        case 7: if (h.cu_seqlens_q) h.o.data = (void *)(uintptr_t)h.cu_seqlens_q; break;
        default: break;
        }
        st = clattn_reference(&d, &h);
        if (h.o.data != mem[3] || h.lse.data != mem[4]) {
            REQUIRE(st != CLATTN_SUCCESS); /* aliased outputs are refused */
        } else if (st == CLATTN_SUCCESS) {
            const size_t no = p.need_bytes[CLATTN__T_O] / clattn_dtype_size(p.out_dtype);
            for (size_t i = 0; i < no; i++) {
                const float x = p.out_dtype == CLATTN_F16    ? clattn_half_to_float(((const uint16_t *)mem[3])[i])
                                : p.out_dtype == CLATTN_BF16 ? clattn_bf16_to_float(((const uint16_t *)mem[3])[i])
                                                             : ((const float *)mem[3])[i];
                REQUIRE(!isnan(x)); /* every element written, never NaN */
            }
            if (p.has_lse)
                for (size_t i = 0; i < p.need_bytes[CLATTN__T_LSE] / 4; i++)
                    REQUIRE(!isnan(((const float *)mem[4])[i]));
        } else {
            REQUIRE(is_library_error(st));
        }
        for (int i = 0; i < TENSORS + 4; i++)
            free(mem[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    record r;
    parse(data, size, &r);
    if (r.flags & 1)
        host_path(&r);
    else
        device_path(&r);
    return 0;
}
