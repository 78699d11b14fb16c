/* SPDX-License-Identifier: MIT */
/* halod's records into journald with their fields (journal.h). */
#include "journal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "log.h"
#include "macro.h"

#if HAVE_LIBSYSTEMD
#include <systemd/sd-journal.h>

/* Fields a record may carry besides the six journal.c adds. */
#define JOURNAL_FIELDS_MAX 16

/* Appends "NAME=value" to the arena at *used and points iov at it; false when it does not fit. */
static bool field(struct iovec *iov, char *arena, size_t size, size_t *used, const char *name, const char *value) {
    int n = snprintf(arena + *used, size - *used, "%s=%s", name, value);
    if (n < 0 || (size_t)n >= size - *used)
        return false;
    *iov = (struct iovec){.iov_base = arena + *used, .iov_len = (size_t)n};
    *used += (size_t)n + 1;
    return true;
}

static int journal_send(int level, const char *area, const char *message, const char *file, int line,
                        const struct log_field *fields) {
    char arena[8192], prio[2] = {(char)('0' + level), 0}, lineno[16];
    struct iovec iov[6 + JOURNAL_FIELDS_MAX];
    size_t used = 0, n = 0;
    bool ident = false;

    snprintf(lineno, sizeof(lineno), "%d", line);
    for (size_t i = 0; fields && fields[i].name && n < JOURNAL_FIELDS_MAX; i++) {
        if (!fields[i].value || !field(&iov[n], arena, sizeof(arena), &used, fields[i].name, fields[i].value))
            continue; /* a field that is not there, or too long for the arena: the message still goes */
        n++;
        ident = ident || streq(fields[i].name, "SYSLOG_IDENTIFIER");
    }
    if (!field(&iov[n++], arena, sizeof(arena), &used, "MESSAGE", message) ||
        !field(&iov[n++], arena, sizeof(arena), &used, "PRIORITY", prio) ||
        !field(&iov[n++], arena, sizeof(arena), &used, "HALO_AREA", area) ||
        !field(&iov[n++], arena, sizeof(arena), &used, "CODE_FILE", file) ||
        !field(&iov[n++], arena, sizeof(arena), &used, "CODE_LINE", lineno))
        return -ENOBUFS; /* written on stderr instead */
    if (!ident && !field(&iov[n++], arena, sizeof(arena), &used, "SYSLOG_IDENTIFIER", "halod"))
        return -ENOBUFS;
    return sd_journal_sendv(iov, (int)n);
}

/* Where libsystemd sends (sd_journal_sendv() drops a record silently when nothing listens there). */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

void journal_install(void) {
    struct stat st;
    if (stat(JOURNAL_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode))
        log_set_journal_sink(journal_send);
}
#else
void journal_install(void) {
}
#endif
