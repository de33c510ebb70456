/* Device copies that stay resident while host code runs (see runtime.h, "Managed
 * allocations"): which bytes of each allocation the device holds, the copies that keep host
 * and device consistent, and the page protection that tells when host code touches data the
 * device holds.
 *
 * Per managed allocation two sets of byte ranges, as sorted interval lists:
 *   valid  the device copy holds the current value;
 *   stale  the device copy is newer than the host's (stale is inside valid).
 * The work per region call is proportional to the intervals and the runs it is given, never
 * to the bytes: a call whose needs lie inside one valid interval, or whose writes' hull is
 * already valid, costs a binary search. Safety rules: a host-to-device copy may include bytes
 * that are not stale (the host's value is current there), never stale ones; a device-to-host
 * copy may include bytes the device holds validly, never invalid ones. So stale grows over a
 * gap between written runs when the device holds the gap validly, and a 2-D interior stencil
 * keeps one stale interval, not one per row.
 *
 * Page protection follows from the sets, for watched allocations (mapped heap blocks and
 * file-scope arrays, whose pages the runtime may protect):
 *   some byte stale           -> PROT_NONE  (any access must first copy it back)
 *   else some byte valid      -> PROT_READ  (a write must first invalidate the device copy)
 *   else                      -> read and write, no fault
 * Only the pages whose protection changes are mprotect()ed. The fault handler settles a
 * window of pages and returns, so the access that faulted runs again and succeeds: a read
 * copies the window's stale bytes back and leaves it read-only; a write also drops the
 * device's claim to it. The window grows while faults are sequential (readahead), a fault
 * after a write fault in the same sweep settles its window for writing (a read-then-write loop
 * faults once per window), and an allocation whose faults jump around (a host loop over one
 * column of every row) switches to eager copy-back: its written data come back right after
 * each launch, in one copy. Allocations that cannot be watched (small heap blocks, stack
 * arrays) get that from the start, and their device copy is forgotten after each launch.
 *
 * Copies are made here: memcpy when the device's memory is host memory (the emulator), the
 * CUDA driver otherwise. Runs of equal length at an equal pitch go as one 2-D copy. On CUDA,
 * blocks the runtime mapped itself are registered (pinned) once.
 *
 * System calls do not fault on protected pages (they return EFAULT), so the I/O functions the
 * user's code calls are redirected (alloc_track.h) to versions that settle their buffers
 * first. Everything the handler reads lives in one page-aligned state block and in interval
 * arrays on the C heap, which no protected page holds; the arrays keep spare room so that the
 * handler never allocates. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "runtime.h"

#define MAX_MANAGED 512
#define STATE_PAGES 32
#define MAX_WINDOW (64ull << 20)            /* bytes: the most a sequential sweep's window grows to */
#define EAGER_JUMPS 64                      /* non-sequential faults between launches before eager copy-back */
#define MERGE_GAP 256                       /* bytes: missing runs closer than this go as one copy, */
#define MERGE_SHARE 16                      /* if the gap is at most this fraction of the runs */

typedef struct {
    long long lo, hi;                       /* [lo, hi), bytes from the allocation's base */
} span;

typedef struct {
    span *at;
    long long n, cap;
} spans;

enum { WATCH_NONE = 0, WATCH_PAGES = 1 };
enum { EAGER_NO = 0, EAGER_COPY = 1, EAGER_FORGET = 2 };

typedef struct {
    uintptr_t base;                         /* 0: a free entry */
    long long size;
    uintptr_t device;                       /* where byte 0 lives in the device copy */
    int watched, eager, pinned;
    spans valid, stale;
    /* faults: the window of the current sweep, and counts since the last launch */
    uintptr_t next_fault;
    unsigned long long window;              /* bytes the last fault settled */
    int sweep_writes;
    unsigned long long jumps;
    struct __offload_fault_stats stats;
} managed;

typedef int (*cu_htod_fn)(unsigned long long dst, const void *src, size_t bytes);
typedef int (*cu_dtoh_fn)(void *dst, unsigned long long src, size_t bytes);

/* cuda.h's CUDA_MEMCPY2D (stable ABI), so this file needs no CUDA header. */
typedef struct {
    size_t srcXInBytes, srcY;
    int srcMemoryType;
    const void *srcHost;
    unsigned long long srcDevice;
    void *srcArray;
    size_t srcPitch;
    size_t dstXInBytes, dstY;
    int dstMemoryType;
    void *dstHost;
    unsigned long long dstDevice;
    void *dstArray;
    size_t dstPitch;
    size_t WidthInBytes, Height;
} cuda_copy_2d;
#define CU_MEMORYTYPE_HOST 1
#define CU_MEMORYTYPE_DEVICE 2

struct state {
    managed entries[MAX_MANAGED];
    int order[MAX_MANAGED];         /* indices of the entries in use, by base */
    int used;                       /* how many of `order` are valid */
    int copy_kind;                  /* 0: the device copy is host memory; 1: CUDA */
    cu_htod_fn cuda_htod;
    cu_dtoh_fn cuda_dtoh;
    int (*cuda_copy_2d)(const cuda_copy_2d *);
    int (*cuda_register)(void *, size_t, unsigned);
    int (*cuda_unregister)(void *);
    int (*cuda_set_context)(void *);
    void *cuda_context;
    uintptr_t page;
    int installed;
    int lock;
    struct sigaction previous;
};

static union {
    struct state s;
    char pad[STATE_PAGES * 4096];
} state_block __attribute__((aligned(4096)));
#define S (state_block.s)
_Static_assert(sizeof(struct state) <= STATE_PAGES * 4096, "the residency state outgrew its pages");

static void lock(void)
{
    while (__atomic_exchange_n(&S.lock, 1, __ATOMIC_ACQUIRE))
        ;
}

static void unlock(void)
{
    __atomic_store_n(&S.lock, 0, __ATOMIC_RELEASE);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);             /* async-signal-safe */
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uintptr_t page_down(uintptr_t at) { return at & ~(S.page - 1); }
static uintptr_t page_up(uintptr_t at) { return (at + S.page - 1) & ~(S.page - 1); }

/* ---- interval lists --------------------------------------------------------------------- */

/* Room for `more` intervals beyond the ones in use; 0 if memory ran out. The lists live in
 * pages of their own, grown by mremap: system calls only, so the fault handler may grow
 * them too (malloc is not safe in a signal handler). */
static int reserve(spans *s, long long more)
{
    long long want = s->n + more;
    if (want <= s->cap)
        return 1;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t bytes = (size_t)(s->cap ? s->cap : 16) * sizeof(span);
    while (bytes < (size_t)want * sizeof(span))
        bytes *= 2;
    bytes = (bytes + page - 1) & ~(page - 1);
    void *fresh = s->at ? mremap(s->at, (size_t)s->cap * sizeof(span), bytes, MREMAP_MAYMOVE)
                        : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fresh == MAP_FAILED)
        return 0;
    s->at = fresh;
    s->cap = (long long)(bytes / sizeof(span));
    return 1;
}

static void forget(spans *s)
{
    if (s->at)
        munmap(s->at, (size_t)s->cap * sizeof(span));
    *s = (spans){0};
}

/* Index of the first interval whose end is at or after x. */
static long long first_ending_from(const spans *s, long long x)
{
    long long lo = 0, hi = s->n;
    while (lo < hi) {
        long long mid = lo + (hi - lo) / 2;
        if (s->at[mid].hi < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Whether one interval holds all of [lo, hi). */
static int covers(const spans *s, long long lo, long long hi)
{
    if (lo >= hi)
        return 1;
    long long k = first_ending_from(s, lo + 1);
    return k < s->n && s->at[k].lo <= lo && s->at[k].hi >= hi;
}

static int overlaps(const spans *s, long long lo, long long hi)
{
    long long k = first_ending_from(s, lo + 1);
    return k < s->n && s->at[k].lo < hi;
}

/* s |= [lo, hi). Needs one free slot (reserve). */
static void add(spans *s, long long lo, long long hi)
{
    if (lo >= hi)
        return;
    long long i = first_ending_from(s, lo), j = i;     /* intervals touching [lo, hi): i..j-1 */
    while (j < s->n && s->at[j].lo <= hi)
        j++;
    if (i < j) {
        if (s->at[i].lo < lo)
            lo = s->at[i].lo;
        if (s->at[j - 1].hi > hi)
            hi = s->at[j - 1].hi;
    }
    memmove(&s->at[i + 1], &s->at[j], (size_t)(s->n - j) * sizeof(span));
    s->at[i] = (span){lo, hi};
    s->n += 1 - (j - i);
}

/* s -= [lo, hi). Needs one free slot (reserve): a split. */
static void sub(spans *s, long long lo, long long hi)
{
    if (lo >= hi)
        return;
    long long i = first_ending_from(s, lo + 1), j = i;
    while (j < s->n && s->at[j].lo < hi)
        j++;
    if (i == j)
        return;
    span first = s->at[i], last = s->at[j - 1];
    span keep[2];
    int kept = 0;
    if (first.lo < lo)
        keep[kept++] = (span){first.lo, lo};
    if (last.hi > hi)
        keep[kept++] = (span){hi, last.hi};
    memmove(&s->at[i + kept], &s->at[j], (size_t)(s->n - j) * sizeof(span));
    memcpy(&s->at[i], keep, (size_t)kept * sizeof(span));
    s->n += kept - (j - i);
}

/* s |= runs (sorted, disjoint), in one merge: O(n + count). 0 if memory ran out. */
static int add_all(spans *s, const span *runs, long long count)
{
    if (count <= 8) {
        for (long long k = 0; k < count; k++) {
            if (!reserve(s, 1))
                return 0;
            add(s, runs[k].lo, runs[k].hi);
        }
        return 1;
    }
    span *out = malloc((size_t)(s->n + count) * sizeof(span));
    if (!out || !reserve(s, count)) {
        free(out);
        return 0;
    }
    long long n = 0, a = 0, b = 0;
    while (a < s->n || b < count) {
        span next = (b >= count || (a < s->n && s->at[a].lo <= runs[b].lo)) ? s->at[a++] : runs[b++];
        if (next.lo >= next.hi)
            continue;
        if (n && out[n - 1].hi >= next.lo) {
            if (next.hi > out[n - 1].hi)
                out[n - 1].hi = next.hi;
        } else {
            out[n++] = next;
        }
    }
    memcpy(s->at, out, (size_t)n * sizeof(span));
    s->n = n;
    free(out);
    return 1;
}

/* The parts of runs not in s, appended to *out (grown with realloc). -1 if memory ran out. */
static long long missing(const spans *s, const span *runs, long long count, span **out)
{
    long long n = 0, cap = 0;
    for (long long r = 0; r < count; r++) {
        long long lo = runs[r].lo, hi = runs[r].hi;
        long long k = first_ending_from(s, lo + 1);
        while (lo < hi) {
            long long gap_end = hi;
            if (k < s->n && s->at[k].lo <= lo) {            /* lo is inside interval k */
                lo = s->at[k].hi;
                k++;
                continue;
            }
            if (k < s->n && s->at[k].lo < hi)
                gap_end = s->at[k].lo;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                span *fresh = realloc(*out, (size_t)cap * sizeof(span));
                if (!fresh)
                    return -1;
                *out = fresh;
            }
            (*out)[n++] = (span){lo, gap_end};
            lo = gap_end;
        }
    }
    return n;
}

/* ---- copies --------------------------------------------------------------------------- */

static int copy_in(const managed *e, long long lo, long long bytes)
{
    if (S.copy_kind == 0) {
        memcpy((void *)(e->device + lo), (const void *)(e->base + lo), (size_t)bytes);
        return 1;
    }
    return S.cuda_htod(e->device + lo, (const void *)(e->base + lo), (size_t)bytes) == 0;
}

static int copy_out(const managed *e, long long lo, long long bytes)
{
    if (S.copy_kind == 0) {
        memcpy((void *)(e->base + lo), (const void *)(e->device + lo), (size_t)bytes);
        return 1;
    }
    if (S.cuda_set_context)
        S.cuda_set_context(S.cuda_context);        /* a fault on another thread than the runtime's */
    return S.cuda_dtoh((void *)(e->base + lo), e->device + lo, (size_t)bytes) == 0;
}

/* `height` rows of `width` bytes, `pitch` apart, from lo; to the device (in) or back. */
static int copy_rows(const managed *e, int in, long long lo, long long width, long long pitch, long long height)
{
    if (S.copy_kind == 1 && S.cuda_copy_2d) {
        cuda_copy_2d c;
        memset(&c, 0, sizeof c);
        c.WidthInBytes = (size_t)width;
        c.Height = (size_t)height;
        c.srcPitch = c.dstPitch = (size_t)pitch;
        if (in) {
            c.srcMemoryType = CU_MEMORYTYPE_HOST, c.srcHost = (const void *)(e->base + lo);
            c.dstMemoryType = CU_MEMORYTYPE_DEVICE, c.dstDevice = e->device + lo;
        } else {
            c.srcMemoryType = CU_MEMORYTYPE_DEVICE, c.srcDevice = e->device + lo;
            c.dstMemoryType = CU_MEMORYTYPE_HOST, c.dstHost = (void *)(e->base + lo);
        }
        if (S.cuda_copy_2d(&c) == 0)
            return 1;                               /* else row by row (e.g. a pitch beyond the limit) */
    }
    for (long long row = 0; row < height; row++)
        if (!(in ? copy_in(e, lo + row * pitch, width) : copy_out(e, lo + row * pitch, width)))
            return 0;
    return 1;
}

/* Copy `runs` (sorted) in or out, with runs of one length at one pitch as 2-D copies. */
static int copy_runs(const managed *e, int in, const span *runs, long long count, struct __offload_traffic *t)
{
    double started = now();
    long long r = 0;
    int ok = 1;
    while (r < count && ok) {
        long long width = runs[r].hi - runs[r].lo, rows = 1, pitch = 0;
        if (r + 1 < count && runs[r + 1].hi - runs[r + 1].lo == width) {
            pitch = runs[r + 1].lo - runs[r].lo;
            while (r + rows < count && runs[r + rows].hi - runs[r + rows].lo == width &&
                   runs[r + rows].lo - runs[r + rows - 1].lo == pitch)
                rows++;
        }
        ok = rows > 2 ? copy_rows(e, in, runs[r].lo, width, pitch, rows)
                      : (in ? copy_in(e, runs[r].lo, width) : copy_out(e, runs[r].lo, width));
        long long moved = rows > 2 ? rows * width : width;
        rows = rows > 2 ? rows : 1;
        if (in) {
            t->h2d_bytes += (unsigned long long)moved;
            t->h2d_copies++;
        } else {
            t->d2h_bytes += (unsigned long long)moved;
            t->d2h_copies++;
        }
        r += rows;
    }
    if (in)
        t->h2d_seconds += now() - started;
    else
        t->d2h_seconds += now() - started;
    return ok;
}

/* ---- which entries a page touches ------------------------------------------------------ */

/* Position in S.order of the first entry ending after `at`. */
static int first_entry_after(uintptr_t at)
{
    int lo = 0, hi = S.used;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        const managed *e = &S.entries[S.order[mid]];
        if (e->base + (uintptr_t)e->size <= at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The protection [lo, hi) (page-aligned) needs from every entry with bytes there: PROT_NONE
 * when a byte is stale, PROT_READ when one is valid, else read and write. */
static int wanted(uintptr_t lo, uintptr_t hi)
{
    int prot = PROT_READ | PROT_WRITE;
    for (int k = first_entry_after(lo); k < S.used; k++) {
        const managed *e = &S.entries[S.order[k]];
        if (e->base >= hi)
            break;
        if (e->watched != WATCH_PAGES)
            continue;
        long long a = lo > e->base ? (long long)(lo - e->base) : 0;
        long long b = hi - e->base < (uintptr_t)e->size ? (long long)(hi - e->base) : e->size;
        if (overlaps(&e->stale, a, b))
            return PROT_NONE;
        if (overlaps(&e->valid, a, b))
            prot = PROT_READ;
    }
    return prot;
}

/* Give the pages of bytes [lo, hi) of e the protection the sets need, in a few calls
 * whatever the page count (each step walks intervals, not pages): all read-only, then
 * read-write where a page lies wholly between valid bytes, then none where a page holds a
 * stale byte; the two edge pages, which other data may share, as every entry on them needs.
 * A page may end up more protected than needed (one wholly gap but for bytes outside
 * [lo, hi)): the fault handler then settles it, as it overlaps e; never less. */
static void reprotect(const managed *e, long long lo, long long hi)
{
    if (e->watched != WATCH_PAGES || lo >= hi)
        return;
    uintptr_t first = page_down(e->base + (uintptr_t)lo), end = page_up(e->base + (uintptr_t)hi);
    mprotect((void *)first, end - first, PROT_READ);
    long long from = lo;
    for (long long i = first_ending_from(&e->valid, lo + 1);; i++) {
        int last = i >= e->valid.n || e->valid.at[i].lo >= hi;
        long long to = last ? hi : e->valid.at[i].lo;
        uintptr_t p0 = page_up(e->base + (uintptr_t)from), p1 = page_down(e->base + (uintptr_t)to);
        if (to > from && p0 < p1)
            mprotect((void *)p0, p1 - p0, PROT_READ | PROT_WRITE);
        if (last)
            break;
        from = e->valid.at[i].hi > from ? e->valid.at[i].hi : from;
    }
    for (long long i = first_ending_from(&e->stale, lo + 1); i < e->stale.n && e->stale.at[i].lo < hi;) {
        uintptr_t p0 = page_down(e->base + (uintptr_t)(e->stale.at[i].lo > lo ? e->stale.at[i].lo : lo));
        uintptr_t p1 = page_up(e->base + (uintptr_t)(e->stale.at[i].hi < hi ? e->stale.at[i].hi : hi));
        for (i++; i < e->stale.n && e->stale.at[i].lo < hi && page_down(e->base + (uintptr_t)e->stale.at[i].lo) <= p1; i++)
            p1 = page_up(e->base + (uintptr_t)(e->stale.at[i].hi < hi ? e->stale.at[i].hi : hi));
        mprotect((void *)p0, p1 - p0, PROT_NONE);
    }
    mprotect((void *)first, S.page, wanted(first, first + S.page));
    if (end - S.page > first)
        mprotect((void *)(end - S.page), S.page, wanted(end - S.page, end));
}

/* Join stale intervals of e across gaps the device holds validly, within [lo, hi): a
 * device-to-host copy may include such bytes, and fewer intervals make cheaper calls. */
static void coalesce_stale(managed *e, long long lo, long long hi)
{
    long long k = first_ending_from(&e->stale, lo);
    while (k + 1 < e->stale.n && e->stale.at[k].hi < hi) {
        if (covers(&e->valid, e->stale.at[k].hi, e->stale.at[k + 1].lo)) {
            e->stale.at[k].hi = e->stale.at[k + 1].hi;
            memmove(&e->stale.at[k + 1], &e->stale.at[k + 2], (size_t)(e->stale.n - k - 2) * sizeof(span));
            e->stale.n--;
        } else {
            k++;
        }
    }
}

/* After the bytes of `runs` (sorted) became stale: every page they touch is PROT_NONE, in one
 * call per stretch of touching pages. */
static void protect_stale(const managed *e, const span *runs, long long count)
{
    if (e->watched != WATCH_PAGES)
        return;
    for (long long k = 0; k < count;) {
        uintptr_t lo = page_down(e->base + (uintptr_t)runs[k].lo), hi = page_up(e->base + (uintptr_t)runs[k].hi);
        for (k++; k < count && page_down(e->base + (uintptr_t)runs[k].lo) <= hi; k++)
            hi = page_up(e->base + (uintptr_t)runs[k].hi);
        mprotect((void *)lo, hi - lo, PROT_NONE);
    }
}

/* ---- settling host pages: what faults and host I/O need ------------------------------- */

static void fatal(const char *what)
{
    static const char prefix[] = "offload runtime: ";
    ssize_t ignored = write(2, prefix, sizeof prefix - 1);
    ignored = write(2, what, strlen(what));
    ignored = write(2, "\n", 1);
    (void)ignored;
    _exit(OFFLOAD_EXIT_RUNTIME);
}

/* Copy the stale bytes of every entry in pages [lo, hi) back, and if `writing` drop the
 * device's claim to those bytes; leave the pages as the sets then need. May run in signal
 * context: system calls only (reserve grows the lists with mremap). */
static void settle(uintptr_t lo, uintptr_t hi, int writing)
{
    mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE);
    for (int k = first_entry_after(lo); k < S.used; k++) {
        managed *e = &S.entries[S.order[k]];
        if (e->base >= hi)
            break;
        if (e->watched != WATCH_PAGES)
            continue;
        long long a = lo > e->base ? (long long)(lo - e->base) : 0;
        long long b = hi - e->base < (uintptr_t)e->size ? (long long)(hi - e->base) : e->size;
        double started = now();
        for (long long i = first_ending_from(&e->stale, a + 1); i < e->stale.n && e->stale.at[i].lo < b; i++) {
            long long from = e->stale.at[i].lo > a ? e->stale.at[i].lo : a;
            long long to = e->stale.at[i].hi < b ? e->stale.at[i].hi : b;
            if (!copy_out(e, from, to - from))
                fatal("a copy from the device failed while host code touched device data; the newer data are lost");
            e->stats.copied_back += (unsigned long long)(to - from);
            e->stats.copies++;
        }
        e->stats.copy_seconds += now() - started;
        if (!reserve(&e->stale, 1) || !reserve(&e->valid, 1))
            fatal("no memory left for the runtime's residency intervals");
        sub(&e->stale, a, b);
        if (writing)
            sub(&e->valid, a, b);
    }
    for (int k = first_entry_after(lo); k < S.used; k++) {    /* no stale byte is left in [lo, hi) */
        const managed *e = &S.entries[S.order[k]];
        if (e->base >= hi)
            break;
        long long a = lo > e->base ? (long long)(lo - e->base) : 0;
        long long b = hi - e->base < (uintptr_t)e->size ? (long long)(hi - e->base) : e->size;
        if (!writing)
            reprotect(e, a, b);
    }
}

/* The watched entry holding `at`, else one with bytes on its page, else NULL. */
static managed *watched_at(uintptr_t at)
{
    managed *found = NULL;
    uintptr_t page = page_down(at);
    for (int k = first_entry_after(page); k < S.used; k++) {
        managed *e = &S.entries[S.order[k]];
        if (e->base >= page + S.page)
            break;
        if (e->watched != WATCH_PAGES)
            continue;
        if (e->base <= at && at < e->base + (uintptr_t)e->size)
            return e;
        found = found ? found : e;
    }
    return found;
}

static void on_fault(int sig, siginfo_t *info, void *context)
{
    double started = now();
    uintptr_t at = (uintptr_t)info->si_addr, page = page_down(at);
    int writing = 0;
#if defined(__x86_64__)
    writing = (((ucontext_t *)context)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
    (void)context;
#endif
    lock();
    managed *e = watched_at(at);
    if (!e) {                                       /* not a page of ours: the fault is real */
        unlock();
        sigaction(sig, &S.previous, NULL);
        return;
    }
    writing = writing || wanted(page, page + S.page) == PROT_READ;   /* only a write faults there */
    /* Sequential: the page after the last window, or after a stretch since then that holds
     * nothing of the device's (the host went through it without faulting). */
    long long gap_lo = (long long)(e->next_fault - e->base), gap_hi = (long long)(page - e->base);
    int sequential = e->next_fault && page >= e->next_fault &&
                     (page == e->next_fault || (gap_lo >= 0 && !overlaps(&e->valid, gap_lo, gap_hi)));
    e->window = sequential && e->window * 2 <= MAX_WINDOW ? e->window * 2 : sequential ? e->window : S.page;
    e->sweep_writes = (sequential && e->sweep_writes) || writing;
    e->jumps += !sequential;
    uintptr_t end = page + e->window, stop = page_up(e->base + (uintptr_t)e->size);
    end = end < stop && end > page ? end : stop > page ? stop : page + S.page;
    e->next_fault = end;
    e->stats.faults++;
    settle(page, end, e->sweep_writes);
    e->stats.fault_seconds += now() - started;
    unlock();
}

static int install(void)
{
    if (S.installed)
        return 1;
    S.page = (uintptr_t)sysconf(_SC_PAGESIZE);
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_fault;
    act.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&act.sa_mask);
    if (sigaction(SIGSEGV, &act, &S.previous))
        return 0;
    S.installed = 1;
    return 1;
}

/* ---- the runtime's side ------------------------------------------------------------------ */

int __offload_residency_copy_kind(int kind)
{
    if (kind == 1) {
        void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (!cuda)
            cuda = dlopen("libcuda.so.1", RTLD_NOW);
        if (!cuda)
            return 0;
        S.cuda_htod = (cu_htod_fn)dlsym(cuda, "cuMemcpyHtoD_v2");
        S.cuda_dtoh = (cu_dtoh_fn)dlsym(cuda, "cuMemcpyDtoH_v2");
        S.cuda_copy_2d = (int (*)(const cuda_copy_2d *))dlsym(cuda, "cuMemcpy2D_v2");
        S.cuda_register = (int (*)(void *, size_t, unsigned))dlsym(cuda, "cuMemHostRegister_v2");
        S.cuda_unregister = (int (*)(void *))dlsym(cuda, "cuMemHostUnregister");
        S.cuda_set_context = (int (*)(void *))dlsym(cuda, "cuCtxSetCurrent");
        int (*get_context)(void **) = (int (*)(void **))dlsym(cuda, "cuCtxGetCurrent");
        if (!S.cuda_htod || !S.cuda_dtoh || !get_context || get_context(&S.cuda_context))
            return 0;
    }
    S.copy_kind = kind;
    return 1;
}

static managed *entry(int index)
{
    return index >= 0 && index < MAX_MANAGED && S.entries[index].base ? &S.entries[index] : NULL;
}

int __offload_residency_manage(void *base, long long size, unsigned long long device, int watch, int mapped)
{
    if (!install() || size <= 0)
        return -1;
    lock();
    int found = -1;
    for (int k = 0; k < MAX_MANAGED && found < 0; k++)
        if (!S.entries[k].base)
            found = k;
    if (found >= 0) {
        managed *e = &S.entries[found];
        memset(e, 0, sizeof *e);
        *e = (managed){.base = (uintptr_t)base, .size = size, .device = (uintptr_t)device,
                       .watched = watch ? WATCH_PAGES : WATCH_NONE, .eager = watch ? EAGER_NO : EAGER_FORGET};
        if (!reserve(&e->valid, 1) || !reserve(&e->stale, 1)) {
            forget(&e->valid);
            forget(&e->stale);
            e->base = 0;
            found = -1;
        } else {
            int k = first_entry_after((uintptr_t)base);
            memmove(&S.order[k + 1], &S.order[k], (size_t)(S.used - k) * sizeof(int));
            S.order[k] = found;
            S.used++;
            /* Pinned once: copies of a mapped block then run at the link's full rate. */
            if (S.copy_kind == 1 && mapped && S.cuda_register &&
                S.cuda_register(base, page_up((uintptr_t)size), 0) == 0)
                e->pinned = 1;
        }
    }
    unlock();
    return found;
}

/* Before a launch: make the device hold every byte of `runs` ([lo, hi) pairs from the
 * allocation's base, sorted and disjoint; count < 0: all of it). 0 if a copy failed. */
int __offload_residency_need(int index, const long long *pairs, long long count, struct __offload_traffic *t)
{
    managed *e = entry(index);
    if (!e)
        return 0;
    span whole = {0, e->size};
    const span *runs = count < 0 ? &whole : (const span *)pairs;
    count = count < 0 ? 1 : count;
    if (!count || covers(&e->valid, runs[0].lo, runs[count - 1].hi))
        return 1;                                   /* the steady state: nothing is missing */
    lock();
    span *gaps = NULL;
    long long n = missing(&e->valid, runs, count, &gaps), merged = 0;
    for (long long k = 0; k < n; k++) {             /* close small gaps with no stale byte: fewer copies */
        long long gap = merged ? gaps[k].lo - gaps[merged - 1].hi : 0;
        if (merged && gap <= MERGE_GAP &&
            gap * MERGE_SHARE <= (gaps[merged - 1].hi - gaps[merged - 1].lo) + (gaps[k].hi - gaps[k].lo) &&
            !overlaps(&e->stale, gaps[merged - 1].hi, gaps[k].lo))
            gaps[merged - 1].hi = gaps[k].hi;
        else
            gaps[merged++] = gaps[k];
    }
    /* The copies read the host's pages; those holding a stale byte are PROT_NONE: all are
     * readable during the copies, then get what the sets need. */
    long long lo = merged ? gaps[0].lo : 0, hi = merged ? gaps[merged - 1].hi : 0;
    if (merged && e->watched == WATCH_PAGES)
        mprotect((void *)page_down(e->base + (uintptr_t)lo),
                 page_up(e->base + (uintptr_t)hi) - page_down(e->base + (uintptr_t)lo), PROT_READ);
    int ok = n >= 0 && copy_runs(e, 1, gaps, merged, t) && add_all(&e->valid, gaps, merged);
    if (ok) {
        coalesce_stale(e, lo, hi);
        reprotect(e, lo, hi);
    }
    free(gaps);
    unlock();
    return ok;
}

/* Copy every stale byte back now, then keep the device copy (EAGER_COPY) or forget it. */
static int copy_back_all(managed *e, int forget, struct __offload_traffic *t)
{
    int ok = 1;
    if (e->stale.n) {
        if (e->watched == WATCH_PAGES)
            mprotect((void *)page_down(e->base + (uintptr_t)e->stale.at[0].lo),
                     page_up(e->base + (uintptr_t)e->stale.at[e->stale.n - 1].hi) -
                         page_down(e->base + (uintptr_t)e->stale.at[0].lo), PROT_READ | PROT_WRITE);
        ok = copy_runs(e, 0, e->stale.at, e->stale.n, t);
        e->stale.n = 0;
    }
    if (forget)
        e->valid.n = 0;
    reprotect(e, 0, e->size);
    return ok;
}

static int by_start(const void *a, const void *b)
{
    long long x = ((const span *)a)->lo, y = ((const span *)b)->lo;
    return (x > y) - (x < y);
}

/* Append [lo, hi) to a list grown with realloc; 0 if memory ran out. */
static int append(span **list, long long *n, long long lo, long long hi)
{
    if (*n == 0 || (*n >= 16 && !(*n & (*n - 1)))) {   /* full: the lists grow 16, 32, 64, ... */
        span *fresh = realloc(*list, (size_t)(*n ? *n * 2 : 16) * sizeof(span));
        if (!fresh)
            return 0;
        *list = fresh;
    }
    (*list)[(*n)++] = (span){lo, hi};
    return 1;
}

/* After a launch: the device may have changed every byte of `runs` (as for need). 0 if a
 * copy failed. */
int __offload_residency_wrote(int index, const long long *pairs, long long count, struct __offload_traffic *t)
{
    managed *e = entry(index);
    if (!e)
        return 0;
    span whole = {0, e->size};
    const span *runs = count < 0 ? &whole : (const span *)pairs;
    count = count < 0 ? 1 : count;
    if (!count)
        return 1;
    lock();
    long long lo = runs[0].lo, hi = runs[count - 1].hi;
    span hull = {lo, hi}, *fresh = NULL;              /* fresh: what was not stale before */
    int every_gap_valid = covers(&e->valid, lo, hi);
    long long n = every_gap_valid ? missing(&e->stale, &hull, 1, &fresh) : missing(&e->stale, runs, count, &fresh);
    int ok = n >= 0;
    if (ok && every_gap_valid) {                    /* the steady state: the hull goes stale */
        ok = reserve(&e->stale, 1);
        if (ok)
            add(&e->stale, lo, hi);
    } else if (ok && n) {                           /* else every byte written was stale already */
        ok = add_all(&e->valid, runs, count) && add_all(&e->stale, runs, count);
        long long k = first_ending_from(&e->stale, lo);
        while (ok && k + 1 < e->stale.n && e->stale.at[k].hi < hi) {
            long long gap_lo = e->stale.at[k].hi, gap_hi = e->stale.at[k + 1].lo;
            if (covers(&e->valid, gap_lo, gap_hi)) {     /* a gap the device holds validly joins */
                ok = append(&fresh, &n, gap_lo, gap_hi);
                e->stale.at[k].hi = e->stale.at[k + 1].hi;
                memmove(&e->stale.at[k + 1], &e->stale.at[k + 2], (size_t)(e->stale.n - k - 2) * sizeof(span));
                e->stale.n--;
            } else {
                k++;
            }
        }
    }
    if (e->watched == WATCH_PAGES && e->jumps >= EAGER_JUMPS)   /* host code faulted all over it */
        e->eager = e->eager == EAGER_NO ? EAGER_COPY : EAGER_FORGET;
    e->jumps = 0;
    e->next_fault = 0;
    if (ok && e->eager != EAGER_NO)
        ok = copy_back_all(e, e->eager == EAGER_FORGET, t);
    else if (ok) {
        qsort(fresh, (size_t)n, sizeof(span), by_start);      /* closed gaps came last */
        protect_stale(e, fresh, n);
    }
    free(fresh);
    unlock();
    return ok;
}

/* After a launch that only read the allocation: a device copy that is not watched (or no
 * longer, EAGER_FORGET) is forgotten, as host code may change the host's unseen. */
void __offload_residency_read_done(int index)
{
    managed *e = entry(index);
    if (e && e->eager == EAGER_FORGET && e->valid.n) {
        lock();
        e->valid.n = 0;
        reprotect(e, 0, e->size);
        unlock();
    }
}

/* Stop managing the allocation: with keeps_data its stale bytes come back first (realloc);
 * every page becomes read-write again. 0 if a copy failed. */
int __offload_residency_release(int index, int keeps_data, struct __offload_traffic *t)
{
    managed *e = entry(index);
    if (!e)
        return 1;
    lock();
    if (!keeps_data)
        e->stale.n = 0;
    int ok = copy_back_all(e, 1, t);                /* all pages read-write but shared edges */
    if (e->pinned && S.cuda_unregister)
        S.cuda_unregister((void *)e->base);
    int k = 0;
    while (S.order[k] != index)
        k++;
    memmove(&S.order[k], &S.order[k + 1], (size_t)(S.used - k - 1) * sizeof(int));
    S.used--;
    forget(&e->valid);
    forget(&e->stale);
    e->base = 0;
    unlock();
    return ok;
}

void __offload_residency_stats(int index, struct __offload_fault_stats *out)
{
    managed *e = entry(index);
    if (e)
        *out = e->stats;
}

/* How many intervals the sets hold (what the per-call work is proportional to), and whether
 * the allocation copies written data back at once: 0 no, 1 keeping the device copy, 2 not. */
int __offload_residency_shape(int index, long long *valid, long long *stale)
{
    managed *e = entry(index);
    if (!e)
        return -1;
    *valid = e->valid.n;
    *stale = e->stale.n;
    return e->eager;
}

/* Host code is about to read (writing = 0) or write [p, p + bytes) without faulting, as a
 * system call does: settle every page of it that needs it. */
void __offload_host_access(const void *p, size_t bytes, int writing)
{
    if (!S.used || !bytes)
        return;
    lock();
    uintptr_t lo = page_down((uintptr_t)p), hi = page_up((uintptr_t)p + bytes);
    int prot = wanted(lo, hi);
    if (prot == PROT_NONE || (writing && prot == PROT_READ))
        settle(lo, hi, writing);
    unlock();
}

/* ---- I/O that reaches user buffers from the kernel ------------------------------------ */

size_t __offload_fread(void *p, size_t size, size_t count, FILE *f)
{
    __offload_host_access(p, size * count, 1);
    return fread(p, size, count, f);
}

size_t __offload_fwrite(const void *p, size_t size, size_t count, FILE *f)
{
    __offload_host_access(p, size * count, 0);
    return fwrite(p, size, count, f);
}

ssize_t __offload_read(int fd, void *p, size_t bytes)
{
    __offload_host_access(p, bytes, 1);
    return read(fd, p, bytes);
}

ssize_t __offload_write(int fd, const void *p, size_t bytes)
{
    __offload_host_access(p, bytes, 0);
    return write(fd, p, bytes);
}
