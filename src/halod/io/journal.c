/* SPDX-License-Identifier: MIT */
/* halod's records into journald with their fields (journal.h). */
#include "journal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

#if HAVE_LIBSYSTEMD

/* Where journald takes native records. */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"
/* Fields a record may carry besides the six journal.c adds. */
#define JOURNAL_FIELDS_MAX 16
/* What the socket may hold while journald is behind, as libsystemd asks for its own. */
#define JOURNAL_SNDBUF (8 * 1024 * 1024)

/*
 * Why not sd_journal_sendv(): its socket blocks, and a journald that reads
 * slowly (a burst, a full disk, journald stopped in a debugger) would stop
 * halod's event loop with it, failovers included.  This socket never waits: a
 * record journald's socket does not take at once is dropped and counted, and
 * the next record that goes is preceded by one saying how many were lost.
 */
static int journal_fd = -1;
static unsigned long journal_dropped;

/* Appends one field in the native protocol: "NAME=value\n", or for a value
 * holding a newline "NAME\n", its length (64 bits, little endian), the value
 * and "\n".  False when it does not fit. */
static bool field(char *buf, size_t size, size_t *used, const char *name, const char *value) {
    size_t nl = strlen(name), vl = strlen(value);
    bool binary = memchr(value, '\n', vl) != NULL;
    size_t need = nl + 1 + (binary ? 8 : 0) + vl + 1;
    if (need > size - *used)
        return false;
    char *p = buf + *used;
    memcpy(p, name, nl);
    p += nl;
    if (binary) {
        *p++ = '\n';
        uint64_t len = vl;
        for (int i = 0; i < 8; i++)
            *p++ = (char)(len >> (8 * i) & 0xff);
    } else
        *p++ = '=';
    memcpy(p, value, vl);
    p[vl] = '\n';
    *used += need;
    return true;
}

/* One datagram; 0, -EAGAIN when journald has no room for it now, or -errno. */
static int journal_write(const char *buf, size_t len) {
    if (journal_fd < 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET};
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -errno;
        int sndbuf = JOURNAL_SNDBUF;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            int r = -errno;
            close(fd);
            return r;
        }
        journal_fd = fd;
    }
    if (send(journal_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
        return 0;
    int r = errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (r != -EAGAIN) { /* journald restarted (ECONNREFUSED), or worse: connect again next time */
        close(journal_fd);
        journal_fd = -1;
    }
    return r;
}

/* The record saying how many went missing, before the next one that goes. */
static void journal_tell_dropped(void) {
    char buf[512], msg[160];
    size_t used = 0;
    snprintf(msg, sizeof(msg), "%lu records were dropped: the journal did not take them in time", journal_dropped);
    if (field(buf, sizeof(buf), &used, "MESSAGE", msg) && field(buf, sizeof(buf), &used, "PRIORITY", "4") &&
        field(buf, sizeof(buf), &used, "HALO_AREA", "daemon") &&
        field(buf, sizeof(buf), &used, "SYSLOG_IDENTIFIER", "halod") && journal_write(buf, used) == 0)
        journal_dropped = 0;
}

static int journal_send(int level, const char *area, const char *message, const char *file, int line,
                        const struct log_field *fields) {
    char buf[8192], prio[2] = {(char)('0' + level), 0}, lineno[16];
    size_t used = 0;
    bool ident = false;

    snprintf(lineno, sizeof(lineno), "%d", line);
    for (size_t i = 0, n = 0; fields && fields[i].name && n < JOURNAL_FIELDS_MAX; i++) {
        if (!fields[i].value || !field(buf, sizeof(buf), &used, fields[i].name, fields[i].value))
            continue; /* a field that is not there, or too long for the record: the message still goes */
        n++;
        ident = ident || streq(fields[i].name, "SYSLOG_IDENTIFIER");
    }
    if (!field(buf, sizeof(buf), &used, "MESSAGE", message) || !field(buf, sizeof(buf), &used, "PRIORITY", prio) ||
        !field(buf, sizeof(buf), &used, "HALO_AREA", area) || !field(buf, sizeof(buf), &used, "CODE_FILE", file) ||
        !field(buf, sizeof(buf), &used, "CODE_LINE", lineno))
        return -ENOBUFS; /* written on stderr instead */
    if (!ident && !field(buf, sizeof(buf), &used, "SYSLOG_IDENTIFIER", "halod"))
        return -ENOBUFS;
    if (journal_dropped)
        journal_tell_dropped();
    int r = journal_write(buf, used);
    if (r == -EAGAIN) {
        journal_dropped++;
        return 0; /* counted: not on stderr, which goes to the same journald and would block */
    }
    return r;
}

void journal_install(void) {
    struct stat st;
    if (stat(JOURNAL_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode))
        log_set_journal_sink(journal_send);
}
#else
void journal_install(void) {
}
#endif
