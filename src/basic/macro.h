/* SPDX-License-Identifier: MIT */
/* Small macros used everywhere: cleanup attributes, ownership moves, argument checks. */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

/* Moves ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                \
    ({                             \
        __typeof__(p) _ptr_ = (p); \
        (p) = NULL;                \
        _ptr_;                     \
    })
#define TAKE_FD(fd)      \
    ({                   \
        int _fd_ = (fd); \
        (fd) = -1;       \
        _fd_;            \
    })

static inline void freep(void *p) {
    free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
    if (fd >= 0) {
        int saved = errno;
        (void)close(fd);
        errno = saved;
    }
    return -1;
}
static inline void closep(int *fd) {
    safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Public entry points: check an argument and return -EINVAL (or r) when it fails. */
#define assert_return(expr, r)   \
    do {                         \
        if (_unlikely_(!(expr))) \
            return (r);          \
    } while (0)

/* Defines a freep-style helper for a type with a NULL-accepting destructor. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
    static inline void func##p(type *p) {       \
        if (*p)                                 \
            func(*p);                           \
    }

static inline int negative_errno(void) {
    return errno > 0 ? -errno : -EIO;
}

#define streq(a, b) (strcmp((a), (b)) == 0)
