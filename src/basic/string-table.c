/* SPDX-License-Identifier: MIT */
/* The lookup behind string-table.h's from_string functions. */
#include "string-table.h"

#include <errno.h>
#include <string.h>

ssize_t string_table_lookup(const char *const *table, size_t n, const char *s) {
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (table[i] && strcmp(table[i], s) == 0)
            return (ssize_t)i;
    return -EINVAL;
}
