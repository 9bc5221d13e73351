/*
 * lsan_canary.c - a program that leaks on purpose, for the sanitizer build:
 * test_lsan.sh runs it under the options the test command gives every suite
 * and requires LeakSanitizer to report this exact leak. A change of options
 * (or a runtime) that quietly turned leak detection off would fail there.
 *
 * It first opens and uses a clattn context, so the leak check at exit runs
 * with the OpenCL implementation loaded and its threads alive, as in the
 * suites; the leak is a host block nothing points to any more.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"

#define CANARY_BYTES 4243 /* an odd size, so the report cannot be mistaken for another leak */

static void *volatile sink;

int main(void)
{
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(NULL, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "lsan_canary: no device: %s\n", clattn_status_name(st));
        return 77;
    }
    printf("lsan_canary: device %s\n", clattn_context_device_name(ctx));
    clattn_context_free(ctx);

    unsigned char *p = malloc(CANARY_BYTES);
    if (!p)
        return 1;
    memset(p, 0x5a, CANARY_BYTES);
    sink = p;
    sink = NULL; /* the last reference is gone: a direct leak */
    printf("lsan_canary: leaked %d bytes\n", CANARY_BYTES);
    return 0;
}
