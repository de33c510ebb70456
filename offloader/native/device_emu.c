/* The emulated device of the native runtime: the kernel text, compiled by emu_compiler.py with
 * cuda_emu.h into a shared object, loaded here and run on this CPU.
 *
 * Its memory is separate host allocations, so a missing copy shows up as wrong data: fresh
 * memory holds GARBAGE_WORD (as device/base.py), and GUARD bytes on each side of every buffer
 * catch writes just outside it, checked after every launch (an illegal address, as is a fault
 * in kernel code, which the emulator catches). Kernel time is the emulator's entry call alone:
 * the blocks' threads start and join inside it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device.h"

#define GUARD 256                   /* as device/emulated.py */
#define GUARD_BYTE 0xFD
#define ALIGN 256
#define GARBAGE_WORD 0x7FF4DEADu

/* cuda_emu.h's __emu::Config: keep the field order. */
typedef struct {
    unsigned grid[3], block[3];
    int order, workers, barrier;
    unsigned long long seed;
    int error;
    void *fault_address;
    unsigned fault_block[3], fault_thread[3];
} emu_config;

typedef int (*emu_entry)(emu_config *, void **);

typedef struct {
    char *raw;                      /* what malloc returned */
    offload_ptr body;
    size_t bytes;
} buffer;

typedef struct {
    emu_entry entry;
    int barrier;
    char name[128];
} kernel;

typedef struct {
    void *module;
    int order, workers, skip;
    unsigned long long seed;
    buffer *buffers;                /* live allocations, by address */
    size_t count, capacity;
    double *seconds;                /* per region */
    int regions;
    char message[512];
    char name[96];
} emu;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(emu *e, int code, const char *what)
{
    snprintf(e->message, sizeof e->message, "%s", what);
    return code;
}

static size_t find(const emu *e, offload_ptr at)   /* index of the first buffer ending after `at` */
{
    size_t lo = 0, hi = e->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (e->buffers[mid].body + e->buffers[mid].bytes <= at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int emu_alloc(offload_device *d, size_t bytes, offload_ptr *out)
{
    emu *e = d->self;
    if (!bytes)
        return fail(e, OFFLOAD_NO_MEMORY, "an allocation of 0 bytes");
    if (e->count == e->capacity) {
        size_t capacity = e->capacity ? 2 * e->capacity : 64;
        buffer *grown = realloc(e->buffers, capacity * sizeof *grown);
        if (!grown)
            return fail(e, OFFLOAD_NO_MEMORY, "no memory for the emulator's buffer table");
        e->buffers = grown, e->capacity = capacity;
    }
    char *raw = malloc(bytes + 2 * GUARD + ALIGN);
    if (!raw)
        return fail(e, OFFLOAD_NO_MEMORY, "no memory for an emulated device buffer");
    char *body = raw + GUARD + (ALIGN - ((uintptr_t)(raw + GUARD) % ALIGN)) % ALIGN;
    memset(body - GUARD, GUARD_BYTE, GUARD);
    memset(body + bytes, GUARD_BYTE, GUARD);
    uint32_t word = GARBAGE_WORD;
    size_t k = 0;
    for (; k + 4 <= bytes; k += 4)                 /* a memset of the fresh pages, a word at a time */
        memcpy(body + k, &word, 4);
    memcpy(body + k, &word, bytes - k);
    buffer b = {raw, (offload_ptr)(uintptr_t)body, bytes};
    size_t at = find(e, b.body);
    memmove(&e->buffers[at + 1], &e->buffers[at], (e->count - at) * sizeof(buffer));
    e->buffers[at] = b;
    e->count++;
    *out = b.body;
    return OFFLOAD_OK;
}

static int emu_release(offload_device *d, offload_ptr p)
{
    emu *e = d->self;
    size_t at = find(e, p);
    if (at >= e->count || e->buffers[at].body != p)
        return fail(e, OFFLOAD_LAUNCH_FAILED, "release of an address that is no buffer");
    free(e->buffers[at].raw);
    memmove(&e->buffers[at], &e->buffers[at + 1], (e->count - at - 1) * sizeof(buffer));
    e->count--;
    return OFFLOAD_OK;
}

static int emu_copy_in(offload_device *d, offload_ptr dst, const void *src, size_t bytes)
{
    (void)d;
    memcpy((void *)(uintptr_t)dst, src, bytes);
    return OFFLOAD_OK;
}

static int emu_copy_out(offload_device *d, void *dst, offload_ptr src, size_t bytes)
{
    (void)d;
    memcpy(dst, (const void *)(uintptr_t)src, bytes);
    return OFFLOAD_OK;
}

static int emu_copy_rows(offload_device *d, int in, offload_ptr device, void *host, size_t width, size_t pitch,
                         size_t rows)
{
    (void)d;
    for (size_t r = 0; r < rows; r++) {
        char *h = (char *)host + r * pitch, *g = (char *)(uintptr_t)(device + r * pitch);
        memcpy(in ? g : h, in ? h : g, width);
    }
    return OFFLOAD_OK;
}

static int emu_kernel(offload_device *d, const char *name, void **out)
{
    emu *e = d->self;
    char symbol[160];
    snprintf(symbol, sizeof symbol, "__emu_launch_%s", name);
    emu_entry entry = (emu_entry)dlsym(e->module, symbol);
    if (!entry)
        return fail(e, OFFLOAD_UNKNOWN_KERNEL, "no such kernel in the emulated module");
    snprintf(symbol, sizeof symbol, "__emu_barrier_%s", name);
    const int *barrier = (const int *)dlsym(e->module, symbol);
    kernel *k = calloc(1, sizeof *k);
    if (!k)
        return fail(e, OFFLOAD_NO_MEMORY, "no memory for a kernel");
    k->entry = entry;
    k->barrier = barrier ? *barrier : 1;            /* a module that does not say: fibers, to be safe */
    snprintf(k->name, sizeof k->name, "%s", name);
    *out = k;
    return OFFLOAD_OK;
}

static int guards_intact(const buffer *b)
{
    const unsigned char *body = (const unsigned char *)(uintptr_t)b->body;
    for (int k = 0; k < GUARD; k++)
        if (body[-1 - k] != GUARD_BYTE || body[b->bytes + k] != GUARD_BYTE)
            return 0;
    return 1;
}

static int emu_launch(offload_device *d, void *handle, const unsigned grid[3], const unsigned block[3], void **args,
                      int region)
{
    emu *e = d->self;
    kernel *k = handle;
    for (int a = 0; a < 3; a++)
        if (!grid[a] || !block[a] || (a && grid[a] > 65535) || block[a] > (a < 2 ? 1024u : 64u))
            return fail(e, OFFLOAD_BAD_CONFIGURATION, "a grid or block outside CUDA's limits");
    if ((unsigned long long)block[0] * block[1] * block[2] > 1024)
        return fail(e, OFFLOAD_BAD_CONFIGURATION, "a block of more than 1024 threads");
    if (e->skip)
        return OFFLOAD_OK;
    emu_config config = {{grid[0], grid[1], grid[2]}, {block[0], block[1], block[2]}, e->order, e->workers,
                         k->barrier, e->seed, 0, NULL, {0}, {0}};
    double started = now();
    int error = k->entry(&config, args);
    double spent = now() - started;
    if (region >= 0) {
        if (region >= e->regions) {
            int regions = region + 64;
            double *grown = realloc(e->seconds, (size_t)regions * sizeof(double));
            if (!grown)
                return fail(e, OFFLOAD_NO_MEMORY, "no memory for kernel times");
            memset(grown + e->regions, 0, (size_t)(regions - e->regions) * sizeof(double));
            e->seconds = grown, e->regions = regions;
        }
        e->seconds[region] += spent;
    }
    if (error == 1) {
        snprintf(e->message, sizeof e->message, "%s: fault at address %p in block (%u, %u, %u) thread (%u, %u, %u)",
                 k->name, config.fault_address, config.fault_block[0], config.fault_block[1], config.fault_block[2],
                 config.fault_thread[0], config.fault_thread[1], config.fault_thread[2]);
        return OFFLOAD_ILLEGAL_ADDRESS;
    }
    if (error)
        return fail(e, error == 2 ? OFFLOAD_NO_MEMORY : OFFLOAD_LAUNCH_FAILED,
                    error == 2 ? "no memory for the emulator's fiber stacks or threads"
                               : "__syncthreads reached outside fiber mode");
    for (size_t b = 0; b < e->count; b++)
        if (!guards_intact(&e->buffers[b])) {
            buffer *bad = &e->buffers[b];
            unsigned char *body = (unsigned char *)(uintptr_t)bad->body;
            memset(body - GUARD, GUARD_BYTE, GUARD);
            memset(body + bad->bytes, GUARD_BYTE, GUARD);
            snprintf(e->message, sizeof e->message, "%s wrote outside a %zu-byte buffer", k->name, bad->bytes);
            return OFFLOAD_ILLEGAL_ADDRESS;
        }
    return OFFLOAD_OK;
}

static double emu_kernel_seconds(offload_device *d, int region)
{
    emu *e = d->self;
    return region >= 0 && region < e->regions ? e->seconds[region] : 0.0;
}

static int emu_pin(offload_device *d, void *host, size_t bytes)
{
    (void)d, (void)host, (void)bytes;
    return 0;                                       /* host memory already */
}

static void emu_unpin(offload_device *d, void *host)
{
    (void)d, (void)host;
}

static const char *emu_message(offload_device *d)
{
    return ((emu *)d->self)->message;
}

static void emu_close(offload_device *d)
{
    emu *e = d->self;
    for (size_t b = 0; b < e->count; b++)
        free(e->buffers[b].raw);
    free(e->buffers);
    free(e->seconds);
    free(e);
    free(d);
}

offload_device *offload_open_emulated(const char *module, int order, unsigned long long seed, int workers,
                                      offload_capacity capacity, int skip_kernels, char *why, size_t why_size)
{
    void *handle = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(why, why_size, "cannot load the emulated kernels: %s", dlerror());
        return NULL;
    }
    offload_device *d = calloc(1, sizeof *d);
    emu *e = calloc(1, sizeof *e);
    if (!d || !e) {
        free(d), free(e);
        snprintf(why, why_size, "no memory for the emulated device");
        return NULL;
    }
    static const char *orders[] = {"forward", "reverse", "shuffle"};
    *e = (emu){.module = handle, .order = order, .workers = workers < 1 ? 1 : workers, .skip = skip_kernels,
               .seed = seed};
    if (order == 2)
        snprintf(e->name, sizeof e->name, "emulated (%d CPU threads, order shuffle(seed=%llu))", e->workers, seed);
    else
        snprintf(e->name, sizeof e->name, "emulated (%d CPU threads, order %s)", e->workers,
                 orders[order < 0 || order > 1 ? 0 : order]);
    *d = (offload_device){.name = e->name, .kind = "emu", .timing = "emulated", .capacity = capacity,
                          .host_memory = 1, .alloc = emu_alloc, .release = emu_release, .copy_in = emu_copy_in,
                          .copy_out = emu_copy_out, .copy_rows = emu_copy_rows, .kernel = emu_kernel,
                          .launch = emu_launch, .kernel_seconds = emu_kernel_seconds, .pin = emu_pin,
                          .unpin = emu_unpin, .message = emu_message, .close = emu_close, .self = e};
    return d;
}
