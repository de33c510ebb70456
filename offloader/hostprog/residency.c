/* Device copies that stay resident while host code runs: page protection tells the runtime
 * when host code touches an array the device holds (see runtime.h, "Managed allocations").
 *
 * Per managed allocation the runtime (offloader/runtime/residency.py) keeps two flags per
 * unit of `unit` bytes, in memory it owns and shares with this file:
 *   valid  the device copy holds the current value;
 *   stale  the device copy is newer than the host's (stale implies valid).
 * Page protection follows from the flags of every allocation on a page:
 *   some unit stale                -> PROT_NONE  (any access must first copy it back)
 *   else some unit valid           -> PROT_READ  (a write must first invalidate the device copy)
 *   else                           -> read and write, no fault
 * The fault handler settles the page and returns, so the access that faulted runs again and
 * succeeds: a read fault copies the page's stale units back and leaves the page read-only; a
 * write fault on a read-only page clears its valid flags. System calls do not fault on
 * protected pages (they return EFAULT), so the I/O functions the user's code calls are
 * redirected (alloc_track.h) to versions that settle their buffers first.
 *
 * Everything the handler reads lives in one page-aligned state block that no user array
 * shares a page with, so the handler itself never faults on a page it protects. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime.h"

#define MAX_MANAGED 512
#define STATE_PAGES 16

typedef struct {
    uintptr_t base;                 /* 0: a free entry */
    size_t size;
    uintptr_t device;               /* where byte 0 lives in the device copy */
    size_t unit;
    unsigned char *valid, *stale;
    unsigned long long copied_back; /* bytes copied back on host access */
} managed;

typedef int (*cuda_dtoh_fn)(void *dst, unsigned long long src, size_t bytes);

struct state {
    managed entries[MAX_MANAGED];
    int used;                       /* entries in use are below this index */
    int copy_kind;                  /* 0: the device copy is host memory; 1: CUDA */
    cuda_dtoh_fn cuda_dtoh;
    int (*cuda_set_context)(void *);
    void *cuda_context;
    uintptr_t page;
    int installed;
    int lock;
    struct sigaction previous;
};

/* Page-aligned and a whole number of pages, so no other variable shares its pages. */
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

static int copy_back(void *dst, const managed *e, size_t offset, size_t bytes)
{
    if (S.copy_kind == 0) {
        memcpy(dst, (const void *)(e->device + offset), bytes);
        return 1;
    }
    if (S.cuda_set_context)
        S.cuda_set_context(S.cuda_context);        /* a fault on another thread than the runtime's */
    return S.cuda_dtoh(dst, (unsigned long long)(e->device + offset), bytes) == 0;
}

/* The units of entry e that overlap [lo, hi). */
static int unit_span(const managed *e, uintptr_t lo, uintptr_t hi, size_t *first, size_t *last)
{
    uintptr_t start = lo > e->base ? lo : e->base, end = hi < e->base + e->size ? hi : e->base + e->size;
    if (start >= end)
        return 0;
    *first = (start - e->base) / e->unit;
    *last = (end - e->base + e->unit - 1) / e->unit;
    return 1;
}

/* What protection the page at `page` needs: PROT_NONE, PROT_READ, or -1 for none at all. */
static int needed(uintptr_t page)
{
    int result = -1;
    for (int k = 0; k < S.used; k++) {
        const managed *e = &S.entries[k];
        size_t first, last;
        if (!e->base || !unit_span(e, page, page + S.page, &first, &last))
            continue;
        if (memchr(e->stale + first, 1, last - first))
            return PROT_NONE;
        if (memchr(e->valid + first, 1, last - first))
            result = PROT_READ;
    }
    return result;
}

static int any_entry_on(uintptr_t page)
{
    for (int k = 0; k < S.used; k++) {
        size_t first, last;
        if (S.entries[k].base && unit_span(&S.entries[k], page, page + S.page, &first, &last))
            return 1;
    }
    return 0;
}

/* Make the host's view of one page current (copy its stale units back), and if `writing`,
 * drop the device's claim to it. A unit that straddles the page takes its neighbour page
 * along. Returns 0 if the page holds no managed data. */
static int settle_page(uintptr_t page, int writing)
{
    if (!any_entry_on(page))
        return 0;
    uintptr_t lo = page, hi = page + S.page;
    for (int k = 0; k < S.used; k++) {
        const managed *e = &S.entries[k];
        size_t first, last;
        if (!e->base || !unit_span(e, page, page + S.page, &first, &last))
            continue;
        uintptr_t from = e->base + first * e->unit, to = e->base + last * e->unit;
        lo = from < lo ? from & ~(S.page - 1) : lo;
        hi = to > hi ? (to + S.page - 1) & ~(S.page - 1) : hi;
    }
    mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE);
    for (int k = 0; k < S.used; k++) {
        managed *e = &S.entries[k];
        size_t first, last;
        if (!e->base || !unit_span(e, page, page + S.page, &first, &last))
            continue;
        for (size_t u = first; u < last;) {
            if (!e->stale[u]) {
                u++;
                continue;
            }
            size_t end = u;
            while (end < last && e->stale[end])
                end++;
            size_t offset = u * e->unit, bytes = (end - u) * e->unit;
            if (offset + bytes > e->size)
                bytes = e->size - offset;
            copy_back((void *)(e->base + offset), e, offset, bytes);
            e->copied_back += bytes;
            memset(e->stale + u, 0, end - u);
            u = end;
        }
        if (writing)
            memset(e->valid + first, 0, last - first);
    }
    for (uintptr_t at = lo; at < hi; at += S.page) {
        int prot = needed(at);
        if (prot != -1)
            mprotect((void *)at, S.page, prot);
    }
    return 1;
}

static void on_fault(int sig, siginfo_t *info, void *context)
{
    (void)context;
    uintptr_t page = (uintptr_t)info->si_addr & ~(S.page - 1);
    lock();
    int prot = any_entry_on(page) ? needed(page) : -1;
    int ours = prot != -1 && settle_page(page, prot == PROT_READ);   /* read-only: it was a write */
    unlock();
    if (!ours)                     /* not a page of ours: the fault is real; the old handler takes it */
        sigaction(sig, &S.previous, NULL);
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

/* ---- the runtime's side -------------------------------------------------------------- */

int __offload_residency_copy_kind(int kind)
{
    if (kind == 1) {
        void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (!cuda)
            cuda = dlopen("libcuda.so.1", RTLD_NOW);
        if (!cuda)
            return 0;
        S.cuda_dtoh = (cuda_dtoh_fn)dlsym(cuda, "cuMemcpyDtoH_v2");
        S.cuda_set_context = (int (*)(void *))dlsym(cuda, "cuCtxSetCurrent");
        int (*get_context)(void **) = (int (*)(void **))dlsym(cuda, "cuCtxGetCurrent");
        if (!S.cuda_dtoh || !get_context || get_context(&S.cuda_context))
            return 0;
    }
    S.copy_kind = kind;
    return 1;
}

int __offload_residency_manage(void *base, long long size, unsigned long long device, long long unit,
                               unsigned char *valid, unsigned char *stale)
{
    if (!install())
        return -1;
    lock();
    int found = -1, free_slot = -1;
    for (int k = 0; k < S.used; k++) {
        if (S.entries[k].base == (uintptr_t)base)
            found = k;
        else if (!S.entries[k].base && free_slot < 0)
            free_slot = k;
    }
    if (found < 0)
        found = free_slot >= 0 ? free_slot : (S.used < MAX_MANAGED ? S.used++ : -1);
    if (found >= 0) {
        managed *e = &S.entries[found];
        unsigned long long copied = e->base == (uintptr_t)base ? e->copied_back : 0;
        *e = (managed){(uintptr_t)base, (size_t)size, (uintptr_t)device, (size_t)unit, valid, stale, copied};
    }
    unlock();
    return found;
}

/* Set the protection of every page of entry `index` from the flags (after the runtime
 * changed them). Returns 0 if the kernel refused (too many mappings): the caller then stops
 * managing the allocation. */
int __offload_residency_protect(int index)
{
    lock();
    managed *e = &S.entries[index];
    uintptr_t first = e->base & ~(S.page - 1), end = e->base + e->size;
    int ok = 1;
    uintptr_t run = first;
    int run_prot = -2;
    for (uintptr_t page = first; page < end; page += S.page) {
        int prot = needed(page);
        prot = prot == -1 ? PROT_READ | PROT_WRITE : prot;
        if (prot != run_prot) {
            if (run_prot != -2 && mprotect((void *)run, page - run, run_prot))
                ok = 0;
            run = page;
            run_prot = prot;
        }
    }
    if (run_prot != -2) {
        uintptr_t stop = (end + S.page - 1) & ~(S.page - 1);
        if (mprotect((void *)run, stop - run, run_prot))
            ok = 0;
    }
    unlock();
    return ok;
}

/* Let the runtime read the host copy of entry `index` (to copy units to the device): its
 * pages become readable until the next __offload_residency_protect. */
void __offload_residency_open(int index)
{
    lock();
    managed *e = &S.entries[index];
    uintptr_t first = e->base & ~(S.page - 1);
    uintptr_t stop = (e->base + e->size + S.page - 1) & ~(S.page - 1);
    mprotect((void *)first, stop - first, PROT_READ);
    unlock();
}

/* Stop managing entry `index`: every page becomes read-write again (stale units are the
 * caller's to copy back first, if it needs them). Returns the bytes copied back on access. */
unsigned long long __offload_residency_release(int index)
{
    lock();
    managed *e = &S.entries[index];
    uintptr_t first = e->base & ~(S.page - 1);
    uintptr_t stop = (e->base + e->size + S.page - 1) & ~(S.page - 1);
    unsigned long long copied = e->copied_back;
    memset(e, 0, sizeof *e);
    for (uintptr_t page = first; page < stop; page += S.page) {
        int prot = needed(page);
        mprotect((void *)page, S.page, prot == -1 ? PROT_READ | PROT_WRITE : prot);
    }
    unlock();
    return copied;
}

unsigned long long __offload_residency_copied_back(int index)
{
    return S.entries[index].copied_back;
}

/* Host code is about to read (writing = 0) or write [p, p + bytes) without faulting, as a
 * system call does: settle every page of it. */
void __offload_host_access(const void *p, size_t bytes, int writing)
{
    if (!S.used || !bytes)
        return;
    lock();
    uintptr_t start = (uintptr_t)p & ~(S.page - 1), end = (uintptr_t)p + bytes;
    for (uintptr_t page = start; page < end; page += S.page)
        if (any_entry_on(page)) {
            int prot = needed(page);
            if (prot == PROT_NONE || (writing && prot == PROT_READ))
                settle_page(page, writing);
        }
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
