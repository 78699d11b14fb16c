/* SPDX-License-Identifier: MIT */
/*
 * Crash capture, halod's side: the file a component's libhalo writes when the
 * process dies of a fatal signal (src/libhalo/halo-crash.c), read once the
 * pidfd says it died of one, and turned into the failure's description.
 *
 * The file is input from outside: read up to CRASH_READ_MAX bytes, taken
 * only when it names the signal the process died of, its frames cut to
 * CRASH_FRAMES_SHOWN of CRASH_FRAME_MAX printable characters each.  It is
 * a small file of halod's state directory, read when the process has ended.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"

#define CRASH_READ_MAX 8192
#define CRASH_FRAMES_SHOWN 12
#define CRASH_FRAME_MAX 160

static bool crash_path(const struct comp *c, char *buf, size_t size) {
    if (!c->amf->crash_dir)
        return false;
    int n = snprintf(buf, size, "%s/%s", c->amf->crash_dir, c->name);
    return n > 0 && (size_t)n < size;
}

bool amf_crash_env(struct comp *c, char *buf, size_t size) {
    char path[PATH_MAX];
    if (!crash_path(c, path, sizeof(path)))
        return false;
    (void)unlink(path); /* what an earlier process left is not this one's */
    int n = snprintf(buf, size, "HALO_CRASH_FILE=%s", path);
    return n > 0 && (size_t)n < size;
}

static bool fatal_signal(int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGABRT;
}

/* Reads c's crash file (at most CRASH_READ_MAX bytes) into buf, NUL-terminated, and removes it; length or -errno. */
static ssize_t crash_read(struct comp *c, char *buf, size_t size) {
    char path[PATH_MAX];
    struct stat st;
    ssize_t n = 0;

    if (!crash_path(c, path, sizeof(path)))
        return -ENOENT;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        n = -EBADF;
    while (n >= 0 && (size_t)n < size - 1) {
        ssize_t k = read(fd, buf + n, size - 1 - (size_t)n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += k;
    }
    close(fd);
    (void)unlink(path);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* Appends s to out (at *len of size), printable characters only, at most max of them. */
static void append_clean(char *out, size_t size, size_t *len, const char *s, size_t max) {
    for (size_t i = 0; s[i] && i < max && *len + 1 < size; i++)
        out[(*len)++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[*len] = '\0';
}

/*
 * Parses what libhalo wrote for a process that died of sig and appends " at
 * 0x..." (a fault the kernel raised) and ", backtrace: f1 | f2 ..." to out.
 * Returns false, appending nothing, when text is not a capture of that signal.
 */
static bool crash_parse(char *text, int sig, char *out, size_t size, size_t *len) {
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    const char *frames[CRASH_FRAMES_SHOWN];
    long long got_sig = -1, code = 0;
    unsigned long long addr = 0;
    unsigned n_frames = 0;
    char frag[64];

    if (!line || strcmp(line, "halo-crash 1") != 0)
        return false;
    /* The header lines, then one line per frame. */
    while ((line = strtok_r(NULL, "\n", &save))) {
        if (n_frames == 0 && (sscanf(line, "signal %lld", &got_sig) == 1 || sscanf(line, "code %lld", &code) == 1 ||
                              sscanf(line, "addr 0x%llx", &addr) == 1))
            continue;
        if (n_frames < CRASH_FRAMES_SHOWN)
            frames[n_frames] = line;
        n_frames++;
    }
    if (got_sig != sig)
        return false;
    if (code > 0 && sig != SIGABRT) {
        snprintf(frag, sizeof(frag), " at 0x%llx", addr);
        append_clean(out, size, len, frag, sizeof(frag));
    }
    for (unsigned i = 0; i < n_frames && i < CRASH_FRAMES_SHOWN; i++) {
        append_clean(out, size, len, i == 0 ? ", backtrace: " : " | ", 16);
        append_clean(out, size, len, frames[i], CRASH_FRAME_MAX);
    }
    if (n_frames > CRASH_FRAMES_SHOWN) {
        snprintf(frag, sizeof(frag), " | (%u more)", n_frames - CRASH_FRAMES_SHOWN);
        append_clean(out, size, len, frag, sizeof(frag));
    }
    return true;
}

/* *note ("RUNG: component 'c' REASON", or "component 'c' REASON") with how as c's reason; the
 * rung is kept.  A note of another component (its unit failed for that one) stays. */
static void better_reason(const struct comp *c, char **note, const char *how) {
    char who[CONFIG_NAME_MAX + 16], *why = NULL;
    snprintf(who, sizeof(who), "component '%s' ", c->name);
    const char *at = *note ? strstr(*note, who) : NULL;
    if (!at)
        return;
    if (asprintf(&why, "%.*s%s%s", (int)(at - *note), *note, who, how) < 0)
        return;
    free(*note);
    *note = why;
}

bool amf_crash_describe(struct comp *c, pid_t pid, int status, char *buf, size_t size) {
    if (status == PROC_STATUS_UNKNOWN || !WIFSIGNALED(status) || !fatal_signal(WTERMSIG(status))) {
        proc_status_to_string(status, buf, size);
        return false;
    }
    int sig = WTERMSIG(status);
    size_t len = 0;
    char head[64], text[CRASH_READ_MAX];
    snprintf(head, sizeof(head), "killed by SIG%s (signal %d)", sigabbrev_np(sig) ?: "?", sig);
    buf[0] = '\0';
    append_clean(buf, size, &len, head, sizeof(head));
    bool captured = crash_read(c, text, sizeof(text)) > 0 && crash_parse(text, sig, buf, size, &len);
    if (!captured) {
        bool coredump = access("/var/lib/systemd/coredump", F_OK) == 0 || access("/usr/bin/coredumpctl", X_OK) == 0 ||
                        access("/bin/coredumpctl", X_OK) == 0;
        log_warning("Component '%s' (pid %d) %s%s", c->name, (int)pid, buf,
                    coredump ? "; systemd-coredump may hold its core ('coredumpctl info' with that pid)" : "");
    } else
        log_warning("Component '%s' (pid %d) %s", c->name, (int)pid, buf);
    /* Its unit failed (or it restarts in place) already when its link broke, which comes first:
     * the crash is the better reason, after the rung of the ladder that acted. */
    if ((c->su->failing || c->restart_in_place) && !c->amf->stopping) {
        if (c->su->failing)
            better_reason(c, &c->su->last_failure, buf);
        better_reason(c, &c->su->last_recovery, buf);
    }
    return true;
}
