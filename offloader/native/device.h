/* The one small interface the native runtime's devices implement: the emulated device
 * (device_emu.c: the kernel text compiled with cuda_emu.h into a shared object this process
 * loads) and CUDA (device_cuda.c: the driver API, libcuda opened at run time).
 *
 * Device memory is named by 64-bit addresses. Every call returns OFFLOAD_OK or an error code;
 * `message` says what went wrong, in words. An error that leaves the device unusable (a lost
 * CUDA context: an illegal address in a kernel, a failed copy) is OFFLOAD_STICKY: the runtime
 * then stops the program, since the newer data may be on the device only. */
#ifndef OFFLOAD_NATIVE_DEVICE_H
#define OFFLOAD_NATIVE_DEVICE_H

#include <stddef.h>

typedef unsigned long long offload_ptr;

enum offload_error {
    OFFLOAD_OK = 0,
    OFFLOAD_NO_MEMORY,          /* an allocation failed */
    OFFLOAD_BAD_CONFIGURATION,  /* grid or block outside the limits */
    OFFLOAD_UNKNOWN_KERNEL,     /* no such kernel in the loaded module */
    OFFLOAD_LAUNCH_FAILED,      /* the kernel failed; the device is still usable */
    OFFLOAD_ILLEGAL_ADDRESS,    /* the kernel wrote outside a buffer (emulator: caught, usable) */
    OFFLOAD_STICKY,             /* the device is lost: nothing more can run on it */
    OFFLOAD_NO_DEVICE,          /* the device could not be opened */
};

typedef struct {
    int multiprocessors, threads_per_multiprocessor, blocks_per_multiprocessor;
} offload_capacity;

typedef struct offload_device offload_device;
struct offload_device {
    const char *name;           /* e.g. "NVIDIA H200 (sm_90)", "emulated (2 CPU threads, order forward)" */
    const char *kind;           /* "cuda" | "emu" */
    const char *timing;         /* what kernel times are: "measured" | "emulated" */
    offload_capacity capacity;  /* a GPU's own; the emulator's is the GPU its launches are shaped for */
    int host_memory;            /* 1: device addresses are host addresses (copies may be memcpy) */

    int (*alloc)(offload_device *, size_t bytes, offload_ptr *out);    /* holds garbage until written */
    int (*release)(offload_device *, offload_ptr);
    int (*copy_in)(offload_device *, offload_ptr dst, const void *src, size_t bytes);
    int (*copy_out)(offload_device *, void *dst, offload_ptr src, size_t bytes);
    /* `rows` rows of `width` bytes, `pitch` apart on both sides; in: to the device */
    int (*copy_rows)(offload_device *, int in, offload_ptr device, void *host, size_t width, size_t pitch,
                     size_t rows);
    int (*kernel)(offload_device *, const char *name, void **kernel);  /* from the module opened with it */
    /* args[k] points at the value of parameter k (a device address for a pointer). The time is
     * added to `region`'s total, which kernel_seconds reads (a GPU's events are read lazily). */
    int (*launch)(offload_device *, void *kernel, const unsigned grid[3], const unsigned block[3], void **args,
                  int region);
    double (*kernel_seconds)(offload_device *, int region);
    int (*pin)(offload_device *, void *host, size_t bytes);           /* 0: not pinned (copies still work) */
    void (*unpin)(offload_device *, void *host);
    const char *(*message)(offload_device *);
    void (*close)(offload_device *);
    void *self;                 /* the implementation's own state */
};

/* `module`: the shared object emu_compiler.py built. `order`: 0 forward, 1 reverse, 2 shuffle;
 * `skip_kernels`: launches check their arguments and return (timing the runtime alone). */
offload_device *offload_open_emulated(const char *module, int order, unsigned long long seed, int workers,
                                      offload_capacity capacity, int skip_kernels, char *why, size_t why_size);
/* `module`: a fatbin (machine code for every catalog architecture, and PTX). */
offload_device *offload_open_cuda(const char *module, int ordinal, char *why, size_t why_size);

#endif
