/* SPDX-License-Identifier: MIT */
#include "cdb-path.h"

#include <errno.h>
#include <string.h>

int cdb_path_check(const char *s, size_t max, bool root_ok) {
    if (!s || s[0] != '/')
        return -EINVAL;
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return -EINVAL;
    if (n == 1)
        return root_ok ? 0 : -EINVAL;
    if (s[n - 1] == '/')
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -EINVAL;
        if (s[i] == '/' && s[i + 1] == '/')
            return -EINVAL;
    }
    return 0;
}

bool cdb_path_under(const char *path, const char *prefix) {
    size_t n = strlen(prefix);
    if (n == 1) /* "/" */
        return true;
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}
