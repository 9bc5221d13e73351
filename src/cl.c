/*
 * cl.c - the OpenCL dispatch layer. Every cl* call and host allocation of the
 * library goes through here, so tests can make the Nth call fail with a chosen
 * error (clattn__fault_inject) and count device allocations.
 */
#include <stdlib.h>

#include "internal.h"

static long fault_nth;      /* 0 = no injection */
static cl_int fault_code;
static long fault_count;    /* calls since the last clattn__fault_inject */
static long buffer_allocs;  /* device buffers created since start */

void clattn__fault_inject(long nth, cl_int code)
{
    fault_nth = nth;
    fault_code = code;
    fault_count = 0;
}

long clattn__fault_calls(void) { return fault_count; }
long clattn__buffer_allocations(void) { return buffer_allocs; }

/* Returns the injected error for this call, or CL_SUCCESS. */
static cl_int fault(void)
{
    fault_count++;
    if (fault_nth > 0 && fault_count == fault_nth)
        return fault_code;
    return CL_SUCCESS;
}

cl_int clattn__fault_check(void) { return fault(); }

void *clattn__malloc(size_t n)
{
    if (fault() != CL_SUCCESS)
        return NULL;
    return malloc(n ? n : 1);
}

void *clattn__calloc(size_t n, size_t size)
{
    if (fault() != CL_SUCCESS)
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void clattn__free(void *p) { free(p); }

#define FAULT_RET()                   \
    do {                              \
        cl_int f_ = fault();          \
        if (f_ != CL_SUCCESS)         \
            return f_;                \
    } while (0)

#define FAULT_OBJ()                   \
    do {                              \
        cl_int f_ = fault();          \
        if (f_ != CL_SUCCESS) {       \
            if (err)                  \
                *err = f_;            \
            return NULL;              \
        }                             \
    } while (0)

cl_int cla_GetPlatformIDs(cl_uint n, cl_platform_id *p, cl_uint *num)
{
    FAULT_RET();
    return clGetPlatformIDs(n, p, num);
}

cl_int cla_GetPlatformInfo(cl_platform_id p, cl_platform_info what, size_t n, void *v, size_t *ret)
{
    FAULT_RET();
    return clGetPlatformInfo(p, what, n, v, ret);
}

cl_int cla_GetDeviceIDs(cl_platform_id p, cl_device_type t, cl_uint n, cl_device_id *d, cl_uint *num)
{
    FAULT_RET();
    return clGetDeviceIDs(p, t, n, d, num);
}

cl_int cla_GetDeviceInfo(cl_device_id d, cl_device_info what, size_t n, void *v, size_t *ret)
{
    FAULT_RET();
    return clGetDeviceInfo(d, what, n, v, ret);
}

cl_context cla_CreateContext(cl_device_id d, cl_int *err)
{
    FAULT_OBJ();
    return clCreateContext(NULL, 1, &d, NULL, NULL, err);
}

cl_command_queue cla_CreateCommandQueue(cl_context c, cl_device_id d, cl_command_queue_properties p, cl_int *err)
{
    FAULT_OBJ();
    return clCreateCommandQueue(c, d, p, err);
}

cl_int cla_GetCommandQueueInfo(cl_command_queue q, cl_command_queue_info what, size_t n, void *v, size_t *ret)
{
    FAULT_RET();
    return clGetCommandQueueInfo(q, what, n, v, ret);
}

cl_int cla_GetContextInfo(cl_context c, cl_context_info what, size_t n, void *v, size_t *ret)
{
    FAULT_RET();
    return clGetContextInfo(c, what, n, v, ret);
}

cl_mem cla_CreateBuffer(cl_context c, cl_mem_flags f, size_t n, void *host, cl_int *err)
{
    cl_mem m;
    FAULT_OBJ();
    m = clCreateBuffer(c, f, n, host, err);
    if (m)
        buffer_allocs++;
    return m;
}

cl_int cla_GetMemObjectInfo(cl_mem m, cl_mem_info what, size_t n, void *v, size_t *ret)
{
    FAULT_RET();
    return clGetMemObjectInfo(m, what, n, v, ret);
}

cl_program cla_CreateProgramWithSource(cl_context c, cl_uint n, const char **src, const size_t *len, cl_int *err)
{
    FAULT_OBJ();
    return clCreateProgramWithSource(c, n, src, len, err);
}

cl_program cla_CreateProgramWithBinary(cl_context c, cl_device_id d, size_t len, const unsigned char *bin,
                                       cl_int *bin_status, cl_int *err)
{
    FAULT_OBJ();
    return clCreateProgramWithBinary(c, 1, &d, &len, &bin, bin_status, err);
}

cl_int cla_BuildProgram(cl_program p, cl_device_id d, const char *options)
{
    FAULT_RET();
    return clBuildProgram(p, 1, &d, options, NULL, NULL);
}

cl_int cla_GetProgramInfo(cl_program p, cl_program_info what, size_t n, void *v, size_t *ret)
{
    FAULT_RET();
    return clGetProgramInfo(p, what, n, v, ret);
}

cl_int cla_GetProgramBuildInfo(cl_program p, cl_device_id d, cl_program_build_info what, size_t n, void *v, size_t *ret)
{
    FAULT_RET();
    return clGetProgramBuildInfo(p, d, what, n, v, ret);
}

cl_kernel cla_CreateKernel(cl_program p, const char *name, cl_int *err)
{
    FAULT_OBJ();
    return clCreateKernel(p, name, err);
}

cl_int cla_GetKernelWorkGroupInfo(cl_kernel k, cl_device_id d, cl_kernel_work_group_info what, size_t n, void *v, size_t *ret)
{
    FAULT_RET();
    return clGetKernelWorkGroupInfo(k, d, what, n, v, ret);
}

cl_int cla_SetKernelArg(cl_kernel k, cl_uint i, size_t n, const void *v)
{
    FAULT_RET();
    return clSetKernelArg(k, i, n, v);
}

cl_int cla_EnqueueNDRangeKernel(cl_command_queue q, cl_kernel k, cl_uint dims, const size_t *global,
                                const size_t *local, cl_uint nwait, const cl_event *wait, cl_event *ev)
{
    FAULT_RET();
    return clEnqueueNDRangeKernel(q, k, dims, NULL, global, local, nwait, wait, ev);
}

cl_int cla_EnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool block, size_t off, size_t n, const void *p,
                              cl_uint nwait, const cl_event *wait, cl_event *ev)
{
    FAULT_RET();
    return clEnqueueWriteBuffer(q, m, block, off, n, p, nwait, wait, ev);
}

cl_int cla_EnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool block, size_t off, size_t n, void *p,
                             cl_uint nwait, const cl_event *wait, cl_event *ev)
{
    FAULT_RET();
    return clEnqueueReadBuffer(q, m, block, off, n, p, nwait, wait, ev);
}

cl_int cla_EnqueueBarrierWithWaitList(cl_command_queue q, cl_uint nwait, const cl_event *wait, cl_event *ev)
{
    FAULT_RET();
    return clEnqueueBarrierWithWaitList(q, nwait, wait, ev);
}

cl_int cla_Finish(cl_command_queue q)
{
    FAULT_RET();
    return clFinish(q);
}

cl_int cla_WaitForEvents(cl_uint n, const cl_event *ev)
{
    FAULT_RET();
    return clWaitForEvents(n, ev);
}

void cla_Drain(cl_command_queue q) { if (q) clFinish(q); }
void cla_ReleaseMemObject(cl_mem m) { if (m) clReleaseMemObject(m); }
void cla_ReleaseKernel(cl_kernel k) { if (k) clReleaseKernel(k); }
void cla_ReleaseProgram(cl_program p) { if (p) clReleaseProgram(p); }
void cla_ReleaseEvent(cl_event e) { if (e) clReleaseEvent(e); }
void cla_ReleaseCommandQueue(cl_command_queue q) { if (q) clReleaseCommandQueue(q); }
void cla_ReleaseContext(cl_context c) { if (c) clReleaseContext(c); }

cl_int cla_RetainContext(cl_context c)
{
    FAULT_RET();
    return clRetainContext(c);
}

cl_int cla_RetainCommandQueue(cl_command_queue q)
{
    FAULT_RET();
    return clRetainCommandQueue(q);
}
