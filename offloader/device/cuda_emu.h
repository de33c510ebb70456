// cuda_emu.h: lets the host C++ compiler build CUDA kernel text and run it on the CPU.
//
// offloader/device/emu_compiler.py appends one `__emu_launch_K` wrapper per
// `extern "C" __global__` kernel K to the text, compiles it as
//   g++ -O1 -fPIC -std=c++17 -fvisibility=hidden -fsanitize=thread
//       --param=tsan-instrument-func-entry-exit=0 -include cuda_emu.h -x c++ -c module.cu
// and links the object, without libtsan, into a shared library that Python calls by ctypes.
//
// Why -fsanitize=thread: it makes the compiler call __tsan_readN/__tsan_writeN before every
// memory access of the kernel code.  No TSan runtime is linked; this header defines those
// hooks itself.  They cost one predictable branch, except in the "shuffle" order, where each
// access is a preemption point: the block's threads run as fibers and a seeded random one
// runs next.  A racy read-modify-write or a missing __syncthreads then interleaves
// deterministically for a given seed, as warps do on a GPU.  Everything in this header is
// `no_sanitize_thread`, so its own memory accesses and atomics are not hooks.
//
// Threads of a block run on one OS thread: plain calls in order when the kernel has no
// barrier and the order is not "shuffle", fibers otherwise (x86-64: a 15-instruction stack
// switch; elsewhere or with -DCUDA_EMU_UCONTEXT: ucontext).  Blocks are spread over a pool
// of OS threads.  __shared__ is `static thread_local`: one copy per OS thread, which runs
// one block at a time.  A fault (SIGSEGV/SIGBUS) in kernel code ends the launch with an
// error code instead of the process.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#define __global__
#define __device__
#define __host__
#define __constant__
#define __shared__ static thread_local
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define warpSize 32
#define __EMU_RT __attribute__((no_sanitize_thread))
#define __EMU_INLINE __attribute__((no_sanitize_thread, always_inline)) inline
// What kernel code calls stays out of line: inlined, its accesses would be instrumented too.
#define __EMU_DEVICE __attribute__((no_sanitize_thread, noinline)) inline

struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

namespace __emu {
enum Order { FORWARD = 0, REVERSE = 1, SHUFFLE = 2 };
enum Error { OK = 0, FAULT = 1, NO_RESOURCES = 2, BARRIER_WITHOUT_FIBERS = 3 };
enum State { RUNNABLE, WAITING, DONE };

// Shared with offloader/device/emulated.py (_LaunchConfig): keep the field order.
struct Config {
  unsigned grid[3], block[3];
  int order, workers, barrier;
  unsigned long long seed;
  int error;
  void *fault_address;
  unsigned fault_block[3], fault_thread[3];
};

typedef void (*Body)(void **);

#if defined(__x86_64__) && !defined(CUDA_EMU_UCONTEXT)
struct Context { void *sp; };
extern "C" void __emu_switch(void **save_sp, void *load_sp);
asm(".text\n.hidden __emu_switch\n.globl __emu_switch\n__emu_switch:\n"
    " pushq %rbp\n pushq %rbx\n pushq %r12\n pushq %r13\n pushq %r14\n pushq %r15\n"
    " movq %rsp, (%rdi)\n movq %rsi, %rsp\n"
    " popq %r15\n popq %r14\n popq %r13\n popq %r12\n popq %rbx\n popq %rbp\n ret\n");
__EMU_INLINE void context_start(Context &c, char *stack, size_t size, void (*entry)()) {
  void **top = (void **)(((uintptr_t)(stack + size)) & ~(uintptr_t)15);
  c.sp = top - 8;  // six saved registers, the entry as return address, a fake return address
  for (int i = 0; i < 6; ++i) top[-8 + i] = nullptr;
  top[-2] = (void *)entry;
  top[-1] = nullptr;
}
__EMU_INLINE void context_switch(Context &from, Context &to) { __emu_switch(&from.sp, to.sp); }
#else
}  // namespace __emu
#include <ucontext.h>
namespace __emu {
struct Context { ucontext_t uc; };
__EMU_RT inline void context_start(Context &c, char *stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
__EMU_INLINE void context_switch(Context &from, Context &to) { swapcontext(&from.uc, &to.uc); }
#endif

const size_t STACK = 128 * 1024, GUARD = 4096, ALTSTACK = 64 * 1024;

struct Fiber { Context ctx; uint3 tid; State state; };

struct Worker {
  Config *cfg;
  Body body;
  void **args;
  unsigned nthreads;
  unsigned long long rng;
  Context scheduler;
  Fiber *fibers, *current;
  unsigned *runq;
  char *stacks;
  sigjmp_buf fault_jump;
  volatile bool in_kernel;
  pthread_t thread;
};

thread_local Worker *self;
bool preempt;                      // set for the whole launch: order == SHUFFLE
unsigned long long next_block, nblocks, perm_a, perm_c;
struct sigaction previous[2];

__EMU_INLINE unsigned long long splitmix(unsigned long long &s) {
  unsigned long long z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__EMU_INLINE uint3 unflatten(unsigned long long i, const unsigned d[3]) {
  return uint3{unsigned(i % d[0]), unsigned(i / d[0] % d[1]), unsigned(i / d[0] / d[1])};
}

__EMU_RT inline void yield(State next) {
  Worker *w = self;
  w->current->state = next;
  context_switch(w->current->ctx, w->scheduler);
}

__EMU_RT inline void fiber_main() {
  Worker *w = self;
  w->body(w->args);
  yield(DONE);
}

__EMU_RT inline void resume(Worker *w, unsigned i) {
  w->current = &w->fibers[i];
  threadIdx = w->current->tid;
  context_switch(w->scheduler, w->current->ctx);
  w->current = nullptr;
}

// Runs one block's threads as fibers: in order, each up to its next barrier (forward,
// reverse), or in shuffle order, a random runnable fiber at each preemption point.
__EMU_RT inline void run_block_fibers(Worker *w) {
  unsigned n = w->nthreads, r = 0;
  int order = w->cfg->order;
  for (unsigned i = 0; i < n; ++i) {
    w->fibers[i].tid = unflatten(i, w->cfg->block);
    w->fibers[i].state = WAITING;
    context_start(w->fibers[i].ctx, w->stacks + i * (STACK + GUARD) + GUARD, STACK, fiber_main);
  }
  for (;;) {
    r = 0;
    for (unsigned k = 0; k < n; ++k) {
      unsigned i = order == REVERSE ? n - 1 - k : k;
      if (w->fibers[i].state == WAITING) { w->fibers[i].state = RUNNABLE; w->runq[r++] = i; }
    }
    if (r == 0) return;
    if (order == SHUFFLE) {
      while (r) {
        unsigned j = unsigned(splitmix(w->rng) % r), i = w->runq[j];
        resume(w, i);
        if (w->fibers[i].state != RUNNABLE) w->runq[j] = w->runq[--r];
      }
    } else {
      for (unsigned k = 0; k < r; ++k) resume(w, w->runq[k]);
    }
  }
}

__EMU_RT inline void run_blocks(Worker *w) {
  Config *c = w->cfg;
  bool fibers = c->barrier || preempt;
  for (;;) {
    unsigned long long k = __atomic_fetch_add(&next_block, 1, __ATOMIC_RELAXED);
    if (k >= nblocks || __atomic_load_n(&c->error, __ATOMIC_RELAXED)) return;
    unsigned long long b = c->order == FORWARD ? k : c->order == REVERSE ? nblocks - 1 - k
        : (unsigned long long)(((unsigned __int128)perm_a * k + perm_c) % nblocks);
    blockIdx = unflatten(b, c->grid);
    if (fibers) {
      w->rng = c->seed ^ (b * 0xD1B54A32D192ED03ull);
      run_block_fibers(w);
    } else {
      for (unsigned t = 0; t < w->nthreads; ++t) {
        threadIdx = unflatten(c->order == REVERSE ? w->nthreads - 1 - t : t, c->block);
        w->body(w->args);
      }
    }
  }
}

__EMU_RT inline void fail(Worker *w, Error e) {
  int none = OK;
  __atomic_compare_exchange_n(&w->cfg->error, &none, e, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

__EMU_RT inline void on_fault(int sig, siginfo_t *info, void *) {
  Worker *w = self;
  if (w && w->in_kernel) {
    w->in_kernel = false;
    int none = OK;
    if (__atomic_compare_exchange_n(&w->cfg->error, &none, FAULT, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
      w->cfg->fault_address = info->si_addr;
      w->cfg->fault_block[0] = blockIdx.x; w->cfg->fault_block[1] = blockIdx.y; w->cfg->fault_block[2] = blockIdx.z;
      w->cfg->fault_thread[0] = threadIdx.x; w->cfg->fault_thread[1] = threadIdx.y; w->cfg->fault_thread[2] = threadIdx.z;
    }
    siglongjmp(w->fault_jump, 1);
  }
  sigaction(sig, &previous[sig == SIGBUS], nullptr);  // not a kernel's fault: the old handler takes it
}

__EMU_RT inline void *worker_main(void *arg) {
  Worker *w = (Worker *)arg;
  self = w;
  blockDim = dim3(w->cfg->block[0], w->cfg->block[1], w->cfg->block[2]);
  gridDim = dim3(w->cfg->grid[0], w->cfg->grid[1], w->cfg->grid[2]);
  stack_t alt = {malloc(ALTSTACK), 0, ALTSTACK}, old_alt;
  sigaltstack(&alt, &old_alt);
  if (sigsetjmp(w->fault_jump, 1) == 0) {
    w->in_kernel = true;
    run_blocks(w);
    w->in_kernel = false;
  }
  sigaltstack(&old_alt, nullptr);
  free(alt.ss_sp);
  self = nullptr;
  return nullptr;
}

// Fiber stacks (one mapping per worker, a PROT_NONE guard page under each stack) and fiber
// tables, kept from one launch to the next: one launch runs at a time in a process
// (emulated.py's lock), and mapping, guarding and unmapping them per launch costs more than
// small kernels and flushes the TLBs of every thread of the process.
struct Pool { char *stacks; size_t threads; Fiber *fibers; unsigned *runq; };
const unsigned POOLS = 256;        // workers per launch, at most
Pool pools[POOLS];

__EMU_RT inline bool make_stacks(Worker *w, unsigned index) {
  Pool &p = pools[index];
  if (p.threads < w->nthreads) {
    if (p.stacks) munmap(p.stacks, p.threads * (STACK + GUARD));
    free(p.fibers);
    free(p.runq);
    p = Pool{};
    void *m = mmap(nullptr, w->nthreads * (STACK + GUARD), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return false;
    for (unsigned i = 0; i < w->nthreads; ++i) mprotect((char *)m + i * (STACK + GUARD), GUARD, PROT_NONE);
    p.fibers = (Fiber *)calloc(w->nthreads, sizeof(Fiber));
    p.runq = (unsigned *)calloc(w->nthreads, sizeof(unsigned));
    if (!p.fibers || !p.runq) {
      munmap(m, w->nthreads * (STACK + GUARD));
      free(p.fibers);
      free(p.runq);
      p = Pool{};
      return false;
    }
    p.stacks = (char *)m;
    p.threads = w->nthreads;
  }
  w->stacks = p.stacks;
  w->fibers = p.fibers;
  w->runq = p.runq;
  return true;
}

__EMU_RT inline unsigned long long gcd(unsigned long long a, unsigned long long b) {
  while (b) { unsigned long long t = a % b; a = b; b = t; }
  return a;
}

// One launch: blocks go to `workers` OS threads (the caller's thread is one of them).
__EMU_RT inline int run(Config *c, Body body, void **args) {
  nblocks = (unsigned long long)c->grid[0] * c->grid[1] * c->grid[2];
  next_block = 0;
  preempt = c->order == SHUFFLE;
  unsigned long long s = c->seed;
  perm_c = splitmix(s) % nblocks;
  do perm_a = splitmix(s) % nblocks | 1; while (gcd(perm_a, nblocks) != 1);
  unsigned nw = (unsigned)(c->workers < 1 ? 1 : (unsigned long long)c->workers < nblocks ? c->workers : nblocks);
  nw = nw < POOLS ? nw : POOLS;
  Worker *ws = (Worker *)calloc(nw, sizeof(Worker));
  if (!ws) return c->error = NO_RESOURCES;
  struct sigaction act = {};
  act.sa_sigaction = on_fault;
  act.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGSEGV, &act, &previous[0]);
  sigaction(SIGBUS, &act, &previous[1]);
  unsigned started = 0;
  for (unsigned i = 0; i < nw; ++i) {
    ws[i].cfg = c; ws[i].body = body; ws[i].args = args;
    ws[i].nthreads = c->block[0] * c->block[1] * c->block[2];
    if ((c->barrier || preempt) && !make_stacks(&ws[i], i)) { fail(&ws[i], NO_RESOURCES); break; }
  }
  for (unsigned i = 1; i < nw && !c->error; ++i, ++started)
    if (pthread_create(&ws[i].thread, nullptr, worker_main, &ws[i]) != 0) break;
  if (!c->error) worker_main(&ws[0]);
  for (unsigned i = 1; i <= started; ++i) pthread_join(ws[i].thread, nullptr);
  sigaction(SIGSEGV, &previous[0], nullptr);
  sigaction(SIGBUS, &previous[1], nullptr);
  preempt = false;
  free(ws);
  return c->error;
}

// Calls kernel `k` with its parameters unpacked from `args` (one pointer per parameter).
template <class... P, size_t... I>
inline void call(void (*k)(P...), void **args, std::index_sequence<I...>) {
  k(*static_cast<std::remove_reference_t<P> *>(args[I])...);
}
template <class... P>
inline void call(void (*k)(P...), void **args) { call(k, args, std::index_sequence_for<P...>{}); }

// One letter per parameter type, to check the signature that Python parsed.
template <class T> constexpr char code() {
  if constexpr (std::is_pointer_v<T>) return 'p';
  else if constexpr (std::is_same_v<T, float>) return 'f';
  else if constexpr (std::is_same_v<T, double>) return 'd';
  else if constexpr (std::is_integral_v<T> && sizeof(T) == 4) return std::is_signed_v<T> ? 'i' : 'I';
  else if constexpr (std::is_integral_v<T> && sizeof(T) == 8) return std::is_signed_v<T> ? 'l' : 'L';
  else return '?';
}
template <class... P> constexpr bool signature_is(void (*)(P...), const char *expected) {
  const char got[] = {code<std::remove_cv_t<P>>()..., 0};
  for (size_t i = 0; i < sizeof(got); ++i) if (got[i] != expected[i]) return false;
  return true;
}

// A preemption point (shuffle order only): instrumented code outside a fiber, such as a
// dim3 constructor in the runtime, does not yield.
__EMU_INLINE void maybe_yield() {
  if (__builtin_expect(preempt, 0) && self && self->current) yield(RUNNABLE);
}
}  // namespace __emu

#define __EMU_HOOK(name) extern "C" __EMU_RT void name(void *) { __emu::maybe_yield(); }
__EMU_HOOK(__tsan_read1) __EMU_HOOK(__tsan_read2) __EMU_HOOK(__tsan_read4)
__EMU_HOOK(__tsan_read8) __EMU_HOOK(__tsan_read16) __EMU_HOOK(__tsan_write1)
__EMU_HOOK(__tsan_write2) __EMU_HOOK(__tsan_write4) __EMU_HOOK(__tsan_write8)
__EMU_HOOK(__tsan_write16) __EMU_HOOK(__tsan_unaligned_read2) __EMU_HOOK(__tsan_unaligned_read4)
__EMU_HOOK(__tsan_unaligned_read8) __EMU_HOOK(__tsan_unaligned_read16)
__EMU_HOOK(__tsan_unaligned_write2) __EMU_HOOK(__tsan_unaligned_write4)
__EMU_HOOK(__tsan_unaligned_write8) __EMU_HOOK(__tsan_unaligned_write16)
extern "C" __EMU_RT void __tsan_read_range(void *, unsigned long) { __emu::maybe_yield(); }
extern "C" __EMU_RT void __tsan_write_range(void *, unsigned long) { __emu::maybe_yield(); }
extern "C" __EMU_RT void __tsan_init() {}

// ---- Device functions ------------------------------------------------------------------
__EMU_DEVICE void __syncthreads() {
  __emu::Worker *w = __emu::self;
  if (w && w->current) __emu::yield(__emu::WAITING);
  else if (w) __emu::fail(w, __emu::BARRIER_WITHOUT_FIBERS);
}
__EMU_DEVICE void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
__EMU_DEVICE void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <class T> __EMU_INLINE T __emu_fetch_add(T *p, T v) {
  __emu::maybe_yield();
  if constexpr (std::is_integral_v<T>) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
  } else {
    T old, sum;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    do sum = old + v; while (!__atomic_compare_exchange(p, &old, &sum, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
  }
}
__EMU_DEVICE int atomicAdd(int *p, int v) { return __emu_fetch_add(p, v); }
__EMU_DEVICE unsigned atomicAdd(unsigned *p, unsigned v) { return __emu_fetch_add(p, v); }
__EMU_DEVICE unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) { return __emu_fetch_add(p, v); }
__EMU_DEVICE float atomicAdd(float *p, float v) { return __emu_fetch_add(p, v); }
__EMU_DEVICE double atomicAdd(double *p, double v) { return __emu_fetch_add(p, v); }
__EMU_DEVICE int atomicSub(int *p, int v) { return __emu_fetch_add(p, -v); }
__EMU_DEVICE unsigned atomicSub(unsigned *p, unsigned v) { return __emu_fetch_add(p, 0u - v); }
template <class T> __EMU_INLINE T __emu_fetch_minmax(T *p, T v, bool is_max) {
  __emu::maybe_yield();
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while ((is_max ? v > old : v < old) &&
         !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
  return old;
}
__EMU_DEVICE int atomicMin(int *p, int v) { return __emu_fetch_minmax(p, v, false); }
__EMU_DEVICE int atomicMax(int *p, int v) { return __emu_fetch_minmax(p, v, true); }
__EMU_DEVICE unsigned atomicMin(unsigned *p, unsigned v) { return __emu_fetch_minmax(p, v, false); }
__EMU_DEVICE unsigned atomicMax(unsigned *p, unsigned v) { return __emu_fetch_minmax(p, v, true); }
template <class T> __EMU_INLINE T __emu_cas(T *p, T expected, T desired) {
  __emu::maybe_yield();
  __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;
}
__EMU_DEVICE int atomicCAS(int *p, int e, int d) { return __emu_cas(p, e, d); }
__EMU_DEVICE unsigned atomicCAS(unsigned *p, unsigned e, unsigned d) { return __emu_cas(p, e, d); }
__EMU_DEVICE unsigned long long atomicCAS(unsigned long long *p, unsigned long long e, unsigned long long d) { return __emu_cas(p, e, d); }
template <class T> __EMU_INLINE T __emu_exchange(T *p, T v) {
  __emu::maybe_yield();
  T old;
  __atomic_exchange(p, &v, &old, __ATOMIC_RELAXED);
  return old;
}
__EMU_DEVICE int atomicExch(int *p, int v) { return __emu_exchange(p, v); }
__EMU_DEVICE unsigned atomicExch(unsigned *p, unsigned v) { return __emu_exchange(p, v); }
__EMU_DEVICE float atomicExch(float *p, float v) { return __emu_exchange(p, v); }

// CUDA math and bit functions that C++ lacks (<cmath> has the rest).
template <class A, class B> __device__ inline std::common_type_t<A, B> min(A a, B b) { return b < a ? b : a; }
template <class A, class B> __device__ inline std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline int __float_as_int(float x) { int i; __builtin_memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; __builtin_memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; __builtin_memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; __builtin_memcpy(&x, &i, 8); return x; }
template <class T> inline T __ldg(const T *p) { return *p; }
