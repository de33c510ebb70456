/* Included before everything else when offload preprocesses a program for analysis.
 * It defines GNU C extensions away so that pycparser (plain C99/C11) can parse the
 * real glibc headers. It is used for analysis only, never for the build that runs.
 * Inline assembly is handled after preprocessing (preprocess.py); va_arg becomes a call to
 * an unknown function so that a loop using it is never taken as free of side effects. */
#ifndef OFFLOAD_GNU_COMPAT_H
#define OFFLOAD_GNU_COMPAT_H
#define __attribute__(x)
#define __extension__
#define __restrict restrict
#define __restrict__ restrict
#define __inline inline
#define __inline__ inline
#define __volatile__ volatile
#define __const const
#define __signed__ signed
#define __builtin_va_list int
#define __typeof__(x) int
#define __builtin_offsetof(t, m) 0
#define __builtin_va_arg(v, t) (*(t *)__offload_va_arg(v))
#define __builtin_types_compatible_p(a, b) 0
#define __auto_type int
#define __int128 long long
#define _Float128 long double
#define _Float64x long double
#define _Float32x double
#define _Float64 double
#define _Float32 float
#define _Float16 float
#define __float128 long double
#define _Noreturn
#define __thread
#define _Thread_local
#define _Alignas(x)
#endif
