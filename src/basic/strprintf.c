/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>

#include "strprintf.h"

char *strprintf(const char *fmt, ...) {
    va_list ap;
    char *s;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    return r < 0 ? NULL : s;
}
