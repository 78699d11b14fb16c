/* SPDX-License-Identifier: MIT */
/* Who may write over HTTP: the bearer token of --http-token-file, its file, and the check of a request. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http-auth.h"
#include "macro.h"

int http_secret_file_read(const char *path, size_t max, char **ret, size_t *ret_len, mode_t *ret_mode) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL; /* a FIFO or a device is never waited on */
    if ((size_t)st.st_size > max)
        return -EFBIG;
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return -ENOMEM;
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? -errno : -EIO;
            free(buf);
            return e;
        }
        n += (size_t)k;
    }
    buf[n] = 0;
    *ret = buf;
    if (ret_len)
        *ret_len = n;
    if (ret_mode)
        *ret_mode = st.st_mode & 07777;
    return 0;
}

int http_token_parse(char *text) {
    size_t n = strcspn(text, "\n");
    if (text[n] == '\n' && text[n + 1] != 0)
        return -EINVAL; /* one line */
    text[n] = 0;
    if (n > 0 && text[n - 1] == '\r')
        text[--n] = 0;
    if (n < HTTP_TOKEN_MIN || n > HTTP_TOKEN_MAX)
        return -ERANGE;
    for (size_t i = 0; i < n; i++)
        if (text[i] <= ' ' || text[i] > '~')
            return -EINVAL;
    return 0;
}

bool http_bearer_ok(const char *authorization, const char *token) {
    static const char scheme[] = "Bearer ";
    if (!authorization || !token || strncasecmp(authorization, scheme, sizeof(scheme) - 1) != 0)
        return false;
    const char *given = authorization + sizeof(scheme) - 1;
    size_t n = strlen(token), g = strlen(given);
    /* Compares every byte whatever the first difference, so the time says nothing of the token. */
    unsigned char diff = g != n;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < g ? given[i] : 0);
    return diff == 0;
}
