/*
 * internal.h - what the library's source files share and nothing else sees:
 * the context and plan structs, the error-recording macros, the OpenCL
 * dispatch layer (every cl* call goes through it so tests can inject faults),
 * and the validated problem description.
 */
#ifndef CLATTN_INTERNAL_H
#define CLATTN_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "clattn.h"

#define CLATTN_ERRMSG_SIZE 8192

/* ------------------------------------------------------------ errors */

/* Record "func: message" as the context's last error (ctx may be NULL) and
 * return status. The message is printf-style. */
clattn_status clattn__error(clattn_context *ctx, clattn_status status, const char *func,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void clattn__clear_error(clattn_context *ctx);

/* Jump to cleanup with status set when cond is false. Needs `status` and a
 * `cleanup:` label in the calling function, and `ctx` in scope. */
#define CLATTN_CHECK(cond, st, ...)                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            status = clattn__error(ctx, (st), __func__, __VA_ARGS__);     \
            goto cleanup;                                                 \
        }                                                                 \
    } while (0)

/* Evaluate an OpenCL call returning cl_int; on failure record which call
 * failed and jump to cleanup. */
#define CLATTN_CL(call)                                                   \
    do {                                                                  \
        cl_int clerr_ = (call);                                           \
        if (clerr_ != CL_SUCCESS) {                                       \
            status = clattn__error(ctx, clattn_status_from_cl(clerr_), __func__, "%s failed: %s", \
                                   #call, clattn_status_name(clattn_status_from_cl(clerr_)));     \
            goto cleanup;                                                 \
        }                                                                 \
    } while (0)

/* ------------------------------------------------------------ OpenCL dispatch layer */

/* Fault injection: the nth (1-based) call from now through the dispatch layer
 * (cl calls and host allocations) fails with code; nth = 0 disables. */
void clattn__fault_inject(long nth, cl_int code);
/* Calls through the layer since the last clattn__fault_inject(). */
long clattn__fault_calls(void);
/* Device buffers created through the layer since process start. */
long clattn__buffer_allocations(void);
/* The layer's fault hook for calls made outside it (CLBlast): the injected
 * code when this call is the nth, else CL_SUCCESS; counts as one call. */
cl_int clattn__fault_check(void);

void *clattn__malloc(size_t n);
void *clattn__calloc(size_t n, size_t size);
void clattn__free(void *p);

cl_int cla_GetPlatformIDs(cl_uint n, cl_platform_id *p, cl_uint *num);
cl_int cla_GetPlatformInfo(cl_platform_id p, cl_platform_info what, size_t n, void *v, size_t *ret);
cl_int cla_GetDeviceIDs(cl_platform_id p, cl_device_type t, cl_uint n, cl_device_id *d, cl_uint *num);
cl_int cla_GetDeviceInfo(cl_device_id d, cl_device_info what, size_t n, void *v, size_t *ret);
cl_context cla_CreateContext(cl_device_id d, cl_int *err);
cl_command_queue cla_CreateCommandQueue(cl_context c, cl_device_id d, cl_command_queue_properties p, cl_int *err);
cl_int cla_GetCommandQueueInfo(cl_command_queue q, cl_command_queue_info what, size_t n, void *v, size_t *ret);
cl_int cla_GetContextInfo(cl_context c, cl_context_info what, size_t n, void *v, size_t *ret);
cl_mem cla_CreateBuffer(cl_context c, cl_mem_flags f, size_t n, void *host, cl_int *err);
cl_int cla_GetMemObjectInfo(cl_mem m, cl_mem_info what, size_t n, void *v, size_t *ret);
cl_program cla_CreateProgramWithSource(cl_context c, cl_uint n, const char **src, const size_t *len, cl_int *err);
cl_program cla_CreateProgramWithBinary(cl_context c, cl_device_id d, size_t len, const unsigned char *bin,
                                       cl_int *bin_status, cl_int *err);
cl_int cla_BuildProgram(cl_program p, cl_device_id d, const char *options);
cl_int cla_GetProgramInfo(cl_program p, cl_program_info what, size_t n, void *v, size_t *ret);
cl_int cla_GetProgramBuildInfo(cl_program p, cl_device_id d, cl_program_build_info what, size_t n, void *v, size_t *ret);
cl_kernel cla_CreateKernel(cl_program p, const char *name, cl_int *err);
cl_int cla_GetKernelWorkGroupInfo(cl_kernel k, cl_device_id d, cl_kernel_work_group_info what, size_t n, void *v, size_t *ret);
cl_int cla_SetKernelArg(cl_kernel k, cl_uint i, size_t n, const void *v);
cl_int cla_EnqueueNDRangeKernel(cl_command_queue q, cl_kernel k, cl_uint dims, const size_t *global,
                                const size_t *local, cl_uint nwait, const cl_event *wait, cl_event *ev);
cl_int cla_EnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool block, size_t off, size_t n, const void *p,
                              cl_uint nwait, const cl_event *wait, cl_event *ev);
cl_int cla_EnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool block, size_t off, size_t n, void *p,
                             cl_uint nwait, const cl_event *wait, cl_event *ev);
cl_int cla_EnqueueBarrierWithWaitList(cl_command_queue q, cl_uint nwait, const cl_event *wait, cl_event *ev);
cl_int cla_Finish(cl_command_queue q);
cl_int cla_WaitForEvents(cl_uint n, const cl_event *ev);
/* Releases never fail by injection: they run on cleanup paths. */
void cla_Drain(cl_command_queue q); /* clFinish on a cleanup path */
void cla_ReleaseMemObject(cl_mem m);
void cla_ReleaseKernel(cl_kernel k);
void cla_ReleaseProgram(cl_program p);
void cla_ReleaseEvent(cl_event e);
void cla_ReleaseCommandQueue(cl_command_queue q);
void cla_ReleaseContext(cl_context c);
cl_int cla_RetainContext(cl_context c);
cl_int cla_RetainCommandQueue(cl_command_queue q);

/* ------------------------------------------------------------ context */

typedef struct clattn__program_entry {
    struct clattn__program_entry *next;
    char *key; /* kernel file name, options and a hash of the sources, '\n'-separated */
    cl_program program;
} clattn__program_entry;

struct clattn_context {
    cl_platform_id platform;
    cl_device_id device;
    cl_context cl_ctx;
    cl_command_queue queue;
    char device_name[256];
    char device_vendor[256];
    char driver_version[128];
    char platform_version[256];
    cl_device_type device_type;
    cl_uint compute_units;
    cl_ulong global_mem;
    cl_ulong max_alloc;
    cl_ulong local_mem;
    size_t max_wg;
    int has_fp16;
    int has_fp64;
    clattn__program_entry *programs;
    char last_error[CLATTN_ERRMSG_SIZE];
};

/* ------------------------------------------------------------ problem */

/* A validated attention problem: dimensions, normalised strides (elements)
 * and the resolved attributes. The same struct serves plans and the reference. */
typedef struct clattn__problem {
    int64_t B, Hq, Hkv, Nq, Nk, D, Dv;
    clattn_dtype in_dtype, out_dtype;
    clattn_tensor q, k, v, o, lse, bias; /* strides filled in */
    int has_lse, has_bias, has_alibi, has_key_lengths, has_varlen;
    int64_t total_q, total_k;   /* varlen: packed rows */
    clattn_attention_desc desc; /* as given, variant resolved by the caller */
    float scale;                /* resolved */
    int64_t off;                /* diagonal offset from align */
    size_t need_bytes[6];       /* bytes from offset each view touches: q k v o lse bias */
    int has_block_table;        /* paged K/V: k and v are page pools, Nk = max_pages * page_size */
    int64_t page_size, max_pages, num_pages;
} clattn__problem;

enum { CLATTN__T_Q, CLATTN__T_K, CLATTN__T_V, CLATTN__T_O, CLATTN__T_LSE, CLATTN__T_BIAS };

/* Validate desc + args (metadata only; buffers are not touched) into *p.
 * desc NULL means defaults. On failure the message names the argument. */
clattn_status clattn__problem_init(clattn_context *ctx, const clattn_attention_desc *desc,
                                   const clattn_args *args, clattn__problem *p);

/* Check the buffers of args against p: present where required, large enough,
 * outputs not overlapping inputs or each other. */
clattn_status clattn__problem_check_buffers(clattn_context *ctx, const clattn__problem *p,
                                            const clattn_args *args, int require);

/* The allocation a buffer view lives in (the parent of a sub-buffer) and
 * the byte range [lo, hi) it touches there; need counts from offset 0 of m
 * and includes off. */
clattn_status clattn__mem_range(clattn_context *ctx, cl_mem m, size_t off, size_t need, cl_mem *base, size_t *lo,
                                size_t *hi);

/* Fill default (contiguous) strides and validate a tensor view; name is the
 * argument's name for messages. */
clattn_status clattn__tensor_check(clattn_context *ctx, const char *name, clattn_tensor *t, int ndim,
                                   int output, size_t *need_bytes);

/* ------------------------------------------------------------ plans and variants */

typedef struct clattn__variant {
    clattn_variant id;
    /* NULL when the variant can run p on ctx's device, else a static string
     * naming the first thing it lacks ("sliding window", "bf16 storage"...). */
    const char *(*supports)(const clattn_context *ctx, const clattn__problem *p);
    /* Choose parameters, build programs and kernels, allocate scratch. */
    clattn_status (*create)(clattn_plan *plan);
    clattn_status (*enqueue)(clattn_plan *plan, const clattn_args *args, cl_command_queue q,
                             cl_uint nwait, const cl_event *wait, cl_event *ev);
    void (*destroy)(clattn_plan *plan);
} clattn__variant;

struct clattn_plan {
    clattn_context *ctx;
    clattn__problem prob;
    const clattn__variant *variant;
    void *state; /* the variant's own */
    size_t device_bytes; /* scratch the plan allocated on the device */
    char params_json[512];
    clattn_launch_params req;    /* explicit launch parameters (all zero: none) */
    clattn_launch_params actual; /* what the variant runs with (clattn_plan_launch_params) */
};

extern const clattn__variant clattn__variant_naive;
extern const clattn__variant clattn__variant_tiled;
extern const clattn__variant clattn__variant_flash;
extern const clattn__variant clattn__variant_decode;

/* Number of arguments in ATTN_KERNEL_ARGS (kernels/common.cl); kernels with
 * extra arguments take them from this index on. */
/* Consecutive kernel arguments, remembering the first failure: set k, the
 * rest zero, call the setters in argument order, then check err (failed_at
 * names the argument). Defined in src/variants/args.c. */
typedef struct clattn__kargs {
    cl_kernel k;
    cl_uint i;
    cl_int err;
    cl_uint failed_at;
} clattn__kargs;
void clattn__karg(clattn__kargs *a, size_t n, const void *v);
void clattn__karg_mem(clattn__kargs *a, cl_mem m);
void clattn__karg_long(clattn__kargs *a, int64_t x);  /* as cl_long */
void clattn__karg_ulong(clattn__kargs *a, uint64_t x); /* as cl_ulong */
void clattn__karg_int(clattn__kargs *a, int64_t x);   /* as cl_int */
void clattn__karg_float(clattn__kargs *a, float x);

#define CLATTN__ATTN_KERNEL_NARGS 59
extern const clattn__variant clattn__variant_gemm;

/* CLBlast status codes (as int): the clattn status they map to (OpenCL codes
 * keep their numbers) and their symbolic names (src/variants/gemm.c). */
clattn_status clattn__blas_status(int code);
const char *clattn__blas_code_name(int code);

/* Set the arguments every attention kernel takes (ATTN_KERNEL_ARGS in
 * kernels/common.cl) from the plan's problem and this call's buffers. */
clattn_status clattn__set_attention_args(clattn_plan *plan, cl_kernel kernel, const clattn_args *args);

/* The -D options every attention kernel takes (dims, dtypes, feature switches). */
int clattn__problem_options(const clattn__problem *p, char *buf, size_t n, size_t *len);

/* clattn_plan_run with trusted_table set: the caller vouches for the block
 * table's entries (the KV cache builds its own), so the blocking host check
 * of clattn_plan_run is skipped. */
clattn_status clattn__plan_run(clattn_plan *plan, const clattn_args *args, cl_command_queue queue, cl_uint num_wait,
                               const cl_event *wait, cl_event *event, int trusted_table);
/* Paged K/V: the table's buffer is present (if require), large enough and
 * not overlapped by an output. */
clattn_status clattn__check_block_table_buffer(clattn_context *ctx, const clattn__problem *p, const clattn_args *args,
                                               int require);
/* Paged K/V: every block-table entry the sequences reach is a page of the
 * pool (blocking reads of the table and key lengths on queue after wait). */
clattn_status clattn__check_block_table(clattn_context *ctx, const clattn__problem *p, const clattn_args *args,
                                        cl_command_queue queue, cl_uint num_wait, const cl_event *wait);

/* ------------------------------------------------------------ merging partial results (src/merge.c) */

#define CLATTN__MERGE_SLOTS 4 /* MERGE_SLOTS in kernels/merge.cl */

/* n parts (0 = unused slot) in one buffer: element [b, h, i, d] of part s at
 * o_off + b*os[0] + h*os[1] + i*os[2] + d*os[3] + s*o_part_stride (elements),
 * their LSE likewise (f32). */
typedef struct clattn__merge_slot {
    cl_mem o, lse;
    uint64_t o_off, lse_off;
    int64_t os[4], ls[3];
    int64_t o_part_stride, lse_part_stride;
    int n;
} clattn__merge_slot;

/* One launch of attn_merge: slots, an optional running result of an earlier
 * launch (acc: f32 [B*H*N, Dv] then the LSE at acc_lse_off), the output views
 * (lse may be NULL) and, for varlen outputs, cu_seqlens_q. */
typedef struct clattn__merge_launch {
    clattn__merge_slot slot[CLATTN__MERGE_SLOTS];
    cl_mem acc;
    uint64_t acc_lse_off;
    cl_mem o, lse;
    uint64_t o_off, lse_off;
    int64_t os[4], ls[3];
    int64_t B, H, N, Dv;
    cl_mem cu_q;
    uint64_t cu_q_off;
    int64_t total_q;
} clattn__merge_launch;

/* The merge kernel for parts of part_dtype into an output of out_dtype (the
 * caller releases it). */
clattn_status clattn__merge_kernel(clattn_context *ctx, clattn_dtype part_dtype, clattn_dtype out_dtype, int varlen,
                                   cl_kernel *out);
clattn_status clattn__merge_enqueue(clattn_context *ctx, cl_kernel kernel, const clattn__merge_launch *l,
                                    cl_command_queue queue, cl_uint nwait, const cl_event *wait, cl_event *ev);

/* ------------------------------------------------------------ multi-head attention layer */

/* A validated layer (src/mha.c): S is the key/value length (M, or N for
 * self-attention), KVW = Hkv * Dh the width of the k and v projections. */
typedef struct clattn__mha_dims {
    int64_t B, N, S, E, H, Hkv, Dh, KVW;
    int cross;
    float scale; /* resolved */
} clattn__mha_dims;

/* The validation clattn_mha_create() and clattn_mha_reference() share; the
 * message names the argument. */
clattn_status clattn__mha_validate(clattn_context *ctx, const clattn_mha_desc *desc, int64_t B, int64_t N, int64_t M,
                                   clattn__mha_dims *out);

/* ------------------------------------------------------------ tuning */

/* Parameters from a tuning file (CLATTN_TUNING_FILE, default
 * <cache dir>/tuning.json) for variant on ctx's device: 1 found (source set
 * to a static description), 0 none applies, never an error (a bad file is
 * ignored with a note in the context's last-error text). */
struct clattn__params;
int clattn__tunefile_lookup(const clattn_context *ctx, const clattn__problem *p, clattn_variant variant,
                            struct clattn__params *out, const char **source);

/* Launch parameters of the work-group variants (tiled, flash). */
typedef struct clattn__params {
    int block_m; /* query rows per work-group */
    int block_n; /* keys per K/V tile */
    int rows;    /* query rows per work-item */
    int tpr;     /* work-items per row group (split keys for scores, Dv for the output) */
    int vec;     /* 1 or 4: vector width of global loads */
    int wg;      /* derived: block_m / rows * tpr */
} clattn__params;

/* Parameters for variant on ctx's device and problem p, from the tuning table
 * (vendor -> device -> defaults), fitted to the device's limits. source
 * receives a static string naming the table entry used. */
clattn_status clattn__tune_params(const clattn_context *ctx, const clattn__problem *p, clattn_variant variant,
                                  clattn__params *out, const char **source);
/* Fit parameters to the problem and the device: vector loads only on
 * contiguous rows of a multiple of 4, a small enough private accumulator on
 * GPUs, and the work-group size and local memory within the device's limits. */
clattn_status clattn__tune_fit(const clattn_context *ctx, const clattn__problem *p, clattn__params *io);
/* Halve the row block, and with it rows in the one-work-item form (rows =
 * block_m, tpr = 1); 0 when the block cannot shrink. */
int clattn__params_halve_block(clattn__params *pr);
/* Local memory (bytes) a tile kernel needs with these parameters. */
size_t clattn__tile_local_bytes(const clattn__problem *p, const clattn__params *pr);
/* Explicit tile parameters (clattn_launch_params): the fields req sets
 * replace those of *io (the scheduler's choice), and the result is checked
 * without adjusting anything; CLATTN_ERROR_INVALID_PARAMS names the field. */
clattn_status clattn__params_apply(clattn_context *ctx, const clattn__problem *p, const clattn_launch_params *req,
                                   clattn__params *io);
/* Explicit launch parameters against the variant: no negative field and no
 * field the variant does not take (CLATTN_ERROR_INVALID_PARAMS). */
clattn_status clattn__params_fields(clattn_context *ctx, clattn_variant variant, const clattn_launch_params *req);
/* The automatic choice order of variants on ctx's device (CLATTN_VARIANT_AUTO
 * terminated). */
const clattn_variant *clattn__tune_order(const clattn_context *ctx);

/* ------------------------------------------------------------ programs */

/* Build (or fetch from the context's cache) kernels/<name>.cl with options.
 * The returned program belongs to the cache; callers retain what they keep
 * (kernels created from it keep it alive). */
clattn_status clattn__program_get(clattn_context *ctx, const char *name, const char *options,
                                  cl_program *out);
void clattn__programs_free(clattn_context *ctx);

/* Append printf-style text to buf of size n at *len; returns 0 on overflow. */
int clattn__appendf(char *buf, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Overflow-checked size arithmetic: return 0 on overflow. */
static inline int clattn__mul_size(size_t a, size_t b, size_t *r)
{
    return !__builtin_mul_overflow(a, b, r);
}
static inline int clattn__add_size(size_t a, size_t b, size_t *r)
{
    return !__builtin_add_overflow(a, b, r);
}

#endif
