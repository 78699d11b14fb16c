/* SPDX-License-Identifier: MIT */
/*
 * chaos-stamp: the chaos checker's time stamp for shell scripts (its OCF agent,
 * test/chaos/ocf-logged):
 *
 *   chaos-stamp FILE KIND WORD...
 *
 * appends "KIND <ns> WORD...\n" to FILE, <ns> on CLOCK_MONOTONIC (the clock of the
 * components' intervals and of the death watcher), in one O_APPEND write(2).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char line[1024];
    struct timespec ts;

    if (argc < 3) {
        fprintf(stderr, "usage: chaos-stamp FILE KIND WORD...\n");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int n = snprintf(line, sizeof(line), "%s %lld", argv[2], (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    for (int i = 3; i < argc && n > 0 && n < (int)sizeof(line); i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", argv[i]);
    if (n <= 0 || n >= (int)sizeof(line) - 1) {
        fprintf(stderr, "chaos-stamp: line too long\n");
        return 2;
    }
    line[n++] = '\n';
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        perror("chaos-stamp");
        return 1;
    }
    close(fd);
    return 0;
}
