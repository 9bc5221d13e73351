/*
 * clattn.h - the whole public API of libclattn.
 *
 * clattn computes fused attention O = softmax(scale * Q K^T [+ masks]) V on any
 * OpenCL 1.2 device, and the same function on the CPU in double precision so
 * that every device result can be verified.
 *
 * Ownership rules, once for the whole header:
 *  - Handles (clattn_context, clattn_plan) are created by a *_create() call and
 *    owned by the caller until the matching *_free() call.
 *  - cl_mem, cl_context, cl_command_queue and cl_device_id values passed in stay
 *    owned by the caller; clattn retains what it keeps and releases it again.
 *  - Strings returned by clattn (status names, last-error text) are owned by
 *    clattn; the last-error text stays valid until the next call on the same
 *    context.
 *  - Host pointers passed in are only read (inputs) or written (outputs)
 *    during the call; clattn keeps no pointer to caller memory after it returns.
 *
 * Every function that can fail returns clattn_status. On failure, outputs are
 * left untouched and the context remains usable.
 */
#ifndef CLATTN_H
#define CLATTN_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CLATTN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define CLATTN_API __attribute__((visibility("default")))
#else
#define CLATTN_API
#endif

#define CLATTN_VERSION_MAJOR 0
#define CLATTN_VERSION_MINOR 1
#define CLATTN_VERSION_PATCH 0

/** Largest head dimension any variant accepts. */
#define CLATTN_MAX_HEAD_DIM 256
/** Largest query rows per work-item (clattn_launch_params.rows). */
#define CLATTN_MAX_ROWS 128

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */
/* ------------------------------------------------------------------------ */

/*
 * One table generates the enum, clattn_status_name() and the messages.
 * OpenCL errors keep OpenCL's numbers (CLATTN_CL_xxx = CL_xxx); the library's
 * own errors live in the range -3000 .. -3999 so they can never collide with
 * OpenCL (0 .. -1100) or CLBlast (-1024 .. -2048).
 */
#define CLATTN_STATUS_MAP(X)                                                                     \
    X(SUCCESS, 0, "success")                                                                     \
    X(CL_DEVICE_NOT_FOUND, -1, "OpenCL: device not found")                                      \
    X(CL_DEVICE_NOT_AVAILABLE, -2, "OpenCL: device not available")                              \
    X(CL_COMPILER_NOT_AVAILABLE, -3, "OpenCL: compiler not available")                          \
    X(CL_MEM_OBJECT_ALLOCATION_FAILURE, -4, "OpenCL: device memory allocation failed")          \
    X(CL_OUT_OF_RESOURCES, -5, "OpenCL: out of resources")                                      \
    X(CL_OUT_OF_HOST_MEMORY, -6, "OpenCL: out of host memory")                                  \
    X(CL_PROFILING_INFO_NOT_AVAILABLE, -7, "OpenCL: profiling information not available")       \
    X(CL_MEM_COPY_OVERLAP, -8, "OpenCL: memory copy overlap")                                   \
    X(CL_BUILD_PROGRAM_FAILURE, -11, "OpenCL: program build failure")                           \
    X(CL_MAP_FAILURE, -12, "OpenCL: map failure")                                               \
    X(CL_MISALIGNED_SUB_BUFFER_OFFSET, -13, "OpenCL: misaligned sub-buffer offset")             \
    X(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, -14, "OpenCL: an event in the wait list failed") \
    X(CL_COMPILE_PROGRAM_FAILURE, -15, "OpenCL: compile program failure")                       \
    X(CL_LINK_PROGRAM_FAILURE, -17, "OpenCL: link program failure")                             \
    X(CL_INVALID_VALUE, -30, "OpenCL: invalid value")                                           \
    X(CL_INVALID_DEVICE_TYPE, -31, "OpenCL: invalid device type")                               \
    X(CL_INVALID_PLATFORM, -32, "OpenCL: invalid platform")                                     \
    X(CL_INVALID_DEVICE, -33, "OpenCL: invalid device")                                         \
    X(CL_INVALID_CONTEXT, -34, "OpenCL: invalid context")                                       \
    X(CL_INVALID_QUEUE_PROPERTIES, -35, "OpenCL: invalid queue properties")                     \
    X(CL_INVALID_COMMAND_QUEUE, -36, "OpenCL: invalid command queue")                           \
    X(CL_INVALID_HOST_PTR, -37, "OpenCL: invalid host pointer")                                 \
    X(CL_INVALID_MEM_OBJECT, -38, "OpenCL: invalid memory object")                              \
    X(CL_INVALID_BINARY, -42, "OpenCL: invalid program binary")                                 \
    X(CL_INVALID_BUILD_OPTIONS, -43, "OpenCL: invalid build options")                           \
    X(CL_INVALID_PROGRAM, -44, "OpenCL: invalid program")                                       \
    X(CL_INVALID_PROGRAM_EXECUTABLE, -45, "OpenCL: invalid program executable")                 \
    X(CL_INVALID_KERNEL_NAME, -46, "OpenCL: invalid kernel name")                               \
    X(CL_INVALID_KERNEL_DEFINITION, -47, "OpenCL: invalid kernel definition")                   \
    X(CL_INVALID_KERNEL, -48, "OpenCL: invalid kernel")                                         \
    X(CL_INVALID_ARG_INDEX, -49, "OpenCL: invalid kernel argument index")                       \
    X(CL_INVALID_ARG_VALUE, -50, "OpenCL: invalid kernel argument value")                       \
    X(CL_INVALID_ARG_SIZE, -51, "OpenCL: invalid kernel argument size")                         \
    X(CL_INVALID_KERNEL_ARGS, -52, "OpenCL: invalid kernel arguments")                          \
    X(CL_INVALID_WORK_DIMENSION, -53, "OpenCL: invalid work dimension")                         \
    X(CL_INVALID_WORK_GROUP_SIZE, -54, "OpenCL: invalid work-group size")                       \
    X(CL_INVALID_WORK_ITEM_SIZE, -55, "OpenCL: invalid work-item size")                         \
    X(CL_INVALID_GLOBAL_OFFSET, -56, "OpenCL: invalid global offset")                           \
    X(CL_INVALID_EVENT_WAIT_LIST, -57, "OpenCL: invalid event wait list")                       \
    X(CL_INVALID_EVENT, -58, "OpenCL: invalid event")                                           \
    X(CL_INVALID_OPERATION, -59, "OpenCL: invalid operation")                                   \
    X(CL_INVALID_BUFFER_SIZE, -61, "OpenCL: invalid buffer size")                               \
    X(CL_INVALID_GLOBAL_WORK_SIZE, -63, "OpenCL: invalid global work size")                     \
    X(CL_INVALID_PROPERTY, -64, "OpenCL: invalid property")                                     \
    X(CL_PLATFORM_NOT_FOUND_KHR, -1001, "OpenCL: no platform found (no ICD installed?)")        \
    X(ERROR_NULL_ARGUMENT, -3001, "a required pointer or handle is NULL")                        \
    X(ERROR_INVALID_VALUE, -3002, "an argument has an invalid value")                            \
    X(ERROR_INVALID_SHAPE, -3003, "a tensor shape is zero, negative or inconsistent")           \
    X(ERROR_INVALID_STRIDE, -3004, "tensor strides are negative or make elements overlap")      \
    X(ERROR_BUFFER_TOO_SMALL, -3005, "a buffer is smaller than the tensor view needs")          \
    X(ERROR_SIZE_OVERFLOW, -3006, "a size computation overflows")                              \
    X(ERROR_INVALID_DTYPE, -3007, "unknown or mismatched element type")                         \
    X(ERROR_HEAD_MISMATCH, -3008, "query heads are not a multiple of key/value heads")         \
    X(ERROR_HEAD_DIM, -3009, "head dimension outside the supported range")                     \
    X(ERROR_INVALID_SCALE, -3010, "scale is NaN, infinite or negative")                         \
    X(ERROR_INVALID_SOFTCAP, -3011, "softcap is NaN, infinite or negative")                     \
    X(ERROR_INVALID_WINDOW, -3012, "sliding window bounds are invalid")                         \
    X(ERROR_INVALID_KEY_LENGTHS, -3013, "key lengths are missing or out of range")             \
    X(ERROR_INVALID_BIAS, -3014, "bias is not broadcastable to [B, Hq, Nq, Nk]")               \
    X(ERROR_INVALID_ALIBI, -3015, "ALiBi slopes are missing or malformed")                      \
    X(ERROR_ALIASING, -3016, "an output buffer overlaps an input or another output")           \
    X(ERROR_MISALIGNED, -3017, "a byte offset is not a multiple of the element size")          \
    X(ERROR_INVALID_ENUM, -3018, "an enumeration argument has an unknown value")                \
    X(ERROR_UNSUPPORTED, -3019, "the requested variant does not support this problem")        \
    X(ERROR_UNKNOWN_VARIANT, -3020, "unknown variant name")                                     \
    X(ERROR_NO_VARIANT, -3021, "no variant supports this problem")                              \
    X(ERROR_PLAN_MISMATCH, -3022, "tensors passed to run differ from those the plan was made for") \
    X(ERROR_NO_DEVICE, -3023, "no OpenCL device matches the request")                           \
    X(ERROR_INVALID_DEVICE_SPEC, -3024, "malformed device specification")                       \
    X(ERROR_BUILD, -3025, "an OpenCL program failed to build (see the last-error text)")       \
    X(ERROR_OUT_OF_HOST_MEMORY, -3026, "host memory allocation failed")                         \
    X(ERROR_DEVICE_LIMIT, -3027, "the problem exceeds a device limit")                          \
    X(ERROR_IO, -3028, "file could not be opened, read or written")                            \
    X(ERROR_NPY_FORMAT, -3029, "not a valid .npy file")                                         \
    X(ERROR_NPY_TRUNCATED, -3030, ".npy file is shorter than its header says")                  \
    X(ERROR_NPY_DTYPE, -3031, ".npy element type is not supported")                             \
    X(ERROR_NPY_SHAPE, -3032, ".npy shape is negative, overflowing or unsupported")            \
    X(ERROR_NOT_FOUND, -3033, "no such kernel or resource")                                     \
    X(ERROR_INVALID_SEQLENS, -3034, "cu_seqlens are missing, not monotonic or out of range")       \
    X(ERROR_TUNING_FILE, -3035, "the tuning file is malformed (see the last-error text)")          \
    X(ERROR_EMBED_DIM, -3036, "embedding dimension is not a positive multiple of the number of heads") \
    X(ERROR_INVALID_ROPE, -3037, "RoPE base is NaN, infinite or negative, or the head dimension is odd") \
    X(ERROR_INVALID_BLOCK_TABLE, -3040, "the block table is malformed or holds a page index out of range") \
    X(ERROR_KVCACHE_RANGE, -3041, "a KV cache sequence index, length or token count is out of range") \
    X(ERROR_INVALID_PARAMS, -3045, "launch parameters are invalid for this variant, problem or device") \
    X(ERROR_INTERNAL, -3999, "internal error (please report)")

/** Status of every fallible call. Negative values are errors. */
typedef enum clattn_status {
#define CLATTN_STATUS_ENUM_(name, value, msg) CLATTN_##name = (value),
    CLATTN_STATUS_MAP(CLATTN_STATUS_ENUM_)
#undef CLATTN_STATUS_ENUM_
        CLATTN_STATUS_FORCE_INT_ = -0x7fffffff
} clattn_status;

/** Symbolic name ("CLATTN_ERROR_INVALID_SHAPE"); a static string, never NULL. */
CLATTN_API const char *clattn_status_name(clattn_status status);
/** One-line human message for a status; a static string, never NULL. */
CLATTN_API const char *clattn_status_message(clattn_status status);
/** Map a raw OpenCL error code onto clattn_status (the number is kept). */
CLATTN_API clattn_status clattn_status_from_cl(cl_int err);

/* ------------------------------------------------------------------------ */
/* Element types and tensor views                                           */
/* ------------------------------------------------------------------------ */

typedef enum clattn_dtype {
    CLATTN_F32 = 0,  /**< IEEE binary32 */
    CLATTN_F16 = 1,  /**< IEEE binary16, read with vload_half (no extension needed) */
    CLATTN_BF16 = 2, /**< bfloat16 bit patterns stored as uint16 */
    CLATTN_DTYPE_COUNT_
} clattn_dtype;

/** "f32", "f16", "bf16"; "?" for unknown values. */
CLATTN_API const char *clattn_dtype_name(clattn_dtype dtype);
/** Bytes per element (4 or 2); 0 for unknown values. */
CLATTN_API size_t clattn_dtype_size(clattn_dtype dtype);

/**
 * A view of a 4-D tensor [B, H, N, D] in a device buffer.
 *
 * buffer: caller-owned cl_mem (may be NULL in a plan_create call: only the
 *         metadata is used there).
 * offset: byte offset of element [0,0,0,0]; a multiple of the element size.
 * strides: in elements, for dims B, H, N, D. All four zero means contiguous
 *          row-major. Strides are non-negative; a dimension of size > 1 must not
 *          make elements overlap.
 * LSE tensors are [B, H, N] views: shape[3] = 1, strides[3] ignored.
 */
typedef struct clattn_tensor {
    cl_mem buffer;
    size_t offset;
    clattn_dtype dtype;
    int64_t shape[4];
    int64_t strides[4];
} clattn_tensor;

/** Fill a contiguous view of shape [b, h, n, d] (no allocation). */
CLATTN_API clattn_tensor clattn_tensor_make(cl_mem buffer, size_t offset, clattn_dtype dtype,
                                            int64_t b, int64_t h, int64_t n, int64_t d);

/* ------------------------------------------------------------------------ */
/* Contexts                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct clattn_context clattn_context;

/**
 * Create a context on a device chosen by spec:
 *  - "P:D"      platform index P, device index D (as `clattn devices` lists them)
 *  - "cpu"/"gpu"/"accelerator" the first device of that type
 *  - any other text: the first device whose name contains it (case-insensitive)
 *  - NULL or "": the CLATTN_DEVICE environment variable if set, else the first
 *    GPU, else the first device of any type.
 * The context owns its cl_context and an in-order command queue (with
 * profiling enabled). *out receives a handle the caller frees with
 * clattn_context_free().
 */
CLATTN_API clattn_status clattn_context_create(const char *spec, clattn_context **out);

/**
 * Adopt the caller's OpenCL objects. The context retains ctx, device and queue
 * (they must belong together) and releases them in clattn_context_free(); the
 * caller keeps its own references.
 */
CLATTN_API clattn_status clattn_context_adopt(cl_context ctx, cl_device_id device,
                                              cl_command_queue queue, clattn_context **out);

/** Release everything the context holds, plans made from it must be freed first. NULL is a no-op. */
CLATTN_API void clattn_context_free(clattn_context *ctx);

/**
 * The last error recorded on this context: the failing call, the argument and,
 * for build failures, the build log. "" when the last call succeeded.
 */
CLATTN_API const char *clattn_context_last_error(const clattn_context *ctx);

/** The OpenCL objects the context uses (not retained for the caller; any output pointer may be NULL). */
CLATTN_API clattn_status clattn_context_cl(const clattn_context *ctx, cl_context *cl_ctx,
                                           cl_device_id *device, cl_command_queue *queue);

/** The device's name (owned by the context). */
CLATTN_API const char *clattn_context_device_name(const clattn_context *ctx);

/**
 * Resolve a device spec (same rules as clattn_context_create, NULL = default)
 * to platform and device indices without creating anything.
 */
CLATTN_API clattn_status clattn_device_select(const char *spec, unsigned *platform_index,
                                              unsigned *device_index);

/* ------------------------------------------------------------------------ */
/* Attention problems                                                       */
/* ------------------------------------------------------------------------ */

typedef enum clattn_variant {
    CLATTN_VARIANT_AUTO = 0, /**< the scheduler chooses */
    CLATTN_VARIANT_NAIVE,    /**< one work-item per query row, two passes over the keys */
    CLATTN_VARIANT_TILED,    /**< work-group query tile, K/V tiles in local memory, two-pass softmax */
    CLATTN_VARIANT_FLASH,    /**< single pass, online softmax, streamed K/V tiles */
    CLATTN_VARIANT_GEMM,     /**< CLBlast GEMMs around a masked-softmax kernel */
    CLATTN_VARIANT_DECODE,   /**< split-KV for few queries and long key sequences */
    CLATTN_VARIANT_COUNT_
} clattn_variant;

/** "auto", "naive", ...; "?" for unknown values. */
CLATTN_API const char *clattn_variant_name(clattn_variant variant);
/** Parse a variant name; CLATTN_ERROR_UNKNOWN_VARIANT if it is none. */
CLATTN_API clattn_status clattn_variant_parse(const char *name, clattn_variant *out);

typedef enum clattn_align {
    CLATTN_ALIGN_TOP_LEFT = 0,  /**< off = 0 (PyTorch is_causal) */
    CLATTN_ALIGN_BOTTOM_RIGHT,  /**< off = Nk - Nq (FlashAttention >= 2.1) */
    /** off_b = key_len[b] - Nq: bottom-right against each sequence's own key
     *  length (KV caches, FlashAttention's cache_seqlens); the same as
     *  BOTTOM_RIGHT without key lengths. Not supported by the gemm variant. */
    CLATTN_ALIGN_KEY_LENGTHS,
    CLATTN_ALIGN_COUNT_
} clattn_align;

/**
 * Attributes of one attention problem. A zeroed descriptor means defaults:
 * scale 1/sqrt(D), no mask, no softcap, the scheduler picks the variant.
 *
 * For query row i and key column j of one (batch, head), with off as set by align:
 *   s = scale * dot(q_i, k_j); softcap C > 0: s = C * tanh(s / C);
 *   ALiBi: s -= slope[h] * |i + off - j|; bias: s += bias[b, h, i, j];
 *   kept when causal => j <= i + off; window => i + off - L <= j <= i + off + R
 *   (L or R = -1: unbounded); key lengths => j < key_len[b];
 *   O_i = softmax over kept j of s, times V; LSE_i = log(sum exp(s)) (natural log);
 *   a row with no kept key has O_i = 0 and LSE_i = -inf.
 */
typedef struct clattn_attention_desc {
    float scale;            /**< 0 = 1/sqrt(D); otherwise any finite value */
    int causal;             /**< nonzero: causal mask */
    clattn_align align;     /**< alignment of causal mask, window and ALiBi */
    int use_window;         /**< nonzero: sliding window (window_left, window_right) */
    int32_t window_left;    /**< keys before the diagonal kept; -1 = unbounded */
    int32_t window_right;   /**< keys after the diagonal kept; -1 = unbounded */
    float softcap;          /**< 0 = off; else C > 0 */
    clattn_variant variant; /**< AUTO = scheduler (CLATTN_VARIANT overrides AUTO) */
} clattn_attention_desc;

/**
 * The tensors of one attention call. q [B, Hq, Nq, D], k [B, Hkv, Nk, D],
 * v [B, Hkv, Nk, Dv], o [B, Hq, Nq, Dv]; q, k and v share one dtype, o may
 * have its own (e.g. f32 output of f16 inputs).
 * Optional inputs are absent when their buffer is NULL (and, for the tensors,
 * their shape is all zero):
 *   lse         f32 [B, Hq, Nq] (shape[3] = 1): log-sum-exp of each row.
 *   bias        f32 4-D view broadcastable to [B, Hq, Nq, Nk] (size-1 dims broadcast).
 *   alibi       f32 [Hq] slopes at alibi_offset bytes.
 *   key_lengths int32 [B] at key_lengths_offset bytes, each in 0..Nk.
 *
 * Variable-length batches (has_varlen or cu_seqlens_q != NULL): sequences are
 * packed along the N dimension. cu_seqlens_q and cu_seqlens_k are int32
 * [B + 1] prefix sums from 0 to total (sequence b owns packed rows cu[b] ..
 * cu[b+1]-1, at most max_seqlen of them; the host calls check this, the
 * device kernels clamp to the buffers' bounds);
 * q, o (and lse) hold total_q packed rows, k and v total_k. Their views keep
 * the logical shape [B, H, max_seqlen, D] with a batch stride of 0; all-zero
 * strides mean the packed [total, H, D] layout (lse: [H, total]). Each
 * sequence has its own Nq_b, Nk_b and, for bottom-right alignment, its own
 * offset Nk_b - Nq_b; rows past Nq_b are not written.
 *
 * In clattn_plan_create() buffers may be NULL where only the metadata matters
 * (set has_lse/has_bias/has_alibi/has_key_lengths/has_varlen instead);
 * clattn_plan_run() needs every buffer the plan was made with.
 */
typedef struct clattn_args {
    clattn_tensor q, k, v, o;
    clattn_tensor lse;
    clattn_tensor bias;
    cl_mem alibi;
    size_t alibi_offset;
    cl_mem key_lengths;
    size_t key_lengths_offset;
    cl_mem cu_seqlens_q, cu_seqlens_k;
    size_t cu_seqlens_q_offset, cu_seqlens_k_offset;
    int64_t total_q, total_k; /**< packed rows of q/o and of k/v (varlen only) */
    int has_lse, has_bias, has_alibi, has_key_lengths, has_varlen; /**< presence flags (plan_create with NULL buffers) */
    /**
     * Paged K/V (has_block_table or block_table != NULL; all zero = contiguous
     * k and v). k and v are then page pools [num_pages, Hkv, page_size, D]
     * and [num_pages, Hkv, page_size, Dv] (any strides), and block_table is
     * int32 [B, max_pages] (row-major, at block_table_offset bytes): key n of
     * sequence b lives in page block_table[b * max_pages + n / page_size], slot
     * n % page_size. The logical key count is Nk = max_pages * page_size; with
     * key_lengths, sequence b has key_len[b] keys (use CLATTN_ALIGN_KEY_LENGTHS
     * for bottom-right alignment against them). Every entry a sequence reaches
     * (pages 0 .. ceil(len_b / page_size) - 1, len_b = key_len[b] clamped to
     * 0..Nk, or all max_pages without key lengths) must be in 0 .. num_pages - 1;
     * entries past a sequence's length are never read (-1 padding is fine).
     * clattn_plan_run() checks this on the host before any kernel runs, with
     * a blocking read of the table (and of key_lengths) on the run's queue
     * after its wait list, and returns CLATTN_ERROR_INVALID_BLOCK_TABLE
     * otherwise. Read by the flash and decode variants; not with varlen.
     */
    int has_block_table;
    cl_mem block_table;
    size_t block_table_offset; /**< bytes, a multiple of 4 */
    int64_t page_size;         /**< keys per page: k.shape[2] = v.shape[2] = page_size */
    int64_t max_pages;         /**< entries per row of the block table */
} clattn_args;

typedef struct clattn_plan clattn_plan;

/**
 * Validate a problem once and choose a variant and its parameters; compiles
 * (or fetches from cache) the kernels it needs. The plan keeps a reference to
 * ctx, which must outlive it. Buffers in args are only checked for size when
 * given; they are not retained.
 */
CLATTN_API clattn_status clattn_plan_create(clattn_context *ctx, const clattn_attention_desc *desc,
                                            const clattn_args *args, clattn_plan **out);

/**
 * Enqueue the plan's work on queue (NULL = the context's queue), after the
 * num_wait events in wait. *event (if not NULL) receives an event the caller
 * releases. args must have the same shapes, strides, dtypes and optional inputs
 * as at plan creation; buffers and offsets may differ. Nothing is allocated on
 * the device in steady state.
 */
CLATTN_API clattn_status clattn_plan_run(clattn_plan *plan, const clattn_args *args,
                                         cl_command_queue queue, cl_uint num_wait,
                                         const cl_event *wait, cl_event *event);

/**
 * Device memory the plan owns (scratch buffers allocated once at creation),
 * in bytes; 0 for the fused variants, which need none beyond their inputs
 * and outputs.
 */
CLATTN_API size_t clattn_plan_device_bytes(const clattn_plan *plan);

/** Free a plan. NULL is a no-op. */
CLATTN_API void clattn_plan_free(clattn_plan *plan);

/** The variant the plan runs. */
CLATTN_API clattn_variant clattn_plan_variant(const clattn_plan *plan);

/**
 * A JSON object describing the plan's parameters, e.g.
 * {"variant":"naive","head_dim":64,"wg":64}. Owned by the plan.
 */
CLATTN_API const char *clattn_plan_params_json(const clattn_plan *plan);

/**
 * Launch parameters of a plan, for tuners and experiments. A zeroed struct
 * means "the scheduler's choice" for every field; a nonzero field replaces
 * the scheduler's value (tuning file, else built-in table) for that field.
 *
 * tiled, flash and decode take block_m, block_n, rows, tpr and vec (their
 * work-group size is block_m / rows * tpr); decode also takes splits; naive
 * takes wg; gemm takes none (CLBlast tunes its own GEMMs).
 */
typedef struct clattn_launch_params {
    int block_m; /**< query rows per work-group, a multiple of rows */
    int block_n; /**< keys per K/V tile in local memory */
    int rows;    /**< query rows per work-item, 1..CLATTN_MAX_ROWS */
    int tpr;     /**< work-items per row group (split the keys for scores, Dv for the output) */
    int vec;     /**< 1 or 4: width of global loads (4 needs contiguous rows and D, Dv multiples of 4) */
    int wg;      /**< naive: work-items per work-group */
    int splits;  /**< decode: key splits (1..64) */
} clattn_launch_params;

/**
 * clattn_plan_create() with explicit launch parameters (params NULL or all
 * zero: exactly clattn_plan_create()). The parameters apply to the variant
 * the plan runs (desc->variant, CLATTN_VARIANT or the scheduler's choice) and
 * take precedence over CLATTN_PARAMS, the tuning file and the built-in
 * table. They are checked, never adjusted: a field the variant does not
 * take, a value out of range, rows not dividing block_m, vec 4 on a problem
 * that cannot load vectors, or a work-group size or local-memory footprint
 * beyond the device's (or the built kernel's) limit gives
 * CLATTN_ERROR_INVALID_PARAMS, and the last-error text names the field.
 */
CLATTN_API clattn_status clattn_plan_create_with_params(clattn_context *ctx, const clattn_attention_desc *desc,
                                                        const clattn_args *args,
                                                        const clattn_launch_params *params, clattn_plan **out);

/**
 * The launch parameters the plan runs with (every field the plan's variant
 * takes is filled in, the others are 0), e.g. the scheduler's defaults for a
 * tuner to start from.
 */
CLATTN_API clattn_status clattn_plan_launch_params(const clattn_plan *plan, clattn_launch_params *out);

/* ------------------------------------------------------------------------ */
/* Merging partial results                                                  */
/* ------------------------------------------------------------------------ */

/**
 * Merge partial attention results computed over disjoint key sets of the
 * same queries (split-KV, several devices, ring attention) into the exact
 * result, on the device. Per row, with M = max_i lse_i and w_i =
 * exp(lse_i - M): O = sum_i w_i O_i / sum_i w_i and LSE = M + log(sum_i w_i).
 * A part with lse_i = -inf is empty: it weighs 0 and its O_i is never read
 * (it may hold anything, NaN included); a row whose parts are all empty gets
 * O = 0 and LSE = -inf. Parts' LSE values must be finite or -inf.
 *
 * o_parts[n_parts]: [B, H, N, Dv] views, one dtype (f32, f16 or bf16) for
 * all; lse_parts[n_parts]: f32 [B, H, N] views (shape[3] = 1); o: [B, H, N,
 * Dv] of any dtype; lse: optional (NULL) f32 [B, H, N]. Any strides and
 * buffers; the outputs must not overlap any part or each other. Parts are
 * merged in index order, four per kernel (more parts go through device
 * scratch allocated for the call), so results are deterministic. Enqueued on
 * queue (NULL = the context's) after the wait list; *event (if not NULL)
 * receives the last command's event. Nothing is written unless every command
 * was enqueued. The arrays are read during the call only.
 */
CLATTN_API clattn_status clattn_merge(clattn_context *ctx, int n_parts, const clattn_tensor *o_parts,
                                      const clattn_tensor *lse_parts, const clattn_tensor *o,
                                      const clattn_tensor *lse, cl_command_queue queue, cl_uint num_wait,
                                      const cl_event *wait, cl_event *event);

/* ------------------------------------------------------------------------ */
/* KV cache                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct clattn_kvcache clattn_kvcache;

/** What a KV cache holds. Zero fields take the defaults noted. */
typedef struct clattn_kvcache_desc {
    int64_t batch;      /**< sequences B (>= 1) */
    int64_t kv_heads;   /**< key/value heads Hkv (>= 1) */
    int64_t head_dim;   /**< D of keys, 1..CLATTN_MAX_HEAD_DIM */
    int64_t head_dim_v; /**< Dv of values; 0 = head_dim */
    clattn_dtype dtype; /**< storage of K and V (queries attending must have it too) */
    int64_t capacity;   /**< initial keys per sequence; 0 = 256. Grows on demand. */
    int64_t page_size;  /**< 0: contiguous [B, Hkv, capacity, D] storage; > 0: a pool of pages of this many keys and a block table */
} clattn_kvcache_desc;

/**
 * Create an empty cache (every length 0) on ctx's device; the cache keeps a
 * reference to ctx, which must outlive it. Storage grows as appends need it:
 * contiguous caches double their capacity (contents copied on the device),
 * paged caches take pages from a pool that doubles when exhausted (pages
 * never move between a sequence's appends). Operations on one cache must be
 * ordered: use one in-order queue or chain them with events. *out is freed
 * with clattn_kvcache_free().
 */
CLATTN_API clattn_status clattn_kvcache_create(clattn_context *ctx, const clattn_kvcache_desc *desc,
                                               clattn_kvcache **out);

/** Free a cache and its device storage (after the commands using it finished). NULL is a no-op. */
CLATTN_API void clattn_kvcache_free(clattn_kvcache *kv);

/**
 * Append new keys and values in place. seq < 0: every sequence, k [B, Hkv,
 * n_new, D] and v [B, Hkv, n_new, Dv]; seq >= 0: that sequence only, with
 * batch size 1. counts (host, optional): k.shape[0] entries, each in
 * 0..n_new: sequence b appends the first counts[b] rows of its part of k and
 * v (NULL = all n_new). k and v share a dtype, converted to the cache's on
 * the device. Enqueued on queue (NULL = the context's) after the wait list;
 * *event (if not NULL) receives the last command's event. Appends that
 * change the block table or pass counts make a small blocking write. On
 * failure the cache is unchanged (lengths and contents).
 */
CLATTN_API clattn_status clattn_kvcache_append(clattn_kvcache *kv, int64_t seq, const clattn_tensor *k,
                                               const clattn_tensor *v, const int32_t *counts,
                                               cl_command_queue queue, cl_uint num_wait, const cl_event *wait,
                                               cl_event *event);

/** The current length of every sequence into lengths[B] (host bookkeeping, no device access). */
CLATTN_API clattn_status clattn_kvcache_lengths(const clattn_kvcache *kv, int32_t *lengths);

/**
 * Truncate sequence seq (< 0: every sequence) to length, which must not
 * exceed its current length (0 resets it); a paged cache returns the freed
 * pages to its pool. Blocking write of the lengths on queue (NULL = the
 * context's). On failure nothing changes.
 */
CLATTN_API clattn_status clattn_kvcache_set_length(clattn_kvcache *kv, int64_t seq, int32_t length,
                                                   cl_command_queue queue);

/** Keys per sequence the storage holds now (contiguous), or max_pages * page_size (paged). */
CLATTN_API int64_t clattn_kvcache_capacity(const clattn_kvcache *kv);

/** Device memory the cache owns (storage, block table, lengths and plan scratch), in bytes. */
CLATTN_API size_t clattn_kvcache_device_bytes(const clattn_kvcache *kv);

/**
 * The cache as attention arguments: k, v (storage views; page pools when
 * paged), key_lengths (the lengths on the device) and, when paged, the block
 * table fields; the other fields are zeroed. The buffers belong to the
 * cache and stay valid until its next append or free (growth replaces them).
 */
CLATTN_API clattn_status clattn_kvcache_args(const clattn_kvcache *kv, clattn_args *out);

/**
 * Attention of new queries q [B, Hq, Nq, D] (Hq a multiple of Hkv, the
 * cache's dtype) against every sequence's cached keys, into o [B, Hq, Nq, Dv]
 * and optionally lse (NULL) f32 [B, Hq, Nq]. Key lengths are the sequences'
 * lengths; for desc->align BOTTOM_RIGHT (or KEY_LENGTHS) causal masks, windows
 * and ALiBi are aligned to each sequence's own length (the queries are its
 * last Nq positions); TOP_LEFT means off = 0. With desc->variant AUTO the
 * scheduler picks decode for Nq <= 16 and flash otherwise. The plan is built
 * on first use and kept while the shapes, the descriptor and the storage
 * geometry stay the same. Enqueued on queue (NULL = the context's).
 */
CLATTN_API clattn_status clattn_kvcache_attend(clattn_kvcache *kv, const clattn_attention_desc *desc,
                                               const clattn_tensor *q, const clattn_tensor *o,
                                               const clattn_tensor *lse, cl_command_queue queue,
                                               cl_uint num_wait, const cl_event *wait, cl_event *event);

/** The variant the last successful clattn_kvcache_attend() ran (AUTO before any). */
CLATTN_API clattn_variant clattn_kvcache_variant(const clattn_kvcache *kv);

/* ------------------------------------------------------------------------ */
/* Host-memory convenience and the CPU reference                            */
/* ------------------------------------------------------------------------ */

/**
 * A contiguous row-major tensor in host memory. shape as in clattn_tensor;
 * data is read (inputs) or written (outputs) only during the call.
 */
typedef struct clattn_host_tensor {
    void *data;
    clattn_dtype dtype;
    int64_t shape[4];
} clattn_host_tensor;

/**
 * Host-side counterpart of clattn_args; absent optional inputs have data ==
 * NULL. With cu_seqlens_q/k set (varlen), q/k/v/o data are packed
 * [total, H, D] and lse [H, total_q], while shapes stay [B, H, max_seqlen, D].
 */
typedef struct clattn_host_args {
    clattn_host_tensor q, k, v, o;
    clattn_host_tensor lse;  /**< f32 [B, Hq, Nq, 1] */
    clattn_host_tensor bias; /**< f32, broadcastable to [B, Hq, Nq, Nk] */
    const float *alibi;      /**< [Hq] */
    const int32_t *key_lengths; /**< [B] */
    const int32_t *cu_seqlens_q, *cu_seqlens_k; /**< [B + 1] each (varlen) */
    int64_t total_q, total_k;
} clattn_host_args;

/**
 * Upload the inputs, plan and run on the context's device, download O (and
 * LSE). Outputs are written only if everything succeeded. If variant_out is not
 * NULL it receives the variant that ran. A problem whose buffers the device
 * cannot hold (one beyond CL_DEVICE_MAX_MEM_ALLOC_SIZE, or all of them beyond
 * CL_DEVICE_GLOBAL_MEM_SIZE) gives CLATTN_ERROR_DEVICE_LIMIT before anything
 * is allocated; o or lse overlapping another array gives CLATTN_ERROR_ALIASING.
 */
CLATTN_API clattn_status clattn_attention_host(clattn_context *ctx, const clattn_attention_desc *desc,
                                               const clattn_host_args *args, clattn_variant *variant_out);

/**
 * The CPU reference: the same function in double precision (inputs of any
 * storage dtype are widened exactly; outputs are rounded to o's dtype, LSE is
 * f32). Validates exactly as clattn_plan_create() does, and refuses o or lse
 * overlapping another array (CLATTN_ERROR_ALIASING). Single-threaded.
 */
CLATTN_API clattn_status clattn_reference(const clattn_attention_desc *desc, const clattn_host_args *args);

/** Error metrics of a device result against a reference. */
typedef struct clattn_compare_result {
    double max_abs_err; /**< max |dev - ref| over finite pairs */
    double max_abs_ref; /**< max |ref| over finite ref */
    double nmse;        /**< sum (dev-ref)^2 / sum ref^2 (0 when both are 0) */
    size_t nonfinite_mismatch; /**< positions where NaN/Inf of dev and ref differ */
    size_t count;
} clattn_compare_result;

/** Compare n floats; dev and ref are read only. */
CLATTN_API clattn_compare_result clattn_compare_f32(const float *dev, const float *ref, size_t n);

/**
 * Pass rule of the test suite: non-finite positions match, max_abs_err <=
 * atol + rtol * max_abs_ref and nmse <= max_nmse.
 */
CLATTN_API int clattn_compare_ok(const clattn_compare_result *r, double atol, double rtol, double max_nmse);

/**
 * The tolerances of the verification rule for results stored as dtype
 * (f32: atol 1e-5, rtol 1e-4, NMSE 1e-7; f16 and bf16 looser, for their output
 * rounding). Returns CLATTN_ERROR_INVALID_DTYPE for unknown dtypes.
 */
CLATTN_API clattn_status clattn_tolerance(clattn_dtype dtype, double *atol, double *rtol, double *max_nmse);

/** Conversions used for f16/bf16 storage (round to nearest even). */
CLATTN_API float clattn_half_to_float(uint16_t h);
CLATTN_API uint16_t clattn_float_to_half(float f);
CLATTN_API float clattn_bf16_to_float(uint16_t b);
CLATTN_API uint16_t clattn_float_to_bf16(float f);

/**
 * Check a tuning file (as `clattn tune` writes; path NULL = CLATTN_TUNING_FILE,
 * else tuning.json in the program-cache directory). On success *applicable
 * is the number of its entries measured on ctx's device and driver (the
 * scheduler uses those ahead of its built-in table); a malformed file gives
 * CLATTN_ERROR_TUNING_FILE with the reason in the last-error text (the
 * scheduler then ignores the file), a missing one CLATTN_ERROR_IO.
 */
CLATTN_API clattn_status clattn_tuning_file_load(clattn_context *ctx, const char *path, int *applicable);

/**
 * The path of the tuning file the scheduler reads: CLATTN_TUNING_FILE if set,
 * else tuning.json in the program-cache directory (which may not exist yet),
 * written into the caller's buf of size bytes. CLATTN_ERROR_NOT_FOUND when
 * there is none (CLATTN_TUNING_FILE=off, or no cache directory), and
 * CLATTN_ERROR_INVALID_VALUE when it does not fit in buf.
 */
CLATTN_API clattn_status clattn_tuning_file_path(char *buf, size_t size);

/** Ceilings of a device measured by built-in probe kernels. */
typedef struct clattn_device_probe {
    double fma_gflops; /**< f32 FMA throughput (2 flops per FMA) */
    double copy_gbps;  /**< device-memory copy bandwidth (bytes read + written) */
} clattn_device_probe;

/**
 * Measure the device's f32 FMA throughput and copy bandwidth with small
 * built-in kernels (a fraction of a second on most devices).
 */
CLATTN_API clattn_status clattn_device_probe_run(clattn_context *ctx, clattn_device_probe *out);

/* ------------------------------------------------------------------------ */
/* Multi-head attention layer                                               */
/* ------------------------------------------------------------------------ */

/**
 * A multi-head attention layer (torch.nn.MultiheadAttention with
 * batch_first=True, plus grouped-query heads and rotary position embedding):
 *
 *   q = x Wq^T + bq          x  [B, N, E],  Wq [E, E]
 *   k = s Wk^T + bk          s  [B, M, E] (s = x for self-attention),
 *   v = s Wv^T + bv          Wk, Wv [Hkv * Dh, E]
 *   RoPE (rope_base > 0) rotates q and k of every head: for i < Dh/2,
 *     theta_i = rope_base^(-2i/Dh) and each pair (t[i], t[i + Dh/2]) turns by
 *     pos * theta_i (GPT-NeoX half-split convention), pos = 0..N-1 for
 *     queries and 0..M-1 for keys;
 *   o_h = attention(q_h, k_{h / (H/Hkv)}, v_{h / (H/Hkv)}) per head h, with
 *     scale 1/sqrt(Dh) (or desc.scale) and, when causal, key j kept for query
 *     i when j <= i (top-left alignment);
 *   y = concat_h(o_h) Wo^T + bo      Wo [E, E], y [B, N, E]
 *
 * with Dh = E / H. Weights follow torch.nn.Linear ([out, in], row-major);
 * every tensor is contiguous row-major f32. A zeroed descriptor is invalid
 * (embed_dim and heads are required); other zero fields mean defaults.
 */
typedef struct clattn_mha_desc {
    int64_t embed_dim;      /**< E: a positive multiple of heads */
    int64_t heads;          /**< H: query heads */
    int64_t kv_heads;       /**< Hkv: key/value heads dividing H; 0 = heads */
    int causal;             /**< nonzero: query i sees keys j <= i */
    float rope_base;        /**< 0 = no RoPE; else finite > 0 (e.g. 10000); needs an even Dh */
    float scale;            /**< 0 = 1/sqrt(Dh); else as clattn_attention_desc.scale */
    clattn_dtype dtype;     /**< storage of every tensor; only CLATTN_F32 (the zero value) */
    clattn_variant variant; /**< attention core; AUTO = the scheduler picks */
} clattn_mha_desc;

/**
 * The layer's parameters in device memory: caller-owned cl_mem values with
 * byte offsets (multiples of 4). wq, wk, wv and wo are required; an absent
 * bias is a NULL buffer. Several may share one buffer (e.g. a packed
 * in-projection [3E, E] with offsets 0, 4*E*E, 8*E*E).
 */
typedef struct clattn_mha_weights {
    cl_mem wq, wk, wv, wo; /**< [E, E], [Hkv*Dh, E], [Hkv*Dh, E], [E, E] */
    cl_mem bq, bk, bv, bo; /**< [E], [Hkv*Dh], [Hkv*Dh], [E] or NULL */
    size_t wq_offset, wk_offset, wv_offset, wo_offset;
    size_t bq_offset, bk_offset, bv_offset, bo_offset;
} clattn_mha_weights;

/** The same parameters in host memory (read only during the call). */
typedef struct clattn_mha_host_weights {
    const float *wq, *wk, *wv, *wo; /**< required */
    const float *bq, *bk, *bv, *bo; /**< NULL = no bias */
} clattn_mha_host_weights;

typedef struct clattn_mha clattn_mha;

/**
 * Validate the layer for batch B, N query positions and M key/value
 * positions (M = 0: self-attention, the keys and values come from x; M > 0:
 * cross-attention from a separate source of M positions), create the
 * attention core's plan (desc->variant, else the scheduler's choice), build
 * the kernels and allocate the scratch once: projected q, k, v and the
 * attention output (heads are split and merged through strided views, no
 * copies), plus the RoPE table. The layer keeps a reference to ctx, which
 * must outlive it; *out is freed with clattn_mha_free(). Errors:
 * CLATTN_ERROR_EMBED_DIM (E, H), CLATTN_ERROR_HEAD_MISMATCH (H % Hkv),
 * CLATTN_ERROR_INVALID_SHAPE (B, N, M), CLATTN_ERROR_INVALID_ROPE,
 * CLATTN_ERROR_INVALID_DTYPE, CLATTN_ERROR_SIZE_OVERFLOW, and those of
 * clattn_plan_create() for the core.
 */
CLATTN_API clattn_status clattn_mha_create(clattn_context *ctx, const clattn_mha_desc *desc, int64_t B, int64_t N,
                                           int64_t M, clattn_mha **out);

/**
 * Enqueue the layer on queue (NULL = the context's queue; it must be
 * in-order, as CLBlast's GEMMs are ordered by the queue alone) after the
 * num_wait events in wait. x [B, N, E] at x_offset bytes; kv [B, M, E] at
 * kv_offset for a cross-attention layer, NULL for self-attention; y
 * [B, N, E] at y_offset, which must not overlap x, kv or any parameter.
 * *event (if not NULL) receives an event the caller releases; it completes
 * when y is written. The projections run through CLBlast (its errors map to
 * clattn statuses, the CLBlast code in the last-error text). y is written by
 * the last command only, so a failed call leaves it untouched. One run of a
 * layer at a time: runs share the layer's scratch (successive runs on one
 * in-order queue are fine).
 */
CLATTN_API clattn_status clattn_mha_run(clattn_mha *mha, const clattn_mha_weights *weights, cl_mem x,
                                        size_t x_offset, cl_mem kv, size_t kv_offset, cl_mem y, size_t y_offset,
                                        cl_command_queue queue, cl_uint num_wait, const cl_event *wait,
                                        cl_event *event);

/** Device memory the layer owns (its scratch and its core plan's), in bytes. */
CLATTN_API size_t clattn_mha_device_bytes(const clattn_mha *mha);

/** The variant of the layer's attention core. */
CLATTN_API clattn_variant clattn_mha_variant(const clattn_mha *mha);

/** Free a layer. NULL is a no-op. */
CLATTN_API void clattn_mha_free(clattn_mha *mha);

/**
 * The CPU reference of the layer: the same function in double precision
 * (projections, RoPE, softmax and output projection), y rounded to f32 at the
 * end. x [B, N, E]; kv [B, M, E] when M > 0, else NULL; y [B, N, E] is
 * written only on success. Validates desc, B, N and M exactly as
 * clattn_mha_create() does (the core's variant is not consulted).
 * Single-threaded.
 */
CLATTN_API clattn_status clattn_mha_reference(const clattn_mha_desc *desc, int64_t B, int64_t N, int64_t M,
                                              const clattn_mha_host_weights *weights, const float *x,
                                              const float *kv, float *y);

/* ------------------------------------------------------------------------ */
/* .npy files                                                               */
/* ------------------------------------------------------------------------ */

#define CLATTN_NPY_MAX_DIMS 8

typedef enum clattn_npy_type {
    CLATTN_NPY_F32 = 0, /**< '<f4' */
    CLATTN_NPY_F16,     /**< '<f2' */
    CLATTN_NPY_I32,     /**< '<i4' */
    CLATTN_NPY_F64,     /**< '<f8' */
    CLATTN_NPY_I64,     /**< '<i8' */
    CLATTN_NPY_TYPE_COUNT_
} clattn_npy_type;

/** An array read from or written to a .npy file, always C order in memory. */
typedef struct clattn_npy {
    clattn_npy_type type;
    int ndim;
    int64_t shape[CLATTN_NPY_MAX_DIMS];
    size_t count;  /**< number of elements */
    void *data;    /**< malloc'ed by clattn_npy_load, freed by clattn_npy_free */
} clattn_npy;

/**
 * Read a .npy file (format 1.0, 2.0 or 3.0, little-endian f4/f2/i4/f8/i8 or
 * byte-order-free, C order; Fortran order is transposed to C order). Rejects
 * truncated files, garbage, unsupported dtypes and bad shapes with a distinct
 * status and a message in err (may be NULL). On failure *out is zeroed.
 */
CLATTN_API clattn_status clattn_npy_load(const char *path, clattn_npy *out, char *err, size_t err_size);

/**
 * Write a C-order .npy file (format 1.0). The data goes to a temporary file in
 * the same directory which is renamed over path only when complete, so a
 * failed write leaves no file behind.
 */
CLATTN_API clattn_status clattn_npy_save(const char *path, clattn_npy_type type, int ndim,
                                         const int64_t *shape, const void *data, char *err,
                                         size_t err_size);

/** Free the data of an array from clattn_npy_load and zero it. NULL is a no-op. */
CLATTN_API void clattn_npy_free(clattn_npy *arr);

/** Bytes per element of an npy type; 0 for unknown. */
CLATTN_API size_t clattn_npy_type_size(clattn_npy_type type);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_H */
