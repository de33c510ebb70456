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
 * such lookup. A mutex guards the table once the program has started a thread; before that
 * (glibc's __libc_single_threaded) locking is skipped, as glibc's own allocator does.
 *
 * This file is compiled without alloc_track.h, so malloc and friends here are libc's. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define SINGLE_THREADED __libc_single_threaded
#else
#define SINGLE_THREADED 0
#endif

#include "runtime.h"

/* ---- dispatch and hooks ---------------------------------------------------------------- */

static __offload_dispatcher_fn dispatcher;
static void (*exit_hook)(void);
static __offload_free_hook_fn free_hook;

static void run_exit_hook(void)
{
    if (exit_hook)
        exit_hook();
}

static void register_atexit_once(void)
{
    static int registered;
    if (!registered) {
        registered = 1;
        atexit(run_exit_hook);
    }
}

int __offload_dispatch(int region, void **addrs, const long long *sizes)
{
    return dispatcher ? dispatcher(region, addrs, sizes) : 0;
}

void __offload_set_dispatcher(__offload_dispatcher_fn fn)
{
    register_atexit_once();
    dispatcher = fn;
}

void __offload_set_exit_hook(void (*hook)(void))
{
    register_atexit_once();
    exit_hook = hook;
}

void __offload_set_free_hook(__offload_free_hook_fn hook)
{
    free_hook = hook;
}

/* ---- the allocation table -------------------------------------------------------------- */

typedef struct {
    uintptr_t base;             /* 0: empty slot */
    long long size;
} block;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static block *table;            /* open addressing, linear probing, capacity a power of two */
static size_t capacity, live;
static unsigned shift;          /* 64 - log2(capacity): Fibonacci hashing keeps the top bits */
static block *sorted;           /* the live blocks by base, for interior lookups */
static size_t sorted_count;
static int sorted_stale = 1;
static uintptr_t *watched;      /* bases of watched blocks, ascending: few, so a sorted array */
static size_t watched_count, watched_capacity;

/* No thread can start inside a critical section (hooks run outside them), so whether the
 * lock was taken is known again at unlock. */
static int lock_table(void)
{
    if (SINGLE_THREADED)
        return 0;
    pthread_mutex_lock(&table_lock);
    return 1;
}

static void unlock_table(int held)
{
    if (held)
        pthread_mutex_unlock(&table_lock);
}

static size_t home(uintptr_t base)
{
    return (size_t)(((uint64_t)base * 0x9E3779B97F4A7C15ull) >> shift);
}

static block *find(uintptr_t base)
{
    if (!capacity)
        return NULL;
    for (size_t k = home(base);; k = (k + 1) & (capacity - 1)) {
        if (table[k].base == base)
            return &table[k];
        if (!table[k].base)
            return NULL;
    }
}

static void place(block b)
{
    size_t k = home(b.base);
    while (table[k].base && table[k].base != b.base)
        k = (k + 1) & (capacity - 1);
    if (!table[k].base)
        live++;
    table[k] = b;
}

static int grow(void)
{
    block *old = table;
    size_t old_capacity = capacity;
    size_t wanted = capacity ? capacity * 2 : 1024;
    block *fresh = calloc(wanted, sizeof(block));
    if (!fresh)
        return 0;
    table = fresh;
    capacity = wanted;
    for (shift = 64; (1ull << (64 - shift)) < wanted; shift--)
        ;
    live = 0;
    for (size_t k = 0; k < old_capacity; k++)
        if (old[k].base)
            place(old[k]);
    free(old);
    return 1;
}

/* Record a new block; a table that cannot grow leaves the block untracked, never failed. */
static void track(void *p, size_t size)
{
    if (!p)
        return;
    int held = lock_table();
    if ((live + 1) * 2 <= capacity || grow()) {
        block b = {(uintptr_t)p, (long long)size};
        place(b);
        sorted_stale = 1;
    }
    unlock_table(held);
}

/* Remove a block (backward-shift deletion keeps probe chains intact without tombstones). */
static void untrack(uintptr_t base)
{
    block *b = find(base);
    if (!b)
        return;
    size_t hole = (size_t)(b - table);
    for (size_t k = (hole + 1) & (capacity - 1); table[k].base; k = (k + 1) & (capacity - 1)) {
        size_t want = home(table[k].base);
        /* move k into the hole unless its home lies cyclically in (hole, k] */
        if (((k - want) & (capacity - 1)) >= ((k - hole) & (capacity - 1))) {
            table[hole] = table[k];
            hole = k;
        }
    }
    table[hole].base = 0;
    live--;
    sorted_stale = 1;
}

/* Index of the first watched base >= base. */
static size_t watched_at(uintptr_t base)
{
    size_t lo = 0, hi = watched_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (watched[mid] < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int is_watched(uintptr_t base, size_t k)
{
    return k < watched_count && watched[k] == base;
}

/* Tell the runtime a watched block is about to go, and stop watching it. The hook runs
 * outside the lock: it may look blocks up. */
static void before_release(void *p)
{
    if (!free_hook || !watched_count)
        return;
    uintptr_t base = (uintptr_t)p;
    int held = lock_table();
    size_t k = watched_at(base);
    int hit = is_watched(base, k);
    long long size = 0;
    if (hit) {
        memmove(&watched[k], &watched[k + 1], (watched_count - k - 1) * sizeof(uintptr_t));
        watched_count--;
        const block *b = find(base);
        size = b ? b->size : 0;
    }
    unlock_table(held);
    if (hit)
        free_hook(p, size);
}

static int by_base(const void *a, const void *b)
{
    uintptr_t x = ((const block *)a)->base, y = ((const block *)b)->base;
    return (x > y) - (x < y);
}

static int refresh_sorted(void)
{
    if (!sorted_stale)
        return 1;
    block *fresh = realloc(sorted, (live ? live : 1) * sizeof(block));
    if (!fresh)
        return 0;
    sorted = fresh;
    sorted_count = 0;
    for (size_t k = 0; k < capacity; k++)
        if (table[k].base)
            sorted[sorted_count++] = table[k];
    qsort(sorted, sorted_count, sizeof(block), by_base);
    sorted_stale = 0;
    return 1;
}

void __offload_alloc_register(void *base, long long size)
{
    if (size > 0)
        track(base, (size_t)size);
}

int __offload_alloc_lookup(const void *p, void **base, long long *size)
{
    uintptr_t at = (uintptr_t)p;
    int held = lock_table();
    const block *hit = find(at);
    if (!hit && refresh_sorted()) {
        size_t lo = 0, hi = sorted_count;          /* first block with base > at */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (sorted[mid].base <= at)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo > 0 && at - sorted[lo - 1].base < (uintptr_t)sorted[lo - 1].size)
            hit = &sorted[lo - 1];
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
        if (watched_count == watched_capacity) {
            size_t wanted = watched_capacity ? watched_capacity * 2 : 64;
            uintptr_t *fresh = realloc(watched, wanted * sizeof(uintptr_t));
            if (!fresh) {
                unlock_table(held);
                return 0;
            }
            watched = fresh;
            watched_capacity = wanted;
        }
        memmove(&watched[k + 1], &watched[k], (watched_count - k) * sizeof(uintptr_t));
        watched[k] = at;
        watched_count++;
    } else if (!on && is_watched(at, k)) {
        memmove(&watched[k], &watched[k + 1], (watched_count - k - 1) * sizeof(uintptr_t));
        watched_count--;
    }
    unlock_table(held);
    return tracked;
}

/* ---- the tracked allocator ------------------------------------------------------------- */

void *__offload_malloc(size_t size)
{
    void *p = malloc(size);
    track(p, size);
    return p;
}

void *__offload_calloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    track(p, count * size);
    return p;
}

void *__offload_aligned_alloc(size_t alignment, size_t size)
{
    void *p = aligned_alloc(alignment, size);
    track(p, size);
    return p;
}

int __offload_posix_memalign(void **p, size_t alignment, size_t size)
{
    int failed = posix_memalign(p, alignment, size);
    if (!failed)
        track(*p, size);
    return failed;
}

void __offload_free(void *p)
{
    if (!p)
        return;
    before_release(p);
    int held = lock_table();   /* held across free: no other thread reuses p meanwhile */
    untrack((uintptr_t)p);
    free(p);
    unlock_table(held);
}

void *__offload_realloc(void *p, size_t size)
{
    if (!p)
        return __offload_malloc(size);
    before_release(p);
    int held = lock_table();
    const block *b = find((uintptr_t)p);
    block before = b ? *b : (block){0, 0};
    untrack((uintptr_t)p);
    void *moved = realloc(p, size);
    unlock_table(held);
    if (moved)
        track(moved, size);
    else if (size != 0 && before.base)     /* failed: p is intact (realloc(p, 0) frees it) */
        track((void *)before.base, (size_t)before.size);
    return moved;
}
