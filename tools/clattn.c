/*
 * clattn.c - the clattn command-line tool.
 *
 *   clattn devices [--json]        list OpenCL platforms and devices
 *   clattn run --q --k --v ...     run one attention problem stored in .npy files on a
 *                                  device, optionally verified against the CPU reference
 *   clattn prof ...                time variants over a sweep of sizes (tools/prof.c)
 *   clattn check ...               random cases against the CPU reference (tools/check.c)
 *   clattn mha --x --wq ... --heads  one multi-head attention layer on .npy inputs (tools/mha.c)
 *   clattn random --shape ...      write a .npy of deterministic random numbers (a fresh
 *                                  machine has no numpy to make inputs with)
 *
 * Every subcommand goes parse -> load -> run -> verify -> write: nothing is written
 * until everything before it succeeded, so a failed command leaves no output file.
 * Exit codes: 0 ok, 1 verification failed, 2 bad usage or input, 3 device or OpenCL
 * error. Errors go to stderr as "clattn: error: <argument>: <message>".
 */
#include "clattn.h"
#include "cli.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Usage                                                                    */
/* ------------------------------------------------------------------------ */

static const char usage_main[] =
    "usage: clattn <command> [options]\n"
    "\n"
    "Fused attention on any OpenCL device, verified against a CPU reference.\n"
    "\n"
    "commands:\n"
    "  devices   list OpenCL platforms and devices (* marks the default)\n"
    "  run       run attention on .npy inputs, optionally verify, write O and LSE\n"
    "  prof      time variants over a sweep of sizes against the device's measured ceilings\n"
    "  check     run random attention cases against the CPU reference (seeded, reproducible)\n"
    "  tune      search each variant's launch parameters on the device, write a tuning file\n"
    "  mha       run a multi-head attention layer (projections, RoPE, attention) on .npy inputs\n"
    "  random    write a .npy of deterministic uniform random numbers\n"
    "  help      show this text, or 'clattn help <command>'\n"
    "\n"
    "options:\n"
    "  --help     show this text ('clattn <command> --help' for a command)\n"
    "  --version  print the version\n"
    "\n"
    "environment: CLATTN_DEVICE selects the default device (P:D, cpu|gpu|accelerator,\n"
    "or a name substring); CLATTN_VARIANT overrides the automatic variant choice;\n"
    "CLATTN_CACHE_DIR moves the compiled-kernel cache (default $XDG_CACHE_HOME/clattn or\n"
    "~/.cache/clattn; 'off' disables it); CLATTN_PARAMS=block_m,block_n,rows,tpr,vec forces\n"
    "the launch parameters of the tiled and flash variants; CLATTN_TUNING_FILE names the\n"
    "tuning file 'clattn tune' writes (default tuning.json in the cache directory; 'off').\n"
    "exit status: 0 ok, 1 verification failed, 2 bad usage or input, 3 device or OpenCL error\n";

static const char usage_devices[] =
    "usage: clattn devices [--json]\n"
    "\n"
    "List every OpenCL platform and device with its index P:D (as --device and\n"
    "CLATTN_DEVICE take it), type, compute units, clock, memory sizes, work-group\n"
    "limit, OpenCL C and driver versions and fp16/fp64 support. '*' marks the\n"
    "default device (CLATTN_DEVICE if set, else the first GPU, else the first device).\n"
    "\n"
    "  --json   one JSON object instead of the table\n";

static const char usage_run[] =
    "usage: clattn run --q Q.npy --k K.npy --v V.npy [options]\n"
    "\n"
    "O = softmax(scale * Q K^T [+ masks]) V on an OpenCL device.\n"
    "Q [B,Hq,Nq,D], K [B,Hkv,Nk,D], V [B,Hkv,Nk,Dv] as C-order float32 or float16 .npy\n"
    "(all three the same dtype; [H,N,D] and [N,D] mean B=1 and H=1). Hq must be a\n"
    "multiple of Hkv (grouped-query attention).\n"
    "\n"
    "inputs and outputs:\n"
    "  --q FILE, --k FILE, --v FILE   the query, key and value arrays (required)\n"
    "  --out FILE            write O [.., Nq, Dv] with Q's dtype and Q's number of dims\n"
    "  --lse FILE            write the float32 log-sum-exp of each row [.., Nq]\n"
    "attention:\n"
    "  --scale S             logit scale (default 1/sqrt(D)); finite and nonzero\n"
    "  --causal              causal mask (key j kept when j <= i + off)\n"
    "  --align A             top-left (off = 0, default), bottom-right (off = Nk - Nq) or\n"
    "                        key-lengths (off = len[b] - Nq for each sequence, with --key-lengths);\n"
    "                        applies to --causal, --window and --alibi\n"
    "  --window L,R          sliding window: keep i+off-L <= j <= i+off+R (-1 = unbounded)\n"
    "  --softcap C           s = C * tanh(s / C); 0 = off\n"
    "  --alibi FILE          float32 ALiBi slopes [Hq]\n"
    "  --bias FILE           float32 additive bias, broadcastable (numpy rules) to [B,Hq,Nq,Nk]\n"
    "  --key-lengths FILE    int32 (or int64) [B]: keys j >= len[b] are masked, 0 <= len <= Nk\n"
    "execution:\n"
    "  --variant V           auto (default), naive, tiled, flash, gemm or decode\n"
    "  --device SPEC         P:D, cpu|gpu|accelerator or a name substring (default:\n"
    "                        CLATTN_DEVICE, else the first GPU, else the first device)\n"
    "  --verify              compare O (and LSE) with the double-precision CPU reference;\n"
    "                        on failure exit 1 and write no output file\n"
    "  --json                print one JSON object instead of the summary\n"
    "  --repeat N            launch the plan N times (1..100000, default 1) and report the\n"
    "                        median of launches 2..N; the first is reported apart (it pays\n"
    "                        one-time costs, e.g. a CPU device's per-launch compile)\n"
    "\n"
    "Timing is device time from a marker enqueued before the run to the end of the plan's\n"
    "event, so plans of several kernels count whole (wall time if the device gives no\n"
    "profiling information); GFLOP/s are dense-equivalent: 2*B*Hq*Nq*Nk*(D+Dv) flops\n"
    "whatever the masks remove. --verify and the output files see the last launch.\n";

static const char usage_random[] =
    "usage: clattn random --shape D0,D1,... --out FILE [options]\n"
    "\n"
    "Write a C-order .npy of uniform random numbers from a splitmix64 generator: the\n"
    "same seed gives the same file on every machine.\n"
    "\n"
    "  --shape D0,D1,...   array shape, 1 to 8 dims, each >= 0 (required)\n"
    "  --out FILE          output path (required)\n"
    "  --dtype T           f32 (default), f16 or i32\n"
    "  --seed S            64-bit unsigned seed (default 1)\n"
    "  --scale X           f32/f16: values in [-X, X), X > 0 (default 1)\n"
    "  --int-range LO,HI   i32 (required with it): integers in [LO, HI], both inclusive\n";

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

int fail(int rc, const char *arg, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "clattn: error: %s: ", arg);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return rc;
}

/*
 * Exit code of a library status. OpenCL's own codes (and CLBlast's) are all above
 * the library's range. NO_DEVICE is the user's fault only when they named a device.
 * NULL_ARGUMENT, PLAN_MISMATCH and INTERNAL cannot come from the user's input, so
 * they count with the device errors.
 */
int status_rc(clattn_status st, int user_spec)
{
    switch (st) {
    case CLATTN_SUCCESS:
        return RC_OK;
    case CLATTN_ERROR_NO_DEVICE:
        return user_spec ? RC_USAGE : RC_DEVICE;
    case CLATTN_ERROR_BUILD:
    case CLATTN_ERROR_OUT_OF_HOST_MEMORY:
    case CLATTN_ERROR_DEVICE_LIMIT:
    case CLATTN_ERROR_NOT_FOUND:
    case CLATTN_ERROR_NULL_ARGUMENT:
    case CLATTN_ERROR_PLAN_MISMATCH:
    case CLATTN_ERROR_INTERNAL:
        return RC_DEVICE;
    default:
        break;
    }
    return (int)st > -3000 ? RC_DEVICE : RC_USAGE;
}

/* Report a library status: message, symbolic name and the detail text if any. */
int lib_fail(clattn_status st, int user_spec, const char *arg, const char *detail)
{
    if (detail && *detail)
        fprintf(stderr, "clattn: error: %s: %s (%s): %s\n", arg, clattn_status_message(st),
                clattn_status_name(st), detail);
    else
        fprintf(stderr, "clattn: error: %s: %s (%s)\n", arg, clattn_status_message(st),
                clattn_status_name(st));
    return status_rc(st, user_spec);
}

int cl_fail(cl_int err, const char *arg, const char *call)
{
    return lib_fail(clattn_status_from_cl(err), 0, arg, call);
}

/* ------------------------------------------------------------------------ */
/* Option parsing                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Parse "--name value", "--name=value" and "--switch". Every option may appear
 * once; anything else is a usage error. Returns RC_CONTINUE, RC_HELP after printing
 * help, or RC_USAGE.
 */
int parse_opts(const char *cmd, int argc, char **argv, const opt *opts, size_t nopts, const char *usage)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return RC_HELP;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return fail(RC_USAGE, a, "unexpected argument (see 'clattn %s --help')", cmd);
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), a);
        const opt *o = NULL;
        for (size_t k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == len && !strncmp(opts[k].name, a, len))
                o = &opts[k];
        if (!o)
            return fail(RC_USAGE, name, "unknown option for 'clattn %s' (see 'clattn %s --help')",
                        cmd, cmd);
        if (o->flag) {
            if (eq)
                return fail(RC_USAGE, o->name, "takes no value");
            if (*o->flag)
                return fail(RC_USAGE, o->name, "given more than once");
            *o->flag = 1;
            continue;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))
                return fail(RC_USAGE, o->name, "missing value");
            v = argv[++i];
        }
        if (*v == '\0')
            return fail(RC_USAGE, o->name, "empty value");
        if (*o->value)
            return fail(RC_USAGE, o->name, "given more than once");
        *o->value = v;
    }
    return RC_CONTINUE;
}

int parse_double(const char *arg, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || *s == ' ' || (*s >= '\t' && *s <= '\r'))
        return fail(RC_USAGE, arg, "'%s' is not a number", s);
    if (!isfinite(v) || fabs(v) > FLT_MAX)
        return fail(RC_USAGE, arg, "'%s' is not a finite float", s);
    *out = v;
    return RC_OK;
}

int parse_i64(const char *arg, const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || (*s != '-' && *s != '+' && (*s < '0' || *s > '9')))
        return fail(RC_USAGE, arg, "'%s' is not an integer", s);
    if (errno == ERANGE)
        return fail(RC_USAGE, arg, "'%s' is out of range", s);
    *out = (int64_t)v;
    return RC_OK;
}

/* A comma-separated list of 1..max integers. */
int parse_int_list(const char *arg, const char *s, int64_t *out, int max, int *n)
{
    char buf[512];
    if (strlen(s) >= sizeof buf)
        return fail(RC_USAGE, arg, "value too long");
    strcpy(buf, s);
    *n = 0;
    char *p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (*n == max)
            return fail(RC_USAGE, arg, "'%s' has more than %d entries", s, max);
        if (*p == '\0')
            return fail(RC_USAGE, arg, "'%s' has an empty entry", s);
        if (parse_i64(arg, p, &out[*n]) != RC_OK)
            return RC_USAGE;
        (*n)++;
        if (!comma)
            break;
        p = comma + 1;
    }
    return RC_OK;
}

/*
 * An output path must name a file in an existing, writable directory, so that a
 * bad path fails before the (possibly long) run rather than after it.
 */
int check_out_path(const char *arg, const char *path)
{
    char dir[4096];
    struct stat sb;
    if (strlen(path) >= sizeof dir)
        return fail(RC_USAGE, arg, "path too long");
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (slash && slash[1] == '\0' && slash != dir)
        return fail(RC_USAGE, arg, "'%s' names a directory, not a file", path);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return fail(RC_USAGE, arg, "'%s': directory '%s' does not exist", path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return fail(RC_USAGE, arg, "'%s': directory '%s' is not writable", path, dir);
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return fail(RC_USAGE, arg, "'%s' is a directory", path);
    return RC_OK;
}

/* ------------------------------------------------------------------------ */
/* Small helpers: shapes, npy types, JSON                                   */
/* ------------------------------------------------------------------------ */

const char *npy_type_name(clattn_npy_type t)
{
    switch (t) {
    case CLATTN_NPY_F32: return "float32";
    case CLATTN_NPY_F16: return "float16";
    case CLATTN_NPY_I32: return "int32";
    case CLATTN_NPY_F64: return "float64";
    case CLATTN_NPY_I64: return "int64";
    default: return "?";
    }
}

/* "[1,2,5,64]" into buf. */
const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

char *dup_str(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s ? s : "", n);
    return d;
}

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/*
 * Output files are written to a temporary file in the same directory and
 * renamed over the path only when complete, so a failed or interrupted
 * command never leaves a half-written file. "-" is stdout.
 */
int out_open(const char *arg, const char *path, out_file *o)
{
    memset(o, 0, sizeof *o);
    if (!strcmp(path, "-")) {
        o->f = stdout;
        return RC_OK;
    }
    size_t n = strlen(path) + 16;
    o->path = dup_str(path);
    o->tmp = malloc(n);
    if (!o->path || !o->tmp) {
        free(o->path);
        free(o->tmp);
        return fail(RC_DEVICE, arg, "out of host memory");
    }
    snprintf(o->tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(o->tmp);
    if (fd >= 0) { /* mkstemp makes it 0600; give it the mode a plain fopen would */
        mode_t mask = umask(0);
        umask(mask);
        if (fchmod(fd, 0666 & ~mask) != 0) {
            /* not fatal: the file is still the user's own */
        }
    }
    if (fd < 0 || !(o->f = fdopen(fd, "w"))) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            remove(o->tmp);
        }
        free(o->path);
        free(o->tmp);
        memset(o, 0, sizeof *o);
        return fail(RC_USAGE, arg, "cannot create a file next to '%s': %s", path, strerror(e));
    }
    return RC_OK;
}

int out_close(const char *arg, out_file *o, int ok)
{
    int rc = RC_OK;
    if (!o->f)
        return RC_OK;
    if (o->f == stdout) {
        if (fflush(stdout) != 0)
            rc = fail(RC_DEVICE, arg, "writing to stdout failed: %s", strerror(errno));
        o->f = NULL;
        return rc;
    }
    int bad = ferror(o->f);
    if (fclose(o->f) != 0)
        bad = 1;
    o->f = NULL;
    if (ok && bad)
        rc = fail(RC_DEVICE, arg, "writing '%s' failed: %s", o->tmp, strerror(errno));
    else if (ok && rename(o->tmp, o->path) != 0)
        rc = fail(RC_DEVICE, arg, "renaming '%s' to '%s' failed: %s", o->tmp, o->path, strerror(errno));
    if (!ok || rc != RC_OK)
        remove(o->tmp);
    free(o->path);
    free(o->tmp);
    o->path = o->tmp = NULL;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* clattn devices                                                           */
/* ------------------------------------------------------------------------ */

typedef struct dev_info {
    unsigned p, d;
    char *name, *vendor, *clc, *driver;
    const char *type;
    cl_uint cus, clock_mhz;
    cl_ulong global_mem, max_alloc, local_mem;
    size_t max_wg;
    int fp16, fp64, is_default;
} dev_info;

typedef struct plat_info {
    char *name, *vendor, *version;
} plat_info;

/* A malloc'ed info string ("?" if the query fails). */
static char *dev_str(cl_device_id dev, cl_device_info param)
{
    size_t n = 0;
    if (clGetDeviceInfo(dev, param, 0, NULL, &n) == CL_SUCCESS && n > 0) {
        char *s = malloc(n + 1);
        if (s && clGetDeviceInfo(dev, param, n, s, NULL) == CL_SUCCESS) {
            s[n] = '\0';
            return s;
        }
        free(s);
    }
    return dup_str("?");
}

static char *plat_str(cl_platform_id plat, cl_platform_info param)
{
    size_t n = 0;
    if (clGetPlatformInfo(plat, param, 0, NULL, &n) == CL_SUCCESS && n > 0) {
        char *s = malloc(n + 1);
        if (s && clGetPlatformInfo(plat, param, n, s, NULL) == CL_SUCCESS) {
            s[n] = '\0';
            return s;
        }
        free(s);
    }
    return dup_str("?");
}

/* Whole-word match in a space-separated extension list. */
static int has_ext(const char *exts, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = exts; (p = strstr(p, name)) != NULL; p += n)
        if ((p == exts || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

static void dev_query(cl_device_id dev, dev_info *di)
{
    cl_device_type type = 0;
    cl_device_fp_config dfp = 0;
    clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    di->type = (type & CL_DEVICE_TYPE_GPU)           ? "gpu"
               : (type & CL_DEVICE_TYPE_CPU)         ? "cpu"
               : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator"
               : (type & CL_DEVICE_TYPE_CUSTOM)      ? "custom"
                                                     : "other";
    di->name = dev_str(dev, CL_DEVICE_NAME);
    di->vendor = dev_str(dev, CL_DEVICE_VENDOR);
    di->clc = dev_str(dev, CL_DEVICE_OPENCL_C_VERSION);
    di->driver = dev_str(dev, CL_DRIVER_VERSION);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof di->cus, &di->cus, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof di->clock_mhz, &di->clock_mhz, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof di->global_mem, &di->global_mem, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof di->max_alloc, &di->max_alloc, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof di->local_mem, &di->local_mem, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof di->max_wg, &di->max_wg, NULL);
    char *exts = dev_str(dev, CL_DEVICE_EXTENSIONS);
    if (clGetDeviceInfo(dev, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof dfp, &dfp, NULL) != CL_SUCCESS)
        dfp = 0;
    di->fp16 = has_ext(exts, "cl_khr_fp16");
    di->fp64 = has_ext(exts, "cl_khr_fp64") || dfp != 0;
    free(exts);
}

/* "512 KiB", "7.6 GiB": binary units, MiB/GiB for memories, KiB for small ones. */
static const char *mem_str(cl_ulong bytes, char *buf, size_t size)
{
    double b = (double)bytes;
    if (b >= 1024.0 * 1024 * 1024)
        snprintf(buf, size, "%.1f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024)
        snprintf(buf, size, "%.0f MiB", b / (1024.0 * 1024));
    else
        snprintf(buf, size, "%.0f KiB", b / 1024.0);
    return buf;
}

static int imax(int a, int b) { return a > b ? a : b; }

static void devices_table(const plat_info *plats, unsigned nplat, const dev_info *devs, unsigned ndev,
                          int have_default)
{
    /* Column widths over every device so that columns line up across platforms. */
    int w_name = 4, w_vendor = 6, w_clc = 8, w_type = 4;
    for (unsigned i = 0; i < ndev; i++) {
        w_name = imax(w_name, (int)strlen(devs[i].name));
        w_vendor = imax(w_vendor, (int)strlen(devs[i].vendor));
        w_clc = imax(w_clc, (int)strlen(devs[i].clc));
        w_type = imax(w_type, (int)strlen(devs[i].type));
    }
    if (w_name > 48)
        w_name = 48;
    if (w_vendor > 24)
        w_vendor = 24;
    char hdr[512];
    snprintf(hdr, sizeof hdr, "    %-5s %-*s %-*s %-*s %4s %9s %9s %9s %8s %6s %4s %4s %-*s %s", "P:D",
             w_type, "type", w_name, "name", w_vendor, "vendor", "CUs", "clock", "global", "max alloc",
             "local", "max WG", "fp16", "fp64", w_clc, "OpenCL C", "driver");
    for (unsigned p = 0; p < nplat; p++) {
        printf("%splatform %u: %s (%s, %s)\n", p ? "\n" : "", p, plats[p].name, plats[p].version,
               plats[p].vendor);
        int any = 0;
        for (unsigned i = 0; i < ndev; i++) {
            const dev_info *d = &devs[i];
            if (d->p != p)
                continue;
            if (!any)
                printf("%s\n", hdr);
            any = 1;
            char idx[32], clock[32], g[32], a[32], l[32];
            snprintf(idx, sizeof idx, "%u:%u", d->p, d->d);
            snprintf(clock, sizeof clock, "%u MHz", (unsigned)d->clock_mhz);
            printf("  %c %-5s %-*s %-*.*s %-*.*s %4u %9s %9s %9s %8s %6zu %4s %4s %-*s %s\n",
                   d->is_default ? '*' : ' ', idx, w_type, d->type, w_name, w_name, d->name, w_vendor,
                   w_vendor, d->vendor, (unsigned)d->cus, clock, mem_str(d->global_mem, g, sizeof g),
                   mem_str(d->max_alloc, a, sizeof a), mem_str(d->local_mem, l, sizeof l), d->max_wg,
                   d->fp16 ? "yes" : "no", d->fp64 ? "yes" : "no", w_clc, d->clc, d->driver);
        }
        if (!any)
            printf("    (no devices)\n");
    }
    if (have_default)
        printf("\n* default device (CLATTN_DEVICE if set, else the first GPU, else the first device);\n"
               "  choose another with --device P:D, a type (cpu, gpu, accelerator) or a name substring\n");
}

static void devices_json(const plat_info *plats, const dev_info *devs, unsigned ndev, int have_default,
                         unsigned defp, unsigned defd)
{
    printf("{\"default\":");
    if (have_default)
        printf("\"%u:%u\"", defp, defd);
    else
        printf("null");
    printf(",\"devices\":[");
    for (unsigned i = 0; i < ndev; i++) {
        const dev_info *d = &devs[i];
        const plat_info *pl = &plats[d->p];
        printf("%s{\"index\":\"%u:%u\",\"platform_index\":%u,\"device_index\":%u,\"name\":", i ? "," : "",
               d->p, d->d, d->p, d->d);
        json_str(stdout, d->name);
        printf(",\"vendor\":");
        json_str(stdout, d->vendor);
        printf(",\"platform_name\":");
        json_str(stdout, pl->name);
        printf(",\"platform_vendor\":");
        json_str(stdout, pl->vendor);
        printf(",\"platform_version\":");
        json_str(stdout, pl->version);
        printf(",\"type\":\"%s\",\"compute_units\":%u,\"max_clock_mhz\":%u,\"global_mem_bytes\":%llu,"
               "\"max_alloc_bytes\":%llu,\"local_mem_bytes\":%llu,\"max_work_group_size\":%zu,"
               "\"opencl_c_version\":",
               d->type, (unsigned)d->cus, (unsigned)d->clock_mhz, (unsigned long long)d->global_mem,
               (unsigned long long)d->max_alloc, (unsigned long long)d->local_mem, d->max_wg);
        json_str(stdout, d->clc);
        printf(",\"driver_version\":");
        json_str(stdout, d->driver);
        printf(",\"fp16\":%s,\"fp64\":%s,\"default\":%s}", d->fp16 ? "true" : "false",
               d->fp64 ? "true" : "false", d->is_default ? "true" : "false");
    }
    printf("]}\n");
}

static int cmd_devices(int argc, char **argv)
{
    int json = 0;
    const opt opts[] = {{"--json", NULL, &json}};
    int rc = parse_opts("devices", argc, argv, opts, sizeof opts / sizeof opts[0], usage_devices);
    if (rc != RC_CONTINUE)
        return rc == RC_HELP ? RC_OK : rc;

    cl_uint nplat = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &nplat);
    if (err == (cl_int)CLATTN_CL_PLATFORM_NOT_FOUND_KHR || (err == CL_SUCCESS && nplat == 0))
        return fail(RC_DEVICE, "devices",
                    "no OpenCL platform found (is an ICD installed? e.g. the Debian package pocl-opencl-icd)");
    if (err != CL_SUCCESS)
        return cl_fail(err, "devices", "clGetPlatformIDs failed");

    cl_platform_id *pids = calloc(nplat, sizeof *pids);
    plat_info *plats = calloc(nplat, sizeof *plats);
    dev_info *devs = NULL;
    unsigned ndev = 0;
    rc = RC_OK;
    if (!pids || !plats) {
        rc = fail(RC_DEVICE, "devices", "out of host memory");
        goto cleanup;
    }
    err = clGetPlatformIDs(nplat, pids, NULL);
    if (err != CL_SUCCESS) {
        rc = cl_fail(err, "devices", "clGetPlatformIDs failed");
        goto cleanup;
    }

    unsigned defp = 0, defd = 0;
    clattn_status st = clattn_device_select(NULL, &defp, &defd);
    int have_default = st == CLATTN_SUCCESS;
    if (!have_default) {
        const char *env = getenv("CLATTN_DEVICE");
        fprintf(stderr, "clattn: warning: %s: no default device: %s (%s)\n",
                env && *env ? "CLATTN_DEVICE" : "devices", clattn_status_message(st), clattn_status_name(st));
    }

    for (cl_uint p = 0; p < nplat; p++) {
        plats[p].name = plat_str(pids[p], CL_PLATFORM_NAME);
        plats[p].vendor = plat_str(pids[p], CL_PLATFORM_VENDOR);
        plats[p].version = plat_str(pids[p], CL_PLATFORM_VERSION);
        cl_uint n = 0;
        if (clGetDeviceIDs(pids[p], CL_DEVICE_TYPE_ALL, 0, NULL, &n) != CL_SUCCESS || n == 0)
            continue;
        cl_device_id *ids = calloc(n, sizeof *ids);
        dev_info *grown = realloc(devs, (ndev + n) * sizeof *devs);
        if (!ids || !grown) {
            free(ids);
            if (grown)
                devs = grown;
            rc = fail(RC_DEVICE, "devices", "out of host memory");
            goto cleanup;
        }
        devs = grown;
        if (clGetDeviceIDs(pids[p], CL_DEVICE_TYPE_ALL, n, ids, NULL) != CL_SUCCESS) {
            free(ids);
            continue;
        }
        for (cl_uint d = 0; d < n; d++) {
            dev_info *di = &devs[ndev++];
            memset(di, 0, sizeof *di);
            di->p = p;
            di->d = d;
            dev_query(ids[d], di);
            di->is_default = have_default && defp == p && defd == d;
        }
        free(ids);
    }

    if (json)
        devices_json(plats, devs, ndev, have_default, defp, defd);
    else
        devices_table(plats, nplat, devs, ndev, have_default);
    if (ndev == 0) {
        fprintf(stderr, "clattn: error: devices: the OpenCL platforms have no devices\n");
        rc = RC_DEVICE;
    }

cleanup:
    for (unsigned i = 0; i < ndev; i++) {
        free(devs[i].name);
        free(devs[i].vendor);
        free(devs[i].clc);
        free(devs[i].driver);
    }
    free(devs);
    if (plats)
        for (cl_uint p = 0; p < nplat; p++) {
            free(plats[p].name);
            free(plats[p].vendor);
            free(plats[p].version);
        }
    free(plats);
    free(pids);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* clattn run: options and inputs                                           */
/* ------------------------------------------------------------------------ */

typedef struct run_opts {
    const char *q, *k, *v, *out, *lse, *scale, *align, *window, *softcap, *alibi, *bias, *key_lengths,
        *variant, *device, *repeat_s;
    int causal, verify, json;
    int repeat; /* launches, 1..RUN_MAX_REPEAT */
    clattn_attention_desc desc;
} run_opts;

#define RUN_MAX_REPEAT 100000

typedef struct inputs {
    clattn_npy q, k, v, alibi, bias, kl;
    int32_t *key_lengths;  /* [B], converted from kl */
    clattn_dtype dtype;    /* storage dtype of q, k, v and o */
    int64_t bias_shape[4]; /* bias padded to 4 dims with leading 1s */
    int64_t B, Hq, Hkv, Nq, Nk, D, Dv;
} inputs;

static void inputs_free(inputs *in)
{
    clattn_npy_free(&in->q);
    clattn_npy_free(&in->k);
    clattn_npy_free(&in->v);
    clattn_npy_free(&in->alibi);
    clattn_npy_free(&in->bias);
    clattn_npy_free(&in->kl);
    free(in->key_lengths);
    in->key_lengths = NULL;
}

static int run_parse(int argc, char **argv, run_opts *ro)
{
    const opt opts[] = {
        {"--q", &ro->q, NULL},
        {"--k", &ro->k, NULL},
        {"--v", &ro->v, NULL},
        {"--out", &ro->out, NULL},
        {"--lse", &ro->lse, NULL},
        {"--scale", &ro->scale, NULL},
        {"--causal", NULL, &ro->causal},
        {"--align", &ro->align, NULL},
        {"--window", &ro->window, NULL},
        {"--softcap", &ro->softcap, NULL},
        {"--alibi", &ro->alibi, NULL},
        {"--bias", &ro->bias, NULL},
        {"--key-lengths", &ro->key_lengths, NULL},
        {"--variant", &ro->variant, NULL},
        {"--device", &ro->device, NULL},
        {"--verify", NULL, &ro->verify},
        {"--json", NULL, &ro->json},
        {"--repeat", &ro->repeat_s, NULL},
    };
    int rc = parse_opts("run", argc, argv, opts, sizeof opts / sizeof opts[0], usage_run);
    if (rc != RC_CONTINUE)
        return rc; /* RC_HELP or RC_USAGE */
    if (!ro->q)
        return fail(RC_USAGE, "--q", "required (see 'clattn run --help')");
    if (!ro->k)
        return fail(RC_USAGE, "--k", "required (see 'clattn run --help')");
    if (!ro->v)
        return fail(RC_USAGE, "--v", "required (see 'clattn run --help')");
    ro->repeat = 1;
    if (ro->repeat_s) {
        int64_t n;
        if (parse_i64("--repeat", ro->repeat_s, &n) != RC_OK)
            return RC_USAGE;
        if (n < 1 || n > RUN_MAX_REPEAT)
            return fail(RC_USAGE, "--repeat", "'%s' is outside 1..%d", ro->repeat_s, RUN_MAX_REPEAT);
        ro->repeat = (int)n;
    }

    clattn_attention_desc *d = &ro->desc;
    memset(d, 0, sizeof *d);
    d->causal = ro->causal;
    if (ro->scale) {
        double s;
        if (parse_double("--scale", ro->scale, &s) != RC_OK)
            return RC_USAGE;
        /* The library reads scale 0 as "default"; passing it would silently change the meaning. */
        if (s == 0.0)
            return fail(RC_USAGE, "--scale", "0 is not supported (omit --scale for the default 1/sqrt(D))");
        if ((float)s == 0.0f) /* e.g. 1e-50: rounds to float32 0, which would mean the default */
            return fail(RC_USAGE, "--scale", "'%s' rounds to 0 in float32", ro->scale);
        d->scale = (float)s;
    }
    if (ro->softcap) {
        double c;
        if (parse_double("--softcap", ro->softcap, &c) != RC_OK)
            return RC_USAGE;
        if (c < 0.0)
            return fail(RC_USAGE, "--softcap", "'%s' is negative (0 = off, else C > 0)", ro->softcap);
        if (c > 0.0 && (float)c == 0.0f) /* would silently turn the cap off */
            return fail(RC_USAGE, "--softcap", "'%s' rounds to 0 (off) in float32", ro->softcap);
        d->softcap = (float)c;
    }
    if (ro->align) {
        if (!strcmp(ro->align, "top-left"))
            d->align = CLATTN_ALIGN_TOP_LEFT;
        else if (!strcmp(ro->align, "bottom-right"))
            d->align = CLATTN_ALIGN_BOTTOM_RIGHT;
        else if (!strcmp(ro->align, "key-lengths"))
            d->align = CLATTN_ALIGN_KEY_LENGTHS;
        else
            return fail(RC_USAGE, "--align", "'%s' is not top-left, bottom-right or key-lengths", ro->align);
    }
    if (ro->window) {
        int64_t w[2];
        int n = 0;
        if (parse_int_list("--window", ro->window, w, 2, &n) != RC_OK)
            return RC_USAGE;
        if (n != 2)
            return fail(RC_USAGE, "--window", "'%s' is not L,R (two integers, -1 = unbounded)", ro->window);
        for (int i = 0; i < 2; i++)
            if (w[i] < -1 || w[i] > INT32_MAX)
                return fail(RC_USAGE, "--window", "'%s': %lld is out of range (-1 = unbounded, else >= 0)",
                            ro->window, (long long)w[i]);
        d->use_window = 1;
        d->window_left = (int32_t)w[0];
        d->window_right = (int32_t)w[1];
    }
    d->variant = CLATTN_VARIANT_AUTO;
    if (ro->variant) {
        clattn_status st = clattn_variant_parse(ro->variant, &d->variant);
        if (st != CLATTN_SUCCESS)
            return fail(RC_USAGE, "--variant", "'%s' is not a variant (auto, naive, tiled, flash, gemm, decode)",
                        ro->variant);
    }
    if (ro->out && check_out_path("--out", ro->out) != RC_OK)
        return RC_USAGE;
    if (ro->lse && check_out_path("--lse", ro->lse) != RC_OK)
        return RC_USAGE;
    if (ro->out && ro->lse && !strcmp(ro->out, ro->lse))
        return fail(RC_USAGE, "--lse", "'%s' is also the --out path", ro->lse);
    return RC_OK;
}

int load_npy(const char *arg, const char *path, clattn_npy *out)
{
    char err[512] = "";
    clattn_status st = clattn_npy_load(path, out, err, sizeof err);
    if (st == CLATTN_SUCCESS)
        return RC_OK;
    char detail[1024];
    if (err[0] && strstr(err, path))
        snprintf(detail, sizeof detail, "%s", err);
    else
        snprintf(detail, sizeof detail, "'%s'%s%s", path, err[0] ? ": " : "", err);
    return lib_fail(st, 0, arg, detail);
}

/* Q, K or V: float32/float16, [B,H,N,D], [H,N,D] or [N,D], no empty dimension. */
static int qkv_shape(const char *arg, const clattn_npy *a, int64_t s[4])
{
    char sh[160];
    if (a->type != CLATTN_NPY_F32 && a->type != CLATTN_NPY_F16)
        return fail(RC_USAGE, arg, "element type %s is not supported (float32 or float16)", npy_type_name(a->type));
    if (a->ndim < 2 || a->ndim > 4)
        return fail(RC_USAGE, arg, "shape %s has %d dims; expected [B,H,N,D], [H,N,D] or [N,D]",
                    shape_str(a->shape, a->ndim, sh, sizeof sh), a->ndim);
    s[0] = s[1] = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] <= 0)
            return fail(RC_USAGE, arg, "shape %s has an empty dimension", shape_str(a->shape, a->ndim, sh, sizeof sh));
        s[4 - a->ndim + i] = a->shape[i];
    }
    return RC_OK;
}

static int run_load(const run_opts *ro, inputs *in)
{
    int64_t qs[4], ks[4], vs[4];
    char s1[160], s2[160];
    int rc;
    if ((rc = load_npy("--q", ro->q, &in->q)) != RC_OK || (rc = load_npy("--k", ro->k, &in->k)) != RC_OK ||
        (rc = load_npy("--v", ro->v, &in->v)) != RC_OK)
        return rc;
    if ((rc = qkv_shape("--q", &in->q, qs)) != RC_OK || (rc = qkv_shape("--k", &in->k, ks)) != RC_OK ||
        (rc = qkv_shape("--v", &in->v, vs)) != RC_OK)
        return rc;
    if (in->k.type != in->q.type)
        return fail(RC_USAGE, "--k", "dtype %s does not match --q (%s)", npy_type_name(in->k.type),
                    npy_type_name(in->q.type));
    if (in->v.type != in->q.type)
        return fail(RC_USAGE, "--v", "dtype %s does not match --q (%s)", npy_type_name(in->v.type),
                    npy_type_name(in->q.type));
    if (ks[0] != vs[0] || ks[1] != vs[1] || ks[2] != vs[2])
        return fail(RC_USAGE, "--k", "shape %s does not match --v %s (B, H and N must agree)",
                    shape_str(in->k.shape, in->k.ndim, s1, sizeof s1),
                    shape_str(in->v.shape, in->v.ndim, s2, sizeof s2));
    if (ks[3] != qs[3])
        return fail(RC_USAGE, "--k", "head dimension %lld of shape %s does not match --q %s", (long long)ks[3],
                    shape_str(in->k.shape, in->k.ndim, s1, sizeof s1),
                    shape_str(in->q.shape, in->q.ndim, s2, sizeof s2));
    if (ks[0] != qs[0])
        return fail(RC_USAGE, "--k", "batch %lld of shape %s does not match --q %s", (long long)ks[0],
                    shape_str(in->k.shape, in->k.ndim, s1, sizeof s1),
                    shape_str(in->q.shape, in->q.ndim, s2, sizeof s2));
    if (qs[1] % ks[1] != 0)
        return fail(RC_USAGE, "--k", "%lld key/value heads do not divide the %lld query heads of --q",
                    (long long)ks[1], (long long)qs[1]);
    if (qs[3] > CLATTN_MAX_HEAD_DIM || vs[3] > CLATTN_MAX_HEAD_DIM)
        return fail(RC_USAGE, qs[3] > CLATTN_MAX_HEAD_DIM ? "--q" : "--v", "head dimension %lld exceeds %d",
                    (long long)(qs[3] > CLATTN_MAX_HEAD_DIM ? qs[3] : vs[3]), CLATTN_MAX_HEAD_DIM);
    in->dtype = in->q.type == CLATTN_NPY_F16 ? CLATTN_F16 : CLATTN_F32;
    in->B = qs[0];
    in->Hq = qs[1];
    in->Nq = qs[2];
    in->D = qs[3];
    in->Hkv = ks[1];
    in->Nk = ks[2];
    in->Dv = vs[3];

    if (ro->alibi) {
        if ((rc = load_npy("--alibi", ro->alibi, &in->alibi)) != RC_OK)
            return rc;
        if (in->alibi.type != CLATTN_NPY_F32)
            return fail(RC_USAGE, "--alibi", "element type %s is not supported (float32)",
                        npy_type_name(in->alibi.type));
        if (in->alibi.ndim != 1 || in->alibi.shape[0] != in->Hq)
            return fail(RC_USAGE, "--alibi", "shape %s is not [Hq] = [%lld]",
                        shape_str(in->alibi.shape, in->alibi.ndim, s1, sizeof s1), (long long)in->Hq);
        const float *a = in->alibi.data;
        for (int64_t h = 0; h < in->Hq; h++)
            if (!isfinite(a[h]))
                return fail(RC_USAGE, "--alibi", "slope %lld is not finite", (long long)h);
    }

    if (ro->bias) {
        if ((rc = load_npy("--bias", ro->bias, &in->bias)) != RC_OK)
            return rc;
        const int64_t full[4] = {in->B, in->Hq, in->Nq, in->Nk};
        if (in->bias.type != CLATTN_NPY_F32)
            return fail(RC_USAGE, "--bias", "element type %s is not supported (float32)",
                        npy_type_name(in->bias.type));
        if (in->bias.ndim > 4)
            return fail(RC_USAGE, "--bias", "shape %s has more than 4 dims",
                        shape_str(in->bias.shape, in->bias.ndim, s1, sizeof s1));
        for (int i = 0; i < 4; i++) {
            int src = i - (4 - in->bias.ndim);
            in->bias_shape[i] = src >= 0 ? in->bias.shape[src] : 1;
            if (in->bias_shape[i] != 1 && in->bias_shape[i] != full[i])
                return fail(RC_USAGE, "--bias", "shape %s does not broadcast to [B,Hq,Nq,Nk] = %s",
                            shape_str(in->bias.shape, in->bias.ndim, s1, sizeof s1),
                            shape_str(full, 4, s2, sizeof s2));
        }
    }

    if (ro->key_lengths) {
        if ((rc = load_npy("--key-lengths", ro->key_lengths, &in->kl)) != RC_OK)
            return rc;
        if (in->kl.type != CLATTN_NPY_I32 && in->kl.type != CLATTN_NPY_I64)
            return fail(RC_USAGE, "--key-lengths", "element type %s is not supported (int32 or int64)",
                        npy_type_name(in->kl.type));
        if (in->kl.ndim != 1 || in->kl.shape[0] != in->B)
            return fail(RC_USAGE, "--key-lengths", "shape %s is not [B] = [%lld]",
                        shape_str(in->kl.shape, in->kl.ndim, s1, sizeof s1), (long long)in->B);
        in->key_lengths = malloc((size_t)in->B * sizeof *in->key_lengths);
        if (!in->key_lengths)
            return fail(RC_DEVICE, "--key-lengths", "out of host memory");
        for (int64_t b = 0; b < in->B; b++) {
            int64_t len = in->kl.type == CLATTN_NPY_I32 ? ((const int32_t *)in->kl.data)[b]
                                                         : ((const int64_t *)in->kl.data)[b];
            if (len < 0 || len > in->Nk)
                return fail(RC_USAGE, "--key-lengths", "length %lld of batch %lld is outside 0..Nk = 0..%lld",
                            (long long)len, (long long)b, (long long)in->Nk);
            in->key_lengths[b] = (int32_t)len;
        }
    }
    return RC_OK;
}

/* ------------------------------------------------------------------------ */
/* clattn run: the device                                                   */
/* ------------------------------------------------------------------------ */

typedef struct result {
    void *o;          /* O as the device stored it (the inputs' dtype), [B,Hq,Nq,Dv] */
    float *lse;       /* [B,Hq,Nq] or NULL */
    clattn_variant variant;
    char *params;     /* copy of the plan's parameter JSON */
    char *device;     /* copy of the device name */
    double kernel_ms; /* event time, or wall time when !event_timed; with --repeat N > 1,
                         the median of launches 2..N */
    double first_ms;  /* the first launch's time, as kernel_ms measures it */
    int runs;         /* launches made */
    double wall_ms;   /* the first plan_run to completion, host clock */
    size_t device_bytes; /* the plan's own device scratch */
    int event_timed;
} result;

static void result_free(result *r)
{
    free(r->o);
    free(r->lse);
    free(r->params);
    free(r->device);
    memset(r, 0, sizeof *r);
}

cl_int upload(cl_context c, cl_command_queue q, const void *data, size_t bytes, cl_mem *out)
{
    cl_int err;
    *out = clCreateBuffer(c, CL_MEM_READ_ONLY, bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return err;
    }
    return clEnqueueWriteBuffer(q, *out, CL_TRUE, 0, bytes, data, 0, NULL, NULL);
}

/* An output buffer poisoned with NaN, so that an element the kernel skips
 * fails --verify. Written from the host: clEnqueueFillBuffer is itself a
 * kernel that some implementations (PoCL) compile at first use, which would
 * dominate a short run. */
cl_int make_output(cl_context c, cl_command_queue q, size_t elem, size_t bytes, cl_mem *out)
{
    cl_int err;
    unsigned char *poison;
    (void)elem; /* all-ones bytes are NaN in f32, f16 and bf16 alike */
    *out = clCreateBuffer(c, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return err;
    }
    poison = malloc(bytes ? bytes : 1);
    if (!poison)
        return CL_OUT_OF_HOST_MEMORY;
    memset(poison, 0xFF, bytes);
    err = clEnqueueWriteBuffer(q, *out, CL_TRUE, 0, bytes, poison, 0, NULL, NULL);
    free(poison);
    return err;
}

/* The argument a plan_create failure is about, from its status. */
static const char *plan_status_arg(clattn_status st, const run_opts *ro)
{
    switch (st) {
    case CLATTN_ERROR_INVALID_SCALE: return "--scale";
    case CLATTN_ERROR_INVALID_SOFTCAP: return "--softcap";
    case CLATTN_ERROR_INVALID_WINDOW: return "--window";
    case CLATTN_ERROR_INVALID_KEY_LENGTHS: return "--key-lengths";
    case CLATTN_ERROR_INVALID_BIAS: return "--bias";
    case CLATTN_ERROR_INVALID_ALIBI: return "--alibi";
    case CLATTN_ERROR_HEAD_MISMATCH: return "--k";
    case CLATTN_ERROR_HEAD_DIM:
    case CLATTN_ERROR_INVALID_SHAPE:
    case CLATTN_ERROR_INVALID_DTYPE:
    case CLATTN_ERROR_SIZE_OVERFLOW: return "--q";
    case CLATTN_ERROR_UNSUPPORTED:
    case CLATTN_ERROR_UNKNOWN_VARIANT:
    case CLATTN_ERROR_NO_VARIANT: {
        const char *env = getenv("CLATTN_VARIANT");
        if (ro->variant)
            return "--variant";
        return env && *env ? "CLATTN_VARIANT" : "run";
    }
    default: return "run";
    }
}

static int no_platform(void)
{
    cl_uint n = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &n);
    return err != CL_SUCCESS || n == 0;
}

int open_context(const char *device, clattn_context **out)
{
    /* --device, else CLATTN_DEVICE or the default (the library reads the environment). */
    const char *env = getenv("CLATTN_DEVICE");
    const int user_spec = device != NULL || (env && *env);
    const char *spec_arg = device ? "--device" : (env && *env) ? "CLATTN_DEVICE" : "device";
    clattn_status st = clattn_context_create(device, out);
    if (st != CLATTN_SUCCESS) {
        char detail[512];
        const char *spec = device ? device : (env && *env) ? env : NULL;
        *out = NULL;
        if (st == CLATTN_ERROR_NO_DEVICE && no_platform())
            return fail(RC_DEVICE, spec_arg, "no OpenCL platform found (is an ICD installed?)");
        if (spec)
            snprintf(detail, sizeof detail, "'%s' (see 'clattn devices')", spec);
        else
            detail[0] = '\0';
        return lib_fail(st, user_spec, spec_arg, detail);
    }
    return RC_OK;
}

static int run_device(const run_opts *ro, const inputs *in, result *res)
{
    int rc = RC_OK;
    clattn_status st;
    cl_int err;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;
    cl_mem mq = NULL, mk = NULL, mv = NULL, mo = NULL, mlse = NULL, mbias = NULL, malibi = NULL, mkl = NULL;
    cl_event ev = NULL, mark = NULL;
    const size_t esz = clattn_dtype_size(in->dtype);
    const size_t o_count = (size_t)(in->B * in->Hq * in->Nq * in->Dv);
    const size_t lse_count = (size_t)(in->B * in->Hq * in->Nq);

    rc = open_context(ro->device, &ctx);
    if (rc != RC_OK)
        return rc;
    cl_context clctx = NULL;
    cl_command_queue queue = NULL;
    st = clattn_context_cl(ctx, &clctx, NULL, &queue);
    if (st != CLATTN_SUCCESS) {
        rc = lib_fail(st, 0, "device", clattn_context_last_error(ctx));
        goto cleanup;
    }
    res->device = dup_str(clattn_context_device_name(ctx));

    /*
     * Plan from the metadata alone (buffers NULL, presence flags set), so every
     * validation error is reported before anything is allocated on the device.
     */
    clattn_args a;
    memset(&a, 0, sizeof a);
    a.q = clattn_tensor_make(NULL, 0, in->dtype, in->B, in->Hq, in->Nq, in->D);
    a.k = clattn_tensor_make(NULL, 0, in->dtype, in->B, in->Hkv, in->Nk, in->D);
    a.v = clattn_tensor_make(NULL, 0, in->dtype, in->B, in->Hkv, in->Nk, in->Dv);
    a.o = clattn_tensor_make(NULL, 0, in->dtype, in->B, in->Hq, in->Nq, in->Dv);
    if (ro->lse) {
        a.lse = clattn_tensor_make(NULL, 0, CLATTN_F32, in->B, in->Hq, in->Nq, 1);
        a.has_lse = 1;
    }
    if (ro->bias) {
        /*
         * The view has the full [B,Hq,Nq,Nk] shape with stride 0 on broadcast dims over
         * the compact array. All-zero strides would mean "contiguous", so a bias that
         * broadcasts along every dim keeps its own size-1 shape instead.
         */
        const int64_t full[4] = {in->B, in->Hq, in->Nq, in->Nk};
        const int64_t *bs = in->bias_shape;
        int64_t cs[4] = {bs[1] * bs[2] * bs[3], bs[2] * bs[3], bs[3], 1};
        a.bias = clattn_tensor_make(NULL, 0, CLATTN_F32, full[0], full[1], full[2], full[3]);
        int any = 0;
        for (int i = 0; i < 4; i++) {
            a.bias.strides[i] = bs[i] == 1 && full[i] > 1 ? 0 : cs[i];
            any |= a.bias.strides[i] != 0;
        }
        if (!any)
            for (int i = 0; i < 4; i++) {
                a.bias.shape[i] = bs[i];
                a.bias.strides[i] = cs[i];
            }
        a.has_bias = 1;
    }
    a.has_alibi = ro->alibi != NULL;
    a.has_key_lengths = ro->key_lengths != NULL;

    st = clattn_plan_create(ctx, &ro->desc, &a, &plan);
    if (st != CLATTN_SUCCESS) {
        plan = NULL;
        rc = lib_fail(st, 0, plan_status_arg(st, ro), clattn_context_last_error(ctx));
        goto cleanup;
    }
    res->variant = clattn_plan_variant(plan);
    res->params = dup_str(clattn_plan_params_json(plan));
    res->device_bytes = clattn_plan_device_bytes(plan);

    /* Buffers: inputs uploaded as loaded, outputs poisoned. */
    if ((err = upload(clctx, queue, in->q.data, in->q.count * esz, &mq)) != CL_SUCCESS) {
        rc = cl_fail(err, "--q", "creating or writing the device buffer failed");
        goto cleanup;
    }
    if ((err = upload(clctx, queue, in->k.data, in->k.count * esz, &mk)) != CL_SUCCESS) {
        rc = cl_fail(err, "--k", "creating or writing the device buffer failed");
        goto cleanup;
    }
    if ((err = upload(clctx, queue, in->v.data, in->v.count * esz, &mv)) != CL_SUCCESS) {
        rc = cl_fail(err, "--v", "creating or writing the device buffer failed");
        goto cleanup;
    }
    if ((err = make_output(clctx, queue, esz, o_count * esz, &mo)) != CL_SUCCESS) {
        rc = cl_fail(err, "--out", "creating the output buffer failed");
        goto cleanup;
    }
    if (ro->lse && (err = make_output(clctx, queue, sizeof(float), lse_count * sizeof(float), &mlse)) != CL_SUCCESS) {
        rc = cl_fail(err, "--lse", "creating the output buffer failed");
        goto cleanup;
    }
    if (ro->bias && (err = upload(clctx, queue, in->bias.data, in->bias.count * sizeof(float), &mbias)) != CL_SUCCESS) {
        rc = cl_fail(err, "--bias", "creating or writing the device buffer failed");
        goto cleanup;
    }
    if (ro->alibi && (err = upload(clctx, queue, in->alibi.data, in->alibi.count * sizeof(float), &malibi)) != CL_SUCCESS) {
        rc = cl_fail(err, "--alibi", "creating or writing the device buffer failed");
        goto cleanup;
    }
    if (ro->key_lengths &&
        (err = upload(clctx, queue, in->key_lengths, (size_t)in->B * sizeof(int32_t), &mkl)) != CL_SUCCESS) {
        rc = cl_fail(err, "--key-lengths", "creating or writing the device buffer failed");
        goto cleanup;
    }
    a.q.buffer = mq;
    a.k.buffer = mk;
    a.v.buffer = mv;
    a.o.buffer = mo;
    a.lse.buffer = mlse;
    a.bias.buffer = mbias;
    a.alibi = malibi;
    a.key_lengths = mkl;

    /* The run is timed from a marker enqueued before it to the end of the
     * plan's event, so plans of several kernels (gemm, decode) count whole. */
    clFinish(queue);
    if (clEnqueueMarkerWithWaitList(queue, 0, NULL, &mark) != CL_SUCCESS)
        mark = NULL;
    double t0 = now_ms();
    st = clattn_plan_run(plan, &a, NULL, 0, NULL, &ev);
    if (st != CLATTN_SUCCESS) {
        ev = NULL;
        rc = lib_fail(st, 0, "run", clattn_context_last_error(ctx));
        goto cleanup;
    }
    err = ev ? clWaitForEvents(1, &ev) : clFinish(queue);
    res->wall_ms = now_ms() - t0;
    if (err != CL_SUCCESS) {
        rc = cl_fail(err, "run", "waiting for the attention kernels failed");
        goto cleanup;
    }
    res->kernel_ms = res->wall_ms;
    if (ev) {
        cl_ulong start = 0, end = 0;
        if (clGetEventProfilingInfo(mark ? mark : ev, mark ? CL_PROFILING_COMMAND_END : CL_PROFILING_COMMAND_START,
                                    sizeof start, &start, NULL) == CL_SUCCESS &&
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL) == CL_SUCCESS &&
            end >= start) {
            res->kernel_ms = (double)(end - start) * 1e-6;
            res->event_timed = 1;
        }
    }
    res->first_ms = res->kernel_ms;
    res->runs = 1;
    if (ro->repeat > 1) {
        /* Launches 2..N, each timed from its own marker; the outputs are those of the last. */
        double *ms = malloc((size_t)(ro->repeat - 1) * sizeof *ms);
        if (!ms) {
            rc = fail(RC_DEVICE, "--repeat", "out of host memory for %d timings", ro->repeat - 1);
            goto cleanup;
        }
        rc = time_plan_runs(ctx, "--repeat", plan, &a, ro->repeat - 1, ms);
        if (rc == RC_OK) {
            res->kernel_ms = median_sorted(ms, ro->repeat - 1);
            res->event_timed = 1;
            res->runs = ro->repeat;
        }
        free(ms);
        if (rc != RC_OK)
            goto cleanup;
    }

    res->o = malloc(o_count * esz);
    if (mlse)
        res->lse = malloc(lse_count * sizeof(float));
    if (!res->o || (mlse && !res->lse)) {
        rc = fail(RC_DEVICE, "run", "out of host memory for the outputs");
        goto cleanup;
    }
    err = clEnqueueReadBuffer(queue, mo, CL_TRUE, 0, o_count * esz, res->o, 0, NULL, NULL);
    if (err == CL_SUCCESS && mlse)
        err = clEnqueueReadBuffer(queue, mlse, CL_TRUE, 0, lse_count * sizeof(float), res->lse, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        rc = cl_fail(err, "run", "reading the outputs back failed");

cleanup:
    if (ev)
        clReleaseEvent(ev);
    if (mark)
        clReleaseEvent(mark);
    clattn_plan_free(plan);
    cl_mem all[] = {mq, mk, mv, mo, mlse, mbias, malibi, mkl};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    clattn_context_free(ctx);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* clattn run: verification and outputs                                     */
/* ------------------------------------------------------------------------ */

typedef struct verdict {
    int done;  /* verification ran */
    int ok;
    clattn_compare_result o, lse;
    int has_lse;
} verdict;

/*
 * The reference runs on the same stored inputs with an f32 output, so it is not
 * rounded to f16; the tolerance of the device's output dtype covers that rounding.
 */
static int run_verify(const run_opts *ro, const inputs *in, const result *res, verdict *vd)
{
    int rc = RC_OK;
    const size_t o_count = (size_t)(in->B * in->Hq * in->Nq * in->Dv);
    const size_t lse_count = (size_t)(in->B * in->Hq * in->Nq);
    float *ref_o = malloc(o_count * sizeof(float));
    float *ref_lse = res->lse ? malloc(lse_count * sizeof(float)) : NULL;
    float *dev_o = in->dtype == CLATTN_F32 ? NULL : malloc(o_count * sizeof(float));
    if (!ref_o || (res->lse && !ref_lse) || (in->dtype != CLATTN_F32 && !dev_o)) {
        rc = fail(RC_DEVICE, "--verify", "out of host memory");
        goto cleanup;
    }

    clattn_host_args h;
    memset(&h, 0, sizeof h);
    h.q = (clattn_host_tensor){in->q.data, in->dtype, {in->B, in->Hq, in->Nq, in->D}};
    h.k = (clattn_host_tensor){in->k.data, in->dtype, {in->B, in->Hkv, in->Nk, in->D}};
    h.v = (clattn_host_tensor){in->v.data, in->dtype, {in->B, in->Hkv, in->Nk, in->Dv}};
    h.o = (clattn_host_tensor){ref_o, CLATTN_F32, {in->B, in->Hq, in->Nq, in->Dv}};
    if (ref_lse)
        h.lse = (clattn_host_tensor){ref_lse, CLATTN_F32, {in->B, in->Hq, in->Nq, 1}};
    if (ro->bias)
        h.bias = (clattn_host_tensor){in->bias.data, CLATTN_F32,
                                      {in->bias_shape[0], in->bias_shape[1], in->bias_shape[2], in->bias_shape[3]}};
    h.alibi = ro->alibi ? in->alibi.data : NULL;
    h.key_lengths = in->key_lengths;
    clattn_status st = clattn_reference(&ro->desc, &h);
    if (st != CLATTN_SUCCESS) {
        rc = lib_fail(st, 0, "--verify", "the CPU reference rejected the problem the device accepted");
        goto cleanup;
    }

    const float *o = res->o;
    if (dev_o) {
        const uint16_t *src = res->o;
        for (size_t i = 0; i < o_count; i++)
            dev_o[i] = clattn_half_to_float(src[i]);
        o = dev_o;
    }
    double atol, rtol, max_nmse;
    st = clattn_tolerance(in->dtype, &atol, &rtol, &max_nmse);
    if (st != CLATTN_SUCCESS) {
        rc = lib_fail(st, 0, "--verify", "no tolerance for the output dtype");
        goto cleanup;
    }
    vd->done = 1;
    vd->o = clattn_compare_f32(o, ref_o, o_count);
    vd->ok = clattn_compare_ok(&vd->o, atol, rtol, max_nmse);
    if (ref_lse) {
        /* LSE is f32 whatever the inputs: 1e-5 relative, -inf only where the reference has it. */
        vd->has_lse = 1;
        vd->lse = clattn_compare_f32(res->lse, ref_lse, lse_count);
        vd->ok = vd->ok && vd->lse.nonfinite_mismatch == 0 && clattn_compare_ok(&vd->lse, 1e-5, 1e-5, HUGE_VAL);
    }
    if (!vd->ok) {
        fprintf(stderr,
                "clattn: error: --verify: the device result differs from the CPU reference: O max error %.3e "
                "(allowed %.3e), NMSE %.3e (allowed %.1e), %zu non-finite mismatches",
                vd->o.max_abs_err, atol + rtol * vd->o.max_abs_ref, vd->o.nmse, max_nmse, vd->o.nonfinite_mismatch);
        if (vd->has_lse)
            fprintf(stderr, "; LSE max error %.3e (allowed %.3e), %zu non-finite mismatches", vd->lse.max_abs_err,
                    1e-5 + 1e-5 * vd->lse.max_abs_ref, vd->lse.nonfinite_mismatch);
        fputc('\n', stderr);
        rc = RC_VERIFY;
    }

cleanup:
    free(ref_o);
    free(ref_lse);
    free(dev_o);
    return rc;
}

/* Write --out then --lse; if --lse fails, --out is removed again. */
static int run_write(const run_opts *ro, const inputs *in, const result *res, const char **written, int *nwritten)
{
    char err[512] = "";
    int64_t shape[4];
    int nd = in->q.ndim;
    clattn_status st;
    *nwritten = 0;
    if (ro->out) {
        memcpy(shape, in->q.shape, (size_t)nd * sizeof shape[0]);
        shape[nd - 1] = in->Dv;
        st = clattn_npy_save(ro->out, in->q.type, nd, shape, res->o, err, sizeof err);
        if (st != CLATTN_SUCCESS)
            return lib_fail(st, 0, "--out", err);
        written[(*nwritten)++] = ro->out;
    }
    if (ro->lse) {
        memcpy(shape, in->q.shape, (size_t)(nd - 1) * sizeof shape[0]);
        st = clattn_npy_save(ro->lse, CLATTN_NPY_F32, nd - 1, shape, res->lse, err, sizeof err);
        if (st != CLATTN_SUCCESS) {
            int rc = lib_fail(st, 0, "--lse", err);
            if (ro->out)
                remove(ro->out);
            *nwritten = 0;
            return rc;
        }
        written[(*nwritten)++] = ro->lse;
    }
    return RC_OK;
}

static double effective_scale(const run_opts *ro, const inputs *in)
{
    return ro->desc.scale != 0.0f ? (double)ro->desc.scale : 1.0 / sqrt((double)in->D);
}

/* Dense-equivalent flops: QK^T and PV over every (i, j) pair, masks ignored. */
static double dense_flops(const inputs *in)
{
    return 2.0 * (double)in->B * (double)in->Hq * (double)in->Nq * (double)in->Nk * (double)(in->D + in->Dv);
}

static const char *align_name(clattn_align a)
{
    return a == CLATTN_ALIGN_BOTTOM_RIGHT ? "bottom-right" : a == CLATTN_ALIGN_KEY_LENGTHS ? "key-lengths" : "top-left";
}

static void print_json(const run_opts *ro, const inputs *in, const result *res, const verdict *vd,
                       const char **written, int nwritten)
{
    const clattn_attention_desc *d = &ro->desc;
    printf("{\"device\":");
    json_str(stdout, res->device);
    printf(",\"variant\":\"%s\",\"params\":%s,\"dtype\":\"%s\"", clattn_variant_name(res->variant),
           res->params && res->params[0] ? res->params : "null", clattn_dtype_name(in->dtype));
    printf(",\"B\":%lld,\"Hq\":%lld,\"Hkv\":%lld,\"Nq\":%lld,\"Nk\":%lld,\"D\":%lld,\"Dv\":%lld", (long long)in->B,
           (long long)in->Hq, (long long)in->Hkv, (long long)in->Nq, (long long)in->Nk, (long long)in->D,
           (long long)in->Dv);
    printf(",\"causal\":%s,\"align\":\"%s\",\"window\":", d->causal ? "true" : "false", align_name(d->align));
    if (d->use_window)
        printf("[%d,%d]", (int)d->window_left, (int)d->window_right);
    else
        printf("null");
    printf(",\"softcap\":");
    json_num(stdout, d->softcap);
    printf(",\"scale\":");
    json_num(stdout, effective_scale(ro, in));
    printf(",\"alibi\":%s,\"bias\":%s,\"key_lengths\":%s", ro->alibi ? "true" : "false",
           ro->bias ? "true" : "false", ro->key_lengths ? "true" : "false");
    printf(",\"kernel_ms\":");
    json_num(stdout, res->kernel_ms);
    printf(",\"runs\":%d,\"first_ms\":", res->runs);
    json_num(stdout, res->first_ms);
    printf(",\"timing\":\"%s\",\"wall_ms\":", res->event_timed ? "event" : "wall");
    json_num(stdout, res->wall_ms);
    printf(",\"device_bytes\":%zu", res->device_bytes);
    printf(",\"gflops\":");
    json_num(stdout, res->kernel_ms > 0 ? dense_flops(in) / (res->kernel_ms * 1e6) : NAN);
    printf(",\"verified\":%s,\"max_err\":", !vd->done ? "null" : vd->ok ? "true" : "false");
    json_num(stdout, vd->done ? vd->o.max_abs_err : NAN);
    printf(",\"nmse\":");
    json_num(stdout, vd->done ? vd->o.nmse : NAN);
    printf(",\"lse_max_err\":");
    json_num(stdout, vd->done && vd->has_lse ? vd->lse.max_abs_err : NAN);
    printf(",\"outputs\":[");
    for (int i = 0; i < nwritten; i++) {
        if (i)
            putchar(',');
        json_str(stdout, written[i]);
    }
    printf("]}\n");
}

static void print_summary(const run_opts *ro, const inputs *in, const result *res, const verdict *vd,
                          const char **written, int nwritten)
{
    const clattn_attention_desc *d = &ro->desc;
    char masks[256] = "";
    size_t m = 0;
    if (d->causal)
        m += (size_t)snprintf(masks + m, sizeof masks - m, ", causal %s", align_name(d->align));
    if (d->use_window && m < sizeof masks)
        m += (size_t)snprintf(masks + m, sizeof masks - m, ", window (%d,%d) %s", (int)d->window_left,
                              (int)d->window_right, align_name(d->align));
    if (d->softcap > 0 && m < sizeof masks)
        m += (size_t)snprintf(masks + m, sizeof masks - m, ", softcap %g", (double)d->softcap);
    if (ro->alibi && m < sizeof masks)
        m += (size_t)snprintf(masks + m, sizeof masks - m, ", ALiBi");
    if (ro->bias && m < sizeof masks)
        m += (size_t)snprintf(masks + m, sizeof masks - m, ", bias");
    if (ro->key_lengths && m < sizeof masks)
        snprintf(masks + m, sizeof masks - m, ", key lengths");

    printf("device %s, variant %s %s\n", res->device ? res->device : "?", clattn_variant_name(res->variant),
           res->params && res->params[0] ? res->params : "");
    printf("%s B=%lld Hq=%lld Hkv=%lld Nq=%lld Nk=%lld D=%lld Dv=%lld, scale %.6g%s\n", clattn_dtype_name(in->dtype),
           (long long)in->B, (long long)in->Hq, (long long)in->Hkv, (long long)in->Nq, (long long)in->Nk,
           (long long)in->D, (long long)in->Dv, effective_scale(ro, in), masks);
    const double gflops = res->kernel_ms > 0 ? dense_flops(in) / (res->kernel_ms * 1e6) : 0.0;
    if (res->runs > 1)
        printf("%.3f ms median of launches 2..%d (device event; first launch %.3f ms), %.2f GFLOP/s "
               "dense-equivalent\n",
               res->kernel_ms, res->runs, res->first_ms, gflops);
    else
        printf("%.3f ms (%s; first launch, see --repeat), %.2f GFLOP/s dense-equivalent\n", res->kernel_ms,
               res->event_timed ? "device event" : "wall clock, no profiling information", gflops);
    if (vd->done) {
        printf("verification %s: O max error %.3e, NMSE %.3e", vd->ok ? "passed" : "FAILED", vd->o.max_abs_err,
               vd->o.nmse);
        if (vd->has_lse)
            printf(", LSE max error %.3e", vd->lse.max_abs_err);
        printf("\n");
    }
    if (nwritten > 0) {
        printf("wrote");
        for (int i = 0; i < nwritten; i++)
            printf(" %s", written[i]);
        printf("\n");
    }
}

static int cmd_run(int argc, char **argv)
{
    run_opts ro;
    inputs in;
    result res;
    verdict vd;
    const char *written[2];
    int nwritten = 0;
    memset(&ro, 0, sizeof ro);
    memset(&in, 0, sizeof in);
    memset(&res, 0, sizeof res);
    memset(&vd, 0, sizeof vd);

    int rc = run_parse(argc, argv, &ro);
    if (rc != RC_OK)
        return rc == RC_HELP ? RC_OK : rc;
    rc = run_load(&ro, &in);
    if (rc == RC_OK)
        rc = run_device(&ro, &in, &res);
    if (rc == RC_OK && ro.verify)
        rc = run_verify(&ro, &in, &res, &vd);
    if (rc == RC_OK)
        rc = run_write(&ro, &in, &res, written, &nwritten);
    /* A failed verification still reports its numbers; other failures print nothing on stdout. */
    if (rc == RC_OK || rc == RC_VERIFY) {
        if (ro.json)
            print_json(&ro, &in, &res, &vd, written, nwritten);
        else
            print_summary(&ro, &in, &res, &vd, written, nwritten);
    }
    result_free(&res);
    inputs_free(&in);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* clattn random                                                            */
/* ------------------------------------------------------------------------ */

uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmd_random(int argc, char **argv)
{
    const char *shape_s = NULL, *dtype_s = NULL, *seed_s = NULL, *scale_s = NULL, *range_s = NULL, *out = NULL;
    const opt opts[] = {
        {"--shape", &shape_s, NULL}, {"--dtype", &dtype_s, NULL},     {"--seed", &seed_s, NULL},
        {"--scale", &scale_s, NULL}, {"--int-range", &range_s, NULL}, {"--out", &out, NULL},
    };
    int rc = parse_opts("random", argc, argv, opts, sizeof opts / sizeof opts[0], usage_random);
    if (rc != RC_CONTINUE)
        return rc == RC_HELP ? RC_OK : rc;
    if (!shape_s)
        return fail(RC_USAGE, "--shape", "required (see 'clattn random --help')");
    if (!out)
        return fail(RC_USAGE, "--out", "required (see 'clattn random --help')");

    int64_t shape[CLATTN_NPY_MAX_DIMS];
    int ndim = 0;
    if (parse_int_list("--shape", shape_s, shape, CLATTN_NPY_MAX_DIMS, &ndim) != RC_OK)
        return RC_USAGE;
    clattn_npy_type type = CLATTN_NPY_F32;
    if (dtype_s) {
        if (!strcmp(dtype_s, "f32") || !strcmp(dtype_s, "float32"))
            type = CLATTN_NPY_F32;
        else if (!strcmp(dtype_s, "f16") || !strcmp(dtype_s, "float16"))
            type = CLATTN_NPY_F16;
        else if (!strcmp(dtype_s, "i32") || !strcmp(dtype_s, "int32"))
            type = CLATTN_NPY_I32;
        else
            return fail(RC_USAGE, "--dtype", "'%s' is not f32, f16 or i32", dtype_s);
    }
    uint64_t seed = 1;
    if (seed_s) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(seed_s, &end, 10);
        if (end == seed_s || *end || *seed_s < '0' || *seed_s > '9' || errno == ERANGE)
            return fail(RC_USAGE, "--seed", "'%s' is not an unsigned 64-bit integer", seed_s);
        seed = (uint64_t)s;
    }
    double scale = 1.0;
    int64_t lo = 0, hi = 0;
    if (type == CLATTN_NPY_I32) {
        if (scale_s)
            return fail(RC_USAGE, "--scale", "applies to f32 and f16 only (use --int-range with i32)");
        if (!range_s)
            return fail(RC_USAGE, "--int-range", "required with --dtype i32");
        int64_t r[2];
        int n = 0;
        if (parse_int_list("--int-range", range_s, r, 2, &n) != RC_OK)
            return RC_USAGE;
        if (n != 2 || r[0] > r[1] || r[0] < INT32_MIN || r[1] > INT32_MAX)
            return fail(RC_USAGE, "--int-range", "'%s' is not LO,HI with int32 LO <= HI", range_s);
        lo = r[0];
        hi = r[1];
    } else {
        if (range_s)
            return fail(RC_USAGE, "--int-range", "applies to --dtype i32 only");
        if (scale_s) {
            if (parse_double("--scale", scale_s, &scale) != RC_OK)
                return RC_USAGE;
            if (scale <= 0.0 || (type == CLATTN_NPY_F16 && scale > 65504.0))
                return fail(RC_USAGE, "--scale", "'%s' must be > 0%s", scale_s,
                            type == CLATTN_NPY_F16 ? " and at most 65504 for f16" : "");
        }
    }

    size_t count = 1, esz = clattn_npy_type_size(type);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return fail(RC_USAGE, "--shape", "'%s' has a negative dimension", shape_s);
        if (shape[i] > 0 && count > SIZE_MAX / esz / (size_t)shape[i])
            return fail(RC_USAGE, "--shape", "'%s' is too large", shape_s);
        count *= (size_t)shape[i];
    }
    if (check_out_path("--out", out) != RC_OK)
        return RC_USAGE;

    void *data = malloc(count ? count * esz : 1);
    if (!data)
        return fail(RC_DEVICE, "--shape", "out of host memory for %zu elements", count);
    uint64_t state = seed;
    for (size_t i = 0; i < count; i++) {
        uint64_t r = splitmix64(&state);
        if (type == CLATTN_NPY_I32) {
            uint64_t span = (uint64_t)(hi - lo) + 1; /* <= 2^32: the modulo bias is below 2^-32 */
            ((int32_t *)data)[i] = (int32_t)(lo + (int64_t)(r % span));
            continue;
        }
        /* 24 random bits: u in [0, 1), exact in float; x in [-scale, scale). */
        double u = (double)(r >> 40) * (1.0 / 16777216.0);
        float x = (float)((2.0 * u - 1.0) * scale);
        if ((double)x >= scale)
            x = nextafterf((float)scale, 0.0f);
        if (type == CLATTN_NPY_F32) {
            ((float *)data)[i] = x;
        } else {
            uint16_t h = clattn_float_to_half(x);
            if ((double)clattn_half_to_float(h) >= scale)
                h = (uint16_t)(h - 1); /* positive half: the next value towards zero */
            ((uint16_t *)data)[i] = h;
        }
    }
    char err[512] = "";
    clattn_status st = clattn_npy_save(out, type, ndim, shape, data, err, sizeof err);
    free(data);
    if (st != CLATTN_SUCCESS)
        return lib_fail(st, 0, "--out", err);
    return RC_OK;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return RC_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage_main, stdout);
        return RC_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("clattn %d.%d.%d\n", CLATTN_VERSION_MAJOR, CLATTN_VERSION_MINOR, CLATTN_VERSION_PATCH);
        return RC_OK;
    }
    if (!strcmp(cmd, "help")) {
        if (argc < 3) {
            fputs(usage_main, stdout);
            return RC_OK;
        }
        if (argc > 3)
            return fail(RC_USAGE, argv[3], "unexpected argument (usage: clattn help [command])");
        if (!strcmp(argv[2], "devices"))
            fputs(usage_devices, stdout);
        else if (!strcmp(argv[2], "run"))
            fputs(usage_run, stdout);
        else if (!strcmp(argv[2], "random"))
            fputs(usage_random, stdout);
        else if (!strcmp(argv[2], "prof"))
            fputs(usage_prof, stdout);
        else if (!strcmp(argv[2], "check"))
            fputs(usage_check, stdout);
        else if (!strcmp(argv[2], "tune"))
            fputs(usage_tune, stdout);
        else if (!strcmp(argv[2], "mha"))
            fputs(usage_mha, stdout);
        else if (!strcmp(argv[2], "help"))
            fputs(usage_main, stdout);
        else
            return fail(RC_USAGE, argv[2], "unknown command (commands: devices, run, prof, check, tune, mha, random)");
        return RC_OK;
    }
    if (!strcmp(cmd, "devices"))
        return cmd_devices(argc - 2, argv + 2);
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "random"))
        return cmd_random(argc - 2, argv + 2);
    if (!strcmp(cmd, "prof"))
        return cmd_prof(argc - 2, argv + 2);
    if (!strcmp(cmd, "check"))
        return cmd_check(argc - 2, argv + 2);
    if (!strcmp(cmd, "tune"))
        return cmd_tune(argc - 2, argv + 2);
    if (!strcmp(cmd, "mha"))
        return cmd_mha(argc - 2, argv + 2);
    return fail(RC_USAGE, cmd, "unknown command (see 'clattn --help')");
}

