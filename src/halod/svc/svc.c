/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "svc.h"

bool svc_name_valid(const char *s, size_t max) {
    if (!s || max > SVC_NAME_MAX)
        max = SVC_NAME_MAX;
    size_t n = s ? strnlen(s, max + 1) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.:@", c);
        if (!ok || c == '\0')
            return false;
    }
    return true;
}
