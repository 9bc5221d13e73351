/*
 * cache.c - the on-disk program cache: where it lives, the key of a program,
 * reading a cached binary back (trusting nothing in the file) and writing one
 * atomically, plus the cache counters the tests read. The in-memory cache per
 * context is programs.c's.
 *
 * Location: $CLATTN_CACHE_DIR if set and not empty ("off" disables the disk
 * cache), else $XDG_CACHE_HOME/clattn (absolute XDG_CACHE_HOME only), else
 * $HOME/.cache/clattn; created (mode 0700, like mkdir -p) on the first write.
 *
 * Key text: "clattn program cache\n" followed by the fields format, device,
 * vendor, driver, platform, options, common, kernel, each written as
 * "<name> <decimal length>\n<bytes>\n" (options are the full build options,
 * common and kernel the two source strings exactly as compiled).
 * File: <dir>/<hash>.clbin, hash = 128 bits (FNV-1a 64 and a multiply-xorshift
 * lane, each finalised with fmix64) of the key text as 32 hex digits; the
 * layout (header, key text, binary) is described in cache.h. On load
 * everything is checked: magic, version, reserved field, sizes against the
 * file size before any allocation, the key text byte for byte (so a hash
 * collision or a file from another device, driver or source is never used),
 * the binary's checksum, then clCreateProgramWithBinary and clBuildProgram.
 * Any failure ignores the file; the program is built from source and the file
 * rewritten. Writes go to <file>.tmp.XXXXXX in the same directory, are closed
 * with errors checked and renamed over the file; a failed write unlinks the
 * temporary file. No cache fault ever fails a build or touches the context's
 * last-error text.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "cache.h"
#include "internal.h"

static const unsigned char cache_magic[8] = {'C', 'L', 'A', 'T', 'T', 'N', 'P', 'B'};

/* Cache faults are not errors: a failed check jumps to the function's one
 * cleanup label without recording anything. */
#define CACHE_TRY(cond)       \
    do {                      \
        if (!(cond))          \
            goto cleanup;     \
    } while (0)

/* ------------------------------------------------------------ counters */

static atomic_long n_memory_hits, n_disk_hits, n_disk_writes, n_source_builds, n_disk_rejects;

void clattn__cache_stats_get(clattn__cache_stats *out)
{
    out->memory_hits = atomic_load(&n_memory_hits);
    out->disk_hits = atomic_load(&n_disk_hits);
    out->disk_writes = atomic_load(&n_disk_writes);
    out->source_builds = atomic_load(&n_source_builds);
    out->disk_rejects = atomic_load(&n_disk_rejects);
}

void clattn__cache_stats_reset(void)
{
    atomic_store(&n_memory_hits, 0);
    atomic_store(&n_disk_hits, 0);
    atomic_store(&n_disk_writes, 0);
    atomic_store(&n_source_builds, 0);
    atomic_store(&n_disk_rejects, 0);
}

void clattn__cache_count(clattn__cache_event event)
{
    switch (event) {
    case CLATTN__CACHE_MEMORY_HIT:
        atomic_fetch_add(&n_memory_hits, 1);
        break;
    case CLATTN__CACHE_SOURCE_BUILD:
        atomic_fetch_add(&n_source_builds, 1);
        break;
    }
}

/* ------------------------------------------------------------ hashing and encoding */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t fnv1a64(const void *data, size_t n)
{
    const unsigned char *c = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 0x100000001b3ull;
    return h;
}

/* Two independent 64-bit lanes: FNV-1a, and an add-multiply-xorshift. */
typedef struct hash128 {
    uint64_t a, b;
} hash128;

static void hash_init(hash128 *h)
{
    h->a = 0xcbf29ce484222325ull;
    h->b = 0x6a09e667f3bcc909ull;
}

static void hash_bytes(hash128 *h, const void *data, size_t n)
{
    const unsigned char *c = data;
    uint64_t a = h->a, b = h->b;
    for (size_t i = 0; i < n; i++) {
        a = (a ^ c[i]) * 0x100000001b3ull;
        b = (b + c[i] + 1) * 0x9e3779b97f4a7c15ull;
        b ^= b >> 29;
    }
    h->a = a;
    h->b = b;
}

/* A field with its length in front, so field boundaries are unambiguous. */
static void hash_field(hash128 *h, const void *data, size_t n)
{
    unsigned char len[8];
    put_u64(len, (uint64_t)n);
    hash_bytes(h, len, sizeof len);
    hash_bytes(h, data, n);
}

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

static void hash_hex(const hash128 *h, char hex[33])
{
    snprintf(hex, 33, "%016llx%016llx", (unsigned long long)fmix64(h->a), (unsigned long long)fmix64(h->b));
}

void clattn__cache_input_hash(const clattn__cache_input *in, char hex[33])
{
    hash128 h;
    hash_init(&h);
    hash_field(&h, in->src[0], in->len[0]);
    hash_field(&h, in->src[1], in->len[1]);
    hash_field(&h, in->options, strlen(in->options));
    hash_hex(&h, hex);
}

/* ------------------------------------------------------------ location and key */

int clattn__cache_dir(char *buf, size_t n)
{
    const char *env = getenv("CLATTN_CACHE_DIR");
    const char *base;
    int w;
    if (env && *env) {
        if (strcmp(env, "off") == 0)
            return 0;
        w = snprintf(buf, n, "%s", env);
    } else if ((base = getenv("XDG_CACHE_HOME")) != NULL && base[0] == '/') {
        w = snprintf(buf, n, "%s/clattn", base);
    } else if ((base = getenv("HOME")) != NULL && *base) {
        w = snprintf(buf, n, "%s/.cache/clattn", base);
    } else {
        return 0;
    }
    return w > 0 && (size_t)w < n;
}

typedef struct key_field {
    const char *name;
    const char *data;
    size_t len;
} key_field;

/* Append "<name> <len>\n<bytes>\n" at *pos (the caller sized buf). */
static void key_put(char *buf, size_t *pos, const key_field *f)
{
    *pos += (size_t)sprintf(buf + *pos, "%s %zu\n", f->name, f->len);
    memcpy(buf + *pos, f->data, f->len);
    *pos += f->len;
    buf[(*pos)++] = '\n';
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = clattn__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

int clattn__cache_file_init(const clattn_context *ctx, const clattn__cache_input *in, clattn__cache_file *f)
{
    static const char head[] = "clattn program cache\n";
    char dir[4096], version[16], hex[33];
    key_field fields[8];
    size_t nfields = 0, size = sizeof head, pos = 0, plen;
    hash128 h;
    int ok = 0;

    memset(f, 0, sizeof *f);
    CACHE_TRY(clattn__cache_dir(dir, sizeof dir));
    snprintf(version, sizeof version, "%u", CLATTN__CACHE_FORMAT_VERSION);
    fields[nfields++] = (key_field){"format", version, strlen(version)};
    fields[nfields++] = (key_field){"device", ctx->device_name, strlen(ctx->device_name)};
    fields[nfields++] = (key_field){"vendor", ctx->device_vendor, strlen(ctx->device_vendor)};
    fields[nfields++] = (key_field){"driver", ctx->driver_version, strlen(ctx->driver_version)};
    fields[nfields++] = (key_field){"platform", ctx->platform_version, strlen(ctx->platform_version)};
    fields[nfields++] = (key_field){"options", in->options, strlen(in->options)};
    fields[nfields++] = (key_field){"common", in->src[0], in->len[0]};
    fields[nfields++] = (key_field){"kernel", in->src[1], in->len[1]};
    for (size_t i = 0; i < nfields; i++) /* name, space, up to 20 digits, two newlines */
        CACHE_TRY(clattn__add_size(size, fields[i].len, &size) && clattn__add_size(size, 48, &size));

    f->key = clattn__malloc(size);
    CACHE_TRY(f->key != NULL);
    memcpy(f->key, head, sizeof head - 1);
    pos = sizeof head - 1;
    for (size_t i = 0; i < nfields; i++)
        key_put(f->key, &pos, &fields[i]);
    f->key_len = pos;

    hash_init(&h);
    hash_bytes(&h, f->key, f->key_len);
    hash_hex(&h, hex);
    f->dir = dup_str(dir);
    CACHE_TRY(f->dir != NULL);
    plen = strlen(dir) + 1 + 32 + sizeof ".clbin";
    f->path = clattn__malloc(plen);
    CACHE_TRY(f->path != NULL);
    snprintf(f->path, plen, "%s/%s.clbin", dir, hex);
    ok = 1;
cleanup:
    if (!ok)
        clattn__cache_file_free(f);
    return ok;
}

void clattn__cache_file_free(clattn__cache_file *f)
{
    clattn__free(f->dir);
    clattn__free(f->path);
    clattn__free(f->key);
    memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------ load */

/* Read exactly n bytes. */
static int read_all(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        p += r;
        n -= (size_t)r;
    }
    return 1;
}

int clattn__cache_load(clattn_context *ctx, const clattn__cache_file *f, const char *options, cl_program *out)
{
    int ok = 0, present = 0, fd = -1;
    struct stat sb;
    unsigned char head[CLATTN__CACHE_HEADER_SIZE];
    uint64_t klen, blen, sum, ksum, fsize;
    char *key = NULL;
    unsigned char *bin = NULL;
    cl_program prog = NULL;
    cl_int err = CL_SUCCESS, bin_status = CL_SUCCESS;

    CACHE_TRY(f->path != NULL);
    /* O_NONBLOCK: a FIFO planted under the file's name must not hang us. */
    fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    CACHE_TRY(fd >= 0); /* no file: a plain miss */
    present = 1;
    CACHE_TRY(fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size >= CLATTN__CACHE_HEADER_SIZE);
    fsize = (uint64_t)sb.st_size;
    CACHE_TRY(read_all(fd, head, sizeof head));
    CACHE_TRY(memcmp(head, cache_magic, sizeof cache_magic) == 0);
    CACHE_TRY(get_u32(head + 8) == CLATTN__CACHE_FORMAT_VERSION && get_u32(head + 12) == 0);
    klen = get_u64(head + 16);
    blen = get_u64(head + 24);
    sum = get_u64(head + 32);
    ksum = get_u64(head + 40);
    /* Sizes are checked against what we expect and the file size before
     * anything is allocated. */
    CACHE_TRY(klen == (uint64_t)f->key_len && ksum == fnv1a64(f->key, f->key_len));
    CACHE_TRY(fsize - CLATTN__CACHE_HEADER_SIZE >= klen);
    CACHE_TRY(blen > 0 && blen == fsize - CLATTN__CACHE_HEADER_SIZE - klen && blen <= (uint64_t)SIZE_MAX);
    key = clattn__malloc((size_t)klen);
    CACHE_TRY(key != NULL);
    CACHE_TRY(read_all(fd, key, (size_t)klen) && memcmp(key, f->key, (size_t)klen) == 0);
    bin = clattn__malloc((size_t)blen);
    CACHE_TRY(bin != NULL);
    CACHE_TRY(read_all(fd, bin, (size_t)blen) && fnv1a64(bin, (size_t)blen) == sum);
    close(fd);
    fd = -1;

    prog = cla_CreateProgramWithBinary(ctx->cl_ctx, ctx->device, (size_t)blen, bin, &bin_status, &err);
    CACHE_TRY(prog != NULL && err == CL_SUCCESS && bin_status == CL_SUCCESS);
    CACHE_TRY(cla_BuildProgram(prog, ctx->device, options) == CL_SUCCESS);
    *out = prog;
    prog = NULL;
    ok = 1;
    atomic_fetch_add(&n_disk_hits, 1);
cleanup:
    if (fd >= 0)
        close(fd);
    clattn__free(key);
    clattn__free(bin);
    cla_ReleaseProgram(prog);
    if (!ok && present)
        atomic_fetch_add(&n_disk_rejects, 1);
    return ok;
}

/* ------------------------------------------------------------ save */

/* mkdir -p with mode 0700 for what it creates; 1 when dir is a directory. */
static int make_dirs(const char *dir)
{
    char buf[4096];
    struct stat sb;
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;
        *p = '\0';
        (void)mkdir(buf, 0700); /* fails for existing parents, fine: the last step decides */
        *p = '/';
    }
    if (mkdir(buf, 0700) == 0)
        return 1;
    return stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode);
}

void clattn__cache_save(clattn_context *ctx, const clattn__cache_file *f, cl_program prog)
{
    static const char suffix[] = ".tmp.XXXXXX";
    int ok = 0, fd = -1, created = 0;
    FILE *fp = NULL;
    char *tmp = NULL;
    cl_uint ndev = 0, idx = 0;
    cl_device_id *devs = NULL;
    size_t *sizes = NULL;
    unsigned char **bins = NULL;
    unsigned char head[CLATTN__CACHE_HEADER_SIZE];
    size_t plen;

    CACHE_TRY(f->path != NULL);
    CACHE_TRY(cla_GetProgramInfo(prog, CL_PROGRAM_NUM_DEVICES, sizeof ndev, &ndev, NULL) == CL_SUCCESS && ndev > 0);
    devs = clattn__calloc(ndev, sizeof *devs);
    sizes = clattn__calloc(ndev, sizeof *sizes);
    bins = clattn__calloc(ndev, sizeof *bins);
    CACHE_TRY(devs != NULL && sizes != NULL && bins != NULL);
    CACHE_TRY(cla_GetProgramInfo(prog, CL_PROGRAM_DEVICES, ndev * sizeof *devs, devs, NULL) == CL_SUCCESS);
    while (idx < ndev && devs[idx] != ctx->device)
        idx++;
    CACHE_TRY(idx < ndev);
    CACHE_TRY(cla_GetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, ndev * sizeof *sizes, sizes, NULL) == CL_SUCCESS);
    CACHE_TRY(sizes[idx] > 0);
    /* Room for every device's binary: not all implementations skip NULL entries. */
    for (cl_uint i = 0; i < ndev; i++) {
        if (sizes[i] > 0) {
            bins[i] = clattn__malloc(sizes[i]);
            CACHE_TRY(bins[i] != NULL);
        }
    }
    CACHE_TRY(cla_GetProgramInfo(prog, CL_PROGRAM_BINARIES, ndev * sizeof *bins, bins, NULL) == CL_SUCCESS);

    memcpy(head, cache_magic, sizeof cache_magic);
    put_u32(head + 8, CLATTN__CACHE_FORMAT_VERSION);
    put_u32(head + 12, 0);
    put_u64(head + 16, (uint64_t)f->key_len);
    put_u64(head + 24, (uint64_t)sizes[idx]);
    put_u64(head + 32, fnv1a64(bins[idx], sizes[idx]));
    put_u64(head + 40, fnv1a64(f->key, f->key_len));

    CACHE_TRY(make_dirs(f->dir));
    plen = strlen(f->path);
    tmp = clattn__malloc(plen + sizeof suffix);
    CACHE_TRY(tmp != NULL);
    memcpy(tmp, f->path, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);
    fd = mkstemp(tmp);
    CACHE_TRY(fd >= 0);
    created = 1;
    fp = fdopen(fd, "wb");
    CACHE_TRY(fp != NULL);
    fd = -1; /* the stream owns it now */
    CACHE_TRY(fwrite(head, 1, sizeof head, fp) == sizeof head);
    CACHE_TRY(fwrite(f->key, 1, f->key_len, fp) == f->key_len);
    CACHE_TRY(fwrite(bins[idx], 1, sizes[idx], fp) == sizes[idx]);
    {
        int rc = fclose(fp);
        fp = NULL;
        CACHE_TRY(rc == 0);
    }
    CACHE_TRY(rename(tmp, f->path) == 0);
    ok = 1;
    atomic_fetch_add(&n_disk_writes, 1);
cleanup:
    if (fp)
        fclose(fp);
    if (fd >= 0)
        close(fd);
    if (created && !ok)
        unlink(tmp);
    clattn__free(tmp);
    if (bins) {
        for (cl_uint i = 0; i < ndev; i++)
            clattn__free(bins[i]);
    }
    clattn__free(bins);
    clattn__free(sizes);
    clattn__free(devs);
}
