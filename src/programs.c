/*
 * programs.c - kernel sources (embedded at build time, or read from the source
 * tree with -Dkernel_source=runtime / CLATTN_KERNEL_DIR), -D specialisation,
 * building, and the per-context in-memory cache of built programs keyed by
 * (kernel file, options, hash of the source text compiled). On a miss the
 * on-disk cache (cache.c) is tried before building from source.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "internal.h"
#include "programs.h"

/* Source text of kernels/<name>.cl; *owned says whether the caller frees it. */
static clattn_status kernel_source(clattn_context *ctx, const char *name, char **src, size_t *len, int *owned)
{
    clattn_status status = CLATTN_SUCCESS;
    const char *dir = getenv("CLATTN_KERNEL_DIR");
    FILE *f = NULL;
    char path[4096];
    char *buf = NULL;
    long n;
#ifdef CLATTN_KERNEL_DIR
    if (!dir || !*dir)
        dir = CLATTN_KERNEL_DIR;
#endif
    *owned = 0;
    if (!dir || !*dir) {
        for (const clattn_embedded_kernel *e = clattn_embedded_kernels; e->name; e++) {
            if (strcmp(e->name, name) == 0) {
                *src = (char *)e->source;
                *len = e->length;
                return CLATTN_SUCCESS;
            }
        }
        return clattn__error(ctx, CLATTN_ERROR_NOT_FOUND, __func__, "no embedded kernel named '%s'", name);
    }
    CLATTN_CHECK((size_t)snprintf(path, sizeof path, "%s/%s.cl", dir, name) < sizeof path, CLATTN_ERROR_IO,
                 "kernel path too long");
    f = fopen(path, "rb");
    CLATTN_CHECK(f != NULL, CLATTN_ERROR_IO, "cannot open kernel source %s", path);
    CLATTN_CHECK(fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0, CLATTN_ERROR_IO,
                 "cannot size kernel source %s", path);
    buf = clattn__malloc((size_t)n + 1);
    CLATTN_CHECK(buf != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "kernel source buffer");
    CLATTN_CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n, CLATTN_ERROR_IO, "cannot read kernel source %s", path);
    buf[n] = '\0';
    *src = buf;
    *len = (size_t)n;
    *owned = 1;
    buf = NULL;
cleanup:
    if (f)
        fclose(f);
    clattn__free(buf);
    return status;
}

/* Put the build log of a failed build into the last-error text. */
static clattn_status build_failure(clattn_context *ctx, cl_program prog, const char *name, const char *options,
                                   cl_int err)
{
    char log[CLATTN_ERRMSG_SIZE - 512];
    size_t n = 0;
    log[0] = '\0';
    if (cla_GetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, &n) != CL_SUCCESS) {
        /* A log longer than our buffer: ask for its size and show the start. */
        size_t need = 0;
        char *big = NULL;
        if (cla_GetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &need) == CL_SUCCESS &&
            (big = clattn__malloc(need + 1)) != NULL &&
            cla_GetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, need, big, NULL) == CL_SUCCESS) {
            big[need] = '\0';
            snprintf(log, sizeof log, "%s", big);
        } else {
            snprintf(log, sizeof log, "(build log unavailable)");
        }
        clattn__free(big);
    }
    log[sizeof log - 1] = '\0';
    return clattn__error(ctx, CLATTN_ERROR_BUILD, "clattn_program_build",
                         "kernels/%s.cl failed to build with options '%s' (%s); build log:\n%s", name, options,
                         clattn_status_name(clattn_status_from_cl(err)), log);
}

clattn_status clattn__program_get(clattn_context *ctx, const char *name, const char *options, cl_program *out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__program_entry *e = NULL;
    clattn__cache_input in;
    clattn__cache_file file = {0};
    char *src = NULL, *csrc = NULL;
    size_t len = 0, clen = 0, klen;
    int owned = 0, cowned = 0;
    char *full_opts = NULL;
    cl_program prog = NULL;
    cl_int err = CL_SUCCESS;
    char *key = NULL;
    char hash[33];

    /* Every kernel file is compiled after kernels/common.cl (shared storage
     * formats and mask helpers); CLATTN_COMMON tells the file not to
     * #include it itself, which it does when compiled standalone. */
    status = kernel_source(ctx, "common", &csrc, &clen, &cowned);
    if (status)
        goto cleanup;
    status = kernel_source(ctx, name, &src, &len, &owned);
    if (status)
        goto cleanup;
    klen = strlen(options) + 32;
    full_opts = clattn__malloc(klen);
    CLATTN_CHECK(full_opts != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "build options");
    snprintf(full_opts, klen, "%s -DCLATTN_COMMON=1", options);
    in = (clattn__cache_input){{csrc, src}, {clen, len}, full_opts};

    /* In memory: the file name, the options and a hash of the text actually
     * compiled, so an edited runtime kernel file is never served stale. */
    clattn__cache_input_hash(&in, hash);
    klen = strlen(name) + 1 + strlen(options) + 1 + sizeof hash;
    key = clattn__malloc(klen);
    CLATTN_CHECK(key != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "program cache key");
    snprintf(key, klen, "%s\n%s\n%s", name, options, hash);
    for (clattn__program_entry *it = ctx->programs; it; it = it->next) {
        if (strcmp(it->key, key) == 0) {
            clattn__cache_count(CLATTN__CACHE_MEMORY_HIT);
            *out = it->program;
            goto cleanup;
        }
    }

    /* On disk; any fault there means building from source (and rewriting the file). */
    if (!clattn__cache_file_init(ctx, &in, &file) || !clattn__cache_load(ctx, &file, full_opts, &prog)) {
        prog = cla_CreateProgramWithSource(ctx->cl_ctx, 2, in.src, in.len, &err);
        CLATTN_CL(err);
        clattn__cache_count(CLATTN__CACHE_SOURCE_BUILD);
        err = cla_BuildProgram(prog, ctx->device, full_opts);
        if (err != CL_SUCCESS) {
            status = err == CL_BUILD_PROGRAM_FAILURE || err == CL_COMPILE_PROGRAM_FAILURE
                         ? build_failure(ctx, prog, name, options, err)
                         : clattn__error(ctx, clattn_status_from_cl(err), __func__, "clBuildProgram(%s.cl) failed: %s",
                                         name, clattn_status_name(clattn_status_from_cl(err)));
            goto cleanup;
        }
        clattn__cache_save(ctx, &file, prog);
    }
    e = clattn__calloc(1, sizeof *e);
    CLATTN_CHECK(e != NULL, CLATTN_ERROR_OUT_OF_HOST_MEMORY, "program cache entry");
    e->key = key;
    e->program = prog;
    e->next = ctx->programs;
    ctx->programs = e;
    *out = prog;
    key = NULL;
    prog = NULL;
cleanup:
    clattn__cache_file_free(&file);
    if (owned)
        clattn__free(src);
    if (cowned)
        clattn__free(csrc);
    clattn__free(full_opts);
    cla_ReleaseProgram(prog);
    clattn__free(key);
    return status;
}

void clattn__programs_free(clattn_context *ctx)
{
    clattn__program_entry *e = ctx->programs;
    while (e) {
        clattn__program_entry *next = e->next;
        cla_ReleaseProgram(e->program);
        clattn__free(e->key);
        clattn__free(e);
        e = next;
    }
    ctx->programs = NULL;
}
