/*
 * cli.h - what the subcommands of the clattn tool share: exit codes, error
 * reporting, option parsing, JSON text, opening a device, atomic file
 * output. Defined in tools/clattn.c; the subcommands prof, check and tune
 * live in tools/prof.c, tools/check.c and tools/tune.c, the measuring helpers
 * in tools/measure.c.
 */
#ifndef CLATTN_TOOL_CLI_H
#define CLATTN_TOOL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "clattn.h"
#include "hostref.h"

enum { RC_OK = 0, RC_VERIFY = 1, RC_USAGE = 2, RC_DEVICE = 3 };

/* parse_opts() results besides the exit codes: carry on, or help was printed (exit 0). */
#define RC_CONTINUE (-1)
#define RC_HELP (-2)

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* "clattn: error: <arg>: <message>" on stderr; returns rc. */
int fail(int rc, const char *arg, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* Exit code of a library status (user_spec: the user named the device). */
int status_rc(clattn_status st, int user_spec);
/* Report a library status with its message, name and detail text; returns its exit code. */
int lib_fail(clattn_status st, int user_spec, const char *arg, const char *detail);
int cl_fail(cl_int err, const char *arg, const char *call);

typedef struct opt {
    const char *name;    /* "--q" */
    const char **value;  /* an option with a value ... */
    int *flag;           /* ... or a switch */
} opt;

/* "--name value", "--name=value", "--switch"; RC_CONTINUE, RC_HELP or RC_USAGE. */
int parse_opts(const char *cmd, int argc, char **argv, const opt *opts, size_t nopts, const char *usage);
int parse_double(const char *arg, const char *s, double *out);
int parse_i64(const char *arg, const char *s, int64_t *out);
/* A comma-separated list of 1..max integers. */
int parse_int_list(const char *arg, const char *s, int64_t *out, int max, int *n);
/* The path names a file in an existing, writable directory. */
int check_out_path(const char *arg, const char *path);

/* "float32", ... for an npy type; "[1,2,5,64]" into buf. */
const char *npy_type_name(clattn_npy_type t);
const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t size);
/* Load a .npy, reporting a failure against arg; returns RC_OK or the exit code. */
int load_npy(const char *arg, const char *path, clattn_npy *out);
/* A device buffer holding bytes of data (written, blocking); an output
 * buffer of bytes poisoned with NaN so unwritten elements fail verification. */
cl_int upload(cl_context c, cl_command_queue q, const void *data, size_t bytes, cl_mem *out);
cl_int make_output(cl_context c, cl_command_queue q, size_t elem, size_t bytes, cl_mem *out);

void json_str(FILE *f, const char *s);
/* A finite number, or null. */
void json_num(FILE *f, double v);
char *dup_str(const char *s);
/* Monotonic clock in milliseconds. */
double now_ms(void);
uint64_t splitmix64(uint64_t *state);

/* Create a context on --device (NULL: CLATTN_DEVICE or the default), reporting
 * a failure like `run` does; returns RC_OK or the exit code. */
int open_context(const char *device, clattn_context **out);

/*
 * Atomic output: out_open() opens a temporary file next to path (or stdout
 * when path is "-"), out_close() flushes it and renames it over path, or
 * removes it when ok is 0 or anything failed. Returns RC_OK or an exit code.
 */
typedef struct out_file {
    FILE *f;
    char *path, *tmp;
} out_file;
int out_open(const char *arg, const char *path, out_file *o);
int out_close(const char *arg, out_file *o, int ok);

/* A comma-separated list of variant names (s, else dflt; both NULL: every
 * variant the library names but auto). Defined in tools/prof.c. */
int parse_variant_list(const char *arg, const char *s, const char *dflt, clattn_variant *out, int max, int *n);

int cmd_prof(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_mha(int argc, char **argv); /* tools/mha.c */
extern const char usage_prof[];
extern const char usage_check[];
extern const char usage_mha[];

/* Element access of host arrays (elem_get, elem_put): tools/hostref.h. */

/* ---- tools/measure.c: shared by prof, tune and run --repeat ---- */

/* Enqueue n runs of plan on ctx's queue, wait, and store each run's device
 * time (profiling events) in ms[0..n-1]; arg names the command in errors. */
int time_plan_runs(clattn_context *ctx, const char *arg, clattn_plan *plan, const clattn_args *a, int n, double *ms);
/* Sort v[0..n-1] and return its median. */
double median_sorted(double *v, int n);
/* The CPU reference (O and LSE, f32) of query rows [r0, r0 + nr) of every head
 * of batch 0 of an Nq = Nk = N problem, no mask or a top-left causal one;
 * row r of head h goes to ref_o[(h * ld + at + r) * D] and ref_lse[h * ld + at + r]. */
int sample_reference(const char *arg, clattn_dtype dt, int64_t H, int64_t Hkv, int64_t N, int64_t D, const void *q,
                     const void *k, const void *v, int causal, int64_t r0, int64_t nr, float *ref_o, float *ref_lse,
                     int64_t ld, int64_t at);

int cmd_tune(int argc, char **argv);
extern const char usage_tune[];

#endif
