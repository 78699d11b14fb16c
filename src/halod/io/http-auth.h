/* SPDX-License-Identifier: MIT */
/* Who may write over HTTP: the bearer token of --http-token-file, and the check of a request. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A token is one line of 16 to 4096 printable bytes without spaces. */
#define HTTP_TOKEN_MIN 16
#define HTTP_TOKEN_MAX 4096

/* Reads a regular file of at most max bytes, NUL-terminated; ret_mode (may be NULL): its
 * permissions.  0, or -errno (-EINVAL: not a regular file, -EFBIG: larger than max). */
int http_secret_file_read(const char *path, size_t max, char **ret, size_t *ret_len, mode_t *ret_mode);

/* text: the token file's content; cut to its token in place.  0, -EINVAL (more than one line, a
 * space or a control character), -ERANGE (too short or too long). */
int http_token_parse(char *text);

/* Whether the Authorization header's value (NULL: absent) is "Bearer <token>", compared in
 * constant time. */
bool http_bearer_ok(const char *authorization, const char *token);
