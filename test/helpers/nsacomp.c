/* SPDX-License-Identifier: MIT */
/*
 * nsacomp: the chaos checker's non-SA-aware component (test/chaos/README.md).  An
 * unmodified-style program: it links nothing of halo and knows nothing of it but the
 * environment halod starts it with.  Such a process holds its CSI ACTIVE from its start to
 * its death, so it logs only the start, and the checker takes the end from the kernel:
 *
 *   1. it connects to the checker's watcher (the Unix stream socket $TESTCOMP_WATCH),
 *      sends "<comp> <pid>\n" and keeps the connection open: the kernel closes it when
 *      the process dies, however it dies;
 *   2. only then does it append "ACTIVE <ns> <pid> <csi>" (CLOCK_MONOTONIC, one O_APPEND
 *      write) to $TESTCOMP_LOG.<comp>.intervals, <comp> being $HALO_COMPONENT and <csi>
 *      argv[1] ("-" without it);
 *   3. it waits for a signal, and dies of it (SIGTERM's default action included).
 *
 * It exits 1 before logging anything when it cannot reach the watcher (an ACTIVE whose end
 * nobody would see), and 2 when $HALO_HA_STATE is not ACTIVE (halod runs a non-SA-aware
 * command for ACTIVE only).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int watch_connect(const char *path, const char *me) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char hello[512];

    if (strlen(path) >= sizeof(sa.sun_path))
        return -1;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int n = snprintf(hello, sizeof(hello), "%s %d\n", me, (int)getpid());
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || n <= 0 || n >= (int)sizeof(hello) ||
        write(fd, hello, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    return fd; /* deliberately left open until the process ends */
}

int main(int argc, char **argv) {
    const char *me = getenv("HALO_COMPONENT");
    const char *state = getenv("HALO_HA_STATE");
    const char *log = getenv("TESTCOMP_LOG");
    const char *watch = getenv("TESTCOMP_WATCH");
    const char *csi = argc > 1 ? argv[1] : "-";
    char path[4096], line[512];
    struct timespec ts;

    if (!me || !log || !watch) {
        fprintf(stderr, "nsacomp: HALO_COMPONENT, TESTCOMP_LOG and TESTCOMP_WATCH must be set\n");
        return 1;
    }
    if (!state || strcmp(state, "ACTIVE") != 0) {
        fprintf(stderr, "nsacomp: %s started with HALO_HA_STATE=%s\n", me, state ? state : "(unset)");
        return 2;
    }
    if (watch_connect(watch, me) < 0) {
        fprintf(stderr, "nsacomp: %s cannot reach the watcher at %s\n", me, watch);
        return 1;
    }
    int n = snprintf(path, sizeof(path), "%s.%s.intervals", log, me);
    int fd = n > 0 && n < (int)sizeof(path) ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    n = snprintf(line, sizeof(line), "ACTIVE %lld %d %s\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
                 (int)getpid(), csi);
    if (fd < 0 || n <= 0 || n >= (int)sizeof(line) || write(fd, line, (size_t)n) != n) {
        fprintf(stderr, "nsacomp: %s cannot log to %s\n", me, path);
        return 1;
    }
    close(fd);
    for (;;)
        pause();
}
