/* SPDX-License-Identifier: MIT */
/* Strict parsers of the numbers and addresses halo reads from files, keys, options and the wire. */
#pragma once

#include <stdbool.h>

#include <stddef.h>
#include <stdint.h>

/*
 * Decimal digits only (no sign, no space, no "0x"), 1 to 20 of them, whose
 * value fits: 0, -EINVAL (empty or not digits) or -ERANGE (too large).  The
 * _n forms read exactly n bytes of s (no NUL needed); *ret is written only
 * on success.
 */
int parse_u64_n(const char *s, size_t n, uint64_t *ret);
int parse_u64(const char *s, uint64_t *ret);
/* The same, optionally with a leading '-', within int64_t. */
int parse_i64_n(const char *s, size_t n, int64_t *ret);
int parse_i64(const char *s, int64_t *ret);
/* parse_u64() within [min, max]: -ERANGE outside. */
int parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/*
 * "HOST:PORT", "[HOST]:PORT" (IPv6): splits into host (brackets removed,
 * NUL-terminated, at most host_size - 1 bytes) and port (0 to 65535).
 * Checks the form only, not that host is an address.  0 or -EINVAL.
 */
int parse_host_port(const char *s, char *host, size_t host_size, uint16_t *ret_port);

/* Whether host is a numeric loopback address: 127.0.0.0/8 or ::1. */
bool address_is_loopback(const char *host);
