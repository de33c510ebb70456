/* Force-included (gcc -include) into every user source of a host build: the standard
 * allocation functions become the tracked ones of runtime.c, so the runtime can tell the
 * extent of any heap block a region's pointer points into. Object-like macros also catch
 * `(malloc)(n)`, function pointers, and the prototypes of later system headers, which then
 * declare the tracked functions with glibc's attributes (malloc, alloc_size, ...). */
#ifndef OFFLOAD_HOSTPROG_ALLOC_TRACK_H
#define OFFLOAD_HOSTPROG_ALLOC_TRACK_H
#include "runtime.h"
#define malloc __offload_malloc
#define calloc __offload_calloc
#define realloc __offload_realloc
#define free __offload_free
#define aligned_alloc __offload_aligned_alloc
#define posix_memalign __offload_posix_memalign
/* System calls do not fault on protected pages: these settle their buffers first. */
#define fread __offload_fread
#define fwrite __offload_fwrite
#define read __offload_read
#define write __offload_write
#endif
