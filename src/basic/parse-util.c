/* SPDX-License-Identifier: MIT */
/* Strict decimal and HOST:PORT parsers (parse-util.h). */
#include "parse-util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define U64_DIGITS_MAX 20

int parse_u64_n(const char *s, size_t n, uint64_t *ret) {
    uint64_t v = 0;
    if (!s || n == 0)
        return -EINVAL;
    if (n > U64_DIGITS_MAX) {
        for (size_t i = 0; i < n; i++)
            if (s[i] < '0' || s[i] > '9')
                return -EINVAL;
        return -ERANGE;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *ret = v;
    return 0;
}

int parse_u64(const char *s, uint64_t *ret) {
    return s ? parse_u64_n(s, strlen(s), ret) : -EINVAL;
}

int parse_i64_n(const char *s, size_t n, int64_t *ret) {
    bool neg = n > 0 && s && s[0] == '-';
    uint64_t v;
    int r = parse_u64_n(neg ? s + 1 : s, neg ? n - 1 : n, &v);
    if (r < 0)
        return r;
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return -ERANGE;
    *ret = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

int parse_i64(const char *s, int64_t *ret) {
    return s ? parse_i64_n(s, strlen(s), ret) : -EINVAL;
}

int parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
    uint64_t v;
    int r = parse_u64(s, &v);
    if (r < 0)
        return r;
    if (v < min || v > max)
        return -ERANGE;
    *ret = v;
    return 0;
}

int parse_host_port(const char *s, char *host, size_t host_size, uint16_t *ret_port) {
    const char *colon = s ? strrchr(s, ':') : NULL;
    uint64_t port;
    if (!colon || colon == s || host_size == 0)
        return -EINVAL;
    const char *h = s, *e = colon;
    if (*h == '[') {
        if (e[-1] != ']' || e - h < 3)
            return -EINVAL;
        h++, e--;
    } else if (memchr(h, ':', (size_t)(e - h)) || memchr(h, ']', (size_t)(e - h)))
        return -EINVAL; /* an IPv6 address needs its brackets */
    if ((size_t)(e - h) >= host_size)
        return -EINVAL;
    if (parse_u64_range(colon + 1, 0, 65535, &port) < 0)
        return -EINVAL;
    memcpy(host, h, (size_t)(e - h));
    host[e - h] = '\0';
    *ret_port = (uint16_t)port;
    return 0;
}

bool address_is_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}
