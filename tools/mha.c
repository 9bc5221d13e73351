/*
 * mha.c - `clattn mha`: one multi-head attention layer (clattn_mha_*) on
 * .npy inputs, optionally verified against the layer's double-precision CPU
 * reference. Same rules as `clattn run`: parse -> load -> run -> verify ->
 * write, nothing written unless everything before succeeded, exit codes 0
 * ok, 1 verification failed, 2 bad usage or input, 3 device or OpenCL error.
 *
 * Hidden for the tool's own tests: CLATTN_MHA_FORCE_FAIL=1 puts a NaN into
 * the device result after it is read back, so --verify fails the way a
 * wrong kernel would.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"
#include "cli.h"

const char usage_mha[] =
    "usage: clattn mha --x X.npy --wq WQ.npy --wk WK.npy --wv WV.npy --wo WO.npy --heads H [options]\n"
    "\n"
    "A multi-head attention layer (torch.nn.MultiheadAttention, batch_first) on an OpenCL device:\n"
    "  q = x Wq^T + bq,  k = s Wk^T + bk,  v = s Wv^T + bv   (s = --kv, else x)\n"
    "  RoPE on q and k (--rope), attention per head (key/value head h / (H / Hkv)),\n"
    "  y = concat_h(o_h) Wo^T + bo\n"
    "x [B,N,E] or [N,E]; kv [B,M,E] or [M,E] (same B and E); Wq, Wo [E,E]; Wk, Wv [Hkv*Dh,E];\n"
    "bq, bo [E]; bk, bv [Hkv*Dh]; Dh = E / H. Weights in torch.nn.Linear layout [out, in];\n"
    "all float32, C order.\n"
    "\n"
    "inputs and outputs:\n"
    "  --x FILE              queries (and keys and values without --kv) (required)\n"
    "  --kv FILE             a separate key/value source: cross-attention\n"
    "  --wq, --wk, --wv, --wo FILE   projection weights (required)\n"
    "  --bq, --bk, --bv, --bo FILE   projection biases (each optional)\n"
    "  --out FILE            write y, shaped like x\n"
    "layer:\n"
    "  --heads H             query heads; E must be a multiple of H (required)\n"
    "  --kv-heads HKV        key/value heads, dividing H (default H)\n"
    "  --causal              query i sees keys j <= i (top-left alignment)\n"
    "  --rope BASE           rotary position embedding, theta_i = BASE^(-2i/Dh), GPT-NeoX\n"
    "                        half-split pairs (i, i + Dh/2); positions 0..N-1 and 0..M-1\n"
    "execution:\n"
    "  --variant V           attention core: auto (default), naive, tiled, flash, gemm or decode\n"
    "  --device SPEC         P:D, cpu|gpu|accelerator or a name substring (default:\n"
    "                        CLATTN_DEVICE, else the first GPU, else the first device)\n"
    "  --verify              compare y with the double-precision CPU reference of the whole\n"
    "                        layer; on failure exit 1 and write no output file\n"
    "  --json                print one JSON object instead of the summary\n"
    "\n"
    "Timing is the wall time of one layer run (projections, RoPE, attention, output\n"
    "projection) on the device's queue, after a first run that compiles and warms up.\n";

enum { P_WQ, P_WK, P_WV, P_WO, P_BQ, P_BK, P_BV, P_BO, P_COUNT };
static const char *const p_opt[P_COUNT] = {"--wq", "--wk", "--wv", "--wo", "--bq", "--bk", "--bv", "--bo"};

typedef struct mha_opts {
    const char *x, *kv, *p[P_COUNT], *out, *heads, *kv_heads, *rope, *variant, *device;
    int causal, verify, json;
    clattn_mha_desc desc;
} mha_opts;

typedef struct mha_in {
    clattn_npy x, kv, p[P_COUNT];
    int64_t B, N, M, E, H, Hkv, Dh;
} mha_in;

typedef struct mha_res {
    float *y;
    clattn_variant variant;
    char *device;
    double first_ms, wall_ms;
    size_t device_bytes;
} mha_res;

typedef struct mha_verdict {
    int done, ok;
    clattn_compare_result y;
    double atol, rtol, max_nmse;
} mha_verdict;

static void in_free(mha_in *in)
{
    clattn_npy_free(&in->x);
    clattn_npy_free(&in->kv);
    for (int i = 0; i < P_COUNT; i++)
        clattn_npy_free(&in->p[i]);
}

static int mha_parse(int argc, char **argv, mha_opts *o)
{
    const opt opts[] = {
        {"--x", &o->x, NULL},         {"--kv", &o->kv, NULL},
        {"--wq", &o->p[P_WQ], NULL},  {"--wk", &o->p[P_WK], NULL},
        {"--wv", &o->p[P_WV], NULL},  {"--wo", &o->p[P_WO], NULL},
        {"--bq", &o->p[P_BQ], NULL},  {"--bk", &o->p[P_BK], NULL},
        {"--bv", &o->p[P_BV], NULL},  {"--bo", &o->p[P_BO], NULL},
        {"--out", &o->out, NULL},     {"--heads", &o->heads, NULL},
        {"--kv-heads", &o->kv_heads, NULL}, {"--causal", NULL, &o->causal},
        {"--rope", &o->rope, NULL},   {"--variant", &o->variant, NULL},
        {"--device", &o->device, NULL}, {"--verify", NULL, &o->verify},
        {"--json", NULL, &o->json},
    };
    int64_t h;
    int rc = parse_opts("mha", argc, argv, opts, sizeof opts / sizeof opts[0], usage_mha);
    if (rc != RC_CONTINUE)
        return rc;
    if (!o->x)
        return fail(RC_USAGE, "--x", "required (see 'clattn mha --help')");
    for (int i = P_WQ; i <= P_WO; i++)
        if (!o->p[i])
            return fail(RC_USAGE, p_opt[i], "required (see 'clattn mha --help')");
    if (!o->heads)
        return fail(RC_USAGE, "--heads", "required (see 'clattn mha --help')");

    memset(&o->desc, 0, sizeof o->desc);
    if (parse_i64("--heads", o->heads, &h) != RC_OK)
        return RC_USAGE;
    if (h <= 0)
        return fail(RC_USAGE, "--heads", "'%s' is not a positive number of heads", o->heads);
    o->desc.heads = h;
    if (o->kv_heads) {
        if (parse_i64("--kv-heads", o->kv_heads, &h) != RC_OK)
            return RC_USAGE;
        if (h <= 0)
            return fail(RC_USAGE, "--kv-heads", "'%s' is not a positive number of heads", o->kv_heads);
        if (o->desc.heads % h != 0)
            return fail(RC_USAGE, "--kv-heads", "%lld does not divide --heads %lld", (long long)h,
                        (long long)o->desc.heads);
        o->desc.kv_heads = h;
    }
    if (o->rope) {
        double b;
        if (parse_double("--rope", o->rope, &b) != RC_OK)
            return RC_USAGE;
        if (!(b > 0.0))
            return fail(RC_USAGE, "--rope", "'%s': the base must be > 0 (omit --rope for none)", o->rope);
        o->desc.rope_base = (float)b;
    }
    o->desc.causal = o->causal;
    o->desc.variant = CLATTN_VARIANT_AUTO;
    if (o->variant && clattn_variant_parse(o->variant, &o->desc.variant) != CLATTN_SUCCESS)
        return fail(RC_USAGE, "--variant", "'%s' is not a variant (auto, naive, tiled, flash, gemm, decode)",
                    o->variant);
    if (o->out && check_out_path("--out", o->out) != RC_OK)
        return RC_USAGE;
    return RC_OK;
}

/* x or kv: float32 [B,N,E] or [N,E], no empty dimension. */
static int seq_shape(const char *arg, const clattn_npy *a, int64_t s[3])
{
    char sh[160];
    if (a->type != CLATTN_NPY_F32)
        return fail(RC_USAGE, arg, "element type %s is not supported (float32)", npy_type_name(a->type));
    if (a->ndim < 2 || a->ndim > 3)
        return fail(RC_USAGE, arg, "shape %s has %d dims; expected [B,N,E] or [N,E]",
                    shape_str(a->shape, a->ndim, sh, sizeof sh), a->ndim);
    s[0] = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] <= 0)
            return fail(RC_USAGE, arg, "shape %s has an empty dimension", shape_str(a->shape, a->ndim, sh, sizeof sh));
        s[3 - a->ndim + i] = a->shape[i];
    }
    return RC_OK;
}

static int mha_load(const mha_opts *o, mha_in *in)
{
    int64_t xs[3], ks[3];
    char s1[160], s2[160];
    int rc;
    if ((rc = load_npy("--x", o->x, &in->x)) != RC_OK || (rc = seq_shape("--x", &in->x, xs)) != RC_OK)
        return rc;
    in->B = xs[0];
    in->N = xs[1];
    in->E = xs[2];
    in->M = 0;
    if (o->kv) {
        if ((rc = load_npy("--kv", o->kv, &in->kv)) != RC_OK || (rc = seq_shape("--kv", &in->kv, ks)) != RC_OK)
            return rc;
        if (ks[0] != xs[0] || ks[2] != xs[2])
            return fail(RC_USAGE, "--kv", "shape %s does not match --x %s (B and E must agree)",
                        shape_str(in->kv.shape, in->kv.ndim, s1, sizeof s1),
                        shape_str(in->x.shape, in->x.ndim, s2, sizeof s2));
        in->M = ks[1];
    }
    in->H = o->desc.heads;
    in->Hkv = o->desc.kv_heads ? o->desc.kv_heads : in->H;
    if (in->E % in->H != 0)
        return fail(RC_USAGE, "--heads", "%lld heads do not divide the embedding dimension E = %lld of --x",
                    (long long)in->H, (long long)in->E);
    in->Dh = in->E / in->H;
    if (o->rope && in->Dh % 2 != 0)
        return fail(RC_USAGE, "--rope", "RoPE rotates pairs, and the head dimension E / H = %lld is odd",
                    (long long)in->Dh);
    for (int i = 0; i < P_COUNT; i++) {
        const int64_t rows = i == P_WK || i == P_WV || i == P_BK || i == P_BV ? in->Hkv * in->Dh : in->E;
        const int weight = i <= P_WO;
        const int64_t want[2] = {rows, in->E};
        if (!o->p[i])
            continue;
        if ((rc = load_npy(p_opt[i], o->p[i], &in->p[i])) != RC_OK)
            return rc;
        if (in->p[i].type != CLATTN_NPY_F32)
            return fail(RC_USAGE, p_opt[i], "element type %s is not supported (float32)",
                        npy_type_name(in->p[i].type));
        if (in->p[i].ndim != (weight ? 2 : 1) || in->p[i].shape[0] != rows || (weight && in->p[i].shape[1] != in->E))
            return fail(RC_USAGE, p_opt[i], "shape %s is not %s = %s (E = %lld, H = %lld, Hkv = %lld)",
                        shape_str(in->p[i].shape, in->p[i].ndim, s1, sizeof s1),
                        weight ? (rows == in->E ? "[E,E]" : "[Hkv*E/H,E]") : (rows == in->E ? "[E]" : "[Hkv*E/H]"),
                        shape_str(want, weight ? 2 : 1, s2, sizeof s2), (long long)in->E, (long long)in->H,
                        (long long)in->Hkv);
    }
    return RC_OK;
}

/* The argument a create failure is about, from its status. */
static const char *create_status_arg(clattn_status st, const mha_opts *o)
{
    switch (st) {
    case CLATTN_ERROR_EMBED_DIM:
    case CLATTN_ERROR_HEAD_DIM: return "--heads";
    case CLATTN_ERROR_HEAD_MISMATCH: return "--kv-heads";
    case CLATTN_ERROR_INVALID_ROPE: return "--rope";
    case CLATTN_ERROR_INVALID_SHAPE:
    case CLATTN_ERROR_SIZE_OVERFLOW: return "--x";
    case CLATTN_ERROR_UNSUPPORTED:
    case CLATTN_ERROR_UNKNOWN_VARIANT:
    case CLATTN_ERROR_NO_VARIANT: {
        const char *env = getenv("CLATTN_VARIANT");
        if (o->variant)
            return "--variant";
        return env && *env ? "CLATTN_VARIANT" : "mha";
    }
    default: return "mha";
    }
}

static int mha_device(const mha_opts *o, const mha_in *in, mha_res *res)
{
    int rc = RC_OK;
    clattn_status st;
    cl_int err = CL_SUCCESS;
    clattn_context *ctx = NULL;
    clattn_mha *mha = NULL;
    cl_context clctx = NULL;
    cl_command_queue queue = NULL;
    cl_mem mx = NULL, mkv = NULL, mp[P_COUNT] = {0}, my = NULL;
    clattn_mha_weights w;
    clattn_mha_desc desc = o->desc;
    const size_t y_bytes = in->x.count * sizeof(float);

    rc = open_context(o->device, &ctx);
    if (rc != RC_OK)
        return rc;
    st = clattn_context_cl(ctx, &clctx, NULL, &queue);
    if (st != CLATTN_SUCCESS) {
        rc = lib_fail(st, 0, "device", clattn_context_last_error(ctx));
        goto cleanup;
    }
    res->device = dup_str(clattn_context_device_name(ctx));
    desc.embed_dim = in->E;
    /* The layer first: every validation error before anything is uploaded. */
    st = clattn_mha_create(ctx, &desc, in->B, in->N, in->M, &mha);
    if (st != CLATTN_SUCCESS) {
        mha = NULL;
        rc = lib_fail(st, 0, create_status_arg(st, o), clattn_context_last_error(ctx));
        goto cleanup;
    }
    res->variant = clattn_mha_variant(mha);
    res->device_bytes = clattn_mha_device_bytes(mha);

    if ((err = upload(clctx, queue, in->x.data, in->x.count * sizeof(float), &mx)) != CL_SUCCESS) {
        rc = cl_fail(err, "--x", "creating or writing the device buffer failed");
        goto cleanup;
    }
    if (o->kv && (err = upload(clctx, queue, in->kv.data, in->kv.count * sizeof(float), &mkv)) != CL_SUCCESS) {
        rc = cl_fail(err, "--kv", "creating or writing the device buffer failed");
        goto cleanup;
    }
    for (int i = 0; i < P_COUNT; i++) {
        if (!o->p[i])
            continue;
        if ((err = upload(clctx, queue, in->p[i].data, in->p[i].count * sizeof(float), &mp[i])) != CL_SUCCESS) {
            rc = cl_fail(err, p_opt[i], "creating or writing the device buffer failed");
            goto cleanup;
        }
    }
    if ((err = make_output(clctx, queue, sizeof(float), y_bytes, &my)) != CL_SUCCESS) {
        rc = cl_fail(err, "--out", "creating the output buffer failed");
        goto cleanup;
    }
    memset(&w, 0, sizeof w);
    w.wq = mp[P_WQ], w.wk = mp[P_WK], w.wv = mp[P_WV], w.wo = mp[P_WO];
    w.bq = mp[P_BQ], w.bk = mp[P_BK], w.bv = mp[P_BV], w.bo = mp[P_BO];

    /* Two runs: the first pays for CLBlast's kernel compilation, the second is timed. */
    for (int run = 0; run < 2; run++) {
        double t0 = now_ms();
        st = clattn_mha_run(mha, &w, mx, 0, mkv, 0, my, 0, NULL, 0, NULL, NULL);
        if (st != CLATTN_SUCCESS) {
            rc = lib_fail(st, 0, "mha", clattn_context_last_error(ctx));
            goto cleanup;
        }
        if ((err = clFinish(queue)) != CL_SUCCESS) {
            rc = cl_fail(err, "mha", "waiting for the layer's commands failed");
            goto cleanup;
        }
        *(run ? &res->wall_ms : &res->first_ms) = now_ms() - t0;
    }
    res->y = malloc(y_bytes ? y_bytes : 1);
    if (!res->y) {
        rc = fail(RC_DEVICE, "mha", "out of host memory for y");
        goto cleanup;
    }
    if ((err = clEnqueueReadBuffer(queue, my, CL_TRUE, 0, y_bytes, res->y, 0, NULL, NULL)) != CL_SUCCESS) {
        rc = cl_fail(err, "mha", "reading y back failed");
        goto cleanup;
    }
    {
        const char *force = getenv("CLATTN_MHA_FORCE_FAIL");
        if (force && !strcmp(force, "1") && in->x.count > 0)
            res->y[in->x.count / 2] = NAN;
    }

cleanup:
    clattn_mha_free(mha);
    if (mx)
        clReleaseMemObject(mx);
    if (mkv)
        clReleaseMemObject(mkv);
    if (my)
        clReleaseMemObject(my);
    for (int i = 0; i < P_COUNT; i++)
        if (mp[i])
            clReleaseMemObject(mp[i]);
    clattn_context_free(ctx);
    return rc;
}

static int mha_verify(const mha_opts *o, const mha_in *in, const mha_res *res, mha_verdict *vd)
{
    clattn_mha_desc desc = o->desc;
    clattn_mha_host_weights hw;
    const float *p[P_COUNT];
    clattn_status st;
    float *ref = malloc(in->x.count * sizeof(float) + 1);
    if (!ref)
        return fail(RC_DEVICE, "--verify", "out of host memory");
    for (int i = 0; i < P_COUNT; i++)
        p[i] = o->p[i] ? in->p[i].data : NULL;
    hw = (clattn_mha_host_weights){p[P_WQ], p[P_WK], p[P_WV], p[P_WO], p[P_BQ], p[P_BK], p[P_BV], p[P_BO]};
    desc.embed_dim = in->E;
    st = clattn_mha_reference(&desc, in->B, in->N, in->M, &hw, in->x.data, o->kv ? in->kv.data : NULL, ref);
    if (st != CLATTN_SUCCESS) {
        free(ref);
        return lib_fail(st, 0, "--verify", "the CPU reference rejected the layer the device accepted");
    }
    st = clattn_tolerance(CLATTN_F32, &vd->atol, &vd->rtol, &vd->max_nmse);
    if (st != CLATTN_SUCCESS) {
        free(ref);
        return lib_fail(st, 0, "--verify", "no tolerance for f32");
    }
    vd->done = 1;
    vd->y = clattn_compare_f32(res->y, ref, in->x.count);
    vd->ok = clattn_compare_ok(&vd->y, vd->atol, vd->rtol, vd->max_nmse);
    free(ref);
    if (!vd->ok) {
        fprintf(stderr,
                "clattn: error: --verify: the device result differs from the CPU reference: y max error %.3e "
                "(allowed %.3e), NMSE %.3e (allowed %.1e), %zu non-finite mismatches\n",
                vd->y.max_abs_err, vd->atol + vd->rtol * vd->y.max_abs_ref, vd->y.nmse, vd->max_nmse,
                vd->y.nonfinite_mismatch);
        return RC_VERIFY;
    }
    return RC_OK;
}

static const char *bias_list(const mha_opts *o, char *buf)
{
    static const char names[4] = {'q', 'k', 'v', 'o'};
    int n = 0;
    for (int i = 0; i < 4; i++)
        if (o->p[P_BQ + i])
            buf[n++] = names[i];
    buf[n] = '\0';
    return buf;
}

static void mha_print(const mha_opts *o, const mha_in *in, const mha_res *res, const mha_verdict *vd,
                      const char *written)
{
    char biases[8];
    bias_list(o, biases);
    if (o->json) {
        printf("{\"device\":");
        json_str(stdout, res->device);
        printf(",\"variant\":\"%s\",\"B\":%lld,\"N\":%lld,\"M\":%lld,\"E\":%lld,\"heads\":%lld,\"kv_heads\":%lld,"
               "\"head_dim\":%lld,\"cross\":%s,\"causal\":%s,\"rope\":",
               clattn_variant_name(res->variant), (long long)in->B, (long long)in->N,
               (long long)(in->M ? in->M : in->N), (long long)in->E, (long long)in->H, (long long)in->Hkv,
               (long long)in->Dh, o->kv ? "true" : "false", o->causal ? "true" : "false");
        if (o->rope)
            json_num(stdout, o->desc.rope_base);
        else
            printf("null");
        printf(",\"biases\":");
        json_str(stdout, biases);
        printf(",\"device_bytes\":%zu,\"first_ms\":", res->device_bytes);
        json_num(stdout, res->first_ms);
        printf(",\"wall_ms\":");
        json_num(stdout, res->wall_ms);
        printf(",\"verified\":%s,\"max_err\":", !vd->done ? "null" : vd->ok ? "true" : "false");
        json_num(stdout, vd->done ? vd->y.max_abs_err : NAN);
        printf(",\"nmse\":");
        json_num(stdout, vd->done ? vd->y.nmse : NAN);
        printf(",\"outputs\":[");
        if (written)
            json_str(stdout, written);
        printf("]}\n");
        return;
    }
    printf("device %s, attention core %s\n", res->device ? res->device : "?", clattn_variant_name(res->variant));
    printf("f32 %s B=%lld N=%lld M=%lld E=%lld heads=%lld kv_heads=%lld Dh=%lld%s%s%s%s%s\n",
           o->kv ? "cross-attention" : "self-attention", (long long)in->B, (long long)in->N,
           (long long)(in->M ? in->M : in->N), (long long)in->E, (long long)in->H, (long long)in->Hkv,
           (long long)in->Dh, o->causal ? ", causal" : "", o->rope ? ", RoPE base " : "", o->rope ? o->rope : "",
           biases[0] ? ", biases " : "", biases);
    printf("%.3f ms per layer run (wall clock; first run %.3f ms), %zu bytes of device scratch\n", res->wall_ms,
           res->first_ms, res->device_bytes);
    if (vd->done)
        printf("verification %s: y max error %.3e (allowed %.3e), NMSE %.3e\n", vd->ok ? "passed" : "FAILED",
               vd->y.max_abs_err, vd->atol + vd->rtol * vd->y.max_abs_ref, vd->y.nmse);
    if (written)
        printf("wrote %s\n", written);
}

int cmd_mha(int argc, char **argv)
{
    mha_opts o;
    mha_in in;
    mha_res res;
    mha_verdict vd;
    const char *written = NULL;
    int rc;
    memset(&o, 0, sizeof o);
    memset(&in, 0, sizeof in);
    memset(&res, 0, sizeof res);
    memset(&vd, 0, sizeof vd);
    rc = mha_parse(argc, argv, &o);
    if (rc != RC_OK)
        return rc == RC_HELP ? RC_OK : rc;
    rc = mha_load(&o, &in);
    if (rc == RC_OK)
        rc = mha_device(&o, &in, &res);
    if (rc == RC_OK && o.verify)
        rc = mha_verify(&o, &in, &res, &vd);
    if (rc == RC_OK && o.out) {
        char err[512] = "";
        clattn_status st = clattn_npy_save(o.out, CLATTN_NPY_F32, in.x.ndim, in.x.shape, res.y, err, sizeof err);
        if (st != CLATTN_SUCCESS)
            rc = lib_fail(st, 0, "--out", err);
        else
            written = o.out;
    }
    /* A failed verification still reports its numbers; other failures print nothing on stdout. */
    if (rc == RC_OK || rc == RC_VERIFY)
        mha_print(&o, &in, &res, &vd, written);
    free(res.y);
    free(res.device);
    in_free(&in);
    return rc;
}
