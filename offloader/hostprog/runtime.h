/* The C side of an offload host program: what instrumented user code calls (dispatch,
 * tracked allocation) and what the runtime that loads the program registers (dispatcher,
 * hooks). abi.py documents the dispatch slots. No system header is included, so that
 * force-including this into user code declares nothing beyond these names. */
#ifndef OFFLOAD_HOSTPROG_RUNTIME_H
#define OFFLOAD_HOSTPROG_RUNTIME_H

typedef int (*__offload_dispatcher_fn)(int region, void **addrs, const long long *sizes);
/* keeps_data: realloc, which copies the block's contents, so they must be current first. */
typedef void (*__offload_free_hook_fn)(void *base, long long size, int keeps_data);

/* How a tracked block was allocated: only blocks of their own pages (mapped) and file-scope
 * arrays (static) may have their pages protected. */
#define OFFLOAD_BLOCK_HEAP 0
#define OFFLOAD_BLOCK_MAPPED 1
#define OFFLOAD_BLOCK_STATIC 2

/* Called by each wrapped region: non-zero when the dispatcher ran the region, 0 to run the
 * original loop on the CPU (always 0 while no dispatcher is registered). Each call's time in
 * the dispatcher is added up per region: __offload_dispatch_seconds. */
int __offload_dispatch(int region, void **addrs, const long long *sizes);
double __offload_dispatch_seconds(int region);
/* The bytes a region call's handling depends on, for the dispatcher's cache of prepared
 * calls: per slot, by kinds[k], nothing, or where the variable lies and then the scalar's
 * SIZES[k] bytes, the pointer variable's value, or nothing more (an array, a place: its
 * address is all). The key's length, or -1 (a kind unknown, or no room). */
#define OFFLOAD_KEY_SKIP 0
#define OFFLOAD_KEY_SCALAR 1
#define OFFLOAD_KEY_POINTER 2
#define OFFLOAD_KEY_ADDRESS 3
int __offload_call_key(void **addrs, const long long *sizes, const unsigned char *kinds, int count,
                       unsigned char *out, int capacity);

/* Seconds on a monotonic clock; a region's CPU loop reports its start when it ends, and
 * __offload_cpu_seconds gives the total (and call count) per region. */
double __offload_clock(void);
void __offload_cpu_done(int region, double started);
double __offload_cpu_seconds(int region, long long *calls);

/* Registration. The first call of either of these two registers the exit hook's caller with
 * atexit() (before main, so after the user's own handlers at exit): the hook then runs on
 * return from main and on exit() from anywhere, before stdio is flushed. */
void __offload_set_dispatcher(__offload_dispatcher_fn dispatcher);
void __offload_set_exit_hook(void (*hook)(void));
/* Called before a watched allocation is freed or reallocated (see __offload_alloc_watch). */
void __offload_set_free_hook(__offload_free_hook_fn hook);

/* Track a block that is not on the heap (a file-scope array), so pointers to it resolve. */
void __offload_alloc_register(void *base, long long size);
/* The live tracked allocation containing p: 1 and its base and size, or 0. */
int __offload_alloc_lookup(const void *p, void **base, long long *size);
/* The kind of the tracked block starting at base (OFFLOAD_BLOCK_*), or -1. */
int __offload_alloc_kind(const void *base);
/* Watch (on != 0) or stop watching the allocation starting at base; 0 if there is none. */
int __offload_alloc_watch(const void *base, int on);

/* The tracked allocator alloc_track.h redirects the standard one to. */
void *__offload_malloc(__SIZE_TYPE__ size);
void *__offload_calloc(__SIZE_TYPE__ count, __SIZE_TYPE__ size);
void *__offload_realloc(void *p, __SIZE_TYPE__ size);
void __offload_free(void *p);
void *__offload_aligned_alloc(__SIZE_TYPE__ alignment, __SIZE_TYPE__ size);
int __offload_posix_memalign(void **p, __SIZE_TYPE__ alignment, __SIZE_TYPE__ size);

/* Managed allocations (residency.c): device copies that stay resident while host code runs.
 * The runtime registers an allocation with its device copy; residency.c keeps which bytes
 * the device holds and which are newer there, makes the copies, and (watch != 0) protects
 * pages to catch host access. Byte runs are [lo, hi) pairs from the allocation's base,
 * sorted and disjoint; a count below 0 means the whole allocation. Each call adds what it
 * copied to *t. `manage` returns the entry's index, or -1. */
struct __offload_traffic {
    unsigned long long h2d_bytes, d2h_bytes, h2d_copies, d2h_copies;
    double h2d_seconds, d2h_seconds;
};
struct __offload_fault_stats {             /* host access to device data, since manage */
    unsigned long long faults, copies, copied_back;
    double fault_seconds, copy_seconds;    /* in the fault handler; the copies' part of it */
};
/* What a program exits with when the runtime cannot go on (a copy back failed: the newer
 * data are lost), after saying why on stderr. */
#define OFFLOAD_EXIT_RUNTIME 70
int __offload_residency_copy_kind(int kind);          /* 0: device memory is host memory; 1: CUDA */
int __offload_residency_manage(void *base, long long size, unsigned long long device, int watch, int mapped);
int __offload_residency_need(int index, const long long *runs, long long count, struct __offload_traffic *t);
int __offload_residency_wrote(int index, const long long *runs, long long count, struct __offload_traffic *t);
void __offload_residency_read_done(int index);
int __offload_residency_release(int index, int keeps_data, struct __offload_traffic *t);
void __offload_residency_stats(int index, struct __offload_fault_stats *out);
int __offload_residency_shape(int index, long long *valid, long long *stale);
void __offload_host_access(const void *p, __SIZE_TYPE__ bytes, int writing);

/* I/O whose buffers the kernel reads or writes (alloc_track.h redirects the user's calls). */
struct _IO_FILE;
__SIZE_TYPE__ __offload_fread(void *p, __SIZE_TYPE__ size, __SIZE_TYPE__ count, struct _IO_FILE *f);
__SIZE_TYPE__ __offload_fwrite(const void *p, __SIZE_TYPE__ size, __SIZE_TYPE__ count, struct _IO_FILE *f);
long __offload_read(int fd, void *p, __SIZE_TYPE__ bytes);
long __offload_write(int fd, const void *p, __SIZE_TYPE__ bytes);

#endif
