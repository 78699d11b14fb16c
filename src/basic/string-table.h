/* SPDX-License-Identifier: MIT */
/*
 * Enum <-> string, written once: a table indexed by the enum and two
 * functions made from it.
 *
 *     static const char *const color_table[_COLOR_MAX] = {[COLOR_RED] = "red", ...};
 *     DEFINE_STRING_TABLE_LOOKUP(color, enum color);
 *
 * gives color_to_string() (NULL for a value outside the table or a hole in
 * it) and color_from_string() (the value, or -EINVAL; NULL gives -EINVAL).
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "macro.h"

/* The index of s in table (n entries, holes allowed), or -EINVAL. */
ssize_t string_table_lookup(const char *const *table, size_t n, const char *s);

#define _DEFINE_STRING_TABLE_TO_STRING(name, type, scope) \
    scope const char *name##_to_string(type i) {          \
        if ((size_t)i >= ELEMENTSOF(name##_table))        \
            return NULL;                                  \
        return name##_table[i];                           \
    }
#define _DEFINE_STRING_TABLE_FROM_STRING(name, type, scope)                         \
    scope int name##_from_string(const char *s) {                                   \
        return (int)string_table_lookup(name##_table, ELEMENTSOF(name##_table), s); \
    }

/* Only name_to_string(), for enums that are never read from text; only name_from_string(). */
#define DEFINE_STRING_TABLE_TO_STRING(name, type) _DEFINE_STRING_TABLE_TO_STRING(name, type, )
#define DEFINE_STRING_TABLE_FROM_STRING(name, type) _DEFINE_STRING_TABLE_FROM_STRING(name, type, )
#define DEFINE_STRING_TABLE_LOOKUP(name, type)   \
    _DEFINE_STRING_TABLE_TO_STRING(name, type, ) \
    _DEFINE_STRING_TABLE_FROM_STRING(name, type, )
#define DEFINE_PRIVATE_STRING_TABLE_LOOKUP(name, type)          \
    _DEFINE_STRING_TABLE_TO_STRING(name, type, static _unused_) \
    _DEFINE_STRING_TABLE_FROM_STRING(name, type, static _unused_)
