/* The C side of an offload host program: what instrumented user code calls (dispatch,
 * tracked allocation) and what the runtime that loads the program registers (dispatcher,
 * hooks). abi.py documents the dispatch slots. No system header is included, so that
 * force-including this into user code declares nothing beyond these names. */
#ifndef OFFLOAD_HOSTPROG_RUNTIME_H
#define OFFLOAD_HOSTPROG_RUNTIME_H

typedef int (*__offload_dispatcher_fn)(int region, void **addrs, const long long *sizes);
typedef void (*__offload_free_hook_fn)(void *base, long long size);

/* Called by each wrapped region: non-zero when the dispatcher ran the region, 0 to run the
 * original loop on the CPU (always 0 while no dispatcher is registered). */
int __offload_dispatch(int region, void **addrs, const long long *sizes);

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
/* Watch (on != 0) or stop watching the allocation starting at base; 0 if there is none. */
int __offload_alloc_watch(const void *base, int on);

/* The tracked allocator alloc_track.h redirects the standard one to. */
void *__offload_malloc(__SIZE_TYPE__ size);
void *__offload_calloc(__SIZE_TYPE__ count, __SIZE_TYPE__ size);
void *__offload_realloc(void *p, __SIZE_TYPE__ size);
void __offload_free(void *p);
void *__offload_aligned_alloc(__SIZE_TYPE__ alignment, __SIZE_TYPE__ size);
int __offload_posix_memalign(void **p, __SIZE_TYPE__ alignment, __SIZE_TYPE__ size);

#endif
