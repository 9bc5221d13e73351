/*
 * cache.h - the on-disk program cache (src/cache.c) and the counters the
 * tests read. programs.c owns the in-memory cache and calls in here on a miss.
 */
#ifndef CLATTN_CACHE_H
#define CLATTN_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "clattn.h"

/* The cache file layout (all integers little-endian):
 *   0  magic "CLATTNPB"        8 bytes
 *   8  format version          u32 (CLATTN__CACHE_FORMAT_VERSION)
 *  12  reserved, zero          u32
 *  16  key length              u64
 *  24  binary length           u64
 *  32  FNV-1a 64 of the binary u64
 *  40  FNV-1a 64 of the key    u64
 *  48  key text, then the program binary; nothing after it. */
#define CLATTN__CACHE_FORMAT_VERSION 1u
#define CLATTN__CACHE_HEADER_SIZE 48

/* Process-wide counters of the program cache (for tests). */
typedef struct clattn__cache_stats {
    long memory_hits;   /* program found in the context's in-memory cache */
    long disk_hits;     /* program built from a cache file's binary */
    long disk_writes;   /* cache files written (renamed into place) */
    long source_builds; /* clBuildProgram calls on source text */
    long disk_rejects;  /* cache files present but corrupt, foreign or unbuildable */
} clattn__cache_stats;

void clattn__cache_stats_get(clattn__cache_stats *out);
void clattn__cache_stats_reset(void);

typedef enum clattn__cache_event {
    CLATTN__CACHE_MEMORY_HIT,
    CLATTN__CACHE_SOURCE_BUILD,
} clattn__cache_event;
void clattn__cache_count(clattn__cache_event event);

/* What a program is built from: kernels/common.cl and the kernel file (both
 * as passed to clCreateProgramWithSource) and the full build options. */
typedef struct clattn__cache_input {
    const char *src[2];
    size_t len[2];
    const char *options;
} clattn__cache_input;

/* 128-bit hash of the input (length-prefixed fields) as 32 hex digits. */
void clattn__cache_input_hash(const clattn__cache_input *in, char hex[33]);

/* The cache file one program maps to: the directory resolved from the
 * environment, the file path and the key text stored in the file. */
typedef struct clattn__cache_file {
    char *dir;
    char *path;
    char *key;
    size_t key_len;
} clattn__cache_file;

/* Resolve the cache directory into buf: CLATTN_CACHE_DIR, else
 * $XDG_CACHE_HOME/clattn, else $HOME/.cache/clattn. Returns 0 when the cache
 * is off (CLATTN_CACHE_DIR=off, no HOME) or the path does not fit. */
int clattn__cache_dir(char *buf, size_t n);

/* Prepare *f for ctx's device and in; returns 0 (f zeroed) when the disk
 * cache is off or memory is short. Never records an error. */
int clattn__cache_file_init(const clattn_context *ctx, const clattn__cache_input *in, clattn__cache_file *f);
void clattn__cache_file_free(clattn__cache_file *f);

/* Build the program from f's binary; 1 with *out set on success, 0 when the
 * file is missing or was rejected. Never records an error. */
int clattn__cache_load(clattn_context *ctx, const clattn__cache_file *f, const char *options, cl_program *out);

/* Write prog's binary for ctx's device to f (temporary file, then rename).
 * Failures leave no file behind and are otherwise ignored. */
void clattn__cache_save(clattn_context *ctx, const clattn__cache_file *f, cl_program prog);

#endif
