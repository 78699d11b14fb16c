/* SPDX-License-Identifier: MIT */
/* Base64 encoding and strict decoding (RFC 4648 section 4). */
#include "base64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const void *src, size_t n, char *dst) {
    const uint8_t *s = src;
    char *d = dst;
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *d++ = alphabet[v >> 18 & 63];
        *d++ = alphabet[v >> 12 & 63];
        *d++ = alphabet[v >> 6 & 63];
        *d++ = alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *d++ = alphabet[v >> 18 & 63];
        *d++ = alphabet[v >> 12 & 63];
        *d++ = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        *d++ = '=';
    }
    *d = 0;
    return (size_t)(d - dst);
}

static int unbase64(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int base64_decode(const char *src, size_t n, char **ret, size_t *ret_len) {
    if (n % 4 != 0)
        return -EBADMSG;
    size_t pad = 0;
    if (n > 0 && src[n - 1] == '=')
        pad = n > 1 && src[n - 2] == '=' ? 2 : 1;
    size_t len = n / 4 * 3 - pad;
    uint8_t *out = malloc(len + 1);
    if (!out)
        return -ENOMEM;

    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int v[4];
        for (size_t j = 0; j < 4; j++) {
            bool padded = last && j >= 4 - pad;
            v[j] = padded ? 0 : unbase64(src[i + j]);
            if (v[j] < 0)
                goto bad;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* Canonical: the bits a padded group drops must be zero. */
        if ((last && pad == 2 && (w & 0xffff)) || (last && pad == 1 && (w & 0xff)))
            goto bad;
        out[o++] = (uint8_t)(w >> 16);
        if (!(last && pad == 2))
            out[o++] = (uint8_t)(w >> 8);
        if (!(last && pad >= 1))
            out[o++] = (uint8_t)w;
    }
    out[o] = 0;
    *ret = (char *)out;
    *ret_len = len;
    return 0;
bad:
    free(out);
    return -EBADMSG;
}
