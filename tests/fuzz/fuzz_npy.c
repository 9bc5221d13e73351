/*
 * fuzz_npy.c - libFuzzer harness for the .npy reader.
 *
 * Each input is a whole file, handed to clattn_npy_load() through an
 * in-memory file (memfd, read back under /proc/self/fd; a temporary file where
 * that is missing). The harness aborts when the reader breaks its contract:
 *  - success: type and ndim in range, count = product of the shape, every data
 *    byte readable (AddressSanitizer checks the allocation), no more data than
 *    the file holds; the array saved with clattn_npy_save() and loaded again
 *    has the same type, shape and bytes;
 *  - failure: a .npy, I/O or host-memory status, a message, *out zeroed.
 * Built with -Dfuzz=true (clang, -fsanitize=fuzzer,address,undefined).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clattn.h"

static char path[4096];     /* where the input is read from */
static char rt_path[4096];  /* the round trip's file */
static char dir[4096];
static int fd = -1, own_file;

static void cleanup(void)
{
    unlink(rt_path);
    if (own_file)
        unlink(path);
    rmdir(dir);
}

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/clattn-fuzz-npy-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(rt_path, sizeof rt_path, "%s/rt.npy", dir);
    atexit(cleanup);
    fd = memfd_create("fuzz.npy", 0);
    if (fd >= 0) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (access(path, R_OK) == 0)
            return;
        close(fd);
    }
    snprintf(path, sizeof path, "%s/in.npy", dir);
    own_file = 1;
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        abort();
    }
}

static void write_input(const uint8_t *data, size_t size)
{
    size_t done = 0;
    if (ftruncate(fd, 0) != 0)
        abort();
    while (done < size) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        if (w <= 0)
            abort();
        done += (size_t)w;
    }
}

#define REQUIRE(cond)                                                                                   \
    do {                                                                                                \
        if (!(cond)) {                                                                                  \
            fprintf(stderr, "fuzz_npy: %s:%d: contract broken: %s (err: %s)\n", __FILE__, __LINE__, #cond, \
                    err);                                                                               \
            abort();                                                                                    \
        }                                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clattn_npy arr, again;
    char err[512] = "";
    clattn_status st;
    if (fd < 0)
        setup();
    write_input(data, size);
    memset(&arr, 0x5a, sizeof arr);
    st = clattn_npy_load(path, &arr, err, sizeof err);
    if (st != CLATTN_SUCCESS) {
        const clattn_npy zero = {0};
        REQUIRE(st == CLATTN_ERROR_NPY_FORMAT || st == CLATTN_ERROR_NPY_TRUNCATED || st == CLATTN_ERROR_NPY_DTYPE ||
                st == CLATTN_ERROR_NPY_SHAPE || st == CLATTN_ERROR_IO || st == CLATTN_ERROR_OUT_OF_HOST_MEMORY);
        REQUIRE(err[0] != '\0');
        REQUIRE(memcmp(&arr, &zero, sizeof arr) == 0);
        return 0;
    }
    {
        const size_t esize = clattn_npy_type_size(arr.type);
        size_t count = 1;
        unsigned sum = 0;
        REQUIRE(arr.type >= 0 && arr.type < CLATTN_NPY_TYPE_COUNT_ && esize > 0);
        REQUIRE(arr.ndim >= 0 && arr.ndim <= CLATTN_NPY_MAX_DIMS);
        for (int i = 0; i < arr.ndim; i++) {
            REQUIRE(arr.shape[i] >= 0);
            count *= (size_t)arr.shape[i];
        }
        REQUIRE(count == arr.count);
        REQUIRE(arr.count * esize <= size); /* the data came from the file */
        REQUIRE((arr.data != NULL) == (arr.count > 0));
        for (size_t i = 0; i < arr.count * esize; i++) /* every byte is there */
            sum += ((const unsigned char *)arr.data)[i];
        (void)sum;
    }
    /* round trip through the writer */
    st = clattn_npy_save(rt_path, arr.type, arr.ndim, arr.shape, arr.data, err, sizeof err);
    REQUIRE(st == CLATTN_SUCCESS);
    st = clattn_npy_load(rt_path, &again, err, sizeof err);
    REQUIRE(st == CLATTN_SUCCESS);
    REQUIRE(again.type == arr.type && again.ndim == arr.ndim && again.count == arr.count);
    REQUIRE(memcmp(again.shape, arr.shape, (size_t)arr.ndim * sizeof arr.shape[0]) == 0);
    REQUIRE(arr.count == 0 || memcmp(again.data, arr.data, arr.count * clattn_npy_type_size(arr.type)) == 0);
    clattn_npy_free(&again);
    clattn_npy_free(&arr);
    return 0;
}
