/* SPDX-License-Identifier: MIT */
/* Crash capture, halod's side (amf-crash.c): what it takes of the file a crashed process left, and what not. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amf-internal.h"
#include "tests.h"

/* The one function of io/supervisor.c amf-crash.c calls. */
char *proc_status_to_string(int status, char *buf, size_t n) {
    snprintf(buf, n, "status 0x%x", (unsigned)status);
    return buf;
}

static char dir[] = "/tmp/test-amf-crash-XXXXXX";
static struct amf amf;
static struct su su = {.name = "su-a"};
static struct comp comp = {.amf = &amf, .su = &su, .name = "comp-a"};

static void setup(void) {
    ASSERT(mkdtemp(dir));
    amf.crash_dir = dir;
}

/* Writes n bytes of text as the crash file comp's process would have left. */
static void leave(const char *text, size_t n) {
    char path[256], env[300];
    ASSERT(amf_crash_env(&comp, env, sizeof(env)));
    snprintf(path, sizeof(path), "%s/comp-a", dir);
    ASSERT_STREQ(env + strlen("HALO_CRASH_FILE="), path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, text, n), (ssize_t)n);
    close(fd);
}

static const char *describe(int sig, char *buf, size_t size) {
    ASSERT(amf_crash_describe(&comp, 42, sig, buf, size)); /* a wait status of "killed by sig" is sig itself */
    return buf;
}

TEST(a_capture_gives_address_and_frames) {
    char buf[1024];
    setup();
    const char *t =
        "halo-crash 1\nsignal 11\ncode 1\naddr 0x0\n/lib/libc.so.6(+0x3c050)[0x7f00]\n/bin/app(f+0x1)[0x5500]\n";
    leave(t, strlen(t));
    ASSERT_STREQ(
        describe(SIGSEGV, buf, sizeof(buf)),
        "killed by SIGSEGV (signal 11) at 0x0, backtrace: /lib/libc.so.6(+0x3c050)[0x7f00] | /bin/app(f+0x1)[0x5500]");
    char path[256];
    snprintf(path, sizeof(path), "%s/comp-a", dir);
    ASSERT(access(path, F_OK) != 0); /* read once, then removed */
}

TEST(sigabrt_has_no_address) {
    char buf[1024];
    setup();
    const char *t = "halo-crash 1\nsignal 6\ncode -6\naddr 0x1234\n/bin/app(+0x1)[0x5500]\n";
    leave(t, strlen(t));
    ASSERT_STREQ(describe(SIGABRT, buf, sizeof(buf)),
                 "killed by SIGABRT (signal 6), backtrace: /bin/app(+0x1)[0x5500]");
}

TEST(a_file_of_another_signal_or_no_header_is_ignored) {
    char buf[1024];
    setup();
    const char *t = "halo-crash 1\nsignal 7\ncode 1\naddr 0x10\n/bin/app(+0x1)[0x5500]\n";
    leave(t, strlen(t));
    ASSERT_STREQ(describe(SIGSEGV, buf, sizeof(buf)), "killed by SIGSEGV (signal 11)");
    t = "signal 11\ncode 1\naddr 0x10\n/bin/app(+0x1)[0x5500]\n";
    leave(t, strlen(t));
    ASSERT_STREQ(describe(SIGSEGV, buf, sizeof(buf)), "killed by SIGSEGV (signal 11)");
    /* No file at all: the signal only. */
    ASSERT_STREQ(describe(SIGBUS, buf, sizeof(buf)), "killed by SIGBUS (signal 7)");
}

TEST(frames_are_bounded_and_printable) {
    static char t[64 * 1024];
    char buf[4096];
    setup();
    size_t n = (size_t)snprintf(t, sizeof(t), "halo-crash 1\nsignal 11\ncode 2\naddr 0xdead\nbad\x01\x1b[31m\n");
    for (int i = 0; i < 40; i++) {
        memset(t + n, 'x', 300); /* longer than a frame may be */
        n += 300;
        t[n++] = '\n';
    }
    leave(t, n);
    describe(SIGSEGV, buf, sizeof(buf));
    for (const char *p = buf; *p; p++)
        ASSERT(*p >= 0x20 && *p < 0x7f);
    ASSERT(strncmp(buf, "killed by SIGSEGV (signal 11) at 0xdead, backtrace: bad??[31m | ", 63) == 0);
    /* 12 frames shown of 160 characters at most; what was read past 8 KiB is not there. */
    const char *more = strstr(buf, " | (");
    ASSERT(more);
    /* 41 frames written, 29 of them (in part) within the 8 KiB read: 12 shown, 17 counted. */
    ASSERT_STREQ(more, " | (17 more)");
    unsigned frames = 0;
    for (const char *p = strstr(buf, "backtrace: "); (p = strstr(p, " | ")); p += 3)
        frames++;
    ASSERT_EQ(frames, 12); /* 11 separators between 12 frames, and the one before "(N more)" */
    ASSERT(!strstr(buf,
                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
    ASSERT(strlen(buf) < 12 * 164 + 200);
}

TEST(other_ends_are_described_as_before) {
    char buf[256];
    setup();
    ASSERT(!amf_crash_describe(&comp, 42, SIGKILL, buf, sizeof(buf)));
    ASSERT_STREQ(buf, "status 0x9");
    ASSERT(!amf_crash_describe(&comp, 42, 3 << 8, buf, sizeof(buf)));
}
