/*
 * tunefile.c - tuning files written by `clattn tune`: launch parameters
 * measured on one device, read by the scheduler ahead of the built-in table.
 *
 * Format (JSON):
 *   {"format": 1,
 *    "entries": [{"device": "<CL_DEVICE_NAME>", "driver": "<CL_DRIVER_VERSION>",
 *                 "variant": "flash", "d_max": 64, "block_m": 16, "block_n": 64,
 *                 "rows": 4, "tpr": 1, "vec": 4, ...}, ...]}
 * Entries of the naive variant carry "wg" (work-group size) instead of the
 * five tile fields. Other keys (measured GFLOP/s, dates) are ignored. An entry applies when
 * device name and driver version match the context's exactly; among those for
 * a variant, the smallest d_max >= max(D, Dv) wins. The file is
 * CLATTN_TUNING_FILE, else tuning.json in the program-cache directory.
 * A file that does not parse is never trusted: the scheduler ignores it and
 * clattn_tuning_file_load() reports why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cache.h"
#include "internal.h"

#define TUNE_MAX_ENTRIES 1024
#define TUNE_MAX_FILE (4u << 20)

typedef struct tune_rec {
    char device[256], driver[128], variant[16];
    int d_max;
    clattn__params p;
    int have; /* bit mask of the fields seen */
} tune_rec;

enum { F_DEVICE = 1, F_DRIVER = 2, F_VARIANT = 4, F_DMAX = 8, F_BM = 16, F_BN = 32, F_ROWS = 64, F_TPR = 128,
       F_VEC = 256, F_ALL = 511, F_WG = 512, F_NAIVE = F_DEVICE | F_DRIVER | F_VARIANT | F_DMAX | F_WG };

typedef struct parser {
    const char *s, *end;
    char err[256];
} parser;

static void ws(parser *ps)
{
    while (ps->s < ps->end && (*ps->s == ' ' || *ps->s == '\n' || *ps->s == '\r' || *ps->s == '\t'))
        ps->s++;
}

static int fail(parser *ps, const char *what)
{
    if (!ps->err[0])
        snprintf(ps->err, sizeof ps->err, "%s at byte %ld", what, (long)(ps->end - ps->s));
    return 0;
}

static int expect(parser *ps, char c)
{
    ws(ps);
    if (ps->s >= ps->end || *ps->s != c) {
        char msg[32];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        return fail(ps, msg);
    }
    ps->s++;
    return 1;
}

/* A JSON string into out (truncation is an error); escapes other than \" \\ \/ are refused. */
static int str(parser *ps, char *out, size_t n)
{
    size_t len = 0;
    if (!expect(ps, '"'))
        return 0;
    while (ps->s < ps->end && *ps->s != '"') {
        char c = *ps->s++;
        if ((unsigned char)c < 0x20)
            return fail(ps, "control character in a string");
        if (c == '\\') {
            if (ps->s >= ps->end || (*ps->s != '"' && *ps->s != '\\' && *ps->s != '/'))
                return fail(ps, "unsupported escape in a string");
            c = *ps->s++;
        }
        if (len + 1 >= n)
            return fail(ps, "string too long");
        out[len++] = c;
    }
    if (ps->s >= ps->end)
        return fail(ps, "unterminated string");
    ps->s++;
    out[len] = '\0';
    return 1;
}

/* A JSON number; *is_int says whether it is an integer in int range. */
static int num(parser *ps, double *v, int *is_int)
{
    char buf[64];
    size_t len = 0;
    char *endp;
    ws(ps);
    while (ps->s < ps->end && len + 1 < sizeof buf && strchr("+-0123456789.eE", *ps->s))
        buf[len++] = *ps->s++;
    buf[len] = '\0';
    if (!len)
        return fail(ps, "expected a value");
    errno = 0;
    *v = strtod(buf, &endp);
    if (*endp || errno)
        return fail(ps, "malformed number");
    *is_int = *v == (double)(int)*v && *v > -2147483648.0 && *v < 2147483648.0;
    return 1;
}

/* Skip any JSON value (for keys the reader does not use). */
static int skip_value(parser *ps, int depth)
{
    char tmp[1024];
    double d;
    int i;
    ws(ps);
    if (depth > 16)
        return fail(ps, "nesting too deep");
    if (ps->s >= ps->end)
        return fail(ps, "unexpected end");
    if (*ps->s == '"')
        return str(ps, tmp, sizeof tmp);
    if (*ps->s == '{' || *ps->s == '[') {
        const char close = *ps->s == '{' ? '}' : ']';
        const int obj = close == '}';
        ps->s++;
        ws(ps);
        if (ps->s < ps->end && *ps->s == close) {
            ps->s++;
            return 1;
        }
        for (;;) {
            if (obj && (!str(ps, tmp, sizeof tmp) || !expect(ps, ':')))
                return 0;
            if (!skip_value(ps, depth + 1))
                return 0;
            ws(ps);
            if (ps->s < ps->end && *ps->s == ',') {
                ps->s++;
                continue;
            }
            return expect(ps, close);
        }
    }
    if (ps->end - ps->s >= 4 && (!strncmp(ps->s, "true", 4) || !strncmp(ps->s, "null", 4))) {
        ps->s += 4;
        return 1;
    }
    if (ps->end - ps->s >= 5 && !strncmp(ps->s, "false", 5)) {
        ps->s += 5;
        return 1;
    }
    return num(ps, &d, &i);
}

static int entry(parser *ps, tune_rec *r)
{
    char key[32];
    memset(r, 0, sizeof *r);
    if (!expect(ps, '{'))
        return 0;
    ws(ps);
    if (ps->s < ps->end && *ps->s == '}')
        return fail(ps, "empty entry");
    for (;;) {
        static const struct {
            const char *name;
            int bit;
        } ints[] = {{"d_max", F_DMAX}, {"block_m", F_BM}, {"block_n", F_BN}, {"rows", F_ROWS}, {"tpr", F_TPR},
                    {"vec", F_VEC},   {"wg", F_WG}};
        int done = 0;
        if (!str(ps, key, sizeof key) || !expect(ps, ':'))
            return 0;
        if (!strcmp(key, "device"))
            done = str(ps, r->device, sizeof r->device) ? (r->have |= F_DEVICE, 1) : -1;
        else if (!strcmp(key, "driver"))
            done = str(ps, r->driver, sizeof r->driver) ? (r->have |= F_DRIVER, 1) : -1;
        else if (!strcmp(key, "variant"))
            done = str(ps, r->variant, sizeof r->variant) ? (r->have |= F_VARIANT, 1) : -1;
        for (size_t i = 0; !done && i < sizeof ints / sizeof ints[0]; i++) {
            double v;
            int is_int;
            int *dst[] = {&r->d_max, &r->p.block_m, &r->p.block_n, &r->p.rows, &r->p.tpr, &r->p.vec, &r->p.wg};
            if (strcmp(key, ints[i].name))
                continue;
            if (!num(ps, &v, &is_int))
                return 0;
            if (!is_int || v < 1 || v > 4096)
                return fail(ps, "an integer field is out of 1..4096");
            *dst[i] = (int)v;
            r->have |= ints[i].bit;
            done = 1;
        }
        if (done < 0)
            return 0;
        if (!done && !skip_value(ps, 1))
            return 0;
        ws(ps);
        if (ps->s < ps->end && *ps->s == ',') {
            ps->s++;
            continue;
        }
        if (!expect(ps, '}'))
            return 0;
        break;
    }
    if ((r->have & F_VARIANT) && !strcmp(r->variant, "naive")) {
        if ((r->have & F_NAIVE) != F_NAIVE)
            return fail(ps, "a naive entry lacks one of device, driver, variant, d_max, wg");
        return 1;
    }
    if ((r->have & F_ALL) != F_ALL)
        return fail(ps, "an entry lacks one of device, driver, variant, d_max, block_m, block_n, rows, tpr, vec");
    if (r->p.block_m % r->p.rows || (r->p.vec != 1 && r->p.vec != 4))
        return fail(ps, "an entry has rows not dividing block_m or vec other than 1 and 4");
    r->p.wg = r->p.block_m / r->p.rows * r->p.tpr;
    return 1;
}

/* Parse a whole file into a malloc'ed array; NULL with err set on failure,
 * and *io set when the file could not be opened or read (not a content
 * error). */
static tune_rec *parse_file(const char *path, int *count, char *err, size_t errn, int *io)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL, key[32];
    tune_rec *recs = NULL;
    parser ps;
    long size;
    int n = 0, format_seen = 0, entries_seen = 0;
    struct stat sb;
    *count = 0;
    *io = 1;
    memset(&ps, 0, sizeof ps);
    if (!f) {
        snprintf(err, errn, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(err, errn, "%s: is a directory, not a tuning file", path);
        fclose(f);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        snprintf(err, errn, "%s: unreadable", path);
        fclose(f);
        return NULL;
    }
    *io = 0;
    if ((size_t)size > TUNE_MAX_FILE) {
        snprintf(err, errn, "%s: larger than %u bytes", path, TUNE_MAX_FILE);
        fclose(f);
        return NULL;
    }
    buf = clattn__malloc((size_t)size + 1);
    recs = clattn__calloc(TUNE_MAX_ENTRIES, sizeof *recs);
    if (!buf || !recs || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        snprintf(err, errn, "%s: %s", path, buf && recs ? "read error" : "out of host memory");
        *io = buf && recs;
        goto bad;
    }
    ps.s = buf;
    ps.end = buf + size;
    if (!expect(&ps, '{'))
        goto bad_parse;
    for (;;) {
        if (!str(&ps, key, sizeof key) || !expect(&ps, ':'))
            goto bad_parse;
        if (!strcmp(key, "format")) {
            double v;
            int is_int;
            if (!num(&ps, &v, &is_int))
                goto bad_parse;
            if (v != 1.0) {
                fail(&ps, "unknown format version (expected 1)");
                goto bad_parse;
            }
            format_seen = 1;
        } else if (!strcmp(key, "entries")) {
            if (!expect(&ps, '['))
                goto bad_parse;
            ws(&ps);
            if (ps.s < ps.end && *ps.s == ']') {
                ps.s++;
            } else {
                for (;;) {
                    if (n >= TUNE_MAX_ENTRIES) {
                        fail(&ps, "too many entries");
                        goto bad_parse;
                    }
                    if (!entry(&ps, &recs[n++]))
                        goto bad_parse;
                    ws(&ps);
                    if (ps.s < ps.end && *ps.s == ',') {
                        ps.s++;
                        continue;
                    }
                    if (!expect(&ps, ']'))
                        goto bad_parse;
                    break;
                }
            }
            entries_seen = 1;
        } else if (!skip_value(&ps, 1)) {
            goto bad_parse;
        }
        ws(&ps);
        if (ps.s < ps.end && *ps.s == ',') {
            ps.s++;
            continue;
        }
        if (!expect(&ps, '}'))
            goto bad_parse;
        break;
    }
    ws(&ps);
    if (ps.s != ps.end) {
        fail(&ps, "trailing text after the object");
        goto bad_parse;
    }
    if (!format_seen || !entries_seen) {
        snprintf(err, errn, "%s: not a clattn tuning file (needs \"format\": 1 and \"entries\")", path);
        goto bad;
    }
    clattn__free(buf);
    fclose(f);
    *count = n;
    return recs;
bad_parse:
    snprintf(err, errn, "%s: %s", path, ps.err[0] ? ps.err : "malformed JSON");
bad:
    clattn__free(buf);
    clattn__free(recs);
    fclose(f);
    return NULL;
}

static int default_path(char *buf, size_t n)
{
    const char *env = getenv("CLATTN_TUNING_FILE");
    char dir[4096];
    if (env && *env) {
        if (!strcmp(env, "off"))
            return 0;
        return (size_t)snprintf(buf, n, "%s", env) < n;
    }
    if (!clattn__cache_dir(dir, sizeof dir))
        return 0;
    return (size_t)snprintf(buf, n, "%s/tuning.json", dir) < n;
}

static int applies(const clattn_context *ctx, const tune_rec *r)
{
    return !strcmp(r->device, ctx->device_name) && !strcmp(r->driver, ctx->driver_version);
}

int clattn__tunefile_lookup(const clattn_context *ctx, const clattn__problem *p, clattn_variant variant,
                            struct clattn__params *out, const char **source)
{
    char path[4096], err[512];
    tune_rec *recs;
    const tune_rec *best = NULL;
    const int dmax = (int)(p->D > p->Dv ? p->D : p->Dv);
    int n, io;
    if (!default_path(path, sizeof path))
        return 0;
    {
        FILE *probe = fopen(path, "rb"); /* the common case: no file at all */
        if (!probe)
            return 0;
        fclose(probe);
    }
    recs = parse_file(path, &n, err, sizeof err, &io);
    if (!recs)
        return 0; /* never trusted; clattn_tuning_file_load() says why */
    for (int i = 0; i < n; i++) {
        if (!applies(ctx, &recs[i]) || strcmp(recs[i].variant, clattn_variant_name(variant)) || recs[i].d_max < dmax)
            continue;
        if (!best || recs[i].d_max < best->d_max)
            best = &recs[i];
    }
    if (best) {
        *out = best->p;
        if (source)
            *source = "tuning-file";
    }
    clattn__free(recs);
    return best != NULL;
}

clattn_status clattn_tuning_file_load(clattn_context *ctx, const char *path, int *applicable)
{
    char buf[4096], err[512];
    tune_rec *recs;
    int n, count = 0, io = 0;
    if (!ctx || !applicable)
        return CLATTN_ERROR_NULL_ARGUMENT;
    clattn__clear_error(ctx);
    *applicable = 0;
    if (!path) {
        if (!default_path(buf, sizeof buf))
            return clattn__error(ctx, CLATTN_ERROR_NOT_FOUND, __func__, "no tuning file (CLATTN_TUNING_FILE=off or no cache directory)");
        path = buf;
    }
    recs = parse_file(path, &n, err, sizeof err, &io);
    if (!recs)
        return clattn__error(ctx, io ? CLATTN_ERROR_IO : CLATTN_ERROR_TUNING_FILE, __func__, "%s", err);
    for (int i = 0; i < n; i++)
        count += applies(ctx, &recs[i]);
    clattn__free(recs);
    *applicable = count;
    return CLATTN_SUCCESS;
}

clattn_status clattn_tuning_file_path(char *buf, size_t size)
{
    char path[4096];
    if (!buf)
        return CLATTN_ERROR_NULL_ARGUMENT;
    if (!default_path(path, sizeof path))
        return CLATTN_ERROR_NOT_FOUND;
    if (strlen(path) >= size)
        return CLATTN_ERROR_INVALID_VALUE;
    memcpy(buf, path, strlen(path) + 1);
    return CLATTN_SUCCESS;
}
