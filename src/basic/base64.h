/* SPDX-License-Identifier: MIT */
/* Base64 (RFC 4648, standard alphabet, padded) for byte strings, as etcd's JSON gateway carries keys and values. */
#pragma once

#include <stddef.h>

/* Bytes needed to encode n bytes, including the terminating NUL. */
#define BASE64_ENCODED_SIZE(n) ((((n) + 2) / 3) * 4 + 1)

/*
 * Encodes n bytes of src into dst, which must hold BASE64_ENCODED_SIZE(n)
 * bytes; dst is NUL-terminated.  Returns the length written (without the NUL).
 */
size_t base64_encode(const void *src, size_t n, char *dst);

/*
 * Decodes the n characters of src (padding required, no whitespace) into a
 * fresh buffer of the decoded length plus a NUL byte that the length does not
 * count.  Returns 0 and *ret, *ret_len (owned by the caller, free()), -EBADMSG
 * for input that is not canonical base64, -ENOMEM.
 */
int base64_decode(const char *src, size_t n, char **ret, size_t *ret_len);
