/* The C runtime linked into every offload host library (see runtime.h).
 *
 * Dispatch is one indirect call when a dispatcher is registered and a test otherwise, so a
 * program run without one costs what the original does.
 *
 * Allocation tracking keeps every live block of the user's malloc/calloc/realloc/
 * aligned_alloc/posix_memalign in an open-addressing hash table keyed by base address:
 * allocating and freeing cost O(1) plus the allocator's own work, so allocation-heavy
 * programs do not slow down much. Looking up a pointer first tries it as a base (the common
 * case: a region uses the pointer malloc returned); an interior pointer is found by binary
 * search in a sorted copy of the table, rebuilt only when blocks came or went since the last
 * such lookup.
 *
 * Blocks of MAPPED_MIN bytes or more come from mmap: whole pages of their own, so that the
 * runtime may protect them (residency.c) without touching the allocator's own bookkeeping. A mutex guards the table once the program has started a thread; before that
 * (glibc's __libc_single_threaded) locking is skipped, as glibc's own allocator does.
 *
 * This file is compiled without alloc_track.h, so malloc and friends here are libc's. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define SINGLE_THREADED __libc_single_threaded
#else
#define SINGLE_THREADED 0
#endif

#include "runtime.h"

/* ---- the runtime's own state --------------------------------------------------------- */

typedef struct {
    uintptr_t base;             /* 0: empty slot */
    long long size;
    int kind;                   /* OFFLOAD_BLOCK_HEAP, _MAPPED or _STATIC (runtime.h) */
} block;

#define CPU_TIMED 512                   /* regions whose CPU loops are timed (ids below this) */

/* All of it in pages of its own: residency.c protects pages of file-scope arrays, and a page
 * this state shared with one would fault (and cost a copy) at every table update. */
static union {
    struct {
        __offload_dispatcher_fn dispatcher;
        void (*exit_hook)(void);
        __offload_free_hook_fn free_hook;
        int registered;                 /* the exit hook's caller, with atexit() */
        pthread_mutex_t table_lock;
        block *table;                   /* open addressing, linear probing, capacity a power of two */
        size_t capacity, live;
        unsigned shift;                 /* 64 - log2(capacity): Fibonacci hashing keeps the top bits */
        block *sorted;                  /* the live blocks by base, for interior lookups */
        size_t sorted_count;
        int sorted_stale;
        uintptr_t *watched;             /* bases of watched blocks, ascending: few, so a sorted array */
        size_t watched_count, watched_capacity;
        size_t page;
        double cpu_seconds[CPU_TIMED];  /* per region id, time in its CPU loop */
        long long cpu_calls[CPU_TIMED];
        double dispatch_seconds[CPU_TIMED];     /* per region id, time in the dispatcher */
    } s;
    char pad[4 * 4096];
} state __attribute__((aligned(4096))) = {.s = {.table_lock = PTHREAD_MUTEX_INITIALIZER, .sorted_stale = 1}};
#define rt (state.s)
_Static_assert(sizeof(state.s) <= sizeof(state.pad), "the runtime state outgrew its pages");

/* ---- dispatch and hooks ---------------------------------------------------------------- */


static void run_exit_hook(void)
{
    if (rt.exit_hook)
        rt.exit_hook();
}

static void register_atexit_once(void)
{
    if (!rt.registered) {
        rt.registered = 1;
        atexit(run_exit_hook);
    }
}

int __offload_dispatch(int region, void **addrs, const long long *sizes)
{
    if (!rt.dispatcher)
        return 0;
    double started = __offload_clock();
    int ran = rt.dispatcher(region, addrs, sizes);
    if (region >= 0 && region < CPU_TIMED)
        rt.dispatch_seconds[region] += __offload_clock() - started;
    return ran;
}

int __offload_call_key(void **addrs, const long long *sizes, const unsigned char *kinds, int count,
                       unsigned char *out, int capacity)
{
    int used = 0;
    for (int k = 0; k < count; k++) {
        if (kinds[k] == OFFLOAD_KEY_SKIP)
            continue;
        int bytes = kinds[k] == OFFLOAD_KEY_SCALAR ? (int)sizes[k] : kinds[k] == OFFLOAD_KEY_POINTER ? 8 : 0;
        if (kinds[k] > OFFLOAD_KEY_ADDRESS || bytes < 0 || used + (int)sizeof(void *) + bytes > capacity)
            return -1;
        if (bytes && (uintptr_t)addrs[k] < 4096)
            return -1;                                      /* `&p->n` with p NULL: the dispatcher says why */
        memcpy(out + used, &addrs[k], sizeof(void *));     /* where the variable lies: checks use it */
        used += (int)sizeof(void *);
        memcpy(out + used, addrs[k], (size_t)bytes);       /* and what it holds */
        used += bytes;
    }
    return used;
}

double __offload_dispatch_seconds(int region)
{
    return region >= 0 && region < CPU_TIMED ? rt.dispatch_seconds[region] : 0.0;
}

double __offload_clock(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

void __offload_cpu_done(int region, double started)
{
    if (region >= 0 && region < CPU_TIMED) {
        double spent = __offload_clock() - started;
        __atomic_fetch_add(&rt.cpu_calls[region], 1, __ATOMIC_RELAXED);
        /* regions on several threads at once are rare: a lost update costs one sample */
        rt.cpu_seconds[region] += spent;
    }
}

double __offload_cpu_seconds(int region, long long *calls)
{
    if (region < 0 || region >= CPU_TIMED) {
        *calls = 0;
        return 0.0;
    }
    *calls = rt.cpu_calls[region];
    return rt.cpu_seconds[region];
}

void __offload_set_dispatcher(__offload_dispatcher_fn fn)
{
    register_atexit_once();
    rt.dispatcher = fn;
}

void __offload_set_exit_hook(void (*hook)(void))
{
    register_atexit_once();
    rt.exit_hook = hook;
}

void __offload_set_free_hook(__offload_free_hook_fn hook)
{
    rt.free_hook = hook;
}

/* ---- the allocation table -------------------------------------------------------------- */


#define MAPPED_MIN (64 * 1024)


/* No thread can start inside a critical section (hooks run outside them), so whether the
 * lock was taken is known again at unlock. */
static int lock_table(void)
{
    if (SINGLE_THREADED)
        return 0;
    pthread_mutex_lock(&rt.table_lock);
    return 1;
}

static void unlock_table(int held)
{
    if (held)
        pthread_mutex_unlock(&rt.table_lock);
}

static size_t home(uintptr_t base)
{
    return (size_t)(((uint64_t)base * 0x9E3779B97F4A7C15ull) >> rt.shift);
}

static block *find(uintptr_t base)
{
    if (!rt.capacity)
        return NULL;
    for (size_t k = home(base);; k = (k + 1) & (rt.capacity - 1)) {
        if (rt.table[k].base == base)
            return &rt.table[k];
        if (!rt.table[k].base)
            return NULL;
    }
}

static void place(block b)
{
    size_t k = home(b.base);
    while (rt.table[k].base && rt.table[k].base != b.base)
        k = (k + 1) & (rt.capacity - 1);
    if (!rt.table[k].base)
        rt.live++;
    rt.table[k] = b;
}

static int grow(void)
{
    block *old = rt.table;
    size_t old_capacity = rt.capacity;
    size_t wanted = rt.capacity ? rt.capacity * 2 : 1024;
    block *fresh = calloc(wanted, sizeof(block));
    if (!fresh)
        return 0;
    rt.table = fresh;
    rt.capacity = wanted;
    for (rt.shift = 64; (1ull << (64 - rt.shift)) < wanted; rt.shift--)
        ;
    rt.live = 0;
    for (size_t k = 0; k < old_capacity; k++)
        if (old[k].base)
            place(old[k]);
    free(old);
    return 1;
}

/* Record a new block; a table that cannot grow leaves the block untracked, never failed. */
static void track_kind(void *p, size_t size, int kind)
{
    if (!p)
        return;
    int held = lock_table();
    if ((rt.live + 1) * 2 <= rt.capacity || grow()) {
        block b = {(uintptr_t)p, (long long)size, kind};
        place(b);
        rt.sorted_stale = 1;
    }
    unlock_table(held);
}

static void track(void *p, size_t size)
{
    track_kind(p, size, OFFLOAD_BLOCK_HEAP);
}

/* Remove a block (backward-shift deletion keeps probe chains intact without tombstones). */
static void untrack(uintptr_t base)
{
    block *b = find(base);
    if (!b)
        return;
    size_t hole = (size_t)(b - rt.table);
    for (size_t k = (hole + 1) & (rt.capacity - 1); rt.table[k].base; k = (k + 1) & (rt.capacity - 1)) {
        size_t want = home(rt.table[k].base);
        /* move k into the hole unless its home lies cyclically in (hole, k] */
        if (((k - want) & (rt.capacity - 1)) >= ((k - hole) & (rt.capacity - 1))) {
            rt.table[hole] = rt.table[k];
            hole = k;
        }
    }
    rt.table[hole].base = 0;
    rt.live--;
    rt.sorted_stale = 1;
}

/* Index of the first watched base >= base. */
static size_t watched_at(uintptr_t base)
{
    size_t lo = 0, hi = rt.watched_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rt.watched[mid] < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int is_watched(uintptr_t base, size_t k)
{
    return k < rt.watched_count && rt.watched[k] == base;
}

/* Tell the runtime a watched block is about to go, and stop watching it. The hook runs
 * outside the lock: it may look blocks up. */
static void before_release(void *p, int keeps_data)
{
    if (!rt.free_hook || !rt.watched_count)
        return;
    uintptr_t base = (uintptr_t)p;
    int held = lock_table();
    size_t k = watched_at(base);
    int hit = is_watched(base, k);
    long long size = 0;
    if (hit) {
        memmove(&rt.watched[k], &rt.watched[k + 1], (rt.watched_count - k - 1) * sizeof(uintptr_t));
        rt.watched_count--;
        const block *b = find(base);
        size = b ? b->size : 0;
    }
    unlock_table(held);
    if (hit)
        rt.free_hook(p, size, keeps_data);
}

static int by_base(const void *a, const void *b)
{
    uintptr_t x = ((const block *)a)->base, y = ((const block *)b)->base;
    return (x > y) - (x < y);
}

static int refresh_sorted(void)
{
    if (!rt.sorted_stale)
        return 1;
    block *fresh = realloc(rt.sorted, (rt.live ? rt.live : 1) * sizeof(block));
    if (!fresh)
        return 0;
    rt.sorted = fresh;
    rt.sorted_count = 0;
    for (size_t k = 0; k < rt.capacity; k++)
        if (rt.table[k].base)
            rt.sorted[rt.sorted_count++] = rt.table[k];
    qsort(rt.sorted, rt.sorted_count, sizeof(block), by_base);
    rt.sorted_stale = 0;
    return 1;
}

void __offload_alloc_register(void *base, long long size)
{
    if (size > 0)
        track_kind(base, (size_t)size, OFFLOAD_BLOCK_STATIC);
}

int __offload_alloc_kind(const void *base)
{
    int held = lock_table();
    const block *b = find((uintptr_t)base);
    int kind = b ? b->kind : -1;
    unlock_table(held);
    return kind;
}

int __offload_alloc_lookup(const void *p, void **base, long long *size)
{
    uintptr_t at = (uintptr_t)p;
    int held = lock_table();
    const block *hit = find(at);
    if (!hit && refresh_sorted()) {
        size_t lo = 0, hi = rt.sorted_count;          /* first block with base > at */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (rt.sorted[mid].base <= at)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo > 0 && at - rt.sorted[lo - 1].base < (uintptr_t)rt.sorted[lo - 1].size)
            hit = &rt.sorted[lo - 1];
    }
    if (hit) {
        *base = (void *)hit->base;
        *size = hit->size;
    }
    unlock_table(held);
    return hit != NULL;
}

int __offload_alloc_watch(const void *base, int on)
{
    uintptr_t at = (uintptr_t)base;
    int held = lock_table();
    int tracked = find(at) != NULL;
    size_t k = watched_at(at);
    if (tracked && on && !is_watched(at, k)) {
        if (rt.watched_count == rt.watched_capacity) {
            size_t wanted = rt.watched_capacity ? rt.watched_capacity * 2 : 64;
            uintptr_t *fresh = realloc(rt.watched, wanted * sizeof(uintptr_t));
            if (!fresh) {
                unlock_table(held);
                return 0;
            }
            rt.watched = fresh;
            rt.watched_capacity = wanted;
        }
        memmove(&rt.watched[k + 1], &rt.watched[k], (rt.watched_count - k) * sizeof(uintptr_t));
        rt.watched[k] = at;
        rt.watched_count++;
    } else if (!on && is_watched(at, k)) {
        memmove(&rt.watched[k], &rt.watched[k + 1], (rt.watched_count - k - 1) * sizeof(uintptr_t));
        rt.watched_count--;
    }
    unlock_table(held);
    return tracked;
}

/* ---- the tracked allocator ------------------------------------------------------------- */

static size_t page_size(void)
{
    if (!rt.page)
        rt.page = (size_t)sysconf(_SC_PAGESIZE);
    return rt.page;
}

static size_t whole_pages(size_t size)
{
    return (size + page_size() - 1) & ~(page_size() - 1);
}

/* A block of its own pages, or NULL (the caller then uses malloc). */
static void *map_block(size_t size)
{
    if (size < MAPPED_MIN)
        return NULL;
    void *p = mmap(NULL, whole_pages(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    track_kind(p, size, OFFLOAD_BLOCK_MAPPED);
    return p;
}

void *__offload_malloc(size_t size)
{
    void *p = map_block(size);
    if (p)
        return p;
    p = malloc(size);
    track(p, size);
    return p;
}

void *__offload_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return calloc(count, size);              /* overflow: let libc fail it */
    void *p = map_block(count * size);           /* fresh anonymous pages are zero */
    if (p)
        return p;
    p = calloc(count, size);
    track(p, count * size);
    return p;
}

void *__offload_aligned_alloc(size_t alignment, size_t size)
{
    void *p = alignment <= page_size() ? map_block(size) : NULL;
    if (p)
        return p;
    p = aligned_alloc(alignment, size);
    track(p, size);
    return p;
}

int __offload_posix_memalign(void **p, size_t alignment, size_t size)
{
    void *mapped = alignment <= page_size() ? map_block(size) : NULL;
    if (mapped) {
        *p = mapped;
        return 0;
    }
    int failed = posix_memalign(p, alignment, size);
    if (!failed)
        track(*p, size);
    return failed;
}

/* Remove p from the table; 1 and its size if it was a mapped block (the caller unmaps). */
static int release(void *p, long long *mapped_size)
{
    int held = lock_table();   /* held across free: no other thread reuses p meanwhile */
    const block *b = find((uintptr_t)p);
    int mapped = b && b->kind == OFFLOAD_BLOCK_MAPPED;
    *mapped_size = b ? b->size : 0;
    untrack((uintptr_t)p);
    if (!mapped)
        free(p);
    unlock_table(held);
    return mapped;
}

void __offload_free(void *p)
{
    if (!p)
        return;
    before_release(p, 0);
    long long size;
    if (release(p, &size))
        munmap(p, whole_pages((size_t)size));
}

void *__offload_realloc(void *p, size_t size)
{
    if (!p)
        return __offload_malloc(size);
    int kind = __offload_alloc_kind(p);
    if (kind == OFFLOAD_BLOCK_MAPPED || (size >= MAPPED_MIN && kind == OFFLOAD_BLOCK_HEAP)) {
        before_release(p, 1);                    /* the device copy goes; its data comes back first */
        void *fresh = size ? __offload_malloc(size) : NULL;
        if (size && !fresh)
            return NULL;                         /* p is intact */
        void *base;
        long long old_size = 0;
        __offload_alloc_lookup(p, &base, &old_size);
        if (fresh)
            memcpy(fresh, p, (size_t)old_size < size ? (size_t)old_size : size);
        long long mapped_size;
        if (release(p, &mapped_size))
            munmap(p, whole_pages((size_t)mapped_size));
        return fresh;
    }
    before_release(p, 1);
    int held = lock_table();
    const block *b = find((uintptr_t)p);
    block before = b ? *b : (block){0, 0, 0};
    untrack((uintptr_t)p);
    void *moved = realloc(p, size);
    unlock_table(held);
    if (moved)
        track(moved, size);
    else if (size != 0 && before.base)     /* failed: p is intact (realloc(p, 0) frees it) */
        track((void *)before.base, (size_t)before.size);
    return moved;
}
